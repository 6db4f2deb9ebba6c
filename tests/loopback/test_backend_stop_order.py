"""Tunnel close: the backends stop before the kernel objects go (backend.py contract, step 5)."""

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
        await asyncio.sleep(0.2)
        self.kernel_at_stop.append(key in self.dataplane.sessions)
        await super().stop(session)


def test_tunnel_close_deletes_kernel_objects_only_after_the_backends_stopped() -> None:
    async def scenario() -> None:
        dp = AsyncNullDataPlane()
        backend = SlowStopBackend(dp)
        async with L2tpContext(backend=backend, dataplane=dp) as lns, L2tpContext() as lac:
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
            # Every backend still had its kernel session while it was stopping.
            assert backend.kernel_at_stop == [True] * 6

    run(scenario)
