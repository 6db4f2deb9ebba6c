"""Issue 14 items 2 and 4: cancellation tears down what it started; a bug in one tunnel's
handling closes that tunnel loudly and leaves the others alone."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.protocol.constants import StopCcnResult
from l2tp.protocol.events import Role, TunnelEstablished
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.message import parse_message
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.protocol.tunnel_fsm import TunnelState
from l2tp.runtime.control import L2tpContext, TunnelHandle
from l2tp.runtime.errors import INTERNAL_ERROR, LOCAL_FAILURE

pytestmark = pytest.mark.loopback
T = TypeVar("T")
FAST = TransportConfig(initial_timeout=0.1, max_timeout=0.2, max_retries=3, hello_interval=None)


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(main())


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def lac() -> TunnelConfig:
    return TunnelConfig(role=Role.LAC, host_name="lac", transport=FAST)


def lns() -> ListenerConfig:
    return ListenerConfig(tunnel=TunnelConfig(role=Role.LNS, host_name="lns", transport=FAST))


class _SilentPeer:
    """A UDP socket that records what it receives and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()

    def names(self) -> list[str]:
        out: list[str] = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return out
            message = parse_message(data)[1]
            out.append("ZLB" if message is None else message.name)


# ------------------------------------------------------------------ cancellation


@pytest.mark.parametrize("how", ["wait_for", "cancel"])
def test_cancelled_open_tunnel_stops_its_sccrq(how: str) -> None:
    async def scenario() -> None:
        peer = _SilentPeer()
        async with L2tpContext() as ctx:
            if how == "wait_for":
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(ctx.open_tunnel(peer.address, config=lac()), 0.15)
            else:
                task = asyncio.create_task(ctx.open_tunnel(peer.address, config=lac()))
                await until(lambda: bool(ctx.tunnels))
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            # Nothing keeps retransmitting the SCCRQ: the tunnel is closed and goes.
            await until(lambda: not ctx.tunnels, timeout=5.0)
            seen = peer.names()
            assert seen.count("SCCRQ") >= 1
            await asyncio.sleep(0.5)  # several retransmission intervals of FAST
            assert "SCCRQ" not in peer.names()
        peer.sock.close()

    run(scenario)


@pytest.mark.parametrize("how", ["wait_for", "cancel"])
def test_cancelled_open_session_sends_cdn(how: str) -> None:
    async def scenario() -> None:
        async with L2tpContext() as lns_ctx, L2tpContext() as lac_ctx:
            listener = await lns_ctx.listen(("127.0.0.1", 0), config=lns())
            t = await lac_ctx.open_tunnel(listener.address, config=lac())
            (lns_th,) = listener.tunnels.values()
            # The LNS never answers the call (as if its admission were still pending).
            lns_th._call_requested = lambda event: None  # type: ignore[method-assign]
            if how == "wait_for":
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(t.open_session(), 0.3)
            else:
                task = asyncio.create_task(t.open_session())
                await until(lambda: bool(t.sessions))
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            await until(lambda: not t.sessions and not t.tunnel.sessions)
            await until(lambda: not lns_th.tunnel.sessions)  # the CDN reached the LNS
            assert t.state is TunnelState.ESTABLISHED

    run(scenario)


def test_cancelled_close_still_cleans_up() -> None:
    async def scenario() -> None:
        lns_ctx = L2tpContext()
        async with L2tpContext() as lac_ctx:
            listener = await lns_ctx.listen(("127.0.0.1", 0), config=lns())
            t = await lac_ctx.open_tunnel(listener.address, config=lac())
            sock = listener.sock
            task = asyncio.create_task(lns_ctx.close())
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await lns_ctx.close()  # waits for the same clean-up
            assert lns_ctx.closed and not lns_ctx.tunnels and not lns_ctx.endpoints
            assert sock.fileno() == -1
            closed = await t.wait_closed()
            assert closed.by_peer and closed.reason is not None
            assert closed.reason.result == StopCcnResult.SHUTTING_DOWN

    run(scenario)


# --------------------------------------------------------------- loud failures


@pytest.mark.allow_internal_errors
def test_bug_in_one_tunnel_closes_it_and_spares_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[Any, Any]:
        dp = AsyncNullDataPlane()
        async with L2tpContext(dataplane=dp) as lns_ctx, L2tpContext() as lac_ctx:
            listener = await lns_ctx.listen(("127.0.0.1", 0), config=lns())
            good = await lac_ctx.open_tunnel(listener.address, config=lac())
            bad_lac = await lac_ctx.open_tunnel(listener.address, config=lac())
            bad: TunnelHandle = lns_ctx.tunnels[bad_lac.peer_tunnel_id]
            real = bad._on_event

            def buggy(event: Any) -> None:
                if not isinstance(event, TunnelEstablished):
                    raise RuntimeError("a bug in event handling")
                real(event)

            bad._on_event = buggy  # type: ignore[method-assign]
            waiter = asyncio.ensure_future(bad.wait_closed())
            bad_lac.place_call()  # the LNS's CallRequested event triggers the bug
            with pytest.raises(RuntimeError, match="a bug"):
                await waiter
            closed = await bad_lac.wait_closed()
            # The good tunnel still works.
            session = await good.open_session()
            await session.wait_established()
            assert lns_ctx.counters.internal_errors == 1
            return closed, good.state

    with caplog.at_level(logging.ERROR, logger="l2tp"):
        closed, good_state = run(scenario)
    assert closed.by_peer and closed.reason is not None
    assert closed.reason.result == StopCcnResult.GENERAL_ERROR
    assert closed.reason.message == LOCAL_FAILURE
    assert good_state is TunnelState.ESTABLISHED
    flagged = [r for r in caplog.records if getattr(r, INTERNAL_ERROR, False)]
    assert len(flagged) == 1 and flagged[0].exc_info is not None
