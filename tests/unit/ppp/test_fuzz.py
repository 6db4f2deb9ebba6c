"""Hypothesis: malformed and hostile frames never raise out of the receive path."""

from __future__ import annotations

import contextlib
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2tp.ppp import Phase, PppConnection, Protocol
from l2tp.ppp.codec import parse_frame, parse_options, parse_packet, serialize_frame
from l2tp.ppp.secrets import SecretsFileError, parse_secrets
from l2tp.protocol.errors import CodecError

from .pair import PppPair, authenticator_config, peer_config

PROTOCOLS = [int(p) for p in Protocol] + [0x80FD, 0xC025, 0x0001, 0x00FF]

# A frame with a plausible header: known protocol, then a control packet whose Length
# may or may not match, then garbage.
structured = st.builds(
    lambda protocol, code, ident, length, body: serialize_frame(
        protocol, bytes((code, ident)) + length.to_bytes(2, "big") + body
    ),
    st.sampled_from(PROTOCOLS),
    st.integers(0, 15),
    st.integers(0, 255),
    st.integers(0, 70),
    st.binary(max_size=64),
)
frames = st.lists(st.one_of(st.binary(max_size=80), structured), max_size=30)


def check_alive(conn: PppConnection) -> None:
    assert isinstance(conn.phase, Phase)
    conn.frames_to_send(0.0)
    deadline = conn.get_timer()
    if deadline is not None:
        conn.handle_timer(deadline)
    while conn.next_event() is not None:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames, st.booleans())
def test_fresh_connection_survives_anything(frames: list[bytes], peer: bool) -> None:
    config = peer_config(ipv6=True) if peer else authenticator_config(ipv6=True)
    conn = PppConnection(config, random_bytes=random.Random(0).randbytes)
    conn.open(0.0)
    for frame in frames:
        conn.receive_frame(frame, 0.0)
    check_alive(conn)
    assert conn.counters.frames_in == len(frames)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames, st.sampled_from(["a", "p"]))
def test_opened_connection_survives_anything(frames: list[bytes], side: str) -> None:
    pair = PppPair(authenticator_config(ipv6=True), peer_config(ipv6=True))
    pair.open()
    end = pair.a if side == "a" else pair.p
    for frame in frames:
        end.conn.receive_frame(frame, pair.now)
        pair.pump()
    check_alive(end.conn)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_parsers_raise_only_codec_errors(data: bytes) -> None:
    for parse in (parse_frame, parse_packet, parse_options):
        with contextlib.suppress(CodecError):
            parse(data)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=" \t\n\\\"'#*abc01.-", max_size=80))
def test_secrets_parser_raises_only_its_error(text: str) -> None:
    try:
        entries = parse_secrets(text)
    except SecretsFileError:
        return
    assert all(e.client is not None and e.line >= 1 for e in entries)
