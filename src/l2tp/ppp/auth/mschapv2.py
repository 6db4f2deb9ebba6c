"""MS-CHAPv2 hashes and message formats (RFC 2759 sections 4-8).

The routines follow the pseudo-code of RFC 2759 section 8 function by
function, so that each one can be checked against the example values of
section 9.2. MD4 (RFC 1320) and single DES come from pycryptodome: OpenSSL 3
builds of :mod:`hashlib` no longer offer MD4.

Only authentication is implemented: no MPPE key derivation (RFC 3079) and no
password change (RFC 2759 section 7).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from Crypto.Cipher import DES
from Crypto.Hash import MD4

CHALLENGE_LEN = 16
RESPONSE_VALUE_LEN = 49
"""Peer-Challenge (16) + Reserved (8) + NT-Response (24) + Flags (1), RFC 2759 section 4."""
ERROR_AUTHENTICATION_FAILURE = 691
"""RFC 2759 section 6: the only failure code we send."""

_MAGIC1 = b"Magic server to client signing constant"
_MAGIC2 = b"Pad to make it do more than one iteration"


def _md4(data: bytes) -> bytes:
    return MD4.new(data).digest()


def user_part(name: str) -> str:
    """RFC 2759 section 4: the hashes use the user name without a ``DOMAIN\\`` prefix."""
    return name.rsplit("\\", 1)[-1]


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, user: str) -> bytes:
    """ChallengeHash() of RFC 2759 8.2: SHA-1 of the challenges and name, first 8 octets."""
    digest = hashlib.sha1(
        peer_challenge + authenticator_challenge + user_part(user).encode("utf-8")
    ).digest()
    return digest[:8]


def nt_password_hash(password: str) -> bytes:
    """NtPasswordHash() of RFC 2759 8.3: MD4 of the UTF-16LE ("Unicode") password."""
    return _md4(password.encode("utf-16-le"))


def nt_password_hash_hash(password_hash: bytes) -> bytes:
    """HashNtPasswordHash() of RFC 2759 8.4: MD4 of the password hash."""
    return _md4(password_hash)


def _des_key(seven: bytes) -> bytes:
    """Spread 56 key bits over 8 octets, one free (parity) bit each (RFC 2759 8.6)."""
    bits = int.from_bytes(seven, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """ChallengeResponse() of RFC 2759 8.5: three DES encryptions of the 8-octet challenge."""
    padded = password_hash.ljust(21, b"\x00")
    return b"".join(
        DES.new(_des_key(padded[i : i + 7]), DES.MODE_ECB).encrypt(challenge) for i in (0, 7, 14)
    )


def generate_nt_response(
    authenticator_challenge: bytes, peer_challenge: bytes, user: str, password: str
) -> bytes:
    """GenerateNTResponse() of RFC 2759 8.1: the 24-octet NT-Response."""
    hashed = challenge_hash(peer_challenge, authenticator_challenge, user)
    return challenge_response(hashed, nt_password_hash(password))


def authenticator_response_from_hash(
    password_hash: bytes,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    user: str,
) -> bytes:
    """GenerateAuthenticatorResponse() of RFC 2759 8.7, from the NT password hash.

    Returns the 20 raw octets; :func:`format_success` turns them into "S=...".
    """
    digest = hashlib.sha1(nt_password_hash_hash(password_hash) + nt_response + _MAGIC1).digest()
    hashed = challenge_hash(peer_challenge, authenticator_challenge, user)
    return hashlib.sha1(digest + hashed + _MAGIC2).digest()


def generate_authenticator_response(
    password: str,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    user: str,
) -> bytes:
    """GenerateAuthenticatorResponse() of RFC 2759 8.7, from the clear-text password."""
    return authenticator_response_from_hash(
        nt_password_hash(password), nt_response, peer_challenge, authenticator_challenge, user
    )


def verify_nt_response(
    authenticator_challenge: bytes,
    peer_challenge: bytes,
    user: str,
    password: str,
    nt_response: bytes,
) -> bytes | None:
    """Check an NT-Response; the authenticator response (8.7) if it is right, else None."""
    expected = generate_nt_response(authenticator_challenge, peer_challenge, user, password)
    if not hmac.compare_digest(expected, nt_response):
        return None
    return generate_authenticator_response(
        password, nt_response, peer_challenge, authenticator_challenge, user
    )


def build_response_value(peer_challenge: bytes, nt_response: bytes) -> bytes:
    """The 49-octet Response Value field of RFC 2759 section 4 (Reserved and Flags zero)."""
    return peer_challenge + bytes(8) + nt_response + b"\x00"


def parse_response_value(value: bytes) -> tuple[bytes, bytes] | None:
    """(Peer-Challenge, NT-Response) from a Response Value field; None if malformed."""
    if len(value) != RESPONSE_VALUE_LEN:
        return None
    return value[:16], value[24:48]


def format_success(authenticator_response: bytes, message: str = "") -> bytes:
    """RFC 2759 section 5: "S=<40 upper-case hex digits> M=<message>"."""
    text = "S=" + authenticator_response.hex().upper()
    if message:
        text += " M=" + message
    return text.encode("utf-8")


_SUCCESS = re.compile(rb"^S=([0-9A-Fa-f]{40})(?: M=(.*))?$", re.DOTALL)


def parse_success(message: bytes) -> tuple[bytes, str] | None:
    """(authenticator response, text) from a Success Message; None if malformed."""
    match = _SUCCESS.match(message)
    if match is None:
        return None
    text = (match.group(2) or b"").decode("utf-8", "replace")
    return bytes.fromhex(match.group(1).decode("ascii")), text


def format_failure(challenge: bytes, message: str = "Authentication failed") -> bytes:
    """RFC 2759 section 6: "E=691 R=0 C=<32 hex> V=3 M=<message>", no retry allowed."""
    text = f"E={ERROR_AUTHENTICATION_FAILURE} R=0 C={challenge.hex().upper()} V=3 M={message}"
    return text.encode("utf-8")


def failure_text(message: bytes) -> str:
    """A short description of a Failure Message: its error code and the M= text if any."""
    text = message.decode("utf-8", "replace")
    code = re.search(r"E=(\d+)", text)
    human = text.split(" M=", 1)[1] if " M=" in text else ""
    parts = [f"error {code.group(1)}" if code else "failure", human]
    return ": ".join(part for part in parts if part)
