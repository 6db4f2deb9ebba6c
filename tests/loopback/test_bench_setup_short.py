"""The set-up benchmark's --short mode runs (figures are reported, not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_setup.py"


@pytest.mark.loopback
def test_bench_setup_short() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--short"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert '"lns_sessions": 500' in proc.stdout


@pytest.mark.loopback
def test_bench_setup_metrics_short() -> None:
    """--metrics runs without and with the exporter and scrapes it (the script checks
    that the scraped session gauges add up); ratios are reported, not asserted."""
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--short", "--metrics", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["sessions"] == 500 and len(report["runs"]["on"]) == 1
    assert set(report["ratio_with_to_without"]) == {
        "sessions_per_second",
        "lac_cpu_us_per_session",
        "lns_cpu_us_per_session",
    }
    assert report["scrape"]["scrape_bytes"] > 0
