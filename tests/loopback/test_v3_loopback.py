"""L2TPv3 control connections between two L2tpContexts over real UDP with the null data plane.

What the kernel tier checks with real l2tpeth interfaces is checked here for
the control plane alone: the negotiated IDs, cookies, sublayer and sequencing
reach the data plane the right way round on both sides, Remote End IDs bind
calls to a listener's pseudowires, and a wrong secret leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.kernel.constants import EncapType, L2SpecType, PseudowireType
from l2tp.protocol.constants import CdnResult, DigestType, StopCcnResult
from l2tp.protocol.events import CallParams, Role, SessionClosed, TunnelClosed
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.backend import SessionOptions
from l2tp.runtime.control import (
    L2tpContext,
    ListenOptions,
    PseudowireOffer,
    SessionFailed,
    TunnelFailed,
)
from l2tp.runtime.sockets import tunnel_id_of as _tunnel_id_of
from tests.helpers import until

pytestmark = pytest.mark.loopback
T = TypeVar("T")
FAST = TransportConfig(initial_timeout=0.1, max_timeout=0.2, max_retries=2)


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(main())


def v3(role: Role, **kw: object) -> TunnelConfig:
    return TunnelConfig(role=role, version=3, host_name=role.value, **kw)  # type: ignore[arg-type]


async def settle(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_control_connection_id_is_read_from_v3_headers() -> None:
    v3_header = bytes([0xC8, 0x03, 0x00, 0x0C]) + (0xDEADBEEF).to_bytes(4, "big") + bytes(4)
    assert _tunnel_id_of(v3_header) == 0xDEADBEEF
    v2_header = bytes([0xC8, 0x02, 0x00, 0x0C, 0x12, 0x34]) + bytes(6)
    assert _tunnel_id_of(v2_header) == 0x1234
    assert _tunnel_id_of(bytes([0x00, 0x03]) + bytes(10)) is None  # a data message


@pytest.mark.parametrize("digest", [None, DigestType.HMAC_MD5, DigestType.HMAC_SHA1], ids=str)
def test_two_ethernet_sessions_with_cookies(digest: DigestType | None) -> None:
    secret = b"pw-secret" if digest is not None else None

    async def scenario() -> None:
        a_dp, b_dp = AsyncNullDataPlane(), AsyncNullDataPlane()
        async with L2tpContext(dataplane=a_dp) as b_ctx, L2tpContext(dataplane=b_dp) as a_ctx:
            # b_ctx listens (data plane a_dp), a_ctx initiates (b_dp): names follow the roles.
            listener = await b_ctx.listen(
                ("127.0.0.1", 0),
                config=ListenerConfig(tunnel=v3(Role.LNS, secret=secret, digest_type=digest)),
                options=ListenOptions(ppp=SessionOptions(mtu=1400, bridge="br0")),
            )
            t = await a_ctx.open_tunnel(
                listener.address, config=v3(Role.LAC, secret=secret, digest_type=digest)
            )
            assert t.tunnel_id > 0 and t.peer_tunnel_id > 0
            params = (
                CallParams(cookie_length=8, remote_end_id="pw1"),
                CallParams(
                    cookie_length=4,
                    remote_end_id="pw2",
                    l2_specific_sublayer=1,
                    data_sequencing=2,
                ),
            )
            calls = [
                t.place_call(p, options=SessionOptions(interface_name=f"l2tpeth-{i}"))
                for i, p in enumerate(params)
            ]
            infos = [await c.wait_established() for c in calls]
            await settle(
                lambda: len(a_dp.sessions) == 2 and a_dp.counts["attach_to_bridge"] == 2,
                "responder kernel sessions, bridge ports",
            )
            (rt,) = listener.tunnels.values()
            assert b_dp.tunnels[t.tunnel_id].version == 3
            assert b_dp.tunnels[t.tunnel_id].encap is EncapType.UDP
            assert a_dp.tunnels[rt.tunnel_id].peer_tunnel_id == t.tunnel_id
            for info, p in zip(infos, params, strict=True):
                ours = b_dp.sessions[(t.tunnel_id, info.session_id)]
                theirs = a_dp.sessions[(rt.tunnel_id, info.peer_session_id)]
                assert ours.peer_session_id == theirs.session_id
                assert theirs.peer_session_id == ours.session_id
                assert len(ours.peer_cookie) == p.cookie_length
                # What one side sends is what the other requires (RFC 3931 5.4.4).
                assert ours.cookie == theirs.peer_cookie
                assert theirs.cookie == ours.peer_cookie
                assert ours.pw_type == theirs.pw_type == PseudowireType.ETH
                assert not ours.lns_mode and not theirs.lns_mode
                assert theirs.mtu == 1400
            first = b_dp.sessions[(t.tunnel_id, infos[0].session_id)]
            second = b_dp.sessions[(t.tunnel_id, infos[1].session_id)]
            assert first.ifname == "l2tpeth-0" and second.ifname == "l2tpeth-1"
            assert first.l2spec_type is L2SpecType.NONE and not first.recv_seq
            assert second.l2spec_type is L2SpecType.DEFAULT and second.recv_seq
            peer_second = a_dp.sessions[(rt.tunnel_id, infos[1].peer_session_id)]
            assert peer_second.l2spec_type is L2SpecType.DEFAULT and peer_second.send_seq
            bridged = [c for c in a_dp.calls if c[0] == "attach_to_bridge"]
            assert sorted(c[1][1] for c in bridged) == sorted(i.peer_session_id for i in infos)
            await calls[0].close()
            await settle(lambda: len(a_dp.sessions) == 1, "CDN at the responder")
            if digest is not None:
                assert rt.tunnel.counters.bad_digest == 0
            await t.close()
            await settle(lambda: not a_dp.tunnels, "responder tunnel removal")
            assert not b_dp.tunnels and not b_dp.sessions

    run(scenario)


def test_remote_end_id_binds_calls_to_offered_pseudowires() -> None:
    async def scenario() -> None:
        dp = AsyncNullDataPlane()
        offers = (
            PseudowireOffer(
                remote_end_id="site-a",
                params=CallParams(cookie_length=8),
                options=SessionOptions(interface_name="pw-site-a", bridge="br-a"),
            ),
            PseudowireOffer(
                remote_end_id="site-b", options=SessionOptions(interface_name="pw-site-b")
            ),
        )
        async with L2tpContext(dataplane=dp) as resp, L2tpContext() as init:
            listener = await resp.listen(
                ("127.0.0.1", 0),
                config=ListenerConfig(tunnel=v3(Role.LNS)),
                options=ListenOptions(pseudowires=offers),
            )
            t = await init.open_tunnel(listener.address, config=v3(Role.LAC))
            b = await t.open_session(CallParams(remote_end_id="site-b"))
            a = await t.open_session(CallParams(remote_end_id="site-a"))
            await settle(
                lambda: len(dp.sessions) == 2 and dp.counts["attach_to_bridge"] == 1,
                "both bound, site-a bridged",
            )
            (rt,) = listener.tunnels.values()
            by_ifname = {s.ifname: s for s in dp.sessions.values()}
            assert by_ifname["pw-site-a"].session_id == a.peer_session_id
            assert len(by_ifname["pw-site-a"].peer_cookie) == 8
            assert by_ifname["pw-site-b"].session_id == b.peer_session_id
            assert by_ifname["pw-site-b"].peer_cookie == b""
            assert ("attach_to_bridge", (rt.tunnel_id, a.peer_session_id, "br-a")) in dp.calls
            # An unknown circuit: CDN 2 naming it; a circuit already bound: CDN 4.
            with pytest.raises(SessionFailed) as unknown:
                await t.open_session(CallParams(remote_end_id="site-z"))
            reason = unknown.value.event.reason
            assert reason is not None and reason.result == CdnResult.GENERAL_ERROR
            assert "site-z" in reason.message
            with pytest.raises(SessionFailed) as busy:
                await t.open_session(CallParams(remote_end_id="site-a"))
            reason = busy.value.event.reason
            assert reason is not None and reason.result == CdnResult.TEMPORARY_NO_FACILITIES
            # Freed by a CDN, the circuit can be bound again.
            await a.close()
            again = await t.open_session(CallParams(remote_end_id="site-a"))
            await settle(lambda: len(dp.sessions) == 2, "re-bound")
            assert again.peer_session_id != a.peer_session_id
            assert listener.bound["site-a"].session_id == again.peer_session_id

    run(scenario)


def test_wrong_secret_is_refused_and_leaves_nothing() -> None:
    async def scenario() -> None:
        dp_resp, dp_init = AsyncNullDataPlane(), AsyncNullDataPlane()
        async with L2tpContext(dataplane=dp_resp) as resp, L2tpContext(dataplane=dp_init) as init:
            listener = await resp.listen(
                ("127.0.0.1", 0),
                config=ListenerConfig(
                    tunnel=v3(Role.LNS, secret=b"right", digest_type=DigestType.HMAC_MD5)
                ),
            )
            # The responder drops an SCCRQ whose digest fails (RFC 3931 5.4.1): no answer,
            # the initiator's retransmissions run out.
            with pytest.raises(TunnelFailed):
                await init.open_tunnel(
                    listener.address,
                    config=v3(
                        Role.LAC, secret=b"wrong", digest_type=DigestType.HMAC_MD5, transport=FAST
                    ),
                )
            assert listener.listener.counters.bad_digest >= 1
            assert not listener.tunnels and not dp_resp.tunnels and not dp_init.tunnels
            # No secret at all against a responder that requires one: StopCCN 4, and
            # the responder's tunnel never reaches the data plane.
            with pytest.raises(TunnelFailed) as failed:
                await init.open_tunnel(listener.address, config=v3(Role.LAC, transport=FAST))
            reason = failed.value.event.reason
            assert reason is not None and reason.result == StopCcnResult.NOT_AUTHORIZED
            assert "authenticat" in reason.message
            assert not dp_resp.tunnels and not dp_init.tunnels

    run(scenario)


def test_authenticating_initiator_against_plain_responder_fails_and_says_why() -> None:
    """The plain responder refuses with StopCCN 4, which carries no digest: the
    initiator must drop it (RFC 3931 5.4.1), so it fails by silence, and says so."""

    async def scenario() -> None:
        async with L2tpContext() as resp, L2tpContext() as init:
            listener = await resp.listen(
                ("127.0.0.1", 0), config=ListenerConfig(tunnel=v3(Role.LNS))
            )
            events = resp.events()
            with pytest.raises(TunnelFailed) as failed:
                await init.open_tunnel(
                    listener.address,
                    config=v3(
                        Role.LAC, secret=b"s", digest_type=DigestType.HMAC_SHA1, transport=FAST
                    ),
                )
            assert "Message Digest" in failed.value.event.description
            async for event in events:
                if isinstance(event, TunnelClosed):
                    assert event.reason is not None
                    assert event.reason.result == StopCcnResult.NOT_AUTHORIZED
                    break

    run(scenario)


def test_peer_loss_closes_the_tunnel_and_its_sessions() -> None:
    async def scenario() -> None:
        dp = AsyncNullDataPlane()
        hello = TransportConfig(
            initial_timeout=0.1, max_timeout=0.2, max_retries=2, hello_interval=0.2
        )
        async with L2tpContext(dataplane=dp) as init:
            resp = L2tpContext()
            listener = await resp.listen(
                ("127.0.0.1", 0), config=ListenerConfig(tunnel=v3(Role.LNS))
            )
            t = await init.open_tunnel(listener.address, config=v3(Role.LAC, transport=hello))
            s = await t.open_session()
            assert dp.sessions
            # The responder vanishes without a StopCCN (its sockets simply close).
            for endpoint in list(resp.endpoints):
                endpoint.close_socket()
            for th in resp.tunnels.values():
                th.cancel_timer()
                if th.own_sock is not None:
                    th.endpoint.release(th)
            resp.closed = True
            closed = await asyncio.wait_for(t.wait_closed(), 5.0)
            assert closed.reason is None or closed.reason.result == StopCcnResult.GENERAL_ERROR
            ended = await s.wait_closed()
            assert isinstance(ended, SessionClosed)
            assert not dp.sessions and not dp.tunnels

    run(scenario)


def test_circuit_status_takes_the_peer_interface_down_and_up() -> None:
    """RFC 3931 5.4.5: data towards an inactive circuit must cease (interface down)."""

    async def scenario() -> None:
        dp = AsyncNullDataPlane()
        async with L2tpContext(dataplane=dp) as resp, L2tpContext() as init:
            listener = await resp.listen(
                ("127.0.0.1", 0), config=ListenerConfig(tunnel=v3(Role.LNS))
            )
            t = await init.open_tunnel(listener.address, config=v3(Role.LAC))
            # A call placed with its circuit not yet ready: down from the start.
            s = await t.open_session(CallParams(circuit_active=False))
            (rt,) = listener.tunnels.values()
            key = (rt.tunnel_id, s.peer_session_id, False)
            await settle(lambda: ("set_session_up", key) in dp.calls, "interface down")
            s.set_circuit(True)
            up = (rt.tunnel_id, s.peer_session_id, True)
            await settle(lambda: ("set_session_up", up) in dp.calls, "interface up")
            s.set_circuit(False)
            await settle(
                lambda: (
                    [c for c in dp.calls if c[0] == "set_session_up"][-1] == ("set_session_up", key)
                ),
                "interface down again",
            )
            assert s.established

    run(scenario)


def test_garbage_and_forgeries_are_counted_and_harm_nothing() -> None:
    """Junk at the listener and at an established tunnel's socket: counted, tunnel unharmed."""
    import socket

    async def scenario() -> None:
        dp = AsyncNullDataPlane()
        async with L2tpContext(dataplane=dp) as resp, L2tpContext() as init:
            listener = await resp.listen(
                ("127.0.0.1", 0),
                config=ListenerConfig(
                    tunnel=v3(Role.LNS, secret=b"k", digest_type=DigestType.HMAC_MD5)
                ),
            )
            t = await init.open_tunnel(
                listener.address, config=v3(Role.LAC, secret=b"k", digest_type=DigestType.HMAC_MD5)
            )
            (rt,) = listener.tunnels.values()
            junk = [
                b"",
                b"\x00",
                b"\xc8\x03" + bytes(30),  # v3 control header claiming a length it lacks
                bytes([0xC8, 0x03, 0x00, 0x0C]) + rt.tunnel_id.to_bytes(4, "big") + bytes(4),
                bytes([0xC8, 0x03, 0x00, 0x14]) + rt.tunnel_id.to_bytes(4, "big") + bytes(12),
                bytes([0x00, 0x03, 0x00, 0x00]) + (1234).to_bytes(4, "big") + b"data",
                bytes(range(256)) * 4,
            ]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for target in (listener.address, rt.local):
                    for datagram in junk:
                        sock.sendto(datagram, target)
            c = resp.counters
            sent = 2 * len(junk)
            await until(
                lambda: c.not_control + c.foreign_source + c.malformed >= sent,
                f"the context to count all {sent} junk datagrams",
            )
            # Too short or data (T bit clear): not control; the two naming the tunnel come
            # from an address that is not its peer's; a header claiming a length it lacks:
            # malformed, found where the header is parsed (once, before routing).
            assert resp.counters.not_control == 8
            assert resp.counters.foreign_source == 4
            assert resp.counters.malformed == 2
            assert rt.tunnel.counters.messages == 2  # nothing reached the tunnel itself
            # Everything still works: a new session on the same tunnel.
            s = await t.open_session(CallParams(cookie_length=4))
            assert s.established and rt.closed is None and t.closed is None
            await settle(lambda: len(dp.sessions) == 1, "kernel session")

    run(scenario)


def test_tunnel_ids_held_in_the_kernel_by_others_are_skipped() -> None:
    """Kernel tunnel IDs are per namespace: an ID another process holds is not drawn."""
    draws = iter([(7).to_bytes(4, "big"), (7).to_bytes(4, "big"), (9).to_bytes(4, "big")])

    def random_bytes(n: int) -> bytes:
        return next(draws, None) or bytes(n - 1) + b"\x05"

    async def scenario() -> None:
        dp = AsyncNullDataPlane()
        # "Another daemon" already made kernel tunnel 7.
        dp.foreign_tunnel_ids.add(7)
        async with (
            L2tpContext() as resp,
            L2tpContext(dataplane=dp, random_bytes=random_bytes) as init,
        ):
            listener = await resp.listen(
                ("127.0.0.1", 0), config=ListenerConfig(tunnel=v3(Role.LNS))
            )
            t = await init.open_tunnel(listener.address, config=v3(Role.LAC))
            assert t.tunnel_id == 9
            assert dp.tunnels[9].fd == t.sock.fileno()

    run(scenario)
