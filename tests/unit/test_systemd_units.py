"""contrib/systemd: every daemon has a unit, each passes ``systemd-analyze verify`` and
keeps the hardening the operations guide promises."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import require_tool

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "contrib" / "systemd"
DAEMONS = ("kl2tpd", "l2tp-lns", "l2tpd", "ql2tpd")
INSTALLED = "/usr/local/bin/"
"""Where ``pip install`` as root puts the scripts on Debian (docs/operations.md)."""


def _unit_files() -> list[Path]:
    return sorted(UNITS.glob("*.service"))


def _settings(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of the unit (comments and sections dropped), by key."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def _program(path: Path) -> str:
    (exec_start,) = _settings(path)["ExecStart"]
    match = re.fullmatch(re.escape(INSTALLED) + r"(\S+) /etc/l2tp/\S+\.toml( .*)?", exec_start)
    assert match is not None, exec_start
    return match[1]


def _verify(unit: Path, tmp_path: Path) -> str:
    """``systemd-analyze verify`` on a copy whose ExecStart names this checkout's script
    (verify insists that the binary exists); a template is checked as an instance.
    Returns everything it printed: a clean unit prints nothing."""
    tool = require_tool("systemd-analyze")
    program = _program(unit)
    script = Path(sys.executable).parent / program
    assert script.exists(), f"{program} is not installed in the virtualenv"
    name = unit.name.replace("@.service", "@test.service")
    copy = tmp_path / name
    copy.write_text(unit.read_text().replace(INSTALLED + program, str(script)))
    proc = subprocess.run(
        [tool, "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # verify also loads the machine's own units (dependencies, targets) and prints
    # their warnings (e.g. Debian's freeradius.service: "uses MemoryLimit="): not ours.
    return "".join(
        line
        for line in (proc.stdout + proc.stderr).splitlines(keepends=True)
        if not (
            line.startswith(("/lib/systemd/", "/usr/lib/systemd/", "/etc/systemd/"))
            and not line.startswith(str(copy))
        )
    )


def test_every_daemon_has_a_unit() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(DAEMONS) <= set(scripts)
    assert {_program(u) for u in _unit_files()} == set(DAEMONS)
    assert {u.name for u in _unit_files()} >= {f"{d}.service" for d in DAEMONS}


@pytest.mark.parametrize("unit", _unit_files(), ids=lambda p: p.name)
def test_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    assert _verify(unit, tmp_path) == ""


def test_verify_check_catches_mistakes(tmp_path: Path) -> None:
    """The check above fails on a unit systemd would only warn about (exit status 0)."""
    broken = tmp_path / "src" / "kl2tpd.service"
    broken.parent.mkdir()
    text = (UNITS / "kl2tpd.service").read_text()
    broken.write_text(text.replace("ProtectHome=yes", "ProtectHomes=yes"))
    assert "Unknown key 'ProtectHomes'" in _verify(broken, tmp_path)


@pytest.mark.parametrize("unit", _unit_files(), ids=lambda p: p.name)
def test_hardening(unit: Path) -> None:
    s = _settings(unit)
    program = _program(unit)
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] and s["Restart"] == ["on-failure"]
    assert s["RuntimeDirectory"] == ["l2tp"] and s["RuntimeDirectoryPreserve"] == ["yes"]
    assert s["ProtectSystem"] == ["strict"] and s["ProtectHome"] == ["yes"]
    assert s["PrivateTmp"] == ["yes"] and s["NoNewPrivileges"] == ["yes"]
    caps = set(s["CapabilityBoundingSet"][0].split())
    assert caps == {"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"}
    assert set(s["AmbientCapabilities"][0].split()) == caps
    families = set(s["RestrictAddressFamilies"][0].split())
    assert {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"} <= families
    if program == "ql2tpd":  # no pppd, no PPP, no reload
        assert "ExecReload" not in s and s["PrivateDevices"] == ["yes"]
        assert "AF_PPPOX" not in families
    else:
        assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
        assert s["DevicePolicy"] == ["closed"] and s["DeviceAllow"] == ["/dev/ppp rw"]
        assert "AF_PPPOX" in families
    if "@" in unit.name:  # instances need their own file and control socket
        assert "%i" in s["ExecStart"][0].split("--control")[0]
        assert "--control /run/l2tp/" in s["ExecStart"][0] and "-%i.sock" in s["ExecStart"][0]
