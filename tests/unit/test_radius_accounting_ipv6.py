"""IPv6 sessions in RADIUS accounting and authorization (RFC 3162, RFC 5072).

A built-in PPP session is up for accounting at its first NCP (IPCP or IPv6CP), once;
an IPv6-only session gets its Start and Stop with Framed-Interface-Id (RFC 3162 2.2);
an Access-Accept's Framed-Interface-Id becomes the identifier IPv6CP suggests to the
peer (RFC 5072 4.1), as Framed-IP-Address is the address IPCP gives it.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path
from types import SimpleNamespace

import pyrad.dictionary
import pyrad.packet
import pytest

from l2tp.kernel.ppp_device import PPP_IP, PPP_IPV6, NpMode
from l2tp.ppp import AuthDecision, AuthMethod, AuthRequest, PapRequest
from l2tp.ppp.codec import Option
from l2tp.ppp.config import PppConfig
from l2tp.ppp.constants import Ipv6cpOption
from l2tp.ppp.constants import Protocol as PppProtocol
from l2tp.ppp.cp import Verdict
from l2tp.ppp.events import Role as PppRole
from l2tp.ppp.fsm import State
from l2tp.ppp.ipv6cp import Ipv6cpOptions
from l2tp.radius import DICTIONARY_PATH
from l2tp.radius.accounting import AccountingEngine
from l2tp.radius.auth import decision_from_reply
from l2tp.radius.interface import RadiusReply
from l2tp.radius.records import Counters, NasIdentity, SessionDescription, start_record
from l2tp.radius.session_accounting import PppAccounting
from l2tp.radius.spool import Spool
from l2tp.runtime.builtin_ppp import Ending, PppSessionView
from l2tp.runtime.ppp_hooks import AuthContext
from l2tp.runtime.ppp_link import PppLink
from l2tp.runtime.ppp_link_observer import IPCP_GRACE, PppLinkObserver
from tests.helpers import until
from tests.unit.radius_fakes import T0, FakeClock, MemoryClient, add_to_packet, status, value
from tests.unit.test_builtin_ppp_backend import Pair, lac_options, lns_options, make_pair
from tests.unit.test_radius_records import SESSION

ACCEPT = 2
PEER_ID = bytes.fromhex("021122fffe334455")


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


def peer_runs_ipv6_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's PPP runs IPv6CP only (pppd's ``noip``): the peer-side link of the
    pair rejects IPCP (a Protocol-Reject, RFC 1661 5.7), so only IPv6CP comes up."""
    config_of = PppLink._config

    def config(link: PppLink) -> PppConfig:
        made = config_of(link)
        return replace(made, ipv4=False) if link.role is PppRole.PEER else made

    monkeypatch.setattr(PppLink, "_config", config)


@pytest.fixture
def ipv6_only_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    peer_runs_ipv6_only(monkeypatch)


def np_pass(pair: Pair, protocol: int) -> bool:
    return pair.np(pair.lns_kernel).get(protocol) is NpMode.PASS


class Recorder:
    def __init__(self) -> None:
        self.ups: list[PppSessionView] = []
        self.downs: list[PppSessionView] = []

    def session_up(self, view: PppSessionView) -> None:
        self.ups.append(view)

    async def session_down(self, view: PppSessionView, ending: Ending | None) -> None:
        self.downs.append(view)


def lns_v6_address(pair: Pair) -> tuple[object, ...]:
    calls = pair.lns_kernel.interfaces_.calls
    return next(
        c for c in calls if c[0] == "add_address" and isinstance(c[2], ipaddress.IPv6Address)
    )


def test_an_ipv6_only_session_is_up_once_with_its_interface_identifiers(
    tmp_path: Path, ipv6_only_peer: None
) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        pair = make_pair(observer=recorder)
        try:
            await pair.start(lns_options(tmp_path, ipv6=True), lac_options(ipv6=True))
            await until(lambda: recorder.ups, "session up")
            assert np_pass(pair, PPP_IPV6) and not np_pass(pair, PPP_IP)
            (view,) = recorder.ups
            assert view.user == "alice"
            assert view.peer_address is None and view.local_address is None
            assert view.local_interface_id is not None and view.peer_interface_id is not None
            _, _, local, peer, prefixlen = lns_v6_address(pair)
            assert local == ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + view.local_interface_id)
            assert peer == ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + view.peer_interface_id)
            assert prefixlen == 128
            await pair.lac.close()
            await until(lambda: recorder.downs, "session down")
            assert recorder.downs == [view] and len(recorder.ups) == 1
        finally:
            await pair.close()

    run(scenario)


def test_a_dual_stack_session_is_up_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        pair = make_pair(observer=recorder)
        try:
            await pair.start(lns_options(tmp_path, ipv6=True), lac_options(ipv6=True))
            await until(lambda: np_pass(pair, PPP_IP) and np_pass(pair, PPP_IPV6), "both NCPs")
            await until(lambda: len(pair.lns_kernel.interfaces_.calls) >= 5, "both addresses")
            assert len(recorder.ups) == 1
            (view,) = recorder.ups
            # Whichever NCP was first, what it knew: an address or the identifiers.
            assert view.peer_address is not None or view.peer_interface_id is not None
        finally:
            await pair.close()
        assert len(recorder.ups) == 1 and len(recorder.downs) == 1

    run(scenario)


def test_an_ipv6_only_session_has_a_start_and_a_stop_with_framed_interface_id(
    tmp_path: Path, ipv6_only_peer: None
) -> None:
    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient()
        engine = AccountingEngine(client, Spool(None), clock, nas=NasIdentity(identifier="lns1"))
        await engine.start()

        async def stats(netns: str | None, ifindex: int) -> Counters:
            return Counters(input_octets=700, output_octets=900, input_packets=7)

        accounting = PppAccounting(engine, stats=stats)
        pair = make_pair(observer=accounting)
        try:
            await pair.start(lns_options(tmp_path, ipv6=True), lac_options(ipv6=True))
            await until(lambda: client.acked, "Start")
            start = client.acked[0]
            assert status(start) == 1 and value(start, "User-Name") == "alice"
            assert "Framed-IP-Address" not in dict(start)
            peer = lns_v6_address(pair)[3]
            assert isinstance(peer, ipaddress.IPv6Address)
            assert value(start, "Framed-Interface-Id") == peer.packed[8:]
            clock.advance(5)
            await pair.lns.stop(pair.sessions["lns"])
            await until(lambda: len(client.acked) == 2, "Stop")
            stop = client.acked[1]
            assert status(stop) == 2 and value(stop, "Acct-Session-Time") == 5
            assert value(stop, "Acct-Input-Octets") == 700
            assert value(stop, "Acct-Output-Octets") == 900
            assert value(stop, "Framed-Interface-Id") == peer.packed[8:]
            assert len(client.acked) == 2  # one Start, one Stop
        finally:
            await pair.close()
            await engine.close()

    run(scenario)


def test_records_carry_framed_interface_id_and_it_encodes() -> None:
    session: SessionDescription = replace(SESSION, framed_interface_id=PEER_ID)
    record = start_record(session, T0)
    assert ("Framed-Interface-Id", PEER_ID) in record
    assert not any(name == "Framed-Interface-Id" for name, _ in start_record(SESSION, T0))
    dictionary = pyrad.dictionary.Dictionary(str(DICTIONARY_PATH))
    packet = pyrad.packet.AcctPacket(dict=dictionary, secret=b"s")
    add_to_packet(packet, record)
    decoded = pyrad.packet.AcctPacket(dict=dictionary, secret=b"s", packet=packet.RequestPacket())
    assert decoded["Framed-Interface-Id"] == ["211:22ff:fe33:4455"]  # as FreeRADIUS prints it


def test_the_dictionary_has_the_rfc_3162_attributes() -> None:
    dictionary = pyrad.dictionary.Dictionary(str(DICTIONARY_PATH))
    expected = {
        "NAS-IPv6-Address": (95, "ipv6addr"),
        "Framed-Interface-Id": (96, "ifid"),
        "Framed-IPv6-Prefix": (97, "ipv6prefix"),
        "Login-IPv6-Host": (98, "ipv6addr"),
        "Framed-IPv6-Route": (99, "string"),
        "Framed-IPv6-Pool": (100, "string"),
    }
    found = {n: (dictionary.attributes[n].code, dictionary.attributes[n].type) for n in expected}
    assert found == expected


@pytest.mark.parametrize(
    ("sent", "applied"),
    [
        ("211:22ff:fe33:4455", PEER_ID),  # decoded as FreeRADIUS prints it
        (PEER_ID, PEER_ID),
        ("0:0:0:0", None),  # zero is no identifier (RFC 5072 4.1)
        ("211:22ff:fe33", None),
        ("211:22ff:fe33:445g", None),
        (b"\x01" * 7, None),
    ],
)
def test_access_accept_framed_interface_id(sent: object, applied: bytes | None) -> None:
    reply = RadiusReply(code=ACCEPT, attributes=(("Framed-Interface-Id", sent),))
    decision = decision_from_reply(PapRequest(user="alice", password=b"pw"), reply)
    assert decision.success and decision.peer_interface_id == applied
    assert getattr(decision.authorization, "framed_interface_id", None) == applied


# --- the sans-IO IPv6CP with an assigned peer identifier (RFC 5072 4.1) ----------------

OURS = bytes.fromhex("0a0b0c0d0e0f1011")


def ids(count: int = 8) -> Callable[[int], bytes]:
    values = iter([bytes([n]) * 8 for n in range(1, count + 1)])
    return lambda size: next(values)


def interface_id(data: bytes) -> Option:
    return Option(Ipv6cpOption.INTERFACE_IDENTIFIER, data)


def test_ipv6cp_naks_another_identifier_with_the_assigned_one() -> None:
    handler = Ipv6cpOptions(random_bytes=ids(), interface_id=OURS, peer_interface_id=PEER_ID)
    other = interface_id(b"\x07" * 8)
    assert handler.check_request([other]) == [(Verdict.NAK, interface_id(PEER_ID))]
    assert handler.check_request([interface_id(bytes(8))]) == [(Verdict.NAK, interface_id(PEER_ID))]
    assert handler.check_request([interface_id(PEER_ID)]) == [(Verdict.ACK, interface_id(PEER_ID))]
    handler.peer_acked([interface_id(PEER_ID)])
    assert handler.peer_id == PEER_ID


def test_ipv6cp_suggests_the_assigned_identifier_to_a_peer_that_proposes_none() -> None:
    handler = Ipv6cpOptions(random_bytes=ids(), peer_interface_id=PEER_ID)
    assert handler.local_id != PEER_ID
    assert handler.check_request([]) == [(Verdict.NAK, interface_id(PEER_ID))]
    assert handler.check_request([]) == []  # suggested once


def test_ipv6cp_never_takes_the_assigned_identifier_for_itself() -> None:
    handler = Ipv6cpOptions(random_bytes=ids(), interface_id=OURS, peer_interface_id=PEER_ID)
    handler.nak_received([interface_id(PEER_ID)])
    assert handler.local_id not in (PEER_ID, OURS, bytes(8))
    # Our own identifier assigned to the peer cannot be used (4.1): ignored.
    same = Ipv6cpOptions(random_bytes=ids(), interface_id=OURS, peer_interface_id=OURS)
    assert same.check_request([interface_id(PEER_ID)]) == [(Verdict.ACK, interface_id(PEER_ID))]
    with pytest.raises(ValueError):
        Ipv6cpOptions(random_bytes=ids(), peer_interface_id=bytes(8))
    with pytest.raises(ValueError):
        AuthDecision(success=True, peer_interface_id=b"\x01" * 7)


class AssigningHook:
    """Grants the session with an interface identifier for the peer (as a RADIUS
    Access-Accept with Framed-Interface-Id does)."""

    def authenticate(self, request: AuthRequest, context: AuthContext) -> AuthDecision:
        return AuthDecision(
            success=True, peer_address=IPv4Address("10.7.7.7"), peer_interface_id=PEER_ID
        )


def test_the_verifiers_interface_id_becomes_the_peers_link_local_address(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        pair = make_pair(authenticator=AssigningHook(), observer=recorder)
        try:
            await pair.start(
                lns_options(tmp_path, auth=(AuthMethod.PAP,), secrets=None, ipv6=True),
                lac_options(auth=(AuthMethod.PAP,), ipv6=True),
            )
            await until(lambda: np_pass(pair, PPP_IPV6), "IPv6CP")
            await until(
                lambda: any(
                    c[0] == "add_address" and isinstance(c[2], ipaddress.IPv6Address)
                    for c in pair.lac_kernel.interfaces_.calls
                ),
                "the LAC's IPv6 address",
            )
            mine = ipaddress.IPv6Address("fe80::211:22ff:fe33:4455")
            lac = [c for c in pair.lac_kernel.interfaces_.calls if c[0] == "add_address"]
            assert any(c[2] == mine for c in lac)  # the LAC took the suggestion
            assert lns_v6_address(pair)[3] == mine
        finally:
            await pair.close()

    run(scenario)


class _FakeNcp:
    def __init__(self, state: State) -> None:
        self.state = state


class _FakeLink(PppLinkObserver):
    """Just what :meth:`PppLinkObserver._observe_up` reads of a link, with a loop whose
    timers are recorded instead of run."""

    def __init__(self, ipcp: State | None) -> None:
        self.recorder = Recorder()
        self.settings = SimpleNamespace(observer=self.recorder, netns=None)  # type: ignore[assignment]
        self.session = SimpleNamespace(key=(1, 2))  # type: ignore[assignment]
        self.observed = None
        self.released = False
        self.user, self.auth_method, self.label = "alice", "chap", "s1"
        self.ifindex, self.ifname = 7, "ppp0"
        self._addresses = {}
        self._interface_ids = (b"\x02" * 8, b"\x03" * 8)
        ncps = {} if ipcp is None else {PppProtocol.IPCP: _FakeNcp(ipcp)}
        self.conn = SimpleNamespace(ncps=ncps)  # type: ignore[assignment]
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.loop = SimpleNamespace(  # type: ignore[assignment]
            call_later=lambda delay, fn: self.timers.append((delay, fn))
        )

    def ipcp_up(self) -> None:
        self._addresses[PppProtocol.IPCP] = (
            ipaddress.IPv4Address("10.0.0.1"),
            ipaddress.IPv4Address("10.0.0.2"),
            32,
        )


def test_ipv6cp_first_waits_for_a_negotiating_ipcp_so_the_start_has_the_address() -> None:
    """Dual stack, IPv6CP up first: the Start waits for IPCP (its Framed-IP-Address is
    what operators bill by), then carries both; the grace timer finds it sent."""
    link = _FakeLink(State.REQ_SENT)
    link._observe_up()  # IPv6CP up
    assert link.recorder.ups == [] and [delay for delay, _ in link.timers] == [IPCP_GRACE]
    link.ipcp_up()
    link._observe_up()  # IPCP up
    (view,) = link.recorder.ups
    assert view.peer_address == ipaddress.IPv4Address("10.0.0.2")
    assert view.peer_interface_id == b"\x03" * 8
    link.timers[0][1]()  # the grace ends: nothing more
    assert len(link.recorder.ups) == 1


def test_ipv6cp_first_is_started_after_the_grace_when_ipcp_never_comes() -> None:
    link = _FakeLink(State.REQ_SENT)
    link._observe_up()
    assert link.recorder.ups == []
    link.timers[0][1]()
    (view,) = link.recorder.ups
    assert view.peer_address is None and view.peer_interface_id == b"\x03" * 8


@pytest.mark.parametrize("ipcp", [None, State.CLOSED, State.STOPPED])
def test_ipv6cp_first_without_a_negotiating_ipcp_starts_at_once(ipcp: State | None) -> None:
    """The peer rejected IPCP (Protocol-Reject: closed), or there is none: no wait."""
    link = _FakeLink(ipcp)
    link._observe_up()
    assert len(link.recorder.ups) == 1 and link.timers == []
