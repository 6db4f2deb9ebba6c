"""Proof that the kernel tier is real: L2TP modules, genl family, traffic across a pseudowire.

This is the foundation's smoke test. It checks the kernel itself with the
independent tools (iproute2, ping) so that a broken project API cannot make it
pass; the API's own kernel tests live beside it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import platform
import subprocess
import uuid

import pytest

from tests.helpers import require_tool


def _require_l2tp_kernel() -> None:
    subprocess.run(["modprobe", "-a", "l2tp_eth", "l2tp_ip", "l2tp_ip6"], check=False)
    if not os.path.exists("/sys/module/l2tp_netlink") and not os.path.exists(
        "/sys/module/l2tp_core"
    ):
        message = f"kernel {platform.release()} has no L2TP support"
        if os.environ.get("L2TP_REQUIRE_KERNEL") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _sh(script: str) -> str:
    done = subprocess.run(
        ["/bin/sh", "-ec", script], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode:
        raise AssertionError(f"script failed ({done.returncode}):\n{script}\n{done.stderr}")
    return done.stdout


def test_genl_family_resolves_from_python() -> None:
    """The l2tp generic netlink family is visible to pyroute2 (autoloads l2tp_netlink)."""
    _require_l2tp_kernel()
    from pyroute2.netlink.generic import GenericNetlinkSocket

    sock = GenericNetlinkSocket()
    try:
        sock.bind("l2tp", None)
        assert sock.prid > 0
    finally:
        sock.close()
    print(f"guest kernel: {platform.release()}")


@pytest.mark.parametrize("encap", ["udp", "ip"])
def test_static_l2tpv3_ethernet_pseudowire_carries_ping(encap: str) -> None:
    """Two namespaces on a veth pair, an unmanaged L2TPv3 session each, ping across l2tpeth.

    The tunnels and sessions are made with the project's own netlink API; iproute2
    and ping, independent of it, check the result.
    """
    _require_l2tp_kernel()
    require_tool("ip")
    require_tool("ping")
    from l2tp.kernel import EncapType, L2tpNetlink, SessionConfig, TunnelConfig

    tag = uuid.uuid4().hex[:6]
    a, b = f"pa{tag}", f"pb{tag}"
    udp = encap == "udp"
    _sh(
        f"""
        ip netns add {a}; ip netns add {b}
        ip link add va{tag} netns {a} type veth peer name vb{tag} netns {b}
        ip -n {a} addr add 192.0.2.1/24 dev va{tag}; ip -n {a} link set va{tag} up
        ip -n {b} addr add 192.0.2.2/24 dev vb{tag}; ip -n {b} link set vb{tag} up
        """
    )
    try:
        for ns, tid, ptid, sid, psid, local, peer, name in (
            (a, 10, 20, 1, 2, "192.0.2.1", "192.0.2.2", "l2ta"),
            (b, 20, 10, 2, 1, "192.0.2.2", "192.0.2.1", "l2tb"),
        ):
            with L2tpNetlink(netns=ns) as nl:
                nl.create_tunnel(
                    TunnelConfig(
                        tunnel_id=tid,
                        peer_tunnel_id=ptid,
                        encap=EncapType.UDP if udp else EncapType.IP,
                        local=ipaddress.ip_address(local),
                        peer=ipaddress.ip_address(peer),
                        local_port=5000 if udp else 0,
                        peer_port=5000 if udp else 0,
                    )
                )
                nl.create_session(
                    SessionConfig(tunnel_id=tid, session_id=sid, peer_session_id=psid, ifname=name)
                )
        _sh(
            f"""
            ip -n {a} addr add 198.51.100.1/24 dev l2ta; ip -n {a} link set l2ta up
            ip -n {b} addr add 198.51.100.2/24 dev l2tb; ip -n {b} link set l2tb up
            """
        )
        shown = json.loads(_sh(f"ip -n {a} -j l2tp show session"))
        assert [(s["tunnel_id"], s["session_id"], s["peer_session_id"]) for s in shown] == [
            (10, 1, 2)
        ]
        out = _sh(f"ip netns exec {a} ping -n -c 3 -i 0.2 -W 2 198.51.100.2")
        assert " 0% packet loss" in out, out
        rx = json.loads(_sh(f"ip -n {b} -j -s link show l2tb"))[0]["stats64"]["rx"]["packets"]
        assert rx >= 3
    finally:
        subprocess.run(["ip", "netns", "del", a], check=False)
        subprocess.run(["ip", "netns", "del", b], check=False)
