"""Per-tunnel runtime object of :class:`~l2tp.runtime.context.L2tpContext`: :class:`TunnelHandle`.

A :class:`TunnelHandle` drives one sans-IO :class:`~l2tp.protocol.tunnel.Tunnel`:
it owns the tunnel's single loop timer (armed from ``tunnel.get_timer()``),
sends what the tunnel produces on the tunnel's socket, hands the tunnel's events
to :class:`~l2tp.runtime.kernel_side.KernelSideEffects` (kernel objects and
backends) and resolves the futures the application awaits.

Loud failures: an unexpected exception while handling this tunnel's datagram,
timer or event is a bug. It is counted (``ContextCounters.internal_errors``) and
logged once with its traceback (the record carries ``l2tp_internal_error``), every
pending future of the tunnel and its sessions fails with it, and the tunnel is
closed with StopCCN 2 and the generic message; other tunnels carry on. If closing
fails as well, the tunnel is abandoned: kernel objects removed, forgotten.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from typing import Any

from l2tp.addresses import address_text
from l2tp.protocol.constants import CdnResult, StopCcnResult
from l2tp.protocol.events import (
    CallParams,
    CallRequested,
    CircuitStatusChanged,
    ControlEvent,
    DataPlaneWanted,
    Role,
    SessionClosed,
    SessionEstablished,
    SessionInfo,
    TunnelClosed,
    TunnelEstablished,
    TunnelReleased,
)
from l2tp.protocol.header import ControlHeader
from l2tp.protocol.tunnel import Tunnel
from l2tp.protocol.tunnel_fsm import TunnelState

from .backend import Address, SessionOptions
from .driver import INTERNAL_ERROR, Driver, EndpointHooks
from .errors import LOCAL_FAILURE, SessionFailed, TunnelFailed
from .kernel_side import KernelSideEffects
from .session_handle import Admission, SessionHandle
from .subscription import Subscription

__all__ = ["Admission", "SessionFailed", "SessionHandle", "TunnelFailed", "TunnelHandle"]

log = logging.getLogger(__name__)


class TunnelHandle(KernelSideEffects):
    """One control connection in an :class:`~l2tp.runtime.control.L2tpContext`."""

    def __init__(
        self,
        ctx: Driver,
        endpoint: EndpointHooks,
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
        tunnel.log_context["peer"] = address_text(peer)
        self.sock = sock
        """Where this tunnel's datagrams go out (the listen socket until a per-tunnel one)."""
        self.own_sock: socket.socket | None = None
        self.role = role
        self.sessions: dict[int, SessionHandle] = {}
        self.kernel = None
        self.ready = False
        self._kernel_up = None
        self._teardown = None
        self.established_event: TunnelEstablished | None = None
        self.created_at = ctx.loop.time()
        """Loop time the handle was made (SCCRQ sent or received): for set-up times."""
        self.established_at: float | None = None
        """Loop time of :class:`TunnelEstablished` (uptime for ``l2tp ctl``)."""
        self.closed: TunnelClosed | None = None
        self.released = False
        self.subscribers: list[Subscription] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._est_fut: asyncio.Future[TunnelEstablished] | None = None
        self._closed_fut: asyncio.Future[TunnelClosed] | None = None
        self._quiet_fut: asyncio.Future[None] | None = None
        self._reader: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._bringups: list[tuple[SessionHandle, SessionInfo]] = []
        self._bringup_worker: asyncio.Task[None] | None = None
        self._closing: set[SessionHandle] = set()
        self._closed_now: list[tuple[SessionHandle, SessionClosed]] = []
        self._failing = False

    def __repr__(self) -> str:
        return f"<TunnelHandle {self.tunnel_id} peer={self.peer} {self.state.value}>"

    # ------------------------------------------------------------------ API

    @property
    def state(self) -> TunnelState:
        return self.tunnel.state

    async def wait_established(self) -> TunnelEstablished:
        """Return once the tunnel is up with its kernel tunnel; raise :class:`TunnelFailed`
        if it closed first."""
        if self.ready and self.established_event is not None and self.closed is None:
            return self.established_event
        if self.closed is not None:
            raise TunnelFailed(self.closed)
        if self._est_fut is None:
            self._est_fut = self.ctx.loop.create_future()
        return await asyncio.shield(self._est_fut)

    async def wait_closed(self) -> TunnelClosed:
        """Return once closed and its sessions' backends and its kernel objects are gone."""
        if self.closed is not None and (self._teardown is None or self._teardown.done()):
            return self.closed
        if self._closed_fut is None:
            self._closed_fut = self.ctx.loop.create_future()
        return await asyncio.shield(self._closed_fut)

    def events(self) -> Subscription:
        """Subscribe to this tunnel's events from now on: ``async for event in t.events()``."""
        return Subscription(self.subscribers)

    def place_call(
        self, params: CallParams | None = None, *, options: SessionOptions | None = None
    ) -> SessionHandle:
        """Place a call without waiting; returns its handle.

        L2TPv2: ICRQ from a LAC, OCRQ from an LNS. L2TPv3: ICRQ from either LCCE,
        with ``params`` giving the Pseudowire Type, Remote End ID, cookie length,
        sublayer and sequencing (RFC 3931 5.4.4); ``options`` the local interface.
        """
        now = self.ctx.loop.time()
        options = options or self.endpoint.ppp_options
        params = self._call_params(params, options)
        sid = self.tunnel.open_session(now, params)
        handle = self.new_session(sid, options, params)
        self.ctx.kick(self)
        return handle

    def _call_params(self, params: CallParams | None, options: SessionOptions) -> CallParams | None:
        """A built-in PPP call holds its ICCN (a call we place) or ICRP (one we answer)
        until its kernel session and PPP channel exist (``wait_data_plane``;
        :meth:`_data_plane_wanted` says why). pppd calls do not: the other end's first
        frame would still find no pppd on a channel, and holding the message for pppd's
        start would slow every call (docs/builtin-ppp.md)."""
        if options.builtin_ppp is None or self.ctx.backend is None:
            return params
        base = params if params is not None else self.tunnel.config.call_params
        return dataclasses.replace(base, wait_data_plane=True)

    def new_session(
        self,
        session_id: int,
        options: SessionOptions,
        params: CallParams | None = None,
        circuit: str | None = None,
    ) -> SessionHandle:
        """Register the handle of a call the sans-IO tunnel holds as ``session_id``."""
        if params is None:
            params = self.tunnel.config.call_params
        handle = SessionHandle(self, session_id, options, params, circuit)
        handle.created_at = self.ctx.loop.time()
        self.sessions[session_id] = handle
        self.endpoint.session_added(handle)
        return handle

    def create_future(self) -> asyncio.Future[Any]:
        return self.ctx.loop.create_future()

    def send_circuit_status(self, session_id: int, active: bool) -> None:
        self.tunnel.send_circuit_status(session_id, self.ctx.loop.time(), active=active)
        self.ctx.kick(self)

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
            try:
                await handle.wait_established()
            except asyncio.CancelledError:
                # Cancelled: the call we started must not linger (CDN, kernel cleanup).
                self.close_session(handle.session_id, message="call abandoned")
                raise
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

    def data_plane_ready(self, session_id: int) -> None:
        """Send the held ICCN of a call whose data plane is now up (no-op once closed)."""
        if session_id in self.tunnel.sessions and self.closed is None:
            self.tunnel.data_plane_ready(session_id, self.ctx.loop.time())
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
        """StopCCN, then wait up to ``ack_timeout`` for the peer to acknowledge it.

        Cancelling the wait does not undo the close: the StopCCN is already queued
        and the tunnel's close-wait and clean-up run on their own.
        """
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

    def receive(self, data: bytes, now: float, header: ControlHeader | None = None) -> None:
        """Feed one datagram of this tunnel (the endpoint routed it here, by ``header``,
        which is handed down rather than parsed again); never raises."""
        try:
            self.tunnel.receive_datagram(data, now, header=header)
        except Exception as exc:
            self.fail(exc, "receiving a datagram")
            return
        self.ctx.mark(self)

    def service(self, now: float | None = None) -> None:
        """Handle events, send what is due, re-arm the timer. Never raises (see :meth:`fail`)."""
        if self.released:
            return
        loop = self.ctx.loop
        tunnel = self.tunnel
        try:
            for _ in range(64):
                had = False
                while (event := tunnel.next_event()) is not None:
                    had = True
                    self._on_event(event)
                if self._closed_now:
                    self.release_closed()
                datagrams = tunnel.datagrams_to_send(loop.time() if now is None else now)
                if datagrams:
                    self._transmit(datagrams)
                if not had and not tunnel.has_events:
                    break
                now = None
            self._arm(tunnel.get_timer())
        except Exception as exc:
            self.fail(exc, "handling its events")
            return
        if self._quiet_fut is not None and not self._quiet_fut.done() and self._quiet():
            self._quiet_fut.set_result(None)

    def fail(self, exc: BaseException, where: str) -> None:
        """An unexpected exception while handling this tunnel: a bug (see the module doc)."""
        ctx = self.ctx
        if self._failing:
            # A second fault while closing after the first: give up on the tunnel.
            log.debug(
                "tunnel %d: %s while closing after an internal error",
                self.tunnel_id,
                exc,
                extra=self.log_extra(),
            )
            self.abandon()
            return
        ctx.counters.internal_errors += 1
        log.error(
            "tunnel %d: internal error while %s; closing the tunnel",
            self.tunnel_id,
            where,
            exc_info=exc,
            extra={INTERNAL_ERROR: True, **self.log_extra()},
        )
        for fut in (self._est_fut, self._closed_fut, self._quiet_fut):
            if fut is not None and not fut.done():
                fut.set_exception(exc)
                fut.exception()
        for handle in self.sessions.values():
            handle._fail(exc)
        self._failing = True
        if self.state not in (TunnelState.CLOSING, TunnelState.CLOSED):
            try:
                now = ctx.loop.time()
                self.tunnel.close(now, result=StopCcnResult.GENERAL_ERROR, message=LOCAL_FAILURE)
                # The StopCCN leaves now, before the events are handled again (which
                # may well hit the same fault and abandon the tunnel).
                self._transmit(self.tunnel.datagrams_to_send(now))
            except Exception:
                log.debug(
                    "tunnel %d: close after an internal error failed",
                    self.tunnel_id,
                    extra=self.log_extra(),
                )
            else:
                self.service()
                return
        self.abandon()

    def abandon(self) -> None:
        """Drop the tunnel without further protocol work: its state cannot be trusted."""
        if self.released:
            return
        self.released = True
        self.cancel_timer()
        if self._closed_now:
            self.release_closed()
        kernel, self.kernel = self.kernel, None
        self.ready = False
        if kernel is not None:
            self._spawn(self._delete_kernel_tunnel(kernel.tunnel_id))
        self.ctx.forget(self)

    def _quiet(self) -> bool:
        if self.state is TunnelState.CLOSED:
            return True
        return self.state is TunnelState.CLOSING and self.tunnel.unacknowledged == 0

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
                log.debug(
                    "tunnel %d: datagram not sent: %s", self.tunnel_id, exc, extra=self.log_extra()
                )
            else:
                counters.datagrams_out += 1

    def _arm(self, deadline: float | None) -> None:
        """Have :meth:`_on_timer` run at ``deadline``, or earlier.

        A timer already armed for no later than ``deadline`` is kept: when it fires
        early, the tunnel has nothing due and the timer is armed again for the real
        deadline. Most services move the deadline later (an acknowledgement sent, so
        the next is a retransmission's), and re-arming for each was a ``call_at`` and a
        cancelled handle left in the loop's heap per service; now it is one early,
        empty wake-up per deadline that moved.
        """
        armed = self._timer_at
        timer = self._timer
        if timer is not None and armed is not None and deadline is not None and armed <= deadline:
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
        try:
            self.tunnel.handle_timer(now)
        except Exception as exc:
            self.fail(exc, "handling its timer")
            return
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
        elif isinstance(event, DataPlaneWanted):
            self._data_plane_wanted(event)
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

    def _call_requested(self, event: CallRequested) -> None:
        sid = event.info.session_id
        if sid not in self.tunnel.sessions or self.state is not TunnelState.ESTABLISHED:
            # Events are handled after the whole read batch: a StopCCN or CDN in the
            # same batch as the ICRQ may already have ended the call (or the tunnel).
            return
        answer = self.endpoint.admit_call(self, event.info)
        now = self.ctx.loop.time()
        if isinstance(answer, Admission):
            params = self._call_params(answer.params, answer.options)
            self.new_session(sid, answer.options, params, answer.circuit)
            self.tunnel.accept_call(sid, now, params)
        else:
            log.info(
                "tunnel %d: call %d refused: %s",
                self.tunnel_id,
                sid,
                answer.message or "refused",
                extra=self.log_extra(sid),
            )
            self.tunnel.close_session(
                sid, now, result=answer.result, error=answer.error, message=answer.message
            )
