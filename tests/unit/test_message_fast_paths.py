"""The fast paths of :mod:`l2tp.protocol.message`: the header index behind ``get``,
``values_of`` and validation of received messages, and :meth:`ControlMessage.encoded`
for the messages the session code builds. Each against the general path it stands for."""

from __future__ import annotations

from typing import Any

import pytest

from l2tp.protocol import (
    Avp,
    AvpType,
    BearerBits,
    ControlMessage,
    FramingBits,
    LocalProtocolError,
    MessageType,
    MessageValidationError,
    encode_body,
    parse_message,
    serialize_message,
    validate_message,
)
from l2tp.protocol.constants import KeyEnum
from l2tp.protocol.message import parse_body
from l2tp.protocol.session_fsm import SessionInput, SessionState

ICRQ_VALUES: dict[str, Any] = {
    "assigned_session_id": 0x4321,
    "call_serial_number": 17,
    "bearer_type": BearerBits.ANALOG,
    "physical_channel_id": 9,
    "calling_number": "555",
    "called_number": "",
    "sub_address": "x",
}


def pairs(values: dict[str, Any]) -> list[tuple[int, Any]]:
    return [(AvpType[key.upper()], value) for key, value in values.items()]


def test_encoded_is_the_avp_built_message_byte_for_byte() -> None:
    for message_type, values in (
        (MessageType.ICRQ, ICRQ_VALUES),
        (MessageType.ICRP, {"assigned_session_id": 7}),
        (MessageType.ICCN, {"tx_connect_speed": 64000, "framing_type": FramingBits.SYNC}),
        (
            MessageType.ICCN,
            {
                "tx_connect_speed": 1,
                "framing_type": FramingBits.ASYNC,
                "sequencing_required": b"",
                "rx_connect_speed": 1,
            },
        ),
    ):
        fast = ControlMessage.encoded(message_type, pairs(values))
        slow = ControlMessage.of(message_type, **values)
        assert encode_body(fast) == encode_body(slow)
        assert fast == slow  # the AVPs, decoded from the bytes on demand
        for digest_type in (0, 1):  # L2TPv3 authentication: the placeholder spliced in
            assert encode_body(fast, version=3, digest_type=digest_type) == encode_body(
                slow, version=3, digest_type=digest_type
            )
        validate_message(fast, version=2)


def test_encoded_reads_like_a_received_message() -> None:
    fast = ControlMessage.encoded(MessageType.ICRQ, pairs(ICRQ_VALUES))
    assert fast.assigned_session_id == 0x4321
    assert fast.get(AvpType.BEARER_TYPE) is BearerBits.ANALOG
    assert not fast.has_unknown_mandatory
    data = serialize_message(fast, version=2, tunnel_id=3, ns=1, nr=2)
    assert parse_message(data)[1] == fast


def test_encoded_refuses_what_the_avp_path_refuses() -> None:
    with pytest.raises(LocalProtocolError, match="Assigned Session ID"):
        ControlMessage.encoded(MessageType.ICRP, [(AvpType.ASSIGNED_SESSION_ID, 1 << 16)])
    with pytest.raises(LocalProtocolError):
        ControlMessage.encoded(MessageType.ICRQ, [(AvpType.CALLING_NUMBER, 5)])
    for attribute in (AvpType.MESSAGE_TYPE, AvpType.MESSAGE_DIGEST, 0x7FFF):
        with pytest.raises(LocalProtocolError, match="cannot be built"):
            ControlMessage.encoded(MessageType.ICRQ, [(attribute, b"")])


NAMES: dict[int, str] = {AvpType.CALLING_NUMBER: "calling", AvpType.BEARER_TYPE: "bearer"}


def test_values_of_gives_the_first_usable_value_as_get_does() -> None:
    avps = [
        Avp(attribute=AvpType.ASSIGNED_SESSION_ID, value=5),
        Avp(attribute=AvpType.CALLING_NUMBER, value="hidden", hidden=True),
        Avp(attribute=AvpType.CALLING_NUMBER, value="first"),
        Avp(attribute=AvpType.CALLING_NUMBER, value="second"),
        Avp(attribute=AvpType.CALLING_NUMBER, vendor=9, value=b"vendor", mandatory=False),
    ]
    built = ControlMessage(message_type=MessageType.ICRQ, avps=avps)
    body = encode_body(built, version=2, secret=b"s", random_bytes=lambda n: bytes(n))
    header, _ = parse_message(serialize_message(None, version=2, tunnel_id=1))
    wire = parse_body(header, body)  # no secret: the hidden one stays opaque, skipped
    unhidden = parse_body(header, body, secret=b"s")  # AVPs built: the other path
    assert wire is not None and unhidden is not None
    assert wire.values_of(NAMES) == {"calling": "first"}
    assert wire.get(AvpType.CALLING_NUMBER) == "first"
    assert unhidden.values_of(NAMES) == {"calling": "hidden"}
    assert unhidden.get(AvpType.CALLING_NUMBER) == "hidden"
    assert wire.get(AvpType.CALLING_NUMBER, vendor=9) == b"vendor"


def test_received_message_validation_still_names_the_missing_avp() -> None:
    header, _ = parse_message(serialize_message(None, version=2, tunnel_id=1))
    plain = ControlMessage.of(MessageType.ICRQ, call_serial_number=1)
    wire = parse_body(header, encode_body(plain))
    assert wire is not None
    with pytest.raises(MessageValidationError, match="lacks the required Assigned Session ID"):
        validate_message(wire, version=2)
    hidden = ControlMessage(
        message_type=MessageType.ICRQ,
        avps=[
            Avp(attribute=AvpType.ASSIGNED_SESSION_ID, value=5, hidden=True),
            Avp(attribute=AvpType.CALL_SERIAL_NUMBER, value=1),
        ],
    )
    body = encode_body(hidden, version=2, secret=b"s", random_bytes=lambda n: bytes(n))
    opaque = parse_body(header, body)
    assert opaque is not None
    with pytest.raises(MessageValidationError, match="hidden, and no secret"):
        validate_message(opaque, version=2)
    unhidden = parse_body(header, body, secret=b"s")
    assert unhidden is not None
    validate_message(unhidden, version=2)
    vendor_only = ControlMessage(
        message_type=MessageType.ICRP,
        avps=[Avp(attribute=AvpType.ASSIGNED_SESSION_ID, vendor=9, value=b"\x00\x05")],
    )
    wire = parse_body(header, encode_body(vendor_only))
    assert wire is not None
    with pytest.raises(MessageValidationError, match="Assigned Session ID"):
        validate_message(wire, version=2)  # a vendor's AVP of the same number does not count


def test_state_machine_enums_hash_by_identity_and_compare_as_before() -> None:
    assert issubclass(SessionState, KeyEnum)
    table = {(SessionState.IDLE, SessionInput.OPEN): 1}
    assert table[SessionState.IDLE, SessionInput.OPEN] == 1
    others: list[object] = [SessionState.CLOSED, "idle", SessionInput.OPEN]
    assert all(other != SessionState.IDLE for other in others)
    assert SessionState("idle") is SessionState.IDLE
    assert hash(SessionState.IDLE) == object.__hash__(SessionState.IDLE)
