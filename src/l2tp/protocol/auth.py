"""L2TPv2 tunnel authentication: the CHAP-like Challenge / Challenge Response.

RFC 2661 section 5.1.1: a peer that wants to authenticate the other end puts a
Challenge AVP (random octets) in its SCCRQ or SCCRP; the other end answers in
the next message (SCCRP or SCCCN) with a Challenge Response AVP computed as in
CHAP (RFC 1994 section 4.1)::

    response = MD5(ID + secret + challenge)

where ID is the one-octet Message Type of the message that *carries the
response* (RFC 2661 section 4.4.3: 2 for an SCCRP, 3 for an SCCCN) and secret
is the tunnel's shared secret, the same one used to hide AVPs (section 4.3).

The challenge is drawn from the injected random source, and responses are
compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac

from .constants import MessageType
from .message import RandomSource

CHALLENGE_SIZE = 16
"""Octets of challenge we send: as long as the MD5 output, like most CHAP implementations."""


def new_challenge(random_bytes: RandomSource, size: int = CHALLENGE_SIZE) -> bytes:
    """Draw a Challenge AVP value (RFC 2661 4.4.3: "one or more octets of random data")."""
    if size < 1:
        raise ValueError("a challenge has at least one octet")
    value = random_bytes(size)
    if len(value) != size:
        raise ValueError("the random source returned the wrong number of octets")
    return value


def challenge_response(message_type: MessageType | int, secret: bytes, challenge: bytes) -> bytes:
    """The 16-octet Challenge Response a message of ``message_type`` must carry."""
    if not 0 <= message_type <= 0xFF:
        raise ValueError("the CHAP identifier is one octet")
    return hashlib.md5(bytes((int(message_type),)) + secret + challenge).digest()


def verify_response(
    message_type: MessageType | int, secret: bytes, challenge: bytes, response: bytes | None
) -> bool:
    """True when ``response`` (None if absent) answers ``challenge`` under ``secret``."""
    if response is None or len(response) != 16:
        return False
    expected = challenge_response(message_type, secret, challenge)
    return hmac.compare_digest(expected, response)


class Handshake:
    """One tunnel's side of the challenge exchange (RFC 2661 5.1.1).

    Holds the challenge we sent (drawn once, on first use) and the one the
    peer sent us. With no secret, or with ``challenge=False``, we do not
    challenge; being challenged without a secret is a failure, since no
    response can be computed.
    """

    __slots__ = ("_challenge", "_enabled", "_random", "peer_challenge", "secret")

    def __init__(
        self, secret: bytes | None, *, challenge: bool, random_bytes: RandomSource
    ) -> None:
        self.secret = secret
        self._enabled = secret is not None and challenge
        self._random = random_bytes
        self._challenge: bytes | None = None
        self.peer_challenge: bytes | None = None

    @property
    def our_challenge(self) -> bytes | None:
        """The Challenge AVP value for our SCCRQ/SCCRP, None when we do not challenge."""
        if self._enabled and self._challenge is None:
            self._challenge = new_challenge(self._random)
        return self._challenge

    def take_peer_challenge(self, challenge: bytes | None) -> bool:
        """Record the peer's challenge; False when it challenged and we have no secret."""
        if challenge is None:
            return True
        if self.secret is None:
            return False
        self.peer_challenge = challenge
        return True

    def response(self, message_type: MessageType) -> bytes | None:
        """The Challenge Response to put in our SCCRP/SCCCN, None if not challenged."""
        if self.peer_challenge is None or self.secret is None:
            return None
        return challenge_response(message_type, self.secret, self.peer_challenge)

    def check(self, message_type: MessageType, response: bytes | None) -> bool:
        """True if the peer's response is right, or if we did not challenge it."""
        if self._challenge is None or self.secret is None:
            return True
        return verify_response(message_type, self.secret, self._challenge, response)
