"""The Dynamic Authorization processor (RFC 5176) without sockets: requests built and
replies checked with pyrad, a stub session directory, fake clocks.

Each test drives :meth:`DaeProcessor.handle` as the UDP server does and checks what a
client would see (the reply's code, Error-Cause and authenticators) and the counters.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrad import packet as rpacket
from pyrad.dictionary import Dictionary

from l2tp.radius import DICTIONARY_PATH
from l2tp.radius.dae import (
    DaeClient,
    DaeProcessor,
    ErrorCause,
    NasIdentity,
    SessionQuery,
    SessionRef,
)

T = TypeVar("T")
DICT = Dictionary(str(DICTIONARY_PATH))
SECRET = b"s3cret"
CLIENT = ("192.0.2.10", 40000)
NOW = 1_800_000_000.0

ALICE = SessionRef(key=(1, 1), acct_session_id="A1", user_name="alice")
ALICE2 = SessionRef(key=(1, 2), acct_session_id="A2", user_name="alice")
BOB = SessionRef(
    key=(2, 1),
    acct_session_id="B1",
    user_name="bob",
    framed_ip=IPv4Address("10.0.0.7"),
    calling_station_id="5551234",
)


class Directory:
    """Stub sessions; records what the server asked for."""

    def __init__(self, refs: Sequence[SessionRef] = (ALICE, ALICE2, BOB)) -> None:
        self.refs = list(refs)
        self.queries: list[SessionQuery] = []
        self.disconnected: list[SessionRef] = []
        self.timeouts: list[tuple[SessionRef, int | None]] = []
        self.disconnect_ok = True
        self.timeout_ok = True
        self.fail = False
        self.gate: asyncio.Event | None = None

    def find(self, query: SessionQuery) -> list[SessionRef]:
        self.queries.append(query)
        if self.fail:
            raise RuntimeError("directory bug")
        return [ref for ref in self.refs if ref.matches(query)]

    async def disconnect(self, ref: SessionRef) -> bool:
        if self.gate is not None:
            await self.gate.wait()
        self.disconnected.append(ref)
        return self.disconnect_ok

    async def set_session_timeout(self, ref: SessionRef, seconds: int | None) -> bool:
        self.timeouts.append((ref, seconds))
        return self.timeout_ok


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(
    directory: Directory | None = None, **kw: Any
) -> tuple[DaeProcessor, Directory, Clock, Clock]:
    directory = directory or Directory()
    wall, mono = Clock(NOW), Clock(100.0)
    kw.setdefault("nas", NasIdentity(identifier="lns1", ipv4=IPv4Address("192.0.2.1")))
    processor = DaeProcessor(
        directory,
        [
            DaeClient(IPv4Address(CLIENT[0]), SECRET, "radius1"),
            DaeClient(IPv6Address("2001:db8::10"), b"other", "radius6"),
        ],
        wall_clock=wall,
        monotonic=mono,
        dictionary=DICT,
        **kw,
    )
    return processor, directory, wall, mono


def request(
    code: int = rpacket.DisconnectRequest,
    *,
    secret: bytes = SECRET,
    ident: int = 7,
    raw: dict[int, list[bytes]] | None = None,
    message_authenticator: bool = False,
    **attributes: Any,
) -> tuple[rpacket.CoAPacket, bytes]:
    """A signed request (attribute names with ``_`` for ``-``; ``raw`` by number)."""
    pkt = rpacket.CoAPacket(code=code, id=ident, secret=secret, dict=DICT)
    for name, value in attributes.items():
        pkt.AddAttribute(name.replace("_", "-"), value)
    for number, values in (raw or {}).items():
        pkt[number] = values
    if message_authenticator:
        pkt.add_message_authenticator()
    return pkt, bytes(pkt.RequestPacket())


def run(coro: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(coro(), 10))


def handle(processor: DaeProcessor, data: bytes, source: tuple[str, int] = CLIENT) -> bytes | None:
    return run(lambda: processor.handle(data, source))


def reply_of(pkt: rpacket.CoAPacket, data: bytes | None) -> rpacket.CoAPacket:
    """The decoded reply, checked to belong to ``pkt`` (Response Authenticator)."""
    assert data is not None
    reply = pkt.CreateReply(packet=data)
    assert pkt.VerifyReply(reply, data)
    return reply


def cause(reply: rpacket.CoAPacket) -> int | None:
    values = reply.get(101)
    return None if values is None else int(struct.unpack("!I", values[0])[0])


# ------------------------------------------------------------------ authentication


def test_disconnect_by_acct_session_id_is_acknowledged() -> None:
    processor, directory, _, _ = make()
    pkt, data = request(Acct_Session_Id="B1")
    reply = reply_of(pkt, handle(processor, data))
    assert reply.code == rpacket.DisconnectACK
    assert cause(reply) is None
    assert directory.disconnected == [BOB]
    assert directory.queries == [SessionQuery(acct_session_id="B1")]
    c = processor.counters
    assert (c.received, c.disconnect_requests, c.disconnect_acks, c.sessions_disconnected) == (
        1,
        1,
        1,
        1,
    )


def test_user_name_closes_every_session_of_the_user() -> None:
    processor, directory, _, _ = make()
    pkt, data = request(User_Name="alice")
    assert reply_of(pkt, handle(processor, data)).code == rpacket.DisconnectACK
    assert sorted(r.key for r in directory.disconnected) == [(1, 1), (1, 2)]
    assert processor.counters.sessions_disconnected == 2


def test_all_identification_attributes_must_match() -> None:
    processor, directory, _, _ = make()
    pkt, data = request(User_Name="bob", Framed_IP_Address="10.0.0.7", Calling_Station_Id="5551234")
    assert reply_of(pkt, handle(processor, data)).code == rpacket.DisconnectACK
    pkt, data = request(ident=8, User_Name="bob", Framed_IP_Address="10.0.0.8")
    reply = reply_of(pkt, handle(processor, data))
    assert (reply.code, cause(reply)) == (rpacket.DisconnectNAK, 503)
    assert directory.disconnected == [BOB]


def test_wrong_secret_or_tampering_is_dropped_silently() -> None:
    processor, directory, _, _ = make()
    _, data = request(secret=b"not the secret", User_Name="alice")
    assert handle(processor, data) is None
    _, good = request(User_Name="alice")
    tampered = good[:-1] + bytes([good[-1] ^ 1])  # "alicd": the authenticator no longer fits
    assert handle(processor, tampered) is None
    assert processor.counters.bad_authenticator == 2
    assert directory.queries == []


def test_unknown_source_is_dropped_and_counted_even_with_the_right_secret() -> None:
    processor, directory, _, _ = make()
    _, data = request(User_Name="alice")
    assert handle(processor, data, ("192.0.2.99", 40000)) is None
    assert handle(processor, data, ("not an address", 1)) is None
    assert processor.counters.unknown_client == 2
    assert directory.queries == []


def test_ipv4_mapped_source_is_the_ipv4_client() -> None:
    processor, _, _, _ = make()
    pkt, data = request(User_Name="alice")
    reply = reply_of(pkt, handle(processor, data, ("::ffff:192.0.2.10", 40000)))
    assert reply.code == rpacket.DisconnectACK


def test_each_client_has_its_own_secret() -> None:
    processor, _, _, _ = make()
    _, data = request(User_Name="alice")  # signed with the IPv4 client's secret
    assert handle(processor, data, ("2001:db8::10", 3799)) is None
    assert processor.counters.bad_authenticator == 1
    pkt, data = request(secret=b"other", User_Name="alice")
    assert reply_of(pkt, handle(processor, data, ("2001:db8::10", 3799))).code == 41


def test_message_authenticator_verified_and_answered_with_one() -> None:
    processor, _, _, _ = make()
    pkt, data = request(User_Name="bob", message_authenticator=True)
    raw = handle(processor, data)
    reply = reply_of(pkt, raw)
    assert reply.code == rpacket.DisconnectACK
    assert reply.message_authenticator
    assert reply.verify_message_authenticator(
        original_authenticator=pkt.authenticator, original_code=pkt.code
    )


def test_bad_message_authenticator_is_dropped() -> None:
    processor, directory, _, _ = make()
    pkt = rpacket.CoAPacket(code=rpacket.DisconnectRequest, id=3, secret=SECRET, dict=DICT)
    pkt.AddAttribute("User-Name", "bob")
    pkt[80] = [bytes(16)]  # a zero Message-Authenticator; Request Authenticator still right
    data = bytes(pkt.RequestPacket())
    assert handle(processor, data) is None
    assert processor.counters.bad_message_authenticator == 1
    assert directory.queries == []


def test_proxy_state_is_echoed() -> None:
    processor, _, _, _ = make()
    pkt, data = request(User_Name="nobody", raw={33: [b"\x01\x02", b"\x03"]})
    reply = reply_of(pkt, handle(processor, data))
    assert reply.code == rpacket.DisconnectNAK
    assert reply[33] == [b"\x01\x02", b"\x03"]


# ------------------------------------------------------------------ replay protection


def test_event_timestamp_inside_the_window_is_accepted_outside_dropped() -> None:
    processor, directory, _, _ = make(window=300)
    pkt, data = request(User_Name="bob", Event_Timestamp=int(NOW) - 299)
    assert reply_of(pkt, handle(processor, data)).code == rpacket.DisconnectACK
    _, data = request(ident=9, User_Name="bob", Event_Timestamp=int(NOW) - 301)
    assert handle(processor, data) is None
    _, data = request(ident=10, User_Name="bob", Event_Timestamp=int(NOW) + 301)
    assert handle(processor, data) is None
    assert processor.counters.stale_timestamp == 2
    assert len(directory.disconnected) == 1


def test_event_timestamp_can_be_required() -> None:
    processor, _, _, _ = make(require_event_timestamp=True)
    _, data = request(User_Name="bob")
    assert handle(processor, data) is None
    assert processor.counters.missing_timestamp == 1
    pkt, data = request(ident=2, User_Name="bob", Event_Timestamp=int(NOW))
    assert reply_of(pkt, handle(processor, data)).code == rpacket.DisconnectACK


def test_a_retransmission_gets_the_same_reply_and_is_not_acted_on_twice() -> None:
    processor, directory, _, mono = make(window=30)
    pkt, data = request(User_Name="bob")
    first = handle(processor, data)
    assert handle(processor, data) == first
    assert processor.counters.duplicates == 1
    assert len(directory.disconnected) == 1
    # Another source port is another request (RFC 5080 2.2.2 keys on it).
    reply_of(pkt, handle(processor, data, (CLIENT[0], CLIENT[1] + 1)))
    assert len(directory.disconnected) == 2
    mono.now += 31  # past the window: forgotten, so acted on again
    reply_of(pkt, handle(processor, data))
    assert len(directory.disconnected) == 3
    assert processor.counters.duplicates == 1


def test_a_retransmission_while_the_first_is_in_progress_is_dropped() -> None:
    processor, directory, _, _ = make()
    directory.gate = asyncio.Event()
    pkt, data = request(User_Name="bob")

    async def scenario() -> tuple[bytes | None, bytes | None]:
        assert directory.gate is not None
        first = asyncio.create_task(processor.handle(data, CLIENT))
        await asyncio.sleep(0)  # the first copy is now waiting on the directory
        second = await processor.handle(data, CLIENT)
        directory.gate.set()
        return await first, second

    first, second = run(scenario)
    assert second is None
    assert reply_of(pkt, first).code == rpacket.DisconnectACK
    assert processor.counters.duplicates == 1
    assert directory.disconnected == [BOB]


def test_duplicate_cache_is_bounded() -> None:
    processor, directory, _, _ = make(cache_size=2)
    packets = [request(ident=i, User_Name="bob")[1] for i in range(3)]
    for data in packets:
        handle(processor, data)
    assert len(processor._cache) == 2
    handle(processor, packets[0])  # evicted: processed again, not a duplicate
    assert processor.counters.duplicates == 0
    assert len(directory.disconnected) == 4


# ------------------------------------------------------------------ CoA


def test_coa_session_timeout_is_applied() -> None:
    processor, directory, _, _ = make()
    pkt, data = request(rpacket.CoARequest, User_Name="bob", Session_Timeout=60)
    reply = reply_of(pkt, handle(processor, data))
    assert (reply.code, cause(reply)) == (rpacket.CoAACK, None)
    assert directory.timeouts == [(BOB, 60)]
    pkt, data = request(rpacket.CoARequest, ident=8, User_Name="bob", Session_Timeout=0)
    assert reply_of(pkt, handle(processor, data)).code == rpacket.CoAACK
    assert directory.timeouts[-1] == (BOB, None)  # 0: no limit any more
    c = processor.counters
    assert (c.coa_requests, c.coa_acks, c.session_timeouts_set) == (2, 2, 2)


def test_coa_without_changes_is_acknowledged_and_changes_nothing() -> None:
    processor, directory, _, _ = make()
    pkt, data = request(rpacket.CoARequest, Acct_Session_Id="A1", Service_Type="Framed-User")
    assert reply_of(pkt, handle(processor, data)).code == rpacket.CoAACK
    assert directory.timeouts == [] and directory.disconnected == []


# ------------------------------------------------------------------ every NAK


D, C = rpacket.DisconnectRequest, rpacket.CoARequest
U = {"User_Name": "bob"}
NAKS: list[tuple[str, int, dict[str, Any], dict[int, list[bytes]], int]] = [
    ("no session", D, {"User_Name": "carol"}, {}, 503),
    ("no identification", D, {"NAS_Identifier": "lns1"}, {}, 402),
    ("nothing at all", C, {"Session_Timeout": 5}, {}, 402),
    ("timeout in a disconnect", D, {**U, "Session_Timeout": 5}, {}, 401),
    ("filter in a CoA", C, {**U, "Filter_Id": "x"}, {}, 401),
    ("vendor attribute", C, U, {26: [b"\x00\x00\x01\x37\x01\x03x"]}, 401),
    ("unknown attribute", D, U, {200: [b"x"]}, 401),
    ("other NAS name", D, {**U, "NAS_Identifier": "lns2"}, {}, 403),
    ("other NAS address", C, {**U, "NAS_IP_Address": "192.0.2.2"}, {}, 403),
    ("short address", D, {}, {8: [b"\x0a\x00\x00"]}, 404),
    ("user not UTF-8", D, {}, {1: [b"\xff\xfe"]}, 404),
    ("empty user", D, {}, {1: [b""]}, 404),
    ("user twice", D, {}, {1: [b"bob", b"alice"]}, 404),
    ("short timeout", C, U, {27: [b"\x00\x05"]}, 404),
    ("short timestamp", D, U, {55: [b"\x00"]}, 404),
    ("authorize only", C, U, {6: [struct.pack("!I", 17)], 24: [b"state"]}, 405),
    ("odd service", D, U, {6: [struct.pack("!I", 5)]}, 405),
]


@pytest.mark.parametrize(
    ("code", "attributes", "raw", "expected"),
    [case[1:] for case in NAKS],
    ids=[case[0] for case in NAKS],
)
def test_nak_causes(
    code: int, attributes: dict[str, Any], raw: dict[int, list[bytes]], expected: int
) -> None:
    processor, directory, _, _ = make()
    pkt, data = request(code, raw=raw, **attributes)
    reply = reply_of(pkt, handle(processor, data))
    nak = rpacket.DisconnectNAK if code == rpacket.DisconnectRequest else rpacket.CoANAK
    assert (reply.code, cause(reply)) == (nak, expected)
    assert directory.disconnected == [] and directory.timeouts == []
    assert processor.counters.naks_by_cause == {expected: 1}
    if 24 in pkt:  # Authorize-Only: RFC 5176 3.2, the NAK echoes the Service-Type
        assert reply[6] == [struct.pack("!I", 17)]
    elif expected == ErrorCause.UNSUPPORTED_SERVICE:
        assert 6 not in reply


def test_nas_identity_not_configured_is_not_checked() -> None:
    processor, _, _, _ = make(nas=NasIdentity())
    pkt, data = request(User_Name="bob", NAS_Identifier="anything", NAS_IP_Address="192.0.2.77")
    assert reply_of(pkt, handle(processor, data)).code == rpacket.DisconnectACK


EDGE = NasIdentity(identifier="edge", ipv4=IPv4Address("198.51.100.1"), listeners=("e1", "e2"))
SHARED = NasIdentity(identifier="core", ipv4=IPv4Address("192.0.2.1"), listeners=("c1",))
"""Listener identities: ``edge`` (its own address) for e1 and e2; ``core`` for c1, with
the daemon's address (a table that sets nas_identifier only)."""
SCOPED = NasIdentity(identifier="lns1", ipv4=IPv4Address("192.0.2.1"), alternates=(EDGE, SHARED))
BOBS = {
    listener: SessionRef(key=(10 + n, 1), user_name="bob", listener=listener)
    for n, listener in enumerate((None, "plain", "e1", "e2", "c1"))
}
"""A bob on each: no listener (a LAC's call), a listener with the daemon's identity
(``plain``: no table of its own, or one with the daemon's identity), e1, e2, c1."""


def disconnected_by(attributes: dict[str, Any], nas: NasIdentity = SCOPED) -> set[str | None]:
    """The listeners whose bob a Disconnect-Request for User-Name bob with ``attributes``
    closed (None: the LAC's); raises when it is NAKed."""
    processor, directory, _, _ = make(Directory(list(BOBS.values())), nas=nas)
    pkt, data = request(User_Name="bob", **attributes)
    reply = reply_of(pkt, handle(processor, data))
    if reply.code != rpacket.DisconnectACK:
        raise LookupError(cause(reply))
    return {ref.listener for ref in directory.disconnected}


def test_a_listener_nas_identity_is_ours_too() -> None:
    """[listener.L.radius] with its own nas_identifier / nas_ip_address: its sessions'
    records carry that identity, so a Disconnect-Request naming it is addressed to us;
    the identity must match as a whole (name of one, address of another: 403)."""
    edge = {"NAS_Identifier": "edge", "NAS_IP_Address": "198.51.100.1"}
    assert disconnected_by(edge) == {"e1", "e2"}
    assert disconnected_by({"NAS_Identifier": "lns1"}) == {None, "plain"}
    for wrong in (
        {"NAS_Identifier": "edge", "NAS_IP_Address": "192.0.2.1"},
        {"NAS_Identifier": "other"},
    ):
        with pytest.raises(LookupError, match="403"):
            disconnected_by(wrong)


def test_nas_attributes_scope_the_sessions_to_the_listeners_named() -> None:
    """A request naming listener A's NAS identity must not close listener B's sessions:
    the identities that compare the most of its attributes win, each covering its
    listeners' sessions (the daemon's: the sessions of every other listener and of no
    listener); without NAS attributes every session matches, as before."""
    everyone = set(BOBS)
    assert disconnected_by({}) == everyone
    assert disconnected_by({"NAS_Identifier": "edge"}) == {"e1", "e2"}
    assert disconnected_by({"NAS_IP_Address": "198.51.100.1"}) == {"e1", "e2"}
    assert disconnected_by({"NAS_Identifier": "core"}) == {"c1"}
    # The address the daemon and c1 share names both, more specifically than by name:
    assert disconnected_by({"NAS_IP_Address": "192.0.2.1"}) == {None, "plain", "c1"}
    assert disconnected_by({"NAS_Identifier": "core", "NAS_IP_Address": "192.0.2.1"}) == {"c1"}
    assert disconnected_by({"NAS_Identifier": "lns1", "NAS_IP_Address": "192.0.2.1"}) == {
        None,
        "plain",
    }
    # An identity naming nothing we hold (no identifier or address of ours to compare):
    # every identity matches equally, so every session.
    assert disconnected_by({"NAS_IPv6_Address": "2001:db8::1"}) == everyone


def test_a_daemon_identity_without_a_name_does_not_take_a_listener_request() -> None:
    """Without ``nas_identifier`` the daemon's NAS-Identifier is not checked (its
    Access-Requests carry each listener's PPP name): a request naming ``edge`` matches it
    only vacuously, and goes to the listener that names it."""
    nas = NasIdentity(alternates=(EDGE,))
    assert disconnected_by({"NAS_Identifier": "edge"}, nas) == {"e1", "e2"}
    assert disconnected_by({"NAS_Identifier": "ppp-name"}, nas) == {None, "plain", "c1"}


def test_no_session_of_the_named_nas_is_503() -> None:
    """A request naming a listener none of whose sessions matches: the NAK of any
    unknown session (503), and nobody else's session is touched."""
    only_daemon = [BOBS[None], SessionRef(key=(20, 1), user_name="alice", listener="e1")]
    processor, directory, _, _ = make(Directory(only_daemon), nas=SCOPED)
    pkt, data = request(User_Name="bob", NAS_Identifier="edge")
    reply = reply_of(pkt, handle(processor, data))
    assert (reply.code, cause(reply)) == (rpacket.DisconnectNAK, 503)
    assert directory.disconnected == []
    coa, coa_data = request(
        rpacket.CoARequest, ident=8, User_Name="bob", NAS_Identifier="edge", Session_Timeout=60
    )
    reply = reply_of(coa, handle(processor, coa_data))
    assert (reply.code, cause(reply)) == (rpacket.CoANAK, 503)
    assert directory.timeouts == []


def test_session_that_does_not_close_is_not_removable() -> None:
    processor, directory, _, _ = make()
    directory.disconnect_ok = False
    pkt, data = request(User_Name="bob")
    reply = reply_of(pkt, handle(processor, data))
    assert (reply.code, cause(reply)) == (rpacket.DisconnectNAK, 504)


def test_session_that_cannot_take_a_timeout_is_an_unsupported_attribute() -> None:
    processor, directory, _, _ = make()
    directory.timeout_ok = False
    pkt, data = request(rpacket.CoARequest, User_Name="bob", Session_Timeout=10)
    reply = reply_of(pkt, handle(processor, data))
    assert (reply.code, cause(reply)) == (rpacket.CoANAK, 401)


def test_a_directory_bug_is_a_nak_not_an_exception(caplog: pytest.LogCaptureFixture) -> None:
    processor, directory, _, _ = make()
    directory.fail = True
    pkt, data = request(User_Name="bob")
    reply = reply_of(pkt, handle(processor, data))
    assert (reply.code, cause(reply)) == (rpacket.DisconnectNAK, 506)
    assert processor.counters.directory_errors == 1
    assert "directory bug" in caplog.text  # the traceback is in our log, not the reply
    assert b"directory bug" not in (handle(processor, data) or b"")


# ------------------------------------------------------------------ malformed input


def sign(body: bytes, code: int = rpacket.DisconnectRequest, ident: int = 1) -> bytes:
    """A request with arbitrary attribute octets and a correct Request Authenticator."""
    header = struct.pack("!BBH", code, ident, 20 + len(body))
    auth = hashlib.md5(header + bytes(16) + body + SECRET).digest()
    return header + auth + body


def test_malformed_datagrams_are_dropped_and_counted() -> None:
    processor, directory, _, _ = make()
    assert handle(processor, b"\x28\x01\x00") is None  # shorter than a header
    assert handle(processor, sign(b"\x01\x05bob")[:-1]) is None  # shorter than Length
    assert handle(processor, sign(b"\x01\x01")) is None  # attribute length 1
    assert handle(processor, sign(b"\x01\x09bob")) is None  # attribute past the end
    assert processor.counters.malformed == 4
    assert handle(processor, sign(b"\x01\x05bob", code=rpacket.AccessRequest)) is None
    assert processor.counters.unsupported_code == 1
    assert directory.queries == []


def test_padding_beyond_length_is_ignored() -> None:
    processor, _, _, _ = make()
    data = sign(b"\x01\x05bob") + b"\x00\x00padding"
    assert handle(processor, data) is not None


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=300),
    signed=st.binary(max_size=120),
    code=st.sampled_from([rpacket.DisconnectRequest, rpacket.CoARequest]),
)
def test_arbitrary_bytes_never_raise(data: bytes, signed: bytes, code: int) -> None:
    """Raw garbage, and garbage attributes under a valid authenticator (which reaches the
    attribute checks), end in a reply or silence, never an exception."""
    processor, _, _, _ = make(Directory())
    loop = asyncio.new_event_loop()
    try:
        for datagram in (data, sign(signed, code)):
            reply = loop.run_until_complete(processor.handle(datagram, CLIENT))
            if reply is not None:
                assert reply[0] in (41, 42, 44, 45)
                assert int.from_bytes(reply[2:4], "big") == len(reply)
    finally:
        loop.close()
    c = processor.counters
    handled = c.disconnect_requests + c.coa_requests
    dropped = c.malformed + c.unsupported_code + c.bad_authenticator + c.bad_message_authenticator
    assert c.received == 2 == handled + dropped + c.stale_timestamp + c.duplicates


def test_client_table_is_checked() -> None:
    with pytest.raises(ValueError, match="shared secret"):
        DaeClient(IPv4Address("192.0.2.1"), b"")
    with pytest.raises(ValueError, match="twice"):
        DaeProcessor(
            Directory(),
            [DaeClient(IPv4Address("192.0.2.1"), b"a"), DaeClient(IPv4Address("192.0.2.1"), b"b")],
        )
    assert "secret" not in repr(DaeClient(IPv4Address("192.0.2.1"), b"hunter2"))
    assert "hunter2" not in repr(DaeClient(IPv4Address("192.0.2.1"), b"hunter2"))
