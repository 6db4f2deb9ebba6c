"""A call's set-up on the data plane: :class:`CallSetup`, a mixin of
:class:`~l2tp.runtime.handles.TunnelHandle` (by way of
:class:`~l2tp.runtime.kernel_side.KernelSideEffects`).

Session established -> kernel session (PPP, LNS mode on the LNS; or the negotiated
L2TPv3 pseudowire), then its bridge port or its
:class:`~l2tp.runtime.backend.SessionBackend`. A call with
``CallParams.wait_data_plane`` (built-in PPP) does this before its next message
leaves (``DataPlaneWanted``): a call we place has its kernel session and backend
before its ICCN leaves; a call we answer has its kernel session and PPP channel
before its ICRP leaves, and starts its PPP at the ICCN (:meth:`CallSetup._answer_connected`).
A failure ends the call with CDN 2 and the generic
:data:`~l2tp.runtime.errors.LOCAL_FAILURE` message; the details are logged, never
sent. While the call is up, an L2TPv3 Ethernet pseudowire's interface follows the
peer's Circuit Status (RFC 3931 5.4.5).

Order (see :mod:`l2tp.runtime.kernel_side`): every bring-up awaits the tunnel's
kernel tunnel (:meth:`CallSetup._kernel_tunnel_ready`); the calls established while
the tunnel's one bring-up worker runs are made in one pipelined batch; the future
``SessionHandle.bringup`` is done once a call's bring-up has finished or given up,
which is what its tear-down (:mod:`l2tp.runtime.teardown`) waits for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from l2tp.kernel.constants import L2SpecType, PseudowireType
from l2tp.kernel.errors import KernelError
from l2tp.kernel.model import KernelSessionSpec
from l2tp.protocol.constants import CdnResult
from l2tp.protocol.events import (
    CallKind,
    DataPlaneWanted,
    Role,
    SessionEstablished,
    SessionInfo,
)

from .backend import BackendSession
from .errors import LOCAL_FAILURE
from .handle_state import HandleState
from .session_handle import SessionHandle

log = logging.getLogger("l2tp.runtime.handles")


class CallSetup(HandleState):
    """Mixin: kernel session, bridge port and backend of each call (see the module doc)."""

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

    async def _kernel_tunnel_ready(self) -> bool:
        """Wait for the kernel tunnel's creation; True if it exists (and is not going)."""
        task = self._kernel_up
        if task is None:
            return False
        if not task.done():
            await asyncio.wait((task,))
        return self.kernel is not None and self.closed is None

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
        "local failure" (the details go to our log only). Also False, quietly, once the
        call's backend is being stopped (``handle.stopping``: a daemon shutting down
        stops every PPP, prepared ones too, before its StopCCN): an ICCN arriving then
        must not start PPP again on a link that is being released."""
        backend = self.ctx.backend
        kernel = self.kernel
        if backend is None or kernel is None or handle.closed is not None or handle.stopping:
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


def _bringup_done(handle: SessionHandle) -> None:
    """Release whoever waits for this session's bring-up (its tear-down), and forget the
    future: a finished one kept per session costs memory for nothing."""
    done, handle.bringup = handle.bringup, None
    if done is not None and not done.done():
        done.set_result(None)
