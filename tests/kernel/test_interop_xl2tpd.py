"""Interop with xl2tpd, the incumbent: our kl2tpd against an xl2tpd LNS, xl2tpd's LAC against
our l2tp-lns. Real kernel data plane, real pppd on both sides, ping across ppp, and no
kernel state or pppd left on either side after the tunnel is torn down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.kernel.conftest import VethPair
from tests.kernel.daemons import ManagedProcess
from tests.kernel.test_l2tpv2_pppd import Lac, Lns, _l2tp_state
from tests.kernel.xl2tpd_harness import (
    Auth,
    Xl2tpd,
    kill_pids,
    lac_config,
    lns_config,
    pids_matching,
    ping,
    ppp_addresses,
    wait_for,
)

pytestmark = pytest.mark.kernel

SECRET = "interop-secret"


@pytest.fixture
def cleanup() -> Iterator[list[object]]:
    things: list[object] = []
    yield things
    for thing in things:
        if isinstance(thing, Xl2tpd):
            thing.stop()
        elif isinstance(thing, ManagedProcess):
            thing.kill()
    kill_pids(pids_matching(["pppd", "pppol2tp"]))


def _wait(predicate: Callable[[], bool], timeout: float, what: str, *logs: ManagedProcess) -> None:
    """wait_for, with every daemon's log as it is at the time of failure."""
    try:
        wait_for(predicate, timeout, what)
    except AssertionError as exc:
        raise AssertionError("\n".join([str(exc), *(x.output() for x in logs)])) from None


@pytest.mark.parametrize("auth", [None, Auth(secret=SECRET)], ids=["plain", "challenge"])
def test_kl2tpd_against_xl2tpd_lns(
    veth_pair: VethPair, tmp_path: Path, cleanup: list[object], auth: Auth | None
) -> None:
    pair = veth_pair
    lns = Xl2tpd(
        pair.ns_a,
        tmp_path,
        "xlns",
        lns_config(
            listen=pair.a4,
            hostname="xlns",
            local_ip="10.60.0.1",
            ip_range="10.60.0.2-10.60.0.9",
            pppoptfile=tmp_path / "xlns.ppp-options",
            auth=auth,
        ),
        secrets=f"xlns ourlac {SECRET}\nourlac xlns {SECRET}\n" if auth else "",
    )
    cleanup.append(lns)
    lns.start()
    secure = f'secret = "{SECRET}"\nhide_avps = true\n' if auth else ""
    conf = f"""
[tunnel.t1]
peer = "{pair.a4}:1701"
version = "l2tpv2"
encap = "udp"
host_name = "ourlac"
{secure}
[tunnel.t1.session.s1]
pseudowire = "ppp"
pppd_options = ["noauth", "nodefaultroute", "noipdefault", "lcp-echo-interval", "0"]
"""
    lac = Lac(pair.ns_b, conf, tmp_path, "kl2tpd")
    cleanup.append(lac)
    lac.start()
    _wait(lambda: bool(ppp_addresses(pair.ns_b)), 60, "ppp up", lns, lac)
    ((_ifname, (_local, peer)),) = ppp_addresses(pair.ns_b).items()
    assert peer == "10.60.0.1"
    result = ping(pair.ns_b, peer, count=3)
    assert result.returncode == 0, result.stdout + lns.output() + lac.output()

    if auth is None:
        # xl2tpd's side ends it (SIGTERM: it clears its calls and tunnels); kl2tpd must
        # remove its kernel tunnel, session and pppd.
        lns.stop()
        _wait(lambda: _l2tp_state(pair.ns_b) == ([], []), 30, "kl2tpd cleanup", lac)
        _wait(lambda: not pids_matching(["pppd", "pppol2tp"]), 30, "kl2tpd's pppd to exit", lac)
        assert "closed (peer" in lac.output(), lac.output()  # by xl2tpd's StopCCN, not a timeout
        lac.stop()
    else:
        assert lac.stop() == 0, lac.output()  # StopCCN to xl2tpd
        _wait(lambda: _l2tp_state(pair.ns_a) == ([], []), 30, "xl2tpd cleanup", lns)
        wait_for(lambda: not lns.pppd_pids(), 30, "xl2tpd's pppd to exit")
    assert _l2tp_state(pair.ns_a) == ([], []) and _l2tp_state(pair.ns_b) == ([], [])


@pytest.mark.parametrize("auth", [None, Auth(secret=SECRET)], ids=["plain", "challenge"])
def test_xl2tpd_lac_against_our_lns(
    veth_pair: VethPair, tmp_path: Path, cleanup: list[object], auth: Auth | None
) -> None:
    pair = veth_pair
    secure = f'secret = "{SECRET}"\nhide_avps = true\n' if auth else ""
    conf = f"""
[listener.main]
listen = "{pair.a4}:1701"
version = "l2tpv2"
host_name = "ourlns"
{secure}
pppd_options = ["noauth", "nodefaultroute", "lcp-echo-interval", "0", "10.61.0.1:10.61.0.2"]
"""
    lns = Lns(pair.ns_a, conf, tmp_path, "lns")
    cleanup.append(lns)
    lns.start()
    lac = Xl2tpd(
        pair.ns_b,
        tmp_path,
        "xlac",
        lac_config(
            listen=pair.b4,
            name="uplink",
            lns=pair.a4,
            hostname="xlac",
            pppoptfile=tmp_path / "xlac.ppp-options",
            auth=auth,
        ),
        secrets=f"xlac ourlns {SECRET}\nourlns xlac {SECRET}\n" if auth else "",
    )
    cleanup.append(lac)
    lac.start()
    lac.control("c uplink")
    _wait(lambda: bool(ppp_addresses(pair.ns_b)), 60, "ppp up", lns, lac)
    ((_ifname, (local, peer)),) = ppp_addresses(pair.ns_b).items()
    assert (local, peer) == ("10.61.0.2", "10.61.0.1")
    result = ping(pair.ns_b, peer, count=3)
    assert result.returncode == 0, result.stdout + lns.output() + lac.output()
    tunnels, sessions = _l2tp_state(pair.ns_a)
    assert len(tunnels) == 1 and len(sessions) == 1

    if auth is None:
        # Our LNS ends it: StopCCN; xl2tpd must drop its kernel tunnel, session and pppd.
        assert lns.stop() == 0, lns.output()
        _wait(lambda: _l2tp_state(pair.ns_b) == ([], []), 30, "xl2tpd LAC cleanup", lac)
        wait_for(lambda: not lac.pppd_pids(), 30, "xl2tpd's pppd to exit")
        assert _l2tp_state(pair.ns_a) == ([], [])
    else:
        lac.control("d uplink")  # xl2tpd hangs up: CDN and StopCCN to our LNS
        _wait(lambda: _l2tp_state(pair.ns_a) == ([], []), 30, "LNS cleanup", lns)
        wait_for(
            lambda: not pids_matching(["pppd", "pppol2tp_lns_mode"]), 30, "our LNS's pppd to exit"
        )
        assert lns.stop() == 0, lns.output()
