"""Create then delete N Ethernet sessions: our netlink APIs versus ``ip -batch``.

All three run in the same (fresh) network namespace, one after the other, on
one unmanaged L2TPv3 tunnel each:

- the blocking API, :meth:`L2tpNetlink.create_sessions` / :meth:`delete_sessions`
  (requests batched into one ``send()`` per 128);
- the asyncio data plane, :class:`AsyncLinuxDataPlane`, called once per session
  from N concurrent tasks, as a control plane does (the pipeline batches and
  keeps up to 64 requests in flight); a probe task records the longest
  event-loop stall meanwhile (how much later than its 1 ms tick it woke);
- iproute2: one ``ip -batch`` process for the creates and one for the deletes
  (its process start is counted: it is part of what a script pays).

The printed ratios are time / iproute2's time (goal <= 1.2) and async / sync.

    python benchmarks/bench_kernel_sessions.py [-n 5000] [--short]

Needs root and a kernel with L2TP (run it in the test VM: tools/vm/run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from ipaddress import ip_address

from setup_lib import StallProbe

from l2tp.kernel import AsyncLinuxDataPlane, L2tpNetlink, SessionConfig, TunnelConfig

LO = ip_address("127.0.0.1")


def _ip_batch(netns: str, lines: list[str]) -> None:
    subprocess.run(
        ["ip", "-n", netns, "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True
    )


def _wait_empty(nl: L2tpNetlink, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while nl.dump_tunnels() and time.monotonic() < deadline:
        time.sleep(0.05)


async def _async_run(netns: str, tunnel_id: int, n: int) -> dict[str, float]:
    """Create then delete ``n`` sessions through the async data plane, one task each."""
    results: dict[str, float] = {}
    dp = AsyncLinuxDataPlane(netns=netns)
    await dp.start()
    try:
        for phase in ("create", "delete"):
            probe = StallProbe(tick=0.001)
            probe.start()
            await asyncio.sleep(0.01)
            start = time.perf_counter()
            if phase == "create":
                await asyncio.gather(
                    *(
                        dp.create_session(
                            SessionConfig(tunnel_id=tunnel_id, session_id=i, peer_session_id=i)
                        )
                        for i in range(1, n + 1)
                    )
                )
                results["async_sends"] = dp.netlink.channel.send_calls
            else:
                await asyncio.gather(*(dp.delete_session(tunnel_id, i) for i in range(1, n + 1)))
            results[f"async_{phase}"] = time.perf_counter() - start
            results[f"async_{phase}_stall"] = probe.stop()
            if phase == "create":
                assert len(await dp.netlink.dump_sessions(tunnel_id)) == n
    finally:
        await dp.close()
    return results


def run(n: int) -> dict[str, float]:
    """Time both tools for ``n`` sessions; return the timings and the ratio."""
    netns = f"l2bench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
    try:
        with L2tpNetlink(netns=netns) as nl:
            results: dict[str, float] = {}
            for tunnel_id, port in ((1, 20001), (2, 20002), (3, 20003)):
                nl.create_tunnel(
                    TunnelConfig(
                        tunnel_id=tunnel_id,
                        peer_tunnel_id=tunnel_id,
                        local=LO,
                        peer=LO,
                        local_port=port,
                        peer_port=port + 100,
                    )
                )
            ids = range(1, n + 1)

            start = time.perf_counter()
            nl.create_sessions(
                SessionConfig(tunnel_id=1, session_id=i, peer_session_id=i) for i in ids
            )
            results["api_create"] = time.perf_counter() - start
            assert len(nl.dump_sessions(1)) == n
            start = time.perf_counter()
            nl.delete_sessions((1, i) for i in ids)
            results["api_delete"] = time.perf_counter() - start

            results.update(asyncio.run(_async_run(netns, 3, n)))
            assert not nl.dump_sessions(3)

            start = time.perf_counter()
            _ip_batch(
                netns,
                [f"l2tp add session tunnel_id 2 session_id {i} peer_session_id {i}" for i in ids],
            )
            results["ip_create"] = time.perf_counter() - start
            assert len(nl.dump_sessions(2)) == n
            start = time.perf_counter()
            _ip_batch(netns, [f"l2tp del session tunnel_id 2 session_id {i}" for i in ids])
            results["ip_delete"] = time.perf_counter() - start

            assert not nl.dump_sessions()
            for tunnel_id in (1, 2, 3):
                nl.delete_tunnel(tunnel_id)
            _wait_empty(nl)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    api = results["api_create"] + results["api_delete"]
    aio = results["async_create"] + results["async_delete"]
    ip = results["ip_create"] + results["ip_delete"]
    results["ratio"] = api / ip
    results["async_ratio"] = aio / ip
    results["async_vs_sync"] = aio / api
    results["async_vs_sync_create"] = results["async_create"] / results["api_create"]
    return results


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="sessions to create and delete")
    parser.add_argument("--short", action="store_true", help="quick run (N=50) for the tests")
    args = parser.parse_args(argv)
    n = 50 if args.short else args.n
    r = run(n)
    print(f"N={n} Ethernet sessions")
    print(f"  sync API  create {r['api_create']:8.3f} s  delete {r['api_delete']:8.3f} s")
    print(
        f"  async DP  create {r['async_create']:8.3f} s  delete {r['async_delete']:8.3f} s"
        f"  ({r['async_sends']:.0f} send() calls for the creates; longest loop stall"
        f" {r['async_create_stall'] * 1000:.0f} ms creating (starting {n} tasks at once"
        f" included), {r['async_delete_stall'] * 1000:.0f} ms deleting)"
    )
    print(f"  ip-batch  create {r['ip_create']:8.3f} s  delete {r['ip_delete']:8.3f} s")
    print(f"  ratio sync API/ip-batch = {r['ratio']:.2f}x (goal <= 1.2x)")
    print(f"  ratio async DP/ip-batch = {r['async_ratio']:.2f}x")
    print(
        f"  ratio async/sync = {r['async_vs_sync']:.2f}x"
        f" (create alone {r['async_vs_sync_create']:.2f}x)"
    )
    return r


if __name__ == "__main__":
    main(sys.argv[1:])
