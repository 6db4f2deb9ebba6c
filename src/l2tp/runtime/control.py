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
import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from l2tp.kernel.dataplane import DataPlane, NullDataPlane
from l2tp.protocol.constants import CdnResult, ErrorCode, StopCcnResult
from l2tp.protocol.events import Reason, Role
from l2tp.protocol.ids import IdPool
from l2tp.protocol.listener import ListenerConfig, TunnelListener
from l2tp.protocol.message import RandomSource
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.protocol.tunnel_fsm import TunnelState

from .backend import Address, PppOptions, SessionBackend
from .datagram import DatagramReader
from .handles import (
    SessionFailed,
    SessionHandle,
    TunnelFailed,
    TunnelHandle,
    _Subscription,
)

__all__ = [
    "ContextCounters",
    "L2tpContext",
    "ListenOptions",
    "Listener",
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
    ppp: PppOptions = field(default_factory=PppOptions)
    per_tunnel_sockets: bool = True
    """Move each established tunnel to its own connected socket (needed by the kernel)."""


def _tunnel_id_of(data: bytes) -> int | None:
    """The Tunnel ID of an L2TPv2 control message's header; None for anything else."""
    if len(data) < 12 or not data[0] & 0x80:
        return None
    offset = 4 if data[0] & 0x40 else 2
    tid: int = struct.unpack_from("!H", data, offset)[0]
    return tid


def _host_port(address: Any) -> Address:
    return (str(address[0]), int(address[1]))


class _Endpoint:
    """A control socket and the sans-IO listener that routes its datagrams."""

    ppp_options: PppOptions
    seqnum: bool

    def __init__(self, ctx: L2tpContext, sock: socket.socket, listener: TunnelListener) -> None:
        self.ctx = ctx
        self.sock = sock
        self.listener = listener
        self.ppp_options = PppOptions()
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

    def admit_call(self, th: TunnelHandle) -> Reason | None:
        return None

    def session_added(self) -> None:
        pass

    def session_gone(self, th: TunnelHandle) -> None:
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

    def __init__(self, ctx: L2tpContext, sock: socket.socket, listener: TunnelListener) -> None:
        super().__init__(ctx, sock, listener)
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
    ) -> None:
        super().__init__(ctx, sock, listener)
        self.options = options
        self.ppp_options = options.ppp
        self.seqnum = options.seqnum
        self.tunnels: dict[int, TunnelHandle] = {}
        self.session_count = 0
        self.accepting = True

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
        tunnel = self.listener.receive(data, addr, now)
        if tunnel is None:
            return
        th = self.tunnels.get(tunnel.tunnel_id)
        if th is None:
            th = TunnelHandle(ctx, self, tunnel, peer=addr, sock=self.sock, role=Role.LNS)
            self.tunnels[tunnel.tunnel_id] = th
            ctx.tunnels[tunnel.tunnel_id] = th
        ctx.mark(th)

    def tunnel_up(self, th: TunnelHandle) -> None:
        if not self.options.per_tunnel_sockets:
            return
        sock = socket.socket(self.sock.family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            sock.bind(self.sock.getsockname())
            sock.connect(th.peer)
        except OSError:
            sock.close()
            raise
        reader = DatagramReader(
            sock, self.datagram_received, on_batch=self.ctx.flush, loop=self.ctx.loop
        )
        reader.start()
        th.own_sock = sock
        th.sock = sock
        th._reader = reader

    def admit_call(self, th: TunnelHandle) -> Reason | None:
        o = self.options
        what = None
        if o.max_sessions and self.session_count >= o.max_sessions:
            what = f"session limit {o.max_sessions} reached"
        elif o.max_sessions_per_tunnel and len(th.sessions) >= o.max_sessions_per_tunnel:
            what = f"per-tunnel session limit {o.max_sessions_per_tunnel} reached"
        elif not self.accepting:
            what = "shutting down"
        if what is None:
            return None
        return Reason(
            result=CdnResult.TEMPORARY_NO_FACILITIES,
            error=ErrorCode.INSUFFICIENT_RESOURCES,
            message=what,
        )

    def session_added(self) -> None:
        self.session_count += 1

    def session_gone(self, th: TunnelHandle) -> None:
        self.session_count -= 1

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
    ) -> None:
        self.dataplane: DataPlane = dataplane if dataplane is not None else NullDataPlane()
        self.backend = backend
        self.random_bytes = random_bytes
        self._loop = loop
        self.ids = IdPool(bits=16, random_bytes=random_bytes)
        self.tunnels: dict[int, TunnelHandle] = {}
        self.endpoints: set[_Endpoint] = set()
        self.counters = ContextCounters()
        self.subscribers: list[_Subscription] = []
        self._dirty: dict[TunnelHandle, None] = {}
        self._flush_scheduled = False
        self._reap: set[_Endpoint] = set()
        self._tasks: set[asyncio.Task[None]] = set()
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
        ppp: PppOptions | None = None,
        seqnum: bool = False,
    ) -> TunnelHandle:
        """Initiate a tunnel (SCCRQ) to ``peer``; with ``wait`` return once established.

        Raises :class:`TunnelFailed` if it closes first (e.g. StopCCN 4 for a
        wrong secret, or ``reason=None`` when the peer never answered).
        """
        self._check_open()
        config = config if config is not None else TunnelConfig(role=Role.LAC)
        host, port = peer
        infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        peer = _host_port(sockaddr)
        sock = socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setblocking(False)
            bind = local if local is not None else ("::" if family == socket.AF_INET6 else "", 0)
            sock.bind(bind)
        except OSError:
            sock.close()
            raise
        listener = TunnelListener(
            ListenerConfig(tunnel=config), random_bytes=self.random_bytes, ids=self.ids
        )
        endpoint = _Initiator(self, sock, listener)
        endpoint.ppp_options = ppp or PppOptions()
        endpoint.seqnum = seqnum
        self.endpoints.add(endpoint)
        tunnel = listener.connect(peer, self.loop.time(), config)
        th = TunnelHandle(self, endpoint, tunnel, peer=peer, sock=sock, role=config.role)
        endpoint.handle = th
        self.tunnels[tunnel.tunnel_id] = th
        endpoint.start()
        self.kick(th)
        if wait:
            await th.wait_established()
        return th

    async def listen(
        self,
        address: Address,
        *,
        config: ListenerConfig | None = None,
        options: ListenOptions | None = None,
    ) -> Listener:
        """Accept tunnels on ``address`` (port 0: any free port; see :attr:`Listener.address`)."""
        self._check_open()
        config = _listener_config(config if config is not None else ListenerConfig())
        host, port = address
        sock = socket.socket(_family(host), socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            # Per-tunnel sockets bind the same address:port (see the module docstring).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        listener = TunnelListener(config, random_bytes=self.random_bytes, ids=self.ids)
        endpoint = Listener(self, sock, listener, options or ListenOptions())
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
            for endpoint in reap:
                for tid in endpoint.listener.reap():
                    gone = self.tunnels.pop(tid, None)
                    if gone is not None:
                        endpoint.release(gone)

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
        self._reap.add(endpoint)

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("the L2TP context is closed")


def live(th: TunnelHandle) -> bool:
    """True while the tunnel is neither closing nor closed."""
    return th.state not in (TunnelState.CLOSING, TunnelState.CLOSED)
