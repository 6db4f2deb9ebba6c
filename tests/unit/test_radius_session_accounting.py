"""The built-in PPP backend's session observer and the accounting that subscribes to it:
up once IPCP is up on the interface, down with how it ended before the interface goes,
counters read through rtnetlink's IFLA_STATS64 (parsed here from a hand-made reply)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from l2tp.kernel.codec import nla
from l2tp.kernel.pipeline import Request
from l2tp.kernel.rtnl import IFLA_IFNAME, IFLA_STATS64, LinkStats, link_stats
from l2tp.radius.accounting import AccountingEngine
from l2tp.radius.records import Counters, NasIdentity, SessionEnd
from l2tp.radius.session_accounting import AcceptInfo, PppAccounting
from l2tp.radius.spool import Spool
from l2tp.runtime.builtin_ppp import Ending, PppSessionView
from tests.helpers import until
from tests.unit.builtin_ppp_fakes import backend_session, socket_pair
from tests.unit.radius_fakes import FakeClock, MemoryClient, status, value
from tests.unit.test_builtin_ppp_backend import ipcp_up, lac_options, lns_options, make_pair


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_link_stats_parses_ifla_stats64() -> None:
    stats = struct.pack("=10Q", 11, 12, 2**33 + 13, 14, 0, 0, 0, 0, 0, 0)
    body = struct.pack("=BxHiII", 0, 512, 40, 0, 0) + nla(IFLA_IFNAME, b"ppp0\0")
    body += nla(IFLA_STATS64, stats)
    message = struct.pack("=IHHII", 16 + len(body), 16, 0, 1, 0) + body
    request = Request(b"", "find ifindex 40", replies=[message])
    assert link_stats(request) == LinkStats(
        rx_packets=11, tx_packets=12, rx_bytes=2**33 + 13, tx_bytes=14
    )


class Recorder:
    """An observer that notes what it is told and whether the interface was still there."""

    def __init__(self, released: Callable[[], bool]) -> None:
        self.released = released
        self.events: list[tuple[str, PppSessionView, Ending | None, bool]] = []
        self.terminated: list[PppSessionView] = []

    def peer_terminated(self, view: PppSessionView) -> None:
        self.terminated.append(view)

    def session_up(self, view: PppSessionView) -> None:
        self.events.append(("up", view, None, self.released()))

    async def session_down(self, view: PppSessionView, ending: Ending | None) -> None:
        self.events.append(("down", view, ending, self.released()))


def test_observer_sees_up_after_ipcp_and_down_before_release(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair()
        recorder = Recorder(lambda: any(c[0] == "release" for c in pair.lns_kernel.calls))
        pair.lns.observer = recorder
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: recorder.events, "session up")
            assert ipcp_up(pair.lns_kernel)
            kind, view, _, released = recorder.events[0]
            assert kind == "up" and not released
            assert view.user == "alice" and view.method is not None
            assert view.peer_address is not None
            assert view.peer_address in IPv4Network("10.0.0.0/29")  # from the pool
            assert view.local_address == IPv4Address("10.0.0.1")
            assert view.ifindex == 40 and view.key == pair.sessions["lns"].key
            await pair.lac.close()  # the LNS channel hangs up
            await until(lambda: len(recorder.events) == 2, "session down")
            kind, down_view, ending, released = recorder.events[1]
            assert kind == "down" and down_view is view
            assert ending is Ending.HANGUP and not released  # the interface was still there
        finally:
            await pair.close()

    run(scenario)


def test_accounting_start_and_stop_for_a_builtin_ppp_session(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient()
        engine = AccountingEngine(client, Spool(None), clock, nas=NasIdentity(identifier="lns1"))
        await engine.start()
        reads: list[tuple[str | None, int]] = []

        async def stats(netns: str | None, ifindex: int) -> Counters:
            reads.append((netns, ifindex))
            return Counters(input_octets=5 * 2**32 + 1, output_octets=300, input_packets=4)

        accounting = PppAccounting(
            engine,
            accepted=lambda key: AcceptInfo(acct_session_id="acc-1", classes=(b"c1",)),
            stats=stats,
        )
        pair = make_pair(observer=accounting)
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: client.acked, "Start")
            start = client.acked[0]
            assert status(start) == 1
            assert value(start, "User-Name") == "alice"
            assert value(start, "Acct-Session-Id") == "acc-1"
            assert value(start, "Class") == b"c1"
            assert value(start, "NAS-Identifier") == "lns1"
            assert value(start, "Calling-Station-Id") == "5551234"
            assert value(start, "Tunnel-Client-Endpoint") == (0, "192.0.2.2")
            assert value(start, "Tunnel-Server-Endpoint") == (0, "192.0.2.1")
            assert value(start, "Acct-Tunnel-Connection") == "10/1"
            assert str(value(start, "Framed-IP-Address")).startswith("10.0.0.")
            key = pair.sessions["lns"].key
            assert accounting.active == {key: "acc-1"}
            clock.advance(12)
            accounting.note_end(key, SessionEnd.ADMIN_CLOSE)  # l2tp ctl closes it
            await pair.lns.stop(pair.sessions["lns"])
            await until(lambda: len(client.acked) == 2, "Stop")
            stop = client.acked[1]
            assert status(stop) == 2
            assert value(stop, "Acct-Terminate-Cause") == 6  # Admin-Reset
            assert value(stop, "Acct-Session-Time") == 12
            assert value(stop, "Acct-Input-Gigawords") == 5
            assert value(stop, "Acct-Input-Octets") == 1
            assert value(stop, "Acct-Output-Octets") == 300
            assert reads == [(None, 40)]
            assert accounting.active == {}
        finally:
            await pair.close()
            await engine.close()

    run(scenario)


def test_lac_sessions_are_not_accounted_and_unnoted_stops_are_nas_request(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient()
        engine = AccountingEngine(client, Spool(None), clock)
        await engine.start()

        async def stats(netns: str | None, ifindex: int) -> Counters:
            return Counters()

        accounting = PppAccounting(engine, stats=stats)
        pair = make_pair(observer=accounting)
        pair.lac.observer = accounting  # the peer side's link reports too: ignored
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: client.acked, "Start")
            await until(lambda: ipcp_up(pair.lac_kernel), "LAC IPCP")
            assert len(accounting.active) == 1
            assert value(client.acked[0], "Acct-Authentic") == 2  # no RADIUS: local
            await pair.lns.stop(pair.sessions["lns"])
            await until(lambda: len(client.acked) == 2, "Stop")
            assert value(client.acked[1], "Acct-Terminate-Cause") == 10  # NAS-Request
        finally:
            await pair.close()
            await engine.close()

    run(scenario)


def test_description_of_an_ipv6_tunnel_with_a_wildcard_local_address() -> None:
    async def scenario() -> None:
        engine = AccountingEngine(MemoryClient(), Spool(None), FakeClock())
        accounting = PppAccounting(engine, nas_endpoint="2001:db8::1")
        a, b = socket_pair()
        session, _ = backend_session(a, lns=True, options=None)
        session = replace(session, local=("::", 1701), peer=("2001:db8::2", 1701))
        view = PppSessionView(
            session=session, user=None, method=None, local_address=None, peer_address=None,
            ifindex=None, ifname=None, netns=None, label="s",
        )  # fmt: skip
        description = accounting.describe(view, None)
        assert description.tunnel.ipv6
        assert description.tunnel.server_endpoint == "2001:db8::1"
        assert description.tunnel.client_endpoint == "2001:db8::2"
        assert description.user_name == "" and description.framed_address is None
        a.close()
        b.close()

    run(scenario)


def test_peer_terminate_request_is_the_cause_when_the_cdn_clears_the_session_first(
    tmp_path: Path,
) -> None:
    """The user's PPP sends LCP Terminate-Request, then its LAC clears the call before
    our LCP has left Stopping (RFC 1661: a restart period): the control plane stops the
    link, which then has no ending of its own, but the observer (accounting) was told
    of the Terminate-Request when it came (``peer_terminated``), which PppAccounting
    notes as the cause unless a CDN was noted first."""

    async def scenario() -> None:
        pair = make_pair()
        recorder = Recorder(lambda: any(c[0] == "release" for c in pair.lns_kernel.calls))
        pair.lns.observer = recorder
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: recorder.events, "session up")
            (lac_link,) = pair.lac.links.values()
            (lns_link,) = pair.lns.links.values()
            for fd in lac_link._readers:  # deaf from now on: it never hangs up by itself
                lac_link.loop.remove_reader(fd)
            lac_link.conn.close(lac_link.loop.time(), "user hung up")
            lac_link._transmit()
            await until(lambda: lns_link.peer_terminated, "the Terminate-Request taken")
            assert lns_link.ending is None  # still in Stopping: nothing reported yet
            await pair.lns.stop(pair.sessions["lns"])  # the LAC's CDN arrived
            await until(lambda: len(recorder.events) == 2, "session down")
            assert recorder.events[1][2] is None  # stopped by the control plane: no ending
            assert recorder.terminated == [recorder.events[0][1]]  # but told, at the time
            assert pair.lns.endings[pair.sessions["lns"].key] is None
        finally:
            await pair.close()

    run(scenario)
