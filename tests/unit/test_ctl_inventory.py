"""Snapshots for ``l2tp ctl`` (l2tp.daemons.inventory), the counters they read from the
sans-IO core, the CLI's formatting of them and the daemons' log formats. Fake clock only."""

from __future__ import annotations

import io
import json
import logging
from types import SimpleNamespace
from typing import Any, cast

from l2tp.cli import ctl
from l2tp.daemons import inventory, logformat
from l2tp.protocol.constants import MessageType
from l2tp.protocol.events import Reason, SessionClosed, TunnelClosed
from l2tp.protocol.session_fsm import SessionState
from l2tp.protocol.transport import HELLO_BODY, Transport, TransportConfig
from l2tp.protocol.tunnel_fsm import TunnelState
from tests.unit.pair import Pair


def _hello_pair() -> tuple[Transport, Transport]:
    config = TransportConfig(hello_interval=10.0, ack_delay=0.25)
    return (
        Transport(version=2, local_id=1, peer_id=2, config=config),
        Transport(version=2, local_id=2, peer_id=1, config=config),
    )


def test_hello_round_trip_time_is_measured_on_the_callers_clock() -> None:
    a, b = _hello_pair()
    assert a.datagrams_to_send(0.0) == [] and b.datagrams_to_send(0.0) == []
    deadline = a.get_timer()
    assert deadline == 10.0
    a.handle_timer(deadline)
    (hello,) = a.datagrams_to_send(deadline)
    assert a.counters.hello_sent == 1 and a.counters.last_hello_rtt is None
    b.receive(hello, 10.5)  # 0.5 s on the way
    ack_at = b.get_timer()
    assert ack_at == 10.75  # the acknowledgement waits ack_delay for a reply to ride on
    b.handle_timer(ack_at)
    (zlb,) = b.datagrams_to_send(ack_at)
    a.receive(zlb, 11.0)
    assert a.counters.hello_acked == 1
    assert a.counters.last_hello_rtt == 1.0
    record = inventory.transport_counters(a)
    assert record["hello_rtt"] == 1.0
    assert record["sent"] == {"HELLO": 1}
    assert record["zlb_received"] == 1 and record["retransmissions"] == 0


def test_an_acknowledged_ordinary_message_is_no_hello_sample() -> None:
    a, b = _hello_pair()
    a.send(b"\x80\x08\x00\x00\x00\x00\x00\x0a", now=0.0)  # not a HELLO
    (msg,) = a.datagrams_to_send(0.0)
    b.receive(msg, 0.1)
    b.handle_timer(0.35)
    (zlb,) = b.datagrams_to_send(0.35)
    a.receive(zlb, 0.4)
    assert (a.counters.hello_acked, a.counters.last_hello_rtt) == (0, None)
    assert HELLO_BODY  # the body a HELLO would have had


def test_tunnel_counts_messages_by_type_both_ways() -> None:
    pair = Pair()
    lac, lns = pair.establish()
    lac.open_session(pair.now, None)
    pair.pump()
    assert lac.counters.sent_by_type == {
        MessageType.SCCRQ: 1,
        MessageType.SCCCN: 1,
        MessageType.ICRQ: 1,
        MessageType.ICCN: 1,
    }
    assert lac.counters.received_by_type == {MessageType.SCCRP: 1, MessageType.ICRP: 1}
    assert lns.counters.received_by_type == lac.counters.sent_by_type
    assert lns.counters.sent_by_type == lac.counters.received_by_type
    assert inventory.message_counts(lac.counters.received_by_type) == {"SCCRP": 1, "ICRP": 1}


def test_message_counts_names_unknown_types_by_number() -> None:
    assert inventory.message_counts({99: 2, 4: 1}) == {"STOPCCN": 1, "99": 2}


def test_event_records_without_a_tunnel_handle() -> None:
    closed = TunnelClosed(
        tunnel_id=5, reason=Reason(result=6, error=0, message="bye"), by_peer=True
    )
    record = inventory.event_record(closed, None, "t1")
    assert record == {
        "type": "tunnel-down",
        "tunnel_id": 5,
        "peer_tunnel_id": None,
        "peer": None,
        "name": "t1",
        "by_peer": True,
        "reason": {"result": 6, "error": 0, "message": "bye"},
        "description": "",
    }
    gone = SessionClosed(
        tunnel_id=5,
        session_id=7,
        peer_session_id=8,
        reason=None,
        by_peer=False,
        was_established=True,
    )
    record = inventory.event_record(gone, None)
    assert record is not None
    assert (record["type"], record["session_id"], record["reason"]) == ("session-down", 7, None)


def _fake_tunnel(state: TunnelState, sessions: dict[int, SessionState]) -> Any:
    table = {sid: SimpleNamespace(state=st) for sid, st in sessions.items()}
    return SimpleNamespace(
        state=state,
        tunnel=SimpleNamespace(sessions=table),
        sessions={sid: SimpleNamespace(session_id=sid) for sid in sessions},
    )


def test_state_counts() -> None:
    tunnels = [
        _fake_tunnel(
            TunnelState.ESTABLISHED, {1: SessionState.ESTABLISHED, 2: SessionState.WAIT_REPLY}
        ),
        _fake_tunnel(TunnelState.ESTABLISHED, {3: SessionState.ESTABLISHED}),
        _fake_tunnel(TunnelState.WAIT_CTL_REPLY, {}),
    ]
    counts = inventory.state_counts(cast(Any, tunnels))
    assert counts == {
        "tunnels": {"established": 2, "wait-ctl-reply": 1},
        "sessions": {"established": 2, "wait-reply": 1},
    }


# ------------------------------------------------------------ CLI formatting


def test_uptime_format() -> None:
    assert [ctl.uptime(s) for s in (None, 0, 59.9, 61, 3720, 2 * 86400 + 3 * 3600)] == [
        "-",
        "0s",
        "59s",
        "1m01s",
        "1h02m",
        "2d03h",
    ]


def _tunnel_record(**kw: Any) -> dict[str, Any]:
    a, _ = _hello_pair()
    record: dict[str, Any] = {
        "tunnel_id": 4711,
        "peer_tunnel_id": 12,
        "name": "t1",
        "peer": "192.0.2.1:1701",
        "local": "192.0.2.2:40000",
        "role": "lac",
        "side": "initiator",
        "version": 2,
        "encap": "udp",
        "state": "established",
        "uptime": 75.0,
        "sessions": 3,
        "counters": inventory.transport_counters(
            a, sent_by_type={1: 1, 3: 1, 10: 3}, received_by_type={2: 1, 11: 3}
        ),
    }
    record["counters"]["hello_rtt"] = 0.0123
    record.update(kw)
    return record


def test_tunnels_table_is_aligned_with_totals() -> None:
    text = ctl.tunnels_table([_tunnel_record(), _tunnel_record(tunnel_id=5, name=None)])
    header, first, second = text.splitlines()
    assert header.split() == list(ctl.TUNNEL_HEADERS)
    assert first.split() == [
        *("4711", "12", "t1", "192.0.2.1:1701", "lac", "2", "udp", "established", "1m15s"),
        *("3", "5", "4", "0", "0", "0", "12.3ms"),
    ]
    assert second.split()[:3] == ["5", "12", "-"]
    assert len(header) == len(first) == len(second)  # right-aligned numbers, same width


def test_sessions_table_and_kernel_counters() -> None:
    record = {
        "tunnel_id": 1,
        "session_id": 2,
        "peer_tunnel_id": 3,
        "peer_session_id": 4,
        "state": "established",
        "pseudowire": "ppp",
        "circuit": None,
        "interface": "ppp0",
        "pppd_pid": 999,
        "uptime": 5,
        "kernel": {"rx_packets": 10, "tx_packets": 11},
    }
    text = ctl.sessions_table([record, {**record, "kernel": None, "pppd_pid": None}])
    rows = [line.split() for line in text.splitlines()]
    assert rows[0] == list(ctl.SESSION_HEADERS)
    assert rows[1] == ["1", "2", "3", "4", "established", "ppp", "ppp0", "999", "5s", "10", "11"]
    assert rows[2][-4:] == ["-", "5s", "-", "-"]


def test_status_and_event_lines() -> None:
    text = ctl.status_text(
        {
            "daemon": "l2tp-lns",
            "version": "0.1.0",
            "pid": 42,
            "uptime": 3,
            "config_file": "/etc/l2tp/lns.toml",
            "summary": "s",
            "tunnels": {"established": 2, "closing": 1},
            "sessions": {},
            "listeners": [
                {"name": "edge", "address": "0.0.0.0:1701"},
                {
                    "name": "core",
                    "address": "0.0.0.0:1702",
                    "counters": {
                        "accepted": 4,
                        "rejected": 3,
                        "rejects_unsent": 1,
                        "not_allowed": 2,
                        "pending_limit": 0,
                        "pending_evicted": 5,
                    },
                },
                {"name": "quiet", "address": "0.0.0.0:1703", "counters": {"accepted": 1}},
            ],
        }
    )
    assert "daemon    l2tp-lns 0.1.0 (pid 42)\n" in text
    assert "tunnels   3 (2 established, 1 closing)\n" in text
    assert "sessions  0\n" in text
    assert "listener  edge on 0.0.0.0:1701\n" in text
    assert (
        "listener  core on 0.0.0.0:1702: 4 SCCRQs accepted, 5 refused"
        " (3 tunnel limit (1 unanswered), 2 not allowed), 5 half-open evicted\n"
    ) in text
    assert "quiet on 0.0.0.0:1703: 1 SCCRQs accepted, 0 refused, 0 half-open evicted\n" in text
    line = ctl.event_line(
        {
            "type": "tunnel-down",
            "time": "T",
            "tunnel_id": 1,
            "peer_tunnel_id": 2,
            "peer": "192.0.2.1:1701",
            "name": None,
            "by_peer": True,
            "reason": {"result": 6, "error": 0, "message": "bye now"},
        }
    )
    assert line == (
        'T tunnel-down tunnel=1 peer_tunnel=2 peer=192.0.2.1:1701 result=6 message="bye now"'
        " by_peer=yes"
    )


# --------------------------------------------------------------- log format


def _log_through(fmt: str, **extra: Any) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        logformat.JsonFormatter("kl2tpd") if fmt == "json" else logformat.TextFormatter()
    )
    logger = logging.getLogger(f"test.ctl.{fmt}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("tunnel %s: up", "t1", extra=extra)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_json_log_lines_carry_the_context() -> None:
    line = _log_through("json", tunnel=4711, peer="192.0.2.1:1701")
    obj = json.loads(line)
    assert obj["message"] == "tunnel t1: up"
    assert (obj["level"], obj["logger"], obj["daemon"]) == ("INFO", "test.ctl.json", "kl2tpd")
    assert (obj["tunnel"], obj["peer"]) == (4711, "192.0.2.1:1701")
    assert "session" not in obj
    assert obj["time"].endswith("Z") and "T" in obj["time"]


def test_text_log_lines_append_key_value_context() -> None:
    assert (
        _log_through("text", tunnel=4711, session=3)
        .rstrip()
        .endswith("test.ctl.text: tunnel t1: up tunnel=4711 session=3")
    )
    assert _log_through("text").rstrip().endswith("test.ctl.text: tunnel t1: up")


def test_reason_reads_as_text_in_logs() -> None:
    assert str(Reason(result=6, error=0, message="bye")) == "result 6, error 0: bye"
    assert str(Reason(result=3)) == "result 3"
