"""LCP options and extra codes, driven through a PppConnection with crafted frames."""

from __future__ import annotations

import random

import pytest

from l2tp.ppp import AuthMethod, PppConnection, Protocol, Terminated
from l2tp.ppp.codec import (
    Option,
    Packet,
    parse_frame,
    parse_options,
    parse_packet,
    serialize_frame,
    serialize_packet,
)
from l2tp.ppp.constants import Code, LcpOption
from l2tp.ppp.fsm import State
from l2tp.ppp.lcp import LcpOptions

from .pair import PppPair, authenticator_config, peer_config


def frame(protocol: int, code: int, identifier: int, data: bytes = b"") -> bytes:
    return serialize_frame(
        protocol, serialize_packet(Packet(code=code, identifier=identifier, data=data))
    )


def sent(conn: PppConnection) -> list[tuple[int, Packet]]:
    out = []
    for f in conn.frames_to_send(0.0):
        protocol, information = parse_frame(f)
        out.append((protocol, parse_packet(information)))
    return out


def fresh(role: str = "a") -> PppConnection:
    config = authenticator_config() if role == "a" else peer_config()
    conn = PppConnection(config, random_bytes=random.Random(5).randbytes)
    conn.open(0.0)
    conn.frames_to_send(0.0)
    return conn


def request(
    conn: PppConnection, *options: Option, identifier: int = 0x20
) -> list[tuple[int, Packet]]:
    data = b"".join(o.to_bytes() for o in options)
    conn.receive_frame(frame(Protocol.LCP, Code.CONFIGURE_REQUEST, identifier, data), 0.0)
    return sent(conn)


def test_hdlc_and_unknown_options_are_rejected_verbatim() -> None:
    conn = fresh()
    options = [
        Option(LcpOption.MRU, b"\x05\xd4"),
        Option(LcpOption.ACCM, bytes(4)),
        Option(LcpOption.PFC),
        Option(LcpOption.ACFC),
        Option(LcpOption.QUALITY_PROTOCOL, b"\xc0\x25\x00\x00\x00\x0a"),
        Option(99, b"xyz"),
        Option(LcpOption.MAGIC_NUMBER, b"\x00\x01"),  # wrong length
    ]
    ((protocol, reply),) = request(conn, *options)
    assert protocol == Protocol.LCP
    assert reply.code == Code.CONFIGURE_REJECT and reply.identifier == 0x20
    assert parse_options(reply.data) == options[1:]  # all but MRU, in order (RFC 1661 5.4)


def test_small_mru_gets_a_nak_with_our_floor() -> None:
    conn = fresh()
    ((_, reply),) = request(conn, Option(LcpOption.MRU, b"\x00\x40"))
    assert reply.code == Code.CONFIGURE_NAK
    assert parse_options(reply.data) == [Option(LcpOption.MRU, b"\x00\x80")]


def test_magic_zero_and_own_magic_get_a_nak() -> None:
    conn = fresh()
    ((_, reply),) = request(conn, Option(LcpOption.MAGIC_NUMBER, bytes(4)))
    assert reply.code == Code.CONFIGURE_NAK
    (suggested,) = parse_options(reply.data)
    assert suggested.data != bytes(4)
    own = conn.lcp.options.magic
    ((_, reply),) = request(conn, Option(LcpOption.MAGIC_NUMBER, own.to_bytes(4, "big")))
    assert reply.code == Code.CONFIGURE_NAK
    (suggested,) = parse_options(reply.data)
    assert int.from_bytes(suggested.data, "big") not in (0, own)
    assert conn.lcp.options.magic != own  # RFC 1661 6.4: we pick a new one too


def test_looped_back_link_is_detected() -> None:
    conn = PppConnection(
        authenticator_config(auth_methods=()), random_bytes=random.Random(9).randbytes
    )
    conn.open(0.0)
    now = 0.0
    for _ in range(200):
        frames = conn.frames_to_send(now)
        for f in frames:
            conn.receive_frame(f, now)  # a loop: everything comes straight back
        if conn.terminated:
            break
        if not frames:
            deadline = conn.get_timer()
            assert deadline is not None
            now = deadline
            conn.handle_timer(now)
    events = []
    while (event := conn.next_event()) is not None:
        events.append(event)
    assert events[-1] == Terminated(by_peer=False, reason="looped-back link detected")


def test_peer_role_naks_an_auth_protocol_it_cannot_do() -> None:
    conn = PppConnection(
        peer_config(auth_methods=(AuthMethod.PAP,)), random_bytes=random.Random(1).randbytes
    )
    conn.open(0.0)
    conn.frames_to_send(0.0)
    chap = Option(LcpOption.AUTHENTICATION_PROTOCOL, AuthMethod.CHAP_MD5.option_data)
    ((_, reply),) = request(conn, chap)
    assert reply.code == Code.CONFIGURE_NAK
    assert parse_options(reply.data) == [Option(LcpOption.AUTHENTICATION_PROTOCOL, b"\xc0\x23")]
    pap = Option(LcpOption.AUTHENTICATION_PROTOCOL, AuthMethod.PAP.option_data)
    ((_, reply),) = request(conn, pap, identifier=0x21)
    assert reply.code == Code.CONFIGURE_ACK


def test_authenticator_rejects_being_asked_to_authenticate() -> None:
    conn = fresh()
    chap = Option(LcpOption.AUTHENTICATION_PROTOCOL, AuthMethod.CHAP_MD5.option_data)
    ((_, reply),) = request(conn, chap)
    assert reply.code == Code.CONFIGURE_REJECT


def test_authenticator_follows_the_peers_suggestion() -> None:
    options = LcpOptions(
        random_bytes=random.Random(1).randbytes,
        request_auth=(AuthMethod.MSCHAP_V2, AuthMethod.CHAP_MD5, AuthMethod.PAP),
    )
    options.reset(0.0)
    auth = LcpOption.AUTHENTICATION_PROTOCOL
    assert Option(auth, b"\xc2\x23\x81") in options.request_options()
    options.nak_received([Option(auth, AuthMethod.PAP.option_data)])
    assert Option(auth, b"\xc0\x23") in options.request_options()
    options.nak_received([Option(auth, b"\xc2\x27")])  # EAP: unknown, so the next one
    assert options.auth_refused
    assert all(o.type != auth for o in options.request_options())


def opened() -> PppPair:
    pair = PppPair()
    pair.open()
    return pair


def test_unknown_code_gets_a_code_reject() -> None:
    pair = opened()
    conn = pair.a.conn
    bad = frame(Protocol.LCP, 0x30, 0x77, b"hello")
    conn.receive_frame(bad, pair.now)
    ((protocol, reply),) = sent(conn)
    assert (protocol, reply.code) == (Protocol.LCP, Code.CODE_REJECT)
    assert reply.data == parse_frame(bad)[1]
    assert conn.lcp.state is State.OPENED


def test_unknown_ncp_code_gets_a_code_reject_on_that_ncp() -> None:
    pair = opened()
    conn = pair.a.conn
    conn.receive_frame(frame(Protocol.IPCP, Code.ECHO_REQUEST, 1, bytes(4)), pair.now)
    ((protocol, reply),) = sent(conn)
    assert (protocol, reply.code) == (Protocol.IPCP, Code.CODE_REJECT)


def test_unknown_protocol_gets_a_protocol_reject_only_once_opened() -> None:
    conn = fresh()
    conn.receive_frame(frame(0x80FD, Code.CONFIGURE_REQUEST, 1), 0.0)  # CCP
    assert sent(conn) == []
    assert conn.counters.out_of_phase == 1
    pair = opened()
    ccp = frame(0x80FD, Code.CONFIGURE_REQUEST, 1)
    pair.a.conn.receive_frame(ccp, pair.now)
    ((protocol, reply),) = sent(pair.a.conn)
    assert (protocol, reply.code) == (Protocol.LCP, Code.PROTOCOL_REJECT)
    assert reply.data == ccp  # Rejected-Protocol then the information field


def test_data_frames_are_counted_not_rejected() -> None:
    pair = opened()
    pair.a.conn.receive_frame(b"\x00\x21" + bytes(20), pair.now)
    assert sent(pair.a.conn) == []
    assert pair.a.conn.counters.data_frames == 1


def test_echo_request_is_answered_only_when_opened() -> None:
    conn = fresh()
    conn.receive_frame(frame(Protocol.LCP, Code.ECHO_REQUEST, 5, bytes(4) + b"ping"), 0.0)
    assert sent(conn) == []
    pair = opened()
    conn = pair.a.conn
    conn.receive_frame(frame(Protocol.LCP, Code.ECHO_REQUEST, 5, b"\x01\x02\x03\x04ping"), 0.0)
    ((_, reply),) = sent(conn)
    assert reply.code == Code.ECHO_REPLY and reply.identifier == 5
    assert reply.data == conn.lcp.options.magic.to_bytes(4, "big") + b"ping"
    conn.receive_frame(frame(Protocol.LCP, Code.DISCARD_REQUEST, 6, bytes(4)), 0.0)
    assert sent(conn) == []
    conn.receive_frame(frame(Protocol.LCP, Code.ECHO_REQUEST, 7, b"\x01"), 0.0)
    assert sent(conn) == [] and conn.lcp.counters.malformed == 1


def test_catastrophic_code_reject_terminates() -> None:
    pair = opened()
    rejected = serialize_packet(Packet(code=Code.CONFIGURE_REQUEST, identifier=1))
    pair.p.conn.receive_frame(frame(Protocol.LCP, Code.CODE_REJECT, 9, rejected), pair.now)
    assert pair.p.conn.lcp.state is State.STOPPING
    pair.run_until(lambda: pair.p.conn.terminated)
    assert pair.p.of(Terminated)


def test_harmless_code_reject_changes_nothing() -> None:
    pair = opened()
    rejected = serialize_packet(Packet(code=Code.ECHO_REQUEST, identifier=1, data=bytes(4)))
    pair.p.conn.receive_frame(frame(Protocol.LCP, Code.CODE_REJECT, 9, rejected), pair.now)
    assert pair.p.conn.lcp.state is State.OPENED
    assert sent(pair.p.conn) == []


@pytest.mark.parametrize("rejected", [Protocol.LCP])
def test_protocol_reject_of_lcp_is_catastrophic(rejected: Protocol) -> None:
    pair = opened()
    pair.p.conn.receive_frame(
        frame(Protocol.LCP, Code.PROTOCOL_REJECT, 9, rejected.to_bytes(2, "big")), pair.now
    )
    assert pair.p.conn.lcp.state is State.STOPPING
