"""Reliability suite (issue 13): loss, fuzz, SCCRQ floods, half-open peers, SIGTERM.

    .venv/bin/python benchmarks/bench_reliability.py            # full sizes (~10-13 min)
    .venv/bin/python benchmarks/bench_reliability.py --short    # tiny, ~35 s (the tests)
    .venv/bin/python benchmarks/bench_reliability.py --parts loss --loss-rates 0.3
    .venv/bin/python benchmarks/bench_reliability.py --listener-toml 'hello_timeout = 60000'

Every part prints a table (one row per case, with its pass/fail against the
issue's goal) and the whole run goes to JSON (``--json-out``, default
``benchmarks/results/reliability-latest.json``) with the date, command,
machine and every condition. Loopback only, null data plane, no root, no
L2TP in the kernel; every random choice is seeded (``--seed``). The goals are
reported, never asserted: the script exits 0 whatever they say.

1. ``loss``: 1,000 sessions in 10 tunnels, our LAC -> a seeded
   :class:`tests.loopback.relay.LossyRelay` per tunnel -> our LNS, at 10/30/50 %
   loss (+ duplication, reordering), L2TPv2 and L2TPv3, with the policy the
   daemons run when their file gives only the addresses
   (:mod:`reliability_loss`). Goal: 0 sessions lost at <= 30 %.
2. ``fuzz``: 1,000,000 mutated control messages from several source ports at an
   ``l2tp-lns`` child holding a legit tunnel with sessions
   (:mod:`reliability_attack`). Goals: no unhandled exception / ERROR line, no
   legit session lost, a new legit call afterwards, RSS growth < 20 MiB once
   the fuzz tunnels are gone.
3. ``flood``: 100,000 valid SCCRQs from 500 ports, Ns = 0 and Ns = 1, while a
   legit LAC keeps opening tunnels + calls (:mod:`reliability_attack`). Goals:
   legit tunnel + call during and after, legit accept rate >= 50 % of
   unloaded, RSS bounded, back within 20 MiB once the tunnels are gone.
4. ``halfopen``: scripted raw-socket peers that stop at every step
   (:mod:`reliability_peers`). Goal: each state reaped (teardown with its
   result code, or dropped) within its deadline (a placeholder 60 s here).
5. ``sigterm``: 1,000 tunnels at an ``l2tp-lns`` child, SIGTERM
   (:mod:`reliability_peers`). Goal: StopCCN to each, exit < 5 s.

``benchmarks/run.py`` runs it as its ``reliability`` section (:func:`section`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import reliability_attack as attack  # noqa: E402
import reliability_loss as loss  # noqa: E402
import reliability_peers as peers  # noqa: E402
from setup_lib import machine  # noqa: E402

PARTS = ("loss", "fuzz", "flood", "halfopen", "sigterm")
Row = dict[str, Any]


# ------------------------------------------------------------ running the parts


def code_under_test() -> dict[str, Any]:
    """Which l2tp tree ran (the daemons run the same one) and, for this repository, its
    commit and how many files under src/ differ from it."""
    from reliability_lib import L2TP_SRC, REPO

    out: dict[str, Any] = {"l2tp_src": L2TP_SRC}
    if Path(L2TP_SRC).resolve() == (REPO / "src").resolve():
        try:
            head = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            changed = subprocess.run(
                ["git", "status", "--porcelain", "--", "src"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.splitlines()
            out.update(git_head=head, src_files_changed=len(changed))
        except (OSError, subprocess.SubprocessError):
            pass
    return out


def loss_cases(args: argparse.Namespace) -> list[loss.LossCase]:
    return [
        loss.LossCase(
            version=version,
            loss=rate,
            tunnels=args.loss_tunnels,
            sessions=args.loss_sessions,
            duplicate=args.loss_duplicate,
            reorder=args.loss_reorder,
            max_delay=args.loss_max_delay,
            seed=args.seed,
            time_limit=args.loss_time_limit,
            stale_wait=args.loss_stale_wait,
            listener_extra=listener_extra(args),
            tunnel_extra=tunnel_extra(args),
        )
        for rate in _floats(args.loss_rates)
        for version in _ints(args.loss_versions)
    ]


def loss_part(args: argparse.Namespace) -> dict[str, Any]:
    cases = loss_cases(args)
    # The slowest cases (most loss) first, so the pool's last round is short.
    order = sorted(range(len(cases)), key=lambda i: -cases[i].loss)
    results: list[dict[str, Any]] = [{} for _ in cases]
    jobs = max(1, min(args.loss_jobs, len(cases)))
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=mp.get_context("spawn")
    ) as pool:
        futures = {pool.submit(loss.run_case, cases[i]): i for i in order}
        for future in concurrent.futures.as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as exc:
                results[i] = {"case": cases[i].name, "error": f"{type(exc).__name__}: {exc}"}
    for case, result in zip(cases, results, strict=True):
        goal = case.loss <= args.loss_goal_max + 1e-9
        result["goal"] = "0 lost" if goal else "report only"
        if "error" in result:
            result["pass"] = False if goal else None
        else:
            result["pass"] = result["lost"] == 0 if goal else None
    conditions = loss.conditions(cases)
    conditions["jobs"] = jobs
    conditions["goal"] = f"0 sessions lost at loss <= {args.loss_goal_max:g} (v2 and v3)"
    return {"conditions": conditions, "cases": results}


def fuzz_part(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    plan = attack.FuzzPlan(
        datagrams=args.fuzz_datagrams,
        ports=args.fuzz_ports,
        addresses=args.fuzz_addresses,
        legit_sessions=args.fuzz_sessions,
        seed=args.seed,
        reap_wait=args.fuzz_reap_wait,
        probe_every=args.fuzz_probe_every,
        rss_growth_mib=args.rss_growth_mib,
        listener_extra=listener_extra(args),
        tunnel_extra=tunnel_extra(args),
    )
    return attack.fuzz_part(plan, workdir)


def flood_part(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    plan = attack.FloodPlan(
        sccrqs=args.flood_sccrqs,
        ports=args.flood_ports,
        addresses=args.flood_addresses,
        rate=args.flood_rate,
        probe_window=args.flood_probe_window,
        legit_rate=args.flood_legit_rate,
        attempt_timeout=args.flood_attempt_timeout,
        after_window=args.flood_after_window,
        reap_wait=args.flood_reap_wait,
        peak_growth_mib=args.flood_peak_mib,
        rss_growth_mib=args.rss_growth_mib,
        listener_extra=listener_extra(args),
        tunnel_extra=tunnel_extra(args),
    )
    return attack.flood_part(plan, workdir)


def halfopen_part(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    deadlines = {}
    for item in args.halfopen_deadlines.split(","):
        if item.strip():
            name, _, value = item.partition("=")
            if name.strip() not in peers.SCENARIOS:
                raise SystemExit(f"--halfopen-deadlines: no scenario {name!r}")
            deadlines[name.strip()] = float(value)
    plan = peers.HalfOpenPlan(
        deadline=args.halfopen_deadline,
        deadlines=deadlines,
        grace=args.halfopen_grace,
        seed=args.seed,
        listener_extra=listener_extra(args),
    )
    return peers.halfopen_part(plan, workdir)


def sigterm_part(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    plan = peers.SigtermPlan(
        tunnels=args.sigterm_tunnels,
        exit_limit=args.sigterm_exit_limit,
        listener_extra=listener_extra(args),
        tunnel_extra=tunnel_extra(args),
    )
    return peers.sigterm_part(plan, workdir)


# ------------------------------------------------------------ tables


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(case: Row) -> str:
    """PASS / FAIL against the goal, "report" where there is no goal, ERROR if it broke."""
    if "error" in case:
        return "ERROR"
    p = case.get("pass")
    return "PASS" if p is True else "FAIL" if p is False else "report"


COLUMNS: dict[str, list[tuple[str, str]]] = {
    "loss": [
        ("case", "case"),
        ("sessions", "sess"),
        ("both_up", "both_up"),
        ("lost", "lost"),
        ("failed", "failed"),
        ("pending_at_limit", "pending"),
        ("lac_up", "lac_up"),
        ("lns_up", "lns_up"),
        ("tunnels_never_up", "t_never_up"),
        ("lac_tunnels_died", "t_died"),
        ("lac_died_without_stopccn", "no_stopccn"),
        ("lns_stale_established", "lns_stale"),
        ("lns_stale_after_wait", "stale_after"),
        ("stale_waited_s", "waited_s"),
        ("seconds", "secs"),
        ("goal", "goal"),
        ("result", "result"),
    ],
    "fuzz": [
        ("datagrams_sent", "sent"),
        ("per_second", "per_s"),
        ("kernel_drops", "drops"),
        ("tracebacks", "tracebk"),
        ("error_lines", "errors"),
        ("legit_lost", "legit_lost"),
        ("new_session_after", "new_call"),
        ("tunnels_after_fuzz", "t_after"),
        ("reaped_after_s", "reaped_s"),
        ("rss_before_mib", "rss0_MiB"),
        ("rss_peak_mib", "peak_MiB"),
        ("rss_after_mib", "rss_MiB"),
        ("rss_growth_mib", "growth"),
        ("result", "result"),
    ],
    "flood": [
        ("case", "case"),
        ("sent_per_s", "sent/s"),
        ("kernel_drops", "drops"),
        ("unloaded_accept_share", "legit_0"),
        ("during_accept_share", "legit"),
        ("accept_ratio", "ratio"),
        ("during_latency_p50_ms", "p50_ms"),
        ("after_succeeded", "after_ok"),
        ("flood_tunnels_max", "t_max"),
        ("flood_tunnels_final", "t_final"),
        ("reaped_after_s", "reaped_s"),
        ("rss_before_mib", "rss0_MiB"),
        ("rss_peak_mib", "peak_MiB"),
        ("rss_final_mib", "final_MiB"),
        ("result", "result"),
    ],
    "halfopen": [
        ("case", "state"),
        ("deadline_s", "deadline"),
        ("reaped", "reaped"),
        ("teardown", "teardown"),
        ("teardown_s", "teardown_s"),
        ("freed_s", "freed_s"),
        ("watched_s", "watched"),
        ("result", "result"),
    ],
    "sigterm": [
        ("case", "case"),
        ("tunnels_up", "up"),
        ("lns_tunnels", "lns_t"),
        ("stopccn_received", "stopccn"),
        ("stopccn_result_6", "result_6"),
        ("closed_without_stopccn", "no_stopccn"),
        ("exit_s", "exit_s"),
        ("exit_status", "status"),
        ("tracebacks", "tracebk"),
        ("result", "result"),
    ],
}


def print_part(name: str, part: dict[str, Any]) -> None:
    print(f"\n== {name} ==")
    for key, value in part["conditions"].items():
        print(f"  {key}: {value}")
    rows = part["cases"]
    columns = COLUMNS[name]
    cells = [[_fmt(verdict(r) if k == "result" else r.get(k)) for k, _h in columns] for r in rows]
    heads = [h for _k, h in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    print("  " + "  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True)))
    for row in cells:
        print("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    for r in rows:
        if "error" in r:
            print(f"  error: {r.get('case')}: {r['error']}")
        failed = [k for k, ok in r.get("checks", {}).items() if not ok]
        if failed:
            print(f"  failed: {r.get('case', name)}: {'; '.join(failed)}")
        if r.get("why_died"):
            print(f"  tunnels died: {r['case']}: {' | '.join(r['why_died'])}")
        if r.get("call_failures"):
            calls = "; ".join(f"{n} x {why}" for why, n in list(r["call_failures"].items())[:3])
            print(f"  calls failed: {r['case']}: {calls}")
        if r.get("first_error"):
            print(f"  first error line: {r['first_error']}")


def summary_rows(parts: dict[str, dict[str, Any]]) -> list[Row]:
    """One uniform row per case of every part (run.py prints these)."""
    rows: list[Row] = []
    for name, part in parts.items():
        for r in part["cases"]:
            rows.append(
                {
                    "part": name,
                    "case": r.get("case", name),
                    "result": verdict(r),
                    "figures": _figures(name, r),
                }
            )
    return rows


def _figures(name: str, r: Row) -> str:
    if "error" in r:
        return f"error: {r['error']}"[:160]
    if name == "loss":
        return (
            f"lost {r['lost']:,}/{r['sessions']:,} ({r['failed']:,} failed, "
            f"{r['pending_at_limit']:,} pending at the limit), tunnels died "
            f"{r['lac_tunnels_died']} "
            f"({r['lac_died_without_stopccn']} w/o StopCCN), LNS stale "
            f"{r['lns_stale_established']}->{r['lns_stale_after_wait']}, {r['seconds']:g} s"
        )
    if name == "fuzz":
        return (
            f"{r['datagrams_sent']:,} sent, {r['tracebacks']} tracebacks, {r['error_lines']} "
            f"ERROR, legit lost {r['legit_lost']}, new call {_fmt(r['new_session_after'])}, "
            f"reaped {_fmt(r['reaped_after_s'])} s, RSS +{r['rss_growth_mib']:g} MiB"
        )
    if name == "flood":
        return (
            f"legit accepted {r['during_accept_share']:g} vs {r['unloaded_accept_share']:g} "
            f"unloaded, after {r['after_succeeded']}/{r['after_attempts']}, flood tunnels max "
            f"{_fmt(r['flood_tunnels_max'])}, RSS peak {r['rss_peak_mib']:g} final "
            f"{r['rss_final_mib']:g} MiB"
        )
    if name == "halfopen":
        return f"{r['reaped']} (deadline {r['deadline_s']:g} s), {r['teardown']}"
    return (
        f"{r['stopccn_received']:,}/{r['tunnels_up']:,} StopCCN, exit "
        f"{_fmt(r['exit_s'])} s (status {r['exit_status']})"
    )


def print_summary(rows: list[Row]) -> None:
    print("\n== summary ==")
    width = max(len(f"{r['part']}: {r['case']}") for r in rows) if rows else 0
    for r in rows:
        label = f"{r['part']}: {r['case']}"
        print(f"  {label:<{width}}  {r['result']:>6}  {r['figures']}")


# ------------------------------------------------------------ the command line


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def listener_extra(args: argparse.Namespace) -> str:
    return "\n".join(args.listener_toml)


def tunnel_extra(args: argparse.Namespace) -> str:
    return "\n".join(args.tunnel_toml)


SHORT = {
    "loss_tunnels": 2,
    "loss_sessions": 20,
    "loss_time_limit": 6.0,
    "loss_stale_wait": 0.0,
    "loss_jobs": 6,
    "fuzz_datagrams": 5000,
    "fuzz_ports": 4,
    "fuzz_sessions": 3,
    "fuzz_reap_wait": 2.0,
    "fuzz_probe_every": 0.5,
    "flood_sccrqs": 2000,
    "flood_ports": 50,
    "flood_rate": 2000.0,
    "flood_probe_window": 1.0,
    "flood_attempt_timeout": 2.0,
    "flood_after_window": 0.5,
    "flood_reap_wait": 1.0,
    "halfopen_deadline": 3.0,
    "halfopen_grace": 0.0,
    "sigterm_tunnels": 50,
}
"""The defaults ``--short`` sets (sizes and waits only; the goals stay, and mostly fail)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(
        description=doc.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--short", action="store_true", help="tiny sizes and waits (the tests)")
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    p.add_argument("--json-out", type=Path, default=HERE / "results" / "reliability-latest.json")
    p.add_argument("--seed", type=int, default=2661)
    p.add_argument(
        "--listener-toml",
        action="append",
        default=[],
        metavar="LINE",
        help="extra TOML line for every LNS's [listener] table (repeatable), e.g. "
        "'max_retries = 10'",
    )
    p.add_argument(
        "--tunnel-toml",
        action="append",
        default=[],
        metavar="LINE",
        help="extra TOML line for every LAC's [tunnel] table (repeatable)",
    )
    p.add_argument("--rss-growth-mib", type=float, default=20.0, help="fuzz/flood goal")
    g = p.add_argument_group("1. loss")
    g.add_argument("--loss-rates", default="0.1,0.3,0.5")
    g.add_argument("--loss-versions", default="2,3")
    g.add_argument("--loss-tunnels", type=int, default=10)
    g.add_argument("--loss-sessions", type=int, default=1000, help="in total")
    g.add_argument("--loss-duplicate", type=float, default=0.05)
    g.add_argument("--loss-reorder", type=float, default=0.10)
    g.add_argument("--loss-max-delay", type=float, default=0.05, help="s, reordered copies")
    g.add_argument("--loss-time-limit", type=float, default=300.0, help="s per case")
    g.add_argument(
        "--loss-stale-wait",
        type=float,
        default=100.0,
        help="s to wait for the LNS to drop stale tunnels (only when there are some)",
    )
    g.add_argument("--loss-goal-max", type=float, default=0.3, help="goal applies up to this loss")
    g.add_argument(
        "--loss-jobs",
        type=int,
        default=6,
        help="cases at once (processes; they mostly wait on retransmission timers)",
    )
    g = p.add_argument_group("2. fuzz")
    g.add_argument("--fuzz-datagrams", type=int, default=1_000_000)
    g.add_argument("--fuzz-ports", type=int, default=8)
    g.add_argument(
        "--fuzz-addresses",
        type=int,
        default=1,
        help="spread the ports over this many source addresses (127.0.1.x; 1: 127.0.0.2)",
    )
    g.add_argument("--fuzz-sessions", type=int, default=10, help="legit sessions")
    g.add_argument("--fuzz-reap-wait", type=float, default=120.0)
    g.add_argument("--fuzz-probe-every", type=float, default=2.0, help="s between legit calls")
    g = p.add_argument_group("3. flood")
    g.add_argument("--flood-sccrqs", type=int, default=100_000)
    g.add_argument("--flood-ports", type=int, default=500)
    g.add_argument(
        "--flood-addresses",
        type=int,
        default=1,
        help="spread the ports over this many source addresses (127.0.1.x; 1: 127.0.0.2)",
    )
    g.add_argument("--flood-rate", type=float, default=5000.0, help="SCCRQs/s")
    g.add_argument("--flood-probe-window", type=float, default=5.0, help="s, unloaded")
    g.add_argument("--flood-legit-rate", type=float, default=5.0, help="legit SCCRQs/s")
    g.add_argument("--flood-attempt-timeout", type=float, default=5.0)
    g.add_argument("--flood-after-window", type=float, default=3.0)
    g.add_argument("--flood-reap-wait", type=float, default=60.0)
    g.add_argument(
        "--flood-peak-mib", type=float, default=100.0, help="placeholder peak RSS growth bound"
    )
    g = p.add_argument_group("4. half-open peers")
    g.add_argument(
        "--halfopen-deadline",
        type=float,
        default=None,
        help="one deadline for every state, s (default: each state's documented deadline)",
    )
    g.add_argument(
        "--halfopen-deadlines",
        default="",
        help="per state, e.g. 'icrp_acked_no_iccn=30,iccn_silent=100'; states: "
        + ", ".join(peers.SCENARIOS),
    )
    g.add_argument(
        "--halfopen-grace",
        type=float,
        default=None,
        help="s watched past the deadline (default: the LNS's close-wait + 10 s)",
    )
    g = p.add_argument_group("5. SIGTERM")
    g.add_argument("--sigterm-tunnels", type=int, default=1000)
    g.add_argument("--sigterm-exit-limit", type=float, default=5.0)
    if p.parse_args(argv).short:  # --short changes the defaults; explicit options still win
        p.set_defaults(**SHORT)
    return p.parse_args(argv)


def run(args: argparse.Namespace, *, echo: bool = True) -> dict[str, Any]:
    """Run the wanted parts; the report (also written to ``args.json_out``)."""
    wanted = [x for x in args.parts.split(",") if x]
    unknown = [x for x in wanted if x not in PARTS]
    if unknown:
        raise SystemExit(f"unknown parts: {', '.join(unknown)} (parts: {', '.join(PARTS)})")
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "short": args.short,
        "machine": machine(),
        "code": code_under_test(),
        "seed": args.seed,
        "extra_listener_toml": list(args.listener_toml),
        "extra_tunnel_toml": list(args.tunnel_toml),
        "parts": {},
    }
    if echo:
        print(f"python-l2tp reliability suite, {report['date']}")
        print("machine: " + ", ".join(f"{k}={v}" for k, v in report["machine"].items()))
        print("code: " + ", ".join(f"{k}={v}" for k, v in report["code"].items()))
    with tempfile.TemporaryDirectory(prefix="l2tp-reliability-") as tmp:
        workdir = Path(tmp)
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "loss": lambda: loss_part(args),
            "fuzz": lambda: fuzz_part(args, workdir),
            "flood": lambda: flood_part(args, workdir),
            "halfopen": lambda: halfopen_part(args, workdir),
            "sigterm": lambda: sigterm_part(args, workdir),
        }
        for name in PARTS:
            if name not in wanted:
                continue
            if echo:
                print(f"\n[{name}] running ...", flush=True)
            t0 = time.monotonic()
            try:
                part = runners[name]()
            except Exception as exc:  # one broken part must not hide the others
                part = {
                    "conditions": {},
                    "cases": [{"case": name, "error": f"{type(exc).__name__}: {exc}"}],
                }
            part["wall_seconds"] = round(time.monotonic() - t0, 1)
            for case in part["cases"]:
                case["result"] = verdict(case)
            report["parts"][name] = part
            if echo:
                print_part(name, part)
                print(f"  ({part['wall_seconds']:g} s)", flush=True)
    report["summary"] = summary_rows(report["parts"])
    if echo:
        print_summary(report["summary"])
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if echo:
        print(f"\nJSON: {args.json_out}")
    return report


def section(*, short: bool, json_out: Path | None = None) -> dict[str, Any]:
    """``benchmarks/run.py``'s ``reliability`` section: every part at its default (or
    ``--short``) size; the cases are the summary rows, the parts' detail alongside."""
    argv = ["--short"] if short else []
    if json_out is not None:
        argv += ["--json-out", str(json_out)]
    args = parse_args(argv)
    report = run(args)
    return {
        "status": "measured",
        "conditions": {
            "what": "bench_reliability.py (issue 13): loss, fuzz, flood, half-open, SIGTERM; "
            "each part's conditions are under 'parts'",
            "json": str(args.json_out),
        },
        "cases": report["summary"],
        "parts": report["parts"],
    }


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
