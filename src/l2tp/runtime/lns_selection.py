"""Choosing an LNS for each session of a LAC, and denylisting LNSes that fail (sans-IO).

An access network outgrows one LNS: the LAC spreads its sessions over several and
moves them when one fails. The industry's model, which RADIUS carries in RFC 2868's
tagged tunnel attributes, is a list of tunnel endpoints in preference levels; this
module is that model's decision core, with no sockets, no clock and no randomness of
its own (``now`` is a parameter, the random source a :class:`random.Random` handed
in), so that every rule is tested by driving time by hand. The asyncio driver that
opens the tunnels and places the calls is :mod:`l2tp.runtime.lns_failover`.

The rules:

* **Choice** (:meth:`LnsSelector.choose`): the lowest :attr:`LnsEndpoint.preference`
  level that has an *available* endpoint (not denylisted, under its
  ``max_sessions``); within that level, an endpoint at random with probability
  proportional to its :attr:`~LnsEndpoint.weight`. Each session is chosen for on
  its own, so N sessions over weights 1:2:3 split about N/6 : N/3 : N/2.
* **Tunnels**: an endpoint is one tunnel. Two entries for the same LNS address
  with different :attr:`~LnsEndpoint.assignment_id` are two tunnels to it; every
  session placed on one entry shares that entry's tunnel (RFC 2868 3.7).
* **Denylist**: an endpoint that fails (:class:`DenyReason`: SCCRQ never answered,
  the peer's StopCCN or CDN with a Result Code the policy lists, an established
  tunnel lost, our refusal of its answer) is not chosen for ``denylist_time``
  seconds; :meth:`LnsSelector.expire` ends the denial. Sessions already up on a
  denylisted endpoint stay there (a denial is about new choices).
* **Revert** (off by default): once an endpoint of a better level is available
  again, :meth:`LnsSelector.revert_candidates` names the sessions placed on worse
  levels, for the driver to move.

The denylist is per entry (address, port, assignment ID), not per address: a wrong
secret or a ``max_sessions`` is a property of the entry, and a dead LNS listed twice
fails each entry on its own attempt anyway.
"""

from __future__ import annotations

import enum
import random
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from l2tp.protocol.constants import CdnResult, StopCcnResult

__all__ = [
    "DEFAULT_DENYLIST_CDN",
    "DEFAULT_DENYLIST_STOPCCN",
    "DEFAULT_DENYLIST_TIME",
    "DenyReason",
    "LnsEndpoint",
    "LnsSelector",
    "PeerDenylisted",
    "PeerRestored",
    "PeerState",
    "PeerStatus",
    "SelectionPolicy",
    "backoff_delay",
    "call_outcome",
    "tunnel_outcome",
]

DEFAULT_DENYLIST_TIME = 300.0
"""Seconds an endpoint that failed is passed over: long enough that a dead LNS does not
cost every new session a full SCCRQ timeout, short enough that a restarted one is used
again within minutes."""
DEFAULT_DENYLIST_STOPCCN = (
    int(StopCcnResult.GENERAL_ERROR),
    int(StopCcnResult.NOT_AUTHORIZED),
    int(StopCcnResult.UNSUPPORTED_VERSION),
    int(StopCcnResult.SHUTTING_DOWN),
    int(StopCcnResult.FSM_ERROR),
)
"""StopCCN Result Codes (RFC 2661 4.4.2) that denylist: every code but 1 (General
request to clear the control connection, an orderly close) and 3 (Control channel
already exists, a tie-breaker outcome, RFC 2661 4.4.3)."""
DEFAULT_DENYLIST_CDN = (
    int(CdnResult.GENERAL_ERROR),
    int(CdnResult.TEMPORARY_NO_FACILITIES),
    int(CdnResult.PERMANENT_NO_FACILITIES),
)
"""CDN Result Codes (RFC 2661 4.4.2) that denylist when they refuse a call: the LNS is
broken (2) or out of resources (4, 5). Administrative (3) and the dial-up codes are
about the call, not the LNS."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LnsEndpoint:
    """One LNS the LAC may use: one set of RFC 2868 tunnel attributes.

    * ``address``, ``port``: RFC 2868 3.4, Tunnel-Server-Endpoint (where the SCCRQ goes).
    * ``preference``: RFC 2868 3.8, Tunnel-Preference; lower is preferred, and
      endpoints of one value form a level.
    * ``weight``: the share of the level's sessions (a vendor extension: RFC 2868
      leaves the choice within a level to the initiator).
    * ``secret``: RFC 2868 3.5, Tunnel-Password, the tunnel secret (RFC 2661 5.1.1);
      None: the pool's own.
    * ``max_sessions``: sessions this endpoint takes at most (0: no limit).
    * ``assignment_id``: RFC 2868 3.7, Tunnel-Assignment-ID; sessions placed on the
      same (address, port, assignment ID) share one tunnel.
    """

    address: str
    port: int = 1701
    preference: int = 0
    weight: int = 1
    secret: str | None = field(default=None, repr=False)
    max_sessions: int = 0
    assignment_id: str | None = None

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("an LNS endpoint needs an address")
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port {self.port} is out of range 0-65535")
        if not 0 <= self.preference <= 0xFFFFFF:
            # RFC 2868 3.8: the value is three octets.
            raise ValueError(f"preference {self.preference} is out of range 0-16777215")
        if self.weight < 1:
            raise ValueError(f"weight {self.weight} must be at least 1")
        if self.max_sessions < 0:
            raise ValueError(f"max_sessions {self.max_sessions} must not be negative")

    @property
    def key(self) -> tuple[str, int, str | None]:
        """What makes two entries one tunnel: the server endpoint and the assignment ID."""
        return (self.address, self.port, self.assignment_id)

    @property
    def label(self) -> str:
        """``ADDRESS:PORT`` (``[V6]:PORT``), and ``#ID`` with an assignment ID: for logs
        and ``l2tp ctl peers``."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        tag = f"#{self.assignment_id}" if self.assignment_id is not None else ""
        return f"{host}:{self.port}{tag}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectionPolicy:
    """How failures are judged. ``denylist_time`` 0 disables the denylist (failed
    endpoints stay eligible; only the driver's back-off spaces the retries)."""

    denylist_time: float = DEFAULT_DENYLIST_TIME
    denylist_stopccn: frozenset[int] = frozenset(DEFAULT_DENYLIST_STOPCCN)
    denylist_cdn: frozenset[int] = frozenset(DEFAULT_DENYLIST_CDN)
    revert: bool = False

    def __post_init__(self) -> None:
        if self.denylist_time < 0:
            raise ValueError("denylist_time must not be negative")


class DenyReason(enum.StrEnum):
    """Why an endpoint was denylisted (the ``reason`` of logs, ``l2tp ctl peers`` and
    the ``l2tp_peer_denylisted_total`` metric)."""

    NO_ANSWER = "no-answer"
    """Our SCCRQ was retransmitted until the transport gave up (RFC 2661 5.8)."""
    STOPCCN = "stopccn"
    """The peer's StopCCN carried a Result Code of ``denylist_stopccn``."""
    CDN = "cdn"
    """The peer refused a call with a CDN Result Code of ``denylist_cdn``."""
    TUNNEL_LOST = "tunnel-lost"
    """An established tunnel ended without a StopCCN from the peer and without our
    asking: the peer stopped acknowledging (HELLO or any message, RFC 2661 6.5)."""
    REFUSED = "refused"
    """We refused the peer's answer while setting the tunnel up (e.g. its challenge
    response did not match our secret: we sent StopCCN 4)."""
    ERROR = "error"
    """The tunnel could not even be started (no route, name resolution failed)."""


class PeerState(enum.StrEnum):
    """An endpoint as ``l2tp ctl peers`` shows it."""

    IDLE = "idle"
    """Available, no tunnel (none needed yet)."""
    CONNECTING = "connecting"
    UP = "up"
    """Its tunnel is established."""
    DENYLISTED = "denylisted"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerDenylisted:
    """An endpoint was denylisted until ``until`` (the caller's clock)."""

    index: int
    endpoint: LnsEndpoint
    reason: DenyReason
    result: int | None
    until: float
    sessions: int
    """Sessions it still held (a tunnel failure releases them; a CDN does not)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerRestored:
    """An endpoint's denial expired: it may be chosen again."""

    index: int
    endpoint: LnsEndpoint


SelectionEvent = PeerDenylisted | PeerRestored


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerStatus:
    """One endpoint's state for display (see :meth:`LnsSelector.snapshot`)."""

    index: int
    endpoint: LnsEndpoint
    state: PeerState
    sessions: int
    """Sessions placed on it (being set up or up)."""
    denylisted_until: float | None
    reason: DenyReason | None
    """Why it was last denylisted (kept after the denial expires, for the operator)."""
    result: int | None
    denylisted_total: dict[DenyReason, int]


class _Entry:
    __slots__ = ("denied_total", "denied_until", "reason", "result", "sessions", "tunnel")

    def __init__(self) -> None:
        self.denied_until: float | None = None
        self.reason: DenyReason | None = None
        self.result: int | None = None
        self.sessions: dict[str, None] = {}
        self.tunnel = PeerState.IDLE
        self.denied_total: Counter[DenyReason] = Counter()


class LnsSelector:
    """The endpoints of one pool, the sessions placed on them and the denylist.

    Sessions are named by the caller (any string unique in the pool). Misuse (placing a
    session twice, an unknown index) raises ValueError/KeyError at the call site.
    """

    def __init__(
        self,
        endpoints: Sequence[LnsEndpoint],
        policy: SelectionPolicy | None = None,
        *,
        rng: random.Random,
    ) -> None:
        if not endpoints:
            raise ValueError("an LNS pool needs at least one endpoint")
        keys = [e.key for e in endpoints]
        if len(set(keys)) != len(keys):
            raise ValueError("two endpoints with the same address, port and assignment ID")
        self.endpoints = tuple(endpoints)
        self.policy = policy if policy is not None else SelectionPolicy()
        self.rng = rng
        self._entries = [_Entry() for _ in self.endpoints]
        self._placed: dict[str, int] = {}
        self._levels = sorted({e.preference for e in self.endpoints})
        self._events: deque[SelectionEvent] = deque()

    # ------------------------------------------------------------- choosing

    def denylisted(self, index: int, now: float) -> bool:
        until = self._entries[index].denied_until
        return until is not None and now < until

    def available(self, index: int, now: float) -> bool:
        """Not denylisted and under its ``max_sessions``."""
        limit = self.endpoints[index].max_sessions
        if limit and len(self._entries[index].sessions) >= limit:
            return False
        return not self.denylisted(index, now)

    def best_level(self, now: float) -> int | None:
        """The lowest preference with an available endpoint (None: none is)."""
        for level in self._levels:
            if any(
                self.available(i, now)
                for i, e in enumerate(self.endpoints)
                if e.preference == level
            ):
                return level
        return None

    def choose(self, now: float) -> int | None:
        """An endpoint for one more session (see the module doc), or None when every
        endpoint is denylisted or full. Draws one number from the random source."""
        level = self.best_level(now)
        if level is None:
            return None
        candidates = [
            i
            for i, e in enumerate(self.endpoints)
            if e.preference == level and self.available(i, now)
        ]
        total = sum(self.endpoints[i].weight for i in candidates)
        point = self.rng.random() * total
        for i in candidates:
            point -= self.endpoints[i].weight
            if point < 0:
                return i
        return candidates[-1]  # rounding at the very top of the range

    def place(self, session: str, now: float) -> int | None:
        """Choose an endpoint for ``session`` and record it there (None: nothing is
        available, the session stays unplaced)."""
        if session in self._placed:
            raise ValueError(f"session {session} is already placed")
        index = self.choose(now)
        if index is not None:
            self._placed[session] = index
            self._entries[index].sessions[session] = None
        return index

    def release(self, session: str) -> int | None:
        """Forget where ``session`` was (it ended or is moving); its endpoint's index."""
        index = self._placed.pop(session, None)
        if index is not None:
            self._entries[index].sessions.pop(session, None)
        return index

    def placement(self, session: str) -> int | None:
        return self._placed.get(session)

    def sessions_on(self, index: int) -> list[str]:
        """The sessions placed on an endpoint, in placement order."""
        return list(self._entries[index].sessions)

    # ------------------------------------------------------------- outcomes

    def set_tunnel(self, index: int, state: PeerState) -> None:
        """The driver's view of the endpoint's tunnel (IDLE, CONNECTING or UP), for
        display and for :meth:`revert_candidates`."""
        if state is PeerState.DENYLISTED:
            raise ValueError("denylist an endpoint with deny()")
        self._entries[index].tunnel = state

    def deny(
        self, index: int, now: float, reason: DenyReason, result: int | None = None
    ) -> PeerDenylisted | None:
        """Denylist an endpoint for ``denylist_time`` (a later failure extends it).
        Returns the event (also queued for :meth:`next_event`); None when the policy's
        ``denylist_time`` is 0."""
        entry = self._entries[index]
        entry.reason = reason
        entry.result = result
        entry.denied_total[reason] += 1
        if self.policy.denylist_time <= 0:
            return None
        entry.denied_until = now + self.policy.denylist_time
        event = PeerDenylisted(
            index=index,
            endpoint=self.endpoints[index],
            reason=reason,
            result=result,
            until=entry.denied_until,
            sessions=len(entry.sessions),
        )
        self._events.append(event)
        return event

    def tunnel_failed(
        self, index: int, now: float, reason: DenyReason | None, result: int | None = None
    ) -> list[str]:
        """The endpoint's tunnel is gone: denylist it when ``reason`` says so, and
        release every session placed on it. Returns those sessions, in placement
        order, for the driver to place again."""
        entry = self._entries[index]
        entry.tunnel = PeerState.IDLE
        if reason is not None:
            self.deny(index, now, reason, result)
        moved = list(entry.sessions)
        for session in moved:
            self._placed.pop(session, None)
        entry.sessions.clear()
        return moved

    # ------------------------------------------------------------- time

    def get_timer(self) -> float | None:
        """When the next denial ends (None: no endpoint is denylisted)."""
        times = [e.denied_until for e in self._entries if e.denied_until is not None]
        return min(times) if times else None

    def expire(self, now: float) -> list[int]:
        """End every denial due by ``now``; returns those endpoints (events queued)."""
        restored = []
        for index, entry in enumerate(self._entries):
            if entry.denied_until is not None and entry.denied_until <= now:
                entry.denied_until = None
                restored.append(index)
                self._events.append(PeerRestored(index=index, endpoint=self.endpoints[index]))
        return restored

    def next_event(self) -> SelectionEvent | None:
        return self._events.popleft() if self._events else None

    # ------------------------------------------------------------- revert

    def revert_candidates(self, now: float) -> list[str]:
        """With ``revert``: the sessions placed on a worse level than the best one
        whose endpoints are available *and* have a tunnel up (so a session is only
        moved to an LNS that answered again, never to one just let off the denylist
        that may still be dead). Empty without ``revert``."""
        if not self.policy.revert:
            return []
        best = None
        for level in self._levels:
            if any(
                self.available(i, now) and self._entries[i].tunnel is PeerState.UP
                for i, e in enumerate(self.endpoints)
                if e.preference == level
            ):
                best = level
                break
        if best is None:
            return []
        return [s for s, i in self._placed.items() if self.endpoints[i].preference > best]

    def worse_than(self, index: int) -> bool:
        """True when some session is placed on a level worse than ``index``'s."""
        level = self.endpoints[index].preference
        return any(self.endpoints[i].preference > level for i in self._placed.values())

    # ------------------------------------------------------------- display

    def snapshot(self, now: float) -> list[PeerStatus]:
        out = []
        for index, (endpoint, entry) in enumerate(zip(self.endpoints, self._entries, strict=True)):
            denied = self.denylisted(index, now)
            out.append(
                PeerStatus(
                    index=index,
                    endpoint=endpoint,
                    state=PeerState.DENYLISTED if denied else entry.tunnel,
                    sessions=len(entry.sessions),
                    denylisted_until=entry.denied_until if denied else None,
                    reason=entry.reason,
                    result=entry.result,
                    denylisted_total=dict(entry.denied_total),
                )
            )
        return out


# ----------------------------------------------------------------- judging outcomes


def tunnel_outcome(
    policy: SelectionPolicy,
    *,
    established: bool,
    by_peer: bool,
    result: int | None,
    requested: bool,
) -> DenyReason | None:
    """Whether the end of a tunnel denylists its endpoint, and why.

    ``requested``: we closed it on purpose (stopping, reverting, idle): never.
    A StopCCN from the peer denylists when its Result Code is in the policy's
    ``denylist_stopccn`` (an orderly ``1`` does not, so an LNS whose operator clears a
    tunnel is used again). With no StopCCN from the peer: before establishment, no
    Result Code at all means the SCCRQ was never answered; a code means we refused the
    peer's answer. After establishment, the tunnel was lost.
    """
    if requested:
        return None
    if by_peer:
        return DenyReason.STOPCCN if result in policy.denylist_stopccn else None
    if not established:
        return DenyReason.NO_ANSWER if result is None else DenyReason.REFUSED
    return DenyReason.TUNNEL_LOST


def call_outcome(
    policy: SelectionPolicy, *, established: bool, by_peer: bool, result: int | None
) -> DenyReason | None:
    """Whether the end of a call denylists its endpoint: only the peer's CDN refusing
    the call (before it was established) with a Result Code in ``denylist_cdn``."""
    if established or not by_peer:
        return None
    return DenyReason.CDN if result in policy.denylist_cdn else None


def backoff_delay(failures: int, first: float, cap: float) -> float:
    """Seconds before the ``failures``-th consecutive retry: ``first``, doubling per
    failure, at most ``max(cap, first)``."""
    if failures <= 0:
        return 0.0
    exponent = min(failures - 1, 32)  # 2**32 x any sane first is past any cap
    return float(min(first * (2**exponent), max(cap, first)))
