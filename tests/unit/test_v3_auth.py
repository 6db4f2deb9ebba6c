"""L2TPv3 Control Message Authentication (RFC 3931 4.3, 5.4.1) on an in-memory LCCE pair.

Digests are checked here with :mod:`hmac` directly over the bytes RFC 3931
5.4.1 names, not with :mod:`l2tp.protocol.digest`::

    shared_key = HMAC_MD5(secret, 0x02)
    digest     = HMAC_Hash(shared_key, local_nonce + remote_nonce + message)   # SCCRQ: no nonces

where ``message`` is the whole control message from the L2TP header on, with
the Message Digest value zeroed, and local_nonce is the sender's.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from l2tp.protocol.constants import AvpType, StopCcnResult
from l2tp.protocol.events import CallParams, Role, SessionEstablished, TunnelClosed
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel_fsm import TunnelState

from .pair3 import Datagram, Pair3, config3

SECRET = b"correct horse"
HASHES = {0: (hashlib.md5, 16), 1: (hashlib.sha1, 20)}
QUICK = TransportConfig(ack_delay=0.0, hello_interval=None, max_retries=2, max_timeout=2.0)


def _auth_pair(digest_type: int = 0, **kw: object) -> Pair3:
    return Pair3(
        config3(Role.LAC, secret=SECRET, digest_type=digest_type, **kw),
        config3(Role.LNS, secret=SECRET, digest_type=digest_type, **kw),
    )


def _nonces(p: Pair3) -> dict[str, bytes]:
    """Each side's nonce, read from the SCCRQ / SCCRP it sent."""
    out: dict[str, bytes] = {}
    for d in p.sent:
        msg = d.message
        if msg is not None and msg.nonce is not None:
            out.setdefault(d.src, msg.nonce)
    return out


def _expected(data: bytes, digest_type: int, prefix: bytes) -> tuple[bytes, bytes]:
    """(received digest, digest computed independently) for one datagram."""
    hash_fn, size = HASHES[digest_type]
    # 12-byte v3 control header, 8-byte Message Type AVP, then the Message Digest AVP:
    # 6-byte AVP header, 1-byte Digest Type, digest.
    assert int.from_bytes(data[24:26], "big") == AvpType.MESSAGE_DIGEST
    assert data[26] == digest_type
    assert int.from_bytes(data[20:22], "big") & 0x3FF == 7 + size
    received = data[27 : 27 + size]
    zeroed = data[:27] + bytes(size) + data[27 + size :]
    key = hmac.new(SECRET, b"\x02", hashlib.md5).digest()
    return received, hmac.new(key, prefix + zeroed, hash_fn).digest()


@pytest.mark.parametrize("digest_type", [0, 1], ids=["md5", "sha1"])
def test_every_message_carries_a_valid_digest(digest_type: int) -> None:
    p = _auth_pair(digest_type, transport=TransportConfig(ack_delay=0.0, hello_interval=30.0))
    p.establish()
    sid = p.a.tunnel.open_session(p.now, CallParams(cookie_length=4))
    p.pump()
    p.run(31.0)  # a HELLO each way, acknowledged with ACKs
    p.a.tunnel.close_session(sid, p.now)
    p.a.tunnel.close(p.now)
    p.pump()
    names = p.names()
    assert names[:4] == ["SCCRQ", "SCCRP", "SCCCN", "ACK"]
    assert {"ICRQ", "ICRP", "ICCN", "HELLO", "CDN", "STOPCCN"} <= set(names)
    assert "ZLB" not in names  # RFC 3931 4.2: no ZLB when authenticating
    nonces = _nonces(p)
    assert len(nonces["a"]) >= 16 and len(nonces["b"]) >= 16 and nonces["a"] != nonces["b"]
    for d in p.sent:
        other = "b" if d.src == "a" else "a"
        is_sccrq = d.name == "SCCRQ"
        prefix = b"" if is_sccrq else nonces[d.src] + nonces[other]
        received, expected = _expected(d.data, digest_type, prefix)
        assert received == expected, d.name
    assert p.a.of(SessionEstablished) and p.b.of(SessionEstablished)
    assert p.a.tunnel.counters.bad_digest == p.b.tunnel.counters.bad_digest == 0


def _flip_last(d: Datagram) -> bytes:
    return d.data[:-1] + bytes([d.data[-1] ^ 1])


def test_tampered_message_is_dropped_and_counted() -> None:
    p = _auth_pair()
    p.establish()
    p.a.tunnel.open_session(p.now)
    tampered: list[str] = []

    def alter(d: Datagram) -> bytes:
        if d.name == "ICRQ" and not tampered:
            tampered.append(d.name)
            return _flip_last(d)
        return d.data

    nr_before = p.b.tunnel.transport.next_nr
    p.pump(alter=alter)
    assert p.b.tunnel.counters.bad_digest == 1
    assert p.b.tunnel.transport.next_nr == nr_before  # Ns/Nr untouched
    assert not p.b.of(SessionEstablished)
    p.run(5.0)  # the retransmission arrives intact
    assert p.b.tunnel.counters.bad_digest == 1
    assert p.a.of(SessionEstablished) and p.b.of(SessionEstablished)


def test_tampered_ack_is_dropped() -> None:
    p = _auth_pair()
    p.establish()
    p.a.tunnel.open_session(p.now)
    p.pump(alter=lambda d: _flip_last(d) if d.name == "ACK" else d.data)
    assert p.a.tunnel.counters.bad_digest >= 1


def test_wrong_secret_gives_no_tunnel() -> None:
    p = Pair3(
        config3(Role.LAC, secret=b"wrong", digest_type=0, transport=QUICK),
        config3(Role.LNS, secret=SECRET, digest_type=0, transport=QUICK),
    )
    p.establish()
    p.run(60.0)
    assert p.b.tunnel.counters.bad_digest == 3  # SCCRQ and its two retransmissions
    assert p.b.tunnel.state is TunnelState.IDLE
    assert p.names() == ["SCCRQ"] * 3
    (closed,) = p.a.of(TunnelClosed)
    assert closed.reason is None  # retransmissions exhausted, nothing authenticated came back
    assert p.a.tunnel.state is TunnelState.CLOSED


def test_peer_without_digest_when_we_require_one() -> None:
    """Our responder authenticates; the initiator sends no nonce and no digest: StopCCN 4."""
    p = Pair3(
        config3(Role.LAC, transport=QUICK),
        config3(Role.LNS, secret=SECRET, digest_type=0, transport=QUICK),
    )
    p.establish()
    assert p.names()[:2] == ["SCCRQ", "STOPCCN"]
    stop = p.sent[1].message
    assert stop is not None and stop.result_code is not None
    assert stop.result_code.result == StopCcnResult.NOT_AUTHORIZED
    (closed,) = p.a.of(TunnelClosed)
    assert closed.by_peer and closed.reason is not None
    assert closed.reason.result == StopCcnResult.NOT_AUTHORIZED
    assert p.b.tunnel.counters.auth_failures == 1
    assert p.b.tunnel.state is TunnelState.CLOSING
    assert p.a.tunnel.state is TunnelState.CLOSING


def test_peer_requires_digest_we_have_no_secret() -> None:
    """The initiator authenticates, we do not: StopCCN 4; it never gets a tunnel either."""
    p = Pair3(
        config3(Role.LAC, secret=SECRET, digest_type=1, transport=QUICK),
        config3(Role.LNS, transport=QUICK),
    )
    p.establish()
    p.run(60.0)
    stop = p.sent[1].message
    assert stop is not None and stop.result_code is not None
    assert stop.result_code.result == StopCcnResult.NOT_AUTHORIZED
    assert p.a.tunnel.counters.bad_digest >= 1  # the unauthenticated StopCCN is not trusted
    assert not any(e for e in p.a.events if type(e).__name__ == "TunnelEstablished")
    assert p.a.tunnel.state is TunnelState.CLOSED


def test_config_checks() -> None:
    with pytest.raises(ValueError):
        config3(Role.LAC, digest_type=0)  # no secret
    with pytest.raises(ValueError):
        config3(Role.LAC, secret=SECRET, digest_type=2)
    with pytest.raises(ValueError):
        CallParams(cookie_length=6)
