"""Deterministic tests of the control-message transport under a fake clock.

Scenarios follow RFC 2661 5.8 / Appendix B and RFC 3931 4.2: loss at every
position, reordering, duplication, window limits, sequence wrap-around, exact
back-off timings, retry exhaustion, HELLO timing and close-wait.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2tp.protocol.errors import LocalProtocolError
from l2tp.protocol.header import build_control_message, parse_control_header
from l2tp.protocol.transport import (
    HELLO_BODY,
    AckReceived,
    MessageReceived,
    Transport,
    TransportClosed,
    TransportConfig,
    TransportFailed,
    TransportState,
    is_explicit_ack,
)

from .test_transport_pair import Datagram, Pair, Side

ACK_V3 = bytes.fromhex("8008000000000014")


def warm_up(pair: Pair, side: str = "a", count: int = 8) -> None:
    """Exchange enough messages for the congestion window to reach the peer window."""
    for i in range(count):
        pair.send(side, b"warm-%d" % i)
    pair.run()
    pair.sides["a"].events.clear()
    pair.sides["b"].events.clear()


# ------------------------------------------------------------------ loss


LOCKSTEP_REPLIES = {("b", b"M1"): ("b", b"M2"), ("a", b"M2"): ("a", b"M3")}


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("position", range(4))
def test_lockstep_survives_loss_of_each_datagram(version: int, position: int) -> None:
    """M1 ->, <- M2, M3 ->, <- ZLB: whichever datagram is lost, all arrive once."""
    pair = Pair(version=version)

    def reply(side: str, event: MessageReceived) -> None:
        answer = LOCKSTEP_REPLIES.get((side, event.body))
        if answer is not None:
            pair.sides[answer[0]].transport.send(answer[1], now=pair.now)

    pair.on_message = reply
    count = 0

    def drop(datagram: Datagram) -> bool:
        nonlocal count
        count += 1
        return count == position + 1

    pair.send("a", b"M1")
    pair.run(drop=drop)
    assert count > position, "the scenario has fewer datagrams than the position to drop"
    assert pair.sides["b"].bodies == [b"M1", b"M3"]
    assert pair.sides["a"].bodies == [b"M2"]
    assert pair.a.idle and pair.b.idle
    assert not pair.sides["a"].failed and not pair.sides["b"].failed


@pytest.mark.parametrize("position", range(4))
def test_window_of_four_survives_loss_of_each_message(position: int) -> None:
    pair = Pair()
    warm_up(pair)
    assert pair.a.congestion.limit == 4
    for i in range(4):
        pair.a.send(b"W%d" % i, now=pair.now)
    pair.flush()
    assert len(pair.wire) == 4
    pair.drop(position)
    pair.run()
    assert pair.sides["b"].bodies == [b"W0", b"W1", b"W2", b"W3"]
    assert pair.b.counters.out_of_order == 3 - position
    assert pair.a.counters.retransmitted >= 1


def test_lost_ack_causes_retransmission_that_is_reacked() -> None:
    """RFC 2661 Appendix B.2: the duplicate is discarded and a ZLB sent at once."""
    pair = Pair()
    pair.send("a", b"ICRQ")
    pair.deliver()
    pair.advance()  # b's ack delay expires
    zlb = pair.drop()
    assert zlb.is_zlb
    assert pair.advance() == 1.0  # a retransmits after the initial timeout
    retransmit = pair.deliver()
    assert retransmit.header.ns == 0
    assert pair.b.counters.duplicates == 1
    assert len(pair.wire) == 1 and pair.wire[0].is_zlb  # re-acknowledged, no delay
    pair.deliver()
    assert pair.sides["b"].bodies == [b"ICRQ"]
    assert pair.sides["a"].acked == [0]
    assert pair.next_timer() is None


# ---------------------------------------------------- reorder, duplication


def test_reordered_messages_are_delivered_in_order() -> None:
    pair = Pair()
    warm_up(pair)
    for i in range(4):
        pair.a.send(b"R%d" % i, now=pair.now)
    pair.flush()
    for index in (3, 1, 1, 0):  # wire order R3, R1, R2, R0
        pair.deliver(index)
    assert pair.sides["b"].bodies == [b"R0", b"R1", b"R2", b"R3"]
    assert pair.b.counters.out_of_order == 3
    assert pair.b.next_nr == pair.a.next_ns


def test_duplicates_are_dropped_and_acknowledged_immediately() -> None:
    pair = Pair(config=TransportConfig(ack_delay=0.5))
    pair.send("a", b"once")
    pair.deliver(keep=True)
    assert pair.wire and not pair.wire[-1].is_zlb  # no ZLB yet: acknowledgement delayed
    pair.deliver(0)  # the same datagram again
    assert pair.sides["b"].bodies == [b"once"]
    assert pair.b.counters.duplicates == 1
    assert pair.wire[-1].is_zlb and pair.wire[-1].header.nr == 1


def test_duplicate_of_held_out_of_order_message() -> None:
    pair = Pair()
    warm_up(pair)
    pair.a.send(b"x0", now=pair.now)
    pair.a.send(b"x1", now=pair.now)
    pair.flush()
    pair.deliver(1, keep=True)
    pair.deliver(1)
    assert pair.b.counters.duplicates == 1 and pair.b.counters.out_of_order == 1
    pair.deliver(0)
    assert pair.sides["b"].bodies == [b"x0", b"x1"]


def test_message_beyond_receive_window_is_dropped_not_queued() -> None:
    pair = Pair(config_b=TransportConfig(receive_window=2))
    warm_up(pair)
    for i in range(4):
        pair.a.send(b"y%d" % i, now=pair.now)
    pair.flush()
    pair.deliver(3)  # two beyond the expected Ns: outside a window of 2
    pair.deliver(2)
    assert pair.b.counters.out_of_window == 2
    pair.run()
    assert pair.sides["b"].bodies == [b"y0", b"y1", b"y2", b"y3"]


# ------------------------------------------------------- acknowledgements


def test_ack_is_piggybacked_on_a_reply() -> None:
    pair = Pair(config=TransportConfig(ack_delay=0.2))
    pair.send("a", b"ping")
    pair.deliver()
    assert pair.b.get_timer() == pytest.approx(0.2)  # the ack delay
    pair.advance(0.1)
    pair.send("b", b"pong")
    reply = pair.deliver()
    assert not reply.is_zlb and reply.header.nr == 1
    pair.advance(0.3)
    assert all(not d.is_zlb for d in pair.log if d.dest == "a")
    assert pair.sides["a"].acked == [0]


def test_zlb_sent_exactly_after_ack_delay() -> None:
    pair = Pair(config=TransportConfig(ack_delay=0.05))
    pair.send("a", b"m")
    pair.deliver()
    assert pair.wire == []
    assert pair.advance() == pytest.approx(0.05)
    assert pair.wire[0].is_zlb
    assert pair.b.counters.zlb_sent == 1


def test_zero_ack_delay_acknowledges_at_once() -> None:
    pair = Pair(config=TransportConfig(ack_delay=0))
    pair.send("a", b"m")
    pair.deliver()
    assert pair.wire[0].is_zlb


def test_zlb_ns_is_next_unsent_and_takes_no_slot() -> None:
    pair = Pair()
    pair.send("b", b"first")
    pair.deliver()
    pair.advance()  # a's ZLB
    pair.deliver()
    pair.send("a", b"m")
    pair.deliver()
    pair.advance()
    zlb = pair.deliver()
    assert zlb.is_zlb and zlb.header.ns == 1 and zlb.header.nr == 1
    assert pair.b.next_ns == 1


def test_nr_acknowledging_unsent_message_is_dropped() -> None:
    t = Transport(version=2, local_id=1, peer_id=2)
    bogus = build_control_message(version=2, tunnel_id=1, ns=0, nr=5, body=b"zz")
    t.receive(bogus, 0.0)
    assert t.counters.bad_nr == 1 and t.next_event() is None and t.next_nr == 0


def test_cwnd_grows_and_never_exceeds_peer_window() -> None:
    pair = Pair()
    for i in range(40):
        pair.a.send(b"c%d" % i, now=pair.now)
    pair.flush()
    assert pair.a.in_flight == 1  # Appendix A: CWND starts at one
    seen = []
    while not (pair.a.idle and pair.b.idle):
        seen.append(pair.a.in_flight)
        if pair.wire:
            pair.deliver()
        else:
            pair.advance()
    assert max(seen) == 4 and 2 in seen and 3 in seen
    assert len(pair.sides["b"].bodies) == 40


def test_set_peer_window_limits_messages_in_flight() -> None:
    pair = Pair()
    pair.a.set_peer_window(2)
    warm_up(pair)
    for i in range(5):
        pair.a.send(b"w%d" % i, now=pair.now)
    pair.flush()
    assert len(pair.wire) == 2 and pair.a.queued == 3
    pair.run()
    assert len(pair.sides["b"].bodies) == 5


def test_window_exhaustion_waits_for_ack() -> None:
    """With every acknowledgement lost, nothing beyond the window is ever sent."""
    pair = Pair()
    warm_up(pair)
    for i in range(10):
        pair.a.send(b"e%d" % i, now=pair.now)
    pair.flush()
    assert len(pair.wire) == 4
    pair.run(drop=lambda d: d.dest == "a", until=100)
    assert {d.header.ns for d in pair.log if d.dest == "b" and d.data[12:13] == b"e"} == {
        8,
        9,
        10,
        11,
    }
    assert pair.sides["a"].failed
    assert pair.sides["b"].bodies == [b"e0", b"e1", b"e2", b"e3"]


def test_timeout_collapses_congestion_window() -> None:
    pair = Pair()
    warm_up(pair)
    assert pair.a.congestion.cwnd == 4
    pair.a.send(b"lost", now=pair.now)
    pair.flush()
    pair.drop()
    pair.advance()
    assert pair.a.congestion.cwnd == 1 and pair.a.congestion.ssthresh == 2


# ------------------------------------------------------------ wrap-around


def test_sequence_numbers_wrap_past_65535() -> None:
    config = TransportConfig(ack_delay=0, receive_window=64, peer_window=64)
    a = Transport(version=2, local_id=1, peer_id=2, config=config)
    b = Transport(version=2, local_id=2, peer_id=1, config=config)
    total = 65530 + 64
    delivered = 0
    sent = 0
    while delivered < 65530:
        while sent < min(65530, delivered + 256):
            a.send(sent.to_bytes(4, "big"), now=0.0)
            sent += 1
        for datagram in a.datagrams_to_send(0.0):
            b.receive(datagram, 0.0)
        for datagram in b.datagrams_to_send(0.0):
            a.receive(datagram, 0.0)
        while (event := b.next_event()) is not None:
            assert isinstance(event, MessageReceived)
            assert int.from_bytes(event.body, "big") == delivered
            delivered += 1
        while a.next_event() is not None:
            pass
    # Now close to the wrap: reorder and drop messages across 65535 -> 0.
    assert a.idle and b.next_nr == delivered
    while sent < total:
        a.send(sent.to_bytes(4, "big"), now=0.0)
        sent += 1
    window = a.datagrams_to_send(0.0)
    assert len(window) == 64
    ns_values = [parse_control_header(d).ns for d in window]
    assert 65535 in ns_values and 0 in ns_values
    for datagram in reversed(window[1:]):
        b.receive(datagram, 0.0)
    assert b.next_event() is None  # all held behind the first
    b.receive(window[0], 0.0)
    bodies = []
    while (event := b.next_event()) is not None:
        assert isinstance(event, MessageReceived)
        bodies.append(int.from_bytes(event.body, "big"))
    assert bodies == list(range(delivered, delivered + 64))
    for datagram in b.datagrams_to_send(1.0):
        a.receive(datagram, 1.0)
    assert a.in_flight == 0 and b.counters.duplicates == 0


# ------------------------------------------------------- back-off, failure


def transmissions_until_failure(version: int, config: TransportConfig) -> tuple[list[float], float]:
    pair = Pair(version=version, config=config)
    pair.send("a", b"into the void")
    times: list[float] = []
    while not pair.sides["a"].failed:
        times.extend(pair.now for _ in pair.wire)
        pair.wire.clear()
        assert pair.advance() is not None
    assert pair.a.state is TransportState.FAILED
    return times, pair.now


def test_backoff_timings_v2_default() -> None:
    times, failed_at = transmissions_until_failure(2, TransportConfig())
    assert times == [0.0, 1.0, 3.0, 7.0, 15.0, 23.0]  # 1, 2, 4, 8, 8 (cap), 5 retries
    assert failed_at == 31.0  # RFC 3931 4.2: the full cycle is 1+2+4+8+8+8


def test_backoff_timings_v3_default() -> None:
    times, failed_at = transmissions_until_failure(3, TransportConfig())
    assert times == [0.0, 1.0, 3.0, 7.0, 15.0, 23.0, 31.0, 39.0, 47.0, 55.0, 63.0]
    assert failed_at == 71.0


def test_backoff_timings_configured() -> None:
    config = TransportConfig(initial_timeout=0.5, max_timeout=16.0, max_retries=6)
    times, failed_at = transmissions_until_failure(2, config)
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert failed_at == 47.5


def test_retransmission_carries_updated_nr() -> None:
    pair = Pair()
    pair.send("a", b"question")
    pair.drop()
    pair.send("b", b"unrelated")
    pair.deliver()  # a now expects Ns 1 from b
    pair.wire.clear()
    pair.advance(1.0)
    retransmit = next(d for d in pair.wire if not d.is_zlb and d.dest == "b")
    assert retransmit.header.ns == 0 and retransmit.header.nr == 1


def test_failure_event_and_inert_afterwards() -> None:
    pair = Pair(config=TransportConfig(max_retries=1))
    pair.send("a", b"x")
    pair.drop()
    pair.advance()
    pair.drop()
    pair.advance()
    failures = [e for e in pair.sides["a"].events if isinstance(e, TransportFailed)]
    assert len(failures) == 1 and failures[0].ns == 0
    assert "1 retransmissions" in failures[0].reason
    assert pair.a.get_timer() is None and pair.a.datagrams_to_send(99.0) == []
    with pytest.raises(LocalProtocolError):
        pair.a.send(b"more", now=99.0)
    pair.a.receive(build_control_message(version=2, tunnel_id=1, ns=0, nr=0, body=b"l8"), 99.0)
    assert pair.a.counters.ignored == 1 and pair.a.next_event() is None


def test_max_retries_zero_fails_after_first_timeout() -> None:
    times, failed_at = transmissions_until_failure(2, TransportConfig(max_retries=0))
    assert times == [0.0] and failed_at == 1.0


# ------------------------------------------------------------------ HELLO


def test_hello_after_idle_interval_and_acknowledged() -> None:
    """A quiescent tunnel must stay up: each HELLO is acknowledged (unlike go-l2tp)."""
    pair = Pair(config=TransportConfig(hello_interval=60.0))
    pair.send("a", b"SCCRQ")
    pair.run()
    assert pair.next_timer() == pytest.approx(60.0)  # both idle since t=0
    hello_times: list[float] = []
    while (timer := pair.next_timer()) is not None and timer <= 1000.0:
        pair.advance(timer)
        hello_times.extend(pair.now for d in pair.wire if d.data[12:] == HELLO_BODY)
        pair.deliver_all()
    assert all(not s.failed for s in pair.sides.values())
    assert pair.a.state is TransportState.OPEN and pair.b.state is TransportState.OPEN
    # b last heard a at 0.0, a heard b's ZLB at 0.05: b says HELLO at exactly 60 s.
    # That resets a's idle timer, so the sides take turns: one HELLO per interval.
    assert hello_times == [60.0 * i for i in range(1, 17)]
    assert pair.b.counters.hello_sent == pair.a.counters.hello_sent == 8


def test_hello_timing_exact() -> None:
    t = Transport(version=3, local_id=1, peer_id=2, config=TransportConfig(hello_interval=60.0))
    t.note_activity(10.0)
    assert t.get_timer() == 70.0
    t.handle_timer(69.9)
    assert t.datagrams_to_send(69.9) == []
    t.handle_timer(70.0)
    (hello,) = t.datagrams_to_send(70.0)
    assert hello[12:] == HELLO_BODY and t.counters.hello_sent == 1
    # Acknowledged: the next HELLO is one interval after the last thing heard.
    t.receive(build_control_message(version=3, tunnel_id=1, ns=0, nr=1), 70.5)
    assert t.get_timer() == 130.5


def test_hello_clock_starts_at_first_service_of_a_silent_transport() -> None:
    """A quiescent tunnel that never hears from its peer must still probe it (and fail)."""
    config = TransportConfig(hello_interval=0.5, initial_timeout=0.2, max_retries=2)
    t = Transport(version=3, local_id=1, peer_id=2, config=config)
    assert t.get_timer() is None
    assert t.datagrams_to_send(100.0) == []
    assert t.get_timer() == 100.5
    t.handle_timer(100.5)
    (hello,) = t.datagrams_to_send(100.5)
    assert hello[12:] == HELLO_BODY
    now = 100.5
    while (timer := t.get_timer()) is not None:
        now = timer
        t.handle_timer(now)
        t.datagrams_to_send(now)
    assert t.state is TransportState.FAILED and now == pytest.approx(100.5 + 0.2 + 0.4 + 0.8)


def test_hello_jitter_from_injected_random() -> None:
    draws = iter([0.5, 0.25])
    t = Transport(
        version=3,
        local_id=1,
        config=TransportConfig(hello_interval=60.0, hello_jitter=4.0),
        random=lambda: next(draws),
    )
    t.note_activity(0.0)
    assert t.get_timer() == 62.0
    t.handle_timer(62.0)
    t.datagrams_to_send(62.0)
    t.receive(build_control_message(version=3, tunnel_id=1, ns=0, nr=1), 63.0)
    assert t.get_timer() == 63.0 + 60.0 + 4.0 * 0.25  # a fresh draw after each HELLO


def test_hello_jitter_requires_random() -> None:
    with pytest.raises(ValueError, match="random"):
        Transport(version=3, local_id=1, config=TransportConfig(hello_interval=60, hello_jitter=1))


def test_no_hello_while_messages_in_flight() -> None:
    config = TransportConfig(hello_interval=2.0, max_retries=10)
    t = Transport(version=2, local_id=1, peer_id=2, config=config)
    t.send(b"unanswered", now=0.0)
    t.datagrams_to_send(0.0)
    now = 0.0
    while (deadline := t.get_timer()) is not None and deadline < 20.0:
        now = deadline
        t.handle_timer(now)
        t.datagrams_to_send(now)
    assert t.counters.hello_sent == 0 and t.counters.retransmitted > 0


def test_hello_off_by_default() -> None:
    t = Transport(version=3, local_id=1)
    t.note_activity(0.0)
    assert t.get_timer() is None


# ------------------------------------------------------------- L2TPv3 ACK


def test_v3_explicit_ack_message_acknowledges() -> None:
    t = Transport(version=3, local_id=7, peer_id=9)
    t.send(b"\x80\x08\x00\x00\x00\x00\x00\x01", now=0.0)
    t.datagrams_to_send(0.0)
    t.receive(build_control_message(version=3, tunnel_id=7, ns=0, nr=1, body=ACK_V3), 0.1)
    assert isinstance(t.next_event(), AckReceived)
    assert t.next_event() is None  # an ACK is not delivered upward
    assert t.next_nr == 0 and t.counters.zlb_received == 1 and t.idle


def test_v3_ack_body_and_seal_applied_at_every_transmission() -> None:
    sealed: list[bytes] = []

    def seal(datagram: bytes) -> bytes:
        sealed.append(datagram)
        return datagram + b"\x00" * 0  # a real hook would fill a Message Digest AVP

    pair = Pair(version=3, ack_body=ACK_V3, seal=seal)
    pair.send("a", b"msg")
    pair.drop()
    pair.advance()  # retransmission, sealed again
    pair.deliver()
    pair.advance()  # b acknowledges with an ACK message, not a ZLB
    ack = pair.deliver()
    assert ack.data[12:] == ACK_V3 and is_explicit_ack(ack.data[12:])
    assert [parse_control_header(d).nr for d in sealed] == [0, 0, 1]
    assert sealed[-1][12:] == ACK_V3
    assert pair.a.idle


def test_ack_body_must_be_v3_ack() -> None:
    with pytest.raises(ValueError):
        Transport(version=2, local_id=1, ack_body=ACK_V3)
    with pytest.raises(ValueError):
        Transport(version=3, local_id=1, ack_body=HELLO_BODY)


# --------------------------------------------------------------- peer IDs


def test_sccrq_goes_to_tunnel_zero_and_retransmits_to_assigned_id() -> None:
    a = Transport(version=2, local_id=11)
    a.send(b"SCCRQ", now=0.0)
    (first,) = a.datagrams_to_send(0.0)
    assert parse_control_header(first).tunnel_id == 0
    a.set_peer_id(22)
    a.handle_timer(1.0)
    (again,) = a.datagrams_to_send(1.0)
    assert parse_control_header(again).tunnel_id == 22


def test_messages_to_tunnel_zero_accepted_others_misdirected() -> None:
    t = Transport(version=2, local_id=5)
    t.receive(build_control_message(version=2, tunnel_id=0, ns=0, nr=0, body=b"rq"), 0.0)
    t.receive(build_control_message(version=2, tunnel_id=6, ns=1, nr=0, body=b"xx"), 0.0)
    assert isinstance(t.next_event(), MessageReceived) and t.next_event() is None
    assert t.counters.misdirected == 1


def test_v2_session_id_in_header() -> None:
    pair = Pair()
    pair.send("a", b"ICRQ", session_id=0x1234)
    datagram = pair.deliver()
    assert datagram.header.session_id == 0x1234
    event = pair.sides["b"].events[0]
    assert isinstance(event, MessageReceived) and event.header.session_id == 0x1234


# ------------------------------------------------------------- close-wait


def test_close_wait_reacks_retransmitted_stopccn() -> None:
    """RFC 2661 5.7 / RFC 3931 3.3.2: the StopCCN receiver acks retransmissions for 31 s."""
    pair = Pair()
    pair.send("a", b"StopCCN")
    pair.deliver()
    pair.b.begin_close(pair.now)
    pair.a.begin_close(pair.now)
    pair.advance()
    pair.drop()  # b's acknowledgement is lost
    pair.advance(1.0)  # a retransmits
    pair.deliver()
    assert pair.b.counters.duplicates == 1 and pair.wire[0].is_zlb
    pair.deliver()
    assert pair.a.in_flight == 0
    assert pair.advance() == 31.0
    assert pair.sides["a"].closed and pair.sides["b"].closed
    assert pair.next_timer() is None


def test_close_wait_refuses_new_sends_and_can_end_when_acked() -> None:
    pair = Pair()
    pair.send("a", b"StopCCN")
    pair.a.begin_close(0.0, end_when_acked=True)
    with pytest.raises(LocalProtocolError):
        pair.a.send(b"late", now=0.0)
    with pytest.raises(LocalProtocolError):
        pair.a.begin_close(0.0)
    pair.deliver()
    pair.advance()
    pair.deliver()
    closed = [e for e in pair.sides["a"].events if isinstance(e, TransportClosed)]
    assert closed and closed[0].reason == "all messages acknowledged"
    assert pair.a.state is TransportState.CLOSED


def test_close_wait_with_unanswered_stopccn_ends_closed_not_failed() -> None:
    pair = Pair()
    pair.send("a", b"StopCCN")
    pair.a.begin_close(0.0)
    pair.run(drop=lambda d: True)
    assert pair.sides["a"].closed and not pair.sides["a"].failed
    assert pair.now == 31.0


# -------------------------------------------------- malformed and misuse


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc8",
        b"\xc8\x02\x00",
        bytes.fromhex("c8020064000100000000"),  # length beyond the datagram
        bytes.fromhex("c803000c0000000100000000"),  # version 3 on a v2 transport
        bytes.fromhex("c002000c0001000000000000"),  # S bit clear
        bytes.fromhex("c80f000c0001000000000000"),  # unknown version
    ],
)
def test_malformed_datagrams_are_counted(data: bytes) -> None:
    t = Transport(version=2, local_id=1)
    t.receive(data, 0.0)
    assert t.next_event() is None and t.idle
    assert t.counters.malformed + t.counters.data_on_control == 1


def test_data_message_on_control_channel_is_counted() -> None:
    t = Transport(version=2, local_id=1)
    t.receive(bytes.fromhex("0002000100020000ff03c021"), 0.0)  # PPP LCP before the ICCN ack
    assert t.counters.data_on_control == 1 and t.next_event() is None


@given(st.binary(max_size=64))
def test_receive_never_raises(data: bytes) -> None:
    t = Transport(version=2, local_id=1, peer_id=2)
    t.receive(data, 0.0)
    t.datagrams_to_send(0.0)


@given(st.binary(min_size=12, max_size=40))
def test_receive_never_raises_with_control_bits(data: bytes) -> None:
    t = Transport(version=3, local_id=0, peer_id=2)
    t.send(b"x", now=0.0)
    t.datagrams_to_send(0.0)
    t.receive(bytes([0xC8, 0x03]) + data[2:], 0.0)
    t.handle_timer(5.0)
    t.datagrams_to_send(5.0)


def test_send_misuse_raises() -> None:
    t2 = Transport(version=2, local_id=1)
    t3 = Transport(version=3, local_id=1)
    with pytest.raises(LocalProtocolError):
        t2.send(b"", now=0.0)
    with pytest.raises(LocalProtocolError):
        t3.send(b"x", session_id=1, now=0.0)
    with pytest.raises(LocalProtocolError):
        t2.send(b"x", session_id=0x10000, now=0.0)
    with pytest.raises(ValueError):
        t2.set_peer_id(0x10000)
    t3.set_peer_id(0x10000)
    with pytest.raises(ValueError):
        Transport(version=4, local_id=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_timeout": 0},
        {"initial_timeout": 2, "max_timeout": 1},
        {"max_retries": -1},
        {"receive_window": 0},
        {"receive_window": 40000},
        {"peer_window": 0},
        {"ack_delay": -1},
        {"hello_interval": 0},
        {"hello_jitter": -1},
    ],
)
def test_config_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TransportConfig(**kwargs)  # type: ignore[arg-type]


def test_config_defaults() -> None:
    config = TransportConfig()
    assert config.retries_for(2) == 5 and config.retries_for(3) == 10
    assert config.retransmission_cycle(2) == 31.0
    assert config.retransmission_cycle(3) == 71.0


def test_events_validate() -> None:
    from l2tp.protocol.header import ControlHeader

    with pytest.raises(ValueError):
        MessageReceived(header=ControlHeader(version=2, tunnel_id=1), body=b"")


def test_ack_sent_at_once_when_threshold_reached() -> None:
    """A one-way burst is acknowledged every second message, not once per delay."""
    pair = Pair(config=TransportConfig(ack_delay=0.5))
    warm_up(pair)
    pair.a.send(b"one", now=pair.now)
    pair.a.send(b"two", now=pair.now)
    pair.flush()
    pair.deliver(0)
    assert pair.wire and all(d.dest == "b" for d in pair.wire)  # first one: delayed
    pair.deliver(0)
    (zlb,) = pair.wire
    assert zlb.is_zlb and zlb.header.nr == pair.b.next_nr


def test_ack_threshold_never_exceeds_receive_window() -> None:
    pair = Pair(config=TransportConfig(ack_delay=0.5, receive_window=1, ack_threshold=8))
    pair.send("a", b"only")
    pair.deliver()
    assert pair.wire[0].is_zlb


# ------------------------------------------------------------------ resync


@pytest.mark.parametrize("resync", [True, False])
def test_resync_keeps_a_restarted_side_in_step_with_the_old_one(resync: bool) -> None:
    """Quiescent tunnels (docs/ql2tpd.md): side a restarts at Ns = Nr = 0 while b keeps
    its state. With ``resync`` every HELLO of each side is acknowledged exactly; without
    it (the control case) the old side holds the newcomer's HELLOs and one side fails."""
    config = TransportConfig(resync=resync, max_retries=3, initial_timeout=0.5)
    pair = Pair(version=3, config=config)
    warm_up(pair, "a", 5)
    warm_up(pair, "b", 3)
    assert pair.b.next_nr == 5 and pair.b.next_ns == 3
    pair.sides["a"] = Side(Transport(version=3, local_id=1, peer_id=2, config=config))
    a, b = pair.sides["a"], pair.sides["b"]
    for _ in range(3):
        if a.failed or b.failed:
            break
        pair.send("a", HELLO_BODY)
        pair.send("b", HELLO_BODY)
        pair.run(until=pair.now + 30)
    if resync:
        assert not a.failed and not b.failed
        assert a.acked == [0, 1, 2] and b.acked == [3, 4, 5]
        assert len(a.bodies) == 3 and len(b.bodies) == 3
        assert a.transport.counters.resynced == 1 and b.transport.counters.resynced == 1
    else:
        assert a.failed or b.failed


def test_resync_ignores_an_nr_beyond_what_was_sent_but_takes_the_message() -> None:
    t = Transport(version=3, local_id=1, peer_id=2, config=TransportConfig(resync=True))
    stale = build_control_message(version=3, tunnel_id=1, ns=40, nr=9, body=HELLO_BODY)
    t.receive(stale, 0.0)
    event = t.next_event()
    assert isinstance(event, MessageReceived) and event.header.ns == 40
    assert t.counters.bad_nr == 1 and t.counters.resynced == 1 and t.next_nr == 41
    (ack,) = t.datagrams_to_send(1.0)  # the acknowledgement names exactly that HELLO
    assert parse_control_header(ack).nr == 41
