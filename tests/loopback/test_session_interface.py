"""The runtime learns each session's real interface name (``SessionHandle.wait_interface``).

Ethernet pseudowires: the configured name at once, the kernel's ``l2tpethN`` by one lookup
(the null data plane names them as the kernel does). PPP sessions: whatever the backend
reports once its unit exists; nothing to wait for with a backend that reports nothing.
ql2tpd's static sessions: looked up once each, when it creates them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from l2tp import config as cfg
from l2tp.daemons.static import StaticTunnel
from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.protocol.constants import PseudowireType
from l2tp.protocol.events import Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.protocol.values import CallParams
from l2tp.runtime.backend import BackendSession, NullSessionBackend, SessionOptions
from l2tp.runtime.context import L2tpContext

pytestmark = pytest.mark.loopback

T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(main())


class NamingBackend(NullSessionBackend):
    """Reports ``ppp<N>`` a little after each start, as pppd's ``Using interface`` would
    (none at all for sessions in ``silent``)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.reports_interface = True
        self.delay = delay
        self.silent: set[int] = set()
        self._unit = 0

    async def start(self, session: BackendSession) -> None:
        await super().start(session)
        if session.info.session_id in self.silent:
            return
        name = f"ppp{self._unit}"
        self._unit += 1
        asyncio.get_running_loop().call_later(self.delay, session.report_interface, name)


def test_ethernet_sessions_have_their_configured_or_kernel_given_name() -> None:
    async def scenario() -> None:
        lns_dp, lac_dp = AsyncNullDataPlane(), AsyncNullDataPlane()
        async with L2tpContext(dataplane=lns_dp) as lns, L2tpContext(dataplane=lac_dp) as lac:
            v3 = TunnelConfig(role=Role.LNS, version=3)
            listener = await lns.listen(("127.0.0.1", 0), config=ListenerConfig(tunnel=v3))
            tunnel = await lac.open_tunnel(
                listener.address, config=TunnelConfig(role=Role.LAC, version=3)
            )
            eth = CallParams(pseudowire_type=PseudowireType.ETHERNET)
            named = tunnel.place_call(eth, options=SessionOptions(interface_name="pw-a"))
            unnamed = tunnel.place_call(eth)
            await asyncio.gather(named.wait_established(), unnamed.wait_established())
            assert named.interface == "pw-a"  # known without asking the kernel
            assert unnamed.interface is None  # not looked up until someone asks
            lookups = lac_dp.counts["session_interface"]
            assert await named.wait_interface(0) == "pw-a"
            assert lac_dp.counts["session_interface"] == lookups
            assert await unnamed.wait_interface(0) == "l2tpeth0"
            assert unnamed.interface == "l2tpeth0"
            await unnamed.close()
            assert await unnamed.wait_interface(0) == "l2tpeth0"  # kept for the down hooks

    run(scenario)


@pytest.mark.parametrize("version", [2, 3])
def test_a_ppp_session_has_the_name_its_backend_reports(version: int) -> None:
    backend = NamingBackend(delay=0.05)

    async def scenario() -> None:
        async with (
            L2tpContext(dataplane=AsyncNullDataPlane()) as lns,
            L2tpContext(dataplane=AsyncNullDataPlane(), backend=backend) as lac,
        ):
            pws = {"pseudowire_capabilities": (PseudowireType.PPP,)} if version == 3 else {}
            lns_tunnel = TunnelConfig(role=Role.LNS, version=version, **pws)  # type: ignore[arg-type]
            config = ListenerConfig(tunnel=lns_tunnel)
            listener = await lns.listen(("127.0.0.1", 0), config=config)
            tunnel = await lac.open_tunnel(
                listener.address, config=TunnelConfig(role=Role.LAC, version=version)
            )
            ppp = CallParams(pseudowire_type=PseudowireType.PPP) if version == 3 else None
            call = tunnel.place_call(ppp)
            await call.wait_established()
            assert call.interface is None  # the backend has not made its unit yet
            assert await call.wait_interface(10) == "ppp0"
            assert call.interface == "ppp0"

            silent = tunnel.place_call(ppp)
            backend.silent.add(silent.session_id)
            await silent.wait_established()
            loop = asyncio.get_running_loop()
            began = loop.time()
            assert await silent.wait_interface(0.2) is None  # never reported: bounded wait
            assert 0.2 <= loop.time() - began < 5

    run(scenario)


def test_a_backend_that_reports_no_names_makes_nobody_wait() -> None:
    async def scenario() -> None:
        async with (
            L2tpContext(dataplane=AsyncNullDataPlane()) as lns,
            L2tpContext(dataplane=AsyncNullDataPlane(), backend=NullSessionBackend()) as lac,
        ):
            config = ListenerConfig(tunnel=TunnelConfig(role=Role.LNS))
            listener = await lns.listen(("127.0.0.1", 0), config=config)
            tunnel = await lac.open_tunnel(listener.address, config=TunnelConfig(role=Role.LAC))
            call = tunnel.place_call()
            await call.wait_established()
            assert await asyncio.wait_for(call.wait_interface(60), 1) is None

    run(scenario)


def test_ql2tpd_static_sessions_learn_their_kernel_given_names() -> None:
    """ql2tpd makes its sessions itself: the names (for its hooks) come from one lookup
    after each creation, or from the configuration."""
    config = cfg.loads(
        '[tunnel.t]\nlocal = "127.0.0.1:5000"\npeer = "127.0.0.1:5001"\ntid = 3\nptid = 4\n'
        '[tunnel.t.session.named]\nsid = 5\npsid = 6\ninterface_name = "pw-named"\n'
        "[tunnel.t.session.kernel]\nsid = 7\npsid = 8\n",
        daemon="ql2tpd",
        resolver=None,
    )

    async def scenario() -> None:
        dataplane = AsyncNullDataPlane()
        await dataplane.start()
        static = StaticTunnel(config.tunnels[0], dataplane)
        await static.up()
        assert static.interfaces == {5: "pw-named", 7: "l2tpeth0"}
        await static.down()

    run(scenario)
