"""Churn of built-in PPP calls against one long-lived ``l2tp-lns``: nothing may leak.

An ``l2tp-lns`` with ``ppp = "builtin"`` (CHAP-MD5 and PAP against a secrets file, a
/28 address pool: :data:`POOL_SIZE` addresses) runs for the whole test. Its figures are
read from outside, as an operator would: its open fds (``/proc/PID/fd``, each socket
named by its protocol from ``/proc/PID/net``), its threads, the ``pppN`` interfaces and
kernel L2TP tunnels and sessions of its namespace, and ``l2tp ctl status``.

The LAC is this process: two :class:`~l2tp.runtime.control.L2tpContext` on the Linux
data plane, one with the built-in PPP backend (peer role) and one without a backend,
whose PPP therefore never answers (a LAC frozen mid-LCP). In-process, each call's end
can be timed against the LNS's set-up, which since issue 17 makes the kernel session,
the PPPoL2TP socket and the PPP channel *before* it answers with its ICRP (the call's
``wait_data_plane``), on a pool of threads. Each of :data:`ROUNDS` rounds has two steps:

1. as many good calls as the pool has addresses (CHAP and PAP), on two tunnels: every
   one must come up with its own address from the pool, so an address not given back
   in an earlier round fails it; then one tunnel's calls end by CDN and the other
   tunnel by a StopCCN with its calls up. At the same time, calls that never reach
   IPCP: a wrong password (CHAP and PAP: the LNS ends them, CDN 2/6); a LAC killed
   mid-LCP (its tunnel dropped without a StopCCN while the LNS's LCP waits for an
   answer, so the LNS's control transport gives up on it: short ``hello_timeout``,
   ``retry_timeout`` and ``max_retries`` in its file); and in the first round only,
   calls whose LCP never completes on a live tunnel, which the LNS ends itself when its
   LCP gives up (``restart_interval`` and ``max_configure`` in its file: 4
   Configure-Requests 0.5 s apart, instead of RFC 1661 4.6's 10 x 3 s);
2. calls the LAC ends with a CDN at once and a few ms after its ICRQ (the LNS making the
   call's kernel session and channel), after the ICRP (the LNS holding a prepared
   channel, LCP not started) and right after the ICCN (the LNS starting its PPP); a
   tunnel the LAC closes (StopCCN) a few ms after placing its calls; and one the LNS's
   operator closes (``l2tp ctl close tunnel``) while its calls are being set up.

Step 2 comes last because its calls may hold pool addresses a little after their CDN:
the LNS keeps a call's address until its link is released, up to its ``terminate_wait``
(1 s) after the CDN, and a call ended right after its ICCN can even reach the network
phase and take an address before its tear-down starts (seen once in the VM: CHAP done
6 ms and ``ppp0`` up 21 ms after the CDN; the tear-down is a task, and the link's frames
are read until it runs). A last round of step 1 alone checks the pool after the last
step 2.

After each round, once the LNS reports no tunnel and no session (which includes each
tunnel's close-wait, ~4 s with these timers): its fds are exactly those it had before
its first call plus the one it opens at that call and keeps
(:data:`KEPT_AFTER_FIRST_CALL`); its threads are bounded by its worker pools; no
``pppN``, kernel tunnel or kernel session is left on either side; and its log has no
ERROR and no traceback. At the end the LNS is stopped with SIGTERM while calls are being
set up: exit status 0, nothing left. The figures are printed (``-s``) and written to
``$L2TP_VM_RESULTS/ppp-churn.txt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from l2tp.cli.ctl import Connection
from l2tp.daemons.ctl_protocol import Command, Request
from l2tp.kernel.async_dataplane import AsyncLinuxDataPlane
from l2tp.kernel.ppp_device import CLOSE_THREADS, OPEN_THREADS
from l2tp.ppp import AuthMethod
from l2tp.protocol.events import Role
from l2tp.protocol.tunnel_config import TunnelConfig
from l2tp.runtime.backend import SessionOptions
from l2tp.runtime.builtin_ppp import BuiltinPppBackend
from l2tp.runtime.control import L2tpContext
from l2tp.runtime.handles import TunnelHandle
from l2tp.runtime.ppp_hooks import BuiltinPppOptions
from l2tp.runtime.session_handle import SessionHandle
from tests.helpers import until_blocking, wait_until
from tests.kernel.conftest import VethPair
from tests.kernel.daemons import DaemonProcess, ForkedChild, clean_up, l2tp_objects

pytestmark = pytest.mark.kernel

ROUNDS = 3
POOL = IPv4Network("10.77.1.0/28")
POOL_SIZE = POOL.num_addresses - 2
"""14: the network and broadcast addresses are never handed out."""
LNS_PPP_ADDRESS = IPv4Address("10.77.0.1")
"""Outside the pool, so every pool address is the peers'."""
CHAP_USER, CHAP_PASSWORD = "churn", "churn-pass"
PAP_USER, PAP_PASSWORD = "papper", "pap-pass"
HELLO_MS, RETRY_MS, MAX_RETRIES = 1000, 250, 3
"""The LNS's control transport: a HELLO after 1 s of silence; a message unacknowledged
after 0.25 + 0.5 + 1 + 2 s ends its tunnel, so a killed LAC is noticed within ~5 s."""
IDLE_WITHIN = 30.0
"""Seconds for the LNS to be idle (and its fds back) after a round's last LAC action: the
killed LAC's tunnel (~5 s, above) is the longest wait."""
RESTART_MS = 500
MAX_CONFIGURE = 4
LCP_GIVES_UP = RESTART_MS / 1000 * MAX_CONFIGURE
"""The LNS's LCP: 4 Configure-Requests 0.5 s apart (its ``restart_interval`` and
``max_configure``; RFC 1661 4.6's defaults, 10 x 3 s, would be the test's longest
wait)."""
KEPT_AFTER_FIRST_CALL = Counter({"netlink-route": 1})
"""The fds the LNS opens at its first built-in PPP session and keeps for its life:
the rtnetlink socket of :class:`~l2tp.kernel.ppp_device.PppInterfaces` for its
namespace (interfaces renamed, addressed, removed in batches). The rest of a session's
fds (its PPPoL2TP socket, channel fd and unit fd; its tunnel's UDP socket) must go
with it."""
MAX_IDLE_THREADS = 1 + OPEN_THREADS + CLOSE_THREADS + min(32, (os.cpu_count() or 1) + 4)
"""The LNS's main thread, the channel openers and closers (made on demand, then kept),
and asyncio's default executor (name resolution, files)."""


class Lns(DaemonProcess):
    MODULE = "l2tp.daemons.lns"
    FORK = True


def lns_config(pair: VethPair, secrets: Path) -> str:
    return f"""
[listener.main]
listen = "{pair.a4}:1701"
ppp = "builtin"
hello_timeout = {HELLO_MS}
retry_timeout = {RETRY_MS}
max_retries = {MAX_RETRIES}

[listener.main.builtin_ppp]
auth = ["chap-md5", "pap"]
secrets = "{secrets}"
name = "lns"
local_address = "{LNS_PPP_ADDRESS}"
address_pool = "{POOL}"
restart_interval = {RESTART_MS}
max_configure = {MAX_CONFIGURE}
"""


# --- what the LNS holds, read from outside -----------------------------------------------


def _socket_kinds(pid: int) -> dict[int, str]:
    """Socket inode -> kind (``netlink-route``, ``udp``, ``udp-connected``, ``unix``)
    for the sockets of ``pid``'s namespace; a socket not listed (PPPoL2TP) is
    ``socket``."""
    kinds: dict[int, str] = {}
    names = {0: "route", 16: "generic"}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/net/netlink") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            protocol = int(fields[1])
            kinds[int(fields[-1])] = f"netlink-{names.get(protocol, protocol)}"
    for table in ("udp", "udp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                connected = not fields[2].endswith(":0000")
                kinds[int(fields[9])] = "udp-connected" if connected else "udp"
    with contextlib.suppress(OSError), open(f"/proc/{pid}/net/unix") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            kinds[int(fields[6])] = "unix"
    return kinds


def fd_kinds(pid: int) -> Counter[str]:
    """The open fds of ``pid`` by kind: socket kinds (:func:`_socket_kinds`),
    ``anon_inode:[...]``, ``pipe``, or the file's path (``/dev/ppp``: a channel or unit)."""
    sockets = _socket_kinds(pid)
    found: Counter[str] = Counter()
    for entry in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{entry}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            found[sockets.get(int(target[8:-1]), "socket")] += 1
        elif target.startswith("pipe:"):
            found["pipe"] += 1
        else:
            found[target] += 1
    return found


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no Threads line for {pid}")


def ppp_links(ns: str) -> dict[str, tuple[str, str] | None]:
    """``{ifname: (local, peer) IPv4 or None}`` of the ppp interfaces of ``ns``."""
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    found: dict[str, tuple[str, str] | None] = {}
    for link in json.loads(out or "[]"):
        if link.get("link_type") != "ppp":
            continue
        inet = [a for a in link.get("addr_info", []) if a.get("family") == "inet"]
        address = (str(inet[0]["local"]), str(inet[0].get("address"))) if inet else None
        found[str(link["ifname"])] = address
    return found


def ctl(lns: Lns, request: Request) -> Any:
    """One request on a connection of its own, closed by the LNS before this returns (its
    end of the connection is not one of the fds the test counts)."""
    conn = Connection(lns.path.with_suffix(".sock"), timeout=20.0)
    try:
        result = conn.call(request)
        conn.sock.shutdown(socket.SHUT_WR)
        while conn.sock.recv(4096):
            pass
        return result
    finally:
        conn.close()


def status(lns: Lns) -> dict[str, Any]:
    result: dict[str, Any] = ctl(lns, Request(id=1, command=Command.STATUS))
    return result


def bad_log_lines(lns: Lns) -> list[str]:
    return [
        line
        for line in lns.output().splitlines()
        if " ERROR " in line or " CRITICAL " in line or "Traceback" in line
    ]


@dataclass
class Snapshot:
    """The LNS at rest (no tunnel, no session) and both namespaces."""

    fds: Counter[str]
    threads: int
    status: dict[str, Any]
    lns_ppp: dict[str, tuple[str, str] | None]
    lns_kernel: tuple[list[Any], list[Any]]
    lac_ppp: dict[str, tuple[str, str] | None]
    lac_kernel: tuple[list[Any], list[Any]]

    @classmethod
    def take(cls, lns: Lns, pair: VethPair) -> Snapshot:
        assert lns.proc is not None
        state = status(lns)  # first: its connection is closed before the fds are read
        return cls(
            fds=fd_kinds(lns.proc.pid),
            threads=threads(lns.proc.pid),
            status=state,
            lns_ppp=ppp_links(pair.ns_a),
            lns_kernel=l2tp_objects(pair.ns_a),
            lac_ppp=ppp_links(pair.ns_b),
            lac_kernel=l2tp_objects(pair.ns_b),
        )

    def idle(self, fds: Counter[str] | None) -> bool:
        """Nothing of any call left (and, given ``fds``, exactly those fds open)."""
        return (
            self.status["tunnels"] == {}
            and self.status["sessions"] == {}
            and not self.lns_ppp
            and self.lns_kernel == ([], [])
            and not self.lac_ppp
            and self.lac_kernel == ([], [])
            and (fds is None or self.fds == fds)
        )

    def describe(self, fds: Counter[str] | None) -> str:
        diff = ""
        if fds is not None:
            more, fewer = self.fds - fds, fds - self.fds
            diff = f"fds beyond the baseline: {dict(more)}; missing: {dict(fewer)}\n"
        return (
            f"{diff}LNS status: tunnels {self.status['tunnels']}, sessions "
            f"{self.status['sessions']}, summary {self.status['summary']!r}\n"
            f"LNS ppp {self.lns_ppp}, kernel {self.lns_kernel}\n"
            f"LAC ppp {self.lac_ppp}, kernel {self.lac_kernel}\nthreads {self.threads}"
        )


# --- the LAC -----------------------------------------------------------------------------


def chap(password: str = CHAP_PASSWORD) -> SessionOptions:
    auth = (AuthMethod.CHAP_MD5,)
    return SessionOptions(
        name="churn",
        builtin_ppp=BuiltinPppOptions(auth=auth, user=CHAP_USER, password=password),
    )


def pap(password: str = PAP_PASSWORD) -> SessionOptions:
    auth = (AuthMethod.PAP,)
    return SessionOptions(
        name="churn-pap",
        builtin_ppp=BuiltinPppOptions(auth=auth, user=PAP_USER, password=password),
    )


async def turns(condition: Callable[[], bool], timeout: float) -> bool:
    """Wait (1 ms steps) for ``condition`` on the loop; its last value."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    return condition()


@dataclass
class Lac:
    pair: VethPair
    lns: Lns
    backend: BuiltinPppBackend = field(init=False)
    ppp: L2tpContext = field(init=False)
    """Calls with the built-in PPP (peer role)."""
    mute: L2tpContext = field(init=False)
    """Calls without a backend: the LNS's LCP is never answered."""
    ends: Counter[str] = field(default_factory=Counter)
    """When the early CDNs left (``before ICRP`` ...), over every round."""

    def __post_init__(self) -> None:
        ns = self.pair.ns_b
        self.backend = BuiltinPppBackend(terminate_wait=1.0)
        plane = AsyncLinuxDataPlane(netns=ns)
        self.ppp = L2tpContext(dataplane=plane, backend=self.backend, netns=ns)
        self.mute = L2tpContext(dataplane=AsyncLinuxDataPlane(netns=ns), netns=ns)

    async def tunnel(self, ctx: L2tpContext | None = None) -> TunnelHandle:
        config = TunnelConfig(role=Role.LAC, host_name="churn-lac")
        return await (ctx or self.ppp).open_tunnel((self.pair.a4, 1701), config=config)

    async def close(self) -> None:
        for ctx in (self.ppp, self.mute):
            if not ctx.closed:
                await ctx.close(ack_timeout=1.0)
        await self.backend.close()

    # --- the pieces of a round ---

    async def early_cdns(self, rnd: int) -> None:
        """CDNs from the LAC at every step of the LNS's set-up of a call."""
        th = await self.tunnel()

        async def end(handle: SessionHandle, when: str, delay: float) -> None:
            if when == "ICRQ":
                if delay:
                    await asyncio.sleep(delay)
                when = "before ICRP" if handle.peer_session_id == 0 else "after ICRP"
            elif when == "ICRP":  # the LAC makes its channel before its ICCN leaves
                await turns(lambda: handle.peer_session_id != 0 or handle.closed is not None, 10)
                when = "after ICRP" if handle.info is None else "after ICCN"
            else:  # the LNS starts its PPP at the ICCN
                when = "after ICCN"
                await turns(lambda: handle.info is not None or handle.closed is not None, 10)
            if handle.closed is not None:
                when = "closed first"
            self.ends[when] += 1
            await asyncio.wait_for(handle.close(message="churn"), 20)

        steps = [("ICRQ", 0.0), ("ICRQ", 0.002 * rnd), ("ICRQ", 0.01 + 0.01 * rnd)]
        steps += [("ICRP", 0.0)] * 2 + [("ICCN", 0.0)] * 2
        calls = [(th.place_call(options=chap()), when, delay) for when, delay in steps]
        await asyncio.gather(*(end(h, when, delay) for h, when, delay in calls))
        await th.close(ack_timeout=2.0)

    async def early_stopccn(self, rnd: int) -> None:
        """A StopCCN from the LAC ``rnd`` x 10 ms after it placed its calls."""
        th = await self.tunnel()
        for n in range(4):
            th.place_call(options=chap() if n % 2 else pap())
        await asyncio.sleep(0.01 * rnd)
        await asyncio.wait_for(th.close(ack_timeout=2.0), 20)

    async def operator_close(self) -> None:
        """``l2tp ctl close tunnel`` on the LNS while its calls are being set up."""
        th = await self.tunnel()
        for _ in range(4):
            th.place_call(options=chap())
        request = Request(id=1, command=Command.CLOSE_TUNNEL, tunnel_id=th.peer_tunnel_id)
        await asyncio.to_thread(ctl, self.lns, request)
        await asyncio.wait_for(th.wait_closed(), 20)

    async def wrong_passwords(self) -> None:
        """Authentication fails (CHAP and PAP): the call ends, no address given."""
        th = await self.tunnel()
        calls = [th.place_call(options=chap("wr0ng")), th.place_call(options=pap("wr0ng"))]
        for handle in calls:
            closed = await asyncio.wait_for(handle.wait_closed(), 30)
            reason = closed.reason
            assert reason is not None and (reason.result, reason.error) == (2, 6), closed
        await th.close(ack_timeout=2.0)

    async def killed_mid_lcp(self) -> None:
        """Calls up at L2TP, the LNS's LCP unanswered, then the LAC gone without a word."""
        th = await self.tunnel(self.mute)
        calls = [th.place_call() for _ in range(3)]
        await asyncio.wait_for(asyncio.gather(*(h.wait_established() for h in calls)), 20)
        await asyncio.sleep(0.3)  # the LNS has the ICCNs: its LCP is running
        th.abandon()  # no StopCCN, no more acknowledgements; its socket closed

    async def lcp_never_completes(self) -> None:
        """The LNS gives up LCP on a live tunnel and ends each call itself."""
        th = await self.tunnel(self.mute)
        calls = [th.place_call() for _ in range(2)]
        started = time.monotonic()
        for handle in calls:
            closed = await asyncio.wait_for(handle.wait_closed(), LCP_GIVES_UP + 30)
            assert closed.by_peer and closed.reason is not None, closed
            assert closed.reason.message == "PPP negotiation failed", closed
        took = time.monotonic() - started
        assert took > LCP_GIVES_UP * 0.8, took
        await th.close(ack_timeout=2.0)

    async def whole_pool(self) -> list[str]:
        """As many calls as the pool has addresses: all up, each with its own address;
        then CDNs for one tunnel's calls and a StopCCN for the other tunnel."""
        by_cdn, by_stopccn = await asyncio.gather(self.tunnel(), self.tunnel())
        handles = []
        for n in range(POOL_SIZE):
            th = by_cdn if n % 2 else by_stopccn
            handles.append(th.place_call(options=pap() if n % 3 == 0 else chap()))

        def all_up() -> bool:
            if any(h.closed is not None for h in handles):
                return True  # failed: no need to wait for the rest
            lac = [a for a in ppp_links(self.pair.ns_b).values() if a is not None]
            lns = ppp_links(self.pair.ns_a)
            return len(lac) == POOL_SIZE and len(lns) == POOL_SIZE

        try:
            await until_blocking(all_up, 60, f"{POOL_SIZE} PPP sessions up (the whole pool)")
            closed = [h.closed for h in handles if h.closed is not None]
            assert not closed, f"calls of the whole pool ended: {closed}"
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.lns.tail(30)}") from None
        links = await asyncio.to_thread(ppp_links, self.pair.ns_b)
        addresses = sorted(a[0] for a in links.values() if a is not None)
        assert len(set(addresses)) == POOL_SIZE, addresses
        assert all(IPv4Address(a) in POOL for a in addresses), addresses
        assert {a[1] for a in links.values() if a is not None} == {str(LNS_PPP_ADDRESS)}
        cdn = [h for h in handles if h.tunnel is by_cdn]
        await asyncio.wait_for(asyncio.gather(*(h.close(message="churn") for h in cdn)), 30)
        await asyncio.wait_for(by_stopccn.close(ack_timeout=2.0), 30)
        await by_cdn.close(ack_timeout=2.0)
        return addresses


async def one_round(lac: Lac, rnd: int) -> None:
    """The whole pool first, with the calls that never reach IPCP; then the calls ended
    early, which could: the LNS keeps a call's address until its link is released, up
    to ``terminate_wait`` (1 s) after the CDN, and may even reach IPCP before its
    tear-down starts. The next round's pool (or :func:`last_round`) checks that every
    address came back."""
    pieces: list[Awaitable[object]] = [lac.killed_mid_lcp(), lac.whole_pool()]
    pieces.append(lac.wrong_passwords())
    if rnd == 0:
        pieces.append(lac.lcp_never_completes())
    await asyncio.gather(*pieces)
    await asyncio.gather(lac.early_cdns(rnd), lac.early_stopccn(rnd), lac.operator_close())


async def last_round(lac: Lac, rnd: int) -> None:
    """The whole pool once more, after the last calls ended early."""
    await lac.whole_pool()


# --- the test ----------------------------------------------------------------------------


@pytest.fixture
def lns(veth_pair: VethPair, tmp_path: Path) -> Iterator[Lns]:
    secrets = tmp_path / "chap-secrets"
    secrets.write_text(f'{CHAP_USER} * "{CHAP_PASSWORD}"\n{PAP_USER} * "{PAP_PASSWORD}"\n')
    secrets.chmod(0o600)
    daemon = Lns(veth_pair.ns_a, lns_config(veth_pair, secrets), tmp_path, "lns")
    # Forking is only safe without other threads; an earlier test's pools end soon.
    with contextlib.suppress(AssertionError):
        wait_until(ForkedChild.possible, 5, "no other thread")
    try:
        daemon.start()
        yield daemon
    finally:
        results = os.environ.get("L2TP_VM_RESULTS")
        if results:
            (Path(results) / "ppp-churn-lns.log").write_text(daemon.output())
        clean_up([daemon], (veth_pair.ns_a, veth_pair.ns_b))


def test_ppp_call_churn_leaks_nothing(veth_pair: VethPair, lns: Lns) -> None:
    pair = veth_pair
    assert lns.proc is not None
    pid = lns.proc.pid
    cold = Snapshot.take(lns, pair)
    assert cold.idle(None), cold.describe(None)
    baseline = cold.fds + KEPT_AFTER_FIRST_CALL
    figures: list[str] = []

    def settled(rnd: int) -> Snapshot:
        snaps: list[Snapshot] = []

        def check() -> bool:
            snaps.append(Snapshot.take(lns, pair))
            return snaps[-1].idle(baseline)

        try:
            wait_until(check, IDLE_WITHIN, f"the LNS at rest after round {rnd}", interval=0.25)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{snaps[-1].describe(baseline)}\n{lns.tail()}") from None
        return snaps[-1]

    async def scenario() -> Counter[str]:
        lac = Lac(pair, lns)
        try:
            for rnd in range(ROUNDS + 1):
                started = time.monotonic()
                await (one_round if rnd < ROUNDS else last_round)(lac, rnd)
                acted = time.monotonic()
                after = await asyncio.to_thread(settled, rnd)
                assert after.threads <= MAX_IDLE_THREADS, (after.threads, MAX_IDLE_THREADS)
                assert not bad_log_lines(lns), "\n".join(bad_log_lines(lns))
                figures.append(
                    f"round {rnd}: {acted - started:.1f} s of calls, at rest"
                    f" {time.monotonic() - acted:.1f} s later; {sum(after.fds.values())}"
                    f" fds, {after.threads} threads"
                )
            # Early CDNs landed both before the ICRP (the LNS making the call's kernel
            # session and channel) and after it.
            assert lac.ends["before ICRP"] and lac.ends["after ICRP"], lac.ends
            await shutdown_mid_setup(lac, lns, pair)
        finally:
            await lac.close()
        return lac.ends

    ends = asyncio.run(asyncio.wait_for(scenario(), 300))
    report = (
        f"l2tp-lns pid {pid} ({'forked' if lns.forked else 'new Python'}): before the"
        f" first call {sum(cold.fds.values())} fds {dict(cold.fds)}, {cold.threads}"
        f" threads\n" + "\n".join(figures) + f"\nearly CDNs: {dict(ends)}\n"
    )
    print("\n" + report, end="")
    results = os.environ.get("L2TP_VM_RESULTS")
    if results:
        (Path(results) / "ppp-churn.txt").write_text(report)


async def shutdown_mid_setup(lac: Lac, lns: Lns, pair: VethPair) -> None:
    """SIGTERM to the LNS while calls are being set up: exit 0, nothing left behind."""
    th = await lac.tunnel()
    for _ in range(6):
        th.place_call(options=chap())
    await asyncio.sleep(0.02)
    assert lns.proc is not None
    lns.proc.send_signal(signal.SIGTERM)
    status_code = await asyncio.to_thread(lns.proc.wait, 30)
    assert status_code == 0, lns.tail()
    await asyncio.wait_for(th.wait_closed(), 20)
    assert l2tp_objects(pair.ns_a) == ([], []) and not ppp_links(pair.ns_a)
    assert not bad_log_lines(lns), "\n".join(bad_log_lines(lns))
