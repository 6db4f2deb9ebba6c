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
from tests.helpers import require_tool, until, wait_until
from tests.tshark_oracle import assert_matches_tshark

pytestmark = pytest.mark.loopback

SECRET = b"capture-secret"


def _v3(role: Role) -> TunnelConfig:
    return TunnelConfig(
        role=role,
        version=3,
        host_name=role.value,
        secret=SECRET,
        digest_type=DigestType.HMAC_SHA1,
        transport=TransportConfig(hello_interval=0.3),
    )


def _start_tcpdump(tcpdump: str, pcap: Path, port: int) -> subprocess.Popen[bytes]:
    log = pcap.with_suffix(".log")
    proc = subprocess.Popen(
        [tcpdump, "-n", "-U", "-s", "0", "-i", "lo", "-w", str(pcap), f"udp port {port}"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: "listening on" in log.read_text(errors="replace") or proc.poll() is not None,
            20,
            "tcpdump to start",
        )
    except AssertionError:
        proc.kill()
        raise
    if proc.poll() is not None:
        pytest.fail(f"tcpdump did not start: {log.read_text(errors='replace')}")
    return proc


def _captured(pcap: Path, port: int) -> Counter[str]:
    """Control messages in the capture so far, by type."""
    records = decode_capture(pcap, secret=SECRET, ports=(port,))
    return Counter(str(r["message_type"]) for r in records if r.get("kind") == "control")


def test_every_v3_message_we_send_dissects_cleanly(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("capturing on lo needs root")
    tshark = require_tool("tshark")
    tcpdump = require_tool("tcpdump")
    pcap = tmp_path / "v3-loopback.pcap"
    tcpdumps: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []

    async def scenario() -> None:
        async with L2tpContext() as resp, L2tpContext() as init:
            listener = await resp.listen(
                # Two addresses: tshark keys the digest nonces by IP address alone.
                ("127.0.0.2", 0),
                config=ListenerConfig(tunnel=_v3(Role.LNS)),
                options=ListenOptions(
                    pseudowires=(
                        PseudowireOffer(remote_end_id="lan", params=CallParams(cookie_length=8)),
                    )
                ),
            )
            port = listener.address[1]
            ports.append(port)
            # Capture the port the listener bound, from before the first SCCRQ.
            tcpdumps.append(await asyncio.to_thread(_start_tcpdump, tcpdump, pcap, port))
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
            (rt,) = listener.tunnels.values()
            # A HELLO each way (after hello_interval without traffic), acknowledged.
            ends = (t.tunnel, rt.tunnel)
            await until(
                lambda: all(e.transport.counters.hello_sent and not e.unacknowledged for e in ends),
                "a HELLO from each end, acknowledged",
            )
            await s.close()  # CDN from the initiator
            await t.close()  # StopCCN

    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))
        (port,) = ports
        # tcpdump writes each packet as it gets it (-U): wait for the last one to land.
        wait_until(lambda: _captured(pcap, port)["STOPCCN"], what="the StopCCN in the capture")
    finally:
        for proc in tcpdumps:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)

    records = list(decode_capture(pcap, secret=SECRET, ports=(port,)))
    control = [r for r in records if r.get("kind") == "control"]
    counts = Counter(r["message_type"] for r in control)
    for name in ("SCCRQ", "SCCRP", "SCCCN", "ICRQ", "ICRP", "ICCN", "HELLO", "CDN", "STOPCCN"):
        assert counts[name] >= 1, f"no {name}: {counts}"
    # ACK, the L2TPv3 explicit acknowledgement: at least one for each HELLO.
    assert counts["CDN"] >= 2 and counts["ACK"] >= 2, counts
    assert all(r["version"] == 3 for r in control)
    digests = [r.get("digest") for r in control if r["message_type"] != "ZLB"]
    assert digests and all(d == "ok" for d in digests), digests
    assert_matches_tshark(tshark, pcap, secret=SECRET, ports=(port,))
