"""L2TPv3 outgoing calls, Circuit Status / SLI and WEN (RFC 3931 3.4.2, 5.4.5, 6.9-6.14, 7.4).

All on the in-memory LCCE pair of :mod:`.pair3` under its fake clock.
"""

from __future__ import annotations

from typing import Any

import pytest

from l2tp.protocol.avp import Avp
from l2tp.protocol.avps import Accm, CallErrors, CircuitStatus
from l2tp.protocol.constants import (
    AvpType,
    CdnResult,
    DataSequencing,
    ErrorCode,
    L2SpecificSublayer,
    MessageType,
    PseudowireType,
)
from l2tp.protocol.errors import LocalProtocolError
from l2tp.protocol.events import (
    CallKind,
    CallParams,
    CallRequested,
    CircuitStatusChanged,
    DataPlaneWanted,
    Role,
    SessionClosed,
    SessionEstablished,
    SessionInfo,
    WanErrorNotified,
)
from l2tp.protocol.message import ControlMessage, validate_message
from l2tp.protocol.session_fsm import SessionState
from l2tp.protocol.specs import V3_SPECS
from l2tp.protocol.tunnel import Tunnel

from .pair import Pair, lac_config, lns_config
from .pair3 import Datagram, Pair3, Side, config3

A = AvpType


def _established(**kw: Any) -> Pair3:
    p = Pair3(**kw)
    p.establish()
    return p


def _other(p: Pair3, side: Side) -> Side:
    return p.b if side is p.a else p.a


def _sent(p: Pair3, name: str) -> list[Datagram]:
    return [d for d in p.sent if d.name == name]


def _msg(d: Datagram) -> ControlMessage:
    msg = d.message
    assert msg is not None
    return msg


def _inject(p: Pair3, src: Tunnel, message: ControlMessage) -> None:
    src.send_message(message, session_id=0, now=p.now)
    p.pump()


# ----------------------------------------------------------- the AVP specs


def test_v3_session_message_specs_are_rfc_3931_section_6() -> None:
    """Transcribed again from RFC 3931 6.6-6.14 (Message Type is implicit)."""
    rv_md = {A.RANDOM_VECTOR, A.MESSAGE_DIGEST}
    ids = {A.LOCAL_SESSION_ID, A.REMOTE_SESSION_ID}
    speeds = {A.TX_CONNECT_SPEED_BPS, A.RX_CONNECT_SPEED_BPS}
    rfc = {
        MessageType.ICRQ: (
            ids | {A.CALL_SERIAL_NUMBER, A.PSEUDOWIRE_TYPE, A.REMOTE_END_ID, A.CIRCUIT_STATUS},
            rv_md
            | speeds
            | {
                A.ASSIGNED_COOKIE,
                A.TIE_BREAKER,
                A.L2_SPECIFIC_SUBLAYER,
                A.DATA_SEQUENCING,
                A.PHYSICAL_CHANNEL_ID,
            },
        ),
        MessageType.OCRQ: (  # 6.9: no Physical Channel ID
            ids | {A.CALL_SERIAL_NUMBER, A.PSEUDOWIRE_TYPE, A.REMOTE_END_ID, A.CIRCUIT_STATUS},
            rv_md
            | speeds
            | {A.ASSIGNED_COOKIE, A.TIE_BREAKER, A.L2_SPECIFIC_SUBLAYER, A.DATA_SEQUENCING},
        ),
        MessageType.ICRP: (
            ids | {A.CIRCUIT_STATUS},
            rv_md
            | speeds
            | {
                A.ASSIGNED_COOKIE,
                A.L2_SPECIFIC_SUBLAYER,
                A.DATA_SEQUENCING,
                A.PHYSICAL_CHANNEL_ID,
            },
        ),
        MessageType.OCRP: (
            ids | {A.CIRCUIT_STATUS},
            rv_md
            | speeds
            | {
                A.ASSIGNED_COOKIE,
                A.L2_SPECIFIC_SUBLAYER,
                A.DATA_SEQUENCING,
                A.PHYSICAL_CHANNEL_ID,
            },
        ),
        MessageType.ICCN: (
            ids,
            rv_md | speeds | {A.L2_SPECIFIC_SUBLAYER, A.DATA_SEQUENCING, A.CIRCUIT_STATUS},
        ),
        MessageType.OCCN: (
            ids,
            rv_md | speeds | {A.L2_SPECIFIC_SUBLAYER, A.DATA_SEQUENCING, A.CIRCUIT_STATUS},
        ),
        MessageType.WEN: (ids | {A.CALL_ERRORS}, rv_md),
        MessageType.SLI: (ids, rv_md | {A.CIRCUIT_STATUS}),  # 6.14: Circuit Status MAY
    }
    for mtype, (required, allowed) in rfc.items():
        spec = V3_SPECS[mtype]
        assert spec.required == {int(a) for a in required}, mtype.name
        assert spec.allowed == {int(a) for a in allowed}, mtype.name


# ---------------------------------------------------------- outgoing calls


def _v3_view(mine: SessionInfo, theirs: SessionInfo) -> dict[str, Any]:
    """The v3 fields of one side's SessionInfo, cookies as lengths and cross-checks."""
    return {
        "cookie": len(mine.cookie),
        "peer_cookie_is_theirs": mine.peer_cookie == theirs.cookie,
        "pseudowire_type": mine.pseudowire_type,
        "l2_specific_sublayer": mine.l2_specific_sublayer,
        "data_sequencing": mine.data_sequencing,
        "remote_end_id": mine.remote_end_id,
        "circuit_active": mine.circuit_active,
        "ids_cross": (mine.session_id, mine.peer_session_id)
        == (theirs.peer_session_id, theirs.session_id),
    }


def _call(outgoing: bool, caller: str) -> tuple[Pair3, SessionInfo, SessionInfo]:
    """A call from ``caller`` to the other side; (pair, caller's info, answerer's info)."""
    answer = CallParams(
        cookie_length=8,
        l2_specific_sublayer=L2SpecificSublayer.DEFAULT,
        data_sequencing=DataSequencing.NON_IP,
    )
    p = Pair3(config3(Role.LAC, call_params=answer), config3(Role.LNS, call_params=answer))
    p.establish()
    params = CallParams(
        outgoing=outgoing,
        cookie_length=4,
        pseudowire_type=PseudowireType.ETHERNET_VLAN,
        data_sequencing=DataSequencing.ALL,
        l2_specific_sublayer=L2SpecificSublayer.NONE,
        remote_end_id="eth0.10",
    )
    side = p.sides[caller]
    sid = side.tunnel.open_session(p.now, params)
    p.pump()
    (mine,) = side.of(SessionEstablished)
    (theirs,) = _other(p, side).of(SessionEstablished)
    assert mine.info.session_id == sid
    return p, mine.info, theirs.info


@pytest.mark.parametrize("caller", ["a", "b"])
def test_outgoing_call_from_either_lcce(caller: str) -> None:
    """RFC 3931 3.4.2: OCRQ, OCRP, OCCN; 7.4.1/7.4.2 tables; either LCCE may send OCRQ."""
    p, mine, theirs = _call(True, caller)
    assert p.names()[4:7] == ["OCRQ", "OCRP", "OCCN"]
    assert set(p.names()[7:]) == {"ZLB"}
    assert [d.src for d in p.sent[4:7]] == [caller, *[_other(p, p.sides[caller]).name] * 2]
    assert mine.kind is CallKind.LNS_OUTGOING and theirs.kind is CallKind.LAC_OUTGOING
    ocrq, ocrp, occn = (_msg(d) for d in p.sent[4:7])
    for msg in (ocrq, ocrp, occn):
        validate_message(msg, version=3, strict=True)
    assert ocrq.local_session_id == mine.session_id and ocrq.remote_session_id == 0
    assert ocrq.pseudowire_type == PseudowireType.ETHERNET_VLAN
    assert ocrq.get(A.REMOTE_END_ID) == "eth0.10"
    assert ocrq.circuit_status == CircuitStatus(active=True, new=True)
    assert ocrq.get(A.ASSIGNED_COOKIE) == mine.cookie and len(mine.cookie) == 4
    assert ocrq.get(A.CALL_SERIAL_NUMBER) == mine.call_serial == theirs.call_serial
    assert ocrp.local_session_id == theirs.session_id
    assert ocrp.remote_session_id == mine.session_id
    assert ocrp.circuit_status == CircuitStatus(active=True, new=True)
    assert ocrp.get(A.ASSIGNED_COOKIE) == theirs.cookie and len(theirs.cookie) == 8
    assert (occn.local_session_id, occn.remote_session_id) == (
        theirs.session_id,
        mine.session_id,
    )


def test_outgoing_and_incoming_calls_give_the_same_session_info() -> None:
    """Both sides of an OCRQ call learn what both sides of an ICRQ call learn."""
    _, in_mine, in_theirs = _call(False, "a")
    _, out_mine, out_theirs = _call(True, "a")
    assert _v3_view(out_mine, out_theirs) == _v3_view(in_mine, in_theirs)
    assert _v3_view(out_theirs, out_mine) == _v3_view(in_theirs, in_mine)
    caller = _v3_view(out_mine, out_theirs)
    assert caller == {
        "cookie": 4,
        "peer_cookie_is_theirs": True,
        "pseudowire_type": PseudowireType.ETHERNET_VLAN,
        "l2_specific_sublayer": L2SpecificSublayer.DEFAULT,  # what the answerer requires
        "data_sequencing": DataSequencing.NON_IP,
        "remote_end_id": "eth0.10",
        "circuit_active": True,
        "ids_cross": True,
    }
    answerer = _v3_view(out_theirs, out_mine)
    assert answerer["cookie"] == 8 and answerer["peer_cookie_is_theirs"]
    assert answerer["l2_specific_sublayer"] == L2SpecificSublayer.NONE
    assert answerer["data_sequencing"] == DataSequencing.ALL
    assert answerer["remote_end_id"] == "eth0.10"
    assert answerer["pseudowire_type"] == PseudowireType.ETHERNET_VLAN


def test_outgoing_call_waits_for_the_control_connection() -> None:
    p = Pair3()
    sid = p.a.tunnel.open_session(p.now, CallParams(outgoing=True))
    p.establish()
    names = [n for n in p.names() if n != "ZLB"]
    assert names == ["SCCRQ", "SCCRP", "SCCCN", "OCRQ", "OCRP", "OCCN"]
    assert p.a.of(SessionEstablished)[0].info.session_id == sid


def test_outgoing_call_manual_accept_with_answer_params() -> None:
    p = _established(b=config3(Role.LNS, auto_accept=False))
    p.a.tunnel.open_session(p.now, CallParams(outgoing=True, remote_end_id="circuit-7"))
    p.pump()
    (req,) = p.b.of(CallRequested)
    assert req.info.kind is CallKind.LAC_OUTGOING
    assert req.info.remote_end_id == "circuit-7" and req.info.pseudowire_type == 5
    assert p.b.tunnel.sessions.require(req.info.session_id).state is SessionState.WAIT_ACCEPT
    p.b.tunnel.accept_call(req.info.session_id, p.now, CallParams(cookie_length=8))
    p.pump()
    ocrp = _msg(_sent(p, "OCRP")[0])
    assert isinstance(ocrp.get(A.ASSIGNED_COOKIE), bytes)
    assert len(ocrp.get(A.ASSIGNED_COOKIE)) == 8  # type: ignore[arg-type]
    assert p.a.of(SessionEstablished)[0].info.peer_cookie == ocrp.get(A.ASSIGNED_COOKIE)


def test_outgoing_call_unsupported_pseudowire_gets_cdn_14() -> None:
    p = _established()
    p.a.tunnel.open_session(p.now, CallParams(outgoing=True, pseudowire_type=PseudowireType.PPP))
    p.pump()
    assert p.names()[4:6] == ["OCRQ", "CDN"]
    cdn = _msg(_sent(p, "CDN")[0])
    assert cdn.result_code is not None
    assert cdn.result_code.result == CdnResult.UNSUPPORTED_PW_TYPE
    (closed,) = p.a.of(SessionClosed)
    assert closed.by_peer and not p.b.of(SessionEstablished)


def test_second_ocrp_on_established_outgoing_call_gets_cdn_16() -> None:
    """RFC 3931 7.4.1 "established, Receive OCRQ, OCRP, OCCN: Send CDN"; 5.4.2 code 16."""
    p = _established()
    sid = p.a.tunnel.open_session(p.now, CallParams(outgoing=True))
    p.pump()
    assert p.a.tunnel.sessions.require(sid).kind is CallKind.LNS_OUTGOING
    peer_sid = p.a.of(SessionEstablished)[0].info.peer_session_id
    ocrp = ControlMessage.of(
        MessageType.OCRP,
        local_session_id=peer_sid,
        remote_session_id=sid,
        circuit_status=CircuitStatus(active=True),
    )
    _inject(p, p.b.tunnel, ocrp)
    cdn = _msg(_sent(p, "CDN")[0])
    assert cdn.result_code is not None and cdn.result_code.result == CdnResult.FSM_ERROR
    assert cdn.local_session_id == sid and cdn.remote_session_id == peer_sid
    assert not p.a.of(SessionClosed)[0].by_peer and p.b.of(SessionClosed)[0].by_peer


@pytest.mark.parametrize(
    ("role", "outgoing", "expect"),
    [
        (Role.LAC, None, "ICRQ"),
        (Role.LNS, None, "OCRQ"),
        (Role.LAC, False, "ICRQ"),
        (Role.LNS, True, "OCRQ"),
        (Role.LAC, True, None),
        (Role.LNS, False, None),
    ],
)
def test_v2_role_still_decides_the_kind_of_call(
    role: Role, outgoing: bool | None, expect: str | None
) -> None:
    p = Pair(lac_config(), lns_config()) if role is Role.LAC else Pair(lns_config(), lac_config())
    tunnel, _ = p.establish()
    assert tunnel.config.role is role
    if expect is None:
        with pytest.raises(LocalProtocolError, match="L2TPv2"):
            tunnel.open_session(p.now, CallParams(outgoing=outgoing))
        assert len(tunnel.sessions) == 0
        return
    tunnel.open_session(p.now, CallParams(outgoing=outgoing))
    p.pump()
    assert expect in p.names()
    assert len(p.lac.of(SessionEstablished)) == len(p.lns.of(SessionEstablished)) == 1


# ------------------------------------------------------- Circuit Status, SLI


@pytest.mark.parametrize("outgoing", [False, True])
@pytest.mark.parametrize("inactive", ["caller", "answerer"])
def test_inactive_circuit_in_request_or_reply_is_recorded(outgoing: bool, inactive: str) -> None:
    """RFC 3931 5.4.5: Circuit Status in ICRQ/ICRP/OCRQ/OCRP; A=0 means not ready."""
    down = CallParams(circuit_active=False)
    b_params = down if inactive == "answerer" else CallParams()
    p = _established(b=config3(Role.LNS, call_params=b_params))
    a_params = CallParams(outgoing=outgoing, circuit_active=inactive != "caller")
    p.a.tunnel.open_session(p.now, a_params)
    p.pump()
    request, reply = (_msg(d) for d in p.sent[4:6])
    assert request.circuit_status == CircuitStatus(active=inactive != "caller", new=True)
    assert reply.circuit_status == CircuitStatus(active=inactive != "answerer", new=True)
    caller = p.a.of(SessionEstablished)[0].info
    answerer = p.b.of(SessionEstablished)[0].info
    # Each side records the *peer's* circuit.
    assert answerer.circuit_active is (inactive != "caller")
    assert caller.circuit_active is (inactive != "answerer")


@pytest.mark.parametrize("sender", ["a", "b"])
def test_sli_circuit_status_both_ways(sender: str) -> None:
    """RFC 3931 6.14: SLI "sent by an LCCE", Local/Remote Session ID and Circuit Status."""
    p = _established()
    p.a.tunnel.open_session(p.now)
    p.pump()
    side = p.sides[sender]
    other = _other(p, side)
    mine = side.of(SessionEstablished)[0].info
    theirs = other.of(SessionEstablished)[0].info
    assert theirs.circuit_active is True
    side.tunnel.send_circuit_status(mine.session_id, p.now, active=False)
    p.pump()
    side.tunnel.send_circuit_status(mine.session_id, p.now, active=True, new=True)
    p.pump()
    slis = [_msg(d) for d in _sent(p, "SLI")]
    assert len(slis) == 2
    for sli in slis:
        validate_message(sli, version=3, strict=True)
        assert sli.local_session_id == mine.session_id
        assert sli.remote_session_id == mine.peer_session_id
    assert [s.circuit_status for s in slis] == [
        CircuitStatus(active=False, new=False),
        CircuitStatus(active=True, new=True),
    ]
    assert other.of(CircuitStatusChanged) == [
        CircuitStatusChanged(
            tunnel_id=other.tunnel.tunnel_id, session_id=theirs.session_id, active=False
        ),
        CircuitStatusChanged(
            tunnel_id=other.tunnel.tunnel_id, session_id=theirs.session_id, active=True, new=True
        ),
    ]
    assert not side.of(CircuitStatusChanged)
    session = other.tunnel.sessions.require(theirs.session_id)
    assert session.info.circuit_active is True
    assert session.state is SessionState.ESTABLISHED


def test_sli_inactive_is_visible_in_session_info() -> None:
    p = _established()
    sid = p.a.tunnel.open_session(p.now)
    p.pump()
    peer_sid = p.a.of(SessionEstablished)[0].info.peer_session_id
    p.a.tunnel.send_circuit_status(sid, p.now, active=False)
    p.pump()
    assert p.b.tunnel.sessions.require(peer_sid).info.circuit_active is False


def test_sli_without_circuit_status_is_accepted_and_reports_nothing() -> None:
    """6.14 lists Circuit Status under MAY: an SLI with only the IDs is valid."""
    p = _established()
    sid = p.a.tunnel.open_session(p.now)
    p.pump()
    peer_sid = p.a.of(SessionEstablished)[0].info.peer_session_id
    bare = ControlMessage.of(MessageType.SLI, local_session_id=peer_sid, remote_session_id=sid)
    _inject(p, p.b.tunnel, bare)
    assert "CDN" not in p.names()
    assert not p.a.of(CircuitStatusChanged) and not p.a.of(SessionClosed)
    assert p.a.tunnel.counters.invalid == 0


def test_circuit_status_api_misuse() -> None:
    p = _established()
    sid = p.a.tunnel.open_session(p.now)
    with pytest.raises(LocalProtocolError, match="wait-reply"):
        p.a.tunnel.send_circuit_status(sid, p.now, active=False)
    p.pump()
    with pytest.raises(LocalProtocolError, match="ACCM"):
        p.a.tunnel.send_sli(sid, Accm(send=0, receive=0), p.now)
    v2 = Pair()
    lac, _ = v2.establish()
    v2_sid = lac.open_session(v2.now)
    v2.pump()
    with pytest.raises(LocalProtocolError, match="L2TPv3"):
        lac.send_circuit_status(v2_sid, v2.now, active=False)


# --------------------------------------------------------------------- WEN


@pytest.mark.parametrize("sender", ["a", "b"])
@pytest.mark.parametrize("pw", [PseudowireType.ETHERNET, PseudowireType.PPP])
def test_wen_from_either_lcce_for_any_pseudowire(sender: str, pw: PseudowireType) -> None:
    """RFC 3931 6.13 keeps WEN (Circuit Errors AVP) with no pseudowire restriction."""
    caps = (PseudowireType.ETHERNET, PseudowireType.PPP)
    p = _established(
        a=config3(Role.LAC, pseudowire_capabilities=caps),
        b=config3(Role.LNS, pseudowire_capabilities=caps),
    )
    p.a.tunnel.open_session(p.now, CallParams(pseudowire_type=pw))
    p.pump()
    side = p.sides[sender]
    other = _other(p, side)
    mine = side.of(SessionEstablished)[0].info
    errors = CallErrors(hardware_overruns=3, buffer_overruns=4, timeout_errors=5)
    side.tunnel.send_wen(mine.session_id, errors, p.now)
    p.pump()
    (wen,) = (_msg(d) for d in _sent(p, "WEN"))
    validate_message(wen, version=3, strict=True)
    assert (wen.local_session_id, wen.remote_session_id) == (
        mine.session_id,
        mine.peer_session_id,
    )
    (event,) = other.of(WanErrorNotified)
    assert event.session_id == mine.peer_session_id and event.errors == errors
    assert "CDN" not in p.names()


def test_v2_wen_and_sli_keep_their_direction() -> None:
    """RFC 2661 6.12/6.13 unchanged: WEN LAC to LNS, SLI LNS to LAC."""
    p = Pair()
    lac, lns = p.establish()
    sid = lac.open_session(p.now)
    p.pump()
    lns_sid = p.lns.of(SessionEstablished)[0].info.session_id
    with pytest.raises(LocalProtocolError, match="LAC"):
        lns.send_wen(lns_sid, CallErrors(), p.now)
    with pytest.raises(LocalProtocolError, match="LNS"):
        lac.send_sli(sid, Accm(send=0, receive=0), p.now)


def test_wen_before_established_is_ignored() -> None:
    """Stray WEN in wait-connect: ignored, as for v2 (session_fsm docstring)."""
    p = Pair3(b=config3(Role.LNS, auto_accept=False))
    p.establish()
    sid = p.a.tunnel.open_session(p.now)
    p.pump()
    (req,) = p.b.of(CallRequested)
    wen = ControlMessage(
        message_type=MessageType.WEN,
        avps=[
            Avp(attribute=A.LOCAL_SESSION_ID, value=sid),
            Avp(attribute=A.REMOTE_SESSION_ID, value=req.info.session_id),
            Avp(attribute=A.CALL_ERRORS, value=CallErrors()),
        ],
    )
    _inject(p, p.a.tunnel, wen)
    assert not p.b.of(WanErrorNotified) and "CDN" not in p.names()


def test_held_icrp_the_data_plane_knows_both_cookies_first() -> None:
    """Issue 17 on L2TPv3 (RFC 3931 7.3.2, ICRQ recipient): a call answered with
    ``wait_data_plane`` reports DataPlaneWanted with the peer's cookie (from the ICRQ) and
    ours, drawn before the ICRP, which then carries the same cookie; the ICCN follows."""
    p = _established(b=config3(Role.LNS, auto_accept=False))
    p.a.tunnel.open_session(p.now, CallParams(cookie_length=4))
    p.pump()
    (req,) = p.b.of(CallRequested)
    sid = req.info.session_id
    p.b.tunnel.accept_call(sid, p.now, CallParams(cookie_length=8, wait_data_plane=True))
    p.pump()
    (wanted,) = p.b.of(DataPlaneWanted)
    assert wanted.info.peer_cookie is not None and len(wanted.info.peer_cookie) == 4
    assert wanted.info.cookie is not None and len(wanted.info.cookie) == 8
    assert not _sent(p, "ICRP")
    assert p.b.tunnel.sessions.require(sid).state is SessionState.WAIT_DATA_PLANE
    p.b.tunnel.data_plane_ready(sid, p.now)
    p.pump()
    (icrp,) = _sent(p, "ICRP")
    assert _msg(icrp).get(AvpType.ASSIGNED_COOKIE) == wanted.info.cookie
    (ours,) = p.b.of(SessionEstablished)
    assert ours.info.cookie == wanted.info.cookie
    assert p.a.of(SessionEstablished)[0].info.peer_cookie == wanted.info.cookie


def test_icrq_with_zero_local_session_id_gets_cdn() -> None:
    """RFC 3931 5.4.4: the Local Session ID is the sender's own, never 0; the call is
    refused with CDN 2 / Error Code 5 before any session is made."""
    p = _established()
    icrq = ControlMessage.of(
        MessageType.ICRQ,
        local_session_id=0,
        remote_session_id=0,
        call_serial_number=1,
        pseudowire_type=PseudowireType.ETHERNET,
        remote_end_id="pw1",
        circuit_status=CircuitStatus(active=True),
    )
    _inject(p, p.b.tunnel, icrq)
    cdn = _msg(_sent(p, "CDN")[0])
    assert cdn.result_code is not None
    assert cdn.result_code.error == ErrorCode.INVALID_SESSION_ID
    assert not p.a.tunnel.sessions and not p.a.of(CallRequested)
