"""``l2tp show`` and ``l2tp monitor`` against iproute2, on the same kernel state.

The oracle is ``ip -j l2tp show``: for every object, every key iproute2 prints
must be in our ``--json`` output with the same value, and we may add only the
documented extras. iproute2 6.1 has two dump bugs that shape the set-up (see
docs/inspect.md): it ignores ``tunnel_id``/``session_id`` filters, and it does
not reset its parse buffer between the messages of a dump, so a session
without a cookie (or an interface) printed after one with them shows the
earlier session's values. Each namespace below therefore holds either only
sessions that carry both cookies and an interface, or only sessions with
neither, and filtering is compared on our side.

A fresh ``python -m l2tp.cli.main`` costs ~7 s in the emulated test VM (most
of it importing pyroute2), so one JSON comparison and the two monitors run the
CLI as a real process and everything else runs it in-process through
``l2tp.cli.main.main`` (the same code path from argument parsing on).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from ipaddress import ip_address
from typing import Any

import pytest

from l2tp.cli.main import main
from l2tp.kernel import L2tpNetlink, PseudowireType, SessionConfig, TunnelConfig
from tests.helpers import require_tool
from tests.kernel.conftest import VethPair, ip_batch, ip_json, unique_name

TUNNEL_EXTRAS = {"version", "using_ipsec", "stats"}
SESSION_EXTRAS = {"pseudowire", "lns_mode", "using_ipsec", "stats"}
CLI = [sys.executable, "-m", "l2tp.cli.main"]


def l2tp_json(*args: str) -> Any:
    """Run ``l2tp ARGS`` as a separate process and parse its JSON output."""
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def l2tp_inproc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def assert_like_iproute2(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    """Same objects; every iproute2 key with its value; only documented extras added."""
    is_session = bool(theirs) and "session_id" in theirs[0]
    key_of = (
        (lambda r: (r["tunnel_id"], r["session_id"])) if is_session else (lambda r: r["tunnel_id"])
    )
    extras = SESSION_EXTRAS if is_session else TUNNEL_EXTRAS
    by_key = {key_of(r): r for r in ours}
    assert sorted(by_key) == sorted(key_of(r) for r in theirs)
    for expected in theirs:
        got = by_key[key_of(expected)]
        for key, value in expected.items():
            assert key in got, (key, expected, got)
            assert got[key] == value, (key, expected, got)
        assert set(got) - set(expected) <= extras, (expected, got)


# --- iproute2-made v3 state: every session has both cookies and an interface ---------

V3_COMMANDS = [
    # UDP/IPv4, checksums on; 8-byte cookie out, 4-byte cookie in; sequencing both ways
    "l2tp add tunnel tunnel_id 501 peer_tunnel_id 601 encap udp local 127.0.0.1 "
    "remote 127.0.0.1 udp_sport 15001 udp_dport 15002 udp_csum on",
    "l2tp add session name l2s501 tunnel_id 501 session_id 511 peer_session_id 611 "
    "cookie 0102030405060708 peer_cookie a1a2a3a4 l2spec_type default seq both",
    # IP/IPv4
    "l2tp add tunnel tunnel_id 502 peer_tunnel_id 602 encap ip local 127.0.0.1 remote 127.0.0.2",
    "l2tp add session name l2s502 tunnel_id 502 session_id 512 peer_session_id 612 "
    "cookie b1b2b3b4 peer_cookie c1c2c3c4c5c6c7c8 l2spec_type none",
    # UDP/IPv6 with the RFC 6935 zero checksum on transmit only
    "l2tp add tunnel tunnel_id 503 peer_tunnel_id 603 encap udp local ::1 remote ::1 "
    "udp_sport 15003 udp_dport 15004 udp6_csum_tx off",
    "l2tp add session name l2s503 tunnel_id 503 session_id 513 peer_session_id 613 "
    "cookie d1d2d3d4 peer_cookie e1e2e3e4 l2spec_type default seq recv",
    # IP/IPv6
    "l2tp add tunnel tunnel_id 504 peer_tunnel_id 604 encap ip local ::1 remote ::1",
    "l2tp add session name l2s504 tunnel_id 504 session_id 514 peer_session_id 614 "
    "cookie f1f2f3f4f5f6f7f8 peer_cookie 0a0b0c0d0e0f1011",
]


@pytest.fixture(scope="module")
def v3_state(netns: str) -> Iterator[str]:
    ip_batch(V3_COMMANDS, netns=netns)
    with L2tpNetlink(netns=netns) as nl:  # settings iproute2 cannot make at creation
        for tid in (501, 502, 503, 504):  # on all: iproute2 would print a stale one
            nl.modify_session(tid, tid + 10, reorder_timeout_ms=tid - 250, lns_mode=tid == 502)
    yield netns
    ip_batch([f"l2tp del tunnel tunnel_id {t}" for t in (501, 502, 503, 504)], netns=netns)


def test_v3_json_matches_iproute2(v3_state: str, capsys: pytest.CaptureFixture[str]) -> None:
    tunnels = l2tp_json("show", "tunnel", "--json", "--netns", v3_state)
    status, out, _ = l2tp_inproc(
        capsys, "show", "session", "--json", "--stats", "--netns", v3_state
    )
    assert status == 0
    sessions = json.loads(out)
    ip_tunnels, ip_sessions = ip_json(["l2tp show tunnel", "l2tp show session"], netns=v3_state)
    assert_like_iproute2(tunnels, ip_tunnels)
    assert_like_iproute2(sessions, ip_sessions)
    # the cases that matter are really there, on both sides
    by_id = {t["tunnel_id"]: t for t in tunnels}
    assert by_id[501]["checksum"] is True and by_id[501]["version"] == 3
    assert (by_id[503]["checksum_tx"], by_id[503]["checksum_rx"]) == (False, True)
    assert by_id[504]["encap"] == "IP" and "local_port" not in by_id[504]
    s = {r["session_id"]: r for r in sessions}
    assert s[511]["cookie"] == "0102030405060708" and s[511]["peer_cookie"] == "a1a2a3a4"
    assert "send_seq" in s[511] and "recv_seq" in s[511] and "send_seq" not in s[513]
    assert s[512]["reorder_timeout"] == 252 and s[512]["lns_mode"] is True
    assert all(r["pseudowire"] == "eth" and r["stats"]["tx_packets"] == 0 for r in sessions)


def test_tables_and_filters(v3_state: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = l2tp_inproc(capsys, "show", "tunnel", "--netns", v3_state)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["TUNNEL", "PEER-TUNNEL", "VER", "ENCAP"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["501"][1:7] == ["601", "v3", "udp", "127.0.0.1:15001", "127.0.0.1:15002", "on"]
    assert rows["503"][4:] == ["[::1]:15003", "[::1]:15004", "tx", "off,", "rx", "on"]
    assert rows["502"][4:6] == ["127.0.0.1", "127.0.0.2"]

    status, out, _ = l2tp_inproc(
        capsys, "show", "session", "--stats", "--netns", v3_state, "--tunnel-id", "503"
    )
    header, row = out.splitlines()
    assert header.split()[-6:] == ["TX-PKTS", "TX-BYTES", "TX-ERR", "RX-PKTS", "RX-BYTES", "RX-ERR"]
    assert row.split()[:10] == [
        "503", "513", "603", "613", "eth", "l2s503", "d1d2d3d4", "e1e2e3e4", "recv",
        "reorder=256ms",
    ]  # fmt: skip

    status, out, _ = l2tp_inproc(
        capsys, "show", "session", "--json", "--netns", v3_state, "--session-id", "514"
    )
    assert status == 0 and [r["tunnel_id"] for r in json.loads(out)] == [504]
    status, out, err = l2tp_inproc(
        capsys, "show", "tunnel", "--json", "--netns", v3_state, "--tunnel-id", "999"
    )
    assert (status, out, err) == (1, "", "l2tp show: tunnel 999 not found\n")
    status, _, err = l2tp_inproc(
        capsys, "show", "session", "--netns", v3_state, "--tunnel-id", "501", "--session-id", "512"
    )
    assert (status, err) == (1, "l2tp show: session 512 in tunnel 501 not found\n")
    missing = unique_name("nons")
    status, _, err = l2tp_inproc(capsys, "show", "tunnel", "--netns", missing)
    assert status == 2 and err.startswith(f"l2tp show: network namespace '{missing}' not found")
    assert len(err.splitlines()) == 1


# --- L2TPv2 and PPP pseudowires: no cookies, no interfaces ------------------------------


def test_v2_and_ppp_sessions_match_iproute2(capsys: pytest.CaptureFixture[str]) -> None:
    ns = unique_name("l2v")
    ip_batch([f"netns add {ns}"])
    try:
        ip_batch(["link set lo up"], netns=ns)
        lo4, lo6 = ip_address("127.0.0.1"), ip_address("::1")
        with L2tpNetlink(netns=ns) as nl:
            for tid, version, lo in ((521, 2, lo4), (522, 2, lo6), (523, 3, lo4)):
                nl.create_tunnel(
                    TunnelConfig(
                        tunnel_id=tid,
                        peer_tunnel_id=tid + 100,
                        version=version,
                        local=lo,
                        peer=lo,
                        local_port=tid + 15000,
                        peer_port=tid + 16000,
                    )
                )
                nl.create_session(
                    SessionConfig(
                        tunnel_id=tid,
                        session_id=tid + 10,
                        peer_session_id=tid + 110,
                        pw_type=PseudowireType.PPP,
                        send_seq=tid == 522,
                    )
                )
        tunnels, sessions = (
            json.loads(l2tp_inproc(capsys, "show", what, "--json", "--netns", ns)[1])
            for what in ("tunnel", "session")
        )
        ip_tunnels, ip_sessions = ip_json(["l2tp show tunnel", "l2tp show session"], netns=ns)
        assert_like_iproute2(tunnels, ip_tunnels)
        assert_like_iproute2(sessions, ip_sessions)
        assert [(t["tunnel_id"], t["version"]) for t in tunnels] == [(521, 2), (522, 2), (523, 3)]
        assert {s["pseudowire"] for s in sessions} == {"ppp"}
        assert all("interface" not in s and "cookie" not in s for s in sessions)
    finally:
        ip_batch([f"netns del {ns}"])


# --- counters after traffic ----------------------------------------------------------


def test_stats_after_traffic(veth_pair: VethPair, capsys: pytest.CaptureFixture[str]) -> None:
    """``--stats`` equals the l2tpeth interface's own packet counters after a ping."""
    ifname = "l2st"
    for ns, tid, ptid, local, peer, inner in (
        (veth_pair.ns_a, 531, 532, veth_pair.a4, veth_pair.b4, "10.231.0.1/24"),
        (veth_pair.ns_b, 532, 531, veth_pair.b4, veth_pair.a4, "10.231.0.2/24"),
    ):
        ip_batch(
            [
                f"l2tp add tunnel tunnel_id {tid} peer_tunnel_id {ptid} encap udp "
                f"local {local} remote {peer} udp_sport 15531 udp_dport 15531",
                f"l2tp add session name {ifname} tunnel_id {tid} session_id {tid + 10} "
                f"peer_session_id {ptid + 10}",
                # no IPv6 link-local address: no ND/MLD chatter to race the counters
                f"link set dev {ifname} addrgenmode none",
                f"addr add {inner} dev {ifname}",
                f"link set dev {ifname} up",
            ],
            netns=ns,
        )
    try:
        count = 4
        ping_argv = ["ping", "-nq", "-c", str(count), "-i", "0.2", "-w", "15", "10.231.0.2"]
        ping = subprocess.run(
            [require_tool("ip"), "netns", "exec", veth_pair.ns_a, *ping_argv],
            capture_output=True,
            text=True,
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        (session,), (tunnel,) = (
            json.loads(
                l2tp_inproc(capsys, "show", what, "--json", "-s", "--netns", veth_pair.ns_a)[1]
            )
            for what in ("session", "tunnel")
        )
        ip = require_tool("ip")
        link_doc = subprocess.run(
            [ip, "-j", "-s", "-n", veth_pair.ns_a, "link", "show", "dev", ifname],
            capture_output=True,
            text=True,
            check=True,
        )
        (link,) = json.loads(link_doc.stdout)
        stats, link_stats = session["stats"], link["stats64"]
        assert stats["tx_packets"] >= count and stats["rx_packets"] >= count, stats
        assert stats["tx_packets"] == link_stats["tx"]["packets"], (stats, link_stats)
        assert stats["rx_packets"] == link_stats["rx"]["packets"], (stats, link_stats)
        assert stats["tx_bytes"] > 0 and stats["rx_bytes"] > 0
        assert stats["tx_errors"] == stats["rx_errors"] == 0
        # one session in the tunnel: the tunnel counts exactly what the session does
        for key in ("tx_packets", "rx_packets", "tx_bytes", "rx_bytes"):
            assert tunnel["stats"][key] == stats[key], key
    finally:
        ip_batch(["l2tp del tunnel tunnel_id 531"], netns=veth_pair.ns_a)
        ip_batch(["l2tp del tunnel tunnel_id 532"], netns=veth_pair.ns_b)


# --- monitor ---------------------------------------------------------------------------


class Monitor:
    """``l2tp -v monitor --json`` in a subprocess, its lines read by a thread."""

    def __init__(self, netns: str) -> None:
        self.proc = subprocess.Popen(
            [*CLI, "-v", "monitor", "--json", "--netns", netns],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.ready = threading.Event()
        self.errors: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        threading.Thread(target=self._read_err, args=(self.proc.stderr,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)

    def _read_err(self, stream: Any) -> None:
        for line in stream:
            if "listening for kernel L2TP events" in line:
                self.ready.set()
            else:
                self.errors.append(line)

    def wait_ready(self, timeout: float = 30.0) -> None:
        if not self.ready.wait(timeout):
            self.proc.kill()
            raise AssertionError(f"monitor did not start: {self.errors}")

    def events(self, wanted: int, tunnel_ids: set[int], timeout: float) -> list[dict[str, Any]]:
        """The first ``wanted`` events about ``tunnel_ids``, within ``timeout`` seconds."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < wanted:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(f"got {found} within {timeout} s; {self.errors}") from None
            record = json.loads(line)
            if record["tunnel_id"] in tunnel_ids:
                found.append(record)
        return found

    def stop(self, signum: int) -> int:
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def test_monitor_json_sees_iproute2_changes(netns: str) -> None:
    other = unique_name("l2m")
    ip_batch([f"netns add {other}"])
    monitors = [Monitor(netns), Monitor(other)]
    try:
        for m in monitors:
            m.wait_ready()
        ip_batch(
            [
                "l2tp add tunnel tunnel_id 541 peer_tunnel_id 641 encap udp local 127.0.0.1 "
                "remote 127.0.0.1 udp_sport 15541 udp_dport 15641",
                "l2tp add session name l2m541 tunnel_id 541 session_id 551 peer_session_id 651 "
                "cookie 01020304 peer_cookie 0506070809101112",
                "l2tp del session tunnel_id 541 session_id 551",
                "l2tp del tunnel tunnel_id 541",
            ],
            netns=netns,
        )
        events = monitors[0].events(4, {541}, timeout=20)
        assert [(e["event"], e["object"]) for e in events] == [
            ("created", "tunnel"),
            ("created", "session"),
            ("deleted", "session"),
            ("deleted", "tunnel"),
        ]
        tunnel, session = events[0], events[1]
        assert (tunnel["peer_tunnel"], tunnel["local_port"], tunnel["peer_port"]) == (
            641,
            15541,
            15641,
        )
        assert tunnel["local"] == "127.0.0.1" and tunnel["encap"] == "UDP"
        assert (session["session_id"], session["peer_session_id"]) == (551, 651)
        assert session["interface"] == "l2m541" and session["cookie"] == "01020304"
        assert session["peer_cookie"] == "0506070809101112"
        assert all("T" in e["timestamp"] for e in events)
        # Linux 6.1 multicasts L2TP events to every namespace (genlmsg_multicast_allns):
        # a monitor whose socket is in another namespace hears them too.
        assert len(monitors[1].events(4, {541}, timeout=10)) == 4
        assert monitors[0].stop(signal.SIGINT) == 0
        assert monitors[1].stop(signal.SIGTERM) == 0
        for m in monitors:
            assert m.errors == [], m.errors
    finally:
        for m in monitors:
            if m.proc.poll() is None:
                m.proc.kill()
        ip_batch([f"netns del {other}"])


def test_monitor_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    missing = unique_name("nons")
    status, out, err = l2tp_inproc(capsys, "monitor", "--netns", missing)
    assert (status, out) == (2, "")
    assert err.splitlines() == [
        f"l2tp monitor: network namespace '{missing}' not found: no /run/netns/{missing} "
        "(see `ip netns list`)"
    ]
