"""Control connection: RFC 2661 7.2.1 transitions and every error path, over an in-memory pair."""

from __future__ import annotations

import random

import pytest

from l2tp.protocol.avp import Avp
from l2tp.protocol.avps import ProtocolVersion
from l2tp.protocol.constants import AvpType, ErrorCode, MessageType, StopCcnResult
from l2tp.protocol.errors import LocalProtocolError
from l2tp.protocol.events import (
    Role,
    SessionClosed,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
    TunnelReleased,
)
from l2tp.protocol.header import build_control_message
from l2tp.protocol.message import ControlMessage, parse_message
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import Tunnel, TunnelConfig
from l2tp.protocol.tunnel_fsm import (
    LOCAL_INPUTS,
    TUNNEL_TABLE,
    TunnelAction,
    TunnelInput,
    TunnelState,
    lookup,
)

from .pair import FAST, Pair, lac_config, lns_config


def state_of(tunnel: Tunnel) -> TunnelState:
    """The tunnel's state now (a call, so that mypy does not keep an earlier narrowing)."""
    return tunnel.state


def closed(side: object) -> TunnelClosed:
    (event,) = side.of(TunnelClosed)  # type: ignore[attr-defined]
    return event  # type: ignore[no-any-return]


def test_establishment_three_way() -> None:
    p = Pair()
    lac, lns = p.establish()
    assert p.names() == ["SCCRQ", "SCCRP", "SCCCN", "ZLB"]
    assert lac.state is lns.state is TunnelState.ESTABLISHED
    assert lac.peer_tunnel_id == lns.tunnel_id and lns.peer_tunnel_id == lac.tunnel_id
    (up,) = p.lac.of(TunnelEstablished)
    assert up.peer.host_name == "lns" and up.peer.receive_window == 16
    assert lns.transport.congestion.peer_window == 16


def test_peer_receive_window_absent_means_4() -> None:
    p = Pair(lns=lns_config(transport=TransportConfig(ack_delay=0, receive_window=7)))
    lac, _ = p.establish()
    assert lac.peer is not None and lac.peer.receive_window == 7


@pytest.mark.parametrize("hide", [False, True])
def test_authentication_both_directions(hide: bool) -> None:
    p = Pair(
        lac_config(secret=b"shared", hide_avps=hide), lns_config(secret=b"shared", hide_avps=hide)
    )
    lac, lns = p.establish()
    assert lac.state is lns.state is TunnelState.ESTABLISHED
    # The SCCCN's Challenge Response is hidden (the SCCRP's is not: see below).
    scccn = next(d for d in p.sent if d.name == "SCCCN").message
    assert scccn is not None
    avp = next(a for a in scccn.avps if a.attribute == AvpType.CHALLENGE_RESPONSE)
    assert avp.hidden is hide
    if hide:
        assert any(a.attribute == AvpType.RANDOM_VECTOR for a in scccn.avps)
    sid = lac.open_session(p.now)
    p.pump()
    assert len(p.lns.of(SessionEstablished)) == 1 and sid in lac.sessions


@pytest.mark.parametrize("hide", [False, True])
def test_wrong_secret_stops_with_not_authorized(hide: bool) -> None:
    p = Pair(lac_config(secret=b"one", hide_avps=hide), lns_config(secret=b"two"))
    lac = p.connect()
    p.run(100)
    ours, theirs = closed(p.lac), closed(p.lns)
    # The SCCRQ hides nothing (the LNS could not pick a secret yet), so either way the
    # LAC is the one to find the LNS's Challenge Response wrong.
    detector, victim = ours, theirs
    for event in (ours, theirs):
        assert event.reason is not None and event.reason.result == StopCcnResult.NOT_AUTHORIZED
    assert not detector.by_peer and victim.by_peer
    assert "STOPCCN" in p.names()
    assert lac.state is TunnelState.CLOSED
    assert lac.counters.auth_failures + p.lns.tunnel.counters.auth_failures >= 1


def test_challenged_without_secret() -> None:
    p = Pair(lac_config(secret=b"k"), lns_config())
    p.connect()
    p.run(100)
    theirs = closed(p.lns)
    assert theirs.reason is not None and theirs.reason.result == StopCcnResult.NOT_AUTHORIZED
    assert not theirs.by_peer
    assert closed(p.lac).by_peer


def test_missing_challenge_response() -> None:
    """The LNS challenges; a peer with no secret answers nothing: StopCCN 4 at the LNS."""
    p = Pair(lac_config(), lns_config(secret=b"k"))
    p.connect()
    p.run(100)
    # The LAC cannot answer a challenge without a secret: it refuses the SCCRP.
    assert closed(p.lac).reason.result == StopCcnResult.NOT_AUTHORIZED  # type: ignore[union-attr]


def test_admin_close_then_close_wait_full_cycle() -> None:
    p = Pair()
    lac, lns = p.establish()
    lac.close(p.now, result=StopCcnResult.SHUTTING_DOWN, message="bye")
    p.pump()
    assert lac.state is lns.state is TunnelState.CLOSING
    theirs = closed(p.lns)
    assert theirs.by_peer and theirs.reason is not None
    assert (theirs.reason.result, theirs.reason.message) == (StopCcnResult.SHUTTING_DOWN, "bye")
    start = p.now
    p.run(start + 30.9)
    assert lns.state is TunnelState.CLOSING  # still acknowledging retransmissions
    p.run(start + 31.1)
    assert state_of(lac) is state_of(lns) is TunnelState.CLOSED
    assert p.lac.of(TunnelReleased) and p.lns.of(TunnelReleased)
    lac.close(p.now)  # idempotent
    assert p.lac.listener.reap() == [lac.tunnel_id]
    assert lac.get_timer() is None and lac.datagrams_to_send(p.now) == []


def test_close_from_idle_and_wait_reply() -> None:
    t = Tunnel(lac_config(), local_id=5, random_bytes=random.Random(0).randbytes)
    t.close(0.0)
    assert t.state is TunnelState.CLOSED
    p = Pair()
    lac = p.connect()
    lac.close(p.now)
    assert lac.state is TunnelState.CLOSING
    p.run(100)
    assert p.lns.tunnel.state is TunnelState.CLOSED


def test_retransmission_failure_takes_sessions_down() -> None:
    p = Pair()
    lac, _lns = p.establish()
    sid = lac.open_session(p.now)
    p.pump()
    lac.open_session(p.now)
    p.run(1000, drop=lambda d: True)  # the network dies
    ours = closed(p.lac)
    assert ours.reason is None and not ours.by_peer
    assert lac.state is TunnelState.CLOSED and len(lac.sessions) == 0
    downs = p.lac.of(SessionClosed)
    assert {e.session_id for e in downs} >= {sid}
    assert all(e.reason is None for e in downs)
    assert p.lac.of(TunnelReleased)


def test_hello_keeps_quiet_tunnel_alive_and_detects_death() -> None:
    cfg = TransportConfig(ack_delay=0, hello_interval=10.0)
    p = Pair(lac_config(transport=cfg), lns_config(transport=cfg))
    lac, lns = p.establish()
    p.run(200)
    assert lac.state is lns.state is TunnelState.ESTABLISHED
    assert "HELLO" in p.names()
    p.run(400, drop=lambda d: True)
    assert state_of(lac) is TunnelState.CLOSED and state_of(lns) is TunnelState.CLOSED


def inject(sender: Tunnel, message: ControlMessage, p: Pair, session_id: int = 0) -> None:
    sender.send_message(message, session_id=session_id, now=p.now)
    p.pump()


UNKNOWN_M = Avp(attribute=999, value=b"x", mandatory=True)
UNKNOWN_OPT = Avp(attribute=998, value=b"y", mandatory=False)


def test_unknown_mandatory_avp_in_tunnel_message() -> None:
    p = Pair()
    lac, lns = p.establish()
    inject(lac, ControlMessage(message_type=MessageType.HELLO, avps=[UNKNOWN_M]), p)
    ours = closed(p.lns)
    assert ours.reason is not None
    assert (ours.reason.result, ours.reason.error) == (
        StopCcnResult.GENERAL_ERROR,
        ErrorCode.UNKNOWN_MANDATORY_AVP,
    )
    assert "999" in ours.reason.message
    assert closed(p.lac).by_peer
    assert lns.counters.unknown_mandatory == 1


def test_unknown_optional_avp_is_skipped() -> None:
    p = Pair()
    lac, lns = p.establish()
    inject(lac, ControlMessage(message_type=MessageType.HELLO, avps=[UNKNOWN_OPT]), p)
    assert lns.state is TunnelState.ESTABLISHED


def scc(mtype: MessageType, tunnel_id: int, *extra: Avp, version: int = 1) -> ControlMessage:
    return ControlMessage.of(
        mtype,
        *extra,
        protocol_version=ProtocolVersion(version=version, revision=0),
        host_name="x",
        framing_capabilities=3,
        assigned_tunnel_id=tunnel_id,
    )


def replace_sccrq(p: Pair, message_for: object) -> Tunnel:
    """Start an initiator whose first message is a hand-built SCCRQ."""
    t = p.lac.listener.connect("lns", p.now)
    t.transport._unsent.clear()
    t.transport._ns_next = 0
    t.send_message(message_for(t), session_id=0, now=p.now)  # type: ignore[operator]
    return t


def test_unknown_mandatory_avp_in_sccrq() -> None:
    p = Pair()
    replace_sccrq(p, lambda t: scc(MessageType.SCCRQ, t.tunnel_id, UNKNOWN_M))
    p.run(100)
    theirs = closed(p.lns)
    assert theirs.reason is not None and theirs.reason.error == ErrorCode.UNKNOWN_MANDATORY_AVP
    assert closed(p.lac).by_peer  # the StopCCN found the initiator by its Assigned Tunnel ID


def test_unknown_message_type_with_and_without_m_bit() -> None:
    p = Pair()
    lac, lns = p.establish()
    inject(lac, ControlMessage(message_type=99, mandatory=False), p)
    assert lns.state is TunnelState.ESTABLISHED and lns.counters.unknown_ignored == 1
    inject(lac, ControlMessage(message_type=99, mandatory=True), p)
    ours = closed(p.lns)
    assert ours.reason is not None and ours.reason.error == ErrorCode.UNKNOWN_MANDATORY_AVP


def test_v3_only_message_type_is_unknown_in_v2() -> None:
    p = Pair()
    lac, _lns = p.establish()
    inject(lac, ControlMessage(message_type=MessageType.ACK), p)
    assert closed(p.lns).reason.error == ErrorCode.UNKNOWN_MANDATORY_AVP  # type: ignore[union-attr]


def test_missing_required_avp_stops() -> None:
    p = Pair()
    lac, _lns = p.establish()
    inject(lac, ControlMessage(message_type=MessageType.STOPCCN), p)
    ours = closed(p.lns)
    assert ours.reason is not None
    assert (ours.reason.result, ours.reason.error) == (
        StopCcnResult.GENERAL_ERROR,
        ErrorCode.OUT_OF_RANGE,
    )


@pytest.mark.parametrize("mtype", [MessageType.SCCRQ, MessageType.SCCRP, MessageType.SCCCN])
def test_establishment_message_when_established_is_fsm_error(mtype: MessageType) -> None:
    p = Pair()
    lac, lns = p.establish()
    msg = ControlMessage(message_type=mtype) if mtype == MessageType.SCCCN else None
    inject(lac, msg or scc(mtype, lac.tunnel_id), p)
    ours = closed(p.lns)
    assert ours.reason is not None and ours.reason.result == StopCcnResult.FSM_ERROR
    assert lns.counters.fsm_errors == 1
    assert closed(p.lac).by_peer


def test_session_message_before_established_is_fsm_error() -> None:
    p = Pair()
    lac = p.connect()
    (sccrq,) = p.wire
    p.wire.clear()
    p.deliver(sccrq)  # the LNS answers and waits in wait-ctl-conn
    lac.send_message(
        ControlMessage.of(MessageType.ICRQ, assigned_session_id=1, call_serial_number=1),
        session_id=0,
        now=p.now,
    )
    p.pump()  # the ICRQ (Ns 1) reaches the LNS before the SCCCN (Ns 2)
    assert closed(p.lns).reason.result == StopCcnResult.FSM_ERROR  # type: ignore[union-attr]


def test_unsupported_protocol_version() -> None:
    p = Pair()
    replace_sccrq(p, lambda t: scc(MessageType.SCCRQ, t.tunnel_id, version=2))
    p.run(100)
    theirs = closed(p.lns)
    assert theirs.reason is not None
    assert (theirs.reason.result, theirs.reason.error) == (StopCcnResult.UNSUPPORTED_VERSION, 0x100)


def test_garbage_never_raises() -> None:
    p = Pair()
    lac, lns = p.establish()
    for data in (b"", b"\xc8", b"\xc8\x02" + b"\x00" * 10, bytes(100), b"\xff" * 40):
        p.lns.listener.receive(data, "lac", p.now)
    assert lns.state is TunnelState.ESTABLISHED
    # A malformed body delivered in sequence: the AVP length overruns the message.
    from l2tp.protocol.header import build_control_message

    body = bytes.fromhex("8008000000000006") + bytes.fromhex("80ff0000000b")
    data = build_control_message(
        version=2,
        tunnel_id=lns.tunnel_id,
        ns=lac.transport.next_ns,
        nr=lac.transport.next_nr,
        body=body,
    )
    p.lns.listener.receive(data, "lac", p.now)
    p.pump()
    ours = closed(p.lns)
    assert ours.reason is not None and ours.reason.error == ErrorCode.BAD_LENGTH


def test_duplicate_sccrq_goes_to_the_same_tunnel() -> None:
    p = Pair()
    p.connect()
    (sccrq,) = p.wire
    p.deliver(sccrq)
    p.deliver(sccrq)
    assert len(p.lns.listener.tunnels) == 1
    assert p.lns.listener.counters.routed_retransmissions == 1
    p.pump()
    assert p.lns.tunnel.state is TunnelState.ESTABLISHED


def test_lost_sccrp_is_retransmitted() -> None:
    p = Pair()
    lac = p.connect()
    dropped: list[str] = []

    def once(d: object) -> bool:
        name = d.name  # type: ignore[attr-defined]
        if name == "SCCRP" and name not in dropped:
            dropped.append(name)
            return True
        return False

    p.run(10, drop=once)
    assert lac.state is p.lns.tunnel.state is TunnelState.ESTABLISHED


def test_max_tunnels_rejects_with_resources_error() -> None:
    p = Pair(max_tunnels=1)
    p.establish()
    second = p.lac.listener.connect("lns", p.now)
    p.run(5)
    assert second.state in (TunnelState.CLOSING, TunnelState.CLOSED)
    ours = next(e for e in p.lac.of(TunnelClosed) if e.tunnel_id == second.tunnel_id)
    assert ours.reason is not None and ours.by_peer
    assert ours.reason.error == ErrorCode.INSUFFICIENT_RESOURCES
    assert p.lns.listener.counters.rejected == 1


# ---------------------------------------------------------------- tie breaker


def tie_pair(lac_tb: bytes | None, lns_tb: bytes | None) -> tuple[Pair, Tunnel, Tunnel]:
    p = Pair(lac_config(tie_breaker=lac_tb is not None), lns_config(tie_breaker=lns_tb is not None))
    a = p.lac.listener.connect("lns", p.now)
    b = p.lns.listener.connect("lac", p.now)
    a.tie_breaker = lac_tb
    b.tie_breaker = lns_tb
    # Rebuild the SCCRQs with the chosen values (they were queued, not sent).
    for t in (a, b):
        t.transport._unsent.clear()
        t.transport._ns_next = 0
        t.state = TunnelState.IDLE
        t.connect(p.now)
    return p, a, b


def test_tie_breaker_lower_wins() -> None:
    p, a, b = tie_pair(b"\x00" * 7 + b"\x01", b"\x00" * 7 + b"\x02")
    sid = b.open_session(p.now)  # LNS's outgoing call waits for the tunnel
    p.run(50)
    # The LAC's SCCRQ (lower) wins: the LNS discards its own tunnel and answers the LAC's.
    assert a.state is TunnelState.ESTABLISHED
    assert b.state is TunnelState.CLOSED
    lost = next(e for e in p.lns.of(TunnelClosed) if e.tunnel_id == b.tunnel_id)
    assert lost.reason is None and lost.replaced_by is not None
    winner = p.lns.listener.tunnels[lost.replaced_by]
    assert winner.state is TunnelState.ESTABLISHED
    assert sid in winner.sessions  # the waiting session moved, same ID
    assert p.lns.listener.counters.ties_lost == 1 and p.lac.listener.counters.ties_won == 1
    assert "STOPCCN" not in p.names()  # the loser discards silently
    assert len(p.lns.of(SessionEstablished)) == 1


def test_tie_breaker_one_sided_wins() -> None:
    p, a, b = tie_pair(None, b"\x05" * 8)
    p.run(50)
    assert b.state is TunnelState.ESTABLISHED and a.state is TunnelState.CLOSED


def test_tie_breaker_equal_discards_both() -> None:
    p, a, b = tie_pair(b"\x05" * 8, b"\x05" * 8)
    p.run(50)
    assert a.state is TunnelState.CLOSED and b.state is TunnelState.CLOSED
    assert p.lac.listener.counters.ties_equal == 1 and p.lns.listener.counters.ties_equal == 1


def test_no_tie_breakers_two_tunnels() -> None:
    p, a, b = tie_pair(None, None)
    p.run(50)
    assert a.state is b.state is TunnelState.ESTABLISHED
    assert len(p.lac.listener.tunnels) == 2 and len(p.lns.listener.tunnels) == 2


# ------------------------------------------------------------------ the table


# What each action leaves the tunnel in (tunnel_fsm's conventions): the table may not
# pair an action with any other state. ACCEPT_* refusals and v2's DISCARD_LOSER end
# elsewhere at run time; test_tunnel_pairs drives those through a real tunnel.
ACTION_ENDS_IN: dict[TunnelAction, TunnelState | None] = {
    TunnelAction.SEND_SCCRQ: TunnelState.WAIT_CTL_REPLY,
    TunnelAction.ACCEPT_SCCRQ: TunnelState.WAIT_CTL_CONN,
    TunnelAction.ACCEPT_SCCRP: TunnelState.ESTABLISHED,
    TunnelAction.ACCEPT_SCCCN: TunnelState.ESTABLISHED,
    TunnelAction.DISPATCH: TunnelState.ESTABLISHED,
    TunnelAction.STOP: TunnelState.CLOSING,
    TunnelAction.STOP_FSM_ERROR: TunnelState.CLOSING,
    TunnelAction.STOP_BAD: TunnelState.CLOSING,
    TunnelAction.PEER_STOPPED: TunnelState.CLOSING,
    TunnelAction.DISCARD_LOSER: TunnelState.CLOSING,
    TunnelAction.ABANDON: TunnelState.CLOSED,
    TunnelAction.FAIL: TunnelState.CLOSED,
    TunnelAction.RELEASE: TunnelState.CLOSED,
    TunnelAction.IGNORE: None,  # stays where it is
}


def test_every_tunnel_pair_is_defined() -> None:
    """h2-style: every (state, input) pair has a transition or raises for local misuse,
    and each listed transition enters the state its action implies."""
    assert set(ACTION_ENDS_IN) == set(TunnelAction)
    for state in TunnelState:
        for inp in TunnelInput:
            if (state, inp) in TUNNEL_TABLE:
                t = lookup(state, inp)
                assert t is TUNNEL_TABLE[state, inp]
                assert t.next_state is (ACTION_ENDS_IN[t.action] or state), (state, inp)
                continue
            if inp in LOCAL_INPUTS:
                with pytest.raises(LocalProtocolError):
                    lookup(state, inp)
            else:
                t = lookup(state, inp)
                assert (t.action, t.next_state) == (
                    TunnelAction.STOP_FSM_ERROR,
                    TunnelState.CLOSING,
                )


def test_terminal_states_ignore_peer_input() -> None:
    for inp in TunnelInput:
        if inp is TunnelInput.OPEN:
            continue
        assert lookup(TunnelState.CLOSED, inp).action is TunnelAction.IGNORE
        assert lookup(TunnelState.CLOSING, inp).next_state in (
            TunnelState.CLOSING,
            TunnelState.CLOSED,
        )


def test_api_misuse_raises() -> None:
    p = Pair()
    lac, _ = p.establish()
    with pytest.raises(LocalProtocolError):
        lac.connect(p.now)
    with pytest.raises(LocalProtocolError):
        lac.close_session(12345, p.now)
    lac.close(p.now)
    with pytest.raises(LocalProtocolError):
        lac.open_session(p.now)
    with pytest.raises(LocalProtocolError):
        Tunnel(TunnelConfig(version=3), local_id=1 << 32, random_bytes=random.Random(0).randbytes)
    with pytest.raises(LocalProtocolError):
        Tunnel(TunnelConfig(), local_id=0, random_bytes=random.Random(0).randbytes)
    with pytest.raises(ValueError):
        TunnelConfig(hide_avps=True)


def test_standalone_tunnel_role_does_not_matter_for_setup() -> None:
    """RFC 2661 7.2: originator and recipient, not LAC and LNS: an LNS may initiate."""
    p = Pair()
    lns = p.connect("lns")
    p.pump()
    assert lns.state is TunnelState.ESTABLISHED
    assert p.lac.tunnel.config.role is Role.LAC
    assert FAST.hello_interval is None


def test_setup_times_out_when_peer_acknowledges_but_never_replies() -> None:
    """A peer that ZLB-acks our SCCRQ and then stays silent gets a StopCCN after setup_timeout."""
    tunnel = Tunnel(
        lac_config(setup_timeout=60.0), local_id=7, random_bytes=random.Random(1).randbytes
    )
    tunnel.connect(0.0)
    (sccrq,) = tunnel.datagrams_to_send(0.0)
    assert sccrq[12:20] == bytes.fromhex("8008000000000001")  # Message Type SCCRQ
    tunnel.receive_datagram(build_control_message(version=2, tunnel_id=7, ns=0, nr=1), 0.5)
    assert tunnel.state is TunnelState.WAIT_CTL_REPLY
    assert tunnel.get_timer() == 60.0
    tunnel.handle_timer(59.9)
    assert tunnel.state is TunnelState.WAIT_CTL_REPLY
    tunnel.handle_timer(60.0)
    assert state_of(tunnel) is TunnelState.CLOSING and tunnel.counters.setup_timeouts == 1
    (stopccn,) = tunnel.datagrams_to_send(60.0)
    assert stopccn[12:20] == bytes.fromhex("8008000000000004")  # Message Type StopCCN
    events = list(tunnel.events())
    (down,) = [e for e in events if isinstance(e, TunnelClosed)]
    assert down.reason is not None and down.reason.result == StopCcnResult.GENERAL_ERROR
    assert not down.by_peer


def test_scc_requests_and_replies_hide_nothing_but_later_messages_do() -> None:
    """Interop with xl2tpd: it unhides while parsing, before it has looked up our secret."""
    p = Pair(lac_config(secret=b"s", hide_avps=True), lns_config(secret=b"s", hide_avps=True))
    p.establish()
    hidden_by_type: dict[str, bool] = {}
    for d in p.sent:
        _header, message = parse_message(d.data, secret=b"s")
        if message is not None:
            hidden_by_type.setdefault(message.name, False)
            hidden_by_type[message.name] |= any(a.hidden for a in message.avps)
    assert hidden_by_type["SCCRQ"] is hidden_by_type["SCCRP"] is False
    assert hidden_by_type["SCCCN"] is True  # the LAC's Challenge Response


def test_setup_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="setup_timeout"):
        lac_config(setup_timeout=0.0)


def test_losing_a_tie_in_a_wrong_state_raises_and_keeps_waiting_sessions() -> None:
    """A tie can be lost only while our SCCRQ waits for its reply; called in another
    state the tunnel raises and must not have handed its waiting calls away first."""
    t = Tunnel(lac_config(), local_id=5, random_bytes=random.Random(0).randbytes)
    sid = t.open_session(0.0)
    assert t.state is TunnelState.IDLE and sid in t.sessions
    with pytest.raises(LocalProtocolError):
        t._lose_tie_breaker(0.0, replaced_by=9)
    assert sid in t.sessions and t.state is TunnelState.IDLE
