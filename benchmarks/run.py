"""The benchmark suite: one command, a table on stdout, JSON in ``benchmarks/results/``.

    .venv/bin/python benchmarks/run.py                    # default suite (~6 min + ~12 in the VM)
    .venv/bin/python benchmarks/run.py --short            # every section tiny, seconds
    .venv/bin/python benchmarks/run.py --sections codec,setup --repeat 3

Sections (issue 8):

1. ``codec``: parse / build rates of SCCRQ, ICRQ (v2 and v3) and HELLO, one core
   (the functions of ``bench_codec.py``).
2. ``setup``: N sessions over 1, 10 and 100 tunnels, our LAC -> our LNS over
   loopback with the null data plane: sessions/s, median and p99 per-session
   latency under the burst and unloaded, LNS RSS per session, CPU µs per
   session on each side (``setup_lib.setup_run``).
3. ``kernel``: session set-up with real kernel sessions against the kernel ceiling:
   ``bench_setup_kernel.py``, our LAC -> our LNS with ``LinuxDataPlane`` on both
   sides (a kernel PPP session per call on each side, no pppd) vs a loop that
   creates the same kernel objects through netlink alone; the headline is
   ``ratio_to_ceiling`` (control-plane rate / netlink-only rate). ``--repeat``
   runs it N times in one VM boot (medians).
4. ``xl2tpd``: ``bench_xl2tpd.py``, the same LAC (ours, null data plane) against
   our LNS (``LinuxDataPlane``, kernel sessions, no pppd) and against xl2tpd
   (kernel mode, its pppd replaced by a no-op that holds the PPPoL2TP socket)
   at 100-5,000 sessions in tunnels of at most 100, plus remote-access points
   (one session per tunnel): sessions each LNS established, sessions/s, wall
   time, LNS RSS, ours/xl2tpd, and why a point fell short. One pass (~8-9 min
   in the VM); ``--repeat`` does not apply.
5. ``idle``: tunnels x sessions established then left idle with HELLO on:
   LNS CPU % and RSS over the window (``setup_lib.idle_run``).
6. ``storm``: kill the LAC holding sessions in a few tunnels and redial them
   all at once from a fresh LAC: time to full recovery, tunnels lost
   (``setup_lib.storm_run``).
7. ``v3``: L2TPv3 (plain, 8-byte cookies + HMAC-MD5, HMAC-SHA-1) against L2TPv2
   set-up, interleaved in one run, as ratios to v2 (``bench_v3_setup.py``).
8. ``reliability``: issue 13's reliability suite (``bench_reliability.py``: loss,
   fuzz, SCCRQ floods, half-open peers, SIGTERM) at its default or ``--short`` size;
   one row per case with its pass/fail, the detail under ``parts``.
9. ``ppp``: ``bench_ppp.py``, the same LAC (ours, built-in PPP) placing N PPP sessions
   to ``l2tp-lns`` with ``ppp = "builtin"`` and then with ``ppp = "pppd"``, in one VM
   boot: sessions up, set-up rate, memory per session, shutdown time, and the ratios
   built-in / pppd against issue 17's goals. ``--repeat`` runs that many pairs.

Sections 3, 4 and 9 need root and a kernel with L2TP: they run on this host when
it has both, else in the test VM through ``tools/vm/run`` (a boot costs
~10-20 s, and the VM lock may make them wait for another VM run), with the
scripts' output written to ``$L2TP_VM_RESULTS`` (default ``.cache/vm-results``)
and read back. Without either they report "not measured in this run" and why;
``--short`` skips them when they would need a VM boot.

With ``--repeat`` > 1 each measured case runs that many times and every
numeric figure is the median (the figures of each run are kept under
``runs``). A section that is not measured reports ``status`` and ``reason``;
a new section is one function added to :data:`SECTIONS`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VM_RUN = REPO / "tools" / "vm" / "run"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_codec  # noqa: E402
import bench_reliability  # noqa: E402
import bench_v3_setup  # noqa: E402
import setup_lib  # noqa: E402

from l2tp.protocol import parse_message, serialize_message  # noqa: E402

Section = dict[str, Any]

SKIPPED_SHORT = "skipped in --short (needs a VM boot)"
NOT_MEASURED = "not measured in this run"
VM_LOCK_WAIT_S = 3600.0
"""How long a VM section may wait, on top of its own time limit, for another engineer's VM run
(``tools/vm/run`` runs one VM at a time per results folder)."""


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
    kernel_tunnels: int
    kernel_sessions_per_tunnel: int
    xl2tpd_sessions: tuple[int, ...]
    xl2tpd_per_tunnel: int
    xl2tpd_one_per_tunnel: tuple[int, ...]
    xl2tpd_point_timeout: float
    ppp_sessions: int
    ppp_per_tunnel: int


# ------------------------------------------------------------ the machine


machine = setup_lib.machine
median_of = setup_lib.median_of


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


# ---------------------------------------- sections 3 and 4: a kernel with L2TP


def host_l2tp_missing() -> str | None:
    """None when this host can run the kernel sections itself (root, L2TP modules); else why."""
    if os.geteuid() != 0:
        return "not root"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            ["modprobe", "-q", "-a", "l2tp_netlink", "l2tp_ppp"], capture_output=True, timeout=60
        )
    missing = [
        m for m in ("l2tp_core", "l2tp_netlink", "l2tp_ppp") if not Path("/sys/module", m).exists()
    ]
    if missing:
        return f"no L2TP in this host's kernel ({', '.join(missing)} missing after modprobe)"
    return None


def vm_missing() -> str | None:
    """None when ``tools/vm/run`` can boot the test VM; else why not (as the script checks)."""
    if not VM_RUN.exists():
        return f"{VM_RUN} missing"
    kernel = os.environ.get("L2TP_VM_KERNEL")
    if kernel and not Path(kernel).exists():
        return f"L2TP_VM_KERNEL={kernel} does not exist"
    if not kernel:
        found = [
            k
            for k in Path("/boot").glob("vmlinuz-6.1.0-*-amd64")
            if (Path("/lib/modules") / k.name.removeprefix("vmlinuz-") / "modules.dep").exists()
        ]
        if not found:
            return "no test kernel (/boot/vmlinuz-6.1.0-*-amd64 with its modules; tools/setup)"
    if not (REPO / ".venv" / "bin" / "vng").exists():
        return "virtme-ng (.venv/bin/vng) missing; tools/setup installs it"
    return None


def l2tp_place() -> tuple[str | None, str]:
    """Where the kernel sections can run: ``("host" | "vm" | None, description or why not)``."""
    host = host_l2tp_missing()
    if host is None:
        return "host", f"this host's kernel {platform.release()}, as root"
    vm = vm_missing()
    if vm is None:
        return "vm", f"the test VM through tools/vm/run (host: {host})"
    return None, f"needs root and a kernel with L2TP, or the test VM; host: {host}; VM: {vm}"


def vm_results() -> Path:
    """The folder the test VM can write (``$L2TP_VM_RESULTS``, as ``tools/vm/run`` uses it)."""
    return Path(os.environ.get("L2TP_VM_RESULTS") or REPO / ".cache" / "vm-results")


@dataclass(frozen=True, slots=True)
class L2tpRun:
    returncode: int
    seconds: float
    out: Path
    """stdout of every run, appended (in the results folder)."""
    log: Path
    """stderr, and for the VM the output of tools/vm/run itself."""
    kernel: str

    def tail(self, lines: int = 12) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.splitlines()[-lines:])


_REPEAT_SH = (
    'out=$1; n=$2; shift 2; uname -r >"$out.kernel"; : >"$out"; i=0; '
    'while [ "$i" -lt "$n" ]; do "$@" >>"$out" || echo "run $i: exit $?" >&2; i=$((i + 1)); done'
)


def run_l2tp(
    place: str, name: str, argv: list[str], *, runs: int, timeout: float, memory: str | None = None
) -> L2tpRun:
    """Run ``argv`` ``runs`` times in a row as root on a kernel with L2TP: on this host, or in
    one boot of the test VM (``memory``: its ``L2TP_VM_MEMORY`` unless already set).

    Everything lands in :func:`vm_results` (the VM's shared, writable folder): stdout in
    ``NAME.out``, stderr and the VM's own messages in ``NAME.log``, the kernel release in
    ``NAME.out.kernel``.
    """
    results = vm_results()
    results.mkdir(parents=True, exist_ok=True)
    out, log = results / f"{name}.out", results / f"{name}.log"
    kernel_file = out.with_name(out.name + ".kernel")
    for stale in (out, kernel_file):
        stale.unlink(missing_ok=True)
    cmd = ["sh", "-c", _REPEAT_SH, "sh", str(out), str(runs), *argv]
    env = dict(os.environ, L2TP_VM_RESULTS=str(results))
    wait = timeout
    if place == "vm":
        cmd = [str(VM_RUN), "--timeout", str(round(timeout)), *cmd]
        if memory:
            env.setdefault("L2TP_VM_MEMORY", memory)
        wait += VM_LOCK_WAIT_S
    t0 = time.perf_counter()
    with log.open("w") as f:
        try:
            rc = subprocess.run(
                cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=wait
            ).returncode
        except subprocess.TimeoutExpired:
            rc = -1
    kernel = kernel_file.read_text().strip() if kernel_file.exists() else ""
    return L2tpRun(rc, round(time.perf_counter() - t0, 1), out, log, kernel)


def kernel_case(result: dict[str, Any]) -> dict[str, Any]:
    """One ``bench_setup_kernel.py --json`` result as a section-3 case, the ratio first."""
    cp, ceiling = result["control_plane"], result["netlink_ceiling"]
    cp_rate, ceiling_rate = cp["sessions_per_second"], ceiling["sessions_per_second"]
    return {
        "ratio_to_ceiling": round(cp_rate / ceiling_rate, 4) if ceiling_rate else 0.0,
        "ceiling_over_control_plane": result["ceiling_over_control_plane"],
        "control_plane_sessions_per_second": cp_rate,
        "netlink_sessions_per_second": ceiling_rate,
        "tunnels": cp["tunnels"],
        "sessions": cp["sessions"],
        "failed_tunnels": cp["failed_tunnels"],
        "failed_sessions": cp["failed_sessions"],
        "kernel_sessions_both_sides": cp["kernel_sessions_both_sides"],
        "netlink_kernel_sessions_both_sides": ceiling["kernel_sessions_both_sides"],
        "control_plane_seconds": cp["seconds"],
        "netlink_seconds": ceiling["seconds"],
        "longest_loop_stall_ms_lac": cp.get("longest_loop_stall_ms", {}).get("lac"),
        "longest_loop_stall_ms_lns": cp.get("longest_loop_stall_ms", {}).get("lns"),
    }


def kernel_section(plan: Plan) -> Section:
    place, where = l2tp_place()
    if place is None:
        return {"status": NOT_MEASURED, "reason": where}
    if plan.short and place == "vm":
        return {"status": SKIPPED_SHORT, "reason": f"would run in {where}"}
    tunnels, per_tunnel = plan.kernel_tunnels, plan.kernel_sessions_per_tunnel
    argv = [sys.executable, str(HERE / "bench_setup_kernel.py"), "--json"]
    argv += ["--tunnels", str(tunnels), "--sessions", str(per_tunnel)]
    print(f"  [kernel] bench_setup_kernel.py x {plan.repeat} in {where} ...", flush=True)
    run = run_l2tp(place, "bench-kernel", argv, runs=plan.repeat, timeout=180 + 420 * plan.repeat)
    runs = []
    with contextlib.suppress(OSError):
        for line in run.out.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                runs.append(kernel_case(json.loads(line)))
    if not runs:
        return {
            "status": NOT_MEASURED,
            "reason": f"bench_setup_kernel.py gave no result in {where} (exit {run.returncode}, "
            f"log {run.log}): {run.tail()}",
        }
    case = median_of(runs)
    if len(runs) > 1:
        case["runs"] = runs
    notes = []
    if len(runs) < plan.repeat:
        errors = [
            line
            for line in run.log.read_text(errors="replace").splitlines()
            if "Error" in line or "exit" in line
        ]
        notes.append(
            f"{plan.repeat - len(runs)} of {plan.repeat} runs gave no result (log {run.log}): "
            + " | ".join(errors[-4:])
        )
    return {
        "status": "measured",
        "conditions": {
            "what": "bench_setup_kernel.py: our LAC -> our LNS (separate processes) on "
            "127.0.0.1, L2TPv2, AsyncLinuxDataPlane on both sides and no pppd, so each call "
            "makes a kernel PPP session on each side (and each tunnel a managed kernel "
            "tunnel); against a netlink-only loop creating the same kernel objects (the "
            "ceiling). ratio_to_ceiling = control-plane rate / netlink-only rate; a call "
            "counts once both sides have its kernel session. longest_loop_stall_ms_*: the "
            "longest gap in each process's event loop over the run, from a task asking to "
            "wake every 5 ms",
            "where": where,
            "kernel": run.kernel,
            "vm": "QEMU software emulation (TCG), 2 vCPUs, Python ~6x slower than on the host"
            if place == "vm"
            else "none",
            "tunnels": tunnels,
            "sessions_per_tunnel": per_tunnel,
            "repeat": plan.repeat,
            "runs_measured": len(runs),
            "runner_seconds": run.seconds,
        },
        "cases": [case],
        "notes": notes,
    }


XL2TPD_COLUMNS = (
    "sessions",
    "tunnels",
    "max_per_tunnel",
    "ours_established",
    "xl2tpd_established",
    "ours_per_second",
    "xl2tpd_per_second",
    "ours_over_xl2tpd",
    "ours_wall_s",
    "xl2tpd_wall_s",
    "ours_rss_mib",
    "xl2tpd_rss_mib",
    "xl2tpd_helpers_pss_mib",
    "ours_mem_drop_mib",
    "xl2tpd_mem_drop_mib",
    "xl2tpd_alive",
    "xl2tpd_duplicate_ids",
)


def xl2tpd_notes(detail: list[dict[str, Any]]) -> list[str]:
    """One line per point and LNS that fell short: what it held and why."""
    notes = []
    for case in detail:
        held = case.get("lns_kernel_sessions", 0)
        short = held < case.get("sessions", 0) or not case.get("lns_alive", True)
        if not (short or "error" in case):
            continue
        why = case.get("error") or case.get("why") or ""
        if case.get("duplicate_lns_session_ids"):
            why += (
                f"; {case['duplicate_lns_session_ids']} calls got a Session ID the LNS had "
                "already given another call of the same tunnel"
            )
        reasons = case.get("failure_reasons")
        if reasons:
            why += f"; LAC saw: {reasons}"
        notes.append(
            f"{case['lns']}, {case['sessions']:,} sessions in {case.get('tunnels', '?')} "
            f"tunnels: {held:,} held, alive={case.get('lns_alive')}: {why}"
        )
    return notes


def xl2tpd_from_json(data: dict[str, Any], where: str, kernel: str, seconds: float) -> Section:
    """Section 4 from ``bench_xl2tpd.py --json-out``: the side-by-side rows as cases."""
    cases = [{k: row.get(k) for k in XL2TPD_COLUMNS} for row in data["side_by_side"]]
    conditions = dict(data["conditions"])
    conditions.update(
        {
            "where": where,
            "kernel": conditions.get("kernel") or kernel,
            "repeat": 1,
            "repeat_note": "--repeat does not apply to this section (one pass is ~8-9 min "
            "in the VM); run it again for more runs",
            "runner_seconds": seconds,
        }
    )
    return {
        "status": "measured",
        "conditions": conditions,
        "cases": cases,
        "notes": xl2tpd_notes(data["cases"]),
        "detail": data["cases"],
    }


def xl2tpd_section(plan: Plan) -> Section:
    place, where = l2tp_place()
    if place is None:
        return {"status": NOT_MEASURED, "reason": where}
    if not (shutil.which("xl2tpd") or Path("/usr/sbin/xl2tpd").exists()):
        return {"status": NOT_MEASURED, "reason": "xl2tpd is not installed (Debian: xl2tpd)"}
    if plan.short and place == "vm":
        return {"status": SKIPPED_SHORT, "reason": f"would run in {where}"}
    sessions = (20,) if plan.short else plan.xl2tpd_sessions
    one_per_tunnel = () if plan.short else plan.xl2tpd_one_per_tunnel
    point_timeout = 60.0 if plan.short else plan.xl2tpd_point_timeout
    out_json = vm_results() / "bench-xl2tpd.json"
    out_json.unlink(missing_ok=True)
    argv = [sys.executable, str(HERE / "bench_xl2tpd.py"), "--json-out", str(out_json)]
    argv += ["--sessions", ",".join(map(str, sessions))]
    argv += ["--per-tunnel", str(plan.xl2tpd_per_tunnel)]
    argv += ["--one-per-tunnel", ",".join(map(str, one_per_tunnel))]
    argv += ["--point-timeout", str(point_timeout)]
    points = len(sessions) + len(one_per_tunnel)
    timeout = 180 + points * 2 * (point_timeout + 120)  # + LNS start and teardown per point
    print(f"  [xl2tpd] bench_xl2tpd.py ({points} points x 2 LNSs) in {where} ...", flush=True)
    run = run_l2tp(place, "bench-xl2tpd", argv, runs=1, timeout=timeout, memory="2G")
    try:
        data = json.loads(out_json.read_text())
        return xl2tpd_from_json(data, where, run.kernel, run.seconds)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {
            "status": NOT_MEASURED,
            "reason": f"bench_xl2tpd.py gave no result in {where} ({exc}; exit "
            f"{run.returncode}, log {run.log}): {run.tail()}",
        }


PPP_CASE_KEYS = (
    "up",
    "sessions_per_second",
    "setup_s",
    "lns_side_kib_per_session",
    "end_to_end_kib_per_session",
    "lns_pss_kib_per_session",
    "kernel_kib_per_session",
    "shutdown_s",
    "lns_exit_s",
    "lns_cpu_ms_per_session",
)


def ppp_from_json(report: dict[str, Any], where: str, kernel: str, seconds: float) -> Section:
    """Section 9 from ``bench_ppp.py --json``: one case per pair (each LNS's figures, then
    the ratios built-in / pppd); issue 17's goals as notes."""
    cases: list[dict[str, Any]] = []
    notes: list[str] = []
    for number, pair in enumerate(report["pairs"], 1):
        case: dict[str, Any] = {"pair": number, "sessions": report["conditions"]["sessions"]}
        for kind, figures in pair["cases"].items():
            case.update({f"{kind}_{k}": figures.get(k) for k in PPP_CASE_KEYS})
        case.update(pair["ratios"])
        cases.append(case)
        if pair["goals"]:
            notes.append(f"pair {number}, issue 17 goals met: {pair['goals']}")
    conditions = dict(report["conditions"])
    conditions.update({"where": where, "kernel": kernel, "runner_seconds": seconds})
    return {
        "status": "measured",
        "conditions": conditions,
        "cases": cases,
        "notes": notes,
        "detail": report["pairs"],
    }


def ppp_section(plan: Plan) -> Section:
    """Built-in PPP against pppd on l2tp-lns, the same LAC (``bench_ppp.py``), in one boot."""
    place, where = l2tp_place()
    if place is None:
        return {"status": NOT_MEASURED, "reason": where}
    if not (shutil.which("pppd") or Path("/usr/sbin/pppd").exists()):
        return {"status": NOT_MEASURED, "reason": "pppd is not installed (Debian: ppp)"}
    if plan.short and place == "vm":
        return {"status": SKIPPED_SHORT, "reason": f"would run in {where}"}
    argv = [sys.executable, str(HERE / "bench_ppp.py"), "--json", "--repeat", str(plan.repeat)]
    if plan.short:
        argv.append("--short")
    else:
        argv += ["--sessions", str(plan.ppp_sessions), "--per-tunnel", str(plan.ppp_per_tunnel)]
    print(f"  [ppp] bench_ppp.py ({plan.repeat} pair(s)) in {where} ...", flush=True)
    timeout = 240 + plan.repeat * (120 + plan.ppp_sessions * 2.5)
    run = run_l2tp(place, "bench-ppp", argv, runs=1, timeout=timeout, memory="2G")
    try:
        line = run.out.read_text().strip().splitlines()[-1]
        return ppp_from_json(json.loads(line), where, run.kernel, run.seconds)
    except (OSError, IndexError, ValueError, KeyError, TypeError) as exc:
        return {
            "status": NOT_MEASURED,
            "reason": f"bench_ppp.py gave no result in {where} ({exc}; exit {run.returncode}, "
            f"log {run.log}): {run.tail()}",
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


def v3_section(plan: Plan) -> Section:
    """L2TPv3 against L2TPv2 set-up in one run (``bench_v3_setup.py``), interleaved per repeat."""
    tunnels, sessions, probes = (2, 100, 5) if plan.short else (10, 5000, 100)
    result = bench_v3_setup.run_cases(tunnels, sessions, repeat=plan.repeat, probes=probes)
    return {
        "status": "measured",
        "conditions": bench_v3_setup.conditions(tunnels, sessions, plan.repeat, probes),
        "cases": result["cases"],
        "orders": result["orders"],
    }


def reliability_section(plan: Plan) -> Section:
    """Issue 13's reliability suite; its own knobs are ``bench_reliability.py``'s options."""
    return bench_reliability.section(short=plan.short)


SECTIONS: dict[str, tuple[str, Callable[[Plan], Section]]] = {
    "codec": ("1. codec parse/build rates", codec_section),
    "setup": ("2. control-plane session set-up", setup_section),
    "kernel": ("3. kernel ceiling", kernel_section),
    "xl2tpd": ("4. xl2tpd side by side", xl2tpd_section),
    "idle": ("5. idle cost with HELLO", idle_section),
    "storm": ("6. reconnect storm", storm_section),
    "v3": ("7. L2TPv3 vs L2TPv2 set-up", v3_section),
    "reliability": ("8. reliability: loss, fuzz, flood, half-open, SIGTERM", reliability_section),
    "ppp": ("9. built-in PPP vs pppd on l2tp-lns", ppp_section),
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
    "ratio_to_ceiling": "ratio",
    "ceiling_over_control_plane": "ceiling/cp",
    "control_plane_sessions_per_second": "cp_sess/s",
    "netlink_sessions_per_second": "netlink_sess/s",
    "kernel_sessions_both_sides": "k_sess",
    "netlink_kernel_sessions_both_sides": "nl_k_sess",
    "control_plane_seconds": "cp_s",
    "netlink_seconds": "nl_s",
    "max_per_tunnel": "max/t",
    "ours_established": "ours_up",
    "xl2tpd_established": "xl_up",
    "ours_per_second": "ours/s",
    "xl2tpd_per_second": "xl/s",
    "ours_over_xl2tpd": "ours/xl",
    "ours_wall_s": "ours_wall",
    "xl2tpd_wall_s": "xl_wall",
    "ours_rss_mib": "ours_MiB",
    "xl2tpd_rss_mib": "xl_MiB",
    "xl2tpd_helpers_pss_mib": "xl_helpers_MiB",
    "ours_mem_drop_mib": "ours_mem",
    "xl2tpd_mem_drop_mib": "xl_mem",
    "xl2tpd_alive": "xl_alive",
    "xl2tpd_duplicate_ids": "xl_dup_ids",
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
        _print_notes(section)
        return
    for c in cases:  # too wide for one row per case: one line per figure
        print("  --")
        for col in columns:
            print(f"  {col:>34}  {_fmt(c.get(col))}")
    _print_notes(section)


def _print_notes(section: Section) -> None:
    for note in section.get("notes", []):
        print(f"  note: {note}")


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
            kernel_tunnels=2,
            kernel_sessions_per_tunnel=10,
            xl2tpd_sessions=(20,),
            xl2tpd_per_tunnel=100,
            xl2tpd_one_per_tunnel=(),
            xl2tpd_point_timeout=60.0,
            ppp_sessions=10,
            ppp_per_tunnel=5,
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
        kernel_tunnels=args.kernel_tunnels,
        kernel_sessions_per_tunnel=args.kernel_sessions,
        xl2tpd_sessions=_ints(args.xl2tpd_sessions),
        xl2tpd_per_tunnel=args.xl2tpd_per_tunnel,
        xl2tpd_one_per_tunnel=_ints(args.xl2tpd_one_per_tunnel),
        xl2tpd_point_timeout=args.xl2tpd_point_timeout,
        ppp_sessions=args.ppp_sessions,
        ppp_per_tunnel=args.ppp_per_tunnel,
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
    p.add_argument("--kernel-tunnels", type=int, default=10, help="section 3")
    p.add_argument("--kernel-sessions", type=int, default=300, help="section 3, per tunnel")
    p.add_argument("--xl2tpd-sessions", default="100,350,1000,2000,5000", help="section 4")
    p.add_argument(
        "--xl2tpd-per-tunnel", type=int, default=100, help="section 4: max sessions per tunnel"
    )
    p.add_argument(
        "--xl2tpd-one-per-tunnel",
        default="350,1000",
        help="section 4: extra points with one session per tunnel ('' for none)",
    )
    p.add_argument(
        "--xl2tpd-point-timeout", type=float, default=240.0, help="section 4: s per point and LNS"
    )
    p.add_argument("--ppp-sessions", type=int, default=200, help="section 9: N per LNS")
    p.add_argument("--ppp-per-tunnel", type=int, default=50, help="section 9")
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
