"""kl2tpd and l2tp-lns as subprocesses (null data plane) against an in-process peer."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from l2tp.protocol.constants import StopCcnResult
from l2tp.protocol.events import Role, TunnelClosed
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.control import L2tpContext

pytestmark = pytest.mark.loopback


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _spawn(module: str, config: Path, ready: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", module, str(config), "--null-dataplane", "--ready-file", str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _wait_file(path: Path, proc: subprocess.Popen[str]) -> None:
    for _ in range(200):
        if path.exists():
            return
        assert proc.poll() is None, proc.communicate()[0]
        await asyncio.sleep(0.05)
    raise AssertionError("daemon not ready")


def test_kl2tpd_sigterm_sends_stopccn(tmp_path: Path) -> None:
    port = _free_port()
    conf = tmp_path / "kl2tpd.toml"
    conf.write_text(
        f'[tunnel.t1]\npeer = "127.0.0.1:{port}"\nsecret = "s"\nhide_avps = true\n'
        '[tunnel.t1.session.s1]\npseudowire = "ppp"\n'
        '[tunnel.t1.session.s2]\npseudowire = "ppp"\npppd_options = ["noauth"]\n'
    )

    async def scenario() -> None:
        async with L2tpContext() as lns:
            config = ListenerConfig(tunnel=TunnelConfig(role=Role.LNS, secret=b"s"))
            listener = await lns.listen(("127.0.0.1", port), config=config)
            events = lns.events()
            proc = _spawn("l2tp.daemons.kl2tpd", conf, tmp_path / "ready")
            try:
                await _wait_file(tmp_path / "ready", proc)
                for _ in range(200):
                    if listener.session_count == 2:
                        break
                    await asyncio.sleep(0.05)
                assert listener.session_count == 2
                proc.send_signal(signal.SIGTERM)
                async for ev in events:
                    if isinstance(ev, TunnelClosed):
                        assert ev.by_peer and ev.reason is not None
                        assert ev.reason.result == StopCcnResult.SHUTTING_DOWN
                        break
                out, _ = await asyncio.to_thread(proc.communicate, timeout=10)
                assert proc.returncode == 0, out
                assert "tunnels closed" in out
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_lns_limits_reload_and_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    conf = tmp_path / "lns.toml"
    base = f'[listener.l]\nlisten = "127.0.0.1:{port}"\nmax_tunnels = 5\n'
    conf.write_text(base + "max_sessions = 1\n")

    async def scenario() -> None:
        async with L2tpContext() as lac:
            proc = _spawn("l2tp.daemons.lns", conf, tmp_path / "ready")
            try:
                await _wait_file(tmp_path / "ready", proc)
                t = await lac.open_tunnel(("127.0.0.1", port), config=TunnelConfig(role=Role.LAC))
                await t.open_session()
                second = t.place_call()
                closed = await second.wait_closed()
                assert closed.reason is not None and closed.reason.result == 4
                # SIGHUP: the new limit applies to new calls.
                conf.write_text(base + "max_sessions = 2\n")
                proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 5
                while True:
                    third = t.place_call()
                    ended = asyncio.ensure_future(third.wait_closed())
                    up = asyncio.ensure_future(third.wait_established())
                    await asyncio.wait([ended, up], return_when=asyncio.FIRST_COMPLETED)
                    ended.cancel()
                    if up.done() and not up.exception():
                        break
                    assert time.monotonic() < deadline, "reload not applied"
                    await asyncio.sleep(0.1)
                proc.send_signal(signal.SIGTERM)
                ev = await t.wait_closed()
                assert ev.by_peer and ev.reason is not None
                assert ev.reason.result == StopCcnResult.SHUTTING_DOWN
                out, _ = await asyncio.to_thread(proc.communicate, timeout=10)
                assert proc.returncode == 0, out
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_check_and_config_errors(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text('[tunnel.t1]\npeer = "127.0.0.1:1701"\nwindow_size = 0\n')
    for module in ("l2tp.daemons.kl2tpd", "l2tp.daemons.lns"):
        proc = subprocess.run(
            [sys.executable, "-m", module, "--check", str(conf)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 1
        assert str(conf) in proc.stderr or "bad.toml" in proc.stderr
    good = tmp_path / "good.toml"
    good.write_text('[tunnel.t1]\npeer = "127.0.0.1:1701"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "l2tp.daemons.kl2tpd", "-config", str(good), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
