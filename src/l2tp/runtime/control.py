"""An asyncio L2TPv2 control plane to embed in any program: :class:`L2tpContext`.

::

    async with L2tpContext(dataplane=NullDataPlane()) as ctx:     # or LinuxDataPlane()
        lns = await ctx.listen(("127.0.0.1", 1701), config=ListenerConfig(...))
        tunnel = await ctx.open_tunnel(("127.0.0.1", 1701), config=TunnelConfig(role=Role.LAC))
        session = await tunnel.open_session()                     # ICRQ/ICRP/ICCN
        await session.close()                                     # CDN
        async for event in ctx.events(): ...                      # every ControlEvent

Design (aioquic-style driver over the sans-IO core of :mod:`l2tp.protocol`):

* **Sockets.** An initiator tunnel (:meth:`L2tpContext.open_tunnel`) has its own
  UDP socket, connected to the peer once the tunnel is up (the responder may
  answer from another port, RFC 2661 8.1: the first reply re-targets it). A
  :class:`Listener` has one socket on the listen address; every datagram is
  routed by its Tunnel ID through a
  :class:`~l2tp.protocol.listener.TunnelListener`, and replies leave from the
  listen socket's address and port. A managed kernel tunnel needs a socket of
  its own connected to the peer, so when a tunnel is established the listener
  opens one bound to the same address:port with ``SO_REUSEADDR`` and connected
  to the peer; Linux delivers the peer's datagrams to the connected socket
  (a connected socket scores higher in the UDP lookup), and the tunnel's
  traffic moves there. Datagrams still queued on the listen socket are routed
  by Tunnel ID as before, so nothing is lost in the switch.
* **Reading.** :class:`~l2tp.runtime.datagram.DatagramReader` drains each socket
  per wake-up; the tunnels a batch touched are serviced once at its end.
* **Timers.** One ``loop.call_at`` per tunnel, armed from ``tunnel.get_timer()``
  after each service: nothing scans all tunnels per wake-up (with 100 tunnels
  of 1,000 sessions each, the session timers live inside each tunnel's
  transport). ``TunnelListener.reap`` runs only after a ``TunnelReleased``.
* **Randomness.** Tunnel IDs (one pool for the whole context, as kernel tunnel
  IDs are per host), session IDs, challenges and random vectors come from the
  injected ``random_bytes`` (default :func:`os.urandom`).
* **Data plane.** See :mod:`l2tp.runtime.handles` for when kernel objects are
  created and deleted and :mod:`l2tp.runtime.backend` for the payload hook.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from l2tp.kernel.constants import EncapType
from l2tp.kernel.dataplane import DataPlane, NullDataPlane
from l2tp.kernel.netns import socket_in_netns
from l2tp.kernel.sockets import connect_l2tpip, l2tpip_socket
from l2tp.protocol.constants import CdnResult, ErrorCode, StopCcnResult
from l2tp.protocol.events import CallParams, Reason, Role, SessionInfo
from l2tp.protocol.ids import IdPool
from l2tp.protocol.listener import ListenerConfig, TunnelListener
from l2tp.protocol.message import RandomSource
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.protocol.tunnel_fsm import TunnelState

from .backend import Address, SessionBackend, SessionOptions
from .datagram import DatagramReader
from .handles import (
    LOCAL_FAILURE,
    Admission,
    SessionFailed,
    SessionHandle,
    TunnelFailed,
    TunnelHandle,
    _Subscription,
)
from .memory import HeapTrimmer
from .portowner import udp_port_owners

__all__ = [
    "Admission",
    "ContextCounters",
    "L2tpContext",
    "ListenError",
    "ListenOptions",
    "Listener",
    "PseudowireOffer",
    "SessionFailed",
    "SessionHandle",
    "TunnelFailed",
    "TunnelHandle",
]

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True)
class ContextCounters:
    datagrams_in: int = 0
    datagrams_out: int = 0
    send_dropped: int = 0
    """``sendto`` would block: dropped, retransmission recovers it."""
    send_errors: int = 0
    not_control: int = 0
    """Too short, or a data message (T bit clear) on a control socket."""
    foreign_source: int = 0
    """A datagram for a tunnel from an address that is not its peer's."""
    unknown_tunnel: int = 0
    not_allowed: int = 0
    """SCCRQs from addresses outside ``allowed_peers``, dropped silently."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenOptions:
    """Runtime policy of a :class:`Listener` beyond the sans-IO ``ListenerConfig``.

    Limits of 0 mean unlimited. Calls over a limit get a CDN 4 ("temporary lack
    of resources") with Error Code 4 ("insufficient resources"), RFC 2661 4.4.2.
    """

    name: str = "listener"
    max_sessions: int = 0
    """Sessions in all tunnels of this listener."""
    max_sessions_per_tunnel: int = 0
    allowed_peers: tuple[IPNetwork, ...] = ()
    """Empty: any peer. Others' SCCRQs are dropped without an answer."""
    seqnum: bool = False
    """Sequence numbers on every session's data channel (always when the peer asks)."""
    ppp: SessionOptions = field(default_factory=SessionOptions)
    """Options of every incoming session (pppd, interface, bridge) when no
    :attr:`pseudowires` are offered."""
    per_tunnel_sockets: bool = True
    """Move each established UDP tunnel to its own connected socket (needed by the
    kernel). L2TPv3 over IP always has one socket per tunnel."""
    pseudowires: tuple[PseudowireOffer, ...] = ()
    """L2TPv3: the local circuits incoming sessions are bound to by their Remote End ID.
    Empty: every call is accepted with the listener's defaults. Otherwise a call
    whose Remote End ID names no offer, or an offer already bound to a live
    session, is refused (CDN 2 or 4, see :meth:`Listener.admit_call`)."""

    def __post_init__(self) -> None:
        ids = [p.remote_end_id for p in self.pseudowires]
        if len(set(ids)) != len(ids):
            raise ValueError("pseudowires must have distinct Remote End IDs")


@dataclass(frozen=True, slots=True, kw_only=True)
class PseudowireOffer:
    """A local circuit that an incoming L2TPv3 session binds to (RFC 3931 5.4.4, Remote End ID).

    ``params`` answer the call (our cookie length, L2-Specific Sublayer, Data
    Sequencing); ``options`` say what the local end of the pseudowire is (its
    interface name, MTU, bridge, or pppd options).
    """

    remote_end_id: str
    params: CallParams = field(default_factory=CallParams)
    options: SessionOptions = field(default_factory=SessionOptions)


def _tunnel_id_of(data: bytes) -> int | None:
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


def _host_port(address: Any) -> Address:
    return (str(address[0]), int(address[1]))


class _Endpoint:
    """A control socket and the sans-IO listener that routes its datagrams."""

    ppp_options: SessionOptions
    seqnum: bool

    def __init__(
        self,
        ctx: L2tpContext,
        sock: socket.socket,
        listener: TunnelListener,
        encap: EncapType = EncapType.UDP,
    ) -> None:
        self.ctx = ctx
        self.sock = sock
        self.listener = listener
        self.encap = encap
        self.ppp_options = SessionOptions()
        self.seqnum = False
        self.reader = DatagramReader(
            sock, self.datagram_received, on_batch=ctx.flush, loop=ctx.loop
        )
        self.closed = False

    @property
    def address(self) -> Address:
        return _host_port(self.sock.getsockname())

    def start(self) -> None:
        self.reader.start()

    def datagram_received(self, data: bytes, address: Any) -> None:
        raise NotImplementedError

    # hooks called by TunnelHandle
    def tunnel_up(self, th: TunnelHandle) -> None:
        pass

    def tunnel_down(self, th: TunnelHandle) -> None:
        pass

    def admit_call(self, th: TunnelHandle, info: SessionInfo) -> Reason | Admission:
        """Accept (with the parameters and options to answer it) or refuse a call."""
        return Admission(options=self.ppp_options)

    def session_added(self, handle: SessionHandle) -> None:
        pass

    def session_gone(self, th: TunnelHandle, handle: SessionHandle) -> None:
        pass

    def release(self, th: TunnelHandle) -> None:
        """The tunnel's close-wait is over: free its socket."""
        th.cancel_timer()
        reader = th._reader
        if reader is not None:
            reader.stop()
            th._reader = None
        if th.own_sock is not None:
            th.own_sock.close()
            th.own_sock = None

    def close_socket(self) -> None:
        if not self.closed:
            self.closed = True
            self.reader.stop()
            self.sock.close()


class _Initiator(_Endpoint):
    """The socket of one tunnel we initiate."""

    def __init__(
        self,
        ctx: L2tpContext,
        sock: socket.socket,
        listener: TunnelListener,
        encap: EncapType = EncapType.UDP,
    ) -> None:
        super().__init__(ctx, sock, listener, encap)
        self.handle: TunnelHandle | None = None

    def datagram_received(self, data: bytes, address: Any) -> None:
        ctx = self.ctx
        ctx.counters.datagrams_in += 1
        th = self.handle
        tid = _tunnel_id_of(data)
        if tid is None:
            ctx.counters.not_control += 1
            return
        if th is None or tid != th.tunnel_id:
            ctx.counters.unknown_tunnel += 1
            return
        addr = _host_port(address)
        if addr != th.peer:
            # RFC 2661 8.1: the responder may answer from another port; learn it once.
            if th.established_event is None and addr[0] == th.peer[0]:
                th.peer = addr
            else:
                ctx.counters.foreign_source += 1
                return
        th.tunnel.receive_datagram(data, ctx.loop.time())
        ctx.mark(th)

    def tunnel_up(self, th: TunnelHandle) -> None:
        if self.encap is EncapType.IP:
            connect_l2tpip(self.sock, ipaddress.ip_address(th.peer[0]), th.peer_tunnel_id)
        else:
            self.sock.connect(th.peer)

    def release(self, th: TunnelHandle) -> None:
        super().release(th)
        self.close_socket()
        self.ctx.endpoints.discard(self)


class Listener(_Endpoint):
    """Accepts tunnels on one UDP address (an LNS); made by :meth:`L2tpContext.listen`."""

    def __init__(
        self,
        ctx: L2tpContext,
        sock: socket.socket,
        listener: TunnelListener,
        options: ListenOptions,
        encap: EncapType = EncapType.UDP,
    ) -> None:
        super().__init__(ctx, sock, listener, encap)
        self.options = options
        self.ppp_options = options.ppp
        self.seqnum = options.seqnum
        self.tunnels: dict[int, TunnelHandle] = {}
        self.session_count = 0
        self.accepting = True
        self.bound: dict[str, SessionHandle] = {}
        """Offered pseudowires (by Remote End ID) and the live session bound to each."""

    @property
    def config(self) -> ListenerConfig:
        return self.listener.config

    def update(
        self, *, config: ListenerConfig | None = None, options: ListenOptions | None = None
    ) -> None:
        """Change policy (e.g. on reload). Applies to new tunnels and new calls only."""
        if config is not None:
            self.listener.config = _listener_config(config)
        if options is not None:
            self.options = options
            self.ppp_options = options.ppp
            self.seqnum = options.seqnum

    def datagram_received(self, data: bytes, address: Any) -> None:
        ctx = self.ctx
        counters = ctx.counters
        counters.datagrams_in += 1
        tid = _tunnel_id_of(data)
        if tid is None:
            counters.not_control += 1
            return
        addr = _host_port(address)
        now = ctx.loop.time()
        if tid:
            th = self.tunnels.get(tid)
            if th is None:
                counters.unknown_tunnel += 1
                return
            if th.peer != addr:
                counters.foreign_source += 1
                return
            th.tunnel.receive_datagram(data, now)
            ctx.mark(th)
            return
        if not self.accepting:
            return
        allowed = self.options.allowed_peers
        if allowed and not _allowed(addr[0], allowed):
            counters.not_allowed += 1
            return
        listener = self.listener
        tunnel = listener.receive(data, addr, now)
        if listener._stateless:
            self._send_replies(listener.take_replies())
        if tunnel is None:
            return
        th = self.tunnels.get(tunnel.tunnel_id)
        if th is None:
            th = TunnelHandle(ctx, self, tunnel, peer=addr, sock=self.sock, role=Role.LNS)
            self.tunnels[tunnel.tunnel_id] = th
            ctx.tunnels[tunnel.tunnel_id] = th
            if self.encap is EncapType.IP:
                self._open_ip_tunnel_socket(th)
        ctx.mark(th)

    def _send_replies(self, replies: list[tuple[Any, bytes]]) -> None:
        """Stateless answers of the sans-IO listener (refused SCCRQs): sent once, from
        the listen socket; a reply that cannot go out is dropped like a lost one."""
        counters = self.ctx.counters
        for peer, data in replies:  # an L2TPIP socket adds the zero session ID itself
            try:
                self.sock.sendto(data, peer)
            except OSError:
                counters.send_dropped += 1
            else:
                counters.datagrams_out += 1

    def _open_ip_tunnel_socket(self, th: TunnelHandle) -> None:
        """Over IP the kernel delivers a control message only to the socket bound to its
        Control Connection ID (RFC 3931 4.1.1.2): the peer's SCCCN and everything after
        it is addressed to the new tunnel's ID, so its socket must exist before the SCCRP."""
        host = self.sock.getsockname()[0]
        try:
            sock = _l2tpip_socket(self.ctx.netns, host, False, th.tunnel_id)
        except OSError as exc:
            log.error("tunnel %d: L2TPIP socket: %s", th.tunnel_id, exc)
            th.tunnel.close(
                self.ctx.loop.time(), result=StopCcnResult.GENERAL_ERROR, message=LOCAL_FAILURE
            )
            return
        self._adopt_socket(th, sock)

    def _adopt_socket(self, th: TunnelHandle, sock: socket.socket) -> None:
        reader = DatagramReader(
            sock, self.datagram_received, on_batch=self.ctx.flush, loop=self.ctx.loop
        )
        reader.start()
        th.own_sock = sock
        th.sock = sock
        th._reader = reader

    def tunnel_up(self, th: TunnelHandle) -> None:
        if self.encap is EncapType.IP:
            if th.own_sock is not None:
                connect_l2tpip(th.own_sock, ipaddress.ip_address(th.peer[0]), th.peer_tunnel_id)
            return
        if not self.options.per_tunnel_sockets:
            return
        sock = _udp_socket(
            self.ctx.netns,
            self.sock.family,
            self.sock.getsockname(),
            reuse_address=True,
            connect=th.peer,
        )
        self._adopt_socket(th, sock)

    def admit_call(self, th: TunnelHandle, info: SessionInfo) -> Reason | Admission:
        """Limits first (CDN 4, Error 4), then the Remote End ID binding.

        With :attr:`ListenOptions.pseudowires`, the call's Remote End ID must name
        an offered circuit (else CDN 2, General error, with the ID in the message:
        RFC 3931 has no dedicated code) that no live session holds (else CDN 4,
        temporary: the old session may be one the peer has not yet seen die).
        """
        o = self.options
        what = None
        if o.max_sessions and self.session_count >= o.max_sessions:
            what = f"session limit {o.max_sessions} reached"
        elif o.max_sessions_per_tunnel and len(th.sessions) >= o.max_sessions_per_tunnel:
            what = f"per-tunnel session limit {o.max_sessions_per_tunnel} reached"
        elif not self.accepting:
            what = "shutting down"
        if what is not None:
            return Reason(
                result=CdnResult.TEMPORARY_NO_FACILITIES,
                error=ErrorCode.INSUFFICIENT_RESOURCES,
                message=what,
            )
        if not o.pseudowires:
            return Admission(options=self.ppp_options)
        end_id = info.remote_end_id
        offer = next((p for p in o.pseudowires if p.remote_end_id == end_id), None)
        if offer is None:
            return Reason(
                result=CdnResult.GENERAL_ERROR,
                message=f"no pseudowire for Remote End ID {end_id!r}"[:200],
            )
        holder = self.bound.get(offer.remote_end_id)
        if holder is not None and holder.closed is None:
            return Reason(
                result=CdnResult.TEMPORARY_NO_FACILITIES,
                message=f"Remote End ID {end_id!r} is bound to session "
                f"{holder.tunnel.tunnel_id}/{holder.session_id}"[:200],
            )
        return Admission(params=offer.params, options=offer.options, circuit=offer.remote_end_id)

    def session_added(self, handle: SessionHandle) -> None:
        self.session_count += 1
        if handle.circuit is not None:
            self.bound[handle.circuit] = handle

    def session_gone(self, th: TunnelHandle, handle: SessionHandle) -> None:
        self.session_count -= 1
        circuit = handle.circuit
        if circuit is not None and self.bound.get(circuit) is handle:
            del self.bound[circuit]

    def release(self, th: TunnelHandle) -> None:
        super().release(th)
        self.tunnels.pop(th.tunnel_id, None)

    async def close(
        self,
        result: int = StopCcnResult.SHUTTING_DOWN,
        *,
        message: str = "listener closed",
        ack_timeout: float = 2.0,
    ) -> None:
        """Stop accepting, StopCCN every tunnel, wait briefly for acks, close the socket."""
        self.accepting = False
        await self.ctx.close_tunnels(list(self.tunnels.values()), result, message, ack_timeout)
        for th in list(self.tunnels.values()):
            self.ctx.tunnels.pop(th.tunnel_id, None)
            self.release(th)
        self.close_socket()
        self.ctx.endpoints.discard(self)


def _allowed(host: str, networks: Iterable[IPNetwork]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in net for net in networks)


def _listener_config(config: ListenerConfig) -> ListenerConfig:
    """Calls at a listener always pass through the runtime's admission (limits)."""
    if config.tunnel.auto_accept or config.tunnel.role is not Role.LNS:
        return replace(config, tunnel=replace(config.tunnel, auto_accept=False, role=Role.LNS))
    return config


class _KernelAwareIds(IdPool):
    """Tunnel IDs that also avoid the kernel's: another process in the namespace (a second
    daemon, ``ip l2tp``, a static ql2tpd tunnel) may hold one, and the managed kernel tunnel
    of a control connection that drew it could not be created (StopCCN 2 after the peer
    already answered). One netlink lookup per new tunnel; a race stays possible but rare."""

    __slots__ = ("_exists",)

    def __init__(
        self, *, bits: int, random_bytes: RandomSource, exists: Callable[[int], bool]
    ) -> None:
        super().__init__(bits=bits, random_bytes=random_bytes)
        self._exists = exists

    def allocate(self) -> int:
        for _ in range(16):
            tid = super().allocate()
            try:
                taken = bool(self._exists(tid))
            except Exception:  # a lookup failure must not stop the control plane
                taken = False
            if not taken:
                return tid
            log.info("tunnel ID %d is in use in the kernel; drawing another", tid)
            self.release(tid)
        return super().allocate()


def _udp_socket(
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


def _listen_socket(netns: str | None, host: str, port: int) -> socket.socket:
    """The UDP listen socket: bound exclusively, then opened to our per-tunnel sockets.

    Per-tunnel sockets bind the same address:port with ``SO_REUSEADDR`` (see the
    module docstring), which Linux allows only when every socket on the port has it.
    So the listen socket binds *without* it, which fails if anything else holds the
    address (another daemon, a second instance of this one), and sets it only once
    bound: from then on our own per-tunnel sockets may join, while another listener,
    which binds without it as we do, is refused. No window in which two can bind.
    """
    sock = _udp_socket(netns, _family(host), (host, port))
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


def _l2tpip_socket(netns: str | None, host: str, v6: bool, conn_id: int) -> socket.socket:
    """A non-blocking L2TPIP socket bound to ``conn_id`` on ``host`` (empty: the wildcard)."""
    address = ipaddress.ip_address(host or ("::" if v6 else "0.0.0.0"))
    sock = l2tpip_socket(address, conn_id, netns=netns)
    sock.setblocking(False)
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class L2tpContext:
    """Tunnels, listeners, kernel objects and backends of one program; see the module doc."""

    def __init__(
        self,
        *,
        dataplane: DataPlane | None = None,
        backend: SessionBackend | None = None,
        random_bytes: RandomSource = os.urandom,
        loop: asyncio.AbstractEventLoop | None = None,
        netns: str | None = None,
    ) -> None:
        """``netns``: open every control socket in this network namespace (``ip netns``
        name or path), as a managed kernel tunnel must live in its socket's namespace;
        give the data plane the same one."""
        self.netns = netns
        self.dataplane: DataPlane = dataplane if dataplane is not None else NullDataPlane()
        self.backend = backend
        self.random_bytes = random_bytes
        self._loop = loop
        exists = self.dataplane.tunnel_exists
        self.ids = _KernelAwareIds(bits=16, random_bytes=random_bytes, exists=exists)
        self.ids3 = _KernelAwareIds(bits=32, random_bytes=random_bytes, exists=exists)
        """L2TPv3 Control Connection IDs (32-bit, RFC 3931 5.4.3). The kernel keeps one
        tunnel ID space for both versions; a v3 ID below 65,536 that a v2 tunnel of this
        context holds is skipped (see :meth:`_v3_id`)."""
        self.tunnels: dict[int, TunnelHandle] = {}
        self.endpoints: set[_Endpoint] = set()
        self.counters = ContextCounters()
        self.subscribers: list[_Subscription] = []
        self._dirty: dict[TunnelHandle, None] = {}
        self._flush_scheduled = False
        self._reap: set[_Endpoint] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._trimmer: HeapTrimmer | None = None
        self.closed = False
        self.closing = False
        """Set as soon as :meth:`close` begins."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def __aenter__(self) -> L2tpContext:
        _ = self.loop
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ API

    async def open_tunnel(
        self,
        peer: Address,
        local: Address | None = None,
        *,
        config: TunnelConfig | None = None,
        wait: bool = True,
        ppp: SessionOptions | None = None,
        seqnum: bool = False,
        encap: EncapType = EncapType.UDP,
        tunnel_id: int | None = None,
    ) -> TunnelHandle:
        """Initiate a tunnel (SCCRQ) to ``peer``; with ``wait`` return once established.

        ``tunnel_id`` picks our Tunnel / Control Connection ID (random otherwise);
        :class:`~l2tp.protocol.errors.LocalProtocolError` if this context uses it.

        ``config.version`` picks L2TPv2 or L2TPv3. ``encap=EncapType.IP`` carries
        an L2TPv3 control connection directly over IP protocol 115 (RFC 3931
        4.1.1): the ports in ``peer`` and ``local`` are then ignored.

        Raises :class:`TunnelFailed` if it closes first (e.g. StopCCN 4 for a
        wrong secret, or ``reason=None`` when the peer never answered).
        """
        self._check_open()
        config = config if config is not None else TunnelConfig(role=Role.LAC)
        if encap is EncapType.IP and config.version != 3:
            raise ValueError("IP encapsulation is L2TPv3 only (RFC 3931 4.1.1)")
        host, port = peer
        infos = await self.loop.getaddrinfo(
            host, port if encap is EncapType.UDP else 0, type=socket.SOCK_DGRAM
        )
        family, _, _, _, sockaddr = infos[0]
        peer = _host_port(sockaddr)
        if encap is EncapType.IP:
            peer = (peer[0], 0)
        ids = self.ids3 if config.version == 3 else self.ids
        listener = TunnelListener(
            ListenerConfig(tunnel=config), random_bytes=self.random_bytes, ids=ids
        )
        if tunnel_id is not None:
            ids.reserve(tunnel_id)
        else:
            tunnel_id = self._v3_id() if config.version == 3 else ids.allocate()
        try:
            sock = self._initiator_socket(family, local, encap, tunnel_id)
        finally:
            ids.release(tunnel_id)
        endpoint = _Initiator(self, sock, listener, encap)
        endpoint.ppp_options = ppp or SessionOptions()
        endpoint.seqnum = seqnum
        self.endpoints.add(endpoint)
        tunnel = listener.connect(peer, self.loop.time(), config, tunnel_id=tunnel_id)
        th = TunnelHandle(self, endpoint, tunnel, peer=peer, sock=sock, role=config.role)
        endpoint.handle = th
        self.tunnels[tunnel.tunnel_id] = th
        endpoint.start()
        self.kick(th)
        if wait:
            await th.wait_established()
        return th

    def _v3_id(self) -> int:
        for _ in range(64):
            tid = self.ids3.allocate()
            if tid > 0xFFFF or tid not in self.ids:
                return tid
            self.ids3.release(tid)
        raise RuntimeError("no free L2TPv3 control connection ID")

    def _initiator_socket(
        self,
        family: socket.AddressFamily,
        local: Address | None,
        encap: EncapType,
        tunnel_id: int,
    ) -> socket.socket:
        v6 = family == socket.AF_INET6
        if encap is EncapType.IP:
            return _l2tpip_socket(self.netns, local[0] if local else "", v6, tunnel_id)
        return _udp_socket(self.netns, family, local or ("::" if v6 else "", 0))

    async def listen(
        self,
        address: Address,
        *,
        config: ListenerConfig | None = None,
        options: ListenOptions | None = None,
        encap: EncapType = EncapType.UDP,
    ) -> Listener:
        """Accept tunnels on ``address`` (port 0: any free port; see :attr:`Listener.address`).

        ``encap=EncapType.IP`` (L2TPv3 only) listens on an L2TPIP socket bound to
        Control Connection ID 0, where new SCCRQs arrive (RFC 3931 4.1.1.2); the
        port is ignored.
        """
        self._check_open()
        config = _listener_config(config if config is not None else ListenerConfig())
        v3 = config.tunnel.version == 3
        if encap is EncapType.IP and not v3:
            raise ValueError("IP encapsulation is L2TPv3 only (RFC 3931 4.1.1)")
        host, port = address
        name = (options or ListenOptions()).name
        try:
            if encap is EncapType.IP:
                sock = _l2tpip_socket(self.netns, host, ":" in host, 0)
            else:
                sock = _listen_socket(self.netns, host, port)
        except OSError as exc:
            raise ListenError(name, host, port, encap, exc, netns=self.netns) from exc
        ids = self.ids3 if v3 else self.ids
        listener = TunnelListener(config, random_bytes=self.random_bytes, ids=ids)
        endpoint = Listener(self, sock, listener, options or ListenOptions(), encap)
        self.endpoints.add(endpoint)
        endpoint.start()
        return endpoint

    def events(self) -> _Subscription:
        """Subscribe to every tunnel's events from now on: ``async for ev in ctx.events()``."""
        return _Subscription(self.subscribers)

    def tunnel(self, tunnel_id: int) -> TunnelHandle | None:
        return self.tunnels.get(tunnel_id)

    @property
    def listeners(self) -> list[Listener]:
        return [e for e in self.endpoints if isinstance(e, Listener)]

    async def close(
        self,
        result: int = StopCcnResult.SHUTTING_DOWN,
        *,
        message: str = "shutting down",
        ack_timeout: float = 2.0,
    ) -> None:
        """StopCCN every tunnel, wait up to ``ack_timeout`` for the acknowledgements,
        stop the backends, remove every kernel object, close every socket."""
        if self.closed:
            return
        self.closing = True
        for endpoint in self.endpoints:
            if isinstance(endpoint, Listener):
                endpoint.accepting = False
        await self.close_tunnels(list(self.tunnels.values()), result, message, ack_timeout)
        self.closed = True
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=ack_timeout + 5.0)
        for th in list(self.tunnels.values()):
            th.cancel_timer()
            th.endpoint.release(th)
        self.tunnels.clear()
        for endpoint in list(self.endpoints):
            endpoint.close_socket()
        self.endpoints.clear()
        for sub in list(self.subscribers):
            sub.queue.put_nowait(None)
        if self._trimmer is not None:
            self._trimmer.cancel()

    async def close_tunnels(
        self, tunnels: list[TunnelHandle], result: int, message: str, ack_timeout: float
    ) -> None:
        for th in tunnels:
            th.begin_close(result, message=message)
        self.flush()
        waits = [th.wait_stop_acked(ack_timeout) for th in tunnels]
        if waits:
            await asyncio.gather(*waits)

    # ------------------------------------------------------ driver plumbing

    def mark(self, th: TunnelHandle) -> None:
        """``th`` has input: service it at the end of the current batch."""
        self._dirty[th] = None

    def kick(self, th: TunnelHandle) -> None:
        """``th`` was changed by an API call: service it soon (batched per loop turn)."""
        self._dirty[th] = None
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        now = self.loop.time()
        while self._dirty:
            dirty = list(self._dirty)
            self._dirty.clear()
            for th in dirty:
                th.service(now)
        if self._reap:
            reap, self._reap = self._reap, set()
            freed = 0
            for endpoint in reap:
                for tid in endpoint.listener.reap():
                    freed += 1
                    gone = self.tunnels.pop(tid, None)
                    if gone is not None:
                        endpoint.release(gone)
            if freed:
                if self._trimmer is None:
                    self._trimmer = HeapTrimmer(self.loop)
                self._trimmer.freed(freed)

    def publish(self, th: TunnelHandle, event: Any) -> None:
        for sub in self.subscribers:
            sub.queue.put_nowait(event)
        for sub in th.subscribers:
            sub.queue.put_nowait(event)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def need_reap(self, endpoint: _Endpoint) -> None:
        """A tunnel of ``endpoint`` is released: free it (and its socket) this loop turn,
        whether the release came from a datagram or a timer (which flushes nothing)."""
        self._reap.add(endpoint)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("the L2TP context is closed")


def live(th: TunnelHandle) -> bool:
    """True while the tunnel is neither closing nor closed."""
    return th.state not in (TunnelState.CLOSING, TunnelState.CLOSED)
