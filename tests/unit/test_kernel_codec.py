"""Netlink encoding of the kernel API, checked without a kernel.

pyroute2's ``l2tpmsg`` is the independent reference: its ``nla_map`` gives the
attribute numbers (position in the tuple) and its encoder the expected bytes.
"""

from __future__ import annotations

import errno
import struct
from ipaddress import ip_address

import pytest
from pyroute2.netlink.generic import l2tp as pr

from l2tp.kernel import codec
from l2tp.kernel.constants import Attr, Command, EncapType, L2SpecType, PseudowireType, StatsAttr
from l2tp.kernel.errors import (
    IdInUse,
    InvalidSocket,
    ModuleNotLoaded,
    NotPermitted,
    SessionNotFound,
    TunnelNotFound,
)
from l2tp.kernel.model import SessionConfig, TunnelConfig
from l2tp.kernel.netlink import _create_session, _create_tunnel, _Exchange, _session_cmd
from l2tp.kernel.rtnl import set_master_request, set_mtu_request

V4 = ip_address("192.0.2.1")
V4B = ip_address("192.0.2.2")
V6 = ip_address("2001:db8::1")
V6B = ip_address("2001:db8::2")


def test_attribute_numbers_match_pyroute2_table() -> None:
    names = [name for name, _ in pr.l2tpmsg.nla_map]
    for attr in Attr:
        assert names[attr] == f"L2TP_ATTR_{attr.name}"
    stats = [name for name, _ in pr.l2tpmsg.l2tp_stats.nla_map]
    for sattr in StatsAttr:
        expected = f"L2TP_ATTR_STATS_{sattr.name}" if sattr in (0, 9) else f"L2TP_ATTR_{sattr.name}"
        assert stats[sattr] == expected
    for cmd in Command:
        assert getattr(pr, f"L2TP_CMD_{cmd.name}") == cmd
    assert pr.L2TP_ENCAPTYPE_IP == EncapType.IP and pr.L2TP_PWTYPE_PPP == PseudowireType.PPP
    assert pr.L2TP_L2SPECTYPE_DEFAULT == L2SpecType.DEFAULT


def test_zero_checksum6_attribute_values() -> None:
    # include/uapi/linux/l2tp.h: ... L2TP_ATTR_IP6_SADDR (31), L2TP_ATTR_IP6_DADDR (32),
    # L2TP_ATTR_UDP_ZERO_CSUM6_TX (33), L2TP_ATTR_UDP_ZERO_CSUM6_RX (34), L2TP_ATTR_PAD (35);
    # agrees with pyroute2 0.9.7 l2tp.py constants and nla_map order.
    assert int(Attr.UDP_ZERO_CSUM6_TX) == 33 == pr.L2TP_ATTR_UDP_ZERO_CSUM6_TX
    assert int(Attr.UDP_ZERO_CSUM6_RX) == 34 == pr.L2TP_ATTR_UDP_ZERO_CSUM6_RX


def _pyroute2_bytes(cmd: int, attrs: codec.AttrList, seq: int, flags: int) -> bytes:
    msg = pr.l2tpmsg()
    msg["cmd"] = cmd
    msg["version"] = 1
    msg["attrs"] = [
        [f"L2TP_ATTR_{a.name}", str(v) if hasattr(v, "packed") else v] for a, v in attrs
    ]
    for key, value in {"type": 30, "flags": flags, "sequence_number": seq, "pid": 0}.items():
        msg["header"][key] = value
    msg.encode()
    return bytes(msg.data)


TUNNELS = [
    TunnelConfig(
        tunnel_id=1, peer_tunnel_id=2, local=V4, peer=V4B, local_port=1701, peer_port=1702
    ),
    TunnelConfig(
        tunnel_id=7, peer_tunnel_id=8, local=V4, peer=V4B, local_port=5, peer_port=6, udp_csum=True
    ),
    TunnelConfig(
        tunnel_id=3,
        peer_tunnel_id=4,
        local=V6,
        peer=V6B,
        local_port=1,
        peer_port=2,
        udp6_zero_csum_tx=True,
        udp6_zero_csum_rx=True,
        debug=0,
    ),
    TunnelConfig(tunnel_id=0xFFFFFFFF, peer_tunnel_id=9, encap=EncapType.IP, local=V6, peer=V6B),
    TunnelConfig(tunnel_id=65535, peer_tunnel_id=1, version=2, fd=9),
]


@pytest.mark.parametrize("cfg", TUNNELS)
def test_tunnel_create_bytes_equal_pyroute2(cfg: TunnelConfig) -> None:
    attrs = codec.tunnel_create_attrs(cfg)
    flags = codec.NLM_F_REQUEST | codec.NLM_F_ACK
    ours = codec.encode_message(30, Command.TUNNEL_CREATE, attrs, seq=77, flags=flags)
    assert ours == _pyroute2_bytes(Command.TUNNEL_CREATE, attrs, 77, flags)


SESSIONS = [
    SessionConfig(tunnel_id=1, session_id=2, peer_session_id=3),
    SessionConfig(
        tunnel_id=1,
        session_id=0xFFFFFFFF,
        peer_session_id=3,
        pw_type=PseudowireType.PPP,
        cookie=b"\x01\x02\x03\x04",
        peer_cookie=bytes(range(8)),
        l2spec_type=L2SpecType.NONE,
        send_seq=True,
        recv_seq=True,
        lns_mode=True,
        reorder_timeout_ms=250,
        ifname="l2tpeth77",
        debug=3,
    ),
]


@pytest.mark.parametrize("cfg", SESSIONS)
def test_session_create_bytes_equal_pyroute2(cfg: SessionConfig) -> None:
    attrs = codec.session_create_attrs(cfg)
    ours = codec.encode_message(30, Command.SESSION_CREATE, attrs, seq=1, flags=5)
    assert ours == _pyroute2_bytes(Command.SESSION_CREATE, attrs, 1, 5)


def test_tunnel_attrs_unmanaged_v4_udp() -> None:
    attrs = dict(codec.tunnel_create_attrs(TUNNELS[0]))
    assert attrs == {
        Attr.CONN_ID: 1,
        Attr.PEER_CONN_ID: 2,
        Attr.PROTO_VERSION: 3,
        Attr.ENCAP_TYPE: EncapType.UDP,
        Attr.IP_SADDR: V4,
        Attr.IP_DADDR: V4B,
        Attr.UDP_SPORT: 1701,
        Attr.UDP_DPORT: 1702,
    }
    # The kernel reads UDP_CSUM as a flag: never send it to mean "off".
    assert Attr.UDP_CSUM not in attrs
    assert dict(codec.tunnel_create_attrs(TUNNELS[1]))[Attr.UDP_CSUM] == 1


def test_tunnel_attrs_ipv6_uses_address_type_and_right_zero_csum_flag() -> None:
    only_tx = TunnelConfig(
        tunnel_id=3, peer_tunnel_id=4, local=V6, peer=V6B, udp6_zero_csum_tx=True
    )
    attrs = dict(codec.tunnel_create_attrs(only_tx))
    assert attrs[Attr.IP6_SADDR] == V6 and attrs[Attr.IP6_DADDR] == V6B
    assert Attr.IP_SADDR not in attrs
    assert Attr.UDP_ZERO_CSUM6_TX in attrs and Attr.UDP_ZERO_CSUM6_RX not in attrs
    # Ports 0 are left to the kernel (ephemeral); IP encap sends no UDP attributes.
    assert Attr.UDP_SPORT not in attrs
    ip = dict(codec.tunnel_create_attrs(TUNNELS[3]))
    assert ip[Attr.ENCAP_TYPE] == EncapType.IP and Attr.UDP_SPORT not in ip


def test_tunnel_attrs_managed_sends_fd_not_addresses() -> None:
    attrs = dict(codec.tunnel_create_attrs(TUNNELS[4]))
    assert attrs[Attr.FD] == 9 and attrs[Attr.PROTO_VERSION] == 2
    assert not {Attr.IP_SADDR, Attr.IP6_SADDR, Attr.UDP_SPORT} & attrs.keys()


def test_session_attrs() -> None:
    attrs = dict(codec.session_create_attrs(SESSIONS[1]))
    assert attrs[Attr.PW_TYPE] == PseudowireType.PPP
    assert attrs[Attr.COOKIE] == b"\x01\x02\x03\x04"
    assert attrs[Attr.PEER_COOKIE] == bytes(range(8))
    assert attrs[Attr.RECV_TIMEOUT] == 250 and attrs[Attr.L2SPEC_TYPE] == 0
    assert attrs[Attr.SEND_SEQ] == attrs[Attr.RECV_SEQ] == attrs[Attr.LNS_MODE] == 1
    plain = dict(codec.session_create_attrs(SESSIONS[0]))
    assert set(plain) == {Attr.CONN_ID, Attr.SESSION_ID, Attr.PEER_SESSION_ID, Attr.PW_TYPE}


def test_session_modify_only_sends_given_settings() -> None:
    attrs = codec.session_modify_attrs(1, 2, send_seq=False, reorder_timeout_ms=0)
    assert attrs == [
        (Attr.CONN_ID, 1),
        (Attr.SESSION_ID, 2),
        (Attr.SEND_SEQ, 0),
        (Attr.RECV_TIMEOUT, 0),
    ]


def test_cookie_and_recv_timeout_encoding() -> None:
    assert codec.encode_attrs([(Attr.COOKIE, b"\xaa\xbb\xcc\xdd")]) == bytes.fromhex(
        "08000f00aabbccdd"
    )
    assert codec.encode_attrs([(Attr.RECV_TIMEOUT, 1)]) == struct.pack("=HHQ", 12, 22, 1)
    assert codec.encode_attrs([(Attr.UDP_ZERO_CSUM6_RX, True)]) == struct.pack("=HH", 4, 34)
    assert codec.encode_attrs([(Attr.IFNAME, "abc")]) == struct.pack("=HH", 8, 8) + b"abc\0"


def _stats_nla(**values: int) -> bytes:
    inner = b"".join(
        codec.nla(StatsAttr[k.upper()], struct.pack("=Q", v)) for k, v in values.items()
    )
    return codec.nla(Attr.STATS, inner)


def _reply(cmd: Command, attrs: codec.AttrList, extra: bytes = b"") -> bytes:
    msg = codec.encode_message(30, cmd, attrs, seq=5, flags=0)
    return struct.pack("=I", len(msg) + len(extra)) + msg[4:] + extra


def test_decode_tunnel_reply() -> None:
    attrs: codec.AttrList = [
        (Attr.PROTO_VERSION, 3),
        (Attr.CONN_ID, 10),
        (Attr.PEER_CONN_ID, 20),
        (Attr.DEBUG, 0),
        (Attr.ENCAP_TYPE, 0),
        (Attr.UDP_ZERO_CSUM6_TX, True),
        (Attr.UDP_SPORT, 1701),
        (Attr.UDP_DPORT, 1702),
        (Attr.IP6_SADDR, V6),
        (Attr.IP6_DADDR, V6B),
    ]
    data = _reply(Command.TUNNEL_GET, attrs, _stats_nla(tx_packets=3, rx_bytes=99))
    cmd, decoded = codec.decode_l2tp(data)
    info = codec.tunnel_info(decoded)
    assert cmd == Command.TUNNEL_GET
    assert (info.tunnel_id, info.peer_tunnel_id, info.version) == (10, 20, 3)
    assert info.local == V6 and info.peer == V6B and info.local_port == 1701
    assert info.udp6_zero_csum_tx and not info.udp6_zero_csum_rx and info.udp_csum is None
    assert info.stats.tx_packets == 3 and info.stats.rx_bytes == 99 and info.stats.rx_errors == 0


def test_decode_session_reply() -> None:
    attrs: codec.AttrList = [
        (Attr.CONN_ID, 1),
        (Attr.SESSION_ID, 2),
        (Attr.PEER_CONN_ID, 3),
        (Attr.PEER_SESSION_ID, 4),
        (Attr.PW_TYPE, 5),
        (Attr.IFNAME, "l2tpeth0"),
        (Attr.COOKIE, bytes(range(8))),
        (Attr.RECV_SEQ, 1),
        (Attr.SEND_SEQ, 0),
        (Attr.LNS_MODE, 1),
        (Attr.RECV_TIMEOUT, 40),
    ]
    info = codec.session_info(codec.decode_l2tp(_reply(Command.SESSION_GET, attrs))[1])
    assert info.ifname == "l2tpeth0" and info.cookie == bytes(range(8)) and info.peer_cookie == b""
    assert info.recv_seq and not info.send_seq and info.lns_mode and info.reorder_timeout_ms == 40
    assert info.pw_type is PseudowireType.ETH and info.peer_session_id == 4


def _ack(seq: int, err: int, text: str = "") -> bytes:
    tlvs = codec.nla(codec.NLMSGERR_ATTR_MSG, text.encode() + b"\0") if text else b""
    flags = codec.NLM_F_CAPPED | (codec.NLM_F_ACK_TLVS if text else 0)
    body = struct.pack("=i", -err) + struct.pack("=IHHII", 36, 30, 5, seq, 0) + tlvs
    return struct.pack("=IHHII", 16 + len(body), codec.NLMSG_ERROR, flags, seq, 0) + body


def test_parse_error_with_extack() -> None:
    assert codec.parse_error(_ack(1, errno.EINVAL, "bad cookie")) == (errno.EINVAL, "bad cookie")
    assert codec.parse_error(_ack(1, 0)) == (0, "")


def test_exchange_matches_acks_and_maps_errors() -> None:
    reqs = [
        _create_tunnel(TUNNELS[0]),
        _create_session(SESSIONS[0]),
        _session_cmd(Command.SESSION_DELETE, 1, 2, "delete"),
        _create_tunnel(TUNNELS[3]),
    ]
    ex = _Exchange(30, 100, reqs)
    assert len(list(codec.iter_messages(ex.data))) == 4
    ex.feed(_ack(100, errno.EEXIST) + _ack(101, errno.ENODEV) + _ack(999, 0))
    assert not ex.finished
    ex.feed(_ack(102, errno.ENODEV, "no session") + _ack(103, errno.EPROTONOSUPPORT))
    assert ex.finished
    assert isinstance(reqs[0].error, IdInUse) and reqs[0].error.errno == errno.EEXIST
    assert isinstance(reqs[1].error, TunnelNotFound)
    assert isinstance(reqs[2].error, SessionNotFound) and "no session" in str(reqs[2].error)
    err = reqs[3].error
    assert isinstance(err, ModuleNotLoaded) and err.module == "l2tp_ip6"
    assert "modprobe l2tp_ip6" in str(err)


def test_error_for_permission_and_socket() -> None:
    assert isinstance(codec_error(errno.EPERM), NotPermitted)
    assert isinstance(codec_error(errno.EPROTONOSUPPORT), InvalidSocket)


def codec_error(err: int) -> Exception:
    from l2tp.kernel.errors import error_for

    return error_for(err, "create tunnel 1", tunnel_id=1)


def test_getfamily_request_and_rtnl_request() -> None:
    req = codec.getfamily_request("l2tp", seq=1)
    length, mtype, flags, seq, _ = struct.unpack_from("=IHHII", req)
    assert (length, mtype, flags, seq) == (len(req), codec.GENL_ID_CTRL, 1, 1)
    assert req.endswith(struct.pack("=HH", 9, 2) + b"l2tp\0\0\0\0")
    mtu = set_mtu_request("l2tpeth0", 1400, seq=2)
    assert struct.unpack_from("=IHH", mtu) == (len(mtu), 16, 5)
    assert mtu.endswith(struct.pack("=HHI", 8, 4, 1400))
    master = set_master_request("l2tpeth0", 7, seq=3)
    # RTM_NEWLINK, REQUEST|ACK, by name, IFLA_MASTER (10) = the bridge's ifindex
    assert struct.unpack_from("=IHHI", master) == (len(master), 16, 5, 3)
    assert b"l2tpeth0\0" in master and master.endswith(struct.pack("=HHI", 8, 10, 7))
