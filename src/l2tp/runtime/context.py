"""An asyncio L2TP control plane to embed in any program: :class:`L2tpContext`.

::

    async with L2tpContext() as ctx:      # dataplane=AsyncLinuxDataPlane() for real kernel objects
        lns = await ctx.listen(("127.0.0.1", 1701), config=ListenerConfig(...))
        tunnel = await ctx.open_tunnel(("127.0.0.1", 1701), config=TunnelConfig(role=Role.LAC))
        session = await tunnel.open_session()                     # ICRQ/ICRP/ICCN
        await session.close()                                     # CDN
        async for event in ctx.events(): ...                      # every ControlEvent

Design (aioquic-style driver over the sans-IO core of :mod:`l2tp.protocol`):

* **One owner.** The context holds the one registry of tunnels (``tunnels``, by our
  tunnel ID); each :class:`~l2tp.runtime.handles.TunnelHandle` holds its sessions.
  Sockets and routing: :mod:`l2tp.runtime.endpoints`; per-tunnel driving and loud
  failures: :mod:`l2tp.runtime.handles`; kernel objects and backends:
  :mod:`l2tp.runtime.kernel_side` (call set-up: :mod:`l2tp.runtime.call_setup`;
  tear-down: :mod:`l2tp.runtime.teardown`).
* **Timers.** One ``loop.call_at`` per tunnel, armed from ``tunnel.get_timer()``
  after each service: nothing scans all tunnels per wake-up.
  ``TunnelListener.reap`` runs only after a ``TunnelReleased`` (from a datagram or a
  timer: :meth:`L2tpContext.need_reap` schedules the flush).
* **Randomness.** Tunnel IDs (one pool for the whole context, as kernel tunnel
  IDs are per host), session IDs, challenges and random vectors come from the
  injected ``random_bytes`` (default :data:`~l2tp.runtime.randomness.random_bytes`,
  :func:`os.urandom` read in blocks).
* **Kernel work off the loop.** The data plane is an
  :class:`~l2tp.kernel.async_dataplane.AsyncDataPlane`: kernel objects are made in
  tasks whose requests are pipelined on one netlink socket per namespace, and new
  tunnel IDs are checked against the kernel's from memory
  (:meth:`~l2tp.kernel.async_dataplane.AsyncDataPlane.tunnel_id_in_use`), so nothing
  on the datagram path makes a system call besides the socket read and send.
* **Cancellation.** Cancelling :meth:`L2tpContext.open_tunnel` while it waits closes
  the tunnel it started (StopCCN, or nothing if no SCCRQ could matter yet);
  cancelling ``TunnelHandle.open_session`` sends the call's CDN; cancelling
  :meth:`L2tpContext.close` does not stop the clean-up, which runs to the end.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from l2tp.kernel.async_dataplane import AsyncDataPlane
from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.kernel.constants import EncapType
from l2tp.protocol.constants import StopCcnResult
from l2tp.protocol.events import Role
from l2tp.protocol.ids import IdPool
from l2tp.protocol.listener import ListenerConfig, TunnelListener
from l2tp.protocol.message import RandomSource
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.protocol.tunnel_fsm import TunnelState

from .backend import Address, SessionBackend, SessionOptions
from .driver import ContextCounters, Serviced
from .endpoints import Endpoint, Initiator, Listener, ListenOptions, listener_config
from .errors import INTERNAL_ERROR
from .handles import TunnelHandle
from .memory import HeapTrimmer
from .randomness import random_bytes as default_random_bytes
from .sockets import (
    ListenError,
    host_port,
    l2tpip_control_socket,
    listen_socket,
    udp_socket,
)
from .subscription import Subscription
from .teardown import HANGUP_AFTER

__all__ = ["ContextCounters", "L2tpContext"]

log = logging.getLogger("l2tp.runtime.control")

PPP_FIRST = 0.5
"""Seconds :meth:`L2tpContext.close` gives the backends to end their PPP before the
StopCCNs go out (at most ``ack_timeout``). A live peer answers pppd's LCP
Terminate-Request within it (20 pppd in the emulated test VM: 0.3-0.9 s); a pppd still
waiting after it gets no Ack anyway once the peer has the StopCCN, and ends on its own
1 s ``lcp-restart`` timer while the StopCCN is acknowledged."""

MIN_ACK_WAIT = 0.2
"""Seconds :meth:`L2tpContext.close` waits for StopCCN acknowledgements even when the
backends' stop took all of ``ack_timeout``: a live peer on a LAN answers well within
it, and a StopCCN sent and never retransmitted is still sent once."""


class _KernelAwareIds(IdPool):
    """Tunnel IDs that also avoid the kernel's: another process in the namespace (a second
    daemon, ``ip l2tp``, a static ql2tpd tunnel) may hold one, and the managed kernel tunnel
    of a control connection that drew it could not be created (StopCCN 2 after the peer
    already answered). ``exists`` answers from the data plane's learned set (a dump at
    start plus the kernel's multicast events; no system call per SCCRQ); a tunnel made
    by another process between our draw and our create stays possible but rare, and
    ends that one tunnel with StopCCN 2 (docs/kernel-api.md, "Tunnel IDs")."""

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


class L2tpContext:
    """Tunnels, listeners, kernel objects and backends of one program; see the module doc."""

    def __init__(
        self,
        *,
        dataplane: AsyncDataPlane | None = None,
        backend: SessionBackend | None = None,
        random_bytes: RandomSource = default_random_bytes,
        loop: asyncio.AbstractEventLoop | None = None,
        netns: str | None = None,
        close_dataplane: bool = True,
        hangup_after: float = HANGUP_AFTER,
    ) -> None:
        """``netns``: open every control socket in this network namespace (``ip netns``
        name or path), as a managed kernel tunnel must live in its socket's namespace;
        give the data plane the same one.

        ``dataplane``: an :class:`~l2tp.kernel.async_dataplane.AsyncDataPlane`
        (default: an :class:`~l2tp.kernel.async_null.AsyncNullDataPlane`). The
        context starts it (idempotent) before its first listener or tunnel and closes
        it at the end of :meth:`close`, unless ``close_dataplane`` is False (a data
        plane shared by several contexts: its owner closes it).

        ``hangup_after``: seconds a session's backend has to stop (pppd's LCP
        Terminate exchange) before its kernel session is deleted, which hangs up
        the PPP channel under it (:mod:`l2tp.runtime.teardown`).
        """
        if dataplane is not None and not inspect.iscoroutinefunction(
            getattr(dataplane, "create_tunnel", None)
        ):
            raise TypeError(
                "L2tpContext needs an asynchronous data plane (AsyncLinuxDataPlane, "
                f"AsyncNullDataPlane), not {type(dataplane).__name__}: the blocking "
                "DataPlane classes are for scripts outside an event loop"
            )
        self.netns = netns
        self.hangup_after = hangup_after
        self._close_dataplane = close_dataplane
        self.dataplane: AsyncDataPlane = (
            dataplane if dataplane is not None else AsyncNullDataPlane()
        )
        self.backend = backend
        self.random_bytes = random_bytes
        self._loop = loop
        exists = self.dataplane.tunnel_id_in_use
        self.ids = _KernelAwareIds(bits=16, random_bytes=random_bytes, exists=exists)
        self.ids3 = _KernelAwareIds(bits=32, random_bytes=random_bytes, exists=exists)
        """L2TPv3 Control Connection IDs (32-bit, RFC 3931 5.4.3). The kernel keeps one
        tunnel ID space for both versions; a v3 ID below 65,536 that a v2 tunnel of this
        context holds is skipped (see :meth:`_v3_id`)."""
        self.tunnels: dict[int, TunnelHandle] = {}
        self.endpoints: set[Endpoint] = set()
        self.counters = ContextCounters()
        self.subscribers: list[Subscription] = []
        self._dirty: dict[Serviced, None] = {}
        self._flush_scheduled = False
        self._reap: set[Endpoint] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._trimmer: HeapTrimmer | None = None
        self._close_task: asyncio.Task[None] | None = None
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
        await self.start()
        return self

    async def start(self) -> None:
        """Start the data plane (learn the kernel's tunnel IDs); done by ``async with``,
        :meth:`listen` and :meth:`open_tunnel` as needed. Raises the data plane's
        :class:`~l2tp.kernel.errors.KernelError` (e.g. the ``l2tp`` module missing)."""
        self._check_open()
        await self.dataplane.start()

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
        await self.start()
        config = config if config is not None else TunnelConfig(role=Role.LAC)
        if encap is EncapType.IP and config.version != 3:
            raise ValueError("IP encapsulation is L2TPv3 only (RFC 3931 4.1.1)")
        host, port = peer
        infos = await self.loop.getaddrinfo(
            host, port if encap is EncapType.UDP else 0, type=socket.SOCK_DGRAM
        )
        family, _, _, _, sockaddr = infos[0]
        peer = host_port(sockaddr)
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
        endpoint = Initiator(self, sock, listener, encap)
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
            try:
                await th.wait_established()
            except asyncio.CancelledError:
                # Cancelled (e.g. by asyncio.wait_for): the tunnel we started must not
                # keep retransmitting its SCCRQ. StopCCN if the peer may know it.
                th.begin_close(message="connection abandoned")
                raise
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
            return l2tpip_control_socket(self.netns, local[0] if local else "", v6, tunnel_id)
        return udp_socket(self.netns, family, local or ("::" if v6 else "", 0))

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
        await self.start()
        config = listener_config(config if config is not None else ListenerConfig())
        v3 = config.tunnel.version == 3
        if encap is EncapType.IP and not v3:
            raise ValueError("IP encapsulation is L2TPv3 only (RFC 3931 4.1.1)")
        host, port = address
        name = (options or ListenOptions()).name
        try:
            if encap is EncapType.IP:
                sock = l2tpip_control_socket(self.netns, host, ":" in host, 0)
            else:
                sock = listen_socket(self.netns, host, port)
        except OSError as exc:
            raise ListenError(name, host, port, encap, exc, netns=self.netns) from exc
        ids = self.ids3 if v3 else self.ids
        listener = TunnelListener(config, random_bytes=self.random_bytes, ids=ids)
        endpoint = Listener(self, sock, listener, options or ListenOptions(), encap)
        self.endpoints.add(endpoint)
        endpoint.start()
        return endpoint

    def events(self) -> Subscription:
        """Subscribe to every tunnel's events from now on: ``async for ev in ctx.events()``."""
        return Subscription(self.subscribers)

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
        """Stop every tunnel's PPP, StopCCN every tunnel, wait for the acknowledgements,
        remove every kernel object, close every socket, all within about ``ack_timeout``
        seconds plus the backends' own exit.

        The backends go first (``TunnelHandle.stop_backends``): every pppd is signalled at
        once and ends its LCP with the peer's PPP over the data path that is still up.
        Once they have, or after :data:`PPP_FIRST` seconds (``ack_timeout`` if shorter),
        the StopCCNs go out; their acknowledgements are awaited for what is left of
        ``ack_timeout``, but at least :data:`MIN_ACK_WAIT`. NetworkManager-l2tp allows
        kl2tpd 2 s from SIGTERM to SIGKILL (issue 16).

        The clean-up runs in a task of its own: cancelling this call stops the wait,
        not the clean-up, and a later call waits for the same clean-up to finish.
        """
        if self.closed:
            return
        if self._close_task is None:
            self._close_task = self.loop.create_task(self._close(result, message, ack_timeout))
        await asyncio.shield(self._close_task)

    async def _close(self, result: int, message: str, ack_timeout: float) -> None:
        self.closing = True
        for endpoint in self.endpoints:
            if isinstance(endpoint, Listener):
                endpoint.accepting = False
        started = self.loop.time()
        tunnels = list(self.tunnels.values())
        stops = [stop for th in tunnels for stop in th.stop_backends()]
        if stops:
            await asyncio.wait(stops, timeout=min(PPP_FIRST, ack_timeout))
        left = max(ack_timeout - (self.loop.time() - started), MIN_ACK_WAIT)
        await self.close_tunnels(list(self.tunnels.values()), result, message, left)
        self.closed = True
        if self._tasks:
            # Backends stopping (pppd: SIGTERM, then SIGKILL after its stop_timeout).
            stop = float(getattr(self.backend, "stop_timeout", 5.0))
            await asyncio.wait(set(self._tasks), timeout=ack_timeout + stop + 2.0)
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
        if self._close_dataplane:
            await self.dataplane.close()

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

    def mark(self, th: Serviced) -> None:
        """``th`` has input: service it at the end of the current batch."""
        self._dirty[th] = None

    def kick(self, th: Serviced) -> None:
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

    def publish(self, th: Serviced, event: Any) -> None:
        for sub in self.subscribers:
            sub.queue.put_nowait(event)
        for sub in th.subscribers:
            sub.queue.put_nowait(event)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A background task (backend start/stop, kernel clean-up) must not fail
        silently: an exception escaping one is a bug, counted and logged loudly."""
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.counters.internal_errors += 1
            log.error(
                "internal error in a background task", exc_info=exc, extra={INTERNAL_ERROR: True}
            )

    def forget(self, th: TunnelHandle) -> None:
        """Drop an abandoned tunnel from every registry and free its socket."""
        self.tunnels.pop(th.tunnel_id, None)
        self._dirty.pop(th, None)
        endpoint = th.endpoint
        if isinstance(endpoint, Endpoint):
            endpoint.listener.discard(th.tunnel_id)
            endpoint.release(th)

    def need_reap(self, endpoint: Endpoint) -> None:
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
