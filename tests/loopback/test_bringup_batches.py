"""The runtime brings a burst of established calls up in batches, one worker per tunnel."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Sequence

import pytest

from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.kernel.errors import DataPlaneClosed
from l2tp.kernel.model import KernelSessionSpec
from l2tp.protocol.constants import CdnResult
from l2tp.protocol.events import Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.control import L2tpContext, SessionFailed

pytestmark = pytest.mark.loopback


class BatchRecorder(AsyncNullDataPlane):
    """A null data plane that records the size of each ``create_sessions`` batch."""

    def __init__(self, *, latency: float = 0.0) -> None:
        super().__init__(latency=latency)
        self.batches: list[int] = []

    async def create_sessions(
        self, specs: Sequence[KernelSessionSpec]
    ) -> list[BaseException | None]:
        self.batches.append(len(specs))
        return await super().create_sessions(specs)


def test_a_burst_of_calls_is_created_in_batches_and_every_call_comes_up() -> None:
    lns_dp, lac_dp = BatchRecorder(latency=0.01), BatchRecorder(latency=0.01)

    async def scenario() -> None:
        async with L2tpContext(dataplane=lns_dp) as lns, L2tpContext(dataplane=lac_dp) as lac:
            listener = await lns.listen(
                ("127.0.0.1", 0), config=ListenerConfig(tunnel=TunnelConfig(role=Role.LNS))
            )
            tunnel = await lac.open_tunnel(listener.address, config=TunnelConfig(role=Role.LAC))
            calls = [tunnel.place_call() for _ in range(200)]
            await asyncio.gather(*(c.wait_established() for c in calls))
            assert len(lac_dp.sessions) == 200
            while listener.session_count < 200 or len(lns_dp.sessions) < 200:
                await asyncio.sleep(0.01)
            # Close half while the rest stay: no bring-up left waiting, nothing leaked.
            await asyncio.gather(*(c.close() for c in calls[:100]))
            assert len(lac_dp.sessions) == 100
            await tunnel.close()
            assert lac_dp.sessions == {} and lac_dp.tunnels == {}

    asyncio.run(asyncio.wait_for(scenario(), 60))
    for dp in (lns_dp, lac_dp):
        assert sum(dp.batches) == 200
        # A data-plane round trip of 10 ms lets calls pile up behind the one in flight.
        assert max(dp.batches) > 1 and len(dp.batches) < 200


class RefusingDataPlane(AsyncNullDataPlane):
    """A data plane that refuses a whole batch (as a closed one does)."""

    async def create_sessions(
        self, specs: Sequence[KernelSessionSpec]
    ) -> list[BaseException | None]:
        raise DataPlaneClosed(errno.ESHUTDOWN, "create sessions: the data plane is closed")


def test_a_refused_batch_closes_each_call_with_cdn_2_and_the_tunnel_stays() -> None:
    async def scenario() -> None:
        refusing = RefusingDataPlane()
        async with (
            L2tpContext(dataplane=AsyncNullDataPlane()) as lns,
            L2tpContext(dataplane=refusing) as lac,
        ):
            listener = await lns.listen(
                ("127.0.0.1", 0), config=ListenerConfig(tunnel=TunnelConfig(role=Role.LNS))
            )
            tunnel = await lac.open_tunnel(listener.address, config=TunnelConfig(role=Role.LAC))
            calls = [tunnel.place_call() for _ in range(5)]
            for call in calls:
                with pytest.raises(SessionFailed):
                    await call.wait_established()
                closed = await call.wait_closed()
                assert closed.reason is not None and closed.reason.result == CdnResult.GENERAL_ERROR
            assert tunnel.ready and tunnel.closed is None

    asyncio.run(asyncio.wait_for(scenario(), 30))
