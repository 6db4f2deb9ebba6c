"""L2TPv3 message building and checks (RFC 3931 sections 3, 5.4, 6), on the v2 machinery.

The control connection and session tables are RFC 2661's, which RFC 3931
keeps; what differs is which AVPs carry what:

* SCCRQ/SCCRP name the connection with the Assigned Control Connection ID
  (AVP 61, 32-bit) and add Router ID (60) and the Pseudowire Capabilities List
  (62); with authentication on, a Control Message Authentication Nonce (73).
* Session messages carry Local and Remote Session ID (63, 64; 32-bit) instead of
  a session ID in the header; ICRQ adds Pseudowire Type (68), Remote End ID
  (66) and Circuit Status (71); ICRQ/ICRP the Assigned Cookie (65), L2-Specific
  Sublayer (69) and Data Sequencing (70).
* Either LCCE places a call with ICRQ (:class:`Session3` always uses the
  incoming-call tables; OCRQ is refused with CDN 5).
* A session message in the wrong state gets CDN 16 (FSM error, RFC 3931 5.4.2).
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from .avp import Avp
from .avps import CircuitStatus
from .constants import AvpType, CdnResult, ErrorCode, MessageType, StopCcnResult
from .events import PeerInfo, Reason
from .message import ControlMessage, RandomSource
from .session import Session, SessionHost, _Refused


class Session3Host(SessionHost, Protocol):
    random_bytes: RandomSource

    @property
    def pseudowire_capabilities(self) -> tuple[int, ...]: ...


_UP = CircuitStatus(active=True, new=True)


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

    # ------------------------------------------------------------ builders

    def _icrq(self) -> ControlMessage:
        p = self.params
        self.info_fields.setdefault("pseudowire_type", p.pseudowire_type)
        return self._build(
            MessageType.ICRQ,
            local_session_id=self.session_id,
            remote_session_id=0,
            call_serial_number=self.call_serial,
            pseudowire_type=p.pseudowire_type,
            remote_end_id=p.remote_end_id,
            circuit_status=_UP,
            assigned_cookie=_opt(self._our_cookie()),
            l2_specific_sublayer=p.l2_specific_sublayer,
            data_sequencing=p.data_sequencing,
        )

    def _icrp(self) -> ControlMessage:
        p = self.params
        return self._build(
            MessageType.ICRP,
            local_session_id=self.session_id,
            remote_session_id=self.peer_session_id,
            circuit_status=_UP,
            assigned_cookie=_opt(self._our_cookie()),
            l2_specific_sublayer=p.l2_specific_sublayer,
            data_sequencing=p.data_sequencing,
        )

    def _connected(self, message_type: MessageType) -> ControlMessage:
        return self._build(
            message_type,
            local_session_id=self.session_id,
            remote_session_id=self.peer_session_id,
        )

    def _cdn(self, reason: Reason) -> ControlMessage:
        return self._build(
            MessageType.CDN,
            result_code=reason.to_avp_value(),
            local_session_id=self.session_id,
            remote_session_id=self.peer_session_id,
        )

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

    def _take_peer_session_id(self, message: ControlMessage) -> None:
        sid = message.local_session_id
        if not sid:
            raise _Refused(
                Reason(
                    result=CdnResult.GENERAL_ERROR,
                    error=ErrorCode.INVALID_SESSION_ID,
                    message="Local Session ID must be non-zero",
                )
            )
        self.peer_session_id = sid
        self._take_call_avps(message)

    def _take_call_avps(self, message: ControlMessage) -> None:
        cookie = message.get(AvpType.ASSIGNED_COOKIE)
        if isinstance(cookie, bytes):
            self.info_fields["peer_cookie"] = cookie
        for attr, name in _CALL_FIELDS:
            value = message.get(attr)
            if value is not None:
                self.info_fields[name] = int(value) if isinstance(value, int) else value

    def _check_request(self, message: ControlMessage) -> None:
        """ICRQ (RFC 3931 6.6): record the call; refuse a pseudowire type we lack."""
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
