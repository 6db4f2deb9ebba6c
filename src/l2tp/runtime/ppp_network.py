"""The network phase of one built-in PPP link (a mixin of
:class:`~l2tp.runtime.ppp_link.PppLink`), and the kernel interfaces it drives.

RFC 1661 3.5 and the NCPs: at ``NetworkPhase`` the PPP unit is created and connected to
the channel (its interface found, renamed and given the MTU in the background); at
``NetworkUp`` the interface goes up, gets its addresses (IPCP, RFC 1332; IPv6CP link-local,
RFC 5072 5) and the data protocol's NP mode becomes pass (then the granted routes and
idle limit start, :mod:`l2tp.runtime.ppp_grants`); at ``NetworkDown`` the NP mode drops
at once and the routes and addresses go. Interface requests of one link run in order in
the link's one background task (``_queue``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from l2tp.kernel.errors import KernelError
from l2tp.kernel.ppp_device import (
    PPP_IP,
    PPP_IPV6,
    NpMode,
    PppChannel,
    PppUnit,
    ipv6_link_local,
)
from l2tp.peer_text import quoted
from l2tp.ppp import AuthDecision, NetworkDown, NetworkPhase, NetworkUp, PppConnection
from l2tp.ppp.constants import Protocol as PppProtocol
from l2tp.runtime.backend import BackendSession
from l2tp.runtime.ppp_hooks import AddressPool, BuiltinPppOptions, PppAuthenticator
from l2tp.runtime.ppp_observer import SessionObserver
from l2tp.runtime.ppp_outcome import BuiltinPppCounters, Ending

log = logging.getLogger("l2tp.runtime.builtin_ppp")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class InterfaceOps(Protocol):
    """The rtnetlink requests on a unit's interface
    (:class:`l2tp.kernel.ppp_device.PppInterfaces`)."""

    async def index_of(self, name: str) -> int: ...

    async def rename(self, index: int, name: str) -> str: ...

    async def set_mtu(self, index: int, mtu: int) -> None: ...

    async def set_up(self, index: int, up: bool) -> None: ...

    async def add_address(
        self, index: int, local: IPAddress, peer: IPAddress | None, prefixlen: int
    ) -> None: ...

    async def delete_address(
        self, index: int, local: IPAddress, peer: IPAddress | None, prefixlen: int
    ) -> None: ...

    async def add_route(
        self,
        index: int,
        destination: ipaddress.IPv4Network,
        gateway: ipaddress.IPv4Address | None,
        metric: int | None,
    ) -> None: ...

    async def delete_route(
        self,
        index: int,
        destination: ipaddress.IPv4Network,
        gateway: ipaddress.IPv4Address | None,
        metric: int | None,
    ) -> None: ...


class PppKernel(Protocol):
    """The kernel side of built-in PPP (:class:`l2tp.kernel.ppp_device.LinuxPppKernel`; tests
    put socket pairs behind it)."""

    def open_channel(self, sock: socket.socket, *, netns: str | None) -> PppChannel: ...

    def create_unit(self, channel: PppChannel, *, netns: str | None) -> PppUnit: ...

    def set_mru(self, unit: PppUnit, mru: int) -> None: ...

    def set_np_mode(self, unit: PppUnit, protocol: int, mode: NpMode) -> None: ...

    def idle_seconds(self, unit: PppUnit) -> tuple[int, int]:
        """Seconds since the unit last sent and last received data (``PPPIOCGIDLE``)."""
        ...

    def interfaces(self, netns: str | None) -> InterfaceOps: ...

    async def release(
        self,
        channel: PppChannel | None,
        unit: PppUnit | None,
        *,
        netns: str | None,
        ifindex: int | None,
    ) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSettings:
    """What the backend gives each link besides the session and its options."""

    kernel: PppKernel
    netns: str | None
    server: str
    """Our PPP name (CHAP Name, secrets file server column)."""
    hook: PppAuthenticator | None
    pool: AddressPool | None
    counters: BuiltinPppCounters
    terminate_wait: float
    random_bytes: Callable[[int], bytes]
    read_buffer: bytearray
    observer: SessionObserver | None = None
    """Told when the session is up (its first NCP) and down (accounting); see
    :mod:`.ppp_observer`."""


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (mode 0644)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class PppNetwork:
    """Mixin: the network-phase handling of :class:`~l2tp.runtime.ppp_link.PppLink`."""

    session: BackendSession
    settings: LinkSettings
    options: BuiltinPppOptions
    counters: BuiltinPppCounters
    conn: PppConnection
    loop: asyncio.AbstractEventLoop
    label: str
    channel: PppChannel | None
    unit: PppUnit | None
    ifindex: int | None
    ifname: str | None
    ending: Ending | None
    released: bool
    _mtu: int
    _is_up: bool
    _addresses: dict[PppProtocol, tuple[IPAddress, IPAddress | None, int]]
    _interface_ids: tuple[bytes | None, bytes | None]
    peer_dns: tuple[ipaddress.IPv4Address, ...]
    resolv_written: str | None
    granted: AuthDecision | None

    def _watch(self, fd: int) -> None:
        raise NotImplementedError

    def _observe_up(self) -> None:
        raise NotImplementedError

    def _queue(
        self, what: str, op: Callable[[], Awaitable[object]], *, essential: bool = True
    ) -> None:
        raise NotImplementedError

    def _granted_up(self, protocol: PppProtocol, peer: IPAddress | None) -> None:
        raise NotImplementedError  # ppp_grants.PppGrants

    def _granted_down(self, protocol: PppProtocol) -> None:
        raise NotImplementedError  # ppp_grants.PppGrants

    def _network_phase(self, event: NetworkPhase) -> None:
        self._mtu = event.mtu
        kernel = self.settings.kernel
        if self.unit is None:
            assert self.channel is not None
            try:
                self.unit = kernel.create_unit(self.channel, netns=self.settings.netns)
            except (KernelError, OSError) as exc:
                log.error("%s: cannot create the PPP unit: %s", self.label, exc)
                self.ending = Ending.LOCAL_FAILURE
                self.conn.close(self.loop.time(), "local failure")
                return
            self._watch(self.unit.fd)
            self._queue("configure the interface", self._configure_interface)
        else:
            # Renegotiation (RFC 1661 3.4: a Configure-Request while Opened): same unit,
            # every NP mode dropped by LinkDown already, the peer's MRU may have changed.
            self._drop_all()
            self._queue("set the MTU", self._set_mtu, essential=False)
        try:
            kernel.set_mru(self.unit, event.mru)
        except (KernelError, OSError) as exc:
            log.warning("%s: setting the MRU: %s", self.label, exc)
        log.info(
            "%s: network phase (user %s): unit %d", self.label, quoted(event.user), self.unit.number
        )

    async def _configure_interface(self) -> None:
        assert self.unit is not None
        ops = self.settings.kernel.interfaces(self.settings.netns)
        self.ifindex = await ops.index_of(self.unit.kernel_name)
        self.ifname = self.unit.kernel_name
        if self.options.interface_name:
            try:
                self.ifname = await ops.rename(self.ifindex, self.options.interface_name)
            except (KernelError, OSError) as exc:
                self.counters.interface_errors += 1
                log.warning(
                    "%s: naming %s %s: %s; keeping its name",
                    self.label,
                    self.ifname,
                    quoted(self.options.interface_name),
                    exc,
                )
        try:
            self.session.report_interface(self.ifname)  # backend.py, step 3
        except Exception:
            log.exception("%s: report_interface failed", self.label)
        mtu = await self._set_mtu()
        log.info(
            "%s: interface %s (unit %d, mtu %d)", self.label, self.ifname, self.unit.number, mtu
        )

    async def _set_mtu(self) -> int:
        """The interface MTU: the peer's MRU (RFC 1661 6.1), or the configured ``mtu`` or
        the verifier's (RADIUS Framed-MTU) if lower. A failure is logged and counted; the
        link carries on with the old MTU."""
        granted = self.granted.mtu if self.granted is not None else None
        mtu = min(m for m in (self._mtu, self.options.mtu, granted) if m is not None)
        if self.ifindex is None:
            return mtu
        try:
            await self.settings.kernel.interfaces(self.settings.netns).set_mtu(self.ifindex, mtu)
        except (KernelError, OSError) as exc:
            self.counters.interface_errors += 1
            log.warning("%s: setting the MTU of %s to %d: %s", self.label, self.ifname, mtu, exc)
        return mtu

    def _network_up(self, event: NetworkUp) -> None:
        self.counters.network_up += 1
        if event.protocol is PppProtocol.IPCP:
            assert event.local_address is not None and event.peer_address is not None
            address: tuple[IPAddress, IPAddress | None, int] = (
                event.local_address,
                event.peer_address,
                32,
            )
            log.info(
                "%s: IPCP up: local %s, peer %s%s",
                self.label,
                event.local_address,
                event.peer_address,
                f", DNS {', '.join(map(str, event.dns))}" if event.dns else "",
            )
            if event.dns and self.options.user is not None:  # the peer side learned them
                self.peer_dns = event.dns
                if self.options.resolv_file is not None:
                    self._queue("writing the DNS servers", self._write_resolv, essential=False)
        else:
            assert event.local_interface_id is not None
            local = ipv6_link_local(event.local_interface_id)
            peer = (
                ipv6_link_local(event.peer_interface_id)
                if event.peer_interface_id is not None
                else None
            )
            address = (local, peer, 128 if peer is not None else 64)
            self._interface_ids = (event.local_interface_id, event.peer_interface_id)
            log.info("%s: IPv6CP up: local %s, peer %s", self.label, local, peer)
        self._addresses[event.protocol] = address
        data_protocol = PPP_IP if event.data_protocol is PppProtocol.IPV4 else PPP_IPV6

        async def bring_up() -> None:
            ops = self.settings.kernel.interfaces(self.settings.netns)
            if self.ifindex is None:
                return  # the interface was not found: reported already
            # Up first, as pppd does: Linux runs (and here skips) IPv6 DAD for an address
            # only on an interface that is up, and installs the peer's /128 route when that
            # finishes, so an IPv6 address added while down is never usable.
            if not self._is_up:
                await ops.set_up(self.ifindex, True)
                self._is_up = True
            await ops.add_address(self.ifindex, *address)
            if self._addresses.get(event.protocol) is address and self.unit is not None:
                self.settings.kernel.set_np_mode(self.unit, data_protocol, NpMode.PASS)
                self._observe_up()  # the first NCP up: accounting's Start (once)

        self._queue(f"{event.protocol.name} up", bring_up)
        self._granted_up(event.protocol, address[1])

    async def _write_resolv(self) -> None:
        """The learned DNS servers as resolv.conf lines in ``resolv_file`` (what pppd's
        ``usepeerdns`` writes to /etc/ppp/resolv.conf for its ip-up script), replaced
        atomically (a reader never sees half a file) on a worker thread."""
        path = self.options.resolv_file
        assert path is not None
        text = "".join(f"nameserver {server}\n" for server in self.peer_dns)
        await asyncio.to_thread(write_atomically, path, text)
        self.resolv_written = path
        log.info("%s: DNS servers written to %s", self.label, path)

    def _network_down(self, event: NetworkDown) -> None:
        data_protocol = PPP_IP if event.data_protocol is PppProtocol.IPV4 else PPP_IPV6
        self._np_mode(data_protocol, NpMode.DROP)
        self._granted_down(event.protocol)
        address = self._addresses.pop(event.protocol, None)
        if event.protocol is PppProtocol.IPV6CP:
            self._interface_ids = (None, None)
        log.info("%s: %s down: %s", self.label, event.protocol.name, event.reason)
        if address is None or self.released:
            return

        async def take_down() -> None:
            if self.ifindex is not None:
                await self.settings.kernel.interfaces(self.settings.netns).delete_address(
                    self.ifindex, *address
                )

        self._queue(f"{event.protocol.name} down", take_down, essential=False)

    def _np_mode(self, protocol: int, mode: NpMode) -> None:
        if self.unit is None or self.released:
            return
        try:
            self.settings.kernel.set_np_mode(self.unit, protocol, mode)
        except (KernelError, OSError) as exc:
            log.warning("%s: NP mode 0x%04x %s: %s", self.label, protocol, mode.name, exc)

    def _drop_all(self) -> None:
        for protocol in (PPP_IP, PPP_IPV6):
            self._np_mode(protocol, NpMode.DROP)
