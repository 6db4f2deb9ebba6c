"""One call of a tunnel as the application sees it: :class:`SessionHandle`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from l2tp.kernel.model import KernelSessionSpec
from l2tp.protocol.constants import CdnResult
from l2tp.protocol.events import CallParams, SessionClosed, SessionInfo

from .backend import BackendSession, SessionOptions
from .errors import SessionFailed


class SessionOwner(Protocol):
    """What a session handle needs from its tunnel handle."""

    @property
    def tunnel_id(self) -> int: ...

    def create_future(self) -> asyncio.Future[Any]: ...

    def close_session(
        self,
        session_id: int,
        *,
        result: int = CdnResult.ADMINISTRATIVE,
        error: int | None = None,
        message: str = "",
    ) -> None: ...

    def send_circuit_status(self, session_id: int, active: bool) -> None: ...

    async def session_interface(self, handle: SessionHandle, timeout: float) -> str | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """How a listener answers an incoming call: the call parameters of our reply
    (None: the tunnel's defaults) and the options of the local end; ``circuit``
    is the Remote End ID of the local pseudowire it is bound to, if any."""

    params: CallParams | None = None
    options: SessionOptions = field(default_factory=SessionOptions)
    circuit: str | None = None


class SessionHandle:
    """One call in a tunnel; await :meth:`wait_established` / :meth:`wait_closed`."""

    __slots__ = (
        "_closed_fut",
        "_est_fut",
        "_if_fut",
        "backend_session",
        "backend_stop",
        "bringup",
        "circuit",
        "circuit_task",
        "closed",
        "created_at",
        "established_at",
        "info",
        "interface",
        "kernel",
        "kernel_spec",
        "options",
        "params",
        "peer_session_id",
        "released",
        "session_id",
        "stopping",
        "tunnel",
    )

    def __init__(
        self,
        tunnel: SessionOwner,
        session_id: int,
        options: SessionOptions,
        params: CallParams,
        circuit: str | None = None,
    ) -> None:
        self.tunnel = tunnel
        self.session_id = session_id
        self.peer_session_id = 0
        self.options = options
        self.params = params
        """Our side of the call: what we asked for or answered with."""
        self.circuit = circuit
        """The Remote End ID of the local pseudowire a listener bound this call to."""
        self.info: SessionInfo | None = None
        """Set when established (with the data plane and backend up)."""
        self.closed: SessionClosed | None = None
        self.created_at: float | None = None
        """Loop time the call was placed or accepted (ICRQ/OCRQ), set by the tunnel handle:
        with :attr:`established_at`, the set-up time the metrics report."""
        self.established_at: float | None = None
        """Loop time the call was established by the protocol (uptime for ``l2tp ctl``)."""
        self.kernel = False
        """A kernel session exists for it."""
        self.kernel_spec: KernelSessionSpec | None = None
        """The kernel session made before the call was established (``wait_data_plane``:
        before our ICCN or ICRP left), until it is; runtime internal."""
        self.interface: str | None = None
        """The network interface carrying its payload, once known: an Ethernet
        pseudowire's (its configured name, or the kernel's ``l2tpethN`` once looked up),
        a PPP session's as pppd or the built-in PPP reported it (``pppN``, or the
        configured name). See :meth:`wait_interface`."""
        self.backend_session: BackendSession | None = None
        self.stopping = False
        self.backend_stop: asyncio.Task[None] | None = None
        """Its backend being stopped ahead of the call's end (a daemon shutting down stops
        every PPP before its StopCCN: ``TunnelHandle.stop_backends``); the tear-down
        awaits it instead of stopping the backend again (runtime internal)."""
        self.released = False
        """Closed, and its backend and kernel session are gone (see :meth:`wait_closed`)."""
        self.bringup: asyncio.Future[None] | None = None
        """Done once the kernel session and backend are set up or given up on (runtime
        internal; None when no bring-up is under way)."""
        self.circuit_task: asyncio.Task[None] | None = None
        """The last interface up/down following the peer's Circuit Status (runtime internal)."""
        self._est_fut: asyncio.Future[SessionInfo] | None = None
        self._closed_fut: asyncio.Future[SessionClosed] | None = None
        self._if_fut: asyncio.Future[str | None] | None = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "established" if self.info else "pending"
        return f"<SessionHandle {self.tunnel.tunnel_id}/{self.session_id} {state}>"

    @property
    def established(self) -> bool:
        return self.info is not None and self.closed is None

    async def wait_established(self) -> SessionInfo:
        """Return the session's info once up; raise :class:`SessionFailed` if it closed first."""
        if self.closed is not None and self.info is None:
            raise SessionFailed(self.closed)
        if self.info is not None:
            return self.info
        if self._est_fut is None:
            self._est_fut = self.tunnel.create_future()
        return await asyncio.shield(self._est_fut)

    async def wait_closed(self) -> SessionClosed:
        """Return once the call is closed and its backend and kernel session are gone
        (when its whole tunnel closes, the kernel session goes with the tunnel's: see
        ``TunnelHandle.wait_closed``)."""
        if self.closed is not None and self.released:
            return self.closed
        if self._closed_fut is None:
            self._closed_fut = self.tunnel.create_future()
        return await asyncio.shield(self._closed_fut)

    async def wait_interface(self, timeout: float) -> str | None:
        """The name of the session's network interface, or None if it has none (yet).

        Known at once for an Ethernet pseudowire with a configured name; the kernel's
        own ``l2tpethN`` name costs one netlink GET (made here, only for whoever asks,
        so that a burst of calls pays nothing for it). A PPP session's interface is
        made by its payload, pppd or the built-in PPP, some time after the session is
        up (pppd: when it attaches its unit; the built-in PPP: at the network phase,
        after LCP and authentication): this waits up to ``timeout`` seconds for the
        backend to report it, and returns None when nothing will (no backend, or
        one that does not report names) or it did not come in time.
        """
        return await self.tunnel.session_interface(self, timeout)

    def set_circuit(self, active: bool) -> None:
        """L2TPv3: tell the peer our circuit went up or down (SLI with Circuit Status,
        RFC 3931 5.4.5); while it is down the peer stops sending on this session."""
        self.tunnel.send_circuit_status(self.session_id, active)

    async def close(
        self,
        result: int = CdnResult.ADMINISTRATIVE,
        *,
        error: int | None = None,
        message: str = "",
    ) -> SessionClosed:
        """Send a CDN (RFC 2661 5.6) and wait until the session's resources are released."""
        self.tunnel.close_session(self.session_id, result=result, error=error, message=message)
        return await self.wait_closed()

    # ------------------------------------------------------------ internals

    def _set_established(self, info: SessionInfo) -> None:
        self.info = info
        if self._est_fut is not None and not self._est_fut.done():
            self._est_fut.set_result(info)

    async def _reported_interface(self, timeout: float) -> str | None:
        """Wait up to ``timeout`` s for :meth:`_set_interface` (None: late, or released)."""
        if self.interface is not None or self.released:
            return self.interface
        if self._if_fut is None:
            self._if_fut = self.tunnel.create_future()
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._if_fut)
        except TimeoutError:
            return None

    def _set_interface(self, name: str) -> None:
        self.interface = name
        if self._if_fut is not None and not self._if_fut.done():
            self._if_fut.set_result(name)

    def _fail(self, exc: BaseException) -> None:
        """A bug in the runtime ended this session's tunnel: waiters get the exception."""
        for fut in (self._est_fut, self._closed_fut):
            if fut is not None and not fut.done():
                fut.set_exception(exc)
                fut.exception()

    def _set_closed(self, event: SessionClosed) -> None:
        self.closed = event
        if self._est_fut is not None and not self._est_fut.done():
            self._est_fut.set_exception(SessionFailed(event))
            self._est_fut.exception()  # mark retrieved: the awaiter gets it via shield

    def _set_released(self, event: SessionClosed) -> None:
        self.released = True
        if self._closed_fut is not None and not self._closed_fut.done():
            self._closed_fut.set_result(event)
        if self._if_fut is not None and not self._if_fut.done():
            self._if_fut.set_result(None)
