"""L2TPv3 control connections through :class:`TunnelListener` (demultiplexing, tie breaker)."""

from __future__ import annotations

from typing import Any

from l2tp.protocol.events import Role, SessionEstablished, TunnelClosed
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import Tunnel
from l2tp.protocol.tunnel_fsm import TunnelState

from .pair import Pair, config

SECRET = b"s3cret"
QUICK = TransportConfig(ack_delay=0.0, hello_interval=None, max_retries=2, max_timeout=2.0)


def v3(role: Role, **kw: Any) -> Any:
    return config(role, version=3, **kw)


def test_establish_and_call_through_listeners() -> None:
    p = Pair(v3(Role.LAC, secret=SECRET, digest_type=1), v3(Role.LNS, secret=SECRET, digest_type=1))
    a, b = p.establish()
    assert a.state is b.state is TunnelState.ESTABLISHED
    assert a.peer_tunnel_id == b.tunnel_id and b.peer_tunnel_id == a.tunnel_id
    a.open_session(p.now)
    p.pump()
    assert p.lac.of(SessionEstablished) and p.lns.of(SessionEstablished)
    assert "ZLB" not in p.names()


def test_wrong_secret_sccrq_makes_no_tunnel() -> None:
    p = Pair(
        v3(Role.LAC, secret=b"other", digest_type=0, transport=QUICK),
        v3(Role.LNS, secret=SECRET, digest_type=0, transport=QUICK),
    )
    p.connect()
    p.run(60)
    assert not p.lns.listener.tunnels
    assert p.lns.listener.counters.bad_digest == 3
    (closed,) = p.lac.of(TunnelClosed)
    assert closed.reason is None


def tie_pair(lac_tb: bytes, lns_tb: bytes) -> tuple[Pair, Tunnel, Tunnel]:
    p = Pair(v3(Role.LAC, tie_breaker=True), v3(Role.LNS, tie_breaker=True))
    a = p.lac.listener.connect("lns", p.now)
    b = p.lns.listener.connect("lac", p.now)
    a.tie_breaker, b.tie_breaker = lac_tb, lns_tb
    for t in (a, b):  # rebuild the queued SCCRQs with the chosen values
        t.transport._unsent.clear()
        t.transport._ns_next = 0
        t.state = TunnelState.IDLE
        t.connect(p.now)
    return p, a, b


def test_tie_breaker_lower_wins() -> None:
    p, a, b = tie_pair(b"\x00" * 7 + b"\x01", b"\x00" * 7 + b"\x02")
    p.run(50)
    assert a.state is TunnelState.ESTABLISHED and b.state is TunnelState.CLOSED
    assert p.lns.listener.counters.ties_lost == 1 and p.lac.listener.counters.ties_won == 1
    assert "STOPCCN" not in p.names()
