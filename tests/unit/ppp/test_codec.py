"""Frame, packet and option codec: vectors both ways and every length rule."""

from __future__ import annotations

import pytest

from l2tp.ppp.codec import (
    Option,
    Packet,
    parse_frame,
    parse_options,
    parse_packet,
    serialize_frame,
    serialize_options,
    serialize_packet,
)
from l2tp.ppp.constants import AuthMethod, Code, LcpOption, Protocol
from l2tp.protocol.errors import CodecError

# An LCP Configure-Request, id 1: MRU 1492, Magic-Number 0x01020304.
LCP_CR = bytes.fromhex("c0210101000e010405d4050601020304")


def test_frame_vector_both_ways() -> None:
    protocol, information = parse_frame(LCP_CR)
    assert protocol == Protocol.LCP
    packet = parse_packet(information)
    assert packet == Packet(
        code=Code.CONFIGURE_REQUEST, identifier=1, data=bytes.fromhex("010405d4050601020304")
    )
    assert parse_options(packet.data) == [
        Option(LcpOption.MRU, b"\x05\xd4"),
        Option(LcpOption.MAGIC_NUMBER, bytes.fromhex("01020304")),
    ]
    rebuilt = serialize_frame(protocol, serialize_packet(packet))
    assert rebuilt == LCP_CR


def test_address_and_control_are_skipped_on_input() -> None:
    assert parse_frame(b"\xff\x03" + LCP_CR) == parse_frame(LCP_CR)


@pytest.mark.parametrize(
    "frame",
    [b"", b"\xc0", b"\xff\x03\xc0", b"\x21\x45\x00", b"\xc0\x20\x01", b"\xff\x03\x21"],
    ids=["empty", "one-octet", "ac-then-one", "compressed-protocol", "even-lsb", "ac-compressed"],
)
def test_bad_frames_raise_codec_error(frame: bytes) -> None:
    with pytest.raises(CodecError):
        parse_frame(frame)


@pytest.mark.parametrize("protocol", [-1, 0x10000, 0xC020, 0x0121])
def test_serialize_refuses_invalid_protocol_numbers(protocol: int) -> None:
    with pytest.raises(ValueError):
        serialize_frame(protocol, b"")


def test_packet_length_rules() -> None:
    with pytest.raises(CodecError, match="shorter than its 4-octet header"):
        parse_packet(b"\x01\x01\x00")
    with pytest.raises(CodecError, match="smaller than the header"):
        parse_packet(b"\x01\x01\x00\x03")
    with pytest.raises(CodecError, match="exceeds"):
        parse_packet(b"\x01\x01\x00\x09abcd")
    # RFC 1661 5: octets after Length are padding.
    assert parse_packet(b"\x09\x07\x00\x08abcdPADDING").data == b"abcd"


def test_option_length_rules() -> None:
    with pytest.raises(CodecError, match="truncated option header"):
        parse_options(b"\x01\x04\x05\xdc\x05")
    with pytest.raises(CodecError, match="smaller than 2"):
        parse_options(b"\x07\x01")
    with pytest.raises(CodecError, match="past the end"):
        parse_options(b"\x05\x06\x01\x02")
    assert parse_options(b"") == []
    # Unknown types are kept raw, to be echoed in a Configure-Reject.
    assert parse_options(b"\x63\x03\xaa\x07\x02") == [Option(99, b"\xaa"), Option(7)]
    assert serialize_options([Option(99, b"\xaa"), Option(7)]) == b"\x63\x03\xaa\x07\x02"


def test_value_checks_on_construction() -> None:
    with pytest.raises(ValueError):
        Packet(code=256, identifier=0)
    with pytest.raises(ValueError):
        Packet(code=1, identifier=-1)
    with pytest.raises(ValueError):
        Option(1, bytes(254))
    assert len(Option(1, bytes(253)).to_bytes()) == 255


def test_auth_option_data() -> None:
    assert AuthMethod.PAP.option_data == b"\xc0\x23"
    assert AuthMethod.CHAP_MD5.option_data == b"\xc2\x23\x05"
    assert AuthMethod.MSCHAP_V2.option_data == b"\xc2\x23\x81"
    for method in AuthMethod:
        assert AuthMethod.from_option_data(method.option_data) is method
    assert AuthMethod.from_option_data(b"\xc2\x23\x80") is None  # MS-CHAPv1
    assert AuthMethod.from_option_data(b"\xc0\x23\x00") is None  # PAP carries no data
    assert AuthMethod.from_option_data(b"\xc2\x23") is None
