"""``peer = [...]`` (LNS selection and failover) in a kl2tpd file: the keys, their
defaults, every error, the round trip through ``--check`` output, the mapping to the
runtime's objects, and how ``l2tp ctl peers`` and the metrics render the records."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from l2tp import config as cfg
from l2tp.cli.ctl import peers_table
from l2tp.daemons.configmap import lns_endpoints, retry_policy, selection_policy
from l2tp.daemons.ctl_protocol import Command, parse_request
from l2tp.daemons.metrics import L2tpCollector, samples
from l2tp.runtime.lns_selection import DenyReason, LnsEndpoint

SECOND = (
    '{ address = "192.0.2.2:1702", preference = 1, weight = 3, secret = "pw9",'
    ' max_sessions = 5, assignment_id = "a" }'
)
FULL = (
    """
[tunnel.t1]
peer = ["192.0.2.1", """
    + SECOND
    + """]
secret = "top"
redial = true
redial_timeout = 2000
max_redial_timeout = 30000
max_redials = 4
denylist_time = 60000
denylist_results = { stopccn = [4, 2], cdn = [4] }
revert = true
[tunnel.t1.session.s1]
"""
)


def load(text: str, daemon: str | None = "kl2tpd") -> cfg.Config:
    return cfg.loads(text, daemon=daemon, hostname="h", resolver=None)


def errors(text: str, daemon: str | None = "kl2tpd") -> list[str]:
    with pytest.raises(cfg.ConfigErrors) as info:
        load(text, daemon)
    return [str(e) for e in info.value.errors]


def test_every_key() -> None:
    (t,) = load(FULL).tunnels
    a, b = t.peers
    assert a == cfg.PeerEntry(endpoint=cfg.Endpoint(address=ipaddress.ip_address("192.0.2.1")))
    assert (b.endpoint.port, b.preference, b.weight, b.secret, b.max_sessions) == (
        1702,
        1,
        3,
        "pw9",
        5,
    )
    assert b.assignment_id == "a"
    assert t.peer == a.endpoint  # the most preferred entry, for code that wants one
    assert (t.denylist_time, t.denylist_stopccn, t.denylist_cdn, t.revert) == (
        60.0,
        (2, 4),
        (4,),
        True,
    )
    # A peer list backs off like L2TPv3 redials: max_redial_timeout is taken.
    assert (t.redial_timeout, t.max_redial_timeout, t.max_redials) == (2.0, 30.0, 4)
    assert "pw9" not in repr(b)  # a secret is not printed with the entry


def test_defaults() -> None:
    (t,) = load('[tunnel.t1]\npeer = ["192.0.2.1", "192.0.2.2"]\n').tunnels
    assert [p.weight for p in t.peers] == [1, 1] and [p.preference for p in t.peers] == [0, 0]
    assert t.denylist_time == 300.0 and not t.revert
    assert t.denylist_stopccn == (2, 4, 5, 6, 7) and t.denylist_cdn == (2, 4, 5)
    policy = selection_policy(t)
    assert policy.denylist_stopccn == frozenset({2, 4, 5, 6, 7})
    assert not retry_policy(t).redial  # redial = false: another LNS, never a wait


def test_a_single_string_peer_is_unchanged() -> None:
    (t,) = load('[tunnel.t1]\npeer = "192.0.2.1:1701"\n').tunnels
    assert t.peers == () and str(t.peer) == "192.0.2.1:1701"
    assert "denylist" not in cfg.dump_toml(load('[tunnel.t1]\npeer = "192.0.2.1"\n'))


def test_round_trip_through_the_dump() -> None:
    config = load(FULL)
    again = load(cfg.dump_toml(config))
    assert again.tunnels == config.tunnels
    entry = cfg.to_dict(config)["tunnels"][0]  # type: ignore[index]
    assert entry["peer"][1] == {
        "address": "192.0.2.2:1702",
        "preference": 1,
        "weight": 3,
        "max_sessions": 5,
        "secret": "pw9",
        "assignment_id": "a",
    }
    assert entry["denylist_results"] == {"stopccn": [2, 4], "cdn": [4]}


def test_mapping_to_the_runtime() -> None:
    (t,) = load(FULL).tunnels
    assert lns_endpoints(t) == (
        LnsEndpoint(address="192.0.2.1"),
        LnsEndpoint(
            address="192.0.2.2",
            port=1702,
            preference=1,
            weight=3,
            secret="pw9",
            max_sessions=5,
            assignment_id="a",
        ),
    )
    r = retry_policy(t)
    assert (r.redial, r.first, r.cap, r.max_attempts) == (True, 2.0, 30.0, 4)
    p = selection_policy(t)
    assert (p.denylist_time, p.revert, p.denylist_cdn) == (60.0, True, frozenset({4}))


@pytest.mark.parametrize(
    "snippet,message",
    [
        ("peer = []", "tunnel.t1: key 'peer': must list at least one peer"),
        (
            "peer = [1]",
            "key 'peer': element 0: expected an address string or an inline table, got integer",
        ),
        ('peer = ["192.0.2.1:0"]', 'element 0: "192.0.2.1:0" is not a valid address: port 0'),
        (
            'peer = ["192.0.2.1", "192.0.2.1:1701"]',
            "key 'peer': element 1: 192.0.2.1:1701 is already element 0",
        ),
        ("peer = [{ preference = 1 }]", "tunnel.t1.peer[0]: key 'address': missing"),
        (
            'peer = [{ address = "192.0.2.1", wieght = 2 }]',
            "tunnel.t1.peer[0]: key 'wieght': unknown key (did you mean 'weight'?)",
        ),
        (
            'peer = [{ address = "192.0.2.1", weight = 0 }]',
            "tunnel.t1.peer[0]: key 'weight': 0 is out of range 1-65535",
        ),
        (
            'peer = [{ address = "192.0.2.1", preference = 16777216 }]',
            "key 'preference': 16777216 is out of range 0-16777215 (RFC 2868 3.8)",
        ),
        (
            'peer = [{ address = "192.0.2.1", max_sessions = -1 }]',
            "key 'max_sessions': -1 is out of range 0-4294967295",
        ),
        ('peer = [{ address = "192.0.2.1", secret = "" }]', "key 'secret': must not be empty"),
        (
            'peer = [{ address = "192.0.2.1", assignment_id = "' + "a" * 254 + '" }]',
            "254 bytes is longer than the 253 a Tunnel-Assignment-ID AVP can carry",
        ),
        (
            'peer = ["192.0.2.1", "2001:db8::1"]',
            "key 'peer': mixes IPv4 and IPv6 addresses",
        ),
        (
            'peer = ["192.0.2.1"]\ndenylist_time = -5',
            "key 'denylist_time': -5 is out of range 0-4294967295 (milliseconds; 0: no denylist)",
        ),
        (
            'peer = ["192.0.2.1"]\ndenylist_results = [4]',
            "key 'denylist_results': expected an inline table such as",
        ),
        (
            'peer = ["192.0.2.1"]\ndenylist_results = { stopccn = [0] }',
            "tunnel.t1.denylist_results: key 'stopccn': element 0: 0 is not a Result Code",
        ),
        (
            'peer = ["192.0.2.1"]\ndenylist_results = { cnd = [4] }',
            "tunnel.t1.denylist_results: key 'cnd': unknown key (did you mean 'cdn'?)",
        ),
        ('peer = ["192.0.2.1"]\nrevert = 1', "key 'revert': expected a boolean"),
        (
            'peer = "192.0.2.1"\nrevert = true',
            "key 'revert': only with a list of peers (peer = [...])",
        ),
        (
            'peer = "192.0.2.1"\ndenylist_time = 1000',
            "key 'denylist_time': only with a list of peers",
        ),
        (
            'peer = ["192.0.2.1"]\nmax_redial_timeout = 1000',
            "key 'max_redial_timeout': needs 'redial = true'",
        ),
    ],
)
def test_errors(snippet: str, message: str) -> None:
    found = errors(f"[tunnel.t1]\n{snippet}\n")
    assert any(message in e for e in found), found


def test_a_list_is_for_l2tpv2_only() -> None:
    text = '[tunnel.t1]\nversion = "l2tpv3"\npeer = ["192.0.2.1"]\n'
    assert any("only for l2tpv2 tunnels" in e for e in errors(text, None))


def test_a_fixed_local_port_cannot_serve_several_tunnels() -> None:
    text = '[tunnel.t1]\nlocal = "192.0.2.9:1701"\npeer = ["192.0.2.1", "192.0.2.2"]\n'
    assert errors(text) == [
        "<string>: tunnel.t1: key 'local': port 1701 with a list of peers: each LNS gets a"
        ' tunnel socket of its own, so give port 0 ("192.0.2.9:0")'
    ]
    ok = '[tunnel.t1]\nlocal = "192.0.2.9:0"\npeer = ["192.0.2.1", "192.0.2.2"]\n'
    assert load(ok).tunnels[0].local == cfg.Endpoint(
        address=ipaddress.ip_address("192.0.2.9"), port=0
    )


def test_local_address_family_must_match() -> None:
    text = '[tunnel.t1]\nlocal = "192.0.2.9:0"\npeer = ["2001:db8::1"]\n'
    assert any("IPv6 does not match the local address family IPv4" in e for e in errors(text))


# ------------------------------------------------------------- display


RECORD: dict[str, Any] = {
    "name": "t1",
    "peer": "192.0.2.1:1701",
    "address": "192.0.2.1",
    "port": 1701,
    "assignment_id": None,
    "preference": 0,
    "weight": 2,
    "max_sessions": 0,
    "state": "denylisted",
    "tunnel_id": None,
    "sessions": 0,
    "established": 0,
    "denylisted_until": "2030-01-01T00:05:00Z",
    "denylisted_for": 299.5,
    "reason": "stopccn",
    "result": 4,
    "denylisted_total": {"stopccn": 2, "no-answer": 1},
}
UP = {
    **RECORD,
    "peer": "192.0.2.2:1701",
    "state": "up",
    "tunnel_id": 4711,
    "sessions": 3,
    "established": 3,
    "denylisted_until": None,
    "denylisted_for": None,
    "reason": None,
    "result": None,
    "denylisted_total": {},
}


def test_peers_table() -> None:
    lines = peers_table([RECORD, UP]).splitlines()
    assert lines[0].split() == [
        "NAME",
        "PEER",
        "PREF",
        "WEIGHT",
        "STATE",
        "TUNNEL",
        "SESSIONS",
        "UP",
        "MAX",
        "DENYLISTED-UNTIL",
        "REASON",
        "DENIALS",
    ]
    assert lines[1].split() == [
        "t1",
        "192.0.2.1:1701",
        "0",
        "2",
        "denylisted",
        "-",
        "0",
        "0",
        "-",
        "2030-01-01T00:05:00Z",
        "stopccn",
        "4",
        "3",
    ]
    assert lines[2].split()[4:8] == ["up", "4711", "3", "3"]
    assert peers_table([]).startswith("no peer lists")


def test_peers_request_parses() -> None:
    assert parse_request('{"v": 1, "id": 1, "cmd": "peers"}').command is Command.PEERS


class Source:
    def status(self) -> dict[str, Any]:
        return {
            "daemon": "kl2tpd",
            "version": "0",
            "uptime": 1.0,
            "tunnels": {},
            "sessions": {},
            "counters": None,
        }

    def tunnels(self) -> list[dict[str, Any]]:
        return []

    def peers(self) -> list[dict[str, Any]]:
        return [RECORD, UP]


def test_peer_metrics() -> None:
    collector = L2tpCollector(Source(), started=0.0)
    got = samples(collector)
    down = (("name", "t1"), ("peer", "192.0.2.1:1701"))
    up = (("name", "t1"), ("peer", "192.0.2.2:1701"))
    assert (got["l2tp_peer_up", down], got["l2tp_peer_up", up]) == (0, 1)
    assert got["l2tp_peer_denylist_remaining_seconds", down] == 299.5
    assert got["l2tp_peer_denylist_remaining_seconds", up] == 0
    assert got["l2tp_peer_sessions", up] == 3
    totals = {
        dict(labels)["reason"]: v
        for (name, labels), v in got.items()
        if name == "l2tp_peer_denylisted_total" and dict(labels)["peer"] == "192.0.2.1:1701"
    }
    # Every reason exported (0 where none), so the cardinality is endpoints x reasons.
    assert totals == {r.value: {"stopccn": 2, "no-answer": 1}.get(r.value, 0) for r in DenyReason}
    registry = CollectorRegistry()
    registry.register(collector)
    assert b"l2tp_peer_denylisted_total{" in generate_latest(registry)


def test_no_peer_metrics_without_peer_lists() -> None:
    class Plain(Source):
        def peers(self) -> list[dict[str, Any]]:
            return []

    assert not any(name.startswith("l2tp_peer") for name, _ in samples(L2tpCollector(Plain())))
