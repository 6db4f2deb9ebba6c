"""Parts 4 and 5 of the reliability suite: half-open peers and SIGTERM at l2tp-lns.

Half-open (:func:`halfopen_part`): one ``l2tp-lns`` child per scenario (daemon
defaults, null data plane), all scenarios at once. A :class:`RawPeer` scripts
the L2TPv2 exchange with the project's codec and stops at one step:

==========================  ====================================================
``sccrq_ns1``               SCCRQ with Ns = 1 (nothing before it), then silence
``sccrq_silent``            SCCRQ, then nothing at all (the SCCRP is not acked)
``sccrp_acked_no_scccn``    SCCRQ, SCCRP acknowledged, no SCCCN; keeps acking
``scccn_silent``            tunnel up (SCCCN sent and acked), then silence
``icrq_silent``             tunnel up, ICRQ, then silence (the ICRP is not acked)
``icrp_acked_no_iccn``      tunnel up, ICRQ, ICRP acknowledged, no ICCN; keeps
                            acking (HELLOs included)
``iccn_silent``             session up (ICCN sent and acked), then silence
==========================  ====================================================

The clock starts when the peer stops. The state counts as reaped when the LNS
sends the teardown (StopCCN, or CDN for the call) or drops the state from its
tables (SIGHUP summary: no tunnel; for ``icrp_acked_no_iccn``: no session),
whichever comes first; "freed" is when it is gone from the tables (the first
look is 0.5 s after the peer stopped; ``state_held`` says whether the LNS held
the state at all, e.g. an SCCRQ with Ns = 1 may allocate nothing). Each
scenario is watched for its deadline plus ``grace`` (close-wait, and so that a
teardown just after the deadline is still measured): a time past the deadline
fails the goal, nothing at all within the watch is "not reaped".

SIGTERM (:func:`sigterm_part`): an ``l2tp-lns`` child holding N tunnels (one
call each) from our LAC (kl2tpd defaults, this process); SIGTERM; StopCCNs the
LAC received (Result Code 6, "shutting down") and the daemon's exit time.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reliability_lib import LnsDaemon, RawPeer, Received, daemon_defaults, mib, result_text, sccrq
from setup_lib import open_tunnels, place_sessions, raise_fd_limit

from l2tp.protocol import ControlMessage, FramingBits, MessageType, StopCcnResult
from l2tp.protocol.events import TunnelClosed
from l2tp.runtime.control import L2tpContext
from l2tp.runtime.loop import run as run_loop

SCENARIOS = (
    "sccrq_ns1",
    "sccrq_silent",
    "sccrp_acked_no_scccn",
    "scccn_silent",
    "icrq_silent",
    "icrp_acked_no_iccn",
    "iccn_silent",
)
SESSION_SCENARIOS = frozenset({"icrp_acked_no_iccn"})
"""Where the state to reap is the call: a CDN (or the call gone) reaps it."""


@dataclass(frozen=True, slots=True)
class HalfOpenPlan:
    deadline: float | None = None
    """One deadline for every state (overrides the documented ones); None: each state's
    documented deadline, from the daemon defaults (see :meth:`deadline_for`)."""
    deadlines: dict[str, float] = field(default_factory=dict)
    grace: float | None = None
    """Extra watch time for the state to be freed after a teardown (close-wait); None:
    the LNS's full retransmission cycle (its close-wait) + 10 s."""
    seed: int = 2661
    listener_extra: str = ""

    def deadline_for(self, name: str) -> float:
        """The documented deadline of each state (docs/control-plane.md, "Limits, deadlines
        and memory under attack"), computed from the LNS's defaults: set-up exchanges end
        at ``setup_timeout``; a peer that stops acknowledging is found when our
        retransmissions run out (one retransmission cycle), after the HELLO interval when
        the tunnel was idle. One second of slack for scheduling."""
        if name in self.deadlines:
            return self.deadlines[name]
        if self.deadline is not None:
            return self.deadline
        tunnel = daemon_defaults(2, listener_extra=self.listener_extra).listener.tunnel
        cycle = tunnel.transport.retransmission_cycle(2)
        hello = tunnel.transport.hello_interval or 0.0
        documented = {
            "sccrq_ns1": 0.0,
            "sccrq_silent": tunnel.setup_timeout,
            "sccrp_acked_no_scccn": tunnel.setup_timeout,
            "scccn_silent": hello + cycle,
            "icrq_silent": cycle,
            "icrp_acked_no_iccn": tunnel.setup_timeout,
            "iccn_silent": hello + cycle,
        }
        return round(documented.get(name, tunnel.setup_timeout) + 1.0, 1)

    def grace_s(self) -> float:
        if self.grace is not None:
            return self.grace
        transport = daemon_defaults(2, listener_extra=self.listener_extra).listener.tunnel.transport
        return round(transport.retransmission_cycle(2) + 10.0, 1)


def _icrq(sid: int) -> ControlMessage:
    return ControlMessage.of(MessageType.ICRQ, assigned_session_id=sid, call_serial_number=sid)


def _iccn() -> ControlMessage:
    return ControlMessage.of(
        MessageType.ICCN, tx_connect_speed=100_000_000, framing_type=FramingBits.SYNC
    )


async def _tunnel_up(peer: RawPeer) -> bool:
    peer.send(sccrq(peer.tunnel_id, "half-open"))
    if await peer.wait_for("SCCRP", 10) is None:
        return False
    peer.send(ControlMessage(message_type=MessageType.SCCCN))
    await asyncio.sleep(0.3)  # its acknowledgement
    return True


async def _script(name: str, peer: RawPeer) -> str:
    """Run the peer up to the step where it stops; '' or what went wrong."""
    if name == "sccrq_ns1":
        peer.send(sccrq(peer.tunnel_id, "half-open"))
        return ""
    if name == "sccrq_silent":
        peer.acking = False
        peer.send(sccrq(peer.tunnel_id, "half-open"))
        return ""
    if name == "sccrp_acked_no_scccn":
        peer.send(sccrq(peer.tunnel_id, "half-open"))
        return "" if await peer.wait_for("SCCRP", 10) else "no SCCRP"
    if not await _tunnel_up(peer):
        return "no SCCRP"
    if name == "scccn_silent":
        peer.acking = False
        return ""
    sid = peer.tunnel_id & 0xFFFF or 1
    peer.send(_icrq(sid))
    if name == "icrq_silent":
        peer.acking = False
        return ""
    icrp = await peer.wait_for("ICRP", 10)
    if icrp is None or icrp.message is None:
        return "no ICRP"
    if name == "icrp_acked_no_iccn":
        return ""
    peer.send(_iccn(), session_id=icrp.message.assigned_session_id or 0)
    await asyncio.sleep(0.3)
    peer.acking = False
    return ""


async def _scenario(name: str, lns: LnsDaemon, plan: HalfOpenPlan, tid: int) -> dict[str, Any]:
    peer = RawPeer(lns.address, tunnel_id=tid, first_ns=1 if name == "sccrq_ns1" else 0)
    deadline = plan.deadline_for(name)
    try:
        problem = await _script(name, peer)
        stopped = time.monotonic()
        seen_before = len(peer.received)
        session_state = name in SESSION_SCENARIOS

        def gone(s: Any) -> bool:
            return bool(s.sessions == 0 if session_state else s.tunnels == 0)

        def teardown() -> Received | None:
            kinds = ("STOPCCN", "CDN")
            return next((r for r in peer.received[seen_before:] if r.kind in kinds), None)

        freed: float | None = None
        held = False
        limit = deadline + plan.grace_s()
        await asyncio.sleep(0.5)  # the LNS has the last datagram before the first SIGHUP
        while time.monotonic() - stopped < limit and not problem:
            s = await lns.asummary(timeout=5)
            if s is not None and gone(s):
                freed = round(s.at - stopped, 1)
                break
            held = held or s is not None
            await asyncio.sleep(1.0)
        down = teardown()
        down_s = round(down.at - stopped, 1) if down is not None else None
        reaped = min(x for x in (down_s, freed, float("inf")) if x is not None)
        reaped_s = None if reaped == float("inf") else reaped
        ok = reaped_s is not None and reaped_s <= deadline and freed is not None
        sent = sorted({r.kind for r in peer.received})
    finally:
        peer.close()
    return {
        "case": name,
        "deadline_s": deadline,
        "reaped_s": reaped_s,
        "reaped": "not reaped" if reaped_s is None else f"{reaped_s:g} s",
        "teardown": result_text(down.message) if down is not None else "none",
        "teardown_s": down_s,
        "freed_s": freed,
        "watched_s": round(time.monotonic() - stopped, 1),
        "state_held": held,
        "lns_sent": ", ".join(sent),
        "script_problem": problem,
        "pass": ok and not problem,
    }


async def _halfopen(plan: HalfOpenPlan, workdir: Path) -> list[dict[str, Any]]:
    rng = random.Random(plan.seed)
    daemons = [
        LnsDaemon(workdir / "halfopen", name, extra=plan.listener_extra, wait=False)
        for name in SCENARIOS
    ]
    try:
        for lns in daemons:
            await asyncio.to_thread(lns.wait_ready)
        results = await asyncio.gather(
            *(
                _scenario(name, lns, plan, rng.randrange(1, 0xFFFF))
                for name, lns in zip(SCENARIOS, daemons, strict=True)
            )
        )
        for lns, case in zip(daemons, results, strict=True):
            log = lns.log_report()
            case["tracebacks"] = log["tracebacks"]
            case["error_lines"] = log["error_lines"]
    finally:
        for lns in daemons:  # their exit is the SIGTERM part's business
            lns.kill()
    return list(results)


def halfopen_part(plan: HalfOpenPlan, workdir: Path) -> dict[str, Any]:
    cases = run_loop(_halfopen(plan, workdir))
    return {
        "conditions": {
            "what": "one l2tp-lns child per scenario (daemon defaults, --null-dataplane), all "
            "at once; a raw-socket L2TPv2 peer (project codec) stops at one step; clock "
            "from that moment; reaped = teardown received or state gone from the LNS "
            "(SIGHUP summary), freed = gone",
            "deadline_s": plan.deadline,
            "deadline_note": "None: each state's documented deadline from the daemon "
            "defaults (setup_timeout; retransmission cycle; HELLO + cycle), + 1 s",
            "deadlines": {name: plan.deadline_for(name) for name in SCENARIOS},
            "grace_s": plan.grace_s(),
            "grace_note": "watch = deadline + grace; grace defaults to the LNS's close-wait "
            "(full retransmission cycle) + 10 s",
            "extra_listener_toml": plan.listener_extra,
        },
        "cases": cases,
    }


# ------------------------------------------------------------ part 5: SIGTERM


@dataclass(frozen=True, slots=True)
class SigtermPlan:
    tunnels: int = 1000
    sessions_per_tunnel: int = 1
    exit_limit: float = 5.0
    listener_extra: str = ""
    tunnel_extra: str = ""


async def _sigterm(plan: SigtermPlan, workdir: Path) -> dict[str, Any]:
    d = daemon_defaults(2, listener_extra=plan.listener_extra, tunnel_extra=plan.tunnel_extra)
    with LnsDaemon(workdir / "sigterm", extra=plan.listener_extra) as lns:
        async with L2tpContext() as ctx:
            t0 = time.monotonic()
            handles, failed_tunnels = await open_tunnels(ctx, lns.address, plan.tunnels, d.lac)
            _lat, failed_sessions = await place_sessions(handles, plan.sessions_per_tunnel)
            setup_s = time.monotonic() - t0
            await asyncio.sleep(0.5)
            held = await lns.asummary(timeout=30)
            rss = lns.rss_kib()
            exit_s = await asyncio.to_thread(lns.terminate, 60.0)
            code = lns.proc.returncode
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and any(th.closed is None for th in handles):
                await asyncio.sleep(0.05)
            closed: list[TunnelClosed] = [th.closed for th in handles if th.closed is not None]
            stopccn = [ev for ev in closed if ev.by_peer]
            shutting = [
                ev
                for ev in stopccn
                if ev.reason is not None and ev.reason.result == StopCcnResult.SHUTTING_DOWN
            ]
            await ctx.close(ack_timeout=0.2)
    log = lns.log_report()
    up = len(handles)
    checks = {
        "StopCCN to every tunnel": len(stopccn) == up and up == plan.tunnels,
        f"exit < {plan.exit_limit:g} s": exit_s is not None and exit_s < plan.exit_limit,
        "exit status 0": code == 0,
        "no traceback": log["tracebacks"] == 0,
    }
    return {
        "case": f"{plan.tunnels:,} tunnels",
        "tunnels_up": up,
        "tunnels_failed": failed_tunnels,
        "sessions_failed": failed_sessions,
        "setup_s": round(setup_s, 1),
        "lns_tunnels": held.tunnels if held else None,
        "lns_sessions": held.sessions if held else None,
        "lns_rss_mib": mib(rss),
        "stopccn_received": len(stopccn),
        "stopccn_result_6": len(shutting),
        "closed_without_stopccn": len(closed) - len(stopccn),
        "not_closed": up - len(closed),
        "exit_s": exit_s,
        "exit_status": code,
        "tracebacks": log["tracebacks"],
        "error_lines": log["error_lines"],
        "checks": checks,
        "pass": all(checks.values()),
    }


def sigterm_part(plan: SigtermPlan, workdir: Path) -> dict[str, Any]:
    raise_fd_limit()
    case = run_loop(_sigterm(plan, workdir))
    return {
        "conditions": {
            "what": "l2tp-lns child (daemon defaults, --null-dataplane, --stop-timeout 2 "
            "default) holding tunnels (one call each) from our LAC (kl2tpd defaults, this "
            "process); SIGTERM; exit time = signal to process exit",
            "tunnels": plan.tunnels,
            "sessions_per_tunnel": plan.sessions_per_tunnel,
            "exit_limit_s": plan.exit_limit,
            "extra_listener_toml": plan.listener_extra,
        },
        "cases": [case],
    }
