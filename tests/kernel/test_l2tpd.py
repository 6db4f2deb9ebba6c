"""l2tpd against l2tpd in two namespaces: dynamic L2TPv3 with real l2tpeth pseudowires.

Side A (run from outside its namespace, with --netns) runs two listeners
(UDP/IPv4 and IP-encap/IPv6, both with a secret and Message Digest), binding
incoming sessions by Remote End ID; side B initiates
one control connection to each: two Ethernet sessions over UDP/IPv4 and one
over IP/IPv6 with the Default L2-Specific Sublayer and sequencing, all with
cookies. A's "lan" pseudowire is a port of a bridge with a LAN host behind it.
Checked: the kernel objects on both sides agree (IDs, cookies swapped, encap,
MTU, bridge), traffic crosses every pseudowire, tshark dissects every control
message we sent (digests validated with the secret) with no malformed packet,
killing A makes B remove its sessions within the HELLO/retry time, and B
re-establishes everything when A comes back. A wrong secret leaves no kernel
state on either side.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from l2tp.cli.decode import decode_capture
from tests.helpers import require_tool
from tests.kernel.conftest import VethPair, ip_batch, ip_json, wait_until
from tests.kernel.daemons import DaemonProcess
from tests.kernel.xl2tpd_harness import Capture, save_artifact
from tests.tshark_oracle import assert_matches_tshark

pytestmark = pytest.mark.kernel

SECRET = "l2tpd-kernel-secret"
HELLO_MS, RETRY_MS, RETRIES = 1000, 250, 3
DEAD_PEER_S = HELLO_MS / 1000 + sum(min(RETRY_MS / 1000 * 2**k, 8.0) for k in range(RETRIES + 1))
"""HELLO interval, then every retransmission's timeout (0.25, 0.5, 1, 2 s): 4.75 s."""


class Daemon(DaemonProcess):
    """One l2tpd process in a namespace, with its log and readiness file."""

    MODULE = "l2tp.daemons.l2tpd"
    VERBOSITY = "-v"
    FORK = True


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def _show(ns: str, what: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "l2tp", "show", what], capture_output=True, text=True
    ).stdout
    return json.loads(out or "[]")  # type: ignore[no-any-return]


def _ping(ns: str, addr: str, count: int = 3) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", str(count), "-i", "0.2"]
    return subprocess.run([*argv, "-W", "2", addr], capture_output=True, text=True, timeout=60)


def _timers() -> str:
    return (
        f"hello_timeout = {HELLO_MS}\nretry_timeout = {RETRY_MS}\nmax_retries = {RETRIES}\n"
        f'secret = "{SECRET}"\n'
    )


def _responder(pair: VethPair) -> str:
    return f"""
[listener.udp4]
listen = "{pair.a4}:1701"
digest = "sha1"
{_timers()}
[listener.udp4.session.lan]
pseudowire = "eth"
cookie_len = 8
interface_name = "pwlan"
bridge = "l3br0"

[listener.udp4.session.dmz]
pseudowire = "eth"
cookie_len = 4
interface_name = "pwdmz"
mtu = 1400

[listener.ip6]
listen = "[{pair.a6}]"
encap = "ip"
{_timers()}
[listener.ip6.session.v6lan]
pseudowire = "eth"
cookie_len = 8
l2spec_type = "default"
seqnum = true
interface_name = "pwv6"
"""


def _initiator(pair: VethPair, secret: str = SECRET, *, redial: bool = True) -> str:
    redial_keys = "redial = true\nredial_timeout = 500\nmax_redial_timeout = 2000\n"
    timers = _timers().replace(SECRET, secret) + (redial_keys if redial else "")
    return f"""
[tunnel.udp4]
peer = "{pair.a4}:1701"
digest = "sha1"
{timers}
[tunnel.udp4.session.lan]
pseudowire = "eth"
cookie_len = 4
interface_name = "pwlan"

[tunnel.udp4.session.dmz]
pseudowire = "eth"
interface_name = "pwdmz"
mtu = 1400

[tunnel.ip6]
local = "[{pair.b6}]"
peer = "[{pair.a6}]"
encap = "ip"
{timers}
[tunnel.ip6.session.v6lan]
pseudowire = "eth"
cookie_len = 4
l2spec_type = "default"
seqnum = true
interface_name = "pwv6"
"""


def _wait_sessions(ns: str, n: int, daemons: list[Daemon], timeout: float = 60.0) -> None:
    try:
        wait_until(lambda: len(_show(ns, "session")) == n, timeout, f"{n} sessions in {ns}")
    except AssertionError as exc:
        logs = "\n".join(d.output()[-3000:] for d in daemons)
        raise AssertionError(f"{exc}: {_show(ns, 'session')}\n{logs}") from None


def _address(pair: VethPair) -> None:
    """Addresses on the pseudowire interfaces (recreated after every re-establishment)."""
    ip_batch(
        [
            "addr add 10.98.1.1/30 dev pwdmz",
            "addr add 10.98.2.1/30 dev pwv6",
            "link set pwlan up",
            "link set pwdmz up",
            "link set pwv6 up",
        ],
        netns=pair.ns_a,
    )
    ip_batch(
        [
            "addr add 10.97.0.20/24 dev pwlan",
            "addr add 10.98.1.2/30 dev pwdmz",
            "addr add 10.98.2.2/30 dev pwv6",
            "link set pwlan up",
            "link set pwdmz up",
            "link set pwv6 up",
        ],
        netns=pair.ns_b,
    )


def _check_traffic(pair: VethPair, lan: str) -> None:
    for ns, addr in ((lan, "10.97.0.20"), (pair.ns_b, "10.98.1.1"), (pair.ns_b, "10.98.2.1")):
        done = _ping(ns, addr)
        assert done.returncode == 0, f"ping {addr} from {ns}: {done.stdout}{done.stderr}"


def _by_ifname(ns: str) -> dict[str, dict[str, Any]]:
    return {s["interface"]: s for s in _show(ns, "session")}


@pytest.fixture
def lan_behind_a(veth_pair: VethPair) -> Iterator[str]:
    """A LAN host namespace behind a bridge ``l3br0`` in side A."""
    lan = veth_pair.ns_a + "h"
    ip_batch(
        [
            f"netns add {lan}",
            f"link add l3h netns {lan} type veth peer name l3p netns {veth_pair.ns_a}",
        ]
    )
    ip_batch(
        [
            "link add l3br0 type bridge",
            "link set l3p master l3br0",
            "link set l3p up",
            "link set l3br0 up",
        ],
        netns=veth_pair.ns_a,
    )
    ip_batch(["link set lo up", "addr add 10.97.0.10/24 dev l3h", "link set l3h up"], netns=lan)
    yield lan
    ip_batch([f"netns del {lan}"])
    ip_batch(["link del l3br0"], netns=veth_pair.ns_a)


def test_two_l2tpd_negotiate_pseudowires_survive_peer_loss_and_clean_up(
    veth_pair: VethPair, lan_behind_a: str, daemons: list[Daemon], tmp_path: Path
) -> None:
    tshark = require_tool("tshark")
    require_tool("tcpdump")
    pair = veth_pair
    # Two captures, one per generation of tunnels: tshark keys the v3 nonces by IP
    # conversation, and an IP-encap tunnel rebuilt between the same two addresses
    # would be checked against the first generation's nonces.
    pcaps = [tmp_path / "l2tpd-v3-first.pcap", tmp_path / "l2tpd-v3-redial.pcap"]
    bpf = "udp port 1701 or ip proto 115 or ip6"
    captures = [Capture(ns=pair.ns_b, interface="vb", path=p, bpf=bpf) for p in pcaps]
    a = Daemon(pair.ns_a, _responder(pair), tmp_path, "lcce-a", netns_flag=True)
    b = Daemon(pair.ns_b, _initiator(pair), tmp_path, "lcce-b")
    daemons += [a, b]
    captures[0].start()
    try:
        a.start()
        b.start()
        _wait_sessions(pair.ns_b, 3, daemons)
        _wait_sessions(pair.ns_a, 3, daemons)
        # Kernel objects: managed v3 tunnels, one over IP/IPv6; IDs and cookies mirror.
        tunnels_a = {t["tunnel_id"]: t for t in _show(pair.ns_a, "tunnel")}
        tunnels_b = {t["tunnel_id"]: t for t in _show(pair.ns_b, "tunnel")}
        assert sorted(t["encap"].lower() for t in tunnels_b.values()) == ["ip", "udp"], tunnels_b
        for tid, t in tunnels_b.items():
            assert tunnels_a[t["peer_tunnel"]]["peer_tunnel"] == tid
        ses_a, ses_b = _by_ifname(pair.ns_a), _by_ifname(pair.ns_b)
        assert set(ses_a) == set(ses_b) == {"pwlan", "pwdmz", "pwv6"}, (ses_a, ses_b)
        for name, cookie_a, cookie_b in (("pwlan", 8, 4), ("pwdmz", 4, 0), ("pwv6", 8, 4)):
            sa, sb = ses_a[name], ses_b[name]
            assert sa["session_id"] == sb["peer_session_id"], (sa, sb)
            assert sb["session_id"] == sa["peer_session_id"], (sa, sb)
            # iproute2: "cookie" is what a side sends, "peer_cookie" what it requires.
            assert len(sa.get("peer_cookie", "")) == 2 * cookie_a, sa
            assert sa.get("peer_cookie") == sb.get("cookie"), (sa, sb)
            if cookie_b:
                assert len(sb["peer_cookie"]) == 2 * cookie_b and sb["peer_cookie"] == sa["cookie"]
        # Sequencing both ways on pwv6 only. Linux reports no sublayer type, but a
        # mismatch would garble every frame: the ping over pwv6 below checks it.
        for s in (ses_a["pwv6"], ses_b["pwv6"]):
            assert "send_seq" in s and "recv_seq" in s, s
        assert "send_seq" not in ses_b["pwlan"] and "recv_seq" not in ses_b["pwlan"]
        links_a = {link["ifname"]: link for link in ip_json(["link show"], netns=pair.ns_a)[0]}
        assert links_a["pwlan"].get("master") == "l3br0", links_a["pwlan"]
        assert links_a["pwdmz"]["mtu"] == 1400
        _address(pair)
        _check_traffic(pair, lan_behind_a)

        # The responder dies without a word: B notices by HELLO and removes its sessions.
        captures[0].stop()
        captures[1].start()
        killed_at = time.monotonic()
        a.stop(signal.SIGKILL)
        wait_until(lambda: not _show(pair.ns_a, "tunnel"), 20, "A's managed tunnels to go")
        wait_until(lambda: not _show(pair.ns_b, "session"), 60, "B to remove its sessions")
        detected = time.monotonic() - killed_at
        # Python in the emulated VM runs ~6x slower; allow that on top of the protocol time.
        assert detected < DEAD_PEER_S * 3 + 10, f"took {detected:.1f} s"

        # A comes back: B's redial (back-off capped at 2 s) rebuilds every pseudowire.
        a.start()
        _wait_sessions(pair.ns_b, 3, daemons, timeout=90)
        _wait_sessions(pair.ns_a, 3, daemons, timeout=30)
        assert "redialling" in b.output()
        _address(pair)
        # The recreated l2tpeth interfaces have new MAC addresses: forget the old ones.
        for ns in (pair.ns_a, pair.ns_b, lan_behind_a):
            ip_batch(["neigh flush all"], netns=ns)
        _check_traffic(pair, lan_behind_a)

        assert b.stop() == 0, b.output()
        wait_until(lambda: not _show(pair.ns_a, "session"), 30, "A to remove B's sessions")
        assert a.stop() == 0, a.output()
        assert not _show(pair.ns_a, "tunnel") and not _show(pair.ns_b, "tunnel")
    finally:
        for capture, pcap in zip(captures, pcaps, strict=True):
            capture.stop()
            save_artifact(pcap)

    # Our decoder (digests checked with the secret) on both generations; tshark on the
    # first, and on the second from each tunnel's successful SCCRQ on: tshark keeps the
    # nonces of the first SCCRQ it sees between two hosts, and the second generation
    # begins with the old tunnels' last HELLOs and with redial attempts that A, still
    # starting, never answered.
    redial = list(decode_capture(pcaps[1], secret=SECRET.encode(), ports=(1701,)))
    keep: list[int] = []
    for transport in ("udp", "ip"):
        mine = [r for r in redial if r.get("transport") == transport and "frame" in r]
        first = max(r["frame"] for r in mine if r.get("message_type") == "SCCRQ")
        keep += [r["frame"] for r in mine if r["frame"] >= first]
    trimmed = tmp_path / "l2tpd-v3-redial-up.pcap"
    frames = ", ".join(str(f) for f in sorted(keep))
    subprocess.run(
        [
            tshark,
            "-n",
            "-r",
            str(pcaps[1]),
            "-Y",
            f"frame.number in {{{frames}}}",
            "-w",
            str(trimmed),
        ],
        check=True,
        capture_output=True,
    )
    assert_matches_tshark(tshark, trimmed, secret=SECRET.encode(), ports=(1701,))
    for pcap in pcaps:
        records = list(decode_capture(pcap, secret=SECRET.encode(), ports=(1701,)))
        bad = [r for r in records if r.get("kind") in ("malformed", "capture-error")]
        assert not bad, bad
        control = [r for r in records if r.get("kind") == "control"]
        assert all(r["version"] == 3 for r in control)
        for transport in ("udp", "ip"):
            # Every message of the tunnel that came up (from its SCCRQ on) carries a
            # digest that checks with the secret; earlier ones belong to dead attempts.
            mine = [r for r in control if r["transport"] == transport]
            first = max(i for i, r in enumerate(mine) if r["message_type"] == "SCCRQ")
            digests = [r.get("digest") for r in mine[first:] if r["message_type"] != "ZLB"]
            assert digests and all(d == "ok" for d in digests), (pcap.name, transport, digests)
        counts = Counter(r["message_type"] for r in control)
        for name in ("SCCRQ", "SCCRP", "SCCCN", "ICRQ", "ICRP", "ICCN", "HELLO"):
            assert counts[name] >= 2, f"{pcap.name}: {name}: {counts}"  # per tunnel
        assert any(r.get("kind") == "data" for r in records), f"{pcap.name}: no data packets"
    assert_matches_tshark(tshark, pcaps[0], secret=SECRET.encode(), ports=(1701,))
    assert counts["STOPCCN"] >= 2, counts  # B's SIGTERM closed both tunnels


def test_wrong_secret_leaves_no_kernel_state(
    veth_pair: VethPair, daemons: list[Daemon], tmp_path: Path
) -> None:
    pair = veth_pair
    a = Daemon(pair.ns_a, _responder(pair), tmp_path, "right")
    b = Daemon(pair.ns_b, _initiator(pair, "not-the-secret", redial=False), tmp_path, "wrong")
    daemons += [a, b]
    a.start()
    b.start(wait_ready=False)
    # The responder drops SCCRQs with a wrong digest (RFC 3931 5.4.1); B's retransmissions
    # run out and, with no tunnel left and no listener, it exits with status 1.
    assert b.proc is not None
    status = b.proc.wait(timeout=120)
    assert status == 1, b.output()
    assert "Message Digest" in b.output() or "no tunnel left" in b.output(), b.output()
    assert not _show(pair.ns_a, "tunnel") and not _show(pair.ns_b, "tunnel")
    assert a.proc is not None and a.proc.poll() is None, a.output()
    assert a.stop() == 0
