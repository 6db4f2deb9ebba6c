"""Per-tunnel and per-session runtime objects of :mod:`l2tp.runtime.control`.

A :class:`TunnelHandle` drives one sans-IO :class:`~l2tp.protocol.tunnel.Tunnel`:
it owns the tunnel's single loop timer (armed from ``tunnel.get_timer()``),
sends what the tunnel produces on the tunnel's socket, turns the tunnel's
events into kernel objects and backend calls, and resolves the futures the
application awaits. A :class:`SessionHandle` is one call in it.

Kernel objects follow the control plane (RFC 2661 has no data-plane messages):
tunnel established -> managed kernel tunnel on the tunnel's UDP socket; session
established -> PPP kernel session (LNS mode on the LNS), then the
:class:`~l2tp.runtime.backend.SessionBackend`; session closed -> backend stopped,
kernel session deleted; tunnel closed -> every session as above, kernel tunnel
deleted. Kernel failures never escape: they close the session (CDN 2) or the
tunnel (StopCCN 2) with the error text as the message.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from l2tp.kernel.constants import L2SpecType, PseudowireType
from l2tp.kernel.errors import KernelError, SessionNotFound
from l2tp.kernel.model import SessionConfig as KernelSessionConfig
from l2tp.kernel.model import TunnelConfig as KernelTunnelConfig
from l2tp.protocol.constants import CdnResult, StopCcnResult
from l2tp.protocol.events import (
    CallParams,
    CallRequested,
    CircuitStatusChanged,
    ControlEvent,
    Role,
    SessionClosed,
    SessionEstablished,
    SessionInfo,
    TunnelClosed,
    TunnelEstablished,
    TunnelReleased,
)
from l2tp.protocol.tunnel import Tunnel
from l2tp.protocol.tunnel_fsm import TunnelState

from .backend import Address, BackendSession, SessionOptions

if TYPE_CHECKING:
    from .control import L2tpContext, _Endpoint

log = logging.getLogger(__name__)

LOCAL_FAILURE = "local failure"
"""The only text a peer gets when something fails on our side (a kernel or socket
error, a backend that would not start): the Result Code says what it may know, and
the details, which may name paths, users or privileges, stay in our log."""


class TunnelFailed(Exception):
    """The tunnel closed before it was established (or while awaited); carries the event."""

    def __init__(self, event: TunnelClosed) -> None:
        reason = event.reason
        what = f"result {reason.result}" if reason else "no result code"
        detail = (reason.message if reason else "") or event.description
        side = "peer" if event.by_peer else "local"
        super().__init__(f"tunnel {event.tunnel_id} closed ({side}, {what}): {detail}")
        self.event = event


class SessionFailed(Exception):
    """The session closed before it was established; carries the event."""

    def __init__(self, event: SessionClosed) -> None:
        reason = event.reason
        what = f"result {reason.result}" if reason else "no result code"
        detail = (reason.message if reason else "") or event.description
        side = "peer" if event.by_peer else "local"
        super().__init__(f"session {event.session_id} closed ({side}, {what}): {detail}")
        self.event = event


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """How a listener answers an incoming call: the call parameters of our reply
    (None: the tunnel's defaults) and the options of the local end; ``circuit``
    is the Remote End ID of the local pseudowire it is bound to, if any."""

    params: CallParams | None = None
    options: SessionOptions = field(default_factory=SessionOptions)
    circuit: str | None = None


class _Subscription:
    """An unbounded queue fed by the context or a tunnel; iterate it with ``async for``."""

    def __init__(self, owner: list[_Subscription]) -> None:
        self.queue: asyncio.Queue[ControlEvent | None] = asyncio.Queue()
        self._owner = owner
        owner.append(self)

    def __aiter__(self) -> AsyncIterator[ControlEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ControlEvent]:
        try:
            while (event := await self.queue.get()) is not None:
                yield event
        finally:
            self.close()

    def close(self) -> None:
        if self in self._owner:
            self._owner.remove(self)


class SessionHandle:
    """One call in a tunnel; await :meth:`wait_established` / :meth:`wait_closed`."""

    __slots__ = (
        "_closed_fut",
        "_est_fut",
        "backend_session",
        "circuit",
        "closed",
        "info",
        "kernel",
        "options",
        "params",
        "peer_session_id",
        "session_id",
        "stopping",
        "tunnel",
    )

    def __init__(
        self,
        tunnel: TunnelHandle,
        session_id: int,
        options: SessionOptions,
        params: CallParams | None = None,
        circuit: str | None = None,
    ) -> None:
        self.tunnel = tunnel
        self.session_id = session_id
        self.peer_session_id = 0
        self.options = options
        self.params = params if params is not None else tunnel.tunnel.config.call_params
        """Our side of the call: what we asked for or answered with."""
        self.circuit = circuit
        """The Remote End ID of the local pseudowire a listener bound this call to."""
        self.info: SessionInfo | None = None
        """Set when established (with the data plane and backend up)."""
        self.closed: SessionClosed | None = None
        self.kernel = False
        """A kernel session exists for it."""
        self.backend_session: BackendSession | None = None
        self.stopping = False
        self._est_fut: asyncio.Future[SessionInfo] | None = None
        self._closed_fut: asyncio.Future[SessionClosed] | None = None

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
            self._est_fut = self.tunnel.ctx.loop.create_future()
        return await asyncio.shield(self._est_fut)

    async def wait_closed(self) -> SessionClosed:
        if self.closed is not None:
            return self.closed
        if self._closed_fut is None:
            self._closed_fut = self.tunnel.ctx.loop.create_future()
        return await asyncio.shield(self._closed_fut)

    def set_circuit(self, active: bool) -> None:
        """L2TPv3: tell the peer our circuit went up or down (SLI with Circuit Status,
        RFC 3931 5.4.5); while it is down the peer stops sending on this session."""
        t = self.tunnel
        t.tunnel.send_circuit_status(self.session_id, t.ctx.loop.time(), active=active)
        t.ctx.kick(t)

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

    def _set_closed(self, event: SessionClosed) -> None:
        self.closed = event
        if self._est_fut is not None and not self._est_fut.done():
            self._est_fut.set_exception(SessionFailed(event))
            self._est_fut.exception()  # mark retrieved: the awaiter gets it via shield
        if self._closed_fut is not None and not self._closed_fut.done():
            self._closed_fut.set_result(event)


class TunnelHandle:
    """One control connection in an :class:`~l2tp.runtime.control.L2tpContext`."""

    def __init__(
        self,
        ctx: L2tpContext,
        endpoint: _Endpoint,
        tunnel: Tunnel,
        *,
        peer: Address,
        sock: socket.socket,
        role: Role,
    ) -> None:
        self.ctx = ctx
        self.endpoint = endpoint
        self.tunnel = tunnel
        self.peer = peer
        self.sock = sock
        """Where this tunnel's datagrams go out (the listen socket until a per-tunnel one)."""
        self.own_sock: socket.socket | None = None
        self.role = role
        self.sessions: dict[int, SessionHandle] = {}
        self.kernel: KernelTunnelConfig | None = None
        self.established_event: TunnelEstablished | None = None
        self.closed: TunnelClosed | None = None
        self.released = False
        self.subscribers: list[_Subscription] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._est_fut: asyncio.Future[TunnelEstablished] | None = None
        self._closed_fut: asyncio.Future[TunnelClosed] | None = None
        self._quiet_fut: asyncio.Future[None] | None = None
        self._reader: Any = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<TunnelHandle {self.tunnel_id} peer={self.peer} {self.state.value}>"

    # ------------------------------------------------------------------ API

    @property
    def tunnel_id(self) -> int:
        return self.tunnel.tunnel_id

    @property
    def peer_tunnel_id(self) -> int:
        return self.tunnel.peer_tunnel_id

    @property
    def state(self) -> TunnelState:
        return self.tunnel.state

    @property
    def local(self) -> Address:
        name: Address = self.sock.getsockname()[:2]
        return name

    async def wait_established(self) -> TunnelEstablished:
        """Return once the tunnel is up; raise :class:`TunnelFailed` if it closed first."""
        if self.established_event is not None and self.closed is None:
            return self.established_event
        if self.closed is not None:
            raise TunnelFailed(self.closed)
        if self._est_fut is None:
            self._est_fut = self.ctx.loop.create_future()
        return await asyncio.shield(self._est_fut)

    async def wait_closed(self) -> TunnelClosed:
        if self.closed is not None:
            return self.closed
        if self._closed_fut is None:
            self._closed_fut = self.ctx.loop.create_future()
        return await asyncio.shield(self._closed_fut)

    def events(self) -> _Subscription:
        """Subscribe to this tunnel's events from now on: ``async for event in t.events()``."""
        return _Subscription(self.subscribers)

    def place_call(
        self, params: CallParams | None = None, *, options: SessionOptions | None = None
    ) -> SessionHandle:
        """Place a call without waiting; returns its handle.

        L2TPv2: ICRQ from a LAC, OCRQ from an LNS. L2TPv3: ICRQ from either LCCE,
        with ``params`` giving the Pseudowire Type, Remote End ID, cookie length,
        sublayer and sequencing (RFC 3931 5.4.4); ``options`` the local interface.
        """
        now = self.ctx.loop.time()
        sid = self.tunnel.open_session(now, params)
        handle = SessionHandle(self, sid, options or self.endpoint.ppp_options, params)
        self.sessions[sid] = handle
        self.endpoint.session_added(handle)
        self.ctx.kick(self)
        return handle

    async def open_session(
        self,
        params: CallParams | None = None,
        *,
        options: SessionOptions | None = None,
        wait: bool = True,
    ) -> SessionHandle:
        """Place a call; with ``wait`` return once established (raise :class:`SessionFailed`)."""
        handle = self.place_call(params, options=options)
        if wait:
            await handle.wait_established()
        return handle

    def close_session(
        self,
        session_id: int,
        *,
        result: int = CdnResult.ADMINISTRATIVE,
        error: int | None = None,
        message: str = "",
    ) -> None:
        """Send a CDN for ``session_id`` (no-op if the session is already gone)."""
        if session_id not in self.tunnel.sessions:
            return
        now = self.ctx.loop.time()
        self.tunnel.close_session(session_id, now, result=result, error=error, message=message)
        self.ctx.kick(self)

    def begin_close(
        self,
        result: int = StopCcnResult.GENERAL_REQUEST,
        *,
        error: int | None = None,
        message: str = "",
    ) -> None:
        """Send a StopCCN (RFC 2661 5.7) without waiting."""
        if self.state in (TunnelState.CLOSING, TunnelState.CLOSED):
            return
        self.tunnel.close(self.ctx.loop.time(), result=result, error=error, message=message)
        self.ctx.kick(self)

    async def close(
        self,
        result: int = StopCcnResult.GENERAL_REQUEST,
        *,
        error: int | None = None,
        message: str = "",
        ack_timeout: float = 2.0,
    ) -> TunnelClosed:
        """StopCCN, then wait up to ``ack_timeout`` for the peer to acknowledge it."""
        self.begin_close(result, error=error, message=message)
        closed = await self.wait_closed()
        await self.wait_stop_acked(ack_timeout)
        return closed

    async def wait_stop_acked(self, timeout: float) -> bool:
        """True once nothing we sent is unacknowledged (the StopCCN reached the peer)."""
        if self._quiet():
            return True
        if self._quiet_fut is None:
            self._quiet_fut = self.ctx.loop.create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._quiet_fut), timeout)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------ the driver

    def service(self, now: float | None = None) -> None:
        """Handle events, send what is due, re-arm the timer. Never raises."""
        loop = self.ctx.loop
        tunnel = self.tunnel
        try:
            for _ in range(64):
                had = False
                while (event := tunnel.next_event()) is not None:
                    had = True
                    self._on_event(event)
                datagrams = tunnel.datagrams_to_send(loop.time() if now is None else now)
                if datagrams:
                    self._transmit(datagrams)
                if not had and not tunnel._events:
                    break
                now = None
        except Exception:
            log.exception("tunnel %d: event handling failed", self.tunnel_id)
        self._arm(tunnel.get_timer())
        if self._quiet_fut is not None and not self._quiet_fut.done() and self._quiet():
            self._quiet_fut.set_result(None)

    def _quiet(self) -> bool:
        if self.state is TunnelState.CLOSED:
            return True
        return self.state is TunnelState.CLOSING and self.tunnel.transport.in_flight == 0

    def _transmit(self, datagrams: list[bytes]) -> None:
        sendto = self.sock.sendto
        peer = self.peer
        counters = self.ctx.counters
        for datagram in datagrams:
            try:
                sendto(datagram, peer)
            except (BlockingIOError, InterruptedError):
                counters.send_dropped += 1
            except OSError as exc:
                counters.send_errors += 1
                log.debug("tunnel %d: datagram to %r not sent: %s", self.tunnel_id, peer, exc)
            else:
                counters.datagrams_out += 1

    def _arm(self, deadline: float | None) -> None:
        if deadline == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.ctx.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        deadline = self._timer_at if self._timer_at is not None else 0.0
        self._timer = None
        self._timer_at = None
        now = max(deadline, self.ctx.loop.time())
        self.tunnel.handle_timer(now)
        self.service(now)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    # ------------------------------------------------------------- events

    def _on_event(self, event: ControlEvent) -> None:
        if isinstance(event, SessionEstablished):
            self._session_established(event)
        elif isinstance(event, SessionClosed):
            self._session_closed(event)
        elif isinstance(event, CallRequested):
            self._call_requested(event)
        elif isinstance(event, TunnelEstablished):
            self._tunnel_established(event)
        elif isinstance(event, TunnelClosed):
            self._tunnel_closed(event)
        elif isinstance(event, TunnelReleased):
            self.released = True
            self.ctx.need_reap(self.endpoint)
        elif isinstance(event, CircuitStatusChanged):
            handle = self.sessions.get(event.session_id)
            if handle is not None and handle.info is not None:
                self._follow_circuit(handle, event.active)
        self.ctx.publish(self, event)

    def _tunnel_established(self, event: TunnelEstablished) -> None:
        self.established_event = event
        try:
            self.endpoint.tunnel_up(self)
            sock = self.sock
            self.kernel = KernelTunnelConfig(
                tunnel_id=self.tunnel_id,
                peer_tunnel_id=self.peer_tunnel_id,
                version=self.tunnel.config.version,
                encap=self.endpoint.encap,
                fd=sock.fileno(),
            )
            self.ctx.dataplane.create_tunnel(self.kernel)
        except (KernelError, OSError, ValueError) as exc:
            self.kernel = None
            log.error("tunnel %d: data plane: %s", self.tunnel_id, exc)
            self.tunnel.close(
                self.ctx.loop.time(), result=StopCcnResult.GENERAL_ERROR, message=LOCAL_FAILURE
            )
            return
        if self._est_fut is not None and not self._est_fut.done():
            self._est_fut.set_result(event)

    def _tunnel_closed(self, event: TunnelClosed) -> None:
        self.closed = event
        if self.kernel is not None:
            kernel, self.kernel = self.kernel, None
            if self.ctx.backend is None or not any(s.kernel for s in self.sessions.values()):
                self._delete_kernel_tunnel(kernel.tunnel_id)
            else:
                # Let the backends stop before the kernel objects go (backend.py, step 5).
                self._spawn(self._delete_after_backends(kernel.tunnel_id))
        if self._est_fut is not None and not self._est_fut.done():
            self._est_fut.set_exception(TunnelFailed(event))
            self._est_fut.exception()
        if self._closed_fut is not None and not self._closed_fut.done():
            self._closed_fut.set_result(event)
        self.endpoint.tunnel_down(self)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.ctx.spawn(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _delete_after_backends(self, tunnel_id: int) -> None:
        pending = [t for t in self._tasks if t is not asyncio.current_task()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._delete_kernel_tunnel(tunnel_id)

    def _delete_kernel_tunnel(self, tunnel_id: int) -> None:
        for handle in self.sessions.values():
            handle.kernel = False
        try:
            self.ctx.dataplane.delete_tunnel(tunnel_id)
        except (KernelError, OSError) as exc:
            log.warning("tunnel %d: deleting kernel tunnel: %s", tunnel_id, exc)

    def _call_requested(self, event: CallRequested) -> None:
        sid = event.info.session_id
        if sid not in self.tunnel.sessions or self.state is not TunnelState.ESTABLISHED:
            # Events are handled after the whole read batch: a StopCCN or CDN in the
            # same batch as the ICRQ may already have ended the call (or the tunnel).
            return
        answer = self.endpoint.admit_call(self, event.info)
        now = self.ctx.loop.time()
        if isinstance(answer, Admission):
            handle = SessionHandle(self, sid, answer.options, answer.params, answer.circuit)
            self.sessions[sid] = handle
            self.endpoint.session_added(handle)
            self.tunnel.accept_call(sid, now, answer.params)
        else:
            log.info(
                "tunnel %d: call %d refused: %s", self.tunnel_id, sid, answer.message or "refused"
            )
            self.tunnel.close_session(
                sid, now, result=answer.result, error=answer.error, message=answer.message
            )

    def _session_established(self, event: SessionEstablished) -> None:
        info = event.info
        handle = self.sessions.get(info.session_id)
        if handle is None:
            handle = SessionHandle(self, info.session_id, self.endpoint.ppp_options)
            self.sessions[info.session_id] = handle
            self.endpoint.session_added(handle)
        handle.peer_session_id = info.peer_session_id
        pw_type: int = PseudowireType.PPP
        if self.kernel is not None:
            try:
                config = self._kernel_session(info, handle)
                pw_type = config.pw_type
                self.ctx.dataplane.create_session(config)
                handle.kernel = True
                if pw_type == PseudowireType.ETH and handle.options.bridge:
                    self.ctx.dataplane.attach_to_bridge(
                        self.tunnel_id, info.session_id, handle.options.bridge
                    )
            except (KernelError, OSError, ValueError) as exc:
                log.error("session %d/%d: data plane: %s", self.tunnel_id, info.session_id, exc)
                self.tunnel.close_session(
                    info.session_id,
                    self.ctx.loop.time(),
                    result=CdnResult.GENERAL_ERROR,
                    message=LOCAL_FAILURE,
                )
                return
        backend = self.ctx.backend
        if backend is None or self.kernel is None or pw_type != PseudowireType.PPP:
            # An Ethernet pseudowire is complete once its l2tpeth interface exists.
            handle._set_established(info)
            if info.circuit_active is False:
                self._follow_circuit(handle, False)
            return
        session = BackendSession(
            info=info,
            role=self.role,
            kernel_tunnel=self.kernel,
            tunnel_fd=self.sock.fileno(),
            dataplane=self.ctx.dataplane,
            lns_mode=self.role is Role.LNS,
            local=self.local,
            peer=self.peer,
            options=handle.options,
            report_down=lambda r, e, m: self._backend_down(handle, r, e, m),
        )
        handle.backend_session = session
        self._spawn(self._start_backend(handle, session, info))

    def _follow_circuit(self, handle: SessionHandle, active: bool) -> None:
        """RFC 3931 5.4.5: while the peer's circuit is inactive, data "MUST cease" towards
        it; for an Ethernet pseudowire we take its interface down, and up again after."""
        log.info(
            "session %d/%d: peer circuit %s",
            self.tunnel_id,
            handle.session_id,
            "active" if active else "inactive",
        )
        info = handle.info
        if not handle.kernel or self.kernel is None or info is None:
            return
        if self.tunnel.config.version != 3 or info.pseudowire_type != PseudowireType.ETH:
            return
        try:
            self.ctx.dataplane.set_session_up(self.tunnel_id, handle.session_id, active)
        except (KernelError, OSError, ValueError) as exc:
            log.warning(
                "session %d/%d: interface up/down: %s", self.tunnel_id, handle.session_id, exc
            )

    def _kernel_session(self, info: SessionInfo, handle: SessionHandle) -> KernelSessionConfig:
        """The kernel session for an established call.

        L2TPv2: a PPP session (LNS mode on the LNS), sequencing when either side
        wants it (RFC 2661 5.4). L2TPv3 (RFC 3931 5.4.4): the negotiated Pseudowire
        Type; we send the peer's Assigned Cookie and require ours; the Default
        L2-Specific Sublayer (4.6) when either side asked for it, since Linux keeps
        one per session; we sequence what we send when the peer's Data Sequencing
        AVP asks for it and require sequencing when ours did.
        """
        options = handle.options
        if self.tunnel.config.version == 2:
            seq = info.sequencing_required or self.endpoint.seqnum
            return KernelSessionConfig(
                tunnel_id=self.tunnel_id,
                session_id=info.session_id,
                peer_session_id=info.peer_session_id,
                pw_type=PseudowireType.PPP,
                send_seq=seq,
                recv_seq=seq,
                lns_mode=self.role is Role.LNS,
            )
        params = handle.params
        pw_type = (
            info.pseudowire_type if info.pseudowire_type is not None else params.pseudowire_type
        )
        sublayer = bool(info.l2_specific_sublayer) or bool(params.l2_specific_sublayer)
        return KernelSessionConfig(
            tunnel_id=self.tunnel_id,
            session_id=info.session_id,
            peer_session_id=info.peer_session_id,
            pw_type=PseudowireType(pw_type),
            cookie=info.peer_cookie,
            peer_cookie=info.cookie,
            l2spec_type=L2SpecType.DEFAULT if sublayer else L2SpecType.NONE,
            send_seq=bool(info.data_sequencing),
            recv_seq=bool(params.data_sequencing),
            reorder_timeout_ms=round(options.reorder_timeout * 1000),
            ifname=options.interface_name if pw_type == PseudowireType.ETH else None,
            mtu=options.mtu if pw_type == PseudowireType.ETH else None,
        )

    async def _start_backend(
        self, handle: SessionHandle, session: BackendSession, info: SessionInfo
    ) -> None:
        backend = self.ctx.backend
        assert backend is not None
        try:
            await backend.start(session)
        except Exception as exc:  # a backend refusing the session: CDN 2 (backend.py step 3)
            log.error("session %d/%d: backend: %s", self.tunnel_id, info.session_id, exc)
            handle.backend_session = None
            self.close_session(
                info.session_id, result=CdnResult.GENERAL_ERROR, message=LOCAL_FAILURE
            )
            return
        if handle.closed is not None:
            # Closed while starting: the close path could not stop what was not started.
            handle.backend_session = session
            await self._stop_backend(handle)
            return
        handle._set_established(info)

    def _backend_down(
        self, handle: SessionHandle, result: int, error: int | None, message: str
    ) -> None:
        if handle.closed is None and not handle.stopping:
            log.info(
                "session %d/%d: payload ended (%d %s)",
                self.tunnel_id,
                handle.session_id,
                result,
                message,
            )
            self.close_session(handle.session_id, result=result, error=error, message=message)

    def _session_closed(self, event: SessionClosed) -> None:
        handle = self.sessions.pop(event.session_id, None)
        if handle is None:
            return
        if handle.backend_session is not None and self.ctx.backend is not None:
            handle.stopping = True
            self._spawn(self._stop_backend(handle))
        elif handle.kernel:
            self._delete_kernel_session(handle)
        handle._set_closed(event)
        self.endpoint.session_gone(self, handle)

    async def _stop_backend(self, handle: SessionHandle) -> None:
        backend = self.ctx.backend
        session = handle.backend_session
        handle.backend_session = None
        if backend is not None and session is not None:
            try:
                await backend.stop(session)
            except Exception:
                log.exception("session %d/%d: backend stop failed", self.tunnel_id, session.key[1])
        if handle.kernel:
            self._delete_kernel_session(handle)

    def _delete_kernel_session(self, handle: SessionHandle) -> None:
        handle.kernel = False
        if self.kernel is None:
            return
        try:
            self.ctx.dataplane.delete_session(self.tunnel_id, handle.session_id)
        except SessionNotFound:
            # Expected for PPP: Linux deletes the session when pppd's PPPoL2TP socket closes.
            log.debug("session %d/%d: already gone", self.tunnel_id, handle.session_id)
        except (KernelError, OSError) as exc:
            log.warning("session %d/%d: deleting: %s", self.tunnel_id, handle.session_id, exc)
