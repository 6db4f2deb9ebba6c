"""Quiescent tunnels over real UDP on 127.0.0.1 with the null data plane.

The same state machine as in the kernel tier, without a kernel: HELLOs keep a
live pair up, a silent peer is detected within hello + retransmission time,
and a returning peer brings the sessions back.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

import pytest

from l2tp import config as cfg
from l2tp.daemons.quiescent import QuiescentTunnel
from l2tp.kernel.dataplane import NullDataPlane

LO = ipaddress.ip_address("127.0.0.1")


def _tunnel(tid: int, ptid: int, port: int, pport: int) -> cfg.TunnelConfig:
    return cfg.TunnelConfig(
        name=f"t{tid}",
        version=cfg.Version.L2TPV3,
        encap=cfg.Encap.UDP,
        mode=cfg.TunnelMode.QUIESCENT,
        local=cfg.Endpoint(address=LO, port=port),
        peer=cfg.Endpoint(address=LO, port=pport),
        tid=tid,
        ptid=ptid,
        hello_timeout=0.2,
        retry_timeout=0.05,
        max_retries=3,
        sessions=(cfg.SessionConfig(name="s", pseudowire=cfg.Pseudowire.ETH, sid=tid, psid=ptid),),
    )


async def _until(predicate: object, timeout: float) -> float:
    start = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def _free_ports() -> tuple[int, int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = (socks[0].getsockname()[1], socks[1].getsockname()[1])
    for s in socks:
        s.close()
    return ports


@pytest.mark.loopback
def test_quiescent_pair_survives_idle_detects_loss_and_recovers() -> None:
    pa, pb = _free_ports()

    async def scenario() -> None:
        dp_a, dp_b = NullDataPlane(), NullDataPlane()
        a = QuiescentTunnel(_tunnel(1, 2, pa, pb), dp_a)
        b = QuiescentTunnel(_tunnel(2, 1, pb, pa), dp_b)
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        ta = asyncio.create_task(a.run(stop_a))
        tb = asyncio.create_task(b.run(stop_b))
        await _until(lambda: dp_a.sessions and dp_b.sessions, 5)
        await asyncio.sleep(1.5)  # several HELLO intervals: both stay up
        assert a.generation == 1 and dp_a.sessions, "a live pair must stay up"
        stop_b.set()
        await tb
        # 0.2 s idle + 0.05+0.1+0.2+0.4 s retransmissions, plus scheduling slack.
        took = await _until(lambda: not dp_a.tunnels, 5)
        assert took < 2.0
        stop_b = asyncio.Event()
        b = QuiescentTunnel(_tunnel(2, 1, pb, pa), dp_b)
        tb = asyncio.create_task(b.run(stop_b))
        await _until(lambda: a.generation == 2 and dp_a.sessions, 10)
        stop_a.set()
        stop_b.set()
        await asyncio.gather(ta, tb)
        assert not dp_a.tunnels and not dp_b.tunnels

    asyncio.run(asyncio.wait_for(scenario(), 30))
