"""Every (tunnel state, input) pair of RFC 2661 7.2.1, driven through a real :class:`Tunnel`.

Not the table lookup: a real sans-IO tunnel is put in each state through its public API
and messages built with the codec (:mod:`tests.unit.scripted`), then fed one input, and
the test checks the state it ends in, what it sent (message types, StopCCN Result and
Error Codes) and the events it reported against :data:`EXPECTED`, written from the RFC.
The last test checks the table (:func:`lookup`) agrees with what the tunnel did.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from l2tp.protocol.avp import Avp
from l2tp.protocol.constants import AvpType, MessageType, StopCcnResult
from l2tp.protocol.errors import LocalProtocolError
from l2tp.protocol.events import Role
from l2tp.protocol.listener import ListenerConfig, TunnelListener
from l2tp.protocol.message import ControlMessage, parse_message, serialize_message
from l2tp.protocol.tunnel_fsm import TunnelInput, TunnelState, lookup

from .scripted import PEER_ADDRESS, PEER_TUNNEL_ID, ScriptedPeer, session_messages, walk_config

S = TunnelState
I = TunnelInput  # noqa: E741

# ------------------------------------------------------------------ the states


def _idle(peer: ScriptedPeer) -> None:
    pass


def _wait_ctl_reply(peer: ScriptedPeer) -> None:
    peer.tunnel.connect(peer.now)


def _wait_ctl_conn(peer: ScriptedPeer) -> None:
    peer.accept_sccrq()


def _established(peer: ScriptedPeer) -> None:
    peer.establish()


def _closing(peer: ScriptedPeer) -> None:
    peer.establish()
    peer.tunnel.close(peer.now)


def _closed(peer: ScriptedPeer) -> None:
    _closing(peer)
    peer.run_timers(peer.now + 100, acknowledge=True)


SETUP: dict[TunnelState, Callable[[ScriptedPeer], None]] = {
    S.IDLE: _idle,
    S.WAIT_CTL_REPLY: _wait_ctl_reply,
    S.WAIT_CTL_CONN: _wait_ctl_conn,
    S.ESTABLISHED: _established,
    S.CLOSING: _closing,
    S.CLOSED: _closed,
}

# ------------------------------------------------------------------ the inputs

UNKNOWN_M = Avp(attribute=999, value=b"x", mandatory=True)
PEER_MESSAGES: dict[TunnelInput, ControlMessage] = {
    I.RECV_SCCRQ: ScriptedPeer.scc(MessageType.SCCRQ),
    I.RECV_SCCRP: ScriptedPeer.scc(MessageType.SCCRP),
    I.RECV_SCCCN: ControlMessage(message_type=MessageType.SCCCN),
    I.RECV_STOPCCN: ScriptedPeer.stopccn(StopCcnResult.GENERAL_REQUEST),
    I.RECV_HELLO: ControlMessage.hello(),
    I.RECV_SESSION: session_messages()["ICRQ"],
    I.RECV_UNKNOWN: ControlMessage(message_type=99, mandatory=False),
    I.RECV_BAD: ControlMessage(message_type=MessageType.HELLO, avps=[UNKNOWN_M]),
}
"""One acceptable message per peer input (RECV_BAD: an unknown M-bit AVP, RFC 2661 4.2)."""


TIMED = frozenset({I.TRANSPORT_FAILED, I.TRANSPORT_CLOSED})


def feed(peer: ScriptedPeer, inp: TunnelInput) -> None:
    """Make ``inp`` happen to the tunnel the way it happens in a running daemon.

    LOSE_TIE is the listener's to give (an SCCRQ from the same peer with a lower tie
    breaker): :func:`test_losing_a_tie_through_a_listener` drives it.
    """
    tunnel = peer.tunnel
    if inp is I.OPEN:
        tunnel.connect(peer.now)
    elif inp is I.CLOSE:
        tunnel.close(peer.now, result=StopCcnResult.SHUTTING_DOWN)
    elif inp is I.TRANSPORT_FAILED:
        # The peer goes silent. An established tunnel has nothing in flight until it
        # sends something: a call is placed, and never acknowledged.
        if tunnel.state is S.ESTABLISHED:
            tunnel.open_session(peer.now)
        peer.run_timers(peer.now + 100, acknowledge=False)
    elif inp is I.TRANSPORT_CLOSED:
        # The peer acknowledges everything and a full retransmission cycle passes.
        peer.run_timers(peer.now + 100, acknowledge=True)
    else:
        assert inp is not I.LOSE_TIE
        peer.send(PEER_MESSAGES[inp])
    if inp not in TIMED:
        peer.acknowledge_all()  # what the congestion window held back goes out too


# ------------------------------------------------------------------ the oracle


@dataclass(frozen=True)
class Outcome:
    state: TunnelState
    sent: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    table: bool = True
    """False where the table's row is not what a v2 tunnel does (see the comment there)."""


RAISES = "LocalProtocolError"
"""API misuse in this state: raised at the call site, nothing changes."""

FSM_ERROR = Outcome(S.CLOSING, ("STOPCCN/7",), ("TunnelClosed/7",))
BAD = Outcome(S.CLOSING, ("STOPCCN/2/8",), ("TunnelClosed/2/8",))
OUR_CLOSE = Outcome(S.CLOSING, ("STOPCCN/6",), ("TunnelClosed/6",))
PEER_STOP = Outcome(S.CLOSING, (), ("TunnelClosed/1/peer",))
GONE = ("TunnelClosed/-", "TunnelReleased")


def stays(state: TunnelState, *, table: bool = True) -> Outcome:
    return Outcome(state, table=table)


def _expected() -> dict[tuple[TunnelState, TunnelInput], Outcome | str]:
    """What an LNS tunnel does; :data:`LAC_DIFFERS` has the rows where a LAC differs."""
    e: dict[tuple[TunnelState, TunnelInput], Outcome | str] = {}
    for state in (S.IDLE, S.WAIT_CTL_REPLY, S.WAIT_CTL_CONN, S.ESTABLISHED):
        e[state, I.RECV_STOPCCN] = PEER_STOP  # "Receive StopCCN: Clean up"
        e[state, I.RECV_HELLO] = stays(state)  # 6.5: only resets the peer's idle timer
        e[state, I.RECV_UNKNOWN] = stays(state)  # 4.4.1: no M bit, ignored
        e[state, I.RECV_BAD] = BAD  # 4.2: unknown M-bit AVP, StopCCN 2 / Error 8
        e[state, I.RECV_SESSION] = FSM_ERROR  # 7.1: a call before the tunnel is up
        # A close-wait only starts after a StopCCN, so without one the end of a
        # retransmission cycle (everything acknowledged) changes nothing.
        e[state, I.TRANSPORT_CLOSED] = stays(state, table=False)
        if state is not S.IDLE:
            e[state, I.OPEN] = RAISES
            e[state, I.CLOSE] = OUR_CLOSE
            e[state, I.TRANSPORT_FAILED] = Outcome(S.CLOSED, (), GONE)
            # Only a tunnel waiting for its SCCRP can lose a tie; the listener leaves
            # the others alone (the SCCRQ gets a tunnel of its own).
            e[state, I.LOSE_TIE] = stays(state, table=False)
    e.update(
        {
            # RFC 2661 7.2.1, idle.
            (S.IDLE, I.OPEN): Outcome(S.WAIT_CTL_REPLY, ("SCCRQ",)),
            (S.IDLE, I.CLOSE): Outcome(S.CLOSED, (), GONE),  # nothing was sent
            (S.IDLE, I.RECV_SCCRQ): Outcome(S.WAIT_CTL_CONN, ("SCCRP",)),
            (S.IDLE, I.RECV_SCCRP): FSM_ERROR,
            (S.IDLE, I.RECV_SCCCN): Outcome(S.CLOSED, (), GONE),  # "Clean up"
            # Nothing is in flight in idle: a silent peer cannot make it fail.
            (S.IDLE, I.TRANSPORT_FAILED): stays(S.IDLE, table=False),
            # A listener's tunnels leave idle in connect() or on their SCCRQ.
            (S.IDLE, I.LOSE_TIE): stays(S.IDLE, table=False),
            # wait-ctl-reply (SCCRQ sent).
            (S.WAIT_CTL_REPLY, I.RECV_SCCRQ): FSM_ERROR,  # on this tunnel; ties: listener
            (S.WAIT_CTL_REPLY, I.RECV_SCCRP): Outcome(
                S.ESTABLISHED, ("SCCCN",), ("TunnelEstablished",)
            ),
            (S.WAIT_CTL_REPLY, I.RECV_SCCCN): FSM_ERROR,
            # 4.4.3: the loser "MUST silently discard its tunnel": nothing sent, and an
            # L2TPv2 tunnel is gone at once (the table's close-wait is L2TPv3's).
            (S.WAIT_CTL_REPLY, I.LOSE_TIE): Outcome(S.CLOSED, (), GONE, table=False),
            # wait-ctl-conn (SCCRP sent).
            (S.WAIT_CTL_CONN, I.RECV_SCCRQ): FSM_ERROR,
            (S.WAIT_CTL_CONN, I.RECV_SCCRP): FSM_ERROR,
            (S.WAIT_CTL_CONN, I.RECV_SCCCN): Outcome(S.ESTABLISHED, (), ("TunnelEstablished",)),
            # established.
            (S.ESTABLISHED, I.RECV_SCCRQ): FSM_ERROR,
            (S.ESTABLISHED, I.RECV_SCCRP): FSM_ERROR,
            (S.ESTABLISHED, I.RECV_SCCCN): FSM_ERROR,
            # The ICRQ goes to a new session, which answers (7.4.2).
            (S.ESTABLISHED, I.RECV_SESSION): Outcome(S.ESTABLISHED, ("ICRP",)),
            # The OCRQ of a call placed just before is never acknowledged: the
            # transport gives up, the call and the tunnel go without a StopCCN.
            (S.ESTABLISHED, I.TRANSPORT_FAILED): Outcome(
                S.CLOSED, ("OCRQ",), ("SessionClosed/-", *GONE)
            ),
        }
    )
    for inp in TunnelInput:
        # Close-wait (5.7): acknowledge, send nothing new, until the cycle ends.
        e[S.CLOSING, inp] = stays(S.CLOSING)
        e[S.CLOSED, inp] = stays(S.CLOSED)
    e[S.CLOSING, I.OPEN] = e[S.CLOSED, I.OPEN] = RAISES
    # Either way the close-wait ends (a transport already closing reports retransmissions
    # exhausted as the end of close-wait) and the tunnel is released.
    e[S.CLOSING, I.TRANSPORT_CLOSED] = Outcome(S.CLOSED, (), ("TunnelReleased",))
    e[S.CLOSING, I.TRANSPORT_FAILED] = Outcome(S.CLOSED, (), ("TunnelReleased",))
    return e


EXPECTED = _expected()
LAC_DIFFERS: dict[tuple[TunnelState, TunnelInput], Outcome] = {
    # 7.4.2 is the LNS's: a LAC refuses an ICRQ with CDN 5 and the tunnel carries on.
    (S.ESTABLISHED, I.RECV_SESSION): Outcome(S.ESTABLISHED, ("CDN/5",)),
    # A LAC places incoming calls (7.4.1).
    (S.ESTABLISHED, I.TRANSPORT_FAILED): Outcome(S.CLOSED, ("ICRQ",), ("SessionClosed/-", *GONE)),
}


def expected(role: Role, state: TunnelState, inp: TunnelInput) -> Outcome | str:
    if role is Role.LAC and (state, inp) in LAC_DIFFERS:
        return LAC_DIFFERS[state, inp]
    return EXPECTED[state, inp]


def test_the_oracle_covers_every_pair() -> None:
    assert set(EXPECTED) == {(s, i) for s in TunnelState for i in TunnelInput}


def new_peer(role: Role, state: TunnelState) -> ScriptedPeer:
    peer = ScriptedPeer(walk_config(role))
    SETUP[state](peer)
    assert peer.tunnel.state is state
    peer.take()
    return peer


ROLES = (Role.LNS, Role.LAC)
DIRECT = [(s, i) for s, i in EXPECTED if i is not I.LOSE_TIE]


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
@pytest.mark.parametrize(("state", "inp"), DIRECT, ids=lambda x: x.name)
def test_every_pair_through_a_real_tunnel(role: Role, state: TunnelState, inp: TunnelInput) -> None:
    want = expected(role, state, inp)
    peer = new_peer(role, state)
    if want == RAISES:
        with pytest.raises(LocalProtocolError):
            feed(peer, inp)
        assert peer.tunnel.state is state
        assert peer.take() == ((), ())
        return
    assert isinstance(want, Outcome)
    feed(peer, inp)
    sent, events = peer.take()
    assert (peer.tunnel.state, sent, events) == (want.state, want.sent, want.events)


def listener_tunnel(state: TunnelState) -> ScriptedPeer:
    """A tunnel of a listener with tie breakers on, put in ``state`` by its peer."""
    listener = TunnelListener(
        ListenerConfig(tunnel=walk_config(Role.LNS, tie_breaker=True)),
        random_bytes=random.Random(3).randbytes,
    )
    if state is S.WAIT_CTL_CONN:
        data = serialize_message(ScriptedPeer.scc(MessageType.SCCRQ), version=2, tunnel_id=0)
        listener.receive(data, PEER_ADDRESS, 0.0)
        (tunnel,) = listener.tunnels.values()
        peer = ScriptedPeer(tunnel, listener)
        peer.ns = 1
    else:
        peer = ScriptedPeer(listener.connect(PEER_ADDRESS, 0.0), listener)
    peer.collect()
    if state in (S.ESTABLISHED, S.CLOSING, S.CLOSED):
        peer.send(ScriptedPeer.scc(MessageType.SCCRP))
    if state in (S.CLOSING, S.CLOSED):
        peer.tunnel.close(peer.now)
    if state is S.CLOSED:
        peer.run_timers(peer.now + 100, acknowledge=True)
    assert peer.tunnel.state is state
    peer.take()
    return peer


@pytest.mark.parametrize("state", [s for s in TunnelState if s is not S.IDLE], ids=lambda s: s.name)
def test_losing_a_tie_through_a_listener(state: TunnelState) -> None:
    """LOSE_TIE: the peer's SCCRQ carries a lower tie breaker than ours (RFC 2661 4.4.3)."""
    peer = listener_tunnel(state)
    ours = peer.tunnel
    assert ours.tie_breaker is not None and ours.tie_breaker > bytes(8)
    lower = Avp(attribute=AvpType.TIE_BREAKER, value=bytes(8))
    sccrq = ScriptedPeer.scc(MessageType.SCCRQ, lower, tunnel_id=PEER_TUNNEL_ID + 1)
    assert peer.listener is not None
    peer.listener.receive(serialize_message(sccrq, version=2, tunnel_id=0), PEER_ADDRESS, 1.0)
    sent, events = peer.take()
    want = EXPECTED[state, I.LOSE_TIE]
    assert isinstance(want, Outcome)
    assert (ours.state, sent, events) == (want.state, want.sent, want.events)
    # Whether ours lost or not, the peer's SCCRQ got a tunnel of its own, which answers.
    (theirs,) = [t for t in peer.listener.tunnels.values() if t is not ours]
    assert theirs.state is S.WAIT_CTL_CONN
    (answer,) = theirs.datagrams_to_send(1.0)
    message = parse_message(answer)[1]
    assert message is not None and message.name == "SCCRP"


def test_the_table_agrees_with_the_tunnel() -> None:
    """:func:`lookup` gives the state the real tunnel ended in, except the rows marked."""
    for (state, inp), want in EXPECTED.items():
        if want == RAISES:
            with pytest.raises(LocalProtocolError):
                lookup(state, inp)
            continue
        assert isinstance(want, Outcome)
        if want.table:
            assert lookup(state, inp).next_state is want.state, (state, inp)
