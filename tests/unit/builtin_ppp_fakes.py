"""A kernel stand-in for :class:`l2tp.runtime.builtin_ppp.BuiltinPppBackend` unit tests.

What is fake and why it is honest enough: the PPPoL2TP socket of each side is one end of
an ``AF_UNIX`` ``SOCK_SEQPACKET`` pair joining the two sides, and the "channel fd" is a
duplicate of it, so frames keep their boundaries, reads and writes are non-blocking, and
closing one side gives the other end of file, as the kernel's channel does when its
session goes. The backend's own code (readers, timers, the PPP core, events, outcome,
release) runs unchanged on a real event loop. What is not exercised here: the ioctls
and rtnetlink (the fake records the calls; ``tests/kernel/test_builtin_ppp.py`` runs the
real ones), and the kernel's routing of NCP frames to the unit fd (here every frame goes
through the channel fd; the backend reads both the same way).
"""

from __future__ import annotations

import itertools
import os
import socket
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address

from l2tp.kernel.errors import KernelError
from l2tp.kernel.model import KernelTunnelSpec
from l2tp.kernel.ppp_device import NpMode, PppChannel, PppUnit
from l2tp.protocol.events import CallKind, Role, SessionInfo
from l2tp.runtime.backend import BackendSession, SessionOptions
from l2tp.runtime.ppp_hooks import BuiltinPppOptions

IPAddress = IPv4Address | IPv6Address


class FakeDataPlane:
    """``open_ppp_socket`` hands out a prepared socket (one end of the pair)."""

    netns = None

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        self.opened = 0

    def open_ppp_socket(
        self, tunnel: KernelTunnelSpec, session_id: int, peer_session_id: int
    ) -> socket.socket:
        if self.sock is None:
            raise KernelError(19, "open PPPoL2TP: session gone")
        sock, self.sock = self.sock, None
        self.opened += 1
        return sock


@dataclass
class FakeInterfaces:
    """Records the interface requests; ``fail`` names requests that raise."""

    calls: list[tuple[object, ...]] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)
    index: int = 40

    def _check(self, what: str) -> None:
        if what in self.fail:
            raise KernelError(22, f"{what} refused")

    async def index_of(self, name: str) -> int:
        self._check("index_of")
        self.calls.append(("index_of", name))
        return self.index

    async def rename(self, index: int, name: str) -> str:
        self._check("rename")
        self.calls.append(("rename", index, name))
        return name.replace("%d", "0")

    async def set_mtu(self, index: int, mtu: int) -> None:
        self._check("set_mtu")
        self.calls.append(("set_mtu", index, mtu))

    async def set_up(self, index: int, up: bool) -> None:
        self._check("set_up")
        self.calls.append(("set_up", index, up))

    async def add_address(
        self, index: int, local: IPAddress, peer: IPAddress | None, prefixlen: int
    ) -> None:
        self._check("add_address")
        self.calls.append(("add_address", index, local, peer, prefixlen))

    async def delete_address(
        self, index: int, local: IPAddress, peer: IPAddress | None, prefixlen: int
    ) -> None:
        self.calls.append(("delete_address", index, local, peer, prefixlen))

    async def add_route(
        self,
        index: int,
        destination: IPv4Network,
        gateway: IPv4Address | None,
        metric: int | None,
    ) -> None:
        self._check("add_route")
        self.calls.append(("add_route", index, destination, gateway, metric))

    async def delete_route(
        self,
        index: int,
        destination: IPv4Network,
        gateway: IPv4Address | None,
        metric: int | None,
    ) -> None:
        self.calls.append(("delete_route", index, destination, gateway, metric))


_units = itertools.count(0)


@dataclass
class FakePppKernel:
    """Channel fd = a dup of the fake PPPoL2TP socket; unit fd = a socketpair end."""

    interfaces_: FakeInterfaces = field(default_factory=FakeInterfaces)
    calls: list[tuple[object, ...]] = field(default_factory=list)
    fail_unit: bool = False
    open_fds: set[int] = field(default_factory=set)
    _unit_peers: dict[int, socket.socket] = field(default_factory=dict)
    closed: bool = False
    hold_channels: bool = False
    """Keep released channels open until :meth:`aclose`: in the kernel, closing one side's
    PPPoL2TP socket deletes only that side's session, and the other side's channel lives
    on until its own control plane hears of it; the socket pair would pass the close on."""
    _held: list[PppChannel] = field(default_factory=list)
    idle: tuple[int, int] = (0, 0)
    """What :meth:`idle_seconds` answers (``PPPIOCGIDLE``: transmit, receive); tests set it."""
    idle_reads: int = 0

    def open_channel(self, sock: socket.socket, *, netns: str | None) -> PppChannel:
        fd = os.dup(sock.fileno())
        os.set_blocking(fd, False)
        self.open_fds.add(fd)
        self.calls.append(("open_channel", netns))
        return PppChannel(sock=sock, fd=fd, index=7)

    def create_unit(self, channel: PppChannel, *, netns: str | None) -> PppUnit:
        if self.fail_unit:
            raise KernelError(24, "PPPIOCNEWUNIT failed (Too many open files)")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        fd = ours.detach()
        self._unit_peers[fd] = theirs
        self.open_fds.add(fd)
        number = next(_units)
        self.calls.append(("create_unit", number))
        return PppUnit(fd=fd, number=number)

    def set_mru(self, unit: PppUnit, mru: int) -> None:
        self.calls.append(("set_mru", unit.number, mru))

    def set_np_mode(self, unit: PppUnit, protocol: int, mode: NpMode) -> None:
        self.calls.append(("np", unit.number, protocol, mode))

    def idle_seconds(self, unit: PppUnit) -> tuple[int, int]:
        self.idle_reads += 1
        return self.idle

    def interfaces(self, netns: str | None) -> FakeInterfaces:
        return self.interfaces_

    async def release(
        self,
        channel: PppChannel | None,
        unit: PppUnit | None,
        *,
        netns: str | None,
        ifindex: int | None,
    ) -> None:
        if unit is not None:
            os.close(unit.fd)
            self.open_fds.discard(unit.fd)
            peer = self._unit_peers.pop(unit.fd, None)
            if peer is not None:
                peer.close()
        if channel is not None and self.hold_channels:
            self._held.append(channel)
        elif channel is not None:
            os.close(channel.fd)
            self.open_fds.discard(channel.fd)
            channel.sock.close()
        self.calls.append(("release", ifindex))

    async def aclose(self) -> None:
        held, self._held = self._held, []
        for channel in held:
            os.close(channel.fd)
            self.open_fds.discard(channel.fd)
            channel.sock.close()
        self.closed = True


def socket_pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a.setblocking(False)
    b.setblocking(False)
    return a, b


@dataclass
class Reported:
    downs: list[tuple[int, int | None, str]] = field(default_factory=list)


def backend_session(
    sock: socket.socket,
    *,
    lns: bool,
    options: BuiltinPppOptions | None,
    sid: int = 1,
    psid: int = 2,
    version: int = 2,
    reported: Reported | None = None,
    name: str = "",
) -> tuple[BackendSession, FakeDataPlane]:
    """A BackendSession as the control plane hands it over, on the fake data plane."""
    dataplane = FakeDataPlane(sock)
    info = SessionInfo(
        tunnel_id=10 if lns else 20,
        peer_tunnel_id=20 if lns else 10,
        session_id=sid,
        peer_session_id=psid,
        kind=CallKind.LNS_INCOMING if lns else CallKind.LAC_INCOMING,
        call_serial=1,
        calling_number="5551234",
    )
    sink = reported if reported is not None else Reported()
    session = BackendSession(
        info=info,
        role=Role.LNS if lns else Role.LAC,
        kernel_tunnel=KernelTunnelSpec(
            tunnel_id=info.tunnel_id, peer_tunnel_id=info.peer_tunnel_id, version=version, fd=99
        ),
        tunnel_fd=99,
        dataplane=dataplane,
        lns_mode=lns,
        local=("192.0.2.1", 1701),
        peer=("192.0.2.2", 1701),
        options=SessionOptions(name=name or ("lns" if lns else "lac"), builtin_ppp=options),
        report_down=lambda r, e, m: sink.downs.append((r, e, m)),
    )
    return session, dataplane
