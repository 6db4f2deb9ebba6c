"""Quiescent tunnels over real UDP on 127.0.0.1 with the null data plane.

The same state machine as in the kernel tier, without a kernel: HELLOs keep a
live pair up, a silent peer is detected when a HELLO goes unanswered through every
retransmission, and a returning peer brings the sessions back. (How long detection
takes is the transport's business, tested under a fake clock in tests/unit.)
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

import pytest

from l2tp import config as cfg
from l2tp.daemons.quiescent import QuiescentTunnel
from l2tp.kernel.async_null import AsyncNullDataPlane
from tests.helpers import until

LO = ipaddress.ip_address("127.0.0.1")
HELLO = 0.2
"""hello_timeout of both tunnels."""


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
        hello_timeout=HELLO,
        retry_timeout=0.05,
        max_retries=3,
        sessions=(cfg.SessionConfig(name="s", pseudowire=cfg.Pseudowire.ETH, sid=tid, psid=ptid),),
    )


def _free_ports() -> tuple[int, int]:
    """Two ports, picked here, closed, then handed to the tunnels.

    Racy (another process may take one in between), but each side's static
    configuration names both ports before either binds: QuiescentTunnel would need to
    accept a bound socket (or learn its peer's port) for port 0 to work here.
    """
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = (socks[0].getsockname()[1], socks[1].getsockname()[1])
    for s in socks:
        s.close()
    return ports


@pytest.mark.loopback
def test_quiescent_pair_survives_idle_detects_loss_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pa, pb = _free_ports()
    caplog.set_level(logging.INFO, logger="l2tp.quiescent")

    def lost() -> list[str]:
        return [r.getMessage() for r in caplog.records if "peer lost" in r.getMessage()]

    async def scenario() -> None:
        dp_a, dp_b = AsyncNullDataPlane(), AsyncNullDataPlane()
        await dp_a.start()
        await dp_b.start()
        a = QuiescentTunnel(_tunnel(1, 2, pa, pb), dp_a)
        b = QuiescentTunnel(_tunnel(2, 1, pb, pa), dp_b)
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        ta = asyncio.create_task(a.run(stop_a))
        tb = asyncio.create_task(b.run(stop_b))
        await until(lambda: dp_a.sessions and dp_b.sessions, "both tunnels up")
        # An observation window, not a wait for something to happen: over several
        # HELLO intervals of silence a live pair must do nothing at all.
        await asyncio.sleep(7 * HELLO)
        assert a.generation == b.generation == 1 and dp_a.sessions and dp_b.sessions
        assert lost() == []
        stop_b.set()
        await tb
        await until(lambda: not dp_a.tunnels, "a to remove its tunnel")
        # Found by the HELLO going unanswered through every retransmission (max_retries
        # 3), not by any timing of ours.
        (why,) = lost()
        assert "tunnel t1: peer lost" in why and "after 3 retransmissions" in why, why
        assert not dp_a.sessions
        stop_b = asyncio.Event()
        b = QuiescentTunnel(_tunnel(2, 1, pb, pa), dp_b)
        tb = asyncio.create_task(b.run(stop_b))
        await until(lambda: a.generation == 2 and dp_a.sessions, "a to come back up")
        stop_a.set()
        stop_b.set()
        await asyncio.gather(ta, tb)
        assert not dp_a.tunnels and not dp_b.tunnels

    asyncio.run(asyncio.wait_for(scenario(), 30))
