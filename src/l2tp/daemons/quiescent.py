"""Quiescent L2TPv3 tunnels: static sessions plus HELLO keep-alives to detect a dead peer.

A quiescent tunnel is a static tunnel whose socket is ours (a *managed* kernel
tunnel created from our UDP or L2TPIP socket) so that a minimal control channel
can run beside the data: the reliable transport of RFC 3931 section 4.2 with
nothing but HELLO messages (section 4.4). Both ends must run it.

Life cycle, per tunnel:

1. **Up**: open the socket, create the kernel tunnel on it and every session,
   start the control channel. A HELLO goes out after ``hello_timeout`` without
   anything received from the peer.
2. **Peer lost**: when a HELLO (or anything else) stays unacknowledged through
   every retransmission - ``retry_timeout`` doubling up to 8 s, ``max_retries``
   times - the sessions and the tunnel are removed from the kernel. The time
   from the peer's last message to teardown is therefore at most
   ``hello_timeout`` + the full retransmission interval (with ``retry_timeout``
   = 1 s and 10 retries: 1 + 2 + 4 + 8 x 8 = 71 s).
3. **Probing**: a fresh channel sends a HELLO (retransmitted as in 2), and
   again ``hello_timeout`` (at least 1 s) after each unanswered one. When the
   peer acknowledges it, go back to 1 on that socket.

Each new channel starts at Ns = Nr = 0, and one side may restart while the
other keeps its old sequence state. The channel therefore runs with
``TransportConfig.resync``: every HELLO is taken in whatever Ns it carries and
acknowledged exactly, so a live pair stays in step whichever side restarted
and when. (With strict in-order delivery the old side held or dropped the new
side's HELLOs until it gave up too, and each side's restart could knock the
other out of step again: a livelock seen in the kernel tests.) SIGTERM removes
the kernel objects; no message is sent (quiescent tunnels have no StopCCN).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

from l2tp import config as cfg
from l2tp.daemons.static import StaticTunnel
from l2tp.kernel.async_dataplane import AsyncDataPlane
from l2tp.kernel.errors import IdInUse
from l2tp.kernel.sockets import l2tpip_socket, tunnel_udp_socket
from l2tp.protocol.transport import (
    HELLO_BODY,
    AckReceived,
    Event,
    Transport,
    TransportClosed,
    TransportConfig,
    TransportFailed,
)
from l2tp.runtime.channel import ControlChannel

log = logging.getLogger("l2tp.quiescent")

_TUNNEL_ID_RETRY = 5.0
"""How long to retry creating a tunnel whose ID the kernel still holds (deletion is async)."""


def open_tunnel_socket(tunnel: cfg.TunnelSection, netns: str | None = None) -> socket.socket:
    """Our end of the tunnel: a connected UDP socket or an L2TPIP socket bound to ``tid``.

    The socket must live in the namespace of the kernel tunnel built on it (the
    kernel refuses a managed tunnel whose socket is in another one).
    """
    assert tunnel.local is not None and tunnel.tid is not None and tunnel.ptid is not None
    if tunnel.encap is cfg.Encap.UDP:
        sock = tunnel_udp_socket(
            tunnel.local.address,
            tunnel.local.port,
            tunnel.peer.address,
            tunnel.peer.port,
            netns=netns,
        )
    else:
        sock = l2tpip_socket(
            tunnel.local.address, tunnel.tid, tunnel.peer.address, tunnel.ptid, netns=netns
        )
    sock.setblocking(False)
    return sock


def transport_config(tunnel: cfg.TunnelSection) -> TransportConfig:
    return TransportConfig(
        initial_timeout=tunnel.retry_timeout,
        max_timeout=max(8.0, tunnel.retry_timeout),
        max_retries=tunnel.max_retries,
        receive_window=min(tunnel.window_size, 32767),
        hello_interval=tunnel.hello_timeout or None,
        resync=True,
    )


class QuiescentTunnel:
    """One quiescent tunnel's state machine (up, peer lost, probing) driven by asyncio."""

    def __init__(
        self, tunnel: cfg.TunnelSection, dataplane: AsyncDataPlane, *, netns: str | None = None
    ) -> None:
        assert tunnel.tid is not None and tunnel.ptid is not None
        self.config = tunnel
        self.dataplane = dataplane
        self.netns = netns
        self.log = logging.LoggerAdapter(log, {"tunnel": tunnel.name})
        self.generation = 0
        """How many times the tunnel has been brought up (for tests and logs)."""
        self.probe_interval = max(tunnel.hello_timeout, 1.0)
        self.first_up = asyncio.Event()
        """Set once the kernel objects exist for the first time (ql2tpd's readiness)."""
        self.state = "starting"
        """``starting``, ``up`` (kernel objects exist) or ``probing`` (peer lost)."""
        self.up_at: float | None = None
        """Loop time the tunnel last came up (``l2tp ctl`` uptime)."""
        self.interfaces: dict[int, str] = {}
        """The interface of each session of the current generation (its StaticTunnel's)."""
        self.channel: ControlChannel | None = None
        """The control channel of the current generation (its transport's counters)."""
        self.observers: list[Callable[[QuiescentTunnel], None]] = []
        """Called after every change of :attr:`state` (``l2tp ctl events``)."""

    def _set_state(self, state: str) -> None:
        self.state = state
        self.up_at = asyncio.get_running_loop().time() if state == "up" else None
        for observer in list(self.observers):
            observer(self)

    def _channel(self, sock: socket.socket, acked: asyncio.Event) -> ControlChannel:
        assert self.config.tid is not None and self.config.ptid is not None
        transport = Transport(
            version=3,
            local_id=self.config.tid,
            peer_id=self.config.ptid,
            config=transport_config(self.config),
        )

        def on_event(event: Event) -> None:
            if isinstance(event, AckReceived):
                acked.set()

        channel = ControlChannel(transport, sock, None, on_event=on_event)
        channel.start()
        self.channel = channel
        return channel

    async def _create_kernel(self, sock: socket.socket) -> StaticTunnel:
        """Create the managed tunnel and sessions, retrying while the old tunnel ID lingers."""
        static = StaticTunnel(self.config, self.dataplane, fd=sock.fileno())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _TUNNEL_ID_RETRY
        while True:
            try:
                await static.up()
                return static
            except IdInUse:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def _probe(self, stop: asyncio.Event) -> tuple[socket.socket, ControlChannel] | None:
        """Send HELLOs until the peer acknowledges one; None when stopped first."""
        while not stop.is_set():
            sock = await self._open_socket()
            acked = asyncio.Event()
            channel = self._channel(sock, acked)
            channel.send(HELLO_BODY)
            got_ack = asyncio.ensure_future(acked.wait())
            stopped = asyncio.ensure_future(stop.wait())
            waiters: set[asyncio.Future[Any]] = {got_ack, stopped, channel.finished}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            got_ack.cancel()
            stopped.cancel()
            if acked.is_set() and not stop.is_set():
                self.log.info("tunnel %s: peer answered a HELLO", self.config.name)
                return sock, channel
            channel.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.probe_interval)
        return None

    async def _open_socket(self) -> socket.socket:
        """Open our socket, waiting out a previous one the kernel has not released yet."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _TUNNEL_ID_RETRY
        while True:
            try:
                return open_tunnel_socket(self.config, self.netns)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then remove what is in the kernel."""
        sock = await self._open_socket()
        channel = self._channel(sock, asyncio.Event())
        while True:
            try:
                static = await self._create_kernel(sock)
            except BaseException:
                channel.close()
                raise
            self.generation += 1
            self.interfaces = static.interfaces
            self.first_up.set()
            self._set_state("up")
            self.log.info(
                "tunnel %s: quiescent tunnel up (HELLO every %.1f s idle)",
                self.config.name,
                self.config.hello_timeout,
            )
            stopped = asyncio.ensure_future(stop.wait())
            running: set[asyncio.Future[Any]] = {stopped, channel.finished}
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            await static.down()
            channel.close()
            if stop.is_set():
                return
            self._set_state("probing")
            outcome = channel.finished.result()
            reason = (
                outcome.reason if isinstance(outcome, TransportFailed | TransportClosed) else ""
            )
            self.log.warning(
                "tunnel %s: peer lost (%s): sessions and tunnel removed; probing every %.1f s",
                self.config.name,
                reason,
                self.probe_interval,
            )
            probed = await self._probe(stop)
            if probed is None:
                return
            sock, channel = probed
