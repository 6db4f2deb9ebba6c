"""The few rtnetlink requests the L2TP daemons need on a session's interface.

Linux 6.1 ignores ``L2TP_ATTR_MTU`` on session create, so an Ethernet session's
MTU is set on its ``l2tpethN`` interface afterwards, as ``ip link set mtu``
would; and a site-to-site pseudowire is usually enslaved to a bridge, as
``ip link set dev X master BR`` would. Hand-packed ``RTM_NEWLINK`` /
``RTM_GETLINK`` messages keep each to one small round trip.
"""

from __future__ import annotations

import socket
import struct

from l2tp.kernel.codec import NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR, iter_messages, nla, parse_error
from l2tp.kernel.errors import error_for
from l2tp.kernel.netns import socket_in_netns

NETLINK_ROUTE = 0
RTM_NEWLINK = 16
RTM_GETLINK = 18
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_MASTER = 10


IFF_UP = 0x1


def _link_request(
    msg_type: int, ifname: str, attrs: bytes, *, seq: int, flags: int = 0, change: int = 0
) -> bytes:
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, flags, change)
    body += nla(IFLA_IFNAME, ifname.encode() + b"\0") + attrs
    flags = NLM_F_REQUEST | (NLM_F_ACK if msg_type == RTM_NEWLINK else 0)
    return struct.pack("=IHHII", 16 + len(body), msg_type, flags, seq, 0) + body


def set_mtu_request(ifname: str, mtu: int, *, seq: int) -> bytes:
    """``RTM_NEWLINK`` changing the MTU of ``ifname`` (looked up by name)."""
    return _link_request(RTM_NEWLINK, ifname, nla(IFLA_MTU, struct.pack("=I", mtu)), seq=seq)


def set_master_request(ifname: str, master_index: int, *, seq: int) -> bytes:
    """``RTM_NEWLINK`` making ``ifname`` a port of the interface ``master_index`` (0: none)."""
    return _link_request(
        RTM_NEWLINK, ifname, nla(IFLA_MASTER, struct.pack("=I", master_index)), seq=seq
    )


def set_up_request(ifname: str, up: bool, *, seq: int) -> bytes:
    """``RTM_NEWLINK`` setting or clearing ``IFF_UP`` on ``ifname`` (``ip link set up/down``)."""
    return _link_request(
        RTM_NEWLINK, ifname, b"", seq=seq, flags=IFF_UP if up else 0, change=IFF_UP
    )


def _roundtrip(sock: socket.socket, request: bytes, seq: int, what: str) -> bytes:
    """Send one request; return the whole reply message or raise the kernel's error."""
    sock.send(request)
    while True:
        for mtype, _flags, rseq, message in iter_messages(sock.recv(65536)):
            if rseq != seq:
                continue
            if mtype == NLMSG_ERROR:
                err, text = parse_error(message)
                if err:
                    raise error_for(err, what + (f" ({text})" if text else ""))
                return b""
            return message


def set_mtu(ifname: str, mtu: int, *, netns: str | None = None) -> None:
    """Set ``ifname``'s MTU in ``netns``; raises a :class:`KernelError` on failure."""
    with socket_in_netns(netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        _roundtrip(sock, set_mtu_request(ifname, mtu, seq=1), 1, f"set mtu {mtu} on {ifname}")


def set_master(ifname: str, master: str, *, netns: str | None = None) -> None:
    """Make ``ifname`` a port of bridge ``master`` in ``netns`` (``ip link set master``)."""
    with socket_in_netns(netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        reply = _roundtrip(
            sock, _link_request(RTM_GETLINK, master, b"", seq=1), 1, f"find {master}"
        )
        # nlmsghdr (16 bytes), then ifinfomsg: family, pad, type (4 bytes), ifindex.
        (index,) = struct.unpack_from("=i", reply, 16 + 4)
        _roundtrip(
            sock, set_master_request(ifname, index, seq=2), 2, f"set {ifname} master {master}"
        )


def set_up(ifname: str, up: bool, *, netns: str | None = None) -> None:
    """Bring ``ifname`` up or down in ``netns`` (``ip link set dev X up|down``)."""
    with socket_in_netns(netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        state = "up" if up else "down"
        _roundtrip(sock, set_up_request(ifname, up, seq=1), 1, f"set {ifname} {state}")
