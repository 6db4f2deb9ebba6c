"""Events the tunnel and session state machines report to the layer above.

Following h11's ``_events.py``, every event is a frozen, slotted, keyword-only
dataclass that checks its fields when built, so a malformed event can never
reach the daemon. :class:`~.tunnel.Tunnel.next_event` hands them out in order.

A ``result`` of ``None`` in :class:`TunnelClosed` / :class:`SessionClosed`
means no Result Code was exchanged: the transport gave up (RFC 2661 5.8), a
tie breaker was lost (RFC 2661 4.4.3), or the tunnel went down under the
session (a StopCCN clears every session without a CDN, RFC 2661 5.7).
"""

from __future__ import annotations

from dataclasses import dataclass

from .avps import Accm, CallErrors

# Not events: the values they carry. Defined in .values, re-exported for older imports.
from .values import (
    NO_BEARER,
    NO_FRAMING,
    CallKind,
    CallParams,
    PeerInfo,
    Reason,
    Role,
    SessionInfo,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TunnelEstablished:
    """SCCRQ/SCCRP/SCCCN completed (RFC 2661 7.2.1 "established")."""

    tunnel_id: int
    peer: PeerInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class TunnelClosed:
    """The tunnel is down: every session with it. Sent once per tunnel.

    ``by_peer`` says whether the peer's StopCCN (``reason``) ended it or we
    did (``reason`` is then what we sent, or None when nothing could be sent).
    ``replaced_by`` is set when a lost tie breaker handed our pending sessions
    to the tunnel the peer initiated (RFC 2661 4.4.3 and 7.2.1).
    """

    tunnel_id: int
    reason: Reason | None
    by_peer: bool
    description: str = ""
    replaced_by: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TunnelReleased:
    """The close-wait period is over (RFC 2661 5.7): the tunnel's state can be freed."""

    tunnel_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRequested:
    """The peer asked for a call (ICRQ at the LNS, OCRQ at the LAC) and ``auto_accept`` is off.

    Answer with :meth:`~.tunnel.Tunnel.accept_call` or reject with
    :meth:`~.tunnel.Tunnel.close_session`.
    """

    tunnel_id: int
    info: SessionInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEstablished:
    """ICCN/OCCN exchanged (RFC 2661 7.4, 7.5): the data plane may be set up."""

    tunnel_id: int
    info: SessionInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class DataPlaneWanted:
    """A call with ``CallParams.wait_data_plane`` is agreed but held: a call we placed has
    its ICRP (our ICCN waits), a call we answer has been accepted (our ICRP waits). The
    IDs (and, on L2TPv3, the cookies) are known.

    Create the kernel session and whatever reads its frames, then call
    :meth:`~.tunnel.Tunnel.data_plane_ready` (which sends the ICCN or ICRP), or
    :meth:`~.tunnel.Tunnel.close_session` if that failed (CDN). The wait has no set-up
    deadline of ours (it is local; see ``session_table._SETUP_STATES``): whoever asked
    for the data plane must end it; the peer's own set-up timer bounds it from its side.
    """

    tunnel_id: int
    info: SessionInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionClosed:
    """A session ended; the local session ID is free again."""

    tunnel_id: int
    session_id: int
    peer_session_id: int
    reason: Reason | None
    by_peer: bool
    was_established: bool
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WanErrorNotified:
    """WEN from the LAC (RFC 2661 6.12): the LAC's call error counters for a session.

    On L2TPv3 (RFC 3931 6.13) either LCCE may send it: see :meth:`~.tunnel.Tunnel.send_wen`.
    """

    tunnel_id: int
    session_id: int
    errors: CallErrors


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkInfoSet:
    """SLI from the LNS (RFC 2661 6.13): the PPP ACCM negotiated for a session."""

    tunnel_id: int
    session_id: int
    accm: Accm


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitStatusChanged:
    """An L2TPv3 SLI carried a Circuit Status AVP (RFC 3931 6.14, 5.4.5).

    ``active`` False: the peer's circuit is down, so data traffic towards the
    peer "MUST cease ... until the circuit is advertised as Active"; ``new``
    is the N bit (status of a new circuit rather than of an existing one).
    """

    tunnel_id: int
    session_id: int
    active: bool
    new: bool = False


ControlEvent = (
    TunnelEstablished
    | TunnelClosed
    | TunnelReleased
    | CallRequested
    | SessionEstablished
    | DataPlaneWanted
    | SessionClosed
    | WanErrorNotified
    | LinkInfoSet
    | CircuitStatusChanged
)
"""Every event a :class:`~.tunnel.Tunnel` reports."""

__all__ = [
    "NO_BEARER",
    "NO_FRAMING",
    "CallKind",
    "CallParams",
    "CallRequested",
    "CircuitStatusChanged",
    "ControlEvent",
    "DataPlaneWanted",
    "LinkInfoSet",
    "PeerInfo",
    "Reason",
    "Role",
    "SessionClosed",
    "SessionEstablished",
    "SessionInfo",
    "TunnelClosed",
    "TunnelEstablished",
    "TunnelReleased",
    "WanErrorNotified",
]
