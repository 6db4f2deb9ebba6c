"""Per-listener RADIUS at run time: the built-in PPP picks a session's listener's hook and
observer (the daemon's otherwise), :class:`ListenerRadius` builds, keeps, rebuilds and
drops each listener's clients across reloads, and ``l2tp ctl status`` and the metrics
show their counters by listener."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from l2tp.config import Config, loads
from l2tp.daemons.preflight import StartError
from l2tp.daemons.radius_accounting import AccountingService
from l2tp.daemons.radius_listeners import ListenerRadius
from l2tp.ppp import AuthMethod
from l2tp.radius.auth import RadiusAuthenticator
from l2tp.radius.client import RadiusClient
from l2tp.radius.records import SessionEnd
from l2tp.radius.session_accounting import PppAccounting
from l2tp.runtime.builtin_ppp import BuiltinPppBackend, BuiltinPppOptions, PppSessionView
from l2tp.runtime.ppp_outcome import Ending
from tests.helpers import until
from tests.unit.builtin_ppp_fakes import FakePppKernel
from tests.unit.test_builtin_ppp_backend import (
    AsyncHook,
    Pair,
    ipcp_up,
    lac_options,
    lns_options,
)


class Observer:
    def __init__(self) -> None:
        self.ups: list[tuple[int, int]] = []
        self.downs: list[tuple[int, int]] = []

    def session_up(self, view: PppSessionView) -> None:
        self.ups.append(view.key)

    async def session_down(self, view: PppSessionView, ending: Ending | None) -> None:
        self.downs.append(view.key)


def test_the_backend_picks_the_listeners_own_hook_and_observer_or_the_daemons() -> None:
    backend = BuiltinPppBackend(kernel=FakePppKernel(), raise_fd_limit=False)
    daemon_hook, own_hook = AsyncHook(), AsyncHook()
    daemon_observer, own_observer = Observer(), Observer()
    backend.authenticator, backend.observer = daemon_hook, daemon_observer
    backend.authenticators["a"], backend.observers["a"] = own_hook, own_observer
    assert backend.authenticator_for(BuiltinPppOptions(listener="a")) is own_hook
    assert backend.observer_for(BuiltinPppOptions(listener="a")) is own_observer
    for options in (BuiltinPppOptions(listener="b"), BuiltinPppOptions()):
        assert backend.authenticator_for(options) is daemon_hook
        assert backend.observer_for(options) is daemon_observer
    backend.authenticator = backend.observer = None
    assert backend.authenticator_for(BuiltinPppOptions(listener="b")) is None  # secrets file


@pytest.mark.parametrize("listener", ["a", "b"])
def test_a_session_is_checked_and_observed_by_its_listeners_own(
    tmp_path: Path, listener: str
) -> None:
    async def scenario() -> None:
        lns_kernel, lac_kernel = FakePppKernel(), FakePppKernel()
        daemon_hook, own_hook = AsyncHook(), AsyncHook()
        daemon_observer, own_observer = Observer(), Observer()
        lns = BuiltinPppBackend(
            kernel=lns_kernel,
            hostname="lns",
            terminate_wait=0.5,
            authenticator=daemon_hook,
            observer=daemon_observer,
            raise_fd_limit=False,
        )
        lns.authenticators["a"], lns.observers["a"] = own_hook, own_observer
        lac = BuiltinPppBackend(kernel=lac_kernel, hostname="lac", terminate_wait=0.5)
        pair = Pair(lns=lns, lac=lac, lns_kernel=lns_kernel, lac_kernel=lac_kernel)
        try:
            await pair.start(
                lns_options(tmp_path, auth=(AuthMethod.PAP,), secrets=None, listener=listener),
                lac_options(auth=(AuthMethod.PAP,)),
            )
            await until(lambda: ipcp_up(lns_kernel) and ipcp_up(lac_kernel), "IPCP")
            chosen, other = (own_hook, daemon_hook) if listener == "a" else (daemon_hook, own_hook)
            assert len(chosen.contexts) == 1 and other.contexts == []
            seen, unseen = (
                (own_observer, daemon_observer)
                if listener == "a"
                else (daemon_observer, own_observer)
            )
            await until(lambda: seen.ups, "session_up")
            assert unseen.ups == []
        finally:
            await pair.close()
        assert seen.downs == seen.ups and unseen.downs == []

    asyncio.run(asyncio.wait_for(scenario(), 30))


def config(text: str) -> Config:
    return loads(text, file="t.toml", daemon="lns", hostname="h", resolver=None)


def daemon_file(tmp_path: Path, *, nas: str = "lns-1", a: str = "", b: str = "") -> str:
    text = f"""
[radius]
auth_servers = [ {{ address = "127.0.0.1:18120", secret = "d" }} ]
nas_identifier = "{nas}"
"""
    for name, port, table in (("a", 1701, a), ("b", 1702, b)):
        text += f"""
[listener.{name}]
listen = "192.0.2.1:{port}"
ppp = "builtin"

[listener.{name}.builtin_ppp]
local_address = "10.0.0.1"
"""
        if table:
            text += f"\n[listener.{name}.radius]\n{table}"
    return text


OWN_A = 'auth_servers = [ { address = "127.0.0.1:18121", secret = "a" } ]\n'


def acct_only(tmp_path: Path) -> str:
    spool = tmp_path / "b.spool"
    return (
        f'acct_servers = [ {{ address = "127.0.0.1:18131", secret = "b" }} ]\nspool = "{spool}"\n'
    )


def test_listener_clients_are_built_kept_rebuilt_and_dropped_across_reloads(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        backend = BuiltinPppBackend(kernel=FakePppKernel(), raise_fd_limit=False)
        daemon_accounting = AccountingService(backend)
        listeners = ListenerRadius(backend, daemon_accounting)
        try:
            assert await listeners.configure(config(daemon_file(tmp_path, a=OWN_A)))
            own = backend.authenticators["a"]
            assert isinstance(own, RadiusAuthenticator) and isinstance(own.client, RadiusClient)
            assert list(own.client.snapshot()["servers"]) == ["127.0.0.1:18121"]
            own_client = own.client
            assert "b" not in backend.authenticators and backend.observers == {}
            # The same file: nothing rebuilt.
            assert not await listeners.configure(config(daemon_file(tmp_path, a=OWN_A)))
            assert backend.authenticators["a"] is own
            # An inherited key of the daemon's changed: a's client follows it.
            assert await listeners.configure(config(daemon_file(tmp_path, nas="x", a=OWN_A)))
            rebuilt = backend.authenticators["a"]
            assert rebuilt is not own and not own_client.closed  # closed after its grace
            assert isinstance(rebuilt, RadiusAuthenticator) and rebuilt.nas_identifier == "x"
            # Listener b gets accounting only: its own engine, the daemon's authentication.
            text = daemon_file(tmp_path, nas="x", a=OWN_A, b=acct_only(tmp_path))
            assert await listeners.configure(config(text))
            assert backend.authenticators.keys() == {"a"}
            observer = backend.observers["b"]
            assert isinstance(observer, PppAccounting)
            assert backend.observer is None  # the daemon's engine is not involved
            assert (tmp_path / "b.spool").exists()
            status = listeners.snapshot()
            assert status.keys() == {"a", "b"}
            assert list(status["a"]["servers"]) == ["127.0.0.1:18121"]
            assert list(status["b"]["servers"]) == ["127.0.0.1:18131"]
            assert status["b"]["accounting"]["accounting_sessions"] == 0
            assert "accounting" not in status["a"]
            # Reasons reach whichever engine accounts for the session.
            observer.active[(5, 6)] = "sess-b"
            assert listeners.acct_session_id((5, 6)) == "sess-b"
            assert listeners.acct_session_id((5, 7)) is None
            listeners.operator_close(5, 6)
            listeners.note_end((5, 6), SessionEnd.NAS_REQUEST)  # the first reason wins
            assert observer._ends == {(5, 6): SessionEnd.ADMIN_CLOSE}
            observer.active.clear()
            # Tables removed: both listeners back on the daemon's.
            assert await listeners.configure(config(daemon_file(tmp_path, nas="x")))
            assert backend.authenticators == {} and backend.observers == {}
            assert listeners.snapshot() == {}
        finally:
            await listeners.close()
            await daemon_accounting.close()

    asyncio.run(scenario())


def test_a_listener_that_only_renames_nothing_shares_the_daemons_client(tmp_path: Path) -> None:
    """A table whose effective authentication equals the daemon's builds no copy."""

    async def scenario() -> None:
        backend = BuiltinPppBackend(kernel=FakePppKernel(), raise_fd_limit=False)
        daemon_accounting = AccountingService(backend)
        listeners = ListenerRadius(backend, daemon_accounting)
        try:
            await listeners.configure(config(daemon_file(tmp_path, a='nas_identifier = "lns-1"\n')))
            assert backend.authenticators == {}
        finally:
            await listeners.close()

    asyncio.run(scenario())


def test_a_secret_file_that_cannot_be_read_names_the_listeners_table(tmp_path: Path) -> None:
    missing = tmp_path / "none.secret"
    table = f'auth_servers = [ {{ address = "127.0.0.1", secret_file = "{missing}" }} ]\n'

    async def scenario() -> None:
        backend = BuiltinPppBackend(kernel=FakePppKernel(), raise_fd_limit=False)
        listeners = ListenerRadius(backend, AccountingService(backend))
        try:
            with pytest.raises(StartError) as info:
                await listeners.configure(config(daemon_file(tmp_path, a=table, b=OWN_A)))
            assert str(info.value).startswith(
                f'[listener.a.radius] auth_servers[0] secret_file = "{missing}": '
            )
            assert backend.authenticators.keys() == {"b"}  # the others applied
        finally:
            await listeners.close()

    asyncio.run(scenario())


def status_with_listeners() -> dict[str, Any]:
    server = {"requests": 4, "accepts": 3, "rejects": 1}
    return {
        "servers": {"127.0.0.1:1812": {"requests": 9}},
        "outstanding": 0,
        "listeners": {
            "a": {"servers": {"127.0.0.1:18121": server}, "outstanding": 1},
            "b": {
                "servers": {"127.0.0.1:18131": {"requests": 2, "acct_responses": 2}},
                "outstanding": 0,
                "accounting": {"accounting_starts": 2, "accounting_spool_pending": 1},
            },
        },
    }


def test_metrics_and_ctl_show_each_listeners_clients() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from l2tp.cli import ctl
    from l2tp.daemons.metrics_radius import radius_metrics

    class Collector:
        def collect(self) -> Any:
            return radius_metrics(status_with_listeners())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    text = generate_latest(registry).decode()
    assert text.count("# TYPE l2tp_radius_listener_requests_total counter") == 1
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    a = ("listener", "a")
    assert samples["l2tp_radius_requests_total", (("server", "127.0.0.1:1812"),)] == 9
    assert samples["l2tp_radius_listener_requests_total", (a, ("server", "127.0.0.1:18121"))] == 4
    accepts = (("kind", "accept"), a, ("server", "127.0.0.1:18121"))
    assert samples["l2tp_radius_listener_replies_total", accepts] == 3
    assert samples["l2tp_radius_listener_outstanding", (a,)] == 1
    b = (("listener", "b"),)
    assert samples["l2tp_radius_listener_acct_starts_total", b] == 2
    assert samples["l2tp_radius_listener_acct_spool_pending", b] == 1
    assert not any(name.startswith("l2tp_radius_acct_") for name, _ in samples)

    result = {
        "daemon": "l2tp-lns",
        "version": "0",
        "pid": 1,
        "uptime": 1,
        "tunnels": {},
        "sessions": {},
        "radius": status_with_listeners(),
    }
    lines = ctl.status_text(result).splitlines()
    assert any(
        line.startswith("radius a") and "127.0.0.1:18121: 4 requests, 3 accepts" in line
        for line in lines
    )
    assert any(line.startswith("accounting b") and "2 starts" in line for line in lines)
