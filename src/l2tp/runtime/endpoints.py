"""The sockets of a context and what arrives on them: :class:`Initiator` (one tunnel we
open) and :class:`Listener` (many tunnels accepted on one address), their options, and
how a datagram is routed to its tunnel.

* **Sockets.** An initiator tunnel has its own UDP socket, connected to the peer once
  the tunnel is up (the responder may answer from another port, RFC 2661 8.1: the first
  reply re-targets it). A listener has one socket on the listen address; every datagram
  is routed by its Tunnel ID through a :class:`~l2tp.protocol.listener.TunnelListener`
  and replies leave from the listen socket's address and port. A managed kernel tunnel
  needs a socket of its own connected to the peer, so when a tunnel is established the
  listener opens one bound to the same address:port and connected to the peer; Linux
  delivers the peer's datagrams to the connected socket (it scores higher in the UDP
  lookup), and the tunnel's traffic moves there. Datagrams still queued on the listen
  socket are routed by Tunnel ID as before, so nothing is lost in the switch. The listen
  socket itself is exclusive (:func:`~l2tp.runtime.sockets.listen_socket`).
* **Reading.** :class:`~l2tp.runtime.datagram.DatagramReader` drains each socket per
  wake-up; the tunnels a batch touched are serviced once at its end.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from l2tp.addresses import address_text
from l2tp.kernel.constants import EncapType
from l2tp.kernel.sockets import connect_l2tpip
from l2tp.protocol.constants import CdnResult, ErrorCode, StopCcnResult
from l2tp.protocol.errors import CodecError
from l2tp.protocol.events import CallParams, Reason, Role, SessionInfo
from l2tp.protocol.listener import ListenerConfig, TunnelListener

from .backend import Address, SessionOptions
from .datagram import DatagramReader
from .driver import Driver
from .errors import LOCAL_FAILURE
from .handles import Admission, SessionHandle, TunnelHandle
from .sockets import (
    IPNetwork,
    address_allowed,
    control_header,
    host_port,
    l2tpip_control_socket,
    udp_socket,
)

__all__ = ["Endpoint", "Initiator", "ListenOptions", "Listener", "PseudowireOffer"]

log = logging.getLogger("l2tp.runtime.control")


class EndpointContext(Driver, Protocol):
    """What an endpoint needs from its context (beyond what its tunnels need)."""

    netns: str | None
    tunnels: dict[int, TunnelHandle]
    endpoints: set[Any]

    def flush(self) -> None: ...

    async def close_tunnels(
        self, tunnels: list[TunnelHandle], result: int, message: str, ack_timeout: float
    ) -> None: ...


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


class Endpoint:
    """A control socket and the sans-IO listener that routes its datagrams."""

    ppp_options: SessionOptions
    seqnum: bool

    def __init__(
        self,
        ctx: EndpointContext,
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
        return host_port(self.sock.getsockname())

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


class Initiator(Endpoint):
    """The socket of one tunnel we initiate."""

    def __init__(
        self,
        ctx: EndpointContext,
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
        try:
            header = control_header(data)
        except CodecError:
            ctx.counters.malformed += 1
            return
        if header is None:
            ctx.counters.not_control += 1
            return
        if th is None or header.tunnel_id != th.tunnel_id:
            ctx.counters.unknown_tunnel += 1
            return
        addr = host_port(address)
        if addr != th.peer:
            # RFC 2661 8.1: the responder may answer from another port; learn it once.
            if th.established_event is None and addr[0] == th.peer[0]:
                th.peer = addr
                th.tunnel.log_context["peer"] = address_text(addr)
            else:
                ctx.counters.foreign_source += 1
                return
        th.receive(data, ctx.loop.time(), header)

    def tunnel_up(self, th: TunnelHandle) -> None:
        if self.encap is EncapType.IP:
            connect_l2tpip(self.sock, ipaddress.ip_address(th.peer[0]), th.peer_tunnel_id)
        else:
            self.sock.connect(th.peer)

    def release(self, th: TunnelHandle) -> None:
        super().release(th)
        self.close_socket()
        self.ctx.endpoints.discard(self)


class Listener(Endpoint):
    """Accepts tunnels on one UDP address (an LNS); made by :meth:`L2tpContext.listen`."""

    def __init__(
        self,
        ctx: EndpointContext,
        sock: socket.socket,
        listener: TunnelListener,
        options: ListenOptions,
        encap: EncapType = EncapType.UDP,
    ) -> None:
        super().__init__(ctx, sock, listener, encap)
        self.options = options
        self.ppp_options = options.ppp
        self.seqnum = options.seqnum
        self.session_count = 0
        self.accepting = True
        self._close_task: asyncio.Task[None] | None = None
        self.bound: dict[str, SessionHandle] = {}
        """Offered pseudowires (by Remote End ID) and the live session bound to each."""
        self.not_allowed = 0
        """Tunnel-0 messages (SCCRQs, in practice) dropped here for coming from outside
        ``allowed_peers``: this listener's share of the context's ``not_allowed``, for
        ``l2tp ctl status`` and the metrics (``reason="not_allowed"``)."""

    @property
    def config(self) -> ListenerConfig:
        return self.listener.config

    @property
    def tunnels(self) -> dict[int, TunnelHandle]:
        """This listener's tunnels (a snapshot): the context's one registry, filtered by
        the tunnels the sans-IO listener holds."""
        registry = self.ctx.tunnels
        return {tid: registry[tid] for tid in self.listener.tunnels if tid in registry}

    def update(
        self, *, config: ListenerConfig | None = None, options: ListenOptions | None = None
    ) -> None:
        """Change policy (e.g. on reload). Applies to new tunnels and new calls only."""
        if config is not None:
            self.listener.config = listener_config(config)
        if options is not None:
            self.options = options
            self.ppp_options = options.ppp
            self.seqnum = options.seqnum

    def datagram_received(self, data: bytes, address: Any) -> None:
        ctx = self.ctx
        counters = ctx.counters
        counters.datagrams_in += 1
        try:
            header = control_header(data)
        except CodecError:
            counters.malformed += 1
            return
        if header is None:
            counters.not_control += 1
            return
        addr = host_port(address)
        now = ctx.loop.time()
        tid = header.tunnel_id
        if tid:
            th = ctx.tunnels.get(tid)
            if th is not None and th.endpoint is not self:
                th = None  # another endpoint's tunnel: not for this socket
            if th is None:
                counters.unknown_tunnel += 1
                return
            if th.peer != addr:
                counters.foreign_source += 1
                return
            th.receive(data, now, header)
            return
        if not self.accepting:
            return
        allowed = self.options.allowed_peers
        if allowed and not address_allowed(addr[0], allowed):
            counters.not_allowed += 1
            self.not_allowed += 1
            return
        listener = self.listener
        tunnel = listener.receive(data, addr, now, header)
        if listener._stateless:
            self._send_replies(listener.take_replies())
        if listener._evicted:
            for evicted in listener.take_evicted():
                gone = ctx.tunnels.get(evicted.tunnel_id)
                if gone is not None:
                    ctx.mark(gone)  # its closing events, then its release
        if tunnel is None:
            return
        th = ctx.tunnels.get(tunnel.tunnel_id)
        if th is None:
            th = TunnelHandle(ctx, self, tunnel, peer=addr, sock=self.sock, role=Role.LNS)
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
            sock = l2tpip_control_socket(self.ctx.netns, host, False, th.tunnel_id)
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
        sock = udp_socket(
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

    async def close(
        self,
        result: int = StopCcnResult.SHUTTING_DOWN,
        *,
        message: str = "listener closed",
        ack_timeout: float = 2.0,
    ) -> None:
        """Stop accepting, StopCCN every tunnel, wait briefly for acks, close the socket.

        As :meth:`L2tpContext.close`: cancelling the call does not stop the clean-up.
        """
        if self._close_task is None:
            self._close_task = self.ctx.loop.create_task(self._close(result, message, ack_timeout))
        await asyncio.shield(self._close_task)

    async def _close(self, result: int, message: str, ack_timeout: float) -> None:
        self.accepting = False
        await self.ctx.close_tunnels(list(self.tunnels.values()), result, message, ack_timeout)
        for th in list(self.tunnels.values()):
            self.ctx.tunnels.pop(th.tunnel_id, None)
            self.release(th)
        self.close_socket()
        self.ctx.endpoints.discard(self)


def listener_config(config: ListenerConfig) -> ListenerConfig:
    """Calls at a listener always pass through the runtime's admission (limits)."""
    if config.tunnel.auto_accept or config.tunnel.role is not Role.LNS:
        return replace(config, tunnel=replace(config.tunnel, auto_accept=False, role=Role.LNS))
    return config
