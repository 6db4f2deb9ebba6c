"""Hypothesis walk (like h2's state machine tests): random API calls, peer messages and
network faults on an in-memory pair. No exception escapes and every object stays in a
defined state with consistent bookkeeping."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2tp.protocol.avp import Avp
from l2tp.protocol.avps import ResultCode
from l2tp.protocol.constants import MessageType
from l2tp.protocol.errors import LocalProtocolError
from l2tp.protocol.events import TunnelClosed, TunnelEstablished, TunnelReleased
from l2tp.protocol.message import ControlMessage
from l2tp.protocol.session_fsm import STATES_BY_KIND, SessionState
from l2tp.protocol.tunnel_fsm import TunnelState

from .pair import Pair, lac_config, lns_config

SIDES = ("lac", "lns")
ops = st.one_of(
    st.tuples(st.just("connect"), st.sampled_from(SIDES)),
    st.tuples(st.just("open"), st.sampled_from(SIDES)),
    st.tuples(st.just("close_session"), st.sampled_from(SIDES), st.integers(0, 5)),
    st.tuples(st.just("accept"), st.sampled_from(SIDES), st.integers(0, 5)),
    st.tuples(st.just("close"), st.sampled_from(SIDES)),
    st.tuples(st.just("deliver"), st.integers(0, 3)),
    st.tuples(st.just("drop"), st.integers(0, 3)),
    st.tuples(st.just("duplicate"), st.integers(0, 3)),
    st.tuples(st.just("advance"), st.floats(0, 40)),
    st.tuples(
        st.just("inject"),
        st.sampled_from(SIDES),
        st.sampled_from([*list(MessageType), 99]),
        st.integers(0, 3),
        st.booleans(),
    ),
    st.tuples(st.just("garbage"), st.sampled_from(SIDES), st.binary(max_size=40)),
)


def inject_message(mtype: int, variant: int, unknown_m: bool, peer_sid: int) -> ControlMessage:
    values: dict[str, object] = {}
    if variant >= 1:
        values["assigned_session_id"] = peer_sid or 1
    if variant >= 2:
        values["result_code"] = ResultCode(result=1)
        values["call_serial_number"] = 1
    if variant >= 3:
        values["tx_connect_speed"] = 1
        values["framing_type"] = 1
    extra = [Avp(attribute=5000, value=b"", mandatory=True)] if unknown_m else []
    return ControlMessage.of(mtype, *extra, **values)


def check(p: Pair) -> None:
    """What must hold after every step, for every tunnel and session of both sides."""
    for side in p.sides.values():
        ups: Counter[int] = Counter()
        downs: Counter[int] = Counter()
        released: Counter[int] = Counter()
        for event in side.events:
            if isinstance(event, TunnelEstablished):
                ups[event.tunnel_id] += 1
            elif isinstance(event, TunnelClosed):
                downs[event.tunnel_id] += 1
            elif isinstance(event, TunnelReleased):
                released[event.tunnel_id] += 1
        for tid, tunnel in side.listener.tunnels.items():
            state = tunnel.state
            assert tid == tunnel.tunnel_id
            # Each tunnel reports coming up at most once, and going down exactly once
            # when it has (never twice, never without a TunnelClosed first).
            assert ups[tid] <= 1 and downs[tid] <= 1
            assert downs[tid] == (state in (TunnelState.CLOSING, TunnelState.CLOSED))
            assert released[tid] == (state is TunnelState.CLOSED)
            if state is TunnelState.ESTABLISHED:
                assert ups[tid] == 1
                assert tunnel.peer is not None and tunnel.peer_tunnel_id == tunnel.peer.tunnel_id
            elif state in (TunnelState.WAIT_CTL_REPLY, TunnelState.WAIT_CTL_CONN):
                assert ups[tid] == 0
            if state in (TunnelState.CLOSING, TunnelState.CLOSED):
                assert len(tunnel.sessions) == 0
            if state is TunnelState.CLOSED:
                assert tunnel.get_timer() is None and tunnel.datagrams_to_send(p.now) == []
            for session in tunnel.sessions:
                assert session.state in STATES_BY_KIND[session.kind]
                assert session.state is not SessionState.CLOSED
                assert tunnel.sessions.get(session.session_id) is session
                # A call waits for its tunnel, and only for its tunnel (tunnel-open).
                waiting = session.state is SessionState.WAIT_TUNNEL
                assert waiting is (state is not TunnelState.ESTABLISHED), (state, session)
                if session.state is SessionState.ESTABLISHED:
                    assert session.was_established and session.peer_session_id != 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(ops, max_size=40),
    st.booleans(),
    st.booleans(),
)
def test_random_walk(steps: list[tuple[Any, ...]], secret: bool, manual: bool) -> None:
    kw = {"secret": b"k", "hide_avps": True} if secret else {}
    p = Pair(lac_config(auto_accept=not manual, **kw), lns_config(auto_accept=not manual, **kw))
    for step in steps:
        op = step[0]
        side = (
            p.sides[str(step[1])]
            if op in ("connect", "open", "close_session", "accept", "close", "inject", "garbage")
            else None
        )
        tunnels = list(side.listener.tunnels.values()) if side is not None else []
        tunnel = tunnels[-1] if tunnels else None
        try:
            if op == "connect":
                p.connect(str(step[1]))
            elif op == "open" and tunnel is not None:
                tunnel.open_session(p.now)
            elif op in ("close_session", "accept") and tunnel is not None:
                sessions = list(tunnel.sessions)
                if sessions:
                    sid = sessions[int(step[2]) % len(sessions)].session_id
                    if op == "accept":
                        tunnel.accept_call(sid, p.now)
                    else:
                        tunnel.close_session(sid, p.now)
            elif op == "close" and tunnel is not None:
                tunnel.close(p.now)
        except LocalProtocolError:
            pass  # API misuse in this state: raised at the call site, state unchanged
        if op in ("deliver", "drop", "duplicate"):
            p.flush()
            if p.wire:
                dgram = p.wire[int(step[1]) % len(p.wire)]
                if op != "duplicate":
                    p.wire.remove(dgram)
                if op != "drop":
                    p.deliver(dgram)
        elif op == "advance":
            p.now += float(step[1])
            for s in p.sides.values():
                s.listener.handle_timer(p.now)
        elif op == "inject" and tunnel is not None:
            sessions = list(tunnel.sessions)
            peer_sid = sessions[0].peer_session_id if sessions else 0
            msg = inject_message(int(step[2]), int(step[3]), bool(step[4]), peer_sid)
            tunnel.send_message(msg, session_id=peer_sid, now=p.now)
        elif op == "garbage" and side is not None:
            other = "lns" if step[1] == "lac" else "lac"
            p.sides[other].listener.receive(bytes(step[2]), str(step[1]), p.now)
        p.flush()
        check(p)
    p.run(p.now + 200)
    check(p)
    for side in p.sides.values():
        for tunnel in side.listener.tunnels.values():
            assert tunnel.state in (TunnelState.ESTABLISHED, TunnelState.CLOSED) or (
                tunnel.state is TunnelState.IDLE
            )
