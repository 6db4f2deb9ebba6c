"""Real xl2tpd LAC <-> LNS captures as test vectors for our decoder and tshark (issue 3).

In two namespaces joined by a veth, an xl2tpd LNS and an xl2tpd LAC (kernel
mode) bring up a tunnel and a PPP session (pppd without authentication on both
sides), ping across ppp, hang the call up (SIGTERM to the LAC's pppd: CDN) and
close the tunnel (``d LAC``: StopCCN), all while tcpdump records UDP 1701 on
the LNS's veth. The capture is then decoded by :func:`decode_capture` (no
malformed packet, the expected message types) and compared field by field with
tshark (:func:`tests.tshark_oracle.assert_matches_tshark`). Once plain, once
with tunnel authentication (``challenge = yes``) and ``hidden bit = yes``.

The captures are saved into ``$L2TP_VM_RESULTS`` (``xl2tpd-*.pcap``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from l2tp.cli.decode import decode_capture
from tests.helpers import require_tool
from tests.kernel.conftest import VethPair
from tests.kernel.xl2tpd_harness import (
    Auth,
    Capture,
    kill_pids,
    l2tp_tunnel_count,
    pids_matching,
    ping,
    ppp_addresses,
    save_artifact,
    wait_for,
    xl2tpd_pair,
)
from tests.tshark_oracle import assert_matches_tshark

pytestmark = pytest.mark.kernel

LNS_PPP_IP = "10.57.0.1"
LAC_PPP_RANGE = "10.57.0.2-10.57.0.9"
SECRET = "xl2tpd-capture-secret"
CHALLENGE, CHALLENGE_RESPONSE, RANDOM_VECTOR = 11, 13, 36

SETUP = ("SCCRQ", "SCCRP", "SCCCN", "ICRQ", "ICRP", "ICCN")


def _records(path: Path, secret: bytes | None) -> list[dict[str, Any]]:
    return list(decode_capture(path, secret=secret, ports=(1701,)))


def _types(records: list[dict[str, Any]]) -> list[str]:
    return [r["message_type"] for r in records if r.get("kind") == "control"]


def _torn_down(path: Path, secret: bytes | None) -> bool:
    """The StopCCN was sent and acknowledged (a ZLB after it)."""
    types = _types(_records(path, secret)) if path.exists() else []
    return "STOPCCN" in types and "ZLB" in types[types.index("STOPCCN") :]


@pytest.mark.parametrize("variant", ["plain", "auth-hidden"])
def test_xl2tpd_capture(variant: str, veth_pair: VethPair, tmp_path: Path) -> None:
    tshark = require_tool("tshark")
    require_tool("tcpdump")
    require_tool("pppd")
    require_tool("ping")
    auth = Auth(secret=SECRET, hidden=True) if variant == "auth-hidden" else None
    secret = SECRET.encode() if auth else None
    pcap = tmp_path / f"xl2tpd-{variant}.pcap"
    capture = Capture(ns=veth_pair.ns_a, interface="va", path=pcap)
    try:
        capture.start()
        with xl2tpd_pair(
            lns_ns=veth_pair.ns_a,
            lns_addr=veth_pair.a4,
            lac_ns=veth_pair.ns_b,
            lac_addr=veth_pair.b4,
            workdir=tmp_path,
            auth=auth,
            lns_ppp_ip=LNS_PPP_IP,
            lac_ppp_range=LAC_PPP_RANGE,
        ) as pair:
            pair.dial()

            def both_up() -> bool:
                return bool(ppp_addresses(veth_pair.ns_a)) and bool(ppp_addresses(veth_pair.ns_b))

            try:
                wait_for(both_up, 40, "ppp interfaces with addresses on both sides")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{pair.output()}") from None
            ((_lac_local, lac_peer),) = ppp_addresses(veth_pair.ns_b).values()
            assert lac_peer == LNS_PPP_IP
            done = ping(veth_pair.ns_b, LNS_PPP_IP)
            assert done.returncode == 0, done.stdout + done.stderr

            # Hang the call up from the LAC side: its xl2tpd sees pppd exit, sends a CDN.
            lac_pppd = pair.lac.pppd_pids()
            assert len(lac_pppd) == 1, lac_pppd
            kill_pids(lac_pppd)
            wait_for(lambda: not ppp_addresses(veth_pair.ns_a), 20, "LNS ppp interface to go")
            pair.disconnect()
            wait_for(lambda: _torn_down(pcap, secret), 20, "StopCCN and its acknowledgement")
            wait_for(lambda: l2tp_tunnel_count(veth_pair.ns_a) == 0, 20, "LNS kernel tunnel to go")
    finally:
        capture.stop()
        save_artifact(pcap)
        leftovers = pids_matching(["pppd", str(tmp_path)])
        kill_pids(leftovers)
    assert not leftovers, f"pppd processes left behind: {leftovers}"

    records = _records(pcap, secret)
    malformed = [r for r in records if r.get("kind") in ("malformed", "capture-error")]
    assert not malformed, malformed
    types = _types(records)
    counts = Counter(types)
    for name in (*SETUP, "CDN", "STOPCCN", "ZLB"):
        assert counts[name] >= 1, f"no {name} in {types}"
    assert types.index("SCCRQ") < types.index("SCCCN") < types.index("ICRQ")
    assert types.index("ICCN") < types.index("CDN") < types.index("STOPCCN")
    data = [r for r in records if r.get("kind") == "data"]
    assert data, "no L2TP data packets (PPP) in the capture"
    assert all(r["version"] == 2 for r in records if r.get("kind") in ("control", "data"))
    if auth is not None:
        sccrq = next(r for r in records if r.get("message_type") == "SCCRQ")
        sccrp = next(r for r in records if r.get("message_type") == "SCCRP")
        assert CHALLENGE in {a["type"] for a in sccrq["avps"]}
        assert CHALLENGE_RESPONSE in {a["type"] for a in sccrp["avps"]}
        # xl2tpd's "hidden bit = yes" adds a Random Vector but hides no AVP.
        assert any(a["type"] == RANDOM_VECTOR for r in records for a in r.get("avps", ()))
    assert_matches_tshark(tshark, pcap, secret=secret, ports=(1701,))
