"""IPCP (RFC 1332, RFC 1877) and IPv6CP (RFC 5072) option policies."""

from __future__ import annotations

import random
from ipaddress import IPv4Address

from l2tp.ppp import NetworkUp, Protocol
from l2tp.ppp.codec import Option
from l2tp.ppp.constants import IpcpOption, Ipv6cpOption
from l2tp.ppp.cp import Verdict
from l2tp.ppp.ipcp import IpcpOptions
from l2tp.ppp.ipv6cp import Ipv6cpOptions

from .pair import PppPair, authenticator_config, peer_config

ZERO = IPv4Address(0)
ASSIGN = IPv4Address("10.0.0.2")
DNS1, DNS2 = IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")


def addr(kind: int, value: IPv4Address) -> Option:
    return Option(kind, value.packed)


def server() -> IpcpOptions:
    handler = IpcpOptions(local=IPv4Address("10.0.0.1"), peer=ASSIGN, dns=(DNS1, DNS2))
    handler.reset(0.0)
    return handler


def test_authenticator_assigns_the_peer_address_by_nak() -> None:
    handler = server()
    nak = (Verdict.NAK, addr(IpcpOption.IP_ADDRESS, ASSIGN))
    assert handler.check_request([addr(IpcpOption.IP_ADDRESS, ZERO)]) == [nak]
    assert handler.check_request([addr(IpcpOption.IP_ADDRESS, IPv4Address("1.2.3.4"))]) == [nak]
    ok = addr(IpcpOption.IP_ADDRESS, ASSIGN)
    assert handler.check_request([ok]) == [(Verdict.ACK, ok)]


def test_peer_without_address_option_gets_one_hint() -> None:
    handler = server()
    hint = (Verdict.NAK, addr(IpcpOption.IP_ADDRESS, ASSIGN))
    assert handler.check_request([]) == [hint]
    assert handler.check_request([]) == []  # only once: the peer may not want one
    handler.peer_acked([])
    assert handler.peer_address == ASSIGN


def test_dns_servers_are_given_on_request() -> None:
    handler = server()
    asked = [addr(IpcpOption.PRIMARY_DNS, ZERO), addr(IpcpOption.SECONDARY_DNS, DNS2)]
    verdicts = handler.check_request([addr(IpcpOption.IP_ADDRESS, ASSIGN), *asked])
    assert verdicts[1:] == [
        (Verdict.NAK, addr(IpcpOption.PRIMARY_DNS, DNS1)),
        (Verdict.ACK, addr(IpcpOption.SECONDARY_DNS, DNS2)),
    ]
    no_dns = IpcpOptions(local=IPv4Address("10.0.0.1"), peer=ASSIGN)
    no_dns.reset(0.0)
    primary = addr(IpcpOption.PRIMARY_DNS, ZERO)
    assert no_dns.check_request([addr(IpcpOption.IP_ADDRESS, ASSIGN), primary])[1] == (
        Verdict.REJECT,
        primary,
    )


def test_compression_nbns_and_unknown_options_are_rejected() -> None:
    handler = server()
    options = [
        Option(IpcpOption.IP_COMPRESSION_PROTOCOL, b"\x00\x2d\x0f\x01"),
        Option(IpcpOption.IP_ADDRESSES, bytes(8)),
        addr(IpcpOption.PRIMARY_NBNS, ZERO),
        addr(IpcpOption.SECONDARY_NBNS, ZERO),
        Option(200, b"?"),
        Option(IpcpOption.IP_ADDRESS, b"\x0a"),  # wrong length
    ]
    verdicts = handler.check_request([addr(IpcpOption.IP_ADDRESS, ASSIGN), *options])
    assert verdicts[1:] == [(Verdict.REJECT, o) for o in options]


def test_peer_role_cannot_assign() -> None:
    handler = IpcpOptions(request_dns=True)
    handler.reset(0.0)
    zero = addr(IpcpOption.IP_ADDRESS, ZERO)
    assert handler.check_request([zero]) == [(Verdict.REJECT, zero)]
    theirs = addr(IpcpOption.IP_ADDRESS, IPv4Address("10.0.0.1"))
    assert handler.check_request([theirs]) == [(Verdict.ACK, theirs)]
    # We ask for 0.0.0.0 and DNS 0.0.0.0 and take what the Nak suggests.
    assert handler.request_options() == [
        addr(IpcpOption.IP_ADDRESS, ZERO),
        addr(IpcpOption.PRIMARY_DNS, ZERO),
        addr(IpcpOption.SECONDARY_DNS, ZERO),
    ]
    handler.nak_received([addr(IpcpOption.IP_ADDRESS, ASSIGN), addr(IpcpOption.PRIMARY_DNS, DNS1)])
    handler.reject_received([addr(IpcpOption.SECONDARY_DNS, ZERO)])
    assert handler.request_options() == [
        addr(IpcpOption.IP_ADDRESS, ASSIGN),
        addr(IpcpOption.PRIMARY_DNS, DNS1),
    ]
    handler.ack_received(handler.request_options())
    assert (handler.local_address, handler.dns) == (ASSIGN, (DNS1,))


def test_configured_local_address_is_kept_against_a_nak() -> None:
    handler = IpcpOptions(local=IPv4Address("10.0.0.1"))
    handler.reset(0.0)
    handler.nak_received([addr(IpcpOption.IP_ADDRESS, IPv4Address("10.9.9.9"))])
    assert handler.request_options() == [addr(IpcpOption.IP_ADDRESS, IPv4Address("10.0.0.1"))]


ID_A = bytes.fromhex("0011223344556677")
ID_B = bytes.fromhex("8899aabbccddeeff")


def v6(interface_id: bytes | None = ID_A, seed: int = 1) -> Ipv6cpOptions:
    handler = Ipv6cpOptions(random_bytes=random.Random(seed).randbytes, interface_id=interface_id)
    handler.reset(0.0)
    return handler


def test_interface_id_collision_and_zero_get_a_nak() -> None:
    handler = v6()
    for proposed in (ID_A, bytes(8)):
        ((verdict, option),) = handler.check_request(
            [Option(Ipv6cpOption.INTERFACE_IDENTIFIER, proposed)]
        )
        assert verdict is Verdict.NAK
        assert option.data not in (bytes(8), ID_A) and len(option.data) == 8
    ok = Option(Ipv6cpOption.INTERFACE_IDENTIFIER, ID_B)
    assert handler.check_request([ok]) == [(Verdict.ACK, ok)]
    compression = Option(Ipv6cpOption.IPV6_COMPRESSION_PROTOCOL, b"\x00\x4f")
    assert handler.check_request([ok, compression])[1] == (Verdict.REJECT, compression)


def test_interface_id_nak_handling() -> None:
    handler = v6()
    handler.peer_acked([Option(Ipv6cpOption.INTERFACE_IDENTIFIER, ID_B)])
    handler.nak_received([Option(Ipv6cpOption.INTERFACE_IDENTIFIER, ID_B)])  # the peer's own
    assert handler.local_id not in (ID_A, ID_B, bytes(8))
    handler.nak_received([Option(Ipv6cpOption.INTERFACE_IDENTIFIER, bytes.fromhex("01" * 8))])
    assert handler.local_id == bytes.fromhex("01" * 8)
    handler.reject_received([Option(Ipv6cpOption.INTERFACE_IDENTIFIER, handler.local_id)])
    assert handler.request_options() == []


def test_random_interface_id_is_never_zero() -> None:
    draws = iter([bytes(8), bytes(8), ID_B])
    handler = Ipv6cpOptions(random_bytes=lambda n: next(draws))
    assert handler.local_id == ID_B


def test_identical_configured_ids_converge_to_distinct_ones() -> None:
    pair = PppPair(
        authenticator_config(ipv6=True, interface_id=ID_A),
        peer_config(ipv6=True, interface_id=ID_A),
    )
    pair.open()
    (a_up,) = [e for e in pair.a.of(NetworkUp) if e.protocol is Protocol.IPV6CP]
    (p_up,) = [e for e in pair.p.of(NetworkUp) if e.protocol is Protocol.IPV6CP]
    assert a_up.local_interface_id != a_up.peer_interface_id
    assert (a_up.local_interface_id, a_up.peer_interface_id) == (
        p_up.peer_interface_id,
        p_up.local_interface_id,
    )
