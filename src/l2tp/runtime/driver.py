"""What the per-tunnel objects need from their :class:`~l2tp.runtime.context.L2tpContext`
and from the endpoint (socket) that carries them, as narrow protocols.

The handles and endpoints depend on these protocols, not on the context and endpoint
classes, so the runtime's modules import each other in one direction only:
``context -> endpoints -> handles -> kernel_side -> call_setup, teardown -> handle_state
-> session_handle -> driver``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from l2tp.kernel.async_dataplane import AsyncDataPlane
from l2tp.kernel.constants import EncapType
from l2tp.protocol.events import ControlEvent, Reason, SessionInfo

from .backend import SessionBackend, SessionOptions
from .errors import INTERNAL_ERROR

__all__ = ["INTERNAL_ERROR", "ContextCounters", "Driver", "EndpointHooks", "Serviced"]


@dataclass(slots=True)
class ContextCounters:
    datagrams_in: int = 0
    datagrams_out: int = 0
    send_dropped: int = 0
    """``sendto`` would block: dropped, retransmission recovers it."""
    send_errors: int = 0
    not_control: int = 0
    """Too short, or a data message (T bit clear) on a control socket."""
    malformed: int = 0
    """A control header (T bit set) that does not decode: flags, version or length."""
    foreign_source: int = 0
    """A datagram for a tunnel from an address that is not its peer's."""
    unknown_tunnel: int = 0
    not_allowed: int = 0
    """SCCRQs from addresses outside ``allowed_peers``, dropped silently."""
    internal_errors: int = 0
    """Unexpected exceptions (bugs) caught while handling a tunnel; each closed it."""


class Serviced(Protocol):
    """A tunnel handle as the context's flush loop sees it."""

    def service(self, now: float | None = None) -> None: ...

    @property
    def subscribers(self) -> list[Any]: ...


class Driver(Protocol):
    """The context services a tunnel handle uses."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def dataplane(self) -> AsyncDataPlane: ...

    @property
    def backend(self) -> SessionBackend | None: ...

    @property
    def counters(self) -> ContextCounters: ...

    @property
    def hangup_after(self) -> float:
        """Seconds a stopping backend has before its kernel session is deleted under it."""
        ...

    def mark(self, th: Serviced) -> None: ...

    def kick(self, th: Serviced) -> None: ...

    def publish(self, th: Serviced, event: ControlEvent) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...

    def need_reap(self, endpoint: Any) -> None: ...

    def forget(self, th: Any) -> None:
        """Drop a tunnel from every registry at once (it was abandoned after a bug)."""
        ...


class EndpointHooks(Protocol):
    """What a tunnel handle asks of the endpoint (socket) it belongs to.

    ``th``/``handle`` are the tunnel and session handles (typed loosely here so that
    this module needs neither).
    """

    encap: EncapType
    ppp_options: SessionOptions
    seqnum: bool

    def tunnel_up(self, th: Any) -> None: ...

    def tunnel_down(self, th: Any) -> None: ...

    def admit_call(self, th: Any, info: SessionInfo) -> Reason | Any: ...

    def session_added(self, handle: Any) -> None: ...

    def session_gone(self, th: Any, handle: Any) -> None: ...

    def release(self, th: Any) -> None: ...
