"""The benchmark suite: one command, a table on stdout, JSON in ``benchmarks/results/``.

    .venv/bin/python benchmarks/run.py                    # default suite (a few minutes)
    .venv/bin/python benchmarks/run.py --short            # every section tiny, seconds
    .venv/bin/python benchmarks/run.py --sections codec,setup --repeat 3

Sections (issue 8):

1. ``codec``: parse / build rates of SCCRQ, ICRQ (v2 and v3) and HELLO, one core
   (the functions of ``bench_codec.py``).
2. ``setup``: N sessions over 1, 10 and 100 tunnels, our LAC -> our LNS over
   loopback with the null data plane: sessions/s, median and p99 per-session
   latency under the burst and unloaded, LNS RSS per session, CPU µs per
   session on each side (``setup_lib.setup_run``).
3. ``kernel``: the kernel ceiling (needs the test VM) - not measured yet.
4. ``xl2tpd``: the same set-up figures for xl2tpd - not measured yet.
5. ``idle``: tunnels x sessions established then left idle with HELLO on:
   LNS CPU % and RSS over the window (``setup_lib.idle_run``).
6. ``storm``: kill the LAC holding sessions in a few tunnels and redial them
   all at once from a fresh LAC: time to full recovery, tunnels lost
   (``setup_lib.storm_run``).

With ``--repeat`` > 1 each measured case runs that many times and every
numeric figure is the median (the figures of each run are kept under
``runs``). A section that is not measured reports ``status`` and ``reason``;
a new section is one function added to :data:`SECTIONS`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_codec  # noqa: E402
import setup_lib  # noqa: E402

from l2tp.protocol import parse_message, serialize_message  # noqa: E402
from l2tp.runtime.loop import uvloop_available  # noqa: E402

Section = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to run; :func:`plan_from_args` fills it from the command line."""

    short: bool
    repeat: int
    codec_seconds: float
    setup_sessions: tuple[int, ...]
    setup_tunnels: tuple[int, ...]
    setup_probes: int
    idle_tunnels: int
    idle_sessions_per_tunnel: int
    idle_hello: float
    idle_duration: float
    storm_tunnels: int
    storm_sessions: int
    storm_hello: float
    storm_reap_wait: float


# ------------------------------------------------------------ the machine


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "event_loop": "uvloop" if uvloop_available() else "asyncio",
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric figure over ``runs``; other values from the first run."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        values = [r[key] for r in runs]
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and all(isinstance(v, int | float) for v in values):
            m = statistics.median(values)
            out[key] = round(m, 3) if isinstance(m, float) else m
            continue
        out[key] = value
    return out


def repeated(plan: Plan, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    runs = [fn() for _ in range(plan.repeat)]
    result = median_of(runs)
    if plan.repeat > 1:
        result["runs"] = runs
    return result


# ------------------------------------------------------------ the sections


def codec_section(plan: Plan) -> Section:
    cases = []
    for name, (version, msg, _wanted) in bench_codec.MESSAGES.items():
        data = serialize_message(msg, version=version, tunnel_id=7, ns=3, nr=4)

        def parse(data: bytes = data) -> object:
            return parse_message(data)

        def build(msg: Any = msg, version: int = version) -> bytes:
            return serialize_message(msg, version=version, tunnel_id=7, ns=3, nr=4)

        cases.append(
            {
                "message": name,
                "bytes": len(data),
                "parse_per_second": round(bench_codec.rate(parse, plan.codec_seconds)),
                "build_per_second": round(bench_codec.rate(build, plan.codec_seconds)),
            }
        )
    return {
        "status": "measured",
        "conditions": {
            "what": "parse_message (header + AVP validation walk) and serialize_message, "
            "best of 3 timeit repeats, one core",
            "min_seconds_per_timing": plan.codec_seconds,
        },
        "cases": cases,
    }


def setup_section(plan: Plan) -> Section:
    cases = []
    for sessions in plan.setup_sessions:
        for tunnels in plan.setup_tunnels:
            if tunnels > sessions:
                continue

            def one(s: int = sessions, t: int = tunnels) -> dict[str, Any]:
                return setup_lib.setup_run(t, s, probes=plan.setup_probes)

            cases.append(repeated(plan, one))
    return {
        "status": "measured",
        "conditions": {
            "what": "our LAC -> our LNS over 127.0.0.1, null data plane, no session backend, "
            "LNS in its own process; tunnels opened first, then every call placed at once",
            "latency": "place_call -> wait_established per session under the burst; "
            "'unloaded' = one call at a time afterwards",
            "sessions": list(plan.setup_sessions),
            "tunnels": list(plan.setup_tunnels),
            "repeat": plan.repeat,
        },
        "cases": cases,
    }


def kernel_section(plan: Plan) -> Section:
    return {
        "status": "not measured in this run",
        "reason": "the kernel ceiling (sessions created straight through netlink, no control "
        "plane) needs root and the test VM (tools/vm/run); not part of this slice - see "
        "bench_kernel_sessions.py for the netlink create/delete rate",
    }


def xl2tpd_section(plan: Plan) -> Section:
    return {
        "status": "not measured in this run",
        "reason": "xl2tpd side-by-side needs xl2tpd driving sessions against our LNS (and "
        "ours against its) in the test VM; not part of this slice",
    }


def idle_section(plan: Plan) -> Section:
    case = repeated(
        plan,
        lambda: setup_lib.idle_run(
            plan.idle_tunnels,
            plan.idle_sessions_per_tunnel,
            hello=plan.idle_hello,
            duration=plan.idle_duration,
        ),
    )
    return {
        "status": "measured",
        "conditions": {
            "what": "tunnels x sessions established, then idle; HELLO interval on both sides "
            "shortened so the window sees real HELLO traffic; LNS CPU and RSS over the window",
            "tunnels": plan.idle_tunnels,
            "sessions_per_tunnel": plan.idle_sessions_per_tunnel,
            "hello_interval_s": plan.idle_hello,
            "duration_s": plan.idle_duration,
            "repeat": plan.repeat,
        },
        "cases": [case],
    }


def storm_section(plan: Plan) -> Section:
    case = repeated(
        plan,
        lambda: setup_lib.storm_run(
            plan.storm_tunnels,
            plan.storm_sessions,
            hello=plan.storm_hello,
            reap_wait=plan.storm_reap_wait,
        ),
    )
    return {
        "status": "measured",
        "conditions": {
            "what": "LAC process holding the sessions is SIGKILLed; a second LAC process "
            "(started beforehand, waiting) redials every tunnel and session at once; recovery "
            "= kill -> every session established again; LNS keeps the dead tunnels until "
            "HELLO/retransmission gives up on them",
            "tunnels": plan.storm_tunnels,
            "sessions": plan.storm_sessions,
            "hello_interval_s": plan.storm_hello,
            "reap_wait_s": plan.storm_reap_wait,
            "repeat": plan.repeat,
        },
        "cases": [case],
    }


SECTIONS: dict[str, tuple[str, Callable[[Plan], Section]]] = {
    "codec": ("1. codec parse/build rates", codec_section),
    "setup": ("2. control-plane session set-up", setup_section),
    "kernel": ("3. kernel ceiling", kernel_section),
    "xl2tpd": ("4. xl2tpd side by side", xl2tpd_section),
    "idle": ("5. idle cost with HELLO", idle_section),
    "storm": ("6. reconnect storm", storm_section),
}


# ------------------------------------------------------------ output


SHORT_NAMES = {
    "sessions_per_second": "sess/s",
    "latency_median_ms": "p50_ms",
    "latency_p99_ms": "p99_ms",
    "unloaded_latency_median_ms": "idle_p50_ms",
    "unloaded_latency_p99_ms": "idle_p99_ms",
    "unloaded_probes": "probes",
    "lns_rss_bytes_per_session": "lns_B/sess",
    "lac_cpu_us_per_session": "lac_us/sess",
    "lns_cpu_us_per_session": "lns_us/sess",
    "lns_established_sessions": "lns_up",
    "lns_all_established_s": "lns_s",
    "failed_tunnels": "fail_t",
    "failed_sessions": "fail_s",
    "parse_per_second": "parse/s",
    "build_per_second": "build/s",
}
"""Column headers of the printed tables (the JSON keeps the full names)."""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def print_table(key: str, title: str, section: Section) -> None:
    print(f"\n== {title} [{key}] ==")
    if section.get("status") != "measured":
        print(f"  {section.get('status')}: {section.get('reason')}")
        return
    for name, value in section.get("conditions", {}).items():
        print(f"  {name}: {value}")
    cases = [{k: v for k, v in c.items() if k != "runs"} for c in section["cases"]]
    if not cases:
        return
    columns = list(cases[0])
    heads = [SHORT_NAMES.get(col, col) for col in columns]
    widths = [
        max(len(h), *(len(_fmt(c.get(col))) for c in cases))
        for col, h in zip(columns, heads, strict=True)
    ]
    if sum(widths) + 2 * len(widths) <= 180:
        print("  " + "  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True)))
        for c in cases:
            cells = (_fmt(c.get(col)).rjust(w) for col, w in zip(columns, widths, strict=True))
            print("  " + "  ".join(cells))
        return
    for c in cases:  # too wide for one row per case: one line per figure
        print("  --")
        for col in columns:
            print(f"  {col:>34}  {_fmt(c.get(col))}")


# ------------------------------------------------------------ the command line


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x.replace("_", "")) for x in text.split(",") if x)


def plan_from_args(args: argparse.Namespace) -> Plan:
    if args.short:
        return Plan(
            short=True,
            repeat=1,
            codec_seconds=0.01,
            setup_sessions=(200,),
            setup_tunnels=(1, 10),
            setup_probes=5,
            idle_tunnels=20,
            idle_sessions_per_tunnel=2,
            idle_hello=0.5,
            idle_duration=1.0,
            storm_tunnels=4,
            storm_sessions=40,
            storm_hello=1.0,
            storm_reap_wait=0.0,
        )
    return Plan(
        short=False,
        repeat=args.repeat,
        codec_seconds=args.codec_seconds,
        setup_sessions=_ints(args.setup_sessions),
        setup_tunnels=_ints(args.setup_tunnels),
        setup_probes=args.setup_probes,
        idle_tunnels=args.idle_tunnels,
        idle_sessions_per_tunnel=args.idle_sessions,
        idle_hello=args.idle_hello,
        idle_duration=args.idle_duration,
        storm_tunnels=args.storm_tunnels,
        storm_sessions=args.storm_sessions,
        storm_hello=args.storm_hello,
        storm_reap_wait=args.storm_reap_wait,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(
        description=doc.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--short", action="store_true", help="every section tiny (for the tests)")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset")
    p.add_argument("--json-out", type=Path, default=HERE / "results" / "latest.json")
    p.add_argument("--repeat", type=int, default=1, help="runs per case; figures are medians")
    p.add_argument("--codec-seconds", type=float, default=0.5)
    p.add_argument("--setup-sessions", default="1000,10000", help="e.g. 1000,10000,20000")
    p.add_argument("--setup-tunnels", default="1,10,100")
    p.add_argument("--setup-probes", type=int, default=100, help="unloaded latency samples")
    p.add_argument("--idle-tunnels", type=int, default=1000)
    p.add_argument("--idle-sessions", type=int, default=10, help="per tunnel")
    p.add_argument("--idle-hello", type=float, default=1.0, help="HELLO interval, s")
    p.add_argument("--idle-duration", type=float, default=60.0, help="seconds")
    p.add_argument("--storm-tunnels", type=int, default=10)
    p.add_argument("--storm-sessions", type=int, default=1000, help="in total")
    p.add_argument("--storm-hello", type=float, default=5.0, help="HELLO interval, s")
    p.add_argument(
        "--storm-reap-wait",
        type=float,
        default=60.0,
        help="also wait up to this long for the LNS to drop the dead tunnels (0: don't)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = [s for s in args.sections.split(",") if s]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        print(f"unknown sections: {', '.join(unknown)}", file=sys.stderr)
        return 2
    plan = plan_from_args(args)
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "short": plan.short,
        "machine": machine(),
        "sections": {},
    }
    print(f"python-l2tp benchmark suite, {report['date']}")
    print("machine: " + ", ".join(f"{k}={v}" for k, v in report["machine"].items()))
    for key, (title, fn) in SECTIONS.items():
        if key not in wanted:
            continue
        t0 = time.perf_counter()
        section = fn(plan)
        section["title"] = title
        section["wall_seconds"] = round(time.perf_counter() - t0, 1)
        report["sections"][key] = section
        print_table(key, title, section)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nJSON: {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
