"""One L2TP control connection (v2 tunnel, v3 control connection), sans-IO.

A :class:`Tunnel` owns a reliable :class:`~.transport.Transport`, runs the
control connection table of :mod:`.tunnel_fsm` and the sessions of
:mod:`.session`, and reports :mod:`.events`. Like aioquic's connection every
entry point takes ``now``; the I/O layer loops::

    tunnel.receive_datagram(data, now)         # or tunnel.handle_timer(now)
    for datagram in tunnel.datagrams_to_send(now): sock.sendto(datagram, peer)
    while (event := tunnel.next_event()) is not None: ...
    loop.call_at(tunnel.get_timer(), ...)

Peer faults never raise here (STYLE rule 5): undecodable, out-of-sequence or
unacceptable messages end the tunnel (StopCCN) or the session (CDN) with the
RFC's Result Code, and are counted in :class:`TunnelCounters`. Misuse of the
API raises :class:`~.errors.LocalProtocolError`.

What counts as "not acceptable" (RFC 2661 7.1, 7.2.1), and the code sent:

=====================================================  ==================================
body cannot be decoded (lengths, hidden subformat)     StopCCN 2 / Error 2 (length wrong)
hidden AVPs do not unhide with our secret              StopCCN 4 (not authorized)
required AVP missing (RFC 2661 section 6)              StopCCN or CDN 2 / Error 3
unknown AVP with the M bit (4.2)                       StopCCN or CDN 2 / Error 8
unknown message type with the M bit (4.4.1)            StopCCN 2 / Error 8
Protocol Version other than 1.0 (7.2.1)                StopCCN 5 / Error 0x100 (1.0)
challenge response wrong or missing (5.1.1)            StopCCN 4
message in the wrong state (7.1)                       StopCCN 7, or CDN 2 (see session)
=====================================================  ==================================

L2TPv3 (RFC 3931) reuses this machinery and its tables; the differences are
gathered in :class:`VersionProfile`, the v3 message builders in :mod:`.v3` and
control message authentication (Message Digest, nonces) in :mod:`.auth3`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from .auth import Handshake
from .auth3 import MessageAuth, Verdict
from .avp import Avp
from .avps import Accm, CallErrors
from .constants import (
    SESSION_MESSAGES,
    VENDOR_IETF,
    AvpType,
    BearerBits,
    CdnResult,
    ErrorCode,
    FramingBits,
    MessageType,
    StopCcnResult,
)
from .errors import CodecError, LocalProtocolError
from .events import (
    CallParams,
    ControlEvent,
    PeerInfo,
    Reason,
    Role,
    TunnelClosed,
    TunnelEstablished,
    TunnelReleased,
)
from .header import ControlHeader
from .message import ControlMessage, RandomSource, encode_body, parse_body, validate_message
from .session import Session
from .session_fsm import SessionInput, SessionState
from .session_table import SessionTable
from .specs import MessageValidationError
from .transport import (
    MessageReceived,
    Transport,
    TransportClosed,
    TransportFailed,
    TransportState,
)
from .tunnel_config import (
    HIDE_WHEN_ENABLED,
    PROTOCOL_VERSION,
    VERSION_PROFILES,
    TunnelConfig,
    TunnelCounters,
    VersionProfile,
)
from .tunnel_fsm import TunnelAction, TunnelInput, TunnelState, lookup, tunnel_input_for
from .v3 import Session3, peer_info, scc_message

__all__ = [
    "HIDE_WHEN_ENABLED",
    "PROTOCOL_VERSION",
    "VERSION_PROFILES",
    "Tunnel",
    "TunnelConfig",
    "TunnelCounters",
    "VersionProfile",
]

logger = logging.getLogger(__name__)


def _visible_avp(attribute: AvpType, value: Any) -> Avp:
    return Avp(attribute=attribute, value=value)


_SETUP_STATES = frozenset({TunnelState.WAIT_CTL_REPLY, TunnelState.WAIT_CTL_CONN})


class _Refused(Exception):
    """The message just received is not acceptable; carries the StopCCN reason."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.message)
        self.reason = reason


def _stop(result: StopCcnResult, error: ErrorCode | None = None, message: str = "") -> Reason:
    return Reason(result=result, error=error, message=message)


class Tunnel:
    """One control connection and its sessions. See the module docstring for the loop.

    ``local_id`` is our Assigned Tunnel ID (non-zero); the listener allocates
    it. ``random_bytes`` supplies challenges, tie breakers, random vectors and
    session IDs. ``reject`` (listener use) makes the tunnel answer the SCCRQ
    with a StopCCN carrying that reason instead of an SCCRP.
    """

    def __init__(
        self,
        config: TunnelConfig,
        *,
        local_id: int,
        random_bytes: RandomSource,
        reject: Reason | None = None,
    ) -> None:
        self.config = config
        self.profile = VERSION_PROFILES[config.version]
        if not 1 <= local_id < 1 << self.profile.id_bits:
            raise LocalProtocolError(f"tunnel ID {local_id} must be non-zero and fit the header")
        self._tunnel_id = local_id
        self.peer: PeerInfo | None = None
        self._random = self.random_bytes = random_bytes
        self._reject = reject
        v3 = config.version == 3
        self._msgauth: MessageAuth | None = None
        if v3 and config.secret and config.digest_type is not None:
            self._msgauth = auth = MessageAuth(config.secret, config.digest_type, random_bytes)
            self.transport = Transport(
                version=3,
                local_id=local_id,
                config=config.transport,
                hello_body=auth.encode(ControlMessage.hello()),
                ack_body=auth.encode(ControlMessage(message_type=MessageType.ACK)),
                seal=auth.seal,
            )
        else:
            self.transport = Transport(
                version=config.version, local_id=local_id, config=config.transport
            )
        self.counters = TunnelCounters()
        self.state = TunnelState.IDLE
        self._state_observer: Callable[[Tunnel, TunnelState, TunnelState], None] | None = None
        """Set by the owning :class:`~.listener.TunnelListener` only: told of every state
        change, so that it keeps its tunnel counts without scanning its tunnels."""
        self._setup_deadline: float | None = None
        self._preparsed: tuple[int, ControlMessage] | None = None
        self._events: list[ControlEvent] = []
        self.sessions = SessionTable(
            self,
            role=config.role,
            id_bits=self.profile.id_bits,
            random_bytes=random_bytes,
            limit=config.max_sessions,
            auto_accept=config.auto_accept,
            call_params=config.call_params,
            session_class=Session3 if v3 else Session,
            setup_timeout=config.setup_timeout,
        )
        self._hide = bool(config.hide_avps and config.secret)
        self._auth = Handshake(
            config.secret, challenge=config.challenge and not v3, random_bytes=random_bytes
        )
        self._replaced_by: int | None = None
        self.tie_breaker: bytes | None = random_bytes(8) if config.tie_breaker else None
        self.log_context: dict[str, object] = {"tunnel": local_id}
        """The context of this tunnel's log records (and its sessions'): ``tunnel``, then
        ``peer_tunnel`` once known; its owner adds ``peer`` (the address, as text).
        The daemons' log formats print these keys (:mod:`l2tp.daemons.logformat`)."""
        self._log = logging.LoggerAdapter(logger, self.log_context)

    def __repr__(self) -> str:
        return f"<Tunnel {self.tunnel_id} peer={self.peer_tunnel_id} {self.state.value}>"

    # ------------------------------------------------------------ properties

    @property
    def tunnel_id(self) -> int:
        """Our Assigned Tunnel ID: the Tunnel ID in the header of what the peer sends us."""
        return self._tunnel_id

    @property
    def peer_tunnel_id(self) -> int:
        """The peer's Assigned Tunnel ID, 0 until its SCCRQ/SCCRP arrived."""
        return self.transport.peer_id

    @property
    def has_events(self) -> bool:
        """True while :meth:`next_event` has something to return."""
        return bool(self._events)

    @property
    def unacknowledged(self) -> int:
        """Messages sent and not yet acknowledged by the peer (0 once a StopCCN is acked)."""
        return self.transport.in_flight

    @property
    def framing_capabilities(self) -> FramingBits:
        return self.config.framing_capabilities

    @property
    def bearer_capabilities(self) -> BearerBits:
        return self.config.bearer_capabilities

    @property
    def pseudowire_capabilities(self) -> tuple[int, ...]:
        return self.config.pseudowire_capabilities

    # ------------------------------------------------------------ entry points

    def connect(self, now: float) -> None:
        """Initiate the control connection: send SCCRQ (RFC 2661 7.2.1 "Local Open request")."""
        self._input(TunnelInput.OPEN, now)

    def receive_datagram(
        self,
        data: bytes,
        now: float,
        *,
        header: ControlHeader | None = None,
        message: ControlMessage | None = None,
    ) -> None:
        """Feed one control datagram from the peer. Never raises for the peer's faults.

        ``header`` and ``message``: what the caller already decoded from ``data`` to
        route it (``message`` decoded with this tunnel's secret), so that a datagram is
        parsed once on its way in.
        """
        if self.state is TunnelState.CLOSED:
            return
        auth = self._msgauth
        if auth is not None and auth.judge(data) is Verdict.BAD:
            # RFC 3931 5.4.1: checked before any use of the message, dropped on failure.
            self.counters.bad_digest += 1
            return
        if message is not None and header is not None:
            self._preparsed = (header.ns, message)
        self.transport.receive(data, now, header)
        self._drain(now)
        self._preparsed = None

    def handle_timer(self, now: float) -> None:
        """Fire due retransmissions, HELLO and the end of close-wait."""
        if self.state is TunnelState.CLOSED:
            return
        deadline = self._setup_deadline
        if deadline is not None and now >= deadline and self.state in _SETUP_STATES:
            self._setup_deadline = None
            self.counters.setup_timeouts += 1
            # INFO, not WARNING: under a flood every half-open tunnel ends here (counted).
            self._log.info("control connection setup timed out in %s", self.state.value)
            if self.transport.in_flight or self.transport.queued:
                # The peer has not acknowledged our last message: it is not there (or
                # cannot hear us), so a StopCCN would only queue behind it. Give up now,
                # as reliable delivery would a little later (RFC 2661 5.8).
                self._input(
                    TunnelInput.TRANSPORT_FAILED,
                    now,
                    description="control connection setup timed out: nothing acknowledged",
                )
                return
            # RFC 3931 5.4.2 has a code for it (7, "FSM error or timeout"); RFC 2661
            # has none, so L2TPv2 says General error with the reason in the message.
            v3 = self.config.version == 3
            self.close(
                now,
                result=StopCcnResult.FSM_ERROR if v3 else StopCcnResult.GENERAL_ERROR,
                message="control connection setup timed out",
            )
        if self.state is TunnelState.ESTABLISHED:
            self.sessions.handle_timer(now)
        self.transport.handle_timer(now)
        self._drain(now)

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` next has work, None if never."""
        if self.state is TunnelState.CLOSED:
            return None
        timer = self.transport.get_timer()
        if self.state is TunnelState.ESTABLISHED:
            deadline = self.sessions.get_timer()
        elif self.state in _SETUP_STATES:
            deadline = self._setup_deadline
        else:
            return timer
        if deadline is None:
            return timer
        return deadline if timer is None else min(timer, deadline)

    def datagrams_to_send(self, now: float) -> list[bytes]:
        if self.state is TunnelState.CLOSED:
            return []
        return self.transport.datagrams_to_send(now)

    def next_event(self) -> ControlEvent | None:
        return self._events.pop(0) if self._events else None

    def events(self) -> Iterator[ControlEvent]:
        """Drain every pending event."""
        while self._events:
            yield self._events.pop(0)

    def close(
        self,
        now: float,
        *,
        result: int = StopCcnResult.GENERAL_REQUEST,
        error: int | None = None,
        message: str = "",
    ) -> None:
        """Tear the tunnel down with a StopCCN (RFC 2661 5.7); a no-op once closing.

        Before anything was sent (idle) the tunnel just ends. The StopCCN is
        retransmitted and retransmissions of the peer's messages acknowledged
        for a full retransmission cycle before :class:`TunnelReleased`.
        """
        self._input(TunnelInput.CLOSE, now, Reason(result=result, error=error, message=message))

    def open_session(self, now: float, params: CallParams | None = None) -> int:
        """Place a call: ICRQ from a LAC (7.4.1), OCRQ from an LNS (7.5.2). Returns the session ID.

        L2TPv3: ICRQ, or OCRQ with ``params.outgoing`` (RFC 3931 3.4, 7.3.1, 7.4.1).

        Allowed before the tunnel is up: the session waits in wait-tunnel and
        its request goes out when the tunnel is established. Raises
        :class:`~.ids.IdExhausted` at the session limit.
        """
        if self.state in (TunnelState.CLOSING, TunnelState.CLOSED):
            raise LocalProtocolError(
                f"cannot open a session on a tunnel that is {self.state.value}"
            )
        return self.sessions.open(now, params, tunnel_up=self.state is TunnelState.ESTABLISHED)

    def accept_call(self, session_id: int, now: float, params: CallParams | None = None) -> None:
        """Answer a :class:`~.events.CallRequested`: ICRP (LNS) or OCRP + OCCN (LAC).

        ``params`` replace the tunnel's default call parameters for the answer,
        e.g. the cookie length and sublayer of the L2TPv3 pseudowire the call's
        Remote End ID was bound to. With ``params.wait_data_plane`` an incoming call's
        ICRP is held until :meth:`data_plane_ready` (:class:`~.events.DataPlaneWanted`).
        """
        session = self.sessions.require(session_id)
        if params is not None:
            session.params = params
        self.sessions.accept(session, now)

    def data_plane_ready(self, session_id: int, now: float) -> None:
        """Send the ICCN (LAC) or ICRP (LNS) of a call waiting for its data plane
        (:class:`~.events.DataPlaneWanted`).

        RFC 2661 7.4.1: the LAC answers the ICRP with its ICCN once its side of the call
        is connected; here that includes the kernel session and the PPP channel, so the
        LNS's first PPP frame finds them. 7.4.2, the mirror image: the LNS answers an
        accepted ICRQ with its ICRP once its kernel session and PPP channel exist, so the
        LAC's first PPP frame after its ICCN finds them. A no-op once the call has
        closed; API misuse (a call in any other state) raises
        :class:`~.errors.LocalProtocolError`.
        """
        self.sessions.data_plane_ready(self.sessions.require(session_id), now)

    def close_session(
        self,
        session_id: int,
        now: float,
        *,
        result: int = CdnResult.ADMINISTRATIVE,
        error: int | None = None,
        message: str = "",
    ) -> None:
        """Send a CDN and forget the session (RFC 2661 5.6); before the reply, reject the call."""
        session = self.sessions.require(session_id)
        reason = Reason(result=result, error=error, message=message)
        session.handle(SessionInput.CLOSE, now, reason=reason)

    def send_wen(self, session_id: int, errors: CallErrors, now: float) -> None:
        """WAN-Error-Notify for an established session (LAC only, RFC 2661 6.12).

        L2TPv3 (RFC 3931 6.13) keeps WEN for every pseudowire type, with the
        Circuit Errors AVP; either LCCE may send it, as either may hold the
        circuit (RFC 3931 1.3: an LAC's peer may be another LAC).
        """
        self._established(session_id, Role.LAC).send_wen(errors, now)

    def send_sli(self, session_id: int, accm: Accm, now: float) -> None:
        """Set-Link-Info with the PPP ACCM (LNS only, RFC 2661 6.13); L2TPv2 only.

        RFC 3931 has no ACCM AVP (1.1: PPP constructs moved to a companion
        document); an L2TPv3 SLI carries Circuit Status: :meth:`send_circuit_status`.
        """
        if self.config.version != 2:
            raise LocalProtocolError("the ACCM AVP is L2TPv2's; use send_circuit_status")
        self._established(session_id, Role.LNS).send_sli(accm, now)

    def send_circuit_status(
        self, session_id: int, now: float, *, active: bool, new: bool = False
    ) -> None:
        """L2TPv3 SLI with Circuit Status (RFC 3931 6.14, 5.4.5) for an established session.

        ``active`` False tells the peer to stop sending data on the session until
        it is True again; ``new`` is the N bit (a new circuit, not a change).
        """
        if self.config.version != 3:
            raise LocalProtocolError("Circuit Status is an L2TPv3 AVP (RFC 3931 5.4.5)")
        session = self._established(session_id, None)
        assert isinstance(session, Session3)
        session.send_circuit_status(active=active, new=new, now=now)

    # --------------------------------------- listener hooks (TunnelListener only)

    def _lose_tie_breaker(
        self, now: float, *, replaced_by: int | None, description: str = ""
    ) -> list[Session]:
        """We lost the tie: discard the tunnel, hand back its waiting sessions.

        RFC 2661 4.4.3: the loser "MUST silently discard its tunnel"; RFC 3931
        5.4.3 and 7.2: it "MUST discard its control connection" ("Clean up
        losing connection"); neither has the loser send anything for it. An
        L2TPv3 tunnel stays in close-wait, acknowledging only, so that the
        winner's StopCCN for our SCCRQ is acknowledged (RFC 3931 7.1). With
        ``replaced_by=None`` (equal tie breakers: both tunnels go) the
        sessions end with the tunnel instead.
        """
        lookup(self.state, TunnelInput.LOSE_TIE)  # raises in a wrong state, detaching nothing
        waiting = self.sessions.detach_waiting() if replaced_by is not None else []
        self._replaced_by = replaced_by
        self._input(TunnelInput.LOSE_TIE, now, description=description)
        return waiting

    def _evict(self, now: float, description: str) -> None:
        """Drop a half-open tunnel at once, sending nothing (the listener needs its
        place for a new SCCRQ: see ``ListenerConfig.max_pending_tunnels``)."""
        if self.state is TunnelState.CLOSED:
            return
        self._go_down(None, now, by_peer=False, description=description)
        self._set_state(TunnelState.CLOSED)
        self.emit(TunnelReleased(tunnel_id=self.tunnel_id))

    def _adopt_sessions(self, sessions: list[Session], now: float) -> None:
        """Take over sessions from a tunnel that lost a tie breaker (same local IDs)."""
        self.sessions.adopt(sessions, now, tunnel_up=self.state is TunnelState.ESTABLISHED)

    # ---------------------------------------------- SessionHost API (sessions only)
    # The interface a Session and the SessionTable use (see session.SessionHost); not
    # for applications, which drive the tunnel through the entry points above.

    def send_message(self, message: ControlMessage, *, session_id: int, now: float) -> int | None:
        """Encode (hiding AVPs marked hidden) and queue on the transport; returns its Ns
        (None when the transport is already closing and the message is dropped)."""
        if self.transport.state is not TransportState.OPEN:
            self.counters.sends_dropped += 1
            return None
        body = encode_body(
            message,
            version=self.config.version,
            secret=self.config.secret,
            random_bytes=self._random,
            digest_type=self._msgauth.digest_type if self._msgauth is not None else None,
        )
        if not self.profile.session_ids_in_header:
            session_id = 0  # v3: the session IDs travel in AVPs
        ns = self.transport.send(body, session_id=session_id, now=now)
        by_type = self.counters.by_type
        key = -int(message.message_type)  # negative: sent (see TunnelCounters.by_type)
        by_type[key] = by_type.get(key, 0) + 1
        return ns

    def acknowledged(self, ns: int) -> bool:
        """Whether the peer has acknowledged our message ``ns`` (see :meth:`send_message`)."""
        return self.transport.acknowledged(ns)

    def emit(self, event: ControlEvent) -> None:
        self._events.append(event)

    @property
    def hides_avps(self) -> bool:
        return self._hide

    def make_avp(self, attribute: AvpType, value: Any) -> Avp:
        return Avp(
            attribute=attribute, value=value, hidden=self._hide and attribute in HIDE_WHEN_ENABLED
        )

    def session_closed(self, session: Session) -> None:
        self.sessions.release(session)

    # -------------------------------------------------------------- internals

    def _set_state(self, state: TunnelState) -> None:
        old = self.state
        if old is state:
            return
        self.state = state
        observer = self._state_observer
        if observer is not None:
            observer(self, old, state)

    def _established(self, session_id: int, role: Role | None) -> Session:
        """An established session; on L2TPv2 only ``role`` sends the message at hand."""
        if role is not None and self.config.version == 2 and self.config.role is not role:
            raise LocalProtocolError(f"only the {role.name} sends this message")
        session = self.sessions.require(session_id)
        if session.state is not SessionState.ESTABLISHED:
            raise LocalProtocolError(f"session {session_id} is {session.state.value}")
        return session

    def _drain(self, now: float) -> None:
        transport = self.transport
        while (event := transport.next_event()) is not None:
            if isinstance(event, MessageReceived):
                self._on_message(event, now)
            elif isinstance(event, TransportFailed):
                description = event.reason
                if self.counters.bad_digest and self.state in _SETUP_STATES:
                    # Say why a peer that did answer still counts as silent: e.g. one
                    # with no secret answers our authenticated SCCRQ with a plain
                    # StopCCN, which RFC 3931 5.4.1 makes us drop.
                    description += (
                        f" ({self.counters.bad_digest} replies dropped for a missing or"
                        " wrong Message Digest: does the peer use the same secret?)"
                    )
                self._input(TunnelInput.TRANSPORT_FAILED, now, description=description)
            elif isinstance(event, TransportClosed):
                self._input(TunnelInput.TRANSPORT_CLOSED, now, description=event.reason)

    def _parse(self, event: MessageReceived) -> ControlMessage | Reason:
        """Decode a delivered body, or say why it is not acceptable."""
        header = event.header
        preparsed = self._preparsed
        if preparsed is not None and preparsed[0] == header.ns:
            self._preparsed = None
            return preparsed[1]
        body = event.body
        secret = self.config.secret
        try:
            message = parse_body(header, body, secret=secret)
        except CodecError as exc:
            self.counters.undecodable += 1
            if secret is not None:
                try:
                    opaque = parse_body(header, body)
                except CodecError:
                    pass
                else:
                    assert opaque is not None
                    self._learn_peer_id(opaque)
                    self.counters.auth_failures += 1
                    return _stop(
                        StopCcnResult.NOT_AUTHORIZED,
                        message=f"hidden AVP does not unhide with our secret: {exc.reason}",
                    )
            return _stop(StopCcnResult.GENERAL_ERROR, ErrorCode.BAD_LENGTH, exc.reason)
        assert message is not None  # the transport never delivers ZLBs
        return message

    def _learn_peer_id(self, message: ControlMessage) -> None:
        """Address even a refused SCCRQ/SCCRP's StopCCN to the peer's tunnel (RFC 2661 4.4.3)."""
        if self.transport.peer_id == 0 and message.message_type in _SCC:
            v2 = self.profile.session_ids_in_header
            peer_id = message.assigned_tunnel_id if v2 else message.assigned_connection_id
            if peer_id:
                self.transport.set_peer_id(peer_id)

    def _on_message(self, event: MessageReceived, now: float) -> None:
        """Classify a delivered message into a table input (RFC 2661 4.2, 4.4.1, 7.1)."""
        self.counters.messages += 1
        parsed = self._parse(event)
        if isinstance(parsed, Reason):
            self._input(TunnelInput.RECV_BAD, now, parsed)
            return
        message = parsed
        if self.transport.peer_id == 0:  # until the SCCRQ/SCCRP named it
            self._learn_peer_id(message)
        mtype = int(message.message_type)
        by_type = self.counters.by_type
        by_type[mtype] = by_type.get(mtype, 0) + 1
        if message.vendor != VENDOR_IETF or mtype not in _V2_MESSAGES:
            if message.mandatory:
                self.counters.unknown_mandatory += 1
                reason = _stop(
                    StopCcnResult.GENERAL_ERROR,
                    ErrorCode.UNKNOWN_MANDATORY_AVP,
                    f"unknown mandatory {message.name}",
                )
                self._input(TunnelInput.RECV_BAD, now, reason)
            else:
                self.counters.unknown_ignored += 1
                self._input(TunnelInput.RECV_UNKNOWN, now)
            return
        bad: Reason | None = None
        if message.has_unknown_mandatory:
            self.counters.unknown_mandatory += 1
            names = ", ".join(a.name for a in message.unknown_mandatory)
            bad = _stop(
                StopCcnResult.GENERAL_ERROR,
                ErrorCode.UNKNOWN_MANDATORY_AVP,
                f"unknown mandatory AVP in {message.name}: {names}",
            )
        else:
            try:
                validate_message(message, version=self.config.version)
            except MessageValidationError as exc:
                self.counters.invalid += 1
                bad = _stop(StopCcnResult.GENERAL_ERROR, ErrorCode.OUT_OF_RANGE, exc.reason)
        session_message = mtype in SESSION_MESSAGES
        if bad is not None and not session_message:
            self._input(TunnelInput.RECV_BAD, now, bad)
            return
        inp = tunnel_input_for(mtype, session_message=session_message)
        assert inp is not None
        self._input(inp, now, bad, message=message, header_session_id=event.header.session_id)

    def _input(
        self,
        inp: TunnelInput,
        now: float,
        reason: Reason | None = None,
        *,
        message: ControlMessage | None = None,
        header_session_id: int = 0,
        description: str = "",
    ) -> None:
        """Run one transition of the control connection table."""
        transition = lookup(self.state, inp)
        action = transition.action
        if action is TunnelAction.IGNORE:
            return
        if logger.isEnabledFor(logging.DEBUG):
            self._log.debug("%s in %s: %s", inp.value, self.state.value, action.value)
        A = TunnelAction
        try:
            if action is A.DISPATCH:
                assert message is not None
                self.sessions.dispatch(message, header_session_id, reason, now)
                return
            if action is A.DISCARD_LOSER and self.config.version == 3:
                # RFC 3931 5.4.3: the winner SHOULD answer our SCCRQ with a StopCCN, and
                # 7.1 lets reliable delivery run: acknowledge it, retransmit nothing.
                self._go_down(None, now, by_peer=False, description=description or inp.value)
                self._set_state(TunnelState.CLOSING)
                self.transport.begin_close(now, abandon=True)
                return
            if action in (A.ABANDON, A.DISCARD_LOSER, A.FAIL, A.RELEASE):
                if action is not A.RELEASE:
                    self._go_down(None, now, by_peer=False, description=description or inp.value)
                self._set_state(TunnelState.CLOSED)
                self.emit(TunnelReleased(tunnel_id=self.tunnel_id))
                return
            if action is A.SEND_SCCRQ:
                self._send_scc(MessageType.SCCRQ, now)
            elif action is A.ACCEPT_SCCRQ:
                assert message is not None
                self._take_peer(message)
                if self._reject is not None:
                    raise _Refused(self._reject)
                self._send_scc(MessageType.SCCRP, now)
            elif action is A.ACCEPT_SCCRP:
                assert message is not None
                self._take_peer(message)
                self._check_response(message, MessageType.SCCRP)
                self._send_scc(MessageType.SCCCN, now)
            elif action is A.ACCEPT_SCCCN:
                assert message is not None
                self._check_response(message, MessageType.SCCCN)
            elif action is A.STOP:
                self._send_stopccn(reason or _stop(StopCcnResult.GENERAL_REQUEST), now)
            elif action is A.STOP_FSM_ERROR:
                self.counters.fsm_errors += 1
                what = f"{inp.value} in state {self.state.value}"
                self._send_stopccn(_stop(StopCcnResult.FSM_ERROR, message=what), now)
            elif action is A.STOP_BAD:
                self._send_stopccn(reason or _stop(StopCcnResult.GENERAL_ERROR), now)
            elif action is A.PEER_STOPPED:
                assert message is not None
                self._peer_stopped(message, now)
        except _Refused as refused:
            self._send_stopccn(refused.reason, now)
            return
        self._set_state(transition.next_state)
        if transition.next_state in _SETUP_STATES:
            if self._setup_deadline is None:
                self._setup_deadline = now + self.config.setup_timeout
        else:
            self._setup_deadline = None
        if transition.next_state is TunnelState.ESTABLISHED:
            assert self.peer is not None
            self._log.info("tunnel established with %s", self.peer.host_name)
            self.emit(TunnelEstablished(tunnel_id=self.tunnel_id, peer=self.peer))
            self.sessions.tunnel_open(now)

    # -------------------------------------------------- control connection

    def _send_scc(self, message_type: MessageType, now: float) -> None:
        """SCCRQ, SCCRP or SCCCN (RFC 2661 6.1-6.3, RFC 3931 6.1-6.3)."""
        c = self.config
        if c.version == 3:
            auth = self._msgauth
            v3_message = scc_message(
                message_type,
                connection_id=self.tunnel_id,
                host_name=c.host_name,
                router_id=c.router_id,
                pseudowire_capabilities=c.pseudowire_capabilities,
                receive_window=c.transport.receive_window,
                vendor_name=c.vendor_name,
                nonce=auth.nonce_avp() if auth is not None else None,
                tie_breaker=self.tie_breaker,
            )
            self.send_message(v3_message, session_id=0, now=now)
            return
        # Nothing is hidden in SCCRQ and SCCRP: the receiver picks the secret by our
        # Host Name, which it reads from this same message, and xl2tpd unhides AVPs
        # while it parses them, before it has the secret ("Invalid Hidden AVP"). The
        # Challenge is a random number, so showing it costs nothing; the Challenge
        # Response in the SCCCN and every session AVP are still hidden.
        visible = message_type in (MessageType.SCCRQ, MessageType.SCCRP)
        make = _visible_avp if visible else self.make_avp
        avps: list[Avp] = []
        if message_type != MessageType.SCCCN:
            avps += [
                Avp(attribute=AvpType.PROTOCOL_VERSION, value=PROTOCOL_VERSION),
                Avp(attribute=AvpType.HOST_NAME, value=c.host_name),
                make(AvpType.FRAMING_CAPABILITIES, c.framing_capabilities),
                make(AvpType.ASSIGNED_TUNNEL_ID, self.tunnel_id),
                Avp(attribute=AvpType.RECEIVE_WINDOW_SIZE, value=c.transport.receive_window),
            ]
            if c.bearer_capabilities:
                avps.append(make(AvpType.BEARER_CAPABILITIES, c.bearer_capabilities))
            if c.firmware_revision is not None:
                avps.append(make(AvpType.FIRMWARE_REVISION, c.firmware_revision))
            if c.vendor_name is not None:
                avps.append(make(AvpType.VENDOR_NAME, c.vendor_name))
            challenge = self._auth.our_challenge
            if challenge is not None:
                avps.append(make(AvpType.CHALLENGE, challenge))
        if message_type == MessageType.SCCRQ and self.tie_breaker is not None:
            avps.append(Avp(attribute=AvpType.TIE_BREAKER, value=self.tie_breaker))
        response = self._auth.response(message_type)
        if response is not None:
            avps.append(make(AvpType.CHALLENGE_RESPONSE, response))
        message = ControlMessage(message_type=message_type, avps=avps)
        self.send_message(message, session_id=0, now=now)

    def _take_peer(self, message: ControlMessage) -> None:
        """Check and record the peer's SCCRQ/SCCRP fields (RFC 2661 4.4.3, 7.2.1)."""
        if self.config.version == 3:
            info = peer_info(message, authenticating=self._msgauth is not None)
            if isinstance(info, Reason):
                if info.result == StopCcnResult.NOT_AUTHORIZED:
                    self.counters.auth_failures += 1
                raise _Refused(info)
            self.transport.set_peer_id(info.tunnel_id)
            self.transport.set_peer_window(info.receive_window)
            self.peer = info
            return
        version = message.protocol_version
        if version is None or (version.version, version.revision) != (1, 0):
            # RFC 2661 4.4.2: the Error Code carries the highest version we support (1.0).
            raise _Refused(
                Reason(
                    result=StopCcnResult.UNSUPPORTED_VERSION,
                    error=0x0100,
                    message=f"protocol version {version} not supported",
                )
            )
        peer_id = message.assigned_tunnel_id
        window = message.receive_window_size
        if not peer_id or window == 0:
            what = "Assigned Tunnel ID" if not peer_id else "Receive Window Size"
            raise _Refused(_stop(StopCcnResult.GENERAL_ERROR, ErrorCode.OUT_OF_RANGE, f"{what} 0"))
        self.transport.set_peer_id(peer_id)
        if window is not None:
            self.transport.set_peer_window(window)
        framing = message.get(AvpType.FRAMING_CAPABILITIES)
        bearer = message.get(AvpType.BEARER_CAPABILITIES)
        vendor = message.get(AvpType.VENDOR_NAME)
        firmware = message.get(AvpType.FIRMWARE_REVISION)
        self.peer = PeerInfo(
            tunnel_id=peer_id,
            host_name=message.host_name or "",
            framing_capabilities=FramingBits(framing if isinstance(framing, int) else 0),
            bearer_capabilities=BearerBits(bearer if isinstance(bearer, int) else 0),
            receive_window=window if window is not None else 4,
            vendor_name=vendor if isinstance(vendor, str) else None,
            firmware_revision=firmware if isinstance(firmware, int) else None,
        )
        self.log_context["peer_tunnel"] = peer_id
        challenge = message.get(AvpType.CHALLENGE)
        if not self._auth.take_peer_challenge(challenge if isinstance(challenge, bytes) else None):
            self.counters.auth_failures += 1
            raise _Refused(
                _stop(StopCcnResult.NOT_AUTHORIZED, message="challenged, but no secret set")
            )

    def _check_response(self, message: ControlMessage, message_type: MessageType) -> None:
        """RFC 2661 5.1.1: the response to our challenge must match, else no tunnel."""
        response = message.get(AvpType.CHALLENGE_RESPONSE)
        if not self._auth.check(message_type, response if isinstance(response, bytes) else None):
            self.counters.auth_failures += 1
            raise _Refused(
                _stop(StopCcnResult.NOT_AUTHORIZED, message="challenge response does not match")
            )

    def _send_stopccn(self, reason: Reason, now: float) -> None:
        """Send StopCCN, take every session down, enter close-wait (RFC 2661 5.7)."""
        if self._msgauth is not None and self.state is TunnelState.IDLE:
            self._msgauth.unadvertised()  # refusing an SCCRQ: our nonce never went out
        message = ControlMessage(
            message_type=MessageType.STOPCCN,
            avps=[
                self.make_avp(self.profile.tunnel_id_avp, self.tunnel_id),
                Avp(attribute=AvpType.RESULT_CODE, value=reason.to_avp_value()),
            ],
        )
        self.send_message(message, session_id=0, now=now)
        self._log.info("sent StopCCN: %s", reason)
        self._go_down(reason, now, by_peer=False, description=reason.message)
        self._close_wait(now)

    def _peer_stopped(self, message: ControlMessage, now: float) -> None:
        reason = Reason.from_avp_value(message.result_code)
        self._log.info("peer sent StopCCN: %s", reason)
        self._go_down(reason, now, by_peer=True, description=reason.message if reason else "")
        self._close_wait(now)

    def _close_wait(self, now: float) -> None:
        self._set_state(TunnelState.CLOSING)
        if self.transport.state is TransportState.OPEN:
            self.transport.begin_close(now)

    def _go_down(
        self, reason: Reason | None, now: float, *, by_peer: bool, description: str
    ) -> None:
        """Every session ends with the tunnel, without CDNs (RFC 2661 5.7)."""
        self.sessions.tunnel_down(now)
        self.emit(
            TunnelClosed(
                tunnel_id=self.tunnel_id,
                reason=reason,
                by_peer=by_peer,
                description=description,
                replaced_by=self._replaced_by,
            )
        )


_V2_MESSAGES = frozenset(
    int(m) for m in MessageType if m not in (MessageType.ACK, MessageType.FSQ, MessageType.FSR)
)
"""Message types defined for L2TPv2 (RFC 2661 3.2); 20-22 are L2TPv3 / RFC 4951 only."""
_SCC = frozenset({MessageType.SCCRQ, MessageType.SCCRP, MessageType.STOPCCN})
