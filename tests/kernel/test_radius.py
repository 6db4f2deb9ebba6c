"""RADIUS on a real kernel (issue 18): xl2tpd LACs + pppd -> our l2tp-lns with built-in PPP,
checking every peer against FreeRADIUS.

One set-up for the module (:func:`radius_lns`): a veth pair; in the LNS's namespace
FreeRADIUS (tests/freeradius.py, a private configuration on 127.0.0.1) and our l2tp-lns
(a forked daemon process, ``ppp = "builtin"``, ``[radius]`` pointing at FreeRADIUS, an
address pool the RADIUS addresses are outside of); in the LAC's namespace three xl2tpd +
pppd clients, each from its own address (one tunnel each, see
tests/kernel/test_builtin_ppp.py), dialled at once:

* ``chap``: CHAP-MD5, accepted with a Framed-IP-Address, three Framed-Routes (through the
  peer with and without a metric, and through another gateway) and one malformed one;
  up until the last test hangs it up;
* ``idle``: MS-CHAPv2, accepted with an Idle-Timeout of 2 s; never carries data;
* ``bad``: CHAP-MD5 with a wrong password, rejected.

The tests then read the outcome of each: the address, routes and ping of the CHAP session;
the idle session ended by the kernel's idle time (``PPPIOCGIDLE``) with its CDN; the
reject counted and answered with a CDN; ``l2tp ctl status`` showing the RADIUS counters;
last, the CHAP session's pppd hanging up, which takes its interface and routes away.
:class:`RadiusLns` is what a further check needs: the FreeRadius object with its
``detail`` file, the daemon, both ends' interface of the CHAP session and (after the
last test) its interface counters at the end, which an accounting Stop record must match.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from l2tp.cli.main import main as l2tp_main
from tests.freeradius import SECRET, FreeRadius
from tests.helpers import require_tool
from tests.kernel.conftest import VethPair, ip_batch, wait_until
from tests.kernel.daemons import DaemonProcess, clean_up
from tests.kernel.test_builtin_ppp import ping, ppp_links
from tests.kernel.xl2tpd_harness import Xl2tpd, pids_matching, save_artifact

pytestmark = pytest.mark.kernel

LOCAL = "10.78.0.1"
POOL = "10.78.0.0/28"
CHAP_ADDRESS = "10.78.0.50"
IDLE_ADDRESS = "10.78.0.51"
ROUTED = "10.79.1.0/24"
"""Framed-Route with gateway 0.0.0.0 and metric 7: through the CHAP session's peer."""
ROUTED_BEHIND = "10.79.1.1"
"""An address on the LAC's loopback inside :data:`ROUTED`: pinged through the route."""
ROUTED_PLAIN = "10.79.2.0/24"
ROUTED_VIA = "10.79.4.0/24"
GATEWAY = "10.78.0.99"
"""Framed-Route "10.79.4.0/24 10.78.0.99 3": a gateway other than the peer, ``onlink``."""
IDLE_TIMEOUT = 2
IDLE_SLACK = 1.5
"""Seconds the idle session may outlive its limit: one more check (a second) and the
emulated VM's scheduling."""

USERS = f"""\
chap-user Cleartext-Password := "chap-pass"
\tFramed-IP-Address = {CHAP_ADDRESS},
\tFramed-Route += "{ROUTED} 0.0.0.0 7",
\tFramed-Route += "{ROUTED_PLAIN}",
\tFramed-Route += "{ROUTED_VIA} {GATEWAY} 3",
\tFramed-Route += "10.79.3.0/33 0.0.0.0 1"

ms-user Cleartext-Password := "ms-pass"
\tFramed-IP-Address = {IDLE_ADDRESS},
\tIdle-Timeout = {IDLE_TIMEOUT}
"""

CLIENTS = {
    # name: (source address, user, password, pppd refuse options)
    "chap": ("10.201.0.21", "chap-user", "chap-pass", "refuse-mschap-v2"),
    "idle": ("10.201.0.22", "ms-user", "ms-pass", "refuse-chap"),
    "bad": ("10.201.0.23", "chap-user", "Wr0ng-Pa55", "refuse-mschap-v2"),
}
PPPD_CLIENT = (
    "noauth",
    "nodefaultroute",
    "noipdefault",
    "ipcp-accept-local",
    "ipcp-accept-remote",
    "noccp",
    "lcp-echo-interval 0",
    "refuse-pap",
    "refuse-mschap",
    "refuse-eap",
    "debug",
)


class Lns(DaemonProcess):
    MODULE = "l2tp.daemons.lns"
    VERBOSITY = "-v"
    FORK = True


def lns_config(listen: str, radius: FreeRadius, spool: Path) -> str:
    return f"""
[listener.main]
listen = "{listen}:1701"
hello_timeout = 5000
ppp = "builtin"

[listener.main.builtin_ppp]
auth = ["chap-md5", "mschap-v2"]
local_address = "{LOCAL}"
address_pool = "{POOL}"
lcp_echo_interval = 0

[radius]
auth_servers = [{{ address = "127.0.0.1:{radius.auth_port}", secret = "{SECRET}" }}]
timeout = 1000
retries = 2
nas_identifier = "kernel-lns"
acct_servers = [{{ address = "127.0.0.1:{radius.acct_port}", secret = "{SECRET}" }}]
spool = "{spool}"
tunnel_accounting = true
"""


def lac_config(name: str, source: str, lns: str, options: Path) -> str:
    lines = ["[global]", f"listen-addr = {source}", "port = 1701", "access control = no", ""]
    lines += [f"[lac {name}]", f"lns = {lns}", "autodial = no", "redial = no"]
    lines += ["require authentication = no", "hostname = xlac", "length bit = yes"]
    lines += [f"pppoptfile = {options}", ""]
    return "\n".join(lines)


@dataclass
class RadiusLns:
    """The module's set-up (module doc): what each test reads."""

    pair: VethPair
    radius: FreeRadius
    lns: Lns
    clients: dict[str, Xl2tpd]
    lns_ifname: str = ""
    """The CHAP session's interface on the LNS (the one its routes go through)."""
    lac_ifname: str = ""
    """The CHAP session's interface on the LAC."""
    notes: dict[str, float] = field(default_factory=dict)
    final_counters: dict[str, int] = field(default_factory=dict)
    """The LNS interface's ``ip -s link`` counters of the CHAP session just before its
    pppd hung up (rx/tx bytes and packets): what its accounting must report."""

    def ctl(self, *argv: str) -> Any:
        """``l2tp ctl ARGV --json`` against our LNS, in this process (a CLI process costs
        seconds in the VM)."""
        out, err = io.StringIO(), io.StringIO()
        sock = str(self.lns.path.with_suffix(".sock"))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = l2tp_main(["ctl", "--socket", sock, *argv, "--json"])
        assert status == 0, err.getvalue()
        return json.loads(out.getvalue())

    def pppd_log(self, name: str) -> str:
        path = self.clients[name].pppd_log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def lac_link(self, address: str) -> str | None:
        """The LAC's ppp interface whose local IPv4 address is ``address``, if up."""
        for ifname, entry in ppp_links(self.pair.ns_b).items():
            if entry.get("inet", ("", ""))[0] == address:
                return ifname
        return None


def _exited(pid: int) -> bool:
    """Gone, or a zombie: exited, with nobody left to reap it (no init in the VM's
    namespace of processes reaps a pppd whose xl2tpd has gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def hang_up(workdir: Path, timeout: float = 8.0) -> None:
    """SIGTERM every client's pppd while our LNS still runs: each ends its link with LCP
    Terminate (which our built-in PPP acknowledges at once) and its xl2tpd, still
    running, reaps it and sends the CDN, as a user hanging up does. Stopping xl2tpd
    first instead leaves pppd retransmitting Terminate-Requests to nobody (2 x 3 s) and
    then a zombie that the harness waits 10 s for."""
    pids = pids_matching(["pppd", str(workdir)])
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(AssertionError):
        wait_until(lambda: all(_exited(pid) for pid in pids), timeout, "pppd to hang up")


def link_counters(ns: str, ifname: str) -> dict[str, int]:
    """``rx_bytes``, ``rx_packets``, ``tx_bytes``, ``tx_packets`` of ``ifname`` in ``ns``."""
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "-s", "link", "show", "dev", ifname],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (link,) = json.loads(out)
    stats = link["stats64"]
    return {
        f"{way}_{kind}": int(stats[way][kind])
        for way in ("rx", "tx")
        for kind in ("bytes", "packets")
    }


def log_time(log: str, text: str) -> float:
    """Seconds since midnight of the first line of our daemon's ``log`` containing ``text``
    (its lines start ``YYYY-MM-DD HH:MM:SS,mmm``)."""
    for line in log.splitlines():
        if text in line:
            clock = line.split()[1]
            hours, minutes, seconds = clock.replace(",", ".").split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    raise AssertionError(f"no log line with {text!r}:\n{log[-3000:]}")


def routes(ns: str) -> dict[str, dict[str, Any]]:
    """``ip -j route show`` of ``ns`` by destination."""
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "route", "show"], capture_output=True, text=True, check=True
    ).stdout
    return {str(r["dst"]): r for r in json.loads(out or "[]")}


@pytest.fixture(scope="module")
def radius_lns(
    veth_pair: VethPair, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RadiusLns]:
    require_tool("pppd")
    require_tool("xl2tpd")
    pair = veth_pair
    workdir = tmp_path_factory.mktemp("radius")
    started = time.monotonic()
    radius = FreeRadius(workdir, users=USERS, netns=pair.ns_a)
    lns = Lns(pair.ns_a, "", workdir, "lns")
    clients: dict[str, Xl2tpd] = {}
    for name, (source, user, password, refuse) in CLIENTS.items():
        xl = Xl2tpd(ns=pair.ns_b, workdir=workdir, name=f"xlac-{name}", config="")
        xl.config = lac_config(name, source, pair.a4, xl.options_path)
        xl.ppp_options = (*PPPD_CLIENT, refuse, f"name {user}", f'password "{password}"')
        clients[name] = xl
    setup = RadiusLns(pair, radius, lns, clients)
    ip_batch(
        [f"addr add {a}/24 dev vb" for a, *_ in CLIENTS.values()]
        + [f"addr add {ROUTED_BEHIND}/32 dev lo"],
        netns=pair.ns_b,
    )
    try:
        radius.start()  # a process, no thread: the daemon can still be forked
        lns.path.write_text(lns_config(pair.a4, radius, workdir / "acct.spool"))
        lns.start()
        with ThreadPoolExecutor(len(clients)) as pool:
            list(pool.map(lambda c: c.start(), clients.values()))
        for name, client in clients.items():
            client.control(f"c {name}")
        wait_until(lambda: setup.lac_link(CHAP_ADDRESS), 60, "the CHAP session up")
        wait_until(lambda: setup.lac_link(IDLE_ADDRESS), 30, "the idle session up")
        setup.lac_ifname = setup.lac_link(CHAP_ADDRESS) or ""
        lns_links = ppp_links(pair.ns_a)
        setup.lns_ifname = next(
            name for name, e in lns_links.items() if e.get("inet", ("", ""))[1] == CHAP_ADDRESS
        )
        setup.notes["setup_s"] = time.monotonic() - started
        yield setup
    except AssertionError as exc:
        logs = "\n".join(
            [lns.tail(), radius.output()[-3000:]] + [setup.pppd_log(n) for n in clients]
        )
        raise AssertionError(f"{exc}\n{logs}") from None
    finally:
        hang_up(workdir)
        with ThreadPoolExecutor(len(clients)) as pool:
            list(pool.map(lambda c: c.stop(), clients.values()))
        lns.stop(raise_on_timeout=False)
        radius.stop()
        for proc in (lns, *clients.values()):
            save_artifact(proc.log, f"radius-{proc.log.name}")
        for name in clients:
            save_artifact(clients[name].pppd_log_path, f"radius-{name}.pppd.log")
        save_artifact(radius.log, "radius-freeradius.log")
        clean_up([lns, *clients.values()], [pair.ns_a, pair.ns_b])
        for pid in pids_matching(["pppd", str(workdir)]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # a failed test's: its xl2tpd is gone
        ip_batch(
            [f"addr del {a}/24 dev vb" for a, *_ in CLIENTS.values()]
            + [f"addr del {ROUTED_BEHIND}/32 dev lo"],
            netns=pair.ns_b,
        )


# --- the idle session: ended by Idle-Timeout ---------------------------------------------


def test_idle_timeout_ends_a_session_without_traffic(radius_lns: RadiusLns) -> None:
    s = radius_lns
    wait_until(lambda: s.lac_link(IDLE_ADDRESS) is None, 15, "the idle session to end")
    out = s.lns.output()
    assert "reporting CDN result 3 (PPP idle timeout)" in out, out[-3000:]
    # How long it lived with IP up, by the daemon's own clock (its log's timestamps): at
    # least the limit, at most one more check (a second) and scheduling later. This test
    # runs before any ping: both client links have 10.78.0.1 as their peer, so the LAC may
    # send a reply to the LNS through this link, which is then not idle (seen: 4 s).
    up = log_time(out, f"IPCP up: local {LOCAL}, peer {IDLE_ADDRESS}")
    ended = log_time(out, "idle time limit reached; ending the session")
    assert IDLE_TIMEOUT <= ended - up < IDLE_TIMEOUT + IDLE_SLACK, (up, ended)
    s.notes["idle_lived_s"] = ended - up
    assert s.lac_link(CHAP_ADDRESS) == s.lac_ifname  # the other one lives on


# --- the CHAP session: address, routes, ping -------------------------------------------


def test_chap_session_gets_the_radius_address_and_routes(radius_lns: RadiusLns) -> None:
    s = radius_lns
    assert s.lac_ifname and s.lns_ifname
    lac = ppp_links(s.pair.ns_b)[s.lac_ifname]
    assert lac["inet"] == (CHAP_ADDRESS, LOCAL)  # Framed-IP-Address, not the pool's first
    assert "CHAP authentication succeeded" in s.pppd_log("chap")
    ping(s.pair.ns_a, CHAP_ADDRESS)
    # Framed-Route: the good ones through the session's interface, the malformed one not.
    found = routes(s.pair.ns_a)
    assert found[ROUTED]["dev"] == s.lns_ifname and found[ROUTED]["metric"] == 7, found
    assert found[ROUTED_PLAIN]["dev"] == s.lns_ifname, found
    via = found[ROUTED_VIA]
    assert (via["dev"], via["gateway"], via["metric"]) == (s.lns_ifname, GATEWAY, 3), found
    assert "onlink" in via["flags"], found
    assert "10.79.3.0/33" not in found and not any(d.startswith("10.79.3.") for d in found)
    ping(s.pair.ns_a, ROUTED_BEHIND)  # through the route, to the LAC's loopback
    assert "Framed-Route" in s.lns.output() and "not understood" in s.lns.output()


# --- the wrong password: Access-Reject, CDN ----------------------------------------------


def test_wrong_password_is_rejected_with_a_cdn(radius_lns: RadiusLns) -> None:
    s = radius_lns
    wait_until(lambda: "authentication failed" in s.pppd_log("bad"), 20, "pppd's failure")
    out = s.lns.output()
    assert 'chap-md5 user "chap-user": RADIUS Access-Reject' in out, out[-3000:]
    assert "reporting CDN result 2 (PPP authentication failed)" in out
    assert "Wr0ng-Pa55" not in out and "chap-pass" not in out
    # The CDN reached the LAC, with our Result Code's message ("control_finish: Connection
    # closed to 10.201.0.1, serial 1 (PPP authentication failed)").
    xlac = s.clients["bad"]
    wait_until(lambda: "(PPP authentication failed)" in xlac.output(), 10, "xl2tpd's CDN")

    # No Start for it, but one Tunnel-Link-Reject (RFC 2867 3.6): the user, User-Error.
    def link_rejects() -> list[dict[str, str]]:
        records = s.radius.detail_records()
        return [r for r in records if r.get("Acct-Status-Type") == "Tunnel-Link-Reject"]

    wait_until(link_rejects, 10, "the Tunnel-Link-Reject")
    (reject,) = link_rejects()
    assert reject["User-Name"] == "chap-user", reject
    assert reject["Acct-Terminate-Cause"] == "User-Error", reject


# --- l2tp ctl status ---------------------------------------------------------------------


def test_ctl_status_shows_the_radius_counters(radius_lns: RadiusLns) -> None:
    s = radius_lns

    def settled() -> bool:
        radius = s.ctl("status")["radius"]
        return bool(radius["auth"]["rejects"] >= 1 and radius["granted"]["idle_timeouts"] >= 1)

    wait_until(settled, 20, "the reject and the idle timeout counted")
    status = s.ctl("status")["radius"]
    auth = status["auth"]
    assert auth["accepts"] >= 2 and auth["rejects"] >= 1 and auth["timeouts"] == 0, status
    assert auth["bad_routes"] == 1, status
    servers = status["servers"]  # the authentication and the accounting server
    assert len(servers) == 2, status
    server = servers[f"127.0.0.1:{s.radius.auth_port}"]
    assert server["accepts"] == auth["accepts"] and server["rejects"] == auth["rejects"]
    assert status["accounting"]["accounting_starts"] >= 2, status
    granted = status["granted"]
    assert granted["routes_added"] == 3 and granted["route_errors"] == 0, status
    assert granted["idle_timeouts"] == 1, status
    print(f"\nradius kernel test: {s.notes}; status {status}")


# --- the end of the CHAP session ---------------------------------------------------------


def test_hang_up_ends_the_session_and_takes_its_routes_away(radius_lns: RadiusLns) -> None:
    s = radius_lns
    ping(s.pair.ns_a, CHAP_ADDRESS, count=3)  # traffic for the counters to show
    s.final_counters = link_counters(s.pair.ns_a, s.lns_ifname)
    assert s.final_counters["rx_packets"] >= 3 and s.final_counters["tx_packets"] >= 3
    (pid,) = pids_matching(["pppd", str(s.clients["chap"].options_path)])
    os.kill(pid, signal.SIGTERM)  # the user hangs up: LCP Terminate, then xl2tpd's CDN
    wait_until(lambda: s.lns_ifname not in ppp_links(s.pair.ns_a), 15, "the LNS interface gone")
    assert not {ROUTED, ROUTED_PLAIN, ROUTED_VIA} & set(routes(s.pair.ns_a))
    wait_until(lambda: "session closed by peer" in s.lns.output(), 10, "the CDN from the LAC")
    assert "IPCP down: User request" in s.lns.output()

    # Accounting (RFC 2866) in FreeRADIUS's detail file: the Stop of the CHAP session
    # carries the interface's counters read just before the hang-up (plus at most the
    # few frames after it), and the cause of its end; the idle session's says Idle-Timeout.
    def stops() -> dict[str, dict[str, str]]:
        return {
            r.get("User-Name", ""): r
            for r in s.radius.detail_records()
            if r.get("Acct-Status-Type") == "Stop"
        }

    wait_until(lambda: {"chap-user", "ms-user"} <= set(stops()), 15, "the two Stop records")
    starts = [r for r in s.radius.detail_records() if r.get("Acct-Status-Type") == "Start"]
    assert {r.get("Framed-IP-Address") for r in starts} >= {CHAP_ADDRESS, IDLE_ADDRESS}
    stop = stops()["chap-user"]
    assert stop["Framed-IP-Address"] == CHAP_ADDRESS
    assert stop["Acct-Terminate-Cause"] == "User-Request", stop
    assert "L2TP" in (stop.get("Tunnel-Type"), stop.get("Tunnel-Type:0")), stop
    for attribute, side in (("Acct-Input-Octets", "rx"), ("Acct-Output-Octets", "tx")):
        before = s.final_counters[f"{side}_bytes"]
        assert before <= int(stop[attribute]) <= before + 1500, (attribute, before, stop)
    assert int(stop["Acct-Input-Packets"]) >= s.final_counters["rx_packets"]
    assert stops()["ms-user"]["Acct-Terminate-Cause"] == "Idle-Timeout"
    # Acct-Tunnel-Packets-Lost (RFC 2867 4.2): the kernel L2TP session's rx_seq_discards,
    # read over generic netlink before the PPP channel closed (present: the read worked;
    # nothing discarded on a clean veth link, and without sequence numbers nothing
    # could be: 0).
    accounting = s.ctl("status")["radius"]["accounting"]
    said = [line for line in s.lns.output().splitlines() if "lost packets" in line]
    assert accounting["accounting_lost_errors"] == 0, (accounting, said)
    for user in ("chap-user", "ms-user"):
        assert stops()[user].get("Acct-Tunnel-Packets-Lost") == "0", stops()[user]

    def link_stops() -> list[dict[str, str]]:
        records = s.radius.detail_records()
        return [r for r in records if r.get("Acct-Status-Type") == "Tunnel-Link-Stop"]

    wait_until(lambda: len(link_stops()) == 2, 10, "the two Tunnel-Link-Stop records")
    assert {r.get("Acct-Tunnel-Packets-Lost") for r in link_stops()} == {"0"}, link_stops()
