"""Our kl2tpd (LAC) against our l2tp-lns, with the kernel data plane and real pppd.

Each daemon runs as a real process in its own network namespace; the PPP
session is handed to pppd over a PPPoL2TP socket and must carry a ping. Then a
SIGTERM on one side must leave no kernel tunnel, no kernel session and no pppd
behind on either side.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import require_tool
from tests.kernel.conftest import VethPair, wait_until
from tests.kernel.daemons import DaemonProcess

pytestmark = pytest.mark.kernel


class Lns(DaemonProcess):
    MODULE = "l2tp.daemons.lns"
    VERBOSITY = "-vv"
    FORK = True


class Lac(DaemonProcess):
    MODULE = "l2tp.daemons.kl2tpd"
    VERBOSITY = "-vv"
    FORK = True


@pytest.fixture
def procs() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for p in started:
        p.kill()
    subprocess.run(["pkill", "-f", "pppol2tp"], check=False)


def _l2tp_state(ns: str) -> tuple[list[object], list[object]]:
    out = []
    for what in ("tunnel", "session"):
        text = subprocess.run(
            ["ip", "-n", ns, "-j", "l2tp", "show", what], capture_output=True, text=True
        ).stdout
        out.append(json.loads(text or "[]"))
    return out[0], out[1]


def _ppp_addr(ns: str) -> str | None:
    text = subprocess.run(
        ["ip", "-n", ns, "-j", "addr", "show"], capture_output=True, text=True
    ).stdout
    for link in json.loads(text or "[]"):
        if link["ifname"].startswith("ppp"):
            for addr in link.get("addr_info", []):
                if addr.get("family") == "inet":
                    return str(addr["local"])
    return None


def _pppd_running() -> bool:
    return subprocess.run(["pgrep", "-f", "pppol2tp"], capture_output=True).returncode == 0


@pytest.mark.parametrize("auth", ["plain", "challenge+hidden"])
def test_kl2tpd_to_our_lns_ppp_carries_ping_and_teardown_from_either_side_is_clean(
    veth_pair: VethPair, procs: list[DaemonProcess], tmp_path: Path, auth: str
) -> None:
    require_tool("pppd")
    require_tool("ping")
    pair = veth_pair
    secure = 'secret = "s3cret-shared"\nhide_avps = true\n' if auth != "plain" else ""
    lns_conf = f"""
[listener.main]
listen = "{pair.a4}:1701"
version = "l2tpv2"
hello_timeout = 5000
{secure}
pppd_options = ["noauth", "nodefaultroute", "10.56.0.1:10.56.0.2", "lcp-echo-interval", "0"]
"""
    # go-l2tp's kl2tpd takes pppd arguments from a file (pppd_args): use that form here.
    args = tmp_path / "pppd.args"
    args.write_text("noauth\nnodefaultroute\nlcp-echo-interval 0\n")
    lac_conf = f"""
[tunnel.t1]
peer = "{pair.a4}:1701"
version = "l2tpv2"
encap = "udp"
{secure}
[tunnel.t1.session.s1]
pseudowire = "ppp"
pppd_args = "{args}"
"""
    lns = Lns(pair.ns_a, lns_conf, tmp_path, "lns")
    procs.append(lns)
    lns.start()
    lac = Lac(pair.ns_b, lac_conf, tmp_path, "lac")
    procs.append(lac)
    lac.start()
    try:
        wait_until(lambda: _ppp_addr(pair.ns_b) == "10.56.0.2", timeout=60, what="ppp up")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- LNS\n{lns.output()}\n--- LAC\n{lac.output()}") from None
    ping = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            pair.ns_b,
            "ping",
            "-n",
            "-c",
            "3",
            "-i",
            "0.3",
            "-W",
            "3",
            "10.56.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ping.returncode == 0, ping.stdout + lns.output() + lac.output()
    tunnels, sessions = _l2tp_state(pair.ns_a)
    assert len(tunnels) == 1 and len(sessions) == 1

    if auth == "plain":
        # The LNS goes away: StopCCN; the LAC must remove its kernel state and pppd.
        assert lns.stop() == 0, lns.output()
        wait_until(lambda: _l2tp_state(pair.ns_b) == ([], []), timeout=30, what="LAC cleanup")
        wait_until(lambda: not _pppd_running(), timeout=30, what="pppd to exit")
        assert "closed (peer" in lac.output(), lac.output()
        lac.stop()  # kl2tpd exits by itself once no tunnel is left; either way it is gone
    else:
        # The LAC goes away: StopCCN; the LNS must remove its kernel state and pppd.
        assert lac.stop() == 0, lac.output()
        wait_until(lambda: _l2tp_state(pair.ns_a) == ([], []), timeout=30, what="LNS cleanup")
        wait_until(lambda: not _pppd_running(), timeout=30, what="pppd to exit")
        assert lns.stop() == 0, lns.output()
    assert _l2tp_state(pair.ns_a) == ([], []) and _l2tp_state(pair.ns_b) == ([], [])
