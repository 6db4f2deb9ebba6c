"""ql2tpd against a real kernel: static pairs, interop with iproute2, quiescent failover.

Each test runs real ``ql2tpd`` processes inside network namespaces (``ip netns
exec``), so the daemon's whole path - config file, netlink, signals - is what
is tested. iproute2 is the independent oracle for the kernel state.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from l2tp.cli.decode import decode_capture
from tests.helpers import require_tool
from tests.kernel.conftest import VethPair, ip_batch, ip_json, wait_until
from tests.kernel.daemons import DaemonProcess
from tests.kernel.xl2tpd_harness import Capture

pytestmark = pytest.mark.kernel


class Daemon(DaemonProcess):
    """One ql2tpd process in a namespace, with its log and readiness file."""

    MODULE = "l2tp.daemons.ql2tpd"
    VERBOSITY = "-vv"
    FORK = True


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def _tunnels(ns: str) -> list[dict[str, object]]:
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "l2tp", "show", "tunnel"], capture_output=True, text=True
    ).stdout
    return json.loads(out or "[]")  # type: ignore[no-any-return]


def _sessions(ns: str) -> list[dict[str, object]]:
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "l2tp", "show", "session"], capture_output=True, text=True
    ).stdout
    return json.loads(out or "[]")  # type: ignore[no-any-return]


def _wait_session(ns: str, sid: int, daemon: Daemon, timeout: float = 30.0) -> None:
    """Wait until the namespace holds exactly session ``sid`` and its interface is up."""
    try:
        wait_until(
            lambda: [s["session_id"] for s in _sessions(ns)] == [sid],
            timeout=timeout,
            what=f"session {sid} in {ns}",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{daemon.output()}") from None


def _ping(ns: str, addr: str, count: int = 2) -> bool:
    done = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "ping",
            "-n",
            "-q",
            "-c",
            str(count),
            "-i",
            "0.2",
            "-W",
            "2",
            addr,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode == 0


def _overlay(pair: VethPair, links: list[tuple[str, str, str]]) -> None:
    """Put ``(ifname, addr_a, addr_b)`` on the pseudowire interfaces of both sides."""
    for ns, pick in ((pair.ns_a, 1), (pair.ns_b, 2)):
        cmds = []
        for ifname, addr_a, addr_b in links:
            cmds += [
                f"addr add {addr_a if pick == 1 else addr_b}/30 dev {ifname}",
                f"link set {ifname} up",
            ]
        ip_batch(cmds, netns=ns)


def _tunnel_toml(
    name: str,
    local: str,
    peer: str,
    encap: str,
    tid: int,
    ptid: int,
    sid: int,
    psid: int,
    ifname: str,
    cookie: str = "",
    peer_cookie: str = "",
    extra: str = "",
) -> str:
    text = f"""
[tunnel.{name}]
local = "{local}"
peer = "{peer}"
version = "l2tpv3"
encap = "{encap}"
tid = {tid}
ptid = {ptid}
{extra}
[tunnel.{name}.session.s1]
pseudowire = "eth"
sid = {sid}
psid = {psid}
interface_name = "{ifname}"
"""
    if cookie:
        text += f"cookie = {cookie}\n"
    if peer_cookie:
        text += f"peer_cookie = {peer_cookie}\n"
    return text


C4 = "[0x01, 0x02, 0x03, 0x04]"
C8 = "[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]"


def _four_encaps(pair: VethPair, side: str) -> str:
    """Static tunnels over UDP/IP x IPv4/IPv6, all with (asymmetric) cookies."""
    a = side == "a"
    v4 = (pair.a4, pair.b4) if a else (pair.b4, pair.a4)
    v6 = (pair.a6, pair.b6) if a else (pair.b6, pair.a6)
    ids = (1, 2) if a else (2, 1)
    cookies = (C4, C8) if a else (C8, C4)
    out = ""
    for n, (encap, fam) in enumerate((("udp", 4), ("udp", 6), ("ip", 4), ("ip", 6))):
        local, peer = v4 if fam == 4 else (f"[{v6[0]}]", f"[{v6[1]}]")
        port = f":{6000 + n}" if encap == "udp" else ""
        out += _tunnel_toml(
            f"{encap}{fam}",
            local + port,
            peer + port,
            encap,
            100 * (n + 1) + ids[0],
            100 * (n + 1) + ids[1],
            10 * (n + 1) + ids[0],
            10 * (n + 1) + ids[1],
            f"q{encap}{fam}",
            cookie=cookies[0],
            peer_cookie=cookies[1],
        )
    return out


def test_static_pair_every_encap_pings_and_sigterm_removes_only_its_own(
    veth_pair: VethPair, daemons: list[Daemon], tmp_path: Path
) -> None:
    require_tool("ping")
    pair = veth_pair
    # Something ql2tpd did not create, which it must leave alone at SIGTERM.
    ip_batch(
        [
            f"l2tp add tunnel tunnel_id 999 peer_tunnel_id 999 encap udp local {pair.a4} "
            f"remote {pair.b4} udp_sport 6999 udp_dport 6999",
        ],
        netns=pair.ns_a,
    )
    a = Daemon(pair.ns_a, _four_encaps(pair, "a"), tmp_path, "a")
    b = Daemon(pair.ns_b, _four_encaps(pair, "b"), tmp_path, "b")
    daemons += [a, b]
    a.start()
    b.start()
    # iproute2's view of what ql2tpd built: IDs and cookies as configured.
    sessions = {s["interface"]: s for s in _sessions(pair.ns_a)}
    assert set(sessions) == {"qudp4", "qudp6", "qip4", "qip6"}
    for s in sessions.values():
        assert s["cookie"] == "01020304", s
        assert s["peer_cookie"] == "1112131415161718", s
    links = [
        (f"q{e}", f"10.99.{i}.1", f"10.99.{i}.2")
        for i, e in enumerate(["udp4", "udp6", "ip4", "ip6"])
    ]
    _overlay(pair, links)
    failed = [ifname for ifname, _a, addr_b in links if not _ping(pair.ns_a, addr_b)]
    assert not failed, f"no traffic over {failed}\n{a.output()}\n{b.output()}"
    assert a.stop() == 0 and b.stop() == 0
    assert [t["tunnel_id"] for t in _tunnels(pair.ns_a)] == [999]
    assert _tunnels(pair.ns_b) == []
    ip_batch(["l2tp del tunnel tunnel_id 999"], netns=pair.ns_a)


def test_interop_with_iproute2_static_session(
    veth_pair: VethPair, daemons: list[Daemon], tmp_path: Path
) -> None:
    """ql2tpd on one side, plain ``ip l2tp`` on the other: cookies must line up."""
    pair = veth_pair
    a = Daemon(
        pair.ns_a,
        _tunnel_toml(
            "t",
            f"{pair.a4}:7000",
            f"{pair.b4}:7000",
            "udp",
            700,
            701,
            70,
            71,
            "qint",
            cookie=C4,
            peer_cookie=C8,
        ),
        tmp_path,
        "a",
    )
    daemons.append(a)
    a.start()
    ip_batch(
        [
            f"l2tp add tunnel tunnel_id 701 peer_tunnel_id 700 encap udp local {pair.b4} "
            f"remote {pair.a4} udp_sport 7000 udp_dport 7000",
            "l2tp add session name qint tunnel_id 701 session_id 71 peer_session_id 70 "
            "cookie 1112131415161718 peer_cookie 01020304 l2spec_type none",
        ],
        netns=pair.ns_b,
    )
    try:
        _overlay(pair, [("qint", "10.98.0.1", "10.98.0.2")])
        assert _ping(pair.ns_a, "10.98.0.2"), a.output()
    finally:
        ip_batch(["l2tp del tunnel tunnel_id 701"], netns=pair.ns_b)
        a.stop()


def _stays_up(pair: VethPair, a: Daemon, b: Daemon, workdir: Path, encap: str) -> None:
    """Watch the wire until 8 HELLOs have been answered with neither side losing the other.

    8 answered HELLOs span more than a's detection time (a HELLO per 0.5 s idle; 0.5 + 3.0
    s from an unanswered one to teardown), however slow the machine: watched, not slept
    through. A side already retransmitting its last HELLO when the other came up may still
    give up on it once (its retransmissions run out just then), so the watch starts over
    after such a loss, twice at most; with the channel's resync (quiescent.py) the pair
    then stays in step.
    """
    for attempt in range(3):
        pcap = workdir / f"hellos-{encap}-{attempt}.pcap"
        if not _lost_while_watching(pair, a, b, pcap, encap):
            return
        _wait_session(pair.ns_a, 80, a)
        _wait_session(pair.ns_b, 81, b)
    raise AssertionError(f"a live pair kept losing each other:\n{a.output()}\n{b.output()}")


def _lost_while_watching(pair: VethPair, a: Daemon, b: Daemon, pcap: Path, encap: str) -> bool:
    """Capture on a's veth until 8 answered HELLOs (False) or a side loses the other (True)."""
    seen_a, seen_b = len(a.output()), len(b.output())

    def lost() -> bool:
        return "peer lost" in a.output()[seen_a:] + b.output()[seen_b:]

    bpf = "udp port 7100" if encap == "udp" else "ip proto 115"
    capture = Capture(pair.ns_a, "va", pcap, bpf=bpf)
    capture.start()
    answered = _HelloCount(pcap)
    try:
        wait_until(lambda: lost() or answered() >= 8, 60, "8 answered HELLOs", interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- a:\n{a.output()}\n--- b:\n{b.output()}") from None
    finally:
        capture.stop()
    return lost()


class _HelloCount:
    """HELLOs in a growing capture (each counted once, not its retransmissions) that the
    other end acknowledged: a later message from it with Nr past the HELLO's Ns."""

    def __init__(self, pcap: Path) -> None:
        self.pcap = pcap
        self.size = -1
        self.count = 0

    def __call__(self) -> int:
        size = self.pcap.stat().st_size if self.pcap.exists() else 0
        if size == self.size:
            return self.count  # decode again only when tcpdump wrote something
        self.size = size
        records = decode_capture(self.pcap, ports=(7100,)) if size else iter(())
        control = [r for r in records if r.get("kind") == "control"]
        answered = set()
        for i, hello in enumerate(control):
            if hello["message_type"] != "HELLO":
                continue
            for later in control[i + 1 :]:
                acked = 0 < (later["nr"] - hello["ns"]) % 65536 < 32768
                if later["src"] != hello["src"] and acked:
                    answered.add((hello["src"], hello["ns"]))
                    break
        self.count = len(answered)
        return self.count


@pytest.mark.parametrize("encap", ["udp", "ip"])
def test_quiescent_tears_down_on_dead_peer_and_recovers(
    veth_pair: VethPair, daemons: list[Daemon], tmp_path: Path, encap: str
) -> None:
    """HELLO every 0.5 s idle, retries 0.2+0.4+0.8+1.6 s: a dead peer is noticed in ~3.5 s."""
    pair = veth_pair
    port = ":7100" if encap == "udp" else ""
    timers = "hello_timeout = 500\nretry_timeout = 200\nmax_retries = 3\n"
    conf_a = _tunnel_toml(
        "q",
        f"{pair.a4}{port}",
        f"{pair.b4}{port}",
        encap,
        800,
        801,
        80,
        81,
        "qq",
        extra=timers,
    )
    conf_b = _tunnel_toml(
        "q",
        f"{pair.b4}{port}",
        f"{pair.a4}{port}",
        encap,
        801,
        800,
        81,
        80,
        "qq",
        extra=timers,
    )
    # a runs outside its namespace with --netns: its sockets must follow it there.
    a = Daemon(pair.ns_a, conf_a, tmp_path, "qa", netns_flag=True)
    b = Daemon(pair.ns_b, conf_b, tmp_path, "qb")
    daemons += [a, b]
    a.start()
    b.start()
    # a may have given up on b while b was still starting (~3 s), then found it again,
    # which recreates its session: addresses go on only once the pair is stable, as
    # they would be lost with the interface (seen under the full suite's load).
    _wait_session(pair.ns_a, 80, a)
    _wait_session(pair.ns_b, 81, b)
    # HELLOs keep the tunnel up while both live: see _stays_up.
    _stays_up(pair, a, b, tmp_path, encap)
    _overlay(pair, [("qq", "10.97.0.1", "10.97.0.2")])
    assert _ping(pair.ns_a, "10.97.0.2"), a.output()
    assert [s["session_id"] for s in _sessions(pair.ns_a)] == [80], a.output()

    b.stop(signal.SIGKILL)  # the kernel drops b's managed tunnel with its socket
    killed = time.monotonic()
    try:
        wait_until(lambda: not _tunnels(pair.ns_a), timeout=20, what="a to notice b is gone")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{a.output()}") from None
    detected = time.monotonic() - killed
    assert "peer lost" in a.output()

    b.start()
    _wait_session(pair.ns_a, 80, a)
    _wait_session(pair.ns_b, 81, b)
    (tmp_path / "again").mkdir()
    _stays_up(pair, a, b, tmp_path / "again", encap)
    try:
        _overlay(pair, [("qq", "10.97.0.1", "10.97.0.2")])
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- a:\n{a.output()}\n--- b:\n{b.output()}") from None
    assert _ping(pair.ns_a, "10.97.0.2", count=3), a.output() + b.output()
    print(f"quiescent {encap}: dead peer detected after {detected:.1f} s")
    assert a.stop() == 0 and b.stop() == 0
    assert _tunnels(pair.ns_a) == [] and _tunnels(pair.ns_b) == []


def test_bridge_key_attaches_the_pseudowire_and_traffic_crosses_the_bridge(
    veth_pair: VethPair, daemons: list[Daemon], tmp_path: Path
) -> None:
    """Site-to-site: side A's l2tpeth is a bridge port; a host behind the bridge pings B."""
    pair = veth_pair
    # A "LAN host" namespace behind side A's bridge, joined by a veth.
    lan = pair.ns_a + "l"
    ip_batch(
        [
            f"netns add {lan}",
            f"link add lanh netns {lan} type veth peer name lanp netns {pair.ns_a}",
        ]
    )
    try:
        ip_batch(
            [
                "link add qbr0 type bridge",
                "link set lanp master qbr0",
                "link set lanp up",
                "link set qbr0 up",
            ],
            netns=pair.ns_a,
        )
        ip_batch(
            ["addr add 10.96.0.10/24 dev lanh", "link set lanh up", "link set lo up"], netns=lan
        )
        conf_a = _tunnel_toml(
            "br", f"{pair.a4}:7200", f"{pair.b4}:7200", "udp", 900, 901, 90, 91, "qbrif", extra=""
        )
        conf_a += 'bridge = "qbr0"\n'
        conf_b = _tunnel_toml(
            "br", f"{pair.b4}:7200", f"{pair.a4}:7200", "udp", 901, 900, 91, 90, "qbrif"
        )
        a = Daemon(pair.ns_a, conf_a, tmp_path, "bra")
        b = Daemon(pair.ns_b, conf_b, tmp_path, "brb")
        daemons += [a, b]
        a.start()
        b.start()
        link = ip_json(["link show dev qbrif"], netns=pair.ns_a)[0][0]
        assert link.get("master") == "qbr0", link
        ip_batch(["link set qbrif up"], netns=pair.ns_a)
        ip_batch(["addr add 10.96.0.20/24 dev qbrif", "link set qbrif up"], netns=pair.ns_b)
        assert _ping(lan, "10.96.0.20", count=3), a.output() + b.output()
        assert a.stop() == 0 and b.stop() == 0
    finally:
        ip_batch([f"netns del {lan}"])
