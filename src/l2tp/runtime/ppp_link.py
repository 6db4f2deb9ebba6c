"""One built-in PPP session: the asyncio driver of a :class:`~l2tp.ppp.PppConnection` over
the kernel's PPP channel and unit (:class:`PppLink`), and how a link's end becomes a CDN
(:func:`map_ending`).

The driver is aioquic's ``asyncio/protocol.py`` shape: after every input (a frame read
from the channel or unit fd, the timer, ``open``/``close``, an authentication verdict)
one :meth:`PppLink._transmit` writes the frames the core produced, dispatches its events
and re-arms the session's single ``loop.call_at`` timer from ``get_timer()``. Frames are
read with ``loop.add_reader`` + ``os.read`` on non-blocking fds: no thread per session.

What each event does to the kernel (docs/builtin-ppp.md has the table):

* ``NetworkPhase``: create the unit (``PPPIOCNEWUNIT``), connect the channel to it, drop
  IPv4 and IPv6 (``PPPIOCSNPMODE``), set its MRU; then, in the background, find its
  interface, rename it (``interface_name``) and set the MTU (the peer's MRU, or the
  configured ``mtu`` if lower). A renegotiation reaches the network phase again: the
  unit is kept.
* ``NetworkUp``: bring the interface up (the first time), add the addresses (IPv4 local
  + peer/32; IPv6 ``fe80::``/128 with the peer's, from the interface identifiers, RFC
  5072 5), then set the data protocol's NP mode to pass.
* ``NetworkDown``: NP mode drop at once, then remove the addresses.
* ``LinkDown``: every NP mode drop.
* ``Terminated``: release every fd, and report the end to the control plane
  (:func:`map_ending`) unless the control plane is the one stopping us.

The interface requests of one link run in order in one background task (an address is
added before the interface goes up, and both before traffic passes); a failed request is
logged and counted, and the link carries on.

This module keeps the link's life (attach, start, stop, release), its frame I/O, timer
and event dispatch, and the CDN report; the rest is in mixins of :class:`PppLink`, one
responsibility each: the network phase (:mod:`l2tp.runtime.ppp_network`), the granted
routes and idle limit (:mod:`l2tp.runtime.ppp_grants`), the authentication hook glue
(:mod:`l2tp.runtime.ppp_auth_glue`) and the observer calls
(:mod:`l2tp.runtime.ppp_link_observer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address

from l2tp.kernel.errors import KernelError
from l2tp.kernel.ppp_device import PppChannel, PppUnit
from l2tp.peer_text import quoted
from l2tp.ppp import (
    AuthDecision,
    AuthFailed,
    AuthRequest,
    AuthRequested,
    AuthSucceeded,
    EchoFailed,
    LinkDown,
    LinkUp,
    NetworkDown,
    NetworkFailed,
    NetworkPhase,
    NetworkUp,
    PppConfig,
    PppConnection,
    PppEvent,
    Terminated,
)
from l2tp.ppp.constants import DEFAULT_MRU
from l2tp.ppp.constants import Protocol as PppProtocol
from l2tp.ppp.events import Role as PppRole
from l2tp.protocol.events import Role
from l2tp.runtime.backend import BackendSession
from l2tp.runtime.errors import INTERNAL_ERROR
from l2tp.runtime.ppp_auth_glue import PppAuthGlue, _HookAdapter
from l2tp.runtime.ppp_grants import PppGrants
from l2tp.runtime.ppp_hooks import PEER_CONNECT_DELAY, BuiltinPppOptions
from l2tp.runtime.ppp_link_observer import PppLinkObserver
from l2tp.runtime.ppp_network import (
    InterfaceOps,
    IPAddress,
    LinkSettings,
    PppKernel,
    PppNetwork,
    remove_file,
)
from l2tp.runtime.ppp_observer import PppSessionView
from l2tp.runtime.ppp_outcome import ENDING_COUNTER, Ending, map_ending

__all__ = [
    "InterfaceOps",
    "LinkSettings",
    "PppKernel",
    "PppLink",
]

log = logging.getLogger("l2tp.runtime.builtin_ppp")

READS_PER_WAKEUP = 32
"""Frames read from one fd per readiness callback, so one busy session cannot starve the rest."""

# --- one link ----------------------------------------------------------------------------


class PppLink(PppAuthGlue, PppLinkObserver, PppGrants, PppNetwork):
    """The built-in PPP of one established L2TP session (see the module documentation).

    The order of the bases matters: a mixin that defines a method precedes any that only
    declares it (``raise NotImplementedError``)."""

    def __init__(
        self, session: BackendSession, options: BuiltinPppOptions, settings: LinkSettings
    ) -> None:
        self.session = session
        self.options = options
        self.settings = settings
        self.counters = settings.counters
        info = session.info
        self.label = (
            f"{session.options.name or 'session'} (tid {info.tunnel_id}/{info.peer_tunnel_id}"
            f" sid {info.session_id}/{info.peer_session_id})"
        )
        self.role = PppRole.AUTHENTICATOR if session.role is Role.LNS else PppRole.PEER
        self.loop = asyncio.get_running_loop()
        self.channel: PppChannel | None = None
        self.unit: PppUnit | None = None
        self.ifindex: int | None = None
        self.ifname: str | None = None
        self.pool_address: IPv4Address | None = None
        self.ending: Ending | None = None
        self.reported = False
        self.stopping = False
        self.released = False
        self.hung_up = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._finished = asyncio.Event()
        self._readers: list[int] = []
        self._ops: deque[tuple[str, Callable[[], Awaitable[object]], bool]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._auth_task: asyncio.Task[None] | None = None
        self._pending_auth: tuple[AuthRequest, Awaitable[AuthDecision]] | None = None
        self._addresses: dict[PppProtocol, tuple[IPAddress, IPAddress | None, int]] = {}
        self._interface_ids: tuple[bytes | None, bytes | None] = (None, None)
        """IPv6CP's local and peer Interface-Identifiers while it is up (RFC 5072 4.1)."""
        self._mtu = DEFAULT_MRU
        self._is_up = False
        self.auth_method: str | None = None
        """The PPP authentication method that succeeded (None before or without)."""
        self.peer_terminated = False
        """The peer's LCP Terminate-Request took the link down (RFC 1661 5.5)."""
        self.observed: PppSessionView | None = None
        """What the observer was told at ``session_up`` (None: not told)."""
        self.peer_dns: tuple[IPv4Address, ...] = ()
        """The DNS servers the authenticator gave us in IPCP (peer side, RFC 1877)."""
        self.resolv_written: str | None = None
        self.started_at: float | None = None
        self.lcp_up_after: float | None = None
        """Seconds from :meth:`start` to LCP Opened, the first time (diagnostics, tests)."""
        self.heard_after: float | None = None
        """Seconds from :meth:`start` to the other end's first frame: how long its PPP
        took to start (a pppd peer: its process start), which bounds ``lcp_up_after``."""
        self._release_task: asyncio.Task[None] | None = None
        self.granted: AuthDecision | None = None
        """The verifier's last successful decision (RADIUS: its ``authorization`` holds
        what the Access-Accept granted, e.g. Class for accounting)."""
        self.denied: AuthDecision | None = None
        """The verifier's last denial (RADIUS: its ``authorization`` says when no server
        decided, :class:`~l2tp.radius.auth.NoVerdict`, for accounting's cause)."""
        self.user: str | None = None
        """The peer's authenticated name (authenticator role; None before or without)."""
        self.claimed_user: str | None = None
        """The name the peer gave in its last authentication request, authenticated or
        not (authenticator role): the User-Name of a Tunnel-Link-Reject."""
        self.session_deadline: float | None = None
        """Loop time at which :meth:`set_session_timeout` ends the session (None: never)."""
        self._session_timer: asyncio.TimerHandle | None = None
        self._init_grants()
        self.conn = PppConnection(
            self._config(), random_bytes=settings.random_bytes, authenticator=_HookAdapter(self)
        )

    def _config(self) -> PppConfig:
        o = self.options
        authenticator = self.role is PppRole.AUTHENTICATOR
        delay = o.connect_delay
        if delay is None:
            delay = None if authenticator else PEER_CONNECT_DELAY
        return PppConfig(
            role=self.role,
            mru=o.mru or DEFAULT_MRU,
            auth_methods=o.auth,
            hostname=self.settings.server,
            username=None if authenticator else o.user,
            password=None if authenticator else o.password,
            echo_interval=o.lcp_echo_interval,
            echo_failure=o.lcp_echo_failure,
            ipv4_local=o.local_address,
            ipv4_pool=self._allocate if authenticator and self.settings.pool else None,
            dns=o.dns if authenticator else (),
            request_dns=not authenticator,
            ipv6=o.ipv6,
            connect_delay=delay or None,
            passive=o.passive,
            auth_timeout=o.auth_timeout,
            restart=o.restart,
        )

    @property
    def key(self) -> tuple[int, int]:
        return self.session.key

    # ------------------------------------------------------------------ start and stop

    def attach(self, channel: PppChannel | None = None) -> None:
        """Open the session's PPPoL2TP socket and attach its ``/dev/ppp`` channel, without
        reading from it or starting LCP: an LNS does this before its ICRP, so that frames
        the LAC sends after its ICCN wait in the channel's queue (issue 17). ``channel``:
        opened already (off the loop, by the backend: ``PPPIOCGCHAN`` waits for an RCU
        grace period), and this link's from now on. No-op once attached. Raises
        (KernelError, OSError, ValueError) with every fd closed again.
        """
        if self.channel is not None:
            return
        if channel is None:
            info = self.session.info
            sock = self.session.dataplane.open_ppp_socket(
                self.session.kernel_tunnel, info.session_id, info.peer_session_id
            )
            try:
                channel = self.settings.kernel.open_channel(sock, netns=self.settings.netns)
            except BaseException:
                sock.close()
                raise
        self.channel = channel

    def start(self, session: BackendSession | None = None) -> None:
        """Attach (unless :meth:`attach` did), read the channel and send the first LCP
        request; ``session``: the established call, where it was attached before.

        Synchronous: nothing here waits. Raises (KernelError, OSError, ValueError) with
        every fd closed again; the control plane then refuses the call (CDN 2).
        """
        if session is not None:
            self.session = session
        self.attach()
        assert self.channel is not None
        try:
            self._watch(self.channel.fd)
            self.started_at = self.loop.time()
            self.conn.open(self.started_at)
            self._transmit()
        except BaseException:
            self.released = True
            for fd in list(self._readers):
                self._unwatch(fd)
            if self._timer is not None:
                self._timer.cancel()
            channel, self.channel = self.channel, None
            os.close(channel.fd)  # no unit yet: nothing slow to undo
            channel.sock.close()
            raise
        self.counters.started += 1
        log.debug("%s: built-in PPP on channel %d", self.label, self.channel.index)

    async def stop(self) -> None:
        """LCP Terminate-Request, up to ``terminate_wait`` s for the end, then release.

        Idempotent; reports nothing (the control plane is the one ending the session).
        The wait is short because the L2TP peer may be gone already (StopCCN, CDN).
        """
        if not self.released and not self.stopping:
            self.stopping = True
            if self.started_at is not None:  # else only attached: no PPP to end
                self.counters.stopped += 1
                self._tell_stopping()
                if not self.conn.terminated and not self.hung_up:
                    self.conn.close(self.loop.time(), "administrative close")
                    self._transmit()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.settings.terminate_wait):
                            await self._finished.wait()
        await self._release()

    @property
    def peer_ipv4(self) -> IPv4Address | None:
        """The peer's IPv4 address while IPCP is up (RADIUS Framed-IP-Address)."""
        entry = self._addresses.get(PppProtocol.IPCP)
        peer = entry[1] if entry is not None else None
        return peer if isinstance(peer, IPv4Address) else None

    def set_session_timeout(self, seconds: float | None) -> None:
        """End the session ``seconds`` from now (None: no limit), replacing any earlier
        limit: RADIUS Session-Timeout (RFC 2865 5.27; RFC 5176 CoA changes it).

        When it runs out the control plane is told at once, as for an echo failure:
        CDN Result Code 3 (administrative), "PPP connect time limit reached", the same
        as pppd's ``maxconnect``; the control plane's stop then sends LCP Terminate.
        """
        if self._session_timer is not None:
            self._session_timer.cancel()
            self._session_timer = None
        self.session_deadline = None
        if seconds is None or self.released or self.stopping:
            return
        self.session_deadline = self.loop.time() + max(0.0, seconds)
        self._session_timer = self.loop.call_at(self.session_deadline, self._session_timeout)

    # ------------------------------------------------------------------ frame I/O

    def _watch(self, fd: int) -> None:
        self.loop.add_reader(fd, self._on_readable, fd)
        self._readers.append(fd)

    def _on_readable(self, fd: int) -> None:
        try:
            buf = self.settings.read_buffer
            for _ in range(READS_PER_WAKEUP):
                try:
                    size = os.readv(fd, [buf])
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    log.warning("%s: reading PPP frames: %s", self.label, exc)
                    size = 0
                if size == 0:
                    self._hangup(fd)
                    return
                self.counters.frames_in += 1
                if self.heard_after is None and self.started_at is not None:
                    self.heard_after = self.loop.time() - self.started_at
                self.conn.receive_frame(bytes(memoryview(buf)[:size]), self.loop.time())
            self._transmit()
        except Exception:
            self._internal_error("reading a frame")

    def _hangup(self, fd: int) -> None:
        """End of file: the kernel session (channel) or the unit's last channel is gone."""
        self._unwatch(fd)
        if self.hung_up or self.released:
            return
        self.hung_up = True
        log.info("%s: PPP channel hung up", self.label)
        self._end(Ending.HANGUP)

    def _unwatch(self, fd: int) -> None:
        if fd in self._readers:
            self._readers.remove(fd)
            self.loop.remove_reader(fd)

    def _write(self, frame: bytes) -> None:
        if self.channel is None or self.released:
            return
        try:
            os.write(self.channel.fd, frame)
        except OSError as exc:
            # The channel is going (EIO/ENOTCONN) or the kernel is short of memory: a
            # lost control frame, which the core retransmits or the link ends on.
            self.counters.write_errors += 1
            log.debug("%s: writing a PPP frame: %s", self.label, exc)
        else:
            self.counters.frames_out += 1

    # ------------------------------------------------------------------ the one driver step

    def _transmit(self) -> None:
        """Write the core's frames, dispatch its events, re-arm the timer (after every input)."""
        conn = self.conn
        now = self.loop.time()
        for frame in conn.frames_to_send(now):
            self._write(frame)
        while (event := conn.next_event()) is not None:
            self._handle(event)
            for frame in conn.frames_to_send(now):
                self._write(frame)
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = None if self.released else self.conn.get_timer()
        if deadline == self._deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        deadline, self._timer, self._deadline = self._deadline, None, None
        try:
            # asyncio may run the callback a clock tick early; the core must see the deadline.
            now = max(self.loop.time(), deadline or 0.0)
            self.conn.handle_timer(now)
            self._transmit()
        except Exception:
            self._internal_error("handling the PPP timer")

    def _internal_error(self, what: str) -> None:
        """A bug: end this one session, loudly (STYLE: bugs are loud, they end what they hit)."""
        log.exception("%s: internal error %s", self.label, what, extra={INTERNAL_ERROR: True})
        if not self.released:
            self._end(Ending.INTERNAL_ERROR)

    # ------------------------------------------------------------------ events

    def _handle(self, event: PppEvent) -> None:
        if isinstance(event, LinkUp):
            if self.lcp_up_after is None and self.started_at is not None:
                self.lcp_up_after = self.loop.time() - self.started_at
            log.info(
                "%s: LCP up after %.3f s (mtu %d, mru %d, auth %s)",
                self.label,
                self.lcp_up_after or 0.0,
                event.mtu,
                event.mru,
                event.auth.value if event.auth else "none",
            )
        elif isinstance(event, AuthRequested):
            self._auth_requested(event)
        elif isinstance(event, AuthSucceeded):
            self.counters.auth_succeeded += 1
            self.auth_method = event.method.value
            if self.role is PppRole.AUTHENTICATOR:
                self.user = event.user
            log.info(
                "%s: %s authentication %s user %s succeeded",
                self.label,
                event.method.value,
                "of" if self.role is PppRole.AUTHENTICATOR else "as",
                quoted(event.user),
            )
        elif isinstance(event, AuthFailed):
            self._auth_failed(event)
        elif isinstance(event, NetworkPhase):
            self._network_phase(event)
        elif isinstance(event, NetworkUp):
            self._network_up(event)
        elif isinstance(event, NetworkDown):
            self._network_down(event)
        elif isinstance(event, NetworkFailed):
            log.info("%s: %s failed: %s", self.label, event.protocol.name, event.reason)
        elif isinstance(event, EchoFailed):
            log.warning(
                "%s: %d LCP Echo-Requests unanswered: peer lost", self.label, event.unanswered
            )
            self._report(Ending.ECHO_FAILED)
        elif isinstance(event, LinkDown):
            self._drop_all()
            if event.by_peer and not self.peer_terminated:
                self.peer_terminated = True
                self._tell_peer_terminated()
        elif isinstance(event, Terminated):
            self._terminated(event)

    def _terminated(self, event: Terminated) -> None:
        log.info(
            "%s: PPP link ended (%s): %s",
            self.label,
            "by the peer" if event.by_peer else "locally",
            event.reason,
        )
        self._finished.set()
        if self.stopping:
            self._start_release()
            return
        if self.ending is None:
            if event.by_peer:
                self.ending = Ending.PEER_TERMINATED
            else:
                self.ending = Ending.NEGOTIATION_FAILED
        self._end(self.ending)

    def _end(self, ending: Ending) -> None:
        """Release everything and tell the control plane (unless it is stopping us)."""
        self.ending = self.ending or ending
        self._finished.set()
        self._start_release()
        self._report(self.ending)

    def _report(self, ending: Ending) -> None:
        """``report_down`` once, with the CDN of ``ending`` (not while being stopped).

        Authentication and echo failures are reported when they happen, before LCP's
        Terminate exchange (which may take a restart interval against a peer that is
        gone): the CDN then carries our reason, not whatever the peer's PPP does next.
        """
        self.ending = self.ending or ending
        if self.stopping or self.reported:
            return
        self.reported = True
        name = ENDING_COUNTER[self.ending]
        setattr(self.counters, name, getattr(self.counters, name) + 1)
        result, error, message = map_ending(self.ending, version=self.session.kernel_tunnel.version)
        log.info("%s: reporting CDN result %d (%s)", self.label, result, message)
        try:
            self.session.down(result, error, message)
        except Exception:
            log.exception("%s: report_down failed", self.label, extra={INTERNAL_ERROR: True})

    # ------------------------------------------------------------------ verifier's limits

    def _session_timeout(self) -> None:
        self._session_timer = None
        self.session_deadline = None
        self._limit_reached(Ending.SESSION_TIMEOUT, "session time limit reached")

    def _limit_reached(self, ending: Ending, why: str) -> None:
        """A limit the verifier set ran out (Session-Timeout, Idle-Timeout: RFC 2865 5.27,
        5.28, Termination-Action default): CDN now, then LCP Terminate, as for an
        authentication failure."""
        if self.released or self.stopping:
            return
        try:
            log.info("%s: %s; ending the session", self.label, why)
            self._report(ending)
            if not self.conn.terminated:
                self.conn.close(self.loop.time(), why)
                self._transmit()
        except Exception:
            self._internal_error(f"ending the session ({why})")

    # ------------------------------------------------------------------ interface requests

    def _queue(
        self, what: str, op: Callable[[], Awaitable[object]], *, essential: bool = True
    ) -> None:
        self._ops.append((what, op, essential))
        if self._worker is None or self._worker.done():
            self._worker = self.loop.create_task(self._run_ops())

    async def _run_ops(self) -> None:
        """The link's interface requests, in order. A failed essential one (finding the
        interface, an address, bringing it up) leaves the link unable to carry traffic,
        so it is ended as pppd does ("Interface configuration failed")."""
        while self._ops and not self.released:
            what, op, essential = self._ops.popleft()
            try:
                await op()
            except (KernelError, OSError) as exc:
                self.counters.interface_errors += 1
                log.warning("%s: %s: %s", self.label, what, exc)
                if essential and not self.conn.terminated and not self.released:
                    self.ending = self.ending or Ending.LOCAL_FAILURE
                    self.conn.close(self.loop.time(), "interface configuration failed")
                    self._transmit()
            except Exception:
                self._internal_error(what)

    # ------------------------------------------------------------------ release

    def _start_release(self) -> None:
        if self._release_task is None:
            self._release_task = self.loop.create_task(self._do_release())

    async def _release(self) -> None:
        self._start_release()
        assert self._release_task is not None
        await asyncio.shield(self._release_task)

    async def _do_release(self) -> None:
        """Stop reading and timing, then have the kernel layer remove the interface and close
        the unit, channel and socket (batched with other links' and off the event loop:
        unregistering an interface waits for RCU grace periods); return the pool address."""
        self.released = True
        self._finished.set()
        for fd in list(self._readers):
            self._unwatch(fd)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._session_timer is not None:
            self._session_timer.cancel()
            self._session_timer = None
        self._cancel_grants()
        current = asyncio.current_task()
        for task in (self._worker, self._auth_task):
            if task is not None and task is not current and not task.done():
                task.cancel()
        self._ops.clear()
        pending, self._pending_auth = self._pending_auth, None
        if pending is not None and asyncio.iscoroutine(pending[1]):
            pending[1].close()  # a hook's coroutine that was never awaited
        self.counters.malformed += self.conn.counters.malformed
        await self._observe_down()
        channel, unit = self.channel, self.unit
        self.channel = self.unit = None
        if channel is not None or unit is not None:
            await self.settings.kernel.release(
                channel, unit, netns=self.settings.netns, ifindex=self.ifindex
            )
        if self.pool_address is not None and self.settings.pool is not None:
            self.settings.pool.release(self.pool_address)
            self.pool_address = None
        written, self.resolv_written = self.resolv_written, None
        if written is not None:
            try:
                await asyncio.to_thread(remove_file, written)
            except OSError as exc:
                log.warning("%s: removing %s: %s", self.label, written, exc)
        log.debug("%s: released", self.label)
