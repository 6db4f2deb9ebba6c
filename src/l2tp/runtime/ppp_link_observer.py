"""What one built-in PPP link tells its session observer (a mixin of
:class:`~l2tp.runtime.ppp_link.PppLink`): RADIUS accounting plugs in there
(:class:`~l2tp.runtime.ppp_observer.SessionObserver`).

``session_up`` once the first NCP (IPCP or IPv6CP) is up with its address on the
interface, once per session even when both come up (RFC 2866 5.1: one Start per
session; the interface's counters cover both address families); ``session_down`` from
the link's one release, while the interface (and its counters) still exists, bounded by
:data:`~l2tp.runtime.ppp_observer.OBSERVER_WAIT`; ``session_failed`` instead for a link
that never came up (RFC 2867 3.6 Tunnel-Link-Reject); and, when the observer has them,
``session_stopping`` and ``peer_terminated`` as soon as the control plane or the peer
ends an up session. An observer that raises is logged; the link carries on.
"""

from __future__ import annotations

import asyncio
import logging
from ipaddress import IPv4Address

from l2tp.ppp.constants import Protocol as PppProtocol
from l2tp.ppp.fsm import State
from l2tp.ppp.session import PppConnection
from l2tp.runtime.backend import BackendSession
from l2tp.runtime.ppp_network import IPAddress, LinkSettings
from l2tp.runtime.ppp_observer import OBSERVER_WAIT, PppSessionView
from l2tp.runtime.ppp_outcome import Ending

__all__ = ["PppLinkObserver"]

log = logging.getLogger("l2tp.runtime.builtin_ppp")


_NOT_NEGOTIATING = frozenset({State.INITIAL, State.STARTING, State.CLOSED, State.STOPPED})
"""IPCP states in which it is not coming up by itself (e.g. the peer's Protocol-Reject)."""

IPCP_GRACE = 3.0
"""Seconds an IPv6CP-first session's accounting Start waits for IPCP (one RFC 1661
restart interval: an IPCP that is being negotiated is up well within it); not when
IPCP is not negotiating (the peer rejected it): the Start is sent at once then."""


class PppLinkObserver:
    """Mixin: the observer calls of one link (module doc).

    It must come before :class:`~l2tp.runtime.ppp_network.PppNetwork` in the link's
    bases: that one only declares :meth:`_observe_up`.
    """

    session: BackendSession
    settings: LinkSettings
    label: str
    released: bool
    ifindex: int | None
    ifname: str | None
    ending: Ending | None
    started_at: float | None
    auth_method: str | None
    user: str | None
    claimed_user: str | None
    observed: PppSessionView | None
    _addresses: dict[PppProtocol, tuple[IPAddress, IPAddress | None, int]]
    _interface_ids: tuple[bytes | None, bytes | None]
    loop: asyncio.AbstractEventLoop
    conn: PppConnection

    def _observe_up(self, *, waited: bool = False) -> None:
        """An NCP is up with its address on the interface: tell the observer, once (at
        the first NCP: an IPv6-only session is as billable as an IPv4 one), with what
        is known then. When IPv6CP comes up first while IPCP is still wanted, the Start
        waits up to :data:`IPCP_GRACE` seconds for IPCP, so that a dual-stack session's
        records carry its Framed-IP-Address (the attribute operators bill and
        correlate by); a peer that refuses IPCP is accounted as IPv6-only after it."""
        ipcp = self.conn.ncps.get(PppProtocol.IPCP)
        if (
            not waited
            and PppProtocol.IPCP not in self._addresses
            and ipcp is not None
            and ipcp.state not in _NOT_NEGOTIATING
            and self.observed is None
            and not self.released
        ):
            self.loop.call_later(IPCP_GRACE, lambda: self._observe_up(waited=True))
            return
        observer = self.settings.observer
        if observer is None or self.observed is not None or self.released:
            return
        local, peer, _ = self._addresses.get(PppProtocol.IPCP, (None, None, 0))
        local_id, peer_id = self._interface_ids  # (None, None) unless IPv6CP is up
        self.observed = PppSessionView(
            session=self.session,
            user=self.user,
            method=self.auth_method,
            local_address=local if isinstance(local, IPv4Address) else None,
            peer_address=peer if isinstance(peer, IPv4Address) else None,
            local_interface_id=local_id,
            peer_interface_id=peer_id,
            ifindex=self.ifindex,
            ifname=self.ifname,
            netns=self.settings.netns,
            label=self.label,
        )
        try:
            observer.session_up(self.observed)
        except Exception:
            log.exception("%s: session observer failed (up)", self.label)

    async def _observe_down(self) -> None:
        """Tell the observer the session ended, while its interface still exists (its
        counters go with it); bounded by OBSERVER_WAIT, failures logged. A session it
        was never told was up is a failed one (:meth:`_observe_failed`)."""
        observer, view = self.settings.observer, self.observed
        if observer is None:
            return
        if view is None:
            if self.started_at is not None:  # a link only attached (call ended before
                self._observe_failed(observer)  # its ICCN) was never ours to reject
            return
        try:
            async with asyncio.timeout(OBSERVER_WAIT):
                await observer.session_down(view, self.ending)
        except TimeoutError:
            log.warning("%s: session observer took over %.1f s (down)", self.label, OBSERVER_WAIT)
        except Exception:
            log.exception("%s: session observer failed (down)", self.label)

    def _observe_failed(self, observer: object) -> None:
        """Tell an observer that has ``session_failed`` that this link ended without ever
        coming up (authentication refused, negotiation failed, stopped before an NCP was up):
        RADIUS accounting's Tunnel-Link-Reject (RFC 2867 3.6). Called once, from the
        link's one release; failures logged."""
        hook = getattr(observer, "session_failed", None)
        if hook is None:
            return
        view = PppSessionView(
            session=self.session,
            user=self.user or self.claimed_user,
            method=self.auth_method,
            local_address=None,
            peer_address=None,
            ifindex=self.ifindex,
            ifname=self.ifname,
            netns=self.settings.netns,
            label=self.label,
        )
        try:
            hook(view, self.ending)
        except Exception:
            log.exception("%s: session observer failed (never up)", self.label)

    def _tell_peer_terminated(self) -> None:
        """Tell the observer (accounting) now that the peer's Terminate-Request took the
        link down: the LAC's CDN usually clears the session before LCP's Stopping state
        is over, so the link then ends with no ending of its own, and whichever the
        observer heard of first, this or the CDN, is why the session ended
        (Acct-Terminate-Cause User-Request, or the CDN's cause)."""
        observer = self.settings.observer
        hook = getattr(observer, "peer_terminated", None)
        if hook is None or self.observed is None:
            return
        try:
            hook(self.observed)
        except Exception:
            log.exception("%s: session observer failed (peer terminated)", self.label)

    def _tell_stopping(self) -> None:
        """Tell the observer (accounting) that the control plane is stopping this up
        session, now: the control plane deletes the kernel session if the stop takes
        longer than its ``hangup_after`` (0.2 s), and the session's L2TP statistics go
        with it (Acct-Tunnel-Packets-Lost), while the PPP interface's counters stay
        until the release."""
        hook = getattr(self.settings.observer, "session_stopping", None)
        if hook is None or self.observed is None:
            return
        try:
            hook(self.observed)
        except Exception:
            log.exception("%s: session observer failed (stopping)", self.label)
