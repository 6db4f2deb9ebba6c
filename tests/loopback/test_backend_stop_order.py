"""Tunnel close: the backends are asked to stop while their kernel sessions exist, and a
backend still stopping after ``hangup_after`` has its kernel session deleted under it, the
hang-up that ends pppd's wait for a peer that was told to stop (backend.py, step 5; issue
16)."""

from __future__ import annotations

import asyncio

from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.runtime.backend import BackendSession, NullSessionBackend
from l2tp.runtime.context import live
from l2tp.runtime.control import L2tpContext
from tests.loopback.test_control_loopback import lac_config, lns_config, run


class SlowStopBackend(NullSessionBackend):
    """Like pppd: stopping takes a while (LCP Terminate) and needs its kernel session."""

    def __init__(self, dataplane: AsyncNullDataPlane) -> None:
        super().__init__()
        self.dataplane = dataplane
        self.kernel_at_stop: list[bool] = []

    async def stop(self, session: BackendSession) -> None:
        key = session.key
        self.kernel_at_stop.append(key in self.dataplane.sessions)
        # Stands for an LCP Terminate-Request that no peer acknowledges; the hang-up
        # (kernel session gone) is what a pppd would see meanwhile.
        for _ in range(200):
            if key not in self.dataplane.sessions:
                break
            await asyncio.sleep(0.01)
        self.kernel_at_stop.append(key in self.dataplane.sessions)
        await super().stop(session)


def test_tunnel_close_hangs_up_backends_that_are_still_stopping() -> None:
    async def scenario() -> None:
        dp = AsyncNullDataPlane()
        backend = SlowStopBackend(dp)
        lns_ctx = L2tpContext(backend=backend, dataplane=dp, hangup_after=0.05)
        async with lns_ctx as lns, L2tpContext() as lac:
            listener = await lns.listen(("127.0.0.1", 0), config=lns_config())
            t = await lac.open_tunnel(listener.address, config=lac_config())
            await asyncio.gather(*(t.open_session() for _ in range(3)))
            for _ in range(100):
                if len(backend.started) == 3:
                    break
                await asyncio.sleep(0.01)
            await t.close()  # StopCCN: the LNS closes its sessions, then the tunnel
            for _ in range(200):
                if len(backend.stopped) == 3 and not dp.tunnels:
                    break
                await asyncio.sleep(0.01)
            assert len(backend.stopped) == 3 and dp.tunnels == {} and dp.sessions == {}
            # Every backend had its kernel session when asked to stop, and lost it (the
            # hang-up: one kernel tunnel deletion for all of them) while still stopping.
            assert backend.kernel_at_stop == [True, True, True, False, False, False]

    run(scenario)


class TimedStopBackend(NullSessionBackend):
    """Records, for every stop, whether the tunnel was still up on both sides (its own
    context had sent no StopCCN, the peer had none), and takes ``stop_takes`` seconds to
    stop (pppd's LCP Terminate exchange)."""

    def __init__(self, stop_takes: float) -> None:
        super().__init__()
        self.stop_takes = stop_takes
        self.peer_up_at_stop: list[bool] = []
        self.peer: asyncio.Future[bool] | None = None
        self.ctx: L2tpContext | None = None
        self.stops_done_at: list[float] = []

    async def stop(self, session: BackendSession) -> None:
        assert self.peer is not None and self.ctx is not None
        ours = all(live(th) for th in self.ctx.tunnels.values())
        self.peer_up_at_stop.append(ours and not self.peer.done())
        await asyncio.sleep(self.stop_takes)
        self.stops_done_at.append(asyncio.get_running_loop().time())
        await super().stop(session)


async def _shutdown_with(backend: TimedStopBackend) -> tuple[float, float]:
    """Three calls up, then the LNS context closes (a daemon's SIGTERM): the seconds from
    the close to the LAC seeing the StopCCN, and to the close's end."""
    loop = asyncio.get_running_loop()
    async with L2tpContext() as lac:
        lns = L2tpContext(backend=backend)
        backend.ctx = lns
        listener = await lns.listen(("127.0.0.1", 0), config=lns_config())
        t = await lac.open_tunnel(listener.address, config=lac_config())
        await asyncio.gather(*(t.open_session() for _ in range(3)))
        for _ in range(100):
            if len(backend.started) == 3:
                break
            await asyncio.sleep(0.01)
        assert len(backend.started) == 3
        peer_closed: asyncio.Future[bool] = loop.create_future()
        backend.peer = peer_closed
        t0 = loop.time()
        closing = asyncio.ensure_future(lns.close(ack_timeout=1.0))
        await t.wait_closed()
        peer_closed.set_result(True)
        stopccn_after = loop.time() - t0
        await closing
        return stopccn_after, loop.time() - t0


def test_shutdown_stops_every_backend_before_the_stopccn() -> None:
    """Daemon shutdown: every PPP ends while the tunnel is still up on both sides (pppd's
    Terminate-Request can still be acknowledged by the peer's PPP), then the StopCCN."""

    async def scenario() -> None:
        backend = TimedStopBackend(stop_takes=0.1)
        stopccn_after, _ = await _shutdown_with(backend)
        assert backend.peer_up_at_stop == [True, True, True]
        assert len(backend.stopped) == 3
        # All three stopped at once (not one after the other), before the StopCCN.
        assert stopccn_after < 0.35, stopccn_after
        assert max(backend.stops_done_at) - min(backend.stops_done_at) < 0.05

    run(scenario)


def test_shutdown_sends_the_stopccn_after_ppp_first_even_if_a_backend_is_still_stopping() -> None:
    """A PPP that takes longer (pppd's 1 s restart timer for an unanswered Terminate-
    Request) does not hold the StopCCN back past PPP_FIRST; the close still waits for it."""
    from l2tp.runtime.context import PPP_FIRST

    async def scenario() -> None:
        backend = TimedStopBackend(stop_takes=1.2)
        stopccn_after, took = await _shutdown_with(backend)
        assert PPP_FIRST <= stopccn_after < PPP_FIRST + 0.3, stopccn_after
        assert len(backend.stopped) == 3 and took >= 1.2

    run(scenario)
