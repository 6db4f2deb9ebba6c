"""Configuration of one PPP connection (:class:`PppConfig`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from .constants import DEFAULT_MRU, MIN_MRU, AuthMethod
from .cp import RestartConfig
from .events import Role

AddressPool = Callable[[str | None], IPv4Address | None]
"""Given the authenticated user (None without authentication), an IPv4 address for the peer.

Called once per connection when the network phase starts; the driver gets the
address back in :class:`~.events.NetworkUp` / :class:`~.events.NetworkDown`
to return it to its pool.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class PppConfig:
    """What one end of a PPP link wants.

    ``auth_methods`` means, for the authenticator, the methods to demand, best
    first (empty: no authentication); for the peer, the methods it agrees to
    use, best first (it needs ``username`` and ``password`` for any).
    """

    role: Role
    mru: int = DEFAULT_MRU
    auth_methods: tuple[AuthMethod, ...] = (AuthMethod.MSCHAP_V2, AuthMethod.CHAP_MD5)
    hostname: str = "python-l2tp"
    """Our name in CHAP Challenges (RFC 1994 4.1 Name field)."""
    username: str | None = None
    """Peer role: the name we authenticate with."""
    password: str | None = field(default=None, repr=False)
    """Peer role: the secret for that name."""
    restart: RestartConfig = field(default_factory=RestartConfig)
    """RFC 1661 4.6 timer and counters, for LCP and every NCP."""
    connect_delay: float | None = None
    """Seconds to wait after :meth:`~.session.PppConnection.open` for the other end's
    first LCP packet before sending our first Configure-Request (pppd's
    ``connect-delay``); None or 0: send at once. See :class:`~.session.PppConnection`."""
    passive: bool = False
    """After Max-Configure unanswered Configure-Requests, wait in Stopped for the other
    end's Configure-Request instead of ending the link (pppd's ``passive``; RFC 1661 4.2
    "Stopped", the "p" option)."""
    echo_interval: float | None = 30.0
    """Seconds between LCP Echo-Requests once LCP is Opened; None disables the keepalive."""
    echo_failure: int = 4
    """Unanswered Echo-Requests in a row that end the link."""
    auth_timeout: float | None = 30.0
    """The authentication phase must end within this many seconds; None: no limit of our
    own (a peer then waits for the authenticator's verdict, as pppd's client does)."""
    auth_restart: float = 3.0
    """Retransmission interval of PAP requests and CHAP challenges/responses."""
    auth_max_transmits: int = 10
    chap_rechallenge: float | None = None
    """Authenticator: seconds after each CHAP success before the next challenge."""
    ipv4: bool = True
    """Run IPCP (RFC 1332)."""
    ipv4_local: IPv4Address | None = None
    """Our address; None asks the other end to assign one."""
    ipv4_peer: IPv4Address | None = None
    """The address to give the peer."""
    ipv4_pool: AddressPool | None = None
    """Called when no ``ipv4_peer`` is set and the verifier gave none."""
    dns: tuple[IPv4Address, ...] = ()
    """Up to two DNS servers to give the peer (RFC 1877)."""
    request_dns: bool = False
    """Ask the other end for DNS servers (RFC 1877)."""
    ipv6: bool = False
    """Run IPv6CP (RFC 5072)."""
    interface_id: bytes | None = None
    """Our IPv6 Interface-Identifier; None draws a random one."""

    def __post_init__(self) -> None:
        if not MIN_MRU <= self.mru <= 0xFFFF:
            raise ValueError(f"mru must be {MIN_MRU}-65535")
        if len(set(self.auth_methods)) != len(self.auth_methods):
            raise ValueError("auth_methods lists a method twice")
        if self.echo_interval is not None and not self.echo_interval > 0:
            raise ValueError("echo_interval must be positive, or None")
        if self.connect_delay is not None and not self.connect_delay >= 0:
            raise ValueError("connect_delay must not be negative")
        if self.echo_failure < 1:
            raise ValueError("echo_failure must be at least 1")
        if (self.auth_timeout is not None and not self.auth_timeout > 0) or not (
            self.auth_restart > 0
        ):
            raise ValueError("auth_timeout and auth_restart must be positive")
        if self.auth_max_transmits < 1:
            raise ValueError("auth_max_transmits must be at least 1")
        if self.chap_rechallenge is not None and not self.chap_rechallenge > 0:
            raise ValueError("chap_rechallenge must be positive, or None")
        if len(self.dns) > 2:
            raise ValueError("at most two DNS servers (RFC 1877)")
        if self.interface_id is not None and (
            len(self.interface_id) != 8 or not any(self.interface_id)
        ):
            raise ValueError("interface_id must be 8 octets, not all zero")
        if not self.ipv4 and not self.ipv6:
            raise ValueError("enable at least one of ipv4 and ipv6")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        for name, value in (("username", self.username), ("password", self.password)):
            # PAP length octets (RFC 1334 2.2.1); CHAP names fit in any packet we send.
            if value is not None and len(value.encode("utf-8")) > 0xFF:
                raise ValueError(f"{name} longer than 255 octets")
        if len(self.hostname.encode("utf-8")) > 0xFF:
            raise ValueError("hostname longer than 255 octets")

    @property
    def requested_auth(self) -> tuple[AuthMethod, ...]:
        """Methods we demand in LCP (authenticator only)."""
        return self.auth_methods if self.role is Role.AUTHENTICATOR else ()

    @property
    def accepted_auth(self) -> tuple[AuthMethod, ...]:
        """Methods we agree to perform in LCP (peer with credentials only)."""
        if self.role is Role.PEER and self.username is not None:
            return self.auth_methods
        return ()
