"""A sample of the config fuzz through the real executables (see the unit sweep in
``tests/unit/test_hardening_config_fuzz.py``): the same cases, as an operator would
meet them, with ``--check`` and with a plain start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_hardening_config_fuzz import MODULES, PER_DAEMON, cases, problems

pytestmark = pytest.mark.loopback

SAMPLE = 5
"""Cases per daemon run as subprocesses (spread over the 500 of the sweep)."""


@pytest.mark.parametrize("daemon", sorted(MODULES))
def test_sample_of_bad_configs_as_processes(daemon: str, tmp_path: Path) -> None:
    every = cases(daemon)
    step = PER_DAEMON // SAMPLE
    failures = []
    for number, index in enumerate(range(3, PER_DAEMON, step)):
        case = every[index]
        path = tmp_path / f"{daemon}-{index}.toml"
        path.write_bytes(case.data)
        # Alternate the dry run and a real start: both must stop at the file.
        mode = ["--check"] if number % 2 == 0 else []
        if not mode and daemon != "ql2tpd":
            mode = ["--null-dataplane"]
        proc = subprocess.run(
            [sys.executable, "-m", MODULES[daemon], *mode, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        found = problems(case, path, proc.returncode, proc.stdout, proc.stderr)
        if found:
            failures.append(f"#{index} {case.what} {mode}: {'; '.join(found)}: {proc.stderr!r}")
    assert not failures, "\n".join(failures)
