"""tshark as an independent oracle for our L2TP decoder, plus the sample messages.

:func:`assert_matches_tshark` takes any pcap/pcapng file, decodes it with our
:func:`l2tp.cli.decode.decode_capture` and with ``tshark -T pdml``, and asserts
that for every L2TP control packet the version, message type, tunnel/connection
ID, session ID, Ns, Nr, the AVP list (vendor, type, M and H bits) and every AVP
value tshark shows agree, and that tshark raised no malformed-packet expert info.
It is meant to be fed real captures (xl2tpd, kernel VM) as well as our own.

:func:`sample_messages` builds every control message type, v2 and v3, used by
the round-trip and oracle tests.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l2tp.cli.decode import decode_capture
from l2tp.protocol import (
    Accm,
    Avp,
    AvpType,
    BearerBits,
    CallErrors,
    CircuitStatus,
    ControlMessage,
    DataSequencing,
    FramingBits,
    L2SpecificSublayer,
    MessageType,
    ProtocolVersion,
    ProxyAuthenType,
    PseudowireType,
    Q931Cause,
    ResultCode,
)

# -- tshark side -------------------------------------------------------------


@dataclass
class TsharkAvp:
    vendor: int
    type: int
    mandatory: bool
    hidden: bool
    fields: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class TsharkMessage:
    frame: int
    header: dict[str, str]
    avps: list[TsharkAvp]
    malformed: list[str]


def _int(text: str) -> int:
    return int(text, 0)


def run_tshark(
    tshark: str, capture: Path, ports: tuple[int, ...] = (1701,), secret: bytes | None = None
) -> list[TsharkMessage]:
    """Dissect ``capture`` with tshark and return the L2TP layer of every frame that has one.

    With ``secret``, tshark checks v3 message digests; a failed check appears in
    ``malformed`` (expert info "Incorrect Digest").
    """
    args = [tshark, "-n", "-r", str(capture), "-T", "pdml"]
    if secret is not None:
        args += ["-o", f"l2tp.shared_secret:{secret.decode()}"]
    for port in ports:
        if port != 1701:
            args += ["-d", f"udp.port=={port},l2tp"]
    out = subprocess.run(args, check=True, capture_output=True, timeout=120).stdout
    root = ET.fromstring(out)
    messages: list[TsharkMessage] = []
    for packet in root.iter("packet"):
        frame = 0
        for proto in packet.iter("proto"):
            if proto.get("name") == "frame":
                for f in proto.iter("field"):
                    if f.get("name") == "frame.number":
                        frame = _int(f.get("show", "0"))
        malformed = [
            f.get("showname", "")
            for f in packet.iter("field")
            if f.get("name", "").startswith("_ws.malformed")
            or (f.get("name", "") == "_ws.expert" and "malformed" in f.get("showname", "").lower())
        ]
        malformed += [
            p.get("showname", "") for p in packet.iter("proto") if p.get("name") == "_ws.malformed"
        ]
        malformed += [
            f.get("showname", "incorrect digest")
            for f in packet.iter("field")
            if f.get("name") == "l2tp.incorrect_digest"
        ]
        for proto in packet.iter("proto"):
            if proto.get("name") != "l2tp":
                continue
            header: dict[str, str] = {}
            avps: list[TsharkAvp] = []
            for child in proto:
                name = child.get("name", "")
                if name in ("l2tp.avp", "") and any(
                    g.get("name") == "l2tp.avp.mandatory" for g in child
                ):
                    avp = TsharkAvp(vendor=0, type=-1, mandatory=False, hidden=False)
                    for g in child.iter("field"):
                        gname = g.get("name", "")
                        show = g.get("show", "")
                        if gname == "l2tp.avp.type":
                            avp.type = _int(show)
                        elif gname == "l2tp.avp.vendor_id":
                            avp.vendor = _int(show)
                        elif gname == "l2tp.avp.mandatory":
                            avp.mandatory = show in ("True", "1")
                        elif gname == "l2tp.avp.hidden":
                            avp.hidden = show in ("True", "1")
                        else:
                            avp.fields.setdefault(gname, []).append(show)
                    avps.append(avp)
                elif name:
                    header[name] = child.get("show", "")
                    for g in child.iter("field"):
                        header.setdefault(g.get("name", ""), g.get("show", ""))
            messages.append(
                TsharkMessage(frame=frame, header=header, avps=avps, malformed=malformed)
            )
    return messages


# -- value comparison --------------------------------------------------------


def _hex(show: str) -> str:
    return show.replace(":", "").lower()


def _expected_fields(avp: dict[str, Any]) -> dict[str, Any]:
    """The tshark field names and values an AVP of ours should produce."""
    t = avp["type"]
    v = avp["value"]
    if avp["vendor"] != 0 or avp.get("opaque"):
        return {}
    simple = {
        AvpType.MESSAGE_TYPE: "l2tp.avp.message_type",
        AvpType.ASSIGNED_TUNNEL_ID: "l2tp.avp.assigned_tunnel_id",
        AvpType.ASSIGNED_SESSION_ID: "l2tp.avp.assigned_session_id",
        AvpType.ASSIGNED_CONTROL_CONNECTION_ID: "l2tp.avp.assigned_control_conn_id",
        AvpType.LOCAL_SESSION_ID: "l2tp.avp.local_session_id",
        AvpType.REMOTE_SESSION_ID: "l2tp.avp.remote_session_id",
        AvpType.RECEIVE_WINDOW_SIZE: "l2tp.avp.receive_window_size",
        AvpType.FIRMWARE_REVISION: "l2tp.avp.firmware_revision",
        AvpType.CALL_SERIAL_NUMBER: "l2tp.avp.call_serial_number",
        AvpType.MINIMUM_BPS: "l2tp.avp.minimum_bps",
        AvpType.MAXIMUM_BPS: "l2tp.avp.maximum_bps",
        AvpType.TX_CONNECT_SPEED: "l2tp.avp.connect_speed",
        AvpType.RX_CONNECT_SPEED: "l2tp.avp.rx_connect_speed",
        AvpType.PHYSICAL_CHANNEL_ID: "l2tp.avp.physical_channel",
        AvpType.PROXY_AUTHEN_TYPE: "l2tp.avp.proxy_authen_type",
        AvpType.PROXY_AUTHEN_ID: "l2tp.avp.proxy_authen_id",
        AvpType.ROUTER_ID: "l2tp.avp.router_id",
        AvpType.PSEUDOWIRE_TYPE: "l2tp.avp.pseudowire_type",
        AvpType.L2_SPECIFIC_SUBLAYER: "l2tp.avp.layer2_specific_sublayer",
        AvpType.DATA_SEQUENCING: "l2tp.avp.data_sequencing",
        AvpType.TX_CONNECT_SPEED_BPS: "l2tp.avp.tx_connect_speed_v3",
        AvpType.RX_CONNECT_SPEED_BPS: "l2tp.avp.rx_connect_speed_v3",
        AvpType.HOST_NAME: "l2tp.avp.host_name",
        AvpType.VENDOR_NAME: "l2tp.avp.vendor_name",
        AvpType.CALLED_NUMBER: "l2tp.avp.called_number",
        AvpType.CALLING_NUMBER: "l2tp.avp.calling_number",
        AvpType.SUB_ADDRESS: "l2tp.avp.sub_address",
        AvpType.PROXY_AUTHEN_NAME: "l2tp.avp.proxy_authen_name",
        AvpType.REMOTE_END_ID: "l2tp.avp.remote_end_id",
        AvpType.PREFERRED_LANGUAGE: "l2tp.avp.preferred_language",
        AvpType.RANDOM_VECTOR: "l2tp.avp.random_vector",
        AvpType.CHALLENGE: "l2tp.avp.chap_challenge",
        AvpType.CHALLENGE_RESPONSE: "l2tp.avp.chap_challenge_response",
        AvpType.ASSIGNED_COOKIE: "l2tp.avp.assigned_cookie",
        AvpType.CONTROL_MESSAGE_AUTHENTICATION_NONCE: "l2tp.avp.nonce",
        AvpType.PRIVATE_GROUP_ID: "l2tp.avp.private_group_id",
        AvpType.INITIAL_RECEIVED_LCP_CONFREQ: "l2tp.avp.initial_received_lcp_confreq",
        AvpType.LAST_SENT_LCP_CONFREQ: "l2tp.avp.last_sent_lcp_confreq",
        AvpType.LAST_RECEIVED_LCP_CONFREQ: "l2tp.avp.last_received_lcp_confreq",
        AvpType.PROXY_AUTHEN_CHALLENGE: "l2tp.avp.proxy_authen_challenge",
        AvpType.PROXY_AUTHEN_RESPONSE: "l2tp.avp.proxy_authen_response",
    }
    if t in simple:
        return {simple[AvpType(t)]: v}
    if t == AvpType.TIE_BREAKER:
        return {"l2tp.tie_breaker": int(v, 16)}
    if t == AvpType.RESULT_CODE:
        out: dict[str, Any] = {"l2tp.result_code": v["result"]}
        if v["error"] is not None:
            out["l2tp.avp.error_code"] = v["error"]
        if v["message"]:
            out["l2tp.avp.error_message"] = v["message"]
        return out
    if t == AvpType.PROTOCOL_VERSION:
        return {
            "l2tp.avp.protocol_version": v["version"],
            "l2tp.avp.protocol_revision": v["revision"],
        }
    if t == AvpType.Q931_CAUSE_CODE:
        out = {"l2tp.avp.cause_code": v["cause"], "l2tp.avp.cause_msg": v["message"]}
        if v["advisory"]:
            out["l2tp.avp.advisory_msg"] = v["advisory"]
        return out
    if t == AvpType.CALL_ERRORS:
        return {
            "l2tp.avp.crc_errors": v["crc_errors"],
            "l2tp.avp.framing_errors": v["framing_errors"],
            "l2tp.avp.hardware_overruns": v["hardware_overruns"],
            "l2tp.avp.buffer_overruns": v["buffer_overruns"],
            "l2tp.avp.time_out_errors": v["timeout_errors"],
            "l2tp.avp.alignment_errors": v["alignment_errors"],
        }
    if t == AvpType.ACCM:
        return {"l2tp.avp.send_accm": v["send"], "l2tp.avp.receive_accm": v["receive"]}
    if t in (AvpType.FRAMING_CAPABILITIES, AvpType.FRAMING_TYPE):
        prefix = "framing_supported" if t == AvpType.FRAMING_CAPABILITIES else "framing_type"
        return {f"l2tp.avp.async_{prefix}": bool(v & 2), f"l2tp.avp.sync_{prefix}": bool(v & 1)}
    if t == AvpType.BEARER_CAPABILITIES:
        return {
            "l2tp.avp.analog_access_supported": bool(v & 2),
            "l2tp.avp.digital_access_supported": bool(v & 1),
        }
    if t == AvpType.BEARER_TYPE:
        return {
            "l2tp.avp.analog_bearer_type": bool(v & 2),
            "l2tp.avp.digital_bearer_type": bool(v & 1),
        }
    if t == AvpType.MESSAGE_DIGEST:
        # tshark's field spans the Digest Type octet too.
        return {"l2tp.avp.message_digest": f"{v['digest_type']:02x}{v['digest']}"}
    if t == AvpType.PSEUDOWIRE_CAPABILITIES_LIST:
        return {"l2tp.avp.pw_type": v} if v else {}
    if t == AvpType.CIRCUIT_STATUS:
        return {"l2tp.avp.circuit_status": v["active"], "l2tp.avp.circuit_type": v["new"]}
    return {}


def _same(ours: Any, shown: str) -> bool:
    if isinstance(ours, bool):
        return shown in (("True", "1") if ours else ("False", "0"))
    if isinstance(ours, int):
        try:
            return _int(shown) == ours
        except ValueError:
            return False
    if isinstance(ours, str) and all(c in "0123456789abcdef" for c in ours) and ":" in shown:
        return _hex(shown) == ours
    if isinstance(ours, str):
        return shown == ours or _hex(shown) == ours
    return False


def compare_records(ours: list[dict[str, Any]], theirs: list[TsharkMessage]) -> list[str]:
    """Return a list of human-readable mismatches between our records and tshark's."""
    problems: list[str] = []
    by_frame = {m.frame: m for m in theirs}
    for rec in ours:
        if rec.get("kind") != "control":
            continue
        frame = rec["frame"]
        ts = by_frame.get(frame)
        if ts is None:
            problems.append(f"frame {frame}: tshark shows no L2TP layer")
            continue
        if ts.malformed:
            problems.append(f"frame {frame}: tshark malformed: {ts.malformed}")
        h = ts.header
        checks: list[tuple[str, Any, str | None]] = [
            ("version", rec["version"], h.get("l2tp.version")),
            ("Ns", rec["ns"], h.get("l2tp.Ns")),
            ("Nr", rec["nr"], h.get("l2tp.Nr")),
            ("length", rec["length"], h.get("l2tp.length")),
        ]
        if rec["version"] == 2:
            checks += [
                ("tunnel", rec["tunnel_id"], h.get("l2tp.tunnel")),
                ("session", rec["session_id"], h.get("l2tp.session")),
            ]
        else:
            checks.append(("connection", rec["tunnel_id"], h.get("l2tp.ccid")))
        for what, mine, shown in checks:
            if shown is None or not _same(mine, shown):
                problems.append(f"frame {frame}: {what} ours={mine} tshark={shown}")
        our_avps = (
            [
                {
                    "vendor": 0,
                    "type": 0,
                    "mandatory": True,
                    "hidden": False,
                    "value": rec["message_type_value"],
                }
            ]
            + rec["avps"]
            if rec["message_type_value"] is not None
            else []
        )
        if len(our_avps) != len(ts.avps):
            problems.append(f"frame {frame}: {len(our_avps)} AVPs, tshark {len(ts.avps)}")
            continue
        for index, (mine_avp, their) in enumerate(zip(our_avps, ts.avps, strict=True)):
            where = f"frame {frame} AVP {index} ({mine_avp.get('name', 'Message Type')})"
            # tshark does not unhide: for a hidden AVP it shows only the M/H bits.
            pairs: list[tuple[str, object, object]] = [
                ("M", mine_avp["mandatory"], their.mandatory),
                ("H", mine_avp["hidden"], their.hidden),
            ]
            if not their.hidden:
                pairs += [
                    ("vendor", mine_avp["vendor"], their.vendor),
                    ("type", mine_avp["type"], their.type),
                ]
            for what, a, b in pairs:
                if a != b:
                    problems.append(f"{where}: {what} ours={a} tshark={b}")
            if mine_avp["hidden"]:
                continue
            for fname, expected in _expected_fields(mine_avp).items():
                shown_list = their.fields.get(fname)
                if shown_list is None:
                    problems.append(f"{where}: tshark shows no {fname}")
                    continue
                values = expected if isinstance(expected, list) else [expected]
                if len(values) != len(shown_list) or not all(
                    _same(e, s) for e, s in zip(values, shown_list, strict=True)
                ):
                    problems.append(f"{where}: {fname} ours={expected!r} tshark={shown_list!r}")
    return problems


def assert_matches_tshark(
    tshark: str, capture: Path, *, secret: bytes | None = None, ports: tuple[int, ...] = (1701,)
) -> list[dict[str, Any]]:
    """Assert our decoder and tshark agree on every control packet of ``capture``.

    Returns our records so that callers can make further assertions.
    """
    ours = list(decode_capture(capture, secret=secret, ports=ports))
    theirs = run_tshark(tshark, capture, ports, secret)
    problems = compare_records(ours, theirs)
    assert not problems, "decoder and tshark disagree:\n" + "\n".join(problems)
    return ours


# -- sample messages ---------------------------------------------------------

A = AvpType
M = MessageType


def _hidden(attr: AvpType, value: Any) -> Avp:
    return Avp(attribute=attr, value=value, hidden=True)


def sample_messages(version: int, *, hidden: bool = False) -> list[ControlMessage]:
    """One message of every type defined for ``version``, each carrying its required AVPs
    and a fair share of the optional ones. With ``hidden``, hideable AVPs are hidden."""

    def av(attr: AvpType, value: Any) -> Avp:
        return Avp(attribute=attr, value=value, hidden=hidden)

    result = ResultCode(result=2, error=8, message="unknown AVP 99")
    if version == 2:
        return [
            ControlMessage(
                message_type=M.SCCRQ,
                avps=(
                    Avp(attribute=A.PROTOCOL_VERSION, value=ProtocolVersion(version=1, revision=0)),
                    Avp(attribute=A.HOST_NAME, value="lac.example"),
                    av(A.FRAMING_CAPABILITIES, FramingBits.SYNC | FramingBits.ASYNC),
                    av(A.BEARER_CAPABILITIES, BearerBits.ANALOG),
                    Avp(attribute=A.TIE_BREAKER, value=bytes.fromhex("0102030405060708")),
                    av(A.FIRMWARE_REVISION, 0x0680),
                    av(A.VENDOR_NAME, "python-l2tp"),
                    av(A.ASSIGNED_TUNNEL_ID, 0x1234),
                    Avp(attribute=A.RECEIVE_WINDOW_SIZE, value=8),
                    av(A.CHALLENGE, bytes(range(16))),
                ),
            ),
            ControlMessage(
                message_type=M.SCCRP,
                avps=(
                    Avp(attribute=A.PROTOCOL_VERSION, value=ProtocolVersion(version=1, revision=0)),
                    av(A.FRAMING_CAPABILITIES, FramingBits.SYNC),
                    Avp(attribute=A.HOST_NAME, value="lns"),
                    av(A.ASSIGNED_TUNNEL_ID, 77),
                    av(A.CHALLENGE_RESPONSE, bytes(range(16, 32))),
                ),
            ),
            ControlMessage(
                message_type=M.SCCCN, avps=(av(A.CHALLENGE_RESPONSE, bytes(range(32, 48))),)
            ),
            ControlMessage(
                message_type=M.STOPCCN,
                avps=(
                    av(A.ASSIGNED_TUNNEL_ID, 77),
                    Avp(attribute=A.RESULT_CODE, value=result),
                ),
            ),
            ControlMessage.hello(),
            ControlMessage(
                message_type=M.OCRQ,
                avps=(
                    av(A.ASSIGNED_SESSION_ID, 9),
                    av(A.CALL_SERIAL_NUMBER, 123456),
                    av(A.MINIMUM_BPS, 9600),
                    av(A.MAXIMUM_BPS, 1000000),
                    av(A.BEARER_TYPE, BearerBits.DIGITAL),
                    av(A.FRAMING_TYPE, FramingBits.ASYNC),
                    av(A.CALLED_NUMBER, "5551234"),
                    av(A.SUB_ADDRESS, "7"),
                ),
            ),
            ControlMessage(
                message_type=M.OCRP,
                avps=(
                    av(A.ASSIGNED_SESSION_ID, 10),
                    av(A.PHYSICAL_CHANNEL_ID, 3),
                ),
            ),
            ControlMessage(
                message_type=M.OCCN,
                avps=(
                    av(A.TX_CONNECT_SPEED, 64000),
                    av(A.FRAMING_TYPE, FramingBits.SYNC),
                    av(A.RX_CONNECT_SPEED, 56000),
                    Avp(attribute=A.SEQUENCING_REQUIRED, value=b""),
                ),
            ),
            ControlMessage(
                message_type=M.ICRQ,
                avps=(
                    av(A.ASSIGNED_SESSION_ID, 0x4321),
                    av(A.CALL_SERIAL_NUMBER, 1),
                    av(A.BEARER_TYPE, BearerBits.ANALOG),
                    av(A.CALLING_NUMBER, "5550000"),
                    av(A.CALLED_NUMBER, "5551111"),
                ),
            ),
            ControlMessage(message_type=M.ICRP, avps=(av(A.ASSIGNED_SESSION_ID, 5),)),
            ControlMessage(
                message_type=M.ICCN,
                avps=(
                    av(A.TX_CONNECT_SPEED, 100000000),
                    av(A.FRAMING_TYPE, FramingBits.SYNC),
                    av(A.INITIAL_RECEIVED_LCP_CONFREQ, bytes.fromhex("010405dc")),
                    av(A.LAST_SENT_LCP_CONFREQ, bytes.fromhex("010405d4")),
                    av(A.LAST_RECEIVED_LCP_CONFREQ, bytes.fromhex("0104058c")),
                    av(A.PROXY_AUTHEN_TYPE, ProxyAuthenType.PPP_CHAP),
                    av(A.PROXY_AUTHEN_NAME, "alice"),
                    av(A.PROXY_AUTHEN_CHALLENGE, bytes(range(8))),
                    av(A.PROXY_AUTHEN_ID, 42),
                    av(A.PROXY_AUTHEN_RESPONSE, bytes(range(16))),
                    av(A.PRIVATE_GROUP_ID, b"grp"),
                    av(A.RX_CONNECT_SPEED, 100000000),
                ),
            ),
            ControlMessage(
                message_type=M.CDN,
                avps=(
                    Avp(attribute=A.RESULT_CODE, value=ResultCode(result=3)),
                    av(A.ASSIGNED_SESSION_ID, 5),
                    Avp(
                        attribute=A.Q931_CAUSE_CODE,
                        value=Q931Cause(cause=16, message=0x5A, advisory="normal"),
                    ),
                ),
            ),
            ControlMessage(
                message_type=M.WEN,
                avps=(
                    av(
                        A.CALL_ERRORS,
                        CallErrors(
                            crc_errors=1,
                            framing_errors=2,
                            hardware_overruns=3,
                            buffer_overruns=4,
                            timeout_errors=5,
                            alignment_errors=6,
                        ),
                    ),
                ),
            ),
            ControlMessage(
                message_type=M.SLI, avps=(av(A.ACCM, Accm(send=0xFFFFFFFF, receive=0x000A0000)),)
            ),
        ]
    ids = (av(A.LOCAL_SESSION_ID, 0x11223344), av(A.REMOTE_SESSION_ID, 0x55667788))
    return [
        ControlMessage(
            message_type=M.SCCRQ,
            avps=(
                Avp(attribute=A.HOST_NAME, value="lcce-a"),
                Avp(attribute=A.ROUTER_ID, value=0x0A000001),
                av(A.ASSIGNED_CONTROL_CONNECTION_ID, 0xCAFEBABE),
                av(A.PSEUDOWIRE_CAPABILITIES_LIST, (PseudowireType.ETHERNET, PseudowireType.PPP)),
                Avp(attribute=A.TIE_BREAKER, value=bytes(8)),
                av(A.VENDOR_NAME, "python-l2tp"),
                Avp(attribute=A.RECEIVE_WINDOW_SIZE, value=16),
                av(A.PREFERRED_LANGUAGE, "en"),
            ),
        ),
        ControlMessage(
            message_type=M.SCCRP,
            avps=(
                Avp(attribute=A.HOST_NAME, value="lcce-b"),
                Avp(attribute=A.ROUTER_ID, value=0x0A000002),
                av(A.ASSIGNED_CONTROL_CONNECTION_ID, 0x01020304),
                av(A.PSEUDOWIRE_CAPABILITIES_LIST, (PseudowireType.ETHERNET_VLAN,)),
            ),
        ),
        ControlMessage(message_type=M.SCCCN),
        ControlMessage(
            message_type=M.STOPCCN,
            avps=(
                Avp(attribute=A.RESULT_CODE, value=ResultCode(result=1, error=0)),
                av(A.ASSIGNED_CONTROL_CONNECTION_ID, 0x01020304),
            ),
        ),
        ControlMessage.hello(),
        ControlMessage(message_type=M.ACK),
        ControlMessage(
            message_type=M.ICRQ,
            avps=(
                *ids,
                av(A.CALL_SERIAL_NUMBER, 7),
                av(A.PSEUDOWIRE_TYPE, PseudowireType.ETHERNET),
                av(A.REMOTE_END_ID, "pw-1"),
                av(A.CIRCUIT_STATUS, CircuitStatus(active=True, new=True)),
                av(A.ASSIGNED_COOKIE, bytes.fromhex("deadbeef")),
                av(A.L2_SPECIFIC_SUBLAYER, L2SpecificSublayer.DEFAULT),
                av(A.DATA_SEQUENCING, DataSequencing.ALL),
                av(A.TX_CONNECT_SPEED_BPS, 10_000_000_000),
                av(A.RX_CONNECT_SPEED_BPS, 1_000_000_000),
                av(A.PHYSICAL_CHANNEL_ID, 4),
            ),
        ),
        ControlMessage(
            message_type=M.ICRP,
            avps=(
                *ids,
                av(A.CIRCUIT_STATUS, CircuitStatus(active=True)),
                av(A.ASSIGNED_COOKIE, bytes.fromhex("0011223344556677")),
            ),
        ),
        ControlMessage(message_type=M.ICCN, avps=(*ids,)),
        ControlMessage(
            message_type=M.OCRQ,
            avps=(
                *ids,
                av(A.CALL_SERIAL_NUMBER, 8),
                av(A.PSEUDOWIRE_TYPE, PseudowireType.PPP),
                av(A.REMOTE_END_ID, "pw-2"),
                av(A.CIRCUIT_STATUS, CircuitStatus(active=False, new=True)),
            ),
        ),
        ControlMessage(
            message_type=M.OCRP,
            avps=(
                *ids,
                av(A.CIRCUIT_STATUS, CircuitStatus(active=True)),
            ),
        ),
        ControlMessage(message_type=M.OCCN, avps=(*ids,)),
        ControlMessage(
            message_type=M.CDN,
            avps=(
                Avp(attribute=A.RESULT_CODE, value=result),
                *ids,
            ),
        ),
        ControlMessage(
            message_type=M.WEN,
            avps=(
                *ids,
                av(A.CALL_ERRORS, CallErrors(crc_errors=9)),
            ),
        ),
        ControlMessage(
            message_type=M.SLI,
            avps=(
                *ids,
                av(A.CIRCUIT_STATUS, CircuitStatus(active=False)),
            ),
        ),
    ]
