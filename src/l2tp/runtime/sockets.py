"""Control sockets of the runtime: opening them (in a network namespace), the exclusive
listen socket and its errors, and the cheap header peeks used to route a datagram."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable
from typing import Any

from l2tp.kernel.constants import EncapType
from l2tp.kernel.netns import socket_in_netns
from l2tp.kernel.sockets import l2tpip_socket
from l2tp.protocol.header import ControlHeader, parse_control_header

from .backend import Address
from .portowner import udp_port_owners

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def control_header(data: bytes) -> ControlHeader | None:
    """The control header of a datagram, None for a data message (T bit clear) or a
    runt; raises :class:`~l2tp.protocol.errors.CodecError` for a malformed header.
    Parsed once here, to route the datagram, and handed down to the tunnel's transport."""
    if len(data) < 2 or not data[0] & 0x80:
        return None
    return parse_control_header(data)


def tunnel_id_of(data: bytes) -> int | None:
    """The Tunnel ID (v2) or Control Connection ID (v3) of a control message; None otherwise.

    L2TPv3 control headers (RFC 3931 3.2.1, and the same after the zero session
    ID over IP, 4.1.1.2) always carry the Length, so the 32-bit ID is at offset 4.
    """
    if len(data) < 12 or not data[0] & 0x80:
        return None
    if data[1] & 0x0F == 3:
        ccid: int = struct.unpack_from("!I", data, 4)[0]
        return ccid
    offset = 4 if data[0] & 0x40 else 2
    tid: int = struct.unpack_from("!H", data, offset)[0]
    return tid


def host_port(address: Any) -> Address:
    return (str(address[0]), int(address[1]))


def address_allowed(host: str, networks: Iterable[IPNetwork]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in net for net in networks)


def udp_socket(
    netns: str | None,
    family: int,
    bind: Any,
    *,
    reuse_address: bool = False,
    connect: Any = None,
) -> socket.socket:
    """A non-blocking UDP control socket in ``netns``, bound (and connected); closed on error."""
    sock = socket_in_netns(netns, family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setblocking(False)
        sock.bind(bind)
        if connect is not None:
            sock.connect(connect)
    except OSError:
        sock.close()
        raise
    return sock


def listen_socket(netns: str | None, host: str, port: int) -> socket.socket:
    """The UDP listen socket: bound exclusively, then opened to our per-tunnel sockets.

    Per-tunnel sockets bind the same address:port with ``SO_REUSEADDR`` (see the
    module docstring), which Linux allows only when every socket on the port has it.
    So the listen socket binds *without* it, which fails if anything else holds the
    address (another daemon, a second instance of this one), and sets it only once
    bound: from then on our own per-tunnel sockets may join, while another listener,
    which binds without it as we do, is refused. No window in which two can bind.
    """
    sock = udp_socket(netns, family_of(host), (host, port))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    except OSError:
        sock.close()
        raise
    return sock


class ListenError(OSError):
    """A listener could not open its socket; the message names the listener, the
    address and, for "address in use", the processes that hold it when they can be
    found (``errno`` is the socket error's)."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        encap: EncapType,
        cause: OSError,
        *,
        netns: str | None = None,
    ) -> None:
        where = f"{host or '*'}:{port}" if encap is EncapType.UDP else f"{host or '*'} (IP)"
        reason = os.strerror(cause.errno) if cause.errno else str(cause)
        if cause.errno == errno.EADDRINUSE:
            owners = udp_port_owners(host, port) if netns is None else []
            reason = "address already in use" + (
                f" by {', '.join(owners)}" if owners else " by another process"
            )
        elif cause.errno == errno.EADDRNOTAVAIL:
            reason = f"{host} is not an address of this host"
            if netns is not None:
                reason += f" (network namespace {netns})"
        elif cause.errno in (errno.EACCES, errno.EPERM):
            reason += " (binding this needs privileges)"
        self.message = f"listener {name} on {where}: {reason}"
        super().__init__(cause.errno, self.message)

    def __str__(self) -> str:
        return self.message


def l2tpip_control_socket(netns: str | None, host: str, v6: bool, conn_id: int) -> socket.socket:
    """A non-blocking L2TPIP socket bound to ``conn_id`` on ``host`` (empty: the wildcard)."""
    address = ipaddress.ip_address(host or ("::" if v6 else "0.0.0.0"))
    sock = l2tpip_socket(address, conn_id, netns=netns)
    sock.setblocking(False)
    return sock


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
