"""One session (call) inside a tunnel: its state, IDs, parameters and L2TPv2 messages.

The session runs the tables of :mod:`.session_fsm`; everything it needs from
its tunnel (sending a message, reporting an event, the tunnel's IDs and
capabilities) goes through the narrow :class:`SessionHost` protocol, so the
session logic is testable on its own and the tunnel module stays small.

Header session IDs (RFC 2661 section 3.1): every message we send for a session
carries the *peer's* session ID in the header, 0 until the peer assigned one
(our ICRQ/OCRQ, or a CDN before the reply); the peer addresses us by the
Assigned Session ID AVP we sent. L2TPv3 sessions (:class:`~.v3.Session3`) name
both IDs in AVPs instead; the ID table is in :mod:`.session_table`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from .avp import Avp
from .avps import Accm, CallErrors
from .constants import AvpType, BearerBits, CdnResult, ErrorCode, FramingBits, MessageType
from .events import (
    CallKind,
    CallParams,
    ControlEvent,
    DataPlaneWanted,
    LinkInfoSet,
    Reason,
    SessionClosed,
    SessionEstablished,
    SessionInfo,
    WanErrorNotified,
)
from .message import ControlMessage
from .session_fsm import (
    SessionAction,
    SessionInput,
    SessionState,
    lookup,
)

logger = logging.getLogger(__name__)

_AVP_TYPES: dict[str, AvpType] = {m.name.lower(): m for m in AvpType}
"""``_build`` keyword -> AVP type, so that building a message does no enum name lookups."""


def fsm_error_reason(what: str) -> Reason:
    """CDN for an out-of-sequence message (RFC 2661 7.1, 7.4, 7.5).

    L2TPv2 has no FSM-error CDN code (RFC 3931 adds 16), so Result Code 2
    "reason indicated in error code" is sent without an Error Code, with the
    explanation in the Error Message.
    """
    return Reason(result=CdnResult.GENERAL_ERROR, message=f"FSM error: {what}")


class SessionHost(Protocol):
    """What a session needs from its tunnel."""

    @property
    def tunnel_id(self) -> int: ...

    @property
    def peer_tunnel_id(self) -> int: ...

    @property
    def framing_capabilities(self) -> FramingBits: ...

    @property
    def bearer_capabilities(self) -> BearerBits: ...

    @property
    def log_context(self) -> Mapping[str, object]:
        """The tunnel's log record context (``tunnel``, ``peer`` ...), which sessions extend."""
        ...

    def send_message(
        self, message: ControlMessage, *, session_id: int, now: float
    ) -> int | None: ...

    def acknowledged(self, ns: int) -> bool: ...

    def emit(self, event: ControlEvent) -> None: ...

    @property
    def hides_avps(self) -> bool:
        """Whether :meth:`make_avp` hides any AVP (RFC 2661 4.3); when not, the session
        builds its messages straight into their wire form (ControlMessage.encoded)."""
        ...

    def make_avp(self, attribute: AvpType, value: Any) -> Avp: ...

    def session_closed(self, session: Session) -> None: ...


class _Refused(Exception):
    """A received message is not acceptable; carries the CDN reason (internal only)."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.message)
        self.reason = reason


class Session:
    """One call. Created by the tunnel; driven only through :meth:`handle`.

    The message builders and checks below are L2TPv2's; :class:`~.v3.Session3`
    overrides them for L2TPv3 and keeps the tables and the rest.
    """

    VERSION = 2

    __slots__ = (
        "bad_reason",
        "call_serial",
        "host",
        "info_fields",
        "kind",
        "last_ns",
        "params",
        "peer_session_id",
        "session_id",
        "state",
        "was_established",
    )

    def __init__(
        self,
        host: SessionHost,
        *,
        kind: CallKind,
        session_id: int,
        call_serial: int,
        params: CallParams | None = None,
    ) -> None:
        self.host = host
        self.kind = kind
        self.session_id = session_id
        self.peer_session_id = 0
        self.call_serial = call_serial
        self.params = params if params is not None else CallParams()
        self.state = SessionState.IDLE
        self.was_established = False
        self.bad_reason: Reason | None = None
        """Set by the tunnel before feeding RECV_BAD: what the CDN says."""
        self.info_fields: dict[str, Any] = {}
        self.last_ns: int | None = None
        """Ns of the last message this call sent: its set-up deadline runs from when the
        peer has it (see SessionTable.handle_timer)."""

    @property
    def _log(self) -> logging.LoggerAdapter[logging.Logger]:
        """The session's logger, made on use: most sessions never log (saves time and memory)."""
        return logging.LoggerAdapter(logger, {**self.host.log_context, "session": self.session_id})

    def __repr__(self) -> str:
        return (
            f"<Session {self.session_id} peer={self.peer_session_id} "
            f"{self.kind.value} {self.state.value}>"
        )

    # ------------------------------------------------------------------ info

    @property
    def info(self) -> SessionInfo:
        """A snapshot of the call as both sides described it."""
        p = self.params
        fields: dict[str, Any] = {
            "bearer_type": p.bearer_type,
            "framing_type": p.framing_type,
            "tx_connect_speed": p.tx_connect_speed,
            "rx_connect_speed": p.rx_connect_speed,
            "calling_number": p.calling_number,
            "called_number": p.called_number,
            "sub_address": p.sub_address,
            "physical_channel_id": p.physical_channel_id,
            "sequencing_required": p.sequencing_required,
        }
        if self.VERSION == 2 and self.kind in (CallKind.LNS_OUTGOING, CallKind.LAC_OUTGOING):
            fields["minimum_bps"] = p.minimum_bps  # OCRQ AVPs; L2TPv3 has none
            fields["maximum_bps"] = p.maximum_bps
        fields.update(self.info_fields)
        return SessionInfo(
            tunnel_id=self.host.tunnel_id,
            peer_tunnel_id=self.host.peer_tunnel_id,
            session_id=self.session_id,
            peer_session_id=self.peer_session_id,
            kind=self.kind,
            call_serial=self.call_serial,
            **fields,
        )

    # ------------------------------------------------------------ the machine

    def handle(
        self,
        inp: SessionInput,
        now: float,
        message: ControlMessage | None = None,
        reason: Reason | None = None,
    ) -> None:
        """Feed one input: look up the table, run the action, enter the next state.

        ``reason`` is the Result Code for a local CLOSE. Raises
        :class:`~.errors.LocalProtocolError` only for local inputs that the
        table does not allow; peer inputs always end in a defined state.
        """
        transition = lookup(self.kind, self.state, inp, self.VERSION)
        action = transition.action
        if action is SessionAction.IGNORE:
            return
        if logger.isEnabledFor(logging.DEBUG):
            self._log.debug("%s in %s: %s", inp.value, self.state.value, action.value)
        try:
            self._run(action, inp, now, message, reason)
        except _Refused as refused:
            self._close(refused.reason, now, send_cdn=True, by_peer=False)
            return
        if self.state is SessionState.CLOSED:
            return  # the action closed the session itself
        self.state = transition.next_state
        if self.state is SessionState.ESTABLISHED and not self.was_established:
            self.was_established = True
            self.host.emit(SessionEstablished(tunnel_id=self.host.tunnel_id, info=self.info))
            if logger.isEnabledFor(logging.INFO):
                self._log.info("session established (peer session %d)", self.peer_session_id)

    def _run(
        self,
        action: SessionAction,
        inp: SessionInput,
        now: float,
        message: ControlMessage | None,
        reason: Reason | None,
    ) -> None:
        A = SessionAction
        if action is A.NONE:
            return
        if action is A.SEND_ICRQ:
            self._send(self._icrq(), now)
        elif action is A.SEND_OCRQ:
            self._send(self._ocrq(), now)
        elif action is A.CHECK_REQUEST:
            assert message is not None
            self._check_request(message)
        elif action is A.ACCEPT_CALL:
            if self.params.wait_data_plane:
                self._want_data_plane()
        elif action is A.SEND_ICRP:
            self._send(self._icrp(), now)
        elif action is A.SEND_OCRP:
            self._send(self._ocrp(), now)
        elif action is A.SEND_OCCN:
            self._send(self._connected(MessageType.OCCN), now)
        elif action is A.ACCEPT_ICRP:
            assert message is not None
            self._take_peer_session_id(message)
            if self.params.wait_data_plane:
                self._want_data_plane()
        elif action is A.SEND_ICCN:
            self._send(self._connected(MessageType.ICCN), now)
        elif action is A.ACCEPT_OCRP:
            assert message is not None
            self._take_peer_session_id(message)
            self._note(message, AvpType.PHYSICAL_CHANNEL_ID, "physical_channel_id")
        elif action is A.ACCEPT_CONNECTED:
            assert message is not None
            self._check_connected(message)
        elif action is A.SEND_CDN:
            self._close(reason or _ADMIN, now, send_cdn=True, by_peer=False)
        elif action is A.CDN_FSM_ERROR:
            what = f"{inp.value} in {self.kind.value} state {self.state.value}"
            self._close(self.fsm_error_reason(what), now, send_cdn=True, by_peer=False)
        elif action is A.CDN_BAD:
            self._close(self.bad_reason or _GENERAL, now, send_cdn=True, by_peer=False)
        elif action is A.PEER_DISCONNECT:
            assert message is not None
            peer_reason = Reason.from_avp_value(message.result_code)
            self._close(peer_reason, now, send_cdn=False, by_peer=True)
        elif action is A.DISCARD:
            self._close(None, now, send_cdn=False, by_peer=False, description=inp.value)
        elif action is A.TUNNEL_LOST:
            self._close(None, now, send_cdn=False, by_peer=False, description="tunnel down")
        elif action is A.EMIT_WEN:
            assert message is not None
            errors = message.get(AvpType.CALL_ERRORS)
            if isinstance(errors, CallErrors):
                self.host.emit(
                    WanErrorNotified(
                        tunnel_id=self.host.tunnel_id, session_id=self.session_id, errors=errors
                    )
                )
        elif action is A.EMIT_SLI:
            assert message is not None
            self._on_sli(message)

    def _want_data_plane(self) -> None:
        """Hold our ICCN (a call we placed) or ICRP (a call we answer) and ask the runtime
        for the data plane (:mod:`.session_fsm`, wait-data-plane)."""
        self.host.emit(DataPlaneWanted(tunnel_id=self.host.tunnel_id, info=self.info))

    def _on_sli(self, message: ControlMessage) -> None:
        """SLI on an established session (RFC 2661 6.13): report the PPP ACCM."""
        accm = message.get(AvpType.ACCM)
        if isinstance(accm, Accm):
            self.host.emit(
                LinkInfoSet(tunnel_id=self.host.tunnel_id, session_id=self.session_id, accm=accm)
            )

    # --------------------------------------------------------------- checks

    _PEER_SID_AVP = "Assigned Session ID"
    """The AVP that carries the peer's session ID, as the refusal names it."""

    @staticmethod
    def _peer_sid_of(message: ControlMessage) -> int | None:
        return message.assigned_session_id

    def _take_peer_session_id(self, message: ControlMessage) -> None:
        sid = self._peer_sid_of(message)
        if not sid:
            raise _Refused(
                Reason(
                    result=CdnResult.GENERAL_ERROR,
                    error=ErrorCode.INVALID_SESSION_ID,
                    message=f"{self._PEER_SID_AVP} must be non-zero",
                )
            )
        self.peer_session_id = sid

    def _check_request(self, message: ControlMessage) -> None:
        """ICRQ (7.4.2) or OCRQ (7.5.1): record the call; refuse what we cannot carry."""
        self._take_peer_session_id(message)
        serial = message.get(AvpType.CALL_SERIAL_NUMBER)
        if isinstance(serial, int):
            self.call_serial = serial
        self.info_fields.update(message.values_of(_REQUEST_FIELDS))
        if message.message_type == MessageType.OCRQ:
            bearer = message.get(AvpType.BEARER_TYPE)
            framing = message.get(AvpType.FRAMING_TYPE)
            # RFC 2661 4.4.3: a call asking for what we did not advertise is rejected.
            if isinstance(bearer, int) and bearer & ~int(self.host.bearer_capabilities):
                raise _Refused(
                    Reason(
                        result=CdnResult.PERMANENT_NO_FACILITIES,
                        message=f"bearer type {bearer:#x} not in our capabilities",
                    )
                )
            if isinstance(framing, int) and not int(framing) & int(self.host.framing_capabilities):
                raise _Refused(
                    Reason(
                        result=CdnResult.PERMANENT_NO_FACILITIES,
                        message=f"framing type {framing:#x} not in our capabilities",
                    )
                )

    def _check_connected(self, message: ControlMessage) -> None:
        """ICCN (7.4.2) or OCCN (7.5.2): record speeds and framing."""
        framing = message.get(AvpType.FRAMING_TYPE)
        if isinstance(framing, int) and not int(framing) & int(self.host.framing_capabilities):
            raise _Refused(
                Reason(
                    result=CdnResult.NO_FRAMING,
                    message=f"framing type {framing:#x} not in our capabilities",
                )
            )
        self.info_fields.update(message.values_of(_CONNECTED_FIELDS))
        if AvpType.SEQUENCING_REQUIRED in message:
            self.info_fields["sequencing_required"] = True

    def _note(self, message: ControlMessage, attr: AvpType, name: str) -> None:
        value = message.get(attr)
        if value is not None:
            self.info_fields[name] = value

    # ------------------------------------------------------------- messages

    @staticmethod
    def fsm_error_reason(what: str) -> Reason:
        return fsm_error_reason(what)

    @staticmethod
    def message_ids(message: ControlMessage, header_sid: int) -> tuple[int, int]:
        """(the peer's session ID, ours) as a received session message names them."""
        return message.assigned_session_id or 0, header_sid

    @staticmethod
    def reject_message(
        peer_sid: int, our_sid: int, reason: Reason, host: SessionHost
    ) -> ControlMessage:
        """The CDN for a call we hold no session for."""
        return ControlMessage(
            message_type=MessageType.CDN,
            avps=[
                Avp(attribute=AvpType.RESULT_CODE, value=reason.to_avp_value()),
                host.make_avp(AvpType.ASSIGNED_SESSION_ID, our_sid),
            ],
        )

    def _icrp(self) -> ControlMessage:
        return self._build(MessageType.ICRP, assigned_session_id=self.session_id)

    def _ocrp(self) -> ControlMessage:
        return self._build(
            MessageType.OCRP,
            assigned_session_id=self.session_id,
            physical_channel_id=self.params.physical_channel_id,
        )

    def _cdn(self, reason: Reason) -> ControlMessage:
        return self._build_avps(
            MessageType.CDN,
            result_code=reason.to_avp_value(),
            assigned_session_id=self.session_id,
        )

    def _build(self, message_type: MessageType, **values: Any) -> ControlMessage:
        """The message with an AVP per value that is not None, in keyword order."""
        if self.host.hides_avps:
            return self._build_avps(message_type, **values)
        pairs = [(_AVP_TYPES[key], value) for key, value in values.items() if value is not None]
        return ControlMessage.encoded(message_type, pairs)  # the same bytes, sooner

    def _build_avps(self, message_type: MessageType, **values: Any) -> ControlMessage:
        """:meth:`_build` from :class:`Avp` objects, hidden as the tunnel hides them. Also
        for a CDN whatever the tunnel: its message keeps the Result Code as given (an Error
        Code of None, which the wire has as 0), where an encoded one reads it back."""
        make = self.host.make_avp
        avps = [make(_AVP_TYPES[key], value) for key, value in values.items() if value is not None]
        return ControlMessage(message_type=message_type, avps=avps)

    def _icrq(self) -> ControlMessage:
        p = self.params
        return self._build(
            MessageType.ICRQ,
            assigned_session_id=self.session_id,
            call_serial_number=self.call_serial,
            bearer_type=p.bearer_type,
            physical_channel_id=p.physical_channel_id,
            calling_number=p.calling_number,
            called_number=p.called_number,
            sub_address=p.sub_address,
        )

    def _ocrq(self) -> ControlMessage:
        p = self.params
        return self._build(
            MessageType.OCRQ,
            assigned_session_id=self.session_id,
            call_serial_number=self.call_serial,
            minimum_bps=p.minimum_bps,
            maximum_bps=p.maximum_bps,
            bearer_type=p.bearer_type if p.bearer_type is not None else BearerBits(0),
            framing_type=p.framing_type,
            called_number=p.called_number or "",
            sub_address=p.sub_address,
        )

    def _connected(self, message_type: MessageType) -> ControlMessage:
        """ICCN or OCCN: the same AVPs (RFC 2661 6.9 and 6.10)."""
        p = self.params
        msg = self._build(
            message_type,
            tx_connect_speed=p.tx_connect_speed,
            framing_type=p.framing_type,
            rx_connect_speed=p.rx_connect_speed,
        )
        if p.sequencing_required:
            extra = Avp(attribute=AvpType.SEQUENCING_REQUIRED, value=b"")
            msg = ControlMessage(message_type=message_type, avps=(*msg.avps, extra))
        return msg

    def _send(self, message: ControlMessage, now: float) -> None:
        self.last_ns = self.host.send_message(message, session_id=self.peer_session_id, now=now)

    def send_wen(self, errors: CallErrors, now: float) -> None:
        """WAN-Error-Notify (RFC 2661 6.12), LAC to LNS, established sessions only."""
        self._send(self._build(MessageType.WEN, call_errors=errors), now)

    def send_sli(self, accm: Accm, now: float) -> None:
        """Set-Link-Info (RFC 2661 6.13), LNS to LAC, established sessions only."""
        self._send(self._build(MessageType.SLI, accm=accm), now)

    def _close(
        self,
        reason: Reason | None,
        now: float,
        *,
        send_cdn: bool,
        by_peer: bool,
        description: str = "",
    ) -> None:
        if self.state is SessionState.CLOSED:
            return
        if send_cdn:
            self._send(self._cdn(reason or _ADMIN), now)
        self.state = SessionState.CLOSED
        if logger.isEnabledFor(logging.INFO):
            self._log.info(
                "session closed%s: %s",
                " by peer" if by_peer else "",
                reason if reason is not None else description,
            )
        self.host.emit(
            SessionClosed(
                tunnel_id=self.host.tunnel_id,
                session_id=self.session_id,
                peer_session_id=self.peer_session_id,
                reason=reason,
                by_peer=by_peer,
                was_established=self.was_established,
                description=description or (reason.message if reason else ""),
            )
        )
        self.host.session_closed(self)


_ADMIN = Reason(result=CdnResult.ADMINISTRATIVE)
_GENERAL = Reason(result=CdnResult.GENERAL_ERROR)

_REQUEST_FIELDS: dict[int, str] = {
    AvpType.BEARER_TYPE: "bearer_type",
    AvpType.FRAMING_TYPE: "framing_type",
    AvpType.MINIMUM_BPS: "minimum_bps",
    AvpType.MAXIMUM_BPS: "maximum_bps",
    AvpType.CALLING_NUMBER: "calling_number",
    AvpType.CALLED_NUMBER: "called_number",
    AvpType.SUB_ADDRESS: "sub_address",
    AvpType.PHYSICAL_CHANNEL_ID: "physical_channel_id",
}
"""The ICRQ/OCRQ AVPs recorded in the call's :class:`~.events.SessionInfo`, by field name."""
_CONNECTED_FIELDS: dict[int, str] = {
    AvpType.TX_CONNECT_SPEED: "tx_connect_speed",
    AvpType.RX_CONNECT_SPEED: "rx_connect_speed",
    AvpType.FRAMING_TYPE: "framing_type",
}
"""The ICCN/OCCN AVPs recorded, likewise."""
