"""Reliable delivery of control messages: the sans-IO control-channel transport.

One :class:`Transport` serves one control connection (an L2TPv2 tunnel or an
L2TPv3 control connection). It implements RFC 2661 section 5.8 and RFC 3931
section 4.2 and nothing above them: it moves opaque, already-encoded AVP
*bodies* and knows no message semantics except two wire facts it must
recognise (a ZLB is a bare header; an L2TPv3 Explicit Acknowledgement, message
type 20, carries no sequence slot).

The interface follows aioquic's ``QuicConnection``: every entry point takes
``now`` (seconds, any monotonic origin) and the core never reads a clock, opens a
socket or draws randomness by itself::

    transport.send(body, session_id=0, now=now)    # queue a message, returns its Ns
    transport.receive(datagram, now)                # feed one datagram from the peer
    for datagram in transport.datagrams_to_send(now): sock.sendto(datagram, peer)
    deadline = transport.get_timer()                # earliest moment to call handle_timer
    transport.handle_timer(now)
    while (event := transport.next_event()) is not None: ...

What it does, and where the RFCs ask for it:

* Ns/Nr bookkeeping with 16-bit serial-number comparison across the wrap
  (RFC 2661 5.8, RFC 3931 4.2). ZLBs and ACKs take no sequence slot.
* Acknowledgement: an Nr goes out with every message sent; when nothing is going
  out, a ZLB (or a configured ACK body) follows after ``ack_delay``, a short
  delay so that a reply produced by the upper layer in the meantime carries the
  acknowledgement instead. RFC 2661 5.8 forbids *withholding* acknowledgements
  for flow control; a delay of a few tens of milliseconds is not that, but it
  must stay well below the peer's retransmission timeout. Duplicates are counted,
  dropped and acknowledged immediately (RFC 2661 5.8: "receipt of duplicate
  messages MUST be acknowledged").
* Out-of-order receive: messages up to ``receive_window - 1`` ahead of the next
  expected Ns are held and delivered in order once the gap fills (RFC 2661 5.8
  allows either queueing or discarding). Anything farther ahead is dropped and
  counted, so the queue is bounded and a missing message never wedges delivery:
  the peer keeps retransmitting it until it arrives or the peer gives up.
* The peer's Receive Window Size caps the messages in flight (default 4 when the
  AVP is absent); inside it, slow start and congestion avoidance follow RFC 2661
  Appendix A (:mod:`.congestion`).
* Every unacknowledged message has its own retransmission timer, starting at
  ``initial_timeout`` (1 s) and doubling up to ``max_timeout`` (8 s; RFC 2661
  5.8 says the cap MUST be no less than 8 s, smaller values exist for tests).
  After ``max_retries`` retransmissions (5 for v2, 10 for v3 by default) go
  unanswered the transport fails with :class:`TransportFailed` and the tunnel
  must be cleared.
* HELLO keepalive after ``hello_interval`` seconds without anything from the
  peer (RFC 3931 4.4 recommends 60 s, with jitter so that many connections do
  not fire together; the jitter comes from an injected random source). Data
  plane activity can reset the idle timer through :meth:`Transport.note_activity`.
* Close-wait: after the final StopCCN (sent or received) the tunnel layer calls
  :meth:`Transport.begin_close`; the transport keeps acknowledging and
  retransmitting for one full retransmission cycle (RFC 2661 5.7 and 5.8, RFC
  3931 3.3.2 and 4.2: 1 + 2 + 4 + 8 + 8 + 8 = 31 s by default) and then reports
  :class:`TransportClosed`.

L2TPv3 specifics (RFC 3931 4.2, 6.15): a received Explicit Acknowledgement
message is treated exactly like a ZLB. By default acknowledgements are sent as
ZLBs, which RFC 3931 allows only when control message authentication is off;
with authentication on pass the encoded ACK message as ``ack_body`` and a
``seal`` hook, which is applied to every complete datagram (ZLB/ACK included)
at every (re)transmission, after Ns and Nr are final, so it can compute the
Message Digest AVP. Authentication of received datagrams is the caller's job,
before :meth:`Transport.receive`.

Demultiplexing between tunnels is also the caller's job; the transport only
checks that the header's tunnel ID is its local ID or 0 (RFC 2661 sends the
SCCRQ, and any retransmission of it, to tunnel ID 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .congestion import DEFAULT_PEER_WINDOW, CongestionWindow
from .constants import KeyEnum
from .errors import CodecError, LocalProtocolError
from .header import (
    CONTROL_HEADER_LEN,
    ControlHeader,
    build_control_message,
    is_control,
    parse_control_header,
    seq_add,
    seq_lt,
)

HELLO_BODY = bytes.fromhex("8008000000000006")
"""A HELLO body: the lone mandatory Message Type AVP with value 6 (RFC 2661 6.5, RFC 3931 6.5)."""
MESSAGE_TYPE_ACK = 20
"""RFC 3931 6.15: Explicit Acknowledgement; like a ZLB it occupies no sequence slot."""
RFC3931_HELLO_INTERVAL = 60.0
"""RFC 3931 4.4: the recommended idle time before a HELLO."""
DEFAULT_MAX_RETRIES = {2: 5, 3: 10}
"""RFC 2661 5.8 recommends 5 retransmissions, RFC 3931 4.2 recommends 10."""

_SEQ_HALF = 0x8000


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportConfig:
    """Tunable parameters of one control connection's transport.

    ``receive_window`` is the Receive Window Size *we* advertise (the tunnel
    layer puts it in the SCCRQ/SCCRP) and bounds the out-of-order queue;
    ``peer_window`` is the value assumed for the peer until
    :meth:`Transport.set_peer_window` is called with its RWS AVP.
    ``max_retries=None`` picks the version default (5 for v2, 10 for v3).

    Acknowledgements wait at most ``ack_delay`` for a message to ride on, but
    go at once when ``ack_threshold`` received messages (or a whole
    ``receive_window``) are unacknowledged, as TCP acknowledges every second
    segment: otherwise a one-way burst would crawl at one window per delay.
    """

    initial_timeout: float = 1.0
    max_timeout: float = 8.0
    max_retries: int | None = None
    receive_window: int = 16
    peer_window: int = DEFAULT_PEER_WINDOW
    ack_delay: float = 0.05
    ack_threshold: int = 2
    hello_interval: float | None = None
    hello_jitter: float = 0.0
    resync: bool = False
    """For a channel that carries nothing but HELLOs (quiescent tunnels): take each
    message's Ns as the next expected one, and keep a message whose Nr acknowledges
    more than we sent (after dropping that Nr). Either side may restart at Ns = Nr = 0
    while the other keeps its old state; in-order delivery would then hold or drop
    every message of one side until it gave up, and the two could go on knocking each
    other out of step (each restart desynchronising the other). HELLOs are idempotent,
    so accepting them out of sequence loses nothing, and every HELLO of a live peer is
    acknowledged exactly (Nr = its Ns + 1)."""

    def __post_init__(self) -> None:
        if not self.initial_timeout > 0:
            raise ValueError("initial_timeout must be positive")
        if self.max_timeout < self.initial_timeout:
            raise ValueError("max_timeout must be at least initial_timeout")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError("max_retries must not be negative")
        # Half the sequence space at most, or serial comparison becomes ambiguous.
        if not 1 <= self.receive_window < _SEQ_HALF:
            raise ValueError("receive_window must be 1-32767")
        if not 1 <= self.peer_window <= 0xFFFF:
            raise ValueError("peer_window must be 1-65535 (RFC 2661 5.8: 0 is invalid)")
        if self.ack_delay < 0:
            raise ValueError("ack_delay must not be negative")
        if self.ack_threshold < 1:
            raise ValueError("ack_threshold must be at least 1")
        if self.hello_interval is not None and not self.hello_interval > 0:
            raise ValueError("hello_interval must be positive, or None for no HELLO")
        if self.hello_jitter < 0:
            raise ValueError("hello_jitter must not be negative")

    def retries_for(self, version: int) -> int:
        """The retransmission limit in force for L2TP ``version``."""
        return DEFAULT_MAX_RETRIES[version] if self.max_retries is None else self.max_retries

    def timeout(self, retries: int) -> float:
        """The wait after the ``retries``-th retransmission: exponential back-off, capped."""
        return min(self.initial_timeout * (1 << min(retries, 62)), self.max_timeout)

    def retransmission_cycle(self, version: int) -> float:
        """The time from first transmission until the transport gives up on a message.

        RFC 3931 4.2 calls this the full retransmission interval (1 + 2 + 4 + 8
        + 8 + ... seconds) and it is the close-wait period after a StopCCN.
        """
        return sum(self.timeout(i) for i in range(self.retries_for(version) + 1))


# ---------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived:
    """A new control message from the peer, delivered once and in Ns order."""

    header: ControlHeader
    body: bytes

    def __post_init__(self) -> None:
        if not self.body:
            raise ValueError("a ZLB is an acknowledgement, not a message to deliver")


@dataclass(frozen=True, slots=True, kw_only=True)
class AckReceived:
    """The peer acknowledged our message ``ns`` (tells the tunnel a StopCCN arrived)."""

    ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportFailed:
    """Retransmissions were exhausted: RFC 2661 5.8 says the tunnel MUST be cleared.

    Messages not yet acknowledged when this is reported may or may not have
    reached the peer; nothing more will be sent or delivered.
    """

    reason: str
    ns: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportClosed:
    """The close-wait period after a StopCCN is over; the state can be freed."""

    reason: str


Event = MessageReceived | AckReceived | TransportFailed | TransportClosed


class TransportState(KeyEnum):
    OPEN = "open"
    """Normal operation."""
    CLOSING = "closing"
    """After :meth:`Transport.begin_close`: acknowledging and retransmitting, no new sends."""
    CLOSED = "closed"
    """Close-wait elapsed; the transport is inert."""
    FAILED = "failed"
    """Retransmissions exhausted; the transport is inert."""


@dataclass(slots=True, kw_only=True)
class TransportCounters:
    """Monotonic counters for monitoring; peer faults end up here, never as exceptions."""

    sent: int = 0
    """Messages transmitted for the first time."""
    retransmitted: int = 0
    received: int = 0
    """Control messages with a body that passed header and Nr checks (duplicates included)."""
    delivered: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    """Messages held for in-order delivery."""
    out_of_window: int = 0
    """Messages too far ahead of the next expected Ns, dropped."""
    malformed: int = 0
    bad_nr: int = 0
    """Messages acknowledging something never sent (RFC 3931 4.2 sanity check), dropped
    (with ``resync``: their Nr is ignored)."""
    resynced: int = 0
    """With ``resync``: messages whose Ns was not the expected one, taken as the next."""
    misdirected: int = 0
    """Messages for a tunnel ID other than ours (or 0)."""
    data_on_control: int = 0
    """Data messages (T bit clear) handed to the control channel, dropped."""
    zlb_sent: int = 0
    zlb_received: int = 0
    """Bare acknowledgements received: ZLBs and L2TPv3 ACK messages."""
    acked: int = 0
    hello_sent: int = 0
    hello_acked: int = 0
    """HELLOs the peer acknowledged."""
    last_hello_rtt: float | None = None
    """Seconds from our last acknowledged HELLO to its acknowledgement (a gauge, not a
    counter), measured on the ``now`` of the calls: the transport reads no clock.
    Retransmissions included: how long the peer took to confirm it is alive, not a
    clean path sample."""
    ignored: int = 0
    """Datagrams received after the transport closed or failed."""


class _Outgoing:
    """One message of the send queue (mutable bookkeeping, hence no dataclass)."""

    __slots__ = ("body", "deadline", "due", "ns", "retries", "session_id")

    def __init__(self, ns: int, session_id: int, body: bytes) -> None:
        self.ns = ns
        self.session_id = session_id
        self.body = body
        self.retries = 0
        self.deadline = 0.0
        self.due = False


def is_explicit_ack(body: bytes) -> bool:
    """True if ``body`` starts with a Message Type AVP of value 20 (RFC 3931 6.15).

    The Message Type AVP must come first (RFC 2661 4.1) and is 8 bytes: flags
    and length, vendor 0, attribute 0, value. Only these fixed bytes are read,
    so the transport stays independent of the AVP codec.
    """
    return (
        len(body) >= 8
        and ((body[0] & 0x03) << 8 | body[1]) == 8
        and body[2:6] == b"\x00\x00\x00\x00"
        and (body[6] << 8 | body[7]) == MESSAGE_TYPE_ACK
    )


class Transport:
    """The reliable control-message transport of one tunnel / control connection.

    ``local_id`` is our Tunnel ID (v2, 16-bit) or Control Connection ID (v3,
    32-bit); ``peer_id`` the peer's, which is 0 until the SCCRP (or the SCCRQ,
    for the responder) tells it: see :meth:`set_peer_id`. ``random`` returns
    floats in [0, 1) and is needed only when ``config.hello_jitter`` is set.
    """

    def __init__(
        self,
        *,
        version: int,
        local_id: int,
        peer_id: int = 0,
        config: TransportConfig | None = None,
        hello_body: bytes = HELLO_BODY,
        ack_body: bytes = b"",
        seal: Callable[[bytes], bytes] | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        if version not in (2, 3):
            raise ValueError(f"L2TP version must be 2 or 3, not {version}")
        self.version = version
        self._id_max = 0xFFFF if version == 2 else 0xFFFFFFFF
        if not 0 <= local_id <= self._id_max:
            raise ValueError(f"local ID {local_id} out of range for L2TPv{version}")
        self.local_id = local_id
        self.peer_id = 0
        self.set_peer_id(peer_id)
        self.config = config if config is not None else TransportConfig()
        if not hello_body:
            raise ValueError("hello_body must not be empty")
        if ack_body and not (version == 3 and is_explicit_ack(ack_body)):
            raise ValueError("ack_body must be an L2TPv3 ACK message (type 20), or empty for ZLB")
        if self.config.hello_jitter > 0 and random is None:
            raise ValueError("hello_jitter needs a random source")
        self._hello_body = hello_body
        self._ack_body = ack_body
        self._seal = seal
        self._random = random
        self._max_retries = self.config.retries_for(version)
        self.counters = TransportCounters()
        self.congestion = CongestionWindow(self.config.peer_window)
        self._state = TransportState.OPEN
        # Lists, not deques: an empty deque costs ~600 bytes and every tunnel has
        # these, most of them empty or short (a half-open tunnel must stay cheap);
        # pop(0) moves a few pointers for the queue lengths a window allows.
        self._events: list[Event] = []
        # Send side: Ns of the next new message; queued-but-unsent; in flight.
        self._ns_next = 0
        self._unsent: list[_Outgoing] = []
        self._in_flight: list[_Outgoing] = []
        self._due = 0
        # Receive side: the Ns we expect next (our Nr) and the out-of-order queue.
        self._nr = 0
        self._held: dict[int, tuple[ControlHeader, bytes]] = {}
        self._ack_deadline: float | None = None
        self._ack_threshold = min(self.config.ack_threshold, self.config.receive_window)
        self._rx_unacked = 0
        # Idle tracking for HELLO (None until the first call that brings a time).
        self._idle_since: float | None = None
        self._hello_wait = self._draw_hello_wait()
        self._close_deadline: float | None = None
        self._end_when_acked = False
        # The HELLO in flight, (Ns, when queued), for its round-trip time. One attribute:
        # past 30 attributes CPython stops sharing instance-dict keys, and every tunnel
        # would pay ~1.3 KB (tests/unit/test_listener_limits.py).
        self._hello: tuple[int, float] | None = None

    # ------------------------------------------------------------ properties

    @property
    def state(self) -> TransportState:
        return self._state

    @property
    def next_ns(self) -> int:
        """The Ns the next message passed to :meth:`send` will get."""
        return self._ns_next

    @property
    def next_nr(self) -> int:
        """Our Nr: the Ns we expect next from the peer."""
        return self._nr

    @property
    def in_flight(self) -> int:
        """Messages sent and not yet acknowledged."""
        return len(self._in_flight)

    def acknowledged(self, ns: int) -> bool:
        """True once the peer has acknowledged our message ``ns`` (and all before it)."""
        if self._in_flight:
            first = self._in_flight[0].ns
        elif self._unsent:
            first = self._unsent[0].ns
        else:
            first = self._ns_next
        return seq_lt(ns, first)

    @property
    def queued(self) -> int:
        """Messages accepted by :meth:`send` but held back by the window."""
        return len(self._unsent)

    @property
    def idle(self) -> bool:
        """Nothing to send, nothing unacknowledged, no acknowledgement owed."""
        return not (self._unsent or self._in_flight or self._ack_deadline is not None)

    # ---------------------------------------------------------- configuration

    def set_peer_id(self, peer_id: int) -> None:
        """Record the peer's Assigned Tunnel / Control Connection ID.

        Headers are built at every (re)transmission, so messages still waiting
        for acknowledgement go out with the new ID from now on.
        """
        if not 0 <= peer_id <= self._id_max:
            raise ValueError(f"peer ID {peer_id} out of range for L2TPv{self.version}")
        self.peer_id = peer_id

    def set_peer_window(self, window: int) -> None:
        """Apply the peer's Receive Window Size AVP (RFC 2661 5.8; 1-65535)."""
        self.congestion.set_peer_window(window)

    # ------------------------------------------------------------ entry points

    def send(self, body: bytes, *, session_id: int = 0, now: float) -> int:
        """Queue an encoded message body for reliable delivery and return its Ns.

        ``session_id`` goes into the L2TPv2 header (0 for tunnel messages); it
        must be 0 for L2TPv3, whose control header has no session field.
        """
        if self._state is not TransportState.OPEN:
            raise LocalProtocolError(f"cannot send on a transport that is {self._state.value}")
        if not body:
            raise LocalProtocolError("an empty body is a ZLB; acknowledgements are automatic")
        if self.version == 3 and session_id != 0:
            raise LocalProtocolError("L2TPv3 control headers carry no session ID")
        if not 0 <= session_id <= 0xFFFF:
            raise LocalProtocolError(f"session ID {session_id} out of range")
        if len(self._unsent) + len(self._in_flight) >= _SEQ_HALF - 1:
            raise LocalProtocolError("send queue would span half the sequence space")
        ns = self._ns_next
        self._ns_next = seq_add(ns, 1)
        self._unsent.append(_Outgoing(ns, session_id, body))
        if self._idle_since is None:
            self._idle_since = now
        return ns

    def receive(self, data: bytes, now: float, header: ControlHeader | None = None) -> None:
        """Process one datagram from the peer. Never raises for anything the peer sent.

        ``header``: the caller already parsed ``data``'s control header (to route it),
        so it is not parsed again.
        """
        counters = self.counters
        if self._state is TransportState.CLOSED or self._state is TransportState.FAILED:
            counters.ignored += 1
            return
        if header is None:
            if not is_control(data):
                counters.data_on_control += 1
                return
            try:
                header = parse_control_header(data)
            except CodecError:
                counters.malformed += 1
                return
        if header.version != self.version:
            counters.malformed += 1
            return
        if header.tunnel_id != self.local_id and header.tunnel_id != 0:
            counters.misdirected += 1
            return
        if not self._process_nr(header.nr, now):
            counters.bad_nr += 1
            if not self.config.resync:
                return
        if self._inert():
            return  # that acknowledgement ended close-wait
        self._idle_since = now
        if header.length == CONTROL_HEADER_LEN:
            counters.zlb_received += 1
            return
        body = bytes(data[CONTROL_HEADER_LEN : header.length])
        if self.version == 3 and is_explicit_ack(body):
            counters.zlb_received += 1
            return
        counters.received += 1
        ns = header.ns
        expected = self._nr
        if ns != expected and self.config.resync:
            counters.resynced += 1
            self._held.clear()
            self._nr = expected = ns
        if ns == expected:
            self._deliver(header, body)
            held = self._held
            while held and self._nr in held:
                self._deliver(*held.pop(self._nr))
            if self._rx_unacked >= self._ack_threshold:
                self._ack_deadline = now
            elif self._ack_deadline is None:
                self._ack_deadline = now + self.config.ack_delay
        elif seq_lt(ns, expected):
            # RFC 2661 5.8: a duplicate; drop it, but acknowledge at once, since the
            # peer only retransmits when our earlier acknowledgement got lost.
            counters.duplicates += 1
            self._ack_deadline = now
        elif (ns - expected) & 0xFFFF < self.config.receive_window:
            if ns in self._held:
                counters.duplicates += 1
            else:
                counters.out_of_order += 1
                self._held[ns] = (header, body)
        else:
            counters.out_of_window += 1

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """Everything due for transmission now: retransmissions, new messages, a ZLB."""
        if self._state is TransportState.CLOSED or self._state is TransportState.FAILED:
            return []
        if self._idle_since is None:
            # The HELLO clock starts when the driver first services us, even if
            # nothing is ever sent or received: a silent peer must still be probed.
            self._idle_since = now
        out: list[bytes] = []
        config = self.config
        if self._due:
            for entry in self._in_flight:
                if entry.due:
                    entry.due = False
                    entry.retries += 1
                    entry.deadline = now + config.timeout(entry.retries)
                    out.append(self._build(entry.ns, entry.session_id, entry.body))
            self.counters.retransmitted += len(out)
            self._due = 0
        limit = self.congestion.limit
        unsent = self._unsent
        in_flight = self._in_flight
        sent = 0
        while unsent and len(in_flight) < limit:
            entry = unsent.pop(0)
            entry.deadline = now + config.initial_timeout
            in_flight.append(entry)
            out.append(self._build(entry.ns, entry.session_id, entry.body))
            sent += 1
        self.counters.sent += sent
        if out:
            # Every message carries the current Nr: the acknowledgement is piggy-backed.
            self._ack_deadline = None
            self._rx_unacked = 0
        elif self._ack_deadline is not None and self._ack_deadline <= now:
            self._ack_deadline = None
            self._rx_unacked = 0
            ns = unsent[0].ns if unsent else self._ns_next
            out.append(self._build(ns, 0, self._ack_body))
            self.counters.zlb_sent += 1
        return out

    def get_timer(self) -> float | None:
        """The earliest time :meth:`handle_timer` has work to do, or None."""
        if self._state is TransportState.CLOSED or self._state is TransportState.FAILED:
            return None
        deadline = self._ack_deadline
        for entry in self._in_flight:
            if not entry.due and (deadline is None or entry.deadline < deadline):
                deadline = entry.deadline
        hello = self._hello_deadline()
        if hello is not None and (deadline is None or hello < deadline):
            deadline = hello
        close = self._close_deadline
        if close is not None and (deadline is None or close < deadline):
            deadline = close
        return deadline

    def handle_timer(self, now: float) -> None:
        """Fire whatever is due: retransmissions, HELLO, end of close-wait.

        Call :meth:`datagrams_to_send` afterwards; it emits the retransmissions
        (with a fresh Nr) and any acknowledgement whose delay has passed.
        """
        if self._state is TransportState.CLOSED or self._state is TransportState.FAILED:
            return
        if self._close_deadline is not None and now >= self._close_deadline:
            self._finish_close("close-wait period elapsed")
            return
        expired = False
        for entry in self._in_flight:
            if entry.due or entry.deadline > now:
                continue
            if entry.retries >= self._max_retries:
                reason = (
                    f"message Ns={entry.ns} unacknowledged after {entry.retries} retransmissions"
                )
                if self._state is TransportState.CLOSING:
                    self._finish_close(reason)
                else:
                    self._fail(reason, entry.ns)
                return
            entry.due = True
            self._due += 1
            expired = True
        if expired:
            self.congestion.on_timeout()
        hello = self._hello_deadline()
        if hello is not None and now >= hello:
            # A HELLO only proves the peer is alive; messages already in flight
            # do that too, and their retransmission limit detects a dead peer.
            if not self._in_flight and not self._unsent:
                self._hello = (self.send(self._hello_body, now=now), now)
                self.counters.hello_sent += 1
            self._idle_since = now
            self._hello_wait = self._draw_hello_wait()

    def next_event(self) -> Event | None:
        """Pop the oldest pending event, or None."""
        return self._events.pop(0) if self._events else None

    @property
    def has_events(self) -> bool:
        return bool(self._events)

    def note_activity(self, now: float) -> None:
        """Count data-plane traffic from the peer as liveness (RFC 3931 4.4), delaying HELLO."""
        self._idle_since = now

    def begin_close(
        self, now: float, *, end_when_acked: bool = False, abandon: bool = False
    ) -> None:
        """Enter close-wait after the final StopCCN was sent or received.

        RFC 2661 5.8 and RFC 3931 4.2 require the reliable delivery state to
        live on for a full retransmission cycle so that a retransmitted StopCCN
        is still acknowledged and our own StopCCN still retransmitted. New
        sends are refused from here on; :class:`TransportClosed` is reported
        when the cycle is over, or, with ``end_when_acked`` (RFC 3931 4.2: "or
        until the StopCCN message itself has been acknowledged"), as soon as
        nothing of ours is left unacknowledged. ``abandon`` forgets what of ours
        is still unacknowledged: nothing more is sent but acknowledgements (a
        control connection discarded after a lost tie breaker, RFC 3931 7.1).
        """
        if self._state is not TransportState.OPEN:
            raise LocalProtocolError(f"cannot close a transport that is {self._state.value}")
        if abandon:
            self._unsent.clear()
            self._in_flight.clear()
            self._due = 0
        self._state = TransportState.CLOSING
        self._close_deadline = now + self.config.retransmission_cycle(self.version)
        self._end_when_acked = end_when_acked
        if end_when_acked and not self._in_flight and not self._unsent:
            self._finish_close("all messages acknowledged")

    # --------------------------------------------------------------- internals

    def _build(self, ns: int, session_id: int, body: bytes) -> bytes:
        datagram = build_control_message(
            version=self.version,
            tunnel_id=self.peer_id,
            session_id=session_id,
            ns=ns,
            nr=self._nr,
            body=body,
        )
        return self._seal(datagram) if self._seal is not None else datagram

    def _process_nr(self, nr: int, now: float) -> bool:
        """Release acknowledged messages; False if ``nr`` acknowledges an unsent Ns."""
        in_flight = self._in_flight
        limit = self._unsent[0].ns if self._unsent else self._ns_next
        if seq_lt(limit, nr):
            return False
        if not in_flight or not seq_lt(in_flight[0].ns, nr):
            return True
        events = self._events
        acked = 0
        hello = self._hello
        while in_flight and seq_lt(in_flight[0].ns, nr):
            entry = in_flight.pop(0)
            if entry.due:
                self._due -= 1
            if hello is not None and entry.ns == hello[0]:
                self.counters.last_hello_rtt = now - hello[1]
                self.counters.hello_acked += 1
                self._hello = hello = None
            events.append(AckReceived(ns=entry.ns))
            acked += 1
        self.counters.acked += acked
        self.congestion.on_ack()
        if (
            self._end_when_acked
            and self._state is TransportState.CLOSING
            and not in_flight
            and not self._unsent
        ):
            self._finish_close("all messages acknowledged")
        return True

    def _deliver(self, header: ControlHeader, body: bytes) -> None:
        self._events.append(MessageReceived(header=header, body=body))
        self._nr = seq_add(self._nr, 1)
        self._rx_unacked += 1
        self.counters.delivered += 1

    def _hello_deadline(self) -> float | None:
        if (
            self.config.hello_interval is None
            or self._idle_since is None
            or self._state is not TransportState.OPEN
        ):
            return None
        return self._idle_since + self._hello_wait

    def _draw_hello_wait(self) -> float:
        interval = self.config.hello_interval
        if interval is None:
            return 0.0
        if self._random is None or self.config.hello_jitter == 0:
            return interval
        return interval + self.config.hello_jitter * self._random()

    def _inert(self) -> bool:
        return self._state is TransportState.CLOSED or self._state is TransportState.FAILED

    def _stop(self) -> None:
        self._unsent.clear()
        self._in_flight.clear()
        self._held.clear()
        self._due = 0
        self._ack_deadline = None
        self._close_deadline = None

    def _fail(self, reason: str, ns: int | None) -> None:
        self._stop()
        self._state = TransportState.FAILED
        self._events.append(TransportFailed(reason=reason, ns=ns))

    def _finish_close(self, reason: str) -> None:
        self._stop()
        self._state = TransportState.CLOSED
        self._events.append(TransportClosed(reason=reason))
