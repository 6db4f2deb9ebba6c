"""The v3-vs-v2 set-up benchmark's --short mode runs and reports every case (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_v3_setup.py"
CASES = ("v2", "v3", "v3-cookie8-md5", "v3-sha1")
FIGURES = (
    "sessions_per_second",
    "responder_all_established_s",
    "latency_median_ms",
    "latency_p99_ms",
    "responder_cpu_us_per_session",
    "initiator_cpu_us_per_session",
)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


@pytest.mark.loopback
def test_bench_v3_setup_short(tmp_path: Path) -> None:
    out = tmp_path / "v3.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--short", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["short"] is True
    m = report["machine"]
    assert isinstance(m["nproc"], int) and m["nproc"] >= 1
    assert all(isinstance(m[k], str) for k in ("cpu_model", "kernel", "python"))
    assert "NullDataPlane" in report["conditions"]["what"]
    assert "127.0.0.1" in report["conditions"]["what"]

    cases = {c["case"]: c for c in report["cases"]}
    assert tuple(cases) == CASES
    assert all(set(order) == set(CASES) for order in report["orders"])
    for key, case in cases.items():
        n = case["sessions"]
        assert n > 0, key
        assert case["failed_tunnels_all_runs"] == 0, key
        assert case["failed_sessions_all_runs"] == 0, key
        assert case["established_sessions"] == n, key
        assert case["responder_established_sessions"] == n, key
        for figure in FIGURES:
            assert _number(case[figure]), (key, figure)
        assert case["sessions_per_second"] > 0, key
        assert case["latency_median_ms"] <= case["latency_p99_ms"], key
        ratios = case["ratio_to_v2"]
        for name in ("sessions_per_second", "responder_cpu_us_per_session"):
            assert _number(ratios[name]) and ratios[name] > 0, (key, name)
        assert case["responder_bad_digest"] == 0, key

    # Each case is what it says: version, cookies seen on both sides, digest in use.
    assert cases["v2"]["version"] == 2
    assert all(cases[k]["version"] == 3 for k in CASES[1:])
    assert cases["v2"]["ratio_to_v2"]["sessions_per_second"] == 1.0
    for key in ("v2", "v3", "v3-sha1"):
        assert cases[key]["initiator_cookie_lengths"] == [[0, 0]], key
    assert cases["v3-cookie8-md5"]["initiator_cookie_lengths"] == [[8, 8]]
    assert cases["v3-cookie8-md5"]["responder_cookie_lengths"] == [[8, 8]]
    assert cases["v3"]["responder_digest_types"] == []
    assert cases["v3-cookie8-md5"]["responder_digest_types"] == [0]  # HMAC-MD5
    assert cases["v3-sha1"]["responder_digest_types"] == [1]  # HMAC-SHA-1

    headline = report["headline"]
    v3_rate = cases["v3"]["ratio_to_v2"]["sessions_per_second"]
    assert headline["v3_over_v2_sessions_per_second"] == v3_rate
    assert _number(headline["v3_over_v2_responder_cpu_us_per_session"])
    assert "L2TPv2 plain" in proc.stdout and "headline" in proc.stdout
