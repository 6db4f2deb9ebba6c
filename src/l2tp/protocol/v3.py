"""L2TPv3 message building and checks (RFC 3931 sections 3, 5.4, 6), on the v2 machinery.

The control connection and session tables are RFC 2661's, which RFC 3931
keeps (7.2-7.4); what differs is which AVPs carry what:

* SCCRQ/SCCRP name the connection with the Assigned Control Connection ID
  (AVP 61, 32-bit) and add Router ID (60) and the Pseudowire Capabilities List
  (62); with authentication on, a Control Message Authentication Nonce (73).
* Session messages carry Local and Remote Session ID (63, 64; 32-bit) instead of
  a session ID in the header; ICRQ and OCRQ add Pseudowire Type (68), Remote End
  ID (66) and Circuit Status (71); the requests and their replies (ICRP, OCRP)
  the Assigned Cookie (65), L2-Specific Sublayer (69) and Data Sequencing (70).
* Either LCCE places calls, incoming (ICRQ/ICRP/ICCN, RFC 3931 3.4.1, 7.3) or
  outgoing (OCRQ/OCRP/OCCN, 3.4.2, 7.4; ``CallParams.outgoing``), on the v2
  incoming and outgoing tables (:data:`~.session_fsm.V3_SESSION_TABLES`).
* Circuit Status (5.4.5) is advertised in every request and reply, recorded
  from the peer in ``SessionInfo.circuit_active``, and changed later with SLI
  (6.14, :meth:`Session3.send_circuit_status`, :class:`~.events.CircuitStatusChanged`).
* WEN and SLI name both session IDs (6.13, 6.14) and may come from either end.
* A session message in the wrong state gets CDN 16 (FSM error, RFC 3931 5.4.2).
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from .avp import Avp
from .avps import CallErrors, CircuitStatus
from .constants import AvpType, CdnResult, ErrorCode, MessageType, StopCcnResult
from .events import CircuitStatusChanged, PeerInfo, Reason
from .message import ControlMessage, RandomSource
from .session import Session, SessionHost, _Refused


class Session3Host(SessionHost, Protocol):
    random_bytes: RandomSource

    @property
    def pseudowire_capabilities(self) -> tuple[int, ...]: ...


def _opt(value: Any) -> Any:
    """``_build`` leaves out None; empty cookies are left out too."""
    return value if value else None


class Session3(Session):
    """An L2TPv3 session (pseudowire): same tables as v2, v3 AVPs."""

    VERSION = 3
    __slots__ = ("cookie",)

    cookie: bytes | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cookie = None

    def _our_cookie(self) -> bytes:
        """Drawn once, on first use, from the tunnel's random source (RFC 3931 5.4.4)."""
        if self.cookie is None:
            size = self.params.cookie_length
            host = cast(Session3Host, self.host)
            self.cookie = host.random_bytes(size) if size else b""
            self.info_fields["cookie"] = self.cookie
        return self.cookie

    def _want_data_plane(self) -> None:
        """Our cookie is drawn first: a call we answer has not sent its ICRP yet, and the
        kernel session made now must require the cookie that ICRP will carry."""
        self._our_cookie()
        super()._want_data_plane()

    # ------------------------------------------------------------ builders

    def _status(self) -> CircuitStatus:
        """Our Circuit Status in requests and replies: N set, the session is new (5.4.5)."""
        return CircuitStatus(active=self.params.circuit_active, new=True)

    def _request(self, message_type: MessageType) -> ControlMessage:
        """ICRQ (RFC 3931 6.6) or OCRQ (6.9): the same AVPs in both."""
        p = self.params
        self.info_fields.setdefault("pseudowire_type", p.pseudowire_type)
        self.info_fields.setdefault("remote_end_id", p.remote_end_id)
        return self._build(
            message_type,
            local_session_id=self.session_id,
            remote_session_id=0,
            call_serial_number=self.call_serial,
            pseudowire_type=p.pseudowire_type,
            remote_end_id=p.remote_end_id,
            circuit_status=self._status(),
            assigned_cookie=_opt(self._our_cookie()),
            l2_specific_sublayer=p.l2_specific_sublayer,
            data_sequencing=p.data_sequencing,
        )

    def _icrq(self) -> ControlMessage:
        return self._request(MessageType.ICRQ)

    def _ocrq(self) -> ControlMessage:
        return self._request(MessageType.OCRQ)

    def _reply(self, message_type: MessageType, **extra: Any) -> ControlMessage:
        """ICRP (RFC 3931 6.7) or OCRP (6.10)."""
        p = self.params
        return self._build(
            message_type,
            local_session_id=self.session_id,
            remote_session_id=self.peer_session_id,
            circuit_status=self._status(),
            assigned_cookie=_opt(self._our_cookie()),
            l2_specific_sublayer=p.l2_specific_sublayer,
            data_sequencing=p.data_sequencing,
            **extra,
        )

    def _icrp(self) -> ControlMessage:
        return self._reply(MessageType.ICRP)

    def _ocrp(self) -> ControlMessage:
        return self._reply(MessageType.OCRP, physical_channel_id=self.params.physical_channel_id)

    def _connected(self, message_type: MessageType) -> ControlMessage:
        return self._build(
            message_type,
            local_session_id=self.session_id,
            remote_session_id=self.peer_session_id,
        )

    def _cdn(self, reason: Reason) -> ControlMessage:
        return self._build_avps(
            MessageType.CDN,
            result_code=reason.to_avp_value(),
            local_session_id=self.session_id,
            remote_session_id=self.peer_session_id,
        )

    def send_wen(self, errors: CallErrors, now: float) -> None:
        """WEN (RFC 3931 6.13): the Circuit Errors AVP with both session IDs."""
        self._send(self._ids(MessageType.WEN, call_errors=errors), now)

    def send_circuit_status(self, *, active: bool, new: bool, now: float) -> None:
        """SLI with a Circuit Status AVP (RFC 3931 6.14, 5.4.5)."""
        self._send(
            self._ids(MessageType.SLI, circuit_status=CircuitStatus(active=active, new=new)), now
        )

    def _ids(self, message_type: MessageType, **values: Any) -> ControlMessage:
        return self._build(
            message_type,
            local_session_id=self.session_id,
            remote_session_id=self.peer_session_id,
            **values,
        )

    def _on_sli(self, message: ControlMessage) -> None:
        """SLI (RFC 3931 6.14): report a Circuit Status change, and an ACCM if any."""
        status = message.circuit_status
        if status is not None:
            self.info_fields["circuit_active"] = status.active
            self.host.emit(
                CircuitStatusChanged(
                    tunnel_id=self.host.tunnel_id,
                    session_id=self.session_id,
                    active=status.active,
                    new=status.new,
                )
            )
        super()._on_sli(message)

    @staticmethod
    def fsm_error_reason(what: str) -> Reason:
        return Reason(result=CdnResult.FSM_ERROR, message=f"FSM error: {what}")

    @staticmethod
    def message_ids(message: ControlMessage, header_sid: int) -> tuple[int, int]:
        return message.local_session_id or 0, message.remote_session_id or 0

    @staticmethod
    def reject_message(
        peer_sid: int, our_sid: int, reason: Reason, host: SessionHost
    ) -> ControlMessage:
        return ControlMessage(
            message_type=MessageType.CDN,
            avps=[
                Avp(attribute=AvpType.RESULT_CODE, value=reason.to_avp_value()),
                host.make_avp(AvpType.LOCAL_SESSION_ID, our_sid),
                host.make_avp(AvpType.REMOTE_SESSION_ID, peer_sid),
            ],
        )

    # -------------------------------------------------------------- checks

    _PEER_SID_AVP = "Local Session ID"

    @staticmethod
    def _peer_sid_of(message: ControlMessage) -> int | None:
        return message.local_session_id  # RFC 3931 5.4.4: the sender's own ID

    def _take_peer_session_id(self, message: ControlMessage) -> None:
        super()._take_peer_session_id(message)
        self._take_call_avps(message)

    def _take_call_avps(self, message: ControlMessage) -> None:
        cookie = message.get(AvpType.ASSIGNED_COOKIE)
        if isinstance(cookie, bytes):
            self.info_fields["peer_cookie"] = cookie
        status = message.circuit_status
        if status is not None:
            self.info_fields["circuit_active"] = status.active
        for attr, name in _CALL_FIELDS:
            value = message.get(attr)
            if value is not None:
                self.info_fields[name] = int(value) if isinstance(value, int) else value

    def _check_request(self, message: ControlMessage) -> None:
        """ICRQ (RFC 3931 6.6) or OCRQ (6.9): record the call; refuse a PW type we lack."""
        self._take_peer_session_id(message)
        serial = message.get(AvpType.CALL_SERIAL_NUMBER)
        if isinstance(serial, int):
            self.call_serial = serial
        pw_type = message.pseudowire_type
        capabilities = cast(Session3Host, self.host).pseudowire_capabilities
        if pw_type is None or pw_type not in capabilities:
            raise _Refused(
                Reason(
                    result=CdnResult.UNSUPPORTED_PW_TYPE,
                    message=f"pseudowire type {pw_type} not in our capabilities",
                )
            )
        self.info_fields["pseudowire_type"] = int(pw_type)
        remote_end = message.get(AvpType.REMOTE_END_ID)
        if isinstance(remote_end, str):
            self.info_fields["remote_end_id"] = remote_end

    def _check_connected(self, message: ControlMessage) -> None:
        self._take_call_avps(message)


_CALL_FIELDS = (
    (AvpType.L2_SPECIFIC_SUBLAYER, "l2_specific_sublayer"),
    (AvpType.DATA_SEQUENCING, "data_sequencing"),
)


# ----------------------------------------------------------- control connection


def scc_message(
    message_type: MessageType,
    *,
    connection_id: int,
    host_name: str,
    router_id: int,
    pseudowire_capabilities: tuple[int, ...],
    receive_window: int,
    vendor_name: str | None,
    nonce: Avp | None,
    tie_breaker: bytes | None,
) -> ControlMessage:
    """SCCRQ / SCCRP (RFC 3931 6.1, 6.2) or SCCCN (6.3, no AVPs but the digest)."""
    avps: list[Avp] = []
    if message_type != MessageType.SCCCN:
        avps += [
            Avp(attribute=AvpType.HOST_NAME, value=host_name),
            Avp(attribute=AvpType.ROUTER_ID, value=router_id),
            Avp(attribute=AvpType.ASSIGNED_CONTROL_CONNECTION_ID, value=connection_id),
            Avp(attribute=AvpType.PSEUDOWIRE_CAPABILITIES_LIST, value=pseudowire_capabilities),
            Avp(attribute=AvpType.RECEIVE_WINDOW_SIZE, value=receive_window),
        ]
        if vendor_name is not None:
            avps.append(Avp(attribute=AvpType.VENDOR_NAME, value=vendor_name))
        if nonce is not None:
            avps.append(nonce)
    if message_type == MessageType.SCCRQ and tie_breaker is not None:
        avps.append(Avp(attribute=AvpType.TIE_BREAKER, value=tie_breaker))
    return ControlMessage(message_type=message_type, avps=avps)


def peer_info(message: ControlMessage, *, authenticating: bool) -> PeerInfo | Reason:
    """Check the peer's v3 SCCRQ/SCCRP (RFC 3931 5.4.3, 4.3); a Reason refuses it."""
    if (message.nonce is not None) != authenticating:
        what = (
            "peer does not authenticate its control messages"
            if authenticating
            else "peer requires control message authentication; no secret set"
        )
        return Reason(result=StopCcnResult.NOT_AUTHORIZED, message=what)
    peer_id = message.assigned_connection_id
    window = message.receive_window_size
    if not peer_id or window == 0:
        what = "Assigned Control Connection ID" if not peer_id else "Receive Window Size"
        return Reason(
            result=StopCcnResult.GENERAL_ERROR, error=ErrorCode.OUT_OF_RANGE, message=f"{what} 0"
        )
    caps = message.get(AvpType.PSEUDOWIRE_CAPABILITIES_LIST)
    router = message.get(AvpType.ROUTER_ID)
    vendor = message.get(AvpType.VENDOR_NAME)
    return PeerInfo(
        tunnel_id=peer_id,
        host_name=message.host_name or "",
        protocol_version=(3, 0),
        receive_window=window if window is not None else 4,
        vendor_name=vendor if isinstance(vendor, str) else None,
        router_id=router if isinstance(router, int) else None,
        pseudowire_capabilities=tuple(int(c) for c in caps) if isinstance(caps, tuple) else (),
    )
