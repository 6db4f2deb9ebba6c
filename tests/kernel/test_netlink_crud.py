"""Every create/modify/delete/get/dump path against iproute2 as the oracle.

Runs our API inside one namespace per module (``L2tpNetlink(netns=...)``, no
extra process) and reads the result back with ``ip -j l2tp show`` and
``ip -d -j link`` in a single ``ip -batch`` per check.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterator
from ipaddress import ip_address

import pytest

from l2tp.kernel import (
    AddressFamilyMismatch,
    AsyncL2tpNetlink,
    EncapType,
    IdInUse,
    InvalidSocket,
    L2SpecType,
    L2tpNetlink,
    PseudowireType,
    SessionConfig,
    SessionNotFound,
    TunnelConfig,
    TunnelNotFound,
    l2tpip_socket,
    pppol2tp_socket,
    tunnel_udp_socket,
)
from tests.kernel.conftest import ip_batch, ip_json, wait_until

LO4, PEER4 = ip_address("127.0.0.1"), ip_address("127.0.0.1")
LO6 = ip_address("::1")

VARIANTS = [
    pytest.param(2, EncapType.UDP, 4, id="v2-udp-ipv4"),
    pytest.param(2, EncapType.UDP, 6, id="v2-udp-ipv6"),
    pytest.param(3, EncapType.UDP, 4, id="v3-udp-ipv4"),
    pytest.param(3, EncapType.UDP, 6, id="v3-udp-ipv6"),
    pytest.param(3, EncapType.IP, 4, id="v3-ip-ipv4"),
    pytest.param(3, EncapType.IP, 6, id="v3-ip-ipv6"),
]


@pytest.fixture(scope="module")
def nl(netns: str) -> Iterator[L2tpNetlink]:
    with L2tpNetlink(netns=netns) as client:
        yield client


def _gone(nl: L2tpNetlink, tunnel_id: int) -> bool:
    return all(t.tunnel_id != tunnel_id for t in nl.dump_tunnels())


@pytest.mark.parametrize(("version", "encap", "family"), VARIANTS)
def test_unmanaged_tunnel_and_session_lifecycle(
    nl: L2tpNetlink, netns: str, version: int, encap: EncapType, family: int
) -> None:
    index = VARIANTS.index(next(p for p in VARIANTS if p.values == (version, encap, family)))
    tid, ptid, sid, psid = 100 + index, 200 + index, 300 + index, 400 + index
    lo = LO4 if family == 4 else LO6
    cfg = TunnelConfig(
        tunnel_id=tid,
        peer_tunnel_id=ptid,
        version=version,
        encap=encap,
        local=lo,
        peer=lo,
        local_port=10000 + index if encap == EncapType.UDP else 0,
        peer_port=11000 + index if encap == EncapType.UDP else 0,
        udp_csum=family == 4 and encap == EncapType.UDP,
        udp6_zero_csum_tx=family == 6 and encap == EncapType.UDP,
    )
    nl.create_tunnel(cfg)
    info = nl.get_tunnel(tid)
    assert (info.tunnel_id, info.peer_tunnel_id, info.version, info.encap) == (
        tid,
        ptid,
        version,
        encap,
    )
    assert info.local == lo and info.peer == lo
    assert info in nl.dump_tunnels()

    ifname = f"l2c{index}"
    if version == 3:
        scfg = SessionConfig(
            tunnel_id=tid,
            session_id=sid,
            peer_session_id=psid,
            cookie=b"\x01\x02\x03\x04",
            peer_cookie=bytes(range(1, 9)),
            l2spec_type=L2SpecType.DEFAULT,
            send_seq=True,
            recv_seq=True,
            reorder_timeout_ms=200,
            ifname=ifname,
            mtu=1300,
        )
    else:
        scfg = SessionConfig(
            tunnel_id=tid, session_id=sid, peer_session_id=psid, pw_type=PseudowireType.PPP
        )
    nl.create_session(scfg)
    session = nl.get_session(tid, sid)
    assert (session.peer_session_id, session.peer_tunnel_id, session.pw_type) == (
        psid,
        ptid,
        scfg.pw_type,
    )
    assert session.cookie == scfg.cookie and session.peer_cookie == scfg.peer_cookie
    assert session.send_seq == session.recv_seq == (version == 3)
    assert [s.session_id for s in nl.dump_sessions(tid)] == [sid]

    commands = [f"l2tp show tunnel tunnel_id {tid}", f"l2tp show session tunnel_id {tid}"]
    if version == 3:
        commands.append(f"link show dev {ifname}")
    docs = ip_json(commands, netns=netns)
    (tunnel_json,) = docs[0]
    assert tunnel_json["tunnel_id"] == tid and tunnel_json["peer_tunnel"] == ptid
    assert tunnel_json["encap"] == encap.name and tunnel_json["local"] == str(lo)
    if encap == EncapType.UDP:
        assert (tunnel_json["local_port"], tunnel_json["peer_port"]) == (
            cfg.local_port,
            cfg.peer_port,
        )
        if family == 4:
            assert tunnel_json["checksum"] is True
        else:  # iproute2 prints the *checksum* state: zero-csum TX flag means "tx off"
            assert tunnel_json["checksum_tx"] is False and tunnel_json["checksum_rx"] is True
    (session_json,) = docs[1]
    assert session_json["session_id"] == sid and session_json["peer_session_id"] == psid
    if version == 3:
        assert session_json["interface"] == ifname == session.ifname
        assert session_json["cookie"] == "01020304"
        assert session_json["peer_cookie"] == "0102030405060708"
        assert session_json["reorder_timeout"] == 200
        (link_json,) = docs[2]
        assert link_json["mtu"] == 1300

    # modify, then check with both readers
    nl.modify_session(tid, sid, send_seq=False, lns_mode=True, reorder_timeout_ms=0)
    nl.modify_tunnel(tid, debug=0)
    session = nl.get_session(tid, sid)
    assert not session.send_seq and session.lns_mode and session.reorder_timeout_ms == 0
    if version == 3:
        nl.modify_session(tid, sid, mtu=1200)
        (link_json,) = ip_json([f"link show dev {ifname}"], netns=netns)[0]
        assert link_json["mtu"] == 1200

    nl.delete_session(tid, sid)
    with pytest.raises(SessionNotFound):
        nl.get_session(tid, sid)
    nl.delete_tunnel(tid)
    wait_until(lambda: _gone(nl, tid), what=f"tunnel {tid} to go")
    assert ip_json([f"l2tp show tunnel tunnel_id {tid}"], netns=netns) in ([], [[]])


def test_errors_are_specific(nl: L2tpNetlink) -> None:
    cfg = TunnelConfig(
        tunnel_id=150, peer_tunnel_id=1, local=LO4, peer=PEER4, local_port=12001, peer_port=1
    )
    nl.create_tunnel(cfg)
    try:
        with pytest.raises(IdInUse) as in_use:
            nl.create_tunnel(cfg)
        assert in_use.value.errno == errno.EEXIST
        nl.create_session(SessionConfig(tunnel_id=150, session_id=1, peer_session_id=1))
        with pytest.raises(IdInUse):
            nl.create_session(SessionConfig(tunnel_id=150, session_id=1, peer_session_id=2))
        with pytest.raises(SessionNotFound) as missing:
            nl.delete_session(150, 99)
        assert missing.value.errno == errno.ENODEV
    finally:
        nl.delete_tunnel(150)
    with pytest.raises(TunnelNotFound):
        nl.get_tunnel(151)
    with pytest.raises(TunnelNotFound):
        nl.create_session(SessionConfig(tunnel_id=151, session_id=1, peer_session_id=1))
    with pytest.raises(AddressFamilyMismatch):
        TunnelConfig(tunnel_id=152, peer_tunnel_id=1, local=LO4, peer=LO6)
    # A UDP tunnel on an L2TPIP socket: the kernel refuses the socket.
    with l2tpip_socket(LO4, 153, netns=nl.netns) as sock, pytest.raises(InvalidSocket):
        nl.create_tunnel(TunnelConfig(tunnel_id=153, peer_tunnel_id=1, fd=sock.fileno()))


def test_async_client(netns: str) -> None:
    async def scenario() -> None:
        async with AsyncL2tpNetlink(netns=netns) as anl:
            await anl.create_tunnel(
                TunnelConfig(tunnel_id=160, peer_tunnel_id=2, local=LO6, peer=LO6, local_port=12002)
            )
            await anl.create_sessions(
                SessionConfig(tunnel_id=160, session_id=s, peer_session_id=s) for s in (1, 2, 3)
            )
            assert sorted(s.session_id for s in await anl.dump_sessions(160)) == [1, 2, 3]
            await anl.modify_session(160, 2, recv_seq=True)
            assert (await anl.get_session(160, 2)).recv_seq
            await anl.delete_sessions([(160, 1), (160, 2)])
            assert [s.session_id for s in await anl.dump_sessions(160)] == [3]
            assert (await anl.get_tunnel(160)).local == LO6
            await anl.delete_tunnel(160)
            with pytest.raises(TunnelNotFound):
                await anl.delete_tunnel(161)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("kind", "version"),
    [("udp4", 2), ("udp6", 2), ("udp4", 3), ("ip4", 3), ("ip6", 3)],
)
def test_managed_tunnel_closes_with_its_socket(nl: L2tpNetlink, kind: str, version: int) -> None:
    index = ["udp4", "udp6", "ip4", "ip6"].index(kind) + 10 * version
    tid = 500 + index
    lo = LO6 if kind.endswith("6") else LO4
    if kind.startswith("udp"):
        sock = tunnel_udp_socket(lo, 13000 + index, lo, 14000 + index, netns=nl.netns)
        encap = EncapType.UDP
    else:
        sock = l2tpip_socket(lo, tid, lo, 900, netns=nl.netns)
        encap = EncapType.IP
    cfg = TunnelConfig(
        tunnel_id=tid, peer_tunnel_id=900, version=version, encap=encap, fd=sock.fileno()
    )
    nl.create_tunnel(cfg)
    info = nl.get_tunnel(tid)
    assert info.encap == encap and info.local == lo
    pw = PseudowireType.PPP if version == 2 else PseudowireType.ETH
    nl.create_session(SessionConfig(tunnel_id=tid, session_id=7, peer_session_id=8, pw_type=pw))
    ppp = None
    if version == 2:
        # Attach a PPPoL2TP socket to the netlink-made session (sockaddr_pppol2tp[in6]),
        # and let the kernel create a second session from connect() alone.
        ppp = pppol2tp_socket(
            tunnel_fd=sock.fileno(),
            version=2,
            tunnel_id=tid,
            session_id=7,
            peer_tunnel_id=900,
            peer_session_id=8,
            netns=nl.netns,
        )
        ppp2 = pppol2tp_socket(
            tunnel_fd=sock.fileno(),
            version=2,
            tunnel_id=tid,
            session_id=9,
            peer_tunnel_id=900,
            peer_session_id=10,
            netns=nl.netns,
        )
        assert nl.get_session(tid, 9).pw_type == PseudowireType.PPP
        ppp2.close()
    assert nl.get_session(tid, 7).peer_session_id == 8
    sock.close()
    if ppp is not None:
        ppp.close()
    wait_until(lambda: _gone(nl, tid), what=f"managed tunnel {tid} to go with its socket")
    assert all(s.tunnel_id != tid for s in nl.dump_sessions())


def test_pppol2tp_v3_session_socket(nl: L2tpNetlink) -> None:
    """v3 over IPv6 UDP: the sockaddr_pppol2tpv3in6 structure, on a netlink session."""
    sock = tunnel_udp_socket(LO6, 15001, LO6, 15002, netns=nl.netns)
    try:
        nl.create_tunnel(TunnelConfig(tunnel_id=600, peer_tunnel_id=601, fd=sock.fileno()))
        nl.create_session(
            SessionConfig(
                tunnel_id=600, session_id=70000, peer_session_id=5, pw_type=PseudowireType.PPP
            )
        )
        ppp = pppol2tp_socket(
            tunnel_fd=sock.fileno(),
            version=3,
            tunnel_id=600,
            session_id=70000,
            peer_tunnel_id=601,
            peer_session_id=5,
            netns=nl.netns,
        )
        assert ppp.family == socket.AF_PPPOX if hasattr(socket, "AF_PPPOX") else True
        ppp.close()
        # Closing the PPPoL2TP socket closes its session.
        wait_until(lambda: not nl.dump_sessions(600), what="PPP session to close")
        nl.delete_tunnel(600)
    finally:
        sock.close()


def test_dataplane_brings_a_session_interface_down_and_up(nl: L2tpNetlink) -> None:
    """``set_session_up`` (peer Circuit Status, RFC 3931 5.4.5) is ``ip link set down/up``."""
    from l2tp.kernel import rtnl
    from l2tp.kernel.dataplane import LinuxDataPlane

    dp = LinuxDataPlane(netns=nl.netns)
    try:
        dp.create_tunnel(
            TunnelConfig(
                tunnel_id=650,
                peer_tunnel_id=651,
                local=ip_address("127.0.0.1"),
                peer=ip_address("127.0.0.1"),
                local_port=15650,
                peer_port=15651,
            )
        )
        dp.create_session(
            SessionConfig(tunnel_id=650, session_id=65, peer_session_id=66, ifname="l2cs0")
        )

        def flags() -> list[str]:
            (link,) = ip_json(["link show dev l2cs0"], netns=nl.netns)[0]
            return list(link["flags"])

        # The ID check the control plane makes before drawing a tunnel ID.
        assert dp.tunnel_exists(650) and not dp.tunnel_exists(651)
        dp.set_session_up(650, 65, True)
        assert "UP" in flags()
        dp.set_session_up(650, 65, False)
        assert "UP" not in flags()
        with pytest.raises(SessionNotFound):
            dp.set_session_up(650, 999, True)
        # modify_session's keywords reach the kernel through the netlink client
        dp.modify_session(650, 65, send_seq=True, mtu=1280)
        assert nl.get_session(650, 65).send_seq
        (link,) = ip_json(["link show dev l2cs0"], netns=nl.netns)[0]
        assert link["mtu"] == 1280
        ip_batch(["link add l2cs-br type bridge"], netns=nl.netns)
        dp.attach_to_bridge(650, 65, "l2cs-br")
        (link,) = ip_json(["link show dev l2cs0"], netns=nl.netns)[0]
        assert link["master"] == "l2cs-br"
        # the module functions: one rtnetlink socket per call, closed after it
        rtnl.set_mtu("l2cs0", 1300, netns=nl.netns)
        rtnl.set_up("l2cs0", True, netns=nl.netns)
        (link,) = ip_json(["link show dev l2cs0"], netns=nl.netns)[0]
        assert link["mtu"] == 1300 and "UP" in link["flags"]
    finally:
        dp.delete_tunnel(650)
        dp.close()
