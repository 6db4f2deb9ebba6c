"""The benchmark suite's --short mode runs and writes every section (figures are not asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"
SECTIONS = ("codec", "setup", "kernel", "xl2tpd", "idle", "storm", "v3", "ppp")
"""Every section but ``reliability``, whose --short run has its own test
(test_bench_reliability_short.py): running it twice would add ~40 s to the suite."""


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


@pytest.mark.loopback
def test_bench_suite_short(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(RUN),
            "--short",
            "--sections",
            ",".join(SECTIONS),
            "--json-out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert isinstance(report["date"], str)
    assert report["short"] is True
    m = report["machine"]
    assert isinstance(m["nproc"], int) and m["nproc"] >= 1
    assert all(isinstance(m[k], str) for k in ("cpu_model", "kernel", "python"))
    sections = report["sections"]
    assert set(sections) == set(SECTIONS)
    for key in ("kernel", "xl2tpd", "ppp"):
        # Skipped (they need the test VM), not measured (no VM kernel here), or measured
        # cheaply where this host itself has L2TP and root.
        status = sections[key]["status"]
        if status == "measured":
            assert sections[key]["cases"]
        else:
            assert status in ("skipped in --short (needs a VM boot)", "not measured in this run")
            assert sections[key]["reason"]
    for key in ("codec", "setup", "idle", "storm", "v3"):
        assert sections[key]["status"] == "measured"
        assert isinstance(sections[key]["conditions"], dict)
        assert sections[key]["cases"]
    for case in sections["codec"]["cases"]:
        assert _number(case["parse_per_second"]) and case["parse_per_second"] > 0
        assert _number(case["build_per_second"]) and case["build_per_second"] > 0
    names = {c["message"] for c in sections["codec"]["cases"]}
    assert {"SCCRQ v2", "ICRQ v2", "HELLO v2"} <= names
    v3_cases = {c["case"]: c for c in sections["v3"]["cases"]}
    assert "v2" in v3_cases and len(v3_cases) >= 3, list(v3_cases)
    for case in v3_cases.values():
        assert case["failed_sessions_all_runs"] == 0
        assert _number(case["ratio_to_v2"]["sessions_per_second"])
    for case in sections["setup"]["cases"]:
        assert case["failed_sessions"] == 0
        assert case["lns_established_sessions"] == case["sessions"]
        for key in (
            "sessions_per_second",
            "latency_median_ms",
            "latency_p99_ms",
            "lns_rss_bytes_per_session",
            "lac_cpu_us_per_session",
            "lns_cpu_us_per_session",
        ):
            assert _number(case[key]), key
        assert case["latency_median_ms"] <= case["latency_p99_ms"]
    (idle,) = sections["idle"]["cases"]
    assert idle["failed_sessions"] == 0
    assert _number(idle["lns_cpu_percent"]) and _number(idle["lns_rss_mib"])
    assert idle["lns_datagrams_per_second"] > 0  # HELLOs flowed during the window
    (storm,) = sections["storm"]["cases"]
    assert storm["tunnels_lost"] == 0
    assert storm["sessions_redialled"] == storm["sessions"]
    assert _number(storm["recovery_seconds"])


def _run_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


KERNEL_RESULT = {
    "conditions": "10 tunnels x 100 sessions ...",
    "control_plane": {
        "tunnels": 10,
        "failed_tunnels": 0,
        "sessions": 1000,
        "failed_sessions": 0,
        "kernel_sessions_both_sides": 1990,
        "seconds": 6.35,
        "sessions_per_second": 157.5,
    },
    "netlink_ceiling": {
        "kernel_sessions_both_sides": 2000,
        "seconds": 0.4,
        "sessions_per_second": 2500.9,
    },
    "ceiling_over_control_plane": 15.88,
}


def _xl2tpd_case(lns: str, sessions: int, held: int, rate: float, **extra: Any) -> dict[str, Any]:
    return {
        "lns": lns,
        "sessions": sessions,
        "tunnels": 10,
        "max_per_tunnel": 100,
        "lns_kernel_sessions": held,
        "sessions_per_second": rate,
        "wall_s": 9.5,
        "lns_rss_mib": 40.0 if lns == "ours" else 11.0,
        "lns_alive": True,
        **extra,
    }


@pytest.mark.loopback
def test_kernel_and_xl2tpd_tables_from_canned_results(capsys: pytest.CaptureFixture[str]) -> None:
    """Sections 3 and 4 turn the VM scripts' JSON into cases, tables and notes (no VM here)."""
    run = _run_module()
    case = run.kernel_case(KERNEL_RESULT)
    assert next(iter(case)) == "ratio_to_ceiling"  # the headline comes first
    assert case["ratio_to_ceiling"] == round(157.5 / 2500.9, 4)
    assert case["sessions"] == 1000 and case["kernel_sessions_both_sides"] == 1990
    assert run.median_of([case, {**case, "ratio_to_ceiling": 1.0}])["ratio_to_ceiling"] > 0.5

    bench_dir = str(RUN.parent)
    sys.path.insert(0, bench_dir)
    try:
        spec = importlib.util.spec_from_file_location(
            "bench_xl2tpd", RUN.parent / "bench_xl2tpd.py"
        )
        assert spec is not None and spec.loader is not None
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(bench_dir)
    assert bench.spread(350, 100) == [88, 88, 87, 87]
    assert bench.spread(5, 1) == [1] * 5
    assert len(bench.noop_elf()) == 129
    cases = [
        _xl2tpd_case("ours", 1000, 1000, 140.0),
        _xl2tpd_case("xl2tpd", 1000, 999, 70.0, duplicate_lns_session_ids=1, why="log says so"),
    ]
    data = {
        "conditions": {"kernel": "6.1"},
        "cases": cases,
        "side_by_side": bench.ratio_rows(cases),
    }
    section = run.xl2tpd_from_json(data, "the test VM", "6.1", 600.0)
    assert section["status"] == "measured"
    (row,) = section["cases"]
    assert row["ours_over_xl2tpd"] == 2.0
    assert row["ours_established"] == 1000 and row["xl2tpd_established"] == 999
    (note,) = section["notes"]
    assert "xl2tpd" in note and "999 held" in note and "log says so" in note
    assert "Session ID" in note
    run.print_table("xl2tpd", "4. xl2tpd side by side", section)
    run.print_table("kernel", "3. kernel ceiling", {"status": "measured", "cases": [case]})
    out = capsys.readouterr().out
    assert "ours/xl" in out and "2.00" in out and "note: xl2tpd" in out
    assert "ratio" in out and "cp_sess/s" in out


def _ppp_case(lns: str, rate: float, kib: float, shutdown: float) -> dict[str, Any]:
    return {
        "lns": lns,
        "sessions": 200,
        "up": 200,
        "all_up": True,
        "sessions_per_second": rate,
        "lns_side_kib_per_session": kib,
        "end_to_end_kib_per_session": 2 * kib,
        "shutdown_s": shutdown,
        "lns_cpu_s": rate,
    }


@pytest.mark.loopback
def test_ppp_table_from_canned_results(capsys: pytest.CaptureFixture[str]) -> None:
    """Section 9 turns bench_ppp.py's JSON into one row per pair, ratios and goal notes."""
    run = _run_module()
    bench_dir = str(RUN.parent)
    sys.path.insert(0, bench_dir)
    try:
        spec = importlib.util.spec_from_file_location("bench_ppp", RUN.parent / "bench_ppp.py")
        assert spec is not None and spec.loader is not None
        bench = importlib.util.module_from_spec(spec)
        sys.modules["bench_ppp"] = bench
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(bench_dir)
    cases = {
        "builtin": _ppp_case("builtin", 20.0, 40.0, 1.5),
        "pppd": _ppp_case("pppd", 1.0, 1000.0, 30.0),
    }
    ratios = bench.ratios(cases)
    assert ratios["setup_rate_ratio"] == 20.0 and ratios["lns_side_memory_ratio"] == 0.04
    goals = bench.goals(cases, ratios)
    assert goals == {
        "setup_rate_10x": True,
        "lns_side_50kb": True,
        "shutdown_under_2s": True,
        "every_session_up": True,
    }
    slow = {**cases, "builtin": _ppp_case("builtin", 5.0, 60.0, 2.5)}
    assert not any(bench.goals(slow, bench.ratios(slow))[k] for k in list(goals)[:3])
    report = {
        "conditions": {"sessions": 200},
        "pairs": [{"cases": cases, "ratios": ratios, "goals": goals}],
    }
    section = run.ppp_from_json(report, "the test VM", "6.1", 300.0)
    (row,) = section["cases"]
    assert row["builtin_sessions_per_second"] == 20.0 and row["pppd_up"] == 200
    assert row["setup_rate_ratio"] == 20.0
    assert "goals met" in section["notes"][0]
    run.print_table("ppp", "9. built-in PPP vs pppd on l2tp-lns", section)
    assert "setup_rate_ratio" in capsys.readouterr().out
