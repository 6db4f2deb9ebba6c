"""Building blocks of the control-plane sections of ``benchmarks/run.py``.

Everything here uses the public runtime API only
(:class:`~l2tp.runtime.control.L2tpContext`, ``listen``, ``open_tunnel``,
:meth:`~l2tp.runtime.handles.TunnelHandle.place_call`,
:meth:`~l2tp.runtime.handles.SessionHandle.wait_established`) with the null
data plane and no session backend, LAC -> LNS over 127.0.0.1.

The LNS always runs in a child process of its own (:class:`LnsProcess`) so its
CPU time and ``VmRSS`` are its alone; it answers commands over a pipe
(``mark`` a baseline, report ``stats`` since it, ``stop``). The LAC runs in the
calling process (:func:`setup_run`, :func:`idle_run`) or, for the reconnect
storm, in children that can be killed (:func:`storm_run`). Children are
*spawned* (not forked): the parent has run event loops and resolver threads.

Figures are what one run measured; the caller takes medians over repeats.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import multiprocessing as mp
import os
import platform
import resource
import signal
import statistics
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Self

try:
    from l2tp.kernel.async_null import AsyncNullDataPlane
except ImportError:  # a tree from before issue 14 (blocking data plane): before/after runs
    from l2tp.kernel.dataplane import NullDataPlane as AsyncNullDataPlane  # type: ignore[assignment]
from l2tp.protocol.events import Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.control import L2tpContext, Listener
from l2tp.runtime.datagram import ReadScheduler
from l2tp.runtime.handles import TunnelFailed, TunnelHandle
from l2tp.runtime.loop import run as run_loop
from l2tp.runtime.loop import uvloop_available
from l2tp.runtime.session_handle import SessionHandle

Address = tuple[str, int]
_SPAWN = mp.get_context("spawn")


def vm_rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one (each tunnel owns a socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine() -> dict[str, Any]:
    """What every benchmark's JSON records about the machine it ran on."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "event_loop": "uvloop" if uvloop_available() else "asyncio",
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def median_figure(values: list[Any]) -> Any:
    """The median of numbers, rounded to 3 places; the median of ints that is whole stays
    an int (an even count of equal ints)."""
    m = statistics.median(values)
    if isinstance(m, float) and all(isinstance(v, int) for v in values) and m.is_integer():
        m = int(m)
    return round(m, 3) if isinstance(m, float) else m


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric figure over ``runs``; other values from the first run."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        values = [r[key] for r in runs]
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and all(isinstance(v, int | float) for v in values):
            out[key] = median_figure(values)
        else:
            out[key] = value
    return out


def tunnel_config(role: Role, hello_interval: float | None) -> TunnelConfig:
    name = "lac" if role is Role.LAC else "lns"
    return TunnelConfig(
        role=role,
        host_name=name,
        transport=TransportConfig(hello_interval=hello_interval),
    )


# ---------------------------------------------------------------- the LNS


def _lns_stats(ctx: L2tpContext, listener: Listener, rss0: int, cpu0: float) -> dict[str, Any]:
    established = sum(
        1 for th in listener.tunnels.values() for s in th.sessions.values() if s.established
    )
    return {
        "tunnels": len(listener.tunnels),
        "sessions": listener.session_count,
        "established_sessions": established,
        "rss_kib": vm_rss_kib(),
        "rss_mark_kib": rss0,
        "cpu_seconds": time.process_time() - cpu0,
        "datagrams_in": ctx.counters.datagrams_in,
        "datagrams_out": ctx.counters.datagrams_out,
    }


def lns_main(conn: Connection, hello_interval: float | None, max_tunnels: int) -> None:
    """Child process: an LNS on 127.0.0.1 serving commands from ``conn``."""
    raise_fd_limit()

    async def main() -> None:
        async with L2tpContext(dataplane=AsyncNullDataPlane()) as ctx:
            config = ListenerConfig(
                tunnel=tunnel_config(Role.LNS, hello_interval), max_tunnels=max_tunnels
            )
            listener = await ctx.listen(("127.0.0.1", 0), config=config)
            loop = asyncio.get_running_loop()
            stop = loop.create_future()
            mark = [vm_rss_kib(), time.process_time()]

            def on_command() -> None:
                while conn.poll():
                    cmd = conn.recv()
                    if cmd == "mark":
                        gc.collect()
                        mark[:] = [vm_rss_kib(), time.process_time()]
                        conn.send("ok")
                    elif cmd == "stats":
                        gc.collect()
                        conn.send(_lns_stats(ctx, listener, int(mark[0]), mark[1]))
                    elif cmd == "stop" and not stop.done():
                        stop.set_result(None)

            loop.add_reader(conn.fileno(), on_command)
            conn.send(listener.address)
            await stop
            loop.remove_reader(conn.fileno())
            await ctx.close(ack_timeout=0.5)
        conn.send("stopped")

    run_loop(main())


class ChildProcess:
    """A spawned child that starts an endpoint, sends its address, then answers commands
    over a pipe; use as a context manager. ``what`` names it in errors."""

    def __init__(self, target: Any, args: tuple[Any, ...], what: str) -> None:
        self.what = what
        self.conn, theirs = _SPAWN.Pipe()
        self.proc = _SPAWN.Process(target=target, args=(theirs, *args), daemon=True)
        self.proc.start()
        theirs.close()
        if not self.conn.poll(60):
            raise RuntimeError(f"the {what} did not start")
        host, port = self.conn.recv()
        self.address: Address = (str(host), int(port))

    def call(self, cmd: str, timeout: float = 60.0) -> Any:
        self.conn.send(cmd)
        if not self.conn.poll(timeout):
            raise RuntimeError(f"the {self.what} did not answer {cmd!r}")
        return self.conn.recv()

    def stop(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send("stop")
                self.conn.poll(10)
            except (OSError, EOFError):
                pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class LnsProcess(ChildProcess):
    """An LNS child process (see :func:`lns_main`); use as a context manager."""

    def __init__(self, *, hello_interval: float | None = 60.0, max_tunnels: int = 4096) -> None:
        super().__init__(lns_main, (hello_interval, max_tunnels), "LNS")

    def mark(self) -> None:
        self.call("mark")

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.call("stats")
        return stats


# ------------------------------------------------------------ the LAC side


async def open_tunnels(
    ctx: L2tpContext, address: Address, count: int, config: TunnelConfig, batch: int = 200
) -> tuple[list[TunnelHandle], int]:
    """Open ``count`` tunnels, ``batch`` at a time; returns (the tunnels up, failures)."""
    handles: list[TunnelHandle] = []
    failed = 0
    for start in range(0, count, batch):
        n = min(batch, count - start)
        results = await asyncio.gather(
            *(ctx.open_tunnel(address, config=config) for _ in range(n)), return_exceptions=True
        )
        for r in results:
            if isinstance(r, TunnelHandle):
                handles.append(r)
            elif isinstance(r, TunnelFailed):
                failed += 1
            else:
                raise r
    return handles, failed


PLACE_SLICE = 0.005
"""With ``pace``: seconds of placing calls per turn of the loop at most."""


async def place_sessions(
    tunnels: list[TunnelHandle], per_tunnel: int, *, pace: int | None = None
) -> tuple[list[float], int]:
    """Place ``per_tunnel`` calls on every tunnel; per-session latencies (s), failures.

    All at once by default; with ``pace``, at most that many per event-loop turn and
    at most :data:`PLACE_SLICE` seconds of placing (round robin over the tunnels), as
    a LAC does when calls arrive over time: placing thousands in one turn would
    itself stall the placing loop for the whole burst.
    """

    async def one(th: TunnelHandle) -> float | None:
        t0 = time.perf_counter()
        try:
            # A tunnel that closed meanwhile refuses new calls: count it as a failure.
            handle = th.place_call()
            await handle.wait_established()
        except Exception:
            return None
        return time.perf_counter() - t0

    async def wait(handle: SessionHandle, t0: float) -> float | None:
        try:
            await handle.wait_established()
        except Exception:
            return None
        return time.perf_counter() - t0

    if pace is None:
        results = await asyncio.gather(*(one(th) for th in tunnels for _ in range(per_tunnel)))
    else:
        # The call is placed here, in this task, so that the time it takes counts
        # against the slice (a task per call would place them all in its first step,
        # one turn later, unbounded).
        waits: list[asyncio.Future[float | None]] = []
        failed_now = 0
        placed = 0
        clock = time.perf_counter
        until = clock() + PLACE_SLICE
        for _ in range(per_tunnel):
            for th in tunnels:
                t0 = clock()
                try:
                    handle = th.place_call()
                except Exception:
                    failed_now += 1
                else:
                    waits.append(asyncio.ensure_future(wait(handle, t0)))
                placed += 1
                if placed % pace == 0 or clock() >= until:
                    await asyncio.sleep(0)
                    until = clock() + PLACE_SLICE
        results = [*await asyncio.gather(*waits), *([None] * failed_now)]
    latencies = [r for r in results if r is not None]
    return latencies, len(results) - len(latencies)


def set_turn_budget() -> None:
    """``L2TP_BENCH_TURN_BUDGET_MS``: the running loop's :class:`ReadScheduler` budget
    per turn (an A/B knob for stall and rate figures; default: the runtime's own)."""
    budget = os.environ.get("L2TP_BENCH_TURN_BUDGET_MS")
    if budget:
        ReadScheduler.of(asyncio.get_running_loop()).turn_budget = float(budget) / 1e3


class StallProbe:
    """The longest event-loop stall while it runs: a task asking to wake every ``tick``
    seconds; a stall is how much later than asked it woke (the gap minus the tick).

    With ``sample_after`` set, every loop callback is timed and a stall over
    ``report_after`` (default 100 ms) is summarised by the callbacks it ran
    (:meth:`worst_stalls`); with ``sample_stacks`` too, a thread samples the loop
    thread's stack every ~5 ms while the loop has not woken for longer than
    ``sample_after`` (:meth:`stall_stacks`). The samples are taken only where the
    loop thread lets go of the GIL (system calls), and the sampling thread competes
    for the GIL: it lengthens the stalls it measures (by ~2x in the emulated VM), so
    the stall figures of such a run are not the figures.
    """

    def __init__(
        self,
        tick: float = 0.005,
        sample_after: float | None = None,
        sample_stacks: bool = False,
        report_after: float = 0.1,
    ) -> None:
        self.tick = tick
        self.report_after = report_after
        self.worst = 0.0
        self.sample_after = sample_after
        self.sample_stacks = sample_stacks
        self.samples: collections.Counter[tuple[str, ...]] = collections.Counter()
        self._recent: collections.deque[tuple[float, float, float, object]] = collections.deque(
            maxlen=20000
        )
        self.stalls: list[dict[str, Any]] = []
        self._last = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        if self.sample_after is not None:
            self._time_callbacks()
        if self.sample_after is not None and self.sample_stacks:
            loop_thread = threading.get_ident()
            self._thread = threading.Thread(
                target=self._sample, args=(loop_thread, self.sample_after), daemon=True
            )
            self._thread.start()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        woke = time.perf_counter()
        while True:
            await asyncio.sleep(self.tick)
            now = loop.time()
            self._last = time.monotonic()
            stall = now - last - self.tick
            self.worst = max(self.worst, stall)
            if stall > self.report_after and self.sample_after is not None:
                self._stalled(woke, stall)
            woke = time.perf_counter()
            last = now

    def _sample(self, loop_thread: int, after: float) -> None:
        while not self._stop.wait(0.005):
            if time.monotonic() - self._last <= after:
                continue
            frame = sys._current_frames().get(loop_thread)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)[-14:]
            self.samples[tuple(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in stack)] += 1

    def _time_callbacks(self) -> None:
        """Time every callback the loop runs (asyncio's ``Handle._run``), wall and thread
        CPU time: unlike the stack samples (taken only where the loop thread lets go of
        the GIL), this says which callbacks a stalled turn was made of and whether the
        thread computed or waited (the GIL, a blocking system call) meanwhile."""
        recent = self._recent
        original = asyncio.events.Handle._run
        clock = time.perf_counter
        cpu = time.thread_time

        def timed(handle: asyncio.events.Handle) -> None:
            start = clock()
            cpu0 = cpu()
            original(handle)
            recent.append((start, clock() - start, cpu() - cpu0, handle))

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]

    def _stalled(self, since: float, gap: float) -> None:
        """Summarise the callbacks run since ``since`` (perf_counter), a stalled turn."""
        by_name: dict[str, list[float]] = {}
        wall = busy = 0.0
        for start, took, cpu, handle in self._recent:
            if start < since:
                continue
            callback = getattr(handle, "_callback", None)
            name = getattr(callback, "__qualname__", None) or type(callback).__name__
            entry = by_name.setdefault(name, [0, 0.0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += took
            entry[2] += cpu
            entry[3] = max(entry[3], took)
            wall += took
            busy += cpu
        self.stalls.append(
            {
                "gap_ms": round(gap * 1e3, 1),
                "in_callbacks_ms": round(wall * 1e3, 1),
                "thread_cpu_ms": round(busy * 1e3, 1),
                "callbacks": {
                    name: f"{int(n)} calls, {w * 1e3:.0f} ms wall, {c * 1e3:.0f} ms cpu, "
                    f"max {m * 1e3:.0f} ms"
                    for name, (n, w, c, m) in sorted(by_name.items(), key=lambda kv: -kv[1][1])
                },
            }
        )

    def worst_stalls(self, top: int = 4) -> list[dict[str, Any]]:
        """The longest stalled turns (> ``report_after``) and the callbacks they ran."""
        return sorted(self.stalls, key=lambda s: -float(s["gap_ms"]))[:top]

    def stall_stacks(self, top: int = 8) -> list[dict[str, Any]]:
        """The loop thread's most sampled stacks during stalls, innermost frame last."""
        return [{"samples": n, "stack": list(stack)} for stack, n in self.samples.most_common(top)]

    def stop(self) -> float:
        """Stop probing; the longest stall seen (s)."""
        if self._task is not None:
            self._task.cancel()
        self._stop.set()
        return self.worst


def _latency_figures(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"latency_median_ms": 0.0, "latency_p99_ms": 0.0}
    return {
        "latency_median_ms": round(statistics.median(latencies) * 1e3, 2),
        "latency_p99_ms": round(percentile(latencies, 99) * 1e3, 2),
    }


async def _setup_lac(lns: LnsProcess, tunnels: int, per_tunnel: int, probes: int) -> dict[str, Any]:
    async with L2tpContext() as ctx:
        config = tunnel_config(Role.LAC, 60.0)
        handles, failed_tunnels = await open_tunnels(ctx, lns.address, tunnels, config)
        lns.mark()
        start = time.perf_counter()
        cpu0 = time.process_time()
        latencies, failed = await place_sessions(handles, per_tunnel)
        elapsed = time.perf_counter() - start
        lac_cpu = time.process_time() - cpu0
        # The LAC is done once it has sent the last ICCN; the LNS may still be
        # working through a backlog. Its figures count until it has them all.
        lns_stats = lns.stats()
        deadline = time.perf_counter() + 60.0
        total = len(handles) * per_tunnel
        while lns_stats["established_sessions"] < total and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            lns_stats = lns.stats()
        lns_elapsed = time.perf_counter() - start
        # Unloaded latency: one call at a time on an otherwise idle tunnel.
        unloaded: list[float] = []
        for _ in range(probes):
            lat, _failed = await place_sessions(handles[:1], 1)
            unloaded.extend(lat)
        await asyncio.gather(*(t.close(ack_timeout=1.0) for t in handles))
    rss_delta = lns_stats["rss_kib"] - lns_stats["rss_mark_kib"]
    result: dict[str, Any] = {
        "tunnels": tunnels,
        "sessions": total,
        "failed_tunnels": failed_tunnels,
        "failed_sessions": failed,
        "lns_established_sessions": lns_stats["established_sessions"],
        "seconds": round(elapsed, 3),
        "sessions_per_second": round(total / elapsed),
        "lns_all_established_s": round(lns_elapsed, 3),
        **_latency_figures(latencies),
        "lns_rss_bytes_per_session": round(rss_delta * 1024 / total),
        "lac_cpu_us_per_session": round(lac_cpu * 1e6 / total, 1),
        "lns_cpu_us_per_session": round(lns_stats["cpu_seconds"] * 1e6 / total, 1),
    }
    u = _latency_figures(unloaded)
    result["unloaded_probes"] = len(unloaded)
    result["unloaded_latency_median_ms"] = u["latency_median_ms"]
    result["unloaded_latency_p99_ms"] = u["latency_p99_ms"]
    return result


def setup_run(tunnels: int, sessions: int, *, probes: int = 100) -> dict[str, Any]:
    """``sessions`` calls spread over ``tunnels`` tunnels, all placed at once (a burst).

    The rate counts until the LAC has every session established (ICRP in, ICCN
    out); ``lns_all_established_s`` until the LNS has processed every ICCN, and
    the LNS CPU figure covers that whole span (polling included). Latency is per
    session from ``place_call`` to ``wait_established`` under that burst;
    ``unloaded_latency_*`` are ``probes`` single calls made one at a time
    afterwards. LNS RSS per session is the child's ``VmRSS`` growth from before
    the first ICRQ to every session established, divided by the session count.
    """
    raise_fd_limit()
    per_tunnel = max(1, sessions // tunnels)
    with LnsProcess(max_tunnels=max(1024, tunnels + 16)) as lns:
        return run_loop(_setup_lac(lns, tunnels, per_tunnel, probes))


# ---------------------------------------------------------------- idle cost


async def _idle_lac(
    lns: LnsProcess, tunnels: int, per_tunnel: int, hello: float, duration: float
) -> dict[str, Any]:
    async with L2tpContext() as ctx:
        config = tunnel_config(Role.LAC, hello)
        handles, failed_tunnels = await open_tunnels(ctx, lns.address, tunnels, config)
        _lat, failed = await place_sessions(handles, per_tunnel)
        await asyncio.sleep(min(1.0, hello))  # the last acknowledgements go out
        lns.mark()
        before = lns.stats()
        lac_cpu0 = time.process_time()
        await asyncio.sleep(duration)
        lac_cpu = time.process_time() - lac_cpu0
        after = lns.stats()
        alive = sum(1 for th in handles if th.closed is None)
        await ctx.close(ack_timeout=1.0)
    return {
        "tunnels": tunnels,
        "sessions": tunnels * per_tunnel,
        "hello_interval_s": hello,
        "duration_s": duration,
        "failed_tunnels": failed_tunnels,
        "failed_sessions": failed,
        "lac_tunnels_alive_at_end": alive,
        "lns_tunnels_at_end": after["tunnels"],
        "lns_cpu_percent": round(after["cpu_seconds"] / duration * 100, 2),
        "lac_cpu_percent": round(lac_cpu / duration * 100, 2),
        "lns_rss_mib": round(after["rss_kib"] / 1024, 1),
        "lns_rss_growth_kib": after["rss_kib"] - before["rss_kib"],
        "lns_datagrams_per_second": round(
            (
                after["datagrams_in"]
                + after["datagrams_out"]
                - before["datagrams_in"]
                - before["datagrams_out"]
            )
            / duration,
            1,
        ),
    }


def idle_run(tunnels: int, per_tunnel: int, *, hello: float, duration: float) -> dict[str, Any]:
    """Established tunnels and sessions left idle for ``duration`` s with HELLO every ``hello`` s
    (both sides); the LNS's CPU and RSS over that window."""
    raise_fd_limit()
    with LnsProcess(hello_interval=hello, max_tunnels=max(1024, tunnels + 16)) as lns:
        return run_loop(_idle_lac(lns, tunnels, per_tunnel, hello, duration))


# ---------------------------------------------------------- reconnect storm


def lac_storm_main(
    conn: Connection, address: Address, tunnels: int, per_tunnel: int, hello: float
) -> None:
    """Child process: waits for ``go``, dials, reports, then idles until killed."""
    raise_fd_limit()
    conn.send("ready")
    conn.recv()

    async def main() -> None:
        async with L2tpContext() as ctx:
            config = tunnel_config(Role.LAC, hello)
            handles, failed_tunnels = await open_tunnels(ctx, address, tunnels, config)
            _lat, failed = await place_sessions(handles, per_tunnel)
            conn.send(
                {
                    "tunnels_up": len(handles),
                    "failed_tunnels": failed_tunnels,
                    "sessions_up": len(handles) * per_tunnel - failed,
                    "failed_sessions": failed,
                }
            )
            await asyncio.sleep(3600)

    run_loop(main())


def _start_lac(
    address: Address, tunnels: int, per_tunnel: int, hello: float
) -> tuple[BaseProcess, Connection]:
    ours, theirs = _SPAWN.Pipe()
    proc = _SPAWN.Process(
        target=lac_storm_main, args=(theirs, address, tunnels, per_tunnel, hello), daemon=True
    )
    proc.start()
    theirs.close()
    if not ours.poll(60) or ours.recv() != "ready":
        raise RuntimeError("the LAC did not start")
    return proc, ours


def _recv(conn: Connection, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise RuntimeError("the LAC did not report")
    return conn.recv()


def storm_run(
    tunnels: int, sessions: int, *, hello: float, reap_wait: float, timeout: float = 300.0
) -> dict[str, Any]:
    """Kill an LAC holding ``sessions`` in ``tunnels``, redial them all at once from a fresh one.

    The second LAC process is started beforehand and waits, so the redial
    begins right after the SIGKILL (no interpreter start-up in the figure).
    Recovery time is from the kill to the new LAC having every session
    established. The LNS still holds the dead LAC's tunnels until HELLO and
    retransmission give up on them; with ``reap_wait`` > 0 we also time that.
    """
    raise_fd_limit()
    per_tunnel = max(1, sessions // tunnels)
    with LnsProcess(hello_interval=hello, max_tunnels=max(1024, 2 * tunnels + 16)) as lns:
        first, first_conn = _start_lac(lns.address, tunnels, per_tunnel, hello)
        second, second_conn = _start_lac(lns.address, tunnels, per_tunnel, hello)
        try:
            first_conn.send("go")
            initial = _recv(first_conn, timeout)
            lns.mark()
            t0 = time.perf_counter()
            os.kill(first.pid or 0, signal.SIGKILL)
            second_conn.send("go")
            redial = _recv(second_conn, timeout)
            recovery = time.perf_counter() - t0
            at_recovery = lns.stats()
            reaped_after: float | None = None
            if reap_wait > 0:
                while time.perf_counter() - t0 < reap_wait:
                    if lns.stats()["tunnels"] <= tunnels:
                        reaped_after = round(time.perf_counter() - t0, 2)
                        break
                    time.sleep(0.25)
            final = lns.stats()
        finally:
            for proc in (first, second):
                if proc.is_alive():
                    proc.kill()
                proc.join(5)
    return {
        "tunnels": tunnels,
        "sessions": tunnels * per_tunnel,
        "hello_interval_s": hello,
        "initial_sessions_up": initial["sessions_up"],
        "recovery_seconds": round(recovery, 3),
        "tunnels_redialled": redial["tunnels_up"],
        "tunnels_lost": tunnels - redial["tunnels_up"],
        "sessions_redialled": redial["sessions_up"],
        "sessions_lost": tunnels * per_tunnel - redial["sessions_up"],
        "lns_stale_tunnels_at_recovery": at_recovery["tunnels"] - redial["tunnels_up"],
        "lns_cpu_seconds_to_recovery": round(at_recovery["cpu_seconds"], 3),
        "reap_wait_s": reap_wait,
        "lns_stale_reaped_after_s": reaped_after,
        "lns_tunnels_at_end": final["tunnels"],
    }
