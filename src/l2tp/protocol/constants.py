"""Wire numbers of L2TPv2 and L2TPv3 as IntEnums, one registry per class.

The values mirror the IANA "Layer Two Tunneling Protocol 'L2TP'" registries as
filled by RFC 2661 (L2TPv2), RFC 3931 (L2TPv3), RFC 3145 (PPP disconnect
cause), RFC 4951 (failover) and RFC 4667/4719 (pseudowire types). Decoders turn
known numbers into members and leave unknown ones as plain ints (see
:func:`to_enum`), so that a newer peer never makes us fail on a number we have
not heard of.
"""

from __future__ import annotations

import enum
from typing import TypeVar

VENDOR_IETF = 0
"""Vendor ID 0: AVPs defined by the IETF (RFC 2661 section 4.1)."""


class KeyEnum(enum.Enum):
    """An Enum whose members hash by identity, in C.

    :class:`enum.Enum` hashes a member with a Python-level ``__hash__`` (the hash of its
    name), and the state machines look up ``(state, input)`` pairs in their tables, and
    states in sets, several times per message: about 0.1 us per member hashed. Members
    compare by identity, so the identity hash is consistent with equality. (IntEnums
    hash as their int already.)
    """

    __hash__ = object.__hash__


_E = TypeVar("_E", bound=enum.IntEnum)


def to_enum(cls: type[_E], value: int) -> _E | int:
    """Return ``cls(value)`` when it is a known member, else ``value`` unchanged."""
    member: _E | None = cls._value2member_map_.get(value)  # type: ignore[assignment]
    return value if member is None else member


class MessageType(enum.IntEnum):
    """Message Type AVP values (RFC 2661 section 3.2, RFC 3931 section 3.1, RFC 4951)."""

    SCCRQ = 1
    """Start-Control-Connection-Request."""
    SCCRP = 2
    """Start-Control-Connection-Reply."""
    SCCCN = 3
    """Start-Control-Connection-Connected."""
    STOPCCN = 4
    """Stop-Control-Connection-Notification."""
    HELLO = 6
    """Keepalive (RFC 2661 section 6.5)."""
    OCRQ = 7
    """Outgoing-Call-Request."""
    OCRP = 8
    """Outgoing-Call-Reply."""
    OCCN = 9
    """Outgoing-Call-Connected."""
    ICRQ = 10
    """Incoming-Call-Request."""
    ICRP = 11
    """Incoming-Call-Reply."""
    ICCN = 12
    """Incoming-Call-Connected."""
    CDN = 14
    """Call-Disconnect-Notify."""
    WEN = 15
    """WAN-Error-Notify."""
    SLI = 16
    """Set-Link-Info."""
    ACK = 20
    """Explicit Acknowledgement, L2TPv3 only (RFC 3931 section 3.1)."""
    FSQ = 21
    """Failover Session Query (RFC 4951)."""
    FSR = 22
    """Failover Session Response (RFC 4951)."""


SESSION_MESSAGES = frozenset(
    {
        MessageType.OCRQ,
        MessageType.OCRP,
        MessageType.OCCN,
        MessageType.ICRQ,
        MessageType.ICRP,
        MessageType.ICCN,
        MessageType.CDN,
        MessageType.WEN,
        MessageType.SLI,
    }
)
"""Messages about a session: an unknown mandatory AVP in them ends the session
with a CDN, elsewhere the control connection with a StopCCN (RFC 3931 5.2)."""


class AvpType(enum.IntEnum):
    """IETF (vendor 0) Attribute Types of RFC 2661 section 4.4 and RFC 3931 section 5.4."""

    MESSAGE_TYPE = 0
    RESULT_CODE = 1
    PROTOCOL_VERSION = 2
    FRAMING_CAPABILITIES = 3
    BEARER_CAPABILITIES = 4
    TIE_BREAKER = 5
    """Tie Breaker (v2); Control Connection / Session Tie Breaker (v3)."""
    FIRMWARE_REVISION = 6
    HOST_NAME = 7
    VENDOR_NAME = 8
    ASSIGNED_TUNNEL_ID = 9
    RECEIVE_WINDOW_SIZE = 10
    CHALLENGE = 11
    Q931_CAUSE_CODE = 12
    CHALLENGE_RESPONSE = 13
    ASSIGNED_SESSION_ID = 14
    CALL_SERIAL_NUMBER = 15
    """Call Serial Number (v2); Serial Number (v3)."""
    MINIMUM_BPS = 16
    MAXIMUM_BPS = 17
    BEARER_TYPE = 18
    FRAMING_TYPE = 19
    CALLED_NUMBER = 21
    CALLING_NUMBER = 22
    SUB_ADDRESS = 23
    TX_CONNECT_SPEED = 24
    """(Tx) Connect Speed, 32-bit (v2)."""
    PHYSICAL_CHANNEL_ID = 25
    INITIAL_RECEIVED_LCP_CONFREQ = 26
    LAST_SENT_LCP_CONFREQ = 27
    LAST_RECEIVED_LCP_CONFREQ = 28
    PROXY_AUTHEN_TYPE = 29
    PROXY_AUTHEN_NAME = 30
    PROXY_AUTHEN_CHALLENGE = 31
    PROXY_AUTHEN_ID = 32
    PROXY_AUTHEN_RESPONSE = 33
    CALL_ERRORS = 34
    """Call Errors (v2); Circuit Errors (v3)."""
    ACCM = 35
    RANDOM_VECTOR = 36
    PRIVATE_GROUP_ID = 37
    RX_CONNECT_SPEED = 38
    """Rx Connect Speed, 32-bit (v2)."""
    SEQUENCING_REQUIRED = 39
    PPP_DISCONNECT_CAUSE_CODE = 46
    """RFC 3145."""
    EXTENDED_VENDOR_ID = 58
    MESSAGE_DIGEST = 59
    ROUTER_ID = 60
    ASSIGNED_CONTROL_CONNECTION_ID = 61
    PSEUDOWIRE_CAPABILITIES_LIST = 62
    LOCAL_SESSION_ID = 63
    REMOTE_SESSION_ID = 64
    ASSIGNED_COOKIE = 65
    REMOTE_END_ID = 66
    PSEUDOWIRE_TYPE = 68
    L2_SPECIFIC_SUBLAYER = 69
    DATA_SEQUENCING = 70
    CIRCUIT_STATUS = 71
    PREFERRED_LANGUAGE = 72
    CONTROL_MESSAGE_AUTHENTICATION_NONCE = 73
    TX_CONNECT_SPEED_BPS = 74
    """Tx Connect Speed, 64-bit (v3)."""
    RX_CONNECT_SPEED_BPS = 75
    """Rx Connect Speed, 64-bit (v3)."""
    FAILOVER_CAPABILITY = 76
    """RFC 4951."""
    TUNNEL_RECOVERY = 77
    """RFC 4951."""
    SUGGESTED_CONTROL_SEQUENCE = 78
    """RFC 4951."""
    FAILOVER_SESSION_STATE = 79
    """RFC 4951."""


class StopCcnResult(enum.IntEnum):
    """Result Code values in a StopCCN (RFC 2661 section 4.4.2, RFC 3931 section 5.4.2)."""

    GENERAL_REQUEST = 1
    GENERAL_ERROR = 2
    """See the Error Code."""
    ALREADY_EXISTS = 3
    NOT_AUTHORIZED = 4
    UNSUPPORTED_VERSION = 5
    """The Error Code carries the highest version supported."""
    SHUTTING_DOWN = 6
    FSM_ERROR = 7
    """Finite state machine error (or, in v3, timeout)."""


class CdnResult(enum.IntEnum):
    """Result Code values in a CDN (RFC 2661 section 4.4.2, RFC 3931 section 5.4.2)."""

    LOST_CARRIER = 1
    GENERAL_ERROR = 2
    ADMINISTRATIVE = 3
    TEMPORARY_NO_FACILITIES = 4
    PERMANENT_NO_FACILITIES = 5
    INVALID_DESTINATION = 6
    """v2 only."""
    NO_CARRIER = 7
    """v2 only."""
    BUSY = 8
    """v2 only."""
    NO_DIAL_TONE = 9
    """v2 only."""
    TIMEOUT = 10
    """v2: call not established within the time allotted by the LAC."""
    NO_FRAMING = 11
    """v2: no appropriate framing detected."""
    LOST_TIE_BREAKER = 13
    """v3."""
    UNSUPPORTED_PW_TYPE = 14
    """v3."""
    SEQUENCING_WITHOUT_L2SS = 15
    """v3: sequencing required without a valid L2-Specific Sublayer."""
    FSM_ERROR = 16
    """v3: finite state machine error or timeout."""


class ErrorCode(enum.IntEnum):
    """General Error Codes of the Result Code AVP (RFC 2661 4.4.2, RFC 3931 5.4.2)."""

    NO_ERROR = 0
    NO_CONTROL_CONNECTION = 1
    BAD_LENGTH = 2
    OUT_OF_RANGE = 3
    INSUFFICIENT_RESOURCES = 4
    INVALID_SESSION_ID = 5
    VENDOR_SPECIFIC = 6
    TRY_ANOTHER = 7
    UNKNOWN_MANDATORY_AVP = 8
    """Teardown because of an unrecognised AVP with the M bit set."""
    TRY_ANOTHER_DIRECTED = 9
    """v3: the Error Message lists alternative addresses."""


class PseudowireType(enum.IntEnum):
    """L2TPv3 Pseudowire Types (IANA registry; RFC 4591, 4454, 4719, 4349 and others)."""

    FRAME_RELAY_DLCI = 0x0001
    ATM_AAL5_SDU_VCC = 0x0002
    ATM_CELL_TRANSPARENT_PORT = 0x0003
    ETHERNET_VLAN = 0x0004
    ETHERNET = 0x0005
    HDLC = 0x0006
    PPP = 0x0007
    ATM_CELL_N_TO_ONE_VCC = 0x0009
    ATM_CELL_N_TO_ONE_VPC = 0x000A
    IP = 0x000B
    ATM_CELL_ONE_TO_ONE_VCC = 0x000C
    ATM_CELL_ONE_TO_ONE_VPC = 0x000D
    ATM_AAL5_PDU_VCC = 0x000E


class L2SpecificSublayer(enum.IntEnum):
    """L2-Specific Sublayer AVP values (RFC 3931 section 5.4.4, RFC 4454)."""

    NONE = 0
    DEFAULT = 1
    ATM = 2


class DataSequencing(enum.IntEnum):
    """Data Sequencing AVP values (RFC 3931 section 5.4.4)."""

    NONE = 0
    NON_IP = 1
    """Sequence only non-IP data packets."""
    ALL = 2


class ProxyAuthenType(enum.IntEnum):
    """Proxy Authen Type AVP values (RFC 2661 section 4.4.5)."""

    RESERVED = 0
    TEXTUAL = 1
    """Textual username/password exchange."""
    PPP_CHAP = 2
    PPP_PAP = 3
    NO_AUTHENTICATION = 4
    MSCHAP_V1 = 5


class DigestType(enum.IntEnum):
    """Message Digest AVP Digest Type (RFC 3931 section 5.4.1)."""

    HMAC_MD5 = 0
    HMAC_SHA1 = 1


class FramingBits(enum.IntFlag):
    """Framing Capabilities / Framing Type bits (RFC 2661 sections 4.4.3, 4.4.5)."""

    SYNC = 0x1
    ASYNC = 0x2


class BearerBits(enum.IntFlag):
    """Bearer Capabilities / Bearer Type bits (RFC 2661 sections 4.4.3, 4.4.5)."""

    DIGITAL = 0x1
    ANALOG = 0x2
