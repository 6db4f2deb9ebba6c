"""The L2TPv3 control plane (RFC 3931) on an in-memory LCCE pair, without authentication."""

from __future__ import annotations

import pytest

from l2tp.protocol.avp import Avp
from l2tp.protocol.constants import (
    AvpType,
    CdnResult,
    DataSequencing,
    ErrorCode,
    L2SpecificSublayer,
    MessageType,
    PseudowireType,
    StopCcnResult,
)
from l2tp.protocol.events import (
    CallParams,
    Role,
    SessionClosed,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
)
from l2tp.protocol.header import parse_control_header
from l2tp.protocol.message import ControlMessage
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import Tunnel
from l2tp.protocol.tunnel_fsm import TunnelState

from .pair3 import Pair3, config3


def _established() -> Pair3:
    p = Pair3()
    p.establish()
    return p


def test_establishment() -> None:
    p = Pair3(config3(Role.LAC, router_id=0x0A000001), config3(Role.LNS, router_id=0x0A000002))
    p.establish()
    assert p.names() == ["SCCRQ", "SCCRP", "SCCCN", "ZLB"]
    a, b = p.a.tunnel, p.b.tunnel
    assert a.state is b.state is TunnelState.ESTABLISHED
    assert a.peer_tunnel_id == 0xAABBCCDD and b.peer_tunnel_id == 0x11223344
    (est,) = p.a.of(TunnelEstablished)
    assert est.peer.host_name == "lns"
    assert est.peer.router_id == 0x0A000002
    assert est.peer.pseudowire_capabilities == (
        PseudowireType.ETHERNET,
        PseudowireType.ETHERNET_VLAN,
    )
    assert p.b.of(TunnelEstablished)[0].peer.router_id == 0x0A000001
    sccrq = p.sent[0]
    header = parse_control_header(sccrq.data)
    assert header.version == 3 and header.tunnel_id == 0
    msg = sccrq.message
    assert msg is not None
    assert msg.assigned_connection_id == 0x11223344
    assert AvpType.ASSIGNED_TUNNEL_ID not in msg
    assert AvpType.MESSAGE_DIGEST not in msg  # no secret: no digest
    assert AvpType.CONTROL_MESSAGE_AUTHENTICATION_NONCE not in msg
    assert parse_control_header(p.sent[1].data).tunnel_id == 0x11223344


@pytest.mark.parametrize("a_len,b_len", [(0, 0), (4, 8), (8, 4), (8, 8)])
def test_session_with_cookies(a_len: int, b_len: int) -> None:
    b_params = CallParams(cookie_length=b_len, l2_specific_sublayer=L2SpecificSublayer.DEFAULT)
    p = Pair3(b=config3(Role.LNS, call_params=b_params))
    p.establish()
    params = CallParams(
        cookie_length=a_len,
        pseudowire_type=PseudowireType.ETHERNET_VLAN,
        data_sequencing=DataSequencing.ALL,
        remote_end_id="eth0.10",
    )
    sid = p.a.tunnel.open_session(p.now, params)
    p.pump()
    assert p.names()[4:] == ["ICRQ", "ICRP", "ICCN", "ZLB"]
    (ea,) = p.a.of(SessionEstablished)
    (eb,) = p.b.of(SessionEstablished)
    ia, ib = ea.info, eb.info
    assert ia.session_id == sid == ib.peer_session_id
    assert ib.session_id == ia.peer_session_id
    assert ia.session_id > 0xFFFF or ib.session_id > 0xFFFF  # drawn from 32 bits
    assert len(ia.cookie) == a_len and len(ib.cookie) == b_len
    assert ia.peer_cookie == ib.cookie and ib.peer_cookie == ia.cookie
    assert ia.pseudowire_type == ib.pseudowire_type == PseudowireType.ETHERNET_VLAN
    assert ib.remote_end_id == "eth0.10"
    assert ib.data_sequencing == DataSequencing.ALL  # what a asks b to do
    assert ia.l2_specific_sublayer == L2SpecificSublayer.DEFAULT
    icrq = p.sent[4].message
    assert icrq is not None
    assert icrq.local_session_id == sid and icrq.remote_session_id == 0
    assert parse_control_header(p.sent[4].data).session_id == 0
    assert (AvpType.ASSIGNED_COOKIE in icrq) == bool(a_len)


def test_either_lcce_places_calls_with_icrq() -> None:
    p = _established()
    p.b.tunnel.open_session(p.now)  # an LNS-role LCCE: still an ICRQ in v3
    p.pump()
    assert p.names()[4:7] == ["ICRQ", "ICRP", "ICCN"]
    assert p.a.of(SessionEstablished) and p.b.of(SessionEstablished)


@pytest.mark.parametrize("closer", ["a", "b"])
def test_cdn_both_ways(closer: str) -> None:
    p = _established()
    sid = p.a.tunnel.open_session(p.now)
    p.pump()
    info = p.a.of(SessionEstablished)[0].info
    side = p.sides[closer]
    other = p.b if closer == "a" else p.a
    own = sid if closer == "a" else info.peer_session_id
    side.tunnel.close_session(own, p.now, result=CdnResult.ADMINISTRATIVE)
    p.pump()
    cdn = next(d for d in p.sent if d.name == "CDN").message
    assert cdn is not None
    assert cdn.local_session_id == own
    assert cdn.remote_session_id == (info.peer_session_id if closer == "a" else sid)
    (mine,) = side.of(SessionClosed)
    (theirs,) = other.of(SessionClosed)
    assert not mine.by_peer and theirs.by_peer
    assert theirs.reason is not None and theirs.reason.result == CdnResult.ADMINISTRATIVE
    assert len(p.a.tunnel.sessions) == len(p.b.tunnel.sessions) == 0


def test_stopccn() -> None:
    p = _established()
    p.a.tunnel.open_session(p.now)
    p.pump()
    p.a.tunnel.close(p.now)
    p.pump()
    stop = next(d for d in p.sent if d.name == "STOPCCN").message
    assert stop is not None
    assert stop.assigned_connection_id == 0x11223344
    (closed,) = p.b.of(TunnelClosed)
    assert closed.by_peer and closed.reason is not None
    assert closed.reason.result == StopCcnResult.GENERAL_REQUEST
    assert p.b.of(SessionClosed)[0].description == "tunnel down"
    assert "CDN" not in p.names()


def test_retransmission_failure() -> None:
    quick = TransportConfig(ack_delay=0.0, hello_interval=None, max_retries=2, max_timeout=2.0)
    p = Pair3(config3(Role.LAC, transport=quick), config3(Role.LNS, transport=quick))
    p.establish()
    p.a.tunnel.open_session(p.now)
    p.run(60.0, alter=lambda d: None if d.src == "b" else d.data)
    (closed,) = p.a.of(TunnelClosed)
    assert closed.reason is None and not closed.by_peer
    assert p.a.of(SessionClosed)
    assert p.names("a").count("ICRQ") == 3  # first transmission + max_retries


def test_unsupported_pseudowire_type_gets_cdn_14() -> None:
    p = _established()
    p.a.tunnel.open_session(p.now, CallParams(pseudowire_type=PseudowireType.PPP))
    p.pump()
    cdn = next(d for d in p.sent if d.name == "CDN").message
    assert cdn is not None and cdn.result_code is not None
    assert cdn.result_code.result == CdnResult.UNSUPPORTED_PW_TYPE
    assert p.a.of(SessionClosed)[0].by_peer
    assert not p.b.of(SessionEstablished)


def _inject(p: Pair3, src: Tunnel, message: ControlMessage) -> None:
    src.send_message(message, session_id=0, now=p.now)
    p.pump()


def test_session_message_in_wrong_state_gets_cdn_16() -> None:
    """RFC 3931 5.4.2: CDN Result Code 16, finite state machine error."""
    p = _established()
    sid = p.a.tunnel.open_session(p.now)
    p.pump()
    peer_sid = p.a.of(SessionEstablished)[0].info.peer_session_id
    icrp = ControlMessage.of(
        MessageType.ICRP,
        local_session_id=peer_sid,
        remote_session_id=sid,
        circuit_status=p.sent[5].message.get(AvpType.CIRCUIT_STATUS),  # type: ignore[union-attr]
    )
    _inject(p, p.b.tunnel, icrp)
    cdn = next(d for d in p.sent if d.name == "CDN").message
    assert cdn is not None and cdn.result_code is not None
    assert cdn.result_code.result == CdnResult.FSM_ERROR
    assert p.b.of(SessionClosed)[0].by_peer


def test_unknown_mandatory_avp_in_session_message_gets_cdn() -> None:
    p = _established()
    sid = p.a.tunnel.open_session(p.now)
    p.pump()
    peer_sid = p.a.of(SessionEstablished)[0].info.peer_session_id
    wen = ControlMessage(
        message_type=MessageType.SLI,
        avps=[
            Avp(attribute=AvpType.LOCAL_SESSION_ID, value=peer_sid),
            Avp(attribute=AvpType.REMOTE_SESSION_ID, value=sid),
            Avp(attribute=999, value=b"x", mandatory=True),
        ],
    )
    _inject(p, p.b.tunnel, wen)
    cdn = next(d for d in p.sent if d.name == "CDN").message
    assert cdn is not None and cdn.result_code is not None
    assert cdn.result_code.error == ErrorCode.UNKNOWN_MANDATORY_AVP
    assert p.a.tunnel.counters.unknown_mandatory == 1
    assert p.a.tunnel.state is TunnelState.ESTABLISHED


def test_cdn_for_unknown_session_names_both_ids() -> None:
    p = _established()
    cdn = ControlMessage(
        message_type=MessageType.ICCN,
        avps=[
            Avp(attribute=AvpType.LOCAL_SESSION_ID, value=77),
            Avp(attribute=AvpType.REMOTE_SESSION_ID, value=1234),
        ],
    )
    _inject(p, p.b.tunnel, cdn)
    assert p.a.tunnel.sessions.counters.unknown_session == 1
