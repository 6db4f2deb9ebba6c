"""Accounting of a real built-in PPP session: our kl2tpd (peer role) -> our l2tp-lns with
built-in PPP and the accounting observer (in-memory accounting client); ping across; the
Stop's octet counts are the LNS interface's counters (read over rtnetlink before the
interface goes) and its Acct-Tunnel-Packets-Lost the kernel session's, the Start names
the user and what the first NCP gave it. Dual-stack (IPCP and IPv6CP, ping and ping6):
one Start, at the first NCP, with the address IPCP gave or the peer's IPv6CP
Interface-Identifier (Framed-Interface-Id, RFC 3162 2.2); the Stop counts both families."""

from __future__ import annotations

import asyncio
import json
import subprocess
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

from l2tp import config as cfg
from l2tp.radius.accounting import AccountingEngine
from l2tp.radius.records import NasIdentity
from l2tp.radius.session_accounting import PppAccounting
from l2tp.radius.spool import Spool
from tests.helpers import until_blocking
from tests.kernel.conftest import VethPair
from tests.kernel.test_builtin_ppp import Side, ping, ppp_links, sides
from tests.unit.radius_fakes import MemoryClient, value

SECRETS = 'alice * "correct horse"\n'


def ip_stats(ns: str, dev: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "-s", "link", "show", dev], capture_output=True, text=True
    ).stdout
    stats: dict[str, Any] = json.loads(out)[0]["stats64"]
    return stats


def test_stop_record_counts_the_session_interface_traffic(
    veth_pair: VethPair, tmp_path: Path
) -> None:
    pair = veth_pair
    secrets = tmp_path / "chap-secrets"
    secrets.write_text(SECRETS)
    lns = Side(
        pair.ns_a,
        f"""
[listener.main]
listen = "{pair.a4}:1701"
ppp = "builtin"
[listener.main.builtin_ppp]
auth = ["chap-md5"]
secrets = "{secrets}"
local_address = "10.72.0.1"
address_pool = "10.72.0.0/29"
interface_name = "acct%d"
ipv6 = true
""",
        cfg.Daemon.LNS,
    )
    lac = Side(
        pair.ns_b,
        f"""
[tunnel.t1]
peer = "{pair.a4}:1701"
[tunnel.t1.session.s1]
ppp = "builtin"
[tunnel.t1.session.s1.builtin_ppp]
auth = ["chap-md5"]
user = "alice"
password = "correct horse"
ipv6 = true
""",
        cfg.Daemon.KL2TPD,
    )
    client = MemoryClient()

    async def scenario() -> None:
        engine = AccountingEngine(client, Spool(None), nas=NasIdentity(identifier="lns1"))
        await engine.start()
        lns.builtin.observer = PppAccounting(engine)
        try:
            async with sides(lns, lac):
                await until_blocking(
                    lambda: len(ppp_links(pair.ns_a).get("acct0", {})) == 2,
                    60,
                    "the LNS interface with both families",
                )
                await until_blocking(lambda: client.acked, 10, "the Start")
                start = client.acked[0]
                peer = ppp_links(pair.ns_a)["acct0"]["inet"][1]
                peer6 = ppp_links(pair.ns_a)["acct0"]["inet6"][1]
                assert value(start, "User-Name") == "alice"
                described = dict(start)
                assert "Framed-IP-Address" in described or "Framed-Interface-Id" in described
                if "Framed-IP-Address" in described:
                    assert described["Framed-IP-Address"] == peer
                if "Framed-Interface-Id" in described:
                    assert described["Framed-Interface-Id"] == IPv6Address(peer6).packed[8:]
                await asyncio.to_thread(ping, pair.ns_a, peer, count=3)
                await asyncio.to_thread(ping, pair.ns_a, f"{peer6}%acct0", interface="acct0")
                before = ip_stats(pair.ns_a, "acct0")
                assert before["tx"]["bytes"] > 0 and before["rx"]["bytes"] > 0
                await lac.close()  # StopCCN: the LNS stops the session
                await until_blocking(lambda: len(client.acked) == 2, 20, "the Stop")
        finally:
            await engine.close()
        assert [value(record, "Acct-Status-Type") for record in client.acked] == [1, 2]
        stop = client.acked[1]
        assert value(stop, "Acct-Input-Gigawords") == 0
        for attribute, side in (("Acct-Input-Octets", "rx"), ("Acct-Output-Octets", "tx")):
            octets = value(stop, attribute)
            assert isinstance(octets, int)
            # The interface's counters at the end: at least what it had counted before the
            # close, and nothing it did not carry (no traffic but the pings goes there).
            assert before[side]["bytes"] <= octets <= before[side]["bytes"] + 1500
        assert value(stop, "Acct-Input-Packets") >= before["rx"]["packets"]
        # Acct-Tunnel-Packets-Lost (RFC 2867 4.2): the kernel L2TP session's
        # rx_seq_discards, read when the StopCCN's tear-down began stopping the PPP
        # (before the kernel tunnel, and its sessions, are deleted): present, and 0.
        assert value(stop, "Acct-Tunnel-Packets-Lost") == 0
        assert engine.counters.lost_errors == 0

    asyncio.run(asyncio.wait_for(scenario(), 120))
