"""RadiusAuthenticator: the Access-Request attributes, the reply mapping, and built-in PPP
sessions authenticated through it (two backends over socket pairs, as in
test_builtin_ppp_backend.py) against an in-memory RADIUS server that checks PAP, CHAP-MD5
and MS-CHAPv2 credentials the way FreeRADIUS does (the loopback tier runs FreeRADIUS).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from pathlib import Path
from typing import Any

import pytest

from l2tp.ppp import AuthDecision, AuthMethod, PeerRoute
from l2tp.ppp.auth.base import ChapMd5Request, MsChapV2Request, PapRequest
from l2tp.ppp.auth.chap import md5_verify
from l2tp.ppp.auth.mschapv2 import format_success, verify_nt_response
from l2tp.protocol.constants import CdnResult
from l2tp.radius.auth import (
    NoVerdict,
    RadiusAuthenticator,
    RadiusAuthorization,
    decision_from_reply,
    parse_framed_route,
    request_attributes,
)
from l2tp.radius.interface import Attribute, RadiusOverload, RadiusReply, RadiusTimeout
from l2tp.runtime.builtin_ppp import AuthContext, Ending
from tests.helpers import until
from tests.unit.test_builtin_ppp_backend import (
    LNS_IP,
    ipcp_up,
    lac_options,
    lns_options,
    make_pair,
    run,
)

CONTEXT = AuthContext(
    tunnel_id=10,
    session_id=4711,
    peer=("192.0.2.2", 1701),
    local=("192.0.2.1", 1701),
    server="lns",
    calling_number="5551234",
    called_number="100",
    label="lns (tid 10/20 sid 4711/2)",
)
COMMON = [
    ("NAS-Port", 4711),
    ("NAS-Port-Type", "Virtual"),
    ("Service-Type", "Framed-User"),
    ("Framed-Protocol", "PPP"),
    ("Calling-Station-Id", "5551234"),
    ("Called-Station-Id", "100"),
    ("Tunnel-Type", "L2TP"),
    ("Tunnel-Medium-Type", "IPv4"),
    ("Tunnel-Client-Endpoint", "192.0.2.2"),
    ("Tunnel-Server-Endpoint", "192.0.2.1"),
]
ACCEPT, REJECT = 2, 3
SUCCESS = b"\x07" + format_success(bytes(range(20)))


def test_pap_request_attributes() -> None:
    request = PapRequest(user="alice", password=b"correct horse")
    attrs = request_attributes(request, CONTEXT, nas_ip_address=IPv4Address("192.0.2.1"))
    assert attrs == [
        ("User-Name", "alice"),
        ("User-Password", b"correct horse"),
        ("NAS-Identifier", "lns"),
        ("NAS-IP-Address", "192.0.2.1"),
        *COMMON,
    ]


def test_chap_request_attributes() -> None:
    request = ChapMd5Request(user="bob", identifier=9, challenge=b"c" * 16, response=b"r" * 16)
    attrs = request_attributes(request, CONTEXT, nas_identifier="lns-1")
    assert attrs[:4] == [
        ("User-Name", "bob"),
        ("CHAP-Password", b"\x09" + b"r" * 16),  # RFC 2865 5.3: CHAP Ident + Response
        ("CHAP-Challenge", b"c" * 16),
        ("NAS-Identifier", "lns-1"),
    ]
    assert attrs[4:] == COMMON


def test_mschapv2_request_attributes_and_ipv6_tunnel() -> None:
    request = MsChapV2Request(
        user="DOM\\carol",
        identifier=3,
        authenticator_challenge=b"A" * 16,
        peer_challenge=b"P" * 16,
        nt_response=b"N" * 24,
    )
    context = AuthContext(
        tunnel_id=1,
        session_id=2,
        peer=("2001:db8::2", 1701),
        local=("2001:db8::1", 1701),
        server="lns",
    )
    attrs = dict(request_attributes(request, context, nas_ip_address=IPv6Address("2001:db8::1")))
    assert attrs["User-Name"] == "DOM\\carol"
    assert attrs["MS-CHAP-Challenge"] == b"A" * 16
    # RFC 2548: Ident, Flags 0, Peer-Challenge, 8 reserved octets, NT-Response: 50 octets.
    assert attrs["MS-CHAP2-Response"] == b"\x03\x00" + b"P" * 16 + bytes(8) + b"N" * 24
    assert attrs["Tunnel-Medium-Type"] == "IPv6"
    assert attrs["Tunnel-Client-Endpoint"] == "2001:db8::2"
    assert attrs["NAS-IPv6-Address"] == "2001:db8::1"
    assert "Calling-Station-Id" not in attrs


def test_credentials_radius_cannot_carry_are_refused() -> None:
    with pytest.raises(ValueError, match="128"):
        request_attributes(PapRequest(user="a", password=b"x" * 129), CONTEXT)
    with pytest.raises(ValueError, match="user name"):
        request_attributes(PapRequest(user="u" * 254, password=b"x"), CONTEXT)


def test_accept_maps_every_honoured_attribute() -> None:
    reply = RadiusReply(
        code=ACCEPT,
        attributes=(
            ("Framed-IP-Address", "10.5.0.9"),
            ("Framed-MTU", 1400),
            ("Session-Timeout", 3600),
            ("Idle-Timeout", 600),
            ("Acct-Interim-Interval", 300),
            ("Class", b"c1"),
            ("Class", b"c2"),
            ("Framed-Route", "10.6.0.0/24 0.0.0.0 1"),
            ("MS-Primary-DNS-Server", "192.0.2.53"),
            ("MS-Secondary-DNS-Server", "192.0.2.54"),
            ("User-Name", "alice@realm"),
        ),
    )
    decision = decision_from_reply(PapRequest(user="alice", password=b"pw"), reply)
    assert decision.success
    assert decision.peer_address == IPv4Address("10.5.0.9")
    assert decision.dns == (IPv4Address("192.0.2.53"), IPv4Address("192.0.2.54"))
    assert (decision.mtu, decision.session_timeout, decision.idle_timeout) == (1400, 3600, 600)
    route = PeerRoute(destination=IPv4Network("10.6.0.0/24"), metric=1)
    assert decision.routes == (route,)
    assert decision.authorization == RadiusAuthorization(
        user_name="alice@realm",
        framed_ip_address=IPv4Address("10.5.0.9"),
        framed_routes=("10.6.0.0/24 0.0.0.0 1",),
        routes=(route,),
        framed_mtu=1400,
        session_timeout=3600,
        idle_timeout=600,
        acct_interim_interval=300,
        classes=(b"c1", b"c2"),
        dns=(IPv4Address("192.0.2.53"), IPv4Address("192.0.2.54")),
    )


@pytest.mark.parametrize(
    ("text", "destination", "gateway", "metric"),
    [
        ("192.168.1.0/27 192.168.1.1 1 2 -1 3 400", "192.168.1.0/27", "192.168.1.1", 1),
        ("10.6.0.0/24 0.0.0.0 5", "10.6.0.0/24", None, 5),  # 0.0.0.0: the user (the peer)
        ("10.6.0.0/24", "10.6.0.0/24", None, None),
        ("  10.6.0.7/32   0.0.0.0  ", "10.6.0.7/32", None, None),
        ("0.0.0.0/0 0.0.0.0 1", "0.0.0.0/0", None, 1),
        # No length: classful (RFC 2865 5.22), A /8, B /16, C /24.
        ("10.0.0.0 0.0.0.0 1", "10.0.0.0/8", None, 1),
        ("172.16.0.0 0.0.0.0", "172.16.0.0/16", None, None),
        ("192.168.1.0 192.168.1.1 1", "192.168.1.0/24", "192.168.1.1", 1),
    ],
)
def test_framed_route_parses_as_rfc_2865_describes_it(
    text: str, destination: str, gateway: str | None, metric: int | None
) -> None:
    route = parse_framed_route(text)
    assert route.destination == IPv4Network(destination)
    assert route.gateway == (IPv4Address(gateway) if gateway else None)
    assert route.metric == metric


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "empty"),
        ("10.6.0.0/33", "destination"),
        ("10.6.0.1/24 0.0.0.0 1", "host bits"),
        ("10.6.0.0/x", "destination"),
        ("224.1.0.0 0.0.0.0 1", "no class"),
        ("2001:db8::/32", "destination"),
        ("10.6.0.0/24 gw 1", "gateway"),
        ("10.6.0.0/24 0.0.0.0 -1", "metric"),
        ("10.6.0.0/24 0.0.0.0 4294967296", "metric"),
        ("10.6.0.0/24 0.0.0.0 one", "metric"),
    ],
)
def test_malformed_framed_routes_raise_value_error(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_framed_route(text)


def test_malformed_framed_routes_are_counted_and_the_rest_granted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="l2tp.radius")
    reply = RadiusReply(
        code=ACCEPT,
        attributes=(
            ("Framed-Route", "10.6.0.0/24"),
            ("Framed-Route", "10.7.0.0/99 0.0.0.0 1"),
            ("Framed-Route", "10.8.0.0/16 10.0.0.9 3"),
        ),
    )
    authenticator = RadiusAuthenticator(ScriptedClient(reply))
    decision = _decide(authenticator, PapRequest(user="erin", password=b"pw"))
    assert decision.success
    assert [str(r.destination) for r in decision.routes] == ["10.6.0.0/24", "10.8.0.0/16"]
    assert decision.routes[1].gateway == IPv4Address("10.0.0.9")
    grant = decision.authorization
    assert isinstance(grant, RadiusAuthorization)
    assert grant.bad_routes == ("10.7.0.0/99 0.0.0.0 1",)
    assert authenticator.counters.bad_routes == 1 and authenticator.counters.accepts == 1
    assert 'Framed-Route "10.7.0.0/99 0.0.0.0 1" not understood' in caplog.text


@pytest.mark.parametrize("address", ["255.255.255.254", "255.255.255.255"])
def test_nas_chooses_addresses_leave_the_pool_in_charge(address: str) -> None:
    reply = RadiusReply(code=ACCEPT, attributes=(("Framed-IP-Address", address),))
    decision = decision_from_reply(PapRequest(user="a", password=b"p"), reply)
    assert decision.success and decision.peer_address is None


def test_odd_values_are_ignored_not_raised_on() -> None:
    reply = RadiusReply(
        code=ACCEPT,
        attributes=(("Framed-MTU", 20), ("Session-Timeout", 0), ("Class", "not bytes")),
    )
    decision = decision_from_reply(PapRequest(user="a", password=b"p"), reply)
    assert (decision.mtu, decision.session_timeout, decision.peer_address) == (None, None, None)
    assert isinstance(decision.authorization, RadiusAuthorization)
    assert decision.authorization.classes == ()


def test_mschapv2_accept_needs_a_valid_success() -> None:
    request = MsChapV2Request(
        user="c",
        identifier=7,
        authenticator_challenge=b"A" * 16,
        peer_challenge=b"P" * 16,
        nt_response=b"N" * 24,
    )
    good = RadiusReply(code=ACCEPT, attributes=(("MS-CHAP2-Success", SUCCESS),))
    assert decision_from_reply(request, good).authenticator_response == bytes(range(20))
    for attributes in ((), (("MS-CHAP2-Success", b"\x07S=XYZ"),)):
        with pytest.raises(ValueError, match="MS-CHAP2-Success"):
            decision_from_reply(request, RadiusReply(code=ACCEPT, attributes=attributes))


class ScriptedClient:
    """An AccessClient that answers from a script (a reply or an exception)."""

    def __init__(self, *outcomes: RadiusReply | Exception) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[list[Attribute]] = []

    async def access(self, attributes: Sequence[Attribute]) -> RadiusReply:
        self.requests.append(list(attributes))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def _decide(authenticator: RadiusAuthenticator, request: Any) -> AuthDecision:
    async def go() -> AuthDecision:
        return await authenticator.authenticate(request, CONTEXT)

    return asyncio.run(go())


def test_reject_timeout_overload_and_bad_accept_all_deny(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="l2tp.radius")
    mschap = MsChapV2Request(
        user="carol",
        identifier=7,
        authenticator_challenge=b"A" * 16,
        peer_challenge=b"P" * 16,
        nt_response=b"N" * 24,
    )
    client = ScriptedClient(
        RadiusReply(code=REJECT, attributes=(("MS-CHAP-Error", "\x07E=691 R=0 V=3"),)),
        RadiusTimeout("no answer from RADIUS authentication 127.0.0.1:1812"),
        RadiusOverload("1024 RADIUS requests outstanding"),
        RadiusReply(code=ACCEPT, attributes=()),
    )
    authenticator = RadiusAuthenticator(client)
    verdicts = []
    for _ in range(4):
        decision = _decide(authenticator, mschap)
        assert not decision.success and decision.message == "Access denied"
        verdicts.append(decision.authorization)
    # Only the denials no server decided say so (accounting's cause: not the user's error).
    assert verdicts == [None, NoVerdict("timeout"), NoVerdict("overload"), None]
    pap = PapRequest(user="dave", password=b"x" * 200)
    refused = _decide(authenticator, pap)  # never sent: the user's input is in error
    assert not refused.success and refused.authorization is None
    counters = authenticator.counters
    assert (counters.requests, counters.rejects, counters.timeouts) == (4, 1, 1)
    assert (counters.overloads, counters.errors, counters.accepts) == (1, 2, 0)
    assert len(client.requests) == 4
    assert "error 691" in caplog.text
    assert "no answer from RADIUS" in caplog.text
    assert "x" * 20 not in caplog.text


# --- through the built-in PPP --------------------------------------------------------


class InMemoryServer:
    """Checks credentials as a RADIUS server would and answers with ``reply`` attributes."""

    def __init__(self, passwords: dict[str, str], reply: Sequence[Attribute] = ()) -> None:
        self.passwords = passwords
        self.reply = list(reply)
        self.requests: list[dict[str, object]] = []

    async def access(self, attributes: Sequence[Attribute]) -> RadiusReply:
        await asyncio.sleep(0)  # a round trip through the loop
        attrs = dict(attributes)
        self.requests.append(attrs)
        user = str(attrs["User-Name"])
        password = self.passwords.get(user)
        extra: list[Attribute] = []
        ok = False
        if password is not None and "User-Password" in attrs:
            ok = attrs["User-Password"] == password.encode()
        elif password is not None and "CHAP-Password" in attrs:
            chap = attrs["CHAP-Password"]
            assert isinstance(chap, bytes)
            challenge = attrs["CHAP-Challenge"]
            assert isinstance(challenge, bytes)
            ok = md5_verify(chap[0], password.encode(), challenge, chap[1:])
        elif password is not None and "MS-CHAP2-Response" in attrs:
            response = attrs["MS-CHAP2-Response"]
            challenge = attrs["MS-CHAP-Challenge"]
            assert isinstance(response, bytes) and isinstance(challenge, bytes)
            proof = verify_nt_response(challenge, response[2:18], user, password, response[26:50])
            ok = proof is not None
            if proof is not None:
                extra.append(("MS-CHAP2-Success", bytes([response[0]]) + format_success(proof)))
        if not ok:
            return RadiusReply(code=REJECT, attributes=())
        return RadiusReply(code=ACCEPT, attributes=(*self.reply, *extra))


@pytest.mark.parametrize("method", list(AuthMethod))
def test_each_method_through_radius_applies_address_dns_and_mtu(
    tmp_path: Path, method: AuthMethod
) -> None:
    server = InMemoryServer(
        {"alice": "correct horse"},
        [
            ("Framed-IP-Address", "10.0.0.6"),
            ("Framed-MTU", 1300),
            ("MS-Primary-DNS-Server", "192.0.2.53"),
            ("Class", b"billing-7"),
        ],
    )

    async def scenario() -> None:
        pair = make_pair(authenticator=RadiusAuthenticator(server, nas_identifier="lns-a"))
        try:
            await pair.start(
                lns_options(tmp_path, auth=(method,), secrets=None, dns=(LNS_IP,)),
                lac_options(auth=(method,)),
            )
            await until(lambda: ipcp_up(pair.lns_kernel) and ipcp_up(pair.lac_kernel), "IPCP")
            lns_ops = pair.lns_kernel.interfaces_.calls
            assert ("add_address", 40, LNS_IP, IPv4Address("10.0.0.6"), 32) in lns_ops
            assert ("set_mtu", 40, 1300) in lns_ops  # Framed-MTU below the peer's MRU
            lac_link = pair.lac.links[pair.sessions["lac"].key]
            assert lac_link.peer_dns == (IPv4Address("192.0.2.53"),)  # not the configured
            lns_link = pair.lns.links[pair.sessions["lns"].key]
            assert lns_link.granted is not None
            grant = lns_link.granted.authorization
            assert isinstance(grant, RadiusAuthorization) and grant.classes == (b"billing-7",)
            pool = pair.lns.pool(pair.sessions["lns"].options.builtin_ppp)
            assert pool is not None and pool.in_use == 0  # RADIUS named the address
        finally:
            await pair.close()
        (request,) = server.requests
        assert request["NAS-Identifier"] == "lns-a"
        assert request["Tunnel-Server-Endpoint"] == "192.0.2.1"
        assert request["Calling-Station-Id"] == "5551234"

    run(scenario)


def test_reject_through_radius_ends_with_the_authentication_cdn(tmp_path: Path) -> None:
    server = InMemoryServer({"alice": "another password"})

    async def scenario() -> None:
        pair = make_pair(authenticator=RadiusAuthenticator(server))
        try:
            await pair.start(
                lns_options(tmp_path, auth=(AuthMethod.CHAP_MD5,), secrets=None),
                lac_options(auth=(AuthMethod.CHAP_MD5,)),
            )
            await until(lambda: pair.lns_reported.downs, "LNS down")
            assert pair.lns_reported.downs[0][2] == "PPP authentication failed"
        finally:
            await pair.close()

    run(scenario)


def test_session_timeout_ends_the_session_with_a_cdn(tmp_path: Path) -> None:
    server = InMemoryServer({"alice": "correct horse"}, [("Session-Timeout", 1)])

    async def scenario() -> None:
        pair = make_pair(authenticator=RadiusAuthenticator(server))
        try:
            await pair.start(
                lns_options(tmp_path, auth=(AuthMethod.PAP,), secrets=None),
                lac_options(auth=(AuthMethod.PAP,)),
            )
            await until(lambda: ipcp_up(pair.lns_kernel), "IPCP")
            assert pair.lns_reported.downs == []
            await until(lambda: pair.lns_reported.downs, "the session time limit", timeout=5)
            assert pair.lns_reported.downs == [
                (CdnResult.ADMINISTRATIVE, None, "PPP connect time limit reached")
            ]
            assert pair.lns.counters.session_timeouts == 1
            await until(lambda: not pair.lns_kernel.open_fds, "LNS released")
            await pair.lns.stop(pair.sessions["lns"])
            assert pair.lns.endings[pair.sessions["lns"].key] is Ending.SESSION_TIMEOUT
        finally:
            await pair.close()

    run(scenario)
