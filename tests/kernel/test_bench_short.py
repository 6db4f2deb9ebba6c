"""The session benchmark runs (short mode) and both tools end with the same state."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.helpers import require_tool

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_kernel_sessions.py"


def test_bench_kernel_sessions_short() -> None:
    require_tool("ip")
    spec = importlib.util.spec_from_file_location("bench_kernel_sessions", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(["--short"])
    assert results["api_create"] > 0 and results["ip_create"] > 0
    # Loose bound: the short run is dominated by noise and ip's process start.
    assert results["ratio"] < 5
