"""RADIUS against a real FreeRADIUS (tests/freeradius.py), one server for the module.

The Access-Requests are built by :class:`~l2tp.radius.auth.RadiusAuthenticator` from
credentials computed as a PPP peer computes them (RFC 1334, RFC 1994, RFC 2759), so
FreeRADIUS's ``pap``, ``chap`` and ``mschap`` modules check our encoding of each method;
its MS-CHAP2-Success must match the authenticator response we compute ourselves. Then a
whole built-in PPP session (two backends over socket pairs, tests/unit/builtin_ppp_fakes.py)
authenticates through FreeRADIUS and takes its Framed-IP-Address; a Session-Timeout
ends a session with a CDN; and an Accounting-Request reaches the ``detail`` file.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from l2tp.ppp import AuthDecision, AuthMethod
from l2tp.ppp.auth.base import AuthRequest, ChapMd5Request, MsChapV2Request, PapRequest
from l2tp.ppp.auth.chap import md5_response
from l2tp.ppp.auth.mschapv2 import generate_authenticator_response, generate_nt_response
from l2tp.protocol.constants import CdnResult
from l2tp.radius.auth import RadiusAuthenticator, RadiusAuthorization
from l2tp.radius.client import RadiusClient, RadiusServer
from l2tp.runtime.builtin_ppp import AuthContext
from tests.freeradius import FreeRadius
from tests.helpers import until
from tests.unit.test_builtin_ppp_backend import LNS_IP, ipcp_up, lac_options, lns_options, make_pair

pytestmark = pytest.mark.loopback

CONTEXT = AuthContext(
    tunnel_id=10,
    session_id=4711,
    peer=("192.0.2.2", 1701),
    local=("192.0.2.1", 1701),
    server="lns",
    calling_number="5551234",
)


@pytest.fixture(scope="module")
def radius(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreeRadius]:
    server = FreeRadius(tmp_path_factory.mktemp("freeradius"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def client_for(radius: FreeRadius, **kw: float) -> RadiusClient:
    server = RadiusServer("127.0.0.1", radius.auth_port, radius.secret.encode())
    acct = RadiusServer("127.0.0.1", radius.acct_port, radius.secret.encode())
    return RadiusClient(auth_servers=[server], acct_servers=[acct], timeout=2.0, **kw)  # type: ignore[arg-type]


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


def decide(radius: FreeRadius, requests: list[AuthRequest]) -> list[AuthDecision]:
    decisions: list[AuthDecision] = []

    async def scenario() -> None:
        client = client_for(radius)
        authenticator = RadiusAuthenticator(client, nas_ip_address=IPv4Address("192.0.2.1"))
        try:
            for request in requests:
                decisions.append(await authenticator.authenticate(request, CONTEXT))
        finally:
            client.close()

    run(scenario)
    return decisions


def test_pap_accept_with_every_honoured_attribute_and_reject(radius: FreeRadius) -> None:
    good, bad, unknown = decide(
        radius,
        [
            PapRequest(user="pap-user", password=b"pap-pass"),
            PapRequest(user="pap-user", password=b"wrong"),
            PapRequest(user="nobody", password=b"pap-pass"),
        ],
    )
    assert good.success
    assert good.peer_address == IPv4Address("10.77.0.10")
    assert good.dns == (IPv4Address("192.0.2.53"), IPv4Address("192.0.2.54"))
    assert (good.mtu, good.session_timeout) == (1400, 3600.0)
    grant = good.authorization
    assert isinstance(grant, RadiusAuthorization)
    assert grant.classes == (b"cls-pap",)
    assert grant.acct_interim_interval == 300
    assert not bad.success and not unknown.success
    assert "Login OK: [pap-user]" in radius.output()


def test_chap_md5_accept_and_reject(radius: FreeRadius) -> None:
    challenge = os.urandom(16)

    def request(password: bytes) -> ChapMd5Request:
        response = md5_response(0x2A, password, challenge)
        return ChapMd5Request(
            user="chap-user", identifier=0x2A, challenge=challenge, response=response
        )

    good, bad = decide(radius, [request(b"chap-pass"), request(b"wrong")])
    assert good.success and good.peer_address == IPv4Address("10.77.0.11")
    assert not bad.success


def test_mschapv2_accept_proves_the_server_and_reject(radius: FreeRadius) -> None:
    challenge, peer_challenge = os.urandom(16), os.urandom(16)

    def request(password: str) -> MsChapV2Request:
        nt = generate_nt_response(challenge, peer_challenge, "ms-user", password)
        return MsChapV2Request(
            user="ms-user",
            identifier=5,
            authenticator_challenge=challenge,
            peer_challenge=peer_challenge,
            nt_response=nt,
        )

    good, bad = decide(radius, [request("ms-pass"), request("wrong")])
    assert good.success and good.peer_address == IPv4Address("10.77.0.12")
    expected = generate_authenticator_response(
        "ms-pass", request("ms-pass").nt_response, peer_challenge, challenge, "ms-user"
    )
    assert good.authenticator_response == expected  # RFC 2759 8.7, from FreeRADIUS
    assert not bad.success


@pytest.mark.parametrize("method", [AuthMethod.CHAP_MD5, AuthMethod.MSCHAP_V2])
def test_built_in_ppp_session_through_freeradius_gets_its_address(
    radius: FreeRadius, tmp_path: Path, method: AuthMethod
) -> None:
    user, password = ("chap-user", "chap-pass")
    address = IPv4Address("10.77.0.11")
    if method is AuthMethod.MSCHAP_V2:
        user, password, address = "ms-user", "ms-pass", IPv4Address("10.77.0.12")

    async def scenario() -> None:
        client = client_for(radius)
        authenticator = RadiusAuthenticator(client)
        pair = make_pair(authenticator=authenticator)
        try:
            await pair.start(
                lns_options(tmp_path, auth=(method,), secrets=None),
                lac_options(auth=(method,), user=user, password=password),
            )
            await until(lambda: ipcp_up(pair.lns_kernel) and ipcp_up(pair.lac_kernel), "IPCP")
            lns_ops = pair.lns_kernel.interfaces_.calls
            assert ("add_address", 40, LNS_IP, address, 32) in lns_ops
            lac_ops = pair.lac_kernel.interfaces_.calls
            assert ("add_address", 40, address, LNS_IP, 32) in lac_ops
            assert authenticator.counters.accepts == 1
        finally:
            await pair.close()
            client.close()

    run(scenario)


def test_session_timeout_from_freeradius_ends_the_session(
    radius: FreeRadius, tmp_path: Path
) -> None:
    async def scenario() -> None:
        client = client_for(radius)
        pair = make_pair(authenticator=RadiusAuthenticator(client))
        try:
            await pair.start(
                lns_options(tmp_path, auth=(AuthMethod.PAP,), secrets=None),
                lac_options(auth=(AuthMethod.PAP,), user="short-user", password="short-pass"),
            )
            await until(lambda: ipcp_up(pair.lns_kernel), "IPCP")
            await until(lambda: pair.lns_reported.downs, "Session-Timeout", timeout=10)
            assert pair.lns_reported.downs == [
                (CdnResult.ADMINISTRATIVE, None, "PPP connect time limit reached")
            ]
        finally:
            await pair.close()
            client.close()

    run(scenario)


def test_accounting_request_reaches_the_detail_file(radius: FreeRadius) -> None:
    """The harness's ``detail`` file, for the accounting tests built on it."""

    async def scenario() -> None:
        client = client_for(radius)
        try:
            await client.account(
                [
                    ("User-Name", "pap-user"),
                    ("Acct-Status-Type", "Start"),
                    ("Acct-Session-Id", "harness-check-1"),
                    ("NAS-Identifier", "lns"),
                    ("Class", b"cls-pap"),
                ]
            )
        finally:
            client.close()

    run(scenario)
    records = [r for r in radius.detail_records() if r.get("Acct-Session-Id") == "harness-check-1"]
    assert len(records) == 1
    assert records[0]["Acct-Status-Type"] == "Start"
    assert records[0]["Acct-Delay-Time"] == "0"
