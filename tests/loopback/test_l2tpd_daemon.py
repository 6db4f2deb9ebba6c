"""l2tpd as a subprocess (null data plane) against an in-process L2TPv3 peer, both roles."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from l2tp.kernel.dataplane import NullDataPlane
from l2tp.protocol.constants import CdnResult, DigestType, StopCcnResult
from l2tp.protocol.events import CallParams, Role, TunnelClosed
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.backend import SessionOptions
from l2tp.runtime.control import L2tpContext, ListenOptions, PseudowireOffer, SessionFailed

pytestmark = pytest.mark.loopback


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _spawn(config: Path, ready: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "l2tp.daemons.l2tpd",
            str(config),
            "--null-dataplane",
            "--ready-file",
            str(ready),
            "-v",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _wait_file(path: Path, proc: subprocess.Popen[str]) -> None:
    for _ in range(300):
        if path.exists():
            return
        assert proc.poll() is None, proc.communicate()[0]
        await asyncio.sleep(0.05)
    raise AssertionError("daemon not ready")


def _stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM unless the test already sent one (a second one during shutdown kills)."""
    try:
        out, _ = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
    else:
        return out
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def v3(role: Role, **kw: object) -> TunnelConfig:
    return TunnelConfig(role=role, version=3, host_name="peer", **kw)  # type: ignore[arg-type]


def test_l2tpd_listener_binds_sessions_by_remote_end_id(tmp_path: Path) -> None:
    port = _free_port()
    conf = tmp_path / "l2tpd.toml"
    conf.write_text(
        f'[listener.v3]\nlisten = "127.0.0.1:{port}"\nsecret = "pw"\ndigest = "sha1"\n'
        "hello_timeout = 500\n"
        '[listener.v3.session.siteA]\npseudowire = "eth"\ncookie_len = 8\n'
        '[listener.v3.session.siteB]\npseudowire = "eth"\nremote_end_id = "b-lan"\n'
    )
    ready = tmp_path / "ready"
    proc = _spawn(conf, ready)

    async def scenario() -> None:
        await _wait_file(ready, proc)
        async with L2tpContext() as ctx:
            t = await ctx.open_tunnel(
                ("127.0.0.1", port),
                config=v3(Role.LAC, secret=b"pw", digest_type=DigestType.HMAC_SHA1),
            )
            a = await t.open_session(CallParams(remote_end_id="siteA", cookie_length=4))
            b = await t.open_session(CallParams(remote_end_id="b-lan"))
            info_a = await a.wait_established()
            info_b = await b.wait_established()
            assert len(info_a.peer_cookie) == 8 and len(info_a.cookie) == 4
            assert info_b.peer_cookie == b""
            with pytest.raises(SessionFailed) as refused:
                await t.open_session(CallParams(remote_end_id="nowhere"))
            reason = refused.value.event.reason
            assert reason is not None and reason.result == CdnResult.GENERAL_ERROR
            assert "nowhere" in reason.message
            # The daemon's SIGTERM closes the control connection with a StopCCN.
            proc.send_signal(signal.SIGTERM)
            closed = await asyncio.wait_for(t.wait_closed(), 10)
            assert closed.by_peer and closed.reason is not None
            assert closed.reason.result == StopCcnResult.SHUTTING_DOWN

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, out
    assert "started" in out


def test_l2tpd_initiator_places_calls_and_redials(tmp_path: Path) -> None:
    port = _free_port()
    conf = tmp_path / "l2tpd.toml"
    conf.write_text(
        f'[tunnel.t1]\npeer = "127.0.0.1:{port}"\nhello_timeout = 300\nretry_timeout = 100\n'
        "max_retries = 2\nredial = true\nredial_timeout = 200\nmax_redial_timeout = 400\n"
        '[tunnel.t1.session.lan]\npseudowire = "eth"\ncookie_len = 4\n'
        'l2spec_type = "default"\nseqnum = true\ninterface_name = "pw-lan"\n'
        '[tunnel.t1.session.dmz]\npseudowire = "eth"\nremote_end_id = "dmz-7"\n'
    )
    ready = tmp_path / "ready"

    async def one_peer(dp: NullDataPlane) -> tuple[L2tpContext, object]:
        ctx = L2tpContext(dataplane=dp)
        listener = await ctx.listen(
            ("127.0.0.1", port),
            config=ListenerConfig(tunnel=v3(Role.LNS)),
            options=ListenOptions(
                pseudowires=(
                    PseudowireOffer(remote_end_id="lan", options=SessionOptions(bridge="br0")),
                    PseudowireOffer(remote_end_id="dmz-7"),
                )
            ),
        )
        return ctx, listener

    async def wait_sessions(dp: NullDataPlane, n: int) -> None:
        for _ in range(400):
            if len(dp.sessions) == n:
                return
            await asyncio.sleep(0.025)
        raise AssertionError(f"{len(dp.sessions)} sessions, expected {n}")

    proc = _spawn(conf, ready)

    async def scenario() -> None:
        dp = NullDataPlane()
        ctx, _ = await one_peer(dp)
        await _wait_file(ready, proc)
        await wait_sessions(dp, 2)
        lan = next(s for s in dp.sessions.values() if len(s.peer_cookie) == 0 and s.send_seq)
        assert len(lan.cookie) == 4  # the daemon's cookie: what we send
        assert lan.l2spec_type is not None and lan.l2spec_type.name == "DEFAULT"
        assert any(c[0] == "attach_to_bridge" for c in dp.calls)
        # The peer disappears without a word; the daemon notices by HELLO and redials.
        await ctx.close(ack_timeout=0.0)
        await asyncio.sleep(1.0)
        dp2 = NullDataPlane()
        ctx2, _ = await one_peer(dp2)
        try:
            await wait_sessions(dp2, 2)
            events = ctx2.events()
            proc.send_signal(signal.SIGTERM)
            async for event in events:
                if isinstance(event, TunnelClosed):
                    assert event.by_peer
                    break
        finally:
            await ctx2.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, out
    assert "redialling" in out


def test_l2tpd_reload_offers_new_pseudowires_to_new_calls(tmp_path: Path) -> None:
    port = _free_port()
    conf = tmp_path / "l2tpd.toml"
    base = f'[listener.v3]\nlisten = "127.0.0.1:{port}"\n'
    base += '[listener.v3.session.one]\npseudowire = "eth"\n'
    conf.write_text(base)
    ready = tmp_path / "ready"
    proc = _spawn(conf, ready)

    async def scenario() -> None:
        await _wait_file(ready, proc)
        async with L2tpContext() as ctx:
            t = await ctx.open_tunnel(("127.0.0.1", port), config=v3(Role.LAC))
            one = await t.open_session(CallParams(remote_end_id="one"))
            with pytest.raises(SessionFailed):
                await t.open_session(CallParams(remote_end_id="two"))
            conf.write_text(base + '[listener.v3.session.two]\npseudowire = "eth"\n')
            proc.send_signal(signal.SIGHUP)
            for _ in range(100):
                try:
                    await t.open_session(CallParams(remote_end_id="two"))
                except SessionFailed:
                    await asyncio.sleep(0.05)
                else:
                    break
            else:
                raise AssertionError("'two' still refused after the reload")
            # The reload kept the existing tunnel and its session.
            assert one.established and t.closed is None

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        out = _stop(proc)
    assert "configuration reloaded" in out, out
