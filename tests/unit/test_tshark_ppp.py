"""The PPP-in-L2TP check (tests/tshark_ppp.py) finds what it must: clean frames pass, a
frame whose length lies or whose option overruns fails, control messages are left out."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from l2tp.pcap import udp_frame, write_pcap
from l2tp.ppp.codec import serialize_frame
from l2tp.protocol import ControlMessage, MessageType, serialize_message
from tests.helpers import require_tool
from tests.tshark_ppp import assert_ppp_frames_decode, ppp_frames

LCP, IPCP = 0xC021, 0x8021
LCP_REQUEST = bytes([1, 1, 0, 14, 1, 4, 5, 0xDC, 5, 6, 1, 2, 3, 4])
"""Configure-Request: MRU 1500, Magic-Number 0x01020304."""


def data(ppp: bytes, session_id: int = 7) -> bytes:
    """An L2TPv2 data message (no length, no sequence numbers) carrying ``ppp`` after FF 03,
    as the kernel's PPPoL2TP channel sends it."""
    return struct.pack("!HHH", 0x0002, 5, session_id) + b"\xff\x03" + ppp


def capture(tmp_path: Path, payloads: list[bytes]) -> Path:
    path = tmp_path / "ppp.pcap"
    with path.open("wb") as f:
        write_pcap(f, [udp_frame(p, dport=40000) for p in payloads])
    return path


@pytest.fixture(scope="module")
def tshark() -> str:
    return require_tool("tshark")


def test_clean_frames_pass_and_control_messages_are_left_out(tshark: str, tmp_path: Path) -> None:
    hello = serialize_message(ControlMessage.of(MessageType.HELLO), version=2, tunnel_id=5)
    ipcp = bytes([1, 2, 0, 10, 3, 6, 10, 0, 0, 1])
    path = capture(
        tmp_path,
        [data(serialize_frame(LCP, LCP_REQUEST)), hello, data(serialize_frame(IPCP, ipcp))],
    )
    seen = assert_ppp_frames_decode(tshark, path, expect={"lcp", "ipcp"})
    assert seen == {"ppp": 2, "lcp": 1, "ipcp": 1}
    assert [f.frame for f in ppp_frames(tshark, path)] == [1, 3]


def test_a_missing_protocol_fails(tshark: str, tmp_path: Path) -> None:
    path = capture(tmp_path, [data(serialize_frame(LCP, LCP_REQUEST))])
    with pytest.raises(AssertionError, match="no \\['chap'\\]"):
        assert_ppp_frames_decode(tshark, path, expect={"lcp", "chap"})


@pytest.mark.parametrize(
    ("protocol", "information", "why"),
    [
        (LCP, bytes([1, 1, 0, 40]) + LCP_REQUEST[4:], "Malformed"),  # length past the end
        (IPCP, bytes([1, 2, 0, 10, 3, 9, 10, 0, 0, 1]), "option goes past end"),
    ],
)
def test_a_badly_built_frame_fails(
    tshark: str, tmp_path: Path, protocol: int, information: bytes, why: str
) -> None:
    good = data(serialize_frame(LCP, LCP_REQUEST))
    path = capture(tmp_path, [good, data(serialize_frame(protocol, information))])
    frames = ppp_frames(tshark, path)
    assert [bool(f.problems) for f in frames] == [False, True]
    with pytest.raises(AssertionError, match=why):
        assert_ppp_frames_decode(tshark, path, expect={"lcp"})
