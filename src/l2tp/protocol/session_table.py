"""The sessions of one tunnel: ID allocation, lookup by either ID, routing of session messages.

Split from :mod:`.session` (one call) so both stay small; the table works for
L2TPv2 :class:`~.session.Session` and L2TPv3 :class:`~.v3.Session3` alike,
asking the session class how a message names its IDs and how to reject a call.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from .constants import CdnResult, ErrorCode, MessageType
from .errors import LocalProtocolError
from .events import CallKind, CallParams, CallRequested, Reason, Role
from .ids import IdExhausted, IdPool
from .message import ControlMessage, RandomSource
from .session import Session, SessionHost
from .session_fsm import (
    MESSAGE_INPUTS,
    UNKNOWN_SESSION,
    SessionInput,
    SessionState,
    UnknownSessionAction,
)


@dataclass(slots=True)
class SessionCounters:
    opened: int = 0
    """Sessions created, by us or at the peer's request."""
    calls_rejected: int = 0
    """CDNs sent for calls we hold no session for (policy, limits, bad requests)."""
    unknown_session: int = 0
    """Session messages naming no session of ours."""
    stale_cdn: int = 0
    """CDNs whose Assigned Session ID names an earlier call on the same local ID."""
    setup_timeouts: int = 0
    """Calls closed because their set-up did not finish within the setup timeout."""


_SETUP_STATES = frozenset(
    {
        SessionState.IDLE,
        SessionState.WAIT_REPLY,
        SessionState.WAIT_ACCEPT,
        SessionState.WAIT_CONNECT,
        SessionState.WAIT_CS_ANSWER,
    }
)
"""States of a call whose exchange with the peer is under way (wait-tunnel is not: the
tunnel's own setup deadline covers it, and the call's clock starts once its request leaves).

Nor is wait-data-plane: that wait is ours, not the peer's, and the layer that asked for it
ends it (the ICCN or ICRP, or a CDN when the data plane fails). A deadline there cut calls
that were only queued behind a busy data plane: 782 of 5,000 calls placed at once in the test VM,
whose tunnels' kernel sessions were all waiting behind other tunnels' on the one netlink
socket (no progress in their own tunnel for a whole ``setup_timeout``). The peer's own
set-up timer still bounds the call from its side (its CDN ends ours)."""


class SessionTable:
    """The sessions of one tunnel: ID allocation, lookup by either ID, message routing.

    Lookups are dictionary hits on our session ID (the header of every message
    after the first) or the peer's (a CDN sent before our reply, and the
    ICRQ/OCRQ that names it), so 65,535 sessions cost no more per message than
    one; IDs come from an :class:`~.ids.IdPool`.
    """

    __slots__ = (
        "_auto_accept",
        "_by_id",
        "_by_peer",
        "_call_messages",
        "_defaults",
        "_ids",
        "_next_serial",
        "_session_class",
        "_setup_queue",
        "_setup_timeout",
        "counters",
        "host",
        "role",
    )

    def __init__(
        self,
        host: SessionHost,
        *,
        role: Role,
        id_bits: int,
        random_bytes: RandomSource,
        limit: int,
        auto_accept: bool,
        call_params: CallParams,
        session_class: type[Session] = Session,
        setup_timeout: float = 60.0,
    ) -> None:
        """``setup_timeout``: the longest a call may take from its request (sent or
        received) to established; see :meth:`get_timer`."""
        self.host = host
        self.role = role
        self._session_class = session_class
        self._auto_accept = auto_accept
        self._defaults = call_params
        self._by_id: dict[int, Session] = {}
        self._by_peer: dict[int, Session] = {}
        self._ids = IdPool(bits=id_bits, random_bytes=random_bytes, limit=limit)
        self._next_serial = 1
        self.counters = SessionCounters()
        self._setup_timeout = setup_timeout
        self._call_messages = 0
        """Session messages (ICRQ, ICRP, ICCN, CDN, ...) received, and calls whose held
        ICCN left (:meth:`data_plane_ready`): the progress of this tunnel's call set-ups."""
        self._setup_queue: deque[tuple[float, Session, int]] | None = None
        """Calls being set up, in deadline order (one timeout for all, and ``now`` only
        grows, so appending keeps it sorted): O(1) per call, however many there are.
        Made on first use: most tunnels (and every half-open one) never need it."""

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._by_id.values()))

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._by_id

    def get(self, session_id: int) -> Session | None:
        return self._by_id.get(session_id)

    def by_peer_id(self, peer_session_id: int) -> Session | None:
        return self._by_peer.get(peer_session_id)

    def require(self, session_id: int) -> Session:
        session = self._by_id.get(session_id)
        if session is None:
            raise LocalProtocolError(f"tunnel {self.host.tunnel_id} has no session {session_id}")
        return session

    # ---------------------------------------------------------------- local

    def open(self, now: float, params: CallParams | None, *, tunnel_up: bool) -> int:
        """Place a call (see :meth:`placed_kind`); it waits for the tunnel if need be."""
        params = params if params is not None else self._defaults
        kind = self.placed_kind(params.outgoing)
        sid = self._ids.allocate()
        serial = params.call_serial if params.call_serial is not None else self._serial()
        session = self._session_class(
            self.host, kind=kind, session_id=sid, call_serial=serial, params=params
        )
        self._by_id[sid] = session
        self.counters.opened += 1
        session.handle(SessionInput.OPEN, now)
        if tunnel_up:
            session.handle(SessionInput.TUNNEL_OPEN, now)
        self._start_clock(session, now)
        return sid

    def placed_kind(self, outgoing: bool | None) -> CallKind:
        """The table of a call we place (``CallParams.outgoing``).

        L2TPv3: either LCCE sends either request (RFC 3931 7.3.1 ICRQ sender,
        7.4.1 OCRQ sender), incoming unless asked otherwise. L2TPv2: the LAC
        sends ICRQ (RFC 2661 7.4.1), the LNS OCRQ (7.5.2); asking a v2 tunnel
        for the other kind is API misuse.
        """
        if self._session_class.VERSION == 3:
            return CallKind.LNS_OUTGOING if outgoing else CallKind.LAC_INCOMING
        lac = self.role is Role.LAC
        if outgoing is not None and outgoing == lac:
            what = "outgoing" if outgoing else "incoming"
            raise LocalProtocolError(f"an L2TPv2 {self.role.name} cannot place {what} calls")
        return CallKind.LAC_INCOMING if lac else CallKind.LNS_OUTGOING

    def accept(self, session: Session, now: float) -> None:
        session.handle(SessionInput.ACCEPT, now)
        self._unless_waiting(session, now)
        if session.kind is CallKind.LAC_OUTGOING and session.state is SessionState.WAIT_CS_ANSWER:
            # No bearer to wait for on a software LAC: the call is answered at once.
            session.handle(SessionInput.ANSWER, now)

    def _unless_waiting(self, session: Session, now: float) -> None:
        """A call in wait-data-plane that does not wait for its data plane leaves it at
        once: its ICCN (LAC) or ICRP (LNS) goes out as before (see :mod:`.session_fsm`)."""
        if session.state is SessionState.WAIT_DATA_PLANE and not session.params.wait_data_plane:
            session.handle(SessionInput.DATA_PLANE_READY, now)

    def data_plane_ready(self, session: Session, now: float) -> None:
        """Send a held ICCN or ICRP (see :mod:`.session_fsm`). Counted as progress of the
        tunnel's call set-ups, as a peer's call message is (:meth:`handle_timer`)."""
        self._call_messages += 1
        session.handle(SessionInput.DATA_PLANE_READY, now)

    def tunnel_open(self, now: float) -> None:
        """RFC 2661 7.4.1 / 7.5.2 "tunnel-open": waiting sessions send their request."""
        for session in self:
            if session.state is SessionState.WAIT_TUNNEL:
                session.handle(SessionInput.TUNNEL_OPEN, now)

    def tunnel_down(self, now: float) -> None:
        for session in self:
            session.handle(SessionInput.TUNNEL_DOWN, now)

    def detach_waiting(self) -> list[Session]:
        """Remove the sessions still in wait-tunnel (for a tie-breaker hand-over)."""
        waiting = [s for s in self if s.state is SessionState.WAIT_TUNNEL]
        for session in waiting:
            del self._by_id[session.session_id]
            self._ids.release(session.session_id)
        return waiting

    def adopt(self, sessions: list[Session], now: float, *, tunnel_up: bool) -> None:
        """Take over waiting sessions, keeping their local IDs."""
        for session in sessions:
            self._ids.reserve(session.session_id)
            session.host = self.host
            self._by_id[session.session_id] = session
            if tunnel_up:
                session.handle(SessionInput.TUNNEL_OPEN, now)

    def release(self, session: Session) -> None:
        """Forget a closed session and free its ID (Session calls this via its host)."""
        sid = session.session_id
        if self._by_id.get(sid) is session:
            del self._by_id[sid]
            self._ids.release(sid)
        if self._by_peer.get(session.peer_session_id) is session:
            del self._by_peer[session.peer_session_id]

    # ----------------------------------------------------------------- peer

    def dispatch(
        self, message: ControlMessage, header_sid: int, bad: Reason | None, now: float
    ) -> None:
        """Route a session message to its session, or create one (RFC 2661 7.4, 7.5)."""
        self._call_messages += 1
        mtype = message.message_type
        inp = MESSAGE_INPUTS[mtype]
        peer_sid, header_sid = self._session_class.message_ids(message, header_sid)
        if mtype in (MessageType.ICRQ, MessageType.OCRQ):
            existing = self._by_peer.get(peer_sid) if peer_sid else None
            if existing is not None:
                self._feed(existing, inp, message, bad, now)
            elif bad is not None or not peer_sid:
                self.reject(peer_sid, 0, bad or _no_such_session(), now)
            else:
                self._new_call(message, peer_sid, now)
            return
        session = self._by_id.get(header_sid) if header_sid else None
        if session is None and peer_sid:
            session = self._by_peer.get(peer_sid)
        if session is None:
            self.counters.unknown_session += 1
            if UNKNOWN_SESSION.get(mtype) is UnknownSessionAction.REPLY_CDN and peer_sid:
                self.reject(peer_sid, header_sid, _no_such_session(), now)
            return
        if (
            mtype == MessageType.CDN
            and session.peer_session_id
            and peer_sid
            and peer_sid != session.peer_session_id
        ):
            self.counters.stale_cdn += 1
            return
        self._feed(session, inp, message, bad, now)

    def reject(self, peer_sid: int, our_sid: int, reason: Reason, now: float) -> None:
        """CDN for a call we hold no session for (RFC 2661 7.4.2 "idle, not acceptable")."""
        self.counters.calls_rejected += 1
        message = self._session_class.reject_message(peer_sid, our_sid, reason, self.host)
        self.host.send_message(message, session_id=peer_sid, now=now)

    def _feed(
        self,
        session: Session,
        inp: SessionInput,
        message: ControlMessage,
        bad: Reason | None,
        now: float,
    ) -> None:
        if bad is not None:
            session.bad_reason = bad
            inp = SessionInput.RECV_BAD
        had_peer = session.peer_session_id
        session.handle(inp, now, message)
        if not had_peer and session.peer_session_id and session.state is not SessionState.CLOSED:
            self._by_peer[session.peer_session_id] = session
        self._unless_waiting(session, now)

    def _new_call(self, message: ControlMessage, peer_sid: int, now: float) -> None:
        """ICRQ or OCRQ for a new call; v2 refuses the one its role does not answer."""
        incoming = message.message_type == MessageType.ICRQ
        v3 = self._session_class.VERSION == 3  # RFC 3931 7.3.2, 7.4.2: any LCCE answers both
        if not v3 and incoming != (self.role is Role.LNS):
            reason = Reason(
                result=CdnResult.PERMANENT_NO_FACILITIES,
                message=f"{message.name} not accepted by an {self.role.name}",
            )
            self.reject(peer_sid, 0, reason, now)
            return
        try:
            sid = self._ids.allocate()
        except IdExhausted:
            reason = Reason(
                result=CdnResult.TEMPORARY_NO_FACILITIES,
                error=ErrorCode.INSUFFICIENT_RESOURCES,
                message=f"session limit {self._ids.limit} reached",
            )
            self.reject(peer_sid, 0, reason, now)
            return
        kind = CallKind.LNS_INCOMING if incoming else CallKind.LAC_OUTGOING
        session = self._session_class(
            self.host, kind=kind, session_id=sid, call_serial=0, params=self._defaults
        )
        self._by_id[sid] = session
        self.counters.opened += 1
        self._start_clock(session, now)
        self._feed(session, MESSAGE_INPUTS[message.message_type], message, None, now)
        if session.state is not SessionState.WAIT_ACCEPT:
            return
        if self._auto_accept:
            self.accept(session, now)
        else:
            self.host.emit(CallRequested(tunnel_id=self.host.tunnel_id, info=session.info))

    # --------------------------------------------------------------- timers

    def get_timer(self) -> float | None:
        """The deadline of the oldest call still being set up, None if there is none.

        Every exchange has a deadline (RFC 2661 has no call set-up timer, but a
        peer that acknowledges our ICRQ/ICRP/OCRQ at the transport level and never
        sends the next message would otherwise hold the session, and its ID, for
        ever). Calls that finished or closed are dropped from the front lazily.
        """
        queue = self._setup_queue
        while queue:
            deadline, session, _ = queue[0]
            waiting = session.state in _SETUP_STATES or session.state is SessionState.WAIT_TUNNEL
            if waiting and self._by_id.get(session.session_id) is session:
                return deadline
            queue.popleft()
        self._setup_queue = None
        return None

    def _start_clock(self, session: Session, now: float) -> None:
        queue = self._setup_queue
        if queue is None:
            queue = self._setup_queue = deque()
        queue.append((now + self._setup_timeout, session, self._call_messages))

    def handle_timer(self, now: float) -> None:
        """Close every call whose set-up deadline has passed, with a CDN.

        Result Code: L2TPv3 16, "finite state machine error or timeout" (RFC 3931
        5.4.2); L2TPv2 10, "call not established within time allotted" (RFC 2661
        4.4.2: the only v2 code that names a timeout). The deadline is about the
        peer: a call still waiting for its tunnel, or whose last message the peer
        has not yet acknowledged, gets a new one instead (the tunnel's own setup
        timeout and reliable delivery cover those waits), and so does every pending
        call of a tunnel whose peer sent any call message since that deadline was set
        (a peer working through a backlog at 30% loss is slow, not stalled; HELLOs
        and acknowledgements do not count), or in which a held ICCN left since. A peer
        could keep calls pending by
        sending call messages all the time; its calls count against
        ``max_sessions`` like any, so the state it holds stays bounded.
        """
        queue = self._setup_queue
        if queue is None or not queue or queue[0][0] > now:
            return  # the tunnel's timer fired for something else
        expired: list[Session] = []
        host = self.host
        messages = self._call_messages
        while queue and queue[0][0] <= now:
            _, session, messages_then = queue.popleft()
            if self._by_id.get(session.session_id) is not session:
                continue
            ns = session.last_ns
            if (
                session.state is SessionState.WAIT_TUNNEL
                or (ns is not None and not host.acknowledged(ns))
                or messages != messages_then
            ):
                # Still waiting for the tunnel; or our last message of the exchange is
                # queued behind the window or being retransmitted; or the peer sent
                # call messages since this deadline was set, so it is working through a
                # backlog (its answer may sit behind its own window). Not stalled: the
                # deadline restarts from here. Reliable delivery ends a tunnel whose
                # peer is gone; a peer that sends no call message for a whole
                # setup_timeout has its pending calls cut.
                queue.append((now + self._setup_timeout, session, messages))
            elif session.state in _SETUP_STATES:
                expired.append(session)
        v3 = self._session_class.VERSION == 3
        result = CdnResult.FSM_ERROR if v3 else CdnResult.TIMEOUT
        for session in expired:
            if session.state not in _SETUP_STATES:
                continue
            self.counters.setup_timeouts += 1
            reason = Reason(
                result=result,
                message=f"call set-up timed out in {session.state.value}",
            )
            session.handle(SessionInput.CLOSE, now, reason=reason)

    def _serial(self) -> int:
        serial = self._next_serial
        self._next_serial = (serial + 1) & 0xFFFFFFFF or 1
        return serial


def _no_such_session() -> Reason:
    return Reason(
        result=CdnResult.GENERAL_ERROR,
        error=ErrorCode.INVALID_SESSION_ID,
        message="no such session",
    )
