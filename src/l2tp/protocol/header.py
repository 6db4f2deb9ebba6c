"""L2TP message headers: control and data, version 2 and 3.

The layouts follow RFC 2661 section 3.1 (L2TPv2) and RFC 3931 sections 3.2.1
(control over UDP), 4.1.2.1 (data over UDP) and 4.1.1 (IP encapsulation). Only
fixed-size fields are handled here; AVPs are the business of :mod:`avp`.

Layouts (big-endian)::

    v2 control  |T L x x S x O P x x x x Ver=2|Length|Tunnel ID|Session ID|Ns|Nr|
    v3 control  |T L x x S x x x x x x x Ver=3|Length| Control Connection ID |Ns|Nr|
    v2 data     |T L x x S x O P x x x x Ver=2|[Length]|Tunnel|Session|[Ns|Nr]|[Off|pad]|
    v3 data/UDP |T x x x x x x x x x x x Ver=3|Reserved| Session ID | Cookie 0/4/8 |

Over IP (protocol 115) L2TPv3 has no UDP-style header word: data messages begin
with the 32-bit session ID and control messages with a 32-bit zero session ID
followed by the control header above (RFC 3931 section 4.1.1.2).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import CodecError

FLAG_T = 0x8000
"""Type bit: 1 for control messages."""
FLAG_L = 0x4000
"""Length field present."""
FLAG_S = 0x0800
"""Ns/Nr present."""
FLAG_O = 0x0200
"""Offset size present (L2TPv2 data only)."""
FLAG_P = 0x0100
"""Priority (L2TPv2 data only)."""
VERSION_MASK = 0x000F

CONTROL_HEADER_LEN = 12
"""Both versions' control headers are 12 bytes: 2 flags + 2 length + 4 ID + 2 Ns + 2 Nr."""
IP_ENCAP_CONTROL_PREFIX = b"\x00\x00\x00\x00"
"""The zero session ID that marks a control message over IP encapsulation."""

_new = object.__new__
_set = object.__setattr__
_V2_CONTROL = struct.Struct("!HHHHHH")
_V3_CONTROL = struct.Struct("!HHIHH")
_CONTROL_FLAGS_V2 = FLAG_T | FLAG_L | FLAG_S | 2
_CONTROL_FLAGS_V3 = FLAG_T | FLAG_L | FLAG_S | 3


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlHeader:
    """The fixed part of a control message.

    ``tunnel_id`` is the L2TPv2 Tunnel ID (16-bit) or the L2TPv3 Control
    Connection ID (32-bit) of the *receiver*; ``session_id`` exists only in
    L2TPv2 (it is 0 for tunnel-level messages) and must be 0 for version 3.
    ``length`` is the total message length including this header.
    """

    version: int
    tunnel_id: int
    session_id: int = 0
    ns: int = 0
    nr: int = 0
    length: int = CONTROL_HEADER_LEN

    def __post_init__(self) -> None:
        if self.version not in (2, 3):
            raise ValueError(f"L2TP version must be 2 or 3, not {self.version}")
        id_max = 0xFFFF if self.version == 2 else 0xFFFFFFFF
        if not 0 <= self.tunnel_id <= id_max:
            raise ValueError(f"tunnel ID {self.tunnel_id} out of range for L2TPv{self.version}")
        if self.version == 3 and self.session_id != 0:
            raise ValueError("L2TPv3 control headers carry no session ID")
        if not 0 <= self.session_id <= 0xFFFF:
            raise ValueError(f"session ID {self.session_id} out of range")
        for name in ("ns", "nr"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFFFF:
                raise ValueError(f"{name} {value} out of range 0-65535")
        if not CONTROL_HEADER_LEN <= self.length <= 0xFFFF:
            raise ValueError(f"length {self.length} out of range")

    @property
    def is_zlb(self) -> bool:
        """A Zero-Length Body message is a bare header: an acknowledgement only."""
        return self.length == CONTROL_HEADER_LEN


def is_control(data: bytes) -> bool:
    """Tell control from data by the T bit, for demultiplexing a shared UDP socket.

    Data shorter than two bytes is treated as data so that the caller counts and
    drops it on the data path rather than feeding it to the control parser.
    """
    return len(data) >= 2 and bool(data[0] & 0x80)


def peek_version(data: bytes) -> int:
    """Return the Ver field of a UDP-encapsulated message, or raise :class:`CodecError`."""
    if len(data) < 2:
        raise CodecError("datagram shorter than an L2TP flags word", len(data))
    return data[1] & VERSION_MASK


def parse_control_header(data: bytes | bytearray | memoryview) -> ControlHeader:
    """Decode the control header at the start of ``data`` (UDP encapsulation).

    RFC 2661 section 3.1 requires T, L and S set and O, P clear on control
    messages; anything else is rejected. The Length field must fit in the
    datagram; bytes after ``length`` are padding the caller ignores.
    """
    size = len(data)
    if size < CONTROL_HEADER_LEN:
        raise CodecError(f"control header needs {CONTROL_HEADER_LEN} bytes, got {size}", size)
    flags = (data[0] << 8) | data[1]
    version = flags & VERSION_MASK
    if not flags & FLAG_T:
        raise CodecError("T bit clear: not a control message", 0)
    if version == 2:
        if flags & 0xFFF0 != FLAG_T | FLAG_L | FLAG_S:
            raise CodecError(f"invalid L2TPv2 control flags 0x{flags:04x}", 0)
        _, length, tunnel_id, session_id, ns, nr = _V2_CONTROL.unpack_from(data)
    elif version == 3:
        if flags & 0xFFF0 != FLAG_T | FLAG_L | FLAG_S:
            raise CodecError(f"invalid L2TPv3 control flags 0x{flags:04x}", 0)
        _, length, tunnel_id, ns, nr = _V3_CONTROL.unpack_from(data)
        session_id = 0
    else:
        raise CodecError(f"unsupported L2TP version {version}", 1)
    if length < CONTROL_HEADER_LEN:
        raise CodecError(f"length field {length} shorter than the header", 2)
    if length > size:
        raise CodecError(f"length field {length} exceeds datagram of {size} bytes", 2)
    # Every field was range-checked above or is a 16/32-bit field as unpacked:
    # skip the constructor's validation, which costs more than the parse.
    header: ControlHeader = _new(ControlHeader)
    _set(header, "version", version)
    _set(header, "tunnel_id", tunnel_id)
    _set(header, "session_id", session_id)
    _set(header, "ns", ns)
    _set(header, "nr", nr)
    _set(header, "length", length)
    return header


def serialize_control_header(header: ControlHeader) -> bytes:
    """Encode ``header``; ``header.length`` must already include the AVPs that follow."""
    if header.version == 2:
        return _V2_CONTROL.pack(
            _CONTROL_FLAGS_V2,
            header.length,
            header.tunnel_id,
            header.session_id,
            header.ns,
            header.nr,
        )
    return _V3_CONTROL.pack(
        _CONTROL_FLAGS_V3, header.length, header.tunnel_id, header.ns, header.nr
    )


def build_control_message(
    *, version: int, tunnel_id: int, session_id: int = 0, ns: int, nr: int, body: bytes = b""
) -> bytes:
    """Prefix an encoded AVP body with a control header; an empty body makes a ZLB."""
    length = CONTROL_HEADER_LEN + len(body)
    if (
        version == 2
        and 0 <= tunnel_id <= 0xFFFF
        and 0 <= session_id <= 0xFFFF
        and 0 <= ns <= 0xFFFF
        and 0 <= nr <= 0xFFFF
        and length <= 0xFFFF
    ):
        # The common case, in range: pack directly rather than via ControlHeader.
        return _V2_CONTROL.pack(_CONTROL_FLAGS_V2, length, tunnel_id, session_id, ns, nr) + body
    header = ControlHeader(
        version=version, tunnel_id=tunnel_id, session_id=session_id, ns=ns, nr=nr, length=length
    )
    return serialize_control_header(header) + body


def strip_ip_encap_control(data: bytes) -> bytes:
    """Remove the zero session ID that precedes control messages over IP (RFC 3931 4.1.1.2).

    Raises :class:`CodecError` when the datagram is a data message (non-zero
    session ID) or too short.
    """
    if len(data) < 4:
        raise CodecError("IP-encapsulated datagram shorter than a session ID", len(data))
    if data[:4] != IP_ENCAP_CONTROL_PREFIX:
        raise CodecError("non-zero session ID: a data message, not control", 0)
    return data[4:]


@dataclass(frozen=True, slots=True, kw_only=True)
class DataHeaderV2:
    """The header of an L2TPv2 data message (RFC 2661 section 3.1).

    ``payload_offset`` is where the PPP frame starts in the datagram, after the
    optional offset padding.
    """

    tunnel_id: int
    session_id: int
    ns: int | None
    nr: int | None
    length: int | None
    priority: bool
    offset_size: int
    payload_offset: int


def parse_data_header_v2(data: bytes | bytearray | memoryview) -> DataHeaderV2:
    """Decode an L2TPv2 data header, honouring the optional L, S and O fields."""
    size = len(data)
    if size < 6:
        raise CodecError(f"L2TPv2 data header needs at least 6 bytes, got {size}", size)
    flags = (data[0] << 8) | data[1]
    if flags & FLAG_T:
        raise CodecError("T bit set: a control message, not data", 0)
    if flags & VERSION_MASK != 2:
        raise CodecError(f"version {flags & VERSION_MASK} is not L2TPv2", 1)
    pos = 2
    length: int | None = None

    def take16(what: str) -> int:
        nonlocal pos
        if pos + 2 > size:
            raise CodecError(f"datagram ends before the {what} field", pos)
        value = (data[pos] << 8) | data[pos + 1]
        pos += 2
        return value

    if flags & FLAG_L:
        length = take16("Length")
        if length > size:
            raise CodecError(f"length field {length} exceeds datagram of {size} bytes", 2)
    tunnel_id = take16("Tunnel ID")
    session_id = take16("Session ID")
    ns = nr = None
    if flags & FLAG_S:
        ns = take16("Ns")
        nr = take16("Nr")
    offset_size = 0
    if flags & FLAG_O:
        offset_size = take16("Offset Size")
        if pos + offset_size > size:
            raise CodecError(f"offset padding of {offset_size} bytes exceeds the datagram", pos)
        pos += offset_size
    return DataHeaderV2(
        tunnel_id=tunnel_id,
        session_id=session_id,
        ns=ns,
        nr=nr,
        length=length,
        priority=bool(flags & FLAG_P),
        offset_size=offset_size,
        payload_offset=pos,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DataHeaderV3:
    """The classification part of an L2TPv3 data message (RFC 3931 section 4.1).

    The cookie length is configured per session, not signalled on the wire, so
    the caller passes it in; ``payload_offset`` points just after the cookie, at
    the L2-Specific Sublayer if the session has one.
    """

    session_id: int
    cookie: bytes
    payload_offset: int


def parse_data_header_v3(
    data: bytes | bytearray | memoryview, *, cookie_len: int = 0, udp: bool = True
) -> DataHeaderV3:
    """Decode an L2TPv3 data header over UDP (``udp=True``) or IP."""
    if cookie_len not in (0, 4, 8):
        raise ValueError("cookie length must be 0, 4 or 8")
    size = len(data)
    pos = 0
    if udp:
        if size < 4:
            raise CodecError("L2TPv3 UDP data header needs 4 bytes", size)
        flags = (data[0] << 8) | data[1]
        if flags & FLAG_T:
            raise CodecError("T bit set: a control message, not data", 0)
        if flags & VERSION_MASK != 3:
            raise CodecError(f"version {flags & VERSION_MASK} is not L2TPv3", 1)
        pos = 4
    if pos + 4 + cookie_len > size:
        raise CodecError("datagram ends inside the session ID or cookie", size)
    session_id = int.from_bytes(data[pos : pos + 4], "big")
    if not udp and session_id == 0:
        raise CodecError("session ID 0 over IP marks a control message", pos)
    pos += 4
    cookie = bytes(data[pos : pos + cookie_len])
    return DataHeaderV3(session_id=session_id, cookie=cookie, payload_offset=pos + cookie_len)


def seq_lt(a: int, b: int) -> bool:
    """16-bit serial-number comparison ``a < b`` (RFC 2661 section 5.8, RFC 1982).

    Numbers within half the sequence space ahead of ``a`` count as larger, which
    keeps ordering correct across the wrap from 65535 to 0.
    """
    return a != b and ((b - a) & 0xFFFF) < 0x8000


def seq_add(a: int, n: int) -> int:
    """Advance a 16-bit sequence number with wrap-around."""
    return (a + n) & 0xFFFF
