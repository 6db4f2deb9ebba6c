"""Per-message AVP specs: which AVPs each control message must and may carry.

One table per protocol version, transcribed from RFC 2661 section 6 (L2TPv2)
and RFC 3931 section 6 (L2TPv3, plus RFC 4951 for the failover messages). The
versions differ in more than numbering: a v3 SCCRQ identifies the connection
with Assigned Control Connection ID (not Assigned Tunnel ID) and needs a Router
ID and Pseudowire Capabilities List; v3 session messages carry Local and Remote
Session IDs, Pseudowire Type and Circuit Status instead of v2's Assigned
Session ID, bearer and framing AVPs.

:func:`validate_message` checks a parsed message against its row and raises
:class:`MessageValidationError` (a :class:`CodecError`, so receive paths that
already count codec errors count these too) naming the missing AVP.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from .avps import avp_name
from .constants import VENDOR_IETF, AvpType, MessageType
from .errors import CodecError

A = AvpType
M = MessageType


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """The AVPs a message type MUST carry (``required``) and MAY carry (``allowed``)."""

    required: frozenset[int]
    allowed: frozenset[int]

    @property
    def permitted(self) -> frozenset[int]:
        return self.required | self.allowed


def _spec(required: tuple[AvpType, ...], allowed: tuple[AvpType, ...] = ()) -> MessageSpec:
    return MessageSpec(frozenset(int(a) for a in required), frozenset(int(a) for a in allowed))


_V2_ANY = (A.RANDOM_VECTOR,)
_V3_ANY = (A.RANDOM_VECTOR, A.MESSAGE_DIGEST)

V2_SPECS: dict[int, MessageSpec] = {
    M.SCCRQ: _spec(
        (A.PROTOCOL_VERSION, A.HOST_NAME, A.FRAMING_CAPABILITIES, A.ASSIGNED_TUNNEL_ID),
        (
            A.BEARER_CAPABILITIES,
            A.RECEIVE_WINDOW_SIZE,
            A.CHALLENGE,
            A.TIE_BREAKER,
            A.FIRMWARE_REVISION,
            A.VENDOR_NAME,
            *_V2_ANY,
        ),
    ),
    M.SCCRP: _spec(
        (A.PROTOCOL_VERSION, A.FRAMING_CAPABILITIES, A.HOST_NAME, A.ASSIGNED_TUNNEL_ID),
        (
            A.BEARER_CAPABILITIES,
            A.FIRMWARE_REVISION,
            A.VENDOR_NAME,
            A.RECEIVE_WINDOW_SIZE,
            A.CHALLENGE,
            A.CHALLENGE_RESPONSE,
            *_V2_ANY,
        ),
    ),
    M.SCCCN: _spec((), (A.CHALLENGE_RESPONSE, *_V2_ANY)),
    M.STOPCCN: _spec((A.ASSIGNED_TUNNEL_ID, A.RESULT_CODE), _V2_ANY),
    M.HELLO: _spec((), _V2_ANY),
    M.ICRQ: _spec(
        (A.ASSIGNED_SESSION_ID, A.CALL_SERIAL_NUMBER),
        (
            A.BEARER_TYPE,
            A.PHYSICAL_CHANNEL_ID,
            A.CALLING_NUMBER,
            A.CALLED_NUMBER,
            A.SUB_ADDRESS,
            *_V2_ANY,
        ),
    ),
    M.ICRP: _spec((A.ASSIGNED_SESSION_ID,), _V2_ANY),
    M.ICCN: _spec(
        (A.TX_CONNECT_SPEED, A.FRAMING_TYPE),
        (
            A.INITIAL_RECEIVED_LCP_CONFREQ,
            A.LAST_SENT_LCP_CONFREQ,
            A.LAST_RECEIVED_LCP_CONFREQ,
            A.PROXY_AUTHEN_TYPE,
            A.PROXY_AUTHEN_NAME,
            A.PROXY_AUTHEN_CHALLENGE,
            A.PROXY_AUTHEN_ID,
            A.PROXY_AUTHEN_RESPONSE,
            A.PRIVATE_GROUP_ID,
            A.RX_CONNECT_SPEED,
            A.SEQUENCING_REQUIRED,
            *_V2_ANY,
        ),
    ),
    M.OCRQ: _spec(
        (
            A.ASSIGNED_SESSION_ID,
            A.CALL_SERIAL_NUMBER,
            A.MINIMUM_BPS,
            A.MAXIMUM_BPS,
            A.BEARER_TYPE,
            A.FRAMING_TYPE,
            A.CALLED_NUMBER,
        ),
        (A.SUB_ADDRESS, *_V2_ANY),
    ),
    M.OCRP: _spec((A.ASSIGNED_SESSION_ID,), (A.PHYSICAL_CHANNEL_ID, *_V2_ANY)),
    M.OCCN: _spec(
        (A.TX_CONNECT_SPEED, A.FRAMING_TYPE),
        (A.RX_CONNECT_SPEED, A.SEQUENCING_REQUIRED, *_V2_ANY),
    ),
    M.CDN: _spec(
        (A.RESULT_CODE, A.ASSIGNED_SESSION_ID),
        (A.Q931_CAUSE_CODE, A.PPP_DISCONNECT_CAUSE_CODE, *_V2_ANY),
    ),
    M.WEN: _spec((A.CALL_ERRORS,), _V2_ANY),
    M.SLI: _spec((A.ACCM,), _V2_ANY),
}
"""RFC 2661 section 6."""

_V3_SCC_OPTIONAL = (
    A.CONTROL_MESSAGE_AUTHENTICATION_NONCE,
    A.TIE_BREAKER,
    A.VENDOR_NAME,
    A.RECEIVE_WINDOW_SIZE,
    A.PREFERRED_LANGUAGE,
    A.FAILOVER_CAPABILITY,
    # Tolerated for peers that also speak v2 (RFC 3931 section 5.4.3 keeps them).
    A.PROTOCOL_VERSION,
    A.FRAMING_CAPABILITIES,
    A.BEARER_CAPABILITIES,
    A.FIRMWARE_REVISION,
    *_V3_ANY,
)
_V3_SESSION_OPTIONAL = (
    A.ASSIGNED_COOKIE,
    A.L2_SPECIFIC_SUBLAYER,
    A.DATA_SEQUENCING,
    A.TX_CONNECT_SPEED_BPS,
    A.RX_CONNECT_SPEED_BPS,
    A.PHYSICAL_CHANNEL_ID,
    *_V3_ANY,
)
_V3_IDS = (A.LOCAL_SESSION_ID, A.REMOTE_SESSION_ID)

V3_SPECS: dict[int, MessageSpec] = {
    M.SCCRQ: _spec(
        (
            A.HOST_NAME,
            A.ROUTER_ID,
            A.ASSIGNED_CONTROL_CONNECTION_ID,
            A.PSEUDOWIRE_CAPABILITIES_LIST,
        ),
        _V3_SCC_OPTIONAL,
    ),
    M.SCCRP: _spec(
        (
            A.HOST_NAME,
            A.ROUTER_ID,
            A.ASSIGNED_CONTROL_CONNECTION_ID,
            A.PSEUDOWIRE_CAPABILITIES_LIST,
        ),
        _V3_SCC_OPTIONAL,
    ),
    M.SCCCN: _spec((), _V3_ANY),
    M.STOPCCN: _spec((A.RESULT_CODE,), (A.ASSIGNED_CONTROL_CONNECTION_ID, *_V3_ANY)),
    M.HELLO: _spec((), _V3_ANY),
    M.ACK: _spec((), _V3_ANY),
    M.ICRQ: _spec(
        (*_V3_IDS, A.CALL_SERIAL_NUMBER, A.PSEUDOWIRE_TYPE, A.REMOTE_END_ID, A.CIRCUIT_STATUS),
        (A.TIE_BREAKER, *_V3_SESSION_OPTIONAL),
    ),
    M.ICRP: _spec((*_V3_IDS, A.CIRCUIT_STATUS), _V3_SESSION_OPTIONAL),
    M.ICCN: _spec(
        _V3_IDS,
        (
            A.L2_SPECIFIC_SUBLAYER,
            A.DATA_SEQUENCING,
            A.TX_CONNECT_SPEED_BPS,
            A.RX_CONNECT_SPEED_BPS,
            A.CIRCUIT_STATUS,
            *_V3_ANY,
        ),
    ),
    M.OCRQ: _spec(
        (*_V3_IDS, A.CALL_SERIAL_NUMBER, A.PSEUDOWIRE_TYPE, A.REMOTE_END_ID, A.CIRCUIT_STATUS),
        # 6.9 lists no Physical Channel ID (5.4.4: "ICRQ, ICRP, OCRP" only).
        (
            A.ASSIGNED_COOKIE,
            A.TX_CONNECT_SPEED_BPS,
            A.RX_CONNECT_SPEED_BPS,
            A.TIE_BREAKER,
            A.L2_SPECIFIC_SUBLAYER,
            A.DATA_SEQUENCING,
            *_V3_ANY,
        ),
    ),
    M.OCRP: _spec((*_V3_IDS, A.CIRCUIT_STATUS), _V3_SESSION_OPTIONAL),
    M.OCCN: _spec(
        _V3_IDS,
        (
            A.L2_SPECIFIC_SUBLAYER,
            A.DATA_SEQUENCING,
            A.TX_CONNECT_SPEED_BPS,
            A.RX_CONNECT_SPEED_BPS,
            A.CIRCUIT_STATUS,
            *_V3_ANY,
        ),
    ),
    M.CDN: _spec((A.RESULT_CODE, *_V3_IDS), (A.Q931_CAUSE_CODE, *_V3_ANY)),
    M.WEN: _spec((*_V3_IDS, A.CALL_ERRORS), _V3_ANY),
    M.SLI: _spec(_V3_IDS, (A.CIRCUIT_STATUS, *_V3_ANY)),  # 6.14: Circuit Status MAY
    M.FSQ: _spec((A.FAILOVER_SESSION_STATE,), _V3_ANY),
    M.FSR: _spec((A.FAILOVER_SESSION_STATE,), _V3_ANY),
}
"""RFC 3931 section 6 (and RFC 4951 section 5 for FSQ/FSR)."""

del A, M


def message_spec(message_type: int, version: int) -> MessageSpec | None:
    """The spec for ``message_type`` in L2TP ``version``, None if not defined there."""
    table = V3_SPECS if version == 3 else V2_SPECS
    return table.get(message_type)


def required_present(message_type: int, version: int, present: AbstractSet[int]) -> bool:
    """Whether ``present`` holds every AVP ``message_type`` requires in ``version``.

    The receive path's question for nearly every message: one subset test, with no
    name formatting or sorting (:func:`check_avps` does those when the answer is no).
    """
    spec = (V3_SPECS if version == 3 else V2_SPECS).get(message_type)
    return spec is not None and spec.required <= present


class MessageValidationError(CodecError):
    """A well-formed message that breaks its spec: a required AVP is absent, or
    (strict mode) an AVP appears that the message may not carry.

    ``attribute`` names the AVP concerned and ``missing`` says which case it is,
    so the receive path can answer with the right Result/Error Code.
    """

    def __init__(self, reason: str, *, attribute: int | None, missing: bool) -> None:
        super().__init__(reason, 0)
        self.attribute = attribute
        self.missing = missing


def check_avps(
    message_type: int,
    version: int,
    present: set[int],
    *,
    opaque: set[int] | None = None,
    strict: bool = False,
) -> None:
    """Validate the set of IETF attribute types ``present`` against the spec.

    ``opaque`` lists attributes present only in hidden form that could not be
    unhidden: they count as missing, with a reason that says why.
    """
    spec = message_spec(message_type, version)
    if spec is not None and not strict and spec.required <= present:
        return
    name = (
        getattr(MessageType(message_type), "name", str(message_type))
        if (message_type in MessageType._value2member_map_)
        else str(message_type)
    )
    if spec is None:
        raise MessageValidationError(
            f"message type {name} is not defined in L2TPv{version}", attribute=None, missing=False
        )
    for attr in sorted(spec.required):
        if attr not in present:
            why = " (hidden, and no secret to unhide it)" if opaque and attr in opaque else ""
            raise MessageValidationError(
                f"{name} lacks the required {avp_name(attr, VENDOR_IETF)} AVP{why}",
                attribute=attr,
                missing=True,
            )
    if strict:
        permitted = spec.permitted
        for attr in sorted(present):
            if attr not in permitted and attr != AvpType.MESSAGE_TYPE:
                raise MessageValidationError(
                    f"{name} may not carry the {avp_name(attr, VENDOR_IETF)} AVP in L2TPv{version}",
                    attribute=attr,
                    missing=False,
                )
