"""The engine that runs the RFC 1661 automaton for one control protocol (LCP or an NCP).

:mod:`.fsm` says *what* to do; this module does it: it owns the restart
timer and counters (RFC 1661 4.6), builds and checks Configure-*,
Terminate-* and Code-Reject packets (5.1-5.6), and classifies received
packets into automaton events. The option semantics of each protocol live
in an :class:`OptionHandler` (LCP in :mod:`.lcp`, IPCP in :mod:`.ipcp`,
IPv6CP in :mod:`.ipv6cp`); the four layer actions (tlu, tld, tls, tlf) are
reported to a :class:`LayerObserver`, the :class:`~.session.PppConnection`.

Everything is sans-IO: packets go out through the ``send`` callable, time is
the ``now`` argument, and :meth:`ControlProtocol.get_timer` /
:meth:`ControlProtocol.handle_timer` expose the one restart timer.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from ..protocol.errors import CodecError, LocalProtocolError
from .codec import (
    PACKET_HEADER_LEN,
    Option,
    Packet,
    parse_options,
    serialize_options,
    serialize_packet,
)
from .constants import NCP_CODES, Code
from .fsm import LOCAL_EVENTS, TIMER_STATES, Action, Event, State, Transition, lookup


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartConfig:
    """RFC 1661 4.6 timer and counters, with the RFC's suggested defaults."""

    restart_interval: float = 3.0
    """Seconds before a Configure- or Terminate-Request is sent again."""
    max_terminate: int = 2
    """Terminate-Requests sent without a Terminate-Ack before giving up."""
    max_configure: int = 10
    """Configure-Requests sent without a valid reply before giving up."""
    max_failure: int = 5
    """Configure-Naks sent without an Ack before further Naks become Rejects."""

    def __post_init__(self) -> None:
        if not self.restart_interval > 0:
            raise ValueError("restart_interval must be positive")
        if self.max_terminate < 1 or self.max_configure < 1 or self.max_failure < 1:
            raise ValueError("max_terminate, max_configure and max_failure must be at least 1")


class Verdict(enum.IntEnum):
    """How one option of a peer's Configure-Request is answered (RFC 1661 5.2-5.4)."""

    ACK = Code.CONFIGURE_ACK
    NAK = Code.CONFIGURE_NAK
    """The option carries the value we would accept instead."""
    REJECT = Code.CONFIGURE_REJECT


OptionVerdicts = list[tuple[Verdict, Option]]


class OptionHandler(ABC):
    """What one control protocol's options mean. Subclasses hold the negotiated values."""

    def known_codes(self) -> frozenset[int]:
        """Codes this protocol understands; the rest get a Code-Reject (RFC 1661 5.6)."""
        return NCP_CODES

    @abstractmethod
    def reset(self, now: float) -> None:
        """A new negotiation starts: go back to the options we want most."""

    @abstractmethod
    def request_options(self) -> list[Option]:
        """The options of our next Configure-Request."""

    @abstractmethod
    def check_request(self, options: list[Option]) -> OptionVerdicts:
        """Judge every option of the peer's Configure-Request, in order.

        A Nak may also suggest an option the peer did not include (RFC 1661
        5.3: "...options which the sender desires the receiver to include").
        """

    @abstractmethod
    def peer_acked(self, options: list[Option]) -> None:
        """We are about to Configure-Ack ``options``: they are now the peer's settings."""

    @abstractmethod
    def ack_received(self, options: list[Option]) -> None:
        """The peer acknowledged our request: these are our settings."""

    @abstractmethod
    def nak_received(self, options: list[Option]) -> None:
        """Adjust our next request to the values the peer suggested (RFC 1661 5.3)."""

    @abstractmethod
    def reject_received(self, options: list[Option]) -> None:
        """Stop asking for ``options`` (RFC 1661 5.4)."""


class LayerObserver(TypingProtocol):
    """Receives the automaton's layer actions (RFC 1661 4.4)."""

    def this_layer_up(self, cp: ControlProtocol, now: float) -> None: ...

    def this_layer_down(self, cp: ControlProtocol, now: float) -> None: ...

    def this_layer_started(self, cp: ControlProtocol, now: float) -> None: ...

    def this_layer_finished(self, cp: ControlProtocol, now: float) -> None: ...


@dataclass(slots=True)
class CpCounters:
    """Packets this protocol discarded, by reason (peer faults never raise)."""

    malformed: int = 0
    """Options that do not parse, or a packet too short for its code."""
    stale_replies: int = 0
    """Configure-Ack/Nak/Reject whose Identifier or contents do not match our request."""
    unexpected: int = 0
    """Packets the automaton has no transition for (RFC 1661 "-")."""
    code_rejects_sent: int = 0
    duplicate_requests: int = 0
    """Repeats of the Configure-Request acknowledged last, re-acknowledged in Opened."""


class ControlProtocol:
    """One instance of the RFC 1661 automaton, for one ``protocol`` number."""

    def __init__(
        self,
        protocol: int,
        name: str,
        handler: OptionHandler,
        observer: LayerObserver,
        send: Callable[[int, bytes], None],
        config: RestartConfig | None = None,
    ) -> None:
        self.protocol = protocol
        self.name = name
        self.handler = handler
        self.config = config if config is not None else RestartConfig()
        self.state = State.INITIAL
        self.counters = CpCounters()
        self.peer_mru = 1500
        """Replies that echo a packet (Code-Reject) are truncated to this (RFC 1661 5.6)."""
        self.terminated_by_peer = False
        self.terminate_reason = ""
        """Our Close reason, or the text of the peer's Terminate-Request."""
        self._observer = observer
        self._send = send
        self._deadline: float | None = None
        self._restart_count = 0
        self._failures = 0
        self._identifier = 0
        self._request_id: int | None = None
        self._request_data = b""
        self._replied = False
        self._acked: tuple[int, bytes] | None = None
        self._reply: tuple[Code, list[Option]] | None = None
        self.gave_up = False
        """The last transition was a "p" cell of RFC 1661 4.1 (TO- while negotiating:
        Max-Configure requests unanswered); the automaton waits in Stopped, passively."""

    # ------------------------------------------------------------ local events

    def up(self, now: float) -> None:
        """The lower layer is ready (RFC 1661 4.3 "Up")."""
        self._local(Event.UP, now)

    def down(self, now: float) -> None:
        """The lower layer went away (RFC 1661 4.3 "Down")."""
        self._local(Event.DOWN, now)

    def open(self, now: float) -> None:
        """Administrative Open: the link may be used."""
        self._local(Event.OPEN, now)

    def close(self, now: float, reason: str = "") -> None:
        """Administrative Close: terminate the layer, sending ``reason`` to the peer."""
        # Keep the first reason: ours, or the peer's when it terminated first (Stopping).
        if self.state not in (State.CLOSED, State.CLOSING, State.INITIAL, State.STOPPING):
            self.terminate_reason = reason
            self.terminated_by_peer = False
        self._local(Event.CLOSE, now)

    @property
    def is_opened(self) -> bool:
        return self.state is State.OPENED

    # ------------------------------------------------------------------ timer

    def get_timer(self) -> float | None:
        return self._deadline

    def handle_timer(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        self._run(Event.TO_PLUS if self._restart_count > 0 else Event.TO_MINUS, now)

    def retransmit_request(self, now: float) -> bool:
        """Cut the restart timer short: send our Configure-Request again now (a TO+).

        For a request sent while the peer may not have been listening yet: RFC 1661 4.6
        lets the restart timer start small ("MAY begin at an initial small value"), and
        a timeout before the configured one is that. Only in Req-Sent (nothing of ours
        acknowledged, so the repeat cannot disturb an agreement) and with transmissions
        left; returns whether a request went out.
        """
        if self.state is not State.REQ_SENT or self._restart_count <= 0:
            return False
        self._run(Event.TO_PLUS, now)
        return True

    # ---------------------------------------------------------------- receive

    def receive(self, packet: Packet, now: float) -> None:
        """Feed one packet of this protocol; never raises on peer faults."""
        code = packet.code
        if code not in self.handler.known_codes():
            self._run(Event.RUC, now, packet)
            return
        if code == Code.CONFIGURE_REQUEST:
            self._receive_configure_request(packet, now)
        elif code in (Code.CONFIGURE_ACK, Code.CONFIGURE_NAK, Code.CONFIGURE_REJECT):
            self._receive_configure_reply(packet, now)
        elif code == Code.TERMINATE_REQUEST:
            if self.state is State.OPENED:
                # RFC 1661 5.5: the Data field is opaque; we keep it as the peer's reason.
                self.terminated_by_peer = True
                self.terminate_reason = packet.data.decode("utf-8", "replace")
            self._run(Event.RTR, now, packet)
        elif code == Code.TERMINATE_ACK:
            self._run(Event.RTA, now, packet)
        elif code == Code.CODE_REJECT:
            if not packet.data:
                self.counters.malformed += 1
                return
            # RFC 1661 5.6: rejecting one of the codes the automaton needs is catastrophic.
            fatal = packet.data[0] in NCP_CODES
            self._run(Event.RXJ_MINUS if fatal else Event.RXJ_PLUS, now, packet)
        else:
            self.receive_extra(packet, now)

    def receive_extra(self, packet: Packet, now: float) -> None:
        """Codes beyond 1-7 that :meth:`OptionHandler.known_codes` admits (LCP overrides)."""
        self.counters.unexpected += 1

    def _receive_configure_request(self, packet: Packet, now: float) -> None:
        try:
            options = parse_options(packet.data)
        except CodecError:
            self.counters.malformed += 1
            return
        if self.state in (State.INITIAL, State.STARTING):
            self.counters.unexpected += 1
            return
        # Only judge the request where the automaton will answer it (Closed and the
        # terminating states answer with Terminate-Ack or not at all).
        if self.state in (State.CLOSED, State.CLOSING, State.STOPPING):
            self._run(Event.RCR_PLUS, now, packet)
            return
        if self.state is State.OPENED and (packet.identifier, packet.data) == self._acked:
            # The request we acknowledged last, again: our Ack was lost (pppd keeps the
            # Identifier on retransmission) or the network repeated it. The options are
            # the ones in force, so Ack again rather than take the link down (the RCR
            # row of Opened); RFC 1661 5.1 only asks that every request be answered.
            self.counters.duplicate_requests += 1
            self._send_packet(Code.CONFIGURE_ACK, packet.identifier, packet.data)
            return
        self._reply = self._judge(options)
        good = self._reply[0] is Code.CONFIGURE_ACK
        self._run(Event.RCR_PLUS if good else Event.RCR_MINUS, now, packet)

    def _judge(self, options: list[Option]) -> tuple[Code, list[Option]]:
        """The reply to a Configure-Request: Reject beats Nak beats Ack (RFC 1661 5.2-5.4)."""
        verdicts = self.handler.check_request(options)
        rejects = [opt for verdict, opt in verdicts if verdict is Verdict.REJECT]
        naks = [opt for verdict, opt in verdicts if verdict is Verdict.NAK]
        if not rejects and naks and self._failures >= self.config.max_failure:
            # RFC 1661 4.6 Max-Failure: not converging, so reject what we would nak
            # (only options the peer sent can be rejected; suggestions are dropped).
            nak_types = {opt.type for opt in naks}
            rejects = [opt for opt in options if opt.type in nak_types]
            naks = [] if rejects else naks
        if rejects:
            return Code.CONFIGURE_REJECT, rejects
        if naks:
            return Code.CONFIGURE_NAK, naks
        return Code.CONFIGURE_ACK, options

    def _receive_configure_reply(self, packet: Packet, now: float) -> None:
        # RFC 1661 5.2-5.4: a reply must carry the Identifier of our last request;
        # like pppd, only the first reply to it counts (a duplicate, e.g. an Ack
        # repeated by the network, must not restart an Opened link).
        if self._request_id is None or packet.identifier != self._request_id or self._replied:
            self.counters.stale_replies += 1
            return
        try:
            options = parse_options(packet.data)
        except CodecError:
            self.counters.malformed += 1
            return
        if packet.code == Code.CONFIGURE_ACK:
            # 5.2: the options must be exactly those we sent, in order.
            if packet.data != self._request_data:
                self.counters.stale_replies += 1
                return
            event = Event.RCA
        elif packet.code == Code.CONFIGURE_REJECT:
            # 5.4: only options from our request, unmodified.
            sent = parse_options(self._request_data)
            if not options or any(opt not in sent for opt in options):
                self.counters.stale_replies += 1
                return
            event = Event.RCN
        else:
            event = Event.RCN
        self._replied = True
        if self.state in (State.REQ_SENT, State.ACK_RCVD, State.ACK_SENT):
            if packet.code == Code.CONFIGURE_ACK:
                self.handler.ack_received(options)
            elif packet.code == Code.CONFIGURE_REJECT:
                self.handler.reject_received(options)
            else:
                self.handler.nak_received(options)
        self._run(event, now, packet)

    # ----------------------------------------------------------------- engine

    def _local(self, event: Event, now: float) -> None:
        if lookup(self.state, event) is None:
            raise LocalProtocolError(f"{self.name}: {event.value} in state {self.state.name}")
        self._run(event, now)

    def process(self, event: Event, now: float, packet: Packet | None = None) -> None:
        """Apply one automaton event directly, bypassing packet classification.

        ``packet`` is the received packet the event stands for (its Identifier
        is answered by sta, sca and scn; scj echoes it). The receive path and
        the public methods above are the normal way in; this one exists for
        events decided elsewhere and for walking the table in tests. A local
        event with no transition raises :class:`LocalProtocolError`.
        """
        if event in LOCAL_EVENTS:
            self._local(event, now)
        else:
            self._run(event, now, packet)

    def _run(self, event: Event, now: float, packet: Packet | None = None) -> None:
        transition: Transition | None = lookup(self.state, event)
        if transition is None:
            self.counters.unexpected += 1
            self._reply = None
            return
        previous = self.state
        self.state = transition.next_state
        self.gave_up = transition.flag == "p"
        if self.state not in TIMER_STATES:
            self._deadline = None
        for action in transition.actions:
            self._act(action, transition, previous, now, packet)
        self._reply = None

    def _act(
        self,
        action: Action,
        transition: Transition,
        previous: State,
        now: float,
        packet: Packet | None,
    ) -> None:
        if action is Action.TLU:
            self._observer.this_layer_up(self, now)
        elif action is Action.TLD:
            self._observer.this_layer_down(self, now)
        elif action is Action.TLS:
            self._observer.this_layer_started(self, now)
        elif action is Action.TLF:
            self._observer.this_layer_finished(self, now)
        elif action is Action.IRC:
            terminating = Action.STR in transition.actions
            self._restart_count = (
                self.config.max_terminate if terminating else self.config.max_configure
            )
        elif action is Action.ZRC:
            self._restart_count = 0
            self._deadline = now + self.config.restart_interval
        elif action is Action.SCR:
            if previous not in (State.REQ_SENT, State.ACK_RCVD, State.ACK_SENT):
                self._failures = 0
                self.handler.reset(now)
            self._send_configure_request(now)
        elif action is Action.SCA or action is Action.SCN:
            self._send_configure_reply(packet)
        elif action is Action.STR:
            self._restart_count -= 1
            self._deadline = now + self.config.restart_interval
            reason = self.terminate_reason.encode("utf-8")[:200]
            self._send_packet(Code.TERMINATE_REQUEST, self._next_identifier(), reason)
        elif action is Action.STA:
            identifier = packet.identifier if packet is not None else self._next_identifier()
            self._send_packet(Code.TERMINATE_ACK, identifier, b"")
        elif action is Action.SCJ and packet is not None:
            self.send_code_reject(packet)
        elif action is Action.SER and packet is not None:
            self.send_echo_reply(packet)

    def _send_configure_request(self, now: float) -> None:
        self._restart_count -= 1
        self._deadline = now + self.config.restart_interval
        self._request_id = self._next_identifier()
        self._replied = False
        self._request_data = serialize_options(self.handler.request_options())
        self._send_packet(Code.CONFIGURE_REQUEST, self._request_id, self._request_data)

    def _send_configure_reply(self, packet: Packet | None) -> None:
        if packet is None:
            return
        if self._reply is None:
            # Reached through process(): judge the request now.
            try:
                self._reply = self._judge(parse_options(packet.data))
            except CodecError:
                self.counters.malformed += 1
                return
        code, options = self._reply
        self._reply = None
        if code is Code.CONFIGURE_ACK:
            self._failures = 0
            self._acked = (packet.identifier, packet.data)
            self.handler.peer_acked(options)
        elif code is Code.CONFIGURE_NAK:
            self._failures += 1
        self._send_packet(code, packet.identifier, serialize_options(options))

    def send_code_reject(self, packet: Packet) -> None:
        """RFC 1661 5.6: echo the rejected packet, truncated to the peer's MRU."""
        self.counters.code_rejects_sent += 1
        rejected = serialize_packet(packet)[: max(0, self.peer_mru - PACKET_HEADER_LEN)]
        self._send_packet(Code.CODE_REJECT, self._next_identifier(), rejected)

    def send_echo_reply(self, packet: Packet) -> None:
        """Only LCP has Echo (RFC 1661 5.8); it overrides this."""

    def _send_packet(self, code: int, identifier: int, data: bytes) -> None:
        packet = Packet(code=code, identifier=identifier, data=data)
        self._send(self.protocol, serialize_packet(packet))

    def _next_identifier(self) -> int:
        self._identifier = (self._identifier + 1) & 0xFF
        return self._identifier
