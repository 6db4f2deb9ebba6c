"""The interface counters accounting reads (IFLA_STATS64 over rtnetlink) against a real
kernel: after traffic on a veth, ours lie between two ``ip -s link`` readings taken
around them, and :class:`~l2tp.radius.session_accounting.KernelCounters` maps receive to
Acct-Input and transmit to Acct-Output (RFC 2866 5.3-5.4, from the user's side)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

from l2tp.kernel.rtnl import AsyncRtnl, LinkStats
from l2tp.radius.session_accounting import KernelCounters
from tests.helpers import require_tool
from tests.kernel.conftest import VethPair


def ip_stats(ns: str, dev: str) -> dict[str, Any]:
    done = subprocess.run(
        [require_tool("ip"), "-n", ns, "-j", "-s", "link", "show", dev],
        capture_output=True,
        text=True,
        check=True,
    )
    stats: dict[str, Any] = json.loads(done.stdout)[0]["stats64"]
    return stats


def test_link_stats_match_the_kernel_interface_counters(veth_pair: VethPair) -> None:
    ns = veth_pair.ns_a
    ping = [require_tool("ping"), "-n", "-q", "-c", "3", "-i", "0.2", "-s", "1200"]
    subprocess.run(
        ["ip", "netns", "exec", ns, *ping, veth_pair.b4],
        check=True,
        capture_output=True,
        timeout=30,
    )

    async def read() -> tuple[LinkStats, Any]:
        rtnl = AsyncRtnl(netns=ns)
        counters = KernelCounters()
        try:
            index = await rtnl.link_index("va")
            stats = await rtnl.link_stats(index)
            mapped = await counters(ns, index)
        finally:
            await rtnl.aclose()
            await counters.aclose()
        return stats, mapped

    before = ip_stats(ns, "va")
    stats, mapped = asyncio.run(read())
    after = ip_stats(ns, "va")
    assert stats.tx_bytes >= 3 * 1200  # the echo requests went out here
    assert stats.rx_bytes >= 3 * 1200  # and the replies came back
    assert before["rx"]["bytes"] <= stats.rx_bytes <= after["rx"]["bytes"]
    assert before["tx"]["bytes"] <= stats.tx_bytes <= after["tx"]["bytes"]
    assert before["rx"]["packets"] <= stats.rx_packets <= after["rx"]["packets"]
    assert before["tx"]["packets"] <= stats.tx_packets <= after["tx"]["packets"]
    assert mapped.input_octets >= stats.rx_bytes and mapped.output_octets >= stats.tx_bytes
    assert mapped.input_octets <= after["rx"]["bytes"]
    assert mapped.output_packets <= after["tx"]["packets"]
