"""Per-listener RADIUS against two real FreeRADIUS servers (tests/freeradius.py).

Two servers with different shared secrets and users: the daemon's ``[radius]`` names
server D, ``[listener.a.radius]`` server A (authentication and accounting, with its own
spool and NAS-Identifier). The configuration is loaded from TOML and mapped as the
daemons map it (:func:`~l2tp.daemons.configmap.listen_options`: each session's built-in
PPP options name its listener), the services are the daemons'
(:class:`~l2tp.daemons.radius_setup.RadiusService`,
:class:`~l2tp.daemons.radius_accounting.AccountingService`,
:class:`~l2tp.daemons.radius_listeners.ListenerRadius`), and whole built-in PPP sessions
run over socket pairs (tests/unit/builtin_ppp_fakes.py). A session of listener ``a``
is answered by A (its address, its Start record with ``lns-a``), one of listener ``b``
by D; A's user on listener ``b`` is rejected, because D does not know it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from l2tp.config import Config, loads
from l2tp.daemons.configmap import listen_options
from l2tp.daemons.radius_accounting import AccountingService
from l2tp.daemons.radius_listeners import ListenerRadius
from l2tp.daemons.radius_setup import RadiusService
from l2tp.ppp import AuthMethod
from l2tp.radius.records import Counters
from l2tp.runtime.backend import BackendSession
from l2tp.runtime.builtin_ppp import BuiltinPppBackend, BuiltinPppOptions
from tests.freeradius import FreeRadius
from tests.helpers import until, wait_until
from tests.unit.builtin_ppp_fakes import FakePppKernel, Reported, backend_session, socket_pair
from tests.unit.test_builtin_ppp_backend import LNS_IP, ipcp_up, lac_options

pytestmark = pytest.mark.loopback

D_USERS = """\
d-user Cleartext-Password := "d-pass"
\tFramed-IP-Address = 10.88.0.5
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FreeRadius, FreeRadius]]:
    a = FreeRadius(tmp_path_factory.mktemp("radius-a"), secret="a-secret")
    d = FreeRadius(tmp_path_factory.mktemp("radius-d"), users=D_USERS, secret="d-secret")
    a.start()
    try:
        d.start()
        try:
            yield a, d
        finally:
            d.stop()
    finally:
        a.stop()


def config_for(a: FreeRadius, d: FreeRadius, tmp_path: Path) -> Config:
    """Listener ``a`` with its own servers on A (authentication and accounting), ``b``
    on the daemon's (D)."""
    table = f"""auth_servers = [ {{ address = "127.0.0.1:{a.auth_port}", secret = "{a.secret}" }} ]
acct_servers = [ {{ address = "127.0.0.1:{a.acct_port}", secret = "{a.secret}" }} ]
spool = "{tmp_path / "a.spool"}"
nas_identifier = "lns-a"
"""
    return lns_config(a, d, tmp_path, {"a": table})


async def stats(netns: str | None, ifindex: int) -> Counters:
    return Counters(input_octets=100, output_octets=200)


def test_each_listeners_sessions_are_answered_by_its_own_server(
    servers: tuple[FreeRadius, FreeRadius], tmp_path: Path
) -> None:
    a, d = servers
    config = config_for(a, d, tmp_path)
    options: dict[str, BuiltinPppOptions] = {}
    for lc in config.listeners:
        built = listen_options(lc).ppp.builtin_ppp
        assert built is not None
        options[lc.name] = built

    async def scenario() -> None:
        lns_kernel, lac_kernel = FakePppKernel(), FakePppKernel()
        lns = BuiltinPppBackend(
            kernel=lns_kernel, hostname="lns", terminate_wait=0.5, raise_fd_limit=False
        )
        lac = BuiltinPppBackend(kernel=lac_kernel, hostname="lac", terminate_wait=0.5)
        radius = RadiusService(lns)
        accounting = AccountingService(lns, stats=stats)
        listeners = ListenerRadius(lns, accounting, stats=stats)
        reported: dict[int, Reported] = {}

        async def start(sid: int, listener: str, user: str, password: str) -> tuple[int, int]:
            x, y = socket_pair()
            reported[sid] = Reported()
            lns_session, _ = backend_session(
                x, lns=True, options=options[listener], sid=sid, psid=sid, reported=reported[sid]
            )
            lac_session, _ = backend_session(
                y,
                lns=False,
                options=lac_options(auth=(AuthMethod.PAP,), user=user, password=password),
                sid=sid,
                psid=sid,
            )
            await lns.start(lns_session)
            await lac.start(lac_session)
            return lns_session.key

        try:
            await radius.configure(config.radius)
            await accounting.configure(config.radius)
            await listeners.configure(config)
            key_a = await start(1, "a", "pap-user", "pap-pass")
            await until(lambda: ipcp_up(lns_kernel), "IPCP on listener a")
            await until(lambda: listeners.acct_session_id(key_a) is not None, "a's Start")
            acct_a = listeners.acct_session_id(key_a)
            assert accounting.acct_session_id(key_a) is None  # not the daemon's engine
            key_b = await start(2, "b", "d-user", "d-pass")
            await until(lambda: accounting.acct_session_id(key_b) is not None, "b's Start")
            acct_b = accounting.acct_session_id(key_b)
            await start(3, "b", "pap-user", "pap-pass")  # A's user, D's listener
            await until(lambda: reported[3].downs, "the rejected session's CDN")
            assert reported[3].downs[0][2] == "PPP authentication failed"
            ops = lns_kernel.interfaces_.calls
            assert [c[3] for c in ops if c[0] == "add_address"] == [
                IPv4Address("10.77.0.10"),  # A's Framed-IP-Address for listener a's session
                IPv4Address("10.88.0.5"),  # D's for listener b's
            ]

            def start_in(server: FreeRadius, acct_id: str | None) -> list[dict[str, str]]:
                return [
                    r
                    for r in server.detail_records()
                    if r.get("Acct-Session-Id") == acct_id and r["Acct-Status-Type"] == "Start"
                ]

            await until(lambda: start_in(a, acct_a), "the Start in A's detail file")
            await until(lambda: start_in(d, acct_b), "the Start in D's detail file")
            (record_a,) = start_in(a, acct_a)
            (record_b,) = start_in(d, acct_b)
            assert (record_a["User-Name"], record_a["NAS-Identifier"]) == ("pap-user", "lns-a")
            assert (record_b["User-Name"], record_b["NAS-Identifier"]) == ("d-user", "lns-d")
            assert record_a["Acct-Authentic"] == record_b["Acct-Authentic"] == "RADIUS"
            assert not start_in(d, acct_a) and not start_in(a, acct_b)
            status = listeners.snapshot()["a"]
            assert status["auth"]["accepts"] == 1
            assert status["accounting"]["accounting_starts"] == 1
        finally:
            await asyncio.gather(lns.close(), lac.close())
            await asyncio.gather(accounting.close(drain=2.0), listeners.close(drain=2.0))
            radius.close()
        assert "Login OK: [pap-user]" in a.output()
        assert "Login OK: [d-user]" in d.output()
        assert "Login OK: [pap-user]" not in d.output()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def lns_config(
    a: FreeRadius, d: FreeRadius, tmp_path: Path, tables: dict[str, str | None]
) -> Config:
    """The daemon's [radius] on D; listeners ``a`` and ``b`` with the ``radius`` table
    bodies ``tables`` (None: none)."""
    text = f"""
[radius]
auth_servers = [ {{ address = "127.0.0.1:{d.auth_port}", secret = "{d.secret}" }} ]
acct_servers = [ {{ address = "127.0.0.1:{d.acct_port}", secret = "{d.secret}" }} ]
spool = "{tmp_path / "daemon.spool"}"
nas_identifier = "lns-d"
timeout = 1000
retries = 1
"""
    for name, port in (("a", 1701), ("b", 1702)):
        text += f"""
[listener.{name}]
listen = "192.0.2.1:{port}"
ppp = "builtin"

[listener.{name}.builtin_ppp]
auth = ["pap"]
local_address = "{LNS_IP}"
address_pool = "10.0.0.0/29"
lcp_echo_interval = 0
"""
        table = tables.get(name)
        if table is not None:
            text += f"\n[listener.{name}.radius]\n{table}"
    return loads(text, file="t.toml", daemon="lns", hostname="h", resolver=None)


def test_sessions_live_across_a_reload_end_in_the_accounting_domain_they_started_in(
    servers: tuple[FreeRadius, FreeRadius], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listener ``a`` loses its ``acct_servers`` (A) and ``b`` gains them (A) while
    sessions are up on both; then ``b`` moves to D with another spool. Each session has
    exactly one Start and one Stop, both at the server its Start went to: ``a``'s old
    session ends at A through ``a``'s draining engine, ``b``'s old one at D through the
    daemon's; the sessions started after each reload follow the new file."""
    monkeypatch.setattr("l2tp.daemons.radius_accounting.DRAIN_POLL", 0.05)
    a, d = servers

    def server(r: FreeRadius, port: int) -> str:
        return f'[ {{ address = "127.0.0.1:{port}", secret = "{r.secret}" }} ]'

    auth_a = f"auth_servers = {server(a, a.auth_port)}\n"
    acct_a = f'acct_servers = {server(a, a.acct_port)}\nspool = "{tmp_path / "a.spool"}"\n'
    v1 = lns_config(a, d, tmp_path, {"a": auth_a + acct_a + 'nas_identifier = "lns-a"\n'})
    acct_b = f'acct_servers = {server(a, a.acct_port)}\nspool = "{tmp_path / "b.spool"}"\n'
    v2 = lns_config(a, d, tmp_path, {"a": auth_a, "b": acct_b + 'nas_identifier = "lns-b"\n'})
    moved_b = f'acct_servers = {server(d, d.acct_port)}\nspool = "{tmp_path / "b2.spool"}"\n'
    v3 = lns_config(a, d, tmp_path, {"a": auth_a, "b": moved_b + 'nas_identifier = "lns-b"\n'})

    def options_of(config: Config) -> dict[str, BuiltinPppOptions]:
        out = {}
        for lc in config.listeners:
            built = listen_options(lc).ppp.builtin_ppp
            assert built is not None
            out[lc.name] = built
        return out

    async def scenario() -> dict[str, str]:
        lns_kernel, lac_kernel = FakePppKernel(), FakePppKernel()
        lns = BuiltinPppBackend(
            kernel=lns_kernel, hostname="lns", terminate_wait=0.5, raise_fd_limit=False
        )
        lac = BuiltinPppBackend(kernel=lac_kernel, hostname="lac", terminate_wait=0.5)
        radius = RadiusService(lns)
        accounting = AccountingService(lns, stats=stats)
        listeners = ListenerRadius(lns, accounting, stats=stats)
        sessions: dict[str, tuple[BackendSession, BackendSession]] = {}
        acct_ids: dict[str, str] = {}

        async def apply(config: Config) -> None:
            """As the daemon's reload does, in its order."""
            await radius.configure(config.radius)
            await accounting.configure(config.radius)
            await listeners.configure(config)
            await listeners.drop_gone(config)

        async def start(label: str, sid: int, listener: str, user: str, password: str) -> None:
            config = {"1": v1, "2": v2, "3": v3}[label[-1]]
            x, y = socket_pair()
            lns_session, _ = backend_session(
                x, lns=True, options=options_of(config)[listener], sid=sid, psid=sid
            )
            lac_session, _ = backend_session(
                y,
                lns=False,
                options=lac_options(auth=(AuthMethod.PAP,), user=user, password=password),
                sid=sid,
                psid=sid,
            )
            await lns.start(lns_session)
            await lac.start(lac_session)
            sessions[label] = (lns_session, lac_session)
            key = lns_session.key
            await until(lambda: listeners.acct_session_id(key) is not None, f"{label}'s Start")
            found = listeners.acct_session_id(key)
            assert found is not None
            acct_ids[label] = found

        try:
            await apply(v1)
            await start("a-1", 1, "a", "pap-user", "pap-pass")  # a's own engine: A
            await start("b-1", 2, "b", "d-user", "d-pass")  # the daemon's: D
            await apply(v2)
            a_old = listeners.listeners["a"].accounting
            assert a_old.draining and a_old.engine is not None  # a-1 still up
            await start("a-2", 3, "a", "pap-user", "pap-pass")  # the daemon's now: D
            await start("b-2", 4, "b", "d-user", "d-pass")  # b's own engine: A
            await apply(v3)
            b_old = listeners.listeners["b"].retired
            assert len(b_old) == 1 and b_old[0].draining  # b-2 still up
            await start("b-3", 5, "b", "d-user", "d-pass")  # b's new engine: D
            assert accounting.acct_session_id(sessions["b-1"][0].key) == acct_ids["b-1"]
            for label in sorted(sessions):  # every session ends after the reloads
                lns_session, lac_session = sessions[label]
                await lns.stop(lns_session)
                await lac.stop(lac_session)
            await until(lambda: a_old.engine is None, "a's draining engine closed")
            await until(lambda: listeners.listeners["b"].retired == [], "b's old engine closed")
            assert listeners.listeners["b"].accounting.engine is not None  # in service
        finally:
            await asyncio.gather(lns.close(), lac.close())
            await asyncio.gather(accounting.close(drain=2.0), listeners.close(drain=2.0))
            radius.close()
        return acct_ids

    ids = asyncio.run(asyncio.wait_for(scenario(), 90))
    expected = {"a-1": "A", "b-1": "D", "a-2": "D", "b-2": "A", "b-3": "D"}
    nas = {"a-1": "lns-a", "b-1": "lns-d", "a-2": "lns-d", "b-2": "lns-b", "b-3": "lns-b"}

    def records(server: FreeRadius, acct_id: str) -> list[str]:
        return [
            r["Acct-Status-Type"]
            for r in server.detail_records()
            if r.get("Acct-Session-Id") == acct_id
        ]

    def all_stopped() -> bool:
        return all(
            "Stop" in records(a if expected[label] == "A" else d, acct_id)
            for label, acct_id in ids.items()
        )

    wait_until(all_stopped, what="every Stop at its server")
    assert ids.keys() == expected.keys()
    for label, acct_id in ids.items():
        home, other = (a, d) if expected[label] == "A" else (d, a)
        assert records(home, acct_id) == ["Start", "Stop"], label
        assert records(other, acct_id) == [], label
        (stop,) = [
            r
            for r in home.detail_records()
            if r.get("Acct-Session-Id") == acct_id and r["Acct-Status-Type"] == "Stop"
        ]
        assert stop["NAS-Identifier"] == nas[label], label
