"""L2TPv3 control connections through :class:`TunnelListener` (demultiplexing, tie breaker)."""

from __future__ import annotations

from typing import Any

import pytest

from l2tp.protocol.avp import Avp
from l2tp.protocol.constants import AvpType, ErrorCode, MessageType, StopCcnResult
from l2tp.protocol.events import Reason, Role, SessionClosed, SessionEstablished, TunnelClosed
from l2tp.protocol.message import ControlMessage, serialize_message
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import Tunnel
from l2tp.protocol.tunnel_fsm import TunnelState

from .pair import Pair, config, header_of

SECRET = b"s3cret"
QUICK = TransportConfig(ack_delay=0.0, hello_interval=None, max_retries=2, max_timeout=2.0)


def v3(role: Role, **kw: Any) -> Any:
    return config(role, version=3, **kw)


def test_establish_and_call_through_listeners() -> None:
    p = Pair(v3(Role.LAC, secret=SECRET, digest_type=1), v3(Role.LNS, secret=SECRET, digest_type=1))
    a, b = p.establish()
    assert a.state is b.state is TunnelState.ESTABLISHED
    assert a.peer_tunnel_id == b.tunnel_id and b.peer_tunnel_id == a.tunnel_id
    a.open_session(p.now)
    p.pump()
    assert p.lac.of(SessionEstablished) and p.lns.of(SessionEstablished)
    assert "ZLB" not in p.names()


def test_wrong_secret_sccrq_makes_no_tunnel() -> None:
    p = Pair(
        v3(Role.LAC, secret=b"other", digest_type=0, transport=QUICK),
        v3(Role.LNS, secret=SECRET, digest_type=0, transport=QUICK),
    )
    p.connect()
    p.run(60)
    assert not p.lns.listener.tunnels
    assert p.lns.listener.counters.bad_digest == 3
    (closed,) = p.lac.of(TunnelClosed)
    assert closed.reason is None


def tie_pair(lac_tb: bytes, lns_tb: bytes) -> tuple[Pair, Tunnel, Tunnel]:
    p = Pair(v3(Role.LAC, tie_breaker=True), v3(Role.LNS, tie_breaker=True))
    a = p.lac.listener.connect("lns", p.now)
    b = p.lns.listener.connect("lac", p.now)
    a.tie_breaker, b.tie_breaker = lac_tb, lns_tb
    for t in (a, b):  # rebuild the queued SCCRQs with the chosen values
        t.transport._unsent.clear()
        t.transport._ns_next = 0
        t.state = TunnelState.IDLE
        t.connect(p.now)
    return p, a, b


def test_tie_breaker_lower_wins() -> None:
    p, a, b = tie_pair(b"\x00" * 7 + b"\x01", b"\x00" * 7 + b"\x02")
    p.run(50)
    # The loser's connection is discarded, acknowledging only until close-wait ends.
    assert a.state is TunnelState.ESTABLISHED and b.state is TunnelState.CLOSING
    assert p.lns.listener.counters.ties_lost == 1 and p.lac.listener.counters.ties_won == 1
    # RFC 3931 5.4.3: the winner rejects the losing SCCRQ with a StopCCN; the loser sends
    # none (more in test_tie_breaker.py).
    assert [d.src for d in p.sent if d.name == "STOPCCN"] == ["lac"]


# ------------------------------------------- unknown M-bit AVPs (RFC 3931 5.2, 5.4.2)


def _sccrq(*extra: Avp) -> bytes:
    msg = ControlMessage(
        message_type=MessageType.SCCRQ,
        avps=[
            Avp(attribute=AvpType.HOST_NAME, value="peer"),
            Avp(attribute=AvpType.ROUTER_ID, value=7),
            Avp(attribute=AvpType.ASSIGNED_CONTROL_CONNECTION_ID, value=0x0BADCAFE),
            Avp(attribute=AvpType.PSEUDOWIRE_CAPABILITIES_LIST, value=(5,)),
            *extra,
        ],
    )
    return serialize_message(msg, version=3, tunnel_id=0)


@pytest.mark.parametrize(
    ("avp", "name"),
    [
        (Avp(attribute=999, value=b"x", mandatory=True), "Unknown AVP 999"),
        (Avp(vendor=9, attribute=1, value=b"\x01\x02", mandatory=True), "Vendor 9 AVP 1"),
    ],
)
def test_unknown_mandatory_avp_in_sccrq_gets_stopccn_2_8(avp: Avp, name: str) -> None:
    """5.2: "the associated Control Connection MUST be issued a StopCCN with Result Code
    of 2 and Error Code of 8"; 5.4.2: the Error Message names the offending AVP."""
    p = Pair(v3(Role.LAC), v3(Role.LNS))
    tunnel = p.lns.listener.receive(_sccrq(avp), "lac", p.now)
    assert tunnel is not None
    p.flush()
    (stop,) = [d for d in p.sent if d.src == "lns"]
    assert stop.name == "STOPCCN"  # no SCCRP
    assert header_of(stop.data).tunnel_id == 0x0BADCAFE  # to the peer's connection ID
    msg = stop.message
    assert msg is not None and msg.result_code is not None
    assert msg.result_code.result == StopCcnResult.GENERAL_ERROR
    assert msg.result_code.error == ErrorCode.UNKNOWN_MANDATORY_AVP
    assert name in (msg.result_code.message or "")
    assert msg.assigned_connection_id == tunnel.tunnel_id
    assert tunnel.counters.unknown_mandatory == 1
    assert tunnel.state is TunnelState.CLOSING
    (closed,) = p.lns.of(TunnelClosed)
    assert not closed.by_peer and closed.reason == Reason.from_avp_value(msg.result_code)


def test_unknown_optional_avp_in_sccrq_is_ignored() -> None:
    """5.2: without the M bit "the AVP MUST be ignored"."""
    p = Pair(v3(Role.LAC), v3(Role.LNS))
    tunnel = p.lns.listener.receive(
        _sccrq(Avp(attribute=999, value=b"x", mandatory=False)), "lac", p.now
    )
    assert tunnel is not None and tunnel.state is TunnelState.WAIT_CTL_CONN
    p.flush()
    assert [d.name for d in p.sent] == ["SCCRP"]
    assert tunnel.counters.unknown_ignored == 0 and tunnel.counters.unknown_mandatory == 0


def test_unknown_mandatory_avp_in_hello_stops_the_connection() -> None:
    """5.2 names Hello among the control connection messages: StopCCN 2/8, not CDN."""
    p = Pair(v3(Role.LAC), v3(Role.LNS))
    a, b = p.establish()
    a.open_session(p.now)
    p.pump()
    hello = ControlMessage(
        message_type=MessageType.HELLO, avps=[Avp(attribute=998, value=b"", mandatory=True)]
    )
    a.send_message(hello, session_id=0, now=p.now)
    p.pump()
    stop = next(d for d in p.sent if d.name == "STOPCCN")
    assert stop.src == "lns" and stop.message is not None
    assert stop.message.result_code is not None
    assert (stop.message.result_code.result, stop.message.result_code.error) == (2, 8)
    assert b.state is TunnelState.CLOSING and "CDN" not in p.names()
    assert p.lns.of(SessionClosed)[0].description == "tunnel down"


def test_authenticated_refusal_verifies_at_the_initiator() -> None:
    """An SCCRQ refused with StopCCN (tunnel limit) under authentication: the StopCCN is
    sealed with an empty local nonce, the refuser's never having been advertised."""
    cfg = {"secret": SECRET, "digest_type": 0, "transport": QUICK}
    p = Pair(v3(Role.LAC, **cfg), v3(Role.LNS, **cfg), max_tunnels=1)
    p.establish()
    second = p.connect()
    p.run(30)
    closed = next(e for e in p.lac.of(TunnelClosed) if e.tunnel_id == second.tunnel_id)
    assert closed.by_peer and closed.reason is not None
    assert closed.reason.error == ErrorCode.INSUFFICIENT_RESOURCES
    assert second.counters.bad_digest == 0
    assert [d.name for d in p.sent].count("STOPCCN") == 1  # acknowledged, not retransmitted
