"""Who wants to know when a built-in PPP session is up and when it went down (accounting).

:class:`SessionObserver` is the hook :class:`~l2tp.runtime.builtin_ppp.BuiltinPppBackend`
calls (its ``observer``): :meth:`~SessionObserver.session_up` once a session carries
traffic: its first NCP opened (IPCP, RFC 1332, or IPv6CP, RFC 5072) and its interface is
up with that NCP's addresses, the moment RADIUS accounting's Start describes (RFC 2866
5.1); a dual-stack session is up once, at whichever NCP came first, and its view tells
what was known then. Then
:meth:`~SessionObserver.session_down` when that session ends, *before* its interface is
removed, so that the observer can still read the interface's counters (the kernel
deletes them with the interface). The backend waits for ``session_down`` at most
:data:`OBSERVER_WAIT` seconds; an observer that raises is logged and ignored (it must
never keep a session's fds or its pool address).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Protocol

from l2tp.runtime.backend import BackendSession

if TYPE_CHECKING:
    from l2tp.runtime.ppp_outcome import Ending

__all__ = ["OBSERVER_WAIT", "PppSessionView", "SessionObserver"]

OBSERVER_WAIT = 1.0
"""Seconds a link's release waits for :meth:`SessionObserver.session_down` (one netlink
round trip for the counters is what it is for)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PppSessionView:
    """What an observer learns of a session that is up (the same object at its end)."""

    session: BackendSession
    """The L2TP session (IDs, call parameters, role, local and peer UDP addresses)."""
    user: str | None
    """The authenticated user (None: no authentication)."""
    method: str | None
    """The authentication method (``"pap"``, ``"chap-md5"``, ``"mschap-v2"``) or None."""
    local_address: IPv4Address | None
    peer_address: IPv4Address | None
    """The user's address (IPCP, RFC 1332): Framed-IP-Address. None when IPCP was not up
    when the session came up (an IPv6-only session, or IPv6CP first)."""
    local_interface_id: bytes | None = None
    peer_interface_id: bytes | None = None
    """The IPv6CP Interface-Identifiers (RFC 5072 4.1, 8 octets) when IPv6CP was up when
    the session came up; the peer's is Framed-Interface-Id (RFC 3162 2.2). The peer's is
    None also when it negotiated none."""
    ifindex: int | None
    ifname: str | None
    netns: str | None
    """Where ``ifindex`` lives (None: our namespace)."""
    label: str
    """The session's log label."""

    @property
    def key(self) -> tuple[int, int]:
        return self.session.key


class SessionObserver(Protocol):
    """Told of built-in PPP sessions going up and down (see the module documentation)."""

    def session_up(self, view: PppSessionView) -> None:
        """The session carries traffic now (its first NCP is up); called once per
        session, on the loop."""
        ...

    async def session_down(self, view: PppSessionView, ending: Ending | None) -> None:
        """The session ended: ``ending`` is how the link ended by itself, or None when the
        control plane stopped it (CDN, StopCCN, operator, shutdown: the caller that
        stopped it knows why). Its interface still exists while this runs."""
        ...


# An observer may also define ``peer_terminated(view)``: called (on the loop, at most once
# per session) when the peer's LCP Terminate-Request takes an up session's link down, at
# that moment. Its LAC's CDN usually follows before LCP's Stopping state is over, and the
# link then ends with no ending of its own: whichever of the two the observer hears of
# first is why the session ended (PppAccounting: User-Request, or the CDN's cause).
#
# And ``session_failed(view, ending)``: called once (on the loop, synchronously, from the
# link's release) for a session whose link ended without ``session_up`` ever being called:
# authentication refused (a RADIUS Access-Reject or no answer, a wrong secret in the
# secrets file), LCP or every NCP never agreeing, or the control plane stopping it before an
# NCP was up. ``ending`` as for ``session_down`` (None: the control plane stopped it);
# ``view.user`` is the name the peer gave, authenticated or not, and the addresses are
# None. Links whose start failed (no channel) are not sessions and are not reported.
# PppAccounting turns it into a Tunnel-Link-Reject (RFC 2867 3.6).
#
# And ``session_stopping(view)``: called once (on the loop, synchronously) when the control
# plane starts stopping an up session (a CDN, a StopCCN, the operator, a shutdown), before
# LCP's Terminate-Request: the control plane deletes the kernel L2TP session if the stop
# takes longer than its ``hangup_after`` (0.2 s), long before ``session_down``, and the
# session's L2TP statistics go with it (PppAccounting starts its Acct-Tunnel-Packets-Lost
# read here). The hooks are optional so that an observer that does not care need not
# define them.
