"""Session set-up rate LAC -> LNS over loopback, and LNS memory per established session.

The LNS runs in a child process (its own core), the LAC in this one; both use
:class:`~l2tp.runtime.control.L2tpContext` with the null data plane and no
session backend. The rate counts sessions from the first ICRQ to the last
session the LAC sees established (ICRP received, ICCN sent); the LNS memory is
the ``VmRSS`` delta of the child between before the first tunnel and once it
has every session established, divided by the session count (plus a
``tracemalloc`` figure for Python objects when ``--tracemalloc`` is given).

    python benchmarks/bench_setup.py                 # 10 tunnels x 1,000 sessions
    python benchmarks/bench_setup.py --short         # 5 x 100, for the test suite
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import time
import tracemalloc
from multiprocessing.connection import Connection
from typing import Any

from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.protocol.events import Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.control import L2tpContext


def vm_rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def lns_main(conn: Connection, expected: int, trace: bool) -> None:
    async def main() -> None:
        async with L2tpContext(dataplane=AsyncNullDataPlane()) as ctx:
            config = ListenerConfig(tunnel=TunnelConfig(role=Role.LNS, host_name="lns"))
            listener = await ctx.listen(("127.0.0.1", 0), config=config)
            gc.collect()
            if trace:
                tracemalloc.start()
            rss0 = vm_rss_kib()
            cpu0 = time.process_time()
            conn.send(listener.address)
            while listener.session_count < expected:
                await asyncio.sleep(0.01)
            cpu = time.process_time() - cpu0
            await asyncio.sleep(0.2)  # let the last ICCNs' acknowledgements go out
            gc.collect()
            traced = tracemalloc.get_traced_memory()[0] if trace else 0
            conn.send(
                {
                    "sessions": listener.session_count,
                    "rss_delta_kib": vm_rss_kib() - rss0,
                    "traced_bytes": traced,
                    "cpu_seconds": cpu,
                }
            )
            conn.recv()

    asyncio.run(main())


async def lac_run(
    conn: Connection, address: Any, tunnels: int, per_tunnel: int
) -> tuple[float, dict[str, Any]]:
    async with L2tpContext() as ctx:
        config = TunnelConfig(role=Role.LAC, host_name="lac")
        handles = await asyncio.gather(
            *(ctx.open_tunnel(address, config=config) for _ in range(tunnels))
        )
        start = time.perf_counter()
        cpu0 = time.process_time()
        calls = [t.place_call() for t in handles for _ in range(per_tunnel)]
        await asyncio.gather(*(c.wait_established() for c in calls))
        elapsed = time.perf_counter() - start
        lac_cpu = time.process_time() - cpu0
        for _ in range(3000):  # the LNS reports once it has every session
            if conn.poll():
                break
            await asyncio.sleep(0.01)
        else:
            raise RuntimeError("the LNS did not report")
        lns: dict[str, Any] = conn.recv()
        lns["lac_cpu_seconds"] = lac_cpu
        await asyncio.gather(*(t.close(ack_timeout=1.0) for t in handles))
        return elapsed, lns


def run(tunnels: int, per_tunnel: int, *, trace: bool = False) -> dict[str, Any]:
    total = tunnels * per_tunnel
    ours, theirs = mp.Pipe()
    child = mp.get_context("fork").Process(target=lns_main, args=(theirs, total, trace))
    child.start()
    try:
        address = ours.recv()
        elapsed, lns = asyncio.run(lac_run(ours, address, tunnels, per_tunnel))
        ours.send("done")
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    result = {
        "tunnels": tunnels,
        "sessions": total,
        "seconds": round(elapsed, 3),
        "sessions_per_second": round(total / elapsed),
        "lns_sessions": lns["sessions"],
        "lns_rss_bytes_per_session": round(lns["rss_delta_kib"] * 1024 / total),
        # CPU time per established session on each side: steadier than the rate
        # on a shared machine, and the figure to cut.
        "lac_cpu_us_per_session": round(lns["lac_cpu_seconds"] * 1e6 / total, 1),
        "lns_cpu_us_per_session": round(lns["cpu_seconds"] * 1e6 / total, 1),
    }
    if trace:
        result["lns_traced_bytes_per_session"] = round(lns["traced_bytes"] / total)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="5 tunnels x 100 sessions")
    parser.add_argument("--tunnels", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=1000, help="per tunnel")
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    if args.short:
        args.tunnels, args.sessions = 5, 100
    print(json.dumps(run(args.tunnels, args.sessions, trace=args.tracemalloc), indent=2))


if __name__ == "__main__":
    main()
