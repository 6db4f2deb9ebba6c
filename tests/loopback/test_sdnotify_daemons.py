"""systemd Type=notify from the real daemons: READY, STATUS, RELOADING, STOPPING, WATCHDOG.

Each daemon runs as a subprocess (null data plane) with ``NOTIFY_SOCKET`` pointing at a
datagram socket of the test, as systemd would set it up.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from l2tp.protocol.events import Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.control import L2tpContext
from tests.helpers import until
from tests.loopback.daemon import Daemon
from tests.notify_socket import NotifySocket

pytestmark = pytest.mark.loopback

WATCHDOG_USEC = 200_000
"""0.2 s: the daemons should ping every 0.1 s."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    """The socket, named in the environment the daemons inherit (the harness copies it)."""
    sock = NotifySocket(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", sock.env_value)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def _pings_between(manager: NotifySocket, first: str, last: str) -> tuple[int, float]:
    """Watchdog pings received between the first ``first`` and the first ``last``
    message, and the seconds between the two (as the test read them)."""
    messages = manager.drain()
    start = next(i for i, m in enumerate(messages) if first in m)
    end = next(i for i, m in enumerate(messages) if last in m)
    pings = sum(1 for m in messages[start:end] if m.get("WATCHDOG") == "1")
    return pings, manager.times[end] - manager.times[start]


def _check_rate(pings: int, seconds: float) -> None:
    """About one ping per half interval; loose bounds (a loaded machine delays both
    the daemon and the test's reading)."""
    expected = seconds / (WATCHDOG_USEC / 1e6 / 2)
    assert pings >= 3
    assert pings <= 2 * expected + 5, (pings, seconds)


LISTENERS = {
    "l2tp.daemons.lns": '[listener.l]\nlisten = "127.0.0.1:{port}"\n',
    "l2tp.daemons.l2tpd": '[listener.v3]\nlisten = "127.0.0.1:{port}"\n',
}


@pytest.mark.parametrize("module", sorted(LISTENERS))
def test_listener_daemon_notifies(module: str, tmp_path: Path, manager: NotifySocket) -> None:
    conf = tmp_path / "d.toml"
    conf.write_text(LISTENERS[module].format(port=_free_port()))

    async def scenario() -> None:
        daemon = Daemon(module, conf)
        try:
            await daemon.wait_ready()
            await until(lambda: manager.having("READY"), "READY=1")
            status = manager.having("READY")[0]["STATUS"]
            assert "127.0.0.1:" in status and "tunnels" in status
            await until(lambda: len(manager.having("WATCHDOG")) >= 5, "watchdog pings")
            daemon.send_signal(signal.SIGHUP)
            await daemon.wait_says("configuration reloaded")
            await until(lambda: len(manager.having("READY")) == 2, "READY=1 after the reload")
            reloading = manager.having("RELOADING")
            assert len(reloading) == 1 and int(reloading[0]["MONOTONIC_USEC"]) > 0
            daemon.send_signal(signal.SIGTERM)
            await asyncio.to_thread(daemon.proc.wait, 15)
            assert daemon.proc.returncode == 0, daemon.output()
        finally:
            daemon.stop()
        assert manager.keys_in_order() == ["READY", "RELOADING", "READY", "STOPPING"]
        _check_rate(*_pings_between(manager, "READY", "STOPPING"))

    asyncio.run(asyncio.wait_for(scenario(), 40))


def test_reload_with_errors_still_ends_with_ready(tmp_path: Path, manager: NotifySocket) -> None:
    """A file with errors is ignored; systemd must still see the reload finish."""
    conf = tmp_path / "lns.toml"
    conf.write_text(LISTENERS["l2tp.daemons.lns"].format(port=_free_port()))

    async def scenario() -> None:
        daemon = Daemon("l2tp.daemons.lns", conf)
        try:
            await daemon.wait_ready()
            conf.write_text("[listener.l]\nlisten = 5\n")
            daemon.send_signal(signal.SIGHUP)
            await daemon.wait_says("reload ignored")
            await until(lambda: len(manager.having("READY")) == 2, "READY=1 after the reload")
        finally:
            daemon.stop(wait=0)
        assert manager.keys_in_order() == ["READY", "RELOADING", "READY", "STOPPING"]

    asyncio.run(asyncio.wait_for(scenario(), 40))


def test_kl2tpd_ready_after_its_tunnels_are_launched(tmp_path: Path, manager: NotifySocket) -> None:
    conf = tmp_path / "kl2tpd.toml"

    async def scenario() -> None:
        async with L2tpContext() as lns:
            config = ListenerConfig(tunnel=TunnelConfig(role=Role.LNS))
            listener = await lns.listen(("127.0.0.1", 0), config=config)
            conf.write_text(
                f'[tunnel.t1]\npeer = "127.0.0.1:{listener.address[1]}"\n'
                '[tunnel.t1.session.s1]\npseudowire = "ppp"\n'
            )
            daemon = Daemon("l2tp.daemons.kl2tpd", conf)
            try:
                await daemon.wait_ready()
                await until(lambda: manager.having("READY"), "READY=1")
                assert "tunnel" in manager.having("READY")[0]["STATUS"]
                await until(lambda: listener.session_count == 1, "kl2tpd's call")
                daemon.send_signal(signal.SIGTERM)
                await asyncio.to_thread(daemon.proc.wait, 15)
                assert daemon.proc.returncode == 0, daemon.output()
            finally:
                daemon.stop()
        assert manager.keys_in_order() == ["READY", "STOPPING"]

    asyncio.run(asyncio.wait_for(scenario(), 40))


def test_watchdog_of_another_process_is_not_pinged(
    tmp_path: Path, manager: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WATCHDOG_PID names the process systemd watches; variables inherited from it
    (e.g. by a daemon started from a watched script) must not make us ping."""
    monkeypatch.setenv("WATCHDOG_PID", "1")
    conf = tmp_path / "lns.toml"
    conf.write_text(LISTENERS["l2tp.daemons.lns"].format(port=_free_port()))

    async def scenario() -> None:
        daemon = Daemon("l2tp.daemons.lns", conf)
        try:
            await daemon.wait_ready()
            await until(lambda: manager.having("READY"), "READY=1")
            daemon.send_signal(signal.SIGTERM)
            await asyncio.to_thread(daemon.proc.wait, 15)
        finally:
            daemon.stop()
        assert manager.having("STOPPING")
        assert not manager.having("WATCHDOG")

    asyncio.run(asyncio.wait_for(scenario(), 40))
