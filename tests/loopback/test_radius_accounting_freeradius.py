"""RADIUS accounting against a real FreeRADIUS (tests/freeradius.py): the records in its
``detail`` file.

1. The daemons' :class:`~l2tp.daemons.radius_accounting.AccountingService` configured
   from a ``[radius]`` with ``acct_servers`` only, on a whole built-in PPP session (two
   backends over socket pairs, tests/unit/builtin_ppp_fakes.py) authenticated from a
   secrets file: Start and Stop with the Acct-Session-Id, the octets, Acct-Authentic
   Local, and the Stop's Acct-Terminate-Cause from ``l2tp ctl close`` (Admin-Reset).
2. The issue's "nothing lost": the engine with :class:`~l2tp.radius.client.RadiusClient`
   and a spool file; FreeRADIUS stopped during a session, the Stop spooled, the engine
   (the daemon) restarted from the same spool file, FreeRADIUS restarted: the Stop is in
   the ``detail`` file exactly once.
3. An IPv6-only session (the user's PPP runs IPv6CP only): its Start and Stop, with
   Framed-Interface-Id (RFC 3162 2.2) and no Framed-IP-Address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from ipaddress import IPv6Address, ip_address
from pathlib import Path

import pytest

from l2tp.config.model import Endpoint, RadiusAccounting, RadiusSection, RadiusServerEntry
from l2tp.daemons.radius_accounting import AccountingService
from l2tp.radius.accounting import AccountingEngine
from l2tp.radius.client import RadiusClient, RadiusServer
from l2tp.radius.records import (
    Counters,
    NasIdentity,
    SessionDescription,
    SessionEnd,
    TunnelDescription,
)
from l2tp.radius.spool import Spool
from tests.freeradius import FreeRadius
from tests.helpers import until
from tests.unit.test_builtin_ppp_backend import lac_options, lns_options, make_pair
from tests.unit.test_radius_accounting_ipv6 import lns_v6_address, peer_runs_ipv6_only

pytestmark = pytest.mark.loopback


@pytest.fixture
def radius(tmp_path: Path) -> Iterator[FreeRadius]:
    server = FreeRadius(tmp_path / "freeradius")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def accounting_section(
    radius: FreeRadius, tmp_path: Path, *, tunnel_accounting: bool = False
) -> RadiusSection:
    """``[radius]`` with accounting only, to ``radius``, spooled in ``tmp_path``."""
    server = RadiusServerEntry(
        address=Endpoint(address=ip_address("127.0.0.1"), port=radius.acct_port),
        secret=radius.secret,
    )
    return RadiusSection(
        nas_identifier="lns-test",
        accounting=RadiusAccounting(
            servers=(server,),
            spool=str(tmp_path / "acct.spool"),
            tunnel_accounting=tunnel_accounting,
        ),
    )


def records_of(radius: FreeRadius, acct_session_id: str) -> list[dict[str, str]]:
    return [r for r in radius.detail_records() if r.get("Acct-Session-Id") == acct_session_id]


def test_service_accounts_a_builtin_ppp_session_into_the_detail_file(
    radius: FreeRadius, tmp_path: Path
) -> None:
    async def stats(netns: str | None, ifindex: int) -> Counters:
        return Counters(input_octets=5 * 2**32 + 7, output_octets=4321, input_packets=9)

    async def lost(view: object) -> int:
        return 3  # the kernel session's rx_seq_discards (a kernel-tier test reads them)

    async def scenario() -> None:
        pair = make_pair()
        service = AccountingService(pair.lns, stats=stats, lost=lost)
        section = accounting_section(radius, tmp_path)
        try:
            assert await service.configure(section)
            await pair.start(lns_options(tmp_path), lac_options())
            key = pair.sessions["lns"].key
            await until(lambda: service.acct_session_id(key) is not None, "accounting Start")
            acct_id = service.acct_session_id(key)
            assert acct_id is not None
            await until(lambda: records_of(radius, acct_id), "the Start in the detail file")
            service.operator_close(*key)  # l2tp ctl close session
            await pair.lns.stop(pair.sessions["lns"])
            await until(lambda: len(records_of(radius, acct_id)) == 2, "the Stop", timeout=10)
            await until(lambda: not service.engine.spool.pending, "acknowledged")  # type: ignore[union-attr]
            snapshot = service.snapshot()
            assert snapshot is not None
            assert (snapshot["accounting_starts"], snapshot["accounting_stops"]) == (1, 1)
            assert snapshot["accounting_acknowledged"] == 2
        finally:
            await pair.close()
            await service.close(drain=2.0)
        start, stop = records_of(radius, acct_id)
        assert start["Acct-Status-Type"] == "Start"
        assert start["User-Name"] == "alice"
        assert start["Acct-Authentic"] == "Local"  # a secrets file, not RADIUS
        assert start["NAS-Identifier"] == "lns-test"
        assert stop["Acct-Status-Type"] == "Stop"
        assert stop["Acct-Terminate-Cause"] == "Admin-Reset"
        assert stop["Acct-Input-Octets"] == "7"
        assert stop["Acct-Input-Gigawords"] == "5"
        assert stop["Acct-Output-Octets"] == "4321"
        assert stop["Acct-Input-Packets"] == "9"
        assert stop["Acct-Tunnel-Packets-Lost"] == "3"  # RFC 2867 4.2
        assert "Acct-Tunnel-Packets-Lost" not in start
        assert start["Framed-IP-Address"] == stop["Framed-IP-Address"]

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_an_ipv6_only_session_is_accounted_with_framed_interface_id(
    radius: FreeRadius, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    peer_runs_ipv6_only(monkeypatch)

    async def stats(netns: str | None, ifindex: int) -> Counters:
        return Counters(input_octets=600, output_octets=800)

    async def scenario() -> tuple[str, bytes]:
        pair = make_pair()
        service = AccountingService(pair.lns, stats=stats)
        section = accounting_section(radius, tmp_path)
        try:
            assert await service.configure(section)
            await pair.start(lns_options(tmp_path, ipv6=True), lac_options(ipv6=True))
            key = pair.sessions["lns"].key
            await until(lambda: service.acct_session_id(key) is not None, "accounting Start")
            acct_id = service.acct_session_id(key)
            assert acct_id is not None
            peer = lns_v6_address(pair)[3]
            assert isinstance(peer, IPv6Address)
            await until(lambda: records_of(radius, acct_id), "the Start in the detail file")
            await pair.lns.stop(pair.sessions["lns"])
            await until(lambda: len(records_of(radius, acct_id)) == 2, "the Stop", timeout=10)
        finally:
            await pair.close()
            await service.close(drain=2.0)
        return acct_id, peer.packed[8:]

    acct_id, interface_id = asyncio.run(asyncio.wait_for(scenario(), 60))
    start, stop = records_of(radius, acct_id)
    assert (start["Acct-Status-Type"], stop["Acct-Status-Type"]) == ("Start", "Stop")
    for record in (start, stop):
        groups = record["Framed-Interface-Id"].split(":")  # as FreeRADIUS prints an ifid
        assert b"".join(int(g, 16).to_bytes(2, "big") for g in groups) == interface_id
        assert "Framed-IP-Address" not in record
    assert (stop["Acct-Input-Octets"], stop["Acct-Output-Octets"]) == ("600", "800")


def session(acct_session_id: str) -> SessionDescription:
    return SessionDescription(
        acct_session_id=acct_session_id,
        user_name="bob",
        started_at=1_780_000_000.0,
        tunnel=TunnelDescription(
            tunnel_id=10,
            peer_tunnel_id=20,
            client_endpoint="127.0.0.2",
            server_endpoint="127.0.0.1",
        ),
        session_id=1,
        framed_address="10.0.0.2",
        nas=NasIdentity(identifier="lns-test"),
    )


def test_a_stop_spooled_while_freeradius_is_down_arrives_exactly_once(
    radius: FreeRadius, tmp_path: Path
) -> None:
    path = tmp_path / "acct.spool"

    def engine() -> AccountingEngine:
        server = RadiusServer("127.0.0.1", radius.acct_port, radius.secret.encode())
        client = RadiusClient(acct_servers=[server], timeout=0.3, retries=1)
        return AccountingEngine(client, Spool(str(path)), backoff_base=0.2, backoff_cap=1.0)

    async def scenario() -> None:
        acct_id = f"spool-{radius.acct_port}"
        first = engine()
        await first.start()
        first.session_started(session(acct_id))
        await until(lambda: records_of(radius, acct_id), "the Start in the detail file")
        await asyncio.to_thread(radius.stop)  # FreeRADIUS goes down during the session
        await first.session_stopped(acct_id, SessionEnd.PEER_CDN, Counters(1000, 2000, 10, 20))
        await until(lambda: first.counters.timeouts >= 1, "the Stop timing out", timeout=10)
        await first.close()  # the daemon stops: the Stop stays in the spool file
        first.client.close()  # type: ignore[attr-defined]
        assert len(first.spool.pending) == 1 and first.counters.deferred == 1

        second = engine()  # the daemon again, from the same spool file
        await second.start()
        assert second.spool.counters.replayed == 1
        await until(lambda: second.counters.timeouts >= 1, "a replay timing out", timeout=10)
        await asyncio.to_thread(radius.start, keep_ports=True)  # FreeRADIUS is back
        await until(lambda: not second.spool.pending, "the Stop delivered", timeout=15)
        await second.close()
        second.client.close()  # type: ignore[attr-defined]

        third = engine()  # and again: nothing is sent twice
        await third.start()
        assert third.spool.counters.replayed == 0 and not third.spool.pending
        await third.close()
        third.client.close()  # type: ignore[attr-defined]

        start, stop = records_of(radius, acct_id)  # exactly one Start and one Stop
        assert start["Acct-Status-Type"] == "Start"
        assert stop["Acct-Status-Type"] == "Stop"
        assert stop["Acct-Terminate-Cause"] == "User-Request"  # the LAC's CDN
        assert (stop["Acct-Input-Octets"], stop["Acct-Output-Octets"]) == ("1000", "2000")
        assert int(stop["Acct-Delay-Time"]) >= 0

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_start_interim_updates_and_stop_in_order(radius: FreeRadius, tmp_path: Path) -> None:
    """Interim-Updates (RFC 2869 5.16) between the Start and the Stop, each with the
    counters read at its time: the interval here is shortened below RFC 2869's 60 s
    minimum through the engine's ``min_interim`` (the daemons keep 60)."""
    reads: list[Counters] = []

    async def read_counters() -> Counters:
        n = len(reads) + 1
        reads.append(Counters(100 * n, 200 * n, n, 2 * n))
        return reads[-1]

    async def scenario() -> None:
        server = RadiusServer("127.0.0.1", radius.acct_port, radius.secret.encode())
        client = RadiusClient(acct_servers=[server], timeout=0.5, retries=2)
        engine = AccountingEngine(
            client, Spool(str(tmp_path / "acct.spool")), interim_interval=0.4, min_interim=0.4
        )
        await engine.start()
        acct_id = f"interim-{radius.acct_port}"
        engine.session_started(session(acct_id), read_counters=read_counters)
        await until(
            lambda: (
                sum(r["Acct-Status-Type"] == "Interim-Update" for r in records_of(radius, acct_id))
                >= 2
            ),
            "two Interim-Updates in the detail file",
            timeout=15,
        )
        await engine.session_stopped(acct_id, SessionEnd.ADMIN_CLOSE, Counters(999, 1999, 9, 19))
        await until(lambda: not engine.spool.pending, "everything acknowledged", timeout=10)
        await engine.close()
        client.close()
        kinds = [r["Acct-Status-Type"] for r in records_of(radius, acct_id)]
        assert kinds[0] == "Start" and kinds[-1] == "Stop", kinds
        interims = [r for r in records_of(radius, acct_id) if r["Acct-Status-Type"] != "Start"]
        interims = interims[:-1]
        assert len(interims) >= 2 and set(kinds[1:-1]) == {"Interim-Update"}, kinds
        octets = [int(r["Acct-Input-Octets"]) for r in interims]
        assert octets == sorted(octets) and octets[0] >= 100, octets  # read at each send
        assert all(int(r["Acct-Session-Time"]) >= 0 for r in interims)
        stop = records_of(radius, acct_id)[-1]
        assert (stop["Acct-Input-Octets"], stop["Acct-Terminate-Cause"]) == ("999", "Admin-Reset")

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_rejected_tunnels_and_sessions_in_the_detail_file(
    radius: FreeRadius, tmp_path: Path
) -> None:
    """With ``tunnel_accounting``: a LAC with the wrong tunnel secret (our StopCCN 4 after
    its SCCCN) is one Tunnel-Reject with User-Error, its Host Name and endpoints; a
    tunnel refused at the tunnel limit (stateless, no tunnel) is none; a PPP session
    whose password is wrong is one Tunnel-Link-Reject with User-Error and the user's
    name. Over real UDP on 127.0.0.1 (null data plane), FreeRADIUS's ``detail`` file."""
    from l2tp.kernel.async_null import AsyncNullDataPlane
    from l2tp.protocol.constants import StopCcnResult
    from l2tp.protocol.events import Role
    from l2tp.protocol.listener import ListenerConfig
    from l2tp.protocol.tunnel import TunnelConfig
    from l2tp.runtime.control import L2tpContext, TunnelFailed

    def of_status(status: str) -> list[dict[str, str]]:
        return [r for r in radius.detail_records() if r.get("Acct-Status-Type") == status]

    async def scenario() -> None:
        pair = make_pair()
        service = AccountingService(pair.lns)
        section = accounting_section(radius, tmp_path, tunnel_accounting=True)
        lns_tunnel = TunnelConfig(role=Role.LNS, host_name="lns", secret=b"right")
        try:
            assert await service.configure(section)
            engine = service.engine
            assert engine is not None
            async with (
                L2tpContext(dataplane=AsyncNullDataPlane()) as lns,
                L2tpContext(dataplane=AsyncNullDataPlane()) as lac,
            ):
                service.watch(lns)
                listener = await lns.listen(
                    ("127.0.0.1", 0), config=ListenerConfig(tunnel=lns_tunnel, max_tunnels=1)
                )
                # The LAC finds our Challenge Response wrong (its StopCCN 4) ...
                wrong = TunnelConfig(role=Role.LAC, host_name="lac-w1", secret=b"wrong")
                with pytest.raises(TunnelFailed) as failed:
                    await lac.open_tunnel(listener.address, config=wrong)
                reason = failed.value.event.reason
                assert reason is not None and reason.result == StopCcnResult.NOT_AUTHORIZED
                # ... and one that does not challenge gets ours wrong: its SCCCN (after
                # which it thinks the tunnel up) draws our StopCCN 4.
                wrong = TunnelConfig(
                    role=Role.LAC, host_name="lac-w2", secret=b"wrong", challenge=False
                )
                refused = await lac.open_tunnel(listener.address, config=wrong)
                closed = await refused.wait_closed()
                assert closed.by_peer and closed.reason is not None
                assert closed.reason.result == StopCcnResult.NOT_AUTHORIZED
                await until(
                    lambda: len(of_status("Tunnel-Reject")) == 2, "the Tunnel-Rejects", timeout=10
                )
                # One tunnel up fills the limit; the next SCCRQ is refused statelessly.
                right = TunnelConfig(role=Role.LAC, host_name="lac-r", secret=b"right")
                up = await lac.open_tunnel(listener.address, config=right)
                with pytest.raises(TunnelFailed):
                    await lac.open_tunnel(listener.address, config=right)
                assert listener.listener.counters.rejected == 1
                await up.close()
                await until(lambda: of_status("Tunnel-Stop"), "the Tunnel-Stop", timeout=10)
            await pair.start(lns_options(tmp_path), lac_options(password="wrong horse"))
            await until(lambda: of_status("Tunnel-Link-Reject"), "the Link-Reject", timeout=10)
            await pair.lns.stop(pair.sessions["lns"])
            await until(lambda: not engine.spool.pending, "acknowledged")
            # Two wrong secrets, Tunnel-Start and -Stop, the Link-Reject: nothing for
            # the tunnel refused at the limit.
            assert engine.counters.tunnel_records == 5
        finally:
            await pair.close()
            await service.close(drain=2.0)
        rejects = {r["Tunnel-Client-Auth-Id:0"]: r for r in of_status("Tunnel-Reject")}
        assert sorted(rejects) == ["lac-w1", "lac-w2"]
        for tunnel_reject in rejects.values():
            assert tunnel_reject["Acct-Terminate-Cause"] == "User-Error"
            assert tunnel_reject["Tunnel-Client-Endpoint:0"] == "127.0.0.1"
            assert tunnel_reject["Tunnel-Server-Endpoint:0"] == "127.0.0.1"
            assert tunnel_reject["Tunnel-Type:0"] == "L2TP"
            assert tunnel_reject["NAS-Identifier"] == "lns-test"
            assert "Acct-Session-Id" in tunnel_reject and "User-Name" not in tunnel_reject
        (link_reject,) = of_status("Tunnel-Link-Reject")
        assert link_reject["User-Name"] == "alice"
        assert link_reject["Acct-Terminate-Cause"] == "User-Error"
        assert link_reject["Acct-Tunnel-Connection"] == "10/1"
        assert link_reject["Tunnel-Client-Endpoint:0"] == "192.0.2.2"
        assert not of_status("Start") and not of_status("Stop")  # no session came up

    asyncio.run(asyncio.wait_for(scenario(), 60))
