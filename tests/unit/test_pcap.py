"""The pcap/pcapng reader: link types, IPv4/IPv6, UDP and IP/115, broken files."""

from __future__ import annotations

import io
import struct

import pytest

from l2tp.pcap import (
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    CaptureError,
    Frame,
    extract_l2tp,
    ip_frame,
    read_frames,
    udp_frame,
    write_pcap,
)

PAYLOAD = b"\xc8\x02\x00\x0c" + bytes(8)


def _pcap(frames: list[bytes], linktype: int = 1) -> io.BytesIO:
    buf = io.BytesIO()
    write_pcap(buf, frames, linktype=linktype)
    buf.seek(0)
    return buf


def test_pcap_round_trip_udp_and_ip() -> None:
    frames = [
        udp_frame(PAYLOAD),
        ip_frame(PAYLOAD),
        udp_frame(PAYLOAD, src="2001:db8::1", dst="2001:db8::2"),
    ]
    got = list(read_frames(_pcap(frames)))
    assert [f.number for f in got] == [1, 2, 3]
    packets = [extract_l2tp(f) for f in got]
    assert all(p is not None and p.payload == PAYLOAD for p in packets)
    assert [p.transport for p in packets if p] == ["udp", "ip", "udp"]
    assert packets[2] is not None and packets[2].src == "2001:db8::1"


def test_other_ports_and_protocols() -> None:
    frame = Frame(
        number=1, timestamp=0, linktype=1, data=udp_frame(PAYLOAD, sport=5000, dport=5001)
    )
    assert extract_l2tp(frame) is None
    packet = extract_l2tp(frame, ports=(5001,))
    assert packet is not None and packet.dport == 5001


def _strip_ethernet(frame: bytes) -> bytes:
    return frame[14:]


def test_cooked_and_raw_link_types() -> None:
    ip = _strip_ethernet(udp_frame(PAYLOAD))
    sll = struct.pack("!HHH8sH", 0, 1, 6, bytes(8), 0x0800) + ip
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 1, 1, 0, 6, bytes(8)) + ip
    for linktype, data in (
        (LINKTYPE_LINUX_SLL, sll),
        (LINKTYPE_LINUX_SLL2, sll2),
        (LINKTYPE_RAW, ip),
    ):
        (frame,) = read_frames(_pcap([data], linktype))
        packet = extract_l2tp(frame)
        assert packet is not None and packet.payload == PAYLOAD, linktype


def test_vlan_tag() -> None:
    eth = udp_frame(PAYLOAD)
    tagged = eth[:12] + b"\x81\x00\x00\x05" + eth[12:]
    packet = extract_l2tp(Frame(number=1, timestamp=0, linktype=1, data=tagged))
    assert packet is not None and packet.payload == PAYLOAD


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def test_pcapng() -> None:
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(1, struct.pack("<HHI", 1, 0, 65535))
    data = udp_frame(PAYLOAD)
    pad = b"\x00" * (-len(data) % 4)
    epb = _block(6, struct.pack("<IIIII", 0, 0, 1_000_000, len(data), len(data)) + data + pad)
    spb = _block(3, struct.pack("<I", len(data)) + data + pad)
    other = _block(5, b"\x00" * 8)  # Interface Statistics: skipped
    frames = list(read_frames(io.BytesIO(shb + idb + epb + other + spb)))
    assert [f.number for f in frames] == [1, 2]
    assert frames[0].timestamp == pytest.approx(1.0)
    assert all(extract_l2tp(f) is not None for f in frames)


@pytest.mark.parametrize("cut", [3, 10, 30, 50])
def test_truncated_file(cut: int) -> None:
    data = _pcap([udp_frame(PAYLOAD)]).getvalue()
    with pytest.raises(CaptureError):
        list(read_frames(io.BytesIO(data[:cut])))


def test_not_a_capture() -> None:
    with pytest.raises(CaptureError, match="not a pcap"):
        list(read_frames(io.BytesIO(b"hello world, not a capture")))


def test_malformed_lower_layers() -> None:
    from l2tp.protocol import CodecError

    for data in (b"\x00" * 10, udp_frame(PAYLOAD)[:30]):
        with pytest.raises(CodecError):
            extract_l2tp(Frame(number=1, timestamp=0, linktype=1, data=data))
