"""Wire numbers of PPP and its control protocols, as IntEnums mirroring the IANA registries.

Unknown values stay plain ``int`` wherever they are decoded (the codec never
fails on a number it does not know): the automaton decides what an unknown
value means (Code-Reject, Configure-Reject, Protocol-Reject).
"""

from __future__ import annotations

import enum
from collections.abc import Callable


class Protocol(enum.IntEnum):
    """PPP Protocol field values (RFC 1661 section 2, IANA "PPP DLL Protocol Numbers")."""

    IPV4 = 0x0021
    """Internet Protocol version 4 datagrams (RFC 1332)."""
    IPV6 = 0x0057
    """Internet Protocol version 6 datagrams (RFC 5072)."""
    IPCP = 0x8021
    """IP Control Protocol (RFC 1332)."""
    IPV6CP = 0x8057
    """IPv6 Control Protocol (RFC 5072)."""
    CCP = 0x80FD
    """Compression Control Protocol (RFC 1962): not implemented, Protocol-Rejected."""
    LCP = 0xC021
    """Link Control Protocol (RFC 1661)."""
    PAP = 0xC023
    """Password Authentication Protocol (RFC 1334)."""
    LQR = 0xC025
    """Link Quality Report (RFC 1989): not implemented, Protocol-Rejected."""
    CHAP = 0xC223
    """Challenge Handshake Authentication Protocol (RFC 1994, RFC 2759)."""


class Code(enum.IntEnum):
    """LCP packet codes (RFC 1661 section 5); NCPs use 1-7 only (e.g. RFC 1332 section 2)."""

    CONFIGURE_REQUEST = 1
    CONFIGURE_ACK = 2
    CONFIGURE_NAK = 3
    CONFIGURE_REJECT = 4
    TERMINATE_REQUEST = 5
    TERMINATE_ACK = 6
    CODE_REJECT = 7
    PROTOCOL_REJECT = 8
    """LCP only (RFC 1661 5.7)."""
    ECHO_REQUEST = 9
    """LCP only (RFC 1661 5.8)."""
    ECHO_REPLY = 10
    DISCARD_REQUEST = 11
    """LCP only (RFC 1661 5.9)."""


NCP_CODES = frozenset(range(Code.CONFIGURE_REQUEST, Code.CODE_REJECT + 1))
"""The codes every control protocol understands (RFC 1661 5.1-5.6)."""
LCP_CODES = frozenset(range(Code.CONFIGURE_REQUEST, Code.DISCARD_REQUEST + 1))
"""LCP adds Protocol-Reject, Echo-Request/Reply and Discard-Request (5.7-5.9)."""


class LcpOption(enum.IntEnum):
    """LCP Configuration Option types (RFC 1661 section 6, IANA "PPP LCP Configuration")."""

    MRU = 1
    """Maximum-Receive-Unit, 2 octets (6.1)."""
    ACCM = 2
    """Async-Control-Character-Map (RFC 1662 7.1): HDLC only, so rejected here."""
    AUTHENTICATION_PROTOCOL = 3
    """2-octet protocol plus data, e.g. the CHAP algorithm (6.2, RFC 1994 3)."""
    QUALITY_PROTOCOL = 4
    MAGIC_NUMBER = 5
    """4 octets, non-zero (6.4)."""
    PFC = 7
    """Protocol-Field-Compression (6.5): rejected, the kernel channel expects 2 octets."""
    ACFC = 8
    """Address-and-Control-Field-Compression (6.6): no such fields without HDLC."""


class IpcpOption(enum.IntEnum):
    """IPCP Configuration Options (RFC 1332 section 3, RFC 1877)."""

    IP_ADDRESSES = 1
    """Deprecated (RFC 1332 3.1): rejected."""
    IP_COMPRESSION_PROTOCOL = 2
    """Van Jacobson compression (RFC 1332 3.2): not implemented, rejected."""
    IP_ADDRESS = 3
    """4 octets; 0.0.0.0 asks the other end to assign one (RFC 1332 3.3)."""
    PRIMARY_DNS = 129
    """RFC 1877 section 1.1."""
    PRIMARY_NBNS = 130
    """RFC 1877 section 1.2: not served, rejected."""
    SECONDARY_DNS = 131
    """RFC 1877 section 1.3."""
    SECONDARY_NBNS = 132
    """RFC 1877 section 1.4: not served, rejected."""


class Ipv6cpOption(enum.IntEnum):
    """IPv6CP Configuration Options (RFC 5072 section 4)."""

    INTERFACE_IDENTIFIER = 1
    """8 octets, non-zero, distinct from the other end's (4.1)."""
    IPV6_COMPRESSION_PROTOCOL = 2
    """RFC 5072 4.2: not implemented, rejected."""


class ChapAlgorithm(enum.IntEnum):
    """The Algorithm octet after 0xC223 in the Authentication-Protocol option (RFC 1994 3)."""

    MD5 = 5
    """RFC 1994."""
    MSCHAP_V2 = 0x81
    """RFC 2759 section 2."""


class ChapCode(enum.IntEnum):
    """CHAP packet codes (RFC 1994 section 4)."""

    CHALLENGE = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


class PapCode(enum.IntEnum):
    """PAP packet codes (RFC 1334 section 2.2)."""

    AUTHENTICATE_REQUEST = 1
    AUTHENTICATE_ACK = 2
    AUTHENTICATE_NAK = 3


class AuthMethod(enum.Enum):
    """An authentication method as a whole: protocol plus CHAP algorithm."""

    PAP = "pap"
    CHAP_MD5 = "chap-md5"
    MSCHAP_V2 = "mschap-v2"

    @property
    def option_data(self) -> bytes:
        """The Authentication-Protocol option value that asks for this method (RFC 1661 6.2)."""
        if self is AuthMethod.PAP:
            return Protocol.PAP.to_bytes(2, "big")
        algorithm = ChapAlgorithm.MD5 if self is AuthMethod.CHAP_MD5 else ChapAlgorithm.MSCHAP_V2
        return Protocol.CHAP.to_bytes(2, "big") + bytes((algorithm,))

    @classmethod
    def from_option_data(cls, data: bytes) -> AuthMethod | None:
        """The method an Authentication-Protocol option value names; None if unsupported.

        RFC 1334 2.1: PAP carries no data; RFC 1994 3: CHAP carries exactly one
        algorithm octet. Anything else is a method we cannot do.
        """
        if data == Protocol.PAP.to_bytes(2, "big"):
            return cls.PAP
        if len(data) == 3 and data[:2] == Protocol.CHAP.to_bytes(2, "big"):
            if data[2] == ChapAlgorithm.MD5:
                return cls.CHAP_MD5
            if data[2] == ChapAlgorithm.MSCHAP_V2:
                return cls.MSCHAP_V2
        return None


DEFAULT_MRU = 1500
"""RFC 1661 6.1: the MRU assumed when the option is not negotiated."""
MIN_MRU = 128
"""Smallest MRU we accept from a peer; pppd uses the same floor (its PPP_MINMRU)."""

RandomSource = Callable[[int], bytes]
"""``random_bytes(n)`` returns ``n`` random octets: injected, as everywhere in the project's
sans-IO cores (magic numbers, challenges, interface identifiers)."""
