"""``[listener.L.radius]`` in a whole daemon: l2tp-lns's :func:`~l2tp.daemons.common.serve`
run in-process (the null data plane, a built-in PPP backend on the fake kernel, no
control socket), reloaded by SIGHUP: the listener's hook is installed at start, rebuilt
when its table changes (the daemon's left alone), dropped when its table is removed,
and ``status``'s ``radius.listeners`` follows."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import pytest

from l2tp import config as cfg
from l2tp.daemons import common
from l2tp.daemons.lns import Lns
from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.radius.auth import RadiusAuthenticator
from l2tp.radius.client import RadiusClient
from l2tp.runtime.backend import NullSessionBackend
from l2tp.runtime.builtin_ppp import BuiltinPppBackend, DispatchingBackend
from tests.helpers import until
from tests.unit.builtin_ppp_fakes import FakePppKernel

pytestmark = pytest.mark.loopback


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write(path: Path, port: int, listener_radius: str) -> None:
    text = f"""
[radius]
auth_servers = [ {{ address = "127.0.0.1:18120", secret = "d" }} ]

[listener.a]
listen = "127.0.0.1:{port}"
ppp = "builtin"

[listener.a.builtin_ppp]
local_address = "10.0.0.1"
"""
    if listener_radius:
        text += f"\n[listener.a.radius]\n{listener_radius}"
    path.write_text(text)


def servers_of(hook: object) -> list[str]:
    assert isinstance(hook, RadiusAuthenticator) and isinstance(hook.client, RadiusClient)
    return list(hook.client.snapshot()["servers"])


def test_a_listeners_client_follows_reloads_in_the_daemon(tmp_path: Path) -> None:
    path, ready = tmp_path / "lns.toml", tmp_path / "ready"
    port = free_port()
    write(path, port, 'auth_servers = [ { address = "127.0.0.1:18121", secret = "a" } ]\n')
    config = cfg.load(str(path), daemon=cfg.Daemon.LNS)
    builtin = BuiltinPppBackend(kernel=FakePppKernel(), raise_fd_limit=False)
    backend = DispatchingBackend(pppd=NullSessionBackend(), builtin=builtin)
    args = common.build_parser("l2tp-lns", "test").parse_args(
        [str(path), "--control", "none", "--ready-file", str(ready)]
    )

    async def scenario() -> int:
        serving = asyncio.create_task(
            common.serve(
                "l2tp-lns",
                str(path),
                cfg.Daemon.LNS,
                config,
                AsyncNullDataPlane(),
                backend,
                Lns,
                args,
            )
        )
        try:
            await until(ready.exists, "started")
            daemon_hook, own = builtin.authenticator, builtin.authenticators["a"]
            assert servers_of(daemon_hook) == ["127.0.0.1:18120"]
            assert servers_of(own) == ["127.0.0.1:18121"]
            # A changed listener table: that listener's client only.
            write(path, port, 'auth_servers = [ { address = "127.0.0.1:18122", secret = "a" } ]\n')
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: builtin.authenticators.get("a") is not own, "a's new client")
            assert servers_of(builtin.authenticators["a"]) == ["127.0.0.1:18122"]
            assert builtin.authenticator is daemon_hook
            # Removed: back to the daemon's.
            write(path, port, "")
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: "a" not in builtin.authenticators, "a back on the daemon's")
            assert builtin.authenticator is daemon_hook
        finally:
            os.kill(os.getpid(), signal.SIGTERM)
            status = await asyncio.wait_for(serving, 10)
        return status

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == 0
