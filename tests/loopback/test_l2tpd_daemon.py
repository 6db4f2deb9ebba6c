"""l2tpd as a subprocess (null data plane) against an in-process L2TPv3 peer, both roles."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import pytest

from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.protocol.constants import CdnResult, DigestType, StopCcnResult
from l2tp.protocol.events import CallParams, Role, TunnelClosed
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.backend import SessionOptions
from l2tp.runtime.control import L2tpContext, ListenOptions, PseudowireOffer, SessionFailed
from tests.helpers import until
from tests.loopback.daemon import Daemon

pytestmark = pytest.mark.loopback


def _free_port() -> int:
    """A port for a daemon's listener, picked here, closed, then handed to the daemon.

    Racy (another process may take it in between), but the daemons cannot be told to
    bind port 0 yet: their configuration refuses it and they do not report the address
    they bound. Where the daemon dials out, the test's own listener binds port 0.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def l2tpd(config: Path) -> Daemon:
    return Daemon("l2tp.daemons.l2tpd", config, "-v")


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
    daemon = l2tpd(conf)

    async def scenario() -> None:
        await daemon.wait_ready()
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
            daemon.send_signal(signal.SIGTERM)
            closed = await asyncio.wait_for(t.wait_closed(), 10)
            assert closed.by_peer and closed.reason is not None
            assert closed.reason.result == StopCcnResult.SHUTTING_DOWN

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        out = daemon.stop()
    assert daemon.proc.returncode == 0, out
    assert "started" in out


def test_l2tpd_initiator_places_calls_and_redials(tmp_path: Path) -> None:
    conf = tmp_path / "l2tpd.toml"

    def write_config(port: int) -> None:
        conf.write_text(
            f'[tunnel.t1]\npeer = "127.0.0.1:{port}"\nhello_timeout = 300\nretry_timeout = 100\n'
            "max_retries = 2\nredial = true\nredial_timeout = 200\nmax_redial_timeout = 400\n"
            '[tunnel.t1.session.lan]\npseudowire = "eth"\ncookie_len = 4\n'
            'l2spec_type = "default"\nseqnum = true\ninterface_name = "pw-lan"\n'
            '[tunnel.t1.session.dmz]\npseudowire = "eth"\nremote_end_id = "dmz-7"\n'
        )

    async def one_peer(dp: AsyncNullDataPlane, port: int) -> tuple[L2tpContext, int]:
        """The daemon's peer; the first binds port 0, its successor the port it got."""
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
        bound: int = listener.address[1]
        return ctx, bound

    async def wait_sessions(dp: AsyncNullDataPlane, n: int) -> None:
        await until(lambda: len(dp.sessions) == n, f"{n} sessions in the data plane")

    daemons: list[Daemon] = []

    async def scenario() -> None:
        dp = AsyncNullDataPlane()
        ctx, port = await one_peer(dp, 0)
        write_config(port)
        daemon = l2tpd(conf)
        daemons.append(daemon)
        await daemon.wait_ready()
        await wait_sessions(dp, 2)
        lan = next(s for s in dp.sessions.values() if len(s.peer_cookie) == 0 and s.send_seq)
        assert len(lan.cookie) == 4  # the daemon's cookie: what we send
        assert lan.l2spec_type is not None and lan.l2spec_type.name == "DEFAULT"
        assert any(c[0] == "attach_to_bridge" for c in dp.calls)
        # The peer disappears without a word; the daemon notices by HELLO and redials.
        await ctx.close(ack_timeout=0.0)
        await daemon.wait_says("redialling")  # it noticed the peer is gone
        dp2 = AsyncNullDataPlane()
        ctx2, _ = await one_peer(dp2, port)
        try:
            await wait_sessions(dp2, 2)
            events = ctx2.events()
            daemon.send_signal(signal.SIGTERM)
            async for event in events:
                if isinstance(event, TunnelClosed):
                    assert event.by_peer
                    break
        finally:
            await ctx2.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        outs = [d.stop() for d in daemons]
    (daemon,) = daemons
    assert daemon.proc.returncode == 0, outs[0]


def test_l2tpd_reload_offers_new_pseudowires_to_new_calls(tmp_path: Path) -> None:
    port = _free_port()
    conf = tmp_path / "l2tpd.toml"
    base = f'[listener.v3]\nlisten = "127.0.0.1:{port}"\n'
    base += '[listener.v3.session.one]\npseudowire = "eth"\n'
    conf.write_text(base)
    daemon = l2tpd(conf)

    async def scenario() -> None:
        await daemon.wait_ready()
        async with L2tpContext() as ctx:
            t = await ctx.open_tunnel(("127.0.0.1", port), config=v3(Role.LAC))
            one = await t.open_session(CallParams(remote_end_id="one"))
            with pytest.raises(SessionFailed):
                await t.open_session(CallParams(remote_end_id="two"))
            conf.write_text(base + '[listener.v3.session.two]\npseudowire = "eth"\n')
            daemon.send_signal(signal.SIGHUP)
            await daemon.wait_says("configuration reloaded")
            # Once the daemon says so, the new file applies to the next call.
            two = await t.open_session(CallParams(remote_end_id="two"))
            assert two.established
            # The reload kept the existing tunnel and its session.
            assert one.established and t.closed is None

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        out = daemon.stop()
    assert "configuration reloaded" in out, out
