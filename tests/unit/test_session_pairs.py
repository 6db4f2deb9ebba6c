"""Every (call kind, session state, input) of RFC 2661 7.4-7.5, through a real :class:`Tunnel`.

Each call is put in its state the way a daemon gets it there (the tunnel's public API and
messages from a scripted peer, built with the codec), then fed one input; the test checks
the state the session ends in, what the tunnel sent (message types, CDN and StopCCN Result
and Error Codes) and the events against :func:`expected`, written from the RFC. Two inputs
have no way in from outside a tunnel: OPEN makes a new session (every walk starts with
it) and ANSWER is part of a LAC's ``accept_call`` (so LAC outgoing is never seen in
wait-cs-answer); ``test_session.py`` feeds those to a lone :class:`Session`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from l2tp.protocol.constants import CdnResult, MessageType
from l2tp.protocol.errors import LocalProtocolError
from l2tp.protocol.events import CallKind, CallRequested, Role
from l2tp.protocol.message import ControlMessage
from l2tp.protocol.session import Session
from l2tp.protocol.session_fsm import SessionInput, SessionState, lookup

from .scripted import ScriptedPeer, session_messages, walk_config

K = CallKind
S = SessionState
I = SessionInput  # noqa: E741
MESSAGES = session_messages()
ROLE = {
    K.LAC_INCOMING: Role.LAC,
    K.LAC_OUTGOING: Role.LAC,
    K.LNS_INCOMING: Role.LNS,
    K.LNS_OUTGOING: Role.LNS,
}


def reach(kind: CallKind, state: SessionState) -> tuple[ScriptedPeer, Session]:
    peer = ScriptedPeer(walk_config(ROLE[kind], auto_accept=False))
    tunnel = peer.tunnel
    if state is S.WAIT_TUNNEL:
        peer.accept_sccrq()
        sid = tunnel.open_session(peer.now)
    else:
        peer.establish()
        if kind in (K.LAC_INCOMING, K.LNS_OUTGOING):
            sid = tunnel.open_session(peer.now)
            peer.collect()
        else:
            peer.send(MESSAGES["ICRQ" if kind is K.LNS_INCOMING else "OCRQ"])
            (request,) = [e for e in peer.events if isinstance(e, CallRequested)]
            sid = request.info.session_id
    session = tunnel.sessions.require(sid)
    path = {
        (K.LAC_INCOMING, S.ESTABLISHED): ["ICRP"],
        (K.LNS_INCOMING, S.WAIT_CONNECT): ["accept"],
        (K.LNS_INCOMING, S.ESTABLISHED): ["accept", "ICCN"],
        (K.LAC_OUTGOING, S.ESTABLISHED): ["accept"],
        (K.LNS_OUTGOING, S.WAIT_CONNECT): ["OCRP"],
        (K.LNS_OUTGOING, S.ESTABLISHED): ["OCRP", "OCCN"],
    }.get((kind, state), [])
    for step in path:
        if step == "accept":
            tunnel.accept_call(sid, peer.now)
            peer.collect()
        else:
            peer.send(MESSAGES[step], session_id=sid)
    peer.acknowledge_all()
    assert session.state is state, (kind, state, session)
    peer.take()
    return peer, session


STATES = {
    K.LAC_INCOMING: (S.WAIT_TUNNEL, S.WAIT_REPLY, S.ESTABLISHED),
    K.LNS_INCOMING: (S.WAIT_ACCEPT, S.WAIT_CONNECT, S.ESTABLISHED),
    K.LAC_OUTGOING: (S.WAIT_ACCEPT, S.ESTABLISHED),
    K.LNS_OUTGOING: (S.WAIT_TUNNEL, S.WAIT_REPLY, S.WAIT_CONNECT, S.ESTABLISHED),
}
INPUTS = [i for i in SessionInput if i not in (I.OPEN, I.ANSWER)]
RECV = {
    I.RECV_ICRQ: "ICRQ",
    I.RECV_ICRP: "ICRP",
    I.RECV_ICCN: "ICCN",
    I.RECV_OCRQ: "OCRQ",
    I.RECV_OCRP: "OCRP",
    I.RECV_OCCN: "OCCN",
    I.RECV_CDN: "CDN",
    I.RECV_WEN: "WEN",
    I.RECV_SLI: "SLI",
}


def feed(peer: ScriptedPeer, session: Session, inp: SessionInput) -> None:
    tunnel = peer.tunnel
    sid = session.session_id
    if inp is I.TUNNEL_OPEN:
        peer.send(ControlMessage(message_type=MessageType.SCCCN))
    elif inp is I.ACCEPT:
        tunnel.accept_call(sid, peer.now)
    elif inp is I.CLOSE:
        tunnel.close_session(sid, peer.now, result=CdnResult.BUSY)
    elif inp is I.TUNNEL_DOWN:
        tunnel.close(peer.now)
    elif inp is I.RECV_BAD:
        peer.send(ControlMessage(message_type=MessageType.ICCN), session_id=sid)
    elif inp in (I.RECV_ICRQ, I.RECV_OCRQ):
        peer.send(MESSAGES[RECV[inp]])
    else:
        peer.send(MESSAGES[RECV[inp]], session_id=sid)
    peer.acknowledge_all()


# ------------------------------------------------------------------ the oracle


@dataclass(frozen=True)
class Outcome:
    state: SessionState
    sent: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    table: bool = True
    """False when the input never reaches the session as itself (the tunnel or a new
    call takes it), so the session table's row for it is not what happened."""


RAISES = "LocalProtocolError"
CDN_FSM = Outcome(S.CLOSED, ("CDN/2",), ("SessionClosed/2",))  # 7.1: out of sequence
PEER_CDN = Outcome(S.CLOSED, (), ("SessionClosed/3/peer",))
BAD = Outcome(S.CLOSED, ("CDN/2/3",), ("SessionClosed/2/3",))  # required AVPs missing
OUR_CDN = Outcome(S.CLOSED, ("CDN/8",), ("SessionClosed/8",))
# 5.7: the StopCCN takes the calls down, without a CDN each.
TUNNEL_DOWN = Outcome(S.CLOSED, ("STOPCCN/1",), ("SessionClosed/-", "TunnelClosed/1"))
TUNNEL_FSM = Outcome(S.CLOSED, ("STOPCCN/7",), ("SessionClosed/-", "TunnelClosed/7"), False)
"""A message the tunnel may not get in its state: StopCCN 7, the calls go with it."""


def stays(state: SessionState, *events: str, sent: tuple[str, ...] = ()) -> Outcome:
    return Outcome(state, sent, events)


def new_call(state: SessionState, *, refused: bool) -> Outcome:
    """An ICRQ/OCRQ naming no call of ours is a new call (or, for the wrong role, a CDN 5)."""
    if refused:
        return Outcome(state, ("CDN/5",), (), table=False)
    return Outcome(state, (), ("CallRequested",), table=False)


REQUEST = {K.LAC_INCOMING: "ICRQ", K.LNS_OUTGOING: "OCRQ"}

OVERRIDES: dict[tuple[CallKind, SessionState, SessionInput], Outcome | str] = {
    # 7.4.1, LAC incoming call.
    (K.LAC_INCOMING, S.WAIT_REPLY, I.RECV_ICRP): Outcome(
        S.ESTABLISHED, ("ICCN",), ("SessionEstablished",)
    ),
    (K.LAC_INCOMING, S.WAIT_REPLY, I.RECV_ICCN): Outcome(S.CLOSED, (), ("SessionClosed/-",)),
    (K.LAC_INCOMING, S.WAIT_REPLY, I.RECV_ICRQ): new_call(S.WAIT_REPLY, refused=True),
    (K.LAC_INCOMING, S.WAIT_REPLY, I.RECV_OCRQ): new_call(S.WAIT_REPLY, refused=False),
    (K.LAC_INCOMING, S.ESTABLISHED, I.RECV_SLI): stays(S.ESTABLISHED, "LinkInfoSet"),
    # 7.4.2, LNS incoming call (accepted by hand: wait-accept is seen).
    (K.LNS_INCOMING, S.WAIT_ACCEPT, I.ACCEPT): stays(S.WAIT_CONNECT, sent=("ICRP",)),
    (K.LNS_INCOMING, S.WAIT_CONNECT, I.RECV_ICCN): stays(S.ESTABLISHED, "SessionEstablished"),
    (K.LNS_INCOMING, S.ESTABLISHED, I.RECV_WEN): stays(S.ESTABLISHED, "WanErrorNotified"),
    # 7.5.1, LAC outgoing call: accepting answers at once.
    # (ACCEPT, then ANSWER: the table row alone ends in wait-cs-answer.)
    (K.LAC_OUTGOING, S.WAIT_ACCEPT, I.ACCEPT): Outcome(
        S.ESTABLISHED, ("OCRP", "OCCN"), ("SessionEstablished",), table=False
    ),
    (K.LAC_OUTGOING, S.ESTABLISHED, I.RECV_SLI): stays(S.ESTABLISHED, "LinkInfoSet"),
    # 7.5.2, LNS outgoing call.
    (K.LNS_OUTGOING, S.WAIT_REPLY, I.RECV_OCRP): stays(S.WAIT_CONNECT),
    (K.LNS_OUTGOING, S.WAIT_REPLY, I.RECV_ICRQ): new_call(S.WAIT_REPLY, refused=False),
    (K.LNS_OUTGOING, S.WAIT_REPLY, I.RECV_OCRQ): new_call(S.WAIT_REPLY, refused=True),
    (K.LNS_OUTGOING, S.WAIT_CONNECT, I.RECV_OCCN): stays(S.ESTABLISHED, "SessionEstablished"),
    (K.LNS_OUTGOING, S.ESTABLISHED, I.RECV_WEN): stays(S.ESTABLISHED, "WanErrorNotified"),
}


def expected(kind: CallKind, state: SessionState, inp: SessionInput) -> Outcome | str:
    """The rows every kind shares, then :data:`OVERRIDES`."""
    if (kind, state, inp) in OVERRIDES:
        return OVERRIDES[kind, state, inp]
    if inp is I.ACCEPT:
        return RAISES  # only a call waiting for our decision can be accepted
    if inp is I.TUNNEL_DOWN:
        return TUNNEL_DOWN
    if state is S.WAIT_TUNNEL:
        if inp is I.TUNNEL_OPEN:  # the SCCCN: the tunnel is up, the request goes out
            return Outcome(S.WAIT_REPLY, (REQUEST[kind],), ("TunnelEstablished",))
        if inp is I.CLOSE:  # nothing was sent for the call: no CDN either
            return Outcome(S.CLOSED, (), ("SessionClosed/-",))
        return TUNNEL_FSM  # a session message before the tunnel is up
    if inp is I.TUNNEL_OPEN:
        return TUNNEL_FSM  # an SCCCN on an established tunnel
    if inp is I.CLOSE:
        return OUR_CDN
    if inp is I.RECV_CDN:
        return PEER_CDN
    if inp is I.RECV_BAD:
        return BAD
    if inp in (I.RECV_WEN, I.RECV_SLI):
        return stays(state)  # only the other role's, and only once established
    return CDN_FSM


CASES = [(k, s, i) for k, states in STATES.items() for s in states for i in INPUTS]


@pytest.mark.parametrize(("kind", "state", "inp"), CASES, ids=lambda x: x.name)
def test_every_pair_through_a_real_tunnel(
    kind: CallKind, state: SessionState, inp: SessionInput
) -> None:
    want = expected(kind, state, inp)
    peer, session = reach(kind, state)
    if want == RAISES:
        with pytest.raises(LocalProtocolError):
            feed(peer, session, inp)
        assert session.state is state
        assert peer.take() == ((), ())
        return
    assert isinstance(want, Outcome)
    feed(peer, session, inp)
    sent, events = peer.take()
    assert (session.state, sent, events) == (want.state, want.sent, want.events)
    if session.state is S.CLOSED:
        assert session.session_id not in peer.tunnel.sessions  # its ID is free again
    else:
        assert peer.tunnel.sessions.get(session.session_id) is session


def test_the_session_tables_agree_with_the_tunnel() -> None:
    """:func:`lookup` gives the state the real call ended in, where the input reached it."""
    for kind, state, inp in CASES:
        want = expected(kind, state, inp)
        if want == RAISES:
            with pytest.raises(LocalProtocolError):
                lookup(kind, state, inp)
            continue
        assert isinstance(want, Outcome)
        if want.table:
            assert lookup(kind, state, inp).next_state is want.state, (kind, state, inp)
