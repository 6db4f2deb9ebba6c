"""tshark as the oracle for the PPP frames inside captured L2TP data messages (issue 17).

:mod:`tests.tshark_oracle` compares our decoding of control messages with tshark's; the PPP
frames the built-in PPP writes to the kernel's channels travel as L2TP *data* messages, and
the check for them is simpler: tshark, which knows LCP, PAP, CHAP (MD5 and MS-CHAPv2),
IPCP, IPv6CP and what IP carries, must decode every one of them without a malformed packet
and without an expert note that says the frame breaks its protocol. What counts as such a
note: severity Error in any group, or Warning in the groups Malformed, Protocol or
Undecoded (a bad option length is only a Warning/Protocol note in tshark 4.0; the notes of
the Sequence, Checksum, Comment and Chat groups say nothing about the frame's encoding).
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SEVERITY_WARNING = 0x00600000
SEVERITY_ERROR = 0x00800000
BAD_WARNING_GROUPS = {
    0x07000000: "Malformed",
    0x09000000: "Protocol",
    0x05000000: "Undecoded",
}
"""epan/proto.h ``PI_*`` groups whose Warning notes mean a badly built frame."""
LOWER_LAYERS = {"geninfo", "frame", "eth", "ethertype", "ip", "ipv6", "udp", "l2tp"}


@dataclass(slots=True)
class PppFrame:
    """One L2TP data message carrying PPP, as tshark dissected it."""

    frame: int
    protocols: tuple[str, ...]
    """tshark's protocol names from ``ppp`` inwards, e.g. ``("ppp", "lcp")``."""
    problems: list[str] = field(default_factory=list)


def ppp_frames(tshark: str, capture: Path, ports: tuple[int, ...] = (1701,)) -> list[PppFrame]:
    """Every frame of ``capture`` that tshark decodes as an L2TP data message with PPP."""
    args = [tshark, "-n", "-r", str(capture), "-T", "pdml"]
    for port in ports:
        if port != 1701:
            args += ["-d", f"udp.port=={port},l2tp"]
    out = subprocess.run(args, check=True, capture_output=True, timeout=300).stdout
    frames: list[PppFrame] = []
    for packet in ET.fromstring(out).iter("packet"):
        names = [p.get("name", "") for p in packet.findall("proto")]
        if "l2tp" not in names or "ppp" not in names:
            continue
        l2tp = packet.findall("proto")[names.index("l2tp")]
        kind = next(
            (f.get("show") for f in l2tp.iter("field") if f.get("name") == "l2tp.type"), None
        )
        if kind not in (None, "0"):  # a control message (v2); v3 data has no type field
            continue
        number = 0
        for f in packet.iter("field"):
            if f.get("name") == "frame.number":
                number = int(f.get("show", "0"))
                break
        inner = names[names.index("ppp") :]
        frames.append(
            PppFrame(
                frame=number,
                protocols=tuple(n for n in inner if not n.startswith("_ws")),
                problems=_problems(packet),
            )
        )
    return frames


def _problems(packet: ET.Element) -> list[str]:
    found = [
        p.get("showname", "malformed")
        for p in packet.iter("proto")
        if p.get("name") == "_ws.malformed" and p.get("hide") != "yes"
    ]
    for expert in packet.iter("field"):
        if expert.get("name") != "_ws.expert":
            continue
        values = {f.get("name"): f.get("show", "") for f in expert.iter("field")}
        severity = int(values.get("_ws.expert.severity") or 0)
        group = int(values.get("_ws.expert.group") or 0)
        if severity >= SEVERITY_ERROR or (
            severity >= SEVERITY_WARNING and group in BAD_WARNING_GROUPS
        ):
            found.append(expert.get("showname", "expert note"))
    return found


def assert_ppp_frames_decode(
    tshark: str, capture: Path, *, expect: set[str], ports: tuple[int, ...] = (1701,)
) -> Counter[str]:
    """Every PPP frame in ``capture`` decodes cleanly and the protocols ``expect`` (tshark
    names: ``lcp``, ``chap``, ``pap``, ``ipcp``, ``ipv6cp``, ``icmp``, ``icmpv6`` ...) were
    all seen; returns how many frames carried each protocol."""
    frames = ppp_frames(tshark, capture, ports)
    assert frames, f"{capture}: no L2TP data frame with PPP"
    bad = [f"frame {f.frame} {'/'.join(f.protocols)}: {f.problems}" for f in frames if f.problems]
    assert not bad, f"{capture}: " + "; ".join(bad)
    seen: Counter[str] = Counter(p for f in frames for p in set(f.protocols))
    missing = expect - set(seen)
    assert not missing, f"{capture}: no {sorted(missing)} among {dict(seen)}"
    return seen
