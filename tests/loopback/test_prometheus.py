"""A real Prometheus scrapes an l2tp-lns and a kl2tpd holding 20 sessions (null data
plane), and its HTTP query API reports what ``l2tp ctl`` does.

Debian's ``prometheus`` (installed by tools/setup, its service left stopped) runs here
with a configuration and a TSDB in the test's temporary directory, on a free loopback
port, scraping every second. Without the binary the test is skipped, except under CI
(``CI=true``) or with ``L2TP_REQUIRE_TOOLS=1``, where it fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.loopback.daemon import Daemon
from tests.loopback.test_ctl_daemons import _free_port, _run, result
from tests.loopback.test_metrics_daemons import eventually

pytestmark = pytest.mark.loopback

SESSIONS = 20
TUNNELS = 2


def prometheus_binary() -> str:
    path = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None
    )
    if path is None:
        message = "the prometheus binary is not installed (tools/setup installs Debian's)"
        if os.environ.get("CI") == "true" or os.environ.get("L2TP_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Prometheus:
    """A Prometheus server of the test's own, and its query API."""

    def __init__(self, binary: str, workdir: Path, targets: list[str]) -> None:
        self.url = f"http://127.0.0.1:{_free_tcp_port()}"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: l2tp\n    static_configs:\n"
            f"      - targets: {json.dumps(targets)}\n"
        )
        self.log = workdir / "prometheus.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )

    def _get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())
        except OSError:
            assert self.proc.poll() is None, f"prometheus exited:\n{self.log.read_text()}"
            return 0, b""

    async def ready(self) -> bool:
        status, _ = await asyncio.to_thread(self._get, "/-/ready")
        return status == 200

    async def query(self, expr: str) -> dict[str, float]:
        """An instant query: value by the ``instance`` label of each series."""
        status, body = await asyncio.to_thread(
            self._get, "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        )
        assert status == 200, body
        answer: dict[str, Any] = json.loads(body)
        assert answer["status"] == "success", answer
        return {r["metric"]["instance"]: float(r["value"][1]) for r in answer["data"]["result"]}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_prometheus_scrapes_lns_and_lac_with_20_sessions(tmp_path: Path) -> None:
    binary = prometheus_binary()
    port = _free_port()
    lns_conf = tmp_path / "lns.toml"
    lns_conf.write_text(f'[listener.edge]\nlisten = "127.0.0.1:{port}"\n')
    lac_conf = tmp_path / "kl2tpd.toml"
    per_tunnel = SESSIONS // TUNNELS
    lac_conf.write_text(
        "".join(
            f'[tunnel.t{t}]\npeer = "127.0.0.1:{port}"\n'
            + "".join(
                f'[tunnel.t{t}.session.s{i}]\npseudowire = "ppp"\n' for i in range(per_tunnel)
            )
            for t in range(TUNNELS)
        )
    )
    daemons: list[Daemon] = []
    servers: list[Prometheus] = []

    async def scenario() -> None:
        lns = Daemon("l2tp.daemons.lns", lns_conf, "--metrics", "127.0.0.1:0")
        daemons.append(lns)
        await lns.wait_ready()
        lac = Daemon("l2tp.daemons.kl2tpd", lac_conf, "--metrics", "127.0.0.1:0")
        daemons.append(lac)
        await lac.wait_ready()

        async def all_up() -> bool:
            status = await result(lns.control, "status")
            return bool(status["sessions"].get("established") == SESSIONS)

        await eventually(all_up, f"{SESSIONS} sessions at the LNS")
        found = [await result(d.control, "status") for d in (lns, lac)]
        statuses = {s["daemon"]: s for s in found}
        instances = {s["metrics"]: s["daemon"] for s in found}
        prom = Prometheus(binary, tmp_path, sorted(instances))
        servers.append(prom)
        await eventually(prom.ready, "prometheus ready", timeout=60)

        sessions: dict[str, float] = {}

        async def both_scraped() -> bool:
            nonlocal sessions
            sessions = await prom.query('l2tp_sessions{state="established"}')
            return len(sessions) == 2

        await eventually(both_scraped, "both targets scraped", timeout=60)
        assert {instances[i]: v for i, v in sessions.items()} == {
            "l2tp-lns": SESSIONS,
            "kl2tpd": SESSIONS,
        }
        for instance, name in instances.items():  # the same counts as `l2tp ctl status`
            assert sessions[instance] == statuses[name]["sessions"]["established"]
        setups = await prom.query("l2tp_tunnel_setup_seconds_count")
        assert {instances[i]: v for i, v in setups.items()} == {
            "l2tp-lns": TUNNELS,
            "kl2tpd": TUNNELS,
        }
        calls = await prom.query("l2tp_session_setup_seconds_count")
        assert set(calls.values()) == {SESSIONS}
        tunnels = await prom.query('l2tp_tunnels{state="established"}')
        for instance, name in instances.items():
            assert tunnels[instance] == statuses[name]["tunnels"]["established"] == TUNNELS
        info = await prom.query("l2tp_daemon_info")
        assert sorted(info) == sorted(instances)

    try:
        _run(scenario(), daemons)
    finally:
        for prom in servers:
            prom.stop()
