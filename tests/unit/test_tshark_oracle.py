"""tshark as the oracle: every message type, v2 and v3, UDP and IP, hidden AVPs, digests."""

from __future__ import annotations

from pathlib import Path

import pytest

from l2tp.pcap import ip_frame, udp_frame, write_pcap
from l2tp.protocol import ControlMessage, MessageType, sealed, serialize_message
from tests.helpers import require_tool
from tests.tshark_oracle import assert_matches_tshark, compare_records, run_tshark, sample_messages

NA = bytes(range(16))
NB = bytes(range(100, 116))


def _rand(n: int) -> bytes:
    return bytes((7 * i + 3) & 0xFF for i in range(n))


def _write(path: Path, frames: list[bytes]) -> Path:
    with path.open("wb") as f:
        write_pcap(f, frames)
    return path


@pytest.fixture(scope="module")
def tshark() -> str:
    return require_tool("tshark")


def test_every_message_type_matches_tshark(tshark: str, tmp_path: Path) -> None:
    frames: list[bytes] = []
    expected: list[tuple[int, str]] = []
    for version in (2, 3):
        for hidden in (False, True):
            for index, msg in enumerate(sample_messages(version, hidden=hidden)):
                data = serialize_message(
                    msg,
                    version=version,
                    tunnel_id=0x1234 + index,
                    session_id=index if version == 2 else 0,
                    ns=index,
                    nr=index * 3 % 7,
                    secret=b"s3cret",
                    random_bytes=_rand,
                )
                frames.append(udp_frame(data, sport=1701 + index))
                expected.append((version, msg.name))
    for index, msg in enumerate(sample_messages(3)):
        frames.append(ip_frame(serialize_message(msg, version=3, tunnel_id=index, ip_encap=True)))
        expected.append((3, msg.name))
    records = assert_matches_tshark(tshark, _write(tmp_path / "all.pcap", frames), secret=b"s3cret")
    assert [(r["version"], r["message_type"]) for r in records] == expected
    assert len(records) == len(frames) == 2 * 14 + 2 * 15 + 15


def test_digests_match_tshark(tshark: str, tmp_path: Path) -> None:
    sccrq = ControlMessage.of(
        MessageType.SCCRQ,
        host_name="a",
        router_id=1,
        assigned_control_connection_id=7,
        pseudowire_capabilities_list=(5,),
        control_message_authentication_nonce=NA,
    )
    sccrp = ControlMessage.of(
        MessageType.SCCRP,
        host_name="b",
        router_id=2,
        assigned_control_connection_id=9,
        pseudowire_capabilities_list=(5,),
        control_message_authentication_nonce=NB,
    )
    a, b = "192.0.2.1", "192.0.2.2"
    frames = []
    for ip in (False, True):

        def frame(data: bytes, src: str, dst: str, ip: bool = ip) -> bytes:
            return ip_frame(data, src=src, dst=dst) if ip else udp_frame(data, src=src, dst=dst)

        def msg(m: ControlMessage, cid: int, ns: int, nr: int, dt: int, ip: bool = ip) -> bytes:
            return serialize_message(
                m, version=3, tunnel_id=cid, ns=ns, nr=nr, digest_type=dt, ip_encap=ip
            )

        frames += [
            frame(sealed(msg(sccrq, 0, 0, 0, 0), secret=b"pw", ip_encap=ip), a, b),
            frame(
                sealed(
                    msg(sccrp, 7, 0, 1, 0),
                    secret=b"pw",
                    local_nonce=NB,
                    remote_nonce=NA,
                    ip_encap=ip,
                ),
                b,
                a,
            ),
            frame(
                sealed(
                    msg(ControlMessage(message_type=MessageType.SCCCN), 9, 1, 1, 1),
                    secret=b"pw",
                    local_nonce=NA,
                    remote_nonce=NB,
                    ip_encap=ip,
                ),
                a,
                b,
            ),
            frame(
                sealed(
                    msg(ControlMessage.hello(), 7, 1, 2, 0),
                    secret=b"pw",
                    local_nonce=NB,
                    remote_nonce=NA,
                    ip_encap=ip,
                ),
                b,
                a,
            ),
        ]
    path = _write(tmp_path / "digest.pcap", frames)
    records = assert_matches_tshark(tshark, path, secret=b"pw")
    assert [r["digest"] for r in records] == ["ok"] * 8
    # With the wrong secret tshark flags every digest, and so do we.
    problems = compare_records(records, run_tshark(tshark, path, secret=b"wrong"))
    assert sum("Incorrect Digest" in p for p in problems) == 8


def test_oracle_detects_disagreement(tshark: str, tmp_path: Path) -> None:
    data = serialize_message(
        ControlMessage.of(MessageType.ICRQ, assigned_session_id=5, call_serial_number=9),
        version=2,
        tunnel_id=3,
    )
    path = _write(tmp_path / "one.pcap", [udp_frame(data)])
    from l2tp.cli.decode import decode_capture

    ours = list(decode_capture(path))
    ours[0]["avps"][0]["value"] = 6
    ours[0]["ns"] = 1
    problems = compare_records(ours, run_tshark(tshark, path))
    assert any("assigned_session_id" in p for p in problems)
    assert any("Ns" in p for p in problems)
