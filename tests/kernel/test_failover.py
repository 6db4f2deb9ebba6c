"""LNS failover against real LNSes and a real kernel (issue 19): kl2tpd with a peer list.

Four network namespaces: a LAC and three LNSes, each LNS on its own veth to the LAC.

* ``A`` and ``B``: our ``l2tp-lns``, the preferred level (preference 0, equal weight);
  ``A`` also has a second listener (``W``, its own address) whose ``secret`` is not the
  one the LAC has for it: the wrong-secret LNS, in the preferred level too;
* ``C``: xl2tpd with pppd, the backup (preference 1).

kl2tpd keeps 30 PPP sessions placed over the list, with the built-in PPP on our side
(``ppp = "builtin"``; one pppd per session only on the xl2tpd side) and short HELLO and
retransmission timers so that a dead LNS is detected in seconds. The phases, each
checked in ``l2tp ctl peers --json``, in the kernel (``l2tp show``, the project's
netlink dump: exactly 30 sessions on the LAC side, each tunnel holding the sessions the
daemon says it holds, so no session is placed twice) and with ping across a sample of
sessions:

1. start: ``W``'s Challenge Response does not match our secret (its listener has
   another), we refuse it (StopCCN 4) and it is denylisted (``refused``); the sessions
   first placed on it and all the others are spread over ``A`` and ``B``; the backup
   is not used;
2. SIGKILL ``A``: its sessions come up on ``B`` within :func:`failover_bound` (HELLO
   interval + full retransmission cycle + a set-up allowance), ``A`` denylisted
   (``tunnel-lost``);
3. SIGKILL ``B``: every session comes up on the backup, xl2tpd.

The measured times are printed (``-s``) and written to ``$L2TP_VM_RESULTS/failover.txt``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from l2tp.cli.main import main as l2tp_main
from tests.helpers import require_tool
from tests.kernel.conftest import ip_batch, unique_name, wait_until
from tests.kernel.daemons import DaemonProcess
from tests.kernel.xl2tpd_harness import (
    PPP_OPTIONS,
    Xl2tpd,
    lns_config,
    pids_matching,
    save_artifact,
)

pytestmark = pytest.mark.kernel

SESSIONS = 30
SECRET = "failover-secret"

HELLO = 1.0
"""kl2tpd's ``hello_timeout``: a HELLO after this long without a message from the LNS."""
RETRY = 0.5
"""``retry_timeout``: the first retransmission timeout (doubling up to 8 s)."""
RETRIES = 3
"""``max_retries``: retransmissions before the tunnel is declared lost."""
SETUP_ALLOWANCE = 20.0
"""Seconds, in the emulated VM, to set up the moved sessions once the loss is detected:
the pool's kernel and PPP clean-up of the lost tunnel, then ICRQ/ICRP/ICCN and LCP +
IPCP for each moved session (15 on average into ``B``'s tunnel, which is up already;
see the measured figures in docs/daemons.md)."""
BACKUP_ALLOWANCE = 40.0
"""The same for the move of all 30 sessions to xl2tpd: a new tunnel, and xl2tpd starts
a pppd per session (process starts cost 0.25-0.5 s each in the VM)."""
UP_WITHIN = 60.0
"""Seconds for the first 30 sessions to come up (the wrong-secret LNS included)."""
POLL_SLACK = 1.0
"""What polling ``l2tp ctl peers`` adds to a measured detection time, at most."""


def retransmission_cycle(first: float, retries: int, cap: float = 8.0) -> float:
    """Seconds from a message's first transmission until the transport gives up on it:
    ``retries`` + 1 timeouts, doubling from ``first`` up to ``max(cap, first)``
    (docs/config.md, "hello_timeout and max_retries defaults")."""
    return sum(min(first * 2.0**i, max(cap, first)) for i in range(retries + 1))


def failover_bound(allowance: float) -> float:
    """From the LNS's death to its sessions up elsewhere: the LAC notices nothing for up
    to ``HELLO`` (the LNS was quiet), then its HELLO is retransmitted until the cycle
    ends, and then the moved sessions are set up (``allowance``)."""
    return HELLO + retransmission_cycle(RETRY, RETRIES) + allowance


@dataclass(frozen=True)
class Net:
    lac: str
    lns: dict[str, str]
    """Namespace of each LNS: ``A``, ``B`` (ours), ``C`` (xl2tpd)."""


LNS_ADDR = {"A": "10.90.1.1", "W": "10.90.1.3", "B": "10.90.2.1", "C": "10.90.3.1"}
"""Each LNS's L2TP address (``W`` is ``A``'s second listener)."""
PPP_PEER = {"A": "10.91.1.1", "B": "10.91.2.1", "C": "10.91.3.1"}
"""Each LNS's PPP address: which LNS a session is on, seen from the LAC."""
LAC_ADDR = {"A": "10.90.1.2", "B": "10.90.2.2", "C": "10.90.3.2"}


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    lac = unique_name("fol")
    lns = {k: unique_name(f"fo{k.lower()}") for k in ("A", "B", "C")}
    commands = [f"netns add {lac}"] + [f"netns add {ns}" for ns in lns.values()]
    for k, ns in lns.items():
        commands.append(f"link add v{k.lower()} netns {lac} type veth peer name vl netns {ns}")
    ip_batch(commands)
    lac_cmds = ["link set lo up"]
    for k, ns in lns.items():
        dev = f"v{k.lower()}"
        lac_cmds += [f"addr add {LAC_ADDR[k]}/24 dev {dev}", f"link set {dev} up"]
        extra = [f"addr add {LNS_ADDR['W']}/24 dev vl"] if k == "A" else []
        ip_batch(
            ["link set lo up", f"addr add {LNS_ADDR[k]}/24 dev vl", *extra, "link set vl up"],
            netns=ns,
        )
    ip_batch(lac_cmds, netns=lac)
    yield Net(lac, lns)
    ip_batch([f"netns del {ns}" for ns in (lac, *lns.values())])


class Lns(DaemonProcess):
    """l2tp-lns, forked and run with ``--netns`` (see :class:`ForkedChild`)."""

    MODULE = "l2tp.daemons.lns"
    FORK = True

    def __init__(self, ns: str, config: str, workdir: Path, name: str) -> None:
        super().__init__(ns, config, workdir, name, netns_flag=True)
        self.label = name


class Kl2tpd(Lns):
    MODULE = "l2tp.daemons.kl2tpd"


def lns_text(name: str, *, wrong_secret: bool = False) -> str:
    """l2tp-lns ``name`` (``A`` or ``B``): built-in PPP handing out addresses, no PPP
    authentication; ``A`` also listens on ``W``'s address with a secret the LAC lacks."""
    peer = PPP_PEER[name]
    net = peer.rsplit(".", 1)[0] + ".0/26"
    text = f"""
[listener.main]
listen = "{LNS_ADDR[name]}:1701"
secret = "{SECRET}"
ppp = "builtin"
[listener.main.builtin_ppp]
auth = []
local_address = "{peer}"
address_pool = "{net}"
"""
    if wrong_secret:
        text += f"""
[listener.wrong]
listen = "{LNS_ADDR["W"]}:1701"
secret = "not-the-lacs-secret"
ppp = "builtin"
[listener.wrong.builtin_ppp]
auth = []
local_address = "10.91.9.1"
address_pool = "10.91.9.0/26"
"""
    return text


def kl2tpd_text() -> str:
    """The LAC: the peer list, short timers, 30 built-in PPP sessions."""
    text = f"""
[tunnel.pool]
peer = [
  {{ address = "{LNS_ADDR["A"]}", preference = 0, secret = "{SECRET}" }},
  {{ address = "{LNS_ADDR["B"]}", preference = 0, secret = "{SECRET}" }},
  {{ address = "{LNS_ADDR["W"]}", preference = 0, secret = "{SECRET}" }},
  {{ address = "{LNS_ADDR["C"]}", preference = 1 }},
]
hello_timeout = {int(HELLO * 1000)}
retry_timeout = {int(RETRY * 1000)}
max_retries = {RETRIES}
redial = true
redial_timeout = 1000
denylist_time = 600000
"""
    for n in range(SESSIONS):
        text += f'[tunnel.pool.session.s{n}]\nppp = "builtin"\ninterface_name = "s{n}"\n'
    return text


def backup_lns(ns: str, workdir: Path) -> Xl2tpd:
    """xl2tpd, no tunnel authentication, a pppd per session handing out addresses."""
    peer = PPP_PEER["C"]
    base = peer.rsplit(".", 1)[0]
    return Xl2tpd(
        ns=ns,
        workdir=workdir,
        name="xlns",
        config=lns_config(
            listen=LNS_ADDR["C"],
            hostname="xlns",
            local_ip=peer,
            ip_range=f"{base}.10-{base}.60",
            pppoptfile=workdir / "xlns.ppp-options",
        ),
        # No ip-up/ip-down scripts: 30 runs of Debian's run-parts cost more VM time
        # than the sessions themselves.
        ppp_options=(
            *PPP_OPTIONS,
            "ip-up-script /nonexistent",
            "ip-down-script /nonexistent",
        ),
    )


# --- what the LAC sees ---------------------------------------------------------------


def l2tp_json(*argv: str) -> Any:
    """``l2tp ARGV`` in-process (a new CLI process costs ~7 s in the VM); its JSON."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = l2tp_main(list(argv))
    assert status == 0, err.getvalue()
    return json.loads(out.getvalue())


def ppp_peers(ns: str) -> dict[str, str]:
    """``{ifname: peer address}`` of the ppp interfaces up with an IPv4 address."""
    text = subprocess.run(
        ["ip", "-n", ns, "-j", "addr", "show"], capture_output=True, text=True
    ).stdout
    found = {}
    for link in json.loads(text or "[]"):
        if link.get("link_type") != "ppp" or "UP" not in link.get("flags", []):
            continue
        for addr in link.get("addr_info", []):
            if addr.get("family") == "inet" and "address" in addr:
                found[str(link["ifname"])] = str(addr["address"])
    return found


def on(lns: str, links: dict[str, str]) -> list[str]:
    """The sessions (interface names) whose PPP peer is LNS ``lns``, in number order."""
    return sorted((i for i, p in links.items() if p == PPP_PEER[lns]), key=lambda i: int(i[1:]))


class Lac:
    """kl2tpd in the LAC namespace and the views of it the test checks."""

    def __init__(self, ns: str, workdir: Path) -> None:
        self.ns = ns
        self.daemon = Kl2tpd(ns, kl2tpd_text(), workdir, "kl2tpd")
        self.socket = str(self.daemon.path.with_suffix(".sock"))

    def ctl(self, *argv: str) -> Any:
        return l2tp_json("ctl", "--socket", self.socket, *argv, "--json")

    def peers(self) -> dict[str, dict[str, Any]]:
        """``l2tp ctl peers --json``, by peer label."""
        return {p["peer"]: p for p in self.ctl("peers")}

    def check(self, expect: dict[str, int]) -> dict[str, dict[str, Any]]:
        """Steady state: the sessions are on the LNSes ``expect`` says, once each, in the
        daemon's view (``ctl peers``), in the kernel (``l2tp show``) and as ppp links."""
        peers = self.peers()
        by_addr = {p["address"]: p for p in peers.values() if p["assignment_id"] is None}
        for name, count in expect.items():
            rec = by_addr[LNS_ADDR[name]]
            assert (rec["sessions"], rec["established"]) == (count, count), rec
            if count:
                assert rec["state"] == "up", rec
        assert sum(p["sessions"] for p in peers.values()) == SESSIONS, peers
        tunnels = l2tp_json("show", "tunnel", "--json", "--netns", self.ns)
        sessions = l2tp_json("show", "session", "--json", "--netns", self.ns)
        assert len(sessions) == SESSIONS, sessions
        assert len({(s["tunnel_id"], s["session_id"]) for s in sessions}) == SESSIONS
        per_tunnel = Counter(s["tunnel_id"] for s in sessions)
        kernel = {t["peer"]: per_tunnel[t["tunnel_id"]] for t in tunnels}
        daemon = {
            p["address"]: p["established"] for p in peers.values() if p["tunnel_id"] is not None
        }
        assert kernel == {a: n for a, n in daemon.items() if n}, (tunnels, peers)
        for p in peers.values():
            if p["tunnel_id"] is not None and p["established"]:
                t = next(t for t in tunnels if t["tunnel_id"] == p["tunnel_id"])
                assert t["peer"] == p["address"], (t, p)
        links = ppp_peers(self.ns)
        assert {k: len(on(k, links)) for k in expect} == expect, links
        assert sorted(links) == sorted(f"s{n}" for n in range(SESSIONS)), links
        return peers

    def ping(self, sample: list[str]) -> None:
        """Ping each sampled session's LNS through that session's interface."""
        links = ppp_peers(self.ns)
        script = " && ".join(f"ping -n -q -c 2 -i 0.2 -W 3 -I {i} {links[i]}" for i in sample)
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns, "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count(" 0% packet loss") == len(sample), done.stdout


def timed(condition: Callable[[], bool], timeout: float, what: str, since: float) -> float:
    """Poll ``condition`` every 0.2 s; the seconds from ``since`` until it held."""
    wait_until(condition, timeout, what, interval=0.2)
    return time.monotonic() - since


@pytest.fixture
def procs() -> Iterator[list[DaemonProcess | Xl2tpd]]:
    started: list[DaemonProcess | Xl2tpd] = []
    yield started
    for p in reversed(started):
        if isinstance(p, Xl2tpd):
            p.stop(timeout=5)
        else:
            p.kill()


def test_failover_over_two_preferred_lns_and_an_xl2tpd_backup(
    net: Net, tmp_path: Path, procs: list[DaemonProcess | Xl2tpd]
) -> None:
    require_tool("pppd")
    require_tool("ping")
    t_start = time.monotonic()
    servers = {
        "A": Lns(net.lns["A"], lns_text("A", wrong_secret=True), tmp_path, "lns-a"),
        "B": Lns(net.lns["B"], lns_text("B"), tmp_path, "lns-b"),
    }
    backup = backup_lns(net.lns["C"], tmp_path / "xlns")
    lac = Lac(net.lac, tmp_path)
    procs += [*servers.values(), backup, lac.daemon]
    backup.start()
    for d in servers.values():
        d.start(wait_ready=False)
    for d in servers.values():
        d.wait_ready(90)
    logs: tuple[DaemonProcess | Xl2tpd, ...] = (lac.daemon, *servers.values(), backup)

    figures: dict[str, float] = {}

    def explain(exc: AssertionError) -> AssertionError:
        tails = "\n".join(f"--- {d.label}\n" + d.output()[-6000:] for d in logs)
        return AssertionError(f"{exc}\nmeasured so far: {figures}\n{tails}")

    def lns_sessions(name: str) -> int:
        """Kernel sessions in an LNS's namespace (xl2tpd's session 0 is its tunnel's
        own PPPoL2TP socket, not a call)."""
        found = l2tp_json("show", "session", "--json", "--netns", net.lns[name])
        return len([s for s in found if s["session_id"]])

    try:
        # 1. The wrong-secret LNS is denylisted; A and B share the 30 sessions.
        t0 = time.monotonic()
        lac.daemon.start(90)
        w_label = f"{LNS_ADDR['W']}:1701"

        def steady(where: set[str]) -> bool:
            links = ppp_peers(net.lac)
            return len(links) == SESSIONS and {k for k in PPP_PEER if on(k, links)} == where

        figures["started"] = t0 - t_start
        figures["initial"] = timed(lambda: steady({"A", "B"}), UP_WITHIN, "30 sessions", t0)
        wait_until(lambda: lac.peers()[w_label]["state"] == "denylisted", 10, "W denylisted")
        links = ppp_peers(net.lac)
        counts = {"A": len(on("A", links)), "B": len(on("B", links)), "C": 0}
        peers = lac.check(counts)
        w = peers[w_label]
        # Its SCCRP's Challenge Response does not match our secret: we refuse it (RFC 2661
        # 5.1.1), StopCCN 4, and it is passed over (docs/daemons.md "Failover").
        assert (w["reason"], w["result"], w["sessions"]) == ("refused", 4, 0), w
        assert peers[f"{LNS_ADDR['C']}:1701"]["state"] == "idle"
        assert {k: lns_sessions(k) for k in counts} == counts
        a_sessions, b_sessions = on("A", links), on("B", links)
        lac.ping([a_sessions[0], b_sessions[0], a_sessions[-1]])
        figures["phase1_checked"] = time.monotonic() - t_start

        # 2. SIGKILL A: its sessions come up on B.
        t_kill = time.monotonic()
        servers["A"].kill()
        a_label = f"{LNS_ADDR['A']}:1701"
        figures["a_detected"] = timed(
            lambda: lac.peers()[a_label]["state"] == "denylisted",
            failover_bound(0) + POLL_SLACK,
            "A denylisted",
            t_kill,
        )
        figures["a_failover"] = timed(
            lambda: steady({"B"}),
            failover_bound(SETUP_ALLOWANCE),
            f"A's {len(a_sessions)} sessions up on B",
            t_kill,
        )
        figures["a_moved"] = len(a_sessions)
        assert figures["a_detected"] <= failover_bound(0) + POLL_SLACK
        assert figures["a_failover"] <= failover_bound(SETUP_ALLOWANCE)
        peers = lac.check({"A": 0, "B": SESSIONS, "C": 0})
        assert lns_sessions("B") == SESSIONS
        assert peers[a_label]["reason"] == "tunnel-lost", peers[a_label]
        lac.ping([a_sessions[0], a_sessions[-1], b_sessions[0]])
        figures["phase2_checked"] = time.monotonic() - t_start

        # 3. SIGKILL B: every session comes up on the backup, xl2tpd.
        t_kill = time.monotonic()
        servers["B"].kill()
        b_label = f"{LNS_ADDR['B']}:1701"
        figures["b_detected"] = timed(
            lambda: lac.peers()[b_label]["state"] == "denylisted",
            failover_bound(0) + POLL_SLACK,
            "B denylisted",
            t_kill,
        )
        figures["b_failover"] = timed(
            lambda: steady({"C"}),
            failover_bound(BACKUP_ALLOWANCE),
            "30 sessions up on xl2tpd",
            t_kill,
        )
        assert figures["b_detected"] <= failover_bound(0) + POLL_SLACK
        assert figures["b_failover"] <= failover_bound(BACKUP_ALLOWANCE)
        peers = lac.check({"A": 0, "B": 0, "C": SESSIONS})
        assert peers[b_label]["reason"] == "tunnel-lost", peers[b_label]
        assert [p["state"] for p in peers.values()] == ["denylisted"] * 3 + ["up"]
        assert lns_sessions("C") == SESSIONS
        assert len(backup.pppd_pids()) == SESSIONS
        lac.ping(["s0", f"s{SESSIONS // 2}", f"s{SESSIONS - 1}"])
    except AssertionError as exc:
        raise explain(exc) from None
    finally:
        for proc in logs:
            save_artifact(proc.log, f"failover-{proc.log.name}")
        # SIGKILL all: an orderly shutdown is not what this test is about (see
        # test_shutdown.py), and 30 pppd saying goodbye to a LAC that is gone take
        # seconds.
        lac.daemon.kill()
        backup.kill()
        for pid in pids_matching(["pppd", str(backup.options_path)]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    figures["total"] = time.monotonic() - t_start
    report = (
        f"failover: 30 sessions up on A+B in {figures['initial']:.1f} s; "
        f"SIGKILL A ({figures['a_moved']:.0f} sessions): denylisted after "
        f"{figures['a_detected']:.1f} s, all on B after {figures['a_failover']:.1f} s "
        f"(bound {failover_bound(SETUP_ALLOWANCE):.1f} s); SIGKILL B: denylisted after "
        f"{figures['b_detected']:.1f} s, all 30 on xl2tpd after {figures['b_failover']:.1f} s "
        f"(bound {failover_bound(BACKUP_ALLOWANCE):.1f} s); detection bound "
        f"{failover_bound(0):.1f} s; whole test {figures['total']:.1f} s "
        f"(daemons {'forked' if lac.daemon.forked else 'started as new processes'})"
    )
    print(f"\n{report}")
    results = os.environ.get("L2TP_VM_RESULTS")
    if results:
        with (Path(results) / "failover.txt").open("a") as out:
            out.write(report + "\n")
