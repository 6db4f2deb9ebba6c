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
from tests.unit.radius_fakes import FakeClock, MemoryClient, run_ready, status, value
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


class FailRecorder(Recorder):
    """A Recorder that also has the optional ``session_failed`` hook."""

    def __init__(self, released: Callable[[], bool]) -> None:
        super().__init__(released)
        self.failed: list[tuple[PppSessionView, Ending | None, bool]] = []

    def session_failed(self, view: PppSessionView, ending: Ending | None) -> None:
        self.failed.append((view, ending, self.released()))


def test_a_refused_session_is_one_tunnel_link_reject_with_user_error(tmp_path: Path) -> None:
    """A wrong password (the secrets file refuses it): no Start, no Stop, but exactly one
    Tunnel-Link-Reject (RFC 2867 3.6) naming the user and the tunnel, cause User-Error;
    the observer hook is called once, before the link's fds are released, however many
    times the control plane stops the link afterwards."""

    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient()
        engine = AccountingEngine(
            client, Spool(None), clock, nas=NasIdentity(identifier="lns1"), tunnel_accounting=True
        )
        await engine.start()
        accounting = PppAccounting(engine)
        pair = make_pair(observer=accounting)
        try:
            await pair.start(lns_options(tmp_path), lac_options(password="wrong horse"))
            await until(lambda: client.acked, "Tunnel-Link-Reject")
            await pair.lns.stop(pair.sessions["lns"])  # the control plane, after our CDN
            await pair.lns.stop(pair.sessions["lns"])
            await run_ready()
            (reject,) = client.acked
            assert status(reject) == 14  # Tunnel-Link-Reject
            assert value(reject, "User-Name") == "alice"  # the name given, refused
            assert value(reject, "Acct-Terminate-Cause") == 17  # User-Error
            assert value(reject, "NAS-Identifier") == "lns1"
            assert value(reject, "Acct-Tunnel-Connection") == "10/1"
            assert value(reject, "Tunnel-Client-Endpoint") == (0, "192.0.2.2")
            assert accounting.active == {} and engine.counters.starts == 0
            assert engine.counters.tunnel_records == 1
        finally:
            await pair.close()
            await engine.close()

        # The hook itself: once, with the ending, before the fds went.
        pair = make_pair()
        recorder = FailRecorder(lambda: not pair.lns_kernel.open_fds)
        pair.lns.observer = recorder
        try:
            await pair.start(lns_options(tmp_path), lac_options(password="wrong horse"))
            await until(lambda: recorder.failed, "session failed")
            await pair.lns.stop(pair.sessions["lns"])
            await pair.close()
            ((view, ending, released),) = recorder.failed
            assert ending is Ending.AUTH_FAILED and not released
            assert view.user == "alice" and view.peer_address is None
            assert view.key == pair.sessions["lns"].key
            assert recorder.events == []  # never up, never down
        finally:
            await pair.close()

    run(scenario)


class Pending:
    """An authentication hook that never answers (a RADIUS server that is slow)."""

    def __init__(self) -> None:
        self.asked = 0

    def authenticate(self, request: object, context: object) -> asyncio.Future[object]:
        self.asked += 1
        return asyncio.get_running_loop().create_future()


def test_a_session_stopped_before_ipcp_is_rejected_with_the_noted_cause(tmp_path: Path) -> None:
    """The LAC clears the call while our authentication is still waiting: the link is
    stopped by the control plane (no ending of its own), and the note taken while it was
    starting is the Tunnel-Link-Reject's cause (the LAC's CDN: User-Request). Without
    ``tunnel_accounting`` nothing is sent, and the note does not linger."""

    async def attempt(tunnel_accounting: bool) -> None:
        clock, client = FakeClock(), MemoryClient()
        engine = AccountingEngine(client, Spool(None), clock, tunnel_accounting=tunnel_accounting)
        await engine.start()
        accounting = PppAccounting(engine)
        hook = Pending()
        pair = make_pair(observer=accounting, authenticator=hook)
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: hook.asked, "authentication asked")
            key = pair.sessions["lns"].key
            accounting.note_end(key, SessionEnd.ADMIN_CLOSE)  # not accounted: ignored
            assert accounting._ends == {}
            accounting.note_end(key, SessionEnd.PEER_CDN, starting=True)
            accounting.note_end(key, SessionEnd.TUNNEL_LOST, starting=True)  # later
            await pair.lns.stop(pair.sessions["lns"])
            await run_ready()
            assert accounting._ends == {}
            if tunnel_accounting:
                (reject,) = client.acked
                assert status(reject) == 14
                assert value(reject, "Acct-Terminate-Cause") == 1  # User-Request
                assert value(reject, "User-Name") == "alice"  # the name given, unchecked
            else:
                assert client.calls == []
        finally:
            await pair.close()
            await engine.close()

    async def scenario() -> None:
        await attempt(True)
        await attempt(False)

    run(scenario)


def test_the_stop_carries_the_packets_lost_read_when_the_stop_began(
    tmp_path: Path,
) -> None:
    """Acct-Tunnel-Packets-Lost in the Stop and Tunnel-Link-Stop, read through the
    observer's ``lost`` reader as soon as the control plane starts stopping the session
    (``session_stopping``): before LCP's Terminate exchange, which the control plane
    cuts short after 0.2 s by deleting the kernel session, and its statistics with it.
    A session that ends by itself is read at its Stop, before its channel closes."""

    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient()
        engine = AccountingEngine(client, Spool(None), clock, tunnel_accounting=True)
        await engine.start()
        pair = make_pair()
        reads: list[tuple[tuple[int, int], bool]] = []

        async def stats(netns: str | None, ifindex: int) -> Counters:
            return Counters(input_packets=9)

        async def lost(view: PppSessionView) -> int | None:
            reads.append((view.key, any(c[0] == "release" for c in pair.lns_kernel.calls)))
            return 4

        accounting = PppAccounting(engine, stats=stats, lost=lost)
        pair.lns.observer = accounting
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: len(client.acked) == 2, "Start, Tunnel-Link-Start")
            (lac_link,) = pair.lac.links.values()
            for fd in lac_link._readers:  # deaf: our Terminate-Request gets no Ack
                lac_link.loop.remove_reader(fd)
            key = pair.sessions["lns"].key
            stopping = asyncio.ensure_future(pair.lns.stop(pair.sessions["lns"]))
            await run_ready(3)
            assert reads == [(key, False)]  # at once, while LCP still waits for its Ack
            assert not stopping.done() and len(client.acked) == 2
            await stopping
            await until(lambda: len(client.acked) == 4, "Stop, Tunnel-Link-Stop")
            stop, link_stop = client.acked[2:]
            assert (status(stop), status(link_stop)) == (2, 13)
            assert value(stop, "Acct-Tunnel-Packets-Lost") == 4
            assert value(link_stop, "Acct-Tunnel-Packets-Lost") == 4
            assert value(stop, "Acct-Input-Packets") == 9
            assert reads == [(key, False)]  # once: the Stop took the early read
            assert accounting._losing == {}
        finally:
            await pair.close()
            await engine.close()
        # A session that ends by itself (the channel hangs up): read at its Stop.
        pair = make_pair()
        engine2 = AccountingEngine(client, Spool(None), clock)
        await engine2.start()
        accounting = PppAccounting(engine2, stats=stats, lost=lost)
        pair.lns.observer = accounting
        reads.clear()
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: accounting.active, "Start")
            await pair.lac.close()  # the LNS channel hangs up
            await until(lambda: not accounting.active, "Stop")
            assert reads == [(pair.sessions["lns"].key, False)]  # before the release
        finally:
            await pair.close()
            await engine2.close()

    run(scenario)


def test_kernel_packets_lost_reads_rx_seq_discards_over_the_async_client() -> None:
    """The default reader: the kernel session's ``rx_seq_discards`` through the data
    plane's asynchronous generic netlink client; None (no attribute) where the data
    plane has none (the null data plane, or a blocking client); its errors propagate
    (the engine counts them and sends the Stop without the attribute)."""
    from types import SimpleNamespace

    from l2tp.kernel.errors import SessionNotFound
    from l2tp.kernel.model import Stats
    from l2tp.kernel.netlink import AsyncL2tpNetlink, L2tpNetlink
    from l2tp.radius.session_accounting import KernelPacketsLost

    class FakeNetlink(AsyncL2tpNetlink):
        def __init__(self, stats: Stats | None) -> None:  # no socket
            self.stats = stats
            self.asked: list[tuple[int, int]] = []

        async def session_stats(self, tunnel_id: int, session_id: int) -> Stats:
            self.asked.append((tunnel_id, session_id))
            if self.stats is None:
                raise SessionNotFound(2, "no such session")
            return self.stats

    async def scenario() -> None:
        a, b = socket_pair()
        session, _ = backend_session(a, lns=True, options=None)
        reader = KernelPacketsLost()

        def view(dataplane: object) -> PppSessionView:
            return PppSessionView(
                session=replace(session, dataplane=dataplane),  # type: ignore[arg-type]
                user=None, method=None, local_address=None, peer_address=None,
                ifindex=None, ifname=None, netns=None, label="s",
            )  # fmt: skip

        netlink = FakeNetlink(Stats(rx_seq_discards=5, rx_oos_packets=8, rx_errors=9))
        assert await reader(view(SimpleNamespace(netlink=netlink))) == 5
        assert netlink.asked == [(10, 1)]
        assert await reader(view(session.dataplane)) is None  # no kernel client at all
        blocking = object.__new__(L2tpNetlink)
        assert await reader(view(SimpleNamespace(netlink=blocking))) is None
        try:
            await reader(view(SimpleNamespace(netlink=FakeNetlink(None))))
        except SessionNotFound:
            pass
        else:
            raise AssertionError("a failed read must raise")
        a.close()
        b.close()

    run(scenario)


def test_a_denial_no_radius_server_decided_is_service_unavailable(tmp_path: Path) -> None:
    """The authentication hook denies because no RADIUS server answered
    (``NoVerdict``): the user is refused as for an Access-Reject (same CDN), but the
    Tunnel-Link-Reject's cause is Service-Unavailable, not User-Error: the service's
    ``denied(key)`` reads the link's last denial while the link is being released."""
    from l2tp.daemons.radius_accounting import AccountingService
    from l2tp.ppp import AuthDecision
    from l2tp.radius.auth import NoVerdict

    class Unanswered:
        def __init__(self, why: object) -> None:
            self.why = why

        def authenticate(self, request: object, context: object) -> AuthDecision:
            return AuthDecision(success=False, message="Access denied", authorization=self.why)

    async def attempt(why: object) -> tuple[object, ...]:
        client = MemoryClient()
        engine = AccountingEngine(client, Spool(None), FakeClock(), tunnel_accounting=True)
        await engine.start()
        pair = make_pair(authenticator=Unanswered(why))
        service = AccountingService(pair.lns)
        pair.lns.observer = PppAccounting(engine, denied=service.denied)
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: client.acked, "Tunnel-Link-Reject")
            assert pair.lns_reported.downs[0][2] == "PPP authentication failed"
            (reject,) = client.acked
            assert status(reject) == 14 and value(reject, "User-Name") == "alice"
            return (value(reject, "Acct-Terminate-Cause"), service.denied((99, 99)))
        finally:
            await pair.close()
            await engine.close()

    async def scenario() -> None:
        assert await attempt(NoVerdict("timeout")) == (15, None)  # Service-Unavailable
        assert await attempt(None) == (17, None)  # an Access-Reject: User-Error

    run(scenario)
