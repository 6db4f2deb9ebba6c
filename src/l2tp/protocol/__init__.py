"""Sans-IO L2TP protocol core: bytes, events and ``now`` in; bytes, actions and deadlines out.

Nothing in this package opens a socket, reads a clock or draws randomness on its own.
"""

from __future__ import annotations

from .avp import Avp, decode_avp_at, parse_avps, scan_avps, serialize_avp
from .avps import (
    AVP_TABLE,
    Accm,
    AvpSpec,
    AvpValue,
    CallErrors,
    CircuitStatus,
    FailoverCapability,
    MessageDigest,
    ProtocolVersion,
    Q931Cause,
    ResultCode,
    avp_name,
    lookup,
)
from .constants import (
    SESSION_MESSAGES,
    VENDOR_IETF,
    AvpType,
    BearerBits,
    CdnResult,
    DataSequencing,
    DigestType,
    ErrorCode,
    FramingBits,
    L2SpecificSublayer,
    MessageType,
    ProxyAuthenType,
    PseudowireType,
    StopCcnResult,
)
from .digest import (
    check_message_digest,
    derive_auth_key,
    seal_message,
    sealed,
    verify_message,
)
from .errors import CodecError, L2tpError, LocalProtocolError
from .header import ControlHeader
from .hidden import hide_value, hiding_key, unhide_value
from .message import (
    ControlMessage,
    RandomSource,
    encode_body,
    parse_message,
    serialize_message,
    validate_message,
)
from .specs import MessageSpec, MessageValidationError, message_spec

__all__ = [
    "AVP_TABLE",
    "SESSION_MESSAGES",
    "VENDOR_IETF",
    "Accm",
    "Avp",
    "AvpSpec",
    "AvpType",
    "AvpValue",
    "BearerBits",
    "CallErrors",
    "CdnResult",
    "CircuitStatus",
    "CodecError",
    "ControlHeader",
    "ControlMessage",
    "DataSequencing",
    "DigestType",
    "ErrorCode",
    "FailoverCapability",
    "FramingBits",
    "L2SpecificSublayer",
    "L2tpError",
    "LocalProtocolError",
    "MessageDigest",
    "MessageSpec",
    "MessageType",
    "MessageValidationError",
    "ProtocolVersion",
    "ProxyAuthenType",
    "PseudowireType",
    "Q931Cause",
    "RandomSource",
    "ResultCode",
    "StopCcnResult",
    "avp_name",
    "check_message_digest",
    "decode_avp_at",
    "derive_auth_key",
    "encode_body",
    "hide_value",
    "hiding_key",
    "lookup",
    "message_spec",
    "parse_avps",
    "parse_message",
    "scan_avps",
    "seal_message",
    "sealed",
    "serialize_avp",
    "serialize_message",
    "unhide_value",
    "validate_message",
    "verify_message",
]
