"""The authentication interface: what the core asks, what the verifier answers.

The authenticator side of PAP, CHAP-MD5 and MS-CHAPv2 never checks a secret
itself. It packs what the peer sent into an :data:`AuthRequest` and asks an
:class:`Authenticator`. A local verifier (:class:`~..secrets.SecretsAuthenticator`)
answers at once; a RADIUS client cannot, so it returns ``None``, the core
reports :class:`~..events.AuthRequested`, and the driver later calls
:meth:`~..session.PppConnection.auth_result` with the :class:`AuthDecision`.
The requests carry exactly what RADIUS needs (RFC 2865 5.2-5.3 User-Password
and CHAP-Password/CHAP-Challenge; RFC 2548 2.3.2 MS-CHAP2-Response) and the
decision what it returns (MS-CHAP2-Success, Framed-IP-Address).

Secrets and hashes are ``repr=False`` so that an event or a request that
reaches a log line never shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol as TypingProtocol

from ..constants import AuthMethod


@dataclass(frozen=True, slots=True, kw_only=True)
class PapRequest:
    """A PAP Authenticate-Request (RFC 1334 2.2.1): a name and a clear-text password."""

    user: str
    password: bytes = field(repr=False)

    @property
    def method(self) -> AuthMethod:
        return AuthMethod.PAP


@dataclass(frozen=True, slots=True, kw_only=True)
class ChapMd5Request:
    """A CHAP-MD5 Response to our Challenge (RFC 1994 4.1)."""

    user: str
    identifier: int
    challenge: bytes = field(repr=False)
    response: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.identifier <= 0xFF:
            raise ValueError("the CHAP identifier is one octet")

    @property
    def method(self) -> AuthMethod:
        return AuthMethod.CHAP_MD5


@dataclass(frozen=True, slots=True, kw_only=True)
class MsChapV2Request:
    """An MS-CHAPv2 Response (RFC 2759 section 4).

    ``user`` is the Name field as the peer sent it, which may carry a
    ``DOMAIN\\`` prefix; the hashes use the part after it (RFC 2759 4).
    """

    user: str
    identifier: int
    authenticator_challenge: bytes = field(repr=False)
    peer_challenge: bytes = field(repr=False)
    nt_response: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.authenticator_challenge) != 16 or len(self.peer_challenge) != 16:
            raise ValueError("MS-CHAPv2 challenges are 16 octets")
        if len(self.nt_response) != 24:
            raise ValueError("the MS-CHAPv2 NT-Response is 24 octets")

    @property
    def method(self) -> AuthMethod:
        return AuthMethod.MSCHAP_V2


AuthRequest = PapRequest | ChapMd5Request | MsChapV2Request


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerRoute:
    """A network reached through the peer, installed on its interface while IPCP is up
    (RADIUS Framed-Route, RFC 2865 5.22). ``gateway`` None: the peer itself."""

    destination: IPv4Network
    gateway: IPv4Address | None = None
    metric: int | None = None

    def __post_init__(self) -> None:
        if self.metric is not None and not 0 <= self.metric <= 0xFFFFFFFF:
            raise ValueError("a route metric is 0-4294967295")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthDecision:
    """The verdict on one :data:`AuthRequest`.

    ``message`` goes to the peer (PAP Msg, CHAP Message; RFC 1334 2.2.2,
    RFC 1994 4.2), so it must not say *why* a password was wrong. For a
    successful MS-CHAPv2 request ``authenticator_response`` (the 20 octets of
    RFC 2759 8.7) is required: the peer checks it to authenticate us.
    ``peer_address`` overrides the configured or pooled IPv4 address for
    the peer (as RADIUS Framed-IP-Address does), ``peer_interface_id`` is the IPv6CP
    Interface-Identifier suggested to the peer (RFC 5072 4.1; RADIUS Framed-Interface-Id,
    RFC 3162 2.2), ``dns`` the configured DNS
    servers offered in IPCP (RFC 1877; RADIUS MS-Primary/Secondary-DNS-Server).

    The rest is for the driver, not the core: ``mtu`` caps the interface MTU
    (RADIUS Framed-MTU), ``session_timeout`` ends the session that many seconds
    after it was granted (Session-Timeout), ``idle_timeout`` once no data has
    crossed its interface for that many seconds (Idle-Timeout), ``routes`` go
    through the peer while IPCP is up (Framed-Route), and ``authorization`` is
    whatever else the verifier granted, kept by the driver for the session (RADIUS:
    :class:`l2tp.radius.auth.RadiusAuthorization`, with Class for accounting).
    """

    success: bool
    message: str = ""
    authenticator_response: bytes | None = field(default=None, repr=False)
    peer_address: IPv4Address | None = None
    peer_interface_id: bytes | None = None
    dns: tuple[IPv4Address, ...] | None = None
    mtu: int | None = None
    session_timeout: float | None = None
    idle_timeout: float | None = None
    routes: tuple[PeerRoute, ...] = ()
    authorization: object | None = None

    def __post_init__(self) -> None:
        if self.authenticator_response is not None and len(self.authenticator_response) != 20:
            raise ValueError("the MS-CHAPv2 authenticator response is 20 octets")
        if self.peer_interface_id is not None and (
            len(self.peer_interface_id) != 8 or not any(self.peer_interface_id)
        ):
            raise ValueError("peer_interface_id must be 8 octets, not all zero")
        if self.dns is not None and len(self.dns) > 2:
            raise ValueError("at most two DNS servers (RFC 1877)")
        if self.mtu is not None and self.mtu < 1:
            raise ValueError("mtu must be positive")
        if self.session_timeout is not None and not self.session_timeout > 0:
            raise ValueError("session_timeout must be positive")
        if self.idle_timeout is not None and not self.idle_timeout > 0:
            raise ValueError("idle_timeout must be positive")


class Authenticator(TypingProtocol):
    """Checks the peer's credentials for the authenticator role.

    Return the decision now, or ``None`` to decide later through
    :meth:`~..session.PppConnection.auth_result` (for example after a
    RADIUS round trip). Must not raise on a request it cannot satisfy:
    answer ``AuthDecision(success=False)``.
    """

    def authenticate(self, request: AuthRequest) -> AuthDecision | None: ...


class AuthObserver(TypingProtocol):
    """How an authentication protocol reports to the connection that runs it."""

    def auth_requested(self, request: AuthRequest, now: float) -> None:
        """Authenticator side: credentials arrived; call ``decide`` on the protocol object."""

    def auth_done(
        self, method: AuthMethod, success: bool, user: str | None, reason: str, now: float
    ) -> None:
        """The exchange ended (for a CHAP re-challenge: only a failure is reported)."""


@dataclass(slots=True)
class AuthCounters:
    """Authentication packets discarded, by reason."""

    malformed: int = 0
    stale: int = 0
    """Replies or requests whose Identifier does not match the exchange in progress."""
    retransmissions: int = 0
