"""What the side-effect mixins of :class:`~l2tp.runtime.handles.TunnelHandle` share:
:class:`HandleState`.

A tunnel handle's kernel and backend work is split by responsibility over mixins
(:mod:`~l2tp.runtime.call_setup`, :mod:`~l2tp.runtime.teardown`, put together in
:class:`~l2tp.runtime.kernel_side.KernelSideEffects`). They are mixins of the one
handle rather than collaborator objects because this is the session set-up hot path:
a method of ``self`` costs no extra attribute hop per call and no object per tunnel
or per session. This class declares the handle's fields they use (set by
``TunnelHandle.__init__``), the handle's own methods they call, and the few helpers
all of them need.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from typing import Any

from l2tp.kernel.model import KernelTunnelSpec
from l2tp.protocol.constants import CdnResult, StopCcnResult
from l2tp.protocol.events import (
    Role,
    SessionClosed,
    SessionInfo,
    TunnelClosed,
    TunnelEstablished,
)
from l2tp.protocol.tunnel import Tunnel

from .backend import Address
from .driver import Driver, EndpointHooks
from .session_handle import SessionHandle


class HandleState:
    """Base of the side-effect mixins of a tunnel handle (see the module doc)."""

    ctx: Driver
    endpoint: EndpointHooks
    tunnel: Tunnel
    peer: Address
    sock: socket.socket
    role: Role
    sessions: dict[int, SessionHandle]
    kernel: KernelTunnelSpec | None
    """The kernel tunnel of this control connection, from establishment until deleted
    (None again if it could not be created)."""
    ready: bool
    """Established, and its kernel tunnel exists (what ``TunnelHandle.wait_established``
    waits for)."""
    established_event: TunnelEstablished | None
    established_at: float | None
    closed: TunnelClosed | None
    _est_fut: asyncio.Future[TunnelEstablished] | None
    _closed_fut: asyncio.Future[TunnelClosed] | None
    _tasks: set[asyncio.Task[None]]
    _kernel_up: asyncio.Task[None] | None
    _teardown: asyncio.Task[None] | None
    _bringups: list[tuple[SessionHandle, SessionInfo]]
    """Established calls waiting for the bring-up worker."""
    _bringup_worker: asyncio.Task[None] | None
    _closing: set[SessionHandle]
    """Sessions whose tear-down is running (their backends may be stopping)."""
    _closed_now: list[tuple[SessionHandle, SessionClosed]]
    """Sessions closed in the batch of events being handled
    (:meth:`~l2tp.runtime.teardown.TearDown.release_closed`)."""

    @property
    def tunnel_id(self) -> int:
        return self.tunnel.tunnel_id

    def log_extra(self, session_id: int | None = None) -> dict[str, object]:
        """The ``extra`` of this tunnel's log records: ``tunnel``, ``peer`` (and
        ``peer_tunnel`` once known) as the protocol core's records carry them, plus
        ``session`` for one of its calls (see :mod:`l2tp.daemons.logformat`)."""
        extra = dict(self.tunnel.log_context)
        if session_id is not None:
            extra["session"] = session_id
        return extra

    @property
    def peer_tunnel_id(self) -> int:
        return self.tunnel.peer_tunnel_id

    @property
    def local(self) -> Address:
        name: Address = self.sock.getsockname()[:2]
        return name

    # The handle's own methods (:class:`~l2tp.runtime.handles.TunnelHandle`).

    def new_session(
        self, session_id: int, options: Any, params: Any = None, circuit: str | None = None
    ) -> SessionHandle:
        raise NotImplementedError

    def close_session(
        self,
        session_id: int,
        *,
        result: int = CdnResult.ADMINISTRATIVE,
        error: int | None = None,
        message: str = "",
    ) -> None:
        raise NotImplementedError

    def data_plane_ready(self, session_id: int) -> None:
        raise NotImplementedError

    def begin_close(
        self,
        result: int = StopCcnResult.GENERAL_REQUEST,
        *,
        error: int | None = None,
        message: str = "",
    ) -> None:
        raise NotImplementedError

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task of this tunnel: its tear-down waits for every one still running."""
        task = self.ctx.spawn(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
