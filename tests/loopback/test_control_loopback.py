"""Our LAC and our LNS (L2tpContext) over real UDP on 127.0.0.1 with the null data plane."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.protocol.constants import CdnResult, ErrorCode, StopCcnResult
from l2tp.protocol.events import Role, SessionClosed, TunnelClosed, TunnelEstablished
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.backend import NullSessionBackend
from l2tp.runtime.control import (
    L2tpContext,
    ListenOptions,
    SessionFailed,
    TunnelFailed,
)
from tests.helpers import until

pytestmark = pytest.mark.loopback
T = TypeVar("T")
FAST = TransportConfig(initial_timeout=0.1, max_timeout=0.2, max_retries=2)


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(main())


def lac_config(**kw: object) -> TunnelConfig:
    return TunnelConfig(role=Role.LAC, host_name="lac", **kw)  # type: ignore[arg-type]


def lns_config(max_tunnels: int = 1024, **kw: object) -> ListenerConfig:
    tunnel = TunnelConfig(role=Role.LNS, host_name="lns", **kw)  # type: ignore[arg-type]
    return ListenerConfig(tunnel=tunnel, max_tunnels=max_tunnels)


@pytest.mark.parametrize(
    "secret,hide", [(None, False), (b"s3cret", False), (b"s3cret", True)], ids=str
)
def test_tunnel_session_and_kernel_objects(secret: bytes | None, hide: bool) -> None:
    async def scenario() -> None:
        lns_dp, lac_dp = AsyncNullDataPlane(), AsyncNullDataPlane()
        async with L2tpContext(dataplane=lns_dp) as lns, L2tpContext(dataplane=lac_dp) as lac:
            events = lns.events()
            listener = await lns.listen(
                ("127.0.0.1", 0), config=lns_config(secret=secret, hide_avps=hide)
            )
            t = await lac.open_tunnel(
                listener.address, config=lac_config(secret=secret, hide_avps=hide)
            )
            session = await t.open_session()
            info = await session.wait_established()
            # The LAC's kernel tunnel is on its (now connected) socket; the LNS's on a
            # per-tunnel socket bound to the listen address and connected to the LAC.
            assert lac_dp.tunnels[t.tunnel_id].fd == t.sock.fileno()
            assert t.sock.getpeername()[:2] == listener.address
            (lt,) = listener.tunnels.values()
            assert lt.own_sock is not None
            assert lt.own_sock.getsockname()[:2] == listener.address
            assert lt.own_sock.getpeername()[:2] == t.local
            assert lns_dp.tunnels[lt.tunnel_id].fd == lt.own_sock.fileno()
            await until(lambda: lns_dp.sessions, "the LNS's kernel session")
            ((key, kses),) = lns_dp.sessions.items()
            assert kses.lns_mode and key == (lt.tunnel_id, info.peer_session_id)
            assert not lac_dp.sessions[(t.tunnel_id, info.session_id)].lns_mode
            # Traffic keeps flowing over the moved socket: a second session.
            second = await t.open_session()
            await second.close()
            assert (t.tunnel_id, second.session_id) not in lac_dp.sessions
            closed = await t.close()
            assert not closed.by_peer
            assert lac_dp.tunnels == {} and lac_dp.sessions == {}
            seen = []
            async for ev in events:
                seen.append(ev)
                if isinstance(ev, TunnelClosed):
                    break
            assert isinstance(seen[0], TunnelEstablished)
            assert seen[-1].by_peer  # type: ignore[union-attr]
            assert seen[-1].reason.result == StopCcnResult.GENERAL_REQUEST  # type: ignore[union-attr]
            assert lns_dp.tunnels == {} and lns_dp.sessions == {}

    run(scenario)


def test_wrong_secret_is_stopccn_4() -> None:
    async def scenario() -> None:
        async with L2tpContext() as lns, L2tpContext() as lac:
            listener = await lns.listen(("127.0.0.1", 0), config=lns_config(secret=b"right"))
            with pytest.raises(TunnelFailed) as info:
                await lac.open_tunnel(listener.address, config=lac_config(secret=b"wrong"))
            reason = info.value.event.reason
            assert reason is not None and reason.result == StopCcnResult.NOT_AUTHORIZED
            # Hidden AVPs with the wrong secret: the LNS cannot unhide, StopCCN 4 too.
            with pytest.raises(TunnelFailed) as info:
                await lac.open_tunnel(
                    listener.address, config=lac_config(secret=b"wrong", hide_avps=True)
                )
            reason = info.value.event.reason
            assert reason is not None and reason.result == StopCcnResult.NOT_AUTHORIZED

    run(scenario)


def test_thousand_sessions_in_one_tunnel() -> None:
    """(How fast is the benchmarks' business: here run()'s time limit only catches a hang.)"""

    async def scenario() -> None:
        lns_dp = AsyncNullDataPlane()
        async with L2tpContext(dataplane=lns_dp) as lns, L2tpContext() as lac:
            listener = await lns.listen(("127.0.0.1", 0), config=lns_config())
            t = await lac.open_tunnel(listener.address, config=lac_config())
            calls = [t.place_call() for _ in range(1000)]
            await asyncio.gather(*(c.wait_established() for c in calls))
            await until(
                lambda: listener.session_count == 1000 and len(lns_dp.sessions) == 1000,
                "1,000 sessions at the LNS and in its data plane",
            )
            assert len({c.session_id for c in calls}) == 1000
            await t.close()
            assert listener.session_count == 0

    run(scenario)


def test_hundred_tunnels() -> None:
    async def scenario() -> None:
        async with L2tpContext() as lns, L2tpContext() as lac:
            listener = await lns.listen(("127.0.0.1", 0), config=lns_config())
            tunnels = await asyncio.gather(
                *(lac.open_tunnel(listener.address, config=lac_config()) for _ in range(100))
            )
            assert len({t.tunnel_id for t in tunnels}) == 100
            sessions = await asyncio.gather(*(t.open_session() for t in tunnels))
            assert all(s.established for s in sessions)
            assert len(listener.tunnels) == 100
            await asyncio.gather(*(t.close() for t in tunnels))

    run(scenario)


def test_listener_limits() -> None:
    async def scenario() -> None:
        async with L2tpContext() as lns, L2tpContext() as lac:
            options = ListenOptions(max_sessions=3, max_sessions_per_tunnel=2)
            listener = await lns.listen(
                ("127.0.0.1", 0), config=lns_config(max_tunnels=2), options=options
            )
            t1 = await lac.open_tunnel(listener.address, config=lac_config())
            t2 = await lac.open_tunnel(listener.address, config=lac_config())
            with pytest.raises(TunnelFailed) as tf:
                await lac.open_tunnel(listener.address, config=lac_config())
            reason = tf.value.event.reason
            assert reason is not None and tf.value.event.by_peer
            assert (reason.result, reason.error) == (
                StopCcnResult.GENERAL_ERROR,
                ErrorCode.INSUFFICIENT_RESOURCES,
            )
            await t1.open_session()
            await t1.open_session()
            with pytest.raises(SessionFailed) as sf:
                await t1.open_session()  # per-tunnel limit
            r = sf.value.event.reason
            assert r is not None and (r.result, r.error) == (
                CdnResult.TEMPORARY_NO_FACILITIES,
                ErrorCode.INSUFFICIENT_RESOURCES,
            )
            await t2.open_session()
            with pytest.raises(SessionFailed):
                await t2.open_session()  # listener-wide limit (3)
            assert listener.session_count == 3

    run(scenario)


def test_allowed_peers_drops_others() -> None:
    async def scenario() -> None:
        async with L2tpContext() as lns, L2tpContext() as lac:
            options = ListenOptions(allowed_peers=(ipaddress.ip_network("192.0.2.0/24"),))
            listener = await lns.listen(("127.0.0.1", 0), config=lns_config(), options=options)
            with pytest.raises(TunnelFailed) as tf:
                await lac.open_tunnel(listener.address, config=lac_config(transport=FAST))
            assert tf.value.event.reason is None  # no answer: retransmissions exhausted
            assert lns.counters.not_allowed >= 1 and not listener.tunnels
            # Counted per listener too (l2tp ctl status, l2tp_listener_sccrq_refused_total):
            assert listener.not_allowed == lns.counters.not_allowed
            assert listener.listener.counters.accepted == 0

    run(scenario)


def test_backend_report_down_sends_cdn_with_its_result() -> None:
    async def scenario() -> None:
        backend = NullSessionBackend()
        async with L2tpContext(backend=backend) as lns, L2tpContext() as lac:
            listener = await lns.listen(("127.0.0.1", 0), config=lns_config())
            t = await lac.open_tunnel(listener.address, config=lac_config())
            session = await t.open_session()
            await until(lambda: backend.started, "the session's backend to start")
            (key,) = backend.started
            backend.report_down(key, CdnResult.LOST_CARRIER, message="pppd exited")
            closed = await session.wait_closed()
            assert isinstance(closed, SessionClosed) and closed.by_peer
            assert closed.reason is not None
            assert closed.reason.result == CdnResult.LOST_CARRIER
            assert backend.stopped == [key] and not backend.started

    run(scenario)


def test_tunnel_close_stops_backends_and_removes_kernel_state() -> None:
    async def scenario() -> None:
        backend = NullSessionBackend()
        dp = AsyncNullDataPlane()
        async with L2tpContext(backend=backend, dataplane=dp) as lns, L2tpContext() as lac:
            listener = await lns.listen(("127.0.0.1", 0), config=lns_config())
            t = await lac.open_tunnel(listener.address, config=lac_config())
            await asyncio.gather(*(t.open_session() for _ in range(5)))
            await until(lambda: len(backend.started) == 5, "5 backends started")
            await t.close()
            await until(lambda: not dp.tunnels, "the kernel tunnel to go")
            assert dp.tunnels == {} and dp.sessions == {}
            assert len(backend.stopped) == 5

    run(scenario)
