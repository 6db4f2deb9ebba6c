"""RadiusClient over real UDP on 127.0.0.1 against in-test responders (pyrad packets).

Retransmission, failover and the hold-down, authenticator checks, the bounded queue and
Identifier allocation are asserted from what the responders received and the client's
counters; time only passes through the client's own (short) timeouts, and each test
waits for outcomes (futures, responder events), never for a fixed time.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import Awaitable, Callable

import pytest
from pyrad import packet as rp

from l2tp.radius.client import (
    ACCESS_ACCEPT,
    ACCESS_REJECT,
    ACCOUNTING_RESPONSE,
    RadiusClient,
    RadiusServer,
    dictionary,
)
from l2tp.radius.interface import RadiusError, RadiusOverload, RadiusTimeout
from tests.helpers import until
from tests.radius_responder import Received, Responder, accept, start_responder

pytestmark = pytest.mark.loopback

SECRET = b"s3cret"
OTHER = b"other-secret"
ACCESS = [
    ("User-Name", "alice"),
    ("User-Password", b"correct horse"),
    ("NAS-Identifier", "lns"),
    ("NAS-Port", 7),
    ("Tunnel-Type", "L2TP"),
    ("Tunnel-Client-Endpoint", "192.0.2.2"),
    ("Tunnel-Medium-Type", (1, "IPv4")),
]
ACCT = [("User-Name", "alice"), ("Acct-Status-Type", "Start"), ("Acct-Session-Id", "s1")]


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


def server(responder: Responder, secret: bytes = SECRET, host: str = "127.0.0.1") -> RadiusServer:
    return RadiusServer(host, responder.port, secret)


def silent(received: Received) -> None:
    return None


def test_access_accept_round_trip_encodes_and_decodes_every_kind_of_attribute() -> None:
    def policy(received: Received) -> bytes:
        return received.reply(
            attributes={
                "Framed-IP-Address": "10.1.2.3",
                "Class": b"\x01opaque",
                "Session-Timeout": 600,
                "MS-CHAP2-Success": b"\x05S=" + b"A" * 40,
                "Service-Type": "Framed-User",
                "Tunnel-Type:2": "L2TP",
            }
        )

    async def scenario() -> None:
        responder = await start_responder(SECRET, policy)
        client = RadiusClient(auth_servers=[server(responder)], timeout=2.0)
        try:
            reply = await client.access(ACCESS)
        finally:
            client.close()
            responder.close()
        assert reply.code == ACCESS_ACCEPT
        assert reply.first("Framed-IP-Address") == "10.1.2.3"
        assert reply.get("Class") == [b"\x01opaque"]
        assert reply.first("Session-Timeout") == 600
        assert reply.first("MS-CHAP2-Success") == b"\x05S=" + b"A" * 40
        assert reply.first("Service-Type") == "Framed-User"
        assert reply.first("Tunnel-Type") == (2, "L2TP")
        assert reply.first("Message-Authenticator") is None  # checked, not handed on
        # What the server saw: the password hidden with its secret (RFC 2865 5.2), a valid
        # Message-Authenticator first (RFC 3579 3.2), the tagged Tunnel-Type.
        (request,) = responder.received
        packet = request.packet
        assert isinstance(packet, rp.AuthPacket)
        assert b"correct horse" not in request.data
        assert packet.PwDecrypt(packet[2][0]) == "correct horse"
        assert request.data[20] == 80  # Message-Authenticator is the first attribute
        assert packet.verify_message_authenticator()
        assert packet["NAS-Port"] == [7]
        assert packet["Tunnel-Type"] == ["L2TP"]
        assert packet["Tunnel-Medium-Type:1"] == ["IPv4"]  # (tag, value): tagged (RFC 2868 3)
        assert "Tunnel-Medium-Type:0" not in packet
        counters = client.counters[str(server(responder))]
        assert (counters.requests, counters.accepts, counters.retransmissions) == (1, 1, 0)

    run(scenario)


def test_access_request_is_retransmitted_byte_for_byte() -> None:
    seen: list[Received] = []

    def policy(received: Received) -> bytes | None:
        seen.append(received)
        return received.reply(code=ACCESS_REJECT) if len(seen) == 3 else None

    async def scenario() -> None:
        responder = await start_responder(SECRET, policy)
        client = RadiusClient(auth_servers=[server(responder)], timeout=0.05, retries=3)
        try:
            reply = await client.access(ACCESS)
        finally:
            client.close()
            responder.close()
        assert reply.code == ACCESS_REJECT
        first, second, third = responder.received
        # RFC 2865 2.4: same Identifier and Request Authenticator, the same bytes.
        assert first.data == second.data == third.data
        counters = client.counters[str(server(responder))]
        assert (counters.requests, counters.retransmissions, counters.rejects) == (1, 2, 1)
        assert counters.timeouts == 0

    run(scenario)


def test_failover_after_retries_then_sticks_to_the_server_that_answered() -> None:
    async def scenario() -> None:
        dead = await start_responder(SECRET, silent)
        alive = await start_responder(OTHER, accept)
        servers = [server(dead), server(alive, OTHER)]
        client = RadiusClient(auth_servers=servers, timeout=0.05, retries=1, holddown=3600)
        try:
            reply = await client.access(ACCESS)
            assert reply.code == ACCESS_ACCEPT
            assert len(dead.received) == 2  # first transmission + 1 retry
            assert len(alive.received) == 1
            # A new packet for the second server: its own secret and authenticator.
            assert alive.received[0].packet.PwDecrypt(alive.received[0].packet[2][0]) == (
                "correct horse"
            )
            await client.access(ACCESS)
            assert len(dead.received) == 2  # the next request went straight to the survivor
            assert len(alive.received) == 2
        finally:
            client.close()
            dead.close()
            alive.close()
        assert client.counters[str(servers[0])].timeouts == 1
        assert client.counters[str(servers[1])].accepts == 2

    run(scenario)


def test_after_the_holddown_the_primary_is_tried_first_again() -> None:
    async def scenario() -> None:
        primary = await start_responder(SECRET, silent)
        backup = await start_responder(SECRET, accept)
        servers = [server(primary), server(backup)]
        client = RadiusClient(auth_servers=servers, timeout=0.05, retries=0, holddown=0)
        try:
            await client.access(ACCESS)
            await client.access(ACCESS)
        finally:
            client.close()
            primary.close()
            backup.close()
        assert len(primary.received) == 2  # each request tried the primary first
        assert client.counters[str(servers[0])].timeouts == 2

    run(scenario)


def test_no_server_answers_raises_timeout_with_every_server_counted() -> None:
    async def scenario() -> None:
        a = await start_responder(SECRET, silent)
        b = await start_responder(SECRET, silent)
        client = RadiusClient(auth_servers=[server(a), server(b)], timeout=0.03, retries=2)
        try:
            with pytest.raises(RadiusTimeout):
                await client.access(ACCESS)
        finally:
            client.close()
            a.close()
            b.close()
        assert (len(a.received), len(b.received)) == (3, 3)
        for responder in (a, b):
            counters = client.counters[str(server(responder))]
            assert (counters.timeouts, counters.retransmissions) == (1, 2)
        assert client.outstanding == 0

    run(scenario)


def test_forged_malformed_and_stray_replies_are_dropped_and_counted() -> None:
    """A wrong-secret reply, a truncated datagram, a reply from an unknown port and one for
    an Identifier never sent are all dropped; the genuine reply that follows is taken."""

    async def scenario() -> None:
        stray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stray.bind(("127.0.0.1", 0))

        def policy(received: Received) -> bytes | None:
            assert client.address is not None
            target = received.source
            responder.send(received.reply(secret=b"wrong"), target)  # bad authenticator
            responder.send(received.data[:12], target)  # malformed
            stray.sendto(received.reply(), client.address)  # unknown source port
            forged = bytearray(received.reply())
            forged[1] = (forged[1] + 1) % 256  # an Identifier not outstanding
            responder.send(bytes(forged), target)
            return received.reply(code=ACCESS_REJECT)

        responder = await start_responder(SECRET, policy)
        client = RadiusClient(auth_servers=[server(responder)], timeout=5.0)
        try:
            reply = await client.access(ACCESS)
            assert reply.code == ACCESS_REJECT
            counters = client.counters[str(server(responder))]
            # The genuine reply may overtake none of the earlier ones (one socket, in order).
            assert counters.bad_authenticators == 1
            assert counters.malformed == 1
            await until(lambda: client.client_counters.unknown_source == 1, "stray datagram")
            assert counters.rejects == 1
        finally:
            client.close()
            responder.close()
            stray.close()

    run(scenario)


def test_reply_code_that_does_not_answer_the_request_is_malformed() -> None:
    seen: list[Received] = []

    def policy(received: Received) -> bytes | None:
        seen.append(received)
        if len(seen) == 1:
            return received.reply(code=ACCOUNTING_RESPONSE)
        return received.reply()

    async def scenario() -> None:
        responder = await start_responder(SECRET, policy)
        client = RadiusClient(auth_servers=[server(responder)], timeout=0.05)
        try:
            reply = await client.access(ACCESS)
        finally:
            client.close()
            responder.close()
        assert reply.code == ACCESS_ACCEPT
        assert client.counters[str(server(responder))].malformed == 1

    run(scenario)


def test_required_message_authenticator_missing_is_a_bad_authenticator() -> None:
    seen: list[Received] = []

    def policy(received: Received) -> bytes | None:
        seen.append(received)
        return received.reply(message_authenticator=len(seen) > 1)

    async def scenario() -> None:
        responder = await start_responder(SECRET, policy)
        client = RadiusClient(
            auth_servers=[server(responder)], timeout=0.05, require_message_authenticator=True
        )
        try:
            await client.access(ACCESS)
        finally:
            client.close()
            responder.close()
        counters = client.counters[str(server(responder))]
        assert (counters.bad_authenticators, counters.accepts) == (1, 1)

    run(scenario)


def test_bounded_queue_refuses_at_once_when_full() -> None:
    async def scenario() -> None:
        responder = await start_responder(SECRET, silent)
        client = RadiusClient(auth_servers=[server(responder)], timeout=10, max_outstanding=2)
        try:
            waiting = [asyncio.ensure_future(client.access(ACCESS)) for _ in range(2)]
            await until(lambda: len(responder.received) == 2, "two requests sent")
            with pytest.raises(RadiusOverload):
                await client.access(ACCESS)
            assert client.client_counters.overloads == 1
            assert len(responder.received) == 2  # nothing was sent for the refused one
            client.close()
            for future in waiting:
                with pytest.raises(RadiusError):
                    await future
            assert client.outstanding == 0
        finally:
            client.close()
            responder.close()

    run(scenario)


def test_identifiers_are_never_reused_while_outstanding() -> None:
    """300 requests at once to one server: the first 256 get distinct Identifiers, the
    rest wait until Identifiers come free; every request is answered."""

    async def scenario() -> None:
        held: list[Received] = []

        def policy(received: Received) -> bytes | None:
            held.append(received)
            return None

        responder = await start_responder(SECRET, policy)
        client = RadiusClient(auth_servers=[server(responder)], timeout=20)
        try:
            tasks = [asyncio.ensure_future(client.access(ACCESS)) for _ in range(300)]
            await until(lambda: len(held) == 256, "256 requests outstanding")
            assert len({r.id for r in held}) == 256
            assert client.client_counters.id_waits == 44
            first, held[:] = list(held), []
            for received in first:
                responder.send(received.reply(), received.source)
            await until(lambda: len(held) == 44, "the waiting requests sent")
            outstanding_after = {r.id for r in held}
            assert len(outstanding_after) == 44
            for received in held:
                responder.send(received.reply(), received.source)
            replies = await asyncio.gather(*tasks)
            assert all(reply.code == ACCESS_ACCEPT for reply in replies)
            assert client.counters[str(server(responder))].unmatched == 0
        finally:
            client.close()
            responder.close()

    run(scenario)


def test_cancelled_request_frees_its_identifier_and_slot() -> None:
    async def scenario() -> None:
        responder = await start_responder(SECRET, silent)
        client = RadiusClient(auth_servers=[server(responder)], timeout=10)
        try:
            task = asyncio.ensure_future(client.access(ACCESS))
            await until(lambda: len(responder.received) == 1, "sent")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert client.outstanding == 0
            # A reply arriving now for the cancelled request is unmatched, not an error.
            responder.send(responder.received[0].reply(), responder.received[0].source)
            await until(
                lambda: client.counters[str(server(responder))].unmatched == 1, "late reply"
            )
        finally:
            client.close()
            responder.close()

    run(scenario)


def test_accounting_retransmission_is_a_new_packet_and_a_late_reply_to_the_first_counts() -> None:
    async def scenario() -> None:
        def policy(received: Received) -> bytes | None:
            if len(responder.received) == 2:
                first = responder.received[0]
                return first.reply()  # answers the first transmission, late
            return None

        responder = await start_responder(SECRET, policy)
        client = RadiusClient(acct_servers=[server(responder)], timeout=0.05, retries=3)
        try:
            await client.account([*ACCT, ("Acct-Delay-Time", 7)])
        finally:
            client.close()
            responder.close()
        first, second = responder.received
        assert first.id != second.id  # RFC 2866 5.2: a new Identifier
        for received in (first, second):
            packet = received.packet
            assert isinstance(packet, rp.AcctPacket)
            assert packet.VerifyAcctRequest()  # the Request Authenticator of RFC 2866 3
            assert packet["Acct-Delay-Time"] == [7]  # the accrued delay, + 0 s here
            assert packet["Acct-Session-Id"] == ["s1"]
        counters = client.counters[str(server(responder))]
        assert (counters.requests, counters.retransmissions, counters.acct_responses) == (1, 1, 1)

    run(scenario)


def test_accounting_delay_grows_with_the_time_spent() -> None:
    async def scenario() -> None:
        def policy(received: Received) -> bytes | None:
            return received.reply() if len(responder.received) == 2 else None

        responder = await start_responder(SECRET, policy)
        client = RadiusClient(acct_servers=[server(responder)], timeout=1.05, retries=1)
        try:
            await client.account(ACCT)
        finally:
            client.close()
            responder.close()
        delays = [r.packet["Acct-Delay-Time"][0] for r in responder.received]
        assert delays == [0, 1]

    run(scenario)


def test_ipv6_and_ipv4_servers_share_one_socket() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")

    async def scenario() -> None:
        try:
            v6 = await start_responder(SECRET, silent, host="::1")
        except OSError as exc:
            pytest.skip(f"no ::1: {exc}")
        v4 = await start_responder(SECRET, accept)
        servers = [server(v6, host="::1"), server(v4)]
        client = RadiusClient(auth_servers=servers, timeout=0.05, retries=0)
        try:
            reply = await client.access(ACCESS)
        finally:
            client.close()
            v6.close()
            v4.close()
        assert reply.code == ACCESS_ACCEPT
        assert len(v6.received) == 1
        assert str(servers[0]).startswith("[::1]:")

    run(scenario)


def test_api_misuse_raises_at_the_call_site() -> None:
    async def scenario() -> None:
        responder = await start_responder(SECRET)
        client = RadiusClient(auth_servers=[server(responder)])
        try:
            with pytest.raises(ValueError, match="cannot encode"):
                await client.access([("No-Such-Attribute", 1)])
            with pytest.raises(RadiusError, match="no RADIUS accounting server"):
                await client.account(ACCT)
            assert client.outstanding == 0
            assert responder.received == []
        finally:
            client.close()
            responder.close()
        with pytest.raises(ValueError):
            RadiusServer("example.com", 1812, SECRET)
        with pytest.raises(ValueError):
            RadiusServer("127.0.0.1", 1812, b"")
        assert "s3cret" not in repr(RadiusServer("127.0.0.1", 1812, SECRET))

    run(scenario)


def test_snapshot_has_counters_and_no_secret() -> None:
    client = RadiusClient(auth_servers=[RadiusServer("127.0.0.1", 1812, SECRET)])
    snapshot = client.snapshot()
    assert snapshot["servers"]["127.0.0.1:1812"]["requests"] == 0
    assert "s3cret" not in repr(snapshot)
    assert hashlib.md5(SECRET).hexdigest() not in repr(snapshot)
    assert dictionary() is dictionary()
