"""AVP codec: hand-written vectors from RFC 2661 4.1 / RFC 3931 5.1 figures, table round trips."""

from __future__ import annotations

import pytest

from l2tp.protocol import (
    AVP_TABLE,
    Accm,
    Avp,
    AvpType,
    CallErrors,
    CircuitStatus,
    CodecError,
    FailoverCapability,
    LocalProtocolError,
    MessageDigest,
    ProtocolVersion,
    PseudowireType,
    Q931Cause,
    ResultCode,
    parse_avps,
    serialize_avp,
)
from l2tp.protocol.avps import AvpSpec, AvpValue

# (AVP, wire hex) written by hand from the RFC figures: |M|H|rsvd|Length|Vendor|Type|Value|
VECTORS = [
    # Assigned Tunnel ID 0x1234, M=1, length 8 (RFC 2661 4.4.3).
    (Avp(attribute=AvpType.ASSIGNED_TUNNEL_ID, value=0x1234), "8008 0000 0009 1234"),
    # Protocol Version 1.0.
    (
        Avp(attribute=AvpType.PROTOCOL_VERSION, value=ProtocolVersion(version=1, revision=0)),
        "8008 0000 0002 0100",
    ),
    # Result Code 2, Error 8, message "x" (length 11).
    (
        Avp(attribute=AvpType.RESULT_CODE, value=ResultCode(result=2, error=8, message="x")),
        "800b 0000 0001 0002 0008 78",
    ),
    (Avp(attribute=AvpType.RESULT_CODE, value=ResultCode(result=1)), "8008 0000 0001 0001"),
    # Tie Breaker: M=0, 8 octets (length 14).
    (
        Avp(attribute=AvpType.TIE_BREAKER, value=bytes.fromhex("0102030405060708")),
        "000e 0000 0005 0102030405060708",
    ),
    # Q.931: cause 16, msg 0x5a, advisory "ok" (length 11).
    (
        Avp(
            attribute=AvpType.Q931_CAUSE_CODE,
            value=Q931Cause(cause=16, message=0x5A, advisory="ok"),
        ),
        "800b 0000 000c 0010 5a 6f6b",
    ),
    # Call Errors: 2 reserved octets then six 32-bit counters (length 32).
    (
        Avp(
            attribute=AvpType.CALL_ERRORS,
            value=CallErrors(
                crc_errors=1,
                framing_errors=2,
                hardware_overruns=3,
                buffer_overruns=4,
                timeout_errors=5,
                alignment_errors=6,
            ),
        ),
        "8020 0000 0022 0000 00000001 00000002 00000003 00000004 00000005 00000006",
    ),
    # ACCM: reserved, send, receive (length 16).
    (
        Avp(attribute=AvpType.ACCM, value=Accm(send=0xFFFFFFFF, receive=0x000A0000)),
        "8010 0000 0023 0000 ffffffff 000a0000",
    ),
    # Sequencing Required: no value (length 6).
    (Avp(attribute=AvpType.SEQUENCING_REQUIRED, value=b""), "8006 0000 0027"),
    # Proxy Authen ID: reserved octet then the ID, M=0.
    (Avp(attribute=AvpType.PROXY_AUTHEN_ID, value=42), "0008 0000 0020 002a"),
    # v3 Local Session ID (RFC 3931 5.4.4), 32-bit.
    (Avp(attribute=AvpType.LOCAL_SESSION_ID, value=0x11223344), "800a 0000 003f 11223344"),
    # Pseudowire Capabilities List: Ethernet, PPP.
    (
        Avp(
            attribute=AvpType.PSEUDOWIRE_CAPABILITIES_LIST,
            value=(PseudowireType.ETHERNET, PseudowireType.PPP),
        ),
        "800a 0000 003e 0005 0007",
    ),
    # Circuit Status: A=1, N=1 in the low bits.
    (
        Avp(attribute=AvpType.CIRCUIT_STATUS, value=CircuitStatus(active=True, new=True)),
        "8008 0000 0047 0003",
    ),
    # Message Digest type 0 with 16 zero octets: length 23.
    (
        Avp(attribute=AvpType.MESSAGE_DIGEST, value=MessageDigest(digest_type=0, digest=bytes(16))),
        "8017 0000 003b 00" + "00" * 16,
    ),
    # Tx Connect Speed BPS, 64-bit (length 14).
    (
        Avp(attribute=AvpType.TX_CONNECT_SPEED_BPS, value=10_000_000_000),
        "800e 0000 004a 00000002540be400",
    ),
    (
        Avp(
            attribute=AvpType.FAILOVER_CAPABILITY,
            value=FailoverCapability(flags=3, recovery_time=1000),
        ),
        "000c 0000 004c 0003 000003e8",
    ),
    # Assigned Cookie of 8 octets.
    (
        Avp(attribute=AvpType.ASSIGNED_COOKIE, value=bytes(range(8))),
        "800e 0000 0041 0001020304050607",
    ),
    # Host Name "lns".
    (Avp(attribute=AvpType.HOST_NAME, value="lns"), "8009 0000 0007 6c6e73"),
]


@pytest.mark.parametrize(("avp", "wire"), VECTORS, ids=lambda x: getattr(x, "name", None))
def test_vectors_both_directions(avp: Avp, wire: str) -> None:
    data = bytes.fromhex(wire.replace(" ", ""))
    assert serialize_avp(avp) == data
    (parsed,) = parse_avps(data)
    assert parsed == avp


def _sample_value(spec: AvpSpec) -> AvpValue:
    kind = spec.codec.kind
    samples: dict[str, AvpValue] = {
        "u16": 0xBEEF,
        "u32": 0xDEADBEEF,
        "u64": 2**63 + 5,
        "text": "h\u00e9llo",
        "bytes": bytes(range(8)),
        "empty": b"",
        "framing": 3,
        "bearer": 2,
        "protocol_version": ProtocolVersion(version=1, revision=0),
        "result_code": ResultCode(result=2, error=6, message="vendor"),
        "q931_cause": Q931Cause(cause=1, message=2, advisory=""),
        "call_errors": CallErrors(crc_errors=7),
        "accm": Accm(send=1, receive=2),
        "proxy_authen_id": 9,
        "pw_list": (5, 7, 0x1234),
        "message_digest": MessageDigest(digest_type=1, digest=bytes(range(20))),
        "circuit_status": CircuitStatus(active=False, new=True),
        "failover_capability": FailoverCapability(flags=1, recovery_time=5),
    }
    if kind.startswith("u16:"):
        return 1
    if spec.attribute == AvpType.CHALLENGE_RESPONSE:
        return bytes(16)
    return samples[kind]


@pytest.mark.parametrize("spec", AVP_TABLE, ids=lambda s: s.name)
@pytest.mark.parametrize("mandatory", [True, False])
def test_every_table_avp_round_trips(spec: AvpSpec, mandatory: bool) -> None:
    avp = Avp(attribute=AvpType(spec.attribute), value=_sample_value(spec), mandatory=mandatory)
    data = serialize_avp(avp)
    assert (data[0] & 0x80 == 0x80) is mandatory
    assert ((data[0] & 0x03) << 8) | data[1] == len(data)
    (parsed,) = parse_avps(data)
    assert parsed == avp
    assert parsed.name == spec.name


def test_default_m_bit_comes_from_table() -> None:
    assert Avp(attribute=AvpType.TIE_BREAKER, value=bytes(8)).mandatory is False
    assert Avp(attribute=AvpType.HOST_NAME, value="x").mandatory is True
    assert Avp(attribute=999, value=b"").mandatory is False


def test_unknown_optional_and_vendor_avps_kept_raw_and_skipped() -> None:
    data = bytes.fromhex(
        "000a 0000 0063 01020304"  # unknown IETF type 99, M=0
        "800a 0009 0001 aabbccdd"  # vendor 9 (Cisco) type 1, M=1
        "8008 0000 0009 0007".replace(" ", "")  # Assigned Tunnel ID 7 after them
    )
    a, b, c = parse_avps(data)
    assert (a.attribute, a.vendor, a.value, a.mandatory, a.known) == (
        99,
        0,
        bytes.fromhex("01020304"),
        False,
        False,
    )
    assert (b.vendor, b.value, b.is_unknown_mandatory) == (9, bytes.fromhex("aabbccdd"), True)
    assert c.value == 7
    assert [serialize_avp(x) for x in (a, b, c)] == [data[0:10], data[10:20], data[20:28]]


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ("8005 0000 0009", "shorter than the AVP header"),
        ("800a 0000 0009 0001", "overruns"),
        ("8009 0000 0009 000100", "not a legal length"),  # Assigned Tunnel ID of 3 bytes
        ("8006 0000 0007", "not a legal length"),  # empty Host Name
        ("800a 0000 0041 010203 04", "not a legal length"),  # cookie of 4 is fine...
        ("8008 00", "too short for an AVP header"),
    ],
)
def test_malformed_avps_raise_codec_error_with_offset(wire: str, reason: str) -> None:
    data = bytes.fromhex("8008 0000 0009 0001".replace(" ", "") + wire.replace(" ", ""))
    if "0041" in wire:
        data = data[:8] + bytes.fromhex("8009 0000 0041 010203".replace(" ", ""))
    with pytest.raises(CodecError) as info:
        parse_avps(data)
    assert reason in info.value.reason
    assert info.value.offset == 8


def test_bad_values_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError, match="Assigned Tunnel ID"):
        serialize_avp(Avp(attribute=AvpType.ASSIGNED_TUNNEL_ID, value=70000))
    with pytest.raises(LocalProtocolError, match="must not be hidden"):
        serialize_avp(
            Avp(attribute=AvpType.HOST_NAME, value="x", hidden=True),
            hide_key=b"k",
            random_vector=b"r",
        )
    with pytest.raises(LocalProtocolError, match="secret"):
        serialize_avp(Avp(attribute=AvpType.ASSIGNED_TUNNEL_ID, value=1, hidden=True))
    with pytest.raises(LocalProtocolError, match="raw bytes"):
        serialize_avp(Avp(attribute=999, value=5))
    with pytest.raises(LocalProtocolError, match="legal length"):
        serialize_avp(Avp(attribute=AvpType.HOST_NAME, value="x" * 1020))
    with pytest.raises(LocalProtocolError, match="legal length"):
        serialize_avp(Avp(attribute=AvpType.ASSIGNED_COOKIE, value=b"abc"))


def test_text_values_round_trip_arbitrary_octets() -> None:
    data = bytes.fromhex("8009 0000 0007 ff00fe".replace(" ", ""))
    (avp,) = parse_avps(data)
    assert isinstance(avp.value, str)
    assert serialize_avp(avp) == data
