"""The one rtnetlink request the L2TP API needs: set an interface's MTU by name.

Linux 6.1 ignores ``L2TP_ATTR_MTU`` on session create, so an Ethernet session's
MTU is set on its ``l2tpethN`` interface afterwards, as ``ip link set mtu``
would. A hand-packed ``RTM_NEWLINK`` keeps this to one small message.
"""

from __future__ import annotations

import socket
import struct

from l2tp.kernel.codec import NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR, iter_messages, nla, parse_error
from l2tp.kernel.errors import error_for
from l2tp.kernel.netns import socket_in_netns

NETLINK_ROUTE = 0
RTM_NEWLINK = 16
IFLA_IFNAME = 3
IFLA_MTU = 4


def set_mtu_request(ifname: str, mtu: int, *, seq: int) -> bytes:
    """``RTM_NEWLINK`` changing the MTU of ``ifname`` (looked up by name)."""
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)
    body += nla(IFLA_IFNAME, ifname.encode() + b"\0") + nla(IFLA_MTU, struct.pack("=I", mtu))
    return (
        struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body
    )


def set_mtu(ifname: str, mtu: int, *, netns: str | None = None) -> None:
    """Set ``ifname``'s MTU in ``netns``; raises a :class:`KernelError` on failure."""
    with socket_in_netns(netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        sock.send(set_mtu_request(ifname, mtu, seq=1))
        while True:
            for mtype, _flags, seq, message in iter_messages(sock.recv(65536)):
                if mtype == NLMSG_ERROR and seq == 1:
                    err, text = parse_error(message)
                    if err:
                        raise error_for(
                            err, f"set mtu {mtu} on {ifname}" + (f" ({text})" if text else "")
                        )
                    return
