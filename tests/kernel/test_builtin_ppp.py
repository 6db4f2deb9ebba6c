"""Built-in PPP on the kernel's PPP channels: real kernel, real peers, ping across.

Our side runs in this process: the daemons' own classes (``Lns``, ``Kl2tpd``) on an
:class:`~l2tp.runtime.control.L2tpContext` with the Linux data plane, loaded from TOML text
with ``ppp = "builtin"``, and the dispatching backend the daemons use (built-in PPP or
pppd by session). One process and one event loop for both of our ends keeps the emulated
VM's process starts (0.25-0.5 s each) to the peers we test against:

1. our kl2tpd side (peer role) -> our l2tp-lns side (authenticator), L2TPv2: MS-CHAPv2 and
   CHAP-MD5 sessions with IPCP and IPv6CP, ping and ping6 across, a wrong password ending
   in the documented CDN, shutdown of everything within the bound;
2. xl2tpd LAC + pppd (PAP, CHAP-MD5, MS-CHAPv2, and a wrong password) -> our LNS: ping
   each client, the CDN of the failure, a frozen pppd (SIGSTOP) closed after
   lcp_echo_interval x lcp_echo_failure with CDN 1;
3. our LAC (peer role) -> xl2tpd LNS + pppd with ``require-chap`` and
   ``require-mschap-v2``: one session authenticates with CHAP-MD5, one with MS-CHAPv2;
4. an L2TPv3 PPP pseudowire (RFC 4591) between two of our l2tpd, with cookies.

Every scenario ends by checking that no ppp interface, kernel tunnel or session, and no
fd of ours is left. Every scenario also records the L2TP traffic on the LNS's veth
(tcpdump, for the scenario's whole run) and has tshark decode every PPP frame in it (LCP,
PAP, CHAP-MD5 and MS-CHAPv2, IPCP, IPv6CP, and the ICMP inside; L2TPv2 and the L2TPv3
pseudowire with its 4- and 8-byte cookies): no malformed packet, no protocol error
(:mod:`tests.tshark_ppp`), each expected protocol seen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from l2tp import config as cfg
from l2tp.daemons.kl2tpd import Kl2tpd
from l2tp.daemons.l2tpd import L2tpd
from l2tp.daemons.lns import Lns
from l2tp.kernel.async_dataplane import AsyncLinuxDataPlane
from l2tp.protocol.events import SessionClosed
from l2tp.runtime.builtin_ppp import BuiltinPppBackend, DispatchingBackend, Ending
from l2tp.runtime.control import L2tpContext
from l2tp.runtime.ppp import PppdBackend
from tests.helpers import require_tool, until_blocking, wait_until
from tests.kernel.conftest import VethPair, ip_batch
from tests.kernel.test_l2tpv2_pppd import _l2tp_state
from tests.kernel.xl2tpd_harness import (
    Capture,
    Xl2tpd,
    pids_matching,
    save_artifact,
)
from tests.tshark_ppp import assert_ppp_frames_decode

pytestmark = pytest.mark.kernel

ARGS = argparse.Namespace(stop_timeout=1.0)


# --- helpers ---------------------------------------------------------------------------


def _links(ns: str) -> list[dict[str, object]]:
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    return [link for link in json.loads(out or "[]") if link.get("link_type") == "ppp"]


def ppp_links(ns: str) -> dict[str, dict[str, tuple[str, str]]]:
    """``{ifname: {"inet"|"inet6": (local, peer)}}`` of the ppp interfaces in ``ns``."""
    found: dict[str, dict[str, tuple[str, str]]] = {}
    for link in _links(ns):
        entry = found.setdefault(str(link["ifname"]), {})
        for addr in link.get("addr_info", []):  # type: ignore[attr-defined]
            if "address" in addr:
                entry[addr["family"]] = (addr["local"], addr["address"])
    return found


def ping(ns: str, address: str, *, interface: str | None = None, count: int = 2) -> str:
    """``ping`` from ``ns``; returns its output, raises AssertionError when it fails."""
    argv = ["ip", "netns", "exec", ns, require_tool("ping"), "-n", "-c", str(count), "-i", "0.2"]
    argv += ["-W", "3"] + (["-I", interface] if interface else []) + [address]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        state = subprocess.run(
            ["ip", "-n", ns, "-d", "addr", "show"], capture_output=True, text=True
        ).stdout
        state += subprocess.run(
            ["ip", "-n", ns, "-6", "route", "show", "table", "all"], capture_output=True, text=True
        ).stdout
        raise AssertionError(f"{done.stdout}{done.stderr}\n{state}")
    return done.stdout


def our_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Side:
    """One of our daemons in-process: context, data plane and backends in namespace ``ns``."""

    def __init__(self, ns: str, text: str, daemon: cfg.Daemon) -> None:
        self.ns = ns
        self.config = cfg.loads(text, file=f"{daemon}.toml", daemon=daemon, resolver=None)
        self.builtin = BuiltinPppBackend(terminate_wait=1.0)
        self.backend = DispatchingBackend(pppd=PppdBackend(netns=ns), builtin=self.builtin)
        self.ctx = L2tpContext(
            dataplane=AsyncLinuxDataPlane(netns=ns), backend=self.backend, netns=ns
        )
        self.closed: list[SessionClosed] = []
        kinds = {cfg.Daemon.LNS: Lns, cfg.Daemon.KL2TPD: Kl2tpd, cfg.Daemon.L2TPD: L2tpd}
        self.daemon: Lns | Kl2tpd | L2tpd = kinds[daemon](self.config, self.ctx, ARGS)
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.ctx.start()
        events = self.ctx.events()

        async def watch() -> None:
            async for event in events:
                if isinstance(event, SessionClosed):
                    self.closed.append(event)

        self._watch = asyncio.create_task(watch())
        await self.daemon.start()

    async def close(self) -> float:
        """Close the context (StopCCN, backends stopped, kernel objects gone); seconds taken."""
        started = time.monotonic()
        await self.ctx.close(ack_timeout=1.0)
        took = time.monotonic() - started
        await self.backend.close()
        if self._watch is not None:
            self._watch.cancel()
        return took

    def closed_by_us(self) -> list[tuple[int, int | None, str]]:
        return [
            (e.reason.result, e.reason.error, e.reason.message)
            for e in self.closed
            if not e.by_peer and e.reason is not None
        ]


@contextlib.asynccontextmanager
async def sides(*made: Side) -> AsyncIterator[None]:
    try:
        for side in made:
            await side.start()
        yield
    finally:
        for side in reversed(made):
            if not side.ctx.closed:
                await side.close()


@contextlib.contextmanager
def ppp_capture(ns: str, interface: str, path: Path) -> Iterator[Path]:
    """tcpdump of the L2TP traffic (UDP 1701) on ``interface`` for the scenario's length;
    the file is kept in ``$L2TP_VM_RESULTS``."""
    require_tool("tshark")  # before the scenario: its check is the point of the capture
    capture = Capture(ns=ns, interface=interface, path=path)
    capture.start()
    try:
        yield path
    finally:
        capture.stop()
        save_artifact(path, f"builtin-ppp-{path.name}")


def assert_ppp_decodes(pcap: Path, expect: set[str]) -> None:
    assert_ppp_frames_decode(require_tool("tshark"), pcap, expect=expect)


def assert_clean(*namespaces: str) -> None:
    for ns in namespaces:
        assert _l2tp_state(ns) == ([], []), ns
        assert not _links(ns), ns


LCP_UP_BOUND = 1.0
"""Seconds from a session's PPP start to LCP Opened on our LAC, with our LNS. The LNS starts
its PPP only once it has processed our ICCN, so a first Configure-Request sent at once was
dropped by its kernel and LCP waited out the 3 s restart timer (RFC 1661 4.6: 3.04 s
measured before the fix); the connect delay (pppd's ``connect-delay``) makes the LAC wait
for the LNS's first packet instead."""
LCP_AFTER_PEER_BOUND = 0.5
"""Seconds from the other end's first LCP packet to LCP Opened. With xl2tpd + pppd as the
LNS, LCP cannot open before pppd's process has started (1.0-1.2 s in the emulated VM), so
the test bounds what our side adds once the peer speaks: before the fix, a lost first
request left it waiting for our restart timer (~3 s after our start)."""


def assert_lcp_up_soon(side: Side, count: int, *, from_peer: bool = False) -> None:
    """Every up link of ``side`` opened LCP within :data:`LCP_UP_BOUND` of its start, or
    (``from_peer``) within :data:`LCP_AFTER_PEER_BOUND` of the peer's first frame."""
    took: dict[str, float] = {}
    for link in side.builtin.links.values():
        if link.lcp_up_after is None:
            continue
        start = link.heard_after or 0.0 if from_peer else 0.0
        took[link.label] = link.lcp_up_after - start
    logging.getLogger("l2tp.test").info("LCP up (from_peer=%s): %s", from_peer, took)
    assert len(took) >= count, took
    assert max(took.values()) < (LCP_AFTER_PEER_BOUND if from_peer else LCP_UP_BOUND), took


def assert_first_request_kept(lac: Side, session: str) -> None:
    """The LAC session ``session`` (``connect_delay = 0``: its first Configure-Request
    leaves right after its ICCN, as Windows, routers and go-l2tp send theirs) opened LCP
    within :data:`LCP_UP_BOUND` of its start: our LNS made the kernel session and the PPP
    channel before its ICRP, so that request waited in the channel's queue (issue 17).
    Before, the LNS's kernel dropped it and LCP waited for the LAC's 3 s restart timer."""
    (link,) = [k for k in lac.builtin.links.values() if f"{session} (" in k.label]
    logging.getLogger("l2tp.test").info(
        "%s: LCP up after %s s (connect_delay 0)", session, link.lcp_up_after
    )
    assert link.lcp_up_after is not None and link.lcp_up_after < LCP_UP_BOUND, link.label


def held_answers(side: Side) -> int:
    """How many of ``side``'s live calls it answered with its ICRP held until the kernel
    session and PPP channel existed (``CallParams.wait_data_plane``, issue 17)."""
    return sum(
        handle.params.wait_data_plane
        for tunnel in side.ctx.tunnels.values()
        for handle in tunnel.sessions.values()
    )


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="l2tp")
    yield caplog
    results = os.environ.get("L2TP_VM_RESULTS")
    if results:
        path = Path(results) / "builtin-ppp.log"
        with path.open("a") as out:
            out.write(caplog.text)


class ChapXl2tpd(Xl2tpd):
    """xl2tpd whose pppd sees ``chap_secrets`` as /etc/ppp/chap-secrets (a bind mount in
    the mount namespace ``ip netns exec`` gives it: the host's file is never touched)."""

    chap_secrets: Path | None = None

    def start(self, timeout: float = 20.0) -> None:
        xl2tpd = require_tool("xl2tpd")
        Path("/run/xl2tpd").mkdir(parents=True, exist_ok=True)
        self.write_files()
        argv = ["ip", "netns", "exec", self.ns]
        if self.chap_secrets is not None:
            script = 'mount --bind "$1" /etc/ppp/chap-secrets && shift && exec "$@"'
            argv += ["sh", "-c", script, "sh", str(self.chap_secrets)]
        argv += [xl2tpd, "-D", "-c", str(self.conf_path), "-s", str(self.secrets_path)]
        argv += ["-p", str(self.pid_path), "-C", str(self.control_path)]
        self.spawn(argv)
        self.wait_ready(timeout)


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[list[Xl2tpd]]:
    started: list[Xl2tpd] = []
    yield started
    with ThreadPoolExecutor(max(1, len(started))) as pool:  # xl2tpd takes ~1 s to stop
        list(pool.map(lambda proc: proc.stop(), started))
    for proc in started:
        for path in sorted(proc.workdir.glob("*.log")):
            save_artifact(path, f"builtin-ppp-{path.name}")
    # What is left is pppd retransmitting its Terminate-Request to a peer that is gone
    # (up to 2 x 3 s): nothing to wait for.
    leftovers = [pid for pid in pids_matching(["pppd", str(tmp_path)]) if not _zombie(pid)]
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: all(_zombie(pid) for pid in leftovers), 10, "pppd to be killed")


def _zombie(pid: int) -> bool:
    """A pppd whose xl2tpd is gone and that nobody reaped (no init in the VM's namespace
    of processes does): it exited, there is nothing to stop or wait for."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


SECRETS = """\
# client      server  secret            addresses
alice         *       "correct horse"
bob           *       hunter2
papuser       *       pap-pass
chapuser      *       chap-pass
msuser        *       ms-pass           10.71.0.9
"""


# --- 1. ours <-> ours ------------------------------------------------------------------


def test_builtin_lac_to_builtin_lns_ipcp_ipv6cp_wrong_password_and_shutdown(
    veth_pair: VethPair, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    pair = veth_pair
    secrets = tmp_path / "chap-secrets"
    secrets.write_text(SECRETS)
    lns_text = f"""
[listener.main]
listen = "{pair.a4}:1701"
hello_timeout = 5000
ppp = "builtin"

[listener.main.builtin_ppp]
auth = ["mschap-v2", "chap-md5"]
secrets = "{secrets}"
name = "lns"
local_address = "10.70.0.1"
address_pool = "10.70.0.0/28"
ipv6 = true
interface_name = "lns%d"
lcp_echo_interval = 2000
"""
    lac_text = f"""
[tunnel.t1]
peer = "{pair.a4}:1701"
hello_timeout = 5000

[tunnel.t1.session.s1]
ppp = "builtin"
interface_name = "up1"
[tunnel.t1.session.s1.builtin_ppp]
auth = ["mschap-v2"]
user = "alice"
password = "correct horse"
ipv6 = true

[tunnel.t1.session.s2]
ppp = "builtin"
interface_name = "up2"
[tunnel.t1.session.s2.builtin_ppp]
auth = ["chap-md5"]
user = "bob"
password = "hunter2"
ipv6 = true

[tunnel.t1.session.s3]
ppp = "builtin"
[tunnel.t1.session.s3.builtin_ppp]
auth = ["mschap-v2"]
user = "alice"
password = "Wr0ng-Pa55"

[tunnel.t1.session.s4]
ppp = "builtin"
interface_name = "up4"
[tunnel.t1.session.s4.builtin_ppp]
auth = ["chap-md5"]
user = "bob"
password = "hunter2"
connect_delay = 0
"""
    lns = Side(pair.ns_a, lns_text, cfg.Daemon.LNS)
    lac = Side(pair.ns_b, lac_text, cfg.Daemon.KL2TPD)
    fds = our_fds()

    async def scenario() -> None:
        async with sides(lns, lac):

            def lac_up() -> bool:
                links = ppp_links(pair.ns_b)
                both = all(len(links.get(n, {})) == 2 for n in ("up1", "up2"))
                return both and "inet" in links.get("up4", {})

            await until_blocking(lac_up, 60, "up1 and up2 with IPv4 and IPv6, up4 with IPv4")
            assert_lcp_up_soon(lac, 3)
            assert_first_request_kept(lac, "s4")
            assert held_answers(lns) >= 3  # s1, s2, s4 (s3 may be gone): ICRPs held
            links = ppp_links(pair.ns_b)
            clients = sorted(links[n]["inet"][0] for n in ("up1", "up2", "up4"))
            assert clients == ["10.70.0.2", "10.70.0.3", "10.70.0.4"]
            assert {links[n]["inet"][1] for n in ("up1", "up2", "up4")} == {"10.70.0.1"}
            lns_links = ppp_links(pair.ns_a)
            assert sorted(lns_links) == ["lns0", "lns1", "lns2"], lns_links
            for address in clients:
                await asyncio.to_thread(ping, pair.ns_a, address)
            peer6 = links["up1"]["inet6"][1]
            assert peer6.startswith("fe80::")
            await asyncio.to_thread(ping, pair.ns_b, f"{peer6}%up1", interface="up1")
            # The wrong password: our LNS ends the call with the documented CDN.
            await until_blocking(lambda: lns.closed_by_us(), 30, "the CDN for the wrong password")
            assert lns.closed_by_us() == [(2, 6, "PPP authentication failed")]
            assert Ending.AUTH_FAILED in lns.builtin.endings.values()
            assert lns.builtin.counters.network_up == 5  # IPCP + IPv6CP twice, IPCP
            # Shutdown of the LAC: StopCCN; both sides stop their PPP within the bound.
            took = await lac.close()
            assert took < 3.0, took
            await until_blocking(lambda: not _links(pair.ns_a), 10, "LNS interfaces gone")

    with ppp_capture(pair.ns_a, "va", tmp_path / "ours.pcap") as pcap:
        asyncio.run(asyncio.wait_for(scenario(), 150))
    assert_clean(pair.ns_a, pair.ns_b)
    assert our_fds() <= fds + 2  # the loop's own (selector, self-pipe) are gone too
    assert_ppp_decodes(pcap, {"lcp", "chap", "ipcp", "ipv6cp", "icmp", "icmpv6"})
    assert 'mschap-v2 authentication of user "alice" failed' in logs.text
    assert "Wr0ng-Pa55" not in logs.text and "correct horse" not in logs.text


# --- 2. xl2tpd LAC + pppd -> our LNS ----------------------------------------------------

PPPD_CLIENT = (
    "noauth",
    "nodefaultroute",
    "noipdefault",
    "ipcp-accept-local",
    "ipcp-accept-remote",
    "noccp",
    "lcp-echo-interval 0",
    "debug",
)
REFUSE = {
    "pap": ("refuse-chap", "refuse-mschap", "refuse-mschap-v2", "refuse-eap"),
    "chap": ("refuse-pap", "refuse-mschap", "refuse-mschap-v2", "refuse-eap"),
    "mschap": ("refuse-pap", "refuse-chap", "refuse-mschap", "refuse-eap"),
    "bad": ("refuse-pap", "refuse-chap", "refuse-mschap", "refuse-eap"),
}
USERS = {
    "pap": ("papuser", "pap-pass"),
    "chap": ("chapuser", "chap-pass"),
    "mschap": ("msuser", "ms-pass"),
    "bad": ("msuser", "Wr0ng-Pa55"),
}


CLIENT_ADDRESSES = {"pap": "10.201.0.11", "chap": "10.201.0.12", "mschap": "10.201.0.13"}
CLIENT_ADDRESSES["bad"] = "10.201.0.14"


def xl2tpd_lac_config(workdir: Path, name: str, lns: str) -> str:
    """One xl2tpd LAC per client, each from its own address: Linux 6.1 finds an L2TPv2
    data packet's session in the tunnel of the UDP socket it arrived on, so two tunnels
    between the same two address:port pairs (xl2tpd dials every tunnel from port 1701)
    cannot both carry data; the newer socket gets the packets of both."""
    user, password = USERS[name]
    options = workdir / f"{name}.ppp-options"
    text = [*PPPD_CLIENT, *REFUSE[name], f"name {user}", f'password "{password}"']
    text.append(f"logfile {workdir / f'{name}.pppd.log'}")
    options.write_text("\n".join(text) + "\n")
    lines = ["[global]", f"listen-addr = {CLIENT_ADDRESSES[name]}", "port = 1701"]
    lines += ["access control = no", "", f"[lac {name}]", f"lns = {lns}", "autodial = no"]
    lines += ["redial = no", "require authentication = no", "hostname = xlac"]
    lines += ["length bit = yes", f"pppoptfile = {options}", ""]
    return "\n".join(lines)


def test_xl2tpd_lac_pppd_pap_chap_mschapv2_to_builtin_lns(
    veth_pair: VethPair,
    tmp_path: Path,
    peers: list[Xl2tpd],
    logs: pytest.LogCaptureFixture,
) -> None:
    require_tool("pppd")
    pair = veth_pair
    secrets = tmp_path / "chap-secrets"
    secrets.write_text(SECRETS)
    lns_text = f"""
[listener.main]
listen = "{pair.a4}:1701"
hello_timeout = 5000
ppp = "builtin"

[listener.main.builtin_ppp]
auth = ["mschap-v2", "chap-md5", "pap"]
secrets = "{secrets}"
local_address = "10.71.0.1"
address_pool = "10.71.0.0/28"
dns = ["192.0.2.53"]
lcp_echo_interval = 1000
lcp_echo_failure = 3
"""
    lns = Side(pair.ns_a, lns_text, cfg.Daemon.LNS)
    workdir = tmp_path / "xlac"
    workdir.mkdir()
    ip_batch([f"addr add {a}/24 dev vb" for a in CLIENT_ADDRESSES.values()], netns=pair.ns_b)
    clients = {
        name: ChapXl2tpd(
            ns=pair.ns_b,
            workdir=workdir,
            name=f"xlac-{name}",
            config=xl2tpd_lac_config(workdir, name, pair.a4),
        )
        for name in USERS
    }
    fds = our_fds()

    def pppd_log(name: str) -> str:
        path = workdir / f"{name}.pppd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def scenario() -> None:
        async with sides(lns):
            for name, client in clients.items():
                peers.append(client)
                await asyncio.to_thread(client.start)
                client.control(f"c {name}")

            def three_up() -> bool:
                return len([x for x in ppp_links(pair.ns_b).values() if "inet" in x]) == 3

            try:
                await until_blocking(three_up, 60, "three pppd clients up")
            except AssertionError as exc:
                text = "\n".join(c.output() + pppd_log(n) for n, c in clients.items())
                raise AssertionError(f"{exc}\n{text}") from None
            links = ppp_links(pair.ns_b).values()
            addresses = sorted(x["inet"][0] for x in links if "inet" in x)
            assert "10.71.0.9" in addresses  # msuser's address from the secrets file
            await asyncio.gather(*(asyncio.to_thread(ping, pair.ns_a, a) for a in addresses))
            for name, method in (("pap", "PAP"), ("chap", "CHAP"), ("mschap", "CHAP")):
                assert f"{method} authentication succeeded" in pppd_log(name), pppd_log(name)
            # The wrong password: pppd is told, our CDN carries the documented result.
            await until_blocking(lambda: lns.closed_by_us(), 30, "the CDN for the wrong password")
            assert lns.closed_by_us() == [(2, 6, "PPP authentication failed")]
            await until_blocking(
                lambda: "authentication failed" in pppd_log("bad"), 10, "pppd's view"
            )
            # A frozen peer: its pppd stops answering LCP echoes; closed after ~3 x 1 s.
            (pap_pid,) = pids_matching(["pppd", str(workdir / "pap.ppp-options")])
            os.kill(pap_pid, signal.SIGSTOP)
            try:
                frozen = time.monotonic()
                await until_blocking(lambda: len(lns.closed_by_us()) == 2, 15, "echo failure CDN")
                assert lns.closed_by_us()[1] == (
                    1,
                    None,
                    "PPP peer not answering LCP echo requests",
                )
                assert 2.0 <= time.monotonic() - frozen < 8.0
            finally:
                os.kill(pap_pid, signal.SIGCONT)
            await lns.close()
            await until_blocking(lambda: not _links(pair.ns_a), 10, "LNS interfaces gone")

    with ppp_capture(pair.ns_a, "va", tmp_path / "xlac.pcap") as pcap:
        asyncio.run(asyncio.wait_for(scenario(), 150))
    assert_ppp_decodes(pcap, {"lcp", "pap", "chap", "ipcp", "icmp"})
    assert _l2tp_state(pair.ns_a) == ([], []) and not _links(pair.ns_a)
    assert our_fds() <= fds + 2
    assert 'authentication of user "msuser" failed' in logs.text
    assert "Wr0ng-Pa55" not in logs.text and "ms-pass" not in logs.text
    ip_batch([f"addr del {a}/24 dev vb" for a in CLIENT_ADDRESSES.values()], netns=pair.ns_b)


# --- 3. our LAC -> xl2tpd LNS + pppd (require-chap, require-mschap-v2) ------------------


def test_builtin_lac_to_xl2tpd_lns_pppd_require_chap_and_mschapv2(
    veth_pair: VethPair, tmp_path: Path, peers: list[Xl2tpd], logs: pytest.LogCaptureFixture
) -> None:
    require_tool("pppd")
    pair = veth_pair
    workdir = tmp_path / "xlns"
    workdir.mkdir()
    chap_secrets = tmp_path / "pppd-chap-secrets"
    chap_secrets.write_text('chapuser * "chap-pass" *\nmsuser * "ms-pass" *\n')
    chap_secrets.chmod(0o600)
    options = workdir / "xlns.ppp-options"
    xlns = ChapXl2tpd(
        ns=pair.ns_a,
        workdir=workdir,
        name="xlns",
        config="\n".join(
            [
                "[global]",
                f"listen-addr = {pair.a4}",
                "port = 1701",
                "access control = no",
                "",
                "[lns default]",
                "ip range = 10.72.0.2-10.72.0.9",
                "local ip = 10.72.0.1",
                "require authentication = yes",
                "require chap = yes",
                "hostname = xlns",
                "length bit = yes",
                f"pppoptfile = {options}",
                "",
            ]
        ),
        ppp_options=(
            "require-chap",
            "require-mschap-v2",
            "name xlns",
            "nodefaultroute",
            "noccp",
            "lcp-echo-interval 0",
            "debug",
        ),
    )
    xlns.chap_secrets = chap_secrets
    lac_text = f"""
[tunnel.t1]
peer = "{pair.a4}:1701"
hello_timeout = 5000

[tunnel.t1.session.md5]
ppp = "builtin"
interface_name = "md5"
[tunnel.t1.session.md5.builtin_ppp]
auth = ["chap-md5"]
user = "chapuser"
password = "chap-pass"

[tunnel.t1.session.ms]
ppp = "builtin"
interface_name = "ms"
[tunnel.t1.session.ms.builtin_ppp]
auth = ["mschap-v2"]
user = "msuser"
password = "ms-pass"
"""
    lac = Side(pair.ns_b, lac_text, cfg.Daemon.KL2TPD)
    fds = our_fds()

    async def scenario() -> None:
        peers.append(xlns)
        await asyncio.to_thread(xlns.start)
        async with sides(lac):

            def both_up() -> bool:
                links = ppp_links(pair.ns_b)
                return all("inet" in links.get(n, {}) for n in ("md5", "ms"))

            try:
                await until_blocking(both_up, 60, "md5 and ms up")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{xlns.output()}") from None
            assert_lcp_up_soon(lac, 2, from_peer=True)
            links = ppp_links(pair.ns_b)
            for name in ("md5", "ms"):
                local, peer = links[name]["inet"]
                assert peer == "10.72.0.1" and local.startswith("10.72.0.")
                await asyncio.to_thread(ping, pair.ns_a, local)
            took = await lac.close()
            assert took < 3.0, took
            await until_blocking(lambda: not xlns.pppd_pids(), 30, "xl2tpd's pppd to exit")

    with ppp_capture(pair.ns_a, "va", tmp_path / "xlns.pcap") as pcap:
        asyncio.run(asyncio.wait_for(scenario(), 150))
    assert_ppp_decodes(pcap, {"lcp", "chap", "ipcp", "icmp"})
    # The method each session agreed with pppd in LCP (pppd asks MD5 first, then takes
    # the MS-CHAPv2 our second session Naks it to).
    assert 'chap-md5 authentication as user "chapuser" succeeded' in logs.text
    assert 'mschap-v2 authentication as user "msuser" succeeded' in logs.text
    assert _l2tp_state(pair.ns_b) == ([], []) and not _links(pair.ns_b)
    assert our_fds() <= fds + 2


# --- 4. L2TPv3 PPP pseudowire between two l2tpd ------------------------------------------


def test_builtin_ppp_over_an_l2tpv3_pseudowire_between_two_l2tpd(
    veth_pair: VethPair, tmp_path: Path
) -> None:
    pair = veth_pair
    secrets = tmp_path / "chap-secrets"
    secrets.write_text(SECRETS)
    responder_text = f"""
[listener.v3]
listen = "{pair.a4}:1701"
secret = "ppp-v3"
hello_timeout = 5000

[listener.v3.session.dialin]
pseudowire = "ppp"
cookie_len = 4
ppp = "builtin"

[listener.v3.session.dialin.builtin_ppp]
auth = ["chap-md5"]
secrets = "{secrets}"
local_address = "10.73.0.1"
address_pool = "10.73.0.0/29"
interface_name = "pw%d"
"""
    initiator_text = f"""
[tunnel.t1]
peer = "{pair.a4}:1701"
secret = "ppp-v3"
hello_timeout = 5000

[tunnel.t1.session.dialin]
pseudowire = "ppp"
cookie_len = 8
ppp = "builtin"
interface_name = "pw-up"

[tunnel.t1.session.dialin.builtin_ppp]
auth = ["chap-md5"]
user = "bob"
password = "hunter2"
"""
    responder = Side(pair.ns_a, responder_text, cfg.Daemon.L2TPD)
    initiator = Side(pair.ns_b, initiator_text, cfg.Daemon.L2TPD)

    async def scenario() -> None:
        async with sides(responder, initiator):
            await until_blocking(
                lambda: "inet" in ppp_links(pair.ns_b).get("pw-up", {}), 60, "pw-up"
            )
            local, peer = ppp_links(pair.ns_b)["pw-up"]["inet"]
            assert (local, peer) == ("10.73.0.2", "10.73.0.1")
            assert list(ppp_links(pair.ns_a)) == ["pw0"]
            assert held_answers(responder) == 1  # RFC 3931 7.3.2: ICRP after the channel
            await asyncio.to_thread(ping, pair.ns_b, peer)
            await initiator.close()
            await until_blocking(lambda: not _links(pair.ns_a), 10, "responder interface gone")

    with ppp_capture(pair.ns_a, "va", tmp_path / "v3.pcap") as pcap:
        asyncio.run(asyncio.wait_for(scenario(), 120))
    assert_ppp_decodes(pcap, {"lcp", "chap", "ipcp", "icmp"})
    assert_clean(pair.ns_a, pair.ns_b)
