"""The bookkeeping PAP and CHAP share (l2tp.ppp.auth.exchange): each role sends on its own
PPP protocol, repeats its packet every ``restart`` seconds, counts the repeats and gives
up after ``max_transmits`` transmissions, with the timer disarmed. Driven by hand under a
fake clock, both roles of both protocols."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from l2tp.ppp.auth.base import AuthDecision, AuthRequest, PapRequest
from l2tp.ppp.auth.chap import ChapAuthenticator, ChapPeer, build_value_packet
from l2tp.ppp.auth.exchange import AuthExchange
from l2tp.ppp.auth.pap import PapAuthenticator, PapPeer, build_request
from l2tp.ppp.codec import Packet, parse_packet
from l2tp.ppp.constants import AuthMethod, ChapCode, PapCode, Protocol


@dataclass
class Recorder:
    """The send callback and the observer of one protocol object."""

    sent: list[tuple[int, Packet]] = field(default_factory=list)
    requests: list[AuthRequest] = field(default_factory=list)
    done: list[tuple[AuthMethod, bool, str | None, str]] = field(default_factory=list)

    def send(self, protocol: int, data: bytes) -> None:
        self.sent.append((protocol, parse_packet(data)))

    def auth_requested(self, request: AuthRequest, now: float) -> None:
        self.requests.append(request)

    def auth_done(
        self, method: AuthMethod, success: bool, user: str | None, reason: str, now: float
    ) -> None:
        self.done.append((method, success, user, reason))


def _random(n: int) -> bytes:
    return bytes(range(n))


def _expire_all(role: PapPeer | ChapAuthenticator | ChapPeer, now: float) -> float:
    """Fire the timer until it is disarmed; the time of the last firing."""
    while (deadline := role.get_timer()) is not None:
        assert deadline > now
        role.handle_timer(deadline - 0.001)  # early: nothing happens
        assert role.get_timer() == deadline
        now = deadline
        role.handle_timer(now)
    return now


def test_pap_peer_repeats_on_pap_then_gives_up() -> None:
    rec = Recorder()
    peer = PapPeer(rec.send, rec, user="alice", password="pw", restart=2.0, max_requests=3)
    peer.start(10.0)
    assert peer.get_timer() == 12.0
    end = _expire_all(peer, 10.0)
    assert end == 16.0  # sent at 10, 12, 14; given up at 16
    assert [p for p, _ in rec.sent] == [Protocol.PAP] * 3
    assert {pkt.code for _, pkt in rec.sent} == {PapCode.AUTHENTICATE_REQUEST}
    # RFC 1334 2.2.1: a new Identifier for every Authenticate-Request.
    assert [pkt.identifier for _, pkt in rec.sent] == [1, 2, 3]
    assert all(pkt.data == build_request("alice", b"pw") for _, pkt in rec.sent)
    assert peer.counters.retransmissions == 2
    assert rec.done == [(AuthMethod.PAP, False, "alice", "no reply to Authenticate-Request")]


def test_pap_authenticator_has_no_timer_and_replies_on_pap() -> None:
    rec = Recorder()
    auth = PapAuthenticator(rec.send, rec)
    auth.start(0.0)
    assert auth.get_timer() is None
    auth.handle_timer(100.0)
    assert rec.sent == []
    request = Packet(
        code=PapCode.AUTHENTICATE_REQUEST, identifier=7, data=build_request("bob", b"x")
    )
    auth.receive(request, 1.0)
    assert rec.requests == [PapRequest(user="bob", password=b"x")]
    auth.decide(AuthDecision(success=True), 1.0)
    assert [(p, pkt.code, pkt.identifier) for p, pkt in rec.sent] == [
        (Protocol.PAP, PapCode.AUTHENTICATE_ACK, 7)
    ]
    assert auth.get_timer() is None


def test_chap_authenticator_repeats_its_challenge_on_chap_then_gives_up() -> None:
    rec = Recorder()
    auth = ChapAuthenticator(
        AuthMethod.CHAP_MD5,
        rec.send,
        rec,
        random_bytes=_random,
        name="lns",
        restart=1.5,
        max_challenges=4,
    )
    auth.start(0.0)
    end = _expire_all(auth, 0.0)
    assert end == 6.0
    assert [p for p, _ in rec.sent] == [Protocol.CHAP] * 4
    # RFC 1994 4.1: the same Challenge (and Identifier) until a Response arrives.
    assert {(pkt.code, pkt.identifier) for _, pkt in rec.sent} == {(ChapCode.CHALLENGE, 1)}
    assert {pkt.data for _, pkt in rec.sent} == {build_value_packet(_random(16), "lns")}
    assert auth.counters.retransmissions == 3
    assert rec.done == [(AuthMethod.CHAP_MD5, False, None, "no Response to Challenge")]


def test_chap_peer_repeats_its_response_on_chap_then_gives_up() -> None:
    rec = Recorder()
    peer = ChapPeer(
        AuthMethod.CHAP_MD5,
        rec.send,
        rec,
        random_bytes=_random,
        user="carol",
        password="secret",
        restart=3.0,
        max_responses=2,
    )
    peer.start(0.0)
    assert peer.get_timer() is None  # the authenticator speaks first (RFC 1994 2.1)
    challenge = Packet(code=ChapCode.CHALLENGE, identifier=9, data=build_value_packet(b"c", "l"))
    peer.receive(challenge, 1.0)
    end = _expire_all(peer, 1.0)
    assert end == 7.0
    assert [(p, pkt.code, pkt.identifier) for p, pkt in rec.sent] == [
        (Protocol.CHAP, ChapCode.RESPONSE, 9)
    ] * 2
    assert peer.counters.retransmissions == 1
    assert rec.done == [(AuthMethod.CHAP_MD5, False, "carol", "no Success or Failure")]


@pytest.mark.parametrize("role", [ChapAuthenticator, ChapPeer])
def test_chap_roles_refuse_pap(role: type[ChapAuthenticator] | type[ChapPeer]) -> None:
    rec = Recorder()
    with pytest.raises(ValueError, match="PAP is not a CHAP algorithm"):
        if role is ChapAuthenticator:
            ChapAuthenticator(AuthMethod.PAP, rec.send, rec, random_bytes=_random, name="n")
        else:
            ChapPeer(AuthMethod.PAP, rec.send, rec, random_bytes=_random, user="u", password="p")


def test_exchange_sends_on_the_protocol_it_was_given() -> None:
    """The shared sender's ``protocol`` parameter decides the PPP protocol, for any role."""
    rec = Recorder()
    for protocol in (Protocol.PAP, Protocol.CHAP):
        AuthExchange(protocol, rec.send, rec)._send_packet(3, 4, b"data")
    assert [(p, pkt) for p, pkt in rec.sent] == [
        (Protocol.PAP, Packet(code=3, identifier=4, data=b"data")),
        (Protocol.CHAP, Packet(code=3, identifier=4, data=b"data")),
    ]
