"""How LCP starts when the two ends do not start at the same moment (fake clock).

Over L2TP the LAC's PPP starts when it has sent its ICCN, the LNS's when it has
processed it: a frame reaching the LNS before then is lost (here: delivered to a
connection that is not open yet, which drops it). ``connect_delay`` (pppd's
``connect-delay``) and the early retransmission of a request sent blind keep that
loss from costing the 3 s restart timer (RFC 1661 4.6); ``passive`` (pppd's) keeps a
peer that never answered waiting instead of ending the link.
"""

from __future__ import annotations

import pytest

from l2tp.ppp import LinkUp, Protocol, Terminated
from l2tp.ppp.codec import parse_frame, parse_packet
from l2tp.ppp.constants import Code
from l2tp.ppp.fsm import State

from .pair import PppPair, authenticator_config, peer_config


def lcp_codes(pair: PppPair, src: str) -> list[int]:
    out = []
    for sender, frame in pair.wire:
        protocol, information = parse_frame(frame)
        if sender == src and protocol == Protocol.LCP:
            out.append(parse_packet(information).code)
    return out


def start_late(pair: PppPair, lns_opens_at: float) -> None:
    """The peer (LAC) opens at 0, the authenticator (LNS) at ``lns_opens_at``."""
    pair.p.conn.open(0.0)
    pair.pump()
    while (deadline := pair.next_deadline()) is not None and deadline < lns_opens_at:
        pair.advance()
    pair.now = lns_opens_at
    pair.a.conn.open(pair.now)
    pair.pump()


def lcp_up_at(pair: PppPair) -> float:
    assert pair.run_until(lambda: bool(pair.a.of(LinkUp)) and bool(pair.p.of(LinkUp)))
    return pair.now


def test_without_connect_delay_a_lost_first_request_costs_the_restart_interval() -> None:
    # The behaviour the delay fixes: the LAC's first request reaches an LNS not yet open.
    pair = PppPair(p=peer_config(connect_delay=None))
    start_late(pair, 0.1)
    assert pair.a.conn.counters.not_running == 1  # the lost Configure-Request
    assert lcp_up_at(pair) == 3.0


def test_connect_delay_waits_for_the_other_ends_first_packet() -> None:
    pair = PppPair(p=peer_config(connect_delay=1.0))
    start_late(pair, 0.1)
    assert pair.a.conn.counters.not_running == 0  # nothing sent into the void
    assert lcp_up_at(pair) == 0.1
    # One request each way: nothing repeated.
    assert lcp_codes(pair, "p")[:2] == [Code.CONFIGURE_REQUEST, Code.CONFIGURE_ACK]
    assert lcp_codes(pair, "p").count(Code.CONFIGURE_REQUEST) == 1
    assert lcp_codes(pair, "a").count(Code.CONFIGURE_REQUEST) == 1


def test_connect_delay_holds_the_first_request_back() -> None:
    pair = PppPair(p=peer_config(connect_delay=1.0))
    pair.p.conn.open(0.0)
    assert pair.p.conn.frames_to_send(0.0) == []
    assert pair.p.conn.get_timer() == 1.0
    assert pair.p.conn.lcp.state is State.STARTING
    pair.p.conn.handle_timer(0.999)
    assert pair.p.conn.frames_to_send(0.999) == []
    pair.p.conn.handle_timer(1.0)
    (frame,) = pair.p.conn.frames_to_send(1.0)
    assert parse_packet(parse_frame(frame)[1]).code == Code.CONFIGURE_REQUEST
    assert pair.p.conn.get_timer() == 4.0  # then the restart timer as usual


def test_both_ends_opening_together_exchange_one_request_each() -> None:
    pair = PppPair(p=peer_config(connect_delay=1.0))
    pair.open()
    assert lcp_up_at(pair) == 0.0
    assert lcp_codes(pair, "p").count(Code.CONFIGURE_REQUEST) == 1
    assert lcp_codes(pair, "a").count(Code.CONFIGURE_REQUEST) == 1


def test_a_request_sent_blind_is_repeated_when_the_other_end_speaks() -> None:
    # The LNS is slower than the delay: our request at 1.0 is lost; its request at 1.5
    # gets ours again at once instead of at 4.0 (the restart timer).
    pair = PppPair(p=peer_config(connect_delay=1.0))
    start_late(pair, 1.5)
    assert pair.a.conn.counters.not_running == 1
    assert lcp_up_at(pair) == 1.5
    # Blind request, then the repeat before our Ack of theirs.
    codes = lcp_codes(pair, "p")
    assert codes[:3] == [Code.CONFIGURE_REQUEST, Code.CONFIGURE_REQUEST, Code.CONFIGURE_ACK]
    assert codes.count(Code.CONFIGURE_REQUEST) == 2


def test_a_request_sent_blind_but_received_comes_up_despite_the_repeat() -> None:
    # The other end did get our blind request (it opened just in time): the repeat
    # reaches it before our Ack, is acknowledged again, and the duplicate Ack is stale.
    pair = PppPair(p=peer_config(connect_delay=1.0), a=authenticator_config())
    pair.p.conn.open(0.0)
    pair.now = 1.0
    pair.a.conn.open(1.0)  # its Configure-Request waits in its queue
    pair.p.conn.handle_timer(1.0)  # connect_delay over: our request goes out blind
    (ours,) = pair.p.conn.frames_to_send(1.0)
    pair.a.conn.receive_frame(ours, 1.0)  # ... and arrives: its Ack queues after its request
    pair.pump()
    assert lcp_up_at(pair) == 1.0
    # After the blind request (taken off the wire above): the repeat, then our Ack.
    assert lcp_codes(pair, "p") == [Code.CONFIGURE_REQUEST, Code.CONFIGURE_ACK]
    assert pair.p.conn.lcp.counters.stale_replies == 1  # the Ack of the blind one
    assert not pair.a.of(Terminated) and not pair.p.of(Terminated)
    assert len(pair.a.of(LinkUp)) == len(pair.p.of(LinkUp)) == 1  # no renegotiation


def test_close_during_connect_delay_ends_at_once() -> None:
    pair = PppPair(p=peer_config(connect_delay=1.0))
    pair.p.conn.open(0.0)
    pair.p.conn.close(0.2, "stop")
    pair.pump()
    assert pair.p.conn.terminated and pair.p.conn.get_timer() is None
    assert lcp_codes(pair, "p") == []


def test_connect_delay_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="connect_delay"):
        peer_config(connect_delay=-1.0)


def test_without_passive_max_configure_unanswered_ends_the_link() -> None:
    pair = PppPair(p=peer_config())
    pair.p.conn.open(0.0)
    pair.run_until(lambda: pair.p.conn.terminated)
    assert pair.now == 30.0  # 10 requests, 3 s apart (RFC 1661 4.6 defaults)
    assert pair.p.of(Terminated)[0].reason == "LCP negotiation failed"


def test_passive_waits_after_max_configure_and_comes_up_when_asked() -> None:
    pair = PppPair(p=peer_config(passive=True))
    start_late(pair, 100.0)
    assert lcp_codes(pair, "p")[:10] == [Code.CONFIGURE_REQUEST] * 10
    assert lcp_up_at(pair) == 100.0
    assert not pair.p.of(Terminated)


def test_passive_waiting_is_ended_by_close() -> None:
    pair = PppPair(p=peer_config(passive=True))
    pair.p.conn.open(0.0)
    pair.run_until(lambda: pair.p.conn.get_timer() is None)
    assert pair.now == 30.0 and pair.p.conn.lcp.state is State.STOPPED
    assert not pair.p.conn.terminated
    pair.p.conn.close(31.0, "stop")
    assert pair.p.conn.terminated
    assert pair.p.of(Terminated) == [] and pair.p.conn.next_event() == Terminated(
        by_peer=False, reason="stop"
    )
