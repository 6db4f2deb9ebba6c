"""The kernel and backend side effects of a tunnel's events (a mixin of
:class:`~l2tp.runtime.handles.TunnelHandle`).

Kernel objects follow the control plane (RFC 2661 has no data-plane messages):
tunnel established -> managed kernel tunnel on the tunnel's socket; session
established -> kernel session (PPP, LNS mode on the LNS; or the negotiated L2TPv3
pseudowire), then the :class:`~l2tp.runtime.backend.SessionBackend` (a call we place
with built-in PPP does both before its ICCN leaves, a call we answer with it creates
the kernel session and attaches the PPP channel before its ICRP leaves and starts its
PPP at the ICCN: ``DataPlaneWanted``); session
closed -> backend stopped, kernel session deleted; tunnel closed -> every session
as above, kernel tunnel deleted. Kernel failures close the session (CDN 2) or the
tunnel (StopCCN 2) with the generic :data:`~l2tp.runtime.errors.LOCAL_FAILURE`
message; the details are logged, never sent.

All kernel work goes through the context's
:class:`~l2tp.kernel.async_dataplane.AsyncDataPlane` in tasks, never on the
datagram path: the control plane keeps answering while requests are in flight
(pipelined on one netlink socket per namespace). Order within one tunnel is kept
by awaiting, not by luck:

- the tunnel's creation task (:attr:`KernelSideEffects._kernel_up`) comes first;
  every session's bring-up awaits it;
- a session's bring-up (create, bridge port, backend start) is one task
  (``SessionHandle.bringup``); its tear-down awaits it, then stops the backend,
  then deletes the kernel session;
- the tunnel's tear-down awaits its creation and every session's tear-down, then
  deletes the kernel tunnel (which removes any session still in it).

Hang-up (issue 16): a backend being stopped gets :data:`HANGUP_AFTER` seconds to
end its PPP with the peer (pppd's LCP Terminate-Request and -Ack); after that the
kernel session (for a closing tunnel: the whole kernel tunnel, one request) is
deleted under it, which frees the kernel objects early. It does not end pppd on
Linux 4.16 and later, whose ``pppol2tp_session_close`` only detaches the PPPoL2TP
socket and leaves pppd's PPP channel registered (verified in the test VM: an idle
pppd outlived ``ip l2tp del tunnel`` by 30 s); pppd ends on the peer's
Terminate-Ack or its own 1 s restart timer. That is why a daemon shutting down
stops every backend before its StopCCN (:meth:`KernelSideEffects.stop_backends`,
called by ``L2tpContext.close``), while the peer can still acknowledge. Every
session of a tunnel is stopped at the same time, so a daemon with N PPP sessions
stops in about the same time as with one (figures: docs/networkmanager.md).

``SessionHandle.wait_closed`` and ``TunnelHandle.wait_closed`` return once that
tear-down is done, so "closed" means the kernel objects are gone too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import Coroutine
from typing import Any

from l2tp.kernel.constants import L2SpecType, PseudowireType
from l2tp.kernel.errors import KernelError, SessionNotFound, TunnelNotFound
from l2tp.kernel.model import KernelSessionSpec, KernelTunnelSpec
from l2tp.protocol.constants import CdnResult, StopCcnResult
from l2tp.protocol.events import (
    CallKind,
    DataPlaneWanted,
    Role,
    SessionClosed,
    SessionEstablished,
    SessionInfo,
    TunnelClosed,
    TunnelEstablished,
)
from l2tp.protocol.tunnel import Tunnel

from .backend import Address, BackendSession, SessionBackend, reports_interface
from .driver import Driver, EndpointHooks
from .errors import LOCAL_FAILURE, TunnelFailed
from .session_handle import SessionHandle

log = logging.getLogger("l2tp.runtime.handles")

HANGUP_AFTER = 0.2
"""Seconds between asking a backend to stop and deleting its kernel session under it
(see the module doc). Long enough for a live peer on a LAN to answer pppd's LCP
Terminate-Request; a peer that is already gone costs no more than this. The
context's ``hangup_after`` overrides it."""


class KernelSideEffects:
    """Mixin: the data plane and backend work of one tunnel handle (see the module doc)."""

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
    """Established, and its kernel tunnel exists (what :meth:`wait_established` waits for)."""
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
    """Sessions closed in the batch of events being handled (:meth:`release_closed`)."""

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

    # ------------------------------------------------------------------ tunnel

    def _tunnel_established(self, event: TunnelEstablished) -> None:
        self.established_event = event
        self.established_at = self.ctx.loop.time()
        try:
            self.endpoint.tunnel_up(self)
            spec = KernelTunnelSpec(
                tunnel_id=self.tunnel_id,
                peer_tunnel_id=self.peer_tunnel_id,
                version=self.tunnel.config.version,
                encap=self.endpoint.encap,
                fd=self.sock.fileno(),
            )
        except (KernelError, OSError, ValueError) as exc:
            log.error("tunnel %d: data plane: %s", self.tunnel_id, exc, extra=self.log_extra())
            self.tunnel.close(
                self.ctx.loop.time(), result=StopCcnResult.GENERAL_ERROR, message=LOCAL_FAILURE
            )
            return
        self.kernel = spec
        self._kernel_up = self._spawn(self._create_kernel_tunnel(spec, event))

    async def _create_kernel_tunnel(self, spec: KernelTunnelSpec, event: TunnelEstablished) -> None:
        try:
            await self.ctx.dataplane.create_tunnel(spec)
        except (KernelError, OSError, ValueError) as exc:
            self.kernel = None
            log.error("tunnel %d: data plane: %s", self.tunnel_id, exc, extra=self.log_extra())
            self.begin_close(StopCcnResult.GENERAL_ERROR, message=LOCAL_FAILURE)
            return
        if self.closed is not None:
            return  # the tear-down, waiting for this task, deletes it
        self.ready = True
        if self._est_fut is not None and not self._est_fut.done():
            self._est_fut.set_result(event)

    async def _kernel_tunnel_ready(self) -> bool:
        """Wait for the kernel tunnel's creation; True if it exists (and is not going)."""
        task = self._kernel_up
        if task is None:
            return False
        if not task.done():
            await asyncio.wait((task,))
        return self.kernel is not None and self.closed is None

    def _tunnel_closed(self, event: TunnelClosed) -> None:
        self.closed = event
        if self._est_fut is not None and not self._est_fut.done():
            self._est_fut.set_exception(TunnelFailed(event))
            self._est_fut.exception()
        self._teardown = self._spawn(self._tear_down_tunnel(event))
        self.endpoint.tunnel_down(self)

    async def _tear_down_tunnel(self, event: TunnelClosed) -> None:
        """Delete the kernel tunnel once every session's tear-down is done; then
        "closed" is complete. Backends being stopped get ``hangup_after`` seconds
        first (pppd's LCP Terminate-Request still has its session to leave by);
        then the kernel tunnel goes, hanging up every PPP channel still in it, and
        the tear-downs finish (see the module doc)."""
        me = asyncio.current_task()
        pending = [t for t in self._tasks if t is not me]
        if pending and self._stopping_backends():
            await asyncio.wait(pending, timeout=self.ctx.hangup_after)
            up = self._kernel_up
            live = self.kernel
            if live is not None and (up is None or up.done()):
                # Hang up every PPP channel of the tunnel at once (see the module doc).
                self.kernel = None
                self.ready = False
                log.debug("tunnel %d: hanging up: deleting the kernel tunnel", self.tunnel_id)
                await self._delete_kernel_tunnel(live.tunnel_id)
                log.debug("tunnel %d: kernel tunnel deleted", self.tunnel_id)
        while pending := [t for t in self._tasks if t is not me]:
            await asyncio.wait(pending)
        kernel, self.kernel = self.kernel, None
        self.ready = False
        if kernel is not None:
            await self._delete_kernel_tunnel(kernel.tunnel_id)
        if self._closed_fut is not None and not self._closed_fut.done():
            self._closed_fut.set_result(event)

    def _stopping_backends(self) -> bool:
        """Whether a session of this tunnel has a backend (pppd ...) to stop."""
        return any(h.stopping or h.backend_session is not None for h in self._closing)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self.ctx.spawn(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _delete_kernel_tunnel(self, tunnel_id: int) -> None:
        for handle in self.sessions.values():
            handle.kernel = False
        try:
            await self.ctx.dataplane.delete_tunnel(tunnel_id)
        except TunnelNotFound:
            # E.g. its socket was closed first, which ends a managed kernel tunnel.
            log.debug("tunnel %d: kernel tunnel already gone", tunnel_id, extra=self.log_extra())
        except (KernelError, OSError) as exc:
            log.warning(
                "tunnel %d: deleting kernel tunnel: %s", tunnel_id, exc, extra=self.log_extra()
            )

    # ----------------------------------------------------------------- sessions

    def _session_established(self, event: SessionEstablished) -> None:
        info = event.info
        handle = self.sessions.get(info.session_id)
        if handle is None:
            handle = self.new_session(info.session_id, self.endpoint.ppp_options)
        handle.peer_session_id = info.peer_session_id
        handle.established_at = self.ctx.loop.time()
        early, handle.kernel_spec = handle.kernel_spec, None
        if handle.params.wait_data_plane and handle.kernel and early is not None:
            # Brought up before our ICCN or ICRP left (:meth:`_data_plane_wanted`).
            if info.kind is CallKind.LNS_INCOMING:
                self._answer_connected(handle, info, early)
            else:
                self._session_up(handle, info)
            return
        self._queue_bring_up(handle, info)

    def _data_plane_wanted(self, event: DataPlaneWanted) -> None:
        """A call with ``CallParams.wait_data_plane`` holds its next message: bring up its
        kernel session and backend now, as for an established call, and send the ICCN (a
        call we placed, after the ICRP) or the ICRP (a call we answer, once accepted)
        when they are ready (:meth:`_data_plane_up`); a failure ends the call with CDN 2
        instead (:meth:`_bring_up_failed`). A call we answer only *prepares* its backend
        here (the built-in PPP's socket and channel, without LCP): its PPP starts at the
        ICCN (:meth:`_answer_connected`), since before that the LAC may not be listening.

        Why (issue 17): each end starts its PPP as soon as the call is established for
        it: an LNS when it has the ICCN, a LAC when it has sent it. With the kernel
        session and the built-in PPP's channel made only after that, the other end's
        first LCP Configure-Request reached our kernel before either existed and was
        lost, and LCP waited for its restart timer (3 s). Made first, the frame waits in
        the channel's queue until the link reads it."""
        info = event.info
        handle = self.sessions.get(info.session_id)
        if handle is None:  # a call placed around the handle API: nothing of ours to make
            self.data_plane_ready(info.session_id)
            return
        handle.peer_session_id = info.peer_session_id
        self._queue_bring_up(handle, info)

    def _queue_bring_up(self, handle: SessionHandle, info: SessionInfo) -> None:
        handle.bringup = self.ctx.loop.create_future()
        self._bringups.append((handle, info))
        if self._bringup_worker is None:
            self._bringup_worker = self._spawn(self._bring_up_sessions())

    def _data_plane_up(self, handle: SessionHandle, info: SessionInfo) -> None:
        """The kernel session (and backend, bridge port) of a call are ready: an
        established call is complete; a call holding its ICCN or ICRP sends it now."""
        if handle.established_at is None:
            self.data_plane_ready(handle.session_id)
        else:
            self._session_up(handle, info)

    def _answer_connected(
        self, handle: SessionHandle, info: SessionInfo, early: KernelSessionSpec
    ) -> None:
        """The ICCN of a call we answered with its kernel session made first: start its
        PPP now (:meth:`_complete_answer`), in a task the tear-down waits for."""
        handle.bringup = self.ctx.loop.create_future()
        self._spawn(self._complete_answer(handle, info, early))

    async def _complete_answer(
        self, handle: SessionHandle, info: SessionInfo, early: KernelSessionSpec
    ) -> None:
        """Bring the early kernel session in line with the ICCN, then start the backend
        prepared before our ICRP (RFC 2661 7.4.2: the call is established; the LAC has
        sent its ICCN, so its PPP is listening). The ICCN may ask for sequencing
        (Sequencing Required, RFC 2661 5.4; L2TPv3 Data Sequencing, RFC 3931 5.4.4),
        which the kernel session takes in place; anything else it cannot take (an
        L2-Specific Sublayer first named in an L2TPv3 ICCN) ends the call with CDN 2."""
        try:
            spec = self._kernel_session(info, handle)
            send, recv = spec.send_seq, spec.recv_seq
            if dataclasses.replace(early, send_seq=send, recv_seq=recv) != spec:
                raise ValueError(f"the ICCN changed the kernel session ({early} -> {spec})")
            if (early.send_seq, early.recv_seq) != (send, recv):
                await self.ctx.dataplane.modify_session(
                    self.tunnel_id, info.session_id, send_seq=send, recv_seq=recv
                )
        except (KernelError, OSError, ValueError) as exc:
            self._bring_up_failed(handle, info, exc)
            return
        try:
            ppp = spec.pw_type == PseudowireType.PPP and self.ctx.backend is not None
            if (not ppp or await self._start_backend(handle, info)) and handle.closed is None:
                self._session_up(handle, info)
        finally:
            _bringup_done(handle)

    async def _bring_up_sessions(self) -> None:
        """The tunnel's one bring-up worker: every call established while it works is
        taken in the next batch, whose kernel sessions are created together (one
        pipelined batch of netlink requests); only a session with more to do (a
        bridge port, a backend to start) gets a task of its own. A Task per session
        was the largest cost of a burst of calls (issue 14)."""
        try:
            ready = await self._kernel_tunnel_ready()
            while self._bringups:
                batch, self._bringups = self._bringups, []
                if not ready or self.closed is not None:
                    for handle, _ in batch:  # the tunnel is going; its tear-down does the rest
                        _bringup_done(handle)
                    continue
                await self._bring_up_batch(batch)
        finally:
            self._bringup_worker = None
            for handle, _ in self._bringups:  # only when cancelled or failing
                _bringup_done(handle)
            self._bringups = []

    async def _bring_up_batch(self, batch: list[tuple[SessionHandle, SessionInfo]]) -> None:
        todo: list[tuple[SessionHandle, SessionInfo, KernelSessionSpec]] = []
        for handle, info in batch:
            if handle.closed is not None:
                _bringup_done(handle)
                continue
            try:
                spec = self._kernel_session(info, handle)
            except ValueError as exc:
                self._bring_up_failed(handle, info, exc)
                continue
            todo.append((handle, info, spec))
        if not todo:
            return
        try:
            outcomes = await self.ctx.dataplane.create_sessions([spec for _, _, spec in todo])
        except (KernelError, OSError, ValueError) as exc:
            # The whole batch refused (e.g. the data plane closed under it): CDN 2 each.
            for handle, info, _ in todo:
                self._bring_up_failed(handle, info, exc)
            return
        except BaseException:
            for handle, _, _ in todo:
                _bringup_done(handle)
            raise
        for (handle, info, spec), error in zip(todo, outcomes, strict=True):
            if error is not None:
                self._bring_up_failed(handle, info, error)
                continue
            handle.kernel = True
            if handle.established_at is None:
                handle.kernel_spec = spec  # made before our ICCN or ICRP left
            if spec.ifname is not None:
                handle.interface = spec.ifname
            if handle.closed is not None:
                _bringup_done(handle)
            elif self._needs_more(handle, spec):
                self._spawn(self._finish_bring_up(handle, info, spec))
            else:
                _bringup_done(handle)
                self._data_plane_up(handle, info)

    def _needs_more(self, handle: SessionHandle, spec: KernelSessionSpec) -> bool:
        """A bridge port to attach or a backend to start (both await the kernel)."""
        if spec.pw_type == PseudowireType.ETH:
            return bool(handle.options.bridge)
        if spec.pw_type == PseudowireType.PPP:
            return self.ctx.backend is not None and self.kernel is not None
        return False

    def _session_up(self, handle: SessionHandle, info: SessionInfo) -> None:
        """An Ethernet pseudowire (or a session without backend) is complete once its
        kernel session (and l2tpeth interface) exists."""
        handle._set_established(info)
        if info.circuit_active is False:
            self._follow_circuit(handle, False)

    def _bring_up_failed(
        self, handle: SessionHandle, info: SessionInfo, exc: BaseException
    ) -> None:
        """CDN 2 with the generic message; the details go to our log only."""
        _bringup_done(handle)
        log.error(
            "session %d/%d: data plane: %s",
            self.tunnel_id,
            info.session_id,
            exc,
            extra=self.log_extra(info.session_id),
        )
        self.close_session(info.session_id, result=CdnResult.GENERAL_ERROR, message=LOCAL_FAILURE)

    async def _finish_bring_up(
        self, handle: SessionHandle, info: SessionInfo, spec: KernelSessionSpec
    ) -> None:
        """Bridge port, then the backend (backend.py, steps 2-3); a failure closes the
        call with CDN 2. The tear-down (which waits for ``handle.bringup``) undoes
        whatever was done when the call closes."""
        try:
            await self._attach_and_start(handle, info, spec)
        finally:
            _bringup_done(handle)

    async def _attach_and_start(
        self, handle: SessionHandle, info: SessionInfo, spec: KernelSessionSpec
    ) -> None:
        if spec.pw_type == PseudowireType.ETH:
            try:
                await self.ctx.dataplane.attach_to_bridge(
                    self.tunnel_id, info.session_id, handle.options.bridge or ""
                )
            except (KernelError, OSError, ValueError) as exc:
                self._bring_up_failed(handle, info, exc)
                return
            if handle.closed is None:
                self._data_plane_up(handle, info)
            return
        # A call we answer, before our ICRP: only the channel now, its PPP at the ICCN.
        prepare = handle.established_at is None and info.kind is CallKind.LNS_INCOMING
        if await self._start_backend(handle, info, prepare=prepare) and handle.closed is None:
            self._data_plane_up(handle, info)
        # else: closed while starting; the tear-down (waiting for us) stops it.

    async def _start_backend(
        self, handle: SessionHandle, info: SessionInfo, *, prepare: bool = False
    ) -> bool:
        """``backend.start`` (backend.py step 3), or with ``prepare`` its optional
        ``prepare`` (what can be made before the call is established); False if the
        tunnel or call is going, or the backend failed, which closes the call with CDN 2
        "local failure" (the details go to our log only)."""
        backend = self.ctx.backend
        kernel = self.kernel
        if backend is None or kernel is None or handle.closed is not None:
            return False
        step = backend.start
        if prepare:
            ahead = getattr(backend, "prepare", None)
            if ahead is None:
                return True  # nothing to make ahead: all of it at the ICCN
            step = ahead
        session = BackendSession(
            info=info,
            role=self.role,
            kernel_tunnel=kernel,
            tunnel_fd=self.sock.fileno(),
            dataplane=self.ctx.dataplane,
            lns_mode=self.role is Role.LNS,
            local=self.local,
            peer=self.peer,
            options=handle.options,
            report_down=lambda r, e, m: self._backend_down(handle, r, e, m),
            report_interface=lambda name: self._backend_interface(handle, name),
        )
        handle.backend_session = session
        try:
            await step(session)
        except Exception as exc:  # a backend refusing the session: CDN 2 (backend.py step 3)
            log.error(
                "session %d/%d: backend: %s",
                self.tunnel_id,
                info.session_id,
                exc,
                extra=self.log_extra(info.session_id),
            )
            handle.backend_session = None
            self.close_session(
                info.session_id, result=CdnResult.GENERAL_ERROR, message=LOCAL_FAILURE
            )
            return False
        return True

    def _follow_circuit(self, handle: SessionHandle, active: bool) -> None:
        """RFC 3931 5.4.5: while the peer's circuit is inactive, data "MUST cease" towards
        it; for an Ethernet pseudowire we take its interface down, and up again after."""
        log.info(
            "session %d/%d: peer circuit %s",
            self.tunnel_id,
            handle.session_id,
            "active" if active else "inactive",
            extra=self.log_extra(handle.session_id),
        )
        info = handle.info
        if not handle.kernel or self.kernel is None or info is None:
            return
        if self.tunnel.config.version != 3 or info.pseudowire_type != PseudowireType.ETH:
            return
        # Changes apply in the order the peer sent them: each waits for the one before.
        handle.circuit_task = self._spawn(self._set_circuit(handle, active, handle.circuit_task))

    async def _set_circuit(
        self, handle: SessionHandle, active: bool, before: asyncio.Task[None] | None
    ) -> None:
        if before is not None and not before.done():
            await asyncio.wait((before,))
        if not handle.kernel or handle.closed is not None:
            return
        try:
            await self.ctx.dataplane.set_session_up(self.tunnel_id, handle.session_id, active)
        except (KernelError, OSError, ValueError) as exc:
            log.warning(
                "session %d/%d: interface up/down: %s",
                self.tunnel_id,
                handle.session_id,
                exc,
                extra=self.log_extra(handle.session_id),
            )

    def _kernel_session(self, info: SessionInfo, handle: SessionHandle) -> KernelSessionSpec:
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
            return KernelSessionSpec(
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
        return KernelSessionSpec(
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

    def _pseudowire(self, handle: SessionHandle) -> int | None:
        """The established call's pseudowire type (L2TPv2: always PPP)."""
        if self.tunnel.config.version == 2:
            return PseudowireType.PPP
        info = handle.info
        if info is not None and info.pseudowire_type is not None:
            return info.pseudowire_type
        return handle.params.pseudowire_type

    async def session_interface(self, handle: SessionHandle, timeout: float) -> str | None:
        """:meth:`SessionHandle.wait_interface`: an Ethernet pseudowire's interface from
        the data plane (one GET unless its name was configured), a PPP session's as its
        backend reports it."""
        if handle.interface is not None:
            return handle.interface
        if handle.info is None or handle.closed is not None or not handle.kernel:
            return None
        pseudowire = self._pseudowire(handle)
        if pseudowire == PseudowireType.ETH:
            try:
                name = await self.ctx.dataplane.session_interface(self.tunnel_id, handle.session_id)
            except (KernelError, OSError, ValueError) as exc:
                log.debug(
                    "session %d/%d: interface: %s",
                    self.tunnel_id,
                    handle.session_id,
                    exc,
                    extra=self.log_extra(handle.session_id),
                )
                return None
            if name and handle.interface is None:
                handle.interface = name
            return handle.interface
        if pseudowire == PseudowireType.PPP and reports_interface(self.ctx.backend):
            return await handle._reported_interface(timeout)
        return None

    def _backend_interface(self, handle: SessionHandle, name: str) -> None:
        if handle.interface != name:
            log.info(
                "session %d/%d: interface %s",
                self.tunnel_id,
                handle.session_id,
                name,
                extra=self.log_extra(handle.session_id),
            )
        handle._set_interface(name)

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
                extra=self.log_extra(handle.session_id),
            )
            self.close_session(handle.session_id, result=result, error=error, message=message)

    def _session_closed(self, event: SessionClosed) -> None:
        handle = self.sessions.pop(event.session_id, None)
        if handle is None:
            return
        handle._set_closed(event)
        self._closing.add(handle)
        if _nothing_to_await(handle):
            # Decided once this batch of events is handled (:meth:`release_closed`):
            # a whole tunnel going down closes its sessions first and itself last.
            self._closed_now.append((handle, event))
        else:
            self._spawn(self._tear_down_session(handle, event))
        self.endpoint.session_gone(self, handle)

    def release_closed(self) -> None:
        """Finish the tear-down of the sessions closed in the batch of events just
        handled that have nothing left to await: no backend, bring-up done, and no
        kernel session, or one that goes with the kernel tunnel because the tunnel is
        going too. Those are released here, without a task each: a StopCCN for a
        tunnel of 3,000 sessions spawned 3,000 tasks that did nothing but this, one
        loop turn of ~0.7 s in the emulated test VM (issue 14's stall probe). The
        others (a kernel session to delete while the tunnel stays) get the task."""
        batch, self._closed_now = self._closed_now, []
        for handle, event in batch:
            if handle.kernel and self.closed is None:
                self._spawn(self._tear_down_session(handle, event))
            else:
                self._closing.discard(handle)
                handle._set_released(event)

    async def _tear_down_session(self, handle: SessionHandle, event: SessionClosed) -> None:
        """Undo the bring-up once it has finished: stop the backend (backend.py, step 5),
        then delete the kernel session, unless the whole tunnel is going (deleting the
        kernel tunnel removes its sessions: one request instead of one per session)."""
        for task in (handle.bringup, handle.circuit_task):
            if task is not None and not task.done():
                await asyncio.wait((task,))
        session = handle.backend_session
        backend = self.ctx.backend
        if handle.backend_stop is not None:
            # Stopped ahead of the StopCCN (stop_backends): nothing left to hang up.
            await handle.backend_stop
        elif session is not None and backend is not None:
            handle.stopping = True
            handle.backend_session = None
            stop = asyncio.ensure_future(self._stop_backend(backend, session))
            done, _ = await asyncio.wait((stop,), timeout=self.ctx.hangup_after)
            if not done and handle.kernel and self.closed is None:
                await self._delete_kernel_session(handle)  # hang up its channel
            await stop
        if handle.kernel and self.closed is None:
            await self._delete_kernel_session(handle)
        self._closing.discard(handle)
        handle._set_released(event)

    def stop_backends(self) -> list[asyncio.Task[None]]:
        """Stop the backend (pppd, built-in PPP) of every established call now, while the
        tunnel and its kernel sessions are still up, and return the stops to wait for.

        A daemon shutting down does this before its StopCCN (``L2tpContext.close``): each
        PPP ends with its own LCP Terminate-Request and the live peer's Terminate-Ack,
        which crosses the still intact data path, instead of waiting out pppd's restart
        timer for an Ack that a peer told to stop first no longer sends. Every stop is
        started in this one call, so all pppd are signalled in the same loop turn. The
        calls' tear-down (after the StopCCN) awaits these stops and reports nothing: a
        PPP ended this way is not a reason for a CDN."""
        backend = self.ctx.backend
        if backend is None:
            return []
        stops = []
        for handle in self.sessions.values():
            session = handle.backend_session
            if session is None or handle.closed is not None or handle.backend_stop is not None:
                continue
            handle.stopping = True
            handle.backend_session = None
            handle.backend_stop = self._spawn(self._stop_backend(backend, session))
            stops.append(handle.backend_stop)
        return stops

    async def _stop_backend(self, backend: SessionBackend, session: BackendSession) -> None:
        try:
            await backend.stop(session)
        except Exception:
            log.exception(
                "session %d/%d: backend stop failed",
                self.tunnel_id,
                session.key[1],
                extra=self.log_extra(session.key[1]),
            )

    async def _delete_kernel_session(self, handle: SessionHandle) -> None:
        handle.kernel = False
        if self.kernel is None:
            return
        try:
            await self.ctx.dataplane.delete_session(self.tunnel_id, handle.session_id)
        except (SessionNotFound, TunnelNotFound):
            # Expected for PPP: Linux deletes the session when pppd's PPPoL2TP socket closes.
            log.debug(
                "session %d/%d: already gone",
                self.tunnel_id,
                handle.session_id,
                extra=self.log_extra(handle.session_id),
            )
        except (KernelError, OSError) as exc:
            log.warning(
                "session %d/%d: deleting: %s",
                self.tunnel_id,
                handle.session_id,
                exc,
                extra=self.log_extra(handle.session_id),
            )


def _nothing_to_await(handle: SessionHandle) -> bool:
    """Whether a closed session's tear-down has nothing to wait for but (perhaps) the
    deletion of its kernel session (see :meth:`KernelSideEffects.release_closed`)."""
    return (
        handle.backend_session is None
        and (handle.bringup is None or handle.bringup.done())
        and (handle.circuit_task is None or handle.circuit_task.done())
    )


def _bringup_done(handle: SessionHandle) -> None:
    """Release whoever waits for this session's bring-up (its tear-down), and forget the
    future: a finished one kept per session costs memory for nothing."""
    done, handle.bringup = handle.bringup, None
    if done is not None and not done.done():
        done.set_result(None)
