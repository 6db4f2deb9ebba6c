"""The NOTIFY_SOCKET protocol (l2tp.daemons.sdnotify) against a real AF_UNIX datagram socket."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from l2tp import config as cfg
from l2tp.daemons import ql2tpd, sdnotify
from l2tp.kernel.async_null import AsyncNullDataPlane
from tests.helpers import until
from tests.notify_socket import NotifySocket, parse

pytestmark = pytest.mark.unit


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify")
    yield sock
    sock.close()


def test_socket_addresses() -> None:
    assert sdnotify.socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert sdnotify.socket_address("@abstract/name") == b"\0abstract/name"
    # Not for a daemon on the host (vsock:, relative paths) or empty: ignored.
    assert sdnotify.socket_address("vsock:2:1234") is None
    assert sdnotify.socket_address("relative/path") is None
    assert sdnotify.socket_address("@") is None


def test_ready_status_reloading_stopping_reach_the_socket(manager: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": manager.env_value}
    notifier = sdnotify.Notifier.from_environ(env)
    assert notifier.enabled and env == {}  # unset: children cannot notify in our name
    assert notifier.ready("2 tunnels\nup")
    assert notifier.status("x" * 5000)
    before = sdnotify.monotonic_usec()
    assert notifier.reloading()
    assert notifier.stopping()
    notifier.close()
    ready, status, reloading, stopping = manager.drain()
    assert ready == {"READY": "1", "STATUS": "2 tunnels up"}  # one line
    assert len(status["STATUS"]) == sdnotify.STATUS_MAX and status["STATUS"].endswith("...")
    assert reloading["RELOADING"] == "1"
    assert before <= int(reloading["MONOTONIC_USEC"]) <= sdnotify.monotonic_usec()
    assert stopping["STOPPING"] == "1"
    assert notifier.sent == 4 and notifier.failed == 0


def test_abstract_namespace(tmp_path: Path) -> None:
    name = f"l2tp-test-{os.getpid()}-{tmp_path.name}"
    manager = NotifySocket(abstract=name)
    try:
        notifier = sdnotify.Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert manager.drain() == [{"READY": "1"}]
    finally:
        manager.close()


def test_no_socket_is_a_no_op() -> None:
    notifier = sdnotify.Notifier.from_environ({})
    assert not notifier.enabled
    assert not notifier.ready("up") and notifier.sent == 0 and notifier.failed == 0
    assert notifier.start_watchdog() is None


def test_broken_socket_is_logged_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The manager went away: the path does not exist (ENOENT), then is not a socket.
    notifier = sdnotify.Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.WARNING, logger="l2tp.daemons.sdnotify"):
        assert not notifier.ready()
        assert not notifier.stopping()
        assert not notifier.ping()
    assert notifier.failed == 3 and notifier.sent == 0
    warnings = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(warnings) == 1


def test_full_socket_drops_without_blocking(tmp_path: Path) -> None:
    # Nobody reads: the receive queue fills and a non-blocking send reports EAGAIN.
    manager = NotifySocket(tmp_path / "n")
    manager.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    try:
        notifier = sdnotify.Notifier(str(tmp_path / "n"))
        results = [notifier.status("y" * 1000) for _ in range(2000)]
        assert True in results and False in results
        assert notifier.failed == results.count(False)
    finally:
        manager.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "2000000"}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "{pid}"}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "me"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    pid = os.getpid()
    env = {k: v.format(pid=pid) for k, v in env.items()}
    assert sdnotify.watchdog_interval(env, pid) == expected


def test_watchdog_pings_every_half_interval(manager: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": manager.env_value, "WATCHDOG_USEC": "3000000"}
    notifier = sdnotify.Notifier.from_environ(env)
    assert notifier.watchdog == 1.5
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(notifier.run_watchdog(fake_sleep))
    assert slept == [1.5, 1.5, 1.5]
    assert manager.drain() == [{"WATCHDOG": "1"}] * 3


def test_watchdog_task_runs_on_the_loop(manager: NotifySocket) -> None:
    notifier = sdnotify.Notifier(manager.env_value, watchdog=0.01)

    async def scenario() -> None:
        task = notifier.start_watchdog()
        assert task is not None
        await until(lambda: len(manager.having("WATCHDOG", "1")) >= 3, "three pings")
        task.cancel()

    asyncio.run(scenario())


def test_parse_helper() -> None:
    assert parse(b"READY=1\nSTATUS=a=b\n") == {"READY": "1", "STATUS": "a=b"}


QL2TPD = """
[tunnel.t1]
local = "127.0.0.1:5000"
peer = "127.0.0.2:5000"
tid = 1
ptid = 2
[tunnel.t1.session.s1]
sid = 11
psid = 21
"""


def test_ql2tpd_notifies_ready_and_stopping(
    manager: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ql2tpd has no null data plane on its command line: run its serve() in-process."""
    monkeypatch.setenv("NOTIFY_SOCKET", manager.env_value)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    config = cfg.loads(QL2TPD, daemon="ql2tpd", resolver=None)

    async def scenario() -> int:
        serving = asyncio.create_task(ql2tpd.serve(config, AsyncNullDataPlane()))
        await until(lambda: manager.having("READY"), "READY=1")
        await until(lambda: len(manager.having("WATCHDOG")) >= 2, "watchdog pings")
        os.kill(os.getpid(), signal.SIGTERM)  # handled by the daemon's loop handler
        return await serving

    assert asyncio.run(scenario()) == 0
    assert manager.keys_in_order() == ["READY", "STOPPING"]
    assert manager.having("READY")[0]["STATUS"] == "1 tunnel(s) up"
    assert "NOTIFY_SOCKET" not in os.environ  # not passed on to children
