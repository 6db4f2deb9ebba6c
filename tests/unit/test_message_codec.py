"""Control messages: RFC-layout vectors, round trips of every type, specs, unknown AVPs."""

from __future__ import annotations

import pytest

from l2tp.protocol import (
    Avp,
    AvpType,
    CircuitStatus,
    CodecError,
    ControlHeader,
    ControlMessage,
    LocalProtocolError,
    MessageType,
    MessageValidationError,
    ResultCode,
    encode_body,
    message_spec,
    parse_message,
    serialize_message,
    validate_message,
)
from l2tp.protocol.header import (
    CONTROL_HEADER_LEN,
    build_control_message,
    parse_control_header,
    serialize_control_header,
)
from l2tp.protocol.message import parse_body
from tests.tshark_oracle import sample_messages

HELLO_V2 = "c802 0014 0005 0000 0001 0002 8008 0000 0000 0006"
ICRQ_V2 = (
    "c802 0030 0003 0000 0000 0000"  # T L S ver 2, length 48, tunnel 3
    "8008 0000 0000 000a"  # Message Type ICRQ
    "8008 0000 000e 4321"  # Assigned Session ID
    "800a 0000 000f 00000001"  # Call Serial Number
    "800a 0000 0012 00000002"  # Bearer Type analog
)
SCCRQ_V3 = (
    "c803 0037 00000000 0000 0000"  # v3 header, length 55, connection ID 0
    "8008 0000 0000 0001"  # SCCRQ
    "8007 0000 0007 61"  # Host Name "a"
    "800a 0000 003c 0a000001"  # Router ID
    "800a 0000 003d cafebabe"  # Assigned Control Connection ID
    "8008 0000 003e 0005"  # PW capabilities: Ethernet
)


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_hello_vector() -> None:
    data = _hex(HELLO_V2)
    header, msg = parse_message(data)
    assert header == ControlHeader(version=2, tunnel_id=5, ns=1, nr=2, length=20)
    assert msg == ControlMessage.hello()
    assert serialize_message(ControlMessage.hello(), version=2, tunnel_id=5, ns=1, nr=2) == data
    assert encode_body(ControlMessage.hello()) == data[12:]


def test_icrq_v2_vector() -> None:
    data = _hex(ICRQ_V2)
    built = ControlMessage.of(
        MessageType.ICRQ, assigned_session_id=0x4321, call_serial_number=1, bearer_type=2
    )
    assert serialize_message(built, version=2, tunnel_id=3) == data
    _, msg = parse_message(data)
    assert msg == built
    assert msg is not None
    assert msg.assigned_session_id == 0x4321
    assert msg.get(AvpType.CALL_SERIAL_NUMBER) == 1
    validate_message(msg, version=2)


def test_sccrq_v3_vector() -> None:
    data = _hex(SCCRQ_V3)
    header, msg = parse_message(data)
    assert header.version == 3
    assert msg is not None
    assert msg.message_type is MessageType.SCCRQ
    assert msg.assigned_connection_id == 0xCAFEBABE
    assert msg.get(AvpType.PSEUDOWIRE_CAPABILITIES_LIST) == (5,)
    validate_message(msg, version=3)
    with pytest.raises(MessageValidationError, match="Protocol Version"):
        validate_message(msg, version=2)
    assert serialize_message(msg, version=3, tunnel_id=0) == data
    ip = parse_message(b"\x00" * 4 + data, ip_encap=True)
    assert ip == (header, msg)


def test_zlb() -> None:
    data = build_control_message(version=2, tunnel_id=9, ns=4, nr=7)
    header, msg = parse_message(data)
    assert msg is None and header.is_zlb and header.nr == 7
    assert serialize_message(None, version=2, tunnel_id=9, ns=4, nr=7) == data


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("hidden", [False, True])
def test_every_message_type_round_trips_and_validates(version: int, hidden: bool) -> None:
    for index, msg in enumerate(sample_messages(version, hidden=hidden)):
        data = serialize_message(
            msg,
            version=version,
            tunnel_id=17,
            ns=index,
            nr=index + 1,
            secret=b"shh",
            random_bytes=lambda n: b"\x5a" * n,
        )
        header, parsed = parse_message(data, secret=b"shh")
        assert (header.tunnel_id, header.ns, header.nr, header.length) == (
            17,
            index,
            index + 1,
            len(data),
        )
        assert parsed is not None
        avps = tuple(a for a in parsed.avps if a.attribute != AvpType.RANDOM_VECTOR)
        assert avps == msg.avps
        assert parsed.message_type == msg.message_type
        validate_message(parsed, version=version, strict=True)
        # Lazy get() and built AVPs agree.
        for avp in msg.avps:
            assert parsed.get(avp.attribute) == avp.value


def test_all_message_types_have_specs() -> None:
    for mt in MessageType:
        if mt not in (MessageType.ACK, MessageType.FSQ, MessageType.FSR):
            assert message_spec(mt, 2) is not None
        assert message_spec(mt, 3) is not None


@pytest.mark.parametrize(
    ("version", "message", "missing"),
    [
        (2, ControlMessage.of(MessageType.ICRQ, assigned_session_id=1), "Call Serial Number"),
        (
            3,
            ControlMessage.of(
                MessageType.ICRQ,
                local_session_id=1,
                call_serial_number=1,
                pseudowire_type=5,
                remote_end_id="x",
                circuit_status=CircuitStatus(active=True),
            ),
            "Remote Session ID",
        ),
        (3, ControlMessage.of(MessageType.SCCRQ, host_name="x", assigned_tunnel_id=1), "Router ID"),
        (2, ControlMessage.of(MessageType.STOPCCN, assigned_tunnel_id=1), "Result Code"),
        (
            3,
            ControlMessage.of(MessageType.CDN, result_code=ResultCode(result=1)),
            "Local Session ID",
        ),
    ],
)
def test_validation_names_missing_avp(version: int, message: ControlMessage, missing: str) -> None:
    with pytest.raises(MessageValidationError, match=missing) as info:
        validate_message(message, version=version)
    assert info.value.missing


def test_validation_strict_and_unknown_type() -> None:
    msg = ControlMessage.of(MessageType.HELLO, assigned_tunnel_id=3)
    validate_message(msg, version=2)
    with pytest.raises(MessageValidationError, match="may not carry"):
        validate_message(msg, version=2, strict=True)
    with pytest.raises(MessageValidationError, match="not defined"):
        validate_message(ControlMessage(message_type=MessageType.ACK), version=2)


def test_unknown_mandatory_is_reported_not_raised() -> None:
    msg = ControlMessage(
        message_type=MessageType.ICRQ,
        avps=(
            Avp(attribute=AvpType.ASSIGNED_SESSION_ID, value=1),
            Avp(attribute=250, value=b"xyz", mandatory=True),
            Avp(attribute=251, value=b"", mandatory=False),
            Avp(attribute=1, vendor=311, value=b"\x01", mandatory=True),
            Avp(attribute=AvpType.CALL_SERIAL_NUMBER, value=2),
        ),
    )
    data = serialize_message(msg, version=2, tunnel_id=1)
    _, parsed = parse_message(data)
    assert parsed is not None
    assert parsed.has_unknown_mandatory
    assert [(a.vendor, a.attribute) for a in parsed.unknown_mandatory] == [(0, 250), (311, 1)]
    assert parsed.get(AvpType.CALL_SERIAL_NUMBER) == 2  # skipped correctly past them
    assert parsed == msg
    _, clean = parse_message(_hex(ICRQ_V2))
    assert clean is not None and not clean.has_unknown_mandatory and clean.unknown_mandatory == ()


def test_vendor_message_type() -> None:
    msg = ControlMessage(message_type=77, vendor=9, mandatory=False)
    _, parsed = parse_message(serialize_message(msg, version=2, tunnel_id=1))
    assert parsed == msg
    assert parsed is not None and parsed.name == "Vendor 9 message 77"
    validate_message(parsed, version=2)


def test_unknown_message_type_decodes_to_int() -> None:
    msg = ControlMessage(message_type=99)
    _, parsed = parse_message(serialize_message(msg, version=3, tunnel_id=1))
    assert parsed is not None and parsed.message_type == 99
    assert not isinstance(parsed.message_type, MessageType)


@pytest.mark.parametrize(
    ("hexdata", "reason"),
    [
        ("c802 0010 0000 0000 0000 0000 8008 0000", "too short for the Message Type"),
        ("c802 0014 0000 0000 0000 0000 8008 0000 0009 0001", "not Message Type"),
        ("c802 0014 0000 0000 0000 0000 c008 0000 0000 0001", "must not be hidden"),
        ("c802 0016 0000 0000 0000 0000 800a 0000 0000 0001 0000", "expected 8"),
        ("4802 000c 0000 0000 0000 0000", "T bit clear"),
        ("c804 000c 0000 0000 0000 0000", "unsupported L2TP version"),
        ("c802 0020 0000 0000 0000 0000", "exceeds datagram"),
        ("c802 0008 0000 0000 0000 0000", "shorter than the header"),
        ("c802 000c 0000", "needs 12 bytes"),
        ("c802 0016 0000 0000 0000 0000 8008 0000 0000 0001 8002", "too short for an AVP header"),
    ],
)
def test_malformed_messages(hexdata: str, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        parse_message(_hex(hexdata))


def test_trailing_padding_after_length_is_ignored() -> None:
    header, msg = parse_message(_hex(HELLO_V2) + b"\x00\x00")
    assert header.length == 20 and msg == ControlMessage.hello()


def test_message_api_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        ControlMessage.of(MessageType.HELLO, no_such_avp=1)
    with pytest.raises(LocalProtocolError):
        ControlMessage(message_type=1, avps=(Avp(attribute=AvpType.MESSAGE_TYPE, value=1),))
    with pytest.raises(LocalProtocolError):
        serialize_message(ControlMessage.hello(), version=2, tunnel_id=70000)
    with pytest.raises(LocalProtocolError, match="random_bytes"):
        encode_body(
            ControlMessage.of(
                MessageType.ICRP, Avp(attribute=AvpType.ASSIGNED_SESSION_ID, value=1, hidden=True)
            ),
            version=2,
            secret=b"s",
        )
    with pytest.raises(AttributeError):
        ControlMessage.hello().message_type = 3  # type: ignore[misc]


def test_value_semantics() -> None:
    a = ControlMessage.of(MessageType.ICRP, assigned_session_id=1)
    _, b = parse_message(serialize_message(a, version=2, tunnel_id=1))
    assert a == b and hash(a) == hash(b)
    assert "ICRP" in repr(b) and a != ControlMessage.hello()
    assert AvpType.ASSIGNED_SESSION_ID in a and AvpType.HOST_NAME not in a


def test_digest_placeholder_goes_first() -> None:
    body = encode_body(ControlMessage.hello(), digest_type=0)
    assert body[8:14] == _hex("8017 0000 003b") and body[14:] == bytes(17)
    body = encode_body(ControlMessage.hello(), digest_type=1)
    assert body[8:14] == _hex("801b 0000 003b")


# -- parse_body: the tunnel's receive path, without re-reading the header -------


def _parse_body_cases() -> list[tuple[bytes, bytes | None]]:
    icrq = ControlMessage.of(MessageType.ICRQ, assigned_session_id=5, call_serial_number=1)
    hidden = ControlMessage(
        message_type=MessageType.ICRQ,
        avps=[Avp(attribute=AvpType.ASSIGNED_SESSION_ID, value=9, hidden=True)],
    )
    out: list[tuple[bytes, bytes | None]] = []
    for message, secret in ((icrq, None), (hidden, b"s3cret"), (hidden, None)):
        data = serialize_message(
            message,
            version=2,
            tunnel_id=7,
            session_id=3,
            ns=1,
            nr=2,
            secret=b"s3cret",
            random_bytes=lambda n: bytes(range(n)),
        )
        out.append((data, secret))
    return out


@pytest.mark.parametrize(("data", "secret"), _parse_body_cases())
def test_parse_body_matches_parse_message(data: bytes, secret: bytes | None) -> None:
    header, expected = parse_message(data, secret=secret)
    body = data[CONTROL_HEADER_LEN : header.length]
    got = parse_body(parse_control_header(data), body, secret=secret)
    assert got == expected
    assert got is not None and expected is not None
    assert got.assigned_session_id == expected.assigned_session_id


def test_parse_body_zlb_and_errors() -> None:
    header = parse_control_header(build_control_message(version=2, tunnel_id=1, ns=0, nr=0))
    assert parse_body(header, b"") is None
    with pytest.raises(CodecError, match="too short for the Message Type"):
        parse_body(header, b"\x80\x08\x00\x00")
    with pytest.raises(CodecError, match="not Message Type") as info:
        parse_body(header, bytes.fromhex("8008000000010001"))
    assert info.value.offset == 0


def test_build_control_message_fast_path_matches_header() -> None:
    body = b"\x80\x08\x00\x00\x00\x00\x00\x06"
    for version, tid in ((2, 0xFFFF), (3, 0x12345678)):
        header = ControlHeader(
            version=version, tunnel_id=tid, ns=65535, nr=1, length=CONTROL_HEADER_LEN + len(body)
        )
        data = build_control_message(version=version, tunnel_id=tid, ns=65535, nr=1, body=body)
        assert data == serialize_control_header(header) + body
        assert parse_control_header(data) == header
    with pytest.raises(ValueError, match="out of range"):
        build_control_message(version=2, tunnel_id=0x10000, ns=0, nr=0)
    with pytest.raises(ValueError, match="out of range"):
        build_control_message(version=2, tunnel_id=1, ns=0x10000, nr=0)
