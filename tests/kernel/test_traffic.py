"""Traffic through unmanaged L2TPv3 Ethernet sessions between two namespaces.

Both ends are set up with our API (one client per namespace, no extra
process); iproute2 addresses the l2tpeth interfaces and ping crosses them.
Statistics read back through the API must show the packets.
"""

from __future__ import annotations

import subprocess
from ipaddress import ip_address

import pytest

from l2tp.kernel import EncapType, L2SpecType, L2tpNetlink, SessionConfig, TunnelConfig
from tests.helpers import require_tool
from tests.kernel.conftest import VethPair, ip_batch


@pytest.mark.parametrize(
    ("encap", "family", "seq"),
    [
        pytest.param(EncapType.UDP, 4, True, id="udp-ipv4-seq"),
        pytest.param(EncapType.UDP, 6, False, id="udp-ipv6"),
        pytest.param(EncapType.IP, 4, False, id="ip-ipv4"),
        pytest.param(EncapType.IP, 6, True, id="ip-ipv6-seq"),
    ],
)
def test_ping_across_l2tpeth(veth_pair: VethPair, encap: EncapType, family: int, seq: bool) -> None:
    n = [EncapType.UDP, EncapType.IP].index(encap) * 2 + (family == 6)
    a_addr = ip_address(veth_pair.a4 if family == 4 else veth_pair.a6)
    b_addr = ip_address(veth_pair.b4 if family == 4 else veth_pair.b6)
    tid_a, tid_b, sid_a, sid_b = 1000 + n, 2000 + n, 3000 + n, 4000 + n
    cookie_a, cookie_b = bytes([n + 1] * 4), bytes(range(n, n + 8))
    ports = {"a": 17000 + n, "b": 18000 + n} if encap == EncapType.UDP else {"a": 0, "b": 0}
    ifname = f"l2t{n}"
    inner_a, inner_b = f"10.210.{n}.1", f"10.210.{n}.2"
    with (
        L2tpNetlink(netns=veth_pair.ns_a) as nl_a,
        L2tpNetlink(netns=veth_pair.ns_b) as nl_b,
    ):
        for nl, tid, ptid, local, peer, lp, pp in (
            (nl_a, tid_a, tid_b, a_addr, b_addr, ports["a"], ports["b"]),
            (nl_b, tid_b, tid_a, b_addr, a_addr, ports["b"], ports["a"]),
        ):
            nl.create_tunnel(
                TunnelConfig(
                    tunnel_id=tid,
                    peer_tunnel_id=ptid,
                    encap=encap,
                    local=local,
                    peer=peer,
                    local_port=lp,
                    peer_port=pp,
                )
            )
        # A sends cookie_a and checks cookie_b on receive; B the other way round.
        common = {"l2spec_type": L2SpecType.DEFAULT, "send_seq": seq, "recv_seq": seq}
        nl_a.create_session(
            SessionConfig(
                tunnel_id=tid_a,
                session_id=sid_a,
                peer_session_id=sid_b,
                cookie=cookie_a,
                peer_cookie=cookie_b,
                ifname=ifname,
                **common,  # type: ignore[arg-type]
            )
        )
        nl_b.create_session(
            SessionConfig(
                tunnel_id=tid_b,
                session_id=sid_b,
                peer_session_id=sid_a,
                cookie=cookie_b,
                peer_cookie=cookie_a,
                ifname=ifname,
                **common,  # type: ignore[arg-type]
            )
        )
        try:
            for ns, addr in ((veth_pair.ns_a, inner_a), (veth_pair.ns_b, inner_b)):
                ip_batch([f"addr add {addr}/24 dev {ifname}", f"link set {ifname} up"], netns=ns)
            ping = subprocess.run(
                [
                    require_tool("ip"),
                    "netns",
                    "exec",
                    veth_pair.ns_a,
                    "ping",
                    "-n",
                    "-c",
                    "3",
                    "-i",
                    "0.2",
                    "-w",
                    "15",
                    inner_b,
                ],
                capture_output=True,
                text=True,
            )
            assert ping.returncode == 0, ping.stdout + ping.stderr
            stats_a = nl_a.session_stats(tid_a, sid_a)
            stats_b = nl_b.session_stats(tid_b, sid_b)
            assert stats_a.tx_packets >= 3 and stats_a.rx_packets >= 3, stats_a
            assert stats_b.rx_packets >= 3 and stats_b.tx_packets >= 3, stats_b
            assert stats_a.rx_bytes > 0 and stats_a.rx_errors == 0
            assert nl_a.tunnel_stats(tid_a).tx_packets >= 3
        finally:
            nl_a.delete_tunnel(tid_a)
            nl_b.delete_tunnel(tid_b)
