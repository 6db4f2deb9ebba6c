"""The kernel and backend side effects of a tunnel's events (a mixin of
:class:`~l2tp.runtime.handles.TunnelHandle`).

Kernel objects follow the control plane (RFC 2661 has no data-plane messages):
tunnel established -> managed kernel tunnel on the tunnel's socket; session
established -> kernel session (PPP, LNS mode on the LNS; or the negotiated L2TPv3
pseudowire), then the :class:`~l2tp.runtime.backend.SessionBackend`; session
closed -> backend stopped, kernel session deleted; tunnel closed -> every session
as above, kernel tunnel deleted. Kernel failures close the session (CDN 2) or the
tunnel (StopCCN 2) with the generic :data:`~l2tp.runtime.errors.LOCAL_FAILURE`
message; the details are logged, never sent.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Coroutine
from typing import Any

from l2tp.kernel.constants import L2SpecType, PseudowireType
from l2tp.kernel.errors import KernelError, SessionNotFound
from l2tp.kernel.model import SessionConfig as KernelSessionConfig
from l2tp.kernel.model import TunnelConfig as KernelTunnelConfig
from l2tp.protocol.constants import CdnResult, StopCcnResult
from l2tp.protocol.events import (
    Role,
    SessionClosed,
    SessionEstablished,
    SessionInfo,
    TunnelClosed,
    TunnelEstablished,
)
from l2tp.protocol.tunnel import Tunnel

from .backend import Address, BackendSession
from .driver import Driver, EndpointHooks
from .errors import LOCAL_FAILURE, TunnelFailed
from .session_handle import SessionHandle

log = logging.getLogger("l2tp.runtime.handles")


class KernelSideEffects:
    """Mixin: the data plane and backend work of one tunnel handle (see the module doc)."""

    ctx: Driver
    endpoint: EndpointHooks
    tunnel: Tunnel
    peer: Address
    sock: socket.socket
    role: Role
    sessions: dict[int, SessionHandle]
    kernel: KernelTunnelConfig | None
    established_event: TunnelEstablished | None
    closed: TunnelClosed | None
    _est_fut: asyncio.Future[TunnelEstablished] | None
    _closed_fut: asyncio.Future[TunnelClosed] | None
    _tasks: set[asyncio.Task[None]]

    @property
    def tunnel_id(self) -> int:
        return self.tunnel.tunnel_id

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
            # Sessions closed along with the tunnel have already left self.sessions
            # (their SessionClosed came first) but their backends are still stopping in
            # self._tasks: let them finish before the kernel objects go (backend.py,
            # step 5), or pppd's LCP Terminate-Request has no session to leave by.
            if self.ctx.backend is None or not (
                self._tasks or any(s.kernel for s in self.sessions.values())
            ):
                self._delete_kernel_tunnel(kernel.tunnel_id)
            else:
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

    def _session_established(self, event: SessionEstablished) -> None:
        info = event.info
        handle = self.sessions.get(info.session_id)
        if handle is None:
            handle = self.new_session(info.session_id, self.endpoint.ppp_options)
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
