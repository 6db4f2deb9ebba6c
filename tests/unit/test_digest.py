"""L2TPv3 message digest (RFC 3931 5.4.1) against an independent HMAC computation."""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Any

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


@pytest.mark.parametrize(("dt", "algo", "size"), [(0, "md5", 16), (1, "sha1", 20)])
def test_seal_matches_rfc_formula(dt: int, algo: str, size: int) -> None:
    zeroed = _msg(dt=dt)
    out = bytearray(zeroed)
    seal_message(out, secret=b"s", local_nonce=NA, remote_nonce=NB)
    expected = hmac.new(derive_auth_key(b"s"), NA + NB + zeroed, algo).digest()
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


# ------------------------------------------- hand-built bytes, RFC 3931 5.4.1 by hand


def _avp(attribute: int, value: bytes) -> bytes:
    """An IETF AVP with the M bit set (RFC 3931 5.1), built without the codec."""
    return struct.pack("!HHH", 0x8000 | (6 + len(value)), 0, attribute) + value


def _hand_built(message_type: int, digest_type: int, avps: bytes) -> bytes:
    """Header (3.2.1), Message Type AVP, zeroed Message Digest AVP right after it, AVPs."""
    size = {0: 16, 1: 20}[digest_type]
    body = (
        _avp(0, struct.pack("!H", message_type))
        + _avp(59, bytes([digest_type]) + bytes(size))
        + avps
    )
    # T=1 L=1 S=1, Ver=3; Length; Control Connection ID; Ns; Nr.
    return struct.pack("!HHIHH", 0xC803, 12 + len(body), 0x11223344, 5, 7) + body


LOCAL_NONCE = bytes(range(16, 36))  # 20 octets: nonces are of arbitrary length
REMOTE_NONCE = bytes(range(100, 116))


@pytest.mark.parametrize(("dt", "algo"), [(0, hashlib.md5), (1, hashlib.sha1)])
def test_hand_built_iccn_digest_is_hmac_over_nonces_and_message(dt: int, algo: Any) -> None:
    """shared_key = HMAC_MD5(secret, 2); digest = HMAC_Hash(key, local + remote + message)."""
    secret = b"hand-built secret"
    ids = _avp(63, struct.pack("!I", 0x01020304)) + _avp(64, struct.pack("!I", 0x0A0B0C0D))
    zeroed = _hand_built(MessageType.ICCN, dt, ids)
    key = hmac.new(secret, bytes([2]), hashlib.md5).digest()
    expected = hmac.new(key, LOCAL_NONCE + REMOTE_NONCE + zeroed, algo).digest()
    # Our codec builds exactly these bytes, and our sealing fills exactly this digest.
    message = ControlMessage.of(
        MessageType.ICCN, local_session_id=0x01020304, remote_session_id=0x0A0B0C0D
    )
    built = serialize_message(message, version=3, tunnel_id=0x11223344, ns=5, nr=7, digest_type=dt)
    assert built == zeroed
    out = sealed(zeroed, secret=secret, local_nonce=LOCAL_NONCE, remote_nonce=REMOTE_NONCE)
    assert out == zeroed[:27] + expected + zeroed[27 + len(expected) :]
    # The receiver's view: its local nonce is our remote one.
    assert verify_message(out, secrets=[secret], local_nonce=REMOTE_NONCE, remote_nonce=LOCAL_NONCE)
    assert not verify_message(out, secrets=[secret], local_nonce=LOCAL_NONCE)
    # The whole header is covered: Ns, Nr and the connection ID.
    for pos in (4, 8, 10):
        bad = bytearray(out)
        bad[pos] ^= 0x80
        assert not verify_message(
            bad, secrets=[secret], local_nonce=REMOTE_NONCE, remote_nonce=LOCAL_NONCE
        )


@pytest.mark.parametrize(("dt", "algo"), [(0, hashlib.md5), (1, hashlib.sha1)])
def test_hand_built_sccrq_digest_uses_no_nonces(dt: int, algo: Any) -> None:
    """5.4.1: the SCCRQ's digest is HMAC_Hash(shared_key, control_message) only."""
    secret = b"s"
    avps = (
        _avp(7, b"lcce-a")  # Host Name
        + _avp(60, struct.pack("!I", 0x0A000001))  # Router ID
        + _avp(61, struct.pack("!I", 0x11223344))  # Assigned Control Connection ID
        + _avp(62, struct.pack("!HH", 5, 4))  # Pseudowire Capabilities List
        + _avp(73, LOCAL_NONCE)  # Control Message Authentication Nonce
    )
    zeroed = _hand_built(MessageType.SCCRQ, dt, avps)
    key = hmac.new(secret, b"\x02", hashlib.md5).digest()
    expected = hmac.new(key, zeroed, algo).digest()
    out = sealed(zeroed, secret=secret, local_nonce=LOCAL_NONCE, remote_nonce=REMOTE_NONCE)
    assert out[27 : 27 + len(expected)] == expected
    assert verify_message(out, secrets=[secret])
    _, parsed = parse_message(out)
    assert parsed is not None and parsed.nonce == LOCAL_NONCE


def test_hand_built_over_ip_skips_the_zero_session_id() -> None:
    """5.4.1: over IP the control message begins after the all-zero Session ID."""
    secret = b"ip"
    zeroed = _hand_built(MessageType.HELLO, 1, b"")
    key = hmac.new(secret, b"\x02", hashlib.md5).digest()
    expected = hmac.new(key, LOCAL_NONCE + REMOTE_NONCE + zeroed, hashlib.sha1).digest()
    out = sealed(
        bytes(4) + zeroed,
        secret=secret,
        local_nonce=LOCAL_NONCE,
        remote_nonce=REMOTE_NONCE,
        ip_encap=True,
    )
    assert out == bytes(4) + zeroed[:27] + expected
