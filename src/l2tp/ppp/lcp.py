"""The Link Control Protocol: its options (RFC 1661 section 6) and its extra codes (5.7-5.9).

:class:`LcpOptions` negotiates, in both directions:

* **MRU** (6.1): we ask for ours only when it differs from the default 1500;
  a peer asking for less than :data:`~.constants.MIN_MRU` gets a Nak with it.
  The peer's MRU is the MTU the driver must give the PPP unit.
* **Authentication-Protocol** (6.2, RFC 1334 2.1, RFC 1994 3, RFC 2759 2):
  the authenticator asks for its methods in order of preference, moving to the
  peer's suggestion (or the next one) on a Nak; the peer role Acks a method it
  can do and Naks with its preferred method otherwise, and Rejects the option
  when it has no credentials at all.
* **Magic-Number** (6.4): random, non-zero, from the injected source. A
  request carrying our own number gets a Nak with a new one (and we change
  ours); after :data:`LOOPBACK_LIMIT` (or Max-Failure, if smaller) such
  collisions in one negotiation the link is declared looped back.
* **ACCM, PFC, ACFC** (RFC 1662 7.1, RFC 1661 6.5-6.6) and every other option
  are Configure-Rejected: an L2TP session carries no HDLC framing (RFC 2661
  5.4), and the Linux channel exchanges uncompressed 2-octet Protocol fields.

:class:`Lcp` adds the LCP-only codes: Protocol-Reject (5.7) in both
directions, Echo-Request/Reply (5.8) with the keepalive, and
Discard-Request (5.9).
"""

from __future__ import annotations

from collections.abc import Callable

from .codec import Option, Packet, u16, u32
from .constants import (
    DEFAULT_MRU,
    LCP_CODES,
    MIN_MRU,
    AuthMethod,
    Code,
    LcpOption,
    Protocol,
    RandomSource,
)
from .cp import ControlProtocol, LayerObserver, OptionHandler, OptionVerdicts, RestartConfig
from .cp import Verdict as V
from .fsm import Event, State

LOOPBACK_LIMIT = 10
"""Magic-Number collisions in one negotiation before we call the link looped back (at most
Max-Failure, see :class:`Lcp`)."""


def random_magic(random_bytes: RandomSource, avoid: int = 0) -> int:
    """A non-zero Magic-Number (RFC 1661 6.4: zero is not valid) different from ``avoid``."""
    while True:
        value = int.from_bytes(random_bytes(4), "big")
        if value not in (0, avoid):
            return value


class LcpOptions(OptionHandler):
    """LCP option policy and the values negotiated in each direction."""

    def __init__(
        self,
        *,
        random_bytes: RandomSource,
        mru: int = DEFAULT_MRU,
        request_auth: tuple[AuthMethod, ...] = (),
        accept_auth: tuple[AuthMethod, ...] = (),
    ) -> None:
        self._random = random_bytes
        self.mru = mru
        self.request_auth = request_auth
        """Authenticator: the methods we ask the peer to use, best first."""
        self.accept_auth = accept_auth
        """Peer: the methods we can answer, best first."""
        self.magic = 0
        self.loop_detected = False
        self.loopback_limit = LOOPBACK_LIMIT
        self._collisions = 0
        self._want_mru = False
        self._want_magic = True
        self._auth_index: int | None = None
        self._requested_mru = mru
        # Negotiated results.
        self.local_mru = DEFAULT_MRU
        """The MRU the peer acknowledged for us (what we receive)."""
        self.peer_mru = DEFAULT_MRU
        """The peer's MRU: the largest frame we may send, the unit's MTU."""
        self.peer_magic = 0
        self.auth_required: AuthMethod | None = None
        """The method the peer acknowledged it will authenticate itself with."""
        self.auth_to_perform: AuthMethod | None = None
        """The method we acknowledged we will authenticate ourselves with."""

    def known_codes(self) -> frozenset[int]:
        return LCP_CODES

    def reset(self, now: float) -> None:
        self._requested_mru = self.mru
        self._want_mru = self.mru != DEFAULT_MRU
        self._want_magic = True
        self.magic = random_magic(self._random, self.magic)
        self._collisions = 0
        self._auth_index = 0 if self.request_auth else None
        self.local_mru = self.peer_mru = DEFAULT_MRU
        self.peer_magic = 0
        self.auth_required = self.auth_to_perform = None

    def request_options(self) -> list[Option]:
        options: list[Option] = []
        if self._want_mru:
            options.append(Option(LcpOption.MRU, u16(self._requested_mru)))
        if self._auth_index is not None:
            method = self.request_auth[self._auth_index]
            options.append(Option(LcpOption.AUTHENTICATION_PROTOCOL, method.option_data))
        if self._want_magic:
            options.append(Option(LcpOption.MAGIC_NUMBER, u32(self.magic)))
        return options

    def check_request(self, options: list[Option]) -> OptionVerdicts:
        verdicts: OptionVerdicts = []
        for opt in options:
            if opt.type == LcpOption.MRU and len(opt.data) == 2:
                value = int.from_bytes(opt.data, "big")
                if value < MIN_MRU:
                    verdicts.append((V.NAK, Option(LcpOption.MRU, u16(MIN_MRU))))
                else:
                    verdicts.append((V.ACK, opt))
            elif opt.type == LcpOption.AUTHENTICATION_PROTOCOL and len(opt.data) >= 2:
                verdicts.append(self._check_auth(opt))
            elif opt.type == LcpOption.MAGIC_NUMBER and len(opt.data) == 4:
                verdicts.append(self._check_magic(opt))
            else:
                # ACCM, PFC, ACFC, Quality-Protocol, unknown types and bad lengths.
                verdicts.append((V.REJECT, opt))
        return verdicts

    def _check_auth(self, opt: Option) -> tuple[V, Option]:
        if not self.accept_auth:
            return V.REJECT, opt
        if AuthMethod.from_option_data(opt.data) in self.accept_auth:
            return V.ACK, opt
        return V.NAK, Option(LcpOption.AUTHENTICATION_PROTOCOL, self.accept_auth[0].option_data)

    def _check_magic(self, opt: Option) -> tuple[V, Option]:
        value = int.from_bytes(opt.data, "big")
        if value != 0 and not (self._want_magic and value == self.magic):
            return V.ACK, opt
        if value != 0:
            # RFC 1661 6.4: our own number came back, maybe a looped-back link. Both
            # ends pick new numbers; repeated collisions confirm the loop.
            self._collisions += 1
            if self._collisions >= self.loopback_limit:
                self.loop_detected = True
            self.magic = random_magic(self._random, self.magic)
        suggestion = random_magic(self._random, self.magic)
        return V.NAK, Option(LcpOption.MAGIC_NUMBER, u32(suggestion))

    def peer_acked(self, options: list[Option]) -> None:
        self.peer_mru = DEFAULT_MRU
        self.peer_magic = 0
        self.auth_to_perform = None
        for opt in options:
            if opt.type == LcpOption.MRU:
                self.peer_mru = int.from_bytes(opt.data, "big")
            elif opt.type == LcpOption.MAGIC_NUMBER:
                self.peer_magic = int.from_bytes(opt.data, "big")
            elif opt.type == LcpOption.AUTHENTICATION_PROTOCOL:
                self.auth_to_perform = AuthMethod.from_option_data(opt.data)

    def ack_received(self, options: list[Option]) -> None:
        self.local_mru = DEFAULT_MRU
        self.auth_required = None
        for opt in options:
            if opt.type == LcpOption.MRU:
                self.local_mru = int.from_bytes(opt.data, "big")
            elif opt.type == LcpOption.AUTHENTICATION_PROTOCOL:
                self.auth_required = AuthMethod.from_option_data(opt.data)

    def nak_received(self, options: list[Option]) -> None:
        for opt in options:
            if opt.type == LcpOption.MRU and len(opt.data) == 2:
                value = int.from_bytes(opt.data, "big")
                if value >= MIN_MRU:
                    self._requested_mru = value
                    self._want_mru = value != DEFAULT_MRU
                else:
                    self._want_mru = False
            elif opt.type == LcpOption.AUTHENTICATION_PROTOCOL and self._auth_index is not None:
                self._next_auth(AuthMethod.from_option_data(opt.data))
            elif opt.type == LcpOption.MAGIC_NUMBER and self._want_magic:
                self.magic = random_magic(self._random, self.magic)

    def _next_auth(self, suggested: AuthMethod | None) -> None:
        assert self._auth_index is not None
        if suggested in self.request_auth:
            index = self.request_auth.index(suggested)
            if index != self._auth_index:
                self._auth_index = index
                return
        # RFC 1661 6.2: the peer cannot do this one; offer our next, if any.
        self._auth_index += 1
        if self._auth_index >= len(self.request_auth):
            self._auth_index = None

    def reject_received(self, options: list[Option]) -> None:
        for opt in options:
            if opt.type == LcpOption.MRU:
                self._want_mru = False
            elif opt.type == LcpOption.AUTHENTICATION_PROTOCOL:
                self._auth_index = None
            elif opt.type == LcpOption.MAGIC_NUMBER:
                self._want_magic = False
                self.magic = 0

    @property
    def auth_refused(self) -> bool:
        """We wanted authentication and the peer refused every method we offered."""
        return bool(self.request_auth) and self._auth_index is None


class Lcp(ControlProtocol):
    """The LCP automaton plus Protocol-Reject, Echo and Discard, and the keepalive.

    ``on_protocol_reject(protocol, now)`` is called for a valid Protocol-Reject
    of anything but LCP (RFC 1661 5.7: stop sending that protocol);
    ``on_echo_failure(now)`` when ``echo_failure`` Echo-Requests in a row, one
    every ``echo_interval`` seconds, went unanswered.
    """

    def __init__(
        self,
        options: LcpOptions,
        observer: LayerObserver,
        send: Callable[[int, bytes], None],
        config: RestartConfig | None = None,
        *,
        on_protocol_reject: Callable[[int, float], None],
        on_echo_failure: Callable[[float], None],
        echo_interval: float | None = None,
        echo_failure: int = 3,
    ) -> None:
        super().__init__(Protocol.LCP, "LCP", options, observer, send, config)
        self.options = options
        # Detect the loop before Max-Failure turns our Magic-Number Naks into Rejects,
        # which would hide it (pppd exempts the option instead; same effect).
        options.loopback_limit = min(options.loopback_limit, self.config.max_failure)
        self._on_protocol_reject = on_protocol_reject
        self._on_echo_failure = on_echo_failure
        self.echo_interval = echo_interval
        self.echo_failure = echo_failure
        self.echos_pending = 0
        self.echo_replies = 0
        self._echo_deadline: float | None = None
        self._echo_id = 0

    # ------------------------------------------------------------- keepalive

    def start_keepalive(self, now: float) -> None:
        """Begin Echo-Requests; called when LCP opens (the first goes out at once)."""
        self.echos_pending = 0
        self._echo_deadline = now if self.echo_interval is not None else None

    def stop_keepalive(self) -> None:
        self._echo_deadline = None

    def get_timer(self) -> float | None:
        deadlines = [d for d in (super().get_timer(), self._echo_deadline) if d is not None]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        super().handle_timer(now)
        if self._echo_deadline is not None and now >= self._echo_deadline:
            self._echo_tick(now)

    def _echo_tick(self, now: float) -> None:
        assert self.echo_interval is not None
        if self.state is not State.OPENED:
            self._echo_deadline = None
            return
        if self.echos_pending >= self.echo_failure:
            self._echo_deadline = None
            self._on_echo_failure(now)
            return
        self.echos_pending += 1
        self._echo_id = self._next_identifier()
        self._send_packet(Code.ECHO_REQUEST, self._echo_id, u32(self.options.magic))
        self._echo_deadline = now + self.echo_interval

    # ---------------------------------------------------------------- receive

    def receive(self, packet: Packet, now: float) -> None:
        super().receive(packet, now)
        if self.options.loop_detected and self.state not in (State.CLOSING, State.CLOSED):
            self.options.loop_detected = False
            self.close(now, "looped-back link detected")

    def receive_extra(self, packet: Packet, now: float) -> None:
        if packet.code == Code.PROTOCOL_REJECT:
            if len(packet.data) < 2:
                self.counters.malformed += 1
                return
            rejected = int.from_bytes(packet.data[:2], "big")
            if rejected == Protocol.LCP:
                self._run(Event.RXJ_MINUS, now, packet)
                return
            self._run(Event.RXJ_PLUS, now, packet)
            if self.state is State.OPENED:
                # RFC 1661 5.7: only meaningful once LCP is Opened.
                self._on_protocol_reject(rejected, now)
            return
        if packet.code in (Code.ECHO_REQUEST, Code.ECHO_REPLY, Code.DISCARD_REQUEST):
            if len(packet.data) < 4:
                self.counters.malformed += 1
                return
            magic = int.from_bytes(packet.data[:4], "big")
            if magic != 0 and magic == self.options.magic:
                # RFC 1661 5.8: our own number means a looped-back link; do not answer.
                self.counters.unexpected += 1
                return
            if packet.code == Code.ECHO_REPLY and self.state is State.OPENED:
                self.echos_pending = 0
                self.echo_replies += 1
            self._run(Event.RXR, now, packet)
            return
        self.counters.unexpected += 1

    # ------------------------------------------------------------------- send

    def send_echo_reply(self, packet: Packet) -> None:
        if packet.code != Code.ECHO_REQUEST:
            return  # RXR also covers Echo-Reply and Discard-Request: nothing to answer.
        limit = max(0, self.peer_mru - 8)
        data = u32(self.options.magic) + packet.data[4:][:limit]
        self._send_packet(Code.ECHO_REPLY, packet.identifier, data)

    def send_protocol_reject(self, protocol: int, information: bytes) -> None:
        """RFC 1661 5.7: reject a protocol we do not run (only in Opened)."""
        if self.state is not State.OPENED:
            return
        limit = max(0, self.peer_mru - 6)
        data = u16(protocol) + information[:limit]
        self._send_packet(Code.PROTOCOL_REJECT, self._next_identifier(), data)
