"""``l2tp demo``: real tunnels between two network namespaces, with traffic across them.

The demo is the project's main job on an embedded default: it builds two hosts
(network namespaces ``l2tpdemo-a`` and ``l2tpdemo-b`` joined by a veth pair
that carries the documentation prefixes 192.0.2.0/24 and 2001:db8:1::/64),
runs one ``ql2tpd`` per host on the packaged configurations in ``l2tp/demo/``
and pings across every static L2TPv3 pseudowire; then one ``l2tpd`` per host,
which negotiate two L2TPv3 Ethernet pseudowires over IP with message digests
(IDs and cookies chosen by the protocol, sessions bound by Remote End ID), and
pings across them; then runs ``l2tp-lns`` on one host and ``kl2tpd`` on the
other (challenge authentication, hidden AVPs) and pings across the PPP session
that pppd brings up. After each part it stops the daemons and checks that they
removed everything they created.

It needs root and a kernel with L2TP (``tools/demo`` runs it inside the test
VM when this machine's kernel has none).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

NS_A, NS_B = "l2tpdemo-a", "l2tpdemo-b"


@dataclass(frozen=True, slots=True)
class Pseudowire:
    """One pseudowire of the demo and the overlay addresses put on its interfaces."""

    label: str
    ifname: str
    addr_a: str
    addr_b: str


PSEUDOWIRES = (
    Pseudowire(
        "L2TPv3 Ethernet over UDP/IPv4, cookies + seqnum",
        "demo-udp4",
        "198.51.100.1",
        "198.51.100.2",
    ),
    Pseudowire(
        "L2TPv3 Ethernet over IP/IPv6 (proto 115)", "demo-ip6", "203.0.113.1", "203.0.113.2"
    ),
)


class DemoError(Exception):
    """A step failed; the message says which and why."""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo",
        help="bring up real L2TP tunnels between two network namespaces and ping across them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--count", type=int, default=3, help="pings per pseudowire (default 3)")
    parser.add_argument(
        "--keep", action="store_true", help="leave the namespaces and daemons running at the end"
    )
    parser.set_defaults(func=run)


def _ip(*args: str, ns: str | None = None, check: bool = True) -> str:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if check and done.returncode:
        raise DemoError(f"`{' '.join(cmd)}` failed: {done.stderr.strip()}")
    return done.stdout


def _batch(lines: list[str], ns: str | None = None) -> None:
    """Many ``ip`` commands in one process (process starts are slow in the test VM)."""
    done = subprocess.run(
        ["ip", *(["-n", ns] if ns else []), "-batch", "-"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode:
        raise DemoError(f"`ip -batch` failed: {done.stderr.strip()}")


def _cleanup_namespaces() -> None:
    for ns in (NS_A, NS_B):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _build_hosts() -> None:
    _cleanup_namespaces()
    _batch(
        [
            f"netns add {NS_A}",
            f"netns add {NS_B}",
            f"link add veth-a netns {NS_A} type veth peer name veth-b netns {NS_B}",
        ]
    )
    for ns, side, num in ((NS_A, "a", 1), (NS_B, "b", 2)):
        _batch(
            [
                f"addr add 192.0.2.{num}/24 dev veth-{side}",
                f"addr add 2001:db8:1::{num}/64 dev veth-{side} nodad",
                f"link set veth-{side} up",
                "link set lo up",
            ],
            ns,
        )


class Daemon:
    """One of our daemons running in a namespace on an embedded configuration."""

    def __init__(self, ns: str, module: str, config_name: str, workdir: Path) -> None:
        self.ns = ns
        self.name = f"{module.rsplit('.', 1)[-1]} in {ns}"
        config = workdir / config_name
        config.write_text(resources.files("l2tp.demo").joinpath(config_name).read_text())
        self.ready = workdir / f"{config_name}.ready"
        self.log = workdir / f"{config_name}.log"
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", module, str(config)]
        cmd += ["--ready-file", str(self.ready), "-v"]
        # One control socket per demo daemon: both ends of a pair are the same daemon
        # kind on this host's /run, where the default path would be shared.
        self.control = workdir / f"{config_name}.sock"
        cmd += ["--control", str(self.control)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _wait(daemons: list[Daemon], what: str, done: Callable[[], bool], timeout: float = 120) -> None:
    """Wait for ``done`` while every daemon lives (the VM is slow: generous limits)."""
    deadline = time.monotonic() + timeout
    while not done():
        for d in daemons:
            if d.proc.poll() is not None:
                raise DemoError(f"{d.name} exited ({d.proc.returncode}):\n{d.output()}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"---- {d.name} ----\n{d.output()}" for d in daemons)
            raise DemoError(f"{what}: not within {timeout:.0f} s\n{logs}")
        time.sleep(0.1)


def _l2tp_objects(ns: str) -> int:
    return sum(
        len(json.loads(_ip("-j", "l2tp", "show", w, ns=ns) or "[]")) for w in ("tunnel", "session")
    )


def _ppp_address(ns: str) -> str | None:
    for link in json.loads(_ip("-j", "addr", "show", ns=ns) or "[]"):
        if link["ifname"].startswith("ppp"):
            for addr in link.get("addr_info", []):
                if addr.get("family") == "inet":
                    return str(addr["local"])
    return None


def _ping(ns: str, addr: str, count: int) -> tuple[bool, str]:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", addr],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    summary = [line for line in done.stdout.splitlines() if "packet loss" in line or "rtt" in line]
    return done.returncode == 0, "; ".join(summary) or done.stderr.strip()


def _static_l2tpv3(args: argparse.Namespace, workdir: Path, daemons: list[Daemon]) -> bool:
    print("== static L2TPv3: ql2tpd in each namespace on the embedded l2tp/demo/ql2tpd-{a,b}.toml")
    pair = [Daemon(NS_A, "l2tp.daemons.ql2tpd", "ql2tpd-a.toml", workdir)]
    pair.append(Daemon(NS_B, "l2tp.daemons.ql2tpd", "ql2tpd-b.toml", workdir))
    daemons += pair
    _wait(pair, "ql2tpd start", lambda: all(d.ready.exists() for d in pair))
    for ns, side in ((NS_A, "a"), (NS_B, "b")):
        lines = []
        for pw in PSEUDOWIRES:
            addr = pw.addr_a if side == "a" else pw.addr_b
            lines += [f"addr add {addr}/24 dev {pw.ifname}", f"link set {pw.ifname} up"]
        _batch(lines, ns)
    ok = True
    for pw in PSEUDOWIRES:
        passed, summary = _ping(NS_A, pw.addr_b, args.count)
        ok &= passed
        print(
            f"   ping {pw.addr_a} -> {pw.addr_b} over {pw.ifname} [{pw.label}]: "
            f"{'OK' if passed else 'FAILED'}: {summary}"
        )
    print(f"   kernel sessions in {NS_A} (ip -j l2tp show session):")
    for s in json.loads(_ip("-j", "l2tp", "show", "session", ns=NS_A) or "[]"):
        print(
            f"     tunnel {s['tunnel_id']} session {s['session_id']} -> peer "
            f"{s['peer_tunnel_id']}/{s['peer_session_id']} on {s.get('interface', '?')}"
        )
    for link in json.loads(_ip("-j", "-s", "link", "show", ns=NS_B)):
        if link["ifname"] in {pw.ifname for pw in PSEUDOWIRES}:
            rx = link["stats64"]["rx"]
            print(f"     {NS_B} {link['ifname']}: rx {rx['packets']} packets, {rx['bytes']} bytes")
    if args.keep:
        return ok
    for d in pair:
        d.stop()
    if any(_l2tp_objects(ns) for ns in (NS_A, NS_B)):
        print("   FAILED: kernel tunnels or sessions left behind")
        return False
    print("   SIGTERM: both ql2tpd removed every tunnel and session they created")
    return ok


DYNAMIC = (
    Pseudowire("Remote End ID lan, cookies 8/4 bytes", "demo-v3lan", "198.18.1.1", "198.18.1.2"),
    Pseudowire("Remote End ID dmz, sublayer + seqnum", "demo-v3dmz", "198.18.2.1", "198.18.2.2"),
)


def _dynamic_l2tpv3(args: argparse.Namespace, workdir: Path, daemons: list[Daemon]) -> bool:
    print(
        f"== dynamic L2TPv3: l2tpd responder in {NS_A}, initiator in {NS_B}; "
        "IP encapsulation, HMAC-SHA-1 digests, IDs and cookies negotiated"
    )
    responder = Daemon(NS_A, "l2tp.daemons.l2tpd", "l2tpd-a.toml", workdir)
    daemons.append(responder)
    _wait([responder], "l2tpd (responder) start", responder.ready.exists)
    initiator = Daemon(NS_B, "l2tp.daemons.l2tpd", "l2tpd-b.toml", workdir)
    daemons.append(initiator)
    pair = [responder, initiator]

    def sessions(ns: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(
            _ip("-j", "l2tp", "show", "session", ns=ns) or "[]"
        )
        return found

    _wait(pair, "pseudowires negotiated", lambda: len(sessions(NS_A)) == len(sessions(NS_B)) == 2)
    for ns, side in ((NS_A, "a"), (NS_B, "b")):
        lines = []
        for pw in DYNAMIC:
            addr = pw.addr_a if side == "a" else pw.addr_b
            lines += [f"addr add {addr}/24 dev {pw.ifname}", f"link set {pw.ifname} up"]
        _batch(lines, ns)
    print(f"   negotiated, as the kernel in {NS_B} holds them (cookie: what it sends):")
    for s in sessions(NS_B):
        print(
            f"     {s.get('interface', '?')}: tunnel {s['tunnel_id']} session {s['session_id']}"
            f" -> peer {s['peer_tunnel_id']}/{s['peer_session_id']}, cookie "
            f"{s.get('cookie', '-')}, peer_cookie {s.get('peer_cookie', '-')}"
        )
    ok = True
    for pw in DYNAMIC:
        passed, summary = _ping(NS_B, pw.addr_a, args.count)
        ok &= passed
        print(
            f"   ping {pw.addr_b} -> {pw.addr_a} over {pw.ifname} [{pw.label}]: "
            f"{'OK' if passed else 'FAILED'}: {summary}"
        )
    if args.keep:
        return ok
    initiator.stop()
    _wait([responder], "responder cleanup after StopCCN", lambda: _l2tp_objects(NS_A) == 0)
    responder.stop()
    if any(_l2tp_objects(ns) for ns in (NS_A, NS_B)):
        print("   FAILED: kernel tunnels or sessions left behind")
        return False
    print("   SIGTERM to the initiator: StopCCN sent; both sides removed their pseudowires")
    return ok


def _l2tpv2_ppp(args: argparse.Namespace, workdir: Path, daemons: list[Daemon]) -> bool:
    print(
        "== L2TPv2 with PPP: l2tp-lns in "
        f"{NS_A}, kl2tpd in {NS_B} (challenge auth, hidden AVPs), pppd on each session"
    )
    if shutil.which("pppd") is None and not Path("/usr/sbin/pppd").exists():
        print("   FAILED: pppd is not installed (Debian package ppp; run tools/setup)")
        return False
    lns = Daemon(NS_A, "l2tp.daemons.lns", "lns.toml", workdir)
    daemons.append(lns)
    _wait([lns], "l2tp-lns start", lns.ready.exists)
    lac = Daemon(NS_B, "l2tp.daemons.kl2tpd", "kl2tpd.toml", workdir)
    daemons.append(lac)
    _wait([lns, lac], "PPP session up", lambda: _ppp_address(NS_B) is not None)
    local = _ppp_address(NS_B)
    passed, summary = _ping(NS_B, "100.64.0.1", args.count)
    print(
        f"   ping {local} -> 100.64.0.1 over ppp (LAC -> LNS): "
        f"{'OK' if passed else 'FAILED'}: {summary}"
    )
    if args.keep:
        return passed
    lac.stop()
    _wait([lns], "LNS cleanup after StopCCN", lambda: _l2tp_objects(NS_A) == 0, timeout=60)
    print("   SIGTERM to kl2tpd: StopCCN sent; the LNS removed its kernel tunnel, session and pppd")
    lns.stop()
    return passed


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("l2tp demo: needs root (it creates network namespaces and kernel tunnels)")
        return 2
    if shutil.which("ip") is None or shutil.which("ping") is None:
        print("l2tp demo: needs iproute2 and ping (run tools/setup)")
        return 2
    subprocess.run(
        ["modprobe", "-a", "l2tp_eth", "l2tp_ip", "l2tp_ip6", "l2tp_ppp"],
        capture_output=True,
        check=False,
    )
    workdir = Path(tempfile.mkdtemp(prefix="l2tp-demo-"))
    daemons: list[Daemon] = []
    try:
        print(f"== hosts: {NS_A} (192.0.2.1, 2001:db8:1::1) and {NS_B} (.2, ::2) on a veth pair")
        _build_hosts()
        ok = _static_l2tpv3(args, workdir, daemons)
        ok &= _dynamic_l2tpv3(args, workdir, daemons)
        ok &= _l2tpv2_ppp(args, workdir, daemons)
        if args.keep:
            print(f"== --keep: left running; clean up: ip netns del {NS_A}; ip netns del {NS_B}")
        print("demo: " + ("every tunnel carried traffic" if ok else "FAILED"))
        return 0 if ok else 1
    except DemoError as exc:
        print(f"demo: FAILED: {exc}")
        return 1
    finally:
        if not args.keep:
            for d in daemons:
                d.stop()
            _cleanup_namespaces()
            shutil.rmtree(workdir, ignore_errors=True)
