"""Linux PPP devices for the built-in PPP: ``/dev/ppp`` channels and units, NP modes, and the
rtnetlink requests that configure a unit's network interface.

How the kernel's generic PPP layer (``drivers/net/ppp/ppp_generic.c``) is used, in the
order the built-in PPP driver (:mod:`l2tp.runtime.builtin_ppp`) does it:

1. A PPPoL2TP socket connected to a session registers a PPP *channel*;
   ``PPPIOCGCHAN`` on that socket returns the channel's index.
2. ``/dev/ppp`` opened ``O_RDWR | O_NONBLOCK`` and ``PPPIOCATTCHAN`` (index) becomes the
   *channel fd*: ``write()`` sends one frame on the channel, ``read()`` returns one
   received frame. A frame is the 2-octet Protocol field and the information field
   (RFC 1661 2); the PPPoL2TP channel adds the ``FF 03`` address and control octets on
   output and removes them on input (RFC 2661 5.4: no HDLC framing on L2TP).
3. When the link reaches the network phase (RFC 1661 3.5) a second ``/dev/ppp`` fd
   gets ``PPPIOCNEWUNIT`` (-1: the kernel picks the number) and becomes the *unit fd*,
   owning the network interface ``ppp<unit>``; ``PPPIOCCONNECT`` (unit) on the channel
   fd joins the channel to the unit.
4. From then on the kernel routes what the channel receives by protocol
   (``ppp_input``): protocols 0xc000 and up (LCP, PAP, CHAP) still come out of the
   channel fd; NCP frames (0x8000-0xbfff: IPCP, IPv6CP) and unknown protocols come out
   of the unit fd; data frames (IPv4 0x0021, IPv6 0x0057) go to the interface when the
   NP mode of that protocol is ``NPMODE_PASS`` and are dropped otherwise.
   ``PPPIOCSNPMODE`` sets it per protocol; ``PPPIOCSMRU`` sets the unit's MRU.
5. ``read()`` returns 0 (end of file) once the channel is gone (the kernel session was
   deleted) or the unit has no channel left: the link hung up.
6. Closing the unit fd unregisters the interface (we own it); closing the channel fd
   detaches from the channel; closing the PPPoL2TP socket deletes the kernel session.
   Unregistering an interface waits for RCU grace periods, so interfaces released
   together are first deleted in one batch (``RTM_DELLINK`` of a device group, see
   :func:`delete_group_req`); their unit fds then close at once.

Network namespaces: ``PPPIOCATTCHAN`` looks the channel up among the channels of the
*calling thread's* network namespace, and ``PPPIOCNEWUNIT`` creates the interface
there (``ppp_ioctl`` passes ``current->nsproxy->net_ns`` to
``ppp_unattached_ioctl``), while the channel was registered in the namespace of the
PPPoL2TP socket. Both calls are therefore made with the thread switched into the
session's namespace (:func:`~l2tp.kernel.netns.in_netns`): two ``setns()`` around one
``ioctl()``, no thread, no process, nothing else running on the thread in between (the
same reasoning, and the same code, as :mod:`l2tp.kernel.netns`).

The ioctl numbers are computed from ``linux/ppp-ioctl.h`` with the ``_IOR``/``_IOW``/
``_IOWR``/``_IO`` macros of ``asm-generic/ioctl.h`` (direction in bits 30-31, argument
size in bits 16-29, type ``'t'`` in bits 8-15, number in bits 0-7), and checked against
the values a C compiler gives for the header (``tests/unit/test_ppp_device.py``).

The interface requests (rename, MTU, up, addresses) are rtnetlink messages on one
persistent non-blocking socket per namespace (:class:`PppInterfaces`, through
:class:`~l2tp.kernel.channel.AsyncChannel`): the event loop never waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import fcntl
import ipaddress
import logging
import os
import resource
import socket
import struct
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from l2tp.kernel.channel import AsyncChannel
from l2tp.kernel.codec import nla, raw_attrs
from l2tp.kernel.errors import KernelError, ModuleNotLoaded, error_for
from l2tp.kernel.netns import in_netns
from l2tp.kernel.pipeline import Request
from l2tp.kernel.rtnl import (
    IFLA_IFNAME,
    RTM_NEWLINK,
    add_route_req,
    delete_route_req,
    get_link_req,
    link_body,
    link_index,
    open_rtnl_socket,
    set_mtu_req,
    set_up_req,
)

# --- ioctl numbers (asm-generic/ioctl.h) -------------------------------------------------

_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = 8
_IOC_SIZESHIFT = 16
_IOC_DIRSHIFT = 30
_IOC_NONE = 0
_IOC_WRITE = 1
_IOC_READ = 2
_INT = 4
_NPIOCTL = struct.Struct("=ii")
"""``struct npioctl { int protocol; enum NPmode mode; }`` (8 bytes)."""


def _ioc(direction: int, kind: str, number: int, size: int) -> int:
    return (
        direction << _IOC_DIRSHIFT
        | size << _IOC_SIZESHIFT
        | ord(kind) << _IOC_TYPESHIFT
        | number << _IOC_NRSHIFT
    )


def _io(kind: str, number: int) -> int:
    return _ioc(_IOC_NONE, kind, number, 0)


def _ior(kind: str, number: int, size: int) -> int:
    return _ioc(_IOC_READ, kind, number, size)


def _iow(kind: str, number: int, size: int) -> int:
    return _ioc(_IOC_WRITE, kind, number, size)


def _iowr(kind: str, number: int, size: int) -> int:
    return _ioc(_IOC_READ | _IOC_WRITE, kind, number, size)


PPPIOCGCHAN = _ior("t", 55, _INT)
"""0x80047437: the channel index of a PPPoX socket (or a channel fd)."""
PPPIOCATTCHAN = _iow("t", 56, _INT)
"""0x40047438: make an unattached ``/dev/ppp`` fd the fd of channel N."""
PPPIOCDISCONN = _io("t", 57)
"""0x00007439: disconnect a channel fd from its unit."""
PPPIOCCONNECT = _iow("t", 58, _INT)
"""0x4004743a: connect a channel fd to unit N."""
PPPIOCNEWUNIT = _iowr("t", 62, _INT)
"""0xc004743e: make an unattached ``/dev/ppp`` fd a new unit (-1: any number); returns it."""
PPPIOCSNPMODE = _iow("t", 75, _NPIOCTL.size)
"""0x4008744b: set the NP mode of one data protocol on a unit."""
PPPIOCGNPMODE = _iowr("t", 76, _NPIOCTL.size)
"""0xc008744c: read the NP mode of one data protocol of a unit."""
PPPIOCSMRU = _iow("t", 82, _INT)
"""0x40047452: set a unit's maximum receive unit."""
PPPIOCGUNIT = _ior("t", 86, _INT)
"""0x80047456: the unit number of a unit fd."""
_PPP_IDLE64 = struct.Struct("=qq")
"""``struct ppp_idle64 { s64 xmit_idle; s64 recv_idle; }`` (16 bytes)."""
PPPIOCGIDLE64 = _ior("t", 63, _PPP_IDLE64.size)
"""0x8010743f: seconds since the unit last sent and last received a data frame (the
y2038-safe form; ``PPPIOCGIDLE``, with ``time_t``, is the same number on 64-bit hosts)."""


class NpMode(enum.IntEnum):
    """``enum NPmode`` (``linux/ppp_defs.h``): what a unit does with one data protocol."""

    PASS = 0
    """Pass the packets through (the NCP is Opened)."""
    DROP = 1
    """Silently drop them (the NCP is not Opened)."""
    ERROR = 2
    QUEUE = 3


DEV_PPP = "/dev/ppp"
"""Character device 108/0 (``ppp_generic``)."""
PPP_IP = 0x0021
PPP_IPV6 = 0x0057
MAX_FRAME = 0xFFFF + 2
"""The largest frame a channel or unit fd can return: a 65535-octet MRU plus the Protocol
field. ``read()`` with a smaller buffer drops a longer frame (``EOVERFLOW``)."""

log = logging.getLogger(__name__)


# --- ioctls ------------------------------------------------------------------------------


def _ioctl_int(fd: int, request: int, value: int, what: str) -> int:
    buf = bytearray(struct.pack("=i", value))
    try:
        fcntl.ioctl(fd, request, buf, True)
    except OSError as exc:
        raise KernelError(exc.errno or errno.EIO, f"{what} failed ({exc.strerror})") from exc
    (result,) = struct.unpack("=i", buf)
    return int(result)


def channel_index(sock: socket.socket | int) -> int:
    """``PPPIOCGCHAN``: the index of the PPP channel of a connected PPPoL2TP socket."""
    fd = sock if isinstance(sock, int) else sock.fileno()
    return _ioctl_int(fd, PPPIOCGCHAN, 0, "PPPIOCGCHAN")


def open_dev_ppp() -> int:
    """An unattached ``/dev/ppp`` fd (non-blocking, close-on-exec)."""
    try:
        return os.open(DEV_PPP, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise ModuleNotLoaded(exc.errno or errno.ENOENT, "ppp_generic", f"open {DEV_PPP}") from exc
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.ENXIO):
            raise ModuleNotLoaded(exc.errno, "ppp_generic", f"open {DEV_PPP}") from exc
        raise error_for(exc.errno or errno.EIO, f"open {DEV_PPP}") from exc


def attach_channel(index: int, *, netns: str | None = None) -> int:
    """A channel fd for channel ``index`` (``/dev/ppp`` + ``PPPIOCATTCHAN``), in ``netns``."""
    fd = open_dev_ppp()
    try:
        with in_netns(netns):
            _ioctl_int(fd, PPPIOCATTCHAN, index, f"PPPIOCATTCHAN (channel {index})")
    except BaseException:
        os.close(fd)
        raise
    return fd


def new_unit(*, netns: str | None = None) -> tuple[int, int]:
    """``(fd, unit)``: a new PPP unit (interface ``ppp<unit>``) created in ``netns``.

    The fd owns the interface: closing it unregisters the interface.
    """
    fd = open_dev_ppp()
    try:
        with in_netns(netns):
            unit = _ioctl_int(fd, PPPIOCNEWUNIT, -1, "PPPIOCNEWUNIT")
    except BaseException:
        os.close(fd)
        raise
    return fd, unit


def connect_channel(channel_fd: int, unit: int) -> None:
    """``PPPIOCCONNECT``: join a channel to a unit (the unit's namespace is the channel's)."""
    _ioctl_int(channel_fd, PPPIOCCONNECT, unit, f"PPPIOCCONNECT (unit {unit})")


def disconnect_channel(channel_fd: int) -> None:
    """``PPPIOCDISCONN``: detach a channel from its unit."""
    try:
        fcntl.ioctl(channel_fd, PPPIOCDISCONN)
    except OSError as exc:
        raise KernelError(exc.errno or errno.EIO, f"PPPIOCDISCONN failed ({exc.strerror})") from exc


def unit_number(unit_fd: int) -> int:
    """``PPPIOCGUNIT``: the unit number of a unit fd."""
    return _ioctl_int(unit_fd, PPPIOCGUNIT, 0, "PPPIOCGUNIT")


def set_mru(unit_fd: int, mru: int) -> None:
    """``PPPIOCSMRU``: the largest frame the unit accepts (RFC 1661 6.1, as negotiated)."""
    _ioctl_int(unit_fd, PPPIOCSMRU, mru, f"PPPIOCSMRU ({mru})")


def set_np_mode(unit_fd: int, protocol: int, mode: NpMode) -> None:
    """``PPPIOCSNPMODE``: pass or drop one data protocol (0x0021 IPv4, 0x0057 IPv6)."""
    buf = _NPIOCTL.pack(protocol, mode)
    try:
        fcntl.ioctl(unit_fd, PPPIOCSNPMODE, buf)
    except OSError as exc:
        what = f"PPPIOCSNPMODE (protocol 0x{protocol:04x} {mode.name})"
        raise KernelError(exc.errno or errno.EIO, f"{what} failed ({exc.strerror})") from exc


def idle_seconds(unit_fd: int) -> tuple[int, int]:
    """``PPPIOCGIDLE64``: ``(transmit, receive)`` seconds since the unit last sent and last
    received a data frame (``ppp_generic`` stamps ``last_xmit``/``last_recv`` for protocols
    below 0x8000 only: LCP echoes and NCP frames do not count), what pppd's ``idle`` uses."""
    buf = bytearray(_PPP_IDLE64.size)
    try:
        fcntl.ioctl(unit_fd, PPPIOCGIDLE64, buf, True)
    except OSError as exc:
        raise KernelError(exc.errno or errno.EIO, f"PPPIOCGIDLE failed ({exc.strerror})") from exc
    xmit, recv = _PPP_IDLE64.unpack(buf)
    return int(xmit), int(recv)


def get_np_mode(unit_fd: int, protocol: int) -> NpMode:
    """``PPPIOCGNPMODE``: the NP mode of one data protocol."""
    buf = bytearray(_NPIOCTL.pack(protocol, 0))
    try:
        fcntl.ioctl(unit_fd, PPPIOCGNPMODE, buf, True)
    except OSError as exc:
        raise KernelError(exc.errno or errno.EIO, f"PPPIOCGNPMODE failed ({exc.strerror})") from exc
    return NpMode(_NPIOCTL.unpack(buf)[1])


# --- the fds of one session --------------------------------------------------------------


@dataclass(slots=True, eq=False)
class PppChannel:
    """The PPPoL2TP socket of a session and the channel fd attached to its channel."""

    sock: socket.socket
    fd: int
    index: int


@dataclass(slots=True, eq=False)
class PppUnit:
    """A unit fd (owner of interface ``ppp<number>``) and its number."""

    fd: int
    number: int

    @property
    def kernel_name(self) -> str:
        """The name the kernel gave the interface (``ppp%d`` with the unit number)."""
        return f"ppp{self.number}"


CLOSE_THREADS = 32
"""Threads that close PPPoL2TP sockets at once (made on demand, kept while the kernel layer
lives): each close waits for an RCU grace period in Linux 6.1, which concurrent closes
share."""
OPEN_THREADS = 8
"""Threads that open sessions' channels at once (:meth:`LinuxPppKernel.open_channel_async`),
made on demand: ``PPPIOCGCHAN`` waits for an RCU grace period in Debian's Linux 6.1
(``synchronize_rcu()`` in ``pppox_ioctl``), which concurrent callers share. Eight open
~400 sessions/s in the emulated test VM (~20 ms grace periods), several times its set-up
rate; the threads cost memory for the process's life (roughly 2 MiB of PSS there)."""
FDS_PER_SESSION = 3
"""The PPPoL2TP socket, the channel fd and the unit fd (accel-ppp holds the same three)."""


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return ``(before, after)``.

    pppd holds a session's fds in its own process; in-process PPP holds three per
    session in the daemon, so the usual soft limit of 1024 would stop a daemon at ~330
    sessions with EMFILE. The event loop uses epoll, which has no 1024 ceiling.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def close_quietly(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


# --- rtnetlink: the unit's interface -----------------------------------------------------

RTM_NEWADDR = 20
RTM_DELADDR = 21
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_FLAGS = 8
IFA_F_NODAD = 0x02
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
_IFADDRMSG = struct.Struct("=BBBBI")
_NLMSGHDR_SIZE = 16
_IFINFOMSG_SIZE = 16

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_body(
    index: int, local: IPAddress, peer: IPAddress | None, prefixlen: int, *, flags: int = 0
) -> bytes:
    """``ifaddrmsg`` + ``IFA_LOCAL`` (+ ``IFA_ADDRESS`` = the peer) for a point-to-point link.

    With a peer address the kernel adds a host route to it through the interface, as
    ``ip addr add LOCAL peer PEER dev X`` does (pppd configures its units the same way).
    """
    family = socket.AF_INET if local.version == 4 else socket.AF_INET6
    scope = RT_SCOPE_LINK if local.version == 6 and local.is_link_local else RT_SCOPE_UNIVERSE
    body = _IFADDRMSG.pack(family, prefixlen, flags & 0xFF, scope, index)
    body += nla(IFA_LOCAL, local.packed)
    body += nla(IFA_ADDRESS, (peer or local).packed)
    if flags:
        body += nla(IFA_FLAGS, struct.pack("=I", flags))
    return body


def add_address_req(
    index: int, local: IPAddress, peer: IPAddress | None, prefixlen: int
) -> Request:
    """``RTM_NEWADDR`` (``ip addr add LOCAL peer PEER/LEN dev X nodad``)."""
    # No duplicate address detection on a point-to-point link to one peer (RFC 5072 5:
    # IPv6CP has already made the two interface identifiers differ).
    flags = IFA_F_NODAD if local.version == 6 else 0
    body = address_body(index, local, peer, prefixlen, flags=flags)
    what = f"add address {local} peer {peer} on ifindex {index}"
    return Request(body, what, mtype=RTM_NEWADDR, link=index)


def delete_address_req(
    index: int, local: IPAddress, peer: IPAddress | None, prefixlen: int
) -> Request:
    """``RTM_DELADDR`` for an address :func:`add_address_req` added."""
    body = address_body(index, local, peer, prefixlen)
    what = f"delete address {local} on ifindex {index}"
    return Request(body, what, mtype=RTM_DELADDR, link=index)


def rename_req(index: int, name: str) -> Request:
    """``RTM_NEWLINK`` renaming interface ``index`` (it must be down).

    A ``%d`` in ``name`` makes the kernel pick the lowest free number
    (``dev_change_name`` -> ``dev_alloc_name``), which is how one listener names many.
    """
    body = link_body(index, nla(IFLA_IFNAME, name.encode() + b"\0"))
    what = f"rename ifindex {index} to {name}"
    return Request(body, what, mtype=RTM_NEWLINK, link=index, slow=True)


IFLA_GROUP = 27
RTM_DELLINK = 17


def set_group_req(index: int, group: int) -> Request:
    """``RTM_NEWLINK`` putting interface ``index`` in device group ``group``."""
    body = link_body(index, nla(IFLA_GROUP, struct.pack("=I", group)))
    return Request(body, f"set ifindex {index} group {group}", mtype=RTM_NEWLINK, link=index)


def delete_group_req(group: int) -> Request:
    """``RTM_DELLINK`` of every interface in device group ``group`` (``ip link del group``).

    The kernel unregisters them together (``rtnl_group_dellink`` ->
    ``unregister_netdevice_many``): one round of RCU grace periods for the whole batch,
    where closing each unit fd waits for its own. Measured in the test VM: 200 PPP
    interfaces deleted this way in 0.22 s (plus 0.35 s to set their group), against
    3.9 s closing their unit fds one by one.
    """
    body = link_body(0, nla(IFLA_GROUP, struct.pack("=I", group)))
    return Request(body, f"delete link group {group}", mtype=RTM_DELLINK, slow=True)


def link_name(request: Request) -> str:
    """The ``IFLA_IFNAME`` of the reply to a finished :func:`~l2tp.kernel.rtnl.get_link_req`."""
    attrs = raw_attrs(request.replies[0], _NLMSGHDR_SIZE + _IFINFOMSG_SIZE)
    return attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode(errors="replace")


def ipv6_link_local(interface_id: bytes) -> ipaddress.IPv6Address:
    """``fe80::/64`` with an 8-octet interface identifier (RFC 5072 section 5)."""
    if len(interface_id) != 8:
        raise ValueError("an IPv6 interface identifier is 8 octets")
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + interface_id)


@dataclass(slots=True)
class PppInterfaces:
    """rtnetlink for the PPP interfaces of one network namespace (one persistent socket).

    Interfaces are addressed by index once found, so a rename cannot make a later
    request miss. Link changes run the device's notifier chains inside ``send()``
    and are sent from the channel's thread (:mod:`l2tp.kernel.channel`).
    """

    netns: str | None = None
    channel: AsyncChannel | None = None
    _own: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.channel is None:
            self.channel = AsyncChannel(open_rtnl_socket(self.netns), name="ppp-rtnl")
            self._own = True

    async def _call(self, request: Request) -> Request:
        assert self.channel is not None
        return await self.channel.call(request)

    async def index_of(self, name: str) -> int:
        return link_index(await self._call(get_link_req(name)))

    async def name_of(self, index: int) -> str:
        return link_name(await self._call(get_link_req(index)))

    async def rename(self, index: int, name: str) -> str:
        """Rename (``%d`` allowed); return the name the interface has now."""
        await self._call(rename_req(index, name))
        return await self.name_of(index)

    async def set_mtu(self, index: int, mtu: int) -> None:
        await self._call(set_mtu_req(index, mtu))

    async def set_up(self, index: int, up: bool) -> None:
        await self._call(set_up_req(index, up))

    async def add_address(
        self, index: int, local: IPAddress, peer: IPAddress | None, prefixlen: int
    ) -> None:
        await self._call(add_address_req(index, local, peer, prefixlen))

    async def delete_address(
        self, index: int, local: IPAddress, peer: IPAddress | None, prefixlen: int
    ) -> None:
        await self._call(delete_address_req(index, local, peer, prefixlen))

    async def add_route(
        self,
        index: int,
        destination: ipaddress.IPv4Network,
        gateway: ipaddress.IPv4Address | None,
        metric: int | None,
    ) -> None:
        await self._call(add_route_req(index, destination, gateway, metric))

    async def delete_route(
        self,
        index: int,
        destination: ipaddress.IPv4Network,
        gateway: ipaddress.IPv4Address | None,
        metric: int | None,
    ) -> None:
        await self._call(delete_route_req(index, destination, gateway, metric))

    async def delete_links(self, indexes: Sequence[int]) -> set[int]:
        """Unregister interfaces ``indexes`` in one kernel batch; return those deleted.

        They are moved to a fresh device group, then the group is deleted. The group is
        random with its top bit set, so that it cannot be one an administrator uses (and
        a collision with another program doing the same is a 1-in-2**31 chance per batch).
        """
        if not indexes:
            return set()
        group = 0x80000000 | int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
        outcomes = await asyncio.gather(
            *(self._call(set_group_req(index, group)) for index in indexes),
            return_exceptions=True,
        )
        moved = {i for i, o in zip(indexes, outcomes, strict=True) if isinstance(o, Request)}
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome
        if moved:
            await self._call(delete_group_req(group))
        return moved

    async def aclose(self) -> None:
        if self._own and self.channel is not None:
            await self.channel.aclose()


class LinuxPppKernel:
    """The kernel side of built-in PPP sessions: what :mod:`l2tp.runtime.builtin_ppp` calls.

    The ioctls are synchronous system calls that do not wait for anything but the
    kernel's own locks (``PPPIOCNEWUNIT`` registers a network device under the RTNL
    lock, about as long as creating an Ethernet session); the interface requests go
    through :class:`PppInterfaces`, one per namespace, made on first use.
    """

    def __init__(self) -> None:
        self._interfaces: dict[str | None, PppInterfaces] = {}
        self._reapers: dict[str | None, _Reaper] = {}
        self._closer: ThreadPoolExecutor | None = None
        self._opener: ThreadPoolExecutor | None = None

    def open_channel(self, sock: socket.socket, *, netns: str | None) -> PppChannel:
        """The channel fd of a connected PPPoL2TP socket (which the result then holds).

        Blocks for an RCU grace period (``PPPIOCGCHAN``, see :data:`OPEN_THREADS`): on an
        event loop use :meth:`open_channel_async`."""
        index = channel_index(sock)
        fd = attach_channel(index, netns=netns)
        return PppChannel(sock=sock, fd=fd, index=index)

    async def open_channel_async(
        self, open_socket: Callable[[], socket.socket], *, netns: str | None
    ) -> PppChannel:
        """:meth:`open_channel` of the socket ``open_socket()`` returns, both on a worker
        thread: the event loop never waits for the grace period, and sessions opened
        together wait for the same one.

        Measured in the emulated test VM (Linux 6.1, 200 sessions): ``PPPIOCGCHAN`` took
        17-21 ms of wall time and 0.4 ms of CPU per session, the largest block of the
        event loop while calls came up, on both the LNS and the LAC (3.4-3.9 s of ~8 s);
        off the loop, 200 sessions came up twice as fast (docs/benchmarks.md, section 9).
        If the caller is cancelled, a channel opened anyway is closed when it is ready.
        """
        if self._opener is None:
            self._opener = ThreadPoolExecutor(OPEN_THREADS, thread_name_prefix="ppp-open")
        future = self._opener.submit(_open_channel, self, open_socket, netns)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(_close_unwanted)
            raise

    def create_unit(self, channel: PppChannel, *, netns: str | None) -> PppUnit:
        """A new unit, connected to ``channel``, with every data protocol dropped."""
        fd, number = new_unit(netns=netns)
        try:
            for protocol in (PPP_IP, PPP_IPV6):
                set_np_mode(fd, protocol, NpMode.DROP)
            connect_channel(channel.fd, number)
        except BaseException:
            os.close(fd)
            raise
        return PppUnit(fd=fd, number=number)

    def set_mru(self, unit: PppUnit, mru: int) -> None:
        set_mru(unit.fd, mru)

    def set_np_mode(self, unit: PppUnit, protocol: int, mode: NpMode) -> None:
        set_np_mode(unit.fd, protocol, mode)

    def idle_seconds(self, unit: PppUnit) -> tuple[int, int]:
        return idle_seconds(unit.fd)

    def interfaces(self, netns: str | None) -> PppInterfaces:
        found = self._interfaces.get(netns)
        if found is None:
            found = self._interfaces[netns] = PppInterfaces(netns=netns)
        return found

    async def release(
        self,
        channel: PppChannel | None,
        unit: PppUnit | None,
        *,
        netns: str | None,
        ifindex: int | None,
    ) -> None:
        """Remove the unit's interface and close the unit fd, the channel fd and the
        PPPoL2TP socket (the kernel session goes), off the event loop.

        Both halves wait for RCU grace periods in Linux 6.1, so both are arranged to
        share them: interfaces of units released together are unregistered in one
        kernel batch (:class:`_Reaper`), and the sockets are closed concurrently on up
        to :data:`CLOSE_THREADS` threads (``l2tp_session_unhash`` calls
        ``synchronize_rcu()`` for every session, ~20-40 ms in the test VM; concurrent
        callers wait for the same grace period). Measured there, 200 sessions: closing
        the sockets on 6 threads took 1.6 s, on 32 threads 0.7-0.9 s (docs/builtin-ppp.md).
        """
        loop = asyncio.get_running_loop()
        work: list[Awaitable[None]] = []
        if unit is not None:
            reaper = self._reapers.get(netns)
            if reaper is None:
                reaper = self._reapers[netns] = _Reaper(self.interfaces(netns))
            work.append(reaper.drop(unit, ifindex))
        if channel is not None:
            if self._closer is None:
                self._closer = ThreadPoolExecutor(CLOSE_THREADS, thread_name_prefix="ppp-close")
            work.append(loop.run_in_executor(self._closer, close_channel, channel))
        await asyncio.gather(*work)

    async def aclose(self) -> None:
        for reaper in self._reapers.values():
            await reaper.idle()
        if self._closer is not None:
            self._closer.shutdown(wait=False)
            self._closer = None
        if self._opener is not None:
            self._opener.shutdown(wait=False)
            self._opener = None
        interfaces, self._interfaces = list(self._interfaces.values()), {}
        for item in interfaces:
            await item.aclose()


def _open_channel(
    kernel: LinuxPppKernel, open_socket: Callable[[], socket.socket], netns: str | None
) -> PppChannel:
    sock = open_socket()
    try:
        return kernel.open_channel(sock, netns=netns)
    except BaseException:
        sock.close()
        raise


def _close_unwanted(future: Future[PppChannel]) -> None:
    """Done callback: close the channel a cancelled :meth:`~LinuxPppKernel.open_channel_async`
    opened anyway (its thread was already running)."""
    if not future.cancelled() and future.exception() is None:
        close_channel(future.result())


def close_channel(channel: PppChannel) -> None:
    """Close a channel fd and its PPPoL2TP socket (the kernel session goes)."""
    close_quietly(channel.fd)
    with contextlib.suppress(OSError):
        channel.sock.close()


class _Reaper:
    """Batches the removal of units' interfaces in one namespace.

    The first unit dropped starts a batch at once; units dropped while a batch is in
    the kernel wait for the next one, so batches grow with the load by themselves (a
    daemon stopping 200 sessions makes two or three) and a lone session waits for
    nobody. A unit whose interface could not be deleted this way (index unknown, the
    request refused) is removed by closing its fd, one at a time, as a fallback.
    """

    def __init__(self, interfaces: PppInterfaces) -> None:
        self.interfaces = interfaces
        self._pending: list[tuple[PppUnit, int | None, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def drop(self, unit: PppUnit, ifindex: int | None) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((unit, ifindex, done))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        await asyncio.shield(done)

    async def idle(self) -> None:
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            self.batches += 1
            indexes = [i for _, i, _ in batch if i is not None]
            try:
                await self.interfaces.delete_links(indexes)
            except (KernelError, OSError) as exc:
                log.warning("deleting %d PPP interfaces: %s", len(indexes), exc)
            try:
                await asyncio.to_thread(_close_units, [unit for unit, _, _ in batch])
            finally:
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)


def _close_units(units: list[PppUnit]) -> None:
    for unit in units:
        close_quietly(unit.fd)
