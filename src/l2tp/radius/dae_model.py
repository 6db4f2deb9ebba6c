"""The vocabulary of Dynamic Authorization (RFC 5176): the attribute rules, the
Error-Cause values, what the server asks of the sessions (:class:`SessionDirectory`,
:class:`SessionQuery`, :class:`SessionRef`), its configuration (:class:`DaeClient`,
:class:`NasIdentity`) and its counters. :mod:`l2tp.radius.dae` re-exports all of it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

DEFAULT_PORT = 3799
"""RFC 5176 3: the UDP port of Dynamic Authorization Servers."""
DEFAULT_WINDOW = 300.0
"""Seconds an Event-Timestamp may differ from our clock, and how long a reply is kept
for retransmissions (RFC 5176 2.3 and 6.4 want the two windows equal). Five minutes, as
the Kerberos clock-skew default: loose NTP is enough."""
DEFAULT_MAX_PENDING = 64
"""Requests worked on at once (a Disconnect waits for its CDN); more are dropped."""
DEFAULT_CACHE_SIZE = 4096
"""Replies kept for duplicate detection; the oldest go first when full."""
MAX_PACKET = 4096
"""RFC 2865 3: the largest RADIUS packet."""
HEADER = 20

Address = IPv4Address | IPv6Address

# Attribute numbers (RFC 2865 5, RFC 2866 5, RFC 2869 5, RFC 3162 2, RFC 5176 3.6).
USER_NAME = 1
NAS_IP_ADDRESS = 4
SERVICE_TYPE = 6
FRAMED_IP_ADDRESS = 8
SESSION_TIMEOUT = 27
CALLING_STATION_ID = 31
NAS_IDENTIFIER = 32
PROXY_STATE = 33
ACCT_SESSION_ID = 44
ACCT_TERMINATE_CAUSE = 49
EVENT_TIMESTAMP = 55
MESSAGE_AUTHENTICATOR = 80
NAS_IPV6_ADDRESS = 95

SERVICE_FRAMED_USER = 2
SERVICE_AUTHORIZE_ONLY = 17
"""RFC 5176 3.2: a CoA asking the NAS to re-authorize with an Access-Request."""

IDENTIFICATION = frozenset({USER_NAME, ACCT_SESSION_ID, FRAMED_IP_ADDRESS, CALLING_STATION_ID})
"""Session identification attributes we match on (RFC 5176 3: all present must match)."""
NAS_IDENTIFICATION = frozenset({NAS_IP_ADDRESS, NAS_IDENTIFIER, NAS_IPV6_ADDRESS})
"""Checked against our own identity (Error-Cause 403 when one differs)."""
TRANSPORT = frozenset({EVENT_TIMESTAMP, MESSAGE_AUTHENTICATOR, PROXY_STATE})
"""Handled by the transport (Proxy-State is echoed in the reply, RFC 5176 3)."""
DISCONNECT_ONLY = frozenset({ACCT_TERMINATE_CAUSE})
"""Allowed in a Disconnect-Request and ignored (RFC 5176 3.6: the NAS picks the cause)."""
CHANGES = frozenset({SESSION_TIMEOUT})
"""Authorization changes a CoA-Request may carry that we apply."""
SINGLE = IDENTIFICATION | NAS_IDENTIFICATION | CHANGES | {SERVICE_TYPE, EVENT_TIMESTAMP}
"""At most once in a request (RFC 5176 3.6 "0-1"); twice is an invalid request."""


class ErrorCause(enum.IntEnum):
    """Error-Cause values (RFC 5176 3.5); the ones this server sends are documented."""

    RESIDUAL_SESSION_CONTEXT_REMOVED = 201
    INVALID_EAP_PACKET = 202
    UNSUPPORTED_ATTRIBUTE = 401
    """An attribute we do not honour in this kind of request (or for that session)."""
    MISSING_ATTRIBUTE = 402
    """No session identification attribute."""
    NAS_IDENTIFICATION_MISMATCH = 403
    """NAS-Identifier, NAS-IP-Address or NAS-IPv6-Address names another NAS."""
    INVALID_REQUEST = 404
    """An attribute of the wrong size or encoding, or a single-valued one twice."""
    UNSUPPORTED_SERVICE = 405
    """A Service-Type other than Framed-User: Authorize-Only (we do not re-authorize on
    request; the NAK echoes it, RFC 5176 3.2) or any other."""
    UNSUPPORTED_EXTENSION = 406
    INVALID_ATTRIBUTE_VALUE = 407
    ADMINISTRATIVELY_PROHIBITED = 501
    REQUEST_NOT_ROUTABLE = 502
    SESSION_CONTEXT_NOT_FOUND = 503
    """No session matches the identification attributes."""
    SESSION_CONTEXT_NOT_REMOVABLE = 504
    """A matching session could not be closed."""
    OTHER_PROXY_PROCESSING_ERROR = 505
    RESOURCES_UNAVAILABLE = 506
    """Our session directory failed (a bug, logged with its traceback)."""
    REQUEST_INITIATED = 507


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionQuery:
    """The session identification attributes of one request (None: not in it)."""

    acct_session_id: str | None = None
    user_name: str | None = None
    framed_ip: IPv4Address | None = None
    calling_station_id: str | None = None
    nas: NasScope | None = None
    """Whose sessions the request's NAS identification attributes address
    (:meth:`NasIdentity.scope`); None: anyone's (it carries none). Not an identification
    attribute: a request with only these is still missing one (Error-Cause 402)."""

    @property
    def empty(self) -> bool:
        return (
            self.acct_session_id is None
            and self.user_name is None
            and self.framed_ip is None
            and self.calling_station_id is None
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRef:
    """One live session as a :class:`SessionDirectory` describes it.

    ``key`` is the runtime's ``(tunnel_id, session_id)``. ``acct_session_id`` is the
    Acct-Session-Id the accounting engine sent for the session (RFC 2866 5.5); the
    directory takes it from the accounting engine, and a session it has none for can
    be found by the other attributes only.
    """

    key: tuple[int, int]
    acct_session_id: str | None = None
    user_name: str | None = None
    framed_ip: IPv4Address | None = None
    calling_station_id: str | None = None
    listener: str | None = None
    """The ``[listener.NAME]`` whose call it is (its NAS identity may be its own); None:
    a session of no listener (a LAC's call), which goes by the daemon's identity."""

    def matches(self, query: SessionQuery) -> bool:
        """Whether every identification attribute of ``query`` matches (RFC 5176 3), and
        the session is one of the NAS the request names (:attr:`SessionQuery.nas`)."""
        pairs = (
            (query.acct_session_id, self.acct_session_id),
            (query.user_name, self.user_name),
            (query.framed_ip, self.framed_ip),
            (query.calling_station_id, self.calling_station_id),
        )
        if not all(wanted is None or wanted == have for wanted, have in pairs):
            return False
        return query.nas is None or query.nas.covers(self.listener)


class SessionDirectory(Protocol):
    """The live sessions, as the Dynamic Authorization server needs them."""

    def find(self, query: SessionQuery) -> Sequence[SessionRef]:
        """Every live session matching all of ``query``'s attributes (never called with
        an empty query)."""
        ...

    async def disconnect(self, ref: SessionRef) -> bool:
        """Close the session (CDN, Result Code 3 administrative); True once it is closed,
        False if it could not be (already gone, or it did not end in time)."""
        ...

    async def set_session_timeout(self, ref: SessionRef, seconds: int | None) -> bool:
        """End the session ``seconds`` from now (None: no limit any more); False if the
        session cannot take one (e.g. a pppd session) or is gone."""
        ...


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class DaeClient:
    """A Dynamic Authorization Client we answer: its source address and shared secret."""

    address: Address
    secret: bytes = field(repr=False)
    name: str = ""
    """For logs (default: the address)."""

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("a Dynamic Authorization client needs a shared secret (RFC 2865 3)")

    @property
    def label(self) -> str:
        return self.name or str(self.address)


@dataclass(frozen=True, slots=True, kw_only=True)
class NasIdentity:
    """Who we are: a request naming another NAS is refused (Error-Cause 403). A field we
    have no value for is not checked (the request cannot be compared with nothing)."""

    identifier: str | None = None
    ipv4: IPv4Address | None = None
    ipv6: IPv6Address | None = None
    alternates: tuple[NasIdentity, ...] = ()
    """Other names the NAS answers to: the identities of listeners with a RADIUS table
    of their own (``[listener.L.radius]`` with another ``nas_identifier`` or
    ``nas_ip_address``), whose Access-Requests and accounting records carry them. A
    request matching any one of the identities is addressed to us."""
    listeners: tuple[str, ...] = ()
    """An alternate's: the listeners whose sessions go by it (those with this identity
    in their effective ``[listener.L.radius]``). The daemon's own identity covers every
    session of a listener that no alternate lists (and the sessions of no listener)."""

    def matches(
        self, identifier: str | None, ipv4: IPv4Address | None, ipv6: IPv6Address | None
    ) -> bool:
        """Whether the request's NAS attributes (None: absent) name this identity or one
        of its alternates, each attribute checked only where we have a value for it."""
        for nas in (self, *self.alternates):
            if identifier is not None and nas.identifier not in (None, identifier):
                continue
            if ipv4 is not None and nas.ipv4 is not None and ipv4 != nas.ipv4:
                continue
            if ipv6 is not None and nas.ipv6 is not None and ipv6 != nas.ipv6:
                continue
            return True
        return False

    def _compared(
        self, identifier: str | None, ipv4: IPv4Address | None, ipv6: IPv6Address | None
    ) -> int | None:
        """How many of the request's NAS attributes this identity alone (not its
        alternates) has a value for and matched; None when one of them differs."""
        compared = 0
        for wanted, have in ((identifier, self.identifier), (ipv4, self.ipv4), (ipv6, self.ipv6)):
            if wanted is None or have is None:
                continue
            if wanted != have:
                return None
            compared += 1
        return compared

    def scope(
        self, identifier: str | None, ipv4: IPv4Address | None, ipv6: IPv6Address | None
    ) -> NasScope | None:
        """Whose sessions a request with these NAS attributes (None: absent) addresses;
        None: everyone's (it carries none). Call it once :meth:`matches` said yes.

        With per-listener identities a request naming listener A's must not reach
        listener B's sessions. The identities it matches most specifically win: those
        that compared the most of its attributes. A NAS-Identifier ``edge`` with an
        address that every identity shares names the ``edge`` listeners only, and the
        daemon's identity without a ``nas_identifier`` (not compared: its
        Access-Requests carry each listener's PPP name) does not take every request
        naming a listener's. Equally specific matches all count: an address alone,
        shared by the daemon and a listener, names both.
        """
        if identifier is None and ipv4 is None and ipv6 is None:
            return None
        found: list[tuple[int, NasIdentity]] = []
        for identity in (self, *self.alternates):
            n = identity._compared(identifier, ipv4, ipv6)
            if n is not None:
                found.append((n, identity))
        best = max((n for n, _ in found), default=0)
        chosen = [i for n, i in found if n == best]
        return NasScope(
            listeners=frozenset(name for i in chosen if i is not self for name in i.listeners),
            daemon=any(i is self for i in chosen),
            claimed=frozenset(name for i in self.alternates for name in i.listeners),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NasScope:
    """The sessions a request's NAS attributes address (:meth:`NasIdentity.scope`):
    those of ``listeners`` and, with ``daemon``, those that go by the daemon's own
    identity (of a listener no alternate lists in ``claimed``, or of no listener)."""

    listeners: frozenset[str] = frozenset()
    daemon: bool = False
    claimed: frozenset[str] = frozenset()

    def covers(self, listener: str | None) -> bool:
        """Whether a session of ``listener`` (None: of no listener) is addressed."""
        if listener is not None and listener in self.listeners:
            return True
        return self.daemon and (listener is None or listener not in self.claimed)


@dataclass(slots=True)
class DaeCounters:
    """Every outcome, for ``l2tp ctl`` and metrics."""

    received: int = 0
    disconnect_requests: int = 0
    coa_requests: int = 0
    disconnect_acks: int = 0
    disconnect_naks: int = 0
    coa_acks: int = 0
    coa_naks: int = 0
    naks_by_cause: dict[int, int] = field(default_factory=dict)
    unknown_client: int = 0
    """Datagrams from an address not in the client table (dropped)."""
    bad_authenticator: int = 0
    """Request Authenticator did not verify with the client's secret (dropped)."""
    bad_message_authenticator: int = 0
    malformed: int = 0
    """Not a RADIUS packet (short, bad lengths, broken attribute list): dropped."""
    unsupported_code: int = 0
    """A RADIUS code other than Disconnect-Request and CoA-Request (dropped)."""
    duplicates: int = 0
    """Retransmissions: answered from the cache, or dropped while still in progress."""
    stale_timestamp: int = 0
    missing_timestamp: int = 0
    overload: int = 0
    """Dropped because :data:`DEFAULT_MAX_PENDING` requests were in progress."""
    directory_errors: int = 0
    sessions_disconnected: int = 0
    session_timeouts_set: int = 0


DROP_COUNTERS = (
    "unknown_client",
    "bad_authenticator",
    "bad_message_authenticator",
    "malformed",
    "unsupported_code",
    "stale_timestamp",
    "missing_timestamp",
    "overload",
)
"""The :class:`DaeCounters` of datagrams dropped unanswered (``l2tp ctl``, metrics)."""
