"""Create then delete N Ethernet sessions: our netlink API versus ``ip -batch``.

Both run in the same (fresh) network namespace, one after the other, on one
unmanaged L2TPv3 tunnel each. The API uses :meth:`L2tpNetlink.create_sessions`
/ :meth:`delete_sessions` (requests batched into one ``send()`` per 128);
iproute2 gets one ``ip -batch`` process for the creates and one for the
deletes (its process start is counted: it is part of what a script pays).
The printed ratio is API time / iproute2 time; the goal is <= 1.2.

    python benchmarks/bench_kernel_sessions.py [-n 5000] [--short]

Needs root and a kernel with L2TP (run it in the test VM: tools/vm/run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from ipaddress import ip_address

from l2tp.kernel import L2tpNetlink, SessionConfig, TunnelConfig

LO = ip_address("127.0.0.1")


def _ip_batch(netns: str, lines: list[str]) -> None:
    subprocess.run(
        ["ip", "-n", netns, "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True
    )


def _wait_empty(nl: L2tpNetlink, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while nl.dump_tunnels() and time.monotonic() < deadline:
        time.sleep(0.05)


def run(n: int) -> dict[str, float]:
    """Time both tools for ``n`` sessions; return the timings and the ratio."""
    netns = f"l2bench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
    try:
        with L2tpNetlink(netns=netns) as nl:
            results: dict[str, float] = {}
            for tunnel_id, port in ((1, 20001), (2, 20002)):
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
            nl.delete_tunnel(1)
            nl.delete_tunnel(2)
            _wait_empty(nl)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    api = results["api_create"] + results["api_delete"]
    ip = results["ip_create"] + results["ip_delete"]
    results["ratio"] = api / ip
    return results


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="sessions to create and delete")
    parser.add_argument("--short", action="store_true", help="quick run (N=50) for the tests")
    args = parser.parse_args(argv)
    n = 50 if args.short else args.n
    r = run(n)
    print(f"N={n} Ethernet sessions")
    print(f"  API      create {r['api_create']:8.3f} s  delete {r['api_delete']:8.3f} s")
    print(f"  ip-batch create {r['ip_create']:8.3f} s  delete {r['ip_delete']:8.3f} s")
    print(f"  ratio API/ip-batch = {r['ratio']:.2f}x (goal <= 1.2x)")
    return r


if __name__ == "__main__":
    main(sys.argv[1:])
