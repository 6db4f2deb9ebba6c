"""RADIUS authentication of built-in PPP sessions: :class:`RadiusAuthenticator`, the
runtime's :class:`~l2tp.runtime.ppp_hooks.PppAuthenticator` hook over an
:class:`~l2tp.radius.interface.AccessClient`.

Each PAP request or CHAP/MS-CHAPv2 response of a peer becomes one Access-Request
(:func:`request_attributes`):

* the credentials: PAP User-Password (RFC 2865 5.2, hidden by the client with the
  server's secret); CHAP-MD5 CHAP-Password (Identifier + Response) and CHAP-Challenge
  (RFC 2865 5.3, 5.40); MS-CHAPv2 MS-CHAP-Challenge and MS-CHAP2-Response (RFC 2548
  2.3), the server computing the NT-Response check and the authenticator
  response (RFC 2759 8.7) that the peer checks us with;
* who is asking: NAS-Identifier (``nas_identifier``, else our PPP name), NAS-IP-Address
  or NAS-IPv6-Address when configured, NAS-Port (our L2TP session ID), NAS-Port-Type
  Virtual (RFC 2865 5.41: the session arrives over a tunnel), Service-Type Framed,
  Framed-Protocol PPP, Calling- and Called-Station-Id from the L2TP call (RFC 2661
  Calling/Called Number AVPs);
* the tunnel (RFC 2868 3): Tunnel-Type L2TP, Tunnel-Medium-Type IPv4/IPv6,
  Tunnel-Client-Endpoint (the LAC), Tunnel-Server-Endpoint (our address), untagged
  (tag 0: one tunnel per request).

The reply (:func:`decision_from_reply`): an Access-Accept grants the session, with
Framed-IP-Address as the peer's address (overriding the pool; 255.255.255.254 and .255
mean "the NAS chooses", RFC 2865 5.8), Framed-Interface-Id as the IPv6CP
Interface-Identifier suggested to the peer (RFC 3162 2.2, RFC 5072 4.1),
MS-Primary/Secondary-DNS-Server as the DNS servers offered in IPCP (RFC 2548 2.7),
Framed-MTU as a cap on the interface MTU, Session-Timeout as the session's lifetime,
Idle-Timeout as the longest time without data (RFC 2865 5.28) and each Framed-Route
(:func:`parse_framed_route`) as a route through the peer; these and
Acct-Interim-Interval and Class are kept in a :class:`RadiusAuthorization` on the
decision for the rest of the session (accounting echoes Class, RFC 2865 5.25). A
Framed-Route that does not parse is logged and counted and the session goes on without
it: the route is the server's data, not the peer's.
Access-Reject, Access-Challenge (PPP cannot carry one), no answer from any server or a
full request queue deny the peer a plain authentication failure; the reason is logged
and counted here, never sent to the peer. Passwords and secrets are never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address

from l2tp.peer_text import quoted
from l2tp.ppp import AuthDecision, AuthRequest, PeerRoute
from l2tp.ppp.auth.base import ChapMd5Request, MsChapV2Request, PapRequest
from l2tp.ppp.auth.mschapv2 import failure_text, parse_success
from l2tp.radius.interface import (
    AccessClient,
    Attribute,
    RadiusError,
    RadiusOverload,
    RadiusReply,
    RadiusTimeout,
)
from l2tp.runtime.ppp_hooks import AuthContext

__all__ = [
    "NoVerdict",
    "RadiusAuthCounters",
    "RadiusAuthenticator",
    "RadiusAuthorization",
    "decision_from_reply",
    "parse_framed_route",
    "request_attributes",
]

log = logging.getLogger(__name__)

ACCESS_ACCEPT = 2
MAX_PASSWORD = 128
"""RFC 2865 5.2: User-Password carries at most 128 octets."""
MAX_VALUE = 253
"""RFC 2865 5: an attribute's value is at most 253 octets."""
MIN_MTU = 68
"""RFC 791: the smallest MTU an IPv4 interface may have; a smaller Framed-MTU is ignored."""
NAS_CHOOSES = (IPv4Address("255.255.255.254"), IPv4Address("255.255.255.255"))
"""RFC 2865 5.8: Framed-IP-Address values that leave the address to the NAS (the pool)."""
DENIED = "Access denied"


@dataclass(frozen=True, slots=True)
class NoVerdict:
    """``AuthDecision.authorization`` of a denial that RADIUS did not decide: no server
    answered (``"timeout"``), our own queue was full (``"overload"``) or the transport
    failed (``"error"``). The user is denied all the same (PPP has no "try later"), but
    accounting tells it from an Access-Reject: the Tunnel-Link-Reject's cause is then
    Service-Unavailable, not User-Error (RFC 2866 5.10)."""

    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RadiusAuthorization:
    """What an Access-Accept granted, kept with the session (``AuthDecision.authorization``).

    The built-in PPP applies ``framed_ip_address``, ``framed_interface_id``, ``dns``,
    ``framed_mtu``,
    ``session_timeout``, ``idle_timeout`` and ``routes`` (through the decision's fields);
    the others are for the parts that use them (accounting: ``classes``,
    ``acct_interim_interval``, ``user_name``).
    """

    user_name: str
    """The name to account under: the Accept's User-Name if it sent one (RFC 2865 5.1),
    else the one the peer authenticated with."""
    framed_ip_address: IPv4Address | None = None
    framed_interface_id: bytes | None = None
    """Framed-Interface-Id (RFC 3162 2.2), 8 octets, not zero: the peer's IPv6CP
    Interface-Identifier to suggest (RFC 5072 4.1)."""
    framed_routes: tuple[str, ...] = ()
    """Framed-Route values as sent (RFC 2865 5.22)."""
    routes: tuple[PeerRoute, ...] = ()
    """The Framed-Route values that parsed (:func:`parse_framed_route`), installed by
    the built-in PPP while IPCP is up."""
    bad_routes: tuple[str, ...] = ()
    """The Framed-Route values that did not parse (logged and counted, not installed)."""
    framed_mtu: int | None = None
    session_timeout: int | None = None
    """Seconds (RFC 2865 5.27)."""
    idle_timeout: int | None = None
    """Seconds (RFC 2865 5.28)."""
    acct_interim_interval: int | None = None
    """Seconds between Interim-Updates (RFC 2869 5.16)."""
    classes: tuple[bytes, ...] = ()
    """Class values, to be echoed unmodified in accounting (RFC 2865 5.25)."""
    dns: tuple[IPv4Address, ...] = ()
    """MS-Primary-DNS-Server then MS-Secondary-DNS-Server (RFC 2548 2.7)."""
    reply_messages: tuple[str, ...] = ()


@dataclass(slots=True)
class RadiusAuthCounters:
    """Authentications through RADIUS (the client counts per server besides)."""

    requests: int = 0
    accepts: int = 0
    rejects: int = 0
    timeouts: int = 0
    """No server answered: the peer was denied."""
    overloads: int = 0
    """The client's queue was full: the peer was denied."""
    errors: int = 0
    """Requests that could not be sent (oversized credentials, client closed) or Accepts
    that could not be used (MS-CHAPv2 without a valid MS-CHAP2-Success)."""
    bad_routes: int = 0
    """Framed-Route values of Accepts that did not parse (not installed; the session
    went on without them)."""


def _address_text(host: str) -> str:
    return host.split("%", 1)[0]


def request_attributes(
    request: AuthRequest,
    context: AuthContext,
    *,
    nas_identifier: str | None = None,
    nas_ip_address: IPv4Address | IPv6Address | None = None,
) -> list[Attribute]:
    """The Access-Request attributes for ``request`` from the session ``context`` (module
    doc). Raises ValueError for credentials RADIUS cannot carry (over-long values)."""
    user = request.user
    if len(user.encode("utf-8")) > MAX_VALUE:
        raise ValueError("user name longer than a RADIUS attribute can carry")
    attrs: list[Attribute] = [("User-Name", user)]
    if isinstance(request, PapRequest):
        if len(request.password) > MAX_PASSWORD:
            raise ValueError(f"PAP password longer than {MAX_PASSWORD} octets")
        attrs.append(("User-Password", request.password))
    elif isinstance(request, ChapMd5Request):
        if len(request.response) != 16 or not 0 < len(request.challenge) <= MAX_VALUE:
            raise ValueError("CHAP-MD5 response not 16 octets, or challenge too long")
        attrs.append(("CHAP-Password", bytes([request.identifier]) + request.response))
        attrs.append(("CHAP-Challenge", request.challenge))
    elif isinstance(request, MsChapV2Request):
        # RFC 2548 2.3, MS-CHAP2-Response: Ident, Flags (0), Peer-Challenge, Reserved, Response.
        response = (
            bytes([request.identifier, 0]) + request.peer_challenge + bytes(8) + request.nt_response
        )
        attrs.append(("MS-CHAP-Challenge", request.authenticator_challenge))
        attrs.append(("MS-CHAP2-Response", response))
    else:  # pragma: no cover - the union is exhaustive
        raise TypeError(f"unknown authentication request {type(request).__name__}")
    attrs.append(("NAS-Identifier", nas_identifier or context.server))
    if isinstance(nas_ip_address, IPv4Address):
        attrs.append(("NAS-IP-Address", str(nas_ip_address)))
    elif isinstance(nas_ip_address, IPv6Address):
        attrs.append(("NAS-IPv6-Address", str(nas_ip_address)))
    attrs += [
        ("NAS-Port", context.session_id),
        ("NAS-Port-Type", "Virtual"),
        ("Service-Type", "Framed-User"),
        ("Framed-Protocol", "PPP"),
    ]
    if context.calling_number:
        attrs.append(("Calling-Station-Id", context.calling_number[:MAX_VALUE]))
    if context.called_number:
        attrs.append(("Called-Station-Id", context.called_number[:MAX_VALUE]))
    client = _address_text(context.peer[0])
    try:
        v6 = isinstance(ip_address(client), IPv6Address)
    except ValueError:
        v6 = ":" in client
    attrs += [
        ("Tunnel-Type", "L2TP"),
        ("Tunnel-Medium-Type", "IPv6" if v6 else "IPv4"),
        ("Tunnel-Client-Endpoint", client),
    ]
    if context.local is not None:
        attrs.append(("Tunnel-Server-Endpoint", _address_text(context.local[0])))
    return attrs


def _ipv4(value: object) -> IPv4Address | None:
    try:
        return IPv4Address(str(value))
    except ValueError:
        return None


def _interface_id(value: object) -> bytes | None:
    """A Framed-Interface-Id value (decoded as FreeRADIUS prints it, four groups of hex
    digits, ``"211:22ff:fe33:4455"``; or its 8 raw octets) as 8 octets; None for zero
    (RFC 5072 4.1: not an identifier) or a value that does not parse."""
    raw: bytes | None = None
    if isinstance(value, bytes) and len(value) == 8:
        raw = value
    elif isinstance(value, str):
        groups = value.split(":")
        if len(groups) == 4 and all(
            0 < len(g) <= 4 and all(c in "0123456789abcdefABCDEF" for c in g) for g in groups
        ):
            raw = b"".join(int(g, 16).to_bytes(2, "big") for g in groups)
    return raw if raw is not None and any(raw) else None


def _ints(reply: RadiusReply, name: str) -> int | None:
    value = reply.first(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _classful_length(address: IPv4Address) -> int:
    """RFC 2865 5.22: a prefix without a length is class A (/8), B (/16) or C (/24)."""
    first = address.packed[0]
    if first < 128:
        return 8
    if first < 192:
        return 16
    if first < 224:
        return 24
    raise ValueError(f"{address} has no class to default its prefix length from")


def parse_framed_route(text: str) -> PeerRoute:
    """A Framed-Route value (RFC 2865 5.22) as a :class:`~l2tp.ppp.PeerRoute`.

    ``PREFIX[/LENGTH] [GATEWAY [METRIC ...]]``: the prefix in dotted quad (without a
    length: classful, as the RFC says; host bits set is an error, not rounded off), the
    gateway (absent or 0.0.0.0: the user's address, the peer), then metrics, of which
    Linux has one: the first is the route's priority, the others are ignored. Raises
    ValueError naming what is wrong (the text is the server's data).
    """
    fields = text.split()
    if not fields:
        raise ValueError("empty")
    prefix, slash, length = fields[0].partition("/")
    try:
        address = IPv4Address(prefix)
        bits = int(length) if slash else _classful_length(address)
        destination = IPv4Network((address, bits))
    except ValueError as exc:
        raise ValueError(f"destination {fields[0]!r}: {exc}") from None
    gateway: IPv4Address | None = None
    if len(fields) > 1:
        try:
            gateway = IPv4Address(fields[1])
        except ValueError:
            raise ValueError(f"gateway {fields[1]!r} is not an IPv4 address") from None
        if gateway.is_unspecified:
            gateway = None
    try:
        metric = int(fields[2], 10) if len(fields) > 2 else None
        return PeerRoute(destination=destination, gateway=gateway, metric=metric)
    except ValueError:  # not a number, or out of range (PeerRoute checks)
        raise ValueError(f"metric {fields[2]!r} is not 0-4294967295") from None


def _routes(values: list[object]) -> tuple[tuple[PeerRoute, ...], tuple[str, ...]]:
    routes: list[PeerRoute] = []
    bad: list[str] = []
    for value in values:
        try:
            if not isinstance(value, str):
                raise ValueError("not text")
            routes.append(parse_framed_route(value))
        except ValueError:
            bad.append(value if isinstance(value, str) else repr(value))
    return tuple(routes), tuple(bad)


def authorization_from_reply(user: str, reply: RadiusReply) -> RadiusAuthorization:
    """The :class:`RadiusAuthorization` of an Access-Accept (values of the wrong type
    are left out, never raised on: the reply is the server's data)."""
    framed = _ipv4(reply.first("Framed-IP-Address")) if reply.first("Framed-IP-Address") else None
    dns = [
        found
        for name in ("MS-Primary-DNS-Server", "MS-Secondary-DNS-Server")
        if (value := reply.first(name)) is not None and (found := _ipv4(value)) is not None
    ]
    name = reply.first("User-Name")
    routes, bad_routes = _routes(reply.get("Framed-Route"))
    return RadiusAuthorization(
        user_name=name if isinstance(name, str) and name else user,
        framed_ip_address=framed,
        framed_interface_id=_interface_id(reply.first("Framed-Interface-Id")),
        framed_routes=tuple(v for v in reply.get("Framed-Route") if isinstance(v, str)),
        routes=routes,
        bad_routes=bad_routes,
        framed_mtu=_ints(reply, "Framed-MTU"),
        session_timeout=_ints(reply, "Session-Timeout"),
        idle_timeout=_ints(reply, "Idle-Timeout"),
        acct_interim_interval=_ints(reply, "Acct-Interim-Interval"),
        classes=tuple(v for v in reply.get("Class") if isinstance(v, bytes)),
        dns=tuple(dns),
        reply_messages=tuple(v for v in reply.get("Reply-Message") if isinstance(v, str)),
    )


def decision_from_reply(request: AuthRequest, reply: RadiusReply) -> AuthDecision:
    """The PPP verdict on ``request`` from a verified reply (module doc).

    An MS-CHAPv2 Accept without a well-formed MS-CHAP2-Success is a denial: the peer
    would reject a success it cannot verify (RFC 2759 5), so the session could not
    come up anyway.
    """
    if reply.code != ACCESS_ACCEPT:
        return AuthDecision(success=False, message=DENIED)
    grant = authorization_from_reply(request.user, reply)
    authenticator_response = None
    if isinstance(request, MsChapV2Request):
        value = reply.first("MS-CHAP2-Success")
        parsed = parse_success(value[1:]) if isinstance(value, bytes) and value else None
        if parsed is None:
            raise ValueError("Access-Accept for MS-CHAPv2 without a valid MS-CHAP2-Success")
        authenticator_response = parsed[0]
    address = grant.framed_ip_address
    mtu = grant.framed_mtu if grant.framed_mtu and grant.framed_mtu >= MIN_MTU else None
    return AuthDecision(
        success=True,
        authenticator_response=authenticator_response,
        peer_address=None if address is None or address in NAS_CHOOSES else address,
        peer_interface_id=grant.framed_interface_id,
        dns=grant.dns or None,
        mtu=mtu,
        session_timeout=float(grant.session_timeout) if grant.session_timeout else None,
        idle_timeout=float(grant.idle_timeout) if grant.idle_timeout else None,
        routes=grant.routes,
        authorization=grant,
    )


class RadiusAuthenticator:
    """:class:`~l2tp.runtime.ppp_hooks.PppAuthenticator` asking RADIUS (module doc).

    ``nas_identifier``: NAS-Identifier (default: the session's PPP name,
    ``AuthContext.server``). ``nas_ip_address``: sent as NAS-IP-Address (or
    NAS-IPv6-Address) when set.
    """

    def __init__(
        self,
        client: AccessClient,
        *,
        nas_identifier: str | None = None,
        nas_ip_address: IPv4Address | IPv6Address | None = None,
    ) -> None:
        self.client = client
        self.nas_identifier = nas_identifier
        self.nas_ip_address = nas_ip_address
        self.counters = RadiusAuthCounters()

    def authenticate(self, request: AuthRequest, context: AuthContext) -> Awaitable[AuthDecision]:
        return self._authenticate(request, context)

    async def _authenticate(self, request: AuthRequest, context: AuthContext) -> AuthDecision:
        who = f"{context.label or 'session'}: {request.method.value} user {quoted(request.user)}"
        try:
            attributes = request_attributes(
                request,
                context,
                nas_identifier=self.nas_identifier,
                nas_ip_address=self.nas_ip_address,
            )
        except ValueError as exc:
            self.counters.errors += 1
            log.warning("%s: not sent to RADIUS: %s; denied", who, exc)
            return AuthDecision(success=False, message=DENIED)
        self.counters.requests += 1
        try:
            reply = await self.client.access(attributes)
        except RadiusTimeout as exc:
            self.counters.timeouts += 1
            log.warning("%s: %s; denied", who, exc)
            return AuthDecision(success=False, message=DENIED, authorization=NoVerdict("timeout"))
        except RadiusOverload as exc:
            self.counters.overloads += 1
            log.warning("%s: RADIUS overloaded (%s); denied", who, exc)
            return AuthDecision(success=False, message=DENIED, authorization=NoVerdict("overload"))
        except RadiusError as exc:
            self.counters.errors += 1
            log.warning("%s: RADIUS: %s; denied", who, exc)
            return AuthDecision(success=False, message=DENIED, authorization=NoVerdict("error"))
        try:
            decision = decision_from_reply(request, reply)
        except ValueError as exc:
            self.counters.errors += 1
            log.warning("%s: %s; denied", who, exc)
            return AuthDecision(success=False, message=DENIED)
        if decision.success:
            self.counters.accepts += 1
            log.info("%s: RADIUS Access-Accept", who)
            grant = decision.authorization
            for bad in grant.bad_routes if isinstance(grant, RadiusAuthorization) else ():
                self.counters.bad_routes += 1
                log.warning("%s: Framed-Route %s not understood; not installed", who, quoted(bad))
        else:
            self.counters.rejects += 1
            error = reply.first("MS-CHAP-Error")
            detail = ""
            if isinstance(error, str | bytes) and len(error) > 1:
                text = error[1:] if isinstance(error, bytes) else error[1:].encode()
                detail = f" ({failure_text(text)})"
            kind = "Access-Reject" if reply.code == 3 else f"reply code {reply.code}"
            log.info("%s: RADIUS %s%s", who, kind, detail)
        return decision
