"""CHAP with MD5 (RFC 1994) and MS-CHAPv2 (RFC 2759), both roles.

The two share CHAP's packets (RFC 1994 section 4)::

    Challenge/Response: Value-Size (1) | Value | Name (rest)
    Success/Failure:    Message (rest)

and differ in the Value: MD5 answers ``MD5(Identifier + secret + Challenge)``
(RFC 1994 4.1); MS-CHAPv2 answers a 49-octet structure with an NT-Response
and authenticates the authenticator in return through the "S=" field of its
Success message (RFC 2759 sections 4-5).

Loss handling. The authenticator repeats its Challenge every ``restart``
seconds until a Response arrives (RFC 1994 4.1). Because the Success may be
lost, the authenticator answers a repeated Response for an already decided
Identifier with the same reply (RFC 1994 4.2 "MUST allow repeated Response
packets ... MUST return the same reply Code"), and the peer therefore
repeats its Response until a Success or Failure arrives.

Re-challenge (RFC 1994 section 2: "at random intervals"): with
``rechallenge`` set, the authenticator starts a new exchange that many
seconds after each success; a failure then ends the link.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from ..codec import Packet
from ..constants import AuthMethod, ChapCode, Protocol, RandomSource
from . import mschapv2
from .base import AuthDecision, AuthObserver, ChapMd5Request, MsChapV2Request
from .exchange import AuthExchange

MD5_CHALLENGE_LEN = 16
"""Octets of random challenge for CHAP-MD5, as long as the digest (RFC 1994 2.3)."""


def md5_response(identifier: int, secret: bytes, challenge: bytes) -> bytes:
    """RFC 1994 4.1: MD5 over Identifier, secret and Challenge Value."""
    return hashlib.md5(bytes((identifier,)) + secret + challenge).digest()


def md5_verify(identifier: int, secret: bytes, challenge: bytes, response: bytes) -> bool:
    return hmac.compare_digest(md5_response(identifier, secret, challenge), response)


def build_value_packet(value: bytes, name: str) -> bytes:
    """Data of a Challenge or Response."""
    if len(value) > 0xFF:
        raise ValueError("a CHAP Value is at most 255 octets")
    return bytes((len(value),)) + value + name.encode("utf-8")


def parse_value_packet(data: bytes) -> tuple[bytes, str] | None:
    """(Value, Name) of a Challenge or Response; None when Value-Size does not fit."""
    if not data or data[0] == 0 or len(data) < 1 + data[0]:
        return None
    size = data[0]
    return bytes(data[1 : 1 + size]), data[1 + size :].decode("utf-8", "replace")


class _ChapRole(AuthExchange):
    """What both CHAP roles keep: the algorithm, the random source and whether an
    exchange succeeded."""

    def __init__(
        self,
        method: AuthMethod,
        send: Callable[[int, bytes], None],
        observer: AuthObserver,
        random_bytes: RandomSource,
        restart: float,
        max_transmits: int,
    ) -> None:
        if method is AuthMethod.PAP:
            raise ValueError("PAP is not a CHAP algorithm")
        super().__init__(
            Protocol.CHAP, send, observer, restart=restart, max_transmits=max_transmits
        )
        self.method = method
        self._random = random_bytes
        self.succeeded = False
        """At least one exchange succeeded (for the authenticator, later ones are
        re-challenges)."""


class ChapAuthenticator(_ChapRole):
    """The authenticator role: Challenge, then ask for a decision on the Response."""

    def __init__(
        self,
        method: AuthMethod,
        send: Callable[[int, bytes], None],
        observer: AuthObserver,
        *,
        random_bytes: RandomSource,
        name: str,
        restart: float = 3.0,
        max_challenges: int = 10,
        rechallenge: float | None = None,
    ) -> None:
        super().__init__(method, send, observer, random_bytes, restart, max_challenges)
        self._name = name
        self._rechallenge = rechallenge
        self.user: str | None = None
        self._identifier = 0
        self._challenge = b""
        self._pending = False
        self._reply: tuple[int, bytes] | None = None

    def start(self, now: float) -> None:
        self._identifier = (self._identifier + 1) & 0xFF
        self._challenge = self._random(mschapv2.CHALLENGE_LEN)
        if len(self._challenge) != mschapv2.CHALLENGE_LEN:
            raise ValueError("the random source returned the wrong number of octets")
        self._sent = 0
        self._pending = False
        self._reply = None
        self._transmit(now)

    @property
    def pending(self) -> bool:
        return self._pending

    def handle_timer(self, now: float) -> None:
        if not self._timer_due(now):
            return
        if self._reply is not None:
            self.start(now)  # the re-challenge interval elapsed
        elif self._pending:
            return  # waiting for the verifier: the connection's auth timeout bounds this
        elif not self._retransmit(now):
            self._finish(False, "no Response to Challenge", now)

    def receive(self, packet: Packet, now: float) -> None:
        if packet.code != ChapCode.RESPONSE:
            self.counters.stale += 1
            return
        if packet.identifier != self._identifier:
            self.counters.stale += 1
            return
        if self._reply is not None:
            self._send_packet(*self._reply_packet())
            return
        if self._pending:
            return
        parsed = parse_value_packet(packet.data)
        if parsed is None:
            self.counters.malformed += 1
            return
        value, user = parsed
        request: ChapMd5Request | MsChapV2Request
        if self.method is AuthMethod.CHAP_MD5:
            request = ChapMd5Request(
                user=user, identifier=packet.identifier, challenge=self._challenge, response=value
            )
        else:
            fields = mschapv2.parse_response_value(value)
            if fields is None:
                self.counters.malformed += 1
                return
            request = MsChapV2Request(
                user=user,
                identifier=packet.identifier,
                authenticator_challenge=self._challenge,
                peer_challenge=fields[0],
                nt_response=fields[1],
            )
        if self.succeeded and user != self.user:
            # RFC 1994 2.2: a re-challenge authenticates the same peer, not a new one.
            self._pending = True
            self.decide(AuthDecision(success=False, message="Name changed"), now)
            return
        self.user = user
        self._pending = True
        self._deadline = None
        self._observer.auth_requested(request, now)

    def decide(self, decision: AuthDecision, now: float) -> None:
        if not self._pending:
            return
        self._pending = False
        mschap = self.method is AuthMethod.MSCHAP_V2
        if decision.success and mschap and decision.authenticator_response is None:
            # RFC 2759 5: a Success without "S=" would be refused by the peer anyway.
            decision = AuthDecision(success=False, message="no authenticator response")
        if decision.success:
            if self.method is AuthMethod.MSCHAP_V2:
                assert decision.authenticator_response is not None
                message = mschapv2.format_success(
                    decision.authenticator_response, decision.message or "Access granted"
                )
            else:
                message = (decision.message or "Access granted").encode("utf-8")
            self._reply = (ChapCode.SUCCESS, message)
        else:
            text = decision.message or "Access denied"
            if self.method is AuthMethod.MSCHAP_V2:
                self._reply = (ChapCode.FAILURE, mschapv2.format_failure(self._challenge, text))
            else:
                self._reply = (ChapCode.FAILURE, text.encode("utf-8"))
        self._send_packet(*self._reply_packet())
        first = not self.succeeded
        if decision.success:
            self.succeeded = True
            self._deadline = None if self._rechallenge is None else now + self._rechallenge
            if first:
                self._observer.auth_done(self.method, True, self.user, "", now)
        else:
            self._deadline = None
            reason = decision.message or "authentication failed"
            self._observer.auth_done(self.method, False, self.user, reason, now)

    def _reply_packet(self) -> tuple[int, int, bytes]:
        assert self._reply is not None
        return self._reply[0], self._identifier, self._reply[1]

    def _transmit(self, now: float) -> None:
        data = build_value_packet(self._challenge, self._name)
        self._send_repeated(ChapCode.CHALLENGE, self._identifier, data, now)

    def _finish(self, success: bool, reason: str, now: float) -> None:
        self._deadline = None
        self._observer.auth_done(self.method, success, self.user, reason, now)


class ChapPeer(_ChapRole):
    """The peer role: answer each Challenge, repeat the Response until Success or Failure."""

    def __init__(
        self,
        method: AuthMethod,
        send: Callable[[int, bytes], None],
        observer: AuthObserver,
        *,
        random_bytes: RandomSource,
        user: str,
        password: str,
        restart: float = 3.0,
        max_responses: int = 10,
    ) -> None:
        super().__init__(method, send, observer, random_bytes, restart, max_responses)
        self.user = user
        self._password = password
        self._identifier: int | None = None
        self._response = b""
        self._expected_auth: bytes | None = None
        self._answered = False

    def start(self, now: float) -> None:
        """Nothing to send: the authenticator speaks first (RFC 1994 2.1)."""

    def handle_timer(self, now: float) -> None:
        if self._timer_due(now) and not self._retransmit(now):
            self._answered = True
            self._observer.auth_done(self.method, False, self.user, "no Success or Failure", now)

    def receive(self, packet: Packet, now: float) -> None:
        if packet.code == ChapCode.CHALLENGE:
            self._receive_challenge(packet, now)
        elif packet.code in (ChapCode.SUCCESS, ChapCode.FAILURE):
            if packet.identifier != self._identifier or self._answered:
                self.counters.stale += 1
                return
            self._receive_result(packet, now)
        else:
            self.counters.stale += 1

    def _receive_challenge(self, packet: Packet, now: float) -> None:
        parsed = parse_value_packet(packet.data)
        if parsed is None:
            self.counters.malformed += 1
            return
        challenge, _authenticator_name = parsed
        if packet.identifier == self._identifier and not self._answered:
            self._transmit(now)  # a repeated Challenge: our Response was lost
            return
        self._identifier = packet.identifier
        self._answered = False
        self._sent = 0
        if self.method is AuthMethod.CHAP_MD5:
            secret = self._password.encode("utf-8")
            value = md5_response(packet.identifier, secret, challenge)
        else:
            if len(challenge) != mschapv2.CHALLENGE_LEN:
                self.counters.malformed += 1
                return
            peer_challenge = self._random(mschapv2.CHALLENGE_LEN)
            nt = mschapv2.generate_nt_response(challenge, peer_challenge, self.user, self._password)
            self._expected_auth = mschapv2.generate_authenticator_response(
                self._password, nt, peer_challenge, challenge, self.user
            )
            value = mschapv2.build_response_value(peer_challenge, nt)
        self._response = build_value_packet(value, self.user)
        self._transmit(now)

    def _receive_result(self, packet: Packet, now: float) -> None:
        self._answered = True
        self._deadline = None
        if packet.code == ChapCode.FAILURE:
            if self.method is AuthMethod.MSCHAP_V2:
                reason = mschapv2.failure_text(packet.data)
            else:
                reason = packet.data.decode("utf-8", "replace") or "Failure"
            self._observer.auth_done(self.method, False, self.user, reason, now)
            return
        if self.method is AuthMethod.MSCHAP_V2:
            # RFC 2759 section 5: the peer MUST check the authenticator response and
            # end the link when it is wrong: the authenticator may be an impostor.
            parsed = mschapv2.parse_success(packet.data)
            expected = self._expected_auth
            if parsed is None or expected is None or not hmac.compare_digest(parsed[0], expected):
                reason = "bad authenticator response in Success"
                self._observer.auth_done(self.method, False, self.user, reason, now)
                return
        if not self.succeeded:
            self.succeeded = True
            self._observer.auth_done(self.method, True, self.user, "", now)

    def _transmit(self, now: float) -> None:
        assert self._identifier is not None
        self._send_repeated(ChapCode.RESPONSE, self._identifier, self._response, now)
