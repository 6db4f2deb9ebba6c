"""``[radius]``: loading, exact errors, ``--check`` output without secrets, and the
daemons' RadiusService (secret files, reload swapping the hook, removal)."""

from __future__ import annotations

import asyncio
import json
from ipaddress import IPv4Address, ip_address
from pathlib import Path

import pytest

from l2tp.config import ConfigErrors, RadiusSection, dump_toml, loads, to_dict
from l2tp.config.model import Endpoint, RadiusServerEntry
from l2tp.daemons.preflight import StartError
from l2tp.daemons.radius_setup import RadiusService
from l2tp.radius.auth import RadiusAuthenticator
from l2tp.runtime.ppp_outcome import BuiltinPppCounters

F = "t.toml"
LISTENER = """
[listener.main]
listen = "192.0.2.1:1701"
ppp = "builtin"

[listener.main.builtin_ppp]
local_address = "10.0.0.1"
address_pool = "10.0.0.0/24"
"""
RADIUS = """
[radius]
auth_servers = [
    { address = "127.0.0.1", secret = "s3cret" },
    { address = "[::1]:1645", secret_file = "/etc/l2tp/radius.secret" },
]
timeout = 2000
retries = 2
holddown = 30000
nas_identifier = "lns-1"
nas_ip_address = "192.0.2.1"
"""


def test_radius_table_loads_with_defaults_and_ports() -> None:
    config = loads(LISTENER + RADIUS, file=F, daemon="lns", hostname="h", resolver=None)
    section = config.radius
    assert section is not None
    first, second = section.auth_servers
    assert first.address == Endpoint(address=ip_address("127.0.0.1"), port=1812)
    assert (first.secret, first.secret_file) == ("s3cret", None)
    assert second.address == Endpoint(address=ip_address("::1"), port=1645)
    assert second.secret_file == "/etc/l2tp/radius.secret"
    assert (section.timeout, section.retries, section.holddown) == (2.0, 2, 30.0)
    assert section.max_outstanding == 1024
    assert section.nas_identifier == "lns-1"
    assert section.nas_ip_address == IPv4Address("192.0.2.1")
    assert "s3cret" not in repr(section)
    # With RADIUS servers the listener's builtin_ppp needs no secrets file.
    assert config.listeners[0].builtin_ppp is not None
    assert config.listeners[0].builtin_ppp.secrets is None


def test_without_radius_the_secrets_file_is_still_required() -> None:
    with pytest.raises(ConfigErrors, match="key 'secrets': missing"):
        loads(LISTENER, file=F, daemon="lns", hostname="h", resolver=None)


def test_check_output_never_shows_the_secret_and_secret_file_round_trips() -> None:
    config = loads(LISTENER + RADIUS, file=F, daemon="lns", hostname="h", resolver=None)
    dumped = dump_toml(config)
    assert "s3cret" not in dumped
    assert 'secret = "(hidden)"' in dumped
    assert 'address = "127.0.0.1:1812"' in dumped
    data = to_dict(config)
    assert "s3cret" not in json.dumps(data)
    radius = data["radius"]
    assert isinstance(radius, dict) and radius["timeout"] == 2000
    file_only = RADIUS.replace('secret = "s3cret"', 'secret_file = "/etc/l2tp/a.secret"')
    config = loads(LISTENER + file_only, file=F, daemon="lns", hostname="h", resolver=None)
    assert loads(dump_toml(config), file=F, daemon="lns", hostname="h", resolver=None) == config


ERRORS = """
[radius]
auth_servers = [
    { address = "127.0.0.1:99999", secret = "s" },
    { address = "10.0.0.1", secret = "a", secret_file = "/x" },
    { adress = "10.0.0.2" },
    "10.0.0.3",
]
timeout = 0
retries = 11
nas_ip_address = "nope"
nas_identifier = ""
tiemout = 3
"""


def test_every_error_names_its_key() -> None:
    with pytest.raises(ConfigErrors) as info:
        loads(LISTENER + ERRORS, file=F, daemon="lns", hostname="h", resolver=None)
    assert [str(e) for e in info.value.errors] == [
        "t.toml: radius: key 'tiemout': unknown key (did you mean 'timeout'?)",
        "t.toml: radius.auth_servers[0]: key 'address': \"127.0.0.1:99999\" is not a valid"
        " address: port 99999 is out of range 1-65535",
        "t.toml: radius.auth_servers[1]: key 'secret_file': give either 'secret' or"
        " 'secret_file', not both",
        "t.toml: radius.auth_servers[2]: key 'adress': unknown key (did you mean 'address'?)",
        "t.toml: radius.auth_servers[2]: key 'address': missing (required for every server)",
        "t.toml: radius.auth_servers[2]: missing 'secret' or 'secret_file' (the shared secret,"
        " RFC 2865 3)",
        "t.toml: radius: key 'auth_servers': element 3: expected an inline table such as"
        ' { address = "192.0.2.10", secret = "..." }, got string',
        "t.toml: radius: key 'timeout': 0 is out of range 1-60000 (milliseconds)",
        "t.toml: radius: key 'retries': 11 is out of range 0-10",
        "t.toml: radius: key 'nas_identifier': must not be empty",
        "t.toml: radius: key 'nas_ip_address': \"nope\" is not an IP address",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[radius]\n", "radius: missing 'auth_servers' .* or a [radius.dae] table"),
        ("[radius]\nauth_servers = []\n", "must list at least one server"),
        ("radius = 3\n", "key 'radius': expected a table [radius], got integer 3"),
        (
            '[radius]\nauth_servers = [{ address = "127.0.0.1", secret = "a" },'
            ' { address = "127.0.0.1:1812", secret = "b" }]\n',
            "element 1: 127.0.0.1:1812 is already element 0",
        ),
    ],
)
def test_table_level_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigErrors, match=message.replace("[", r"\[").replace("]", r"\]")):
        loads(text + LISTENER, file=F, daemon="lns", hostname="h", resolver=None)


def test_only_daemons_with_listeners_take_radius() -> None:
    lac = '[tunnel.t]\npeer = "192.0.2.1"\n'
    with pytest.raises(ConfigErrors, match="kl2tpd does not accept \\[radius\\]"):
        loads(lac + RADIUS, file=F, daemon="kl2tpd", hostname="h", resolver=None)
    v3 = LISTENER.replace('ppp = "builtin"', 'pseudowire = "ppp"\nppp = "builtin"', 1)
    config = loads(v3 + RADIUS, file=F, daemon="l2tpd", hostname="h", resolver=None)
    assert config.radius is not None


# --- RadiusService ---------------------------------------------------------------------


class Backend:
    authenticator: object = None
    counters: object = None


def section(*entries: RadiusServerEntry, timeout: float = 3.0) -> RadiusSection:
    return RadiusSection(auth_servers=entries, timeout=timeout)


def entry(**kw: str) -> RadiusServerEntry:
    return RadiusServerEntry(address=Endpoint(address=ip_address("127.0.0.1"), port=1812), **kw)


def test_service_installs_rebuilds_and_removes_the_hook(tmp_path: Path) -> None:
    secret = tmp_path / "radius.secret"
    secret.write_text("from-file\n")

    async def scenario() -> None:
        backend = Backend()
        service = RadiusService(backend)
        try:
            assert await service.configure(section(entry(secret_file=str(secret))))
            first = backend.authenticator
            assert isinstance(first, RadiusAuthenticator)
            assert service.client is not None
            (server,) = service.client.servers[next(iter(service.client.servers))]
            assert server.secret == b"from-file"  # first line, newline stripped
            # The same file: nothing changes; an edited secret file: a new client.
            assert not await service.configure(section(entry(secret_file=str(secret))))
            secret.write_text("rotated\n")
            old_client = service.client
            assert await service.configure(section(entry(secret_file=str(secret))))
            assert backend.authenticator is not first
            assert not old_client.closed  # closed later: its requests may be in flight
            snapshot = service.snapshot()
            assert snapshot is not None and snapshot["auth"]["requests"] == 0
            assert "rotated" not in repr(snapshot)
            assert "granted" not in snapshot  # no built-in PPP counters to show
            backend.counters = BuiltinPppCounters(routes_added=3, idle_timeouts=1)
            snapshot = service.snapshot()
            assert snapshot is not None and snapshot["granted"] == {
                "routes_added": 3,
                "route_errors": 0,
                "session_timeouts": 0,
                "idle_timeouts": 1,
            }
            assert await service.configure(None)
            assert backend.authenticator is None and service.snapshot() is None
        finally:
            service.close()
        assert old_client.closed

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "No such file or directory"), ("\n", "the file is empty")],
)
def test_unreadable_secret_file_names_the_key(
    tmp_path: Path, content: str | None, reason: str
) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content)

    async def scenario() -> None:
        backend = Backend()
        service = RadiusService(backend)
        with pytest.raises(StartError) as info:
            await service.configure(section(entry(secret="ok"), entry(secret_file=str(path))))
        assert str(info.value).startswith(
            f'[radius] auth_servers[1] secret_file = "{path}": {reason}'
        )
        assert backend.authenticator is None

    asyncio.run(scenario())


def test_ctl_status_shows_radius_counters_per_server() -> None:
    from l2tp.cli import ctl

    result = {
        "daemon": "l2tp-lns",
        "version": "0.1.0",
        "pid": 42,
        "uptime": 3,
        "tunnels": {},
        "sessions": {},
        "radius": {
            "servers": {
                "127.0.0.1:1812": {
                    "requests": 5,
                    "accepts": 3,
                    "rejects": 1,
                    "timeouts": 1,
                    "retransmissions": 2,
                    "bad_authenticators": 0,
                }
            }
        },
    }
    text = ctl.status_text(result)
    assert (
        "radius    127.0.0.1:1812: 5 requests, 3 accepts, 1 rejects, 1 timeouts,"
        " 2 retransmissions\n" in text
    )
    assert "granted" not in text
    grants = {"routes_added": 2, "route_errors": 0, "session_timeouts": 0, "idle_timeouts": 1}
    result["radius"]["granted"] = grants  # type: ignore[index]
    assert "radius    granted: 2 routes added, 1 idle timeouts\n" in ctl.status_text(result)


def test_prometheus_families_from_the_status_radius_object() -> None:
    from typing import Any

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
                "radius": {
                    "servers": {
                        "127.0.0.1:1812": {
                            "requests": 5,
                            "accepts": 3,
                            "rejects": 1,
                            "timeouts": 1,
                            "retransmissions": 2,
                            "bad_authenticators": 4,
                        }
                    },
                    "outstanding": 2,
                    "granted": {
                        "routes_added": 3,
                        "route_errors": 1,
                        "session_timeouts": 0,
                        "idle_timeouts": 2,
                    },
                },
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
    server = ("server", "127.0.0.1:1812")
    assert samples["l2tp_radius_requests_total", (server,)] == 5
    assert samples["l2tp_radius_replies_total", (("kind", "accept"), server)] == 3
    assert samples["l2tp_radius_dropped_replies_total", (("reason", "bad_authenticator"), server)]
    assert samples["l2tp_radius_timeouts_total", (server,)] == 1
    assert samples["l2tp_radius_outstanding", ()] == 2
    # What the built-in PPP did with the Accepts' grants (``radius.granted``, also on
    # ``l2tp ctl status``'s "radius granted" line): one counter each, every name shown.
    assert samples["l2tp_radius_granted_routes_added_total", ()] == 3
    assert samples["l2tp_radius_granted_route_errors_total", ()] == 1
    assert samples["l2tp_radius_granted_session_timeouts_total", ()] == 0
    assert samples["l2tp_radius_granted_idle_timeouts_total", ()] == 2
    from l2tp.daemons.metrics_radius import _GRANTED_HELP
    from l2tp.daemons.radius_setup import GRANTED

    assert tuple(_GRANTED_HELP) == GRANTED  # a new grant counter needs its metric


def test_daemons_attach_radius_to_the_built_in_ppp_backend_only() -> None:
    from l2tp.daemons.common import _radius_service
    from l2tp.runtime.backend import NullSessionBackend
    from l2tp.runtime.builtin_ppp import BuiltinPppBackend, DispatchingBackend
    from l2tp.runtime.context import L2tpContext
    from tests.unit.builtin_ppp_fakes import FakePppKernel

    builtin = BuiltinPppBackend(kernel=FakePppKernel(), raise_fd_limit=False)
    ctx = L2tpContext()
    dispatching = DispatchingBackend(pppd=NullSessionBackend(), builtin=builtin)
    service = _radius_service(dispatching, ctx)
    assert service.backend is builtin
    assert service.dae is not None and service.dae.directory.builtin is builtin
    null = _radius_service(NullSessionBackend(), ctx)  # --null-dataplane: no PPP ...
    assert null.backend is None
    assert null.dae is not None and null.dae.directory.builtin is None  # ... but DAE
