"""The metrics exporter without sockets or clocks: histograms, the event tally over an
in-memory LAC/LNS pair (set-up times from the handles' loop times, closed by result,
the counters of a reaped tunnel kept), the collector's families against the inventory
records, the HTTP request handling, and the ``metrics`` keys of the file."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from l2tp import config as cfg
from l2tp.daemons import inventory
from l2tp.daemons.metrics import (
    LISTENER_REFUSALS,
    EventTally,
    Histogram,
    L2tpCollector,
    listener_metrics,
    samples,
)
from l2tp.daemons.metrics_http import MetricsServer, add_metrics_arguments, metrics_settings
from l2tp.protocol.constants import CdnResult, StopCcnResult
from l2tp.protocol.events import SessionClosed, TunnelClosed
from l2tp.protocol.listener import ListenerCounters
from tests.unit.pair import Pair

pytestmark = pytest.mark.unit

Labels = tuple[tuple[str, str], ...]


def test_histogram_buckets_are_cumulative_with_le_bounds() -> None:
    h = Histogram((0.1, 1.0))
    for value in (0.1, 0.5, 3.0, -1.0):  # a bound belongs to its bucket; negatives to 0
        h.observe(value)
    family = h.family("x_seconds", "doc")
    got = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert got[("x_seconds_bucket", "0.1")] == 2
    assert got[("x_seconds_bucket", "1.0")] == 3
    assert got[("x_seconds_bucket", "+Inf")] == 4
    assert got[("x_seconds_count", None)] == 4
    assert got[("x_seconds_sum", None)] == pytest.approx(3.6)


class Handle:
    """What the tally and :mod:`inventory` read of a ``TunnelHandle``."""

    def __init__(self, tunnel: Any, sessions: dict[int, Any]) -> None:
        self.tunnel = tunnel
        self.tunnel_id = tunnel.tunnel_id
        self.created_at = 0.0
        self.established_at = 0.2
        self.sessions = sessions

    @property
    def state(self) -> Any:
        return self.tunnel.state


class World:
    """A LAC tunnel of an in-memory pair behind fake runtime handles (the tally and the
    collector read only what a context and its handles show)."""

    def __init__(self) -> None:
        self.pair = Pair()
        self.tunnel = self.pair.connect()
        self.pair.now = 0.2
        self.pair.pump()
        self.sid = self.tunnel.open_session(0.5)
        self.pair.now = 0.8
        self.pair.pump()
        self.session = SimpleNamespace(session_id=self.sid, created_at=0.5, established_at=0.8)
        self.th = Handle(self.tunnel, {self.sid: self.session})
        self.handles: dict[int, Any] = {self.tunnel.tunnel_id: self.th}
        self.ctx = SimpleNamespace(tunnels=self.handles, tunnel=self.handles.get)
        self.tally = EventTally(cast(Any, self.ctx))
        self.collector = L2tpCollector(self, tally=self.tally, started=1000.0)

    def feed(self) -> None:
        """Hand the LAC's events to the tally, as the subscription would."""
        for event in self.pair.lac.events:
            self.tally.handle(event)
        self.pair.lac.events.clear()

    # the MetricsSource the collector reads (the shape of ContextTarget's)
    def status(self) -> dict[str, Any]:
        counts = inventory.state_counts(cast(Any, self.handles.values()))
        return {"daemon": "kl2tpd", "version": "9.9", "uptime": 5.0, "counters": None, **counts}

    def tunnels(self) -> list[dict[str, Any]]:
        return [
            {
                "tunnel_id": tid,
                "name": "t1",
                "peer": "127.0.0.1:1701",
                "sessions": len(th.sessions),
                "counters": inventory.control_counters(th),
            }
            for tid, th in self.handles.items()
        ]

    def samples(self) -> dict[tuple[str, Labels], float]:
        return samples(self.collector)


def _messages(values: dict[tuple[str, Labels], float]) -> dict[tuple[str, str], float]:
    out = {}
    for (name, labels), value in values.items():
        if name == "l2tp_control_messages_total":
            d = dict(labels)
            out[d["direction"], d["message"]] = value
    return out


def test_set_up_times_come_from_the_handles_loop_times() -> None:
    w = World()
    w.feed()
    assert w.tally.tunnel_setup.count == 1
    assert w.tally.tunnel_setup.sum == pytest.approx(0.2)
    assert w.tally.session_setup.count == 1
    assert w.tally.session_setup.sum == pytest.approx(0.3)
    got = w.samples()
    assert got["l2tp_tunnel_setup_seconds_bucket", (("le", "0.1"),)] == 0
    assert got["l2tp_tunnel_setup_seconds_bucket", (("le", "0.25"),)] == 1
    assert got["l2tp_session_setup_seconds_count", ()] == 1
    assert got["l2tp_sessions", (("state", "established"),)] == 1
    assert got["l2tp_tunnels", (("state", "established"),)] == 1
    assert got["l2tp_daemon_info", (("daemon", "kl2tpd"), ("version", "9.9"))] == 1
    assert got["l2tp_daemon_start_time_seconds", ()] == 1000.0


def test_counters_of_a_closed_and_reaped_tunnel_are_kept_once() -> None:
    w = World()
    w.feed()
    before = _messages(w.samples())
    assert before[("sent", "SCCRQ")] == 1 and before[("received", "ICRP")] == 1
    w.tunnel.close(1.0, result=StopCcnResult.GENERAL_REQUEST, message="bye")
    w.pair.now = 1.0
    w.pair.pump()
    w.feed()
    closing = _messages(w.samples())
    assert closing[("sent", "STOPCCN")] == 1
    w.handles.clear()  # the runtime reaps it
    reaped = w.samples()
    assert _messages(reaped) == closing  # neither lost nor counted twice
    assert reaped["l2tp_tunnels", (("state", "established"),)] == 0
    closed = (("closed_by", "local"), ("result", str(int(StopCcnResult.GENERAL_REQUEST))))
    assert reaped["l2tp_tunnel_closed_total", closed] == 1
    assert w.samples() == reaped  # folding twice adds nothing


def test_closed_results_count_by_code_and_side() -> None:
    w = World()
    tally = w.tally
    tally.handle(
        SessionClosed(
            tunnel_id=1,
            session_id=2,
            peer_session_id=3,
            reason=None,
            by_peer=False,
            was_established=True,
        )
    )
    for _ in range(2):
        tally.handle(TunnelClosed(tunnel_id=99, reason=None, by_peer=True))
    reason = SimpleNamespace(result=int(CdnResult.ADMINISTRATIVE), error=None, message="")
    tally.handle(
        SessionClosed(
            tunnel_id=1,
            session_id=4,
            peer_session_id=5,
            reason=cast(Any, reason),
            by_peer=True,
            was_established=True,
        )
    )
    assert tally.sessions_closed == {("none", "local"): 1, ("3", "peer"): 1}
    assert tally.tunnels_closed == {("none", "peer"): 2}


def test_per_tunnel_series_only_when_asked() -> None:
    w = World()
    names = {name for name, _ in w.samples()}
    assert not any(n.startswith("l2tp_tunnel_rtt") or n == "l2tp_tunnel_sessions" for n in names)
    w.collector.per_tunnel = True
    got = w.samples()
    key = (("name", "t1"), ("peer", "127.0.0.1:1701"), ("tunnel_id", str(w.tunnel.tunnel_id)))
    assert got["l2tp_tunnel_sessions", key] == 1
    assert got["l2tp_tunnel_retransmissions_total", key] == 0
    assert ("l2tp_tunnel_rtt_seconds", key) not in got  # no HELLO acknowledged yet


def test_exposition_parses_and_names_every_required_family() -> None:
    w = World()
    w.feed()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(w.collector)
    text = generate_latest(registry).decode()
    families = {f.name for f in text_string_to_metric_families(text)}
    required = {
        "l2tp_tunnels",
        "l2tp_sessions",
        "l2tp_control_messages",
        "l2tp_retransmissions",
        "l2tp_tunnel_setup_seconds",
        "l2tp_session_setup_seconds",
        "l2tp_tunnel_closed",
        "l2tp_session_closed",
        "l2tp_malformed_datagrams",
    }
    assert required <= families


def test_listener_families_export_every_refusal_reason_per_listener() -> None:
    """``l2tp_listener_*{listener}`` from status's ``listeners``: each refusal counter
    under its reason (0 where none), the StopCCNs left unsent and the evictions apart;
    nothing for a daemon without listeners, or whose records carry no counters (ql2tpd)."""
    edge = {
        **asdict(
            ListenerCounters(
                accepted=7,
                rejected=5,
                rejects_unsent=2,
                pending_limit=1,
                pending_evicted=4,
                peer_pending_limit=3,
                bad_sccrq=6,
                bad_digest=8,
                malformed=9,
            )
        ),
        "not_allowed": 10,
    }
    core = {**asdict(ListenerCounters()), "not_allowed": 0}
    records = [
        {"name": "edge", "address": "0.0.0.0:1701", "counters": edge},
        {"name": "core", "address": "0.0.0.0:1702", "counters": core},
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(records))
    text = generate_latest(registry).decode()
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def refused(listener: str, reason: str) -> float:
        key = (("listener", listener), ("reason", reason))
        return got["l2tp_listener_sccrq_refused_total", key]

    expected = {
        "tunnel_limit": 5,
        "pending_limit": 1,
        "peer_pending_limit": 3,
        "not_allowed": 10,
        "bad_sccrq": 6,
        "bad_digest": 8,
        "malformed": 9,
    }
    assert {reason: refused("edge", reason) for reason in expected} == expected
    assert all(refused("core", reason) == 0 for reason in expected)
    assert got["l2tp_listener_sccrq_accepted_total", (("listener", "edge"),)] == 7
    assert got["l2tp_listener_refusals_unsent_total", (("listener", "edge"),)] == 2
    assert got["l2tp_listener_pending_evicted_total", (("listener", "edge"),)] == 4
    # Every reason reads a counter the listener has (a renamed field must fail here):
    fields = set(asdict(ListenerCounters())) | {"not_allowed"}
    assert {key for _, key in LISTENER_REFUSALS} <= fields
    assert list(listener_metrics([])) == []
    assert list(listener_metrics([{"name": "q", "address": "x"}])) == []


def test_the_collector_exports_the_status_listeners() -> None:
    """The collector reads ``status``'s listener records: the LNS side of the pair
    accepted the one SCCRQ, so its series say 1 accepted, nothing refused."""
    w = World()
    counters = {**asdict(w.pair.lns.listener.counters), "not_allowed": 0}
    plain = w.status
    w.status = lambda: {**plain(), "listeners": [{"name": "lns", "counters": counters}]}  # type: ignore[method-assign]
    got = w.samples()
    assert got["l2tp_listener_sccrq_accepted_total", (("listener", "lns"),)] == 1
    key = (("listener", "lns"), ("reason", "tunnel_limit"))
    assert got["l2tp_listener_sccrq_refused_total", key] == 0
    assert not any(name.startswith("l2tp_listener_") for name, _ in World().samples())


class _Families:
    """A collector of :func:`listener_metrics` alone (for the exposition test)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def collect(self) -> Any:
        return listener_metrics(self.records)


# ------------------------------------------------------------------ HTTP


def _server() -> MetricsServer:
    w = World()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(w.collector)
    return MetricsServer(registry, "127.0.0.1", 0)


def test_http_requests() -> None:
    server = _server()
    status, ctype, body, head = server._answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, head) == (200, False)
    assert ctype.startswith("text/plain; version=0.0.4")
    assert b'l2tp_sessions{state="established"} 1.0' in body
    accept = b"Accept: application/openmetrics-text; version=1.0.0\r\n"
    status, ctype, body, _ = server._answer(b"GET /metrics?x=1 HTTP/1.1\r\n" + accept + b"\r\n")
    assert status == 200 and ctype.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert server._answer(b"HEAD /metrics HTTP/1.0\r\n\r\n")[::3] == (200, True)
    assert server._answer(b"POST /metrics HTTP/1.1\r\n\r\n")[0] == 405
    assert server._answer(b"GET /nope HTTP/1.1\r\n\r\n")[0] == 404
    assert server._answer(b"\x16\x03\x01 garbage\r\n\r\n")[0] == 400
    assert server._answer(b"GET / HTTP/1.1\r\n\r\n")[2].startswith(b"python-l2tp")
    assert server.scrapes == 3


# ------------------------------------------------------------------ settings


def _config(text: str) -> cfg.Config:
    return cfg.loads(text + '[listener.l]\nlisten = "127.0.0.1:1701"\n', file="f", daemon="lns")


def _errors(text: str) -> list[str]:
    with pytest.raises(cfg.ConfigError) as info:
        _config(text)
    return str(info.value).splitlines()


def test_metrics_keys_and_their_errors() -> None:
    c = _config('metrics = "[::1]:9701"\nmetrics_per_tunnel = true\n')
    assert (str(c.metrics), c.metrics_per_tunnel) == ("[::1]:9701", True)
    assert _config("").metrics is None
    assert cfg.loads(cfg.dump_toml(c), file="f", daemon="lns").metrics == c.metrics
    assert cfg.to_dict(c)["metrics"] == "[::1]:9701"
    assert _errors('metrics = "127.0.0.1"\n') == [
        "f: key 'metrics': \"127.0.0.1\" is not a valid address: give HOST:PORT"
        " (IPv6: [ADDRESS]:PORT); the port is required"
    ]
    assert _errors("metrics = 9701\n") == ["f: key 'metrics': expected a string, got integer 9701"]
    assert _errors('metrics_per_tunnel = "yes"\n') == [
        "f: key 'metrics_per_tunnel': expected a boolean (true or false), got string \"yes\""
    ]
    assert _errors('metrics = "127.0.0.1:65536"\n') == [
        "f: key 'metrics': \"127.0.0.1:65536\" is not a valid address: port 65536 is out of"
        " range 0-65535"
    ]
    after_a_table = cfg.loads  # TOML files the key into the table above it: say so
    with pytest.raises(cfg.ConfigError) as info:
        after_a_table(
            '[listener.l]\nlisten = "127.0.0.1:1701"\nmetrics = "127.0.0.1:1"\n',
            file="f",
            daemon="lns",
        )
    assert str(info.value) == (
        "f: listener.l: key 'metrics': unknown key here: it is a top-level key;"
        " put it before the first table"
    )


def test_command_line_overrides_the_file() -> None:
    parser = argparse.ArgumentParser()
    add_metrics_arguments(parser)
    file = _config('metrics = "127.0.0.1:9701"\n')
    assert str(metrics_settings(parser.parse_args([]), file)[0]) == "127.0.0.1:9701"
    args = parser.parse_args(["--metrics", "0.0.0.0:9100", "--metrics-per-tunnel"])
    endpoint, per_tunnel = metrics_settings(args, file)
    assert (str(endpoint), per_tunnel) == ("0.0.0.0:9100", True)
    assert metrics_settings(parser.parse_args(["--metrics", "none"]), file)[0] is None
    assert metrics_settings(parser.parse_args([]), _config("")) == (None, False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--metrics", "9100"])
