"""``l2tp decode CAPTURE``: print every L2TP control message in a pcap/pcapng file.

Each control message is shown with its header fields and its AVPs by name;
hidden AVPs are unhidden and L2TPv3 message digests checked when ``--secret``
is given. A malformed packet is reported with the reason and offset and the
rest of the capture is still decoded; data messages get a one-line summary.
``--json`` prints one JSON object per L2TP packet instead (see docs/decode.md).

The per-packet records come from :func:`decode_capture`, which the tshark
oracle in the test-suite also uses, so what is printed is what is tested.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from l2tp.pcap import L2TP_PORT, CaptureError, L2tpPacket, extract_l2tp, read_frames
from l2tp.protocol.avp import Avp
from l2tp.protocol.constants import AvpType, MessageType
from l2tp.protocol.digest import check_message_digest
from l2tp.protocol.errors import CodecError
from l2tp.protocol.header import is_control, parse_data_header_v2
from l2tp.protocol.message import ControlMessage, parse_message


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "decode", help="decode L2TP control messages in a pcap/pcapng capture"
    )
    parser.add_argument("capture", type=Path, help="pcap or pcapng file")
    parser.add_argument("--secret", help="tunnel secret: unhide AVPs, check v3 digests")
    parser.add_argument("--json", action="store_true", help="one JSON object per packet")
    parser.add_argument(
        "--port", type=int, action="append", help=f"UDP port to treat as L2TP (default {L2TP_PORT})"
    )
    parser.set_defaults(func=run)


def json_value(value: object) -> Any:
    """Turn a decoded AVP value into plain JSON data (bytes become hex strings)."""
    if isinstance(value, enum.Enum):
        return int(value.value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return repr(value)


def _avp_record(avp: Avp) -> dict[str, Any]:
    record: dict[str, Any] = {
        "vendor": avp.vendor,
        "type": int(avp.attribute),
        "name": avp.name,
        "mandatory": bool(avp.mandatory),
        "hidden": avp.hidden,
        "value": json_value(avp.value),
    }
    if avp.opaque:
        record["opaque"] = True
    if isinstance(avp.value, enum.Enum):
        record["value_name"] = avp.value.name
    return record


class _Nonces:
    """Control Message Authentication Nonces seen per endpoint, for v3 digest checks.

    An endpoint is an address and UDP port (two LCCEs on one host, as on a test
    machine's loopback, differ by port); over IP there is no port, so the address.
    The latest SCCRQ/SCCRP of an endpoint wins: a redialled control connection
    brings new nonces.
    """

    def __init__(self) -> None:
        self.by_endpoint: dict[tuple[str, int], bytes] = {}

    def learn(self, packet: L2tpPacket, message: ControlMessage) -> None:
        nonce = message.nonce
        if nonce is not None and message.message_type in (MessageType.SCCRQ, MessageType.SCCRP):
            self.by_endpoint[(packet.src, packet.sport)] = nonce

    def of(self, host: str, port: int) -> bytes:
        return self.by_endpoint.get((host, port), b"")


def _digest_status(
    packet: L2tpPacket, message: ControlMessage, secret: bytes, nonces: _Nonces
) -> str | None:
    if not any(a.attribute == AvpType.MESSAGE_DIGEST for a in message.avps):
        return None
    try:
        check_message_digest(
            packet.payload,
            secrets=[secret],
            local_nonce=nonces.of(packet.dst, packet.dport),
            remote_nonce=nonces.of(packet.src, packet.sport),
            ip_encap=packet.transport == "ip",
        )
    except CodecError as exc:
        return f"bad: {exc.reason}"
    return "ok"


def _decode_packet(packet: L2tpPacket, secret: bytes | None, nonces: _Nonces) -> dict[str, Any]:
    record: dict[str, Any] = {
        "frame": packet.frame,
        "src": packet.src,
        "dst": packet.dst,
        "transport": packet.transport,
    }
    payload = packet.payload
    ip_encap = packet.transport == "ip"
    if ip_encap and len(payload) >= 4 and payload[:4] != b"\x00\x00\x00\x00":
        record.update(
            kind="data",
            version=3,
            session_id=int.from_bytes(payload[:4], "big"),
            length=len(payload),
        )
        return record
    body = payload[4:] if ip_encap else payload
    if not ip_encap and not is_control(body):
        version = body[1] & 0x0F if len(body) >= 2 else None
        record.update(kind="data", version=version, length=len(body))
        try:
            if version == 2:
                data = parse_data_header_v2(body)
                record.update(tunnel_id=data.tunnel_id, session_id=data.session_id)
            elif version == 3 and len(body) >= 8:
                record.update(session_id=int.from_bytes(body[4:8], "big"))
        except CodecError as exc:
            record.update(kind="malformed", error=exc.reason, offset=exc.offset)
        return record
    try:
        header, message = parse_message(payload, secret=secret, ip_encap=ip_encap)
    except CodecError as exc:
        record.update(kind="malformed", error=exc.reason, offset=exc.offset)
        return record
    record.update(
        kind="control",
        version=header.version,
        tunnel_id=header.tunnel_id,
        session_id=header.session_id,
        ns=header.ns,
        nr=header.nr,
        length=header.length,
    )
    if message is None:
        record.update(message_type="ZLB", message_type_value=None, avps=[])
        return record
    nonces.learn(packet, message)
    record.update(
        message_type=message.name,
        message_type_value=int(message.message_type),
        avps=[_avp_record(a) for a in message.avps],
    )
    if message.has_unknown_mandatory:
        record["unknown_mandatory"] = [int(a.attribute) for a in message.unknown_mandatory]
    if secret is not None and header.version == 3:
        status = _digest_status(packet, message, secret, nonces)
        if status is not None:
            record["digest"] = status
    return record


def decode_capture(
    path: Path | str, *, secret: bytes | None = None, ports: Iterable[int] = (L2TP_PORT,)
) -> Iterator[dict[str, Any]]:
    """Yield one record per L2TP packet in the capture (see docs/decode.md for the keys).

    A frame whose lower layers are broken yields a ``malformed`` record; a
    broken capture file yields a final ``{"kind": "capture-error"}`` record.
    """
    port_list = tuple(ports)
    nonces = _Nonces()
    with open(path, "rb") as stream:
        try:
            for frame in read_frames(stream):
                try:
                    packet = extract_l2tp(frame, port_list)
                except CodecError as exc:
                    yield {
                        "frame": frame.number,
                        "kind": "malformed",
                        "error": exc.reason,
                        "offset": exc.offset,
                    }
                    continue
                if packet is not None:
                    yield _decode_packet(packet, secret, nonces)
        except CaptureError as exc:
            yield {"kind": "capture-error", "error": exc.reason, "offset": exc.offset}


def _format_value(avp: dict[str, Any]) -> str:
    value = avp["value"]
    if avp.get("opaque"):
        return f"<hidden {value}>"
    if "value_name" in avp:
        return f"{avp['value_name']} ({value})"
    if isinstance(value, dict):
        return " ".join(f"{k}={v!r}" for k, v in value.items())
    return repr(value) if isinstance(value, str) else str(value)


def format_record(record: dict[str, Any]) -> str:
    """The human-readable form of one record."""
    kind = record["kind"]
    where = f"#{record.get('frame', '?')}"
    if kind == "capture-error":
        return f"capture error: {record['error']} (at byte {record['offset']} of the file)"
    if kind == "malformed":
        return f"{where} MALFORMED: {record['error']} (at byte {record['offset']})"
    if kind == "data":
        ids = " ".join(f"{k}={record[k]}" for k in ("tunnel_id", "session_id") if k in record)
        return f"{where} L2TPv{record.get('version')} data {ids} {record['length']} bytes"
    lines = [
        f"{where} {record['src']} > {record['dst']} L2TPv{record['version']} "
        f"{record['message_type']} tunnel={record['tunnel_id']} session={record['session_id']} "
        f"Ns={record['ns']} Nr={record['nr']} length={record['length']}"
    ]
    for avp in record["avps"]:
        flags = ",".join(f for f, on in (("M", avp["mandatory"]), ("H", avp["hidden"])) if on)
        vendor = f" vendor={avp['vendor']}" if avp["vendor"] else ""
        lines.append(f"    {avp['name']}{vendor} [{flags}]: {_format_value(avp)}")
    if "unknown_mandatory" in record:
        lines.append(f"    ! unknown mandatory AVPs: {record['unknown_mandatory']}")
    if "digest" in record:
        lines.append(f"    message digest: {record['digest']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    secret = args.secret.encode() if args.secret is not None else None
    ports = args.port or [L2TP_PORT]
    status = 0
    try:
        for record in decode_capture(args.capture, secret=secret, ports=ports):
            if record["kind"] == "capture-error":
                status = 1
            if args.json:
                print(json.dumps(record), flush=False)
            else:
                print(format_record(record))
    except BrokenPipeError:
        raise  # our reader went away (``| head``): see l2tp.cli.pipes
    except OSError as exc:
        where = exc.filename if exc.filename is not None else args.capture
        print(f"l2tp decode: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return status
