"""AsyncNullDataPlane: the kernel's ID rules, a bounded record, lifecycle and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from ipaddress import ip_address

import pytest

from l2tp.kernel import (
    AsyncDataPlane,
    AsyncLinuxDataPlane,
    AsyncNullDataPlane,
    DataPlaneClosed,
    IdInUse,
    KernelSessionSpec,
    KernelTunnelSpec,
    SessionNotFound,
    TunnelNotFound,
)
from l2tp.kernel.model import SessionConfig, TunnelConfig

LO = ip_address("127.0.0.1")


def tunnel(tid: int) -> KernelTunnelSpec:
    return KernelTunnelSpec(tunnel_id=tid, peer_tunnel_id=tid + 1, local=LO, peer=LO)


def session(tid: int, sid: int, **kw: object) -> KernelSessionSpec:
    return KernelSessionSpec(tunnel_id=tid, session_id=sid, peer_session_id=sid, **kw)  # type: ignore[arg-type]


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_both_implementations_satisfy_the_protocol() -> None:
    planes: list[AsyncDataPlane] = [AsyncNullDataPlane(), AsyncLinuxDataPlane()]
    assert len(planes) == 2
    assert TunnelConfig is KernelTunnelSpec and SessionConfig is KernelSessionSpec


def test_calls_before_start_and_after_close_are_refused() -> None:
    async def scenario() -> None:
        dp = AsyncNullDataPlane()
        with pytest.raises(RuntimeError, match="start"):
            await dp.create_tunnel(tunnel(1))
        with pytest.raises(RuntimeError, match="start"):
            dp.tunnel_id_in_use(1)
        await dp.start()
        await dp.start()
        await dp.create_tunnel(tunnel(1))
        await dp.close()
        await dp.close()
        assert dp.counts["close"] == 1
        with pytest.raises(DataPlaneClosed):
            await dp.delete_tunnel(1)
        with pytest.raises(DataPlaneClosed):
            await dp.start()

    run(scenario)


def test_kernel_id_rules_and_records() -> None:
    async def scenario() -> None:
        dp = AsyncNullDataPlane()
        await dp.start()
        await dp.create_tunnel(tunnel(1))
        with pytest.raises(IdInUse):
            await dp.create_tunnel(tunnel(1))
        with pytest.raises(TunnelNotFound):
            await dp.create_session(session(2, 1))
        await dp.create_session(session(1, 1, ifname="pw1", mtu=1400))
        await dp.create_session(session(1, 2))
        assert dp.sessions[(1, 1)].mtu == 1400 and dp.sessions[(1, 1)].ifname == "pw1"
        await dp.modify_session(1, 1, send_seq=True, mtu=1300)
        assert ("modify_session", (1, 1, {"send_seq": True, "mtu": 1300})) in dp.calls
        await dp.attach_to_bridge(1, 1, "br0")
        await dp.set_session_up(1, 2, False)
        with pytest.raises(SessionNotFound):
            await dp.set_session_up(1, 3, True)
        await dp.delete_tunnel(1)
        assert dp.tunnels == {} and dp.sessions == {}
        with pytest.raises(SessionNotFound):
            await dp.delete_session(1, 2)
        assert [name for name, _ in dp.calls][:3] == [
            "create_tunnel",
            "create_tunnel",
            "create_session",
        ]

    run(scenario)


def test_history_is_bounded_and_counts_are_not() -> None:
    async def scenario() -> None:
        dp = AsyncNullDataPlane(calls_kept=3)
        await dp.start()
        for tid in range(1, 11):
            await dp.create_tunnel(tunnel(tid))
        assert len(dp.calls) == 3 and dp.counts["create_tunnel"] == 10
        assert [args.tunnel_id for _name, args in dp.calls] == [8, 9, 10]

    run(scenario)


def test_foreign_tunnel_ids_are_in_use() -> None:
    async def scenario() -> None:
        dp = AsyncNullDataPlane()
        await dp.start()
        dp.foreign_tunnel_ids.add(7)
        assert dp.tunnel_id_in_use(7) and not dp.tunnel_id_in_use(8)
        with pytest.raises(IdInUse):
            await dp.create_tunnel(tunnel(7))
        await dp.create_tunnel(tunnel(8))
        assert dp.tunnel_id_in_use(8) and 7 not in dp.tunnels

    run(scenario)


def test_cancelled_during_latency_has_no_effect() -> None:
    async def scenario() -> None:
        dp = AsyncNullDataPlane(latency=0.05)
        await dp.start()
        task = asyncio.ensure_future(dp.create_tunnel(tunnel(3)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)
        assert 3 not in dp.tunnels and dp.counts["create_tunnel"] == 0
        await dp.create_tunnel(tunnel(3))
        assert 3 in dp.tunnels

    run(scenario)


def test_ppp_socket_pair_closes_with_its_session() -> None:
    async def scenario() -> None:
        dp = AsyncNullDataPlane()
        await dp.start()
        managed = KernelTunnelSpec(tunnel_id=4, peer_tunnel_id=5, version=2, fd=0)
        await dp.create_tunnel(managed)
        await dp.create_session(session(4, 40))
        sock = dp.open_ppp_socket(managed, 40, 41)
        with sock:
            sock.send(b"lcp")
            await dp.delete_session(4, 40)
            with pytest.raises(OSError):  # the stand-in's other end is gone
                sock.send(b"lcp")

    run(scenario)
