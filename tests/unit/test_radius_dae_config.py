"""``[radius.dae]``: loading, exact errors, ``--check`` output without secrets; a
running processor re-configured (a reload); the counters in ``l2tp ctl status`` and
the Prometheus families."""

from __future__ import annotations

import json
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import pytest
from pyrad import packet as rpacket

from l2tp.config import ConfigErrors, DaeClientEntry, dump_toml, loads, to_dict
from l2tp.config.model import Endpoint, RadiusSection
from l2tp.daemons.dae_setup import nas_identity
from l2tp.radius.dae import DaeClient, NasIdentity
from tests.unit.test_radius_dae import CLIENT, SECRET, handle, make, reply_of, request

F = "t.toml"
LISTENER = """
[listener.main]
listen = "192.0.2.1:1701"
"""
DAE = """
[radius.dae]
listen = "192.0.2.1"
clients = [
    { address = "192.0.2.10", secret = "s3cret", name = "radius-1" },
    { address = "192.0.2.11", secret_file = "/etc/l2tp/dae.secret" },
]
window = 60
require_event_timestamp = true
"""


def load(text: str, daemon: str = "lns") -> Any:
    return loads(text, file=F, daemon=daemon, hostname="h", resolver=None)


def test_a_dae_only_radius_table_loads_with_the_default_port() -> None:
    config = load(LISTENER + DAE)
    section = config.radius
    assert section is not None and section.auth_servers == ()
    dae = section.dae
    assert dae is not None
    assert dae.listen == Endpoint(address=ip_address("192.0.2.1"), port=3799)
    assert dae.clients == (
        DaeClientEntry(address=IPv4Address("192.0.2.10"), secret="s3cret", name="radius-1"),
        DaeClientEntry(address=IPv4Address("192.0.2.11"), secret_file="/etc/l2tp/dae.secret"),
    )
    assert (dae.window, dae.require_event_timestamp) == (60.0, True)
    assert "s3cret" not in repr(config)


def test_defaults_an_explicit_port_and_the_nas_identity_of_radius() -> None:
    text = (
        '[radius]\nnas_identifier = "lns-1"\nnas_ip_address = "2001:db8::1"\n'
        '[radius.dae]\nlisten = "[::]:1700"\n'
        'clients = [{ address = "192.0.2.10", secret = "s" }, { address = "::1", secret = "t" }]\n'
    )
    section = load(LISTENER + text).radius
    assert section.dae.listen == Endpoint(address=ip_address("::"), port=1700)
    assert (section.dae.window, section.dae.require_event_timestamp) == (300.0, False)
    assert nas_identity(section) == NasIdentity(identifier="lns-1", ipv6=IPv6Address("2001:db8::1"))
    assert nas_identity(RadiusSection()) == NasIdentity()  # nothing to check against
    edge = replace(section, nas_identifier="edge")
    # The daemon's own identity (goes by it) and one shared by two listeners (listed once):
    listeners = {"a": section, "b": edge, "c": edge}
    assert nas_identity(section, listeners).alternates == (
        NasIdentity(identifier="edge", ipv6=IPv6Address("2001:db8::1"), listeners=("b", "c")),
    )


def test_the_daemons_hand_each_listener_identity_its_listener_names() -> None:
    """From the file to the server: ``[listener.L.radius]`` tables by name (the daemons'
    ``_listener_radius``), each identity scoped to its listeners; a listener whose table
    keeps the daemon's identity goes by the daemon's."""
    from l2tp.daemons.common import _listener_radius

    text = (
        '[radius]\nnas_identifier = "lns-1"\nnas_ip_address = "192.0.2.1"\n'
        'auth_servers = [{ address = "127.0.0.1:18120", secret = "d" }]\n' + DAE
    )
    for port, name, table in ((1701, "main", ""), (1702, "branch", "-branch"), (1703, "same", "")):
        text += (
            f'[listener.{name}]\nlisten = "192.0.2.1:{port}"\nppp = "builtin"\n'
            f'[listener.{name}.builtin_ppp]\nlocal_address = "10.0.0.1"\n'
        )
        if name != "main":  # same: a table of its own, with the daemon's identity
            text += f'[listener.{name}.radius]\nnas_identifier = "lns-1{table}"\n'
    config = load(text)
    nas = nas_identity(config.radius, _listener_radius(config))
    assert nas.alternates == (
        NasIdentity(
            identifier="lns-1-branch", ipv4=IPv4Address("192.0.2.1"), listeners=("branch",)
        ),
    )
    names = ("branch", "main", "same", None)
    scope = nas.scope("lns-1-branch", None, None)
    assert scope is not None and [scope.covers(n) for n in names] == [True, False, False, False]
    scope = nas.scope("lns-1", IPv4Address("192.0.2.1"), None)
    assert scope is not None and [scope.covers(n) for n in names] == [False, True, True, True]
    assert nas.scope(None, None, None) is None  # no NAS attribute: every session


def test_dae_beside_auth_servers() -> None:
    text = '[radius]\nauth_servers = [{ address = "192.0.2.9", secret = "a" }]\n' + DAE
    section = load(LISTENER + text).radius
    assert len(section.auth_servers) == 1 and section.dae is not None


def test_check_output_hides_secrets_and_round_trips_with_secret_files() -> None:
    config = load(LISTENER + DAE)
    dumped = dump_toml(config)
    assert "s3cret" not in dumped
    assert "[radius.dae]" in dumped and 'listen = "192.0.2.1:3799"' in dumped
    assert '{ address = "192.0.2.10", secret = "(hidden)", name = "radius-1" }' in dumped
    assert "auth_servers" not in dumped  # an empty list would not load back
    data = to_dict(config)
    assert "s3cret" not in json.dumps(data)
    radius = data["radius"]
    assert isinstance(radius, dict) and radius["auth_servers"] == []
    assert radius["dae"]["clients"][0] == {
        "address": "192.0.2.10",
        "secret": "(hidden)",
        "name": "radius-1",
    }
    assert radius["dae"]["window"] == 60
    assert load(LISTENER).radius is None
    file_only = DAE.replace('secret = "s3cret"', 'secret_file = "/etc/l2tp/a.secret"')
    config = load(LISTENER + file_only)
    assert load(dump_toml(config)) == config


ERRORS = """
[radius.dae]
listen = "192.0.2.1:0"
clients = [
    { address = "192.0.2.10:3799", secret = "s" },
    { address = "192.0.2.11", secret = "a", secret_file = "/x" },
    { adress = "192.0.2.12", name = "" },
    { address = "2001:db8::1", secret = "s" },
    "192.0.2.13",
]
window = 0
require_event_timestamp = "yes"
"""


def test_every_error_names_its_key() -> None:
    with pytest.raises(ConfigErrors) as info:
        load(LISTENER + ERRORS)
    assert [str(e) for e in info.value.errors] == [
        "t.toml: radius.dae: key 'listen': \"192.0.2.1:0\" is not a valid address:"
        " port 0 is out of range 1-65535",
        "t.toml: radius.dae.clients[0]: key 'address': \"192.0.2.10:3799\" is not an IP"
        " address (requests are matched by their source address, any port)",
        "t.toml: radius.dae.clients[1]: key 'secret_file': give either 'secret' or"
        " 'secret_file', not both",
        "t.toml: radius.dae.clients[2]: key 'adress': unknown key (did you mean 'address'?)",
        "t.toml: radius.dae.clients[2]: key 'address': missing (required for every client)",
        "t.toml: radius.dae.clients[2]: missing 'secret' or 'secret_file' (the shared secret,"
        " RFC 2865 3)",
        "t.toml: radius.dae.clients[2]: key 'name': must not be empty",
        "t.toml: radius.dae: key 'clients': element 4: expected an inline table such as"
        ' { address = "192.0.2.10", secret = "..." }, got string',
        "t.toml: radius.dae: key 'window': 0 is out of range 1-86400 (seconds)",
        "t.toml: radius.dae: key 'require_event_timestamp': expected a boolean (true or"
        ' false), got string "yes"',
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[radius.dae]\n", "radius.dae: key 'listen': missing"),
        ('[radius.dae]\nlisten = "127.0.0.1"\n', "radius.dae: key 'clients': missing"),
        ('[radius.dae]\nlisten = "127.0.0.1"\nclients = []\n', "must list at least one client"),
        ("[radius]\ndae = 3\n", "key 'dae': expected a table [radius.dae], got integer 3"),
        (
            '[radius.dae]\nlisten = "127.0.0.1"\nclients = [{ address = "127.0.0.1",'
            ' secret = "a" }, { address = "127.0.0.1", secret = "b" }]\n',
            "element 1: 127.0.0.1 is already element 0",
        ),
        (
            '[radius.dae]\nlisten = "127.0.0.1"\nclients = [{ address = "::1", secret = "a" }]\n',
            "clients[0]: key 'address': an IPv6 client, but listen is the IPv4 127.0.0.1:3799",
        ),
        (
            '[radius.dae]\nlisten = "[::1]"\nclients = [{ address = "127.0.0.1", secret = "a" }]\n',
            "an IPv4 client, but listen is the IPv6 [::1]:3799",
        ),
        (
            '[radius.dae]\nlisten = "127.0.0.1"\nwindow = 5\n'
            'clients = [{ address = "127.0.0.1", secret = "a", name = "a\\tb" }]\n',
            "key 'name': \"a\\tb\": at most 64 printable characters",
        ),
        ('[radius.dae]\nlisten = "127.0.0.1"\nlsiten = 1\n', "unknown key (did you mean"),
    ],
)
def test_table_level_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        load(LISTENER + text)
    assert any(message in str(e) for e in info.value.errors), info.value.errors


def test_only_daemons_with_listeners_take_radius_dae() -> None:
    lac = '[tunnel.t]\npeer = "192.0.2.1"\n'
    with pytest.raises(ConfigErrors, match="kl2tpd does not accept \\[radius\\]"):
        load(lac + DAE, daemon="kl2tpd")
    with pytest.raises(ConfigErrors, match="ql2tpd does not accept \\[radius\\]"):
        load('[tunnel.t]\npeer = "192.0.2.1"\ntid = 1\nptid = 2\n' + DAE, daemon="ql2tpd")


# --- a running processor re-configured ----------------------------------------------


def test_configure_swaps_clients_and_secrets_and_keeps_the_counters() -> None:
    processor, directory, _, _ = make()
    counters = processor.counters
    pkt, data = request(Acct_Session_Id="B1")
    assert reply_of(pkt, handle(processor, data)).code == rpacket.DisconnectACK
    processor.configure(
        [DaeClient(IPv4Address(CLIENT[0]), b"rotated")], nas=NasIdentity(identifier="lns2")
    )
    _, data = request(ident=8, Acct_Session_Id="A1")  # the old secret: dropped
    assert handle(processor, data) is None
    assert counters.bad_authenticator == 1
    pkt, data = request(ident=9, secret=b"rotated", Acct_Session_Id="A1", NAS_Identifier="lns2")
    assert reply_of(pkt, handle(processor, data)).code == rpacket.DisconnectACK
    assert processor.counters is counters and counters.disconnect_acks == 2
    _, data = request(ident=10, Acct_Session_Id="A2")
    assert handle(processor, data, ("2001:db8::10", 1)) is None  # removed client
    assert counters.unknown_client == 1
    with pytest.raises(ValueError, match="listed twice"):
        processor.configure([DaeClient(IPv4Address(CLIENT[0]), SECRET)] * 2)
    with pytest.raises(ValueError, match="window"):
        processor.configure([], window=0)
    assert list(processor.clients) == [IPv4Address(CLIENT[0])]  # unchanged by either
    assert directory.disconnected[-1].key == (1, 1)


# --- l2tp ctl status and metrics ----------------------------------------------------

DAE_SNAPSHOT = {
    "listen": "127.0.0.1:3799",
    "clients": 1,
    "received": 9,
    "disconnect_requests": 4,
    "coa_requests": 1,
    "disconnect_acks": 2,
    "disconnect_naks": 2,
    "coa_acks": 1,
    "coa_naks": 0,
    "naks_by_cause": {"503": 2},
    "unknown_client": 1,
    "bad_authenticator": 3,
    "duplicates": 1,
    "sessions_disconnected": 2,
    "session_timeouts_set": 1,
}


def test_ctl_status_shows_the_dae_counters() -> None:
    from l2tp.cli import ctl

    result = {
        "daemon": "l2tp-lns",
        "version": "0.1.0",
        "pid": 42,
        "uptime": 3,
        "tunnels": {},
        "sessions": {},
        "radius": {"dae": DAE_SNAPSHOT},
    }
    text = ctl.status_text(result)
    assert (
        "radius dae  127.0.0.1:3799: 4 disconnect (2 ack, 2 nak), 1 coa (1 ack, 0 nak),"
        " nak 503 x2, 1 unknown client, 3 bad authenticator, 1 duplicates\n" in text
    )


def test_prometheus_dae_families() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from l2tp.daemons.metrics import L2tpCollector

    class Source:
        def status(self) -> dict[str, Any]:
            return {
                "daemon": "l2tp-lns",
                "version": "9.9",
                "uptime": 1.0,
                "counters": None,
                "tunnels": {},
                "sessions": {},
                "radius": {"dae": DAE_SNAPSHOT},
            }

        def tunnels(self) -> list[dict[str, Any]]:
            return []

    registry = CollectorRegistry(auto_describe=False)
    registry.register(L2tpCollector(Source(), started=0.0))
    text = generate_latest(registry).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples["l2tp_radius_dae_requests_total", (("kind", "disconnect"),)] == 4
    assert samples["l2tp_radius_dae_replies_total", (("kind", "disconnect"), ("reply", "nak"))] == 2
    assert samples["l2tp_radius_dae_replies_total", (("kind", "coa"), ("reply", "ack"))] == 1
    assert samples["l2tp_radius_dae_naks_total", (("cause", "503"),)] == 2
    assert samples["l2tp_radius_dae_dropped_total", (("reason", "bad_authenticator"),)] == 3
    assert samples["l2tp_radius_dae_dropped_total", (("reason", "overload"),)] == 0
    assert samples["l2tp_radius_dae_duplicates_total", ()] == 1
    assert samples["l2tp_radius_dae_sessions_disconnected_total", ()] == 2
    assert samples["l2tp_radius_dae_session_timeouts_total", ()] == 1
    # DAE only: no client families (no server to label them with).
    assert not any(name.startswith("l2tp_radius_requests") for name, _ in samples)


def test_dae_service_takes_acct_session_ids_and_disconnect_causes_from_accounting() -> None:
    """The daemon links its DAE server to its accounting (common.serve): sessions are
    found by the engine's Acct-Session-Id, and a disconnected session's Stop says
    Disconnect-Request (Acct-Terminate-Cause Admin-Reset)."""
    from l2tp.daemons.dae_setup import DaeService
    from l2tp.radius.records import TERMINATE_CAUSES, SessionEnd

    class Accounting:
        def __init__(self) -> None:
            self.ends: list[tuple[tuple[int, int], SessionEnd]] = []

        def acct_session_id(self, key: tuple[int, int]) -> str | None:
            return {(1, 2): "5f00aa01-1"}.get(key)

        def note_end(self, key: tuple[int, int], end: SessionEnd) -> None:
            self.ends.append((key, end))

    service = DaeService(object())  # type: ignore[arg-type]  # no session is looked up
    assert service.directory.acct_session_id is None
    accounting = Accounting()
    service.accounting = accounting
    lookup = service.directory.acct_session_id
    assert lookup is not None and lookup((1, 2)) == "5f00aa01-1" and lookup((1, 3)) is None
    assert service.directory.disconnecting is not None
    service.directory.disconnecting((1, 2))
    assert accounting.ends == [((1, 2), SessionEnd.DISCONNECT_REQUEST)]
    assert TERMINATE_CAUSES[SessionEnd.DISCONNECT_REQUEST].name == "ADMIN_RESET"
