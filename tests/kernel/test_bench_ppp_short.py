"""The built-in PPP vs pppd benchmark runs (``--short``: 10 sessions to each LNS), so the
script cannot rot; what it reports must be whole and consistent, never how fast."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.helpers import require_tool

pytestmark = pytest.mark.kernel

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_ppp.py"


def test_bench_ppp_short(tmp_path: Path) -> None:
    require_tool("pppd")
    require_tool("ip")
    sys.path.insert(0, str(BENCH.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_ppp", BENCH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_ppp"] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH.parent))
    report = module.main(["--short", "--workdir", str(tmp_path)])
    (pair,) = report["pairs"]
    assert list(pair["cases"]) == ["builtin", "pppd"]
    for kind, case in pair["cases"].items():
        # Every session came up on both sides, every interface went at the LNS's SIGTERM,
        # and the LNS exited cleanly.
        assert case["up"] == case["up_lns_dump"] == case["up_lac_ipcp"] == 10, (kind, case)
        assert case["all_up"] and case["failed_tunnels"] == 0, case
        assert case["shutdown_s"] is not None and case["lns_exit_code"] == 0, case
        assert case["left_ppp_links"] == {"lns": 0, "lac": 0}, case
        assert case["sessions_per_second"] > 0
    assert pair["cases"]["builtin"]["lns_processes"] == 1  # no helper process
    assert pair["cases"]["pppd"]["lns_processes"] >= 11  # the LNS and a pppd per session
    assert set(pair["ratios"]) == set(module.RATIOS)
    assert pair["goals"]["every_session_up"] is True
