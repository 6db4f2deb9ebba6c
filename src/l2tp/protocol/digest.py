"""L2TPv3 Control Message Authentication (RFC 3931 sections 4.3 and 5.4.1).

The Message Digest AVP sits at a fixed place, right after the Message Type AVP
(a second one may follow directly). The digest covers the whole control message
from the L2TP header on (after the zero Session ID over IP, after the UDP header
over UDP) with every Message Digest value zeroed::

    shared_key     = HMAC_MD5(shared_secret, 0x02)
    digest (SCCRQ) = HMAC_Hash(shared_key, control_message)
    digest (other) = HMAC_Hash(shared_key, local_nonce + remote_nonce + control_message)

where HMAC_Hash is MD5 (Digest Type 0, 16 octets) or SHA-1 (type 1, 20 octets)
and the nonces are the Control Message Authentication Nonce AVPs the two sides
exchanged in SCCRQ/SCCRP. The receiver does the same with the nonces swapped.

Because Ns/Nr change on retransmission and are covered by the digest, the
reliable transport seals each datagram when it (re)sends it:
:func:`seal_message` fills the placeholder that
:func:`~.message.encode_body` inserted (``digest_type=...``), in place.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Sequence
from typing import Any

from .constants import DigestType, MessageType
from .errors import CodecError

_DIGEST_SIZES = {int(DigestType.HMAC_MD5): 16, int(DigestType.HMAC_SHA1): 20}
_HASHES: dict[int, str] = {
    int(DigestType.HMAC_MD5): "md5",
    int(DigestType.HMAC_SHA1): "sha1",
}
_HEADER_LEN = 12
_MESSAGE_TYPE_AVP_LEN = 8


@functools.lru_cache(maxsize=64)
def derive_auth_key(secret: bytes) -> bytes:
    """``shared_key = HMAC_MD5(shared_secret, 2)`` (RFC 3931 section 5.4.1).

    Cached: it depends on the secret alone, and every message sent or received
    on an authenticated control connection needs it.
    """
    return hmac.digest(secret, b"\x02", "md5")


def _locate(message: bytes | bytearray | memoryview) -> tuple[int, list[tuple[int, int]]]:
    """Return (message type, [(value offset, digest type)]) for the Message Digest AVPs.

    ``message`` starts at the L2TP header. Raises :class:`CodecError` when the
    layout is not that of a v3 control message with a digest in place.
    """
    size = len(message)
    if size < _HEADER_LEN + _MESSAGE_TYPE_AVP_LEN:
        raise CodecError("too short for a control header and Message Type AVP", size)
    if message[1] & 0x0F != 3:
        raise CodecError("message digests exist only in L2TPv3", 1)
    length = (message[2] << 8) | message[3]
    if not _HEADER_LEN + _MESSAGE_TYPE_AVP_LEN <= length <= size:
        raise CodecError(f"length field {length} does not fit the datagram", 2)
    if ((message[12] & 0x03) << 8) | message[13] != 8 or message[16] | message[17]:
        raise CodecError("first AVP is not an 8-byte Message Type AVP", 12)
    message_type = (message[18] << 8) | message[19]
    found: list[tuple[int, int]] = []
    pos = _HEADER_LEN + _MESSAGE_TYPE_AVP_LEN
    while len(found) < 2 and pos + 7 <= length:
        avp_len = ((message[pos] & 0x03) << 8) | message[pos + 1]
        vendor = (message[pos + 2] << 8) | message[pos + 3]
        attr = (message[pos + 4] << 8) | message[pos + 5]
        if vendor != 0 or attr != 59:
            break
        digest_type = message[pos + 6]
        expected = _DIGEST_SIZES.get(digest_type)
        if expected is None:
            raise CodecError(f"unknown message digest type {digest_type}", pos + 6)
        if avp_len != 7 + expected or pos + avp_len > length:
            raise CodecError(f"Message Digest AVP length {avp_len} is wrong", pos)
        found.append((pos + 7, digest_type))
        pos += avp_len
    if not found:
        raise CodecError("no Message Digest AVP right after the Message Type AVP", 20)
    return message_type, found


def _compute(auth_key: bytes, digest_type: int, prefix: bytes, zeroed: bytes | bytearray) -> bytes:
    # hmac.digest is OpenSSL's one-shot HMAC: several times cheaper than hmac.new.
    return hmac.digest(auth_key, prefix + bytes(zeroed), _HASHES[digest_type])


def seal_message(
    datagram: bytearray,
    *,
    secret: bytes,
    local_nonce: bytes = b"",
    remote_nonce: bytes = b"",
    second_secret: bytes | None = None,
    ip_encap: bool = False,
) -> None:
    """Fill the Message Digest AVP(s) of a fully serialised v3 message, in place.

    ``datagram`` holds the final header (with Ns/Nr) and AVPs; with
    ``ip_encap`` it starts with the 4-byte zero Session ID, which is not
    covered. A second Message Digest AVP, if present, is computed with
    ``second_secret`` (RFC 3931 5.4.1 secret roll-over), else with ``secret``.
    For an SCCRQ the nonces are ignored, as the RFC prescribes.
    Raises :class:`CodecError` if no digest placeholder is where it must be.
    """
    base = 4 if ip_encap else 0
    view = memoryview(datagram)[base:]
    length = (view[2] << 8) | view[3] if len(view) >= 4 else 0
    message_type, found = _locate(view)
    for offset, digest_type in found:
        size = _DIGEST_SIZES[digest_type]
        view[offset : offset + size] = bytes(size)
    prefix = b"" if message_type == MessageType.SCCRQ else local_nonce + remote_nonce
    zeroed = bytes(view[:length])
    for index, (offset, digest_type) in enumerate(found):
        key_secret = second_secret if index == 1 and second_secret is not None else secret
        digest = _compute(derive_auth_key(key_secret), digest_type, prefix, zeroed)
        view[offset : offset + len(digest)] = digest
    view.release()


def sealed(data: bytes, **kwargs: Any) -> bytes:
    """Return a sealed copy of ``data``; same keywords as :func:`seal_message`."""
    buf = bytearray(data)
    seal_message(buf, **kwargs)
    return bytes(buf)


def check_message_digest(
    datagram: bytes | bytearray,
    *,
    secrets: Sequence[bytes],
    local_nonce: bytes = b"",
    remote_nonce: bytes = b"",
    ip_encap: bool = False,
) -> None:
    """Verify a received v3 datagram; raise :class:`CodecError` with the reason if it fails.

    ``local_nonce`` / ``remote_nonce`` are ours and the peer's, as when sealing:
    the peer computed ``HMAC(key, its nonce + our nonce + message)``. The message
    is accepted if any digest AVP matches with any configured secret.
    """
    base = 4 if ip_encap else 0
    message = bytes(datagram[base:])
    message_type, found = _locate(message)
    length = (message[2] << 8) | message[3]
    zeroed = bytearray(message[:length])
    received = []
    for offset, digest_type in found:
        size = _DIGEST_SIZES[digest_type]
        received.append((digest_type, bytes(zeroed[offset : offset + size])))
        zeroed[offset : offset + size] = bytes(size)
    prefix = b"" if message_type == MessageType.SCCRQ else remote_nonce + local_nonce
    for secret in secrets:
        key = derive_auth_key(secret)
        for digest_type, digest in received:
            if hmac.compare_digest(_compute(key, digest_type, prefix, zeroed), digest):
                return
    raise CodecError("message digest does not match", base + found[0][0])


def verify_message(
    datagram: bytes | bytearray,
    *,
    secrets: Sequence[bytes],
    local_nonce: bytes = b"",
    remote_nonce: bytes = b"",
    ip_encap: bool = False,
) -> bool:
    """Like :func:`check_message_digest` but answers True/False and never raises."""
    try:
        check_message_digest(
            datagram,
            secrets=secrets,
            local_nonce=local_nonce,
            remote_nonce=remote_nonce,
            ip_encap=ip_encap,
        )
    except CodecError:
        return False
    return True
