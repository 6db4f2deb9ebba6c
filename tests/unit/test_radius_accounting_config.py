"""``[radius]``'s accounting keys and the daemons' :class:`AccountingService`: loading,
exact errors, ``--check`` without secrets, the engine kept across reloads with its
client swapped, why sessions end (first reason wins), and the counters in ``l2tp ctl``
and Prometheus."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from l2tp.config import ConfigErrors, RadiusAccounting, dump_toml, loads, to_dict
from l2tp.config.model import Endpoint, RadiusSection, RadiusServerEntry
from l2tp.daemons.preflight import StartError
from l2tp.daemons.radius_accounting import AccountingService, closed_end
from l2tp.daemons.radius_setup import RadiusService
from l2tp.protocol.events import SessionClosed
from l2tp.protocol.values import Reason
from l2tp.radius.records import SessionEnd
from l2tp.radius.session_accounting import PppAccounting
from tests.helpers import until

F = "t.toml"
LISTENER = """
[listener.main]
listen = "192.0.2.1:1701"
ppp = "builtin"

[listener.main.builtin_ppp]
local_address = "10.0.0.1"
address_pool = "10.0.0.0/24"
secrets = "/etc/l2tp/ppp-secrets"
"""
ACCT_ONLY = """
[radius]
acct_servers = [
    { address = "127.0.0.1", secret = "acct-s3cret" },
    { address = "[::1]:1646", secret_file = "/etc/l2tp/radius.secret" },
]
spool = "/var/lib/l2tp/acct.spool"
"""


def load(text: str) -> Any:
    return loads(LISTENER + text, file=F, daemon="lns", hostname="h", resolver=None)


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load(text)
    return [str(e) for e in info.value.errors]


def test_accounting_only_radius_loads_with_defaults_and_port_1813() -> None:
    config = load(ACCT_ONLY)
    section = config.radius
    assert section is not None and section.auth_servers == ()
    accounting = section.accounting
    assert accounting is not None
    first, second = accounting.servers
    assert first.address == Endpoint(address=ip_address("127.0.0.1"), port=1813)
    assert second.address == Endpoint(address=ip_address("::1"), port=1646)
    assert accounting == RadiusAccounting(
        servers=accounting.servers, spool="/var/lib/l2tp/acct.spool"
    )
    assert (accounting.interim_interval, accounting.tunnel_accounting) == (None, False)
    assert (accounting.spool_max_records, accounting.spool_max_bytes) == (100_000, 64 << 20)
    assert accounting.on_off is False
    assert "acct-s3cret" not in repr(section)
    # Sessions are still authenticated from the listener's secrets file.
    assert config.listeners[0].builtin_ppp.secrets == "/etc/l2tp/ppp-secrets"


def test_accounting_only_still_needs_the_secrets_file() -> None:
    text = LISTENER.replace('secrets = "/etc/l2tp/ppp-secrets"\n', "") + ACCT_ONLY
    with pytest.raises(ConfigErrors, match="key 'secrets': missing"):
        loads(text, file=F, daemon="lns", hostname="h", resolver=None)


def test_every_accounting_key_loads() -> None:
    config = load(
        ACCT_ONLY
        + "acct_interim_interval = 600\ntunnel_accounting = true\n"
        + "spool_max_records = 500\nspool_max_bytes = 1048576\naccounting_on_off = true\n"
    )
    accounting = config.radius.accounting
    assert (accounting.interim_interval, accounting.tunnel_accounting) == (600, True)
    assert (accounting.spool_max_records, accounting.spool_max_bytes) == (500, 1 << 20)
    assert accounting.on_off is True
    # 0 means "as the Access-Accept says".
    assert (
        load(ACCT_ONLY + "acct_interim_interval = 0\n").radius.accounting.interim_interval is None
    )


def test_accounting_errors_name_their_keys() -> None:
    text = """
[radius]
acct_servers = [{ address = "127.0.0.1" }]
acct_interim_interval = -1
tunnel_accounting = "yes"
spool_max_bytes = 10
"""
    assert errors_of(text) == [
        "t.toml: radius.acct_servers[0]: missing 'secret' or 'secret_file' (the shared"
        " secret, RFC 2865 3)",
        "t.toml: radius: key 'acct_interim_interval': -1 is out of range 0-4294967295 (seconds)",
        "t.toml: radius: key 'tunnel_accounting': expected a boolean (true or false), got"
        ' string "yes"',
        "t.toml: radius: key 'spool_max_bytes': 10 is out of range 4096-1099511627776 (bytes)",
        "t.toml: radius: key 'spool': missing (required with acct_servers: the file where"
        " accounting records wait until a server acknowledges them, e.g."
        " /var/lib/l2tp/radius-acct.spool)",
    ]


def test_accounting_keys_without_servers_and_an_empty_table_are_errors() -> None:
    assert errors_of('[radius]\nspool = "/x"\ntunnel_accounting = true\n') == [
        "t.toml: radius: key 'spool': has no effect without acct_servers (the accounting servers)",
        "t.toml: radius: key 'tunnel_accounting': has no effect without acct_servers (the"
        " accounting servers)",
        "t.toml: radius: missing 'auth_servers' (the servers to authenticate PPP peers with),"
        " 'acct_servers' (accounting only) or a [radius.dae] table (the Dynamic Authorization"
        " server)",
    ]


def test_check_output_hides_secrets_and_round_trips() -> None:
    text = ACCT_ONLY.replace('secret = "acct-s3cret"', 'secret_file = "/etc/a.secret"')
    config = load(text + "tunnel_accounting = true\n")
    dumped = dump_toml(config)
    assert "auth_servers" not in dumped  # accounting only: no empty list to reject
    assert 'spool = "/var/lib/l2tp/acct.spool"' in dumped
    assert loads(dumped, file=F, daemon="lns", hostname="h", resolver=None) == config
    inline = dump_toml(load(ACCT_ONLY))
    assert "acct-s3cret" not in inline and '"(hidden)"' in inline
    as_json = json.dumps(to_dict(load(ACCT_ONLY)))
    assert "acct-s3cret" not in as_json and '"accounting_on_off": false' in as_json


# --- AccountingService -------------------------------------------------------------------


@dataclass
class Backend:
    """What the service needs of the built-in PPP backend."""

    observer: object = None
    authenticator: object = None
    links: dict[tuple[int, int], Any] = field(default_factory=dict)


def server(port: int = 1813, **kw: str) -> RadiusServerEntry:
    return RadiusServerEntry(address=Endpoint(address=ip_address("127.0.0.1"), port=port), **kw)


def acct_section(spool: Path, *servers: RadiusServerEntry, **kw: Any) -> RadiusSection:
    accounting = RadiusAccounting(servers=servers or (server(secret="a"),), spool=str(spool), **kw)
    return RadiusSection(accounting=accounting)


def test_service_builds_the_engine_swaps_the_client_and_closes(tmp_path: Path) -> None:
    spool = tmp_path / "acct.spool"

    async def scenario() -> None:
        backend = Backend()
        service = AccountingService(backend)  # type: ignore[arg-type]
        auth = RadiusService(backend)
        try:
            assert await service.configure(acct_section(spool))
            # Accounting only: the authentication hook stays off (secrets files).
            assert not await auth.configure(acct_section(spool))
            assert backend.authenticator is None
            engine, client = service.engine, service.client
            assert engine is not None and client is not None and engine.client is client
            assert isinstance(backend.observer, PppAccounting)
            assert spool.exists()
            assert not await service.configure(acct_section(spool))
            # New servers: same engine (sessions, spool), new client; the old one closes
            # once its requests in flight have had their time.
            changed = acct_section(spool, server(1814, secret="b"), interim_interval=120)
            assert await service.configure(changed)
            assert service.engine is engine and engine.client is not client
            assert engine.interim_interval == 120.0
            assert not client.closed
            with pytest.raises(StartError, match=r"spool.*next start"):
                await service.configure(acct_section(tmp_path / "other.spool", interim_interval=90))
            assert service.engine is engine and engine.spool.path == str(spool)
            assert engine.interim_interval == 90.0  # the rest applied
            assert await service.configure(changed)
            snapshot = service.snapshot()
            assert snapshot is not None
            assert snapshot["accounting_sessions"] == 0
            assert list(snapshot["servers"]) == ["127.0.0.1:1814"]
            # Removing acct_servers closes the engine (the spool keeps what is unsent).
            assert await service.configure(RadiusSection(auth_servers=(server(1812, secret="x"),)))
            assert service.engine is None and backend.observer is None
            assert client.closed and service.snapshot() is None
        finally:
            await service.close()
            auth.close()

    asyncio.run(scenario())


def test_an_unwritable_spool_names_the_key(tmp_path: Path) -> None:
    async def scenario() -> None:
        service = AccountingService(Backend())  # type: ignore[arg-type]
        with pytest.raises(StartError, match=r'^\[radius\] spool = ".*/missing/acct.spool": '):
            await service.configure(acct_section(tmp_path / "missing" / "acct.spool"))
        assert service.engine is None

    asyncio.run(scenario())


def test_the_first_reason_noted_wins(tmp_path: Path) -> None:
    async def scenario() -> None:
        backend = Backend()
        service = AccountingService(backend)  # type: ignore[arg-type]
        await service.configure(acct_section(tmp_path / "s"))
        observer = service.observer
        assert observer is not None
        observer.active.update({(1, 1): "a", (1, 2): "b", (2, 1): "c"})
        from types import SimpleNamespace

        # Sessions whose PPP is not up yet: noted if their link reports to the observer.
        backend.links[(2, 5)] = SimpleNamespace(settings=SimpleNamespace(observer=observer))
        backend.links[(2, 6)] = SimpleNamespace(settings=SimpleNamespace(observer=None))
        assert service.acct_session_id((1, 2)) == "b"
        assert service.acct_session_id((9, 9)) is None
        service.operator_close(1, 1)  # l2tp ctl close session 1 1
        service.note_end((1, 1), SessionEnd.NAS_REQUEST)  # our own CDN follows
        service.operator_close(2, None)  # l2tp ctl close tunnel 2
        service.note_all(SessionEnd.SHUTDOWN)
        service.note_end((7, 7), SessionEnd.SHUTDOWN)  # not accounted: ignored
        assert observer._ends == {
            (1, 1): SessionEnd.ADMIN_CLOSE,
            (2, 1): SessionEnd.ADMIN_CLOSE,
            (2, 5): SessionEnd.ADMIN_CLOSE,  # its Tunnel-Link-Reject's cause
            (1, 2): SessionEnd.SHUTDOWN,
        }
        observer.active.clear()
        await service.close()

    asyncio.run(scenario())


class _Tunnel:
    def __init__(self, closed: object) -> None:
        self.closed = closed


class _Ctx:
    def __init__(self, tunnels: dict[int, _Tunnel]) -> None:
        self.tunnels = tunnels

    def tunnel(self, tunnel_id: int) -> _Tunnel | None:
        return self.tunnels.get(tunnel_id)


def closed(reason: Reason | None, *, by_peer: bool, tunnel_id: int = 1) -> SessionClosed:
    return SessionClosed(
        tunnel_id=tunnel_id,
        session_id=5,
        peer_session_id=6,
        reason=reason,
        by_peer=by_peer,
        was_established=True,
    )


@pytest.mark.parametrize(
    ("event", "end"),
    [
        (closed(Reason(result=1), by_peer=True), SessionEnd.PEER_CDN_LOST_CARRIER),
        (closed(Reason(result=3), by_peer=True), SessionEnd.PEER_CDN_ADMIN),
        (closed(Reason(result=2), by_peer=True), SessionEnd.PEER_CDN),
        (closed(Reason(result=3), by_peer=False), SessionEnd.NAS_REQUEST),
        (closed(None, by_peer=False), SessionEnd.NAS_REQUEST),
        (closed(Reason(result=2), by_peer=True, tunnel_id=2), SessionEnd.TUNNEL_LOST),
        (closed(None, by_peer=False, tunnel_id=3), SessionEnd.TUNNEL_LOST),
    ],
)
def test_closed_sessions_end_by_their_cdn_or_their_tunnel(
    event: SessionClosed, end: SessionEnd
) -> None:
    ctx = _Ctx({1: _Tunnel(None), 2: _Tunnel(object())})  # 2 is closing, 3 is gone
    assert closed_end(ctx, event) is end  # type: ignore[arg-type]


def test_status_merges_accounting_and_ctl_and_metrics_show_it() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from l2tp.cli import ctl
    from l2tp.daemons.common import _radius_status
    from l2tp.daemons.metrics import L2tpCollector

    class Acct:
        def snapshot(self) -> dict[str, Any]:
            return {
                "accounting_sessions": 2,
                "accounting_starts": 3,
                "accounting_stops": 1,
                "accounting_acknowledged": 4,
                "accounting_spool_pending": 1,
                "accounting_spool_dropped": 0,
                "servers": {"127.0.0.1:1813": {"requests": 4, "acct_responses": 4}},
                "outstanding": 1,
            }

    class NoAuth:  # a RadiusService with neither auth_servers nor [radius.dae]
        def snapshot(self) -> None:
            return None

    status_of = _radius_status(NoAuth(), Acct())  # type: ignore[arg-type]
    assert status_of is not None
    radius = status_of()
    assert radius is not None
    assert radius["servers"] == {"127.0.0.1:1813": {"requests": 4, "acct_responses": 4}}
    assert radius["outstanding"] == 1
    assert radius["accounting"]["accounting_starts"] == 3
    assert "servers" not in radius["accounting"]

    result = {
        "daemon": "l2tp-lns",
        "version": "0.1.0",
        "pid": 42,
        "uptime": 3,
        "tunnels": {},
        "sessions": {},
        "radius": radius,
    }
    text = ctl.status_text(result)
    assert (
        "accounting  2 sessions, 3 starts, 0 interims, 1 stops, 4 acknowledged, 0 timeouts,"
        " 1 spooled, 0 dropped\n" in text
    )

    class Source:
        def status(self) -> dict[str, Any]:
            return {
                "daemon": "l2tp-lns",
                "version": "9.9",
                "uptime": 1.0,
                "counters": None,
                "tunnels": {},
                "sessions": {},
                "radius": radius,
            }

        def tunnels(self) -> list[dict[str, Any]]:
            return []

    registry = CollectorRegistry(auto_describe=False)
    registry.register(L2tpCollector(Source(), started=0.0))
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
        if not s.labels
    }
    assert samples["l2tp_radius_acct_starts_total"] == 3
    assert samples["l2tp_radius_acct_acknowledged_total"] == 4
    assert samples["l2tp_radius_acct_sessions"] == 2  # a gauge
    assert samples["l2tp_radius_acct_spool_pending"] == 1


def test_daemons_account_the_built_in_ppp_backend_only() -> None:
    from l2tp.daemons.common import _accounting_service
    from l2tp.runtime.backend import NullSessionBackend
    from l2tp.runtime.builtin_ppp import BuiltinPppBackend, DispatchingBackend
    from tests.unit.builtin_ppp_fakes import FakePppKernel

    builtin = BuiltinPppBackend(kernel=FakePppKernel(), raise_fd_limit=False)
    service = _accounting_service(DispatchingBackend(pppd=NullSessionBackend(), builtin=builtin))
    assert service is not None and service.backend is builtin
    assert _accounting_service(NullSessionBackend()) is None


def test_tunnel_records_for_lns_tunnels_with_the_first_reason(tmp_path: Path) -> None:
    import socket

    from l2tp.protocol.events import Role, TunnelClosed, TunnelEstablished
    from l2tp.protocol.values import PeerInfo
    from tests.unit.radius_fakes import value

    class Th:
        def __init__(self, role: Role, sock: socket.socket) -> None:
            self.role, self.sock, self.peer, self.closed = role, sock, ("2001:db8::2", 1701), None

    async def scenario() -> None:
        service = AccountingService(Backend())  # type: ignore[arg-type]
        await service.configure(acct_section(tmp_path / "s", tunnel_accounting=True))
        engine = service.engine
        assert engine is not None
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
            ctx = _Ctx({7: Th(Role.LNS, sock), 8: Th(Role.LAC, sock)})  # type: ignore[dict-item]
            for tunnel_id in (7, 8):
                up = TunnelEstablished(
                    tunnel_id=tunnel_id, peer=PeerInfo(tunnel_id=70, host_name="lac1")
                )
                service._tunnel_up(ctx, up)  # type: ignore[arg-type]
        service.operator_close(7, None)  # l2tp ctl close tunnel 7
        service.note_all(SessionEnd.SHUTDOWN)  # later: does not override
        for tunnel_id in (7, 8):
            service._tunnel_down(TunnelClosed(tunnel_id=tunnel_id, reason=None, by_peer=False))
        records = [e.attributes for e in engine.spool.pending.values()]
        assert [value(r, "Acct-Status-Type") for r in records] == [9, 10]  # LNS tunnel only
        start, stop = records
        assert value(start, "Tunnel-Client-Endpoint") == (0, "2001:db8::2")
        assert value(start, "Tunnel-Server-Endpoint") == (0, "::1")
        assert value(start, "Tunnel-Medium-Type") == (0, 2)  # IPv6
        assert value(start, "Tunnel-Client-Auth-Id") == (0, "lac1")
        assert value(stop, "Acct-Terminate-Cause") == 6  # Admin-Reset
        assert value(start, "Acct-Session-Id") == value(stop, "Acct-Session-Id")
        await service.close()

    asyncio.run(scenario())


def test_tunnel_reject_counts_only_lns_set_ups_the_lac_answered(tmp_path: Path) -> None:
    """Tunnel-Reject (RFC 2867 3.3) for an LNS tunnel closed before it was established,
    once the LAC answered our SCCRP (more than its SCCRQ handed up): its cause by the
    StopCCN; nothing for a set-up that heard only an SCCRQ (source unproven), a tunnel
    that was established (it has its Tunnel-Stop), a LAC-side tunnel, one replaced by a
    tie breaker, or without ``tunnel_accounting``."""
    import socket
    from types import SimpleNamespace

    from l2tp.daemons.radius_accounting import rejected_end
    from l2tp.protocol.constants import StopCcnResult
    from l2tp.protocol.events import Role, TunnelClosed
    from l2tp.protocol.tunnel_config import TunnelCounters
    from l2tp.protocol.values import PeerInfo
    from tests.unit.radius_fakes import value

    def th(messages: int, *, role: Role = Role.LNS, established: bool = False) -> Any:
        tunnel = SimpleNamespace(
            counters=TunnelCounters(messages=messages),
            peer=PeerInfo(tunnel_id=70, host_name="lac1"),
            peer_tunnel_id=70,
        )
        return SimpleNamespace(
            role=role,
            tunnel=tunnel,
            established_at=1.0 if established else None,
            peer=("192.0.2.2", 1701),
            sock=sock,
        )

    def stopccn(result: int | None, *, by_peer: bool, **kw: Any) -> TunnelClosed:
        reason = None if result is None else Reason(result=result)
        return TunnelClosed(tunnel_id=7, reason=reason, by_peer=by_peer, **kw)

    N = StopCcnResult
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        cases = [
            (th(2), stopccn(N.NOT_AUTHORIZED, by_peer=False), SessionEnd.AUTH_FAILED),
            (th(2), stopccn(N.NOT_AUTHORIZED, by_peer=True), SessionEnd.AUTH_FAILED),
            (th(2), stopccn(N.GENERAL_REQUEST, by_peer=True), SessionEnd.PEER_CDN),
            (th(3), stopccn(None, by_peer=False), SessionEnd.TUNNEL_LOST),
            (th(2), stopccn(N.FSM_ERROR, by_peer=False), SessionEnd.NAS_REQUEST),
            (th(1), stopccn(N.GENERAL_ERROR, by_peer=False), None),  # only its SCCRQ
            (th(0), stopccn(None, by_peer=False), None),
            (th(2), stopccn(N.GENERAL_REQUEST, by_peer=False, replaced_by=9), None),
        ]
        for handle, event, expected in cases:
            assert rejected_end(handle, event) is expected, (handle, event)

        async def scenario() -> None:
            service = AccountingService(Backend())  # type: ignore[arg-type]
            await service.configure(acct_section(tmp_path / "s", tunnel_accounting=True))
            engine = service.engine
            assert engine is not None
            refused = stopccn(N.NOT_AUTHORIZED, by_peer=False)
            for handle in (th(2, established=True), th(2, role=Role.LAC), th(1)):
                service._tunnel_rejected(_Ctx({7: handle}), refused)  # type: ignore[arg-type]
            service._tunnel_rejected(_Ctx({}), refused)  # type: ignore[arg-type]  # gone
            assert not engine.spool.pending
            service._tunnel_rejected(_Ctx({7: th(2)}), refused)  # type: ignore[arg-type]
            (record,) = [e.attributes for e in engine.spool.pending.values()]
            assert value(record, "Acct-Status-Type") == 11  # Tunnel-Reject
            assert value(record, "Acct-Terminate-Cause") == 17  # User-Error
            assert value(record, "Acct-Tunnel-Connection") == "7"
            assert value(record, "Tunnel-Client-Endpoint") == (0, "192.0.2.2")
            assert value(record, "Tunnel-Server-Endpoint") == (0, "127.0.0.1")
            assert value(record, "Tunnel-Client-Auth-Id") == (0, "lac1")
            engine.tunnel_accounting = False  # a reload turned it off
            service._tunnel_rejected(_Ctx({7: th(2)}), refused)  # type: ignore[arg-type]
            assert len(engine.spool.pending) == 1
            await service.close()

        asyncio.run(scenario())


def test_removing_acct_servers_drains_the_engine_for_what_it_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sessions with a Start keep the engine for their Stop, and so do a link that
    started under it (its Start may still come) and a tunnel with a Tunnel-Start; new
    sessions are not its. It closes once none is left; ``acct_servers`` given back
    meanwhile take it back into service."""
    monkeypatch.setattr("l2tp.daemons.radius_accounting.DRAIN_POLL", 0.01)
    spool = tmp_path / "acct.spool"
    off = RadiusSection(auth_servers=(server(1812, secret="x"),))

    async def scenario() -> None:
        backend = Backend()
        drained: list[bool] = []
        service = AccountingService(backend)  # type: ignore[arg-type]
        service.on_drained = lambda: drained.append(True)
        try:
            await service.configure(acct_section(spool))
            engine, observer = service.engine, service.observer
            assert engine is not None and observer is not None
            observer.active[(1, 2)] = "sess"
            assert await service.configure(off)
            assert service.draining and service.engine is engine
            assert backend.observer is None  # the sessions starting now are not its
            assert not await service.configure(off)  # already draining
            # Given back: the same engine, in service again.
            assert await service.configure(acct_section(spool))
            assert not service.draining and backend.observer is observer
            assert await service.configure(off)
            del observer.active[(1, 2)]
            starting = SimpleNamespace(settings=SimpleNamespace(observer=observer), released=False)
            backend.links[(1, 3)] = starting
            service._tunnels[7] = (None, 0.0)
            await asyncio.sleep(0.05)
            assert service.engine is engine  # a link coming up, a tunnel up
            starting.released = True
            await asyncio.sleep(0.05)
            assert service.engine is engine  # the tunnel's Tunnel-Stop is its
            del service._tunnels[7]
            await until(lambda: drained, "the drained engine closed")
            assert drained == [True] and not service.draining
            assert service.engine is None and service.spool_path is None
        finally:
            await service.close()

    asyncio.run(scenario())
