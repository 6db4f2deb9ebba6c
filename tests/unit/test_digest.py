"""L2TPv3 message digest (RFC 3931 5.4.1) against an independent HMAC computation."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from l2tp.protocol import (
    CodecError,
    ControlMessage,
    MessageType,
    check_message_digest,
    derive_auth_key,
    parse_message,
    seal_message,
    sealed,
    serialize_message,
    verify_message,
)

NA = b"A" * 16
NB = b"B" * 16


def _msg(mt: MessageType = MessageType.HELLO, *, dt: int = 0, ip: bool = False) -> bytes:
    return serialize_message(
        ControlMessage(message_type=mt),
        version=3,
        tunnel_id=42,
        ns=3,
        nr=4,
        digest_type=dt,
        ip_encap=ip,
    )


def test_key_derivation() -> None:
    assert derive_auth_key(b"s") == hmac.new(b"s", b"\x02", hashlib.md5).digest()


@pytest.mark.parametrize(("dt", "algo", "size"), [(0, hashlib.md5, 16), (1, hashlib.sha1, 20)])
def test_seal_matches_rfc_formula(dt: int, algo: object, size: int) -> None:
    zeroed = _msg(dt=dt)
    out = bytearray(zeroed)
    seal_message(out, secret=b"s", local_nonce=NA, remote_nonce=NB)
    expected = hmac.new(derive_auth_key(b"s"), NA + NB + zeroed, algo).digest()  # type: ignore[arg-type]
    assert out[27 : 27 + size] == expected
    assert out[:27] == zeroed[:27]
    # The receiver swaps the nonces.
    assert verify_message(out, secrets=[b"s"], local_nonce=NB, remote_nonce=NA)
    assert not verify_message(out, secrets=[b"s"], local_nonce=NA, remote_nonce=NB)
    _, parsed = parse_message(bytes(out))
    assert parsed is not None and parsed.message_type is MessageType.HELLO


def test_sccrq_ignores_nonces() -> None:
    zeroed = _msg(MessageType.SCCRQ)
    out = sealed(zeroed, secret=b"s", local_nonce=NA, remote_nonce=NB)
    assert out[27:43] == hmac.new(derive_auth_key(b"s"), zeroed, hashlib.md5).digest()
    assert verify_message(out, secrets=[b"s"])


def test_tamper_and_wrong_secret_rejected() -> None:
    out = bytearray(_msg())
    seal_message(out, secret=b"s")
    assert verify_message(out, secrets=[b"s"])
    assert not verify_message(out, secrets=[b"t"])
    assert verify_message(out, secrets=[b"t", b"s"])
    for pos in (5, 10, 19, 25):
        bad = bytearray(out)
        bad[pos] ^= 1
        assert not verify_message(bad, secrets=[b"s"])
    with pytest.raises(CodecError, match="does not match"):
        check_message_digest(bytes(out), secrets=[b"x"])


def test_reseal_after_ns_change() -> None:
    out = bytearray(_msg())
    seal_message(out, secret=b"s")
    out[9] = 99  # transport changes Ns on retransmit and seals again
    seal_message(out, secret=b"s")
    assert verify_message(out, secrets=[b"s"])


def test_ip_encapsulation_excludes_session_id() -> None:
    out = bytearray(_msg(ip=True))
    seal_message(out, secret=b"s", ip_encap=True)
    assert out[:4] == bytes(4)
    assert verify_message(out, secrets=[b"s"], ip_encap=True)
    assert sealed(bytes(out[4:]), secret=b"s") == bytes(out[4:])


def test_two_digest_avps_for_secret_rollover() -> None:
    from l2tp.protocol import Avp, AvpType, MessageDigest

    msg = ControlMessage(
        message_type=MessageType.HELLO,
        avps=(
            Avp(
                attribute=AvpType.MESSAGE_DIGEST,
                value=MessageDigest(digest_type=1, digest=bytes(20)),
            ),
        ),
    )
    data = bytearray(serialize_message(msg, version=3, tunnel_id=1, digest_type=0))
    seal_message(data, secret=b"old", second_secret=b"new")
    assert verify_message(data, secrets=[b"old"])
    assert verify_message(data, secrets=[b"new"])
    assert not verify_message(data, secrets=[b"other"])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(19),
        serialize_message(ControlMessage.hello(), version=3, tunnel_id=1),  # no digest AVP
        serialize_message(ControlMessage.hello(), version=2, tunnel_id=1, digest_type=0),
        _msg()[:30],
    ],
)
def test_structural_problems_fail_cleanly(data: bytes) -> None:
    assert not verify_message(data, secrets=[b"s"])
    with pytest.raises(CodecError):
        seal_message(bytearray(data), secret=b"s")
