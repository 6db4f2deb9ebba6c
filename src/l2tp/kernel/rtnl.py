"""The few rtnetlink requests the L2TP daemons need on a session's interface.

Linux 6.1 ignores ``L2TP_ATTR_MTU`` on session create, so an Ethernet session's
MTU is set on its ``l2tpethN`` interface afterwards, as ``ip link set mtu``
would; a site-to-site pseudowire is usually enslaved to a bridge, as ``ip
link set dev X master BR`` would; and it follows the peer's circuit status
with ``ip link set dev X up|down``; and a built-in PPP session gets the routes
its RADIUS server grants (Framed-Route) as ``ip route add DEST dev pppN`` would.
Hand-packed ``RTM_NEWLINK`` / ``RTM_GETLINK`` / ``RTM_NEWROUTE`` messages,
addressed by interface name or index. Every
``RTM_NEWLINK`` is marked slow (it runs the device's notifier chains inside
``send()``), so an asyncio channel in its default mode sends it from its thread.

:class:`Rtnl` (blocking) and :class:`AsyncRtnl` keep one socket open and run
the requests through the shared :class:`~l2tp.kernel.pipeline.Pipeline`; the
module functions (:func:`set_mtu`, :func:`set_master`, :func:`set_up`) open a
socket for one call, for scripts.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from contextlib import closing
from dataclasses import dataclass

from l2tp.kernel.channel import AsyncChannel, Sending, SyncChannel
from l2tp.kernel.codec import NLM_F_ACK, NLM_F_REQUEST, nla, nlmsg, raw_attrs
from l2tp.kernel.netns import socket_in_netns
from l2tp.kernel.pipeline import DEFAULT_WINDOW, Request

NETLINK_ROUTE = 0
RTM_NEWLINK = 16
RTM_GETLINK = 18
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_MASTER = 10
IFLA_STATS64 = 23

IFF_UP = 0x1

_IFINFOMSG = struct.Struct("=BxHiII")
_NLMSGHDR_SIZE = 16
_STATS64_HEAD = struct.Struct("=4Q")

Link = str | int
"""An interface by name (``str``) or by index (``int``)."""


def link_body(link: Link, attrs: bytes = b"", *, flags: int = 0, change: int = 0) -> bytes:
    """``ifinfomsg`` + attributes addressing ``link`` by index, or by name (index 0)."""
    if isinstance(link, int):
        return _IFINFOMSG.pack(socket.AF_UNSPEC, 0, link, flags, change) + attrs
    header = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, flags, change)
    return header + nla(IFLA_IFNAME, link.encode() + b"\0") + attrs


def _describe(link: Link) -> str:
    return link if isinstance(link, str) else f"ifindex {link}"


def set_mtu_req(link: Link, mtu: int) -> Request:
    """``RTM_NEWLINK`` changing the MTU of ``link`` (``ip link set dev X mtu N``)."""
    body = link_body(link, nla(IFLA_MTU, struct.pack("=I", mtu)))
    return Request(
        body, f"set mtu {mtu} on {_describe(link)}", mtype=RTM_NEWLINK, link=link, slow=True
    )


def set_master_req(link: Link, master_index: int, master: str = "") -> Request:
    """``RTM_NEWLINK`` making ``link`` a port of interface ``master_index`` (0: none)."""
    body = link_body(link, nla(IFLA_MASTER, struct.pack("=I", master_index)))
    name = master or f"ifindex {master_index}"
    return Request(
        body, f"set {_describe(link)} master {name}", mtype=RTM_NEWLINK, link=link, slow=True
    )


def set_up_req(link: Link, up: bool) -> Request:
    """``RTM_NEWLINK`` setting or clearing ``IFF_UP`` (``ip link set dev X up|down``)."""
    body = link_body(link, flags=IFF_UP if up else 0, change=IFF_UP)
    state = "up" if up else "down"
    return Request(body, f"set {_describe(link)} {state}", mtype=RTM_NEWLINK, link=link, slow=True)


def get_link_req(link: Link) -> Request:
    """``RTM_GETLINK`` for one interface; see :func:`link_index`."""
    return Request(link_body(link), f"find {_describe(link)}", mtype=RTM_GETLINK, link=link)


def link_index(request: Request) -> int:
    """The interface index in the reply of a finished :func:`get_link_req`."""
    (index,) = struct.unpack_from("=i", request.replies[0], _NLMSGHDR_SIZE + 4)
    return int(index)


@dataclass(frozen=True, slots=True)
class LinkStats:
    """The first four counters of an interface's ``struct rtnl_link_stats64``
    (``IFLA_STATS64``, 64-bit, so they never wrap in practice): what accounting needs."""

    rx_packets: int
    tx_packets: int
    rx_bytes: int
    tx_bytes: int


def link_stats(request: Request) -> LinkStats:
    """The ``IFLA_STATS64`` counters in the reply of a finished :func:`get_link_req`.

    Raises ValueError if the reply has none (every kernel since 2.6.35 sends them).
    """
    attrs = raw_attrs(request.replies[0], _NLMSGHDR_SIZE + _IFINFOMSG.size)
    stats = attrs.get(IFLA_STATS64)
    if stats is None or len(stats) < _STATS64_HEAD.size:
        raise ValueError(f"no IFLA_STATS64 in the reply for {request.what}")
    return LinkStats(*_STATS64_HEAD.unpack_from(stats))


# Whole messages with a given sequence number (tests compare them with iproute2's).


def set_mtu_request(ifname: str, mtu: int, *, seq: int) -> bytes:
    """``RTM_NEWLINK`` changing the MTU of ``ifname`` (looked up by name)."""
    return nlmsg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, set_mtu_req(ifname, mtu).body)


def set_master_request(ifname: str, master_index: int, *, seq: int) -> bytes:
    """``RTM_NEWLINK`` making ``ifname`` a port of the interface ``master_index`` (0: none)."""
    body = set_master_req(ifname, master_index).body
    return nlmsg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def set_up_request(ifname: str, up: bool, *, seq: int) -> bytes:
    """``RTM_NEWLINK`` setting or clearing ``IFF_UP`` on ``ifname`` (``ip link set up/down``)."""
    return nlmsg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, set_up_req(ifname, up).body)


def open_rtnl_socket(netns: str | None) -> socket.socket:
    """A bound ``NETLINK_ROUTE`` socket in ``netns`` (None: ours)."""
    sock = socket_in_netns(netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock


class Rtnl:
    """Blocking rtnetlink on one persistent socket."""

    def __init__(self, *, netns: str | None = None) -> None:
        self.netns = netns
        self._channel = SyncChannel(open_rtnl_socket(netns))

    def close(self) -> None:
        self._channel.close()

    def set_mtu(self, link: Link, mtu: int) -> None:
        self._channel.run([set_mtu_req(link, mtu)])

    def set_master(self, link: Link, master: str) -> None:
        (found,) = self._channel.run([get_link_req(master)])
        self._channel.run([set_master_req(link, link_index(found), master)])

    def set_up(self, link: Link, up: bool) -> None:
        self._channel.run([set_up_req(link, up)])


class AsyncRtnl:
    """rtnetlink on one persistent non-blocking socket; requests pipelined."""

    def __init__(
        self,
        *,
        netns: str | None = None,
        window: int = DEFAULT_WINDOW,
        sending: Sending = "auto",
        channel: AsyncChannel | None = None,
    ) -> None:
        self.netns = netns
        self.channel = channel or AsyncChannel(
            open_rtnl_socket(netns), window=window, sending=sending, name="rtnl"
        )

    def close(self) -> None:
        self.channel.close()

    async def aclose(self) -> None:
        await self.channel.aclose()

    async def set_mtu(self, link: Link, mtu: int) -> None:
        await self.channel.call(set_mtu_req(link, mtu))

    async def link_index(self, link: Link) -> int:
        return link_index(await self.channel.call(get_link_req(link)))

    async def link_stats(self, link: Link) -> LinkStats:
        """The interface's packet and byte counters (one ``RTM_GETLINK``)."""
        return link_stats(await self.channel.call(get_link_req(link)))

    async def set_master(self, link: Link, master: str) -> None:
        index = await self.link_index(master)
        await self.channel.call(set_master_req(link, index, master))

    async def set_up(self, link: Link, up: bool) -> None:
        await self.channel.call(set_up_req(link, up))


def set_mtu(ifname: str, mtu: int, *, netns: str | None = None) -> None:
    """Set ``ifname``'s MTU in ``netns``; raises a :class:`KernelError` on failure."""
    with closing(Rtnl(netns=netns)) as rtnl:
        rtnl.set_mtu(ifname, mtu)


def set_master(ifname: str, master: str, *, netns: str | None = None) -> None:
    """Make ``ifname`` a port of bridge ``master`` in ``netns`` (``ip link set master``)."""
    with closing(Rtnl(netns=netns)) as rtnl:
        rtnl.set_master(ifname, master)


def set_up(ifname: str, up: bool, *, netns: str | None = None) -> None:
    """Bring ``ifname`` up or down in ``netns`` (``ip link set dev X up|down``)."""
    with closing(Rtnl(netns=netns)) as rtnl:
        rtnl.set_up(ifname, up)


# --- routes through a point-to-point interface (RADIUS Framed-Route) -------------------

_RT_SCOPE_UNIVERSE = 0
_RT_SCOPE_LINK = 253
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RTN_UNICAST = 1
RTNH_F_ONLINK = 4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
_RTMSG = struct.Struct("=BBBBBBBBI")


def route_body(
    index: int,
    destination: ipaddress.IPv4Network,
    gateway: ipaddress.IPv4Address | None,
    metric: int | None,
) -> bytes:
    """``rtmsg`` + attributes of an IPv4 unicast route in the main table through interface
    ``index``: ``ip route add DEST [via GW onlink] dev X [metric N] proto static``.

    Without a gateway the route is a link-scope route of the point-to-point interface
    (every packet goes to the one peer); with one it is marked ``onlink`` (RTNH_F_ONLINK),
    since a PPP interface has no subnet the gateway could be found in.
    """
    scope = _RT_SCOPE_UNIVERSE if gateway is not None else _RT_SCOPE_LINK
    flags = RTNH_F_ONLINK if gateway is not None else 0
    body = _RTMSG.pack(
        socket.AF_INET,
        destination.prefixlen,
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_STATIC,
        scope,
        RTN_UNICAST,
        flags,
    )
    body += nla(RTA_DST, destination.network_address.packed)
    body += nla(RTA_OIF, struct.pack("=I", index))
    if gateway is not None:
        body += nla(RTA_GATEWAY, gateway.packed)
    if metric is not None:
        body += nla(RTA_PRIORITY, struct.pack("=I", metric))
    return body


def add_route_req(
    index: int,
    destination: ipaddress.IPv4Network,
    gateway: ipaddress.IPv4Address | None,
    metric: int | None,
) -> Request:
    """``RTM_NEWROUTE`` (create, exclusive: an existing route is not replaced)."""
    body = route_body(index, destination, gateway, metric)
    what = f"add route {destination} on ifindex {index}"
    return Request(body, what, mtype=RTM_NEWROUTE, link=index, flags=NLM_F_CREATE | NLM_F_EXCL)


def delete_route_req(
    index: int,
    destination: ipaddress.IPv4Network,
    gateway: ipaddress.IPv4Address | None,
    metric: int | None,
) -> Request:
    """``RTM_DELROUTE`` for a route :func:`add_route_req` added."""
    body = route_body(index, destination, gateway, metric)
    what = f"delete route {destination} on ifindex {index}"
    return Request(body, what, mtype=RTM_DELROUTE, link=index)
