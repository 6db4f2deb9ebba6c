"""Hypothesis: whatever the bytes, the parsers raise nothing but CodecError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2tp.protocol import (
    CodecError,
    ControlMessage,
    parse_avps,
    parse_message,
    serialize_message,
    validate_message,
    verify_message,
)
from tests.tshark_oracle import sample_messages

SEEDS = [
    serialize_message(m, version=v, tunnel_id=3, secret=b"k", random_bytes=lambda n: b"r" * n)
    for v in (2, 3)
    for hidden in (False, True)
    for m in sample_messages(v, hidden=hidden)
]
SECRETS = st.sampled_from([None, b"k", b"other"])


def _exercise(data: bytes, secret: bytes | None, ip_encap: bool = False) -> None:
    try:
        header, msg = parse_message(data, secret=secret, ip_encap=ip_encap)
    except CodecError:
        return
    if msg is not None:
        # Reading every value must not fail either once parse succeeded.
        _ = msg.avps, msg.unknown_mandatory, msg.name
        for avp in msg.avps:
            msg.get(avp.attribute, avp.vendor)
        with contextlib.suppress(CodecError):
            validate_message(msg, version=header.version)
        assert isinstance(msg, ControlMessage)
    verify_message(data, secrets=[b"k"], ip_encap=ip_encap)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), SECRETS, st.booleans())
def test_arbitrary_bytes(data: bytes, secret: bytes | None, ip_encap: bool) -> None:
    _exercise(data, secret, ip_encap)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 400),
    SECRETS,
)
def test_mutated_messages(
    seed: bytes, flips: list[tuple[int, int]], cut: int, secret: bytes | None
) -> None:
    data = bytearray(seed)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    _exercise(bytes(data[: max(cut, 12)] if cut < len(data) else data), secret)


@settings(max_examples=500)
@given(st.binary(max_size=120))
def test_avp_parser(data: bytes) -> None:
    try:
        parse_avps(data, hide_key=b"k")
    except CodecError as exc:
        assert 0 <= exc.offset <= len(data)


@pytest.mark.parametrize("seed", SEEDS[:5])
def test_every_truncation(seed: bytes) -> None:
    for n in range(len(seed)):
        _exercise(seed[:n], b"k")
