"""Hypothesis walks two L2TPv3 listeners through calls of both kinds, Circuit Status, WEN,
tie breakers, loss and duplication: peer faults never raise, every state stays defined."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2tp.protocol.avps import CallErrors
from l2tp.protocol.errors import LocalProtocolError
from l2tp.protocol.events import CallParams, Role
from l2tp.protocol.session_fsm import STATES_BY_KIND, SessionState
from l2tp.protocol.tunnel_fsm import TunnelState

from .pair import Pair, config

SIDES = ("lac", "lns")
ops = st.one_of(
    st.tuples(st.just("connect"), st.sampled_from(SIDES)),
    st.tuples(st.just("open"), st.sampled_from(SIDES), st.booleans(), st.booleans()),
    st.tuples(st.just("status"), st.sampled_from(SIDES), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("wen"), st.sampled_from(SIDES), st.integers(0, 5)),
    st.tuples(st.just("close_session"), st.sampled_from(SIDES), st.integers(0, 5)),
    st.tuples(st.just("accept"), st.sampled_from(SIDES), st.integers(0, 5)),
    st.tuples(st.just("close"), st.sampled_from(SIDES)),
    st.tuples(st.just("deliver"), st.integers(0, 3)),
    st.tuples(st.just("drop"), st.integers(0, 3)),
    st.tuples(st.just("duplicate"), st.integers(0, 3)),
    st.tuples(st.just("advance"), st.floats(0, 40)),
)


def check(p: Pair) -> None:
    for side in p.sides.values():
        for tunnel in side.listener.tunnels.values():
            if tunnel.state in (TunnelState.CLOSING, TunnelState.CLOSED):
                assert len(tunnel.sessions) == 0
            for session in tunnel.sessions:
                assert session.state in STATES_BY_KIND[session.kind]
                assert session.state is not SessionState.CLOSED


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, max_size=40), st.booleans(), st.booleans())
def test_v3_random_walk(steps: list[tuple[Any, ...]], auth: bool, manual: bool) -> None:
    kw: dict[str, object] = {"secret": b"k", "digest_type": 1} if auth else {}
    p = Pair(
        config(Role.LAC, version=3, tie_breaker=True, auto_accept=not manual, **kw),
        config(Role.LNS, version=3, tie_breaker=True, auto_accept=not manual, **kw),
    )
    for step in steps:
        op = step[0]
        side = (
            p.sides[str(step[1])] if op not in ("deliver", "drop", "duplicate", "advance") else None
        )
        tunnels = list(side.listener.tunnels.values()) if side is not None else []
        tunnel = tunnels[-1] if tunnels else None
        sessions = list(tunnel.sessions) if tunnel is not None else []
        pick = (
            sessions[int(step[2]) % len(sessions)].session_id if len(step) > 2 and sessions else 0
        )
        try:
            if op == "connect":
                p.connect(str(step[1]))
            elif op == "open":
                if tunnel is None:
                    tunnel = p.connect(str(step[1]))
                params = CallParams(outgoing=bool(step[2]), circuit_active=bool(step[3]))
                tunnel.open_session(p.now, params)
            elif op == "status" and pick:
                assert tunnel is not None
                tunnel.send_circuit_status(pick, p.now, active=bool(step[3]))
            elif op == "wen" and pick:
                assert tunnel is not None
                tunnel.send_wen(pick, CallErrors(timeout_errors=1), p.now)
            elif op == "accept" and pick:
                assert tunnel is not None
                tunnel.accept_call(pick, p.now)
            elif op == "close_session" and pick:
                assert tunnel is not None
                tunnel.close_session(pick, p.now)
            elif op == "close" and tunnel is not None:
                tunnel.close(p.now)
        except LocalProtocolError:
            pass  # misuse in this state: raised at the call site
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
        p.flush()
        check(p)
    p.run(p.now + 300)
    check(p)
    for side in p.sides.values():
        for tunnel in side.listener.tunnels.values():
            assert tunnel.state in (TunnelState.ESTABLISHED, TunnelState.CLOSED, TunnelState.IDLE)
