"""Part 1 of the reliability suite: sessions through a seeded lossy relay, daemon defaults.

One case = one L2TP version at one loss rate: an LNS :class:`L2tpContext` and
an LAC :class:`L2tpContext` in one process (one event loop), each LAC tunnel on
its own socket talking to the LNS through its own
:class:`tests.loopback.relay.LossyRelay` (seeded: ``seed * 1000 + tunnel
index``) that drops, duplicates and delays datagrams both ways. Both sides use
the daemons' default policy (:func:`reliability_lib.daemon_defaults`). As
kl2tpd does, each tunnel is opened, then its calls are placed at once; nothing
is retried. The case ends when every call is settled (up or failed) and the
LNS has every call the LAC has, or at ``time_limit``; then, if the LNS still
holds tunnels "established" whose LAC side is gone, it waits up to
``stale_wait`` for the LNS to notice.

Cases run in spawned worker processes (:func:`run_case` is picklable), several
at once: they spend most of their time waiting for retransmission timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Any

from reliability_lib import HOST, daemon_defaults, free_udp_port
from tests.loopback.relay import LossyRelay

from l2tp.protocol.events import TunnelClosed
from l2tp.protocol.tunnel_fsm import TunnelState
from l2tp.runtime.control import L2tpContext, Listener
from l2tp.runtime.handles import SessionHandle, TunnelFailed, TunnelHandle
from l2tp.runtime.loop import run as run_loop


@dataclass(frozen=True, slots=True)
class LossCase:
    version: int
    loss: float
    tunnels: int = 10
    sessions: int = 1000
    duplicate: float = 0.05
    reorder: float = 0.10
    max_delay: float = 0.05
    seed: int = 2661
    time_limit: float = 300.0
    stale_wait: float = 100.0
    listener_extra: str = ""
    tunnel_extra: str = ""

    @property
    def name(self) -> str:
        return f"v{self.version} loss {round(self.loss * 100)}%"


def run_case(case: LossCase) -> dict[str, Any]:
    """One case, in its own event loop (a worker process calls this)."""
    try:
        return run_loop(_run(case))
    except Exception as exc:  # reported as a row, not a crash of the suite
        return {"case": case.name, "error": f"{type(exc).__name__}: {exc}"}


class _Tunnel:
    __slots__ = ("calls", "handle", "relay")

    def __init__(self, relay: LossyRelay) -> None:
        self.relay = relay
        self.handle: TunnelHandle | None = None
        self.calls: list[SessionHandle] = []


async def _open(ctx: L2tpContext, case: LossCase, t: _Tunnel, local: tuple[str, int]) -> None:
    d = daemon_defaults(
        case.version, listener_extra=case.listener_extra, tunnel_extra=case.tunnel_extra
    )
    th = await ctx.open_tunnel(t.relay.addr_for_a, local, config=d.lac, wait=False)
    t.handle = th
    try:
        await th.wait_established()
    except TunnelFailed:
        return
    per = case.sessions // case.tunnels
    try:
        for _ in range(per):
            t.calls.append(th.place_call(d.call))
    except Exception:  # the tunnel closed meanwhile: the rest are lost
        return
    await asyncio.gather(*(c.wait_established() for c in t.calls), return_exceptions=True)


def _both_sides(tunnels: list[_Tunnel], listener: Listener) -> tuple[int, int]:
    """(calls up at the LAC, of those also up at the LNS)."""
    lac_up = both = 0
    for t in tunnels:
        th = t.handle
        if th is None:
            continue
        lns_th = listener.tunnels.get(th.peer_tunnel_id) if th.peer_tunnel_id else None
        for call in t.calls:
            if not call.established:
                continue
            lac_up += 1
            if lns_th is not None:
                theirs = lns_th.sessions.get(call.peer_session_id)
                if theirs is not None and theirs.established:
                    both += 1
    return lac_up, both


def _call_failures(tunnels: list[_Tunnel]) -> dict[str, int]:
    """Why the LAC's calls closed: "peer|local RESULT: text" -> count."""
    out: dict[str, int] = {}
    for t in tunnels:
        for call in t.calls:
            ev = call.closed
            if ev is None:
                continue
            side = "peer" if ev.by_peer else "local"
            if ev.reason is not None:
                key = f"{side} CDN {ev.reason.result}: {ev.reason.message or ev.description}"
            else:
                key = f"{side}, no CDN: {ev.description}"
            key = key[:90]
            out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _stale(tunnels: list[_Tunnel], listener: Listener) -> int:
    """LNS tunnels still established whose LAC tunnel is closed (or never learnt of)."""
    lac = {t.handle.tunnel_id: t.handle for t in tunnels if t.handle is not None}
    count = 0
    for lns_th in listener.tunnels.values():
        if lns_th.state is not TunnelState.ESTABLISHED:
            continue
        mine = lac.get(lns_th.peer_tunnel_id)
        if mine is None or mine.closed is not None:
            count += 1
    return count


async def _run(case: LossCase) -> dict[str, Any]:
    d = daemon_defaults(
        case.version, listener_extra=case.listener_extra, tunnel_extra=case.tunnel_extra
    )
    total = (case.sessions // case.tunnels) * case.tunnels
    lns_ctx, lac_ctx = L2tpContext(), L2tpContext()
    listener = await lns_ctx.listen((HOST, 0), config=d.listener, options=d.options)
    lns_closed: list[TunnelClosed] = []
    subscription = lns_ctx.events()

    async def watch() -> None:
        async for event in subscription:
            if isinstance(event, TunnelClosed):
                lns_closed.append(event)

    watcher = asyncio.get_running_loop().create_task(watch())
    tunnels: list[_Tunnel] = []
    locals_: list[tuple[str, int]] = []
    for i in range(case.tunnels):
        local = (HOST, free_udp_port())
        relay = LossyRelay(
            local,
            listener.address,
            loss=case.loss,
            duplicate=case.duplicate,
            reorder=case.reorder,
            max_delay=case.max_delay,
            seed=case.seed * 1000 + i,
        )
        relay.start()
        tunnels.append(_Tunnel(relay))
        locals_.append(local)
    t0 = time.monotonic()
    deadline = t0 + case.time_limit
    try:
        tasks = [
            asyncio.get_running_loop().create_task(_open(lac_ctx, case, t, local))
            for t, local in zip(tunnels, locals_, strict=True)
        ]
        _done, pending = await asyncio.wait(tasks, timeout=case.time_limit)
        # The LAC is settled; give the LNS until the limit to have every call the LAC has.
        while time.monotonic() < deadline:
            lac_up, both = _both_sides(tunnels, listener)
            if both == lac_up:
                break
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - t0
        for task in pending:
            task.cancel()
        lac_up, both = _both_sides(tunnels, listener)
        lns_up = sum(
            1 for th in listener.tunnels.values() for s in th.sessions.values() if s.established
        )
        stale_at_end = _stale(tunnels, listener)
        stale = stale_at_end
        stale_t0 = time.monotonic()
        while stale and case.stale_wait > 0 and time.monotonic() - stale_t0 < case.stale_wait:
            await asyncio.sleep(0.5)
            stale = _stale(tunnels, listener)
        stale_waited = round(time.monotonic() - stale_t0, 1) if stale_at_end else 0.0
        handles = [t.handle for t in tunnels if t.handle is not None]
        died = [th for th in handles if th.closed is not None]
        per = case.sessions // case.tunnels
        # Calls never placed count as failed when their tunnel failed, pending otherwise.
        failed = sum(
            per - len(t.calls) for t in tunnels if t.handle is None or t.handle.closed is not None
        ) + sum(1 for t in tunnels for c in t.calls if c.closed is not None)
        lns_seen = list(lns_closed)
        relayed = [t.relay.counters for t in tunnels]
        result: dict[str, Any] = {
            "case": case.name,
            "version": case.version,
            "loss": case.loss,
            "tunnels": case.tunnels,
            "sessions": total,
            "lac_up": lac_up,
            "lns_up": lns_up,
            "both_up": both,
            "lost": total - both,
            "failed": failed,
            "pending_at_limit": total - both - failed,
            "tunnels_never_up": sum(1 for th in handles if th.established_event is None),
            "lac_tunnels_died": len(died),
            "lac_died_without_stopccn": sum(1 for th in died if th.closed and not th.closed.reason),
            "lns_tunnels_died": len(lns_seen),
            "lns_died_without_stopccn": sum(1 for ev in lns_seen if ev.reason is None),
            "lns_stale_established": stale_at_end,
            "lns_stale_after_wait": stale,
            "stale_waited_s": stale_waited,
            "seconds": round(elapsed, 1),
            "hit_time_limit": bool(pending) or both != lac_up,
            "lac_retransmissions": sum(
                th.tunnel.transport.counters.retransmitted for th in handles
            ),
            "relay_datagrams": sum(c.received for c in relayed),
            "relay_dropped": sum(c.dropped for c in relayed),
            "relay_duplicated": sum(c.duplicated for c in relayed),
            "relay_delayed": sum(c.delayed for c in relayed),
            "call_failures": _call_failures(tunnels),
            "why_died": sorted(
                {
                    (th.closed.description or str(th.closed.reason))[:80]
                    for th in died
                    if th.closed is not None
                }
            )[:4],
        }
    finally:
        with contextlib.suppress(Exception):
            await lac_ctx.close(ack_timeout=0.2)
        for t in tunnels:
            t.relay.close()
        with contextlib.suppress(Exception):
            await lns_ctx.close(ack_timeout=0.2)
        watcher.cancel()
    return result


def conditions(cases: list[LossCase]) -> dict[str, Any]:
    first = cases[0]
    c = asdict(first)
    for key in ("version", "loss", "listener_extra", "tunnel_extra"):
        c.pop(key)
    return {
        "what": "LAC L2tpContext -> one seeded LossyRelay per tunnel -> LNS L2tpContext, one "
        "process, null data plane; each tunnel opened, then its calls placed at once, no "
        "retry (as kl2tpd); loss/dup/reorder applied each way",
        "loss_rates": sorted({x.loss for x in cases}),
        "versions": sorted({x.version for x in cases}),
        **c,
        "extra_listener_toml": first.listener_extra,
        "extra_tunnel_toml": first.tunnel_extra,
        "defaults_v2": daemon_defaults(
            2, listener_extra=first.listener_extra, tunnel_extra=first.tunnel_extra
        ).describe(),
        "defaults_v3": daemon_defaults(
            3, listener_extra=first.listener_extra, tunnel_extra=first.tunnel_extra
        ).describe(),
        "lost": "sessions not established on BOTH sides at the end (matched by session ID) "
        "= failed (the call or its tunnel closed, or never placed) + pending_at_limit "
        "(still being set up, on either side, when time_limit ran out)",
        "stale": "LNS tunnels still 'established' whose LAC tunnel is gone, at the end "
        "and after waiting up to stale_wait for the LNS to notice",
    }
