"""L2TPv3 session set-up rate over loopback, next to L2TPv2 in the same run.

The same shape of run as ``setup_lib.setup_run`` (section 2 of ``run.py``): a
responder (our LNS / L2TPv3 LCCE) in a child process of its own, the initiator
(our LAC / LCCE) in this one, over 127.0.0.1 UDP, null data plane and no
session backend, so only the control plane is measured. Tunnels are opened
first, then every call is placed at once (a burst). Four cases:

``v2``
    L2TPv2, no tunnel authentication, no AVP hiding (the baseline).
``v3``
    L2TPv3, no cookies, no message digest.
``v3-cookie8-md5``
    L2TPv3, 8-byte cookies drawn by both LCCEs for every session, Message
    Digest AVP with HMAC-MD5 (and its nonces) on every control message.
``v3-sha1``
    L2TPv3, no cookies, HMAC-SHA-1 message digest.

Each repeat runs every case once, in a rotated order (repeat 2 starts with
the second case, ...) so machine noise and position hit every case alike;
figures are medians over repeats. The ratios to v2 are taken per repeat
(case / v2 of the same repeat) and their median reported.

    .venv/bin/python benchmarks/bench_v3_setup.py                   # 5,000 sessions, 10 tunnels
    .venv/bin/python benchmarks/bench_v3_setup.py --repeat 3 --json out.json
    .venv/bin/python benchmarks/bench_v3_setup.py --short           # tiny, seconds (tests)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import multiprocessing as mp
import statistics
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from setup_lib import (  # noqa: E402
    ChildProcess,
    machine,
    median_figure,
    median_of,
    open_tunnels,
    percentile,
    place_sessions,
    raise_fd_limit,
    vm_rss_kib,
)

from l2tp.kernel.async_null import AsyncNullDataPlane  # noqa: E402
from l2tp.protocol.constants import DigestType  # noqa: E402
from l2tp.protocol.events import CallParams, Role  # noqa: E402
from l2tp.protocol.listener import ListenerConfig  # noqa: E402
from l2tp.protocol.transport import TransportConfig  # noqa: E402
from l2tp.protocol.tunnel import TunnelConfig  # noqa: E402
from l2tp.runtime.control import L2tpContext, Listener  # noqa: E402
from l2tp.runtime.handles import TunnelHandle  # noqa: E402
from l2tp.runtime.loop import run as run_loop  # noqa: E402

_SPAWN = mp.get_context("spawn")
SECRET = b"bench-v3-secret"
HELLO_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class Case:
    """One protocol variant; both ends get the same configuration (bar the role)."""

    key: str
    label: str
    version: int
    cookie_length: int = 0
    digest: DigestType | None = None

    def tunnel_config(self, role: Role) -> TunnelConfig:
        return TunnelConfig(
            role=role,
            version=self.version,
            host_name="lac" if role is Role.LAC else "lns",
            secret=SECRET if self.digest is not None else None,
            digest_type=self.digest,
            # Both LCCEs draw a cookie of this size for every session (initiator in
            # its ICRQ, responder in its ICRP): the calls' CallParams default here.
            call_params=CallParams(cookie_length=self.cookie_length),
            transport=TransportConfig(hello_interval=HELLO_INTERVAL),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "case": self.key,
            "label": self.label,
            "version": self.version,
            "cookie_length": self.cookie_length,
            "digest": self.digest.name if self.digest is not None else None,
        }


CASES: tuple[Case, ...] = (
    Case("v2", "L2TPv2 plain", 2),
    Case("v3", "L2TPv3 plain", 3),
    Case("v3-cookie8-md5", "L2TPv3 8-byte cookies + HMAC-MD5", 3, 8, DigestType.HMAC_MD5),
    Case("v3-sha1", "L2TPv3 HMAC-SHA-1", 3, 0, DigestType.HMAC_SHA1),
)
BY_KEY = {c.key: c for c in CASES}
BASELINE = "v2"


# ------------------------------------------------------------ the responder


def _responder_stats(listener: Listener, rss0: int, cpu0: float) -> dict[str, Any]:
    established = 0
    cookie_lengths: set[tuple[int, int]] = set()
    digest_types: set[int | None] = set()
    bad_digest = 0
    for th in listener.tunnels.values():
        digest_types.add(th.tunnel.config.digest_type)
        bad_digest += th.tunnel.counters.bad_digest
        for s in th.sessions.values():
            if s.established and s.info is not None:
                established += 1
                cookie_lengths.add((len(s.info.cookie), len(s.info.peer_cookie)))
    return {
        "tunnels": len(listener.tunnels),
        "sessions": listener.session_count,
        "established_sessions": established,
        "rss_kib": vm_rss_kib(),
        "rss_mark_kib": rss0,
        "cpu_seconds": time.process_time() - cpu0,
        # What the responder actually negotiated, to check each case is what it says.
        "cookie_lengths": sorted(cookie_lengths),
        "digest_types": sorted(d for d in digest_types if d is not None),
        "bad_digest": bad_digest,
    }


def responder_main(conn: Connection, case_key: str, max_tunnels: int) -> None:
    """Child process: a responder for ``case_key`` on 127.0.0.1 serving commands from ``conn``."""
    raise_fd_limit()
    case = BY_KEY[case_key]

    async def main() -> None:
        async with L2tpContext(dataplane=AsyncNullDataPlane()) as ctx:
            config = ListenerConfig(tunnel=case.tunnel_config(Role.LNS), max_tunnels=max_tunnels)
            listener = await ctx.listen(("127.0.0.1", 0), config=config)
            loop = asyncio.get_running_loop()
            stop = loop.create_future()
            mark = [vm_rss_kib(), time.process_time()]

            def on_command() -> None:
                while conn.poll():
                    cmd = conn.recv()
                    if cmd == "mark":
                        gc.collect()
                        mark[:] = [vm_rss_kib(), time.process_time()]
                        conn.send("ok")
                    elif cmd == "stats":
                        conn.send(_responder_stats(listener, int(mark[0]), mark[1]))
                    elif cmd == "stop" and not stop.done():
                        stop.set_result(None)

            loop.add_reader(conn.fileno(), on_command)
            conn.send(listener.address)
            await stop
            loop.remove_reader(conn.fileno())
            await ctx.close(ack_timeout=0.5)
        conn.send("stopped")

    run_loop(main())


class ResponderProcess(ChildProcess):
    """A responder child process (see :func:`responder_main`); use as a context manager."""

    def __init__(self, case: Case, *, max_tunnels: int) -> None:
        super().__init__(responder_main, (case.key, max_tunnels), "responder")


# ------------------------------------------------------------ the initiator


def _ms(latencies: list[float], q: float | None) -> float:
    if not latencies:
        return 0.0
    value = statistics.median(latencies) if q is None else percentile(latencies, q)
    return round(value * 1e3, 2)


def _initiator_cookies(handles: list[TunnelHandle]) -> list[tuple[int, int]]:
    seen = {
        (len(s.info.cookie), len(s.info.peer_cookie))
        for th in handles
        for s in th.sessions.values()
        if s.info is not None
    }
    return sorted(seen)


async def _initiate(
    case: Case, resp: ResponderProcess, tunnels: int, per_tunnel: int, probes: int
) -> dict[str, Any]:
    async with L2tpContext() as ctx:
        handles, failed_tunnels = await open_tunnels(
            ctx, resp.address, tunnels, case.tunnel_config(Role.LAC)
        )
        resp.call("mark")
        start = time.perf_counter()
        cpu0 = time.process_time()
        latencies, failed = await place_sessions(handles, per_tunnel)
        elapsed = time.perf_counter() - start
        init_cpu = time.process_time() - cpu0
        total = len(handles) * per_tunnel
        # The initiator is done once it has sent its last ICCN; the responder may
        # still be working through a backlog. Its figures count until it has them all.
        stats = resp.call("stats")
        deadline = time.perf_counter() + 60.0
        while stats["established_sessions"] < total and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)
            stats = resp.call("stats")
        resp_elapsed = time.perf_counter() - start
        cookies = _initiator_cookies(handles)
        unloaded: list[float] = []
        for _ in range(probes):  # one call at a time on an otherwise idle tunnel
            lat, _failed = await place_sessions(handles[:1], 1)
            unloaded.extend(lat)
        await asyncio.gather(*(t.close(ack_timeout=1.0) for t in handles))
    planned = tunnels * per_tunnel
    return {
        **case.describe(),
        "tunnels": tunnels,
        "sessions": planned,
        "failed_tunnels": failed_tunnels,
        "failed_sessions": failed + (planned - total),
        "established_sessions": len(latencies),
        "responder_established_sessions": stats["established_sessions"],
        "seconds": round(elapsed, 3),
        "sessions_per_second": round(planned / elapsed) if elapsed > 0 else 0,
        "responder_all_established_s": round(resp_elapsed, 3),
        "latency_median_ms": _ms(latencies, None),
        "latency_p99_ms": _ms(latencies, 99),
        "unloaded_probes": len(unloaded),
        "unloaded_latency_median_ms": _ms(unloaded, None),
        "unloaded_latency_p99_ms": _ms(unloaded, 99),
        "responder_cpu_us_per_session": round(stats["cpu_seconds"] * 1e6 / planned, 1),
        "initiator_cpu_us_per_session": round(init_cpu * 1e6 / planned, 1),
        "responder_rss_bytes_per_session": round(
            (stats["rss_kib"] - stats["rss_mark_kib"]) * 1024 / planned
        ),
        # (our cookie, peer's cookie) lengths seen on established sessions, each side.
        "initiator_cookie_lengths": cookies,
        "responder_cookie_lengths": stats["cookie_lengths"],
        "responder_digest_types": stats["digest_types"],
        "responder_bad_digest": stats["bad_digest"],
    }


def case_run(case: Case, tunnels: int, sessions: int, *, probes: int = 100) -> dict[str, Any]:
    """``sessions`` calls of ``case`` spread over ``tunnels`` tunnels, all placed at once.

    As ``setup_lib.setup_run``: the rate counts from the first ``place_call``
    until the initiator has every session established (ICRP in, ICCN out);
    ``responder_all_established_s`` until the responder has processed every
    ICCN, and its CPU figure covers that whole span (stats polling included).
    Latency is per session, ``place_call`` -> ``wait_established``, under the
    burst; ``unloaded_*`` are ``probes`` single calls made one at a time after.
    """
    raise_fd_limit()
    per_tunnel = max(1, sessions // tunnels)
    with ResponderProcess(case, max_tunnels=max(1024, tunnels + 16)) as resp:
        return run_loop(_initiate(case, resp, tunnels, per_tunnel, probes))


# ------------------------------------------------------------ repeats, ratios


RATIOS = {
    # name: (figure, what the ratio means)
    "sessions_per_second": ("sessions_per_second", "case / v2; below 1: slower than v2"),
    "responder_cpu_us_per_session": (
        "responder_cpu_us_per_session",
        "case / v2; above 1: the responder spends more CPU per session than with v2",
    ),
    "initiator_cpu_us_per_session": (
        "initiator_cpu_us_per_session",
        "case / v2; above 1: more initiator CPU per session than with v2",
    ),
    "latency_median_ms": ("latency_median_ms", "case / v2 under the burst"),
}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def run_cases(
    tunnels: int, sessions: int, *, repeat: int, probes: int, cases: tuple[Case, ...] = CASES
) -> dict[str, Any]:
    """Every case ``repeat`` times, interleaved; medians and ratios to v2 per case."""
    runs: dict[str, list[dict[str, Any]]] = {c.key: [] for c in cases}
    orders: list[list[str]] = []
    for r in range(repeat):
        k = r % len(cases)
        order = [*cases[k:], *cases[:k]]
        orders.append([c.key for c in order])
        for case in order:
            runs[case.key].append(case_run(case, tunnels, sessions, probes=probes))
    base = runs[BASELINE]
    results = []
    for case in cases:
        mine = runs[case.key]
        result = median_of(mine)
        ratios: dict[str, Any] = {}
        for name, (figure, _meaning) in RATIOS.items():
            paired = [_ratio(m[figure], b[figure]) for m, b in zip(mine, base, strict=True)]
            valid = [p for p in paired if p is not None]
            ratios[name] = median_figure(valid) if valid else None
            ratios[f"{name}_per_repeat"] = paired
        result["ratio_to_v2"] = ratios
        # Medians could hide one bad run: failures are summed over every run.
        result["failed_sessions_all_runs"] = sum(m["failed_sessions"] for m in mine)
        result["failed_tunnels_all_runs"] = sum(m["failed_tunnels"] for m in mine)
        if repeat > 1:
            result["runs"] = mine
        results.append(result)
    return {"orders": orders, "cases": results}


def conditions(tunnels: int, sessions: int, repeat: int, probes: int) -> dict[str, Any]:
    per_tunnel = max(1, sessions // tunnels)
    return {
        "what": "initiator (this process) -> responder (child process, its own core) over "
        "127.0.0.1 UDP; NullDataPlane on both sides, no session backend: control plane only",
        "tunnels": tunnels,
        "sessions": tunnels * per_tunnel,
        "sessions_per_tunnel": per_tunnel,
        "burst": "tunnels opened first, then every call placed at once",
        "repeat": repeat,
        "figures": "median of the repeats; ratio_to_v2: median of per-repeat ratios "
        "(case / v2 of the same repeat)",
        "interleaving": "each repeat runs every case once, order rotated by one per repeat",
        "unloaded_probes": probes,
        "hello_interval_s": HELLO_INTERVAL,
        "secret_when_digest": "15-byte shared secret, both sides",
        "cases": [c.describe() for c in CASES],
    }


# ------------------------------------------------------------ output


COLUMNS = (
    ("label", "case"),
    ("sessions_per_second", "sessions/s"),
    ("responder_all_established_s", "resp. done s"),
    ("latency_median_ms", "p50 ms"),
    ("latency_p99_ms", "p99 ms"),
    ("unloaded_latency_median_ms", "unl. p50 ms"),
    ("responder_cpu_us_per_session", "resp. CPU µs/sess"),
    ("initiator_cpu_us_per_session", "init. CPU µs/sess"),
    ("responder_rss_bytes_per_session", "resp. B/sess"),
    ("rate_ratio", "rate vs v2"),
    ("cpu_ratio", "resp. CPU vs v2"),
    ("failed_sessions", "failed"),
)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    c = report["conditions"]
    print(f"L2TPv3 vs L2TPv2 session set-up, {report['date']}")
    print(
        f"machine: {m['nproc']} CPUs usable ({m['cpu_model'] or 'unknown model'}), "
        f"Linux {m['kernel']}, {m['implementation']} {m['python']}, {m['event_loop']} loop, "
        f"load average at start {m['loadavg_at_start']}"
    )
    print(f"conditions: {c['what']}")
    print(
        f"  {c['sessions']:,} sessions over {c['tunnels']} tunnels "
        f"({c['sessions_per_tunnel']} per tunnel), {c['burst']}; "
        f"repeat {c['repeat']} ({c['interleaving']}); {c['figures']}"
    )
    rows = []
    for case in report["cases"]:
        row = dict(case)
        row["rate_ratio"] = case["ratio_to_v2"]["sessions_per_second"]
        row["cpu_ratio"] = case["ratio_to_v2"]["responder_cpu_us_per_session"]
        rows.append(row)
    widths = [max(len(h), *(len(_fmt(r.get(k))) for r in rows)) for k, h in COLUMNS]
    print()
    print(
        "  ".join(
            h.ljust(w) if k == "label" else h.rjust(w)
            for (k, h), w in zip(COLUMNS, widths, strict=True)
        )
    )
    for r in rows:
        cells = (
            _fmt(r.get(k)).ljust(w) if k == "label" else _fmt(r.get(k)).rjust(w)
            for (k, _h), w in zip(COLUMNS, widths, strict=True)
        )
        print("  ".join(cells))
    h = report["headline"]
    print()
    print(
        f"headline: L2TPv3 plain sets up {h['v3_over_v2_sessions_per_second']} x the sessions/s "
        f"of L2TPv2 plain, at {h['v3_over_v2_responder_cpu_us_per_session']} x the responder "
        "CPU per session (medians of per-repeat ratios)"
    )
    print(
        "(B/sess = responder VmRSS growth per established session; "
        "resp. done = until the responder has every ICCN)"
    )


# ------------------------------------------------------------ command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--sessions", type=int, default=5000, help="sessions in all (default 5000)")
    p.add_argument("--tunnels", type=int, default=10, help="tunnels (default 10)")
    p.add_argument("--repeat", type=int, default=1, help="runs per case; figures are medians")
    p.add_argument("--probes", type=int, default=100, help="unloaded single calls after a burst")
    p.add_argument(
        "--short", action="store_true", help="tiny: 100 sessions over 2 tunnels, 5 probes, 1 run"
    )
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write JSON here")
    args = p.parse_args(argv)
    if args.short:
        args.sessions, args.tunnels, args.repeat, args.probes = 100, 2, 1, 5
    if args.tunnels < 1 or args.sessions < args.tunnels or args.repeat < 1 or args.probes < 0:
        p.error("need tunnels >= 1, sessions >= tunnels, repeat >= 1, probes >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report: dict[str, Any] = {
        "benchmark": "v3-setup",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "short": args.short,
        "machine": machine(),
        "conditions": conditions(args.tunnels, args.sessions, args.repeat, args.probes),
    }
    t0 = time.perf_counter()
    report.update(run_cases(args.tunnels, args.sessions, repeat=args.repeat, probes=args.probes))
    report["wall_seconds"] = round(time.perf_counter() - t0, 1)
    by_key = {c["case"]: c for c in report["cases"]}
    report["headline"] = {
        "v3_over_v2_sessions_per_second": by_key["v3"]["ratio_to_v2"]["sessions_per_second"],
        "v3_over_v2_responder_cpu_us_per_session": by_key["v3"]["ratio_to_v2"][
            "responder_cpu_us_per_session"
        ],
        "meaning": "L2TPv3 plain / L2TPv2 plain, median of per-repeat ratios; "
        "sessions/s below 1 means v3 is slower, CPU above 1 means v3 costs more",
    }
    report["ratio_meanings"] = {name: meaning for name, (_f, meaning) in RATIOS.items()}
    print_report(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nJSON: {args.json}")
    failed = sum(
        c["failed_sessions_all_runs"] + c["failed_tunnels_all_runs"] for c in report["cases"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
