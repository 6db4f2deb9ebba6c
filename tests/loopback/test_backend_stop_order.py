"""Tunnel close: the backends are asked to stop while their kernel sessions exist, and a
backend still stopping after ``hangup_after`` has its kernel session deleted under it, the
hang-up that ends pppd's wait for a peer that was told to stop (backend.py, step 5; issue
16)."""

from __future__ import annotations

import asyncio

from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.runtime.backend import BackendSession, NullSessionBackend
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
