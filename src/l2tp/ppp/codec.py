"""PPP frame, control packet and configuration option codec: free parse/serialize functions.

Frames are what a Linux ``/dev/ppp`` channel file descriptor reads and writes:
the 2-octet Protocol field followed by the information field (RFC 1661
section 2). There is no HDLC framing on an L2TP session (RFC 2661 section
5.4: the LAC strips it), so no flag, FCS or escaping. For robustness a
leading Address/Control pair ``FF 03`` (RFC 1662 3.1) is accepted and skipped
on input, but never produced.

Every control protocol (LCP, IPCP, IPv6CP) and both authentication protocols
share one packet layout (RFC 1661 section 5, RFC 1334 2.2, RFC 1994 4)::

    Code (1) | Identifier (1) | Length (2, includes these 4) | Data (Length - 4)

and Configure-* packets carry Type-Length-Value options (RFC 1661 section 6).

The parsers are strict and raise :class:`~l2tp.protocol.errors.CodecError`;
the receive path of :class:`~.session.PppConnection` turns that into a
counter, never an exception out of the public API.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol.errors import CodecError

ADDRESS_CONTROL = b"\xff\x03"
"""RFC 1662 3.1: All-Stations address and Unnumbered Information control."""
PACKET_HEADER_LEN = 4
OPTION_HEADER_LEN = 2


def parse_frame(frame: bytes) -> tuple[int, bytes]:
    """Split a frame into its Protocol number and information field.

    RFC 1661 section 2: a Protocol value has an even most significant octet
    and an odd least significant octet. A 1-octet (compressed) field is
    refused: we reject Protocol-Field-Compression (6.5), so the peer must not
    use it.
    """
    data = bytes(frame)
    if data[:2] == ADDRESS_CONTROL:
        data = data[2:]
    if len(data) < 2:
        raise CodecError("frame shorter than the Protocol field", 0)
    if data[0] & 0x01:
        raise CodecError("compressed or invalid Protocol field", 0)
    if not data[1] & 0x01:
        raise CodecError("Protocol field with an even least significant octet", 1)
    return int.from_bytes(data[:2], "big"), data[2:]


def serialize_frame(protocol: int, information: bytes) -> bytes:
    """The frame for ``protocol`` carrying ``information``, without Address/Control."""
    if not 0 <= protocol <= 0xFFFF or protocol & 0x0100 or not protocol & 0x0001:
        raise ValueError(f"invalid PPP protocol number {protocol:#06x}")
    return protocol.to_bytes(2, "big") + information


@dataclass(frozen=True, slots=True, kw_only=True)
class Packet:
    """One control packet: LCP, an NCP, PAP or CHAP (RFC 1661 section 5).

    ``data`` excludes any padding past the Length field, which RFC 1661 5
    says is ignored on reception.
    """

    code: int
    identifier: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.code <= 0xFF:
            raise ValueError(f"code {self.code} out of range")
        if not 0 <= self.identifier <= 0xFF:
            raise ValueError(f"identifier {self.identifier} out of range")
        if len(self.data) > 0xFFFF - PACKET_HEADER_LEN:
            raise ValueError("packet data longer than the Length field allows")


def parse_packet(information: bytes) -> Packet:
    """Decode a control packet from a frame's information field.

    RFC 1661 section 5: a Length smaller than the header, or larger than the
    octets received, makes the packet invalid ("MUST be silently discarded");
    octets after Length are padding.
    """
    if len(information) < PACKET_HEADER_LEN:
        raise CodecError("packet shorter than its 4-octet header", 0)
    length = int.from_bytes(information[2:4], "big")
    if length < PACKET_HEADER_LEN:
        raise CodecError(f"Length {length} smaller than the header", 2)
    if length > len(information):
        raise CodecError(f"Length {length} exceeds the {len(information)} octets received", 2)
    return Packet(
        code=information[0],
        identifier=information[1],
        data=bytes(information[PACKET_HEADER_LEN:length]),
    )


def serialize_packet(packet: Packet) -> bytes:
    """Encode ``packet`` with its Length field."""
    length = PACKET_HEADER_LEN + len(packet.data)
    return bytes((packet.code, packet.identifier)) + length.to_bytes(2, "big") + packet.data


@dataclass(frozen=True, slots=True)
class Option:
    """One Configuration Option (RFC 1661 section 6): Type, then Length - 2 octets of data.

    Unknown types stay plain integers with their raw data, so that they can be
    echoed back verbatim in a Configure-Reject (RFC 1661 5.4).
    """

    type: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.type <= 0xFF:
            raise ValueError(f"option type {self.type} out of range")
        if len(self.data) > 0xFF - OPTION_HEADER_LEN:
            raise ValueError("option data longer than its Length octet allows")

    def to_bytes(self) -> bytes:
        return bytes((self.type, OPTION_HEADER_LEN + len(self.data))) + self.data


def parse_options(data: bytes) -> list[Option]:
    """Decode the options of a Configure-* packet, in order.

    RFC 1661 section 6: Length includes Type and Length, so it is at least 2,
    and an option may not run past the end of the packet. Either fault makes
    the whole packet malformed.
    """
    options: list[Option] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < OPTION_HEADER_LEN:
            raise CodecError("truncated option header", offset)
        length = data[offset + 1]
        if length < OPTION_HEADER_LEN:
            raise CodecError(f"option Length {length} smaller than 2", offset + 1)
        if offset + length > len(data):
            raise CodecError("option runs past the end of the packet", offset + 1)
        options.append(
            Option(data[offset], bytes(data[offset + OPTION_HEADER_LEN : offset + length]))
        )
        offset += length
    return options


def serialize_options(options: list[Option] | tuple[Option, ...]) -> bytes:
    """Encode options in the given order (RFC 1661 5.2: Acks repeat the request's order)."""
    return b"".join(option.to_bytes() for option in options)


def u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")
