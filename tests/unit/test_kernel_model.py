"""Validation of kernel configs, sockaddr packing and the null data plane (no kernel)."""

from __future__ import annotations

import asyncio
import errno
import struct
from ipaddress import ip_address

import pytest

from l2tp.kernel.async_dataplane import AsyncLinuxDataPlane
from l2tp.kernel.constants import AF_PPPOX, PX_PROTO_OL2TP, EncapType
from l2tp.kernel.dataplane import DataPlane, NullDataPlane
from l2tp.kernel.errors import (
    AddressFamilyMismatch,
    IdInUse,
    KernelError,
    SessionNotFound,
    TunnelNotFound,
)
from l2tp.kernel.model import (
    NETLINK_SESSION_CHANGES,
    SESSION_CHANGES,
    SessionConfig,
    TunnelConfig,
    given_changes,
)
from l2tp.kernel.monitor import decode_event
from l2tp.kernel.sockets import pack_sockaddr_l2tpip, pack_sockaddr_pppol2tp
from l2tp.protocol.errors import L2tpError

V4 = ip_address("192.0.2.1")
V6 = ip_address("2001:db8::1")


def test_tunnel_config_validation() -> None:
    with pytest.raises(AddressFamilyMismatch) as info:
        TunnelConfig(tunnel_id=1, peer_tunnel_id=1, local=V4, peer=V6)
    assert info.value.errno == errno.EAFNOSUPPORT
    assert isinstance(info.value, KernelError) and isinstance(info.value, L2tpError)
    with pytest.raises(ValueError, match="65535"):
        TunnelConfig(tunnel_id=70000, peer_tunnel_id=1, version=2, fd=3)
    with pytest.raises(ValueError, match="UDP only"):
        TunnelConfig(tunnel_id=1, peer_tunnel_id=1, version=2, encap=EncapType.IP, fd=3)
    with pytest.raises(ValueError, match="unmanaged"):
        TunnelConfig(tunnel_id=1, peer_tunnel_id=1, local=V4)
    with pytest.raises(TypeError):
        TunnelConfig(tunnel_id=1, peer_tunnel_id=1, local="1.2.3.4", peer="1.2.3.5")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TunnelConfig(tunnel_id=0, peer_tunnel_id=1, fd=3)
    assert TunnelConfig(tunnel_id=1, peer_tunnel_id=2, fd=3).managed


def test_session_config_validation() -> None:
    with pytest.raises(ValueError, match="cookie"):
        SessionConfig(tunnel_id=1, session_id=1, peer_session_id=1, cookie=b"123")
    with pytest.raises(ValueError, match="ifname"):
        SessionConfig(tunnel_id=1, session_id=1, peer_session_id=1, ifname="x" * 16)
    with pytest.raises(ValueError, match="mtu"):
        SessionConfig(tunnel_id=1, session_id=1, peer_session_id=1, mtu=10)


def test_sockaddr_l2tpip_layout() -> None:
    v4 = pack_sockaddr_l2tpip(V4, 0x01020304)
    assert len(v4) == 16
    assert struct.unpack("=HH4sI4x", v4) == (2, 0, V4.packed, 0x01020304)
    v6 = pack_sockaddr_l2tpip(V6, 7)
    assert len(v6) == 32
    assert struct.unpack("=HHI16sII", v6) == (10, 0, 0, V6.packed, 0, 7)


@pytest.mark.parametrize(
    ("version", "peer", "size"),
    [(2, V4, 38), (2, V6, 50), (3, V4, 46), (3, V6, 58)],
)
def test_sockaddr_pppol2tp_sizes(version: int, peer: object, size: int) -> None:
    addr = pack_sockaddr_pppol2tp(
        version=version,
        tunnel_fd=5,
        peer=peer,  # type: ignore[arg-type]
        peer_port=1701,
        tunnel_id=1,
        session_id=2,
        peer_tunnel_id=3,
        peer_session_id=4,
    )
    assert len(addr) == size
    assert struct.unpack_from("=HIii", addr) == (AF_PPPOX, PX_PROTO_OL2TP, 0, 5)


def test_sockaddr_pppol2tp_v2_ipv4_fields() -> None:
    addr = pack_sockaddr_pppol2tp(
        version=2,
        tunnel_fd=5,
        peer=V4,
        peer_port=1701,
        tunnel_id=1,
        session_id=2,
        peer_tunnel_id=3,
        peer_session_id=4,
    )
    # sockaddr_in at offset 14: family, port (network order), address
    assert struct.unpack_from("=H", addr, 14) == (2,)
    assert struct.unpack_from("!H", addr, 16) == (1701,)
    assert addr[18:22] == V4.packed
    assert struct.unpack_from("=HHHH", addr, 30) == (1, 2, 3, 4)


def test_sockaddr_pppol2tp_v3_ipv6_fields() -> None:
    addr = pack_sockaddr_pppol2tp(
        version=3,
        tunnel_fd=5,
        peer=V6,
        peer_port=9,
        tunnel_id=70000,
        session_id=2,
        peer_tunnel_id=3,
        peer_session_id=4,
    )
    assert struct.unpack_from("=IIII", addr, 14) == (70000, 2, 3, 4)
    assert struct.unpack_from("=H", addr, 30) == (10,)
    assert addr[38:54] == V6.packed


def test_null_dataplane_records_and_enforces_ids() -> None:
    dp: DataPlane = NullDataPlane()
    assert isinstance(dp, NullDataPlane)
    tunnel = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, fd=3)
    dp.create_tunnel(tunnel)
    with pytest.raises(IdInUse):
        dp.create_tunnel(tunnel)
    with pytest.raises(TunnelNotFound):
        dp.create_session(SessionConfig(tunnel_id=9, session_id=1, peer_session_id=1))
    dp.create_session(SessionConfig(tunnel_id=1, session_id=5, peer_session_id=6))
    dp.modify_session(1, 5, send_seq=True)
    sock = dp.open_ppp_socket(tunnel, 5, 6)
    sock.close()
    dp.delete_tunnel(1)
    with pytest.raises(SessionNotFound):
        dp.delete_session(1, 5)
    dp.close()
    assert [c[0] for c in dp.calls] == [
        "create_tunnel",
        "create_tunnel",
        "create_session",
        "create_session",
        "modify_session",
        "open_ppp_socket",
        "delete_tunnel",
        "delete_session",
        "close",
    ]
    assert dp.calls[4] == ("modify_session", (1, 5, {"send_seq": True}))


def test_modify_session_records_the_given_settings_in_declaration_order() -> None:
    dp = NullDataPlane()
    dp.create_tunnel(TunnelConfig(tunnel_id=1, peer_tunnel_id=2, fd=3))
    dp.create_session(SessionConfig(tunnel_id=1, session_id=5, peer_session_id=6))
    dp.modify_session(1, 5, mtu=1400, lns_mode=None, recv_seq=False, send_seq=True)
    name, (tid, sid, changes) = dp.calls[-1]
    assert (name, tid, sid) == ("modify_session", 1, 5)
    assert list(changes.items()) == [("send_seq", True), ("recv_seq", False), ("mtu", 1400)]
    with pytest.raises(SessionNotFound, match="modify session 7 in tunnel 1: not found"):
        dp.modify_session(1, 7, send_seq=True)


@pytest.mark.parametrize("keyword", ["sendseq", "debug"])
def test_modify_session_rejects_an_unknown_keyword_before_doing_anything(keyword: str) -> None:
    """``**changes`` is checked at run time as named parameters were: a misspelt setting
    (or ``debug``, which only the netlink clients take) is a TypeError, not ignored."""
    dp = NullDataPlane()
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{keyword}'"):
        dp.modify_session(1, 5, send_seq=True, **{keyword: 1})  # type: ignore[arg-type]
    assert not dp.calls
    linux = AsyncLinuxDataPlane()  # not started: the keyword check comes first
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{keyword}'"):
        asyncio.run(linux.modify_session(1, 5, **{keyword: 1}))  # type: ignore[arg-type]


def test_given_changes_knows_the_netlink_only_debug() -> None:
    changes = {"debug": 3, "mtu": None, "send_seq": False}
    assert given_changes(changes, NETLINK_SESSION_CHANGES) == {"send_seq": False, "debug": 3}
    assert SESSION_CHANGES == ("send_seq", "recv_seq", "lns_mode", "reorder_timeout_ms", "mtu")
    with pytest.raises(TypeError):
        given_changes(changes)


def test_decode_event() -> None:
    from l2tp.kernel import codec
    from l2tp.kernel.constants import Attr, Command
    from l2tp.kernel.model import EventKind, SessionEvent, TunnelEvent

    msg = codec.encode_message(
        30, Command.TUNNEL_DELETE, [(Attr.CONN_ID, 4), (Attr.PEER_CONN_ID, 5)], seq=0, flags=0
    )
    event = decode_event(msg)
    assert isinstance(event, TunnelEvent) and event.kind is EventKind.DELETED
    assert event.tunnel.tunnel_id == 4
    msg = codec.encode_message(
        30, Command.SESSION_CREATE, [(Attr.CONN_ID, 4), (Attr.SESSION_ID, 6)], seq=0, flags=0
    )
    sevent = decode_event(msg)
    assert isinstance(sevent, SessionEvent) and sevent.kind is EventKind.CREATED
    assert decode_event(codec.encode_message(30, Command.TUNNEL_GET, [], seq=0, flags=0)) is None
