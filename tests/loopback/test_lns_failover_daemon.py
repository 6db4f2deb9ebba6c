"""kl2tpd with a peer list, as a real process (null data plane): the preferred LNS does
not answer and is denylisted, the sessions come up on the others, and the endpoint
states show in the log (key=value), in ``l2tp ctl peers`` (text and JSON) and in the
metrics; a plain string ``peer`` shows no peer list."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from l2tp.protocol.events import Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.control import L2tpContext
from tests.helpers import until
from tests.loopback.daemon import Daemon
from tests.loopback.scrape import scrape
from tests.loopback.test_ctl_daemons import _run, cli, result

pytestmark = pytest.mark.loopback


def test_kl2tpd_peer_list_fails_over_and_shows_it(tmp_path: Path) -> None:
    conf = tmp_path / "kl2tpd.toml"
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]

    async def scenario() -> None:
        async with L2tpContext() as lns:
            config = ListenerConfig(tunnel=TunnelConfig(role=Role.LNS))
            b = await lns.listen(("127.0.0.1", 0), config=config)
            c = await lns.listen(("127.0.0.1", 0), config=config)
            sessions = "".join(f'[tunnel.t1.session.s{i}]\npseudowire = "ppp"\n' for i in range(6))
            conf.write_text(
                'metrics = "127.0.0.1:0"\n'
                "[tunnel.t1]\n"
                "peer = [\n"
                f'  "127.0.0.1:{dead_port}",\n'  # a bare address: preference 0
                f'  {{ address = "127.0.0.1:{b.address[1]}", preference = 2, weight = 1 }},\n'
                f'  {{ address = "127.0.0.1:{c.address[1]}", preference = 1 }},\n'
                "]\n"
                "retry_timeout = 100\nmax_retries = 2\n"
                "redial = true\nredial_timeout = 100\n"
                "denylist_time = 600000\n"
                "[tunnel.t2]\n"
                f'peer = "127.0.0.1:{c.address[1]}"\n' + sessions
            )
            daemon = Daemon("l2tp.daemons.kl2tpd", conf, "-v")
            daemons.append(daemon)
            sock = daemon.control
            await daemon.wait_ready()
            # t1's six sessions on level 0 (the dead LNS alone), then all on c (level 1)
            # once the dead one is denylisted; b (level 2) is never needed.
            await until(lambda: c.session_count == 6, "t1's calls on c", timeout=20)
            await daemon.wait_says(
                f"peer denylisted: pool=t1 peer=127.0.0.1:{dead_port} reason=no-answer"
            )
            peers = await result(sock, "peers")
            assert [p["peer"] for p in peers] == [
                f"127.0.0.1:{dead_port}",
                f"127.0.0.1:{b.address[1]}",
                f"127.0.0.1:{c.address[1]}",
            ]
            dead_rec, *live = peers
            assert (dead_rec["name"], dead_rec["state"], dead_rec["reason"]) == (
                "t1",
                "denylisted",
                "no-answer",
            )
            assert dead_rec["denylisted_until"].endswith("Z") and dead_rec["sessions"] == 0
            assert [(p["state"], p["established"]) for p in live] == [("idle", 0), ("up", 6)]
            assert b.session_count == 0 and not b.tunnels
            # The pool's tunnels carry the table's name in `l2tp ctl tunnels`.
            names = {t["name"] for t in await result(sock, "tunnels")}
            assert names == {"t1", "t2"}

            rc, out, _ = await cli(sock, "peers")
            assert rc == 0
            header, first = out.splitlines()[:2]
            assert header.split()[:5] == ["NAME", "PEER", "PREF", "WEIGHT", "STATE"]
            assert f"127.0.0.1:{dead_port}" in first and "denylisted" in first
            assert "no-answer" in first
            rc, out, _ = await cli(sock, "peers", "--json")
            assert rc == 0 and [p["peer"] for p in json.loads(out)] == [p["peer"] for p in peers]

            got = await scrape((await result(sock, "status"))["metrics"])
            key = (("name", "t1"), ("peer", f"127.0.0.1:{dead_port}"))
            assert got["l2tp_peer_up", key] == 0
            assert got["l2tp_peer_sessions", key] == 0
            assert 500 < got["l2tp_peer_denylist_remaining_seconds", key] <= 600
            assert got["l2tp_peer_denylisted_total", (*key, ("reason", "no-answer"))] == 1
            assert got["l2tp_peer_denylisted_total", (*key, ("reason", "cdn"))] == 0
            placed = sum(v for (name, labels), v in got.items() if name == "l2tp_peer_sessions")
            assert placed == 6
            # One series per configured endpoint (t2's single peer is no peer list).
            series = {labels for (name, labels) in got if name == "l2tp_peer_up"}
            assert len(series) == 3

    daemons: list[Daemon] = []
    try:
        _run(scenario(), daemons)
    finally:
        dead.close()


def test_ctl_peers_without_a_peer_list(tmp_path: Path) -> None:
    conf = tmp_path / "kl2tpd.toml"

    async def scenario() -> None:
        async with L2tpContext() as lns:
            listener = await lns.listen(
                ("127.0.0.1", 0), config=ListenerConfig(tunnel=TunnelConfig(role=Role.LNS))
            )
            conf.write_text(f'[tunnel.t1]\npeer = "127.0.0.1:{listener.address[1]}"\n')
            daemon = Daemon("l2tp.daemons.kl2tpd", conf)
            daemons.append(daemon)
            await daemon.wait_ready()
            assert await result(daemon.control, "peers") == []
            rc, out, _ = await cli(daemon.control, "peers")
            assert rc == 0 and out.startswith("no peer lists")

    daemons: list[Daemon] = []
    _run(scenario(), daemons)
