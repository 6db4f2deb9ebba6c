"""Every (call kind, session state, input) of RFC 2661 7.4-7.5, through a real :class:`Tunnel`.

Each call is put in its state the way a daemon gets it there (the tunnel's public API and
messages from a scripted peer, built with the codec), then fed one input; the test checks
the state the session ends in, what the tunnel sent (message types, CDN and StopCCN Result
and Error Codes) and the events against :func:`expected`, written from the RFC. Two inputs
have no way in from outside a tunnel: OPEN makes a new session (every walk starts with
it) and ANSWER is part of a LAC's ``accept_call`` (so LAC outgoing is never seen in
wait-cs-answer); ``test_session.py`` feeds those to a lone :class:`Session`. A LAC's
call is seen in wait-data-plane only when placed with ``CallParams.wait_data_plane``
(issue 17); any other leaves it at once with its ICCN. The same for an LNS's call accepted
with ``wait_data_plane`` (its ICRP is held); any other sends its ICRP at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from l2tp.protocol.avps import ResultCode
from l2tp.protocol.constants import CdnResult, MessageType, StopCcnResult
from l2tp.protocol.errors import LocalProtocolError
from l2tp.protocol.events import (
    CallKind,
    CallParams,
    CallRequested,
    DataPlaneWanted,
    Role,
    SessionEstablished,
)
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


def _waiting(params: CallParams) -> CallParams:
    return dataclasses.replace(params, wait_data_plane=True)


def reach(kind: CallKind, state: SessionState) -> tuple[ScriptedPeer, Session]:
    peer = ScriptedPeer(walk_config(ROLE[kind], auto_accept=False))
    tunnel = peer.tunnel
    if state is S.WAIT_TUNNEL:
        peer.accept_sccrq()
        sid = tunnel.open_session(peer.now)
    else:
        peer.establish()
        if kind in (K.LAC_INCOMING, K.LNS_OUTGOING):
            wait = state is S.WAIT_DATA_PLANE
            sid = tunnel.open_session(peer.now, CallParams(wait_data_plane=wait))
            peer.collect()
        else:
            peer.send(MESSAGES["ICRQ" if kind is K.LNS_INCOMING else "OCRQ"])
            (request,) = [e for e in peer.events if isinstance(e, CallRequested)]
            sid = request.info.session_id
    session = tunnel.sessions.require(sid)
    path = {
        (K.LAC_INCOMING, S.WAIT_DATA_PLANE): ["ICRP"],
        (K.LAC_INCOMING, S.ESTABLISHED): ["ICRP"],
        (K.LNS_INCOMING, S.WAIT_DATA_PLANE): ["accept, waiting"],
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
        elif step == "accept, waiting":
            tunnel.accept_call(sid, peer.now, _waiting(tunnel.config.call_params))
            peer.collect()
        else:
            peer.send(MESSAGES[step], session_id=sid)
    peer.acknowledge_all()
    assert session.state is state, (kind, state, session)
    peer.take()
    return peer, session


STATES = {
    K.LAC_INCOMING: (S.WAIT_TUNNEL, S.WAIT_REPLY, S.WAIT_DATA_PLANE, S.ESTABLISHED),
    K.LNS_INCOMING: (S.WAIT_ACCEPT, S.WAIT_DATA_PLANE, S.WAIT_CONNECT, S.ESTABLISHED),
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
    elif inp is I.DATA_PLANE_READY:
        tunnel.data_plane_ready(sid, peer.now)
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
    # (A call not waiting for its data plane is given DATA_PLANE_READY at once.)
    (K.LAC_INCOMING, S.WAIT_REPLY, I.RECV_ICRP): Outcome(
        S.ESTABLISHED, ("ICCN",), ("SessionEstablished",), table=False
    ),
    (K.LAC_INCOMING, S.WAIT_DATA_PLANE, I.DATA_PLANE_READY): stays(
        S.ESTABLISHED, "SessionEstablished", sent=("ICCN",)
    ),
    (K.LAC_INCOMING, S.WAIT_REPLY, I.RECV_ICCN): Outcome(S.CLOSED, (), ("SessionClosed/-",)),
    (K.LAC_INCOMING, S.WAIT_REPLY, I.RECV_ICRQ): new_call(S.WAIT_REPLY, refused=True),
    (K.LAC_INCOMING, S.WAIT_REPLY, I.RECV_OCRQ): new_call(S.WAIT_REPLY, refused=False),
    (K.LAC_INCOMING, S.ESTABLISHED, I.RECV_SLI): stays(S.ESTABLISHED, "LinkInfoSet"),
    # 7.4.2, LNS incoming call (accepted by hand: wait-accept is seen).
    # (A call not waiting for its data plane is given DATA_PLANE_READY at once; one that
    # waits is seen in wait-data-plane, where an ICCN is out of sequence: CDN 2.)
    (K.LNS_INCOMING, S.WAIT_ACCEPT, I.ACCEPT): Outcome(S.WAIT_CONNECT, ("ICRP",), (), table=False),
    (K.LNS_INCOMING, S.WAIT_DATA_PLANE, I.DATA_PLANE_READY): stays(S.WAIT_CONNECT, sent=("ICRP",)),
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
    if inp in (I.ACCEPT, I.DATA_PLANE_READY):
        return RAISES  # only a call waiting for our decision (its data plane) takes it
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


# ------------------------------------------------- the ICCN waits for the data plane


def _waiting_call() -> tuple[ScriptedPeer, int]:
    """A LAC call placed with ``wait_data_plane``, its ICRP received."""
    peer = ScriptedPeer(walk_config(Role.LAC, auto_accept=False))
    peer.establish()
    peer.take()
    sid = peer.tunnel.open_session(peer.now, CallParams(wait_data_plane=True))
    peer.collect()
    peer.send(MESSAGES["ICRP"], session_id=sid)
    peer.acknowledge_all()
    return peer, sid


def test_iccn_leaves_only_once_the_data_plane_is_ready() -> None:
    """Issue 17: the ICRP gives DataPlaneWanted with both session IDs and no ICCN; the ICCN
    (and SessionEstablished) follow data_plane_ready, however long the data plane took."""
    peer, sid = _waiting_call()
    wanted = [e for e in peer.events if isinstance(e, DataPlaneWanted)]
    assert len(wanted) == 1
    assert wanted[0].info.session_id == sid
    assert wanted[0].info.peer_session_id == MESSAGES["ICRP"].assigned_session_id
    assert [m.name for _, m in peer.sent] == ["ICRQ"]
    peer.take()
    peer.run_timers(peer.now + 5.0, acknowledge=True)  # the data plane takes its time
    assert peer.take() == ((), ())
    peer.tunnel.data_plane_ready(sid, peer.now)
    peer.collect()
    iccn_sid, _ = peer.last_sent("ICCN")
    assert iccn_sid == MESSAGES["ICRP"].assigned_session_id  # addressed to the peer's call
    (established,) = [e for e in peer.events if isinstance(e, SessionEstablished)]
    assert established.info.session_id == sid


def test_a_data_plane_failure_gives_a_cdn() -> None:
    """The runtime closes a call whose data plane failed: CDN 2 to the peer, no ICCN."""
    peer, sid = _waiting_call()
    peer.take()
    peer.tunnel.close_session(sid, peer.now, result=CdnResult.GENERAL_ERROR, message="x")
    sent, events = peer.take()
    assert sent == ("CDN/2",) and events == ("SessionClosed/2",)
    assert sid not in peer.tunnel.sessions


def test_a_held_call_has_no_set_up_deadline_of_ours_and_ends_on_the_peers_cdn() -> None:
    """The wait for the data plane is ours: no CDN 10 from us however long it takes (a
    burst of calls queued behind a busy data plane is slow, not stalled; the runtime sends
    the ICCN or a CDN 2). The peer's own set-up timer bounds it: its CDN ends the call."""
    peer, sid = _waiting_call()
    peer.take()
    timeout = peer.tunnel.config.setup_timeout
    peer.run_timers(peer.now + 3 * timeout, acknowledge=True)
    assert peer.take() == ((), ())
    assert peer.tunnel.sessions.require(sid).state is S.WAIT_DATA_PLANE
    peer_sid = MESSAGES["ICRP"].assigned_session_id
    cdn = ControlMessage.of(
        MessageType.CDN, result_code=ResultCode(result=10), assigned_session_id=peer_sid
    )
    peer.send(cdn, session_id=sid)
    peer.acknowledge_all()
    assert peer.take() == ((), ("SessionClosed/10/peer",))
    assert sid not in peer.tunnel.sessions
    with pytest.raises(LocalProtocolError):
        peer.tunnel.data_plane_ready(sid, peer.now)  # the call is gone: API misuse


def test_calls_waiting_behind_a_busy_data_plane_are_slow_not_stalled() -> None:
    """A burst of held calls whose data plane gets ready one at a time, each after most of
    a set-up timeout: every call still gets its ICCN, because each ready call is progress
    for the tunnel's other pending calls (as a peer's call message is)."""
    peer = ScriptedPeer(walk_config(Role.LAC, auto_accept=False))
    peer.establish()
    peer.take()
    calls = [peer.tunnel.open_session(peer.now, CallParams(wait_data_plane=True)) for _ in range(4)]
    peer.collect()
    for i, sid in enumerate(calls):
        icrp = ControlMessage.of(MessageType.ICRP, assigned_session_id=900 + i)
        peer.send(icrp, session_id=sid)
    peer.acknowledge_all()
    peer.take()
    timeout = peer.tunnel.config.setup_timeout
    for sid in calls:
        peer.run_timers(peer.now + 0.9 * timeout, acknowledge=True)
        peer.tunnel.data_plane_ready(sid, peer.now)
        peer.acknowledge_all()
    sent, events = peer.take()
    assert sent == ("ICCN",) * 4 and events == ("SessionEstablished",) * 4


# ------------------------------------------- the LNS's ICRP waits for the data plane


def _held_answer() -> tuple[ScriptedPeer, int]:
    """An LNS call accepted with ``wait_data_plane`` (its ICRP held)."""
    peer = ScriptedPeer(walk_config(Role.LNS, auto_accept=False))
    peer.establish()
    peer.take()
    peer.send(MESSAGES["ICRQ"])
    (request,) = [e for e in peer.events if isinstance(e, CallRequested)]
    sid = request.info.session_id
    peer.tunnel.accept_call(sid, peer.now, _waiting(peer.tunnel.config.call_params))
    peer.collect()
    peer.acknowledge_all()
    return peer, sid


def test_icrp_leaves_only_once_the_data_plane_is_ready() -> None:
    """Issue 17, the LNS side: accepting gives DataPlaneWanted with both session IDs (the
    ICRQ named the LAC's) and no ICRP; the ICRP follows data_plane_ready, however long the
    data plane took, and the LAC's ICCN then establishes the call as before."""
    peer, sid = _held_answer()
    peer_sid = MESSAGES["ICRQ"].assigned_session_id
    wanted = [e for e in peer.events if isinstance(e, DataPlaneWanted)]
    assert len(wanted) == 1
    assert wanted[0].info.session_id == sid and wanted[0].info.peer_session_id == peer_sid
    assert wanted[0].info.kind is K.LNS_INCOMING
    assert [m.name for _, m in peer.sent] == []
    peer.take()
    peer.run_timers(peer.now + 5.0, acknowledge=True)
    assert peer.take() == ((), ())
    peer.tunnel.data_plane_ready(sid, peer.now)
    peer.collect()
    icrp_sid, icrp = peer.last_sent("ICRP")
    assert icrp_sid == peer_sid and icrp.assigned_session_id == sid
    assert peer.tunnel.sessions.require(sid).state is S.WAIT_CONNECT
    peer.send(MESSAGES["ICCN"], session_id=sid)
    peer.acknowledge_all()
    (established,) = [e for e in peer.events if isinstance(e, SessionEstablished)]
    assert established.info.session_id == sid


def test_an_iccn_before_the_held_icrp_is_out_of_sequence() -> None:
    """The LAC cannot have our ICRP yet: its ICCN gets CDN 2 (FSM error), RFC 2661 7.1."""
    peer, sid = _held_answer()
    peer.take()
    peer.send(MESSAGES["ICCN"], session_id=sid)
    peer.acknowledge_all()
    peer.collect()
    _, cdn = peer.last_sent("CDN")
    assert cdn.result_code is not None
    want = "FSM error: receive ICCN in lns-incoming state wait-data-plane"
    assert cdn.result_code.message == want
    assert peer.take() == (("CDN/2",), ("SessionClosed/2",))
    assert sid not in peer.tunnel.sessions


def test_a_held_answer_has_no_set_up_deadline_of_ours_and_ends_on_the_peers_cdn() -> None:
    """As for the LAC's held ICCN: no CDN 10 from us while the data plane is made; the
    LAC's set-up timer bounds the wait (its CDN ends the call); a StopCCN ends it too."""
    peer, sid = _held_answer()
    peer.take()
    peer.run_timers(peer.now + 3 * peer.tunnel.config.setup_timeout, acknowledge=True)
    assert peer.take() == ((), ())
    assert peer.tunnel.sessions.require(sid).state is S.WAIT_DATA_PLANE
    peer_sid = MESSAGES["ICRQ"].assigned_session_id
    cdn = ControlMessage.of(
        MessageType.CDN, result_code=ResultCode(result=10), assigned_session_id=peer_sid
    )
    peer.send(cdn, session_id=sid)
    peer.acknowledge_all()
    assert peer.take() == ((), ("SessionClosed/10/peer",))
    with pytest.raises(LocalProtocolError):
        peer.tunnel.data_plane_ready(sid, peer.now)


def test_a_data_plane_failure_on_the_lns_gives_a_cdn_and_no_icrp() -> None:
    peer, sid = _held_answer()
    peer.take()
    peer.tunnel.close_session(sid, peer.now, result=CdnResult.GENERAL_ERROR, message="x")
    assert peer.take() == (("CDN/2",), ("SessionClosed/2",))  # no ICRP


def test_an_auto_accepted_call_with_wait_data_plane_defaults_is_held_too() -> None:
    """``auto_accept`` feeds ACCEPT at once; a tunnel whose default call parameters wait
    for the data plane holds the ICRP all the same (no CallRequested in between)."""
    config = walk_config(Role.LNS, auto_accept=True)
    config = dataclasses.replace(config, call_params=_waiting(config.call_params))
    peer = ScriptedPeer(config)
    peer.establish()
    peer.take()
    peer.send(MESSAGES["ICRQ"])
    peer.acknowledge_all()
    (wanted,) = [e for e in peer.events if isinstance(e, DataPlaneWanted)]
    assert "ICRP" not in [m.name for _, m in peer.sent]
    peer.tunnel.data_plane_ready(wanted.info.session_id, peer.now)
    peer.collect()
    peer.last_sent("ICRP")


def test_a_peer_stopccn_ends_a_held_answer_without_a_cdn() -> None:
    """RFC 2661 5.7: the LAC's StopCCN takes the held call down with the tunnel; no CDN
    and no ICRP for it (the runtime's data_plane_ready then finds no call)."""
    peer, sid = _held_answer()
    peer.take()
    peer.send(ScriptedPeer.stopccn(StopCcnResult.GENERAL_REQUEST))
    peer.acknowledge_all()
    sent, events = peer.take()
    assert "CDN/2" not in sent and "ICRP" not in sent
    assert events == ("SessionClosed/-", "TunnelClosed/1/peer")
    assert sid not in peer.tunnel.sessions
