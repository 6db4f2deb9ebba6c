"""Dynamic Authorization (RFC 5176): a Disconnect-Request or CoA-Request from a RADIUS
server ends a session (the L2TP CDN) or changes its Session-Timeout.

The server listens on UDP (port 3799 by default, RFC 5176 3) and answers only the
clients of its table, each known by its source address *and* its shared secret: a
datagram from any other address is dropped unanswered and counted (RFC 5176 3, as
RFC 2865 3 for an unknown NAS), as is one whose Request Authenticator (RFC 5176 2.3)
or Message-Authenticator (RFC 3579 3.2, computed as RFC 5176 3.3 says) does not verify,
or whose Event-Timestamp lies outside the replay window (RFC 5176 6.4: "MUST be
silently discarded", so no NAK). A retransmission (same client, id and
Request Authenticator, RFC 5080 2.2.2) gets the reply already sent, and is not acted
on twice; RFC 5176 2.3 asks for the duplicate window to be the replay window.

The server does not know sessions: it asks a :class:`SessionDirectory` (the daemon's
implementation is :class:`l2tp.radius.dae_runtime.ContextSessionDirectory`). Everything
here is on the event loop; a malformed datagram never raises (counted ``malformed``;
what is dropped is logged at debug level only, so a flood cannot fill the log),
a directory that raises is logged and answered with a NAK (Error-Cause 506), and a
bounded number of requests are worked on at once (beyond: dropped and counted; the
client retransmits).

docs/radius.md (Dynamic Authorization) has the configuration, the attribute rules and the
Error-Cause table.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from pyrad import packet as rpacket
from pyrad.dictionary import Dictionary

from l2tp.peer_text import quoted
from l2tp.radius import DICTIONARY_PATH
from l2tp.radius.dae_model import (
    ACCT_SESSION_ID,
    CALLING_STATION_ID,
    CHANGES,
    DEFAULT_CACHE_SIZE,
    DEFAULT_MAX_PENDING,
    DEFAULT_PORT,
    DEFAULT_WINDOW,
    DISCONNECT_ONLY,
    EVENT_TIMESTAMP,
    FRAMED_IP_ADDRESS,
    HEADER,
    IDENTIFICATION,
    MAX_PACKET,
    NAS_IDENTIFICATION,
    NAS_IDENTIFIER,
    NAS_IP_ADDRESS,
    NAS_IPV6_ADDRESS,
    SERVICE_AUTHORIZE_ONLY,
    SERVICE_FRAMED_USER,
    SERVICE_TYPE,
    SESSION_TIMEOUT,
    SINGLE,
    TRANSPORT,
    USER_NAME,
    Address,
    DaeClient,
    DaeCounters,
    ErrorCause,
    NasIdentity,
    NasScope,
    SessionDirectory,
    SessionQuery,
    SessionRef,
)

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_WINDOW",
    "DaeClient",
    "DaeCounters",
    "DaeProcessor",
    "DynamicAuthorizationServer",
    "ErrorCause",
    "NasIdentity",
    "NasScope",
    "SessionDirectory",
    "SessionQuery",
    "SessionRef",
]

log = logging.getLogger("l2tp.radius.dae")

# --------------------------------------------------------------------------- decoding


class _Invalid(Exception):
    """An attribute of a verified request is unusable: NAK with this cause."""

    def __init__(self, cause: ErrorCause, what: str) -> None:
        super().__init__(what)
        self.cause = cause


def _one(values: list[bytes], code: int) -> bytes:
    if len(values) != 1:
        raise _Invalid(ErrorCause.INVALID_REQUEST, f"attribute {code} more than once")
    return values[0]


def _text(value: bytes, code: int) -> str:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise _Invalid(ErrorCause.INVALID_REQUEST, f"attribute {code} is not UTF-8") from None
    if not text:
        raise _Invalid(ErrorCause.INVALID_REQUEST, f"attribute {code} is empty")
    return text


def _integer(value: bytes, code: int) -> int:
    if len(value) != 4:
        raise _Invalid(ErrorCause.INVALID_REQUEST, f"attribute {code}: {len(value)} octets, not 4")
    return int(struct.unpack("!I", value)[0])


def _ipv4(value: bytes, code: int) -> IPv4Address:
    if len(value) != 4:
        raise _Invalid(ErrorCause.INVALID_REQUEST, f"attribute {code}: {len(value)} octets, not 4")
    return IPv4Address(value)


def _ipv6(value: bytes, code: int) -> IPv6Address:
    if len(value) != 16:
        raise _Invalid(ErrorCause.INVALID_REQUEST, f"attribute {code}: {len(value)} octets, not 16")
    return IPv6Address(value)


@dataclass(frozen=True, slots=True)
class _Decision:
    code: int
    cause: ErrorCause | None = None
    echo_service_type: bool = False


def _authorize_only(request: rpacket.CoAPacket) -> bool:
    """Whether the request asks for Service-Type Authorize-Only (echoed in the NAK)."""
    values = request.get(SERVICE_TYPE, [])
    return bool(values) and values[0] == struct.pack("!I", SERVICE_AUTHORIZE_ONLY)


def _attributes_fit(packet: bytes) -> bool:
    """Whether the attributes after the header tile the packet exactly, each at least its
    own two header octets long (pyrad takes an overrunning last attribute as truncated)."""
    offset = HEADER
    while offset < len(packet):
        if offset + 2 > len(packet):
            return False
        length = packet[offset + 1]
        if length < 2 or offset + length > len(packet):
            return False
        offset += length
    return True


def _source_address(host: str) -> Address | None:
    """The datagram's source as an address; IPv4-mapped IPv6 (a dual-stack socket) as IPv4."""
    try:
        address = ip_address(host.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# --------------------------------------------------------------------------- the processor


class DaeProcessor:
    """Turns one datagram into the reply to send (or None), on the event loop.

    No socket here: :class:`DynamicAuthorizationServer` feeds it datagrams, and the unit
    tests call :meth:`handle` directly with fake clocks. ``wall_clock`` (seconds since
    the epoch) is compared with Event-Timestamp; ``monotonic`` ages the reply cache.
    """

    def __init__(
        self,
        directory: SessionDirectory,
        clients: Iterable[DaeClient],
        *,
        nas: NasIdentity | None = None,
        window: float = DEFAULT_WINDOW,
        require_event_timestamp: bool = False,
        cache_size: int = DEFAULT_CACHE_SIZE,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        dictionary: Dictionary | None = None,
        counters: DaeCounters | None = None,
    ) -> None:
        self.directory = directory
        self.clients: dict[Address, DaeClient] = {}
        self.nas = NasIdentity()
        self.window = window
        self.require_event_timestamp = require_event_timestamp
        self.configure(
            clients, nas=nas, window=window, require_event_timestamp=require_event_timestamp
        )
        self.cache_size = cache_size
        self.wall_clock = wall_clock
        self.monotonic = monotonic
        self.dictionary = dictionary or Dictionary(str(DICTIONARY_PATH))
        self.counters = counters if counters is not None else DaeCounters()
        self._cache: OrderedDict[tuple[object, ...], tuple[float, bytes | None]] = OrderedDict()

    def configure(
        self,
        clients: Iterable[DaeClient],
        *,
        nas: NasIdentity | None = None,
        window: float = DEFAULT_WINDOW,
        require_event_timestamp: bool = False,
    ) -> None:
        """Replace the client table and the policy (a configuration reload); raises
        ValueError, changing nothing, for a bad window or a client listed twice.

        Requests already verified finish with the client they were verified with; the
        replies kept for retransmissions stay (a request is verified before the cache
        is looked at, so a removed client or an old secret gets nothing from it).
        """
        if not window > 0:
            raise ValueError("the replay window must be positive")
        table: dict[Address, DaeClient] = {}
        for client in clients:
            if client.address in table:
                raise ValueError(f"Dynamic Authorization client {client.address} listed twice")
            table[client.address] = client
        self.clients = table
        self.nas = nas or NasIdentity()
        self.window = window
        self.require_event_timestamp = require_event_timestamp

    # ---------------------------------------------------------------- entry point

    async def handle(self, data: bytes, source: tuple[str, int]) -> bytes | None:
        """The reply to ``data`` from ``source`` (``(host, port)``), or None to stay silent.

        Never raises for anything in ``data``.
        """
        self.counters.received += 1
        address = _source_address(source[0])
        client = self.clients.get(address) if address is not None else None
        if client is None:
            self.counters.unknown_client += 1
            log.debug("dynamic authorization: datagram from unknown client %s", source[0])
            return None
        request = self._parse(data, client)
        if request is None:
            return None
        key = (address, source[1], request.id, request.authenticator)
        cached = self._cached(key)
        if cached is not None:
            self.counters.duplicates += 1
            return cached[1]  # None while the first copy is still being worked on
        if not self._fresh(request, client):
            return None
        self._remember(key, None)
        try:
            reply = await self._answer(request, client)
        except BaseException:
            self._cache.pop(key, None)  # cancelled: a retransmission may try again
            raise
        self._remember(key, reply)
        return reply

    # ---------------------------------------------------------------- transport checks

    def _parse(self, data: bytes, client: DaeClient) -> rpacket.CoAPacket | None:
        """The decoded, verified request, or None (counted) to drop it silently."""
        if len(data) < HEADER:
            self.counters.malformed += 1
            return None
        code = data[0]
        if code not in (rpacket.DisconnectRequest, rpacket.CoARequest):
            self.counters.unsupported_code += 1
            log.debug("dynamic authorization: code %d from %s dropped", code, client.label)
            return None
        length = int.from_bytes(data[2:4], "big")
        if length < HEADER or length > MAX_PACKET or length > len(data):
            self.counters.malformed += 1  # RFC 2865 3: shorter than Length: discard
            return None
        data = data[:length]  # RFC 2865 3: octets beyond Length are padding
        expected = hashlib.md5(data[:4] + bytes(16) + data[HEADER:] + client.secret).digest()
        if not hmac.compare_digest(expected, data[4:HEADER]):
            self.counters.bad_authenticator += 1  # RFC 5176 2.3 / 3.3: silently discard
            log.debug("dynamic authorization: bad Request Authenticator from %s", client.label)
            return None
        if not _attributes_fit(data):
            self.counters.malformed += 1  # RFC 2865 5: a broken attribute list: discard
            return None
        try:
            request = rpacket.CoAPacket(
                secret=client.secret, dict=self.dictionary, packet=data
            )  # a broken attribute list raises PacketError, or pyrad's own errors
        except Exception:
            self.counters.malformed += 1
            return None
        if request.message_authenticator:
            try:
                ok = bool(request.verify_message_authenticator())
            except Exception:
                ok = False
            if not ok:
                self.counters.bad_message_authenticator += 1  # RFC 3579 3.2: discard
                log.debug("dynamic authorization: bad Message-Authenticator from %s", client.label)
                return None
        return request

    def _fresh(self, request: rpacket.CoAPacket, client: DaeClient) -> bool:
        """RFC 5176 6.4: an Event-Timestamp outside the window, or none when one is
        required, means the request is silently discarded."""
        values: list[bytes] = request.get(EVENT_TIMESTAMP, [])
        if not values:
            if self.require_event_timestamp:
                self.counters.missing_timestamp += 1
                log.debug("dynamic authorization: no Event-Timestamp from %s", client.label)
                return False
            return True
        if len(values) != 1 or len(values[0]) != 4:
            return True  # malformed: the request is answered with a NAK 404 instead
        stamp = int.from_bytes(values[0], "big")
        if abs(self.wall_clock() - stamp) > self.window:
            self.counters.stale_timestamp += 1
            log.debug(
                "dynamic authorization: Event-Timestamp %d from %s outside the %g s window",
                stamp,
                client.label,
                self.window,
            )
            return False
        return True

    # ---------------------------------------------------------------- duplicate cache

    def _cached(self, key: tuple[object, ...]) -> tuple[float, bytes | None] | None:
        now = self.monotonic()
        while self._cache:
            oldest_key, (expires, _) = next(iter(self._cache.items()))
            if expires > now:
                break
            del self._cache[oldest_key]
        return self._cache.get(key)

    def _remember(self, key: tuple[object, ...], reply: bytes | None) -> None:
        self._cache.pop(key, None)
        while len(self._cache) >= self.cache_size:
            self._cache.popitem(last=False)
        self._cache[key] = (self.monotonic() + self.window, reply)

    # ---------------------------------------------------------------- the request itself

    async def _answer(self, request: rpacket.CoAPacket, client: DaeClient) -> bytes:
        disconnect = request.code == rpacket.DisconnectRequest
        if disconnect:
            self.counters.disconnect_requests += 1
        else:
            self.counters.coa_requests += 1
        try:
            decision = await self._decide(request, disconnect, client)
        except _Invalid as exc:
            log.info(
                "dynamic authorization: %s from %s refused: %s",
                "Disconnect-Request" if disconnect else "CoA-Request",
                client.label,
                exc,
            )
            nak = rpacket.DisconnectNAK if disconnect else rpacket.CoANAK
            echo = exc.cause is ErrorCause.UNSUPPORTED_SERVICE and _authorize_only(request)
            decision = _Decision(nak, exc.cause, echo)
        return self._reply(request, decision)

    def _reply(self, request: rpacket.CoAPacket, decision: _Decision) -> bytes:
        counters = self.counters
        reply = request.CreateReply()  # copies Proxy-State (RFC 5176 3)
        reply.code = decision.code
        if decision.cause is not None:
            reply[101] = [struct.pack("!I", decision.cause)]
            by_cause = counters.naks_by_cause
            by_cause[int(decision.cause)] = by_cause.get(int(decision.cause), 0) + 1
        if decision.echo_service_type:
            reply[SERVICE_TYPE] = [struct.pack("!I", SERVICE_AUTHORIZE_ONLY)]
        if request.message_authenticator:
            reply.add_message_authenticator()  # RFC 5176 3.3, RFC 3579 3.2
        if decision.code == rpacket.DisconnectACK:
            counters.disconnect_acks += 1
        elif decision.code == rpacket.DisconnectNAK:
            counters.disconnect_naks += 1
        elif decision.code == rpacket.CoAACK:
            counters.coa_acks += 1
        else:
            counters.coa_naks += 1
        return bytes(reply.ReplyPacket())

    async def _decide(
        self, request: rpacket.CoAPacket, disconnect: bool, client: DaeClient
    ) -> _Decision:
        """The ACK or NAK of a verified request (raises :class:`_Invalid` for a NAK
        found while reading its attributes)."""
        attrs: dict[object, list[bytes]] = {
            code: list(values) for code, values in OrderedDict.items(request)
        }
        for code, values in attrs.items():
            if code in SINGLE and len(values) > 1:
                raise _Invalid(ErrorCause.INVALID_REQUEST, f"attribute {code} more than once")
        if EVENT_TIMESTAMP in attrs:
            _integer(_one(attrs[EVENT_TIMESTAMP], EVENT_TIMESTAMP), EVENT_TIMESTAMP)
        if SERVICE_TYPE in attrs:
            # RFC 5176 3.2: Authorize-Only (which comes with a State we would otherwise
            # call unsupported) or any other service we do not offer: 405.
            service = _integer(_one(attrs[SERVICE_TYPE], SERVICE_TYPE), SERVICE_TYPE)
            if service != SERVICE_FRAMED_USER:
                raise _Invalid(ErrorCause.UNSUPPORTED_SERVICE, f"Service-Type {service}")
        allowed = IDENTIFICATION | NAS_IDENTIFICATION | TRANSPORT | {SERVICE_TYPE}
        allowed |= DISCONNECT_ONLY if disconnect else CHANGES
        unsupported = [code for code in attrs if code not in allowed]
        if unsupported:
            names = ", ".join(self._name(code) for code in unsupported)
            raise _Invalid(ErrorCause.UNSUPPORTED_ATTRIBUTE, f"unsupported attributes {names}")
        query = self._query(attrs, self._check_nas(attrs))
        timeout: int | None = None
        if SESSION_TIMEOUT in attrs:
            timeout = _integer(_one(attrs[SESSION_TIMEOUT], SESSION_TIMEOUT), SESSION_TIMEOUT)
        if query.empty:
            raise _Invalid(ErrorCause.MISSING_ATTRIBUTE, "no session identification attribute")
        try:
            refs = list(self.directory.find(query))
        except Exception:
            return self._directory_failed(disconnect, "finding sessions")
        if not refs:
            raise _Invalid(ErrorCause.SESSION_CONTEXT_NOT_FOUND, f"no session matches {query}")
        if disconnect:
            return await self._disconnect(refs, client)
        if SESSION_TIMEOUT in attrs:
            return await self._set_timeout(refs, timeout or None, client)
        return _Decision(rpacket.CoAACK)  # identification only: nothing to change

    async def _disconnect(self, refs: list[SessionRef], client: DaeClient) -> _Decision:
        try:
            results = await asyncio.gather(*(self.directory.disconnect(ref) for ref in refs))
        except Exception:
            return self._directory_failed(True, "closing sessions")
        self.counters.sessions_disconnected += sum(results)
        log.info(
            "dynamic authorization: %s disconnected %d of %d sessions (%s)",
            client.label,
            sum(results),
            len(refs),
            ", ".join(f"{ref.key[0]}/{ref.key[1]} user {quoted(ref.user_name)}" for ref in refs),
        )
        if not all(results):
            raise _Invalid(ErrorCause.SESSION_CONTEXT_NOT_REMOVABLE, "a session did not close")
        return _Decision(rpacket.DisconnectACK)

    async def _set_timeout(
        self, refs: list[SessionRef], seconds: int | None, client: DaeClient
    ) -> _Decision:
        try:
            results = await asyncio.gather(
                *(self.directory.set_session_timeout(ref, seconds) for ref in refs)
            )
        except Exception:
            return self._directory_failed(False, "setting Session-Timeout")
        self.counters.session_timeouts_set += sum(results)
        log.info(
            "dynamic authorization: %s set Session-Timeout %s on %d of %d sessions",
            client.label,
            seconds if seconds is not None else "none",
            sum(results),
            len(refs),
        )
        if not all(results):
            raise _Invalid(
                ErrorCause.UNSUPPORTED_ATTRIBUTE, "a session cannot take a Session-Timeout"
            )
        return _Decision(rpacket.CoAACK)

    def _directory_failed(self, disconnect: bool, what: str) -> _Decision:
        """A bug in the directory: loud in our log, a NAK 506 to the client (no text)."""
        self.counters.directory_errors += 1
        log.exception("dynamic authorization: session directory failed %s", what)
        nak = rpacket.DisconnectNAK if disconnect else rpacket.CoANAK
        return _Decision(nak, ErrorCause.RESOURCES_UNAVAILABLE)

    def _check_nas(self, attrs: dict[object, list[bytes]]) -> NasScope | None:
        """403 unless the NAS attributes name one of our identities; else whose sessions
        they address (None: anyone's, no NAS attribute): a request naming a listener's
        own identity finds that listener's sessions only (:meth:`NasIdentity.scope`)."""
        identifier = ipv4 = ipv6 = None
        if NAS_IDENTIFIER in attrs:
            identifier = _text(_one(attrs[NAS_IDENTIFIER], NAS_IDENTIFIER), NAS_IDENTIFIER)
        if NAS_IP_ADDRESS in attrs:
            ipv4 = _ipv4(_one(attrs[NAS_IP_ADDRESS], NAS_IP_ADDRESS), NAS_IP_ADDRESS)
        if NAS_IPV6_ADDRESS in attrs:
            ipv6 = _ipv6(_one(attrs[NAS_IPV6_ADDRESS], NAS_IPV6_ADDRESS), NAS_IPV6_ADDRESS)
        if not self.nas.matches(identifier, ipv4, ipv6):
            raise _Invalid(ErrorCause.NAS_IDENTIFICATION_MISMATCH, "addressed to another NAS")
        return self.nas.scope(identifier, ipv4, ipv6)

    @staticmethod
    def _query(attrs: dict[object, list[bytes]], nas: NasScope | None) -> SessionQuery:
        def text(code: int) -> str | None:
            return _text(_one(attrs[code], code), code) if code in attrs else None

        framed = None
        if FRAMED_IP_ADDRESS in attrs:
            framed = _ipv4(_one(attrs[FRAMED_IP_ADDRESS], FRAMED_IP_ADDRESS), FRAMED_IP_ADDRESS)
        return SessionQuery(
            acct_session_id=text(ACCT_SESSION_ID),
            user_name=text(USER_NAME),
            framed_ip=framed,
            calling_station_id=text(CALLING_STATION_ID),
            nas=nas,
        )

    def _name(self, code: object) -> str:
        """An attribute's dictionary name for our log (its number when unknown)."""
        try:
            if self.dictionary.attrindex.HasBackward(code):
                return str(self.dictionary.attrindex.GetBackward(code))
        except TypeError:
            pass
        return str(code)


# --------------------------------------------------------------------------- the server


class DynamicAuthorizationServer:
    """The UDP server (module documentation); :meth:`start`, then :meth:`close`.

    The constructor is what the ``[radius]`` configuration will call: ``clients`` (source
    address + secret), where to listen (``host``, ``port``), our NAS identity,
    ``window`` (Event-Timestamp skew and duplicate-reply lifetime, seconds) and
    ``require_event_timestamp`` (RFC 5176 6.4's "SHOULD be configurable"). ``counters``:
    carried over from a server this one replaces (a reload that moved the socket).
    :meth:`configure` changes the clients and policy of a running server.
    """

    def __init__(
        self,
        directory: SessionDirectory,
        clients: Iterable[DaeClient],
        *,
        host: str = "0.0.0.0",
        port: int = DEFAULT_PORT,
        nas: NasIdentity | None = None,
        window: float = DEFAULT_WINDOW,
        require_event_timestamp: bool = False,
        max_pending: int = DEFAULT_MAX_PENDING,
        wall_clock: Callable[[], float] = time.time,
        counters: DaeCounters | None = None,
    ) -> None:
        self.processor = DaeProcessor(
            directory,
            clients,
            nas=nas,
            window=window,
            require_event_timestamp=require_event_timestamp,
            wall_clock=wall_clock,
            monotonic=time.monotonic,
            counters=counters,
        )
        self.host = host
        self.port = port
        self.max_pending = max_pending
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _Protocol | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def counters(self) -> DaeCounters:
        return self.processor.counters

    def configure(
        self,
        clients: Iterable[DaeClient],
        *,
        nas: NasIdentity | None = None,
        window: float = DEFAULT_WINDOW,
        require_event_timestamp: bool = False,
    ) -> None:
        """New clients, secrets and policy for the requests from now on, on the same
        socket (:meth:`DaeProcessor.configure`)."""
        self.processor.configure(
            clients, nas=nas, window=window, require_event_timestamp=require_event_timestamp
        )

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)`` (the real port when 0 was asked for)."""
        if self._transport is None:
            raise RuntimeError("the Dynamic Authorization server is not started")
        sockname = self._transport.get_extra_info("sockname")
        return (str(sockname[0]), int(sockname[1]))

    async def start(self) -> None:
        """Bind the socket (raises OSError, e.g. address in use)."""
        if self._transport is not None:
            raise RuntimeError("the Dynamic Authorization server is already started")
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Protocol(self, loop.create_future()), local_addr=(self.host, self.port)
        )
        self._transport, self._protocol = transport, protocol
        log.info("dynamic authorization: listening on %s port %d", *self.address[:2])

    async def close(self) -> None:
        """Stop listening and cancel the requests in progress (no reply is sent for them).

        Returns once the socket is closed (asyncio closes it a loop turn after
        ``transport.close()``), so that its address can be bound again at once.
        """
        transport, self._transport = self._transport, None
        protocol, self._protocol = self._protocol, None
        if transport is not None:
            transport.close()
        if protocol is not None:
            await asyncio.shield(protocol.closed)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _received(self, data: bytes, source: tuple[str, int]) -> None:
        if len(self._tasks) >= self.max_pending:
            self.processor.counters.received += 1
            self.processor.counters.overload += 1
            return
        task = asyncio.get_running_loop().create_task(self._serve(data, source))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, data: bytes, source: tuple[str, int]) -> None:
        try:
            reply = await self.processor.handle(data, source)
        except Exception:
            log.exception("dynamic authorization: internal error on a request from %s", source[0])
            return
        transport = self._transport
        if reply is not None and transport is not None:
            transport.sendto(reply, source)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: DynamicAuthorizationServer, closed: asyncio.Future[None]) -> None:
        self._server = server
        self.closed = closed
        """Done once the socket is closed."""

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._server._received(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("dynamic authorization: socket error %s", exc)
