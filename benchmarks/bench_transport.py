"""Control-message throughput of a transport pair over loopback UDP.

Two :class:`~l2tp.runtime.channel.ControlChannel` objects on 127.0.0.1 move
``--count`` messages one way, directly and through the lossy relay of the test
suite, and report messages delivered per second (in order, exactly once: the
receiver checks). Usage::

    .venv/bin/python benchmarks/bench_transport.py            # full run, prints a table
    .venv/bin/python benchmarks/bench_transport.py --short    # a few hundred messages, for CI

The lossy scenarios use short retransmission timeouts (5 ms initial, 40 ms
cap, immediate acknowledgements) because with the RFC's 1 s the figure would
only measure the timer, and they move at most ``--lossy-count`` messages: under
random loss RFC 2661 Appendix A keeps the congestion window near one, so each
lost message or acknowledgement costs about one retransmission timeout.
``--short`` makes no timing claims; the test suite runs it to keep the script
working.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.loopback.relay

from tests.loopback.relay import LossyRelay  # noqa: E402

from l2tp.protocol.transport import (  # noqa: E402
    Event,
    MessageReceived,
    Transport,
    TransportConfig,
    TransportFailed,
)
from l2tp.runtime.channel import ControlChannel  # noqa: E402
from l2tp.runtime.datagram import open_udp_socket  # noqa: E402
from l2tp.runtime.loop import run, uvloop_available  # noqa: E402


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    window: int
    loss: float = 0.0
    reorder: float = 0.0
    duplicate: float = 0.0
    relay: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    scenario: Scenario
    messages: int
    seconds: float
    retransmitted: int
    zlb_sent: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("inf")


SCENARIOS = [
    Scenario("direct, RWS 4", window=4),
    Scenario("direct, RWS 32", window=32),
    Scenario("relay, no loss, RWS 32", window=32, relay=True),
    Scenario("relay, 1% loss, RWS 32", window=32, loss=0.01, relay=True),
    Scenario("relay, 10% loss+reorder+dup, RWS 32", 32, 0.10, 0.05, 0.02, relay=True),
    Scenario("relay, 30% loss+reorder+dup, RWS 32", 32, 0.30, 0.10, 0.05, relay=True),
]


async def transfer(
    scenario: Scenario, count: int, *, seed: int = 1, limit: float = 120.0
) -> Result:
    """Send ``count`` messages from a to b and wait until b delivered them all."""
    lossy = scenario.relay and scenario.loss > 0
    config = TransportConfig(
        receive_window=scenario.window,
        peer_window=scenario.window,
        initial_timeout=0.005 if lossy else 1.0,
        max_timeout=0.04 if lossy else 8.0,
        max_retries=80 if lossy else None,
        ack_delay=0.0 if lossy else 0.002,
    )
    sock_a = open_udp_socket()
    sock_b = open_udp_socket()
    addr_a = sock_a.getsockname()
    addr_b = sock_b.getsockname()
    relay: LossyRelay | None = None
    if scenario.relay:
        relay = LossyRelay(
            addr_a,
            addr_b,
            loss=scenario.loss,
            reorder=scenario.reorder,
            duplicate=scenario.duplicate,
            seed=seed,
        )
        relay.start()
        peer_of_a: Any = relay.addr_for_a
        peer_of_b: Any = relay.addr_for_b
    else:
        peer_of_a, peer_of_b = addr_b, addr_a
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    received = 0

    def on_b(event: Event) -> None:
        nonlocal received
        if isinstance(event, MessageReceived):
            if int.from_bytes(event.body, "big") != received:
                raise AssertionError(f"out of order: {event.body!r} at {received}")
            received += 1
            if received == count and not done.done():
                done.set_result(None)
        elif isinstance(event, TransportFailed) and not done.done():
            done.set_exception(RuntimeError(f"b failed: {event.reason}"))

    def on_a(event: Event) -> None:
        if isinstance(event, TransportFailed) and not done.done():
            done.set_exception(RuntimeError(f"a failed: {event.reason}"))

    a = ControlChannel(
        Transport(version=2, local_id=1, peer_id=2, config=config), sock_a, peer_of_a, on_event=on_a
    )
    b = ControlChannel(
        Transport(version=2, local_id=2, peer_id=1, config=config), sock_b, peer_of_b, on_event=on_b
    )
    a.start()
    b.start()
    try:
        start = time.perf_counter()
        for i in range(count):
            a.transport.send(i.to_bytes(4, "big"), now=loop.time())
        a.service()
        await asyncio.wait_for(done, limit)
        seconds = time.perf_counter() - start
    finally:
        a.close()
        b.close()
        if relay is not None:
            relay.close()
    return Result(
        scenario,
        count,
        seconds,
        a.transport.counters.retransmitted,
        b.transport.counters.zlb_sent,
    )


async def bench(count: int, lossy_count: int, scenarios: list[Scenario]) -> list[Result]:
    return [
        await transfer(scenario, lossy_count if scenario.loss else count) for scenario in scenarios
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=20_000, help="messages per scenario")
    parser.add_argument("--lossy-count", type=int, default=2_000, help="messages with loss")
    parser.add_argument("--short", action="store_true", help="quick smoke run, no timing claims")
    parser.add_argument("--no-uvloop", action="store_true", help="use the stdlib event loop")
    args = parser.parse_args(argv)
    count = 300 if args.short else args.count
    lossy_count = 100 if args.short else args.lossy_count
    results = run(bench(count, lossy_count, SCENARIOS), prefer_uvloop=not args.no_uvloop)
    loop_name = "uvloop" if uvloop_available() and not args.no_uvloop else "asyncio"
    print(f"control-message transport over 127.0.0.1, one way ({loop_name} loop)")
    print(f"{'scenario':40} {'msgs':>6} {'msg/s':>8} {'seconds':>8} {'retrans':>8} {'ZLBs':>6}")
    for r in results:
        print(
            f"{r.scenario.name:40} {r.messages:6d} {r.rate:8.0f} {r.seconds:8.3f}"
            f" {r.retransmitted:8d} {r.zlb_sent:6d}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
