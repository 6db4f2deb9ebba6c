"""Session set-up against two LNSs, ours and xl2tpd, driven by the same LAC (issue 8, section 4).

Needs root and a kernel with L2TP: run it in the test VM (``benchmarks/run.py --sections xl2tpd``
does this)::

    L2TP_VM_MEMORY=2G tools/vm/run .venv/bin/python benchmarks/bench_xl2tpd.py \\
        --json-out .cache/vm-results/xl2tpd.json

What is compared, exactly:

* **The LAC** is ours in every case: :class:`~l2tp.runtime.control.L2tpContext` with the null
  data plane (no kernel objects on the LAC side) in this process, L2TPv2 over 127.0.0.1.
  Main points (``--sessions``): sessions spread evenly over tunnels of at most
  ``--per-tunnel`` sessions; the tunnels are opened first, then every call is placed at once
  (a burst, as in section 2). Remote-access points (``--one-per-tunnel``): one session per
  tunnel, every "client" at once, each placing its call as soon as its tunnel is up.
* **LNS (a), ours**: a child process running ``L2tpContext.listen`` with
  :class:`~l2tp.kernel.dataplane.LinuxDataPlane` and no session backend, so every established
  call makes a managed kernel tunnel (once per tunnel) and a kernel PPP session in LNS mode;
  no pppd.
* **LNS (b), xl2tpd** (Debian's package, kernel mode, ``assign ip = no``, no authentication,
  the usual soft limit of 1024 descriptors unless ``--xl2tpd-nofile``): on each ICCN it
  connects a PPPoL2TP socket (which creates the kernel session) and forks and execs
  ``/usr/sbin/pppd`` with it. That path is compiled in, so xl2tpd runs in a private mount
  namespace where a no-op is bind-mounted over ``/usr/sbin/pppd``: by default a 129-byte
  static executable that pauses forever (``--noop sh``: a shell script that execs sleep). It
  holds the inherited PPPoL2TP socket, so the kernel session, until SIGTERM/SIGHUP, as pppd
  would, and xl2tpd keeps the call. xl2tpd thus pays a fork + exec per session that ours does
  not: that is its design (a pppd per call); a real pppd costs far more.

Per point and LNS: tunnels and sessions asked for and up (LAC view: ICRP received, ICCN sent);
sessions the LNS established (its own account, polled every 0.25 s: our LNS's count of
sessions with their kernel session created; xl2tpd's "Call established ... PID: N" log lines
with N > 0, written once the PPPoL2TP socket is connected and "pppd" forked) and the kernel
sessions that exist at the end (netlink dump: the "established" figure); failures with their
reasons; calls to which the LNS gave a Session ID it had already given another call of the
same tunnel (xl2tpd draws them at random and does not check); the set-up rate (sessions the
LNS established / time from the first ICRQ, or the first SCCRQ for remote-access points, to
the last of them); wall time (first SCCRQ to the LNS settled); the LNS's CPU time over the
point and RSS at the end (for xl2tpd also its helper processes: count and summed PSS); the
drop of the machine's MemAvailable over the point (kernel objects and processes included, and
the LAC's own growth, the same for both LNSs);
whether the LNS was still alive; and for a point that falls short, why (xl2tpd's log
warnings, counted). The LNS's progress is not polled through netlink: in the VM, dumping
thousands of sessions every few tenths of a second slowed our LNS (which creates its sessions
through netlink) about 3x, and not xl2tpd (which creates them with PPPoL2TP connect). Each
point has a time limit (``--point-timeout``, first SCCRQ to the LNS settled; ``--stall`` s
without progress end a phase early). Between points both LNSs are killed (teardown is not
measured) and the kernel is checked empty.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from setup_lib import raise_fd_limit, tunnel_config  # noqa: E402

from l2tp.kernel import L2tpNetlink  # noqa: E402
from l2tp.kernel.async_dataplane import AsyncLinuxDataPlane  # noqa: E402
from l2tp.protocol.events import Role  # noqa: E402
from l2tp.protocol.listener import ListenerConfig  # noqa: E402
from l2tp.runtime.control import L2tpContext, Listener  # noqa: E402
from l2tp.runtime.handles import TunnelHandle  # noqa: E402

Address = tuple[str, int]
_SPAWN = multiprocessing.get_context("spawn")
XL2TPD_PORT = 1701
PPPD = "/usr/sbin/pppd"

NOOP_PPPD_SH = """#!/bin/sh
# Stands in for pppd under xl2tpd (benchmarks/bench_xl2tpd.py). xl2tpd hands over the
# connected PPPoL2TP socket as an inherited descriptor: sleep keeps it open, so the kernel
# session lives until SIGTERM/SIGHUP ends sleep, which xl2tpd then sees as pppd exiting.
exec /bin/sleep infinity
"""


def noop_elf() -> bytes:
    """A 129-byte static x86-64 Linux executable: ``for (;;) pause();``.

    It stands in for pppd at the least possible cost per exec (no dynamic loader, no shell):
    it ignores its arguments, keeps every inherited descriptor open (the PPPoL2TP socket, so
    the kernel session) and ends on SIGTERM or SIGHUP (default actions), as pppd would.
    """
    base = 0x400000
    code = bytes.fromhex("b8220000000f05ebf7")  # mov eax, 34 (pause); syscall; jmp -9
    size = 64 + 56 + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little endian, SysV
    header = struct.pack(
        "<16sHHIQQQIHHHHHH", ident, 2, 0x3E, 1, base + 120, 64, 0, 0, 64, 56, 1, 0, 0, 0
    )
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)  # LOAD, R+X
    return header + program + code


def write_noop(path: Path, kind: str) -> str:
    """Write the no-op pppd (``elf`` where the machine is x86-64, else ``sh``); its kind."""
    if kind == "elf" and os.uname().machine == "x86_64":
        path.write_bytes(noop_elf())
    else:
        kind = "sh"
        path.write_text(NOOP_PPPD_SH)
    path.chmod(0o755)
    return kind


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def mem_available_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[-1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_group_members(pgid: int) -> list[int]:
    """PIDs in process group ``pgid`` (field 5 of /proc/PID/stat)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def kernel_counts() -> tuple[int, int]:
    """(tunnels, sessions) the kernel holds in this network namespace.

    Session 0 is left out: it is xl2tpd's per-tunnel PPPoL2TP management socket, not a call.
    """
    with L2tpNetlink() as nl:
        sessions = sum(1 for s in nl.dump_sessions() if s.session_id)
        return len(nl.dump_tunnels()), sessions


def l2tp_available() -> str | None:
    """None when this process can drive kernel L2TP (root, genl family, PPPoL2TP); else why."""
    if os.geteuid() != 0:
        return "needs root"
    try:
        kernel_counts()
        socket.socket(24, socket.SOCK_DGRAM, 1).close()  # AF_PPPOX, PX_PROTO_OL2TP
    except Exception as exc:
        return f"no kernel L2TP here: {exc}"
    return None


# ------------------------------------------------------------------ the LNSs


class Lns(Protocol):
    kind: str
    address: Address
    pid: int

    def alive(self) -> bool: ...

    def established(self) -> int:
        """Sessions the LNS has established so far, by its own account (cheap to call)."""
        ...

    def extra(self) -> dict[str, Any]: ...

    def diagnosis(self) -> str: ...

    def kill(self) -> None:
        """End the LNS at once (SIGKILL); the kernel drops its tunnels and sessions."""
        ...


def _established(listener: Listener) -> int:
    return sum(1 for th in listener.tunnels.values() for s in th.sessions.values() if s.established)


def _our_lns_main(conn: Connection, max_tunnels: int) -> None:
    raise_fd_limit()

    async def main() -> None:
        async with L2tpContext(dataplane=AsyncLinuxDataPlane()) as ctx:
            config = ListenerConfig(tunnel=tunnel_config(Role.LNS, 60.0), max_tunnels=max_tunnels)
            listener = await ctx.listen(("127.0.0.1", 0), config=config)
            conn.send(listener.address)

            def on_command() -> None:
                while conn.poll():
                    if conn.recv() == "count":
                        conn.send(_established(listener))

            asyncio.get_running_loop().add_reader(conn.fileno(), on_command)
            await asyncio.Event().wait()  # until killed

    asyncio.run(main())


class OurLns:
    """LNS (a): our control plane with the Linux data plane, in a child process."""

    kind = "ours"

    def __init__(self, max_tunnels: int = 4096) -> None:
        self.conn, theirs = _SPAWN.Pipe()
        self.proc = _SPAWN.Process(target=_our_lns_main, args=(theirs, max_tunnels), daemon=True)
        self.proc.start()
        theirs.close()
        if not self.conn.poll(120):
            self.kill()
            raise RuntimeError("our LNS did not start within 120 s")
        host, port = self.conn.recv()
        self.address: Address = (str(host), int(port))
        self.pid = self.proc.pid or 0

    def alive(self) -> bool:
        return self.proc.is_alive()

    def established(self) -> int:
        try:
            self.conn.send("count")
            if self.conn.poll(30):
                count: int = self.conn.recv()
                return count
        except (OSError, EOFError):
            pass
        return 0

    def extra(self) -> dict[str, Any]:
        return {}

    def diagnosis(self) -> str:
        return "" if self.alive() else f"our LNS exited with {self.proc.exitcode}"

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(30)


def xl2tpd_config(workdir: Path) -> str:
    return "\n".join(
        [
            "[global]",
            "listen-addr = 127.0.0.1",
            f"port = {XL2TPD_PORT}",
            "access control = no",
            "",
            "[lns default]",
            "assign ip = no",
            "require authentication = no",
            "refuse chap = yes",
            "refuse pap = yes",
            "hostname = xl2tpd-lns",
            "length bit = yes",
            f"pppoptfile = {workdir / 'ppp-options'}",
            "",
        ]
    )


_CALL_UP = re.compile(rb"Call established with \S+, PID: (-?\d+)")


class Xl2tpdLns:
    """LNS (b): xl2tpd in a private mount namespace whose /usr/sbin/pppd is a no-op."""

    kind = "xl2tpd"

    def __init__(
        self, workdir: Path, *, nofile: int = 1024, noop: str = "elf", start_timeout: float = 30.0
    ) -> None:
        xl2tpd = shutil.which("xl2tpd") or "/usr/sbin/xl2tpd"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "xl2tpd.conf").write_text(xl2tpd_config(workdir))
        secrets = workdir / "l2tp-secrets"
        secrets.write_text("")
        secrets.chmod(0o600)
        (workdir / "ppp-options").write_text("noauth\n")
        noop_path = workdir / "pppd"
        self.noop = write_noop(noop_path, noop)
        self.control = workdir / "control"
        self.log = workdir / "xl2tpd.log"
        self._log_offset = 0
        self._calls_up = 0
        self._calls_without_pppd = 0
        Path("/run/xl2tpd").mkdir(parents=True, exist_ok=True)
        script = (
            'mount --bind "$1" "$2" && ulimit -S -n "$3" && exec "$4" -D -c "$5" -s "$6" '
            '-p "$7" -C "$8"'
        )
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
        argv += [str(noop_path), PPPD, str(nofile), xl2tpd, str(workdir / "xl2tpd.conf")]
        argv += [str(secrets), str(workdir / "xl2tpd.pid"), str(self.control)]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid = self.proc.pid
        self.address: Address = ("127.0.0.1", XL2TPD_PORT)
        deadline = time.monotonic() + start_timeout
        while not self.control.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"xl2tpd did not start:\n{self.log_tail(20)}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def established(self) -> int:
        """ "Call established ... PID: N" lines with N > 0 so far (read incrementally)."""
        with contextlib.suppress(OSError), self.log.open("rb") as f:
            f.seek(self._log_offset)
            data = f.read()
            end = data.rfind(b"\n") + 1  # whole lines only
            self._log_offset += end
            for m in _CALL_UP.finditer(data[:end]):
                if int(m.group(1)) > 0:
                    self._calls_up += 1
                else:
                    self._calls_without_pppd += 1
        return self._calls_up

    def helpers(self) -> list[int]:
        """The no-op pppds: everything in xl2tpd's process group but xl2tpd."""
        return [p for p in process_group_members(self.pid) if p != self.pid]

    def extra(self) -> dict[str, Any]:
        helpers = self.helpers()
        self.established()
        return {
            "noop_pppd": self.noop,
            "lns_helper_processes": len(helpers),
            "lns_helpers_pss_mib": round(sum(pss_kib(p) for p in helpers) / 1024, 1),
            "xl2tpd_calls_without_pppd": self._calls_without_pppd,
        }

    def log_tail(self, lines: int) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def diagnosis(self) -> str:
        """Why a point fell short, from xl2tpd's exit status and log (warnings, counted)."""
        parts = []
        if self.proc.poll() is not None:
            parts.append(f"xl2tpd exited with {self.proc.returncode}")
        if self._calls_without_pppd:
            parts.append(f"{self._calls_without_pppd} calls logged as established with PID 0")
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            text = ""
        interesting = [
            line
            for line in text.splitlines()
            if re.search(
                r"unable|fail|error|overflow|too many|exceed|out of|abort|state !=", line, re.I
            )
        ]
        counted = collections.Counter(
            re.sub(r"\b\d+\b", "N", re.sub(r"^xl2tpd\[\d+\]: ", "", line)) for line in interesting
        )
        parts += [f"{n} x {line}" for line, n in counted.most_common(6)]
        if not interesting:
            parts.append("log tail: " + " | ".join(self.log_tail(5).splitlines()))
        return "; ".join(parts)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # xl2tpd and every no-op pppd it started
        self.proc.wait()


# ------------------------------------------------------------------ the LAC


def spread(sessions: int, per_tunnel: int) -> list[int]:
    """Sessions per tunnel: as few tunnels as ``per_tunnel`` allows, counts as even as can be."""
    tunnels = max(1, math.ceil(sessions / per_tunnel))
    base, extra = divmod(sessions, tunnels)
    return [base + (1 if i < extra else 0) for i in range(tunnels)]


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return re.sub(r"\b(session|tunnel) \d+", r"\1 N", text)[:160]


async def run_all(
    tasks: list[asyncio.Future[Any]], deadline: float, stall: float
) -> tuple[list[Any], collections.Counter[str], int]:
    """Wait for ``tasks`` until all are done, ``deadline`` (loop time) passes, or none has
    finished for ``stall`` s; cancel the rest. Returns (results, failure reasons, unfinished)."""
    loop = asyncio.get_running_loop()
    finished = [0]

    def count(_task: asyncio.Future[Any]) -> None:
        finished[0] += 1

    for task in tasks:
        task.add_done_callback(count)
    seen, progress_at = -1, loop.time()
    while finished[0] < len(tasks):
        now = loop.time()
        if finished[0] != seen:
            seen, progress_at = finished[0], now
        if now >= deadline or now - progress_at >= stall:
            break
        await asyncio.sleep(min(0.1, deadline - now))
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    results: list[Any] = []
    reasons: collections.Counter[str] = collections.Counter()
    for task in tasks:
        if task.cancelled():
            continue
        exc = task.exception()
        if exc is None:
            results.append(task.result())
        else:
            reasons[_reason(exc)] += 1
    return results, reasons, len(pending)


async def settle(
    count: Callable[[], int], target: int, deadline: float, quiet: float
) -> tuple[int, float]:
    """Poll the LNS's own count every 0.25 s until it reaches ``target``, stops changing for
    ``quiet`` s, or ``deadline`` passes; returns (count, loop time it last changed)."""
    loop = asyncio.get_running_loop()
    last, changed = -1, loop.time()
    while True:
        n = await asyncio.to_thread(count)
        now = loop.time()
        if n != last:
            last, changed = n, now
        if n >= target or now - changed >= quiet or now >= deadline:
            return last, changed
        await asyncio.sleep(0.25)


async def drive(
    lns: Lns, counts: list[int], *, clients: bool, point_timeout: float, stall: float
) -> dict[str, Any]:
    """Tunnels to ``lns``, ``counts[i]`` calls in tunnel i; the figures of one point.

    ``clients=False``: every tunnel first, then every call at once (a burst; the rate counts
    from the first ICRQ). ``clients=True``: every tunnel at once, each placing its calls as
    soon as it is up (the rate counts from the first SCCRQ).
    """
    loop = asyncio.get_running_loop()
    sessions = sum(counts)
    async with L2tpContext() as ctx:
        config = tunnel_config(Role.LAC, 60.0)
        cpu0 = cpu_seconds(lns.pid)
        mem0 = mem_available_kib()
        t_start = loop.time()
        deadline = t_start + point_timeout
        tunnel_futs = [
            asyncio.ensure_future(ctx.open_tunnel(lns.address, config=config)) for _ in counts
        ]
        if not clients:
            await run_all(tunnel_futs, deadline, stall)
        t0 = loop.time()

        peer_ids: collections.Counter[tuple[int, int]] = collections.Counter()

        async def call(tunnel: asyncio.Future[TunnelHandle]) -> float:
            if tunnel.cancelled():
                raise TimeoutError("its tunnel was not up within the time limit")
            th = await asyncio.shield(tunnel)
            handle = th.place_call()
            await handle.wait_established()
            peer_ids[th.tunnel_id, handle.peer_session_id] += 1
            return loop.time()

        calls: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(call(fut))
            for fut, n in zip(tunnel_futs, counts, strict=True)
            for _ in range(n)
        ]
        done_at, reasons, unfinished = await run_all(calls, deadline, stall)
        if clients:
            await run_all(tunnel_futs, loop.time(), stall)  # cancel what is still opening
        t_lac = max(done_at, default=t0)
        up = len(done_at)
        held, t_held = await settle(lns.established, up, deadline, quiet=min(stall, 5.0))
        t_end = loop.time()
        lns_cpu = cpu_seconds(lns.pid) - cpu0
        alive = lns.alive()
        lns_rss = rss_kib(lns.pid)
        mem_drop = mem0 - mem_available_kib()
        kernel_tunnels, kernel_sessions = await asyncio.to_thread(kernel_counts)
        extra = lns.extra()
        short = kernel_sessions < sessions or not alive
        why = lns.diagnosis() if short else ""
        tunnels_up = sum(
            1 for f in tunnel_futs if f.done() and not f.cancelled() and not f.exception()
        )
        lns.kill()
        await ctx.close(ack_timeout=0.0)
    lns_seconds = max(t_held, t_lac) - t0 if held else 0.0
    lac_seconds = t_lac - t0
    result: dict[str, Any] = {
        "lns": lns.kind,
        "tunnels": len(counts),
        "sessions": sessions,
        "max_per_tunnel": max(counts),
        "mode": "clients" if clients else "burst",
        "tunnels_up": tunnels_up,
        "sessions_up": up,
        "lns_established": held,
        "lns_kernel_sessions": kernel_sessions,
        "lns_kernel_tunnels": kernel_tunnels,
        "failed_sessions": sum(reasons.values()),
        "duplicate_lns_session_ids": sum(n - 1 for n in peer_ids.values()),
        "unfinished_sessions": unfinished,
        "tunnel_open_s": round(t0 - t_start, 3),
        "lac_seconds": round(lac_seconds, 3),
        "lns_seconds": round(lns_seconds, 3),
        "sessions_per_second": round(held / lns_seconds, 1) if lns_seconds > 0 else 0.0,
        "lac_sessions_per_second": round(up / lac_seconds, 1) if lac_seconds > 0 else 0.0,
        "wall_s": round(t_end - t_start, 2),
        "lns_alive": alive,
        "lns_cpu_s": round(lns_cpu, 2),
        "lns_rss_mib": round(lns_rss / 1024, 1),
        "mem_available_drop_mib": round(mem_drop / 1024, 1),
        **extra,
    }
    if reasons:
        result["failure_reasons"] = dict(reasons.most_common(5))
    if short:
        result["why"] = why or "time limit"
    return result


# ------------------------------------------------------------------ a point


def wait_kernel_empty(timeout: float) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        counts = kernel_counts()
        if counts == (0, 0) or time.monotonic() > deadline:
            return counts
        time.sleep(0.25)


def run_point(
    kind: str,
    sessions: int,
    per_tunnel: int,
    *,
    point_timeout: float,
    stall: float,
    nofile: int,
    noop: str,
    workdir: Path,
) -> dict[str, Any]:
    """One LNS at one point, from a fresh LNS to the kernel empty again."""
    counts = spread(sessions, per_tunnel)
    base = {
        "lns": kind,
        "sessions": sessions,
        "tunnels": len(counts),
        "max_per_tunnel": max(counts),
    }
    t0 = time.perf_counter()
    lns: Lns
    try:
        if kind == "ours":
            lns = OurLns(max_tunnels=max(1024, len(counts) + 16))
        else:
            lns = Xl2tpdLns(workdir / f"xl2tpd-{sessions}-{per_tunnel}", nofile=nofile, noop=noop)
    except Exception as exc:
        return {**base, "error": f"LNS did not start: {exc}"}
    try:
        result = asyncio.run(
            drive(lns, counts, clients=per_tunnel == 1, point_timeout=point_timeout, stall=stall)
        )
    except Exception as exc:
        result = {**base, "error": f"{type(exc).__name__}: {exc}", "why": lns.diagnosis()}
    finally:
        lns.kill()
    left = wait_kernel_empty(60.0)
    if left != (0, 0):
        result["kernel_left_after_kill"] = {"tunnels": left[0], "sessions": left[1]}
    result["point_wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def ratio_rows(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per point (sessions, layout): both LNSs side by side and ours/xl2tpd."""
    by_point: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for case in cases:
        key = (case["sessions"], case.get("max_per_tunnel", 0))
        by_point.setdefault(key, {})[case["lns"]] = case
    rows = []
    for (sessions, per_tunnel), pair in by_point.items():
        ours, xl = pair.get("ours", {}), pair.get("xl2tpd", {})
        ours_rate = ours.get("sessions_per_second", 0.0)
        xl_rate = xl.get("sessions_per_second", 0.0)
        rows.append(
            {
                "sessions": sessions,
                "tunnels": ours.get("tunnels", xl.get("tunnels")),
                "max_per_tunnel": per_tunnel,
                "ours_established": ours.get("lns_kernel_sessions", 0),
                "xl2tpd_established": xl.get("lns_kernel_sessions", 0),
                "ours_per_second": ours_rate,
                "xl2tpd_per_second": xl_rate,
                "ours_over_xl2tpd": round(ours_rate / xl_rate, 2) if xl_rate else None,
                "ours_wall_s": ours.get("wall_s"),
                "xl2tpd_wall_s": xl.get("wall_s"),
                "ours_rss_mib": ours.get("lns_rss_mib"),
                "xl2tpd_rss_mib": xl.get("lns_rss_mib"),
                "xl2tpd_helpers_pss_mib": xl.get("lns_helpers_pss_mib"),
                "ours_mem_drop_mib": ours.get("mem_available_drop_mib"),
                "xl2tpd_mem_drop_mib": xl.get("mem_available_drop_mib"),
                "xl2tpd_alive": xl.get("lns_alive"),
                "xl2tpd_duplicate_ids": xl.get("duplicate_lns_session_ids"),
            }
        )
    return rows


def _ints(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", default="100,350,1000,2000,5000", help="main points")
    parser.add_argument("--per-tunnel", type=int, default=100, help="max sessions per tunnel")
    parser.add_argument(
        "--one-per-tunnel",
        default="350,1000",
        help="remote-access points: one session per tunnel ('' for none)",
    )
    parser.add_argument("--lns", default="ours,xl2tpd", help="which LNSs, in this order")
    parser.add_argument(
        "--point-timeout",
        type=float,
        default=240.0,
        help="s per point and LNS, first SCCRQ to the LNS settled",
    )
    parser.add_argument(
        "--stall", type=float, default=30.0, help="end a phase after this long without progress"
    )
    parser.add_argument("--xl2tpd-nofile", type=int, default=1024, help="xl2tpd's fd soft limit")
    parser.add_argument(
        "--noop",
        choices=("elf", "sh"),
        default="elf",
        help="the pppd stand-in: a tiny static executable, or sh execing sleep",
    )
    parser.add_argument("--json-out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    why = l2tp_available()
    if why is not None:
        print(f"bench_xl2tpd: {why}", file=sys.stderr)
        return 3
    raise_fd_limit()
    kinds = [k for k in args.lns.split(",") if k]
    points = [(n, args.per_tunnel) for n in _ints(args.sessions)]
    points += [(n, 1) for n in _ints(args.one_per_tunnel)]
    cases: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-xl2tpd-") as tmp:
        for sessions, per_tunnel in points:
            for kind in kinds:
                case = run_point(
                    kind,
                    sessions,
                    per_tunnel,
                    point_timeout=args.point_timeout,
                    stall=args.stall,
                    nofile=args.xl2tpd_nofile,
                    noop=args.noop,
                    workdir=Path(tmp),
                )
                cases.append(case)
                print(json.dumps(case), flush=True)
    xl2tpd_version = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "xl2tpd"], capture_output=True, text=True
    ).stdout
    result = {
        "conditions": {
            "lac": "ours (L2tpContext, null data plane) in the benchmark process, L2TPv2 over "
            "127.0.0.1",
            "ours": "L2tpContext.listen + LinuxDataPlane, no session backend, own process: a "
            "kernel PPP session (LNS mode) per call, no pppd",
            "xl2tpd": f"Debian xl2tpd {xl2tpd_version or '?'}, kernel mode, assign ip = no, no "
            f"auth, fd soft limit {args.xl2tpd_nofile}; /usr/sbin/pppd bind-mounted (private "
            f"mount namespace) by a no-op ({args.noop}) that holds the PPPoL2TP socket (the "
            "kernel session) until SIGTERM/SIGHUP: one fork + exec per session",
            "layouts": f"main points: at most {args.per_tunnel} sessions per tunnel, tunnels "
            "first then every call at once; remote-access points: one session per tunnel, "
            "every client at once",
            "rate": "sessions the LNS established (its own count, polled every 0.25 s) / time "
            "from the first ICRQ (remote-access: first SCCRQ) to the last of them",
            "established": "kernel sessions that exist at the end of the point (netlink dump)",
            "point_timeout_s": args.point_timeout,
            "stall_s": args.stall,
            "kernel": os.uname().release,
            "cpus": len(os.sched_getaffinity(0)),
        },
        "cases": cases,
        "side_by_side": ratio_rows(cases),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    for row in result["side_by_side"]:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
