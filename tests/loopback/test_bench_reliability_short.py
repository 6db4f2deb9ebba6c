"""The reliability suite's --short mode runs and reports every part and row.

Only what must hold whatever the state of issue 13's fixes is asserted: the script
runs, every part produces every row with a verdict, the legitimate sessions survive
the short fuzz, and no daemon wrote a traceback. Timings and the goals themselves
are reported by the suite, not asserted (several fail before the fixes).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
SCENARIOS = {
    "sccrq_ns1",
    "sccrq_silent",
    "sccrp_acked_no_scccn",
    "scccn_silent",
    "icrq_silent",
    "icrp_acked_no_iccn",
    "iccn_silent",
}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _run_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.mark.loopback
def test_bench_reliability_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reliability.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_reliability.py"), "--short", "--json-out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["short"] is True and isinstance(report["date"], str)
    assert isinstance(report["machine"]["nproc"], int)
    parts = report["parts"]
    assert list(parts) == ["loss", "fuzz", "flood", "halfopen", "sigterm"]
    for name, part in parts.items():
        assert part["conditions"], name
        assert part["cases"], name
        for case in part["cases"]:
            assert "error" not in case, (name, case)
            assert case["result"] in ("PASS", "FAIL", "report"), (name, case)

    loss = {(c["version"], c["loss"]): c for c in parts["loss"]["cases"]}
    assert set(loss) == {(v, r) for v in (2, 3) for r in (0.1, 0.3, 0.5)}
    for case in loss.values():
        assert case["sessions"] == 20
        assert 0 <= case["both_up"] <= case["sessions"]
        assert case["lost"] == case["sessions"] - case["both_up"]
        assert case["failed"] + case["pending_at_limit"] == case["lost"]
        assert _number(case["seconds"]) and _number(case["lns_stale_established"])
        assert case["relay_dropped"] <= case["relay_datagrams"]

    (fuzz,) = parts["fuzz"]["cases"]
    assert fuzz["datagrams_sent"] == 5000
    assert fuzz["legit_lost"] == 0 and fuzz["legit_alive"] == fuzz["legit_sessions"]
    assert fuzz["new_session_after"] is True
    assert fuzz["tracebacks"] == 0 and fuzz["unhandled_lines"] == 0, fuzz["first_error"]
    assert _number(fuzz["rss_before_mib"]) and fuzz["rss_before_mib"] > 0

    flood = {c["ns"]: c for c in parts["flood"]["cases"]}
    assert set(flood) == {0, 1}
    for case in flood.values():
        assert case["sent"] == 2000
        assert _number(case["unloaded_accept_share"]) and _number(case["rss_peak_mib"])
        assert case["unloaded_attempts"] > 0
        assert case["tracebacks"] == 0, case["first_error"]

    halfopen = {c["case"]: c for c in parts["halfopen"]["cases"]}
    assert set(halfopen) == SCENARIOS
    for case in halfopen.values():
        assert not case["script_problem"], case
        assert case["reaped"] == "not reaped" or _number(case["reaped_s"])
        assert case["tracebacks"] == 0

    (sigterm,) = parts["sigterm"]["cases"]
    assert sigterm["tunnels_up"] == 50
    assert sigterm["tracebacks"] == 0
    assert _number(sigterm["stopccn_received"]) and sigterm["stopccn_received"] <= 50

    rows = report["summary"]
    assert len(rows) == sum(len(p["cases"]) for p in parts.values())
    for header in ("== loss ==", "== fuzz ==", "== flood ==", "== halfopen ==", "== sigterm =="):
        assert header in proc.stdout
    assert "== summary ==" in proc.stdout

    # The hook in benchmarks/run.py: registered, and its table prints these rows.
    run = _run_module()
    assert "reliability" in run.SECTIONS
    title = run.SECTIONS["reliability"][0]
    run.print_table("reliability", title, {"status": "measured", "conditions": {}, "cases": rows})
    printed = capsys.readouterr().out
    assert "[reliability]" in printed and "halfopen" in printed and "sigterm" in printed
