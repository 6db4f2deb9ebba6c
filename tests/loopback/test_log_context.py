"""``--log-format json``: every log record is one JSON object, and those about a tunnel or a
session say which (``tunnel``, ``session``, ``peer``) without Python reprs (issue 15).

kl2tpd and l2tp-lns as processes (null data plane, ``-vv`` so that the protocol core's
DEBUG records are in too): a tunnel and a call come up, the operator closes the call
from the LNS's control socket, kl2tpd stops (StopCCN). Standard error (the log) is kept
apart from standard output (the status lines).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from l2tp.daemons.logformat import TextFormatter
from tests.helpers import until
from tests.loopback.daemon import Daemon
from tests.loopback.test_ctl_daemons import cli

pytestmark = pytest.mark.loopback

ADDRESS = re.compile(r"127\.0\.0\.1:\d+")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _ctl(path: Path, *args: str) -> Any:
    status, out, err = await cli(path, *args, "--json")
    assert status == 0, err
    return json.loads(out)


def _parse(daemon: Daemon) -> list[dict[str, Any]]:
    records = []
    for line in daemon.records().splitlines():
        record = json.loads(line)  # every line: a JSON object, nothing else
        assert isinstance(record, dict), line
        records.append(record)
    return records


def test_json_log_records_carry_tunnel_session_and_peer(tmp_path: Path) -> None:
    port = _free_port()
    lns_conf = tmp_path / "lns.toml"
    lns_conf.write_text(f'[listener.edge]\nlisten = "127.0.0.1:{port}"\n')
    lac_conf = tmp_path / "kl2tpd.toml"
    lac_conf.write_text(
        f'[tunnel.t1]\npeer = "127.0.0.1:{port}"\n[tunnel.t1.session.s1]\npseudowire = "ppp"\n'
    )
    json_args = ("-vv", "--log-format", "json")
    lns = Daemon("l2tp.daemons.lns", lns_conf, *json_args, stderr_apart=True)
    lac: Daemon | None = None

    async def scenario() -> None:
        nonlocal lac
        await lns.wait_ready()
        lac = Daemon("l2tp.daemons.kl2tpd", lac_conf, *json_args, stderr_apart=True)
        await lac.wait_ready()
        await until(lambda: "session s1: up" in lac.records(), "kl2tpd's session up")
        (call,) = await _ctl(lns.control, "sessions")
        closed = await _ctl(
            lns.control, "close", "session", str(call["tunnel_id"]), str(call["session_id"])
        )
        assert closed["released"] is True
        lac.send_signal(signal.SIGTERM)
        await asyncio.to_thread(lac.proc.wait, 20)
        await until(lambda: "peer sent StopCCN" in lns.records(), "the LNS to see the StopCCN")
        lns.send_signal(signal.SIGTERM)
        await asyncio.to_thread(lns.proc.wait, 20)

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        for daemon in (lac, lns):
            if daemon is not None:
                daemon.stop(wait=0.1)
    assert lac is not None

    for daemon, name in ((lns, "l2tp-lns"), (lac, "kl2tpd")):
        records = _parse(daemon)
        assert records, daemon.output()
        about_tunnels = 0
        about_sessions = 0
        for r in records:
            assert r["daemon"] == name and {"time", "level", "logger", "message"} <= r.keys()
            message = r["message"]
            assert "('" not in message and "Reason(" not in message and "<" not in message, r
            logger = r["logger"]
            if logger in ("l2tp.protocol.tunnel", "l2tp.protocol.session") or re.match(
                r"(tunnel|session) \S+", message
            ):
                about_tunnels += 1
                assert isinstance(r.get("tunnel"), int), r
                assert ADDRESS.fullmatch(r.get("peer", "")), r
            if logger == "l2tp.protocol.session" or re.match(
                r"(session \d+/\d+|.* session s1)", message
            ):
                about_sessions += 1
                assert isinstance(r.get("session"), int), r
        assert about_tunnels >= 5 and about_sessions >= 3, records
        assert not [r for r in records if r["level"] in ("WARNING", "ERROR")], records

    # The call both daemons logged about is the same one, seen from either end.
    lns_records, lac_records = _parse(lns), _parse(lac)
    (up,) = [r for r in lac_records if "session s1: up" in r["message"]]
    (closed,) = [r for r in lns_records if "closed by operator (CDN)" in r["message"]]
    assert (up["tunnel"], up["peer_tunnel"]) == (closed["peer_tunnel"], closed["tunnel"])
    established = [r for r in lns_records if r["message"].startswith("session established")]
    assert [r["session"] for r in established] == [closed["session"]]


def test_text_log_lines_end_with_key_value_context() -> None:
    """The same context in text form: ``... tunnel=N peer_tunnel=M session=S peer=A:P``."""
    record = logging.LogRecord(
        "l2tp.protocol.session", logging.INFO, __file__, 1, "session established", None, None
    )
    record.tunnel = 7
    record.peer_tunnel = 9
    record.session = 3
    record.peer = "[2001:db8::1]:1701"
    line = TextFormatter().format(record)
    assert line.endswith(
        "l2tp.protocol.session: session established tunnel=7 peer_tunnel=9 session=3"
        " peer=[2001:db8::1]:1701"
    )
