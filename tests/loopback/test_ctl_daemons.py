"""``l2tp ctl`` against every daemon as a real process (null data plane), and the control
socket against bad clients: garbage, huge lines, half-open connections, a non-root
client, a subscriber that stops reading; stale-socket takeover and live-owner refusal.

Peers are in-process :class:`L2tpContext` objects, so each test checks what the peer
saw (a StopCCN, a CDN) beside what the daemon reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from l2tp.protocol.constants import CdnResult, StopCcnResult
from l2tp.protocol.events import CallParams, Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.control import L2tpContext
from tests.helpers import until
from tests.loopback.daemon import Daemon

pytestmark = pytest.mark.loopback

NOBODY = 65534


def _free_port() -> int:
    """A port for a daemon's listener, picked here, closed, then handed to the daemon
    (racy, as in test_control_daemons.py: the daemons cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ------------------------------------------------------------------ clients


async def call(path: Path, cmd: str, **fields: Any) -> dict[str, Any]:
    """One request on a fresh connection; the decoded response."""
    reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 24)
    try:
        writer.write(json.dumps({"v": 1, "id": 1, "cmd": cmd, **fields}).encode() + b"\n")
        line = await asyncio.wait_for(reader.readline(), 20)
    finally:
        writer.close()
    response: dict[str, Any] = json.loads(line)
    assert response["v"] == 1 and response["id"] == 1, response
    return response


async def result(path: Path, cmd: str, **fields: Any) -> Any:
    response = await call(path, cmd, **fields)
    assert response["ok"] is True, response
    return response["result"]


async def cli(path: Path, *args: str) -> tuple[int, str, str]:
    """``l2tp ctl --socket PATH ARGS`` as a process: status, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "l2tp.cli.main",
        "ctl",
        "--socket",
        str(path),
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class EventStream:
    """An ``events`` subscription read line by line."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def next(self) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), 15)
        assert line, "the daemon ended the events stream"
        event: dict[str, Any] = json.loads(line)["event"]
        return event

    async def types(self, n: int) -> list[tuple[str, Any]]:
        """The next ``n`` events as (type, session_id or tunnel_id)."""
        out = []
        for _ in range(n):
            ev = await self.next()
            out.append((ev["type"], ev.get("session_id", ev["tunnel_id"])))
        return out


@asynccontextmanager
async def events(path: Path) -> AsyncIterator[EventStream]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(b'{"v": 1, "id": "ev", "cmd": "events"}\n')
    ack = json.loads(await asyncio.wait_for(reader.readline(), 15))
    assert ack == {"v": 1, "id": "ev", "ok": True, "result": {"stream": "events"}}
    try:
        yield EventStream(reader, writer)
    finally:
        writer.close()


def _run(coro: Any, daemons: list[Daemon]) -> None:
    try:
        asyncio.run(asyncio.wait_for(coro, 120))
    finally:
        for d in daemons:
            out = d.stop(wait=0.1)
            assert "Traceback" not in out, out


# ---------------------------------------------------------------- l2tp-lns


def test_ctl_lns_every_command(tmp_path: Path) -> None:
    port = _free_port()
    conf = tmp_path / "lns.toml"
    good = f'[listener.edge]\nlisten = "127.0.0.1:{port}"\nsecret = "s"\n'
    conf.write_text(good)
    daemon = Daemon("l2tp.daemons.lns", conf, "-v")
    sock = daemon.control

    async def scenario() -> None:
        await daemon.wait_ready()
        st = os.stat(sock)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        async with events(sock) as stream, L2tpContext() as lac:
            th = await lac.open_tunnel(
                ("127.0.0.1", port), config=TunnelConfig(role=Role.LAC, secret=b"s")
            )
            s1 = await th.open_session()
            s2 = await th.open_session()
            ours = th.peer_tunnel_id  # the daemon's tunnel ID
            sids = {s1.peer_session_id, s2.peer_session_id}
            up = await stream.types(3)
            assert up[0] == ("tunnel-up", ours)
            assert sorted(up[1:]) == sorted(("session-up", sid) for sid in sids)

            status = await result(sock, "status")
            assert status["daemon"] == "l2tp-lns" and status["pid"] == daemon.proc.pid
            assert status["config_file"] == str(conf.resolve())
            assert status["tunnels"] == {"established": 1}
            assert status["sessions"] == {"established": 2}
            (listener,) = status["listeners"]
            assert (listener["name"], listener["address"]) == ("edge", f"127.0.0.1:{port}")
            assert (listener["counters"]["accepted"], listener["counters"]["rejected"]) == (1, 0)
            rc, out, _ = await cli(sock, "status")
            assert rc == 0 and "l2tp-lns" in out and "sessions  2 (2 established)" in out

            (tunnel,) = await result(sock, "tunnels")
            assert (tunnel["tunnel_id"], tunnel["peer_tunnel_id"]) == (ours, th.tunnel_id)
            assert (tunnel["name"], tunnel["role"], tunnel["version"]) == ("edge", "lns", 2)
            assert tunnel["state"] == "established" and tunnel["sessions"] == 2
            assert tunnel["peer"] == f"127.0.0.1:{th.local[1]}"
            counters = tunnel["counters"]
            assert counters["received"] == {"SCCRQ": 1, "SCCCN": 1, "ICRQ": 2, "ICCN": 2}
            assert counters["sent"] == {"SCCRP": 1, "ICRP": 2}
            assert counters["retransmissions"] == 0 and counters["digest_failures"] == 0
            rc, out, _ = await cli(sock, "tunnels")
            header, row = out.splitlines()
            assert header.split()[:3] == ["TUNNEL", "PEER-TUNNEL", "NAME"]
            assert row.split()[:3] == [str(ours), str(th.tunnel_id), "edge"]

            sessions = await result(sock, "sessions")
            assert {s["session_id"] for s in sessions} == sids
            assert {s["peer_session_id"] for s in sessions} == {s1.session_id, s2.session_id}
            assert {s["pseudowire"] for s in sessions} == {"ppp"}
            of_tunnel = await result(sock, "sessions", tunnel=ours)
            assert [(s["session_id"], s["state"]) for s in of_tunnel] == [
                (s["session_id"], s["state"]) for s in sessions
            ]
            missing = await call(sock, "sessions", tunnel=ours + 1 if ours < 65535 else 1)
            assert missing["ok"] is False and missing["error"]["code"] == "not-found"
            rc, out, _ = await cli(sock, "sessions", str(ours), "--json")
            assert rc == 0 and {s["session_id"] for s in json.loads(out)} == sids

            # close session: a CDN (result 3, administrative) reaches the peer.
            rc, out, _ = await cli(sock, "close", "session", str(ours), str(s1.peer_session_id))
            assert rc == 0 and "CDN sent" in out
            closed = await asyncio.wait_for(s1.wait_closed(), 10)
            assert closed.by_peer and closed.reason is not None
            assert closed.reason.result == CdnResult.ADMINISTRATIVE
            assert closed.reason.message == "closed by operator"
            assert await stream.types(1) == [("session-down", s1.peer_session_id)]
            again = await call(sock, "close-session", tunnel=ours, session=s1.peer_session_id)
            assert again["error"]["code"] == "not-found"

            # reload: a broken file is not applied (exit 1, the errors); a good one is.
            conf.write_text(good + "max_sessions = -1\n")
            reloaded = await result(sock, "reload")
            assert reloaded["applied"] is False and reloaded["errors"]
            assert any("max_sessions" in e for e in reloaded["errors"])
            rc, out, _ = await cli(sock, "reload")
            assert rc == 1 and "not applied" in out
            conf.write_text(good + "max_sessions = 10\n")
            reloaded = await result(sock, "reload")
            assert reloaded == {"applied": True, "summary": reloaded["summary"], "errors": []}
            assert "edge on 127.0.0.1" in reloaded["summary"]

            # close tunnel: a StopCCN with our result code reaches the peer.
            rc, out, _ = await cli(sock, "close", "tunnel", str(ours), "--result", "6", "--json")
            closing = json.loads(out)
            assert rc == 0 and (closing["result"], closing["acknowledged"]) == (6, True)
            gone = await asyncio.wait_for(th.wait_closed(), 10)
            assert gone.by_peer and gone.reason is not None
            assert (gone.reason.result, gone.reason.message) == (6, "closed by operator")
            assert await stream.types(2) == [
                ("session-down", s2.peer_session_id),
                ("tunnel-down", ours),
            ]
        daemon.send_signal(signal.SIGTERM)
        await until(lambda: daemon.proc.poll() is not None, "l2tp-lns to exit")

    _run(scenario(), [daemon])
    assert daemon.proc.returncode == 0
    assert not sock.exists()  # removed at exit


# ------------------------------------------------------------------ kl2tpd


def test_ctl_kl2tpd_events_reload_and_close(tmp_path: Path) -> None:
    conf = tmp_path / "kl2tpd.toml"

    async def scenario() -> None:
        async with L2tpContext() as lns:
            listener = await lns.listen(
                ("127.0.0.1", 0), config=ListenerConfig(tunnel=TunnelConfig(role=Role.LNS))
            )
            t1 = (
                f'[tunnel.t1]\npeer = "127.0.0.1:{listener.address[1]}"\n'
                '[tunnel.t1.session.s1]\npseudowire = "ppp"\n'
            )
            conf.write_text(t1)
            daemon = Daemon("l2tp.daemons.kl2tpd", conf)
            daemons.append(daemon)
            sock = daemon.control
            await daemon.wait_ready()
            await until(lambda: listener.session_count == 1, "t1's call")
            (first,) = await result(sock, "tunnels")
            assert (first["name"], first["role"], first["state"]) == ("t1", "lac", "established")
            (sess,) = await result(sock, "sessions")
            assert sess["state"] == "established" and sess["tunnel_id"] == first["tunnel_id"]
            status = await result(sock, "status")
            assert status["daemon"] == "kl2tpd" and status["summary"] == "1 tunnel(s)"

            async with events(sock) as stream:
                t2 = t1.replace("t1", "t2")
                conf.write_text(t1 + t2)
                rc, out, _ = await cli(sock, "reload")
                assert rc == 0 and "2 tunnel(s)" in out
                up = [await stream.next() for _ in range(2)]
                assert [e["type"] for e in up] == ["tunnel-up", "session-up"]
                assert up[0]["name"] == "t2" and up[0]["daemon"] == "kl2tpd"
                assert up[1]["tunnel_id"] == up[0]["tunnel_id"]
                victim = lns.tunnels[up[0]["peer_tunnel_id"]]
                rc, _, _ = await cli(sock, "close", "tunnel", str(up[0]["tunnel_id"]))
                assert rc == 0
                closed = await asyncio.wait_for(victim.wait_closed(), 10)
                assert closed.by_peer and closed.reason is not None
                assert closed.reason.result == StopCcnResult.GENERAL_REQUEST
                down = [await stream.next() for _ in range(2)]
                assert [e["type"] for e in down] == ["session-down", "tunnel-down"]
                assert down[1]["reason"]["result"] == 1 and down[1]["by_peer"] is False

    daemons: list[Daemon] = []
    _run(scenario(), daemons)


# ------------------------------------------------------------------- l2tpd


def test_ctl_l2tpd_listener_sessions_and_cdn(tmp_path: Path) -> None:
    port = _free_port()
    conf = tmp_path / "l2tpd.toml"
    conf.write_text(
        f'[listener.v3]\nlisten = "127.0.0.1:{port}"\n'
        '[listener.v3.session.lan]\npseudowire = "eth"\ninterface_name = "pw-lan"\n'
    )
    daemon = Daemon("l2tp.daemons.l2tpd", conf)
    sock = daemon.control

    async def scenario() -> None:
        await daemon.wait_ready()
        async with L2tpContext() as ctx:
            v3 = TunnelConfig(role=Role.LAC, version=3, host_name="peer")
            th = await ctx.open_tunnel(("127.0.0.1", port), config=v3)
            call_ = await th.open_session(CallParams(remote_end_id="lan"))
            (tunnel,) = await result(sock, "tunnels")
            assert (tunnel["version"], tunnel["name"], tunnel["side"]) == (3, "v3", "responder")
            assert tunnel["counters"]["received"]["ICRQ"] == 1
            (sess,) = await result(sock, "sessions", tunnel=th.peer_tunnel_id)
            assert (sess["pseudowire"], sess["circuit"], sess["interface"]) == (
                "eth",
                "lan",
                "pw-lan",
            )
            assert (await result(sock, "status"))["daemon"] == "l2tpd"
            rc, _, _ = await cli(
                sock, "close", "session", str(th.peer_tunnel_id), str(sess["session_id"])
            )
            assert rc == 0
            closed = await asyncio.wait_for(call_.wait_closed(), 10)
            assert closed.by_peer and closed.reason is not None
            assert closed.reason.result == CdnResult.ADMINISTRATIVE
            assert await result(sock, "sessions") == []

    _run(scenario(), [daemon])


# ------------------------------------------------------------------ ql2tpd


def test_ctl_ql2tpd_static_tunnels(tmp_path: Path) -> None:
    conf = tmp_path / "ql2tpd.toml"
    conf.write_text(
        '[tunnel.t1]\nlocal = "127.0.0.1:5000"\npeer = "127.0.0.1:5001"\nversion = "l2tpv3"\n'
        'encap = "udp"\ntid = 1001\nptid = 2001\n'
        '[tunnel.t1.session.s1]\npseudowire = "eth"\nsid = 11\npsid = 21\n'
        'interface_name = "l2tpeth-t1"\n'
    )
    daemon = Daemon("l2tp.daemons.ql2tpd", conf)
    sock = daemon.control

    async def scenario() -> None:
        await daemon.wait_says("tunnel(s) up")
        status = await result(sock, "status")
        assert status["daemon"] == "ql2tpd"
        assert status["tunnels"] == {"up": 1} and status["sessions"] == {"up": 1}
        (tunnel,) = await result(sock, "tunnels")
        assert (tunnel["tunnel_id"], tunnel["peer_tunnel_id"], tunnel["side"]) == (
            1001,
            2001,
            "static",
        )
        assert (tunnel["state"], tunnel["peer"]) == ("up", "127.0.0.1:5001")
        (sess,) = await result(sock, "sessions")
        assert (sess["session_id"], sess["peer_session_id"], sess["interface"]) == (
            11,
            21,
            "l2tpeth-t1",
        )
        for args in (("close", "tunnel", "1001"), ("close", "session", "1001", "11"), ("reload",)):
            rc, _, err = await cli(sock, *args)
            assert rc == 1 and "unsupported" in err, (args, err)
        async with events(sock):
            pass  # the stream is accepted (quiescent tunnels report up/down on it)
        rc, out, _ = await cli(sock, "tunnels")
        assert rc == 0 and "1001" in out

    _run(scenario(), [daemon])


# -------------------------------------------------------------- bad clients


@contextmanager
def world_dir() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path is root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="l2tp-ctl-", dir="/tmp"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_NOBODY_CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print(json.dumps({"connect": exc.strerror}))
    sys.exit(0)
try:
    s.sendall(b'{"v": 1, "id": 1, "cmd": "status"}\\n')
except OSError:
    pass  # refused before our request: the answer is already waiting
data = b""
try:
    while chunk := s.recv(65536):
        data += chunk
except ConnectionResetError:
    pass
print(json.dumps({"received": data.decode()}))
"""


async def as_nobody(path: Path) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-c",
        _NOBODY_CLIENT,
        str(path),
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    answer: dict[str, Any] = json.loads(out)
    return answer


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
def test_bad_clients_are_refused_and_the_daemon_carries_on(tmp_path: Path) -> None:
    port = _free_port()
    conf = tmp_path / "lns.toml"
    conf.write_text(f'[listener.edge]\nlisten = "127.0.0.1:{port}"\n')

    async def scenario(sock: Path, daemon: Daemon) -> None:
        await daemon.wait_ready()

        async def healthy() -> None:
            assert (await result(sock, "status"))["daemon"] == "l2tp-lns"

        # Garbage gets an error; the same connection then works.
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"this is not json\n")
        bad = json.loads(await reader.readline())
        assert (bad["ok"], bad["error"]["code"]) == (False, "bad-json")
        writer.write(b'{"v": 1, "id": 2, "cmd": "nope"}\n')
        unknown = json.loads(await reader.readline())
        assert (unknown["id"], unknown["error"]["code"]) == (2, "unknown-command")
        writer.write(b'{"v": 1, "id": 3, "cmd": "status"}\n')
        assert json.loads(await reader.readline())["ok"] is True
        writer.close()

        # A 10 MB line: "too-large", then the daemon hangs up; nothing else suffers.
        # (A blocking socket in a thread: the daemon closes while we are still writing.)
        def huge() -> tuple[dict[str, Any], bytes]:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(15)
                s.connect(str(sock))
                # The daemon stops reading at 64 KiB: a broken pipe here is expected.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    s.sendall(b"x" * (10 * 1024 * 1024) + b"\n")
                data = b""
                while b"\n" not in data and (chunk := s.recv(4096)):
                    data += chunk
                line, _, rest = data.partition(b"\n")
                # Closed with our unread request in its queue: a reset rather than EOF.
                with contextlib.suppress(ConnectionResetError):
                    while chunk := s.recv(4096):
                        rest += chunk
                return json.loads(line), rest

        big, after = await asyncio.to_thread(huge)
        assert big["error"]["code"] == "too-large" and after == b""  # then closed
        await healthy()

        # A half-open connection that never sends: others are served meanwhile, and
        # it is closed after --control-timeout (1 s here) with a "timeout" error.
        reader, writer = await asyncio.open_unix_connection(str(sock))
        await healthy()
        idle = json.loads(await asyncio.wait_for(reader.readline(), 15))
        assert idle["error"]["code"] == "timeout"
        assert await asyncio.wait_for(reader.read(), 15) == b""
        writer.close()

        # A non-root client: the 0600 socket refuses it at connect; with the file's
        # permissions loosened, SO_PEERCRED still refuses it ("forbidden", closed).
        assert await as_nobody(sock) == {"connect": "Permission denied"}
        sock.chmod(0o666)
        answer = await as_nobody(sock)
        (line,) = answer["received"].splitlines()
        refused = json.loads(line)
        assert refused["error"]["code"] == "forbidden"
        assert f"uid {NOBODY}" in refused["error"]["message"]
        sock.chmod(0o600)
        await healthy()

        # An events subscriber that never reads is dropped once its buffer fills; the
        # control plane (a thousand calls made and cleared meanwhile) is not held up.
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b'{"v": 1, "id": 1, "cmd": "events"}\n')
        assert json.loads(await reader.readline())["ok"] is True
        async with L2tpContext() as lac:
            th = await lac.open_tunnel(("127.0.0.1", port))
            made = 0
            for _ in range(4):
                calls = [th.place_call() for _ in range(400)]
                made += len(calls)
                await asyncio.gather(*(c.wait_established() for c in calls))
                await asyncio.gather(*(c.close() for c in calls))
                if "not reading; dropped" in daemon.output():
                    break
            assert "events subscriber not reading; dropped" in daemon.output()
            assert (await result(sock, "status"))["tunnels"] == {"established": 1}
        received = await asyncio.wait_for(reader.read(), 15)  # what was sent, then EOF
        writer.close()
        assert 0 < received.count(b"\n") < 1 + 2 * made  # tunnel-up, then up+down per call
        await healthy()

    with world_dir() as where:
        sock = where / "lns.sock"
        daemon = Daemon(
            "l2tp.daemons.lns", conf, "-v", "--control", str(sock), "--control-timeout", "1"
        )
        _run(scenario(sock, daemon), [daemon])


# ----------------------------------------------- stale socket, live owner, group


def test_stale_socket_is_taken_over_and_a_live_owner_refuses_a_second_daemon(
    tmp_path: Path,
) -> None:
    sock = tmp_path / "run" / "l2tp" / "lns.sock"
    sock.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock))  # bound, never listening, then closed: what a crash leaves
    stale.close()
    assert sock.exists()
    first_conf = tmp_path / "first.toml"
    first_conf.write_text(f'[listener.a]\nlisten = "127.0.0.1:{_free_port()}"\n')
    second_conf = tmp_path / "second.toml"
    second_conf.write_text(f'[listener.b]\nlisten = "127.0.0.1:{_free_port()}"\n')
    first = Daemon(
        "l2tp.daemons.lns", first_conf, "-v", "--control", str(sock), "--control-group", str(NOBODY)
    )

    async def scenario() -> None:
        await first.wait_ready()
        assert "removing a stale socket" in first.output()
        st = os.stat(sock)
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == NOBODY
        assert (await result(sock, "status"))["pid"] == first.proc.pid
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "l2tp.daemons.lns",
            str(second_conf),
            "--null-dataplane",
            "--control",
            str(sock),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 1 and out == b""
        assert err.decode() == (
            f"l2tp-lns: cannot start: control socket {sock} is in use by a running daemon"
            f" (pid {first.proc.pid})\n"
        )
        # The first daemon keeps its socket and answers on it.
        assert (await result(sock, "status"))["pid"] == first.proc.pid

    _run(scenario(), [first])


def test_control_none_and_version(tmp_path: Path) -> None:
    conf = tmp_path / "lns.toml"
    conf.write_text(f'[listener.a]\nlisten = "127.0.0.1:{_free_port()}"\n')
    daemon = Daemon("l2tp.daemons.lns", conf, "--control", "none")

    async def scenario() -> None:
        await daemon.wait_ready()
        assert not daemon.control.exists()

    _run(scenario(), [daemon])
    for module in (
        "l2tp.daemons.lns",
        "l2tp.daemons.kl2tpd",
        "l2tp.daemons.l2tpd",
        "l2tp.daemons.ql2tpd",
        "l2tp.cli.main",
    ):
        done = subprocess.run(
            [sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0 and done.stdout.strip().endswith("0.1.0"), (module, done)


def test_json_log_format(tmp_path: Path) -> None:
    conf = tmp_path / "lns.toml"
    port = _free_port()
    conf.write_text(f'[listener.edge]\nlisten = "127.0.0.1:{port}"\n')
    daemon = Daemon("l2tp.daemons.lns", conf, "-v", "--log-format", "json")

    async def scenario() -> None:
        await daemon.wait_ready()
        async with L2tpContext() as lac:
            th = await lac.open_tunnel(("127.0.0.1", port))
            await th.close()
        daemon.send_signal(signal.SIGTERM)
        await until(lambda: daemon.proc.poll() is not None, "l2tp-lns to exit")

    _run(scenario(), [daemon])
    records = []
    for line in daemon.output().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    assert records, daemon.output()
    for r in records:
        assert {"time", "level", "logger", "message", "daemon"} <= r.keys()
        assert r["daemon"] == "l2tp-lns"
        assert "Reason(" not in r["message"] and "<" not in r["message"]
    assert not [r for r in records if r["level"] in ("WARNING", "ERROR")], records
    assert any("peer sent StopCCN: result 1" in r["message"] for r in records)


def test_ctl_without_a_daemon_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nobody.sock"
    done = subprocess.run(
        [sys.executable, "-m", "l2tp.cli.main", "ctl", "--socket", str(missing), "status"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"l2tp ctl: cannot connect to {missing}: No such file or directory"
        " (is the daemon running?)\n"
    )
