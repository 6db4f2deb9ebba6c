"""Sessions: every (kind, state, input) of RFC 2661 7.4-7.5, CDN codes, limits, scale."""

from __future__ import annotations

from typing import Any

import pytest

from l2tp.protocol.avp import Avp
from l2tp.protocol.avps import Accm, CallErrors, ResultCode
from l2tp.protocol.constants import (
    AvpType,
    BearerBits,
    CdnResult,
    ErrorCode,
    FramingBits,
    MessageType,
)
from l2tp.protocol.errors import LocalProtocolError
from l2tp.protocol.events import (
    CallKind,
    CallParams,
    CallRequested,
    ControlEvent,
    LinkInfoSet,
    Role,
    SessionClosed,
    SessionEstablished,
    WanErrorNotified,
)
from l2tp.protocol.message import ControlMessage
from l2tp.protocol.session import Session
from l2tp.protocol.session_fsm import (
    LOCAL_INPUTS,
    STATES_BY_KIND,
    SessionInput,
    SessionState,
    lookup,
)
from l2tp.protocol.tunnel_fsm import TunnelState

from .pair import Pair, lac_config, lns_config

I = SessionInput  # noqa: E741
S = SessionState


class FakeHost:
    tunnel_id = 10
    peer_tunnel_id = 20
    framing_capabilities = FramingBits.SYNC | FramingBits.ASYNC
    bearer_capabilities = BearerBits.DIGITAL | BearerBits.ANALOG
    log_context = {"tunnel": 10}
    hides_avps = False

    def __init__(self) -> None:
        self.sent: list[tuple[ControlMessage, int]] = []
        self.events: list[ControlEvent] = []
        self.closed: list[Session] = []

    def send_message(self, message: ControlMessage, *, session_id: int, now: float) -> None:
        self.sent.append((message, session_id))

    def emit(self, event: ControlEvent) -> None:
        self.events.append(event)

    def make_avp(self, attribute: AvpType, value: Any) -> Avp:
        return Avp(attribute=attribute, value=value)

    def session_closed(self, session: Session) -> None:
        self.closed.append(session)

    def acknowledged(self, ns: int) -> bool:
        return True


PEER_SID = 777
MESSAGES: dict[SessionInput, ControlMessage] = {
    I.RECV_ICRQ: ControlMessage.of(
        MessageType.ICRQ, assigned_session_id=PEER_SID, call_serial_number=9
    ),
    I.RECV_ICRP: ControlMessage.of(MessageType.ICRP, assigned_session_id=PEER_SID),
    I.RECV_ICCN: ControlMessage.of(
        MessageType.ICCN, tx_connect_speed=1000, framing_type=FramingBits.SYNC
    ),
    I.RECV_OCRQ: ControlMessage.of(
        MessageType.OCRQ,
        assigned_session_id=PEER_SID,
        call_serial_number=9,
        minimum_bps=0,
        maximum_bps=10,
        bearer_type=BearerBits.ANALOG,
        framing_type=FramingBits.SYNC,
        called_number="123",
    ),
    I.RECV_OCRP: ControlMessage.of(MessageType.OCRP, assigned_session_id=PEER_SID),
    I.RECV_OCCN: ControlMessage.of(
        MessageType.OCCN, tx_connect_speed=2000, framing_type=FramingBits.ASYNC
    ),
    I.RECV_CDN: ControlMessage.of(
        MessageType.CDN, result_code=ResultCode(result=3), assigned_session_id=PEER_SID
    ),
    I.RECV_WEN: ControlMessage.of(MessageType.WEN, call_errors=CallErrors(crc_errors=1)),
    I.RECV_SLI: ControlMessage.of(MessageType.SLI, accm=Accm(send=1, receive=2)),
    I.RECV_BAD: ControlMessage.of(MessageType.ICCN),
}

PATHS: dict[CallKind, dict[SessionState, list[SessionInput]]] = {
    CallKind.LAC_INCOMING: {
        S.WAIT_TUNNEL: [I.OPEN],
        S.WAIT_REPLY: [I.OPEN, I.TUNNEL_OPEN],
        S.WAIT_DATA_PLANE: [I.OPEN, I.TUNNEL_OPEN, I.RECV_ICRP],
        S.ESTABLISHED: [I.OPEN, I.TUNNEL_OPEN, I.RECV_ICRP, I.DATA_PLANE_READY],
    },
    CallKind.LNS_INCOMING: {
        S.WAIT_ACCEPT: [I.RECV_ICRQ],
        S.WAIT_DATA_PLANE: [I.RECV_ICRQ, I.ACCEPT],
        S.WAIT_CONNECT: [I.RECV_ICRQ, I.ACCEPT, I.DATA_PLANE_READY],
        S.ESTABLISHED: [I.RECV_ICRQ, I.ACCEPT, I.DATA_PLANE_READY, I.RECV_ICCN],
    },
    CallKind.LAC_OUTGOING: {
        S.WAIT_ACCEPT: [I.RECV_OCRQ],
        S.WAIT_CS_ANSWER: [I.RECV_OCRQ, I.ACCEPT],
        S.ESTABLISHED: [I.RECV_OCRQ, I.ACCEPT, I.ANSWER],
    },
    CallKind.LNS_OUTGOING: {
        S.WAIT_TUNNEL: [I.OPEN],
        S.WAIT_REPLY: [I.OPEN, I.TUNNEL_OPEN],
        S.WAIT_CONNECT: [I.OPEN, I.TUNNEL_OPEN, I.RECV_OCRP],
        S.ESTABLISHED: [I.OPEN, I.TUNNEL_OPEN, I.RECV_OCRP, I.RECV_OCCN],
    },
}


def drive(kind: CallKind, state: SessionState) -> tuple[Session, FakeHost]:
    host = FakeHost()
    session = Session(host, kind=kind, session_id=5, call_serial=1)
    for inp in PATHS[kind][state]:
        session.handle(inp, 0.0, MESSAGES.get(inp))
    assert session.state is state
    host.sent.clear()
    host.events.clear()
    return session, host


def cdns(host: FakeHost) -> list[ResultCode]:
    out = []
    for msg, _ in host.sent:
        if msg.message_type == MessageType.CDN:
            assert msg.result_code is not None
            out.append(msg.result_code)
    return out


CASES = [
    (kind, state, inp) for kind, states in PATHS.items() for state in states for inp in SessionInput
]


@pytest.mark.parametrize(("kind", "state", "inp"), CASES)
def test_every_state_input_pair(kind: CallKind, state: SessionState, inp: SessionInput) -> None:
    """Each pair ends in a state of the kind's table, or raises for local misuse only."""
    session, host = drive(kind, state)
    if inp is I.RECV_BAD:
        session.bad_reason = None
    try:
        session.handle(inp, 1.0, MESSAGES.get(inp), None)
    except LocalProtocolError:
        assert inp in LOCAL_INPUTS
        assert session.state is state
        return
    # The session runs its kind's table: it enters the row's state (every message here
    # is acceptable, so no check refuses one and ends the call instead).
    assert session.state is lookup(kind, state, inp).next_state
    assert session.state in STATES_BY_KIND[kind] | {S.CLOSED}
    if session.state is S.CLOSED:
        (event,) = [e for e in host.events if isinstance(e, SessionClosed)]
        assert event.session_id == 5
        assert host.closed == [session]
        sent_cdn = cdns(host)
        if inp in (I.RECV_CDN, I.TUNNEL_DOWN) or (inp is I.CLOSE and state is S.WAIT_TUNNEL):
            assert sent_cdn == []  # peer's CDN, StopCCN, or nothing sent yet
        elif inp is I.RECV_ICCN and (kind, state) == (CallKind.LAC_INCOMING, S.WAIT_REPLY):
            assert sent_cdn == []  # 7.4.1 "wait-reply, Receive ICCN: Clean up"
        else:
            (code,) = sent_cdn
            assert code.result in (CdnResult.GENERAL_ERROR, CdnResult.ADMINISTRATIVE)
            assert event.reason is not None and event.reason.result == code.result


@pytest.mark.parametrize(("kind", "state"), [(k, s) for k, states in PATHS.items() for s in states])
def test_cdn_in_every_state(kind: CallKind, state: SessionState) -> None:
    session, host = drive(kind, state)
    session.handle(I.RECV_CDN, 1.0, MESSAGES[I.RECV_CDN])
    assert session.state is S.CLOSED
    (event,) = host.events
    assert isinstance(event, SessionClosed) and event.by_peer
    assert event.reason is not None and event.reason.result == CdnResult.ADMINISTRATIVE
    assert event.was_established is (state is S.ESTABLISHED)
    assert host.sent == []


def test_out_of_sequence_sends_cdn_general_error() -> None:
    session, host = drive(CallKind.LNS_INCOMING, S.ESTABLISHED)
    session.handle(I.RECV_ICRP, 1.0, MESSAGES[I.RECV_ICRP])
    ((msg, header_sid),) = host.sent
    assert header_sid == PEER_SID
    assert msg.result_code == ResultCode(
        result=CdnResult.GENERAL_ERROR,
        message="FSM error: receive ICRP in lns-incoming state established",
    )
    assert msg.assigned_session_id == 5


# ------------------------------------------------------------------ in a pair


def established_session(**kw: Any) -> tuple[Pair, Any, Any, int]:
    p = Pair(lac_config(**kw.pop("lac", {})), lns_config(**kw.pop("lns", {})))
    lac, lns = p.establish()
    sid = lac.open_session(p.now, CallParams(calling_number="555", tx_connect_speed=64000))
    p.pump()
    return p, lac, lns, sid


def test_incoming_call_both_ends() -> None:
    p, _lac, _lns, sid = established_session()
    assert p.names()[4:] == ["ICRQ", "ICRP", "ICCN", "ZLB"]
    (theirs,) = p.lns.of(SessionEstablished)
    (ours,) = p.lac.of(SessionEstablished)
    assert ours.info.session_id == sid == theirs.info.peer_session_id
    assert theirs.info.calling_number == "555" and theirs.info.tx_connect_speed == 64000
    assert theirs.info.kind is CallKind.LNS_INCOMING and ours.info.call_serial == 1


def test_outgoing_call_both_ends() -> None:
    p = Pair()
    _lac, lns = p.establish()
    sid = lns.open_session(p.now, CallParams(called_number="999"))
    p.pump()
    assert [n for n in p.names()[4:] if n != "ZLB"] == ["OCRQ", "OCRP", "OCCN"]
    (ours,) = p.lns.of(SessionEstablished)
    (theirs,) = p.lac.of(SessionEstablished)
    assert ours.info.session_id == sid and theirs.info.called_number == "999"
    assert theirs.info.kind is CallKind.LAC_OUTGOING


def test_session_opened_before_tunnel_waits() -> None:
    p = Pair()
    lac = p.lac.listener.connect("lns", p.now)
    sid = lac.open_session(p.now)
    assert lac.sessions.require(sid).state is S.WAIT_TUNNEL
    p.pump()
    assert p.lns.of(SessionEstablished)


def test_close_established_session_both_sides() -> None:
    p, lac, lns, sid = established_session()
    lac.close_session(sid, p.now, result=CdnResult.LOST_CARRIER)
    p.pump()
    (event,) = p.lns.of(SessionClosed)
    assert event.by_peer and event.reason is not None
    assert event.reason.result == CdnResult.LOST_CARRIER and event.was_established
    assert len(lac.sessions) == len(lns.sessions) == 0
    assert lac.state is TunnelState.ESTABLISHED


def test_manual_accept_and_reject() -> None:
    p = Pair(lns=lns_config(auto_accept=False))
    lac, lns = p.establish()
    first = lac.open_session(p.now)
    second = lac.open_session(p.now)
    p.pump()
    requests = p.lns.of(CallRequested)
    assert [r.info.peer_session_id for r in requests] == [first, second]
    lns.accept_call(requests[0].info.session_id, p.now)
    lns.close_session(requests[1].info.session_id, p.now, result=CdnResult.BUSY)
    p.pump()
    assert len(p.lac.of(SessionEstablished)) == 1
    (rejected,) = p.lac.of(SessionClosed)
    assert rejected.session_id == second and rejected.reason is not None
    assert rejected.reason.result == CdnResult.BUSY and not rejected.was_established


def test_wrong_role_requests_are_rejected() -> None:
    p = Pair()
    lac, _lns = p.establish()
    lac.send_message(
        ControlMessage.of(MessageType.OCRQ, *MESSAGES[I.RECV_OCRQ].avps[1:], assigned_session_id=4),
        session_id=0,
        now=p.now,
    )
    p.pump()
    (cdn,) = [d.message for d in p.sent if d.name == "CDN"]
    assert cdn is not None and cdn.result_code is not None
    assert cdn.result_code.result == CdnResult.PERMANENT_NO_FACILITIES
    assert lac.state is TunnelState.ESTABLISHED


def test_session_limit_rejects_with_resources() -> None:
    p = Pair(lns=lns_config(max_sessions=2))
    lac, lns = p.establish()
    ids = [lac.open_session(p.now) for _ in range(3)]
    p.pump()
    assert len(lns.sessions) == 2
    (closed,) = p.lac.of(SessionClosed)
    assert closed.session_id == ids[2] and closed.reason is not None
    assert (closed.reason.result, closed.reason.error) == (
        CdnResult.TEMPORARY_NO_FACILITIES,
        ErrorCode.INSUFFICIENT_RESOURCES,
    )


def test_unknown_mandatory_avp_in_session_message() -> None:
    p, lac, lns, sid = established_session()
    peer_sid = lac.sessions.require(sid).peer_session_id
    lac.send_message(
        ControlMessage(
            message_type=MessageType.WEN,
            avps=[
                Avp(attribute=AvpType.CALL_ERRORS, value=CallErrors()),
                Avp(attribute=4242, value=b"", mandatory=True),
            ],
        ),
        session_id=peer_sid,
        now=p.now,
    )
    p.pump()
    (event,) = p.lac.of(SessionClosed)
    assert event.by_peer and event.reason is not None
    assert (event.reason.result, event.reason.error) == (
        CdnResult.GENERAL_ERROR,
        ErrorCode.UNKNOWN_MANDATORY_AVP,
    )
    assert "4242" in event.reason.message
    assert lac.state is lns.state is TunnelState.ESTABLISHED  # only the session ends


def test_unknown_mandatory_avp_in_icrq_rejects_the_call() -> None:
    p = Pair()
    lac, lns = p.establish()
    lac.send_message(
        ControlMessage.of(
            MessageType.ICRQ,
            Avp(attribute=4242, value=b"", mandatory=True),
            assigned_session_id=33,
            call_serial_number=1,
        ),
        session_id=0,
        now=p.now,
    )
    p.pump()
    (cdn,) = [d for d in p.sent if d.name == "CDN"]
    assert cdn.message is not None and cdn.message.result_code is not None
    assert cdn.message.result_code.error == ErrorCode.UNKNOWN_MANDATORY_AVP
    assert len(lns.sessions) == 0 and lns.state is TunnelState.ESTABLISHED


def test_invalid_session_message_missing_avp() -> None:
    p, lac, _lns, sid = established_session()
    peer_sid = lac.sessions.require(sid).peer_session_id
    lac.send_message(ControlMessage(message_type=MessageType.SLI), session_id=peer_sid, now=p.now)
    p.pump()
    (event,) = p.lac.of(SessionClosed)
    assert event.reason is not None and event.reason.error == ErrorCode.OUT_OF_RANGE


def test_reply_for_unknown_session_gets_cdn() -> None:
    p = Pair()
    lac, lns = p.establish()
    lac.send_message(MESSAGES[I.RECV_ICRP], session_id=4321, now=p.now)
    lac.send_message(MESSAGES[I.RECV_ICCN], session_id=4321, now=p.now)
    p.pump()
    (cdn,) = [d.message for d in p.sent if d.name == "CDN"]
    assert cdn is not None and cdn.result_code is not None
    assert cdn.result_code.error == ErrorCode.INVALID_SESSION_ID
    assert cdn.assigned_session_id == 4321
    assert lns.sessions.counters.unknown_session == 2


def test_stale_cdn_is_ignored() -> None:
    p, lac, lns, sid = established_session()
    peer_sid = lac.sessions.require(sid).peer_session_id
    lns.send_message(
        ControlMessage.of(MessageType.CDN, result_code=ResultCode(result=1), assigned_session_id=9),
        session_id=sid,
        now=p.now,
    )
    p.pump()
    assert sid in lac.sessions and lac.sessions.counters.stale_cdn == 1
    assert peer_sid in lns.sessions


def test_wen_and_sli() -> None:
    p, lac, lns, sid = established_session()
    lns_sid = lac.sessions.require(sid).peer_session_id
    lac.send_wen(sid, CallErrors(crc_errors=3), p.now)
    lns.send_sli(lns_sid, Accm(send=0xFFFFFFFF, receive=0), p.now)
    p.pump()
    (wen,) = p.lns.of(WanErrorNotified)
    (sli,) = p.lac.of(LinkInfoSet)
    assert wen.errors.crc_errors == 3 and wen.session_id == lns_sid
    assert sli.accm.send == 0xFFFFFFFF and sli.session_id == sid
    with pytest.raises(LocalProtocolError):
        lns.send_wen(lns_sid, CallErrors(), p.now)
    with pytest.raises(LocalProtocolError):
        lac.send_sli(sid, Accm(send=0, receive=0), p.now)


def test_peer_stopccn_takes_sessions_down() -> None:
    p, _lac, lns, _sid = established_session()
    lns.close(p.now)
    p.pump()
    (event,) = p.lac.of(SessionClosed)
    assert event.reason is None and event.description == "tunnel down"
    assert "CDN" not in p.names()


def test_hidden_session_avps_round_trip() -> None:
    p, _lac, _lns, _sid = established_session(
        lac={"secret": b"k", "hide_avps": True}, lns={"secret": b"k"}
    )
    icrq = next(d for d in p.sent if d.name == "ICRQ").message
    assert icrq is not None
    assert any(a.hidden for a in icrq.avps)
    (theirs,) = p.lns.of(SessionEstablished)
    assert theirs.info.calling_number == "555"


def test_thousand_sessions_in_one_tunnel() -> None:
    p = Pair()
    lac, lns = p.establish()
    ids = [lac.open_session(p.now) for _ in range(1000)]
    p.pump()
    assert len(p.lns.of(SessionEstablished)) == 1000 == len(lns.sessions) == len(lac.sessions)
    for sid in ids[::2]:
        lac.close_session(sid, p.now)
    p.pump()
    assert len(lns.sessions) == 500
    lac.close(p.now)
    p.pump()
    assert len(lns.sessions) == len(lac.sessions) == 0
    assert len(p.lns.of(SessionClosed)) == 1000


def test_session_ids_reused_only_after_release() -> None:
    p = Pair(lac_config(max_sessions=3))
    lac, _ = p.establish()
    ids = {lac.open_session(p.now) for _ in range(3)}
    with pytest.raises(LocalProtocolError):
        lac.open_session(p.now)
    lac.close_session(ids.pop(), p.now)
    lac.open_session(p.now)
    assert Role.LAC is lac.config.role


@pytest.mark.parametrize("message_type", [MessageType.ICRQ, MessageType.ICRP])
def test_zero_assigned_session_id_is_refused_with_cdn(message_type: MessageType) -> None:
    """RFC 2661 7.4.2: a request or reply must assign a non-zero session ID; the call
    is refused with CDN 2 / Error Code 5 (invalid Session ID), naming the AVP."""
    kind, inp = (
        (CallKind.LNS_INCOMING, I.RECV_ICRQ)
        if message_type is MessageType.ICRQ
        else (CallKind.LAC_INCOMING, I.RECV_ICRP)
    )
    host = FakeHost()
    session = Session(host, kind=kind, session_id=5, call_serial=1)
    for step in PATHS[kind][S.WAIT_REPLY] if kind is CallKind.LAC_INCOMING else []:
        session.handle(step, 0.0)
    host.sent.clear()
    session.handle(inp, 0.0, ControlMessage.of(message_type, assigned_session_id=0))
    assert session.state is S.CLOSED
    (code,) = cdns(host)
    assert code.error == ErrorCode.INVALID_SESSION_ID
    assert code.message == "Assigned Session ID must be non-zero"
