"""Attribute-Value Pairs: the :class:`Avp` value object and the raw AVP codec.

Wire layout (RFC 2661 section 4.1, RFC 3931 section 5.1)::

    |M|H| rsvd  |      Length       |           Vendor ID           |
    |        Attribute Type         |        Attribute Value ...    |

Length counts the 6-byte header, so it is at least 6 and at most 1023. The
reserved bits must be sent as zero and are ignored on receipt.

Parsing is split in two steps so that the common path stays fast:
:func:`scan_avps` walks the AVP headers once, checking every length against the
table (so that a malformed known AVP is reported at once, with its offset), and
:func:`decode_avp_at` builds an :class:`Avp` for one of them on demand.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .avps import LENGTHS_BY_KEY, SPECS, SPECS_BY_KEY, AvpSpec, AvpValue, avp_name, encode_value
from .constants import VENDOR_IETF, AvpType
from .errors import CodecError, LocalProtocolError
from .hidden import hide_value, unhide_value

AVP_HEADER_LEN = 6
FLAG_M = 0x8000
"""Mandatory bit."""
FLAG_H = 0x4000
"""Hidden bit."""
LENGTH_MASK = 0x03FF
MAX_AVP_LEN = 1023

_HEADER = struct.Struct("!HHH")
_unpack_header = _HEADER.unpack_from
_unpack_key = struct.Struct("!HI").unpack_from
_TOTAL_LENGTHS: dict[int, frozenset[int]] = {
    key: frozenset(n + AVP_HEADER_LEN for n in allowed) for key, allowed in LENGTHS_BY_KEY.items()
}
_ATTRIBUTES: dict[int, AvpType] = {int(m): m for m in AvpType}
_RANDOM_VECTOR_KEY = int(AvpType.RANDOM_VECTOR)


@dataclass(frozen=True, slots=True, kw_only=True)
class Avp:
    """One AVP, decoded as far as we can.

    ``value`` is the typed value from the AVP table, or the raw octets for an
    AVP we do not know (any vendor) so that it can be logged or forwarded.
    ``mandatory`` is the M bit; ``None`` (only when building) means "the bit the
    RFC prescribes for this attribute" and is resolved from the table at once.
    ``hidden`` is the H bit: on receipt it says the value was hidden on the wire,
    on send it asks for hiding.
    ``opaque`` is True when a received hidden AVP could not be unhidden (no
    secret, or no preceding Random Vector): ``value`` then holds the hidden octets.
    """

    attribute: int
    value: AvpValue
    vendor: int = VENDOR_IETF
    mandatory: bool | None = None
    hidden: bool = False
    opaque: bool = False

    def __post_init__(self) -> None:
        if self.mandatory is None:
            spec = SPECS.get((self.vendor, self.attribute))
            object.__setattr__(self, "mandatory", spec.mandatory if spec is not None else False)

    @property
    def spec(self) -> AvpSpec | None:
        """The table row for this AVP, None if unknown."""
        return SPECS.get((self.vendor, self.attribute))

    @property
    def known(self) -> bool:
        return (self.vendor, self.attribute) in SPECS

    @property
    def name(self) -> str:
        return avp_name(self.attribute, self.vendor)

    @property
    def is_unknown_mandatory(self) -> bool:
        """An unrecognised AVP with the M bit set: the RFC requires a teardown (RFC 2661 4.2)."""
        return bool(self.mandatory) and not self.known


def serialize_avp(
    avp: Avp,
    *,
    hide_key: bytes | None = None,
    random_vector: bytes | None = None,
    padding: bytes = b"",
) -> bytes:
    """Encode one AVP. Hidden AVPs need the hiding key and the Random Vector sent before it.

    Raises :class:`LocalProtocolError` for values that do not fit the table or
    for hiding requests the RFC forbids.
    """
    spec = SPECS.get((avp.vendor, avp.attribute))
    if spec is not None and not avp.hidden and not avp.opaque:
        # The common case, a known AVP in the clear: its vendor and type are in range
        # (they are in the table) and ``mandatory`` was resolved by Avp.__post_init__.
        value = encode_value(spec, avp.value)
        length = AVP_HEADER_LEN + len(value)
        if length > MAX_AVP_LEN:
            raise LocalProtocolError(f"{spec.name} AVP of {length} bytes exceeds {MAX_AVP_LEN}")
        flags = FLAG_M | length if avp.mandatory else length
        return _HEADER.pack(flags, avp.vendor, avp.attribute) + value
    if avp.opaque:
        if not isinstance(avp.value, bytes):
            raise LocalProtocolError("an opaque AVP must carry its hidden octets as bytes")
        value = avp.value
    elif spec is None:
        if not isinstance(avp.value, bytes | bytearray):
            raise LocalProtocolError(
                f"{avp_name(avp.attribute, avp.vendor)} is not in the AVP table: "
                "its value must be raw bytes"
            )
        value = bytes(avp.value)
    else:
        value = encode_value(spec, avp.value)
    mandatory = avp.mandatory
    if mandatory is None:
        mandatory = spec.mandatory if spec is not None else False
    flags = FLAG_M if mandatory else 0
    if avp.hidden:
        flags |= FLAG_H
        if not avp.opaque:
            if spec is not None and not spec.hideable:
                raise LocalProtocolError(f"the {spec.name} AVP must not be hidden")
            if hide_key is None or random_vector is None:
                raise LocalProtocolError("hiding an AVP needs a secret and a Random Vector AVP")
            value = hide_value(
                avp.attribute, value, key=hide_key, random_vector=random_vector, padding=padding
            )
    length = AVP_HEADER_LEN + len(value)
    if length > MAX_AVP_LEN:
        raise LocalProtocolError(f"{avp.name} AVP of {length} bytes exceeds {MAX_AVP_LEN}")
    if not 0 <= avp.vendor <= 0xFFFF or not 0 <= avp.attribute <= 0xFFFF:
        raise LocalProtocolError("vendor ID and attribute type are 16-bit numbers")
    return _HEADER.pack(flags | length, avp.vendor, avp.attribute) + value


def scan_avps(data: bytes, pos: int, end: int) -> tuple[list[int], bool, bool]:
    """Walk the AVP headers in ``data[pos:end]``; return (starts, any hidden, any unknown M).

    Checks every AVP's Length against the datagram and, for known AVPs that are
    not hidden, against the table's legal value lengths. Raises
    :class:`CodecError` with the offset of the offending AVP.

    This is the parse hot path: the vendor and attribute type are read as one
    32-bit key and looked up in a table of legal *total* AVP lengths.
    """
    starts: list[int] = []
    append = starts.append
    any_hidden = False
    unknown_mandatory = False
    totals = _TOTAL_LENGTHS
    unpack = _unpack_key
    try:
        while pos < end:
            word, key = unpack(data, pos)
            length = word & LENGTH_MASK
            nxt = pos + length
            if length < AVP_HEADER_LEN or nxt > end:
                _bad_avp_length(word, key, pos, end)
            allowed = totals.get(key)
            if allowed is None:
                if word & FLAG_M:
                    unknown_mandatory = True
            elif word & FLAG_H:
                any_hidden = True
            elif length not in allowed:
                raise CodecError(
                    f"{avp_name(key & 0xFFFF, key >> 16)} AVP value of "
                    f"{length - AVP_HEADER_LEN} bytes is not a legal length",
                    pos,
                )
            append(pos)
            pos = nxt
    except struct.error:
        raise CodecError(
            f"{end - pos} trailing bytes are too short for an AVP header", pos
        ) from None
    return starts, any_hidden, unknown_mandatory


def _bad_avp_length(word: int, key: int, pos: int, end: int) -> None:
    length = word & LENGTH_MASK
    if pos + AVP_HEADER_LEN > end:
        raise CodecError(f"{end - pos} trailing bytes are too short for an AVP header", pos)
    if length < AVP_HEADER_LEN:
        raise CodecError(f"AVP length {length} is shorter than the AVP header", pos)
    raise CodecError(
        f"{avp_name(key & 0xFFFF, key >> 16)} AVP length {length} overruns the message", pos
    )


def decode_avp_at(
    data: bytes, pos: int, *, hide_key: bytes | None = None, random_vector: bytes | None = None
) -> Avp:
    """Build the :class:`Avp` whose header is at ``data[pos]`` (already checked by scan_avps).

    A hidden AVP is unhidden when both a key and a Random Vector are given;
    otherwise it is returned opaque. Raises :class:`CodecError` when the
    unhidden value has an illegal length or the hidden subformat is corrupt.
    """
    word, vendor, attr = _unpack_header(data, pos)
    length = word & LENGTH_MASK
    value_bytes = bytes(data[pos + AVP_HEADER_LEN : pos + length])
    mandatory = bool(word & FLAG_M)
    hidden = bool(word & FLAG_H)
    spec = SPECS_BY_KEY.get((vendor << 16) | attr)
    attribute: int = _ATTRIBUTES.get(attr, attr) if vendor == VENDOR_IETF else attr
    if hidden:
        if hide_key is None or random_vector is None:
            return Avp(
                attribute=attribute,
                value=value_bytes,
                vendor=vendor,
                mandatory=mandatory,
                hidden=True,
                opaque=True,
            )
        value_bytes = unhide_value(
            attr, value_bytes, key=hide_key, random_vector=random_vector, offset=pos
        )
        if spec is not None and len(value_bytes) not in spec.codec.lengths:
            raise CodecError(
                f"hidden {spec.name} AVP value of {len(value_bytes)} bytes is not a legal length",
                pos,
            )
    value: AvpValue = value_bytes if spec is None else spec.codec.decode(value_bytes)
    return Avp(attribute=attribute, value=value, vendor=vendor, mandatory=mandatory, hidden=hidden)


def parse_avps(
    data: bytes, start: int = 0, end: int | None = None, *, hide_key: bytes | None = None
) -> list[Avp]:
    """Decode every AVP in ``data[start:end]``, unhiding with ``hide_key`` when given.

    Each hidden AVP uses the closest preceding Random Vector AVP (RFC 2661 4.3).
    """
    if end is None:
        end = len(data)
    starts, _, _ = scan_avps(data, start, end)
    out: list[Avp] = []
    random_vector: bytes | None = None
    for pos in starts:
        avp = decode_avp_at(data, pos, hide_key=hide_key, random_vector=random_vector)
        if avp.vendor == VENDOR_IETF and avp.attribute == _RANDOM_VECTOR_KEY and not avp.hidden:
            random_vector = avp.value if isinstance(avp.value, bytes) else None
        out.append(avp)
    return out
