"""Accounting records attribute by attribute (RFC 2866 5, RFC 2867 3-4, RFC 2869 5.1-5.2),
the terminate-cause table and Acct-Session-Id allocation."""

from __future__ import annotations

import pyrad.dictionary
import pyrad.packet
import pytest

from l2tp.radius import DICTIONARY_PATH
from l2tp.radius.records import (
    TERMINATE_CAUSES,
    AcctAuthentic,
    Counters,
    NasIdentity,
    SessionDescription,
    SessionEnd,
    SessionIdAllocator,
    StatusType,
    TerminateCause,
    TunnelDescription,
    end_from_cdn,
    end_from_ppp,
    interim_record,
    nas_record,
    split_octets,
    start_record,
    stop_record,
    tunnel_link_record,
    tunnel_record,
)
from l2tp.runtime.ppp_outcome import Ending
from tests.unit.radius_fakes import T0, add_to_packet

TUNNEL = TunnelDescription(
    tunnel_id=10,
    peer_tunnel_id=20,
    client_endpoint="192.0.2.2",
    server_endpoint="192.0.2.1",
    acct_session_id="t-1",
)
SESSION = SessionDescription(
    acct_session_id="abc-00000001",
    user_name="alice",
    started_at=T0,
    tunnel=TUNNEL,
    session_id=7,
    framed_address="10.0.0.2",
    classes=(b"\x01class-a", b"class-b"),
    calling_station_id="5551234",
    called_station_id="5550000",
    nas=NasIdentity(identifier="lns1", ip_address="192.0.2.1"),
)
HEAD = [
    ("Acct-Session-Id", "abc-00000001"),
    ("User-Name", "alice"),
    ("NAS-Identifier", "lns1"),
    ("NAS-IP-Address", "192.0.2.1"),
    ("Acct-Authentic", 1),
]
TUNNEL_ATTRS = [
    ("Tunnel-Type", (0, 3)),
    ("Tunnel-Medium-Type", (0, 1)),
    ("Tunnel-Client-Endpoint", (0, "192.0.2.2")),
    ("Tunnel-Server-Endpoint", (0, "192.0.2.1")),
]
CALL = [
    ("Framed-IP-Address", "10.0.0.2"),
    ("Calling-Station-Id", "5551234"),
    ("Called-Station-Id", "5550000"),
    ("Class", b"\x01class-a"),
    ("Class", b"class-b"),
]


def test_start_record_attribute_by_attribute() -> None:
    record = start_record(SESSION, T0 + 0.9)
    assert list(record) == [
        ("Acct-Status-Type", 1),
        *HEAD,
        ("Event-Timestamp", int(T0)),
        *CALL,
        *TUNNEL_ATTRS,
        ("Acct-Tunnel-Connection", "10/7"),
    ]


def test_interim_record_carries_time_and_counters_with_gigawords() -> None:
    counters = Counters(
        input_octets=5 * 2**32 + 7,
        output_octets=2**32 - 1,
        input_packets=2**32 + 3,  # 32-bit: wraps (RFC 2866 5.7 has no high word)
        output_packets=9,
    )
    record = interim_record(SESSION, counters, T0 + 125.5)
    assert record[0] == ("Acct-Status-Type", 3)
    assert list(record[-7:]) == [
        ("Acct-Session-Time", 125),
        ("Acct-Input-Octets", 7),
        ("Acct-Output-Octets", 2**32 - 1),
        ("Acct-Input-Gigawords", 5),
        ("Acct-Output-Gigawords", 0),
        ("Acct-Input-Packets", 3),
        ("Acct-Output-Packets", 9),
    ]
    assert ("Event-Timestamp", int(T0) + 125) in record
    assert ("Acct-Terminate-Cause", 2) not in record


def test_stop_record_has_the_cause_and_packets_lost() -> None:
    record = stop_record(
        SESSION, Counters(1, 2, 3, 4), TerminateCause.USER_REQUEST, T0 + 60, packets_lost=5
    )
    assert record[0] == ("Acct-Status-Type", 2)
    assert list(record[-3:]) == [
        ("Acct-Output-Packets", 4),
        ("Acct-Terminate-Cause", 1),
        ("Acct-Tunnel-Packets-Lost", 5),
    ]
    assert [v for k, v in record if k == "Class"] == [b"\x01class-a", b"class-b"]  # in order
    without = stop_record(SESSION, Counters(), TerminateCause.LOST_CARRIER, T0)
    assert not any(k == "Acct-Tunnel-Packets-Lost" for k, _ in without)


def test_session_time_never_negative_and_local_authentic() -> None:
    local = SessionDescription(
        acct_session_id="x", user_name="", started_at=T0, tunnel=TUNNEL, session_id=1,
        authentic=AcctAuthentic.LOCAL,
    )  # fmt: skip
    record = stop_record(local, Counters(), TerminateCause.NAS_REQUEST, T0 - 10)
    assert ("Acct-Session-Time", 0) in record
    assert ("Acct-Authentic", 2) in record
    assert not any(k in ("Framed-IP-Address", "Class", "NAS-Identifier") for k, _ in record)


@pytest.mark.parametrize(
    ("octets", "expected"),
    [(0, (0, 0)), (2**32 - 1, (0, 2**32 - 1)), (2**32, (1, 0)), (3 * 2**32 + 5, (3, 5))],
)
def test_split_octets(octets: int, expected: tuple[int, int]) -> None:
    assert split_octets(octets) == expected


def test_split_octets_refuses_negative() -> None:
    with pytest.raises(ValueError):
        split_octets(-1)


def test_tunnel_records() -> None:
    nas = NasIdentity(identifier="lns1")
    start = tunnel_record(StatusType.TUNNEL_START, TUNNEL, T0, nas=nas)
    assert list(start) == [
        ("Acct-Status-Type", 9),
        ("Acct-Session-Id", "t-1"),
        ("NAS-Identifier", "lns1"),
        ("Event-Timestamp", int(T0)),
        *TUNNEL_ATTRS,
        ("Acct-Tunnel-Connection", "10"),
    ]
    stop = tunnel_record(
        StatusType.TUNNEL_STOP, TUNNEL, T0 + 30, started_at=T0, cause=TerminateCause.LOST_SERVICE
    )
    assert list(stop[-2:]) == [("Acct-Session-Time", 30), ("Acct-Terminate-Cause", 3)]
    reject = tunnel_record(StatusType.TUNNEL_REJECT, TUNNEL, T0, cause=TerminateCause.NAS_ERROR)
    assert reject[0] == ("Acct-Status-Type", 11) and reject[-1] == ("Acct-Terminate-Cause", 9)
    with pytest.raises(ValueError):
        tunnel_record(StatusType.START, TUNNEL, T0)


def test_tunnel_link_records() -> None:
    start = tunnel_link_record(StatusType.TUNNEL_LINK_START, SESSION, T0)
    assert start[0] == ("Acct-Status-Type", 12)
    assert ("Acct-Tunnel-Connection", "10/7") in start
    assert not any(k == "Acct-Session-Time" for k, _ in start)
    stop = tunnel_link_record(
        StatusType.TUNNEL_LINK_STOP,
        SESSION,
        T0 + 10,
        counters=Counters(input_octets=2**33),
        cause=TerminateCause.USER_REQUEST,
        packets_lost=2,
    )
    assert stop[0] == ("Acct-Status-Type", 13)
    assert list(stop[-9:]) == [
        ("Acct-Session-Time", 10),
        ("Acct-Input-Octets", 0),
        ("Acct-Output-Octets", 0),
        ("Acct-Input-Gigawords", 2),
        ("Acct-Output-Gigawords", 0),
        ("Acct-Input-Packets", 0),
        ("Acct-Output-Packets", 0),
        ("Acct-Tunnel-Packets-Lost", 2),
        ("Acct-Terminate-Cause", 1),
    ]
    reject = tunnel_link_record(
        StatusType.TUNNEL_LINK_REJECT, SESSION, T0, cause=TerminateCause.USER_ERROR
    )
    assert reject[0] == ("Acct-Status-Type", 14) and reject[-1] == ("Acct-Terminate-Cause", 17)
    with pytest.raises(ValueError):
        tunnel_link_record(StatusType.TUNNEL_STOP, SESSION, T0)


def test_every_record_encodes_with_the_dictionary() -> None:
    """Names, types and values fit the shipped dictionary: pyrad encodes and decodes them."""
    dictionary = pyrad.dictionary.Dictionary(str(DICTIONARY_PATH))
    counters = Counters(2**40, 3, 4, 5)
    records = [
        start_record(SESSION, T0),
        interim_record(SESSION, counters, T0),
        stop_record(SESSION, counters, TerminateCause.ADMIN_REBOOT, T0, packets_lost=1),
        tunnel_record(StatusType.TUNNEL_START, TUNNEL, T0),
        tunnel_link_record(StatusType.TUNNEL_LINK_STOP, SESSION, T0, counters=counters),
    ]
    for record in records:
        packet = pyrad.packet.AcctPacket(dict=dictionary, secret=b"s")
        add_to_packet(packet, [*record, ("Acct-Delay-Time", 3)])
        decoded = pyrad.packet.AcctPacket(
            dict=dictionary, secret=b"s", packet=packet.RequestPacket()
        )
        assert decoded["Acct-Session-Id"] == [dict(record)["Acct-Session-Id"]]
        assert decoded["Acct-Delay-Time"] == [3]
    assert decoded["Acct-Input-Gigawords"] == [256]
    assert decoded["Acct-Status-Type"] == ["Tunnel-Link-Stop"]


# --- terminate causes ------------------------------------------------------------------


def test_every_session_end_has_a_cause() -> None:
    assert set(TERMINATE_CAUSES) == set(SessionEnd)


@pytest.mark.parametrize(
    ("end", "cause"),
    [
        (SessionEnd.PEER_TERMINATED, TerminateCause.USER_REQUEST),
        (SessionEnd.ECHO_FAILED, TerminateCause.LOST_CARRIER),
        (SessionEnd.HANGUP, TerminateCause.LOST_CARRIER),
        (SessionEnd.TUNNEL_LOST, TerminateCause.LOST_SERVICE),
        (SessionEnd.SESSION_TIMEOUT, TerminateCause.SESSION_TIMEOUT),
        (SessionEnd.IDLE_TIMEOUT, TerminateCause.IDLE_TIMEOUT),
        (SessionEnd.ADMIN_CLOSE, TerminateCause.ADMIN_RESET),
        (SessionEnd.DISCONNECT_REQUEST, TerminateCause.ADMIN_RESET),
        (SessionEnd.SHUTDOWN, TerminateCause.ADMIN_REBOOT),
        (SessionEnd.AUTH_FAILED, TerminateCause.USER_ERROR),
        (SessionEnd.LOCAL_FAILURE, TerminateCause.NAS_ERROR),
        (SessionEnd.PEER_CDN, TerminateCause.USER_REQUEST),
        (SessionEnd.PEER_CDN_LOST_CARRIER, TerminateCause.LOST_CARRIER),
        (SessionEnd.NAS_REQUEST, TerminateCause.NAS_REQUEST),
    ],
)
def test_terminate_cause_table(end: SessionEnd, cause: TerminateCause) -> None:
    assert TERMINATE_CAUSES[end] is cause


def test_every_ppp_ending_maps_to_its_own_end() -> None:
    ends = {ending: end_from_ppp(ending.name) for ending in Ending}
    assert SessionEnd.NAS_REQUEST not in ends.values()  # none falls through
    assert ends[Ending.PEER_TERMINATED] is SessionEnd.PEER_TERMINATED
    assert ends[Ending.ECHO_FAILED] is SessionEnd.ECHO_FAILED
    assert end_from_ppp(None) is SessionEnd.NAS_REQUEST


def test_cdn_ends() -> None:
    assert end_from_cdn(1, by_peer=True) is SessionEnd.PEER_CDN_LOST_CARRIER
    assert end_from_cdn(3, by_peer=True) is SessionEnd.PEER_CDN_ADMIN
    assert end_from_cdn(2, by_peer=True) is SessionEnd.PEER_CDN
    assert end_from_cdn(1, by_peer=False) is SessionEnd.NAS_REQUEST


# --- Acct-Session-Id -------------------------------------------------------------------


def test_session_ids_are_unique_and_stable_in_form() -> None:
    ids = SessionIdAllocator(T0, random_bits=lambda n: 0xBEEF)
    first, second = ids.next(), ids.next()
    assert first == f"{int(T0):08x}beef-00000001"
    assert second == f"{int(T0):08x}beef-00000002"
    assert len(first) == 21
    # A restart in the same second (or after a clock step back) gets other random bits.
    again = SessionIdAllocator(T0, random_bits=lambda n: 0x1234)
    assert again.next() != first
    # A later start sorts after (hex seconds first).
    later = SessionIdAllocator(T0 + 1, random_bits=lambda n: 0)
    assert later.next() > first


def test_accounting_on_off_records() -> None:
    nas = NasIdentity(identifier="lns1", ip_address="192.0.2.1")
    assert nas_record(StatusType.ACCOUNTING_ON, nas, "x-1", T0) == (
        ("Acct-Status-Type", 7),
        ("Acct-Session-Id", "x-1"),
        ("NAS-Identifier", "lns1"),
        ("NAS-IP-Address", "192.0.2.1"),
        ("Event-Timestamp", int(T0)),
    )
    assert nas_record(StatusType.ACCOUNTING_OFF, nas, "x-2", T0)[0] == ("Acct-Status-Type", 8)
    with pytest.raises(ValueError):
        nas_record(StatusType.START, nas, "x", T0)
