"""[hooks] in the real daemons: kl2tpd and l2tp-lns as subprocesses (null data plane).

Every hook is one small program that writes its ``L2TP_*`` environment to a file named
after the daemon, the event and the IDs, so the test can check both ends of each tunnel
and session against each other.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import pytest

from l2tp.protocol.constants import StopCcnResult
from l2tp.protocol.events import Role
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.control import L2tpContext
from tests.helpers import until
from tests.loopback.daemon import Daemon

pytestmark = pytest.mark.loopback

DUMP = """
import json, os, sys
e = {k: v for k, v in os.environ.items() if k.startswith("L2TP_")}
name = "-".join([e["L2TP_DAEMON"], e["L2TP_EVENT"], e["L2TP_TUNNEL_ID"],
                 e.get("L2TP_SESSION_ID", "0")])
with open(os.path.join(sys.argv[1], name + ".tmp"), "w") as f:
    json.dump(e, f)
os.rename(os.path.join(sys.argv[1], name + ".tmp"), os.path.join(sys.argv[1], name + ".json"))
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _hooks(script: Path, out: Path) -> str:
    argv = json.dumps([sys.executable, str(script), str(out)])
    return "".join(
        f"{event} = {argv}\n"
        for event in ("tunnel_up", "tunnel_down", "session_up", "session_down")
    )


def _records(out: Path, daemon: str, event: str) -> list[dict[str, str]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob(f"{daemon}-{event}-*.json"))]


def test_hooks_see_both_ends_of_tunnels_and_sessions(tmp_path: Path) -> None:
    out = tmp_path / "events"
    out.mkdir()
    script = tmp_path / "dump.py"
    script.write_text(DUMP)
    port = _free_port()
    lns_conf = tmp_path / "lns.toml"
    lns_conf.write_text(
        f'[listener.l]\nlisten = "127.0.0.1:{port}"\n\n[hooks]\n{_hooks(script, out)}'
    )
    lac_conf = tmp_path / "kl2tpd.toml"
    lac_conf.write_text(
        f'[tunnel.t1]\npeer = "127.0.0.1:{port}"\n'
        '[tunnel.t1.session.s1]\npseudowire = "ppp"\ninterface_name = "ppp-s1"\n'
        '[tunnel.t1.session.s2]\npseudowire = "ppp"\n'
        f"\n[hooks]\n{_hooks(script, out)}"
    )

    async def scenario() -> None:
        lns = Daemon("l2tp.daemons.lns", lns_conf)
        lac: Daemon | None = None
        try:
            await lns.wait_ready()
            lac = Daemon("l2tp.daemons.kl2tpd", lac_conf)
            await lac.wait_ready()
            for daemon in ("kl2tpd", "l2tp-lns"):
                await until(
                    lambda d=daemon: len(_records(out, d, "session_up")) == 2,  # type: ignore[misc]
                    f"{daemon}'s session_up hooks",
                )
            lac.send_signal(signal.SIGTERM)  # StopCCN to the LNS; down hooks on both sides
            await asyncio.to_thread(lac.proc.wait, 20)
            assert lac.proc.returncode == 0, lac.output()
            await until(
                lambda: len(_records(out, "l2tp-lns", "tunnel_down")) == 1, "the LNS's tunnel_down"
            )
            await until(
                lambda: len(_records(out, "l2tp-lns", "session_down")) == 2,
                "the LNS's session_down hooks",
            )
        finally:
            if lac is not None:
                lac.stop(wait=0)
            lns.stop(wait=0)

    asyncio.run(asyncio.wait_for(scenario(), 60))

    (lac_up,) = _records(out, "kl2tpd", "tunnel_up")
    (lns_up,) = _records(out, "l2tp-lns", "tunnel_up")
    assert lac_up["L2TP_EVENT"] == "tunnel_up" and lac_up["L2TP_DAEMON"] == "kl2tpd"
    assert lac_up["L2TP_PEER_TUNNEL_ID"] == lns_up["L2TP_TUNNEL_ID"]
    assert lns_up["L2TP_PEER_TUNNEL_ID"] == lac_up["L2TP_TUNNEL_ID"]
    assert lac_up["L2TP_PEER_ADDRESS"] == lns_up["L2TP_PEER_ADDRESS"] == "127.0.0.1"
    assert lac_up["L2TP_PEER_PORT"] == str(port)
    assert "L2TP_SESSION_ID" not in lac_up and "L2TP_RESULT_CODE" not in lac_up

    lac_sessions = _records(out, "kl2tpd", "session_up")
    lns_sessions = {s["L2TP_PEER_SESSION_ID"]: s for s in _records(out, "l2tp-lns", "session_up")}
    assert sorted(s["L2TP_SESSION_ID"] for s in lac_sessions) == sorted(lns_sessions)
    for lac_s in lac_sessions:
        lns_s = lns_sessions[lac_s["L2TP_SESSION_ID"]]
        assert lns_s["L2TP_SESSION_ID"] == lac_s["L2TP_PEER_SESSION_ID"]
        assert lac_s["L2TP_TUNNEL_ID"] == lac_up["L2TP_TUNNEL_ID"]
        assert lns_s["L2TP_TUNNEL_ID"] == lns_up["L2TP_TUNNEL_ID"]
        assert lns_s["L2TP_PEER_ADDRESS"] == "127.0.0.1"
    assert sorted(s["L2TP_INTERFACE"] for s in lac_sessions) == ["", "ppp-s1"]

    # The LAC stopped: its own down hooks ran at shutdown, closed locally with StopCCN 6.
    (lac_down,) = _records(out, "kl2tpd", "tunnel_down")
    assert lac_down["L2TP_CLOSED_BY"] == "local"
    assert lac_down["L2TP_RESULT_CODE"] == str(int(StopCcnResult.SHUTTING_DOWN))
    assert lac_down["L2TP_TUNNEL_ID"] == lac_up["L2TP_TUNNEL_ID"]
    assert len(_records(out, "kl2tpd", "session_down")) == 2
    # The LNS heard it from the peer: the StopCCN's Result Code and message.
    (lns_down,) = _records(out, "l2tp-lns", "tunnel_down")
    assert lns_down["L2TP_CLOSED_BY"] == "peer"
    assert lns_down["L2TP_RESULT_CODE"] == str(int(StopCcnResult.SHUTTING_DOWN))
    assert lns_down["L2TP_RESULT_MESSAGE"] == "shutting down"

    def ids(records: list[dict[str, str]]) -> list[tuple[str, str]]:
        return sorted((r["L2TP_SESSION_ID"], r["L2TP_PEER_SESSION_ID"]) for r in records)

    assert ids(_records(out, "l2tp-lns", "session_down")) == ids(list(lns_sessions.values()))
    assert ids(_records(out, "kl2tpd", "session_down")) == ids(lac_sessions)


def test_a_hanging_hook_is_killed_and_does_not_block_the_lns(tmp_path: Path) -> None:
    port = _free_port()
    conf = tmp_path / "lns.toml"
    conf.write_text(
        f'[listener.l]\nlisten = "127.0.0.1:{port}"\n\n[hooks]\n'
        f'session_up = ["{sys.executable}", "-c", "import time; time.sleep(1000)"]\n'
        "timeout = 300\nmax_concurrent = 1\n"
    )

    async def scenario() -> None:
        lns = Daemon("l2tp.daemons.lns", conf, "-v")
        try:
            await lns.wait_ready()
            async with L2tpContext() as lac:
                t = await lac.open_tunnel(("127.0.0.1", port), config=TunnelConfig(role=Role.LAC))
                # Five calls while the first hook hangs (and the rest wait behind it).
                sessions = [await asyncio.wait_for(t.open_session(), 5) for _ in range(5)]
                assert all(s.established for s in sessions)
                await lns.wait_says("hook session_up")
                await until(lambda: lns.output().count("timed out") >= 2, "two hooks timed out")
            lns.send_signal(signal.SIGTERM)
            await asyncio.to_thread(lns.proc.wait, 20)
            assert lns.proc.returncode == 0, lns.output()
        finally:
            lns.stop(wait=0)

    asyncio.run(asyncio.wait_for(scenario(), 60))


QL2TPD = """
[tunnel.t1]
local = "127.0.0.1:{port}"
peer = "127.0.0.2:6000"
tid = 41
ptid = 42
[tunnel.t1.session.s1]
sid = 11
psid = 21
interface_name = "l2tpeth-s1"
"""


def test_ql2tpd_static_tunnel_hooks(tmp_path: Path) -> None:
    out = tmp_path / "events"
    out.mkdir()
    script = tmp_path / "dump.py"
    script.write_text(DUMP)
    conf = tmp_path / "ql2tpd.toml"
    conf.write_text(QL2TPD.format(port=_free_port()) + f"\n[hooks]\n{_hooks(script, out)}")

    async def scenario() -> None:
        daemon = Daemon("l2tp.daemons.ql2tpd", conf)
        try:
            await daemon.wait_says("tunnel(s) up")
            await until(lambda: _records(out, "ql2tpd", "session_up"), "session_up")
            daemon.send_signal(signal.SIGTERM)
            await asyncio.to_thread(daemon.proc.wait, 20)
            assert daemon.proc.returncode == 0, daemon.output()
        finally:
            daemon.stop(wait=0)

    asyncio.run(asyncio.wait_for(scenario(), 60))
    (t_up,) = _records(out, "ql2tpd", "tunnel_up")
    (s_up,) = _records(out, "ql2tpd", "session_up")
    (s_down,) = _records(out, "ql2tpd", "session_down")
    (t_down,) = _records(out, "ql2tpd", "tunnel_down")
    assert t_up["L2TP_TUNNEL_ID"] == "41" and t_up["L2TP_PEER_TUNNEL_ID"] == "42"
    assert t_up["L2TP_PEER_ADDRESS"] == "127.0.0.2" and t_up["L2TP_PEER_PORT"] == "6000"
    assert (s_up["L2TP_SESSION_ID"], s_up["L2TP_PEER_SESSION_ID"]) == ("11", "21")
    assert s_up["L2TP_INTERFACE"] == "l2tpeth-s1"
    assert s_down["L2TP_EVENT"] == "session_down" and s_down["L2TP_CLOSED_BY"] == "local"
    assert t_down["L2TP_EVENT"] == "tunnel_down" and "L2TP_RESULT_CODE" not in t_down
