"""The tear-down of calls and tunnels on the data plane: :class:`TearDown`, a mixin of
:class:`~l2tp.runtime.handles.TunnelHandle` (by way of
:class:`~l2tp.runtime.kernel_side.KernelSideEffects`).

Session closed -> backend stopped, kernel session deleted; tunnel closed -> every
session as above, kernel tunnel deleted. Order within one tunnel is kept by awaiting:

- a session's tear-down awaits its bring-up (``SessionHandle.bringup``) and its last
  interface up/down, then stops the backend, then deletes the kernel session;
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
stops every backend before its StopCCN (:meth:`TearDown.stop_backends`,
called by ``L2tpContext.close``), while the peer can still acknowledge. Every
session of a tunnel is stopped at the same time, so a daemon with N PPP sessions
stops in about the same time as with one (figures: docs/networkmanager.md).

``SessionHandle.wait_closed`` and ``TunnelHandle.wait_closed`` return once that
tear-down is done, so "closed" means the kernel objects are gone too.
"""

from __future__ import annotations

import asyncio
import logging

from l2tp.kernel.errors import KernelError, SessionNotFound, TunnelNotFound
from l2tp.protocol.events import SessionClosed, TunnelClosed

from .backend import BackendSession, SessionBackend
from .errors import TunnelFailed
from .handle_state import HandleState
from .session_handle import SessionHandle

log = logging.getLogger("l2tp.runtime.handles")

HANGUP_AFTER = 0.2
"""Seconds between asking a backend to stop and deleting its kernel session under it
(see the module doc). Long enough for a live peer on a LAN to answer pppd's LCP
Terminate-Request; a peer that is already gone costs no more than this. The
context's ``hangup_after`` overrides it."""


class TearDown(HandleState):
    """Mixin: stop backends, delete kernel sessions and the kernel tunnel (see the
    module doc)."""

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
    deletion of its kernel session (see :meth:`TearDown.release_closed`)."""
    return (
        handle.backend_session is None
        and (handle.bringup is None or handle.bringup.done())
        and (handle.circuit_task is None or handle.circuit_task.done())
    )
