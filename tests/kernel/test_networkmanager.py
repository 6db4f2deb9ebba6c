"""kl2tpd as NetworkManager-l2tp runs it, inside IPsec (L2TP/IPsec road warrior), issue 16.

NetworkManager-l2tp 1.52 starts ``kl2tpd -config RUNDIR/kl2tpd.conf`` with its own
environment (``NM_DBUS_SERVICE_L2TP`` ...), a go-l2tp file with ``local =
"0.0.0.0:1701"`` and a pppd options file with quoted values, and stops it with SIGTERM
and SIGKILL 2 s later. Here it runs exactly so (argv, environment, files; the D-Bus
plugin left out of the options, and ``password`` given in the file where NetworkManager's
plugin would supply it) against xl2tpd as the LNS with CHAP, inside an IPsec transport
mode SA between the two namespaces.

IPsec: negotiated by strongSwan's IKE (IKEv2, pre-shared key), one charon per namespace
started with private files (tests/kernel/strongswan.py says what that takes), with the
swanctl configurations docs/networkmanager.md shows: the client's CHILD_SA has the
selectors of ``leftprotoport=udp/l2tp rightprotoport=udp/l2tp`` (UDP 1701 to 1701), the
server's accepts any client port and is narrowed to 1701. charon installs an outbound
and an inbound policy on both sides, and the inbound one requires ESP: a UDP 1701 packet
in clear is dropped. The tests check that the kernel's SAs are the ones IKE negotiated
(their SPIs), that the wire carries only ESP (tcpdump on the veth) and that the SAs'
packet counters grow.

Then the server side: xl2tpd as the LAC through the same SA to our l2tp-lns.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import require_tool
from tests.kernel.conftest import VethPair, wait_until
from tests.kernel.daemons import DaemonProcess, ManagedProcess, l2tp_objects, pppd_in
from tests.kernel.strongswan import Charon, client_swanctl_conf, server_swanctl_conf
from tests.kernel.xl2tpd_harness import (
    Capture,
    Xl2tpd,
    kill_pids,
    pids_matching,
    ping,
    ppp_addresses,
)

pytestmark = pytest.mark.kernel

NM_ENV = {
    "NM_DBUS_SERVICE_L2TP": "org.freedesktop.NetworkManager.l2tp.Connection_7",
    "NM_VPN_LOG_LEVEL": "2",
    "NM_VPN_LOG_PREFIX_TOKEN": "4242",
}
USER, PASSWORD = "alice smith", "s3cret pass"
STOP_WITHIN = 2.0
"""NetworkManager-l2tp's SIGTERM-to-SIGKILL interval."""


def ppp_options(password: str) -> str:
    """The options file as NetworkManager-l2tp writes it: one option per line, values
    quoted (minus its D-Bus plugin; ``password`` stands for what the plugin supplies)."""
    return (
        "\n".join(
            [
                "ipparam nm-l2tp-service-5e0c2f5a-1b9e-4c55-9a55-3b9c0c1d2e3f",
                "nodetach",
                "lcp-echo-failure 5",
                "lcp-echo-interval 30",
                "noauth",
                "noipdefault",
                "nodefaultroute",
                "refuse-eap",
                "refuse-pap",
                "refuse-mschap",
                "refuse-mschap-v2",
                "mru 1400",
                "mtu 1400",
                f'user "{USER}"',
                f'password "{password}"',
                "# comments and quoting are pppd's to read",
            ]
        )
        + "\n"
    )


def nm_conf(rundir: Path, server: str) -> str:
    return (
        "[tunnel.t1]\n"
        'local = "0.0.0.0:1701"\n'
        f'peer = "{server}:1701"\n'
        'version = "l2tpv2"\n'
        'encap = "udp"\n'
        "[tunnel.t1.session.s1]\n"
        'pseudowire = "ppp"\n'
        f'pppd_args = "{rundir}/ppp-options"\n'
    )


class NmKl2tpd(ManagedProcess):
    """Our kl2tpd started as NetworkManager-l2tp starts it."""

    def __init__(self, ns: str, conf: Path) -> None:
        super().__init__("kl2tpd", conf.with_name("kl2tpd.log"))
        self.ns = ns
        self.conf = conf

    def start(self) -> None:
        env = [f"{k}={v}" for k, v in NM_ENV.items()]
        pythonpath = os.environ.get("PYTHONPATH", "")
        argv = ["ip", "netns", "exec", self.ns, "env", f"PYTHONPATH={pythonpath}", *env]
        # Exactly NetworkManager's argv after the program: "-config RUNDIR/kl2tpd.conf".
        argv += [sys.executable, "-m", "l2tp.daemons.kl2tpd", "-config", str(self.conf)]
        self.spawn(argv)


PSK = "pre-shared key"


@dataclass(frozen=True)
class Ipsec:
    """The veth pair with an IKE-negotiated SA between its ends: ``ns_a`` the server
    (LNS side), ``ns_b`` the client; ``spis`` as the client's charon reported them
    (inbound, outbound)."""

    pair: VethPair
    spis: tuple[int, int]


XFRM_STATE = re.compile(
    r"^src (\S+) dst (\S+)\n\s+proto esp spi 0x([0-9a-f]+) reqid \d+ mode (\w+)$", re.M
)


def xfrm_view(ns: str) -> tuple[set[tuple[str, str, int, str]], set[tuple[str, str, str]], str]:
    """The namespace's ESP SAs ``(src, dst, spi, mode)``, its policies other than
    charon's per-socket ones ``(selector, dir, template)`` where the template is
    ``"esp transport"``, plus ``" optional"`` if a clear packet may pass (``level use``),
    and the text they were read from. Two ``ip`` runs: in ``ip -batch`` only the first
    ``xfrm`` command prints anything (iproute2 6.1)."""
    text = "".join(
        subprocess.run(
            ["ip", "-n", ns, "xfrm", what], capture_output=True, text=True, check=True
        ).stdout
        for what in ("state", "policy")
    )
    states = {(m[1], m[2], int(m[3], 16), m[4]) for m in XFRM_STATE.finditer(text)}
    policies: set[tuple[str, str, str]] = set()
    for block in re.split(r"\n(?=src )", text):
        # A policy: selector, "dir ...", "tmpl ...", the template's "proto ... mode ...";
        # SAs ("proto esp ..." second) and per-socket policies ("socket ...") are skipped.
        lines = [line.split() for line in block.strip().splitlines()]
        if len(lines) >= 4 and lines[1][0] == "dir" and lines[2][0] == "tmpl":
            template = f"{lines[3][1]} {lines[3][-1]}"  # "esp transport"
            if ["level", "use"] in lines:  # an optional template: clear packets pass
                template += " optional"
            policies.add((" ".join(lines[0]), lines[1][1], template))
    return states, policies, text


def esp_packets(ns: str) -> int:
    """Packets counted by the namespace's SAs (both directions)."""
    text = subprocess.run(
        ["ip", "-n", ns, "-s", "xfrm", "state"], capture_output=True, text=True
    ).stdout
    return sum(int(m.group(1)) for m in re.finditer(r"\d+\(bytes\), (\d+)\(packets\)", text))


def count(pcap: Path, bpf: str) -> int:
    done = subprocess.run(
        [require_tool("tcpdump"), "-n", "-r", str(pcap), bpf], capture_output=True, text=True
    )
    return len(done.stdout.splitlines())


@pytest.fixture(scope="module")
def ipsec(veth_pair: VethPair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ipsec]:
    """Two charon, the client (``ns_b``) initiating IKEv2 to the server (``ns_a``)."""
    pair = veth_pair
    workdir = tmp_path_factory.mktemp("strongswan")
    server = Charon(pair.ns_a, workdir / "server", server_swanctl_conf(pair.a4, PSK))
    client = Charon(pair.ns_b, workdir / "client", client_swanctl_conf(pair.a4, PSK))
    charons = (server, client)
    try:
        t0 = time.monotonic()
        for charon in charons:  # both start at once: each takes ~1 s in the VM
            charon.spawn_charon()
        for charon in charons:
            charon.wait_ready(30)
            charon.load()
        spis = client.initiate("l2tp")
        took = time.monotonic() - t0
        print(f"\nstrongSwan: two charon started, IKEv2 CHILD_SA installed: {took:.1f} s")
        yield Ipsec(pair, spis)
    finally:
        for charon in charons:
            if charon.running:
                assert charon.proc is not None
                charon.proc.terminate()
        for charon in charons:  # each deletes the SAs and policies it installed
            charon.terminate()


def test_the_sa_is_ikes_and_requires_esp_for_l2tp(ipsec: Ipsec) -> None:
    """The kernel holds exactly the transport-mode SAs IKE negotiated, with the SPIs
    charon reported, and ESP policies for UDP 1701 to 1701 in both directions on both
    sides (the server's any-port ``udp`` narrowed to the client's 1701)."""
    pair, (spi_in, spi_out) = ipsec.pair, ipsec.spis
    a, b = pair.a4, pair.b4
    sas = {(b, a, spi_out, "transport"), (a, b, spi_in, "transport")}
    udp = "proto udp sport 1701 dport 1701"
    for ns, local, remote in ((pair.ns_a, a, b), (pair.ns_b, b, a)):
        states, policies, text = xfrm_view(ns)
        assert states == sas, (ns, states, sas, text)
        assert policies == {
            (f"src {local}/32 dst {remote}/32 {udp}", "out", "esp transport"),
            (f"src {remote}/32 dst {local}/32 {udp}", "in", "esp transport"),
        }, (ns, policies, text)


@pytest.fixture
def chap_secrets(ipsec: Ipsec) -> Iterator[None]:
    """The LNS's pppd reads /etc/ppp/chap-secrets (pppd has no option naming another
    file): ``ip netns exec`` bind-mounts /etc/netns/NS/ppp over /etc/ppp, so xl2tpd (and
    its pppd) see a /etc/ppp holding only a chap-secrets with alice. Nothing else of
    /etc/ppp is needed there: pppd's options come from xl2tpd's ``pppoptfile``, and a
    missing /etc/ppp/options or ip-up/ip-down script is skipped."""
    etc = Path("/etc/netns") / ipsec.pair.ns_a
    ppp = etc / "ppp"
    ppp.mkdir(parents=True, exist_ok=True)
    (ppp / "chap-secrets").write_text(f'"{USER}" server "{PASSWORD}" *\n')
    (ppp / "chap-secrets").chmod(0o600)
    yield
    shutil.rmtree(etc, ignore_errors=True)


@pytest.fixture
def cleanup() -> Iterator[list[ManagedProcess]]:
    things: list[ManagedProcess] = []
    yield things
    for thing in things:
        if isinstance(thing, Xl2tpd | Capture):
            # 2 s, not the harness's 10: xl2tpd as the LAC, its peer l2tp-lns gone, did
            # not exit on SIGTERM within 10 s (measured), and nothing here is about
            # xl2tpd's own exit: SIGKILL it, its pppd go below.
            thing.stop(timeout=2.0)
        else:
            thing.kill()
    kill_pids(pids_matching(["pppd", "pppol2tp"]))


def xl2tpd_lns(pair: VethPair, workdir: Path) -> Xl2tpd:
    config = "\n".join(
        [
            "[global]",
            f"listen-addr = {pair.a4}",
            "port = 1701",
            "access control = no",
            "[lns default]",
            "ip range = 10.70.0.2-10.70.0.9",
            "local ip = 10.70.0.1",
            "require authentication = yes",
            "require chap = yes",
            "refuse pap = yes",
            "name = server",
            "hostname = xlns",
            "length bit = yes",
            f"pppoptfile = {workdir / 'xlns.ppp-options'}",
        ]
    )
    options = ("name server", "nodefaultroute", "noccp", "lcp-echo-interval 0", "debug")
    return Xl2tpd(pair.ns_a, workdir, "xlns", config + "\n", ppp_options=options)


def test_kl2tpd_as_networkmanager_runs_it_over_ipsec_against_xl2tpd(
    ipsec: Ipsec, chap_secrets: None, tmp_path: Path, cleanup: list[ManagedProcess]
) -> None:
    require_tool("xl2tpd")
    require_tool("pppd")
    pair = ipsec.pair
    capture = Capture(pair.ns_a, "va", tmp_path / "wire.pcap", bpf="")
    cleanup.append(capture)
    capture.start()
    lns = xl2tpd_lns(pair, tmp_path)
    cleanup.append(lns)
    lns.start()
    esp_before = esp_packets(pair.ns_b)

    rundir = tmp_path / "nm-l2tp-5e0c2f5a"
    rundir.mkdir()
    (rundir / "ppp-options").write_text(ppp_options(PASSWORD))
    conf = rundir / "kl2tpd.conf"
    conf.write_text(nm_conf(rundir, pair.a4))
    kl2tpd = NmKl2tpd(pair.ns_b, conf)
    cleanup.append(kl2tpd)
    kl2tpd.start()
    try:
        wait_until(lambda: bool(ppp_addresses(pair.ns_b)), 60, "ppp0 up over IPsec")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{kl2tpd.output()}\n{lns.output()}") from None
    ((_ifname, (local, peer)),) = ppp_addresses(pair.ns_b).items()
    assert peer == "10.70.0.1" and local.startswith("10.70.0."), (local, peer)
    result = ping(pair.ns_b, peer, count=3)
    assert result.returncode == 0, result.stdout + kl2tpd.output()

    # pppd runs with NetworkManager's environment (its plugin talks D-Bus with it).
    (pppd,) = pppd_in(pair.ns_b)
    environ = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{pppd}/environ").read_text().split("\0")
        if "=" in item
    )
    for key, value in NM_ENV.items():
        assert environ.get(key) == value, (key, environ)
    # The options file went to pppd whole (pppd read the quoted user name itself).
    cmdline = Path(f"/proc/{pppd}/cmdline").read_text().split("\0")
    assert cmdline[cmdline.index("file") + 1] == str(rundir / "ppp-options")
    # The server's pppd required CHAP and found "alice smith" in its secrets: the name
    # reached it whole, with its space (pppd parsed the quotes; go-l2tp would keep them).
    assert USER in Path(lns.pppd_log_path).read_text()

    # Every L2TP packet, control and data, went through IKE's SA: its counters grew, no
    # other SA came up, and (below) only ESP went on the wire.
    esp_after = esp_packets(pair.ns_b)
    assert esp_after > esp_before + 6, (esp_before, esp_after)
    assert {spi for _, _, spi, _ in xfrm_view(pair.ns_b)[0]} == set(ipsec.spis)

    # SIGTERM as NetworkManager sends it: gone within its 2 s, nothing left behind.
    assert kl2tpd.proc is not None
    t0 = time.monotonic()
    kl2tpd.proc.terminate()
    status = kl2tpd.proc.wait(timeout=30)
    took = time.monotonic() - t0
    assert status == 0, kl2tpd.output()
    assert not pppd_in(pair.ns_b) and l2tp_objects(pair.ns_b) == ([], []), kl2tpd.output()
    print(f"\nkl2tpd (NetworkManager's way, 1 PPP session, IPsec): SIGTERM->exit {took:.2f} s")
    assert took < STOP_WITHIN, (took, kl2tpd.output())
    wait_until(lambda: l2tp_objects(pair.ns_a) == ([], []), 30, "xl2tpd's clean-up")
    capture.stop()
    assert count(capture.path, "udp port 1701") == 0
    assert count(capture.path, "esp") > 6

    # A wrong password: pppd exits 19 and kl2tpd with 2, NetworkManager's "login failed".
    (rundir / "ppp-options").write_text(ppp_options("wrong"))
    kl2tpd.start()
    assert kl2tpd.proc is not None
    assert kl2tpd.proc.wait(timeout=90) == 2, kl2tpd.output()
    assert not pppd_in(pair.ns_b) and l2tp_objects(pair.ns_b) == ([], [])

    # An unknown key: exit status 1 before anything starts.
    conf.write_text(nm_conf(rundir, pair.a4) + "bogus = 1\n")
    kl2tpd.start()
    assert kl2tpd.proc.wait(timeout=60) == 1
    assert "key 'bogus': unknown key" in kl2tpd.output()


class Lns(DaemonProcess):
    MODULE = "l2tp.daemons.lns"


def test_xl2tpd_lac_over_ipsec_to_our_lns(
    ipsec: Ipsec, tmp_path: Path, cleanup: list[ManagedProcess]
) -> None:
    require_tool("xl2tpd")
    pair = ipsec.pair
    capture = Capture(pair.ns_a, "va", tmp_path / "wire.pcap", bpf="")
    cleanup.append(capture)
    capture.start()
    lns = Lns(
        pair.ns_a,
        f"""
[listener.main]
listen = "{pair.a4}:1701"
pppd_options = ["noauth", "nodefaultroute", "lcp-echo-interval", "0", "10.71.0.1:10.71.0.2"]
""",
        tmp_path,
        "lns",
    )
    cleanup.append(lns)
    lns.start()
    lac = Xl2tpd(
        pair.ns_b,
        tmp_path,
        "xlac",
        "\n".join(
            [
                "[global]",
                f"listen-addr = {pair.b4}",
                "port = 1701",
                "access control = no",
                "[lac uplink]",
                f"lns = {pair.a4}",
                "autodial = no",
                "redial = no",
                "require authentication = no",
                "refuse chap = yes",
                "refuse pap = yes",
                "length bit = yes",
                f"pppoptfile = {tmp_path / 'xlac.ppp-options'}",
            ]
        )
        + "\n",
    )
    cleanup.append(lac)
    lac.start()
    esp_before = esp_packets(pair.ns_a)
    lac.control("c uplink")
    try:
        wait_until(lambda: bool(ppp_addresses(pair.ns_b)), 60, "ppp up over IPsec")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{lns.output()}\n{lac.output()}") from None
    ((_ifname, (_local, peer)),) = ppp_addresses(pair.ns_b).items()
    assert peer == "10.71.0.1"
    result = ping(pair.ns_b, peer, count=3)
    assert result.returncode == 0, result.stdout + lns.output()
    assert esp_packets(pair.ns_a) > esp_before + 6
    t0 = time.monotonic()
    assert lns.stop() == 0, lns.output()
    took = time.monotonic() - t0
    assert not pppd_in(pair.ns_a) and l2tp_objects(pair.ns_a) == ([], [])
    print(f"\nl2tp-lns (1 PPP session, IPsec): SIGTERM->exit {took:.2f} s")
    capture.stop()
    assert count(capture.path, "udp port 1701") == 0
    assert count(capture.path, "esp") > 6
