"""Built-in PPP against pppd on the LNS side, the same LAC, one run (issue 17's goals).

Needs root, a kernel with L2TP and PPP, and pppd: run it in the test VM (``benchmarks/run.py
--sections ppp`` does this)::

    L2TP_VM_MEMORY=2G tools/vm/run .venv/bin/python benchmarks/bench_ppp.py --json
    tools/vm/run .venv/bin/python benchmarks/bench_ppp.py --short          # 10 sessions each
    L2TP_VM_MEMORY=2G tools/vm/run bash -c 'ulimit -Hn 65536 && ulimit -Sn 65536 &&
        .venv/bin/python benchmarks/bench_ppp.py --lns builtin --sessions 5000 \\
        --per-tunnel 100 --max-pending 400'                                # the 5,000 point

(``ulimit``: each side holds three fds per session and the VM's hard limit is 4096;
``--max-pending``: arrivals paced by the system's own pace; in one burst of 5,000 calls
the emulated VM's set-up and LCP timers, not its memory, cut some: benchmarks.md §9.)

To look into a run: ``--keep-logs DIR`` (the LNS's log, ``--lns-verbose`` for its
``-v``) and ``--diagnose``, which snapshots both sides into DIR once a LAC tunnel's
oldest message has gone unacknowledged for 7 s and again when one has closed: the LAC
transport, the LNS's tunnels (``l2tp ctl``), both namespaces' UDP sockets (``ss``, their
receive queues) and UDP counters.

What is compared, exactly:

* **Two namespaces joined by a veth** (L2TPv2 over UDP, 10.90.0.2 -> 10.90.0.1:1701): a kernel
  tunnel and a kernel PPP session on each side of every call, so every PPP frame crosses the
  kernel's data path both ways.
* **The LAC is the same in every run**: :class:`~l2tp.runtime.control.L2tpContext` in this
  process with the async Linux data plane and the **built-in** PPP backend (peer role,
  CHAP-MD5, one user per session), so the LAC is never pppd and is not what is measured.
  Tunnels of at most ``--per-tunnel`` sessions are opened first, then every call is placed,
  50 per turn of the loop.
* **The LNS** is the ``l2tp-lns`` daemon (``python -m l2tp.daemons.lns``) in a process of its
  own, in the first namespace, with one listener whose sessions run ``ppp = "builtin"``
  (CHAP-MD5 against a chap-secrets file) or ``ppp = "pppd"`` (``PppdBackend``: one
  ``pppd ... require-chap`` per session, reading the same chap-secrets file, bind-mounted over
  ``/etc/ppp/chap-secrets`` in the daemon's mount namespace). The secrets file gives every
  user its address, so both LNSs hand out the same addresses; no LCP echo differences (both
  ask every 30 s, pppd from Debian's ``/etc/ppp/options``); pppd also runs Debian's
  ``/etc/ppp/ip-up`` scripts, as a deployed pppd does.

Measured per run (LNS kind):

* **up**: a session is up when its interface in the LNS's namespace has its IPv4 address
  and peer address (``RTM_NEWADDR`` with a peer, seen on an rtnetlink socket of that
  namespace) and the LAC's IPCP is open (its backend's counter); the set-up rate is the
  sessions up / time from the first call placed to the last session up. Every session must
  come up; the count comes from a dump at the end.
* **memory per session**, from before the first call to a 2 s settle after the last
  session up, each divided by N: PSS (``/proc/PID/smaps_rollup``) growth of the LNS and
  every process it started (the pppds and their scripts) and of this process (the LAC);
  ``kernel``: growth of the kernel's live objects (``/proc/slabinfo`` active objects x
  size, plus per-CPU, page tables and vmalloc (kernel stacks included) from ``/proc/meminfo``), both
  sides' (tunnels, sessions, sockets, channels, units, interfaces, and with pppd its
  processes' kernel side). ``end_to_end`` = all of it; ``lns_side`` = the LNS processes'
  PSS growth + half the kernel's (the two ends hold the same kernel objects per session
  whichever PPP runs them). The drop of ``MemAvailable`` is recorded too, but only the
  first run of a boot sees the kernel's slab caches grow: later runs reuse the objects
  earlier ones freed (it gave 91 and then 4 KiB per session for the same built-in run).
* **qdiscs**: the root qdisc kinds of both namespaces' ppp interfaces (``tc``), because
  a unit that came up with the default ``fq_codel`` would hold a 64 KiB flow table that
  ``/proc/slabinfo`` does not show (in the test VM our units come up with ``noqueue``).
* **shutdown**: SIGTERM to the LNS until no ppp interface is left in its namespace (from
  the same rtnetlink socket), and until the LNS process exited.
* LNS CPU seconds (its processes' user + system time, reaped children included) over the
  set-up, and the LAC's (this process) until every session was up: the two share the
  machine's CPUs, so a cheap LNS leaves the LAC as the limit of the built-in run.

The ratios (built-in / pppd) are of one run; ``--repeat`` runs the pair again in the same
process and reports each pair's ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_xl2tpd import mem_available_kib, pss_kib  # noqa: E402
from setup_lib import machine, open_tunnels, tunnel_config  # noqa: E402

from l2tp.kernel.async_dataplane import AsyncLinuxDataPlane  # noqa: E402
from l2tp.kernel.netns import socket_in_netns  # noqa: E402
from l2tp.ppp import AuthMethod  # noqa: E402
from l2tp.protocol.events import Role  # noqa: E402
from l2tp.protocol.tunnel import TunnelState  # noqa: E402
from l2tp.runtime.backend import SessionOptions  # noqa: E402
from l2tp.runtime.builtin_ppp import BuiltinPppBackend  # noqa: E402
from l2tp.runtime.control import L2tpContext  # noqa: E402
from l2tp.runtime.handles import SessionHandle, TunnelHandle  # noqa: E402
from l2tp.runtime.ppp_hooks import BuiltinPppOptions  # noqa: E402

LNS_ADDR, LAC_ADDR = "10.90.0.1", "10.90.0.2"
LNS_PPP_ADDR = "10.80.0.1"
PASSWORD = "bench-secret"
PACE = 50
"""Calls placed per turn of the LAC's loop (as ``bench_setup_kernel.py``)."""
SETTLE_S = 2.0
"""Wait after the last session is up before the memory is read: pppd's ip-up scripts end and
the kernel's deferred frees (RCU) of the set-up are done."""
GOALS = {"setup_rate_ratio": 10.0, "lns_side_kib_per_session": 50.0, "shutdown_s": 2.0}
"""Issue 17: >= 10x pppd's set-up rate, <= 50 KB per session, shutdown < 2 s."""

# rtnetlink (linux/rtnetlink.h, if_arp.h, if_addr.h)
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR = 16, 17, 20
RTMGRP_LINK, RTMGRP_IPV4_IFADDR = 0x1, 0x10
ARPHRD_PPP = 512
IFA_ADDRESS, IFA_LOCAL = 1, 2
NLMSG_HDR = struct.Struct("=IHHII")
IFINFO = struct.Struct("=BxHiII")
IFADDR = struct.Struct("=BBBBI")
RTA = struct.Struct("=HH")
SO_RCVBUFFORCE = 33


def user_address(i: int) -> str:
    """Session ``i``'s peer address: 10.80.0.2 onwards (10.80.0.1 is the LNS's)."""
    n = (10 << 24) + (80 << 16) + 2 + i
    return socket.inet_ntoa(struct.pack("!I", n))


class PppWatch:
    """The ppp interfaces of one namespace, from its rtnetlink multicast groups.

    Reading events rather than dumping: a dump of thousands of interfaces every few tenths
    of a second would load the emulated VM's CPUs the two LNSs compete for.
    """

    def __init__(self, netns: str) -> None:
        self.sock = socket_in_netns(netns, socket.AF_NETLINK, socket.SOCK_RAW, 0)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
        self.sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR))
        self.sock.setblocking(False)
        self.links: set[int] = set()
        self.up: dict[int, float] = {}
        """ifindex -> when it first had an address with a peer."""
        self.overruns = 0
        self.changed = asyncio.Event()

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._read)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()

    def _read(self) -> None:
        now = time.monotonic()
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError:  # ENOBUFS: events lost; the final dump has the truth
                self.overruns += 1
                continue
            self._parse(data, now)
        self.changed.set()

    def _parse(self, data: bytes, now: float) -> None:
        offset = 0
        while offset + NLMSG_HDR.size <= len(data):
            length, kind, _flags, _seq, _pid = NLMSG_HDR.unpack_from(data, offset)
            if length < NLMSG_HDR.size:
                return
            body = offset + NLMSG_HDR.size
            if kind in (RTM_NEWLINK, RTM_DELLINK):
                _family, arphrd, index, _f, _c = IFINFO.unpack_from(data, body)
                if arphrd == ARPHRD_PPP:
                    if kind == RTM_NEWLINK:
                        self.links.add(index)
                    else:
                        self.links.discard(index)
            elif kind == RTM_NEWADDR:
                family, _plen, _fl, _scope, index = IFADDR.unpack_from(data, body)
                if family == socket.AF_INET and index in self.links and index not in self.up:
                    attrs = _attrs(data, body + IFADDR.size, offset + length)
                    address, local = attrs.get(IFA_ADDRESS), attrs.get(IFA_LOCAL)
                    if address is not None and local is not None and address != local:
                        self.up[index] = now
            offset += (length + 3) & ~3

    async def wait(self, predicate: Any, deadline: float) -> bool:
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 1.0))
        return True


def _attrs(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    found = {}
    while offset + RTA.size <= end:
        length, kind = RTA.unpack_from(data, offset)
        if length < RTA.size:
            break
        found[kind] = data[offset + RTA.size : offset + length]
        offset += (length + 3) & ~3
    return found


# ------------------------------------------------------------------ processes


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (from ``/proc/*/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds(pids: list[int]) -> float:
    """User + system time of ``pids``, their reaped children's included."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


KERNEL_METERS = ("Percpu", "PageTables", "VmallocUsed")
"""``/proc/meminfo`` lines that count kernel memory outside the slab caches. Not
``KernelStack``: with ``CONFIG_VMAP_STACK`` (Debian's kernels) the stacks are vmalloc
memory and already in ``VmallocUsed`` (both grew by the same 32-34 KiB per pppd session,
and counted twice before 2026-12-04's profiling run)."""


def kernel_objects() -> dict[str, int]:
    """Kernel memory in use, bytes by slab cache and :data:`KERNEL_METERS`: live slab objects
    (``/proc/slabinfo``: active objects x their size, so freed objects a later run reuses do
    not count, as they do in MemAvailable) plus the meters of ``/proc/meminfo``."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError), open("/proc/slabinfo") as f:
        for line in f:
            if line.startswith(("slabinfo", "#")):
                continue
            fields = line.split()
            found[fields[0]] = int(fields[1]) * int(fields[3])
    with open("/proc/meminfo") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in KERNEL_METERS:
                found[name] = int(rest.split()[0]) * 1024
    return found


@dataclass(slots=True)
class Snapshot:
    mem_available_kib: int
    kernel: dict[str, int]
    lns_pss_kib: int
    lac_pss_kib: int
    lns_processes: int
    lns_cpu_s: float

    @classmethod
    def take(cls, lns_pid: int) -> Snapshot:
        tree = process_tree(lns_pid)
        return cls(
            mem_available_kib=mem_available_kib(),
            kernel=kernel_objects(),
            lns_pss_kib=sum(pss_kib(pid) for pid in tree),
            lac_pss_kib=pss_kib(os.getpid()),
            lns_processes=len(tree),
            lns_cpu_s=tree_cpu_seconds(tree),
        )


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def ppp_addresses(netns: str) -> int:
    """ppp interfaces of ``netns`` with an IPv4 address and a peer (one ``ip`` dump)."""
    links = json.loads(ip("-n", netns, "-j", "addr", "show") or "[]")
    return sum(
        1
        for link in links
        if link.get("link_type") == "ppp"
        and any(a.get("family") == "inet" and "address" in a for a in link.get("addr_info", []))
    )


def ppp_qdiscs(netns: str) -> dict[str, int]:
    """Root qdiscs of the ppp interfaces of ``netns`` by kind (one ``tc`` dump).

    Why: a ppp unit gets the default qdisc when it goes up (``net.core.default_qdisc``;
    Debian's systemd makes it ``fq_codel``), and fq_codel's table of 1,024 flows
    (64 KiB) comes from the page allocator, which ``/proc/slabinfo`` does not show.
    """
    done = subprocess.run(["tc", "-n", netns, "-j", "qdisc", "show"], capture_output=True)
    found: dict[str, int] = {}
    for qdisc in json.loads(done.stdout or b"[]"):
        if str(qdisc.get("dev", "")).startswith("ppp") and qdisc.get("root"):
            kind = str(qdisc.get("kind"))
            found[kind] = found.get(kind, 0) + 1
    return found


def ppp_links(netns: str) -> int:
    links = json.loads(ip("-n", netns, "-j", "link", "show") or "[]")
    return sum(1 for link in links if link.get("link_type") == "ppp")


@dataclass(slots=True)
class Namespaces:
    lns: str
    lac: str

    @classmethod
    def make(cls) -> Namespaces:
        tag = os.getpid() % 100000
        made = cls(f"bppl{tag}", f"bppc{tag}")
        batches: list[tuple[list[str], list[str]]] = [
            (
                [],
                [
                    f"netns add {made.lns}",
                    f"netns add {made.lac}",
                    f"link add bpa netns {made.lns} type veth peer name bpb netns {made.lac}",
                ],
            ),
        ]
        for name, dev, address in ((made.lns, "bpa", LNS_ADDR), (made.lac, "bpb", LAC_ADDR)):
            commands = ["link set lo up", f"addr add {address}/24 dev {dev}", f"link set {dev} up"]
            batches.append((["-n", name], commands))
        for where, commands in batches:
            done = subprocess.run(
                ["ip", *where, "-batch", "-"], input="\n".join(commands) + "\n", text=True
            )
            if done.returncode != 0:
                raise RuntimeError(f"could not make the namespaces: {commands}")
        return made

    def delete(self) -> None:
        for ns in (self.lns, self.lac):
            ip("netns", "del", ns, check=False)


# ------------------------------------------------------------------ the LNS


def lns_config(kind: str, secrets: Path, per_tunnel: int) -> str:
    head = f"""[listener.main]
listen = "{LNS_ADDR}:1701"
"""
    if kind == "builtin":
        return (
            head
            + f"""ppp = "builtin"

[listener.main.builtin_ppp]
auth = ["chap-md5"]
secrets = "{secrets}"
name = "lns"
local_address = "{LNS_PPP_ADDR}"
"""
        )
    options = ["require-chap", "name", "lns", f"{LNS_PPP_ADDR}:", "nodefaultroute", "noccp"]
    return head + f'ppp = "pppd"\npppd_options = {json.dumps(options)}\n'


class LnsProcess:
    """``l2tp-lns`` in the LNS namespace, ``secrets`` bind-mounted as pppd's chap-secrets
    (in the mount namespace ``ip netns exec`` makes: the machine's file is not touched)."""

    def __init__(
        self,
        ns: Namespaces,
        kind: str,
        workdir: Path,
        secrets: Path,
        per_tunnel: int,
        profile: Path | None = None,
        diagnose: bool = False,
        verbose: int = 0,
    ):
        self.kind = kind
        conf = workdir / f"lns-{kind}.toml"
        conf.write_text(lns_config(kind, secrets, per_tunnel))
        ready = workdir / f"lns-{kind}.ready"
        ready.unlink(missing_ok=True)
        self.log_path = workdir / f"lns-{kind}.log"
        script = 'mount --bind "$1" /etc/ppp/chap-secrets && shift && exec "$@"'
        argv = ["ip", "netns", "exec", ns.lns, "sh", "-c", script, "sh", str(secrets)]
        argv.append(sys.executable)
        if profile is not None:
            argv += ["-c", PROFILED_LNS, str(profile / f"lns-{kind}.prof")]
        else:
            argv += ["-m", "l2tp.daemons.lns"]
        argv += [str(conf), "--ready-file", str(ready)]
        argv += ["-v"] * verbose
        self.control = workdir / f"lns-{kind}.sock" if diagnose else None
        # No shared /run/l2tp socket between runs; one in the workdir to diagnose.
        argv += ["--control", str(self.control) if self.control else "none"]
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"l2tp-lns ({kind}) did not start: {self.log_tail()}")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 8) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return " | ".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        for pid in reversed(process_tree(self.proc.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(30)


PROFILED_LNS = """
import cProfile, os, runpy, sys
out, profiler, real_exit = sys.argv.pop(1), cProfile.Profile(), os._exit
def dump():
    profiler.disable()
    profiler.dump_stats(out)
def _exit(status):
    dump()
    real_exit(status)
os._exit = _exit
profiler.enable()
try:
    runpy.run_module("l2tp.daemons.lns", run_name="__main__", alter_sys=True)
finally:
    dump()
"""
"""``python -c`` bootstrap of a profiled LNS: the daemon ends with ``os._exit``
(:func:`l2tp.daemons.common.exit_now`), which ``python -m cProfile -o`` never sees, so
the profile is written from a wrapped ``os._exit``."""


# ------------------------------------------------------------------ one run


@dataclass(slots=True)
class Conditions:
    sessions: int
    per_tunnel: int
    timeout: float
    stall: float
    workdir: Path
    profile: Path | None = None
    max_pending: int = 0
    """Place a call only while fewer than this many are placed and not up (0: all at once)."""
    keep_logs: Path | None = None
    """Where each run's ``l2tp-lns`` log is copied (None: not kept)."""
    lns_verbose: int = 0
    """``-v`` options of the LNS (its log is kept with ``keep_logs``)."""
    diagnose: bool = False
    """Snapshot both sides when a LAC tunnel's message goes unacknowledged (see
    :func:`watch_stuck`); into ``keep_logs``."""
    secrets: Path = field(init=False)

    def __post_init__(self) -> None:
        self.secrets = self.workdir / "chap-secrets"
        lines = [f'u{i} * "{PASSWORD}" {user_address(i)}' for i in range(self.sessions)]
        self.secrets.write_text("\n".join(lines) + "\n")
        self.secrets.chmod(0o600)


async def room(handles: list[SessionHandle], backend: BuiltinPppBackend, cond: Conditions) -> bool:
    """Wait until fewer than ``cond.max_pending`` calls are placed and not yet up (LAC IPCP
    open) or failed: arrivals paced by the system's own pace, as a BNG sees them, instead
    of one burst. False if nothing moved for ``cond.stall`` seconds."""
    last, since = -1, time.monotonic()
    while True:
        done = backend.counters.network_up
        if len(handles) - done < cond.max_pending:
            return True
        failed = sum(1 for h in handles if h.closed is not None and not h.established)
        if len(handles) - done - failed < cond.max_pending:
            return True
        if done + failed != last:
            last, since = done + failed, time.monotonic()
        elif time.monotonic() - since > cond.stall:
            return False
        await asyncio.sleep(0.05)


def failed_calls(handles: list[SessionHandle]) -> dict[str, int]:
    """How the calls that never came up ended, counted by side, Result/Error Code and text."""
    found: dict[str, int] = {}
    for h in handles:
        closed = h.closed
        if closed is None or h.established:
            continue
        reason = closed.reason
        code = f"{reason.result}/{reason.error}" if reason is not None else "-"
        key = f"{'peer' if closed.by_peer else 'local'} {code} {closed.description}"
        found[key] = found.get(key, 0) + 1
    return found


def closed_tunnels(tunnels: list[TunnelHandle], seen_at: dict[int, float]) -> dict[str, Any]:
    """The LAC tunnels that ended during the run, by reason: a failed control transport
    (e.g. a message unacknowledged after its retransmissions) ends a tunnel without a
    StopCCN, and the description says which message; ``first_s`` is when the placing
    loop first saw one closed (seconds after the first call)."""
    reasons: dict[str, int] = {}
    counters: dict[int, dict[str, Any]] = {}
    for t in tunnels:
        closed = t.closed
        if closed is not None:
            reason = closed.reason
            code = f"{reason.result}/{reason.error}" if reason is not None else "-"
            key = f"{'peer' if closed.by_peer else 'local'} {code} {closed.description}"
        elif t.state in (TunnelState.CLOSING, TunnelState.CLOSED):
            key = f"{t.state.value}, TunnelClosed not dispatched yet"
        else:
            continue
        reasons[key] = reasons.get(key, 0) + 1
        if len(counters) < 3:  # the control transport's counters of a few of them
            counters[t.tunnel_id] = dataclasses.asdict(t.tunnel.transport.counters)
    return {
        "count": sum(reasons.values()),
        "reasons": reasons,
        "first_s": min(seen_at.values(), default=None),
        "transport_counters": counters,
    }


def _run_text(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n"


def _lac_transport(t: TunnelHandle) -> dict[str, Any]:
    tr = t.tunnel.transport
    return {
        "tunnel_id": t.tunnel_id,
        "peer_tunnel_id": t.peer_tunnel_id,
        "state": t.state.value,
        "transport_state": tr.state.value,
        "next_ns": tr.next_ns,
        "next_nr": tr.next_nr,
        "in_flight": tr.in_flight,
        "queued": tr.queued,
        "cwnd": tr.congestion.limit,
        "counters": dataclasses.asdict(tr.counters),
        "sock": str(t.sock),
        "sessions": len(t.sessions),
        "established": sum(1 for h in t.sessions.values() if h.established),
    }


STUCK_S = 7.0
"""A LAC tunnel's oldest unacknowledged message this old (three retransmissions: 1 + 2
+ 4 s) counts as stuck for :func:`watch_stuck`."""


async def watch_stuck(
    ctx: L2tpContext,
    tunnels: list[TunnelHandle],
    ns: Namespaces,
    lns: LnsProcess,
    out: Path,
    t0: float,
) -> None:
    """Diagnosis: once a LAC tunnel's oldest message has been unacknowledged for
    :data:`STUCK_S`, and again when one has closed, write both sides' view of it to
    ``out``: the LAC transport, the LNS's tunnels (``l2tp ctl``), both namespaces' UDP
    sockets and counters."""
    oldest: dict[int, tuple[int, float]] = {}
    """Per tunnel: its oldest unacknowledged Ns and since when it has been."""
    seen: set[str] = set()
    while True:
        await asyncio.sleep(1.0)
        now = time.monotonic()
        stuck = []
        for t in tunnels:
            tr = t.tunnel.transport
            if not tr.in_flight:
                oldest.pop(t.tunnel_id, None)
                continue
            first = (tr.next_ns - tr.queued - tr.in_flight) & 0xFFFF
            if oldest.get(t.tunnel_id, (-1, 0.0))[0] != first:
                oldest[t.tunnel_id] = (first, now)
            elif now - oldest[t.tunnel_id][1] >= STUCK_S:
                stuck.append(t)
        closed = [t for t in tunnels if t.state in (TunnelState.CLOSING, TunnelState.CLOSED)]
        for what, found in (("stuck", stuck), ("closed", closed)):
            if not found or what in seen:
                continue
            seen.add(what)
            lines = [f"{what} at {now - t0:.2f} s after the first call"]
            lines += [json.dumps(_lac_transport(t)) for t in found[:5]]
            lines.append(json.dumps({"lac_ctx": dataclasses.asdict(ctx.counters)}, default=str))
            argvs = [
                ["ip", "netns", "exec", ns.lns, "ss", "-uanmp"],
                ["ip", "netns", "exec", ns.lac, "ss", "-uanm"],
                ["ip", "netns", "exec", ns.lns, "cat", "/proc/net/snmp"],
                ["ip", "netns", "exec", ns.lac, "cat", "/proc/net/snmp"],
            ]
            if lns.control is not None:
                ctl = [sys.executable, "-m", "l2tp.cli.main", "ctl", "--socket", str(lns.control)]
                argvs.append([*ctl, "--json", "tunnels"])
                argvs.append([*ctl, "--json", "status"])
            for argv in argvs:
                lines.append(await asyncio.to_thread(_run_text, argv))
            name = out / f"{what}-{time.strftime('%H%M%S')}.txt"
            name.write_text("\n".join(lines))
        if len(seen) == 2:
            return


def lac_options(i: int) -> SessionOptions:
    return SessionOptions(
        name=f"s{i}",
        builtin_ppp=BuiltinPppOptions(auth=(AuthMethod.CHAP_MD5,), user=f"u{i}", password=PASSWORD),
    )


async def run_one(ns: Namespaces, kind: str, cond: Conditions) -> dict[str, Any]:
    """One LNS kind: set-up of every session, memory, shutdown; a dict of figures."""
    n = cond.sessions
    lns = await asyncio.to_thread(
        LnsProcess,
        ns,
        kind,
        cond.workdir,
        cond.secrets,
        cond.per_tunnel,
        cond.profile,
        cond.diagnose,
        cond.lns_verbose,
    )
    result: dict[str, Any] = {"lns": kind, "sessions": n}
    watch = PppWatch(ns.lns)
    watch.start()
    backend = BuiltinPppBackend()
    ctx = L2tpContext(dataplane=AsyncLinuxDataPlane(netns=ns.lac), backend=backend, netns=ns.lac)
    await ctx.start()
    try:
        before = Snapshot.take(lns.pid)
        tunnels_wanted = -(-n // cond.per_tunnel)
        t_open = time.monotonic()
        tunnels, failed_tunnels = await open_tunnels(
            ctx, (LNS_ADDR, 1701), tunnels_wanted, tunnel_config(Role.LAC, 60.0)
        )
        result["tunnels"] = len(tunnels)
        result["failed_tunnels"] = failed_tunnels
        result["tunnels_open_s"] = round(time.monotonic() - t_open, 2)
        t0, lac_cpu0 = time.monotonic(), time.process_time()
        handles: list[SessionHandle] = []
        stuck_task = None
        if cond.diagnose and cond.keep_logs is not None:
            stuck_task = asyncio.create_task(watch_stuck(ctx, tunnels, ns, lns, cond.keep_logs, t0))
        t_closed: dict[int, float] = {}
        for i in range(n):
            if cond.max_pending and not await room(handles, backend, cond):
                break
            # A tunnel that ended (e.g. its control transport failed) takes no more
            # calls; the run carries on with the others and reports it (closed_tunnels).
            # Its state says so at once, its handle's ``closed`` only once the loop
            # has dispatched the TunnelClosed.
            open_now = []
            for t in tunnels:
                if t.state in (TunnelState.CLOSING, TunnelState.CLOSED):
                    t_closed.setdefault(t.tunnel_id, round(time.monotonic() - t0, 2))
                else:
                    open_now.append(t)
            if not open_now:
                break
            tunnel = tunnels[i % len(tunnels)]
            if tunnel.tunnel_id in t_closed:
                tunnel = open_now[i % len(open_now)]
            handles.append(tunnel.place_call(options=lac_options(i)))
            if i % PACE == PACE - 1:
                await asyncio.sleep(0)
        l2tp_up_at: list[float] = []

        async def l2tp_established() -> None:
            await asyncio.gather(*(h.wait_established() for h in handles), return_exceptions=True)
            l2tp_up_at.append(time.monotonic())

        l2tp_task = asyncio.create_task(l2tp_established())
        lac_up_at: list[float] = []

        def all_up() -> bool:
            if backend.counters.network_up >= n and not lac_up_at:
                lac_up_at.append(time.monotonic())
            return len(watch.up) >= n and bool(lac_up_at)

        deadline = t0 + cond.timeout
        last_progress, last_count = time.monotonic(), -1
        while not all_up() and time.monotonic() < deadline:
            await watch.wait(all_up, min(deadline, time.monotonic() + 1.0))
            count = len(watch.up) + backend.counters.network_up
            if count != last_count:
                last_progress, last_count = time.monotonic(), count
            elif time.monotonic() - last_progress > cond.stall:
                break
        lac_cpu = time.process_time() - lac_cpu0
        t_lns_up = max(watch.up.values(), default=t0)
        t_last = max(t_lns_up, lac_up_at[0] if lac_up_at else t0)
        up_lns = await asyncio.to_thread(ppp_addresses, ns.lns)
        up = min(up_lns, backend.counters.network_up)
        seconds = t_last - t0
        result.update(
            {
                "up": up,
                "up_lns_dump": up_lns,
                "up_lac_ipcp": backend.counters.network_up,
                "all_up": up == n,
                "setup_s": round(seconds, 2),
                "sessions_per_second": round(up / seconds, 2) if seconds > 0 else 0.0,
                "lns_up_s": round(t_lns_up - t0, 2),
                "lac_up_s": round(lac_up_at[0] - t0, 2) if lac_up_at else None,
                "l2tp_established": sum(1 for h in handles if h.established),
                "l2tp_all_established_s": round(l2tp_up_at[0] - t0, 2) if l2tp_up_at else None,
                "failed_calls": failed_calls(handles),
                "closed_tunnels": closed_tunnels(tunnels, t_closed),
                "watch_overruns": watch.overruns,
                "lac_cpu_ms_per_session": round(1000 * lac_cpu / n, 1),
            }
        )
        l2tp_task.cancel()
        if stuck_task is not None:
            stuck_task.cancel()
        await asyncio.sleep(SETTLE_S)
        after = Snapshot.take(lns.pid)
        result.update(memory(before, after, n))
        result["lns_cpu_s"] = round(after.lns_cpu_s - before.lns_cpu_s, 2)
        result["lns_cpu_ms_per_session"] = round(1000 * result["lns_cpu_s"] / n, 1)
        result["lns_processes"] = after.lns_processes
        result["lns_ppp_qdiscs"] = await asyncio.to_thread(ppp_qdiscs, ns.lns)
        result["lac_ppp_qdiscs"] = await asyncio.to_thread(ppp_qdiscs, ns.lac)
        result["default_qdisc"] = Path("/proc/sys/net/core/default_qdisc").read_text().strip()
        # Shutdown: SIGTERM to the LNS until no ppp interface is left on its side.
        t_term = time.monotonic()
        os.kill(lns.pid, signal.SIGTERM)
        gone = await watch.wait(lambda: not watch.links, t_term + 120)
        result["shutdown_s"] = round(time.monotonic() - t_term, 2) if gone else None
        exited = await asyncio.to_thread(_wait_exit, lns.proc, 60.0)
        result["lns_exit_s"] = round(time.monotonic() - t_term, 2) if exited else None
        result["lns_exit_code"] = lns.proc.returncode
        result["lns_log_tail"] = lns.log_tail()
    finally:
        await ctx.close(ack_timeout=1.0)
        await backend.close()
        watch.close()
        lns.kill()
        if cond.keep_logs is not None:
            cond.keep_logs.mkdir(parents=True, exist_ok=True)
            kept = cond.keep_logs / f"lns-{kind}-{time.strftime('%H%M%S')}.log"
            shutil.copyfile(lns.log_path, kept)
    result["left_ppp_links"] = {
        "lns": await asyncio.to_thread(ppp_links, ns.lns),
        "lac": await asyncio.to_thread(ppp_links, ns.lac),
    }
    return result


async def profiled(job: Any, cond: Conditions, name: str) -> dict[str, Any]:
    """Await ``job`` under cProfile when ``--profile`` is given (this process: the LAC)."""
    if cond.profile is None:
        result: dict[str, Any] = await job
        return result
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        result = await job
    finally:
        profiler.disable()
        profiler.dump_stats(cond.profile / f"{name}.prof")
    return result


def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def memory(before: Snapshot, after: Snapshot, n: int) -> dict[str, Any]:
    drop = before.mem_available_kib - after.mem_available_kib
    lns = after.lns_pss_kib - before.lns_pss_kib
    lac = after.lac_pss_kib - before.lac_pss_kib
    kernel = (sum(after.kernel.values()) - sum(before.kernel.values())) // 1024
    growth = {k: v - before.kernel.get(k, 0) for k, v in after.kernel.items()}
    top = sorted(growth.items(), key=lambda kv: -kv[1])[:10]
    return {
        "mem_available_drop_mib": round(drop / 1024, 1),
        "lns_pss_growth_mib": round(lns / 1024, 1),
        "lac_pss_growth_mib": round(lac / 1024, 1),
        "kernel_mib": round(kernel / 1024, 1),
        "end_to_end_kib_per_session": round((lns + lac + kernel) / n, 1),
        "lns_side_kib_per_session": round((lns + kernel / 2) / n, 1),
        "lns_pss_kib_per_session": round(lns / n, 1),
        "kernel_kib_per_session": round(kernel / n, 1),
        "mem_available_drop_kib_per_session": round(drop / n, 1),
        "kernel_top_bytes_per_session": {k: round(v / n) for k, v in top},
    }


RATIOS = {
    "setup_rate_ratio": ("sessions_per_second", "builtin / pppd set-up rate"),
    "lns_side_memory_ratio": ("lns_side_kib_per_session", "builtin / pppd LNS-side KiB"),
    "end_to_end_memory_ratio": ("end_to_end_kib_per_session", "builtin / pppd end-to-end KiB"),
    "shutdown_ratio": ("shutdown_s", "builtin / pppd shutdown time"),
    "lns_cpu_ratio": ("lns_cpu_s", "builtin / pppd LNS CPU over the set-up"),
}


def ratios(cases: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    b, p = cases.get("builtin"), cases.get("pppd")
    if b is None or p is None:
        return {}
    found: dict[str, float | None] = {}
    for name, (key, _what) in RATIOS.items():
        x, y = b.get(key), p.get(key)
        found[name] = round(x / y, 4) if isinstance(x, int | float) and y else None
    return found


def goals(cases: dict[str, dict[str, Any]], ratio: dict[str, float | None]) -> dict[str, Any]:
    b = cases.get("builtin")
    if b is None:
        return {}
    rate = ratio.get("setup_rate_ratio")
    shutdown = b.get("shutdown_s")
    return {
        "setup_rate_10x": None if rate is None else rate >= GOALS["setup_rate_ratio"],
        "lns_side_50kb": b["lns_side_kib_per_session"] <= GOALS["lns_side_kib_per_session"],
        "shutdown_under_2s": shutdown is not None and shutdown < GOALS["shutdown_s"],
        "every_session_up": all(c.get("all_up") for c in cases.values()),
    }


async def run_pairs(args: argparse.Namespace) -> dict[str, Any]:
    kinds = [k for k in args.lns.split(",") if k]
    with tempfile.TemporaryDirectory(prefix="bench-ppp-", dir=args.workdir) as tmp:
        cond = Conditions(
            args.sessions,
            args.per_tunnel,
            args.timeout,
            args.stall,
            Path(tmp),
            args.profile,
            args.max_pending,
            args.keep_logs,
            args.lns_verbose,
            args.diagnose,
        )
        ns = await asyncio.to_thread(Namespaces.make)
        pairs = []
        try:
            for number in range(args.repeat):
                cases: dict[str, dict[str, Any]] = {}
                # Every other pair in the reverse order: the first run of a boot meets a
                # colder kernel (slab caches to grow) than the runs after it.
                for kind in kinds if number % 2 == 0 else kinds[::-1]:
                    print(f"[bench_ppp] {kind}: {args.sessions} sessions ...", file=sys.stderr)
                    cases[kind] = await profiled(run_one(ns, kind, cond), cond, f"lac-{kind}")
                    print(f"[bench_ppp] {json.dumps(cases[kind])}", file=sys.stderr, flush=True)
                cases = {kind: cases[kind] for kind in kinds}
                ratio = ratios(cases)
                pairs.append({"cases": cases, "ratios": ratio, "goals": goals(cases, ratio)})
        finally:
            await asyncio.to_thread(ns.delete)
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "conditions": conditions(args),
        "pairs": pairs,
    }


def conditions(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "what": "the same LAC (L2tpContext, async Linux data plane, built-in PPP peer, CHAP-MD5) "
        "-> l2tp-lns in its own process and namespace (veth), ppp = builtin or pppd; L2TPv2/UDP",
        "sessions": args.sessions,
        "per_tunnel": args.per_tunnel,
        "max_pending": args.max_pending,
        "lns_kinds": args.lns,
        "up": "LNS interface with address + peer (rtnetlink event) and LAC IPCP open",
        "rate": "sessions up / (last up - first call placed)",
        "memory": "MemAvailable drop and PSS growth (LNS tree, LAC) from before the first call "
        f"to {SETTLE_S} s after the last up; lns_side = LNS PSS + half the kernel share",
        "shutdown": "SIGTERM to l2tp-lns -> no ppp interface left in its namespace",
        "goals": GOALS,
        "kernel": os.uname().release,
        "repeat": args.repeat,
    }


def print_report(report: dict[str, Any]) -> None:
    keys = ("up", "sessions_per_second", "setup_s", "end_to_end_kib_per_session")
    keys += ("lns_side_kib_per_session", "lns_pss_kib_per_session", "kernel_kib_per_session")
    keys += ("shutdown_s", "lns_exit_s", "lns_cpu_ms_per_session", "lac_cpu_ms_per_session")
    for i, pair in enumerate(report["pairs"], 1):
        print(f"pair {i}:", file=sys.stderr)
        for kind, case in pair["cases"].items():
            cells = ", ".join(f"{k}={case.get(k)}" for k in keys)
            print(f"  {kind:>7}: {cells}", file=sys.stderr)
        print(f"  ratios: {pair['ratios']}", file=sys.stderr)
        print(f"  goals: {pair['goals']}", file=sys.stderr)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--short", action="store_true", help="10 sessions, 5 per tunnel")
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--per-tunnel", type=int, default=50)
    p.add_argument("--lns", default="builtin,pppd", help="LNS kinds, in order")
    p.add_argument("--repeat", type=int, default=1, help="pairs in this run")
    p.add_argument(
        "--max-pending", type=int, default=0, help="calls placed and not up at once (0: all)"
    )
    p.add_argument("--timeout", type=float, default=900.0, help="s for every session to be up")
    p.add_argument("--stall", type=float, default=90.0, help="end a set-up after s w/o progress")
    p.add_argument("--workdir", default=None, help="where the config files go (default: /tmp)")
    p.add_argument(
        "--profile", type=Path, help="write cProfile data of the LNS and the LAC into this folder"
    )
    p.add_argument("--keep-logs", type=Path, help="copy each run's l2tp-lns log into this folder")
    p.add_argument("--lns-verbose", action="count", default=0, help="-v for the LNS (its log)")
    p.add_argument(
        "--diagnose",
        action="store_true",
        help="with --keep-logs: snapshot both sides when a LAC tunnel message goes unacknowledged",
    )
    p.add_argument("--json", action="store_true", help="one JSON line of the report on stdout")
    p.add_argument("--json-out", type=Path, help="write the report here")
    args = p.parse_args(argv)
    if args.short:
        args.sessions, args.per_tunnel, args.timeout, args.stall = 10, 5, 120.0, 30.0
    return args


def missing() -> str | None:
    """None when this process can run the benchmark (root, kernel PPP over L2TP, pppd)."""
    if os.geteuid() != 0:
        return "needs root"
    try:
        socket.socket(24, socket.SOCK_DGRAM, 1).close()  # AF_PPPOX, PX_PROTO_OL2TP
    except OSError as exc:
        return f"no kernel L2TP/PPP here: {exc}"
    return None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    why = missing()
    if why:
        raise SystemExit(f"bench_ppp.py: {why}")
    report = asyncio.run(run_pairs(args))
    report["command"] = " ".join(["bench_ppp.py", *(argv if argv is not None else sys.argv[1:])])
    print_report(report)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
