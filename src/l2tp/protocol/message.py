"""Control messages: :class:`ControlMessage`, :func:`parse_message`, :func:`encode_body`.

A control message is a header (:mod:`.header`) followed by AVPs, the first of
which is always the Message Type AVP (RFC 2661 section 3.2, RFC 3931 section
5.4.1). :class:`ControlMessage` holds the message type and the remaining AVPs;
the header (tunnel/connection ID, session ID, Ns, Nr) is kept apart because the
reliable-delivery layer assigns Ns/Nr at transmit time: :func:`encode_body`
produces the AVP bytes alone and :func:`~.header.build_control_message` wraps
them.

Why :class:`ControlMessage` is a hand-written slotted class rather than a
frozen dataclass: parsing must sustain several hundred thousand messages per
second. Building one frozen dataclass per AVP costs about a microsecond each,
so :func:`parse_message` validates every AVP header and length eagerly (all
malformations are reported at parse time, with their offset) but builds the
:class:`~.avp.Avp` objects only when ``avps`` is first read; :meth:`get` decodes
a single value straight from the datagram. The class is still immutable from
the outside (public attributes are read-only properties), keyword-only,
compares by value and hashes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

from .avp import (
    AVP_HEADER_LEN,
    FLAG_H,
    FLAG_M,
    Avp,
    decode_avp_at,
    scan_avps,
    serialize_avp,
)
from .avps import (
    SPECS_BY_KEY,
    AvpValue,
    CircuitStatus,
    MessageDigest,
    ProtocolVersion,
    ResultCode,
)
from .constants import VENDOR_IETF, AvpType, MessageType, to_enum
from .errors import CodecError, LocalProtocolError
from .header import (
    CONTROL_HEADER_LEN,
    FLAG_L,
    FLAG_S,
    FLAG_T,
    ControlHeader,
    build_control_message,
)
from .hidden import hiding_key
from .specs import check_avps

RandomSource = Callable[[int], bytes]
"""``random_bytes(n)`` returns ``n`` random octets; injected, never os.urandom in the core."""

_V2 = struct.Struct("!HHHHHH")
_V3 = struct.Struct("!HHIHH")
_MSG_TYPE = struct.Struct("!HHHH")
_AVP_HEADER = struct.Struct("!HHH")
_FLAGS_MASK = 0xFFF0
_CONTROL_FLAGS = FLAG_T | FLAG_L | FLAG_S
_RANDOM_VECTOR = int(AvpType.RANDOM_VECTOR)
_MESSAGE_DIGEST = int(AvpType.MESSAGE_DIGEST)
_new = object.__new__
_set = object.__setattr__


class ControlMessage:
    """One control message body: the Message Type and the AVPs that follow it.

    ``avps`` excludes the Message Type AVP, whose vendor and M bit are kept in
    ``vendor`` and ``mandatory`` (a vendor-specific message has a non-zero
    vendor, RFC 2661 section 4.1). Build with keywords or :meth:`of`::

        ControlMessage.hello()
        ControlMessage.of(MessageType.ICRQ, assigned_session_id=5, call_serial_number=1)
    """

    __slots__ = ("_avps", "_data", "_mandatory", "_starts", "_type", "_unknown_m", "_vendor")

    _type: MessageType | int
    _vendor: int
    _mandatory: bool
    _avps: tuple[Avp, ...] | None
    _data: bytes
    _starts: list[int]
    _unknown_m: bool

    def __init__(
        self,
        *,
        message_type: MessageType | int,
        avps: Iterable[Avp] = (),
        vendor: int = VENDOR_IETF,
        mandatory: bool = True,
    ) -> None:
        avps = tuple(avps)
        for avp in avps:
            if not isinstance(avp, Avp):
                raise TypeError(f"AVPs must be Avp instances, not {type(avp).__name__}")
            if avp.vendor == VENDOR_IETF and avp.attribute == AvpType.MESSAGE_TYPE:
                raise LocalProtocolError("the Message Type AVP is given as message_type")
        if not 0 <= message_type <= 0xFFFF:
            raise LocalProtocolError(f"message type {message_type} out of range")
        self._type = to_enum(MessageType, message_type) if vendor == VENDOR_IETF else message_type
        self._vendor = vendor
        self._mandatory = mandatory
        self._avps = avps
        self._data = b""
        self._starts = []
        self._unknown_m = any(a.is_unknown_mandatory for a in avps)

    # -- constructors ------------------------------------------------------

    @classmethod
    def of(cls, message_type: MessageType | int, *avps: Avp, **values: Any) -> ControlMessage:
        """Build a message from keyword values named after :class:`AvpType` members.

        ``ControlMessage.of(MessageType.CDN, result_code=ResultCode(result=3),
        assigned_session_id=7)``; positional :class:`Avp` objects come first,
        for hidden, vendor or repeated AVPs.
        """
        built = list(avps)
        for key, value in values.items():
            try:
                attr = AvpType[key.upper()]
            except KeyError:
                raise LocalProtocolError(f"no AVP called {key!r}") from None
            built.append(Avp(attribute=attr, value=value))
        return cls(message_type=message_type, avps=built)

    @classmethod
    def hello(cls) -> ControlMessage:
        """A HELLO keepalive (RFC 2661 section 6.5, RFC 3931 section 6.5)."""
        return cls(message_type=MessageType.HELLO)

    @classmethod
    def _from_wire(
        cls,
        message_type: int,
        vendor: int,
        mandatory: bool,
        data: bytes,
        starts: list[int],
        unknown_m: bool,
    ) -> ControlMessage:
        msg: ControlMessage = _new(cls)
        msg._type = to_enum(MessageType, message_type) if vendor == VENDOR_IETF else message_type
        msg._vendor = vendor
        msg._mandatory = mandatory
        msg._avps = None
        msg._data = data
        msg._starts = starts
        msg._unknown_m = unknown_m
        return msg

    # -- read-only attributes ---------------------------------------------

    @property
    def message_type(self) -> MessageType | int:
        return self._type

    @property
    def vendor(self) -> int:
        return self._vendor

    @property
    def mandatory(self) -> bool:
        """M bit of the Message Type AVP: if set and the type is unknown, clear the connection."""
        return self._mandatory

    @property
    def avps(self) -> tuple[Avp, ...]:
        avps = self._avps
        if avps is None:
            data = self._data
            avps = self._avps = tuple(decode_avp_at(data, pos) for pos in self._starts)
        return avps

    @property
    def name(self) -> str:
        mt = self._type
        if self._vendor != VENDOR_IETF:
            return f"Vendor {self._vendor} message {mt}"
        return mt.name if isinstance(mt, MessageType) else f"Unknown message {mt}"

    @property
    def has_unknown_mandatory(self) -> bool:
        """True if an AVP we do not recognise has the M bit set (RFC 2661 4.2, RFC 3931 5.2)."""
        return self._unknown_m

    @property
    def unknown_mandatory(self) -> tuple[Avp, ...]:
        """The unrecognised M-bit AVPs: the caller tears down with Result 2 / Error 8."""
        if not self._unknown_m:
            return ()
        return tuple(a for a in self.avps if a.is_unknown_mandatory)

    # -- value access ------------------------------------------------------

    def get(self, attribute: int, vendor: int = VENDOR_IETF) -> AvpValue | None:
        """The value of the first AVP of this type, or None.

        Hidden AVPs that could not be unhidden are skipped: their value is not
        usable. Reads straight from the datagram when the AVPs are not built yet.
        """
        if self._avps is None:
            data = self._data
            key = (vendor << 16) | attribute
            for pos in self._starts:
                word, v, a = _AVP_HEADER.unpack_from(data, pos)
                if a == attribute and v == vendor and not word & FLAG_H:
                    value = data[pos + AVP_HEADER_LEN : pos + (word & 0x3FF)]
                    spec = SPECS_BY_KEY.get(key)
                    result: AvpValue = value if spec is None else spec.codec.decode(value)
                    return result
            return None
        for avp in self._avps:
            if avp.attribute == attribute and avp.vendor == vendor and not avp.opaque:
                return avp.value
        return None

    def get_all(self, attribute: int, vendor: int = VENDOR_IETF) -> tuple[AvpValue, ...]:
        """Values of every usable AVP of this type, in message order."""
        return tuple(
            a.value
            for a in self.avps
            if a.attribute == attribute and a.vendor == vendor and not a.opaque
        )

    def __contains__(self, attribute: object) -> bool:
        return isinstance(attribute, int) and self.get(attribute) is not None

    def _int(self, attribute: AvpType) -> int | None:
        value = self.get(attribute)
        return value if isinstance(value, int) else None

    @property
    def assigned_tunnel_id(self) -> int | None:
        return self._int(AvpType.ASSIGNED_TUNNEL_ID)

    @property
    def assigned_connection_id(self) -> int | None:
        """Assigned Control Connection ID (v3)."""
        return self._int(AvpType.ASSIGNED_CONTROL_CONNECTION_ID)

    @property
    def assigned_session_id(self) -> int | None:
        return self._int(AvpType.ASSIGNED_SESSION_ID)

    @property
    def local_session_id(self) -> int | None:
        return self._int(AvpType.LOCAL_SESSION_ID)

    @property
    def remote_session_id(self) -> int | None:
        return self._int(AvpType.REMOTE_SESSION_ID)

    @property
    def receive_window_size(self) -> int | None:
        return self._int(AvpType.RECEIVE_WINDOW_SIZE)

    @property
    def pseudowire_type(self) -> int | None:
        return self._int(AvpType.PSEUDOWIRE_TYPE)

    @property
    def host_name(self) -> str | None:
        value = self.get(AvpType.HOST_NAME)
        return value if isinstance(value, str) else None

    @property
    def result_code(self) -> ResultCode | None:
        value = self.get(AvpType.RESULT_CODE)
        return value if isinstance(value, ResultCode) else None

    @property
    def protocol_version(self) -> ProtocolVersion | None:
        value = self.get(AvpType.PROTOCOL_VERSION)
        return value if isinstance(value, ProtocolVersion) else None

    @property
    def circuit_status(self) -> CircuitStatus | None:
        value = self.get(AvpType.CIRCUIT_STATUS)
        return value if isinstance(value, CircuitStatus) else None

    @property
    def tie_breaker(self) -> bytes | None:
        value = self.get(AvpType.TIE_BREAKER)
        return value if isinstance(value, bytes) else None

    @property
    def nonce(self) -> bytes | None:
        """Control Message Authentication Nonce (v3 SCCRQ/SCCRP)."""
        value = self.get(AvpType.CONTROL_MESSAGE_AUTHENTICATION_NONCE)
        return value if isinstance(value, bytes) else None

    # -- value semantics ---------------------------------------------------

    def _key(self) -> tuple[object, ...]:
        return (int(self._type), self._vendor, self._mandatory, self.avps)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ControlMessage):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        extra = "" if self._vendor == VENDOR_IETF else f", vendor={self._vendor}"
        return f"ControlMessage(message_type={self._type!r}, avps={self.avps!r}{extra})"


def validate_message(message: ControlMessage, *, version: int, strict: bool = False) -> None:
    """Check ``message`` against its RFC spec for ``version``; see :mod:`.specs`.

    Raises :class:`~.specs.MessageValidationError` naming the missing AVP (or, with
    ``strict``, the AVP the message may not carry). Vendor messages are not checked.
    """
    if message.vendor != VENDOR_IETF:
        return
    present: set[int] = set()
    opaque: set[int] = set()
    for avp in message.avps:
        if avp.vendor == VENDOR_IETF:
            (opaque if avp.opaque else present).add(int(avp.attribute))
    check_avps(int(message.message_type), version, present, opaque=opaque, strict=strict)


def parse_message(
    data: bytes, *, secret: bytes | None = None, ip_encap: bool = False
) -> tuple[ControlHeader, ControlMessage | None]:
    """Decode one control message datagram; returns the header and None for a ZLB.

    ``ip_encap`` says the datagram came over IP protocol 115 and starts with
    the zero Session ID (RFC 3931 4.1.1.2). With ``secret``, hidden AVPs are
    unhidden (RFC 2661 4.3; v3 derives the key, RFC 3931 5.3); without it they
    are kept opaque. Any malformation raises :class:`CodecError` with the offset
    in ``data``; no other exception escapes for any input.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    base = 0
    if ip_encap:
        if len(data) < 4:
            raise CodecError("IP-encapsulated datagram shorter than a session ID", len(data))
        if data[:4] != b"\x00\x00\x00\x00":
            raise CodecError("non-zero session ID: a data message, not control", 0)
        base = 4
    size = len(data) - base
    if size < CONTROL_HEADER_LEN:
        raise CodecError(
            f"control header needs {CONTROL_HEADER_LEN} bytes, got {max(size, 0)}", len(data)
        )
    flags = (data[base] << 8) | data[base + 1]
    version = flags & 0xF
    if flags & _FLAGS_MASK != _CONTROL_FLAGS:
        if not flags & FLAG_T:
            raise CodecError("T bit clear: not a control message", base)
        raise CodecError(f"invalid control flags 0x{flags:04x}", base)
    if version == 2:
        _, length, tunnel_id, session_id, ns, nr = _V2.unpack_from(data, base)
    elif version == 3:
        _, length, tunnel_id, ns, nr = _V3.unpack_from(data, base)
        session_id = 0
    else:
        raise CodecError(f"unsupported L2TP version {version}", base + 1)
    if length < CONTROL_HEADER_LEN:
        raise CodecError(f"length field {length} shorter than the header", base + 2)
    if length > size:
        raise CodecError(f"length field {length} exceeds datagram of {size} bytes", base + 2)
    header: ControlHeader = _new(ControlHeader)
    _set(header, "version", version)
    _set(header, "tunnel_id", tunnel_id)
    _set(header, "session_id", session_id)
    _set(header, "ns", ns)
    _set(header, "nr", nr)
    _set(header, "length", length)
    if length == CONTROL_HEADER_LEN:
        return header, None
    return header, _parse_avps(data, base + CONTROL_HEADER_LEN, base + length, version, secret)


def parse_body(
    header: ControlHeader, body: bytes, *, secret: bytes | None = None
) -> ControlMessage | None:
    """Decode the AVPs of a message whose header was already parsed; None for a ZLB.

    ``body`` is what follows the control header (``header.length`` minus the
    header, e.g. :attr:`~.events.MessageReceived.body`): the same result as
    :func:`parse_message` on the whole datagram without re-reading the header.
    :class:`CodecError` offsets count from the start of ``body``.
    """
    if not isinstance(body, bytes):
        body = bytes(body)
    if not body:
        return None
    return _parse_avps(body, 0, len(body), header.version, secret)


def _parse_avps(
    data: bytes, pos: int, end: int, version: int, secret: bytes | None
) -> ControlMessage:
    """The message body in ``data[pos:end]``: Message Type AVP first, then the rest."""
    if end - pos < 8:
        raise CodecError("message body too short for the Message Type AVP", pos)
    word, vendor, attr, message_type = _MSG_TYPE.unpack_from(data, pos)
    if attr != 0:
        raise CodecError(f"first AVP is type {attr}, not Message Type", pos)
    if word & 0x3FF != 8:
        raise CodecError(f"Message Type AVP length {word & 0x3FF}, expected 8", pos)
    if word & FLAG_H:
        raise CodecError("Message Type AVP must not be hidden", pos)
    starts, any_hidden, unknown_m = scan_avps(data, pos + 8, end)
    msg = ControlMessage._from_wire(
        message_type, vendor, bool(word & FLAG_M), data, starts, unknown_m
    )
    if any_hidden and secret is not None:
        key = hiding_key(secret, version)
        avps: list[Avp] = []
        rv: bytes | None = None
        for start in starts:
            avp = decode_avp_at(data, start, hide_key=key, random_vector=rv)
            if avp.attribute == _RANDOM_VECTOR and avp.vendor == VENDOR_IETF:
                rv = avp.value if isinstance(avp.value, bytes) else rv
            avps.append(avp)
        msg._avps = tuple(avps)
    return msg


def _order_for_wire(avps: tuple[Avp, ...]) -> list[Avp]:
    """Message Digest AVPs go first, right after Message Type (RFC 3931 5.4.1)."""
    digests = [a for a in avps if a.vendor == VENDOR_IETF and a.attribute == _MESSAGE_DIGEST]
    if not digests:
        return list(avps)
    return digests + [
        a for a in avps if not (a.vendor == VENDOR_IETF and a.attribute == _MESSAGE_DIGEST)
    ]


def encode_body(
    message: ControlMessage,
    *,
    version: int | None = None,
    secret: bytes | None = None,
    random_bytes: RandomSource | None = None,
    digest_type: int | None = None,
) -> bytes:
    """Encode the Message Type AVP and every AVP of ``message``: the body after the header.

    Ns/Nr are not needed: the transport wraps this in a header when it sends.
    AVPs with ``hidden=True`` are hidden with ``secret`` (``version`` picks the
    key derivation); if no Random Vector AVP precedes them, one of 16 octets
    from ``random_bytes`` is inserted. ``digest_type`` inserts a zeroed
    Message Digest placeholder for :func:`~.digest.seal_message` to fill.
    """
    out = [
        _MSG_TYPE.pack(
            (FLAG_M if message.mandatory else 0) | 8, message.vendor, 0, int(message.message_type)
        )
    ]
    avps = list(message.avps)
    if digest_type is not None:
        size = 20 if digest_type == 1 else 16
        placeholder = MessageDigest(digest_type=digest_type, digest=bytes(size))
        avps.insert(0, Avp(attribute=AvpType.MESSAGE_DIGEST, value=placeholder))
    avps = _order_for_wire(tuple(avps))
    key: bytes | None = None
    rv: bytes | None = None
    for avp in avps:
        if avp.hidden and not avp.opaque:
            if key is None:
                if secret is None:
                    raise LocalProtocolError("hidden AVPs need the tunnel secret")
                if version not in (2, 3):
                    raise LocalProtocolError("hiding needs version=2 or version=3")
                key = hiding_key(secret, version)
            if rv is None:
                if random_bytes is None:
                    raise LocalProtocolError("hidden AVPs need a Random Vector or random_bytes")
                rv = random_bytes(16)
                out.append(serialize_avp(Avp(attribute=AvpType.RANDOM_VECTOR, value=rv)))
            out.append(serialize_avp(avp, hide_key=key, random_vector=rv))
            continue
        if avp.vendor == VENDOR_IETF and avp.attribute == _RANDOM_VECTOR and not avp.hidden:
            rv = avp.value if isinstance(avp.value, bytes) else rv
        out.append(serialize_avp(avp))
    body = b"".join(out)
    if CONTROL_HEADER_LEN + len(body) > 0xFFFF:
        raise LocalProtocolError("control message longer than 65535 bytes")
    return body


def serialize_message(
    message: ControlMessage | None,
    *,
    version: int,
    tunnel_id: int,
    session_id: int = 0,
    ns: int = 0,
    nr: int = 0,
    secret: bytes | None = None,
    random_bytes: RandomSource | None = None,
    digest_type: int | None = None,
    ip_encap: bool = False,
) -> bytes:
    """Encode a whole control message (header and body); ``None`` makes a ZLB ACK.

    With ``ip_encap`` the zero Session ID of IP protocol 115 is prepended.
    For v3 messages with a digest, pass the result to :func:`~.digest.seal_message`.
    """
    body = (
        b""
        if message is None
        else encode_body(
            message,
            version=version,
            secret=secret,
            random_bytes=random_bytes,
            digest_type=digest_type,
        )
    )
    try:
        datagram = build_control_message(
            version=version, tunnel_id=tunnel_id, session_id=session_id, ns=ns, nr=nr, body=body
        )
    except ValueError as exc:
        raise LocalProtocolError(str(exc)) from exc
    return b"\x00\x00\x00\x00" + datagram if ip_encap else datagram


__all__ = [
    "ControlMessage",
    "RandomSource",
    "encode_body",
    "parse_body",
    "parse_message",
    "serialize_message",
    "validate_message",
]
