"""L2TPv3 Control Message Authentication for one control connection (RFC 3931 4.3, 5.4.1).

:class:`MessageAuth` holds our Control Message Authentication Nonce and the
peer's, seals every datagram the transport sends (its ``seal`` hook, so the
digest covers the final Ns/Nr) and judges every datagram received *before* the
transport sees it, so a forged or damaged message never advances Ns/Nr.

The initiator learns the peer's nonce from the SCCRP, whose own digest already
uses it: the nonce is read from the (not yet trusted) SCCRP, the digest checked
with it, and the nonce kept only if the check passes.
"""

from __future__ import annotations

import enum

from .avp import Avp
from .constants import AvpType, DigestType, MessageType
from .digest import sealed, verify_message
from .errors import CodecError
from .message import ControlMessage, RandomSource, encode_body, parse_message

NONCE_SIZE = 16
"""RFC 3931 5.4.1: "at least 16 octets is recommended"."""

_SCC = (MessageType.SCCRQ, MessageType.SCCRP)


class Verdict(enum.Enum):
    OK = "ok"
    """The digest matches: hand the datagram to the transport."""
    BAD = "bad"
    """Missing or wrong digest: drop it (RFC 3931 5.4.1 "MUST be dropped") and count it."""
    UNAUTHENTICATED = "unauthenticated"
    """An SCCRQ/SCCRP with neither nonce nor digest: the peer does not authenticate.
    The tunnel lets it through and answers StopCCN 4 (not authorized)."""


class MessageAuth:
    """Nonces, sealing and verification of one v3 control connection."""

    __slots__ = ("digest_type", "local_nonce", "peer_nonce", "secret")

    def __init__(self, secret: bytes, digest_type: int, random_bytes: RandomSource) -> None:
        self.secret = secret
        self.digest_type = int(digest_type)
        if self.digest_type not in (DigestType.HMAC_MD5, DigestType.HMAC_SHA1):
            raise ValueError(f"unknown digest type {digest_type}")
        self.local_nonce = random_bytes(NONCE_SIZE)
        self.peer_nonce: bytes | None = None

    def nonce_avp(self) -> Avp:
        return Avp(attribute=AvpType.CONTROL_MESSAGE_AUTHENTICATION_NONCE, value=self.local_nonce)

    def unadvertised(self) -> None:
        """We refuse the peer's SCCRQ with a StopCCN, so no SCCRQ/SCCRP of ours ever
        carried our nonce: seal with an empty local nonce, the only one the peer knows.

        RFC 3931 5.4.1 names no nonce for this case (StopCCN may not carry the
        Nonce AVP, 6.4); with our random nonce the peer could never verify the
        StopCCN and would have to drop it. Empty nonces are what 4.3 uses for a
        digest without authentication.
        """
        self.local_nonce = b""

    def encode(self, message: ControlMessage) -> bytes:
        """A body with a zeroed Message Digest placeholder (filled by :meth:`seal`)."""
        return encode_body(message, version=3, digest_type=self.digest_type)

    def seal(self, datagram: bytes) -> bytes:
        """The transport's ``seal`` hook: fill the digest with both nonces."""
        return sealed(
            datagram,
            secret=self.secret,
            local_nonce=self.local_nonce,
            remote_nonce=self.peer_nonce or b"",
        )

    def judge(self, datagram: bytes) -> Verdict:
        """Check one received datagram; never raises."""
        if self.peer_nonce is not None:
            if self._verify(datagram, self.peer_nonce):
                return Verdict.OK
            return Verdict.BAD
        try:
            message = parse_message(datagram)[1]
        except CodecError:
            return Verdict.BAD
        if message is None:
            return Verdict.BAD  # a ZLB carries no digest
        nonce = message.nonce
        if self._verify(datagram, nonce or b""):
            if message.message_type in _SCC:
                self.peer_nonce = nonce or b""
            return Verdict.OK
        if message.message_type in _SCC and nonce is None and AvpType.MESSAGE_DIGEST not in message:
            return Verdict.UNAUTHENTICATED
        return Verdict.BAD

    def _verify(self, datagram: bytes, peer_nonce: bytes) -> bool:
        return verify_message(
            datagram, secrets=(self.secret,), local_nonce=self.local_nonce, remote_nonce=peer_nonce
        )
