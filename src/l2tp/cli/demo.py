"""``l2tp demo``: real tunnels between two network namespaces, with traffic across them.

The demo is the project's main job on an embedded default: it builds two hosts
(network namespaces ``l2tpdemo-a`` and ``l2tpdemo-b`` joined by a veth pair
that carries the documentation prefixes 192.0.2.0/24 and 2001:db8:1::/64),
runs one ``ql2tpd`` per host on the packaged configurations in
``l2tp/demo/``, pings across every pseudowire, shows what the kernel holds,
then stops the daemons and checks that they removed everything they created.

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


def _start_daemon(ns: str, config: Path, ready: Path, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        "ip", "netns", "exec", ns,
        sys.executable, "-m", "l2tp.daemons.ql2tpd", str(config), "--ready-file", str(ready), "-v",
    ]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def _wait_ready(
    procs: dict[str, subprocess.Popen[bytes]], ready: dict[str, Path], logs: dict[str, Path]
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for ns, proc in procs.items():
            if proc.poll() is not None:
                raise DemoError(
                    f"ql2tpd in {ns} exited ({proc.returncode}):\n{logs[ns].read_text()}"
                )
        if all(path.exists() for path in ready.values()):
            return
        time.sleep(0.1)
    raise DemoError("ql2tpd did not come up within 120 s")


def _ping(ns: str, addr: str, count: int) -> tuple[bool, str]:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", addr],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    summary = [line for line in done.stdout.splitlines() if "packet loss" in line or "rtt" in line]
    return done.returncode == 0, "; ".join(summary) or done.stderr.strip()


def _stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("l2tp demo: needs root (it creates network namespaces and kernel tunnels)")
        return 2
    if shutil.which("ip") is None or shutil.which("ping") is None:
        print("l2tp demo: needs iproute2 and ping (run tools/setup)")
        return 2
    subprocess.run(
        ["modprobe", "-a", "l2tp_eth", "l2tp_ip", "l2tp_ip6"], capture_output=True, check=False
    )
    workdir = Path(tempfile.mkdtemp(prefix="l2tp-demo-"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ok = True
    try:
        print(f"== hosts: {NS_A} (192.0.2.1, 2001:db8:1::1) and {NS_B} (.2, ::2) on a veth pair")
        _build_hosts()
        configs = resources.files("l2tp.demo")
        ready = {ns: workdir / f"{ns}.ready" for ns in (NS_A, NS_B)}
        logs = {ns: workdir / f"{ns}.log" for ns in (NS_A, NS_B)}
        for ns, name in ((NS_A, "ql2tpd-a.toml"), (NS_B, "ql2tpd-b.toml")):
            path = workdir / name
            path.write_text(configs.joinpath(name).read_text())
            procs[ns] = _start_daemon(ns, path, ready[ns], logs[ns])
        print("== static L2TPv3: one ql2tpd per host on the embedded l2tp/demo/ql2tpd-{a,b}.toml")
        _wait_ready(procs, ready, logs)
        for ns, side in ((NS_A, "a"), (NS_B, "b")):
            lines = []
            for pw in PSEUDOWIRES:
                addr = pw.addr_a if side == "a" else pw.addr_b
                lines += [f"addr add {addr}/24 dev {pw.ifname}", f"link set {pw.ifname} up"]
            _batch(lines, ns)
        for pw in PSEUDOWIRES:
            passed, summary = _ping(NS_A, pw.addr_b, args.count)
            ok &= passed
            print(
                f"   ping {pw.addr_a} -> {pw.addr_b} over {pw.ifname} [{pw.label}]: "
                f"{'OK' if passed else 'FAILED'}: {summary}"
            )
        print(f"== kernel state in {NS_A} (ip -j l2tp show session):")
        for s in json.loads(_ip("-j", "l2tp", "show", "session", ns=NS_A) or "[]"):
            print(
                f"   tunnel {s['tunnel_id']} session {s['session_id']} -> peer "
                f"{s['peer_tunnel_id']}/{s['peer_session_id']} on {s.get('interface', '?')}"
            )
        stats = json.loads(_ip("-j", "-s", "link", "show", ns=NS_B))
        for link in stats:
            if link["ifname"] in {pw.ifname for pw in PSEUDOWIRES}:
                rx = link["stats64"]["rx"]
                print(
                    f"   {NS_B} {link['ifname']}: rx {rx['packets']} packets, {rx['bytes']} bytes"
                )
        if args.keep:
            print(f"== --keep: left running; clean up: ip netns del {NS_A}; ip netns del {NS_B}")
            return 0 if ok else 1
        _stop(procs)
        left = [
            ns
            for ns in (NS_A, NS_B)
            if json.loads(_ip("-j", "l2tp", "show", "tunnel", ns=ns) or "[]")
        ]
        if left:
            ok = False
            print(f"   FAILED: kernel tunnels left behind in {', '.join(left)}")
        else:
            print("== SIGTERM: both ql2tpd removed every tunnel and session they created")
        print(
            "== L2TPv2 LAC <-> LNS with pppd: not in this release yet (control plane in progress)"
        )
        print("demo: " + ("all pseudowires carried traffic" if ok else "FAILED"))
        return 0 if ok else 1
    except DemoError as exc:
        print(f"demo: FAILED: {exc}")
        for log in workdir.glob("*.log"):
            print(f"---- {log.name} ----\n{log.read_text()}")
        return 1
    finally:
        if not args.keep:
            _stop(procs)
            _cleanup_namespaces()
            shutil.rmtree(workdir, ignore_errors=True)
