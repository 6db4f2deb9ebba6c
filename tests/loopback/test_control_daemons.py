"""kl2tpd and l2tp-lns as subprocesses (null data plane) against an in-process peer."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from l2tp.protocol.constants import StopCcnResult
from l2tp.protocol.events import Role, TunnelClosed
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.control import L2tpContext
from tests.helpers import until
from tests.loopback.daemon import Daemon

pytestmark = pytest.mark.loopback


def _free_port() -> int:
    """A port for l2tp-lns's listener, picked here, closed, then handed to the daemon.

    Racy (another process may take it in between), but the daemons cannot be told to
    bind port 0 yet: their configuration refuses it and they do not report the address
    they bound. Where the daemon dials out, the test's own listener binds port 0.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_kl2tpd_sigterm_sends_stopccn(tmp_path: Path) -> None:
    conf = tmp_path / "kl2tpd.toml"

    async def scenario() -> None:
        async with L2tpContext() as lns:
            config = ListenerConfig(tunnel=TunnelConfig(role=Role.LNS, secret=b"s"))
            listener = await lns.listen(("127.0.0.1", 0), config=config)
            conf.write_text(
                f'[tunnel.t1]\npeer = "127.0.0.1:{listener.address[1]}"\nsecret = "s"\n'
                'hide_avps = true\n[tunnel.t1.session.s1]\npseudowire = "ppp"\n'
                '[tunnel.t1.session.s2]\npseudowire = "ppp"\npppd_options = ["noauth"]\n'
            )
            events = lns.events()
            daemon = Daemon("l2tp.daemons.kl2tpd", conf)
            try:
                await daemon.wait_ready()
                await until(lambda: listener.session_count == 2, "kl2tpd's two calls")
                daemon.send_signal(signal.SIGTERM)
                async for ev in events:
                    if isinstance(ev, TunnelClosed):
                        assert ev.by_peer and ev.reason is not None
                        assert ev.reason.result == StopCcnResult.SHUTTING_DOWN
                        break
                await asyncio.to_thread(daemon.proc.wait, 10)
                assert daemon.proc.returncode == 0, daemon.output()
                assert "tunnels closed" in daemon.output()
            finally:
                daemon.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_lns_limits_reload_and_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    conf = tmp_path / "lns.toml"
    base = f'[listener.l]\nlisten = "127.0.0.1:{port}"\nmax_tunnels = 5\n'
    conf.write_text(base + "max_sessions = 1\n")

    async def scenario() -> None:
        async with L2tpContext() as lac:
            daemon = Daemon("l2tp.daemons.lns", conf)
            try:
                await daemon.wait_ready()
                t = await lac.open_tunnel(("127.0.0.1", port), config=TunnelConfig(role=Role.LAC))
                await t.open_session()
                second = t.place_call()
                closed = await second.wait_closed()
                assert closed.reason is not None and closed.reason.result == 4
                # SIGHUP: once the daemon says so, the new limit applies to new calls.
                conf.write_text(base + "max_sessions = 2\n")
                daemon.send_signal(signal.SIGHUP)
                await daemon.wait_says("configuration reloaded")
                third = await t.open_session()
                assert third.established
                daemon.send_signal(signal.SIGTERM)
                ev = await t.wait_closed()
                assert ev.by_peer and ev.reason is not None
                assert ev.reason.result == StopCcnResult.SHUTTING_DOWN
                await asyncio.to_thread(daemon.proc.wait, 10)
                assert daemon.proc.returncode == 0, daemon.output()
            finally:
                daemon.stop()

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
