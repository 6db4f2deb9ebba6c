"""The RADIUS transport: :class:`RadiusClient`, one UDP socket on the event loop carrying
Access-Requests (RFC 2865) and Accounting-Requests (RFC 2866) to configured servers.

pyrad is used for what it is good at, encoding and decoding packets against our
dictionary and checking authenticators (:mod:`pyrad.packet`); its client classes are
not used: they block (``pyrad.client``) or open a socket per server and request kind
and retry without failover (``pyrad.client_async``). Here, on one non-blocking socket
read with ``loop.add_reader``:

* Requests are matched to replies by ``(server, Identifier)``. An Identifier is drawn at
  random from those not outstanding towards that server, so a late reply can never be
  taken for the answer to a newer request (RFC 2865 3, RFC 5080 2.2.1). When all 256
  are outstanding towards one server the request waits for one to come free.
* Retransmission (RFC 2865 2.4): an Access-Request is sent again after ``timeout``
  seconds, byte for byte (same Identifier and Request Authenticator), ``retries`` times;
  then the next server is tried with a new packet (its own secret, Identifier and
  authenticator). An Accounting-Request is rebuilt on each retransmission with
  Acct-Delay-Time brought up to date (RFC 2866 5.2), which makes it a new packet with a
  new Identifier; the earlier Identifiers stay registered until the request ends, so
  a late Accounting-Response to any of them acknowledges the record.
* Failover: servers are tried in configured order starting from the last one that
  answered; ``holddown`` seconds after leaving the primary, new requests start at the
  primary again (so a recovered primary is used again without a restart).
* Access-Requests carry a Message-Authenticator (RFC 3579 3.2, RFC 2869 5.14, the
  BlastRADIUS countermeasure); a reply's Response Authenticator is always checked, its
  Message-Authenticator when present (and required with
  ``require_message_authenticator``).
* A datagram from an address that is not a configured server, for an Identifier that is
  not outstanding, with a bad authenticator or that does not decode is dropped and
  counted (:class:`ServerCounters`, :class:`ClientCounters`); nothing a server sends
  raises.
* At most ``max_outstanding`` requests exist at once (sent, or waiting for an
  Identifier); one more raises :class:`~l2tp.radius.interface.RadiusOverload` at once.

Attributes are ``(name, value)`` pairs in dictionary names (:mod:`.interface`). Values
are what pyrad encodes: ``str`` for string and ipaddr types (User-Password may be
``bytes``: it is hidden with the server's secret, RFC 2865 5.2), ``int`` or a VALUE
name for integers, ``bytes`` for octets; a tagged attribute (RFC 2868) takes
``(tag, value)``. Replies decode the same way (:func:`~l2tp.radius.codec.decode_attributes`:
VALUE names for enumerated integers, ``(tag, value)`` for tagged attributes).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pyrad import packet as rp

from l2tp.radius.codec import decode_attributes, dictionary
from l2tp.radius.interface import (
    Attribute,
    RadiusError,
    RadiusOverload,
    RadiusReply,
    RadiusTimeout,
)

__all__ = [
    "ACCESS_ACCEPT",
    "ACCESS_CHALLENGE",
    "ACCESS_REJECT",
    "ACCESS_REQUEST",
    "ACCOUNTING_REQUEST",
    "ACCOUNTING_RESPONSE",
    "ClientCounters",
    "RadiusClient",
    "RadiusServer",
    "ServerCounters",
    "decode_attributes",
    "dictionary",
]

log = logging.getLogger(__name__)

ACCESS_REQUEST = 1
ACCESS_ACCEPT = 2
ACCESS_REJECT = 3
ACCOUNTING_REQUEST = 4
ACCOUNTING_RESPONSE = 5
ACCESS_CHALLENGE = 11
"""RFC 2865 3 and RFC 2866 3 packet codes."""

DEFAULT_TIMEOUT = 3.0
DEFAULT_RETRIES = 3
DEFAULT_MAX_OUTSTANDING = 1024
DEFAULT_HOLDDOWN = 60.0
MAX_PACKET = 4096
"""RFC 2865 3: the largest RADIUS packet."""
READS_PER_WAKEUP = 64
"""Datagrams read per readiness callback, so a flood cannot starve the rest of the loop."""


def _normal_host(host: str) -> str:
    """The canonical text of a numeric address (an IPv4-mapped IPv6 one as IPv4)."""
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


@dataclass(frozen=True, slots=True)
class RadiusServer:
    """One server: numeric address, UDP port and shared secret (RFC 2865 3)."""

    host: str
    port: int
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "host", _normal_host(self.host))
        except ValueError:
            raise ValueError(f"{self.host!r} is not a numeric IP address") from None
        if not 1 <= self.port <= 0xFFFF:
            raise ValueError(f"port {self.port} is out of range")
        if not self.secret:
            raise ValueError("the shared secret must not be empty (RFC 2865 3)")

    @property
    def key(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def ipv6(self) -> bool:
        return ":" in self.host

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.ipv6 else f"{self.host}:{self.port}"


@dataclass(slots=True)
class ServerCounters:
    """What happened with one server (``l2tp ctl`` shows these)."""

    requests: int = 0
    """Requests sent to it (first transmissions)."""
    retransmissions: int = 0
    accepts: int = 0
    rejects: int = 0
    challenges: int = 0
    """Access-Challenges (PPP cannot carry them: taken as a reject)."""
    acct_responses: int = 0
    timeouts: int = 0
    """Requests given up on this server after every retransmission."""
    bad_authenticators: int = 0
    """Replies whose Response Authenticator or Message-Authenticator did not verify."""
    malformed: int = 0
    """Replies that did not decode, or carried a code that does not answer the request."""
    unmatched: int = 0
    """Replies for an Identifier not outstanding (late duplicates, or forged)."""


@dataclass(slots=True)
class ClientCounters:
    """What the client counts outside any one server."""

    unknown_source: int = 0
    """Datagrams from an address and port that is not a configured server."""
    overloads: int = 0
    """Requests refused because ``max_outstanding`` were outstanding."""
    send_errors: int = 0
    """Datagrams the socket refused (taken as lost: retransmission covers them)."""
    id_waits: int = 0
    """Times a request waited for a free Identifier (256 outstanding to one server)."""


class Kind(Enum):
    ACCESS = "access"
    ACCOUNTING = "accounting"


_KIND_PORT_NAME = {Kind.ACCESS: "authentication", Kind.ACCOUNTING: "accounting"}


class _Request:
    """One request in flight: where it is, what was sent, and its caller's future."""

    __slots__ = (
        "attributes",
        "delay_base",
        "future",
        "ids",
        "index",
        "kind",
        "packets",
        "raw",
        "sent",
        "servers",
        "started",
        "timer",
    )

    def __init__(
        self,
        kind: Kind,
        attributes: tuple[Attribute, ...],
        servers: list[RadiusServer],
        future: asyncio.Future[RadiusReply],
        started: float,
        delay_base: int,
    ) -> None:
        self.kind = kind
        self.attributes = attributes
        self.servers = servers
        self.future = future
        self.started = started
        self.delay_base = delay_base
        self.index = 0
        self.sent = 0
        self.ids: list[int] = []
        self.packets: dict[int, rp.Packet] = {}
        self.raw = b""
        self.timer: asyncio.TimerHandle | None = None

    @property
    def server(self) -> RadiusServer:
        return self.servers[self.index]


class RadiusClient:
    """:class:`~l2tp.radius.interface.AccessClient` and
    :class:`~l2tp.radius.interface.AccountingClient` over one UDP socket (module doc).

    The socket is opened on the first request, on the running loop (the daemons build
    the client before their loop starts). ``bind`` is the local address to send from
    (default: any). ``close()`` fails every outstanding request with
    :class:`~l2tp.radius.interface.RadiusError`.
    """

    def __init__(
        self,
        *,
        auth_servers: Sequence[RadiusServer] = (),
        acct_servers: Sequence[RadiusServer] = (),
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        max_outstanding: int = DEFAULT_MAX_OUTSTANDING,
        holddown: float = DEFAULT_HOLDDOWN,
        require_message_authenticator: bool = False,
        bind: str | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        if retries < 0:
            raise ValueError("retries must not be negative")
        if max_outstanding < 1:
            raise ValueError("max_outstanding must be at least 1")
        self.servers: dict[Kind, tuple[RadiusServer, ...]] = {
            Kind.ACCESS: tuple(auth_servers),
            Kind.ACCOUNTING: tuple(acct_servers),
        }
        self.timeout = timeout
        self.retries = retries
        self.max_outstanding = max_outstanding
        self.holddown = holddown
        self.require_message_authenticator = require_message_authenticator
        self.bind = bind
        self.dictionary = dictionary()
        self.counters: dict[str, ServerCounters] = {}
        """Per server, by its ``str()`` (``HOST:PORT``)."""
        self.client_counters = ClientCounters()
        self._known: dict[tuple[str, int], RadiusServer] = {}
        for server in (*auth_servers, *acct_servers):
            self._known.setdefault(server.key, server)
            self.counters.setdefault(str(server), ServerCounters())
        self._preferred: dict[Kind, tuple[int, float]] = {}
        self._ids: dict[tuple[str, int], dict[int, _Request]] = {}
        self._waiting: dict[tuple[str, int], deque[_Request]] = {}
        self._requests: set[_Request] = set()
        self._random = random.SystemRandom()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._family = socket.AF_INET
        self.closed = False

    # ------------------------------------------------------------------ public API

    async def access(self, attributes: Sequence[Attribute]) -> RadiusReply:
        """Send an Access-Request; the verified Accept, Reject or Challenge (see the
        :class:`~l2tp.radius.interface.AccessClient` contract)."""
        return await self._request(Kind.ACCESS, attributes)

    async def account(self, attributes: Sequence[Attribute]) -> None:
        """Send an Accounting-Request until an Accounting-Response verifies.

        An Acct-Delay-Time among ``attributes`` is the delay already accrued (a spooled
        record); the time spent here is added on every (re)transmission.
        """
        await self._request(Kind.ACCOUNTING, attributes)

    @property
    def outstanding(self) -> int:
        return len(self._requests)

    @property
    def address(self) -> tuple[str, int] | None:
        """The socket's local address once open (tests, diagnostics)."""
        if self._sock is None:
            return None
        host, port = self._sock.getsockname()[:2]
        return (str(host), int(port))

    def snapshot(self) -> dict[str, Any]:
        """The counters as plain data (for ``l2tp ctl`` and logs; no secrets)."""
        from dataclasses import asdict

        return {
            "servers": {name: asdict(c) for name, c in self.counters.items()},
            **asdict(self.client_counters),
            "outstanding": len(self._requests),
        }

    def close(self) -> None:
        """Fail every outstanding request and close the socket; idempotent."""
        self.closed = True
        for request in list(self._requests):
            self._finish(request)
            if not request.future.done():
                request.future.set_exception(RadiusError("RADIUS client closed"))
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()

    # ------------------------------------------------------------------ requests

    async def _request(self, kind: Kind, attributes: Sequence[Attribute]) -> RadiusReply:
        if self.closed:
            raise RadiusError("RADIUS client closed")
        servers = self.servers[kind]
        if not servers:
            raise RadiusError(f"no RADIUS {_KIND_PORT_NAME[kind]} server configured")
        if len(self._requests) >= self.max_outstanding:
            self.client_counters.overloads += 1
            raise RadiusOverload(f"{len(self._requests)} RADIUS requests outstanding")
        loop = self._open()
        attrs = tuple(attributes)
        delay_base = 0
        if kind is Kind.ACCOUNTING:
            kept = []
            for name, value in attrs:
                if name == "Acct-Delay-Time":
                    delay_base = int(value)  # type: ignore[call-overload]
                else:
                    kept.append((name, value))
            attrs = tuple(kept)
        request = _Request(
            kind, attrs, self._order(kind), loop.create_future(), loop.time(), delay_base
        )
        self._check_encodable(request)
        self._requests.add(request)
        try:
            self._send_first(request)
            return await request.future
        finally:
            self._finish(request)

    def _check_encodable(self, request: _Request) -> None:
        """Raise ValueError now (API misuse) for attributes the dictionary cannot encode."""
        try:
            self._packet(request, request.servers[0], 0).RequestPacket()
        except (KeyError, ValueError, TypeError, struct.error) as exc:
            raise ValueError(f"cannot encode RADIUS attributes: {exc!r}") from None

    def _order(self, kind: Kind) -> list[RadiusServer]:
        """The servers in the order to try: from the last that answered (until the
        hold-down has passed since leaving the primary), then round the list."""
        servers = list(self.servers[kind])
        start, since = self._preferred.get(kind, (0, 0.0))
        assert self._loop is not None
        if start and self._loop.time() - since >= self.holddown:
            start = 0
            del self._preferred[kind]
        return servers[start:] + servers[:start]

    def _answered(self, request: _Request) -> None:
        servers = self.servers[request.kind]
        index = servers.index(request.server)
        current = self._preferred.get(request.kind, (0, 0.0))[0]
        if index != current:
            assert self._loop is not None
            if index:
                log.info("RADIUS: now preferring %s", request.server)
            self._preferred[request.kind] = (index, self._loop.time())

    def _send_first(self, request: _Request) -> None:
        """The first transmission to the request's current server (or wait for an id)."""
        request.sent = 0
        self._transmit(request)

    def _transmit(self, request: _Request) -> None:
        server = request.server
        counters = self.counters[str(server)]
        retransmission = request.sent > 0
        if request.kind is Kind.ACCESS and retransmission:
            data = request.raw  # RFC 2865 2.4: the same packet, same id and authenticator
        else:
            ident = self._allocate(server, request)
            if ident is None:
                self.client_counters.id_waits += 1
                self._waiting.setdefault(server.key, deque()).append(request)
                return
            packet = self._packet(request, server, ident)
            data = packet.RequestPacket()
            request.packets[ident] = packet
            request.raw = data
        if retransmission:
            counters.retransmissions += 1
        else:
            counters.requests += 1
        request.sent += 1
        self._send(data, server)
        assert self._loop is not None
        request.timer = self._loop.call_later(self.timeout, self._on_timeout, request)

    def _packet(self, request: _Request, server: RadiusServer, ident: int) -> rp.Packet:
        packet: rp.Packet
        if request.kind is Kind.ACCESS:
            packet = rp.AuthPacket(
                code=ACCESS_REQUEST, id=ident, secret=server.secret, dict=self.dictionary
            )
            packet.add_message_authenticator()  # RFC 3579 3.2; sets the authenticator too
        else:
            packet = rp.AcctPacket(
                code=ACCOUNTING_REQUEST, id=ident, secret=server.secret, dict=self.dictionary
            )
        for name, value in request.attributes:
            attr = self.dictionary.attributes[name]
            if attr.encrypt == 1 and isinstance(packet, rp.AuthPacket):
                value = packet.PwCrypt(value)  # RFC 2865 5.2, with this server's secret
            if attr.has_tag and isinstance(value, tuple):
                tag, value = value
                packet.AddAttribute(f"{name}:{int(tag)}", value)
            else:
                packet.AddAttribute(name, value)
        if request.kind is Kind.ACCOUNTING:
            assert self._loop is not None
            delay = request.delay_base + int(self._loop.time() - request.started)
            packet.AddAttribute("Acct-Delay-Time", delay)  # RFC 2866 5.2
        return packet

    def _on_timeout(self, request: _Request) -> None:
        request.timer = None
        if request.future.done():
            return
        try:
            if request.sent <= self.retries:
                self._transmit(request)
                return
            server = request.server
            self.counters[str(server)].timeouts += 1
            self._release(request)
            if request.index + 1 < len(request.servers):
                request.index += 1
                log.warning(
                    "RADIUS: no answer from %s after %d transmissions; trying %s",
                    server,
                    request.sent,
                    request.server,
                )
                self._send_first(request)
                return
            tried = ", ".join(str(s) for s in request.servers)
            request.future.set_exception(
                RadiusTimeout(f"no answer from RADIUS {_KIND_PORT_NAME[request.kind]} {tried}")
            )
        except Exception as exc:  # a bug: the caller gets it, the loop goes on
            log.exception("RADIUS: internal error retransmitting")
            if not request.future.done():
                request.future.set_exception(exc)

    # ------------------------------------------------------------------ identifiers

    def _allocate(self, server: RadiusServer, request: _Request) -> int | None:
        """A random Identifier not outstanding towards ``server`` (None: all 256 are)."""
        table = self._ids.setdefault(server.key, {})
        if len(table) >= 256:
            return None
        while True:
            ident = self._random.randrange(256)
            if ident not in table:
                break
        table[ident] = request
        request.ids.append(ident)
        return ident

    def _release(self, request: _Request) -> None:
        """Give back the request's Identifiers on its current server; start waiters."""
        if request.timer is not None:
            request.timer.cancel()
            request.timer = None
        key = request.server.key
        table = self._ids.get(key, {})
        for ident in request.ids:
            if table.get(ident) is request:
                del table[ident]
        freed = len(request.ids)
        request.ids.clear()
        request.packets.clear()
        waiting = self._waiting.get(key)
        if waiting is not None:
            with contextlib.suppress(ValueError):
                waiting.remove(request)
            while freed and waiting and not self.closed:
                freed -= 1
                self._send_first(waiting.popleft())

    def _finish(self, request: _Request) -> None:
        if request in self._requests:
            self._requests.discard(request)
            self._release(request)

    # ------------------------------------------------------------------ socket

    def _open(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            if loop is not self._loop:
                raise RuntimeError("a RadiusClient is used from one event loop only")
            return loop
        family = socket.AF_INET
        if any(s.ipv6 for s in self._known.values()) or (self.bind and ":" in self.bind):
            family = socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if family == socket.AF_INET6:
                # One socket for every server: IPv4 ones as IPv4-mapped addresses.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((self.bind or ("::" if family == socket.AF_INET6 else "0.0.0.0"), 0))
            loop.add_reader(sock.fileno(), self._on_readable)
        except BaseException:
            sock.close()
            raise
        self._sock, self._loop, self._family = sock, loop, family
        return loop

    def _send(self, data: bytes, server: RadiusServer) -> None:
        assert self._sock is not None
        host = server.host
        if self._family == socket.AF_INET6 and not server.ipv6:
            host = f"::ffff:{host}"
        try:
            self._sock.sendto(data, (host, server.port))
        except OSError as exc:
            self.client_counters.send_errors += 1
            log.debug("RADIUS: sending to %s: %s", server, exc)

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(READS_PER_WAKEUP):
            try:
                data, address = sock.recvfrom(MAX_PACKET)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # an ICMP error queued on the socket
                log.debug("RADIUS: receiving: %s", exc)
                return
            try:
                self._datagram(data, address)
            except Exception:
                log.exception("RADIUS: internal error handling a reply")

    # ------------------------------------------------------------------ replies

    def _datagram(self, data: bytes, address: tuple[Any, ...]) -> None:
        try:
            key = (_normal_host(str(address[0])), int(address[1]))
        except ValueError:
            key = ("", 0)
        server = self._known.get(key)
        if server is None:
            self.client_counters.unknown_source += 1
            return
        counters = self.counters[str(server)]
        if len(data) < 20:
            counters.malformed += 1
            return
        request = self._ids.get(key, {}).get(data[1])
        if request is None or request.future.done():
            counters.unmatched += 1
            return
        sent = request.packets[data[1]]
        try:
            reply = sent.CreateReply(packet=data)
        except Exception:  # pyrad's PacketError, or struct errors on odd lengths
            counters.malformed += 1
            return
        try:
            verified = sent.VerifyReply(
                reply,
                data,
                enforce_ma=self.require_message_authenticator and request.kind is Kind.ACCESS,
            )
        except Exception:
            verified = False
        if not verified:
            counters.bad_authenticators += 1
            log.debug("RADIUS: reply from %s failed verification; dropped", server)
            return
        expected = (
            (ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE)
            if request.kind is Kind.ACCESS
            else (ACCOUNTING_RESPONSE,)
        )
        if reply.code not in expected:
            counters.malformed += 1
            return
        try:
            attributes = decode_attributes(reply)
        except Exception:
            counters.malformed += 1
            return
        if reply.code == ACCESS_ACCEPT:
            counters.accepts += 1
        elif reply.code == ACCESS_REJECT:
            counters.rejects += 1
        elif reply.code == ACCESS_CHALLENGE:
            counters.challenges += 1
        else:
            counters.acct_responses += 1
        self._answered(request)
        self._finish(request)
        request.future.set_result(RadiusReply(code=reply.code, attributes=attributes))
