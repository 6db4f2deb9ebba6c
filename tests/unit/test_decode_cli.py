"""``l2tp decode``: text and JSON output, hidden AVPs, digests, malformed and data packets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from l2tp.cli.main import main
from l2tp.pcap import ip_frame, udp_frame, write_pcap
from l2tp.protocol import (
    Avp,
    AvpType,
    ControlMessage,
    MessageType,
    sealed,
    serialize_message,
)


def _capture(tmp_path: Path) -> Path:
    hidden = ControlMessage(
        message_type=MessageType.ICRP,
        avps=(Avp(attribute=AvpType.ASSIGNED_SESSION_ID, value=77, hidden=True),),
    )
    v3 = serialize_message(
        ControlMessage.of(
            MessageType.SCCRQ,
            host_name="a",
            router_id=1,
            assigned_control_connection_id=5,
            pseudowire_capabilities_list=(5,),
        ),
        version=3,
        tunnel_id=0,
        digest_type=0,
        ip_encap=True,
    )
    frames = [
        udp_frame(serialize_message(ControlMessage.hello(), version=2, tunnel_id=4, ns=1, nr=2)),
        udp_frame(b"\xc8\x02\x00\x20" + bytes(8)),  # length overruns: malformed
        udp_frame(
            serialize_message(
                hidden, version=2, tunnel_id=4, secret=b"pw", random_bytes=lambda n: b"\x01" * n
            )
        ),
        udp_frame(b"\x00\x02\x00\x04\x00\x05\xff\x03"),  # v2 data
        ip_frame(sealed(v3, secret=b"pw", ip_encap=True)),
        ip_frame(b"\x00\x00\x00\x09payload"),  # v3 data over IP
        udp_frame(b"x", sport=53, dport=53),  # not L2TP
    ]
    path = tmp_path / "c.pcap"
    with path.open("wb") as f:
        write_pcap(f, frames)
    return path


def test_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", str(_capture(tmp_path)), "--secret", "pw"]) == 0
    out = capsys.readouterr().out
    assert "#1 192.0.2.1 > 192.0.2.2 L2TPv2 HELLO tunnel=4 session=0 Ns=1 Nr=2" in out
    assert "#2 MALFORMED: length field 32 exceeds datagram" in out
    assert "Assigned Session ID [M,H]: 77" in out
    assert "#4 L2TPv2 data tunnel_id=4 session_id=5 8 bytes" in out
    assert "message digest: ok" in out
    assert "#6 L2TPv3 data session_id=9" in out
    assert "#7" not in out


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", str(_capture(tmp_path)), "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in records] == [
        "control",
        "malformed",
        "control",
        "data",
        "control",
        "data",
    ]
    hello = records[0]
    assert (
        hello["frame"],
        hello["version"],
        hello["message_type"],
        hello["tunnel_id"],
        hello["ns"],
        hello["nr"],
    ) == (1, 2, "HELLO", 4, 1, 2)
    icrp = records[2]
    assert icrp["avps"][1] == {
        "vendor": 0,
        "type": 14,
        "name": "Assigned Session ID",
        "mandatory": True,
        "hidden": True,
        "value": icrp["avps"][1]["value"],
        "opaque": True,
    }
    sccrq = records[4]
    assert sccrq["version"] == 3 and sccrq["transport"] == "ip"
    assert "digest" not in sccrq  # no secret given


def test_wrong_secret_flags_digest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["decode", str(_capture(tmp_path)), "--secret", "nope", "--json"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[4]["digest"].startswith("bad")
    # A wrong v2 secret makes the hidden AVP undecodable: reported as malformed, not a crash.
    assert records[2]["kind"] in ("malformed", "control")


def test_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _capture(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    assert main(["decode", str(path)]) == 1
    out = capsys.readouterr().out
    assert "capture error" in out and "HELLO" in out
    assert main(["decode", str(tmp_path / "missing.pcap")]) == 1
