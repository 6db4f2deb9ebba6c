"""Hidden AVPs (RFC 2661 4.3, RFC 3931 5.3), checked against an independent MD5 chain."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2tp.protocol import (
    Avp,
    AvpType,
    CodecError,
    ControlMessage,
    MessageType,
    encode_body,
    hide_value,
    hiding_key,
    parse_message,
    serialize_message,
    unhide_value,
)


def reference_hide(attr: int, value: bytes, secret: bytes, rv: bytes) -> bytes:
    """The RFC's description, written as literally as possible."""
    sub = len(value).to_bytes(2, "big") + value
    out = b""
    prev = None
    for i in range(0, len(sub), 16):
        chunk = sub[i : i + 16]
        b = hashlib.md5(
            attr.to_bytes(2, "big") + secret + rv if prev is None else secret + prev
        ).digest()
        c = bytes(x ^ y for x, y in zip(chunk, b, strict=False))
        out += c
        prev = c
    return out


def test_fixed_vector() -> None:
    # Assigned Tunnel ID 0x1234 hidden with secret "secret" and a fixed RV.
    rv = bytes(range(16))
    expected_b1 = hashlib.md5(b"\x00\x09" + b"secret" + rv).digest()
    expected = bytes(x ^ y for x, y in zip(b"\x00\x02\x12\x34", expected_b1, strict=False))
    assert hide_value(9, b"\x12\x34", key=b"secret", random_vector=rv) == expected
    assert unhide_value(9, expected, key=b"secret", random_vector=rv) == b"\x12\x34"


@given(
    st.binary(max_size=100), st.binary(min_size=1, max_size=20), st.binary(min_size=1, max_size=32)
)
def test_matches_reference_and_round_trips(value: bytes, secret: bytes, rv: bytes) -> None:
    hidden = hide_value(21, value, key=secret, random_vector=rv)
    assert hidden == reference_hide(21, value, secret, rv)
    assert unhide_value(21, hidden, key=secret, random_vector=rv) == value


def test_padding_masks_length() -> None:
    hidden = hide_value(9, b"\x00\x07", key=b"s", random_vector=b"r", padding=bytes(12))
    assert len(hidden) == 16
    assert unhide_value(9, hidden, key=b"s", random_vector=b"r") == b"\x00\x07"


def test_v3_key_derivation() -> None:
    assert hiding_key(b"s", 2) == b"s"
    assert hiding_key(b"s", 3) == hmac.new(b"s", b"\x01", hashlib.md5).digest()


def test_wrong_secret_is_codec_error() -> None:
    hidden = hide_value(9, b"\x00\x07", key=b"right", random_vector=b"r")
    with pytest.raises(CodecError):
        unhide_value(9, hidden + bytes(0), key=b"wrong-secret-xx", random_vector=b"r")
    with pytest.raises(CodecError):
        unhide_value(9, b"\x01", key=b"k", random_vector=b"r")


def _rand(n: int) -> bytes:
    return bytes(range(n))


@pytest.mark.parametrize("version", [2, 3])
def test_message_with_hidden_avps(version: int) -> None:
    msg = ControlMessage(
        message_type=MessageType.ICRP,
        avps=(
            Avp(attribute=AvpType.ASSIGNED_SESSION_ID, value=7, hidden=True),
            Avp(attribute=AvpType.CALLED_NUMBER, value="x" * 40, hidden=True),
        ),
    )
    data = serialize_message(
        msg, version=version, tunnel_id=1, secret=b"tunnel", random_bytes=_rand
    )
    _, clear = parse_message(data, secret=b"tunnel")
    assert clear is not None
    assert clear.avps[0].attribute == AvpType.RANDOM_VECTOR
    assert clear.avps[0].value == _rand(16)
    assert clear.avps[1:] == msg.avps
    # Without the secret the AVPs stay opaque; get() does not return their octets.
    _, opaque = parse_message(data)
    assert opaque is not None
    assert [a.opaque for a in opaque.avps] == [False, True, True]
    assert opaque.get(AvpType.ASSIGNED_SESSION_ID) is None
    # Re-encoding opaque AVPs forwards the hidden octets unchanged.
    assert encode_body(opaque) == data[12:]


def test_hidden_avp_uses_closest_random_vector() -> None:
    body = encode_body(
        ControlMessage(
            message_type=MessageType.ICRP,
            avps=(
                Avp(attribute=AvpType.RANDOM_VECTOR, value=b"first"),
                Avp(attribute=AvpType.ASSIGNED_SESSION_ID, value=1, hidden=True),
                Avp(attribute=AvpType.RANDOM_VECTOR, value=b"second"),
                Avp(attribute=AvpType.CALL_SERIAL_NUMBER, value=2, hidden=True),
            ),
        ),
        version=2,
        secret=b"k",
    )
    second_rv_end = body.index(b"second") + len(b"second")
    hidden = body[second_rv_end + 6 :]
    assert unhide_value(15, hidden, key=b"k", random_vector=b"second") == (2).to_bytes(4, "big")
    data = b"\xc8\x02" + (12 + len(body)).to_bytes(2, "big") + bytes(8) + body
    _, msg = parse_message(data, secret=b"k")
    assert msg is not None
    assert msg.assigned_session_id == 1
    assert msg.get(AvpType.CALL_SERIAL_NUMBER) == 2


def test_hidden_without_random_vector_stays_opaque() -> None:
    avp = bytes.fromhex("c00a000000090011223344")[:10]
    data = bytes.fromhex("c802") + (12 + 8 + 10).to_bytes(2, "big") + bytes(8)
    data += bytes.fromhex("8008000000000000") + avp
    _, msg = parse_message(data, secret=b"k")
    assert msg is not None
    assert msg.avps[0].opaque
