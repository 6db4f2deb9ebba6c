"""A LAC's sessions kept up over a list of LNSes: :class:`LnsPool`.

The asyncio driver around :class:`~l2tp.runtime.lns_selection.LnsSelector` (which
decides; this module acts). Give it an :class:`~l2tp.runtime.context.L2tpContext`,
the endpoints and the calls to keep placed::

    pool = LnsPool(ctx, [LnsEndpoint(address="192.0.2.1", preference=0),
                         LnsEndpoint(address="192.0.2.2", preference=1)],
                   [PoolCall(name=f"s{i}") for i in range(30)],
                   config=TunnelConfig(role=Role.LAC))
    pool.start()
    ...
    await pool.stop()

For every call the pool asks the selector for an endpoint, opens that endpoint's
tunnel if it has none (one tunnel per endpoint, shared by its calls: RFC 2868 3.7)
and places the call once the tunnel is up. When a tunnel ends, the selector judges
why (:func:`~l2tp.runtime.lns_selection.tunnel_outcome`), denylists the endpoint if
it failed, and the pool places each of its calls again: at once when the endpoint
was denylisted (the next choice is another endpoint), else after a back-off of
``redial_timeout`` doubling per consecutive failure up to ``max_redial_timeout``.
A call refused with a CDN is judged the same way
(:func:`~l2tp.runtime.lns_selection.call_outcome`).

The judgement comes as soon as the tunnel's control connection ends, so a dead LNS is
denylisted without waiting for the clean-up (stopping each session's PPP, deleting the
kernel objects: a second or more on a real data plane); its calls are placed again
once that clean-up is done. No call is placed on a tunnel that is closing or ended: a
call placed on its endpoint meanwhile waits for the endpoint's next tunnel.

Invariants, which the tests check: a call is placed on at most one tunnel at a time
(a call is placed again only after its previous session is released, kernel session
and backend included, so a pppd or an interface name is never doubled); a call is
never dropped from the pool except by ``max_redials`` or, without ``redial``, when no
endpoint is left to try.

One task (the *pump*) does every placement, woken by outcomes and by the next
deadline (a retry, or a denial's end); a task per tunnel and per call awaits that
object's outcome and reports to the pool. Nothing here blocks.

What the pool keeps of each call and tunnel, the retry rules and the ``peers`` records
are in :mod:`l2tp.runtime.lns_pool_state` (:class:`PoolCall` and :class:`RetryPolicy`
are defined there and importable from here too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from typing import Any

from l2tp.kernel.constants import EncapType
from l2tp.protocol.constants import CdnResult, StopCcnResult
from l2tp.protocol.events import SessionClosed, TunnelClosed
from l2tp.protocol.tunnel import TunnelConfig

from .backend import Address
from .context import L2tpContext
from .errors import SessionFailed, TunnelFailed
from .handles import TunnelHandle
from .lns_pool_state import (
    CallSlot,
    PoolCall,
    PoolTunnel,
    RetryPolicy,
    endpoint_config,
    log_value,
    peer_records,
    wall_clock,
)
from .lns_selection import (
    DenyReason,
    LnsEndpoint,
    LnsSelector,
    PeerDenylisted,
    PeerRestored,
    PeerState,
    SelectionPolicy,
    call_outcome,
    tunnel_outcome,
)
from .session_handle import SessionHandle

__all__ = ["LnsPool", "PoolCall", "RetryPolicy"]

log = logging.getLogger("l2tp.runtime.lns")


class LnsPool:
    """Calls kept placed over a list of LNS endpoints (see the module doc)."""

    def __init__(
        self,
        ctx: L2tpContext,
        endpoints: Sequence[LnsEndpoint],
        calls: Sequence[PoolCall],
        *,
        config: TunnelConfig,
        policy: SelectionPolicy | None = None,
        retry: RetryPolicy | None = None,
        local: Address | None = None,
        encap: EncapType = EncapType.UDP,
        rng: random.Random | None = None,
        name: str = "pool",
        stop_timeout: float = 2.0,
        logger: logging.Logger = log,
    ) -> None:
        names = [c.name for c in calls]
        if len(set(names)) != len(names):
            raise ValueError("two calls of a pool with the same name")
        self.ctx = ctx
        self.name = name
        self.config = config
        self.retry = retry if retry is not None else RetryPolicy()
        self.local = local
        self.encap = encap
        self.stop_timeout = stop_timeout
        self.log = logger
        self.selector = LnsSelector(
            endpoints, policy, rng=rng if rng is not None else random.Random()
        )
        self.slots = {c.name: CallSlot(c) for c in calls}
        self.tunnels: dict[int, PoolTunnel] = {}
        """By endpoint index: the one tunnel of each endpoint in use."""
        self.done = asyncio.Event()
        """Set once every call was given up (nothing left to keep placed)."""
        self.stopping = False
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def endpoints(self) -> tuple[LnsEndpoint, ...]:
        return self.selector.endpoints

    # ------------------------------------------------------------------ API

    def start(self) -> None:
        """Begin placing the calls (in a task of the running loop)."""
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(
                self._run(), name=f"lns-pool-{self.name}"
            )
            self._pump.add_done_callback(self._task_done)  # a bug that ends it is loud

    async def stop(self) -> None:
        """Close every tunnel (StopCCN 1), waiting up to ``stop_timeout`` for the
        acknowledgements, and end the pool's tasks."""
        self.stopping = True
        self._wake.set()
        handles = [t.handle for t in self.tunnels.values() if t.handle is not None]
        for t in self.tunnels.values():
            t.requested = True
        if handles:
            await asyncio.gather(
                *(
                    th.close(
                        StopCcnResult.GENERAL_REQUEST,
                        message="removed",
                        ack_timeout=self.stop_timeout,
                    )
                    for th in handles
                ),
                return_exceptions=True,
            )
        tasks = [t for t in (self._pump, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def owns(self, th: TunnelHandle) -> bool:
        """True when ``th`` is one of this pool's tunnels."""
        return any(t.handle is th for t in self.tunnels.values())

    def placed(self) -> dict[str, SessionHandle]:
        """Each call that has a session now (being set up or up), by name."""
        return {name: s.handle for name, s in self.slots.items() if s.handle is not None}

    def tunnel_of(self, call: str) -> TunnelHandle | None:
        slot = self.slots[call]
        if slot.index is None or slot.handle is None:
            return None
        t = self.tunnels.get(slot.index)
        return t.handle if t is not None else None

    def peers(self, now: float | None = None) -> list[dict[str, Any]]:
        """One record per endpoint: what ``l2tp ctl peers`` prints and the metrics read."""
        now = self.ctx.loop.time() if now is None else now
        return peer_records(self.name, self.selector, self.slots, self.tunnels, now)

    # ------------------------------------------------------------ the pump

    async def _run(self) -> None:
        loop = self.ctx.loop
        while not self.stopping and not self.ctx.closing:
            self._wake.clear()
            self._step(loop.time())
            if self.done.is_set():
                return
            deadline = self._deadline()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _deadline(self) -> float | None:
        times = [s.retry_at for s in self.slots.values() if s.waiting]
        timer = self.selector.get_timer()
        if timer is not None:
            times.append(timer)
        return min(times) if times else None

    def _step(self, now: float) -> None:
        self.selector.expire(now)
        self._report()
        for slot in self.slots.values():
            if not slot.waiting or slot.retry_at > now:
                continue
            index = self.selector.place(slot.call.name, now)
            if index is None:
                self._unplaceable(slot, now)
                continue
            slot.index = index
            self._ensure_tunnel(index)
        for slot in self.slots.values():
            if slot.index is not None and slot.handle is None:
                t = self.tunnels.get(slot.index)
                if t is not None and t.usable and t.handle is not None:
                    self._call(slot, t.handle)
        self._revert(now)
        if all(s.gave_up for s in self.slots.values()) and self.slots:
            self.log.error("lns pool %s: every session was given up", self.name)
            self.done.set()

    def _unplaceable(self, slot: CallSlot, now: float) -> None:
        why = self.retry.when_unplaceable(slot, now, self.selector.get_timer())
        if why is not None:
            self._give_up(slot, why)

    def _give_up(self, slot: CallSlot, why: str) -> None:
        slot.gave_up = True
        self.log.error(
            "session given up: pool=%s session=%s failures=%d why=%s",
            self.name,
            slot.call.name,
            slot.failures,
            why.replace(" ", "-"),
        )

    def _failed(self, slot: CallSlot, now: float, denied: bool) -> None:
        """``slot`` lost its place after a failure; when to place it again."""
        why = self.retry.after_failure(slot, now, denied)
        if why is not None:
            self._give_up(slot, why)

    def _report(self) -> None:
        """Log the selector's events as key=value lines."""
        now = self.ctx.loop.time()
        while (event := self.selector.next_event()) is not None:
            if isinstance(event, PeerDenylisted):
                self.log.warning(
                    "peer denylisted: pool=%s peer=%s reason=%s result=%s until=%s"
                    " seconds=%.0f sessions=%d",
                    self.name,
                    event.endpoint.label,
                    event.reason.value,
                    "-" if event.result is None else event.result,
                    wall_clock(event.until, now),
                    event.until - now,
                    event.sessions,
                )
            elif isinstance(event, PeerRestored):
                self.log.info("peer restored: pool=%s peer=%s", self.name, event.endpoint.label)

    # ------------------------------------------------------------ tunnels

    def _ensure_tunnel(self, index: int) -> None:
        if index in self.tunnels:
            return
        t = PoolTunnel(index)
        self.tunnels[index] = t
        self.selector.set_tunnel(index, PeerState.CONNECTING)
        t.task = self._spawn(self._run_tunnel(t))

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = self.ctx.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("lns pool %s: internal error", self.name, exc_info=task.exception())

    async def _run_tunnel(self, t: PoolTunnel) -> None:
        ep = self.endpoints[t.index]
        closed: TunnelClosed | None = None
        error: str | None = None
        try:
            th = await self.ctx.open_tunnel(
                (ep.address, ep.port),
                self.local,
                config=endpoint_config(self.config, ep),
                encap=self.encap,
                wait=False,
            )
        except (OSError, RuntimeError, ValueError) as exc:
            self._tunnel_ended(t, None, str(exc) or type(exc).__name__)
        else:
            t.handle = th
            try:
                await th.wait_established()
            except TunnelFailed as exc:
                closed = exc.event
            except Exception as exc:  # a runtime bug ended it (logged there, loudly)
                error = f"internal error: {exc}"
            else:
                self._tunnel_up(t, th)
                try:
                    closed = await _closed_event(th)
                except Exception as exc:
                    error = f"internal error: {exc}"
            # Judged as soon as the control connection is gone, not after the clean-up
            # below: stopping the sessions' PPP and deleting the kernel objects takes
            # a second or more with a real data plane (pppd, or the built-in PPP's
            # Terminate wait), and meanwhile the endpoint must already be denylisted
            # and take no call.
            self._tunnel_ended(t, closed, error)
            with contextlib.suppress(Exception):
                await th.wait_closed()  # its sessions' backends and kernel objects are gone
        self._tunnel_gone(t)

    def _tunnel_up(self, t: PoolTunnel, th: TunnelHandle) -> None:
        t.established = True
        self.selector.set_tunnel(t.index, PeerState.UP)
        ep = self.endpoints[t.index]
        self.log.info(
            "peer up: pool=%s peer=%s tunnel=%d peer_tunnel=%d sessions=%d",
            self.name,
            ep.label,
            th.tunnel_id,
            th.peer_tunnel_id,
            len(self.selector.sessions_on(t.index)),
        )
        if not self.selector.sessions_on(t.index) and not (
            self.selector.policy.revert and self.selector.worse_than(t.index)
        ):
            self._close_idle(t)
        self._wake.set()

    def _tunnel_ended(self, t: PoolTunnel, closed: TunnelClosed | None, error: str | None) -> None:
        """The tunnel's control connection ended: judge why (denylisting the endpoint
        if it failed) and log it. Its calls stay placed until :meth:`_tunnel_gone`."""
        t.ended = True
        if self.stopping or self.ctx.closing:
            return  # closed with the pool or the whole context: not a failure
        now = self.ctx.loop.time()
        ep = self.endpoints[t.index]
        if closed is None:
            reason: DenyReason | None = DenyReason.ERROR
            result = None
            detail = error or ""
            by_peer = False
        else:
            result = closed.reason.result if closed.reason is not None else None
            by_peer = closed.by_peer
            reason = tunnel_outcome(
                self.selector.policy,
                established=t.established,
                by_peer=by_peer,
                result=result,
                requested=t.requested,
            )
            detail = (closed.reason.message if closed.reason else "") or closed.description
        self.selector.set_tunnel(t.index, PeerState.IDLE)
        if reason is not None:
            t.denied = self.selector.deny(t.index, now, reason, result) is not None
        level = logging.INFO if t.requested else logging.WARNING
        self.log.log(
            level,
            "peer down: pool=%s peer=%s established=%s by=%s result=%s verdict=%s"
            " sessions=%d detail=%s",
            self.name,
            ep.label,
            "yes" if t.established else "no",
            "peer" if by_peer else "local",
            "-" if result is None else result,
            "ok" if reason is None else reason.value,
            len(self.selector.sessions_on(t.index)),
            log_value(detail),
        )
        self._report()
        self._wake.set()

    def _tunnel_gone(self, t: PoolTunnel) -> None:
        """The ended tunnel's clean-up is done (its sessions' backends stopped, its
        kernel objects deleted): place its calls again."""
        if self.tunnels.get(t.index) is t:
            del self.tunnels[t.index]
        if self.stopping or self.ctx.closing:
            return
        now = self.ctx.loop.time()
        moved = self.selector.tunnel_failed(t.index, now, None)
        for name in moved:
            slot = self.slots[name]
            slot.index = None
            slot.handle = None  # released with the tunnel (wait_closed above)
            if slot.moving or t.requested:
                slot.moving = False
                slot.retry_at = now
            else:
                self._failed(slot, now, t.denied)
        self._wake.set()

    def _close_idle(self, t: PoolTunnel) -> None:
        """A tunnel no call uses any more: StopCCN 1 (it denylists nothing)."""
        if t.handle is None or t.requested or t.ended or self.stopping:
            return
        t.requested = True
        t.handle.begin_close(StopCcnResult.GENERAL_REQUEST, message="no sessions")

    # ------------------------------------------------------------ calls

    def _call(self, slot: CallSlot, th: TunnelHandle) -> None:
        try:
            sh = th.place_call(slot.call.params, options=slot.call.options)
        except Exception:  # e.g. no session ID left: this call fails, the pool goes on
            self.log.exception(
                "lns pool %s: session %s could not be placed", self.name, slot.call.name
            )
            self.selector.release(slot.call.name)
            slot.index = None
            self._failed(slot, self.ctx.loop.time(), False)
            return
        slot.handle = sh
        self._spawn(self._run_call(slot, th, sh))

    async def _run_call(self, slot: CallSlot, th: TunnelHandle, sh: SessionHandle) -> None:
        established = False
        closed: SessionClosed
        try:
            await sh.wait_established()
        except SessionFailed as exc:
            closed = exc.event
        except Exception:
            return  # a runtime bug ended the tunnel: _tunnel_gone places its calls again
        else:
            established = True
            slot.failures = 0
            self.log.info(
                "session up: pool=%s session=%s peer=%s tunnel=%d sid=%d",
                self.name,
                slot.call.name,
                self.endpoints[slot.index].label if slot.index is not None else "-",
                th.tunnel_id,
                sh.session_id,
            )
            try:
                closed = await sh.wait_closed()
            except Exception:
                return
        with contextlib.suppress(Exception):
            await sh.wait_closed()
        if slot.handle is not sh or self.stopping or self.ctx.closing or th.closed is not None:
            return  # the tunnel went down: _tunnel_gone places its calls again
        now = self.ctx.loop.time()
        slot.handle = None
        index = self.selector.release(slot.call.name)
        slot.index = None
        result = closed.reason.result if closed.reason is not None else None
        if slot.moving:
            slot.moving = False
            slot.retry_at = now
        else:
            reason = call_outcome(
                self.selector.policy,
                established=established,
                by_peer=closed.by_peer,
                result=result,
            )
            self.log.warning(
                "session down: pool=%s session=%s established=%s by=%s result=%s verdict=%s",
                self.name,
                slot.call.name,
                "yes" if established else "no",
                "peer" if closed.by_peer else "local",
                "-" if result is None else result,
                "ok" if reason is None else reason.value,
            )
            denied = False
            if reason is not None and index is not None:
                denied = self.selector.deny(index, now, reason, result) is not None
                self._report()
            self._failed(slot, now, denied)
        if index is not None and not self.selector.sessions_on(index):
            t = self.tunnels.get(index)
            if t is not None and t.established:
                self._close_idle(t)
        self._wake.set()

    # ------------------------------------------------------------ revert

    def _revert(self, now: float) -> None:
        """With ``revert``: probe a better endpoint that is available again (open its
        tunnel), and once one is up, move the calls on worse levels (CDN, placed again)."""
        selector = self.selector
        if not selector.policy.revert:
            return
        for index in range(len(self.endpoints)):
            if (
                index not in self.tunnels
                and selector.available(index, now)
                and selector.worse_than(index)
            ):
                self._ensure_tunnel(index)
        for name in selector.revert_candidates(now):
            slot = self.slots[name]
            if slot.moving:
                continue
            if slot.handle is None:  # still waiting for its (worse) tunnel: choose again
                selector.release(name)
                slot.index = None
                slot.retry_at = now
                self._wake.set()
                continue
            slot.moving = True
            self.log.info("session moving to a preferred LNS: pool=%s session=%s", self.name, name)
            slot.handle.tunnel.close_session(
                slot.handle.session_id,
                result=CdnResult.ADMINISTRATIVE,
                message="moving to a preferred LNS",
            )


async def _closed_event(th: TunnelHandle) -> TunnelClosed:
    """The tunnel's :class:`TunnelClosed` as soon as its control connection ends, before
    its clean-up (which :meth:`TunnelHandle.wait_closed` waits for too)."""
    if th.closed is not None:
        return th.closed
    sub = th.events()
    try:
        async for event in sub:
            if isinstance(event, TunnelClosed):
                return event
            if th.closed is not None:
                return th.closed
    finally:
        sub.close()
    return await th.wait_closed()  # the context closed its subscriptions
