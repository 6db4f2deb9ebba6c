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
    python benchmarks/bench_setup.py --metrics --repeat 5   # exporter off/on, interleaved

``--metrics`` measures what the daemons' Prometheus exporter costs the control plane:
runs alternate between an LNS without it and one with it (the exporter of
:mod:`l2tp.daemons.metrics_http` listening, its event tally subscribed to the
context, as ``--metrics`` sets them up in a daemon), and the medians and their
ratios are printed. After each burst with the exporter the parent scrapes it once
(outside the timed window) and checks that the ``l2tp_sessions`` gauges add up to
the session count; the scrape's time and size are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import statistics
import time
import tracemalloc
import urllib.request
from multiprocessing.connection import Connection
from typing import Any

from setup_lib import set_turn_budget

from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.protocol.events import Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.control import L2tpContext
from l2tp.runtime.gc_pacer import GcPacer


def vm_rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _exporter(ctx: L2tpContext) -> Any:
    """The exporter a daemon's ``--metrics 127.0.0.1:0`` starts, over the same
    ``l2tp ctl`` target (no control socket, no hooks)."""
    from l2tp.daemons.ctl_target import ContextTarget, DaemonInfo, ReloadResult
    from l2tp.daemons.metrics_http import MetricsExporter

    async def no_reload() -> ReloadResult:
        return ReloadResult(applied=False)

    info = DaemonInfo(name="bench-lns", config_file="", started_at=ctx.loop.time())
    target = ContextTarget(ctx, info, summary=lambda: "bench", reload=no_reload)
    return MetricsExporter(target, "127.0.0.1", 0, ctx=ctx)


def lns_main(
    conn: Connection, expected: int, trace: bool, metrics: bool = False, pace_gc: bool = False
) -> None:
    async def main() -> None:
        async with L2tpContext(dataplane=AsyncNullDataPlane()) as ctx:
            config = ListenerConfig(tunnel=TunnelConfig(role=Role.LNS, host_name="lns"))
            listener = await ctx.listen(("127.0.0.1", 0), config=config)
            exporter = _exporter(ctx) if metrics else None
            if exporter is not None:
                await exporter.start()
            gc.collect()
            set_turn_budget()
            pacer = GcPacer(ctx.loop) if pace_gc else None
            if pacer is not None:
                pacer.start()  # as the daemons do once started
            if trace:
                tracemalloc.start()
            rss0 = vm_rss_kib()
            cpu0 = time.process_time()
            conn.send((listener.address, exporter.address if exporter else None))
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
            while not conn.poll():  # serve scrapes until the parent is done
                await asyncio.sleep(0.01)
            conn.recv()
            if pacer is not None:
                pacer.stop()
            if exporter is not None:
                await exporter.close()

    asyncio.run(main())


async def lac_run(
    conn: Connection,
    address: Any,
    tunnels: int,
    per_tunnel: int,
    metrics_at: str | None = None,
    pace_gc: bool = False,
) -> tuple[float, dict[str, Any]]:
    async with L2tpContext() as ctx:
        config = TunnelConfig(role=Role.LAC, host_name="lac")
        handles = await asyncio.gather(
            *(ctx.open_tunnel(address, config=config) for _ in range(tunnels))
        )
        set_turn_budget()
        pacer = GcPacer(ctx.loop) if pace_gc else None
        if pacer is not None:
            pacer.start()
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
        if metrics_at is not None:  # while every session is still up
            lns |= await asyncio.to_thread(_scrape, metrics_at, tunnels * per_tunnel)
        await asyncio.gather(*(t.close(ack_timeout=1.0) for t in handles))
        if pacer is not None:
            pacer.stop()
        return elapsed, lns


def _scrape(address: str, total: int) -> dict[str, float]:
    """One scrape of the LNS's exporter: its time and size; checks that the session
    gauges (every state: the LNS may still be taking the last ICCNs) add up."""
    start = time.perf_counter()
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as response:
        body = response.read()
    seconds = time.perf_counter() - start
    sessions = sum(
        float(line.rsplit(b" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(b"l2tp_sessions{")
    )
    if sessions != total:
        raise RuntimeError(f"the exporter reports {sessions} sessions, not {total}")
    return {"scrape_ms": round(seconds * 1000, 1), "scrape_bytes": len(body)}


def run(
    tunnels: int,
    per_tunnel: int,
    *,
    trace: bool = False,
    metrics: bool = False,
    gc_pacer: bool = False,
) -> dict[str, Any]:
    """One run; ``gc_pacer``: both sides run the daemons' :class:`GcPacer`."""
    total = tunnels * per_tunnel
    ours, theirs = mp.Pipe()
    child = mp.get_context("fork").Process(
        target=lns_main, args=(theirs, total, trace, metrics, gc_pacer)
    )
    child.start()
    try:
        address, metrics_at = ours.recv()
        elapsed, lns = asyncio.run(
            lac_run(ours, address, tunnels, per_tunnel, metrics_at, gc_pacer)
        )
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
    if metrics_at is not None:
        result |= {"scrape_ms": lns["scrape_ms"], "scrape_bytes": lns["scrape_bytes"]}
    return result


COMPARED = ("sessions_per_second", "lac_cpu_us_per_session", "lns_cpu_us_per_session")


def compare(tunnels: int, per_tunnel: int, repeat: int, option: str) -> dict[str, Any]:
    """Runs without and with ``option`` (``metrics``: the LNS's exporter; ``gc_pacer``:
    the daemons' GcPacer on both sides), alternating so that a change in the shared
    machine's load hits both alike; medians of each and the with/without ratios."""
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for _ in range(repeat):
        runs["off"].append(run(tunnels, per_tunnel))
        runs["on"].append(run(tunnels, per_tunnel, **{option: True}))
    medians = {
        mode: {key: statistics.median(r[key] for r in rs) for key in COMPARED}
        for mode, rs in runs.items()
    }
    ratios = {key: round(medians["on"][key] / medians["off"][key], 3) for key in COMPARED}
    result: dict[str, Any] = {
        "tunnels": tunnels,
        "sessions": tunnels * per_tunnel,
        "repeat": repeat,
        f"without_{option}": medians["off"],
        f"with_{option}": medians["on"],
        "ratio_with_to_without": ratios,
        "runs": runs,
    }
    if option == "metrics":
        result["scrape"] = {
            k: statistics.median(r[k] for r in runs["on"]) for k in ("scrape_ms", "scrape_bytes")
        }
    return result


def compare_metrics(tunnels: int, per_tunnel: int, repeat: int) -> dict[str, Any]:
    return compare(tunnels, per_tunnel, repeat, "metrics")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="5 tunnels x 100 sessions")
    parser.add_argument("--tunnels", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=1000, help="per tunnel")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument(
        "--metrics", action="store_true", help="compare the LNS without and with its exporter"
    )
    parser.add_argument(
        "--gc-pacer", action="store_true", help="compare without and with the daemons' GcPacer"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="pairs of runs with --metrics or --gc-pacer"
    )
    args = parser.parse_args()
    if args.short:
        args.tunnels, args.sessions = 5, 100
    if args.metrics:
        print(json.dumps(compare_metrics(args.tunnels, args.sessions, args.repeat), indent=2))
        return
    if args.gc_pacer:
        print(json.dumps(compare(args.tunnels, args.sessions, args.repeat, "gc_pacer"), indent=2))
        return
    print(json.dumps(run(args.tunnels, args.sessions, trace=args.tracemalloc), indent=2))


if __name__ == "__main__":
    main()
