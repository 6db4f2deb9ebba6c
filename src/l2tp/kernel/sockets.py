"""Tunnel and session sockets: UDP, L2TPIP (IP protocol 115) and PPPoL2TP.

Python's ``socket`` module cannot build the L2TP address structures: an
L2TPIP address carries a connection (tunnel) ID where ``sockaddr_in`` has
padding, ``sockaddr_l2tpip6`` is 4 bytes longer than ``sockaddr_in6``, and
``AF_PPPOX`` addresses are unknown to it. We pack the structures of
``include/uapi/linux/l2tp.h`` / ``if_pppox.h`` / ``if_pppol2tp.h`` ourselves and
call libc ``bind()`` / ``connect()`` through ctypes on the socket's fd.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import struct
from ipaddress import IPv4Address, IPv6Address, ip_address

from l2tp.kernel.constants import AF_PPPOX, IPPROTO_L2TP, PX_PROTO_OL2TP
from l2tp.kernel.errors import AddressFamilyMismatch, KernelError, ModuleNotLoaded, error_for
from l2tp.kernel.model import IPAddress
from l2tp.kernel.netns import socket_in_netns

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _family(addr: IPAddress) -> int:
    return socket.AF_INET6 if addr.version == 6 else socket.AF_INET


def _sockaddr_in(addr: IPv4Address, port: int) -> bytes:
    # sin_family (host order), sin_port (network order), sin_addr, 8 bytes of zero
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + addr.packed + bytes(8)


def _sockaddr_in6(addr: IPv6Address, port: int, scope_id: int = 0) -> bytes:
    return (
        struct.pack("=H", socket.AF_INET6)
        + struct.pack("!HI", port, 0)
        + addr.packed
        + struct.pack("=I", scope_id)
    )


def pack_sockaddr_l2tpip(addr: IPAddress, conn_id: int) -> bytes:
    """``struct sockaddr_l2tpip`` (16 bytes) or ``sockaddr_l2tpip6`` (32 bytes).

    The connection ID is in host byte order (``__u32``), as the kernel compares
    it with the tunnel ID it has already converted from the packet.
    """
    if addr.version == 4:
        return (
            struct.pack("=HH", socket.AF_INET, 0)
            + addr.packed
            + struct.pack("=I", conn_id)
            + bytes(4)
        )
    return struct.pack("=HHI", socket.AF_INET6, 0, 0) + addr.packed + struct.pack("=II", 0, conn_id)


def pack_sockaddr_pppol2tp(
    *,
    version: int,
    tunnel_fd: int,
    peer: IPAddress,
    peer_port: int,
    tunnel_id: int,
    session_id: int,
    peer_tunnel_id: int,
    peer_session_id: int,
) -> bytes:
    """The PPPoL2TP address for ``connect()``; its size tells the kernel v2/v3 and IPv4/IPv6.

    ``sockaddr_pppol2tp`` (38 bytes, v2/IPv4), ``sockaddr_pppol2tpin6`` (50),
    ``sockaddr_pppol2tpv3`` (46) and ``sockaddr_pppol2tpv3in6`` (58): all
    ``__packed`` with ``sa_family`` (u16) and ``sa_protocol`` (u32) first, then
    pid (0 = us), the tunnel socket's fd, and the IDs (u16 for v2, u32 for v3)
    before (IPv4) or after (IPv6) the peer's ``sockaddr_in``/``sockaddr_in6``.
    """
    head = struct.pack("=HIii", AF_PPPOX, PX_PROTO_OL2TP, 0, tunnel_fd)
    ids = struct.pack(
        "=HHHH" if version == 2 else "=IIII", tunnel_id, session_id, peer_tunnel_id, peer_session_id
    )
    if version not in (2, 3):
        raise ValueError("version must be 2 or 3")
    if isinstance(peer, IPv4Address):
        return head + _sockaddr_in(peer, peer_port) + ids
    return head + ids + _sockaddr_in6(peer, peer_port)


def _call(func: str, sock: socket.socket, address: bytes, what: str, module: str | None) -> None:
    buf = ctypes.create_string_buffer(address, len(address))
    if getattr(_libc, func)(sock.fileno(), buf, len(address)) != 0:
        err = ctypes.get_errno()
        raise error_for(err, what, module=module)


def tunnel_udp_socket(
    local: IPAddress,
    local_port: int = 0,
    peer: IPAddress | None = None,
    peer_port: int = 0,
    *,
    netns: str | None = None,
) -> socket.socket:
    """A bound (and, given a peer, connected) UDP socket for a managed tunnel.

    The kernel needs the socket connected before a tunnel is created on it
    when it has to send data packets itself; the control plane connects it as
    soon as it learns the peer's port (RFC 2661 lets the peer change it).
    """
    if peer is not None and peer.version != local.version:
        raise AddressFamilyMismatch(
            errno.EAFNOSUPPORT, f"local {local} and peer {peer} differ in IP version"
        )
    sock = socket_in_netns(netns, _family(local), socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.bind((str(local), local_port))
        if peer is not None:
            sock.connect((str(peer), peer_port))
    except BaseException:
        sock.close()
        raise
    return sock


def l2tpip_socket(
    local: IPAddress,
    conn_id: int,
    peer: IPAddress | None = None,
    peer_conn_id: int = 0,
    *,
    netns: str | None = None,
) -> socket.socket:
    """An L2TPv3-over-IP socket bound to tunnel ``conn_id`` (0: the setup-request listener).

    RFC 3931 section 4.1.1.1: control messages to a tunnel not yet known carry
    connection ID 0, so a daemon keeps one socket bound with ID 0 to receive
    setup requests and one per tunnel, connected to the peer's ID.
    """
    if peer is not None and peer.version != local.version:
        raise AddressFamilyMismatch(
            errno.EAFNOSUPPORT, f"local {local} and peer {peer} differ in IP version"
        )
    module = "l2tp_ip6" if local.version == 6 else "l2tp_ip"
    try:
        sock = socket_in_netns(netns, _family(local), socket.SOCK_DGRAM, IPPROTO_L2TP)
    except OSError as exc:
        if exc.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT):
            raise ModuleNotLoaded(exc.errno, module, "open L2TPIP socket") from exc
        raise
    try:
        _call(
            "bind",
            sock,
            pack_sockaddr_l2tpip(local, conn_id),
            f"bind L2TPIP {local} id {conn_id}",
            None,
        )
        if peer is not None:
            connect_l2tpip(sock, peer, peer_conn_id)
    except BaseException:
        sock.close()
        raise
    return sock


def connect_l2tpip(sock: socket.socket, peer: IPAddress, peer_conn_id: int) -> None:
    """Connect an L2TPIP socket to the peer's tunnel, e.g. once a dynamic tunnel is up.

    A managed IP-encapsulated kernel tunnel sends its data packets through
    this socket, so it must be connected first (the kernel routes by the
    socket's destination); connecting also narrows which packets it receives.
    """
    _call(
        "connect",
        sock,
        pack_sockaddr_l2tpip(peer, peer_conn_id),
        f"connect L2TPIP {peer} id {peer_conn_id}",
        None,
    )


def l2tpip_listen_socket(local: IPAddress, *, netns: str | None = None) -> socket.socket:
    """The ID-0 L2TPIP socket that receives L2TPv3 tunnel setup requests."""
    return l2tpip_socket(local, 0, netns=netns)


def _peer_of(tunnel_fd: int) -> tuple[IPAddress, int]:
    """The peer address of a connected tunnel socket, for the PPPoL2TP address."""
    sock = socket.socket(fileno=tunnel_fd)
    try:
        family = sock.family
        try:
            name = sock.getpeername()
        except OSError:
            any_addr: IPAddress = IPv6Address(0) if family == socket.AF_INET6 else IPv4Address(0)
            return any_addr, 0
    finally:
        sock.detach()
    return ip_address(name[0].split("%")[0]), int(name[1])


def pppol2tp_socket(
    *,
    tunnel_fd: int,
    version: int,
    tunnel_id: int,
    session_id: int,
    peer_tunnel_id: int,
    peer_session_id: int,
    netns: str | None = None,
) -> socket.socket:
    """A PPPoL2TP socket connected to a session, ready to hand to pppd.

    The session may already exist (created by netlink: the socket attaches to
    it) or not (the kernel creates a PPP session). ``tunnel_fd`` is the managed
    tunnel's UDP or L2TPIP socket; its address family picks the IPv4 or IPv6
    structure. Give pppd the fd with ``pass_fds`` and ``plugin pppol2tp.so
    pppol2tp <fd>`` (Python creates it non-inheritable).
    """
    peer, peer_port = _peer_of(tunnel_fd)
    address = pack_sockaddr_pppol2tp(
        version=version,
        tunnel_fd=tunnel_fd,
        peer=peer,
        peer_port=peer_port,
        tunnel_id=tunnel_id,
        session_id=session_id,
        peer_tunnel_id=peer_tunnel_id,
        peer_session_id=peer_session_id,
    )
    try:
        sock = socket_in_netns(netns, AF_PPPOX, socket.SOCK_DGRAM, PX_PROTO_OL2TP)
    except OSError as exc:
        if exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
            raise ModuleNotLoaded(exc.errno, "l2tp_ppp", "open PPPoL2TP socket") from exc
        raise
    what = f"connect PPPoL2TP to session {session_id} in tunnel {tunnel_id}"
    try:
        _call("connect", sock, address, what, None)
    except KernelError as exc:
        sock.close()
        if exc.errno == errno.ENOENT:
            raise error_for(errno.ENODEV, what, tunnel_id=tunnel_id) from exc
        raise
    except BaseException:
        sock.close()
        raise
    return sock
