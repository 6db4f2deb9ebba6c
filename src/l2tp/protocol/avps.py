"""The declarative AVP table: one row per known (vendor, attribute type).

Each row says how the Attribute Value is laid out (a :class:`ValueCodec`), which
value lengths are legal, the M bit we send, and whether the RFC allows the AVP
to be hidden. Everything else (the parser, the serializer, the decoder CLI)
reads this table instead of hard-coding per-AVP knowledge, in the manner of
go-l2tp's ``avp.go``.

Layouts come from RFC 2661 section 4.4 (v2), RFC 3931 section 5.4 (v3), RFC 3145
(PPP disconnect cause) and RFC 4951 (failover). Where one number has two names
(Call Serial Number / Serial Number, Call Errors / Circuit Errors) the layout is
the same in both versions, so one row serves both.

Values are typed: unsigned integers, IntEnums (unknown numbers stay plain ints),
``str`` for text (decoded as UTF-8 with ``surrogateescape`` so that any octets
round-trip unchanged), ``bytes`` for opaque octets and small frozen dataclasses
for structured values.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from .constants import (
    VENDOR_IETF,
    AvpType,
    BearerBits,
    DataSequencing,
    ErrorCode,
    FramingBits,
    L2SpecificSublayer,
    ProxyAuthenType,
    PseudowireType,
    to_enum,
)
from .errors import LocalProtocolError

MAX_VALUE_LEN = 1023 - 6
"""The AVP Length field has 10 bits and includes the 6-byte AVP header."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolVersion:
    """Protocol Version AVP (RFC 2661 4.4.3): version 1, revision 0 for L2TPv2."""

    version: int
    revision: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultCode:
    """Result Code AVP (RFC 2661 4.4.2, RFC 3931 5.4.2).

    ``result`` is interpreted per message (:class:`~.constants.StopCcnResult` or
    :class:`~.constants.CdnResult`) so it is kept as given; ``error`` decodes to
    :class:`~.constants.ErrorCode` when known. The optional fields are present on
    the wire only as far as the AVP length says: a message implies an error code.
    """

    result: int
    error: int | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Q931Cause:
    """Q.931 Cause Code AVP (RFC 2661 4.4.5): cause code, cause message, advisory text."""

    cause: int
    message: int
    advisory: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallErrors:
    """Call Errors (v2) / Circuit Errors (v3) AVP (RFC 2661 4.4.6, RFC 3931 5.4.5)."""

    crc_errors: int = 0
    framing_errors: int = 0
    hardware_overruns: int = 0
    buffer_overruns: int = 0
    timeout_errors: int = 0
    alignment_errors: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Accm:
    """ACCM AVP (RFC 2661 4.4.6): PPP async control character maps for each direction."""

    send: int
    receive: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageDigest:
    """Message Digest AVP (RFC 3931 5.4.1): one-octet Digest Type then 16 or 20 octets."""

    digest_type: int
    digest: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitStatus:
    """Circuit Status AVP (RFC 3931 5.4.5): A (active) is bit 15, N (new) bit 14."""

    active: bool
    new: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class FailoverCapability:
    """Failover Capability AVP (RFC 4951 section 4.1): flag word then Recovery Time (ms).

    The flag word carries the C (control channel failover) and D (data channel
    failover) bits; it is kept whole so that no reserved bit is lost.
    """

    flags: int
    recovery_time: int


AvpValue: TypeAlias = (
    int
    | bytes
    | str
    | tuple[int, ...]
    | ProtocolVersion
    | ResultCode
    | Q931Cause
    | CallErrors
    | Accm
    | MessageDigest
    | CircuitStatus
    | FailoverCapability
)
"""Every type a decoded Attribute Value can have."""


@dataclass(frozen=True, slots=True)
class ValueCodec:
    """How one Attribute Value layout is decoded and encoded, and its legal lengths.

    ``decode`` is only ever called with a value whose length is in ``lengths``,
    so it cannot fail; ``encode`` raises ``ValueError``/``struct.error``/
    ``TypeError`` on a bad value, which :func:`encode_value` reports as API misuse.
    """

    kind: str
    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes]
    lengths: range | frozenset[int]


_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_ANY = range(0, MAX_VALUE_LEN + 1)
_NONEMPTY = range(1, MAX_VALUE_LEN + 1)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _untext(value: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    return value.encode("utf-8", "surrogateescape")


def _raw(value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return bytes(value)


def _u16(value: int) -> bytes:
    return _U16.pack(value)


def _u32(value: int) -> bytes:
    return _U32.pack(value)


def _u64(value: int) -> bytes:
    return _U64.pack(value)


def _enum16(cls: Any) -> ValueCodec:
    return ValueCodec(
        f"u16:{cls.__name__}",
        lambda d: to_enum(cls, (d[0] << 8) | d[1]),
        _u16,
        frozenset({2}),
    )


def _dec_result(d: bytes) -> ResultCode:
    result = (d[0] << 8) | d[1]
    if len(d) == 2:
        return ResultCode(result=result)
    error = to_enum(ErrorCode, (d[2] << 8) | d[3])
    if len(d) == 4:
        return ResultCode(result=result, error=error)
    return ResultCode(result=result, error=error, message=_text(d[4:]))


def _enc_result(v: ResultCode) -> bytes:
    out = _U16.pack(v.result)
    if v.error is not None or v.message is not None:
        out += _U16.pack(v.error or 0)
    if v.message is not None:
        out += _untext(v.message)
    return out


_CALL_ERRORS = struct.Struct("!HIIIIII")


def _dec_call_errors(d: bytes) -> CallErrors:
    _, crc, framing, hw, buf, tmo, align = _CALL_ERRORS.unpack(d)
    return CallErrors(
        crc_errors=crc,
        framing_errors=framing,
        hardware_overruns=hw,
        buffer_overruns=buf,
        timeout_errors=tmo,
        alignment_errors=align,
    )


def _enc_call_errors(v: CallErrors) -> bytes:
    return _CALL_ERRORS.pack(
        0,
        v.crc_errors,
        v.framing_errors,
        v.hardware_overruns,
        v.buffer_overruns,
        v.timeout_errors,
        v.alignment_errors,
    )


_ACCM = struct.Struct("!HII")
_FAILOVER = struct.Struct("!HI")

U16 = ValueCodec("u16", lambda d: (d[0] << 8) | d[1], _u16, frozenset({2}))
U32 = ValueCodec("u32", lambda d: _U32.unpack(d)[0], _u32, frozenset({4}))
U64 = ValueCodec("u64", lambda d: _U64.unpack(d)[0], _u64, frozenset({8}))
TEXT = ValueCodec("text", _text, _untext, _ANY)
TEXT1 = ValueCodec("text", _text, _untext, _NONEMPTY)
BYTES = ValueCodec("bytes", bytes, _raw, _ANY)
BYTES1 = ValueCodec("bytes", bytes, _raw, _NONEMPTY)
EMPTY = ValueCodec("empty", bytes, _raw, frozenset({0}))


def _flags(cls: type[FramingBits] | type[BearerBits]) -> Callable[[bytes], Any]:
    """Decode a 32-bit flags word: a value seen before is a dictionary hit on the class's
    own member map (calling the class costs ~1 us, in Python, even for a plain member)."""
    members = cls._value2member_map_
    unpack = _U32.unpack

    def decode(d: bytes) -> Any:
        value = unpack(d)[0]
        member = members.get(value)
        return member if member is not None else cls(value)

    return decode


FRAMING = ValueCodec("framing", _flags(FramingBits), _u32, frozenset({4}))
BEARER = ValueCodec("bearer", _flags(BearerBits), _u32, frozenset({4}))
PROTOCOL_VERSION = ValueCodec(
    "protocol_version",
    lambda d: ProtocolVersion(version=d[0], revision=d[1]),
    lambda v: bytes((v.version, v.revision)),
    frozenset({2}),
)
RESULT_CODE = ValueCodec("result_code", _dec_result, _enc_result, range(2, MAX_VALUE_LEN + 1))
Q931 = ValueCodec(
    "q931_cause",
    lambda d: Q931Cause(cause=(d[0] << 8) | d[1], message=d[2], advisory=_text(d[3:])),
    lambda v: _U16.pack(v.cause) + bytes((v.message,)) + _untext(v.advisory),
    range(3, MAX_VALUE_LEN + 1),
)
CALL_ERRORS = ValueCodec("call_errors", _dec_call_errors, _enc_call_errors, frozenset({26}))
ACCM = ValueCodec(
    "accm",
    lambda d: Accm(send=_ACCM.unpack(d)[1], receive=_ACCM.unpack(d)[2]),
    lambda v: _ACCM.pack(0, v.send, v.receive),
    frozenset({10}),
)
PROXY_AUTHEN_ID = ValueCodec(
    "proxy_authen_id", lambda d: d[1], lambda v: bytes((0, v)), frozenset({2})
)
TIE_BREAKER = ValueCodec("bytes", bytes, _raw, frozenset({8}))
CHALLENGE_RESPONSE = ValueCodec("bytes", bytes, _raw, frozenset({16}))
PW_CAPABILITIES = ValueCodec(
    "pw_list",
    lambda d: tuple(to_enum(PseudowireType, x) for x in struct.unpack(f"!{len(d) // 2}H", d)),
    lambda v: struct.pack(f"!{len(v)}H", *v),
    frozenset(range(0, MAX_VALUE_LEN + 1, 2)),
)
COOKIE = ValueCodec("bytes", bytes, _raw, frozenset({0, 4, 8}))
MESSAGE_DIGEST = ValueCodec(
    "message_digest",
    lambda d: MessageDigest(digest_type=d[0], digest=bytes(d[1:])),
    lambda v: bytes((v.digest_type,)) + _raw(v.digest),
    frozenset({17, 21}),
)
CIRCUIT_STATUS = ValueCodec(
    "circuit_status",
    lambda d: CircuitStatus(active=bool(d[1] & 1), new=bool(d[1] & 2)),
    lambda v: _u16((1 if v.active else 0) | (2 if v.new else 0)),
    frozenset({2}),
)
FAILOVER_CAPABILITY = ValueCodec(
    "failover_capability",
    lambda d: FailoverCapability(
        flags=_FAILOVER.unpack(d)[0], recovery_time=_FAILOVER.unpack(d)[1]
    ),
    lambda v: _FAILOVER.pack(v.flags, v.recovery_time),
    frozenset({6}),
)


@dataclass(frozen=True, slots=True)
class AvpSpec:
    """One row of the AVP table.

    ``mandatory`` is the M bit we set when sending (the RFC's MUST/SHOULD);
    ``hideable`` is False where the RFC says the AVP MUST NOT be hidden.
    """

    vendor: int
    attribute: int
    name: str
    codec: ValueCodec
    mandatory: bool = True
    hideable: bool = True


def _ietf(
    attr: AvpType, name: str, codec: ValueCodec, *, mandatory: bool = True, hideable: bool = True
) -> AvpSpec:
    return AvpSpec(VENDOR_IETF, int(attr), name, codec, mandatory, hideable)


T = AvpType
AVP_TABLE: tuple[AvpSpec, ...] = (
    # RFC 2661 section 4.4.
    _ietf(T.MESSAGE_TYPE, "Message Type", U16, hideable=False),
    _ietf(T.RESULT_CODE, "Result Code", RESULT_CODE, hideable=False),
    _ietf(T.PROTOCOL_VERSION, "Protocol Version", PROTOCOL_VERSION, hideable=False),
    _ietf(T.FRAMING_CAPABILITIES, "Framing Capabilities", FRAMING),
    _ietf(T.BEARER_CAPABILITIES, "Bearer Capabilities", BEARER),
    _ietf(T.TIE_BREAKER, "Tie Breaker", TIE_BREAKER, mandatory=False, hideable=False),
    _ietf(T.FIRMWARE_REVISION, "Firmware Revision", U16, mandatory=False),
    _ietf(T.HOST_NAME, "Host Name", TEXT1, hideable=False),
    _ietf(T.VENDOR_NAME, "Vendor Name", TEXT, mandatory=False),
    _ietf(T.ASSIGNED_TUNNEL_ID, "Assigned Tunnel ID", U16),
    _ietf(T.RECEIVE_WINDOW_SIZE, "Receive Window Size", U16, hideable=False),
    _ietf(T.CHALLENGE, "Challenge", BYTES1),
    _ietf(T.Q931_CAUSE_CODE, "Q.931 Cause Code", Q931, hideable=False),
    _ietf(T.CHALLENGE_RESPONSE, "Challenge Response", CHALLENGE_RESPONSE),
    _ietf(T.ASSIGNED_SESSION_ID, "Assigned Session ID", U16),
    _ietf(T.CALL_SERIAL_NUMBER, "Call Serial Number", U32),
    _ietf(T.MINIMUM_BPS, "Minimum BPS", U32),
    _ietf(T.MAXIMUM_BPS, "Maximum BPS", U32),
    _ietf(T.BEARER_TYPE, "Bearer Type", BEARER),
    _ietf(T.FRAMING_TYPE, "Framing Type", FRAMING),
    _ietf(T.CALLED_NUMBER, "Called Number", TEXT),
    _ietf(T.CALLING_NUMBER, "Calling Number", TEXT),
    _ietf(T.SUB_ADDRESS, "Sub-Address", TEXT),
    _ietf(T.TX_CONNECT_SPEED, "Tx Connect Speed", U32),
    _ietf(T.PHYSICAL_CHANNEL_ID, "Physical Channel ID", U32, mandatory=False),
    _ietf(T.INITIAL_RECEIVED_LCP_CONFREQ, "Initial Received LCP CONFREQ", BYTES, mandatory=False),
    _ietf(T.LAST_SENT_LCP_CONFREQ, "Last Sent LCP CONFREQ", BYTES, mandatory=False),
    _ietf(T.LAST_RECEIVED_LCP_CONFREQ, "Last Received LCP CONFREQ", BYTES, mandatory=False),
    _ietf(T.PROXY_AUTHEN_TYPE, "Proxy Authen Type", _enum16(ProxyAuthenType), mandatory=False),
    _ietf(T.PROXY_AUTHEN_NAME, "Proxy Authen Name", TEXT, mandatory=False),
    _ietf(T.PROXY_AUTHEN_CHALLENGE, "Proxy Authen Challenge", BYTES, mandatory=False),
    _ietf(T.PROXY_AUTHEN_ID, "Proxy Authen ID", PROXY_AUTHEN_ID, mandatory=False),
    _ietf(T.PROXY_AUTHEN_RESPONSE, "Proxy Authen Response", BYTES, mandatory=False),
    _ietf(T.CALL_ERRORS, "Call Errors", CALL_ERRORS),
    _ietf(T.ACCM, "ACCM", ACCM),
    _ietf(T.RANDOM_VECTOR, "Random Vector", BYTES1, hideable=False),
    _ietf(T.PRIVATE_GROUP_ID, "Private Group ID", BYTES, mandatory=False),
    _ietf(T.RX_CONNECT_SPEED, "Rx Connect Speed", U32, mandatory=False),
    _ietf(T.SEQUENCING_REQUIRED, "Sequencing Required", EMPTY, hideable=False),
    _ietf(T.PPP_DISCONNECT_CAUSE_CODE, "PPP Disconnect Cause Code", BYTES, mandatory=False),
    # RFC 3931 section 5.4.
    _ietf(T.EXTENDED_VENDOR_ID, "Extended Vendor ID", BYTES, mandatory=False),
    _ietf(T.MESSAGE_DIGEST, "Message Digest", MESSAGE_DIGEST, hideable=False),
    _ietf(T.ROUTER_ID, "Router ID", U32, hideable=False),
    _ietf(T.ASSIGNED_CONTROL_CONNECTION_ID, "Assigned Control Connection ID", U32),
    _ietf(T.PSEUDOWIRE_CAPABILITIES_LIST, "Pseudowire Capabilities List", PW_CAPABILITIES),
    _ietf(T.LOCAL_SESSION_ID, "Local Session ID", U32),
    _ietf(T.REMOTE_SESSION_ID, "Remote Session ID", U32),
    _ietf(T.ASSIGNED_COOKIE, "Assigned Cookie", COOKIE),
    _ietf(T.REMOTE_END_ID, "Remote End ID", TEXT),
    _ietf(T.PSEUDOWIRE_TYPE, "Pseudowire Type", _enum16(PseudowireType)),
    _ietf(T.L2_SPECIFIC_SUBLAYER, "L2-Specific Sublayer", _enum16(L2SpecificSublayer)),
    _ietf(T.DATA_SEQUENCING, "Data Sequencing", _enum16(DataSequencing)),
    _ietf(T.CIRCUIT_STATUS, "Circuit Status", CIRCUIT_STATUS),
    _ietf(T.PREFERRED_LANGUAGE, "Preferred Language", TEXT),
    _ietf(
        T.CONTROL_MESSAGE_AUTHENTICATION_NONCE,
        "Control Message Authentication Nonce",
        BYTES1,
        hideable=False,
    ),
    _ietf(T.TX_CONNECT_SPEED_BPS, "Tx Connect Speed BPS", U64),
    _ietf(T.RX_CONNECT_SPEED_BPS, "Rx Connect Speed BPS", U64),
    # RFC 4951.
    _ietf(T.FAILOVER_CAPABILITY, "Failover Capability", FAILOVER_CAPABILITY, mandatory=False),
    _ietf(T.TUNNEL_RECOVERY, "Tunnel Recovery", BYTES),
    _ietf(T.SUGGESTED_CONTROL_SEQUENCE, "Suggested Control Sequence", BYTES),
    _ietf(T.FAILOVER_SESSION_STATE, "Failover Session State", BYTES),
)
del T

SPECS: dict[tuple[int, int], AvpSpec] = {(s.vendor, s.attribute): s for s in AVP_TABLE}
"""The table keyed by ``(vendor, attribute type)``."""

SPECS_BY_KEY: dict[int, AvpSpec] = {(s.vendor << 16) | s.attribute: s for s in AVP_TABLE}
"""The same keyed by ``vendor << 16 | attribute``: an int key hashes faster on the hot path."""

LENGTHS_BY_KEY: dict[int, range | frozenset[int]] = {
    k: s.codec.lengths for k, s in SPECS_BY_KEY.items()
}
"""Legal value lengths per key, for the parser's validation scan."""


def lookup(attribute: int, vendor: int = VENDOR_IETF) -> AvpSpec | None:
    """Return the table row for an AVP, or None when we do not know it."""
    return SPECS.get((vendor, attribute))


def avp_name(attribute: int, vendor: int = VENDOR_IETF) -> str:
    """A human name for any AVP, known or not (used by ``l2tp decode``)."""
    spec = SPECS.get((vendor, attribute))
    if spec is not None:
        return spec.name
    if vendor == VENDOR_IETF:
        return f"Unknown AVP {attribute}"
    return f"Vendor {vendor} AVP {attribute}"


def decode_value(spec: AvpSpec, data: bytes) -> AvpValue:
    """Decode a value whose length the caller has checked against ``spec.codec.lengths``."""
    result: AvpValue = spec.codec.decode(data)
    return result


def encode_value(spec: AvpSpec, value: object) -> bytes:
    """Encode ``value`` for ``spec``; a value that does not fit is API misuse.

    Raises :class:`LocalProtocolError` naming the AVP, so a bad argument is
    reported where the message is built rather than as a malformed packet.
    """
    try:
        data = spec.codec.encode(value)
    except (ValueError, TypeError, AttributeError, struct.error, OverflowError) as exc:
        raise LocalProtocolError(f"bad value {value!r} for {spec.name} AVP: {exc}") from exc
    if len(data) not in spec.codec.lengths:
        raise LocalProtocolError(
            f"{spec.name} AVP value of {len(data)} bytes is not a legal length"
        )
    return data
