"""A small pcap / pcapng reader and writer, just enough to find L2TP in captures.

Reading: classic pcap (both byte orders, micro- and nanosecond magic) and
pcapng (Section Header, Interface Description, Enhanced / Simple / obsolete
Packet blocks; other blocks skipped). Link types: Ethernet (with 802.1Q/802.1ad
tags), Linux cooked SLL and SLL2, raw IP (101, 12, 14, 228, 229) and BSD null.
Network layers: IPv4 (non-first fragments skipped) and IPv6 (extension headers
walked). :func:`extract_l2tp` returns the L2TP payload of UDP datagrams on the
given ports and of IP protocol 115 packets.

Writing (:func:`write_pcap`, :func:`udp_frame`, :func:`ip_frame`) exists so
that tests can hand a capture to tshark; it writes Ethernet frames.

No third-party dependency: the ``l2tp decode`` tool must work on a bare host.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .protocol.errors import CodecError

L2TP_PORT = 1701
IPPROTO_L2TP = 115
IPPROTO_UDP = 17

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
_RAW_LINKTYPES = {LINKTYPE_RAW, 12, 14}


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One captured frame: 1-based number, time in seconds, link type and bytes."""

    number: int
    timestamp: float
    linktype: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class L2tpPacket:
    """An L2TP datagram found in a frame; ``transport`` is "udp" or "ip"."""

    frame: int
    src: str
    dst: str
    transport: str
    sport: int
    dport: int
    payload: bytes


class CaptureError(CodecError):
    """The capture file itself is malformed or truncated."""


def read_frames(stream: BinaryIO) -> Iterator[Frame]:
    """Yield every frame of a pcap or pcapng stream; raise CaptureError on a bad file.

    Frames already yielded stay valid when the file turns out truncated.
    """
    magic = stream.read(4)
    if len(magic) < 4:
        raise CaptureError("file too short for a capture header", 0)
    if magic == b"\x0a\x0d\x0d\x0a":
        yield from _read_pcapng(stream, magic)
    else:
        yield from _read_pcap(stream, magic)


def _read_pcap(stream: BinaryIO, magic: bytes) -> Iterator[Frame]:
    formats = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
        b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
        b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }
    if magic not in formats:
        raise CaptureError(f"not a pcap or pcapng file (magic {magic.hex()})", 0)
    endian, scale = formats[magic]
    rest = stream.read(20)
    if len(rest) < 20:
        raise CaptureError("truncated pcap file header", 4)
    linktype = struct.unpack(endian + "HHiIII", rest)[5] & 0x0FFFFFFF
    record = struct.Struct(endian + "IIII")
    number = 0
    offset = 24
    while True:
        head = stream.read(16)
        if not head:
            return
        if len(head) < 16:
            raise CaptureError("truncated pcap record header", offset)
        sec, frac, caplen, _ = record.unpack(head)
        if caplen > 0x4000000:
            raise CaptureError(f"implausible captured length {caplen}", offset)
        data = stream.read(caplen)
        if len(data) < caplen:
            raise CaptureError("truncated pcap record", offset)
        number += 1
        offset += 16 + caplen
        yield Frame(number=number, timestamp=sec + frac * scale, linktype=linktype, data=data)


def _read_pcapng(stream: BinaryIO, first: bytes) -> Iterator[Frame]:
    endian = "<"
    interfaces: list[tuple[int, float]] = []
    number = 0
    offset = 0
    block_type_bytes = first
    while True:
        head = stream.read(4)
        if len(head) < 4:
            raise CaptureError("truncated pcapng block header", offset)
        if block_type_bytes == b"\x0a\x0d\x0d\x0a":
            bom = stream.read(4)
            if bom == b"\x1a\x2b\x3c\x4d":
                endian = ">"
            elif bom == b"\x4d\x3c\x2b\x1a":
                endian = "<"
            else:
                raise CaptureError("bad pcapng byte-order magic", offset + 8)
            (total,) = struct.unpack(endian + "I", head)
            if total < 28 or total % 4:
                raise CaptureError(f"bad section header length {total}", offset)
            body = bom + stream.read(total - 16)
            interfaces = []
        else:
            btype = struct.unpack(endian + "I", block_type_bytes)[0]
            (total,) = struct.unpack(endian + "I", head)
            if total < 12 or total % 4 or total > 0x4000000:
                raise CaptureError(f"bad pcapng block length {total}", offset)
            body = stream.read(total - 12)
            if len(body) < total - 12:
                raise CaptureError("truncated pcapng block", offset)
            frame = _pcapng_block(btype, body, endian, interfaces, number + 1, offset)
            if frame is not None:
                number += 1
                yield frame
        trailer = stream.read(4)
        if len(trailer) < 4:
            raise CaptureError("truncated pcapng block trailer", offset)
        offset += total
        block_type_bytes = stream.read(4)
        if not block_type_bytes:
            return
        if len(block_type_bytes) < 4:
            raise CaptureError("truncated pcapng block type", offset)


def _pcapng_block(
    btype: int,
    body: bytes,
    endian: str,
    interfaces: list[tuple[int, float]],
    number: int,
    offset: int,
) -> Frame | None:
    if btype == 1:  # Interface Description Block
        if len(body) < 8:
            raise CaptureError("short interface description block", offset)
        linktype = struct.unpack_from(endian + "H", body)[0]
        scale = 1e-6
        pos = 8
        while pos + 4 <= len(body):
            code, length = struct.unpack_from(endian + "HH", body, pos)
            if code == 0:
                break
            if code == 9 and length >= 1:  # if_tsresol
                res = body[pos + 4]
                scale = 2.0 ** -(res & 0x7F) if res & 0x80 else 10.0**-res
            pos += 4 + (length + 3) // 4 * 4
        interfaces.append((linktype, scale))
        return None
    if btype in (6, 2):  # Enhanced Packet Block, obsolete Packet Block
        if len(body) < 20:
            raise CaptureError("short packet block", offset)
        if btype == 6:
            iface, hi, lo, caplen, _ = struct.unpack_from(endian + "IIIII", body)
        else:
            iface, _, hi, lo, caplen, _ = struct.unpack_from(endian + "HHIIII", body)
        if iface >= len(interfaces):
            raise CaptureError(f"packet on undeclared interface {iface}", offset)
        if 20 + caplen > len(body):
            raise CaptureError("packet data overruns its block", offset)
        linktype, scale = interfaces[iface]
        return Frame(
            number=number,
            timestamp=((hi << 32) | lo) * scale,
            linktype=linktype,
            data=body[20 : 20 + caplen],
        )
    if btype == 3:  # Simple Packet Block
        if not interfaces or len(body) < 4:
            raise CaptureError("simple packet block without interface", offset)
        (origlen,) = struct.unpack_from(endian + "I", body)
        data = body[4 : 4 + origlen]
        return Frame(number=number, timestamp=0.0, linktype=interfaces[0][0], data=data)
    return None


def _network_layer(linktype: int, data: bytes) -> tuple[int, bytes] | None:
    """Return (ethertype, network bytes) or None for frames that carry no IP."""
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            raise CodecError("Ethernet frame shorter than its header", len(data))
        pos = 12
        ethertype = (data[pos] << 8) | data[pos + 1]
        while ethertype in (0x8100, 0x88A8, 0x9100):
            pos += 4
            if pos + 2 > len(data):
                raise CodecError("truncated VLAN tag", pos)
            ethertype = (data[pos] << 8) | data[pos + 1]
        return ethertype, data[pos + 2 :]
    if linktype == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            raise CodecError("SLL header truncated", len(data))
        return (data[14] << 8) | data[15], data[16:]
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(data) < 20:
            raise CodecError("SLL2 header truncated", len(data))
        return (data[0] << 8) | data[1], data[20:]
    if linktype in _RAW_LINKTYPES or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not data:
            return None
        return (0x0800 if data[0] >> 4 == 4 else 0x86DD), data
    if linktype == LINKTYPE_NULL:
        if len(data) < 4:
            raise CodecError("null/loopback header truncated", len(data))
        family = max(struct.unpack("<I", data[:4])[0], struct.unpack(">I", data[:4])[0])
        return (0x0800 if family == 2 else 0x86DD), data[4:]
    return None


def _transport(ethertype: int, data: bytes) -> tuple[str, str, int, bytes] | None:
    """Return (src, dst, protocol, transport payload) of an IP packet, None if not IP."""
    if ethertype == 0x0800:
        if len(data) < 20 or data[0] >> 4 != 4:
            raise CodecError("truncated or non-v4 IPv4 header", 0)
        ihl = (data[0] & 0x0F) * 4
        total = (data[2] << 8) | data[3]
        if ihl < 20 or len(data) < ihl:
            raise CodecError(f"bad IPv4 header length {ihl}", 0)
        if ((data[6] & 0x1F) << 8) | data[7]:
            return None  # a non-first fragment
        end = min(len(data), total) if total >= ihl else len(data)
        src = str(ipaddress.IPv4Address(data[12:16]))
        dst = str(ipaddress.IPv4Address(data[16:20]))
        return src, dst, data[9], data[ihl:end]
    if ethertype == 0x86DD:
        if len(data) < 40:
            raise CodecError("truncated IPv6 header", len(data))
        plen = (data[4] << 8) | data[5]
        nxt = data[6]
        src = str(ipaddress.IPv6Address(data[8:24]))
        dst = str(ipaddress.IPv6Address(data[24:40]))
        pos = 40
        end = min(len(data), 40 + plen) if plen else len(data)
        while nxt in (0, 43, 44, 60):
            if pos + 8 > end:
                raise CodecError("truncated IPv6 extension header", pos)
            if nxt == 44 and ((data[pos + 2] << 8) | data[pos + 3]) & 0xFFF8:
                return None  # a non-first fragment
            hdr_len = 8 if nxt == 44 else (data[pos + 1] + 1) * 8
            nxt = data[pos]
            pos += hdr_len
        return src, dst, nxt, data[pos:end]
    return None


def extract_l2tp(frame: Frame, ports: Iterable[int] = (L2TP_PORT,)) -> L2tpPacket | None:
    """Find L2TP in ``frame``: UDP with either port in ``ports``, or IP protocol 115.

    Returns None for frames that are not L2TP; raises :class:`CodecError` when
    the lower layers of a frame are themselves malformed.
    """
    net = _network_layer(frame.linktype, frame.data)
    if net is None:
        return None
    found = _transport(*net)
    if found is None:
        return None
    src, dst, proto, payload = found
    if proto == IPPROTO_L2TP:
        return L2tpPacket(
            frame=frame.number,
            src=src,
            dst=dst,
            transport="ip",
            sport=0,
            dport=0,
            payload=payload,
        )
    if proto != IPPROTO_UDP:
        return None
    if len(payload) < 8:
        raise CodecError("truncated UDP header", 0)
    sport, dport, ulen = struct.unpack_from("!HHH", payload)
    port_set = set(ports)
    if sport not in port_set and dport not in port_set:
        return None
    end = ulen if 8 <= ulen <= len(payload) else len(payload)
    return L2tpPacket(
        frame=frame.number,
        src=src,
        dst=dst,
        transport="udp",
        sport=sport,
        dport=dport,
        payload=payload[8:end],
    )


# -- writing (for tests and tools) ------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip_packet(src: str, dst: str, proto: int, payload: bytes) -> tuple[int, bytes]:
    s = ipaddress.ip_address(src)
    d = ipaddress.ip_address(dst)
    if s.version == 4:
        header = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(payload),
            0,
            0x4000,
            64,
            proto,
            0,
            s.packed,
            d.packed,
        )
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        return 0x0800, header + payload
    header = struct.pack("!IHBB16s16s", 0x60000000, len(payload), proto, 64, s.packed, d.packed)
    return 0x86DD, header + payload


def _ethernet(ethertype: int, packet: bytes) -> bytes:
    return (
        b"\x02\x00\x00\x00\x00\x02"
        + b"\x02\x00\x00\x00\x00\x01"
        + struct.pack("!H", ethertype)
        + packet
    )


def udp_frame(
    payload: bytes,
    *,
    src: str = "192.0.2.1",
    dst: str = "192.0.2.2",
    sport: int = L2TP_PORT,
    dport: int = L2TP_PORT,
) -> bytes:
    """An Ethernet frame carrying ``payload`` in UDP (checksum computed)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    s = ipaddress.ip_address(src)
    d = ipaddress.ip_address(dst)
    if s.version == 4:
        pseudo = s.packed + d.packed + struct.pack("!BBH", 0, IPPROTO_UDP, len(udp))
    else:
        pseudo = s.packed + d.packed + struct.pack("!IxxxB", len(udp), IPPROTO_UDP)
    checksum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", checksum) + udp[8:]
    return _ethernet(*_ip_packet(src, dst, IPPROTO_UDP, udp))


def ip_frame(payload: bytes, *, src: str = "192.0.2.1", dst: str = "192.0.2.2") -> bytes:
    """An Ethernet frame carrying ``payload`` directly in IP protocol 115 (L2TPv3)."""
    return _ethernet(*_ip_packet(src, dst, IPPROTO_L2TP, payload))


def write_pcap(
    stream: BinaryIO, frames: Iterable[bytes], *, linktype: int = LINKTYPE_ETHERNET
) -> None:
    """Write ``frames`` as a classic little-endian microsecond pcap."""
    stream.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
    for index, data in enumerate(frames):
        stream.write(struct.pack("<IIII", 1700000000 + index, 0, len(data), len(data)))
        stream.write(data)
