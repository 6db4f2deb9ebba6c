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
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .avp import (
    AVP_HEADER_LEN,
    FLAG_H,
    FLAG_M,
    MAX_AVP_LEN,
    Avp,
    decode_avp_at,
    scan_avps,
    serialize_avp,
)
from .avps import (
    SPECS,
    SPECS_BY_KEY,
    AvpValue,
    CircuitStatus,
    MessageDigest,
    ProtocolVersion,
    ResultCode,
    encode_value,
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
from .specs import check_avps, required_present

RandomSource = Callable[[int], bytes]
"""``random_bytes(n)`` returns ``n`` random octets; injected, never os.urandom in the core."""

_V2 = struct.Struct("!HHHHHH")
_V3 = struct.Struct("!HHIHH")
_MSG_TYPE = struct.Struct("!HHHH")
_unpack_key = struct.Struct("!HI").unpack_from
_AVP_HEADER = struct.Struct("!HHH")
_FLAGS_MASK = 0xFFF0
_CONTROL_FLAGS = FLAG_T | FLAG_L | FLAG_S
_RANDOM_VECTOR = int(AvpType.RANDOM_VECTOR)
_MESSAGE_TYPE = int(AvpType.MESSAGE_TYPE)
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

    __slots__ = (
        "_avps",
        "_body",
        "_data",
        "_index",
        "_mandatory",
        "_starts",
        "_type",
        "_unknown_m",
        "_vendor",
    )

    _type: MessageType | int
    _vendor: int
    _mandatory: bool
    _avps: tuple[Avp, ...] | None
    _data: bytes
    _starts: list[int]
    _index: dict[int, int] | None
    _body: bytes | None
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
        unknown_m = False
        for avp in avps:
            if not isinstance(avp, Avp):
                raise TypeError(f"AVPs must be Avp instances, not {type(avp).__name__}")
            if avp.vendor == VENDOR_IETF and avp.attribute == _MESSAGE_TYPE:
                raise LocalProtocolError("the Message Type AVP is given as message_type")
            if avp.mandatory and (avp.vendor, avp.attribute) not in SPECS:
                unknown_m = True  # Avp.is_unknown_mandatory, without two property calls
        if not 0 <= message_type <= 0xFFFF:
            raise LocalProtocolError(f"message type {message_type} out of range")
        if vendor == VENDOR_IETF and type(message_type) is not MessageType:
            message_type = to_enum(MessageType, message_type)
        self._type = message_type
        self._vendor = vendor
        self._mandatory = mandatory
        self._avps = avps
        self._data = b""
        self._starts = []
        self._index = None
        self._body = None
        self._unknown_m = unknown_m

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
        msg._index = None
        msg._body = None
        msg._unknown_m = unknown_m
        return msg

    @classmethod
    def encoded(
        cls, message_type: MessageType, values: Iterable[tuple[int, AvpValue]]
    ) -> ControlMessage:
        """A message of IETF AVPs from the table, in the clear and with the M bits the
        RFC prescribes, built straight into its wire form.

        The same message, and the same bytes from :func:`encode_body`, as
        ``ControlMessage(message_type=..., avps=[Avp(attribute=a, value=v), ...])``,
        for the messages the session code sends for every call (ICRQ, ICRP, ICCN ...):
        no :class:`Avp` object is made (``avps`` decodes them from the bytes if it is
        read) and :func:`encode_body` hands the bytes back as they are. Each value is
        checked as :func:`encode_body` checks it: :class:`LocalProtocolError` when it
        does not fit its AVP.
        """
        out = [_MSG_TYPE.pack(FLAG_M | 8, VENDOR_IETF, 0, message_type)]
        starts: list[int] = []
        pos = 8
        for attribute, value in values:
            spec = SPECS_BY_KEY.get(attribute)
            if spec is None or attribute in (_MESSAGE_TYPE, _MESSAGE_DIGEST):
                raise LocalProtocolError(f"AVP type {attribute} cannot be built from a value")
            data = encode_value(spec, value)
            length = AVP_HEADER_LEN + len(data)
            if length > MAX_AVP_LEN:
                raise LocalProtocolError(f"{spec.name} AVP of {length} bytes exceeds {MAX_AVP_LEN}")
            flags = FLAG_M | length if spec.mandatory else length
            out.append(_AVP_HEADER.pack(flags, VENDOR_IETF, attribute) + data)
            starts.append(pos)
            pos += length
        body = b"".join(out)
        if CONTROL_HEADER_LEN + len(body) > 0xFFFF:
            raise LocalProtocolError("control message longer than 65535 bytes")
        msg = cls._from_wire(message_type, VENDOR_IETF, True, body, starts, False)
        msg._body = body
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
            key = (vendor << 16) | attribute
            index = self._index
            if index is not None:
                pos = index.get(key)
                return None if pos is None else self._value_at(key, pos)
            # No index yet (made by validation, :meth:`values_of`): a walk that stops at
            # the AVP, cheaper than the index for the first AVPs of a message read once.
            data = self._data
            for pos in self._starts:
                word, found = _unpack_key(data, pos)
                if found == key and not word & FLAG_H:
                    value = data[pos + AVP_HEADER_LEN : pos + (word & 0x3FF)]
                    spec = SPECS_BY_KEY.get(key)
                    result: AvpValue = value if spec is None else spec.codec.decode(value)
                    return result
            return None
        for avp in self._avps:
            if avp.attribute == attribute and avp.vendor == vendor and not avp.opaque:
                return avp.value
        return None

    def _wire_index(self) -> dict[int, int]:
        """``vendor << 16 | attribute`` -> offset of the first AVP of that type that is not
        hidden, for a message read from the wire whose AVPs are not built yet.

        Made on first use, in one walk over the AVP headers: the session code reads
        up to a dozen values of an ICRQ, and validation asks which types are present;
        each of these was a walk of its own.
        """
        index = self._index
        if index is None:
            index = self._index = {}
            data = self._data
            for pos in self._starts:
                word, key = _unpack_key(data, pos)
                if not word & FLAG_H and key not in index:
                    index[key] = pos
        return index

    def _value_at(self, key: int, pos: int) -> AvpValue:
        """The decoded value of the (not hidden) AVP whose header is at ``pos``."""
        data = self._data
        value = data[pos + AVP_HEADER_LEN : pos + (((data[pos] << 8) | data[pos + 1]) & 0x3FF)]
        spec = SPECS_BY_KEY.get(key)
        return value if spec is None else spec.codec.decode(value)

    def values_of(self, names: Mapping[int, str]) -> dict[str, AvpValue]:
        """``{names[attribute]: value}`` for each IETF attribute of ``names`` in the
        message: the first usable value of each, as :meth:`get` gives it.

        One walk over the AVPs the message has, where a :meth:`get` per attribute asks
        about each one it might have (a call request is read for eight).
        """
        found: dict[str, AvpValue] = {}
        if self._avps is None:
            index = self._index
            for key, pos in (index if index is not None else self._wire_index()).items():
                name = names.get(key)  # a vendor key is above 0xFFFF: never in names
                if name is not None:
                    found[name] = self._value_at(key, pos)
            return found
        for avp in self._avps:
            if avp.vendor == VENDOR_IETF and not avp.opaque:
                name = names.get(avp.attribute)
                if name is not None and name not in found:
                    found[name] = avp.value
        return found

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
    # Read from the wire, AVPs not built: the IETF types present (not hidden) are the
    # keys of the header index (a vendor's key is above 0xFFFF, so it matches no
    # required type). When one is missing, the full walk below names it and says
    # whether it was there but hidden.
    if (
        message._avps is None
        and not strict
        and required_present(int(message._type), version, message._wire_index().keys())
    ):
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


def _order_for_wire(avps: tuple[Avp, ...]) -> tuple[Avp, ...]:
    """Message Digest AVPs go first, right after Message Type (RFC 3931 5.4.1)."""
    for a in avps:
        if a.attribute == _MESSAGE_DIGEST and a.vendor == VENDOR_IETF:
            break
    else:
        return avps  # none (every L2TPv2 message): nothing to move
    digests = [a for a in avps if a.vendor == VENDOR_IETF and a.attribute == _MESSAGE_DIGEST]
    return (
        *digests,
        *(a for a in avps if not (a.vendor == VENDOR_IETF and a.attribute == _MESSAGE_DIGEST)),
    )


def _digest_placeholder(digest_type: int) -> Avp:
    """A zeroed Message Digest AVP for :func:`~.digest.seal_message` to fill."""
    size = 20 if digest_type == 1 else 16
    return Avp(
        attribute=AvpType.MESSAGE_DIGEST,
        value=MessageDigest(digest_type=digest_type, digest=bytes(size)),
    )


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
    body = message._body
    if body is not None:  # built by ControlMessage.encoded: nothing hidden, checked, in order
        if digest_type is None:
            return body
        # The placeholder goes right after the Message Type AVP (RFC 3931 5.4.1).
        body = body[:8] + serialize_avp(_digest_placeholder(digest_type)) + body[8:]
        if CONTROL_HEADER_LEN + len(body) > 0xFFFF:
            raise LocalProtocolError("control message longer than 65535 bytes")
        return body
    out = [
        _MSG_TYPE.pack((FLAG_M if message._mandatory else 0) | 8, message._vendor, 0, message._type)
    ]
    avps = message.avps
    if digest_type is not None:
        avps = (_digest_placeholder(digest_type), *avps)
    avps = _order_for_wire(avps)
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
