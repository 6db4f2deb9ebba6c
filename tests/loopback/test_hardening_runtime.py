"""Runtime hardening over real UDP on 127.0.0.1 (issue 13 items 4, 5, 7, 10 and 11)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.kernel.errors import KernelError
from l2tp.kernel.model import KernelTunnelSpec
from l2tp.protocol.avp import Avp
from l2tp.protocol.avps import ResultCode
from l2tp.protocol.constants import AvpType, ErrorCode, MessageType, StopCcnResult
from l2tp.protocol.events import Role, TunnelClosed
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.message import ControlMessage, serialize_message
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import Tunnel, TunnelConfig
from l2tp.protocol.tunnel_fsm import TunnelState
from l2tp.runtime.control import L2tpContext, ListenError, ListenOptions, TunnelFailed
from l2tp.runtime.portowner import udp_port_owners

pytestmark = pytest.mark.loopback
T = TypeVar("T")
FAST = TransportConfig(initial_timeout=0.1, max_timeout=0.2, max_retries=2, hello_interval=None)


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(main())


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (event loop turns, not a fixed sleep) until ``condition`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def lac_config(**kw: object) -> TunnelConfig:
    kw.setdefault("transport", FAST)
    return TunnelConfig(role=Role.LAC, host_name="lac", **kw)  # type: ignore[arg-type]


def lns_config(**kw: object) -> ListenerConfig:
    tunnel = TunnelConfig(role=Role.LNS, host_name="lns", transport=FAST)
    return ListenerConfig(tunnel=tunnel, **kw)  # type: ignore[arg-type]


def test_icrq_and_stopccn_in_one_batch(caplog: pytest.LogCaptureFixture) -> None:
    """Item 4: the CallRequested of an ICRQ whose tunnel a StopCCN in the same read
    batch already closed is not accepted (it used to raise LocalProtocolError).

    Our own LAC cannot send the two back to back (slow start holds the StopCCN until
    the ICRQ is acknowledged), so a sans-IO tunnel sets up the control connection
    over a plain socket and the two messages are then written by hand.
    """

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with L2tpContext() as lns:
            # One socket, so that both datagrams land in one read batch.
            options = ListenOptions(per_tunnel_sockets=False)
            listener = await lns.listen(("127.0.0.1", 0), config=lns_config(), options=options)
            for local_id in range(1, 6):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind(("127.0.0.1", 0))
                sock.setblocking(False)
                lac = Tunnel(lac_config(), local_id=local_id, random_bytes=os.urandom)
                lac.connect(loop.time())
                while lac.state is not TunnelState.ESTABLISHED:
                    for datagram in lac.datagrams_to_send(loop.time()):
                        sock.sendto(datagram, listener.address)
                    data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
                    lac.receive_datagram(data, loop.time())
                for datagram in lac.datagrams_to_send(loop.time()):
                    sock.sendto(datagram, listener.address)
                lns_tid = lac.peer_tunnel_id
                icrq = ControlMessage.of(
                    MessageType.ICRQ, assigned_session_id=99, call_serial_number=1
                )
                stop = ControlMessage(
                    message_type=MessageType.STOPCCN,
                    avps=[
                        Avp(attribute=AvpType.ASSIGNED_TUNNEL_ID, value=local_id),
                        Avp(attribute=AvpType.RESULT_CODE, value=ResultCode(result=1)),
                    ],
                )
                # We sent SCCRQ (Ns 0) and SCCCN (Ns 1) and received the SCCRP (Ns 0).
                for ns, message in ((2, icrq), (3, stop)):
                    sock.sendto(
                        serialize_message(message, version=2, tunnel_id=lns_tid, ns=ns, nr=1),
                        listener.address,
                    )
                th = lns.tunnels[lns_tid]
                closed = await th.wait_closed()
                assert closed.by_peer
                sock.close()

    with caplog.at_level(logging.ERROR, logger="l2tp"):
        run(scenario)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_tunnel_failing_on_a_timer_is_freed_at_once() -> None:
    """Item 5: nothing else arrives, yet the tunnel and its socket go when it fails."""

    async def scenario() -> None:
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        try:
            async with L2tpContext() as lac:
                t = await lac.open_tunnel(silent.getsockname(), config=lac_config(), wait=False)
                sock = t.sock
                with pytest.raises(TunnelFailed):
                    await t.wait_established()
                await until(lambda: not lac.tunnels and not lac.endpoints, timeout=1.0)
                assert sock.fileno() == -1  # closed
        finally:
            silent.close()

    run(scenario)


def test_tunnel_limit_refused_without_a_tunnel() -> None:
    """Item 7 at the runtime: the refused LAC learns Error 4; the LNS keeps one tunnel."""

    async def scenario() -> None:
        async with L2tpContext() as lns, L2tpContext() as lac:
            listener = await lns.listen(("127.0.0.1", 0), config=lns_config(max_tunnels=1))
            await lac.open_tunnel(listener.address, config=lac_config())
            for _ in range(3):
                with pytest.raises(TunnelFailed) as failed:
                    await lac.open_tunnel(listener.address, config=lac_config())
                reason = failed.value.event.reason
                assert reason is not None and failed.value.event.by_peer
                assert reason.result == StopCcnResult.GENERAL_ERROR
                assert reason.error == ErrorCode.INSUFFICIENT_RESOURCES
            assert len(listener.tunnels) == 1 and len(lns.tunnels) == 1
            assert listener.listener.counters.rejected == 3

    run(scenario)


def test_second_listener_on_the_same_address_is_refused() -> None:
    """Item 10: the listen socket is exclusive; per-tunnel sockets still share it."""

    async def scenario() -> None:
        async with L2tpContext() as a, L2tpContext() as b, L2tpContext() as lac:
            first = await a.listen(("127.0.0.1", 0), options=ListenOptions(name="first"))
            with pytest.raises(ListenError) as refused:
                await b.listen(first.address, options=ListenOptions(name="second"))
            text = str(refused.value)
            assert refused.value.errno == errno.EADDRINUSE
            assert "listener second on" in text and f"127.0.0.1:{first.address[1]}" in text
            assert f"{os.getpid()} (" in text  # the holder is named
            # Another program binding without SO_REUSEADDR is refused as well...
            other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with pytest.raises(OSError):
                other.bind(first.address)
            other.close()
            # ...while the listener's own per-tunnel socket binds the same address.
            t = await lac.open_tunnel(first.address, config=lac_config())
            (th,) = first.tunnels.values()
            await until(lambda: th.own_sock is not None)
            assert th.own_sock is not None
            assert th.own_sock.getsockname()[:2] == first.address
            session = await t.open_session()
            await session.wait_established()

    run(scenario)


def test_non_local_listen_address_names_the_listener() -> None:
    async def scenario() -> None:
        async with L2tpContext() as ctx:
            with pytest.raises(ListenError) as refused:
                await ctx.listen(("192.0.2.55", 1701), options=ListenOptions(name="edge"))
            assert refused.value.errno == errno.EADDRNOTAVAIL
            assert str(refused.value) == (
                "listener edge on 192.0.2.55:1701: 192.0.2.55 is not an address of this host"
            )

    run(scenario)


def test_port_owner_lookup_finds_this_process() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        owners = udp_port_owners("127.0.0.1", sock.getsockname()[1])
        assert any(o.startswith(f"{os.getpid()} (") for o in owners)
        assert udp_port_owners("127.0.0.1", 1) == []
    finally:
        sock.close()


class _NoPrivileges(AsyncNullDataPlane):
    async def create_tunnel(self, spec: KernelTunnelSpec) -> None:
        raise KernelError(errno.EPERM, f"create tunnel {spec.tunnel_id}: CAP_NET_ADMIN is required")


def test_local_errors_are_never_sent_to_the_peer(caplog: pytest.LogCaptureFixture) -> None:
    """Item 11: the peer gets StopCCN 2 with a generic message; our log has the detail."""

    async def scenario() -> TunnelClosed:
        async with L2tpContext(dataplane=_NoPrivileges()) as lns, L2tpContext() as lac:
            listener = await lns.listen(("127.0.0.1", 0), config=lns_config())
            t = await lac.open_tunnel(listener.address, config=lac_config(), wait=False)
            try:
                await t.wait_established()
            except TunnelFailed as failed:
                return failed.event
            return await t.wait_closed()

    with caplog.at_level(logging.ERROR, logger="l2tp"):
        closed = run(scenario)
    assert closed.by_peer and closed.reason is not None
    assert closed.reason.result == StopCcnResult.GENERAL_ERROR
    assert "CAP_NET_ADMIN" not in closed.reason.message
    assert closed.reason.message == "local failure"
    assert any("CAP_NET_ADMIN" in r.getMessage() for r in caplog.records)
