"""RFC 2661 5.1.1 / 4.4.3 challenge responses."""

from __future__ import annotations

import hashlib
import random

from l2tp.protocol.auth import Handshake, challenge_response, new_challenge, verify_response
from l2tp.protocol.constants import MessageType


def test_response_is_md5_of_type_secret_challenge() -> None:
    secret, challenge = b"s3cret", bytes(range(16))
    expected = hashlib.md5(b"\x02" + secret + challenge).digest()
    assert challenge_response(MessageType.SCCRP, secret, challenge) == expected
    assert (
        challenge_response(3, secret, challenge)
        == hashlib.md5(b"\x03" + secret + challenge).digest()
    )


def test_verify() -> None:
    r = challenge_response(MessageType.SCCCN, b"k", b"c")
    assert verify_response(MessageType.SCCCN, b"k", b"c", r)
    assert not verify_response(MessageType.SCCRP, b"k", b"c", r)
    assert not verify_response(MessageType.SCCCN, b"other", b"c", r)
    assert not verify_response(MessageType.SCCCN, b"k", b"c", None)
    assert not verify_response(MessageType.SCCCN, b"k", b"c", r[:15])


def test_challenge_from_injected_source() -> None:
    assert new_challenge(lambda n: b"\xaa" * n) == b"\xaa" * 16


def test_handshake_both_ways() -> None:
    rng = random.Random(3).randbytes
    a = Handshake(b"k", challenge=True, random_bytes=rng)
    b = Handshake(b"k", challenge=True, random_bytes=rng)
    assert b.take_peer_challenge(a.our_challenge)
    assert a.check(MessageType.SCCRP, b.response(MessageType.SCCRP))
    assert a.take_peer_challenge(b.our_challenge)
    assert b.check(MessageType.SCCCN, a.response(MessageType.SCCCN))
    assert not b.check(MessageType.SCCCN, None)


def test_handshake_without_secret() -> None:
    h = Handshake(None, challenge=True, random_bytes=random.Random(0).randbytes)
    assert h.our_challenge is None
    assert h.check(MessageType.SCCRP, None)  # we did not challenge
    assert h.take_peer_challenge(None)
    assert not h.take_peer_challenge(b"x")  # challenged, cannot answer
    off = Handshake(b"k", challenge=False, random_bytes=random.Random(0).randbytes)
    assert off.our_challenge is None
