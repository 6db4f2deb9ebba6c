"""An L2TPv3 PPP pseudowire (RFC 4591) between two l2tpd, with pppd on each end.

The Linux kernel's PPPoL2TP supports L2TPv3 sessions, so l2tpd hands a PPP
pseudowire to pppd exactly as kl2tpd does for L2TPv2: kernel session, PPPoL2TP
socket (the v3 address layout), ``pppd plugin pppol2tp.so``. PPP must come up
and carry a ping; SIGTERM to the initiator must leave no kernel state and no
pppd on either side.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import require_tool
from tests.kernel.conftest import VethPair, wait_until
from tests.kernel.daemons import DaemonProcess
from tests.kernel.test_l2tpv2_pppd import _l2tp_state, _ppp_addr, _pppd_running, procs

pytestmark = pytest.mark.kernel

__all__ = ["procs"]  # the fixture, re-used


class L2tpd(DaemonProcess):
    MODULE = "l2tp.daemons.l2tpd"
    VERBOSITY = "-vv"
    FORK = True


def test_l2tpv3_ppp_pseudowire_carries_ping_and_cleans_up(
    veth_pair: VethPair, procs: list[DaemonProcess], tmp_path: Path
) -> None:
    require_tool("pppd")
    require_tool("ping")
    pair = veth_pair
    responder = f"""
[listener.v3]
listen = "{pair.a4}:1701"
secret = "ppp-v3"
hello_timeout = 5000

[listener.v3.session.dialin]
pseudowire = "ppp"
cookie_len = 4
pppd_options = ["noauth", "nodefaultroute", "10.58.0.1:10.58.0.2", "lcp-echo-interval", "0"]
"""
    initiator = f"""
[tunnel.t1]
peer = "{pair.a4}:1701"
secret = "ppp-v3"
hello_timeout = 5000

[tunnel.t1.session.dialin]
pseudowire = "ppp"
cookie_len = 8
pppd_options = ["noauth", "nodefaultroute", "lcp-echo-interval", "0"]
"""
    a = L2tpd(pair.ns_a, responder, tmp_path, "a")
    procs.append(a)
    a.start()
    b = L2tpd(pair.ns_b, initiator, tmp_path, "b")
    procs.append(b)
    b.start()
    try:
        wait_until(lambda: _ppp_addr(pair.ns_b) == "10.58.0.2", timeout=60, what="ppp up")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- A\n{a.output()}\n--- B\n{b.output()}") from None
    ping = subprocess.run(
        ["ip", "netns", "exec", pair.ns_b, "ping", "-n", "-c", "3", "-i", "0.3", "-W", "3",
         "10.58.0.1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ping.returncode == 0, ping.stdout + a.output() + b.output()
    tunnels, sessions = _l2tp_state(pair.ns_a)
    assert len(tunnels) == 1 and len(sessions) == 1, (tunnels, sessions)
    assert b.stop() == 0, b.output()
    wait_until(lambda: _l2tp_state(pair.ns_a) == ([], []), timeout=30, what="A cleanup")
    wait_until(lambda: not _pppd_running(), timeout=30, what="pppd to exit")
    assert a.stop() == 0, a.output()
    assert _l2tp_state(pair.ns_b) == ([], [])
