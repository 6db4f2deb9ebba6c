"""The set-up benchmark's --short mode runs (figures are reported, not asserted)."""

from __future__ import annotations

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
