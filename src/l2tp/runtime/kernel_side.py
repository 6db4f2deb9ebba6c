"""The kernel and backend side effects of a tunnel's events (a mixin of
:class:`~l2tp.runtime.handles.TunnelHandle`): :class:`KernelSideEffects`.

Kernel objects follow the control plane (RFC 2661 has no data-plane messages):
tunnel established -> managed kernel tunnel on the tunnel's socket (here); session
established -> kernel session and backend (:mod:`~l2tp.runtime.call_setup`); session
or tunnel closed -> backends stopped, kernel objects deleted
(:mod:`~l2tp.runtime.teardown`). Kernel failures close the session (CDN 2) or the
tunnel (StopCCN 2) with the generic :data:`~l2tp.runtime.errors.LOCAL_FAILURE`
message; the details are logged, never sent.

All kernel work goes through the context's
:class:`~l2tp.kernel.async_dataplane.AsyncDataPlane` in tasks, never on the
datagram path: the control plane keeps answering while requests are in flight
(pipelined on one netlink socket per namespace). Order within one tunnel is kept
by awaiting, not by luck:

- the tunnel's creation task (``_kernel_up``) comes first; every session's bring-up
  awaits it;
- a session's bring-up (create, bridge port, backend start) finishes
  (``SessionHandle.bringup``) before its tear-down stops the backend, then deletes
  the kernel session;
- the tunnel's tear-down awaits its creation and every session's tear-down, then
  deletes the kernel tunnel (which removes any session still in it).

The work is split by responsibility into mixins of the one handle (why mixins:
:mod:`~l2tp.runtime.handle_state`), put together here; imports go one way:
``kernel_side -> call_setup, teardown -> handle_state``.
"""

from __future__ import annotations

import logging

from l2tp.kernel.constants import PseudowireType
from l2tp.kernel.errors import KernelError
from l2tp.kernel.model import KernelTunnelSpec
from l2tp.protocol.constants import StopCcnResult
from l2tp.protocol.events import TunnelEstablished

from .backend import reports_interface
from .call_setup import CallSetup
from .errors import LOCAL_FAILURE
from .session_handle import SessionHandle
from .teardown import HANGUP_AFTER, TearDown

__all__ = ["HANGUP_AFTER", "KernelSideEffects"]

log = logging.getLogger("l2tp.runtime.handles")


class KernelSideEffects(CallSetup, TearDown):
    """Mixin: the data plane and backend work of one tunnel handle (see the module doc)."""

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
