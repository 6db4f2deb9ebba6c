"""The premise of the daemons' GcPacer (runtime/gc_pacer.py): sessions are freed by
reference counting. Their set-up and close leave no cyclic garbage, so freezing what
lives costs nothing for them. (A closed tunnel still leaves a few cycles, which the heap
trim after reaped tunnels collects, frozen or not: see the second test.)"""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.protocol.events import Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.control import L2tpContext
from l2tp.runtime.gc_pacer import GcPacer
from l2tp.runtime.memory import trim_heap

pytestmark = pytest.mark.loopback


def test_sessions_and_tunnels_coming_and_going_leave_no_cycles() -> None:
    found: dict[str, int] = {}

    async def scenario() -> None:
        lns_dp, lac_dp = AsyncNullDataPlane(), AsyncNullDataPlane()
        async with L2tpContext(dataplane=lns_dp) as lns, L2tpContext(dataplane=lac_dp) as lac:
            listener = await lns.listen(
                ("127.0.0.1", 0), config=ListenerConfig(tunnel=TunnelConfig(role=Role.LNS))
            )
            tunnel = await lac.open_tunnel(listener.address, config=TunnelConfig(role=Role.LAC))
            warm = tunnel.place_call()  # first-use caches (codec tables, ...) made before
            await warm.wait_established()
            await warm.close()
            del warm
            gc.collect()
            gc.disable()
            calls = [tunnel.place_call() for _ in range(500)]
            await asyncio.gather(*(c.wait_established() for c in calls))
            while listener.session_count < 500:
                await asyncio.sleep(0.01)
            found["set-up"] = gc.collect()
            await asyncio.gather(*(c.close() for c in calls))
            del calls
            while listener.session_count > 0 or lns_dp.sessions:
                await asyncio.sleep(0.01)
            found["sessions closed"] = gc.collect()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        gc.enable()
    assert found == {"set-up": 0, "sessions closed": 0}


def test_the_heap_trim_collects_cycles_a_pacer_froze() -> None:
    before = gc.get_threshold()

    async def scenario() -> None:
        pacer = GcPacer(asyncio.get_running_loop(), freeze_interval=3600)
        lns_dp, lac_dp = AsyncNullDataPlane(), AsyncNullDataPlane()
        async with L2tpContext(dataplane=lns_dp) as lns, L2tpContext(dataplane=lac_dp) as lac:
            # A close-wait (the full retransmission cycle) of ~0.15 s instead of ~31 s.
            quick = TransportConfig(initial_timeout=0.05, max_timeout=0.05, max_retries=2)
            listener = await lns.listen(
                ("127.0.0.1", 0),
                config=ListenerConfig(tunnel=TunnelConfig(role=Role.LNS, transport=quick)),
            )
            tunnel = await lac.open_tunnel(
                listener.address, config=TunnelConfig(role=Role.LAC, transport=quick)
            )
            protocol = weakref.ref(tunnel.tunnel)
            gc.collect()
            pacer.start()  # the live tunnel is frozen
            await tunnel.close()
            del tunnel
            while lac.tunnels:  # close-wait over, the context let it go
                await asyncio.sleep(0.01)
            gc.collect()
            found["kept by frozen cycles"] = protocol() is not None
            trim_heap()
            found["after trim"] = protocol() is not None
            found["frozen again"] = gc.get_freeze_count() > 0
        pacer.stop()

    found: dict[str, bool] = {}
    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert found == {"kept by frozen cycles": True, "after trim": False, "frozen again": True}
