"""The Prometheus exporter of every daemon as a real process (null data plane): the
scraped values equal what ``l2tp ctl`` reports, set-up histograms and closed-by-result
counters follow what happened, ql2tpd exports its static tunnels, and an address that
cannot be bound stops the daemon at start with one line."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from l2tp.protocol.events import Role
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.control import L2tpContext
from l2tp.runtime.errors import TunnelFailed
from tests.loopback.daemon import Daemon
from tests.loopback.scrape import Samples, by_label, get, messages, scrape
from tests.loopback.test_ctl_daemons import _free_port, _run, cli, result

pytestmark = pytest.mark.loopback


async def eventually(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0
) -> None:
    """:func:`tests.helpers.until` for a condition that must ask a daemon (bounded polling)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def snapshot(sock: Path) -> tuple[dict[str, Any], list[dict[str, Any]], Samples]:
    """``status`` and ``tunnels`` from the control socket, then a scrape of the exporter
    it names (the pair is quiet: no message moves in between)."""
    status = await result(sock, "status")
    tunnels = await result(sock, "tunnels")
    return status, tunnels, await scrape(status["metrics"])


def assert_metrics_equal_ctl(
    status: dict[str, Any], tunnels: list[dict[str, Any]], got: Samples
) -> None:
    assert by_label(got, "l2tp_tunnels", "state") == status["tunnels"]
    assert by_label(got, "l2tp_sessions", "state") == status["sessions"]
    expected: Counter[tuple[str, str]] = Counter()
    retransmissions = 0
    for record in tunnels:
        for direction in ("sent", "received"):
            for message, n in record["counters"][direction].items():
                expected[direction, message] += n
        retransmissions += record["counters"]["retransmissions"]
    assert messages(got) == dict(expected)
    assert got["l2tp_retransmissions_total", ()] == retransmissions
    counters = status["counters"]
    assert got["l2tp_datagrams_total", (("direction", "in"),)] == counters["datagrams_in"]
    assert got["l2tp_datagrams_total", (("direction", "out"),)] == counters["datagrams_out"]
    info = (("daemon", status["daemon"]), ("version", status["version"]))
    assert got["l2tp_daemon_info", info] == 1


def test_lns_and_kl2tpd_metrics_equal_ctl_and_follow_a_close(tmp_path: Path) -> None:
    port = _free_port()
    lns_conf = tmp_path / "lns.toml"
    lns_conf.write_text(f'metrics = "127.0.0.1:0"\n[listener.edge]\nlisten = "127.0.0.1:{port}"\n')
    lac_conf = tmp_path / "kl2tpd.toml"
    lac_conf.write_text(
        "".join(
            f'[tunnel.{t}]\npeer = "127.0.0.1:{port}"\n'
            + "".join(f'[tunnel.{t}.session.s{i}]\npseudowire = "ppp"\n' for i in range(3))
            for t in ("t1", "t2")
        )
    )

    async def scenario() -> None:
        lns = Daemon("l2tp.daemons.lns", lns_conf)
        daemons.append(lns)
        await lns.wait_ready()
        lac = Daemon(
            "l2tp.daemons.kl2tpd", lac_conf, "--metrics", "127.0.0.1:0", "--metrics-per-tunnel"
        )
        daemons.append(lac)
        await lac.wait_ready()

        async def six_sessions() -> bool:
            status = await result(lns.control, "status")
            return bool(status["sessions"].get("established") == 6)

        await eventually(six_sessions, "6 sessions at the LNS")

        for daemon in (lns, lac):
            status, tunnels, got = await snapshot(daemon.control)
            assert status["sessions"] == {"established": 6}
            assert_metrics_equal_ctl(status, tunnels, got)
            assert got["l2tp_tunnel_setup_seconds_count", ()] == 2
            assert got["l2tp_session_setup_seconds_count", ()] == 6
            assert got["l2tp_tunnel_setup_seconds_bucket", (("le", "+Inf"),)] == 2
        status, tunnels, got = await snapshot(lac.control)
        for record in tunnels:  # --metrics-per-tunnel
            tid = str(record["tunnel_id"])
            key = (("name", record["name"]), ("peer", record["peer"]), ("tunnel_id", tid))
            assert got["l2tp_tunnel_sessions", key] == 3
        _, _, lns_got = await snapshot(lns.control)
        assert not any(name == "l2tp_tunnel_sessions" for name, _ in lns_got)
        before = messages(lns_got)

        victim = next(t for t in tunnels if t["name"] == "t1")
        rc, _, err = await cli(lac.control, "close", "tunnel", str(victim["tunnel_id"]))
        assert rc == 0, err

        async def lns_counts_the_close() -> bool:
            got = await scrape((await result(lns.control, "status"))["metrics"])
            return bool(
                got.get(("l2tp_tunnel_closed_total", (("closed_by", "peer"), ("result", "1"))))
            )

        await eventually(lns_counts_the_close, "the LNS to count the close")
        _, _, lac_got = await snapshot(lac.control)
        local = (("closed_by", "local"), ("result", "1"))
        assert lac_got["l2tp_tunnel_closed_total", local] == 1
        assert messages(lac_got)["sent", "STOPCCN"] == 1
        status, tunnels, lns_got = await snapshot(lns.control)
        closed = by_label(lns_got, "l2tp_session_closed_total", "result")
        assert sum(closed.values()) == 3  # the calls of the closed tunnel
        after = messages(lns_got)
        assert after["received", "STOPCCN"] == 1
        assert all(after[key] >= n for key, n in before.items())  # counters never go down
        assert_metrics_equal_ctl(status, tunnels, lns_got)

    daemons: list[Daemon] = []
    _run(scenario(), daemons)


def test_ql2tpd_metrics(tmp_path: Path) -> None:
    conf = tmp_path / "ql2tpd.toml"
    conf.write_text(
        "metrics_per_tunnel = true\n"
        '[tunnel.t1]\nlocal = "127.0.0.1:5000"\npeer = "127.0.0.1:5001"\nversion = "l2tpv3"\n'
        'encap = "udp"\ntid = 1001\nptid = 2001\n'
        '[tunnel.t1.session.s1]\npseudowire = "eth"\nsid = 11\npsid = 21\n'
    )
    daemon = Daemon("l2tp.daemons.ql2tpd", conf, "--metrics", "127.0.0.1:0")

    async def scenario() -> None:
        await daemon.wait_says("tunnel(s) up")
        status, _, got = await snapshot(daemon.control)
        assert by_label(got, "l2tp_tunnels", "state") == status["tunnels"] == {"up": 1}
        assert by_label(got, "l2tp_sessions", "state") == {"up": 1}
        assert got["l2tp_daemon_info", (("daemon", "ql2tpd"), ("version", status["version"]))]
        key = (("name", "t1"), ("peer", "127.0.0.1:5001"), ("tunnel_id", "1001"))
        assert got["l2tp_tunnel_sessions", key] == 1
        assert not any(name.startswith("l2tp_tunnel_setup") for name, _ in got)
        assert (await get(status["metrics"], "/nothing"))[0] == 404

    _run(scenario(), [daemon])


def test_a_metrics_address_in_use_is_a_start_error(tmp_path: Path) -> None:
    conf = tmp_path / "lns.toml"
    conf.write_text(f'[listener.edge]\nlisten = "127.0.0.1:{_free_port()}"\n')
    control = tmp_path / "lns.sock"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "l2tp.daemons.lns", str(conf), "--null-dataplane"),
                *("--control", str(control), "--metrics", f"127.0.0.1:{port}"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"l2tp-lns: cannot start: metrics 127.0.0.1:{port}: Address already")
    assert "started" not in proc.stdout
    assert not control.exists()  # the control socket opened before it is removed again


def test_a_listener_at_its_tunnel_limit_counts_the_refusal(tmp_path: Path) -> None:
    """``max_tunnels = 1``: a second LAC's SCCRQ is refused statelessly (StopCCN 2, no
    tunnel, no event), and the refusal shows in ``status`` (JSON and text) and in
    ``l2tp_listener_sccrq_refused_total{listener, reason}``, for that listener only."""
    port, other = _free_port(), _free_port()
    conf = tmp_path / "lns.toml"
    conf.write_text(
        f'metrics = "127.0.0.1:0"\n[listener.edge]\nlisten = "127.0.0.1:{port}"\n'
        f'max_tunnels = 1\n[listener.core]\nlisten = "127.0.0.1:{other}"\n'
    )

    async def scenario() -> None:
        lns = Daemon("l2tp.daemons.lns", conf)
        daemons.append(lns)
        await lns.wait_ready()
        async with L2tpContext() as lac:
            lac_config = TunnelConfig(role=Role.LAC)
            first = await lac.open_tunnel(("127.0.0.1", port), config=lac_config)
            with pytest.raises(TunnelFailed) as refused:
                await lac.open_tunnel(("127.0.0.1", port), config=lac_config)
            assert "result 2" in str(refused.value)  # StopCCN 2, insufficient resources
            status, _, got = await snapshot(lns.control)
            await first.close()
        listeners = {r["name"]: r for r in status["listeners"]}
        assert listeners["edge"]["address"] == f"127.0.0.1:{port}"
        edge, core = listeners["edge"]["counters"], listeners["core"]["counters"]
        assert (edge["accepted"], edge["rejected"], edge["rejects_unsent"]) == (1, 1, 0)
        assert (core["accepted"], core["rejected"]) == (0, 0)
        assert status["tunnels"] == {"established": 1}  # the refusal made no tunnel
        refusals = {
            (dict(labels)["listener"], dict(labels)["reason"]): value
            for (name, labels), value in got.items()
            if name == "l2tp_listener_sccrq_refused_total"
        }
        assert refusals["edge", "tunnel_limit"] == 1
        assert sum(refusals.values()) == 1  # every reason exported, the others 0
        assert refusals["core", "tunnel_limit"] == 0
        assert got["l2tp_listener_sccrq_accepted_total", (("listener", "edge"),)] == 1
        assert got["l2tp_listener_pending_evicted_total", (("listener", "edge"),)] == 0
        rc, out, _ = await cli(lns.control, "status")
        assert rc == 0
        assert f"edge on 127.0.0.1:{port}: 1 SCCRQs accepted, 1 refused (1 tunnel limit)" in out

    daemons: list[Daemon] = []
    _run(scenario(), daemons)
