"""Control connection tie breaker through two :class:`TunnelListener` endpoints, v2 and v3.

RFC 2661 4.4.3 (Tie Breaker AVP) and 7.2.1: the lower value wins, the loser
"MUST silently discard its tunnel", equal values discard both. RFC 3931 5.4.3
(Control Connection Tie Breaker AVP) and 7.2 add: "A StopCCN SHOULD be sent by
the winner as an explicit rejection for the losing SCCRQ" ("wait-ctl-reply,
Receive SCCRQ, win tie breaker: Send StopCCN for losing connection"), and
equal values restart negotiation with new tie breakers.
"""

from __future__ import annotations

from typing import Any

import pytest

from l2tp.protocol.constants import StopCcnResult
from l2tp.protocol.events import (
    Role,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
    TunnelReleased,
)
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import Tunnel
from l2tp.protocol.tunnel_fsm import TunnelState

from .pair import Endpoint, Pair, config, header_of

QUICK = TransportConfig(ack_delay=0.0, hello_interval=None, max_retries=2, max_timeout=2.0)
LOW = b"\x00" * 7 + b"\x01"
HIGH = b"\x00" * 7 + b"\x02"
SECRET = b"tie secret"


def tie_pair(
    version: int, lac_tb: bytes | None, lns_tb: bytes | None, **kw: Any
) -> tuple[Pair, Tunnel, Tunnel]:
    """Both endpoints send an SCCRQ to each other before either arrives."""
    kw.setdefault("transport", QUICK)
    p = Pair(
        config(Role.LAC, version=version, tie_breaker=lac_tb is not None, **kw),
        config(Role.LNS, version=version, tie_breaker=lns_tb is not None, **kw),
    )
    a = p.lac.listener.connect("lns", p.now)
    b = p.lns.listener.connect("lac", p.now)
    a.tie_breaker, b.tie_breaker = lac_tb, lns_tb
    for t in (a, b):  # rebuild the queued SCCRQs with the chosen values
        t.transport._unsent.clear()
        t.transport._ns_next = 0
        t.state = TunnelState.IDLE
        t.connect(p.now)
    return p, a, b


def _stopccns(p: Pair) -> list[Any]:
    return [d for d in p.sent if d.name == "STOPCCN"]


def _live(side: Endpoint) -> list[Tunnel]:
    return [t for t in side.listener.tunnels.values() if t.state is TunnelState.ESTABLISHED]


CASES = [
    pytest.param(LOW, HIGH, "lac", id="lac-lower"),
    pytest.param(HIGH, LOW, "lns", id="lns-lower"),
    pytest.param(None, HIGH, "lns", id="only-lns-has-one"),
    pytest.param(LOW, None, "lac", id="only-lac-has-one"),
]


@pytest.mark.parametrize(("lac_tb", "lns_tb", "winner"), CASES)
def test_v3_winner_sends_stopccn_3_loser_discards_silently(
    lac_tb: bytes | None, lns_tb: bytes | None, winner: str
) -> None:
    p, a, b = tie_pair(3, lac_tb, lns_tb)
    loser = "lns" if winner == "lac" else "lac"
    ours = {"lac": a, "lns": b}
    waiting = ours[loser].open_session(p.now)  # waits for a tunnel; must move to the new one
    p.pump()
    win, lose = p.sides[winner], p.sides[loser]
    # The winner's own tunnel is established with the tunnel the loser made for its SCCRQ.
    assert ours[winner].state is TunnelState.ESTABLISHED
    # Discarded, but acknowledging in close-wait (RFC 3931 7.1); it sends nothing else.
    assert ours[loser].state is TunnelState.CLOSING
    assert ours[loser].transport.in_flight == ours[loser].transport.queued == 0
    (replacement,) = _live(lose)
    assert ours[winner].peer_tunnel_id == replacement.tunnel_id
    assert replacement.peer_tunnel_id == ours[winner].tunnel_id
    assert waiting in replacement.sessions
    assert len(lose.of(SessionEstablished)) == 1
    # Exactly one StopCCN: from the winner, to the losing connection, Result Code 3.
    (stop,) = _stopccns(p)
    assert stop.src == winner
    assert header_of(stop.data).tunnel_id == ours[loser].tunnel_id
    assert stop.message.result_code.result == StopCcnResult.ALREADY_EXISTS
    assert win.listener.counters.ties_won == 1 and lose.listener.counters.ties_lost == 1
    assert win.listener.counters.rejected == 0
    # The loser discarded its tunnel without a StopCCN and says what replaced it.
    lost = next(e for e in lose.of(TunnelClosed) if e.tunnel_id == ours[loser].tunnel_id)
    assert lost.reason is None and not lost.by_peer
    assert lost.replaced_by == replacement.tunnel_id
    # The winner's rejecting tunnel ends, retransmissions and all, then is released.
    rejecter = next(
        t for t in win.listener.tunnels.values() if t is not ours[winner] and t.tunnel_id
    )
    refused = next(e for e in win.of(TunnelClosed) if e.tunnel_id == rejecter.tunnel_id)
    assert not refused.by_peer and refused.reason is not None
    assert refused.reason.result == StopCcnResult.ALREADY_EXISTS
    assert not win.of(TunnelEstablished)[1:]  # only the one tunnel came up at the winner
    # The losing connection acknowledged the StopCCN, so it is never retransmitted.
    acks = [
        d
        for d in p.sent
        if d.src == loser and d.name == "ZLB" and header_of(d.data).tunnel_id == rejecter.tunnel_id
    ]
    assert acks and rejecter.transport.in_flight == 0
    p.run(120)
    assert len(_stopccns(p)) == 1
    for side, tunnel in ((win, rejecter), (lose, ours[loser])):
        assert tunnel.state is TunnelState.CLOSED
        assert any(
            isinstance(e, TunnelReleased) and e.tunnel_id == tunnel.tunnel_id for e in side.events
        )
        assert tunnel.tunnel_id in side.listener.reap()
    assert ours[winner].state is replacement.state is TunnelState.ESTABLISHED


def test_v3_losing_sccrq_retransmission_goes_to_the_rejecting_tunnel() -> None:
    """The losing SCCRQ retransmitted (our StopCCN lost): acknowledged again, no 2nd tunnel."""
    p, _, _ = tie_pair(3, LOW, HIGH)
    first = True

    def drop_first_stop(d: Any) -> bool:
        nonlocal first
        if d.name == "STOPCCN" and first:
            first = False
            return True
        return False

    # Deliver b's SCCRQ to a first (a wins it) and hold a's SCCRQ back, so b retransmits.
    p.pump(drop=lambda d: drop_first_stop(d) or (d.name == "SCCRQ" and d.src == "lac"))
    p.advance()  # b retransmits its SCCRQ; a's rejecting tunnel gets it
    p.pump()
    assert p.lac.listener.counters.routed_retransmissions >= 1
    assert p.lac.listener.counters.ties_won == 1
    assert len(p.lac.listener.tunnels) == 2  # a's own and one rejecting tunnel, not two
    assert len(_stopccns(p)) >= 2


@pytest.mark.parametrize(("lac_tb", "lns_tb", "winner"), CASES)
def test_v2_loser_discards_silently_and_winner_sends_nothing(
    lac_tb: bytes | None, lns_tb: bytes | None, winner: str
) -> None:
    p, a, b = tie_pair(2, lac_tb, lns_tb)
    p.run(60)
    ours = {"lac": a, "lns": b}
    loser = "lns" if winner == "lac" else "lac"
    assert ours[winner].state is TunnelState.ESTABLISHED
    assert ours[loser].state is TunnelState.CLOSED
    assert _stopccns(p) == []
    win, lose = p.sides[winner], p.sides[loser]
    assert win.listener.counters.ties_won == 1 and lose.listener.counters.ties_lost == 1
    assert len(win.listener.tunnels) == 1  # no rejecting tunnel in v2
    (replacement,) = _live(lose)
    assert ours[winner].peer_tunnel_id == replacement.tunnel_id


@pytest.mark.parametrize("version", [2, 3])
def test_equal_tie_breakers_discard_both(version: int) -> None:
    p, a, b = tie_pair(version, LOW, LOW)
    p.run(60)
    assert a.state is TunnelState.CLOSED and b.state is TunnelState.CLOSED
    assert _stopccns(p) == [] and "SCCRP" not in p.names()
    for side, tunnel in ((p.lac, a), (p.lns, b)):
        assert side.listener.counters.ties_equal == 1
        assert len(side.listener.tunnels) == 1  # no tunnel made for the peer's SCCRQ
        (closed,) = side.of(TunnelClosed)
        assert closed.tunnel_id == tunnel.tunnel_id and closed.replaced_by is None
        assert closed.reason is None and "new tie breaker" in closed.description


@pytest.mark.parametrize("version", [2, 3])
def test_no_tie_breakers_two_connections(version: int) -> None:
    p, a, b = tie_pair(version, None, None)
    p.run(60)
    assert a.state is b.state is TunnelState.ESTABLISHED
    assert len(_live(p.lac)) == len(_live(p.lns)) == 2
    assert _stopccns(p) == []


@pytest.mark.parametrize("digest_type", [0, 1])
def test_v3_tie_with_message_authentication(digest_type: int) -> None:
    """The winner's StopCCN verifies at the loser, which has never seen the winner's
    nonce for that connection: it is sealed with an empty local nonce."""
    p, a, b = tie_pair(3, LOW, HIGH, secret=SECRET, digest_type=digest_type)
    p.run(120)
    assert a.state is TunnelState.ESTABLISHED
    (stop,) = _stopccns(p)  # acknowledged at once, never retransmitted
    assert stop.src == "lac" and stop.message.result_code.result == StopCcnResult.ALREADY_EXISTS
    assert "ZLB" not in p.names()  # RFC 3931 4.2: ACK messages when authenticating
    for side in (p.lac, p.lns):
        assert side.listener.counters.bad_digest == 0
        assert all(t.counters.bad_digest == 0 for t in side.listener.tunnels.values())
    assert b.state is TunnelState.CLOSED and b.tunnel_id in p.lns.listener.reap()
    assert len(_live(p.lac)) == len(_live(p.lns)) == 1
