"""Accounting for built-in PPP sessions: the :class:`~l2tp.runtime.ppp_observer.
SessionObserver` that feeds the :class:`~l2tp.radius.accounting.AccountingEngine`, and
the kernel counters it reads (:class:`KernelCounters`, :class:`KernelPacketsLost`).

Wiring (the daemon does it)::

    engine = AccountingEngine(client, Spool(path), nas=NasIdentity(identifier="lns1"))
    await engine.start()
    observer = PppAccounting(engine, accepted=radius_auth.accepted)
    backend = BuiltinPppBackend(..., observer=observer)
    ...
    observer.note_end(session_key, SessionEnd.ADMIN_CLOSE)  # before closing it (ctl)

Only authenticator-side sessions (the LNS: ``session.role is Role.LNS``) are accounted;
the LAC side is the user, not the NAS.

Why the session ended: a link that ended by itself says so (its ``Ending``,
:func:`~l2tp.radius.records.end_from_ppp`); a link the control plane stopped does not
know why, so whoever stops it (``l2tp ctl``, the Disconnect-Request server, the CDN and
StopCCN handlers, the daemon's shutdown) tells :meth:`PppAccounting.note_end` first;
without a note the Stop says NAS-Request.

A session is up, and gets its Start, when its first NCP is (IPCP or IPv6CP: an
IPv6-only session is billed as any other); the Start describes what was known then
(Framed-IP-Address with IPCP, Framed-Interface-Id with IPv6CP, RFC 3162 2.2), and its
Stop counts all the interface's octets (both address families).

A session that never came up (its link ended before any NCP: authentication refused,
negotiation failed, stopped by the control plane) had no Start: with
``tunnel_accounting`` it gets one Tunnel-Link-Reject (RFC 2867 3.6) from the observer's
``session_failed`` hook, its cause from the link's ending or, for a link the control
plane stopped, from a note taken while it was starting (``note_end(..., starting=True)``).

Acct-Tunnel-Packets-Lost (RFC 2867 4.2) comes from the kernel L2TP session's
``rx_seq_discards`` (:class:`KernelPacketsLost`, docs/radius.md says why that counter):
data packets the kernel received and dropped for their sequence numbers. It must be read
while the kernel session exists: for a session the control plane stops, the read starts
when the stop does (the ``session_stopping`` hook: the control plane deletes the kernel
session under a stop that takes over 0.2 s); for one that ends by itself, at the Stop,
before the PPP channel is closed (closing it deletes the kernel session).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from l2tp.kernel.netlink import AsyncL2tpNetlink
from l2tp.kernel.rtnl import AsyncRtnl
from l2tp.protocol.events import Role
from l2tp.radius.accounting import AccountingEngine
from l2tp.radius.auth import NoVerdict
from l2tp.radius.records import (
    AcctAuthentic,
    Counters,
    SessionDescription,
    SessionEnd,
    TunnelDescription,
    end_from_ppp,
)
from l2tp.runtime.ppp_observer import PppSessionView
from l2tp.runtime.ppp_outcome import Ending

__all__ = [
    "AcceptInfo",
    "KernelCounters",
    "KernelPacketsLost",
    "LostReader",
    "PppAccounting",
    "StatsReader",
]

StatsReader = Callable[[str | None, int], Awaitable[Counters]]
"""``read(netns, ifindex)``: an interface's counters now."""

LostReader = Callable[[PppSessionView], Awaitable[int | None]]
"""``read(view)``: the session's lost data packets now (None: not known here)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptInfo:
    """What the authentication of a session decided that accounting echoes."""

    acct_session_id: str | None = None
    """The Acct-Session-Id sent in the Access-Request (RFC 2866 5.5 wants the same)."""
    classes: tuple[bytes, ...] = ()
    """Class attributes of the Access-Accept (RFC 2865 5.25: echoed unchanged)."""
    interim_interval: float | None = None
    """Acct-Interim-Interval of the Access-Accept (RFC 2869 5.16)."""
    authentic: AcctAuthentic = AcctAuthentic.RADIUS


def _is_ipv6(host: str) -> bool:
    """Tunnel-Medium-Type from the peer's address (RFC 2868 3.2), parsed, not guessed."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).version == 6
    except ValueError:
        return False


class KernelCounters:
    """Interface counters over rtnetlink (``IFLA_STATS64``), one socket per namespace.

    Input is the interface's receive side (from the user), output its transmit side.
    """

    def __init__(self) -> None:
        self._rtnl: dict[str | None, AsyncRtnl] = {}

    async def __call__(self, netns: str | None, ifindex: int) -> Counters:
        rtnl = self._rtnl.get(netns)
        if rtnl is None:
            rtnl = self._rtnl[netns] = AsyncRtnl(netns=netns)
        stats = await rtnl.link_stats(ifindex)
        return Counters(
            input_octets=stats.rx_bytes,
            output_octets=stats.tx_bytes,
            input_packets=stats.rx_packets,
            output_packets=stats.tx_packets,
        )

    async def aclose(self) -> None:
        rtnls, self._rtnl = list(self._rtnl.values()), {}
        for rtnl in rtnls:
            await rtnl.aclose()


class KernelPacketsLost:
    """Acct-Tunnel-Packets-Lost from the kernel L2TP session's statistics: one generic
    netlink ``L2TP_CMD_SESSION_GET`` through the data plane's pipelined client
    (:class:`~l2tp.kernel.netlink.AsyncL2tpNetlink`), awaited: the loop never blocks.

    The value is ``rx_seq_discards``: data packets the kernel received in the session
    and dropped for their sequence number (out of order with reordering off, held
    longer than the reorder timeout, or without a sequence number where one is
    required). ``rx_oos_packets`` is not loss: those were reordered and most of them
    delivered. Packets that never arrived are not counted by the kernel at all (it
    skips the gap and keeps no tally), and without sequence numbers in the data
    messages (RFC 2661 5.4, off unless one side asks) nothing is detectable: 0 means
    "none detected", not "none lost".

    None, so no attribute, with a data plane that has no asynchronous kernel client
    (the null data plane, or the blocking one, which must not be called on the loop).
    """

    async def __call__(self, view: PppSessionView) -> int | None:
        netlink = getattr(view.session.dataplane, "netlink", None)
        if not isinstance(netlink, AsyncL2tpNetlink):
            return None
        tunnel_id, session_id = view.key
        stats = await netlink.session_stats(tunnel_id, session_id)
        return stats.rx_seq_discards


class PppAccounting:
    """:class:`~l2tp.runtime.ppp_observer.SessionObserver` for the accounting engine.

    ``accepted(key)``: what the authentication hook learned for session ``key`` (None:
    nothing, e.g. a local secrets file: Acct-Authentic Local). ``stats``: the counter
    reader (default :class:`KernelCounters`). ``nas_endpoint``: our address as the
    tunnel server endpoint when the session's local address is a wildcard. ``lost``:
    the Acct-Tunnel-Packets-Lost reader (default :class:`KernelPacketsLost`).
    ``denied(key)``: the ``authorization`` of the verifier's last denial of session
    ``key`` (a :class:`~l2tp.radius.auth.NoVerdict`: no server decided), for the cause
    of a Tunnel-Link-Reject.
    """

    def __init__(
        self,
        engine: AccountingEngine,
        *,
        accepted: Callable[[tuple[int, int]], AcceptInfo | None] | None = None,
        stats: StatsReader | None = None,
        nas_endpoint: str | None = None,
        lost: LostReader | None = None,
        denied: Callable[[tuple[int, int]], object | None] | None = None,
    ) -> None:
        self.engine = engine
        self.accepted = accepted
        self.stats: StatsReader = stats or KernelCounters()
        self.lost: LostReader = lost or KernelPacketsLost()
        self.denied = denied
        self.nas_endpoint = nas_endpoint
        self.active: dict[tuple[int, int], str] = {}
        """Acct-Session-Id of each accounted session, by session key."""
        self._ends: dict[tuple[int, int], SessionEnd] = {}
        self.stopping: set[tuple[int, int]] = set()
        """Sessions whose Stop is being made (counters read): not in :attr:`active` any
        more, not in the engine's spool yet (an engine closed meanwhile would lose it)."""
        self._losing: dict[tuple[int, int], asyncio.Future[int | None]] = {}
        """Acct-Tunnel-Packets-Lost reads started when the control plane began stopping
        the session (:meth:`session_stopping`), for its Stop to take."""

    def note_end(self, key: tuple[int, int], end: SessionEnd, *, starting: bool = False) -> None:
        """Why session ``key`` is about to be stopped (before the control plane stops it).

        The first reason noted wins: it is the cause, and what follows from it (the
        CDN an operator's close sends, the StopCCN of a daemon stopping) is not.
        Kept for accounted sessions, and with ``starting`` for one whose PPP is running
        but not up yet (its Tunnel-Link-Reject's cause); the session's end takes it."""
        if key in self.active or starting:
            self._ends.setdefault(key, end)

    def describe(self, view: PppSessionView, info: AcceptInfo | None) -> SessionDescription:
        """The accounting description of a session that just came up."""
        session = view.session
        local_host = session.local[0]
        if self.nas_endpoint and local_host in ("", "0.0.0.0", "::"):
            local_host = self.nas_endpoint
        tunnel = TunnelDescription(
            tunnel_id=session.info.tunnel_id,
            peer_tunnel_id=session.info.peer_tunnel_id,
            client_endpoint=session.peer[0],  # the LAC (RFC 2868 3.3: tunnel initiator)
            server_endpoint=local_host,
            ipv6=_is_ipv6(session.peer[0]),
        )
        acct_id = info.acct_session_id if info and info.acct_session_id else None
        return SessionDescription(
            acct_session_id=acct_id or self.engine.new_session_id(),
            user_name=view.user or "",
            started_at=self.engine.clock.time(),
            tunnel=tunnel,
            session_id=session.info.session_id,
            framed_address=str(view.peer_address) if view.peer_address else None,
            framed_interface_id=view.peer_interface_id,
            classes=info.classes if info else (),
            calling_station_id=session.info.calling_number,
            called_station_id=session.info.called_number,
            authentic=info.authentic if info else AcctAuthentic.LOCAL,
            nas=self.engine.nas,
            interim_interval=info.interim_interval if info else None,
        )

    def peer_terminated(self, view: PppSessionView) -> None:
        """The user's PPP sent LCP Terminate-Request (the link's observer hook): the
        session's cause, unless a reason was noted before (a CDN that came first)."""
        self.note_end(view.key, SessionEnd.PEER_TERMINATED)

    def session_up(self, view: PppSessionView) -> None:
        if view.session.role is not Role.LNS or view.key in self.active:
            return
        info = self.accepted(view.key) if self.accepted is not None else None
        description = self.describe(view, info)
        reader = None
        if view.ifindex is not None:
            ifindex, netns, stats = view.ifindex, view.netns, self.stats

            async def read() -> Counters:
                return await stats(netns, ifindex)

            reader = read
        lost, losing, key = self.lost, self._losing, view.key

        async def read_lost() -> int | None:
            early = losing.pop(key, None)
            return await (early if early is not None else lost(view))

        self.active[view.key] = description.acct_session_id
        self.engine.session_started(description, read_counters=reader, read_lost=read_lost)

    def session_failed(self, view: PppSessionView, ending: Ending | None) -> None:
        """The link ended without ever coming up (the observer hook): a
        Tunnel-Link-Reject (RFC 2867 3.6; with ``tunnel_accounting`` only), its cause
        the link's ending (authentication failed: User-Error; denied because no RADIUS
        server answered: Service-Unavailable) or, when the control plane stopped it,
        the reason noted (else NAS-Request)."""
        noted = self._ends.pop(view.key, None)
        if view.session.role is not Role.LNS or not self.engine.tunnel_accounting:
            return
        end = end_from_ppp(ending.name) if ending is not None else noted
        denied = self.denied(view.key) if self.denied is not None else None
        if end is SessionEnd.AUTH_FAILED and isinstance(denied, NoVerdict):
            end = SessionEnd.AUTH_UNANSWERED
        self.engine.session_rejected(self.describe(view, None), end or SessionEnd.NAS_REQUEST)

    def session_stopping(self, view: PppSessionView) -> None:
        """The control plane began stopping the session (the observer hook): start the
        Acct-Tunnel-Packets-Lost read now, while the kernel session surely exists; the
        Stop awaits it (bounded as any read)."""
        if view.key in self.active and view.key not in self._losing:
            early = asyncio.ensure_future(self.lost(view))
            early.add_done_callback(_retrieved)
            self._losing[view.key] = early

    async def session_down(self, view: PppSessionView, ending: Ending | None) -> None:
        acct_id = self.active.pop(view.key, None)
        noted = self._ends.pop(view.key, None)
        try:
            if acct_id is not None:
                self.stopping.add(view.key)
                end = end_from_ppp(ending.name) if ending is not None else noted
                await self.engine.session_stopped(acct_id, end or SessionEnd.NAS_REQUEST)
        finally:
            self.stopping.discard(view.key)
            early = self._losing.pop(view.key, None)  # not taken by the Stop
            if early is not None:
                early.cancel()


def _retrieved(future: asyncio.Future[int | None]) -> None:
    """Mark an early read's failure as seen: the Stop that awaits it counts it; one
    nobody awaited (the session was not accounted after all) is dropped quietly."""
    if not future.cancelled():
        future.exception()
