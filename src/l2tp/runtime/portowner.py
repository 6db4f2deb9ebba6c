"""Who holds a UDP port: named in "address in use" errors, so an operator sees which
process to stop rather than only that something is there.

Best effort and only run on that error path: ``/proc/net/udp`` and ``udp6`` give the
socket inodes bound to the port (in the reading process's network namespace), and
``/proc/PID/fd`` links name the processes that hold them. Processes of other users
are not readable without privileges; they are then simply not named.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

__all__ = ["udp_port_owners"]


def udp_port_owners(host: str, port: int, *, proc: Path = Path("/proc")) -> list[str]:
    """``["1234 (l2tp-lns)", ...]``: processes with a UDP socket bound to ``host:port``
    (or to the wildcard address on that port). Empty when none can be found."""
    inodes = _inodes(host, port, proc)
    if not inodes:
        return []
    owners: list[str] = []
    for entry in _pids(proc):
        fd_dir = proc / entry / "fd"
        try:
            links = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in links:
            try:
                target = os.readlink(fd_dir / fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                owners.append(f"{entry} ({_comm(proc / entry)})")
                break
    return owners


def _pids(proc: Path) -> list[str]:
    try:
        return sorted((e for e in os.listdir(proc) if e.isdigit()), key=int)
    except OSError:
        return []


def _comm(pid_dir: Path) -> str:
    try:
        return (pid_dir / "comm").read_text().strip() or "?"
    except OSError:
        return "?"


def _inodes(host: str, port: int, proc: Path) -> set[str]:
    try:
        wanted = ipaddress.ip_address(host) if host else None
    except ValueError:
        wanted = None
    found: set[str] = set()
    for name in ("udp", "udp6"):
        try:
            lines = (proc / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            address, _, port_hex = fields[1].partition(":")
            try:
                local_port = int(port_hex, 16)
                local = _decode(address)
            except ValueError:
                continue
            if local_port != port:
                continue
            if wanted is None or local.is_unspecified or _same(local, wanted):
                found.add(fields[9])
    return found


def _decode(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """/proc/net/udp prints addresses as host-order 32-bit words in hex."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return ipaddress.IPv4Address(words)
    address = ipaddress.IPv6Address(words)
    mapped = address.ipv4_mapped
    return mapped if mapped is not None else address


def _same(
    a: ipaddress.IPv4Address | ipaddress.IPv6Address,
    b: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> bool:
    if isinstance(b, ipaddress.IPv6Address) and b.ipv4_mapped is not None:
        b = b.ipv4_mapped
    return a == b
