"""Per-listener RADIUS at run time: the built-in PPP picks a session's listener's hook and
observer (the daemon's otherwise), :class:`ListenerRadius` builds, keeps, rebuilds and
drops each listener's clients across reloads, and ``l2tp ctl status`` and the metrics
show their counters by listener."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from l2tp.cli import ctl
from l2tp.config import Config, loads
from l2tp.daemons.preflight import StartError
from l2tp.daemons.radius_accounting import AccountingService
from l2tp.daemons.radius_listeners import ListenerRadius, Refuse
from l2tp.ppp import AuthDecision, AuthMethod, PapRequest
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


@contextlib.asynccontextmanager
async def running_listeners() -> AsyncIterator[tuple[BuiltinPppBackend, ListenerRadius]]:
    """A built-in PPP backend on the fake kernel and its listeners' RADIUS services,
    closed when the test is done with them."""
    backend = BuiltinPppBackend(kernel=FakePppKernel(), raise_fd_limit=False)
    listeners = ListenerRadius(backend, AccountingService(backend))
    try:
        yield backend, listeners
    finally:
        await listeners.close()


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
        async with running_listeners() as (backend, listeners):
            with pytest.raises(StartError) as info:
                await listeners.configure(config(daemon_file(tmp_path, a=table, b=OWN_A)))
            assert str(info.value).startswith(
                f'[listener.a.radius] auth_servers[0] secret_file = "{missing}": '
            )
            assert backend.authenticators.keys() == {"a", "b"}  # the others applied
            assert isinstance(backend.authenticators["a"], Refuse)  # not the daemon's

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


def listeners_file(tables: dict[str, str]) -> str:
    """A daemon with the listeners ``tables`` (name: ``[listener.NAME.radius]`` body;
    empty: no table)."""
    text = '[radius]\nauth_servers = [ { address = "127.0.0.1:18120", secret = "d" } ]\n'
    for port, (name, table) in enumerate(sorted(tables.items()), start=1701):
        text += f'\n[listener.{name}]\nlisten = "192.0.2.1:{port}"\nppp = "builtin"\n'
        text += f'\n[listener.{name}.builtin_ppp]\nlocal_address = "10.0.0.1"\n'
        if table:
            text += f"\n[listener.{name}.radius]\n{table}"
    return text


def test_a_removed_listeners_engine_stays_until_its_tunnels_are_closed(tmp_path: Path) -> None:
    """The daemon's reload closes a removed listener's tunnels after the RADIUS reload:
    their Stops need the engine until :meth:`ListenerRadius.drop_gone`."""

    async def scenario() -> None:
        async with running_listeners() as (backend, listeners):
            await listeners.configure(config(listeners_file({"b": OWN_A + acct_only(tmp_path)})))
            observer, hook = backend.observers["b"], backend.authenticators["b"]
            assert isinstance(observer, PppAccounting) and isinstance(hook, RadiusAuthenticator)
            without_b = config(listeners_file({"a": OWN_A}))
            await listeners.configure(without_b)
            assert backend.observers["b"] is observer  # b's sessions are still up
            assert backend.authenticators["b"] is hook
            assert listeners.listeners["b"].accounting.engine is not None
            assert await listeners.drop_gone(without_b)
            assert "b" not in backend.observers and "b" not in listeners.listeners
            assert backend.authenticators.keys() == {"a"}
            assert isinstance(hook.client, RadiusClient) and hook.client.closed
            assert not await listeners.drop_gone(without_b)

    asyncio.run(scenario())


def test_a_renamed_listener_takes_its_spool_over_once_the_old_name_is_gone(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running_listeners() as (backend, listeners):
            await listeners.configure(config(listeners_file({"b": acct_only(tmp_path)})))
            old = listeners.listeners["b"].accounting.engine
            # c's problem is reported once, by the reload's configure (not by drop_gone).
            missing = tmp_path / "none.secret"
            bad = f'auth_servers = [ {{ address = "127.0.0.1", secret_file = "{missing}" }} ]\n'
            renamed = config(listeners_file({"a": acct_only(tmp_path), "c": bad}))
            with pytest.raises(StartError) as info:
                await listeners.configure(renamed)  # a's spool is free after drop_gone
            assert str(info.value).startswith("[listener.c.radius] auth_servers[0]")
            assert "a" not in backend.observers  # not two engines on one spool
            assert listeners.listeners["b"].accounting.engine is old
            assert await listeners.drop_gone(renamed)
            engine = listeners.listeners["a"].accounting.engine
            assert engine is not None and engine is not old
            assert engine.spool.path == str(tmp_path / "b.spool")
            assert isinstance(backend.observers["a"], PppAccounting)

    asyncio.run(scenario())


def test_no_engine_opens_a_spool_that_a_running_engine_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader sees one file; the daemon's engine keeps its spool until a restart, so a
    reload that moves [radius] spool away and gives the old path to a listener would
    make two engines on one file. A relative path names the same file as the absolute
    one."""
    monkeypatch.chdir(tmp_path)
    spool = tmp_path / "daemon.spool"
    table = acct_only(tmp_path).replace(str(tmp_path / "b.spool"), str(spool))
    loaded = config(listeners_file({"b": table}))

    async def scenario() -> None:
        backend = BuiltinPppBackend(kernel=FakePppKernel(), raise_fd_limit=False)
        daemon_accounting = AccountingService(backend)
        listeners = ListenerRadius(backend, daemon_accounting)
        try:
            own = loaded.listeners[0].radius
            assert own is not None and own.accounting is not None and loaded.radius is not None
            relative = dataclasses.replace(own.accounting, spool="daemon.spool")
            await daemon_accounting.configure(
                dataclasses.replace(loaded.radius, accounting=relative)
            )
            with pytest.raises(StartError) as info:
                await listeners.configure(loaded)
            assert str(info.value) == (
                f'[listener.b.radius] spool = "{spool}": in use by [radius] (its spool'
                " changes at the next start) (each accounting engine needs a spool file of"
                " its own)"
            )
            assert "b" not in backend.observers  # b's sessions on the daemon's engine
        finally:
            await listeners.close()
            await daemon_accounting.close()

    asyncio.run(scenario())


def test_a_listener_whose_own_servers_cannot_be_used_refuses_its_peers(tmp_path: Path) -> None:
    """Its file says the daemon's servers do not judge its peers: a secret that cannot be
    read (a reload goes on with the rest) must not hand them to the daemon's hook. The
    refusal says nothing of why to the peer; a later reload that works replaces it."""
    missing = tmp_path / "none.secret"
    table = f'auth_servers = [ {{ address = "127.0.0.1", secret_file = "{missing}" }} ]\n'
    context: Any = None

    async def scenario() -> None:
        backend = BuiltinPppBackend(kernel=FakePppKernel(), raise_fd_limit=False)
        daemon_hook = AsyncHook()
        backend.authenticator = daemon_hook
        listeners = ListenerRadius(backend, AccountingService(backend))
        try:
            with pytest.raises(StartError):
                await listeners.configure(config(daemon_file(tmp_path, a=table)))
            hook = backend.authenticator_for(BuiltinPppOptions(listener="a"))
            assert hook is not None and hook is not daemon_hook
            request = PapRequest(user="alice", password=b"pw")
            decision = hook.authenticate(request, context)
            assert isinstance(decision, AuthDecision)
            assert not decision.success and decision.message == ""
            # Fixed: its own client; gone: the daemon's again.
            assert await listeners.configure(config(daemon_file(tmp_path, a=OWN_A)))
            assert isinstance(backend.authenticators["a"], RadiusAuthenticator)
            with pytest.raises(StartError):
                await listeners.configure(config(daemon_file(tmp_path, a=table)))
            assert isinstance(backend.authenticators["a"], RadiusAuthenticator)  # the old stays
            await listeners.configure(config(daemon_file(tmp_path)))
            assert backend.authenticator_for(BuiltinPppOptions(listener="a")) is daemon_hook
            with pytest.raises(StartError):
                await listeners.configure(config(daemon_file(tmp_path, a=table)))
            await listeners.configure(config(daemon_file(tmp_path)))
            assert backend.authenticator_for(BuiltinPppOptions(listener="a")) is daemon_hook
        finally:
            await listeners.close()

    asyncio.run(scenario())


def test_drop_gone_ends_the_gone_listeners_ppp_before_closing_its_engine(
    tmp_path: Path,
) -> None:
    """The tunnels are closed, but a link's release (which writes the Stop) may still be
    under way: it ends first, with the engine there to take the Stop."""

    class Link:
        def __init__(self, listener: str) -> None:
            self.options = BuiltinPppOptions(listener=listener)
            self.session = listener

    async def scenario() -> None:
        backend = BuiltinPppBackend(kernel=FakePppKernel(), raise_fd_limit=False)
        listeners = ListenerRadius(backend, AccountingService(backend))
        stopped: list[tuple[object, bool]] = []

        async def stop(session: Any) -> None:
            stopped.append((session, isinstance(backend.observers.get("b"), PppAccounting)))

        backend.stop = stop  # type: ignore[method-assign]
        backend.links.update({(1, 1): Link("b"), (1, 2): Link("a")})  # type: ignore[dict-item]
        try:
            await listeners.configure(config(listeners_file({"b": acct_only(tmp_path)})))
            without_b = config(listeners_file({"a": OWN_A}))
            await listeners.configure(without_b)
            await listeners.drop_gone(without_b)
            assert stopped == [("b", True)]  # b's only, its engine still open then
            assert "b" not in backend.observers
        finally:
            backend.links.clear()
            await listeners.close()

    asyncio.run(scenario())


def test_no_engine_opens_a_spool_that_a_running_engine_holds_under_another_path(
    tmp_path: Path,
) -> None:
    """The daemon's engine holds ``state/daemon.spool`` (its spool changes at a restart);
    a reload naming it through a symbolic link to the directory, or with ``..``, is the
    same file for a listener too."""
    (tmp_path / "state" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "state", target_is_directory=True)
    spool = tmp_path / "state" / "daemon.spool"

    async def scenario(aliased: str) -> None:
        table = acct_only(tmp_path).replace(str(tmp_path / "b.spool"), aliased)
        loaded = config(listeners_file({"b": table}))
        backend = BuiltinPppBackend(kernel=FakePppKernel(), raise_fd_limit=False)
        daemon_accounting = AccountingService(backend)
        listeners = ListenerRadius(backend, daemon_accounting)
        try:
            own = loaded.listeners[0].radius
            assert own is not None and own.accounting is not None and loaded.radius is not None
            daemon_table = dataclasses.replace(own.accounting, spool=str(spool))
            await daemon_accounting.configure(
                dataclasses.replace(loaded.radius, accounting=daemon_table)
            )
            with pytest.raises(StartError) as info:
                await listeners.configure(loaded)
            assert str(info.value).startswith(
                f'[listener.b.radius] spool = "{aliased}": in use by [radius]'
            )
            assert "b" not in backend.observers  # b's sessions on the daemon's engine
        finally:
            await listeners.close()
            await daemon_accounting.close()

    for aliased in (f"{tmp_path}/link/daemon.spool", f"{tmp_path}/state/sub/../daemon.spool"):
        asyncio.run(scenario(aliased))


def bare_b(tmp_path: Path, spool: str = "b.spool", secret: str = "b") -> str:
    return (
        f'acct_servers = [ {{ address = "127.0.0.1:18131", secret = "{secret}" }} ]\n'
        f'spool = "{tmp_path / spool}"\n'
    )


@pytest.fixture
def quick_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("l2tp.daemons.radius_accounting.DRAIN_POLL", 0.01)


@pytest.mark.parametrize("how", ["no table", "auth only"])
def test_a_listener_that_loses_its_acct_servers_keeps_its_engine_for_its_sessions(
    tmp_path: Path, how: str, quick_drain: None
) -> None:
    """Its sessions had their Start from its engine: their Interim-Updates and Stop come
    from it too (no Stop lost), while new sessions go to the daemon's; the engine closes
    once they have ended."""

    async def scenario() -> None:
        async with running_listeners() as (backend, listeners):
            await listeners.configure(config(listeners_file({"b": bare_b(tmp_path)})))
            service = listeners.listeners["b"].accounting
            observer, engine = backend.observers["b"], service.engine
            assert isinstance(observer, PppAccounting) and engine is not None
            observer.active[(5, 6)] = "sess-b"  # a session up, Start sent
            without = "" if how == "no table" else OWN_A
            assert await listeners.configure(config(listeners_file({"a": OWN_A, "b": without})))
            assert "b" not in backend.observers  # new sessions: the daemon's engine
            assert service.draining and service.engine is engine  # still there
            snapshot = service.snapshot()
            assert snapshot is not None and snapshot["draining"] is True  # l2tp ctl status
            assert engine._task is not None and not engine._task.done()  # sending, interims
            assert service.spool_path == str(tmp_path / "b.spool")
            assert listeners.acct_session_id((5, 6)) == "sess-b"  # DAE finds it
            listeners.operator_close(5, 6)  # reasons still reach it
            assert observer._ends == {(5, 6): SessionEnd.ADMIN_CLOSE}
            await asyncio.sleep(0.05)
            assert service.engine is engine  # the session is still up
            observer.active.clear()  # its Stop made
            observer._ends.clear()
            await until(lambda: not service.draining, "the drained engine closed")
            assert service.engine is None and service.spool_path is None

    asyncio.run(scenario())


def test_a_draining_engine_is_taken_back_when_its_acct_servers_return(
    tmp_path: Path, quick_drain: None
) -> None:
    async def scenario() -> None:
        async with running_listeners() as (backend, listeners):
            with_b = config(listeners_file({"b": bare_b(tmp_path)}))
            await listeners.configure(with_b)
            service = listeners.listeners["b"].accounting
            observer, engine = backend.observers["b"], service.engine
            assert isinstance(observer, PppAccounting)
            observer.active[(5, 6)] = "sess-b"
            await listeners.configure(config(listeners_file({"b": OWN_A})))
            assert service.draining
            # Back, the same file (another secret): the same engine, in service again.
            await listeners.configure(config(listeners_file({"b": bare_b(tmp_path, secret="x")})))
            assert not service.draining and service.engine is engine
            assert backend.observers["b"] is observer
            observer.active.clear()
            await asyncio.sleep(0.05)
            assert service.engine is engine  # in service: not closed when idle

    asyncio.run(scenario())


def test_a_listener_moved_to_another_spool_gets_a_new_engine_the_old_one_drains(
    tmp_path: Path, quick_drain: None
) -> None:
    """Another spool is another accounting domain: the sessions started on the old engine
    end on it (its servers), the new sessions start on the new one."""

    async def scenario() -> None:
        async with running_listeners() as (backend, listeners):
            await listeners.configure(config(listeners_file({"b": bare_b(tmp_path)})))
            old = listeners.listeners["b"].accounting
            old_observer, old_engine = backend.observers["b"], old.engine
            assert isinstance(old_observer, PppAccounting) and old_engine is not None
            old_observer.active[(5, 6)] = "sess-old"
            moved = config(listeners_file({"b": bare_b(tmp_path, "b2.spool", secret="n")}))
            assert await listeners.configure(moved)
            new = listeners.listeners["b"].accounting
            assert new is not old and listeners.listeners["b"].retired == [old]
            assert new.spool_path == str(tmp_path / "b2.spool")
            assert old.draining and old.engine is old_engine
            new_observer = backend.observers["b"]
            assert isinstance(new_observer, PppAccounting) and new_observer is not old_observer
            assert listeners.acct_session_id((5, 6)) == "sess-old"
            # Status: the engine in service, and the replaced one with its servers,
            # draining (where the old sessions' Stops go).
            status = listeners.snapshot()["b"]
            (replaced,) = status["replaced_accounting"]
            assert replaced["draining"] is True and "accounting_sessions" in replaced
            assert "draining" not in status["accounting"]
            text = ctl.status_text(
                {
                    "daemon": "l2tp-lns",
                    "version": "0",
                    "pid": 1,
                    "uptime": 1,
                    "tunnels": {},
                    "sessions": {},
                    "radius": {"listeners": listeners.snapshot()},
                }
            )
            (line,) = [x for x in text.splitlines() if "replaced, to" in x]
            assert line.startswith("accounting b") and "sessions" in line
            assert "(draining: no new sessions; closes once these end)" in line
            # The same file again: nothing moves.
            assert not await listeners.configure(moved)
            old_observer.active.clear()
            await until(lambda: listeners.listeners["b"].retired == [], "the old engine gone")
            assert old.engine is None and new.engine is not None

    asyncio.run(scenario())


def test_a_spool_held_by_a_draining_engine_is_opened_once_it_has_closed(
    tmp_path: Path, quick_drain: None
) -> None:
    async def scenario() -> None:
        async with running_listeners() as (backend, listeners):
            await listeners.configure(config(listeners_file({"b": bare_b(tmp_path)})))
            b = listeners.listeners["b"].accounting
            observer = backend.observers["b"]
            assert isinstance(observer, PppAccounting)
            observer.active[(5, 6)] = "sess-b"
            # b loses its accounting and c wants b's spool: not while b's engine drains.
            moved = config(listeners_file({"b": OWN_A, "c": bare_b(tmp_path)}))
            with pytest.raises(StartError) as info:
                await listeners.configure(moved)
            assert str(info.value) == (
                f'[listener.c.radius] spool = "{tmp_path / "b.spool"}": in use by'
                " [listener.b.radius]'s draining engine (until the sessions it accounts end)"
                " (each accounting engine needs a spool file of its own)"
            )
            assert "c" not in backend.observers and b.draining
            observer.active.clear()
            await until(lambda: "c" in backend.observers, "c's engine opened after the drain")
            c = listeners.listeners["c"].accounting
            assert c.spool_path == str(tmp_path / "b.spool") and b.engine is None

    asyncio.run(scenario())


@pytest.mark.parametrize("busy", [False, True])
def test_the_daemons_engine_waits_for_a_spool_a_listener_engine_still_holds(
    tmp_path: Path, quick_drain: None, busy: bool
) -> None:
    """A reload gives listener b's spool to [radius] (b loses its acct_servers): the file
    is fine, but the daemon's engine is configured before the listeners', while b's still
    holds the spool (and keeps it while it drains): it opens once b's has closed."""
    spool = tmp_path / "b.spool"
    daemon_acct = (
        '[radius]\nacct_servers = [ { address = "127.0.0.1:18131", secret = "d" } ]\n'
        f'spool = "{tmp_path}/./b.spool"\n'
    )
    moved = config(listeners_file({"b": OWN_A}).replace("[radius]\n", daemon_acct, 1))

    async def scenario() -> None:
        backend = BuiltinPppBackend(kernel=FakePppKernel(), raise_fd_limit=False)
        daemon = AccountingService(backend)
        listeners = ListenerRadius(backend, daemon)
        try:
            await listeners.configure(config(listeners_file({"b": bare_b(tmp_path)})))
            b = listeners.listeners["b"].accounting
            observer = backend.observers["b"]
            assert isinstance(observer, PppAccounting)
            if busy:
                observer.active[(5, 6)] = "sess-b"
            with pytest.raises(StartError) as info:
                await daemon.configure(moved.radius)  # the daemon's reload order
            assert str(info.value) == (
                f'[radius] spool = "{tmp_path}/./b.spool": in use by'
                " [listener.b.radius]'s engine (each accounting engine needs a spool file"
                " of its own)"
            )
            assert daemon.engine is None
            await listeners.configure(moved)
            await listeners.drop_gone(moved)
            if busy:
                assert b.draining and daemon.engine is None
                observer.active.clear()
                await until(lambda: daemon.engine is not None, "the daemon's engine opened")
            assert b.engine is None and daemon.engine is not None
            assert daemon.spool_path == f"{tmp_path}/./b.spool"
            assert backend.observer is daemon.observer
            assert spool.exists()
        finally:
            await listeners.close()
            await daemon.close()

    asyncio.run(scenario())


def test_metrics_show_draining_and_replaced_engines() -> None:
    """``l2tp_radius_acct_draining`` / ``l2tp_radius_listener_acct_draining{listener}``:
    1 while an engine takes no new sessions; ``l2tp_radius_listener_acct_replaced``:
    the engines a move to another spool left draining (where old sessions' Stops go)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from l2tp.daemons.metrics_radius import radius_metrics

    old = {"accounting_sessions": 1, "servers": {"127.0.0.1:1813": {}}, "draining": True}
    status = {
        "servers": {},
        "outstanding": 0,
        "accounting": {"accounting_starts": 1, "draining": True},
        "listeners": {
            "a": {"servers": {}, "outstanding": 0, "accounting": {"accounting_starts": 0}},
            "b": {
                "servers": {},
                "outstanding": 0,
                "accounting": {"accounting_starts": 2},
                "replaced_accounting": [old],
            },
        },
    }

    class Collector:
        def collect(self) -> Any:
            return radius_metrics(status)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    a, b = (("listener", "a"),), (("listener", "b"),)
    assert samples["l2tp_radius_acct_draining", ()] == 1
    assert samples["l2tp_radius_listener_acct_draining", a] == 0
    assert samples["l2tp_radius_listener_acct_draining", b] == 0
    assert samples["l2tp_radius_listener_acct_replaced", a] == 0
    assert samples["l2tp_radius_listener_acct_replaced", b] == 1
    assert ("l2tp_radius_acct_replaced", ()) not in samples  # the daemon's has no moves
