"""Our kl2tpd with built-in PPP against l2tpns, an LNS with its own PPP (issue 17).

l2tpns (Debian's 2.4.1) terminates L2TP and PPP in user space and hands IP to the kernel
through a tun device; it authenticates every PPP session against RADIUS, so FreeRADIUS
(Debian's 3.2) runs beside it on 127.0.0.1 in the LNS's namespace. Both run from private
files under the test's temporary directory, never the machine's /etc ones (the facts this
needs are in docs/testing.md, "l2tpns and FreeRADIUS"):

* FreeRADIUS from tests/freeradius.py (:class:`~tests.freeradius.FreeRadius`, its
  minimal ``radiusd.conf``) inside the LNS's namespace, its authentication listener on
  the fixed port 1812 (l2tpns's ``primary_radius`` has no port), with a ``users`` file
  holding the test user and the Framed-IP-Address l2tpns must hand our side in IPCP;
* l2tpns with ``-c CONFIG``, and its address pool, which it reads only from the fixed
  path /etc/l2tpns/ip_pool, bind-mounted from the temporary directory inside the mount
  namespace ``ip netns exec`` gives it.

One session: kl2tpd (a real process, ``ppp = "builtin"``, CHAP-MD5 as l2tpns asks for it)
over a veth pair; LCP must open without waiting for a restart timer (:data:`LCP_UP_BOUND`);
IPCP must give the RADIUS address; ping both ways across the PPP link
(through l2tpns's tun device on its side); SIGTERM to kl2tpd must end the tunnel at l2tpns
and leave no kernel tunnel, session or ppp interface on ours. The L2TP traffic is captured
and every PPP frame (ours and l2tpns's) must decode in tshark.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.freeradius import SECRET as RADIUS_SECRET
from tests.freeradius import FreeRadius
from tests.helpers import require_tool
from tests.kernel.conftest import VethPair, wait_until
from tests.kernel.daemons import DaemonProcess, ManagedProcess
from tests.kernel.test_builtin_ppp import assert_ppp_decodes, ping, ppp_capture, ppp_links
from tests.kernel.test_l2tpv2_pppd import _l2tp_state
from tests.kernel.xl2tpd_harness import save_artifact

pytestmark = pytest.mark.kernel

USER, PASSWORD = "lnsuser", "l2tpns-pass"
TUN_ADDRESS = "10.74.0.1"
"""l2tpns's tun address, also what it gives our side as the peer's address in IPCP."""
POOL = "10.74.0.16/28"
FRAMED_ADDRESS = "10.74.0.20"
"""From RADIUS (Framed-IP-Address), inside the pool: l2tpns must take it over the pool's
first free address."""
RADIUS_USERS = (
    f'{USER} Cleartext-Password := "{PASSWORD}"\n\tFramed-IP-Address = {FRAMED_ADDRESS}\n'
)
RADIUS_PORT = 1812
"""l2tpns asks only 127.0.0.1:1812 (``primary_radius`` takes an address, no port)."""


LCP_UP_BOUND = 1.5
"""Seconds from kl2tpd's PPP start to LCP Opened. l2tpns sends its LCP Configure-Request as
soon as it has our ICCN; kl2tpd made its kernel session and PPP channel only after that
ICCN, so the request was lost and LCP opened on l2tpns's 3 s restart timer (2.94 s from our
PPP start, 2.98 s from the ICCN, measured in the test VM). Now the ICCN waits for the
channel (``CallParams.wait_data_plane``): 0.02 s from the ICCN in the same VM. The bound
stays well under the restart timer, with room for a loaded emulated VM."""
LCP_UP = re.compile(r"LCP up after (\d+\.\d+) s")


class Kl2tpd(DaemonProcess):
    MODULE = "l2tp.daemons.kl2tpd"
    VERBOSITY = "-vv"


class L2tpns(ManagedProcess):
    """l2tpns in the foreground, logging to stderr (no ``log_file``)."""

    def __init__(self, ns: str, workdir: Path, bind: str, interface: str) -> None:
        super().__init__("l2tpns", workdir / "l2tpns.log")
        self.ns = ns
        self.etc = workdir / "etc-l2tpns"
        self.config = workdir / "startup-config"
        self.pid_file = workdir / "l2tpns.pid"
        self.bind = bind
        self.interface = interface

    def is_ready(self) -> bool:
        # Until it has elected itself the cluster master, l2tpns forwards what it receives
        # to a master (none here) instead of answering.
        return "I am declaring myself the master" in self.output()

    def start(self) -> None:
        l2tpns = require_tool("l2tpns")
        tun_device()
        self.etc.mkdir()
        (self.etc / "ip_pool").write_text(POOL + "\n")
        self.config.write_text(
            "\n".join(
                [
                    "set debug 3",
                    f'set pid_file "{self.pid_file}"',
                    'set hostname "l2tpns"',
                    f"set bind_address {self.bind}",
                    f"set iftun_address {TUN_ADDRESS}",
                    f"set peer_address {TUN_ADDRESS}",
                    'set tundevicename "lnstun"',
                    "set cli_bind_address 127.0.0.1",
                    "set send_garp no",
                    "set primary_dns 0.0.0.0",
                    "set secondary_dns 0.0.0.0",
                    "set primary_radius 127.0.0.1",
                    f'set radius_secret "{RADIUS_SECRET}"',
                    'set radius_authtypes "chap"',
                    # Clustering cannot be turned off: it needs an interface with an
                    # address (default eth0, which the namespace lacks) and waits
                    # cluster_hb_timeout (default 15 s) for a master before it becomes
                    # one (in tenths of a second; it raised 5 to 19 with this interval).
                    f'set cluster_interface "{self.interface}"',
                    "set cluster_hb_interval 2",
                    "set cluster_hb_timeout 20",
                    "",
                ]
            )
        )
        script = 'mount --bind "$1" /etc/l2tpns && shift && exec "$@"'
        # setsid: on SIGTERM l2tpns signals its whole process group, which would otherwise
        # be the test's (pytest, and in the VM the script that reports the exit status).
        argv = ["ip", "netns", "exec", self.ns, "setsid", "sh", "-c", script, "sh"]
        argv += [str(self.etc)]
        self.spawn([*argv, l2tpns, "-c", str(self.config)])


def tun_device() -> None:
    """/dev/net/tun for l2tpns: the VM has no udev to load the module on first use; once
    it is loaded, devtmpfs has the node."""
    subprocess.run(["modprobe", "tun"], capture_output=True, check=False)


@pytest.fixture
def procs() -> Iterator[list[ManagedProcess]]:
    started: list[ManagedProcess] = []
    yield started
    for proc in reversed(started):
        proc.stop(raise_on_timeout=False, timeout=10)
        save_artifact(proc.log, f"l2tpns-test-{proc.log.name}")


@pytest.fixture
def radius(veth_pair: VethPair, tmp_path: Path) -> Iterator[FreeRadius]:
    """FreeRADIUS in the LNS's namespace (not started: the test starts it beside the
    others), stopped and its log kept afterwards: after the daemons of ``procs`` (the
    test asks for this fixture first), so that the LNS never outlives its server."""
    require_tool("freeradius")
    server = FreeRadius(tmp_path, RADIUS_USERS, netns=veth_pair.ns_a, auth_port=RADIUS_PORT)
    yield server
    server.stop()
    save_artifact(server.log, f"l2tpns-test-{server.log.name}")


def test_kl2tpd_builtin_ppp_to_l2tpns_with_freeradius(
    veth_pair: VethPair, radius: FreeRadius, procs: list[ManagedProcess], tmp_path: Path
) -> None:
    require_tool("l2tpns")
    pair = veth_pair
    lns = L2tpns(pair.ns_a, tmp_path, pair.a4, "va")
    lac = Kl2tpd(
        pair.ns_b,
        f"""
[tunnel.t1]
peer = "{pair.a4}:1701"
hello_timeout = 5000

[tunnel.t1.session.s1]
ppp = "builtin"
interface_name = "to-l2tpns"
[tunnel.t1.session.s1.builtin_ppp]
auth = ["chap-md5"]
user = "{USER}"
password = "{PASSWORD}"
""",
        tmp_path,
        "kl2tpd",
    )
    with ppp_capture(pair.ns_a, "va", tmp_path / "l2tpns.pcap") as pcap:
        # All three start at once: kl2tpd's start (~10 s in the VM) outlasts l2tpns's
        # election (~2 s), and an SCCRQ sent before that would be retransmitted.
        radius.start(wait=False)
        procs.append(lns)
        lns.start()
        procs.append(lac)
        lac.start(wait_ready=False)
        radius.wait_ready(20)
        lns.wait_ready(20)
        lac.wait_ready(60)

        def up() -> bool:
            return "inet" in ppp_links(pair.ns_b).get("to-l2tpns", {})

        try:
            wait_until(up, 30, "the PPP session to l2tpns up")
        except AssertionError as exc:
            logs = "\n".join(f"--- {p.label}\n{p.output()}" for p in (lac, lns))
            logs += f"\n--- freeradius\n{radius.output()}"
            raise AssertionError(f"{exc}\n{logs}") from None
        local, peer = ppp_links(pair.ns_b)["to-l2tpns"]["inet"]
        assert (local, peer) == (FRAMED_ADDRESS, TUN_ADDRESS)
        assert f"Login OK: [{USER}]" in radius.output()
        (lcp_up,) = LCP_UP.findall(lac.output())
        assert float(lcp_up) < LCP_UP_BOUND, lac.output()
        ping(pair.ns_b, TUN_ADDRESS)
        ping(pair.ns_a, FRAMED_ADDRESS)
        assert lac.stop(signal.SIGTERM) == 0, lac.output()
    # kl2tpd ended its tunnel with a StopCCN l2tpns heard, and left nothing in our kernel.
    assert _l2tp_state(pair.ns_b) == ([], [])
    assert not ppp_links(pair.ns_b)
    wait_until(lambda: "Received StopCCN" in lns.output(), 10, "l2tpns to hear the StopCCN")
    assert 'chap-md5 authentication as user "lnsuser" succeeded' in lac.output()
    assert PASSWORD not in lac.output()
    assert_ppp_decodes(pcap, {"lcp", "chap", "ipcp", "icmp"})
