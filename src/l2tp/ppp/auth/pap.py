"""PAP, the Password Authentication Protocol (RFC 1334 section 2), both roles.

The peer repeats its Authenticate-Request every ``restart`` seconds until a
reply arrives or ``max_requests`` were sent (2.2.1: "MUST be repeated until
a valid reply packet is received, or an optional retry counter expires").
The authenticator answers every request, including repeats after the
decision (its Ack may have been lost), with the decision it made, and
never asks its verifier twice.

Packet data (2.2.1, 2.2.2)::

    Authenticate-Request: Peer-ID Length (1) | Peer-ID | Passwd-Length (1) | Password
    Authenticate-Ack/Nak: Msg-Length (1) | Message
"""

from __future__ import annotations

from collections.abc import Callable

from ..codec import Packet
from ..constants import AuthMethod, PapCode, Protocol
from .base import AuthDecision, AuthObserver, PapRequest
from .exchange import AuthExchange


def build_request(user: str, password: bytes) -> bytes:
    """The data of an Authenticate-Request; each field is at most 255 octets."""
    name = user.encode("utf-8")
    if len(name) > 0xFF or len(password) > 0xFF:
        raise ValueError("PAP Peer-ID and Password are at most 255 octets each")
    return bytes((len(name),)) + name + bytes((len(password),)) + password


def parse_request(data: bytes) -> tuple[str, bytes] | None:
    """(Peer-ID, Password) of an Authenticate-Request; None when the lengths do not fit."""
    if not data:
        return None
    name_len = data[0]
    if len(data) < 2 + name_len:
        return None
    pass_len = data[1 + name_len]
    if len(data) < 2 + name_len + pass_len:
        return None
    name = data[1 : 1 + name_len].decode("utf-8", "replace")
    return name, bytes(data[2 + name_len : 2 + name_len + pass_len])


def build_reply(message: str) -> bytes:
    text = message.encode("utf-8")[:0xFF]
    return bytes((len(text),)) + text


def parse_reply(data: bytes) -> str:
    """The Message of an Ack/Nak; tolerant, since the text is only informative."""
    if not data:
        return ""
    return data[1 : 1 + data[0]].decode("utf-8", "replace")


class PapAuthenticator(AuthExchange):
    """The authenticator role: wait for an Authenticate-Request, then ask for a decision."""

    method = AuthMethod.PAP

    def __init__(self, send: Callable[[int, bytes], None], observer: AuthObserver) -> None:
        super().__init__(Protocol.PAP, send, observer)
        self.user: str | None = None
        self._pending_id: int | None = None
        self._decision: AuthDecision | None = None

    def start(self, now: float) -> None:
        """Nothing to send: the peer speaks first (RFC 1334 2.1)."""

    def handle_timer(self, now: float) -> None:
        """Nothing to repeat: the peer repeats its request (RFC 1334 2.2.1)."""

    def receive(self, packet: Packet, now: float) -> None:
        if packet.code != PapCode.AUTHENTICATE_REQUEST:
            self.counters.stale += 1
            return
        parsed = parse_request(packet.data)
        if parsed is None:
            self.counters.malformed += 1
            return
        if self._decision is not None:
            # A repeat after our reply was lost: the same answer, never a new check.
            self._reply(packet.identifier, self._decision)
            return
        waiting = self._pending_id is not None
        self._pending_id = packet.identifier
        if waiting:
            return
        self.user, password = parsed
        self._observer.auth_requested(PapRequest(user=self.user, password=password), now)

    def decide(self, decision: AuthDecision, now: float) -> None:
        if self._pending_id is None or self._decision is not None:
            return
        self._decision = decision
        self._reply(self._pending_id, decision)
        reason = "" if decision.success else decision.message or "authentication failed"
        self._observer.auth_done(self.method, decision.success, self.user, reason, now)

    @property
    def pending(self) -> bool:
        return self._pending_id is not None and self._decision is None

    def _reply(self, identifier: int, decision: AuthDecision) -> None:
        code = PapCode.AUTHENTICATE_ACK if decision.success else PapCode.AUTHENTICATE_NAK
        message = decision.message or ("Login ok" if decision.success else "Login incorrect")
        self._send_packet(code, identifier, build_reply(message))


class PapPeer(AuthExchange):
    """The peer role: send the Authenticate-Request until Ack or Nak (RFC 1334 2.2.1)."""

    method = AuthMethod.PAP

    def __init__(
        self,
        send: Callable[[int, bytes], None],
        observer: AuthObserver,
        *,
        user: str,
        password: str,
        restart: float = 3.0,
        max_requests: int = 10,
    ) -> None:
        super().__init__(Protocol.PAP, send, observer, restart=restart, max_transmits=max_requests)
        self.user = user
        self._data = build_request(user, password.encode("utf-8"))
        self._identifier = 0
        self._done = False

    def start(self, now: float) -> None:
        self._transmit(now)

    def handle_timer(self, now: float) -> None:
        if self._timer_due(now) and not self._retransmit(now):
            self._finish(False, "no reply to Authenticate-Request", now)

    def receive(self, packet: Packet, now: float) -> None:
        if packet.code not in (PapCode.AUTHENTICATE_ACK, PapCode.AUTHENTICATE_NAK):
            self.counters.stale += 1
            return
        if self._done or packet.identifier != self._identifier:
            self.counters.stale += 1
            return
        message = parse_reply(packet.data)
        if packet.code == PapCode.AUTHENTICATE_ACK:
            self._finish(True, "", now)
        else:
            self._finish(False, message or "Authenticate-Nak", now)

    def _transmit(self, now: float) -> None:
        # RFC 1334 2.2.1: "The Identifier field MUST be changed each time an
        # Authenticate-Request packet is issued."
        self._identifier = (self._identifier + 1) & 0xFF
        self._send_repeated(PapCode.AUTHENTICATE_REQUEST, self._identifier, self._data, now)

    def _finish(self, success: bool, reason: str, now: float) -> None:
        self._done = True
        self._deadline = None
        self._observer.auth_done(self.method, success, self.user, reason, now)
