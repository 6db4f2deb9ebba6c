"""Every L2TPv3 control message our runtime sends, captured on loopback and checked by tshark.

Two :class:`L2tpContext` exchange SCCRQ/SCCRP/SCCCN, ICRQ/ICRP/ICCN, HELLO,
ACK, CDN (a hang-up and a refused call) and StopCCN over UDP on loopback,
with HMAC-SHA-1 digests, while tcpdump records them. tshark must dissect every
one with no malformed-packet expert info, validate every digest with the secret
and agree with our decoder field by field. (The IP-encapsulated variant needs a
kernel with L2TP: tests/kernel/test_l2tpd.py captures it in the test VM.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from l2tp.cli.decode import decode_capture
from l2tp.protocol.constants import DigestType
from l2tp.protocol.events import CallParams, Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.control import L2tpContext, ListenOptions, PseudowireOffer, SessionFailed
from tests.helpers import require_tool
from tests.tshark_oracle import assert_matches_tshark

pytestmark = pytest.mark.loopback

SECRET = b"capture-secret"
PORT = 17017


def _v3(role: Role) -> TunnelConfig:
    return TunnelConfig(
        role=role,
        version=3,
        host_name=role.value,
        secret=SECRET,
        digest_type=DigestType.HMAC_SHA1,
        transport=TransportConfig(hello_interval=0.3),
    )


def _start_tcpdump(tcpdump: str, pcap: Path) -> subprocess.Popen[bytes]:
    log = pcap.with_suffix(".log")
    proc = subprocess.Popen(
        [tcpdump, "-n", "-U", "-s", "0", "-i", "lo", "-w", str(pcap), f"udp port {PORT}"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while "listening on" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"tcpdump did not start: {log.read_text(errors='replace')}")
        time.sleep(0.05)
    return proc


def test_every_v3_message_we_send_dissects_cleanly(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("capturing on lo needs root")
    tshark = require_tool("tshark")
    tcpdump = require_tool("tcpdump")
    pcap = tmp_path / "v3-loopback.pcap"

    async def scenario() -> None:
        async with L2tpContext() as resp, L2tpContext() as init:
            listener = await resp.listen(
                # Two addresses: tshark keys the digest nonces by IP address alone.
                ("127.0.0.2", PORT),
                config=ListenerConfig(tunnel=_v3(Role.LNS)),
                options=ListenOptions(
                    pseudowires=(
                        PseudowireOffer(remote_end_id="lan", params=CallParams(cookie_length=8)),
                    )
                ),
            )
            t = await init.open_tunnel(listener.address, ("127.0.0.1", 0), config=_v3(Role.LAC))
            s = await t.open_session(
                CallParams(
                    remote_end_id="lan",
                    cookie_length=4,
                    l2_specific_sublayer=1,
                    data_sequencing=2,
                )
            )
            with pytest.raises(SessionFailed):  # CDN from the responder
                await t.open_session(CallParams(remote_end_id="elsewhere"))
            await asyncio.sleep(0.8)  # HELLOs both ways, acknowledged
            await s.close()  # CDN from the initiator
            await t.close()  # StopCCN

    proc = _start_tcpdump(tcpdump, pcap)
    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)

    records = list(decode_capture(pcap, secret=SECRET, ports=(PORT,)))
    control = [r for r in records if r.get("kind") == "control"]
    counts = Counter(r["message_type"] for r in control)
    for name in ("SCCRQ", "SCCRP", "SCCCN", "ICRQ", "ICRP", "ICCN", "HELLO", "CDN", "STOPCCN"):
        assert counts[name] >= 1, f"no {name}: {counts}"
    assert counts["CDN"] >= 2, counts
    assert all(r["version"] == 3 for r in control)
    digests = [r.get("digest") for r in control if r["message_type"] != "ZLB"]
    assert digests and all(d == "ok" for d in digests), digests
    assert_matches_tshark(tshark, pcap, secret=SECRET, ports=(PORT,))
