"""Many tunnels on one socket: demultiplexing, accepting SCCRQs, and the tie breaker.

A :class:`TunnelListener` is the sans-IO core of an L2TP endpoint's control
socket. It owns every :class:`~.tunnel.Tunnel` of the endpoint, keyed by our
Assigned Tunnel ID, and routes each datagram by the Tunnel ID in its header.
Tunnel ID 0 is special (RFC 2661 4.4.3 Assigned Tunnel ID: until the peer
learns our ID it sends with 0): an SCCRQ there creates a recipient tunnel,
and its retransmissions, like a StopCCN sent before our SCCRP arrived, are
matched to that tunnel by ``(peer, the peer's Assigned Tunnel ID)``.

``peer`` is whatever hashable the I/O layer uses for the remote end (an
address tuple); the listener never interprets it. The tie breaker (RFC 2661
4.4.3 Tie Breaker AVP, 7.2.1 "wait-ctl-reply, Receive SCCRQ, lose
tie-breaker"; RFC 3931 5.4.3 Control Connection Tie Breaker AVP, 7.2)
compares SCCRQs from a peer we are ourselves connecting to:

* The lower value wins; one value beats none; two absent values mean two
  tunnels.
* We lose: our tunnel is discarded without a StopCCN (RFC 2661 "silently
  discard", RFC 3931 "Clean up losing connection"), the peer's SCCRQ is
  answered on a new tunnel, and our sessions still waiting for a tunnel move
  there with their IDs.
* We win: L2TPv2 drops the losing SCCRQ (RFC 2661 7.2.1 has no row for the
  winner); L2TPv3 answers it with a StopCCN, Result Code 3 "control
  connection already exists" (RFC 3931 5.4.3: "A StopCCN SHOULD be sent by
  the winner as an explicit rejection for the losing SCCRQ"; 7.2 "Send
  StopCCN for losing connection"), from a short-lived rejecting tunnel like
  the one that answers an SCCRQ over the tunnel limit, so that it is
  retransmitted and the losing SCCRQ's retransmissions are acknowledged.
* Equal values: both sides discard their tunnels (RFC 2661 4.4.3) and
  RFC 3931 5.4.3 has them "restart control connection negotiation with a
  new, random tie breaker value": that restart is the caller's
  (:class:`~.events.TunnelClosed` says so in its description; a new
  :class:`~.tunnel.Tunnel` draws a new tie breaker).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass, field

from ..addresses import address_text
from .avp import Avp
from .constants import AvpType, ErrorCode, MessageType, StopCcnResult
from .digest import verify_message
from .errors import CodecError
from .events import Reason
from .header import ControlHeader, is_control, parse_control_header
from .ids import IdExhausted, IdPool
from .message import ControlMessage, RandomSource, parse_message, serialize_message
from .session import Session
from .tunnel import Tunnel, TunnelConfig
from .tunnel_fsm import TunnelState

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerConfig:
    """Policy for every tunnel of an endpoint; ``tunnel`` applies to accepted tunnels."""

    tunnel: TunnelConfig = field(default_factory=TunnelConfig)
    max_tunnels: int = 1024
    """Established tunnels. An SCCRQ beyond it is refused without allocating anything:
    one stateless StopCCN 2 / Error 4 (rate-limited, see :attr:`reject_rate`). Tunnels
    already being set up when the limit is reached may still complete, so at most
    ``max_tunnels + max_pending_tunnels`` exist at once."""
    max_pending_tunnels: int = 4096
    """Tunnels accepted but not yet established (and refusals still retransmitting
    their StopCCN). When full, a new SCCRQ evicts the oldest of them (dropped without
    a word, as a SYN queue does under a flood), so a flood from many addresses cannot
    lock legitimate peers out. Each costs a fixed ~3 KB until established or reaped."""
    max_pending_per_peer: int = 64
    """The same, per peer address (ports ignored), so that one source cannot take
    the whole pending budget from the others."""
    reject_rate: float = 50.0
    """Stateless StopCCNs per second at most (burst as many); more are dropped."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_tunnels <= 0xFFFF_FFFF:
            raise ValueError("max_tunnels must be 1-4294967295")
        if self.tunnel.version == 2 and self.max_tunnels > 0xFFFF:
            raise ValueError("max_tunnels must be 1-65535 for L2TPv2 (16-bit tunnel IDs)")
        if self.max_pending_tunnels < 1:
            raise ValueError("max_pending_tunnels must be at least 1")
        if self.max_pending_per_peer < 1:
            raise ValueError("max_pending_per_peer must be at least 1")
        if self.reject_rate < 0:
            raise ValueError("reject_rate must not be negative")


@dataclass(slots=True)
class ListenerCounters:
    accepted: int = 0
    rejected: int = 0
    """SCCRQs refused by policy: stateless StopCCN at the tunnel limit, or no free ID."""
    rejects_unsent: int = 0
    """Of those, refusals whose StopCCN was not sent (over :attr:`ListenerConfig.reject_rate`)."""
    pending_limit: int = 0
    """SCCRQs dropped because :attr:`ListenerConfig.max_pending_tunnels` were pending
    and none could be evicted."""
    pending_evicted: int = 0
    """Half-open tunnels dropped to make room for a new SCCRQ (oldest first)."""
    peer_pending_limit: int = 0
    """SCCRQs dropped because their peer address had ``max_pending_per_peer`` pending."""
    bad_sccrq: int = 0
    """SCCRQs to tunnel 0 that cannot start a tunnel (Ns not 0, or refused before any state)."""
    routed_retransmissions: int = 0
    malformed: int = 0
    """Datagrams whose header (or, for tunnel ID 0, body) does not decode."""
    data_messages: int = 0
    unknown_tunnel: int = 0
    orphan_messages: int = 0
    """Non-SCCRQ messages to tunnel ID 0 that match no tunnel."""
    ties_won: int = 0
    """SCCRQs that lost to ours (L2TPv3: each answered with StopCCN 3)."""
    ties_lost: int = 0
    ties_equal: int = 0
    bad_digest: int = 0
    """L2TPv3 SCCRQs dropped before any tunnel exists: Message Digest wrong (RFC 3931 5.4.1)."""


class TunnelListener:
    """All tunnels of one endpoint; see the module docstring."""

    def __init__(
        self,
        config: ListenerConfig,
        *,
        random_bytes: RandomSource,
        ids: IdPool | None = None,
    ) -> None:
        """``ids``: share one tunnel ID pool between listeners, so that the IDs of
        every endpoint of a host stay unique (the kernel's tunnel IDs are per host)."""
        self.config = config
        self._random = random_bytes
        self.tunnels: dict[int, Tunnel] = {}
        self.counters = ListenerCounters()
        bits = 32 if config.tunnel.version == 3 else 16
        self._ids = ids if ids is not None else IdPool(bits=bits, random_bytes=random_bytes)
        self._peer_of: dict[int, Hashable] = {}
        self._by_peer_tid: dict[tuple[Hashable, int], int] = {}
        self._initiating: dict[Hashable, set[int]] = {}
        # Counts kept up to date by _state_changed, so that admission is O(1).
        self._live = 0
        self._established = 0
        self._pending: dict[int, Hashable] = {}
        """Accepted tunnels not yet established nor closed -> their peer-address key."""
        self._pending_per_peer: dict[Hashable, int] = {}
        self._stateless: list[tuple[Hashable, bytes]] = []
        self._evicted: list[Tunnel] = []
        self._reject_tokens = config.reject_rate
        self._reject_at: float | None = None

    @property
    def live_tunnels(self) -> int:
        """Tunnels neither closing nor closed (O(1))."""
        return self._live

    @property
    def established_tunnels(self) -> int:
        return self._established

    @property
    def pending_tunnels(self) -> int:
        """Accepted tunnels being set up (counting refusals still in close-wait)."""
        return len(self._pending)

    # ------------------------------------------------------------ entry points

    def connect(
        self,
        peer: Hashable,
        now: float,
        config: TunnelConfig | None = None,
        *,
        tunnel_id: int | None = None,
    ) -> Tunnel:
        """Create an initiator tunnel to ``peer`` and send its SCCRQ.

        ``tunnel_id``: use this free ID of the pool rather than a random one
        (an L2TPv3-over-IP socket must be bound to its connection ID before
        the SCCRQ leaves, so the runtime picks the ID first).
        """
        tunnel = self._create(peer, config or self.config.tunnel, None, tunnel_id)
        self._initiating.setdefault(peer, set()).add(tunnel.tunnel_id)
        tunnel.connect(now)
        return tunnel

    def receive(
        self, data: bytes, peer: Hashable, now: float, header: ControlHeader | None = None
    ) -> Tunnel | None:
        """Route one datagram from ``peer``; returns the tunnel it went to, if any.

        ``header``: the caller already parsed it. Each datagram is decoded once: the
        header and, for tunnel ID 0, the message are handed down to the tunnel.
        """
        if header is None:
            if not is_control(data):
                self.counters.data_messages += 1
                return None
            try:
                header = parse_control_header(data)
            except CodecError:
                self.counters.malformed += 1
                return None
        if header.tunnel_id != 0:
            tunnel = self.tunnels.get(header.tunnel_id)
            if tunnel is None:
                self.counters.unknown_tunnel += 1
                return None
            tunnel.receive_datagram(data, now, header=header)
            return tunnel
        if header.is_zlb:
            self.counters.orphan_messages += 1
            return None
        peeked = self._peek(data)
        if peeked is None:
            self.counters.malformed += 1
            return None
        message, with_secret = peeked
        key = (peer, _peer_id(message))
        known = self._by_peer_tid.get(key)
        if known is not None and known in self.tunnels:
            if message.message_type == MessageType.SCCRQ:
                self.counters.routed_retransmissions += 1
            tunnel = self.tunnels[known]
            parsed = message if with_secret else None
            tunnel.receive_datagram(data, now, header=header, message=parsed)
            return tunnel
        if message.message_type != MessageType.SCCRQ or not _peer_id(message):
            self.counters.orphan_messages += 1
            return None
        if header.ns != 0 or header.nr != 0:
            # RFC 2661 5.8 / RFC 3931 4.2: the SCCRQ opens the connection with Ns 0, and
            # nothing can have been received from us yet. Anything else is not a
            # retransmission of a tunnel we know (that was matched above): a tunnel
            # made for it would hold the message out of order and never leave idle.
            self.counters.bad_sccrq += 1
            return None
        return self._accept(data, header, message if with_secret else None, message, peer, now)

    def get_timer(self) -> float | None:
        timers = [t for t in (x.get_timer() for x in self.tunnels.values()) if t is not None]
        return min(timers) if timers else None

    def handle_timer(self, now: float) -> None:
        for tunnel in list(self.tunnels.values()):
            deadline = tunnel.get_timer()
            if deadline is not None and deadline <= now:
                tunnel.handle_timer(now)

    def take_replies(self) -> list[tuple[Hashable, bytes]]:
        """Stateless replies (refusals of SCCRQs that got no tunnel) to send now, once."""
        out, self._stateless = self._stateless, []
        return out

    def datagrams_to_send(self, now: float) -> list[tuple[Hashable, bytes]]:
        out = self.take_replies()
        for tid, tunnel in self.tunnels.items():
            peer = self._peer_of[tid]
            out.extend((peer, d) for d in tunnel.datagrams_to_send(now))
        return out

    def reap(self) -> list[int]:
        """Forget tunnels whose close-wait is over; returns their IDs."""
        done = [tid for tid, t in self.tunnels.items() if t.state is TunnelState.CLOSED]
        for tid in done:
            self._forget(tid)
        return done

    # --------------------------------------------------------------- internals

    def _peek(self, data: bytes) -> tuple[ControlMessage, bool] | None:
        """Decode a tunnel-0 message to route it: the message, and whether it was decoded
        with the tunnel's secret (else its hidden AVPs stay opaque and the tunnel must
        decode it itself, to refuse it for the right reason)."""
        secret = self.config.tunnel.secret
        for key in (secret, None) if secret is not None else (None,):
            try:
                _, message = parse_message(data, secret=key)
            except CodecError:
                continue
            if message is None:
                return None
            return message, key is secret
        return None

    def _authentic(self, data: bytes, message: ControlMessage) -> bool:
        """v3 with authentication: the SCCRQ's digest (no nonces) must match before a
        tunnel is made or a tie broken. One with neither digest nor nonce passes: its
        tunnel answers StopCCN 4 (the peer does not authenticate)."""
        c = self.config.tunnel
        if c.version != 3 or not c.secret or c.digest_type is None:
            return True
        if message.nonce is None and AvpType.MESSAGE_DIGEST not in message:
            return True
        return verify_message(data, secrets=(c.secret,))

    def _create(
        self,
        peer: Hashable,
        config: TunnelConfig,
        reject: Reason | None,
        tunnel_id: int | None = None,
    ) -> Tunnel:
        if tunnel_id is None:
            tid = self._ids.allocate()
        else:
            self._ids.reserve(tunnel_id)
            tid = tunnel_id
        tunnel = Tunnel(config, local_id=tid, random_bytes=self._random, reject=reject)
        tunnel.log_context["peer"] = address_text(peer)
        self.tunnels[tid] = tunnel
        self._peer_of[tid] = peer
        self._live += 1
        tunnel._state_observer = self._state_changed
        return tunnel

    def _state_changed(self, tunnel: Tunnel, old: TunnelState, new: TunnelState) -> None:
        """Keep the O(1) counts: live, established and pending tunnels."""
        if old not in _GONE and new in _GONE:
            self._live -= 1
        if new is TunnelState.ESTABLISHED:
            self._established += 1
            self._unpend(tunnel.tunnel_id)
        elif old is TunnelState.ESTABLISHED:
            self._established -= 1
        if new is TunnelState.CLOSED:
            self._unpend(tunnel.tunnel_id)

    def _evict_oldest(self, now: float) -> None:
        for tid in self._pending:  # insertion order: the oldest first
            tunnel = self.tunnels.get(tid)
            if tunnel is None:
                continue
            self.counters.pending_evicted += 1
            tunnel._evict(now, "evicted: pending set-ups full (max_pending_tunnels)")
            self._evicted.append(tunnel)
            return

    def take_evicted(self) -> list[Tunnel]:
        """Tunnels evicted since the last call: their closing events await the driver."""
        out, self._evicted = self._evicted, []
        return out

    def _unpend(self, tid: int) -> None:
        key = self._pending.pop(tid, None)
        if key is None:
            return
        left = self._pending_per_peer[key] - 1
        if left:
            self._pending_per_peer[key] = left
        else:
            del self._pending_per_peer[key]

    def _admit(self, message: ControlMessage, peer: Hashable, now: float) -> bool | Reason:
        """Decide, before allocating anything, whether an SCCRQ may have a tunnel.

        True: accept. False: dropped or refused statelessly. A :class:`Reason`: refuse
        from a tunnel after all (L2TPv3 with message authentication, whose StopCCN
        must be sealed with the nonces a tunnel keeps); it counts as pending.
        """
        c = self.config
        key = _peer_key(peer)
        if self._pending_per_peer.get(key, 0) >= c.max_pending_per_peer:
            self.counters.peer_pending_limit += 1
            return False
        if len(self._pending) >= c.max_pending_tunnels:
            # Full: make room by evicting the oldest set-up (like a SYN queue under a
            # flood). A legitimate peer completes in one round trip, so only a flood
            # faster than max_pending_tunnels per round trip can push it out; dropping
            # the newcomer instead would lock every legitimate peer out until the
            # flood's set-ups time out.
            self._evict_oldest(now)
            if len(self._pending) >= c.max_pending_tunnels:
                self.counters.pending_limit += 1
                return False
        if self._established >= c.max_tunnels:
            t = c.tunnel
            if t.version == 3 and t.secret and t.digest_type is not None:
                return _limit_reason(c.max_tunnels)
            self.counters.rejected += 1
            self._refuse(message, peer, now)
            return False
        return True

    def _refuse(self, message: ControlMessage, peer: Hashable, now: float) -> None:
        """One stateless StopCCN 2 / Error 4 for an SCCRQ over the tunnel limit.

        Nothing is allocated and nothing retransmitted: a lost refusal is made good
        by the peer's own SCCRQ retransmission, which is refused again. Rate-limited
        (token bucket) so that a flood of SCCRQs cannot turn us into a reflector.
        (L2TPv3 with message authentication refuses from a tunnel: see :meth:`_admit`.)
        """
        c = self.config
        if self._reject_at is not None:
            elapsed = max(0.0, now - self._reject_at)
            self._reject_tokens = min(c.reject_rate, self._reject_tokens + elapsed * c.reject_rate)
        self._reject_at = now
        if self._reject_tokens < 1.0:
            self.counters.rejects_unsent += 1
            return
        self._reject_tokens -= 1.0
        reason = _limit_reason(c.max_tunnels)
        self._stateless.append((peer, refusal(message, c.tunnel.version, reason)))

    def _accept(
        self,
        data: bytes,
        header: ControlHeader,
        parsed: ControlMessage | None,
        message: ControlMessage,
        peer: Hashable,
        now: float,
    ) -> Tunnel | None:
        if not self._authentic(data, message):
            self.counters.bad_digest += 1
            return None
        theirs = message.tie_breaker
        losers: list[Tunnel] = []
        for tid in sorted(self._initiating.get(peer, ())):
            ours = self.tunnels[tid]
            if ours.state is not TunnelState.WAIT_CTL_REPLY:
                continue
            mine = ours.tie_breaker
            if mine is None and theirs is None:
                continue  # RFC 2661 4.4.3, RFC 3931 5.4.3: no tie breakers, two tunnels.
            if theirs is None or (mine is not None and mine < theirs):
                self.counters.ties_won += 1
                logger.info("tie breaker won against %s: their SCCRQ refused", address_text(peer))
                if self.config.tunnel.version != 3:
                    return None
                return self._answer(data, header, parsed, message, peer, now, _TIE_WON, [])
            if mine == theirs:
                self.counters.ties_equal += 1
                logger.info(
                    "equal tie breakers with %s: both tunnels discarded", address_text(peer)
                )
                ours._lose_tie_breaker(now, replaced_by=None, description=_TIE_EQUAL)
                return None
            losers.append(ours)
        admitted = self._admit(message, peer, now)
        if admitted is False:
            return None
        reject = admitted if isinstance(admitted, Reason) else None
        return self._answer(data, header, parsed, message, peer, now, reject, losers)

    def _answer(
        self,
        data: bytes,
        header: ControlHeader,
        parsed: ControlMessage | None,
        message: ControlMessage,
        peer: Hashable,
        now: float,
        reject: Reason | None,
        losers: list[Tunnel],
    ) -> Tunnel | None:
        """A recipient tunnel for the SCCRQ: SCCRP, or StopCCN with ``reject``."""
        try:
            tunnel = self._create(peer, self.config.tunnel, reject)
        except IdExhausted:
            self.counters.rejected += 1
            return None
        key = _peer_key(peer)
        self._pending[tunnel.tunnel_id] = key
        self._pending_per_peer[key] = self._pending_per_peer.get(key, 0) + 1
        handed_over: list[Session] = []
        for loser in losers:
            self.counters.ties_lost += 1
            logger.info(
                "tie breaker lost to %s: tunnel %d replaced", address_text(peer), loser.tunnel_id
            )
            handed_over += loser._lose_tie_breaker(now, replaced_by=tunnel.tunnel_id)
        if reject is None:
            self.counters.accepted += 1
        elif reject is not _TIE_WON:
            self.counters.rejected += 1
        self._by_peer_tid[peer, _peer_id(message)] = tunnel.tunnel_id
        tunnel.receive_datagram(data, now, header=header, message=parsed)
        if tunnel.state is TunnelState.IDLE:
            # The SCCRQ did not move the tunnel (the transport held it back): nothing
            # would ever time it out, so it goes now rather than pin its ID and memory.
            self.counters.bad_sccrq += 1
            self._forget(tunnel.tunnel_id)
            return None
        if handed_over:
            tunnel._adopt_sessions(handed_over, now)
        return tunnel

    def discard(self, tunnel_id: int) -> None:
        """Forget a tunnel at once, whatever its state (its driver abandoned it after a
        local fault); nothing more is sent for it. No-op for an unknown ID."""
        if tunnel_id in self.tunnels:
            self._forget(tunnel_id)

    def _forget(self, tid: int) -> None:
        """Drop every trace of a tunnel: reaped (closed), discarded or never started."""
        tunnel = self.tunnels.pop(tid)
        tunnel._state_observer = None
        if tunnel.state not in _GONE:
            self._live -= 1
        if tunnel.state is TunnelState.ESTABLISHED:
            self._established -= 1
        self._unpend(tid)
        peer = self._peer_of.pop(tid)
        self._ids.release(tid)
        if tunnel.peer_tunnel_id:
            self._by_peer_tid.pop((peer, tunnel.peer_tunnel_id), None)
        initiating = self._initiating.get(peer)
        if initiating is not None:
            initiating.discard(tid)
            if not initiating:
                del self._initiating[peer]


_TIE_WON = Reason(
    result=StopCcnResult.ALREADY_EXISTS,
    message="SCCRQ lost the control connection tie breaker (RFC 3931 5.4.3)",
)
_TIE_EQUAL = (
    "equal tie breakers: both control connections discarded;"
    " connect again with a new tie breaker (RFC 3931 5.4.3)"
)


_GONE = frozenset({TunnelState.CLOSING, TunnelState.CLOSED})


def _peer_key(peer: Hashable) -> Hashable:
    """The peer's address without its port (an I/O layer's ``(host, port)`` tuple)."""
    if isinstance(peer, tuple) and peer:
        host: Hashable = peer[0]
        return host
    return peer


def _limit_reason(limit: int) -> Reason:
    return Reason(
        result=StopCcnResult.GENERAL_ERROR,
        error=ErrorCode.INSUFFICIENT_RESOURCES,
        message=f"tunnel limit {limit} reached",
    )


def refusal(sccrq: ControlMessage, version: int, reason: Reason) -> bytes:
    """A stateless StopCCN answering ``sccrq`` (RFC 2661 5.7, RFC 3931 6.4).

    Addressed to the peer's Assigned Tunnel ID with Ns 0 and Nr 1 (it acknowledges
    the SCCRQ). Our Assigned Tunnel ID AVP, which the StopCCN must carry, names no
    tunnel: 0 would be illegal (RFC 2661 4.4.3 "non-zero"), so it is the all-ones
    ID, which the peer can only use to acknowledge, and an acknowledgement for an
    unknown tunnel is counted and dropped here.
    """
    v3 = version == 3
    avp = AvpType.ASSIGNED_CONTROL_CONNECTION_ID if v3 else AvpType.ASSIGNED_TUNNEL_ID
    message = ControlMessage(
        message_type=MessageType.STOPCCN,
        avps=[
            Avp(attribute=avp, value=0xFFFF_FFFF if v3 else 0xFFFF),
            Avp(attribute=AvpType.RESULT_CODE, value=reason.to_avp_value()),
        ],
    )
    return serialize_message(message, version=version, tunnel_id=_peer_id(sccrq), ns=0, nr=1)


def _peer_id(message: ControlMessage) -> int:
    """The peer's Assigned Tunnel ID (v2) or Assigned Control Connection ID (v3), 0 if none."""
    return message.assigned_tunnel_id or message.assigned_connection_id or 0
