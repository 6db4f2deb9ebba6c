"""Events a :class:`~.session.PppConnection` reports to its driver, and what the driver does.

Like h11's events these are frozen, slotted, keyword-only dataclasses that
check their fields when built. In the order a successful connection
produces them::

    LinkUp          LCP is Opened. Nothing to do yet (the MTU is known).
    AuthRequested   (authenticator, asynchronous verifier only) call auth_result().
    AuthSucceeded   the peer (or we) passed authentication.
    NetworkPhase    create the PPP unit now and connect the channel to it.
    NetworkUp       per NCP: configure addresses, set the NP mode of
                    ``data_protocol`` to pass.
    NetworkDown     per NCP that was up: set its NP mode to drop, remove addresses.
    LinkDown        LCP left Opened; every NetworkDown was reported before it.
    Terminated      the connection is over: disconnect and free the unit and channel.

``AuthFailed``, ``NetworkFailed`` and ``EchoFailed`` report failures; the
first and last are followed by LinkDown and Terminated. Secrets never
appear in an event's repr.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from .auth.base import AuthRequest
from .constants import AuthMethod, Protocol


class Role(enum.Enum):
    """Which side of authentication we are (RFC 1661 3.5, RFC 1334 2, RFC 1994 2)."""

    AUTHENTICATOR = "authenticator"
    """Demands authentication from the peer: an LNS."""
    PEER = "peer"
    """Authenticates itself when asked: a LAC or client."""


class Phase(enum.Enum):
    """Link phases of RFC 1661 section 3.2."""

    DEAD = "dead"
    ESTABLISH = "establish"
    AUTHENTICATE = "authenticate"
    NETWORK = "network"
    TERMINATE = "terminate"


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkUp:
    """LCP reached Opened (RFC 1661 3.4). ``mtu`` is the peer's MRU: the largest frame to send."""

    mtu: int
    mru: int
    auth: AuthMethod | None
    """The method negotiated for this link, in either direction, or None."""

    def __post_init__(self) -> None:
        if not 1 <= self.mtu <= 0xFFFF or not 1 <= self.mru <= 0xFFFF:
            raise ValueError("MTU and MRU must be 1-65535")


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkDown:
    """LCP left Opened (This-Layer-Down). No network protocol is up any more."""

    reason: str
    by_peer: bool = False
    """The peer's Terminate-Request took it down (RFC 1661 5.5): the end of the link is
    the peer's choice, though :class:`Terminated` follows only after the Stopping
    state's restart timer (and may never come, if the session is cleared meanwhile)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthRequested:
    """The verifier deferred: answer with :meth:`~.session.PppConnection.auth_result`.

    ``request`` holds the peer's credentials for the verifier (for example a
    RADIUS Access-Request); its secret fields are hidden from repr.
    """

    method: AuthMethod
    user: str
    request: AuthRequest = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthSucceeded:
    """Authentication passed: ``user`` is the peer's name (authenticator) or ours (peer)."""

    method: AuthMethod
    user: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthFailed:
    """Authentication failed or was refused; the link is being terminated."""

    method: AuthMethod | None
    user: str | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPhase:
    """Authentication is over (or was not required): create the PPP unit now.

    RFC 1661 3.5: NCP negotiation starts at once, so the unit must exist
    before the first :class:`NetworkUp`; its NP modes start as drop.
    """

    user: str | None
    """The authenticated peer (authenticator role), our name (peer role), or None."""
    mtu: int
    mru: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkUp:
    """An NCP reached Opened: configure the unit and set ``data_protocol`` to pass.

    IPCP fills the IPv4 fields (``dns`` are the servers the peer gave us, for
    the peer role); IPv6CP fills the interface identifiers, from which the
    link-local addresses fe80::/64 follow (RFC 5072 section 5).
    """

    protocol: Protocol
    """IPCP or IPV6CP."""
    data_protocol: Protocol
    """IPV4 or IPV6: the NP mode to set to pass."""
    local_address: IPv4Address | None = None
    peer_address: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()
    local_interface_id: bytes | None = None
    peer_interface_id: bytes | None = None

    def __post_init__(self) -> None:
        if self.protocol is Protocol.IPCP:
            if self.data_protocol is not Protocol.IPV4:
                raise ValueError("IPCP carries IPv4")
            if self.local_address is None or self.peer_address is None:
                raise ValueError("IPCP up needs both addresses")
        elif self.protocol is Protocol.IPV6CP:
            if self.data_protocol is not Protocol.IPV6:
                raise ValueError("IPv6CP carries IPv6")
            if self.local_interface_id is None or len(self.local_interface_id) != 8:
                raise ValueError("IPv6CP up needs an 8-octet local interface identifier")
            if self.peer_interface_id is not None and len(self.peer_interface_id) != 8:
                raise ValueError("interface identifiers are 8 octets")
        else:
            raise ValueError(f"{self.protocol!r} is not a network control protocol")


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkDown:
    """An NCP that was up went down: set ``data_protocol`` to drop, undo its addresses.

    ``peer_address`` lets the driver return a pooled address.
    """

    protocol: Protocol
    data_protocol: Protocol
    reason: str
    peer_address: IPv4Address | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkFailed:
    """An NCP finished without ever coming up (rejected by the peer, timed out, no address)."""

    protocol: Protocol
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EchoFailed:
    """``unanswered`` LCP Echo-Requests in a row got no reply; the link is being ended."""

    unanswered: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Terminated:
    """The connection is over (LCP This-Layer-Finished); nothing more will be sent."""

    by_peer: bool
    reason: str


PppEvent = (
    LinkUp
    | LinkDown
    | AuthRequested
    | AuthSucceeded
    | AuthFailed
    | NetworkPhase
    | NetworkUp
    | NetworkDown
    | NetworkFailed
    | EchoFailed
    | Terminated
)
