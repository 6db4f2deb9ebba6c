"""The benchmark suite's --short mode runs and writes every section (figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"
SECTIONS = ("codec", "setup", "kernel", "xl2tpd", "idle", "storm")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


@pytest.mark.loopback
def test_bench_suite_short(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--short", "--json-out", str(out)],
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
    for key in ("kernel", "xl2tpd"):
        assert sections[key]["status"] == "not measured in this run"
        assert sections[key]["reason"]
    for key in ("codec", "setup", "idle", "storm"):
        assert sections[key]["status"] == "measured"
        assert isinstance(sections[key]["conditions"], dict)
        assert sections[key]["cases"]
    for case in sections["codec"]["cases"]:
        assert _number(case["parse_per_second"]) and case["parse_per_second"] > 0
        assert _number(case["build_per_second"]) and case["build_per_second"] > 0
    names = {c["message"] for c in sections["codec"]["cases"]}
    assert {"SCCRQ v2", "ICRQ v2", "HELLO v2"} <= names
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
