"""Hidden AVPs: RFC 2661 section 4.3 and RFC 3931 section 5.3.

A hidden Attribute Value is the *Hidden AVP Subformat* (a 2-octet original
length, the original value, optional padding) XORed with an MD5 keystream::

    b_1 = MD5(A + S + RV)   c_1 = p_1 xor b_1
    b_i = MD5(S + c_i-1)    c_i = p_i xor b_i

where A is the 2-octet Attribute Type, S the shared key and RV the value of the
closest preceding Random Vector AVP. L2TPv2 uses the tunnel secret as S; L2TPv3
derives ``S = HMAC_MD5(shared_secret, 1)`` (RFC 3931 section 5.3).

These functions are pure: the random vector and any padding are passed in by
the caller, which draws them from its injected random source.
"""

from __future__ import annotations

import hashlib
import hmac

from .errors import CodecError


def hiding_key(secret: bytes, version: int) -> bytes:
    """Return the key S used for hiding: the secret itself (v2) or HMAC-MD5(secret, 1) (v3)."""
    if version == 3:
        return hmac.new(secret, b"\x01", hashlib.md5).digest()
    return secret


def _xor(a: bytes, b: bytes) -> bytes:
    n = len(a)
    return (int.from_bytes(a, "big") ^ int.from_bytes(b[:n], "big")).to_bytes(n, "big")


def hide_value(
    attribute: int, value: bytes, *, key: bytes, random_vector: bytes, padding: bytes = b""
) -> bytes:
    """Return the hidden form of ``value`` (the new Attribute Value field).

    ``padding`` (random octets from the caller) masks the value's length; the
    original length is kept in the subformat so the receiver can strip it.
    """
    if len(value) > 0xFFFF:
        raise ValueError("value too long to hide")
    sub = len(value).to_bytes(2, "big") + value + padding
    out = bytearray()
    block = hashlib.md5(attribute.to_bytes(2, "big") + key + random_vector).digest()
    for i in range(0, len(sub), 16):
        cipher = _xor(sub[i : i + 16], block)
        out += cipher
        block = hashlib.md5(key + cipher).digest()
    return bytes(out)


def unhide_value(
    attribute: int, data: bytes, *, key: bytes, random_vector: bytes, offset: int = 0
) -> bytes:
    """Reverse :func:`hide_value` and strip the subformat; ``offset`` is for error reports.

    A wrong secret shows up as an original length larger than the AVP, which is
    reported as :class:`CodecError` (there is no other integrity check in v2).
    """
    if len(data) < 2:
        raise CodecError("hidden AVP value shorter than its 2-byte length field", offset)
    plain = bytearray()
    block = hashlib.md5(attribute.to_bytes(2, "big") + key + random_vector).digest()
    for i in range(0, len(data), 16):
        cipher = data[i : i + 16]
        plain += _xor(cipher, block)
        block = hashlib.md5(key + cipher).digest()
    length = (plain[0] << 8) | plain[1]
    if length > len(plain) - 2:
        raise CodecError(
            f"hidden AVP original length {length} exceeds the {len(plain) - 2} bytes present"
            " (wrong secret?)",
            offset,
        )
    return bytes(plain[2 : 2 + length])
