"""The attribute lists of accounting records: pure functions, no I/O, no clock.

Session records (RFC 2866 4.1 and 5): Start, Interim-Update and Stop, with the RFC 2867
4 tunnel attributes every one of them carries on an L2TP NAS; tunnel records (RFC 2867
3): Tunnel-Start/Stop/Reject for a control connection and Tunnel-Link-Start/Stop/Reject
for a session in it. Every builder takes ``now`` (UNIX seconds) and returns a tuple of
``(name, value)`` pairs in dictionary names (:data:`l2tp.radius.interface.Attribute`).

Values are plain ``int``, ``str``, ``bytes`` or ``(tag, value)`` for the tagged tunnel
attributes (RFC 2868 3: tag 0, "no tag", as one tunnel is described), so that a record
can be written to the spool as it is and sent again after a restart. Enumerated values
are their numbers (:class:`StatusType`, :class:`TerminateCause`), not their dictionary
names, so a record does not depend on the spelling of a dictionary.

Acct-Delay-Time (RFC 2866 5.2) is not here: it is the time between the event and the
moment a copy is sent, so the engine adds it at each send (:mod:`.accounting`).

How a session ended in this runtime becomes an Acct-Terminate-Cause (RFC 2866 5.10)
through one table, :data:`TERMINATE_CAUSES`; docs/radius.md ("Accounting") has it too.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from l2tp.radius.interface import Attribute

__all__ = [
    "TERMINATE_CAUSES",
    "AcctAuthentic",
    "Counters",
    "NasIdentity",
    "SessionDescription",
    "SessionEnd",
    "SessionIdAllocator",
    "StatusType",
    "TerminateCause",
    "TunnelDescription",
    "end_from_cdn",
    "end_from_ppp",
    "interim_record",
    "nas_record",
    "split_octets",
    "start_record",
    "stop_record",
    "tunnel_link_record",
    "tunnel_record",
]

TUNNEL_TYPE_L2TP = 3
"""Tunnel-Type L2TP (RFC 2868 3.1)."""
MEDIUM_IPV4 = 1
MEDIUM_IPV6 = 2
"""Tunnel-Medium-Type IPv4 / IPv6 (RFC 2868 3.2, the address families of RFC 1700)."""
UNTAGGED = 0
"""RFC 2868 3: tag 0 on a tagged attribute means the attributes describe one tunnel."""
_U32 = 0xFFFFFFFF


class StatusType(enum.IntEnum):
    """Acct-Status-Type (RFC 2866 5.1; RFC 2867 3 adds 9-14)."""

    START = 1
    STOP = 2
    INTERIM_UPDATE = 3
    ACCOUNTING_ON = 7
    ACCOUNTING_OFF = 8
    TUNNEL_START = 9
    TUNNEL_STOP = 10
    TUNNEL_REJECT = 11
    TUNNEL_LINK_START = 12
    TUNNEL_LINK_STOP = 13
    TUNNEL_LINK_REJECT = 14


class AcctAuthentic(enum.IntEnum):
    """Acct-Authentic (RFC 2866 5.6): who authenticated the user."""

    RADIUS = 1
    LOCAL = 2


class TerminateCause(enum.IntEnum):
    """Acct-Terminate-Cause (RFC 2866 5.10)."""

    USER_REQUEST = 1
    LOST_CARRIER = 2
    LOST_SERVICE = 3
    IDLE_TIMEOUT = 4
    SESSION_TIMEOUT = 5
    ADMIN_RESET = 6
    ADMIN_REBOOT = 7
    PORT_ERROR = 8
    NAS_ERROR = 9
    NAS_REQUEST = 10
    NAS_REBOOT = 11
    PORT_UNNEEDED = 12
    PORT_PREEMPTED = 13
    PORT_SUSPENDED = 14
    SERVICE_UNAVAILABLE = 15
    CALLBACK = 16
    USER_ERROR = 17
    HOST_REQUEST = 18


class SessionEnd(enum.Enum):
    """How a session ended in this runtime (what :data:`TERMINATE_CAUSES` maps).

    The first group is the built-in PPP's own endings
    (:class:`l2tp.runtime.ppp_outcome.Ending`, :func:`end_from_ppp`); the second the
    L2TP control plane's (a CDN or StopCCN, :func:`end_from_cdn`); the third decisions
    of this NAS (timeouts, the operator, a Disconnect-Request, the daemon stopping).
    """

    PEER_TERMINATED = "the user's PPP sent LCP Terminate-Request"
    ECHO_FAILED = "LCP Echo-Requests unanswered"
    HANGUP = "the PPP channel hung up under the link"
    NEGOTIATION_FAILED = "LCP or an NCP could not agree"
    AUTH_FAILED = "authentication of the user failed"
    AUTH_UNANSWERED = "no RADIUS server decided the user's authentication"
    AUTH_TO_PEER_FAILED = "authentication to the peer failed"
    LOCAL_FAILURE = "the kernel refused what the link needs"
    INTERNAL_ERROR = "a bug in this process"
    PEER_CDN = "the LAC cleared the call (CDN)"
    PEER_CDN_LOST_CARRIER = "the LAC cleared the call, carrier lost (CDN result 1)"
    PEER_CDN_ADMIN = "the LAC cleared the call administratively (CDN result 3)"
    TUNNEL_LOST = "the control connection ended (StopCCN, peer unreachable)"
    SESSION_TIMEOUT = "Session-Timeout expired"
    IDLE_TIMEOUT = "Idle-Timeout expired"
    ADMIN_CLOSE = "closed by the operator (l2tp ctl)"
    DISCONNECT_REQUEST = "Disconnect-Request (RFC 5176)"
    SHUTDOWN = "the daemon is stopping"
    NAS_REQUEST = "closed by this NAS for another reason"


E, C = SessionEnd, TerminateCause
TERMINATE_CAUSES: dict[SessionEnd, TerminateCause] = {
    # The user's side ended PPP on purpose: the RFC's "user requested termination".
    E.PEER_TERMINATED: C.USER_REQUEST,
    # No answer from the user's PPP / the kernel session vanished: the line dropped.
    E.ECHO_FAILED: C.LOST_CARRIER,
    E.HANGUP: C.LOST_CARRIER,
    # The NAS could not provide the PPP service asked for (options, NCPs).
    E.NEGOTIATION_FAILED: C.SERVICE_UNAVAILABLE,
    # "Input from user is in error": wrong credentials (Tunnel-Link-Reject and
    # Tunnel-Reject only: a session or tunnel that failed authentication had no Start).
    E.AUTH_FAILED: C.USER_ERROR,
    # Denied because no RADIUS server answered: not the user's error; the NAS "was
    # unable to provide requested service" (Tunnel-Link-Reject only).
    E.AUTH_UNANSWERED: C.SERVICE_UNAVAILABLE,
    E.AUTH_TO_PEER_FAILED: C.SERVICE_UNAVAILABLE,
    E.LOCAL_FAILURE: C.NAS_ERROR,
    E.INTERNAL_ERROR: C.NAS_ERROR,
    # The LAC cleared the call: the user hung up on its side, unless it says the
    # carrier was lost or its operator cleared it.
    E.PEER_CDN: C.USER_REQUEST,
    E.PEER_CDN_LOST_CARRIER: C.LOST_CARRIER,
    E.PEER_CDN_ADMIN: C.ADMIN_RESET,
    # The tunnel, the service the session ran over, went away.
    E.TUNNEL_LOST: C.LOST_SERVICE,
    E.SESSION_TIMEOUT: C.SESSION_TIMEOUT,
    E.IDLE_TIMEOUT: C.IDLE_TIMEOUT,
    E.ADMIN_CLOSE: C.ADMIN_RESET,
    E.DISCONNECT_REQUEST: C.ADMIN_RESET,
    # RFC 2866 5.10: Admin-Reboot is "administrator is ending service on the NAS, for
    # example prior to rebooting"; NAS-Reboot is a non-administrative end (a crash).
    # A daemon told to stop (systemctl, SIGTERM) is the former.
    E.SHUTDOWN: C.ADMIN_REBOOT,
    E.NAS_REQUEST: C.NAS_REQUEST,
}
"""How a session ended -> Acct-Terminate-Cause; every :class:`SessionEnd` has a row."""
del E, C

_PPP_ENDS = {
    "AUTH_FAILED": SessionEnd.AUTH_FAILED,
    "AUTH_TO_PEER_FAILED": SessionEnd.AUTH_TO_PEER_FAILED,
    "ECHO_FAILED": SessionEnd.ECHO_FAILED,
    "PEER_TERMINATED": SessionEnd.PEER_TERMINATED,
    "NEGOTIATION_FAILED": SessionEnd.NEGOTIATION_FAILED,
    "HANGUP": SessionEnd.HANGUP,
    "SESSION_TIMEOUT": SessionEnd.SESSION_TIMEOUT,
    "IDLE_TIMEOUT": SessionEnd.IDLE_TIMEOUT,
    "LOCAL_FAILURE": SessionEnd.LOCAL_FAILURE,
    "INTERNAL_ERROR": SessionEnd.INTERNAL_ERROR,
}


def end_from_ppp(ending_name: str | None) -> SessionEnd:
    """The :class:`SessionEnd` of a built-in PPP link's ``Ending`` (by member name, so
    this module does not import the runtime); None (stopped by the control plane for a
    reason nobody recorded) is :attr:`SessionEnd.NAS_REQUEST`."""
    if ending_name is None:
        return SessionEnd.NAS_REQUEST
    return _PPP_ENDS.get(ending_name, SessionEnd.NAS_REQUEST)


def end_from_cdn(result: int, *, by_peer: bool) -> SessionEnd:
    """The :class:`SessionEnd` of a call cleared with a CDN of Result Code ``result``
    (RFC 2661 4.4.2): the peer's CDN by its code, ours is this NAS's request."""
    if not by_peer:
        return SessionEnd.NAS_REQUEST
    if result == 1:
        return SessionEnd.PEER_CDN_LOST_CARRIER
    if result == 3:
        return SessionEnd.PEER_CDN_ADMIN
    return SessionEnd.PEER_CDN


# --- identities --------------------------------------------------------------------------


class SessionIdAllocator:
    """Acct-Session-Id values: ``<instance>-<counter>``, unique and stable.

    Stable: a session's id is fixed at its Start and copied into every record, and a
    record in the spool keeps it across a restart, so Start, Interim and Stop (even a
    Stop replayed by the next process) match on the server (RFC 2866 5.5). Unique across
    restarts without a state file: the instance prefix is the start time in seconds
    (hex, so ids sort by daemon start in a ``detail`` file) plus 16 random bits, which
    keep two starts in the same second, or after the clock was stepped back, apart;
    the counter then numbers the sessions of one process. An id is 21 characters.
    """

    def __init__(self, now: float, *, random_bits: Callable[[int], int] | None = None) -> None:
        bits = (random_bits or secrets.randbits)(16)
        self.instance = f"{int(now) & _U32:08x}{bits & 0xFFFF:04x}"
        self._next = 0

    def next(self) -> str:
        """A fresh Acct-Session-Id."""
        self._next += 1
        return f"{self.instance}-{self._next & _U32:08x}"


@dataclass(frozen=True, slots=True, kw_only=True)
class NasIdentity:
    """NAS-Identifier / NAS-IP-Address (RFC 2866 4.1 requires one of them)."""

    identifier: str | None = None
    ip_address: str | None = None

    def attributes(self) -> list[Attribute]:
        attrs: list[Attribute] = []
        if self.identifier:
            attrs.append(("NAS-Identifier", self.identifier))
        if self.ip_address:
            attrs.append(("NAS-IP-Address", self.ip_address))
        return attrs


@dataclass(frozen=True, slots=True, kw_only=True)
class TunnelDescription:
    """One L2TP control connection as RFC 2867 describes it.

    ``client_endpoint`` is the LAC's address, ``server_endpoint`` the LNS's (RFC 2868
    3.3-3.4: the initiator and the terminator of the tunnel); on an LNS the first is the
    peer. ``ipv6`` picks Tunnel-Medium-Type.
    """

    tunnel_id: int
    peer_tunnel_id: int
    client_endpoint: str
    server_endpoint: str
    ipv6: bool = False
    acct_session_id: str = ""
    """Acct-Session-Id of the tunnel's own Tunnel-Start/Stop records."""
    client_auth_id: str | None = None
    """The LAC's Host Name (Tunnel-Client-Auth-ID, RFC 2868 3.9)."""
    server_auth_id: str | None = None
    """Our Host Name (Tunnel-Server-Auth-ID, RFC 2868 3.10)."""

    @property
    def connection(self) -> str:
        """Acct-Tunnel-Connection of the tunnel (RFC 2867 4.1: its L2TP Tunnel ID)."""
        return str(self.tunnel_id)

    def attributes(self, connection: str | None = None) -> list[Attribute]:
        """The RFC 2867 4 / RFC 2868 attributes naming this tunnel (and a session in it)."""
        attrs: list[Attribute] = [
            ("Tunnel-Type", (UNTAGGED, TUNNEL_TYPE_L2TP)),
            ("Tunnel-Medium-Type", (UNTAGGED, MEDIUM_IPV6 if self.ipv6 else MEDIUM_IPV4)),
            ("Tunnel-Client-Endpoint", (UNTAGGED, self.client_endpoint)),
            ("Tunnel-Server-Endpoint", (UNTAGGED, self.server_endpoint)),
            ("Acct-Tunnel-Connection", connection or self.connection),
        ]
        if self.client_auth_id:
            attrs.append(("Tunnel-Client-Auth-Id", (UNTAGGED, self.client_auth_id)))
        if self.server_auth_id:
            attrs.append(("Tunnel-Server-Auth-Id", (UNTAGGED, self.server_auth_id)))
        return attrs


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionDescription:
    """What accounting needs to know of one session, fixed at its Start."""

    acct_session_id: str
    user_name: str
    started_at: float
    """UNIX time the session came up (its first NCP opened): Acct-Session-Time counts
    from here."""
    tunnel: TunnelDescription
    session_id: int
    """Our L2TP Session ID (in Acct-Tunnel-Connection with the Tunnel ID)."""
    framed_address: str | None = None
    """The user's IPv4 address (Framed-IP-Address) if IPCP was up at the Start."""
    framed_interface_id: bytes | None = None
    """The user's IPv6CP Interface-Identifier (8 octets; Framed-Interface-Id, RFC 3162
    2.2) if IPv6CP was up at the Start and the user negotiated one."""
    classes: tuple[bytes, ...] = ()
    """Class values of the Access-Accept, echoed unchanged in every record (RFC 2865 5.25)."""
    calling_station_id: str | None = None
    called_station_id: str | None = None
    authentic: AcctAuthentic = AcctAuthentic.RADIUS
    nas: NasIdentity = field(default_factory=NasIdentity)
    interim_interval: float | None = None
    """Seconds between Interim-Updates (Acct-Interim-Interval from the Access-Accept
    overrides the configuration's); None: none."""

    @property
    def connection(self) -> str:
        """Acct-Tunnel-Connection of the session: ``<tunnel id>/<session id>`` (RFC 2867
        4.1: "the L2TP Tunnel ID and Call ID might be encoded in this field")."""
        return f"{self.tunnel.tunnel_id}/{self.session_id}"


@dataclass(frozen=True, slots=True)
class Counters:
    """A session interface's counters (the kernel's 64-bit ``rtnl_link_stats64``).

    Input is what the NAS received from the user (RFC 2866 5.3), i.e. the interface's
    receive counters; output what it sent to the user.
    """

    input_octets: int = 0
    output_octets: int = 0
    input_packets: int = 0
    output_packets: int = 0


def split_octets(octets: int) -> tuple[int, int]:
    """``(gigawords, low 32 bits)``: RFC 2869 5.1-5.2 carry the times a 32-bit octet
    counter wrapped in Acct-Input/Output-Gigawords."""
    if octets < 0:
        raise ValueError("octet counts are never negative")
    return (octets >> 32) & _U32, octets & _U32


def _counter_attributes(counters: Counters) -> list[Attribute]:
    in_giga, in_low = split_octets(counters.input_octets)
    out_giga, out_low = split_octets(counters.output_octets)
    return [
        ("Acct-Input-Octets", in_low),
        ("Acct-Output-Octets", out_low),
        ("Acct-Input-Gigawords", in_giga),
        ("Acct-Output-Gigawords", out_giga),
        # RFC 2866 5.7-5.8 have no high word for packets: a 32-bit counter, which wraps.
        ("Acct-Input-Packets", counters.input_packets & _U32),
        ("Acct-Output-Packets", counters.output_packets & _U32),
    ]


def _session_head(status: StatusType, session: SessionDescription, now: float) -> list[Attribute]:
    attrs: list[Attribute] = [
        ("Acct-Status-Type", int(status)),
        ("Acct-Session-Id", session.acct_session_id),
        ("User-Name", session.user_name),
    ]
    attrs += session.nas.attributes()
    attrs.append(("Acct-Authentic", int(session.authentic)))
    attrs.append(("Event-Timestamp", int(now)))
    if session.framed_address:
        attrs.append(("Framed-IP-Address", session.framed_address))
    if session.framed_interface_id is not None:
        attrs.append(("Framed-Interface-Id", session.framed_interface_id))
    if session.calling_station_id:
        attrs.append(("Calling-Station-Id", session.calling_station_id))
    if session.called_station_id:
        attrs.append(("Called-Station-Id", session.called_station_id))
    attrs += [("Class", value) for value in session.classes]
    attrs += session.tunnel.attributes(session.connection)
    return attrs


def _session_time(session: SessionDescription, now: float) -> int:
    """Whole seconds up (RFC 2866 5.7), never negative if the clock was stepped back."""
    return max(0, int(now - session.started_at))


def start_record(session: SessionDescription, now: float) -> tuple[Attribute, ...]:
    """Accounting Start (RFC 2866 4.1, Acct-Status-Type 1)."""
    return tuple(_session_head(StatusType.START, session, now))


def interim_record(
    session: SessionDescription, counters: Counters, now: float
) -> tuple[Attribute, ...]:
    """Interim-Update (Acct-Status-Type 3): the totals so far (RFC 2869 2.1)."""
    attrs = _session_head(StatusType.INTERIM_UPDATE, session, now)
    attrs.append(("Acct-Session-Time", _session_time(session, now)))
    attrs += _counter_attributes(counters)
    return tuple(attrs)


def stop_record(
    session: SessionDescription,
    counters: Counters,
    cause: TerminateCause,
    now: float,
    *,
    packets_lost: int | None = None,
) -> tuple[Attribute, ...]:
    """Accounting Stop (Acct-Status-Type 2) with the totals and Acct-Terminate-Cause.

    ``packets_lost``: Acct-Tunnel-Packets-Lost (RFC 2867 4.2), when the data plane
    knows it (the kernel's sequence-error count of the session).
    """
    attrs = _session_head(StatusType.STOP, session, now)
    attrs.append(("Acct-Session-Time", _session_time(session, now)))
    attrs += _counter_attributes(counters)
    attrs.append(("Acct-Terminate-Cause", int(cause)))
    if packets_lost is not None:
        attrs.append(("Acct-Tunnel-Packets-Lost", packets_lost & _U32))
    return tuple(attrs)


_TUNNEL_STATUSES = (StatusType.TUNNEL_START, StatusType.TUNNEL_STOP, StatusType.TUNNEL_REJECT)
_LINK_STATUSES = (
    StatusType.TUNNEL_LINK_START,
    StatusType.TUNNEL_LINK_STOP,
    StatusType.TUNNEL_LINK_REJECT,
)


def tunnel_record(
    status: StatusType,
    tunnel: TunnelDescription,
    now: float,
    *,
    nas: NasIdentity | None = None,
    started_at: float | None = None,
    cause: TerminateCause | None = None,
) -> tuple[Attribute, ...]:
    """Tunnel-Start, Tunnel-Stop or Tunnel-Reject (RFC 2867 3.1-3.3).

    The Stop carries Acct-Session-Time (from ``started_at``) and, as the Reject,
    Acct-Terminate-Cause when given (RFC 2867 3.2-3.3 "may").
    """
    if status not in _TUNNEL_STATUSES:
        raise ValueError(f"{status!r} is not a tunnel record")
    attrs: list[Attribute] = [
        ("Acct-Status-Type", int(status)),
        ("Acct-Session-Id", tunnel.acct_session_id),
    ]
    attrs += (nas or NasIdentity()).attributes()
    attrs.append(("Event-Timestamp", int(now)))
    attrs += tunnel.attributes()
    if status is StatusType.TUNNEL_STOP and started_at is not None:
        attrs.append(("Acct-Session-Time", max(0, int(now - started_at))))
    if status is not StatusType.TUNNEL_START and cause is not None:
        attrs.append(("Acct-Terminate-Cause", int(cause)))
    return tuple(attrs)


def tunnel_link_record(
    status: StatusType,
    session: SessionDescription,
    now: float,
    *,
    counters: Counters | None = None,
    cause: TerminateCause | None = None,
    packets_lost: int | None = None,
) -> tuple[Attribute, ...]:
    """Tunnel-Link-Start, -Stop or -Reject (RFC 2867 3.4-3.6) for a session's link.

    The Stop adds the session's time and counters and Acct-Tunnel-Packets-Lost; Stop and
    Reject the cause. A Reject (the call failed, e.g. authentication) has no Start.
    """
    if status not in _LINK_STATUSES:
        raise ValueError(f"{status!r} is not a tunnel link record")
    attrs: list[Attribute] = [
        ("Acct-Status-Type", int(status)),
        ("Acct-Session-Id", session.acct_session_id),
    ]
    if session.user_name:
        attrs.append(("User-Name", session.user_name))
    attrs += session.nas.attributes()
    attrs.append(("Event-Timestamp", int(now)))
    attrs += session.tunnel.attributes(session.connection)
    if status is StatusType.TUNNEL_LINK_STOP:
        attrs.append(("Acct-Session-Time", _session_time(session, now)))
        attrs += _counter_attributes(counters or Counters())
        if packets_lost is not None:
            attrs.append(("Acct-Tunnel-Packets-Lost", packets_lost & _U32))
    if status is not StatusType.TUNNEL_LINK_START and cause is not None:
        attrs.append(("Acct-Terminate-Cause", int(cause)))
    return tuple(attrs)


def nas_record(
    status: StatusType, nas: NasIdentity, acct_session_id: str, now: float
) -> tuple[Attribute, ...]:
    """Accounting-On or Accounting-Off (RFC 2866 5.1): this NAS starts or stops
    accounting, which tells a server that every session it still thinks open on this
    NAS is over (a Start of a process that crashed gets no Stop otherwise)."""
    if status not in (StatusType.ACCOUNTING_ON, StatusType.ACCOUNTING_OFF):
        raise ValueError(f"{status!r} is not Accounting-On/Off")
    attrs: list[Attribute] = [
        ("Acct-Status-Type", int(status)),
        ("Acct-Session-Id", acct_session_id),
    ]
    attrs += nas.attributes()
    attrs.append(("Event-Timestamp", int(now)))
    return tuple(attrs)


def value_of(record: tuple[Attribute, ...], name: str) -> object | None:
    """The first value of ``name`` in ``record`` (None when absent)."""
    for key, value in record:
        if key == name:
            return value
    return None
