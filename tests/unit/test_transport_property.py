"""Property: under any schedule of loss, reordering, duplication and time, nothing is lost silently.

Hypothesis drives a pair of transports through random interleavings of
submissions, deliveries (in any wire order), drops, duplications and timer
firings, then lets the network heal. Whatever happened, for each direction:

* the receiver delivered a prefix of what the sender submitted, each message
  once and in order (checked after every step, not just at the end);
* after healing, either everything submitted was delivered, or the sender
  reported :class:`TransportFailed` after its retries;
* the pair always settles: no side keeps state forever (no wedge).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2tp.protocol.transport import HELLO_BODY, AckReceived, TransportConfig, TransportState

from .test_transport_pair import Datagram, Pair

SIDE = st.sampled_from(["a", "b"])
ACTION = st.one_of(
    st.tuples(st.just("send"), SIDE),
    st.tuples(st.just("deliver"), st.integers(0, 15)),
    st.tuples(st.just("drop"), st.integers(0, 15)),
    st.tuples(st.just("duplicate"), st.integers(0, 15)),
    st.tuples(st.just("advance"), st.just(0)),
    st.tuples(st.just("wait"), st.integers(1, 300)),
)


def check_prefix(pair: Pair, submitted: dict[str, list[bytes]]) -> None:
    for sender, receiver in (("a", "b"), ("b", "a")):
        delivered = [b for b in pair.sides[receiver].bodies if b != HELLO_BODY]
        assert delivered == submitted[sender][: len(delivered)]
        acked = pair.sides[sender].acked
        assert acked == list(range(len(acked)))  # contiguous from Ns 0
        assert len(acked) <= len(pair.sides[receiver].bodies)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    version=st.sampled_from([2, 3]),
    window_a=st.integers(1, 6),
    window_b=st.integers(1, 6),
    max_retries=st.integers(0, 4),
    hello=st.booleans(),
    actions=st.lists(ACTION, max_size=80),
)
def test_exactly_once_in_order_or_reported_failure(
    version: int,
    window_a: int,
    window_b: int,
    max_retries: int,
    hello: bool,
    actions: list[tuple[str, int | str]],
) -> None:
    def config(own: int, peer: int) -> TransportConfig:
        return TransportConfig(
            max_retries=max_retries,
            receive_window=own,
            peer_window=peer,
            hello_interval=5.0 if hello else None,
        )

    pair = Pair(
        version=version,
        config=config(window_a, window_b),
        config_b=config(window_b, window_a),
    )
    submitted: dict[str, list[bytes]] = {"a": [], "b": []}
    for action, arg in actions:
        if action == "send":
            side = str(arg)
            if pair.sides[side].transport.state is TransportState.OPEN:
                body = b"%s-%d" % (side.encode(), len(submitted[side]))
                submitted[side].append(body)
                pair.send(side, body)
        elif action == "advance":
            pair.advance()
        elif action == "wait":
            target = pair.now + int(arg) / 100
            while (timer := pair.next_timer()) is not None and timer <= target:
                pair.advance(timer)
            pair.advance(target)
        elif pair.wire:
            index = int(arg) % len(pair.wire)
            if action == "deliver":
                pair.deliver(index)
            elif action == "drop":
                pair.drop(index)
            else:
                datagram = pair.wire[index]
                pair.wire.insert(index, Datagram(datagram.dest, datagram.data))
                pair.deliver(index)
        check_prefix(pair, submitted)

    pair.run()  # the network heals: everything in order, nothing lost
    check_prefix(pair, submitted)
    for sender, receiver in (("a", "b"), ("b", "a")):
        end = pair.sides[sender]
        delivered = [b for b in pair.sides[receiver].bodies if b != HELLO_BODY]
        assert end.failed or delivered == submitted[sender], (sender, end.events)
        transport = end.transport
        assert transport.idle or transport.state in (TransportState.FAILED, TransportState.CLOSED)
        if not end.failed:
            assert len(end.acked) >= len(submitted[sender])
        assert sum(isinstance(e, AckReceived) for e in end.events) == len(end.acked)


LOSSLESS_ACTION = st.one_of(
    st.tuples(st.just("send"), SIDE),
    st.tuples(st.just("deliver"), st.integers(0, 15)),
    st.tuples(st.just("duplicate"), st.integers(0, 15)),
)


@settings(max_examples=200, deadline=None)
@given(
    version=st.sampled_from([2, 3]),
    window=st.integers(1, 6),
    actions=st.lists(LOSSLESS_ACTION, max_size=80),
)
def test_reordering_and_duplication_alone_cost_no_retransmission(
    version: int, window: int, actions: list[tuple[str, int | str]]
) -> None:
    """Without loss, and with every datagram delivered before the clock moves,
    out-of-order and duplicated arrivals are absorbed by the receive queue: no
    timeout fires, nothing is retransmitted, everything arrives once and in order.
    """
    config = TransportConfig(receive_window=window, peer_window=window)
    pair = Pair(version=version, config=config)
    submitted: dict[str, list[bytes]] = {"a": [], "b": []}
    for action, arg in actions:
        if action == "send":
            side = str(arg)
            body = b"%s-%d" % (side.encode(), len(submitted[side]))
            submitted[side].append(body)
            pair.send(side, body)
        elif pair.wire:
            index = int(arg) % len(pair.wire)
            if action == "duplicate":
                datagram = pair.wire[index]
                pair.wire.insert(index, Datagram(datagram.dest, datagram.data))
            pair.deliver(index)
        else:
            pair.advance()
        check_prefix(pair, submitted)
    while not (pair.a.idle and pair.b.idle):
        if pair.wire:
            pair.deliver(len(pair.wire) - 1)  # newest first: maximal reordering
        else:
            pair.advance()
    assert pair.sides["b"].bodies == submitted["a"]
    assert pair.sides["a"].bodies == submitted["b"]
    assert pair.a.counters.retransmitted == pair.b.counters.retransmitted == 0
