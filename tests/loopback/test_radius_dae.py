"""Dynamic Authorization (RFC 5176) over real UDP, driven by FreeRADIUS's ``radclient``.

First against a stub session directory: what radclient prints of our replies (code,
Error-Cause, Message-Authenticator it verified). Then end to end in one process: an LNS
:class:`L2tpContext` over UDP with the built-in PPP backend (fake PPP kernel, as in
tests/unit/builtin_ppp_fakes.py), a LAC context placing the call, and an in-memory PPP
peer (a LAC-role built-in backend on the other end of the session's PPP socket);
``radclient`` then disconnects the session, or shortens its Session-Timeout, through
:class:`ContextSessionDirectory`, and the LAC sees the CDN.

Not covered here: the l2tp-lns daemon process (the ``[radius]`` configuration that will
start the server is not written yet) and a real kernel.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import TypeVar

import pytest
from pyrad import packet as rpacket
from pyrad.dictionary import Dictionary

from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.kernel.model import KernelTunnelSpec
from l2tp.protocol.events import Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.protocol.values import CallParams
from l2tp.radius import DICTIONARY_PATH
from l2tp.radius.dae import (
    DaeClient,
    DynamicAuthorizationServer,
    NasIdentity,
    SessionQuery,
    SessionRef,
)
from l2tp.radius.dae_runtime import DISCONNECT_MESSAGE, ContextSessionDirectory
from l2tp.runtime.backend import NullSessionBackend, SessionOptions
from l2tp.runtime.builtin_ppp import BuiltinPppBackend, Ending
from l2tp.runtime.context import L2tpContext
from l2tp.runtime.endpoints import ListenOptions
from l2tp.runtime.session_handle import SessionHandle
from tests.helpers import require_tool, until
from tests.unit.builtin_ppp_fakes import FakePppKernel, Reported, backend_session, socket_pair
from tests.unit.test_builtin_ppp_backend import ipcp_up, lac_options, lns_options

pytestmark = pytest.mark.loopback

T = TypeVar("T")
SECRET = "s3cret"


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(main())


async def radclient(
    port: int, command: str, attributes: str, secret: str = SECRET, timeout: float = 3.0
) -> tuple[int, str]:
    """Run radclient once (no retries); its exit status and what it printed."""
    proc = await asyncio.create_subprocess_exec(
        require_tool("radclient"),
        "-x",
        "-r",
        "1",
        "-t",
        str(timeout),
        f"127.0.0.1:{port}",
        command,
        secret,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(attributes.encode() + b"\n")
    return await proc.wait(), out.decode(errors="replace")


class StubDirectory:
    def __init__(self) -> None:
        self.refs = [SessionRef(key=(5, 6), acct_session_id="abc123", user_name="alice")]
        self.disconnected: list[SessionRef] = []
        self.timeouts: list[int | None] = []

    def find(self, query: SessionQuery) -> list[SessionRef]:
        return [ref for ref in self.refs if ref.matches(query)]

    async def disconnect(self, ref: SessionRef) -> bool:
        self.disconnected.append(ref)
        return True

    async def set_session_timeout(self, ref: SessionRef, seconds: int | None) -> bool:
        self.timeouts.append(seconds)
        return True


def test_radclient_disconnect_and_coa_against_a_stub_directory() -> None:
    directory = StubDirectory()

    async def scenario() -> None:
        server = DynamicAuthorizationServer(
            directory,
            [DaeClient(IPv4Address("127.0.0.1"), SECRET.encode(), "radclient")],
            host="127.0.0.1",
            port=0,
            nas=NasIdentity(identifier="lns1"),
        )
        await server.start()
        port = server.address[1]
        try:
            rc, out = await radclient(port, "disconnect", "Acct-Session-Id = abc123")
            assert rc == 0, out
            assert "Received Disconnect-ACK" in out
            assert [r.key for r in directory.disconnected] == [(5, 6)]

            rc, out = await radclient(port, "disconnect", "Acct-Session-Id = nope")
            assert rc != 0 and "Received Disconnect-NAK" in out, out
            assert "Error-Cause = Session-Context-Not-Found" in out

            rc, out = await radclient(port, "disconnect", "NAS-Identifier = lns1")
            assert "Received Disconnect-NAK" in out and "Error-Cause = Missing-Attribute" in out

            rc, out = await radclient(
                port, "disconnect", "User-Name = alice\nNAS-Identifier = lns9"
            )
            assert "Error-Cause = NAS-Identification-Mismatch" in out, out

            rc, out = await radclient(port, "coa", "User-Name = alice\nSession-Timeout = 600")
            assert rc == 0 and "Received CoA-ACK" in out, out
            assert directory.timeouts == [600]

            rc, out = await radclient(port, "coa", "User-Name = alice\nFilter-Id = web-only")
            assert "Received CoA-NAK" in out and "Error-Cause = Unsupported-Attribute" in out

            # A Message-Authenticator and a fresh Event-Timestamp: radclient checks the
            # one in our reply (it rejects a reply whose Message-Authenticator is wrong).
            rc, out = await radclient(
                port,
                "disconnect",
                f"User-Name = alice\nEvent-Timestamp = {int(time.time())}\n"
                "Message-Authenticator = 0x00\nProxy-State = 0x0102",
            )
            assert rc == 0 and "Received Disconnect-ACK" in out, out
            reply = out.split("Received", 1)[1]
            assert "Message-Authenticator = 0x" in reply and "Proxy-State = 0x0102" in reply

            # Silently discarded: a stale Event-Timestamp, a wrong secret.
            stale = int(time.time()) - 3600
            rc, out = await radclient(
                port, "disconnect", f"User-Name = alice\nEvent-Timestamp = {stale}", timeout=0.5
            )
            assert rc != 0 and "No reply from server" in out, out
            rc, out = await radclient(
                port, "disconnect", "User-Name = alice", secret="wrong", timeout=0.5
            )
            assert rc != 0 and "No reply from server" in out, out
        finally:
            await server.close()
        c = server.counters
        assert (c.disconnect_acks, c.disconnect_naks, c.coa_acks, c.coa_naks) == (2, 3, 1, 1)
        assert c.naks_by_cause == {503: 1, 402: 1, 403: 1, 401: 1}
        assert (c.stale_timestamp, c.bad_authenticator) == (1, 1)
        assert len(directory.disconnected) == 2

    run(scenario)


# ------------------------------------------------------------------ end to end


class PeeredDataPlane(AsyncNullDataPlane):
    """The null data plane, whose PPP sockets are one end of a socket pair whose other
    end the test hands to an in-memory PPP peer."""

    def __init__(self) -> None:
        super().__init__()
        self.peer_ends: asyncio.Queue[socket.socket] = asyncio.Queue()

    def open_ppp_socket(
        self, tunnel: KernelTunnelSpec, session_id: int, peer_session_id: int
    ) -> socket.socket:
        super().open_ppp_socket(tunnel, session_id, peer_session_id).close()  # checks, record
        ours, theirs = socket_pair()
        self.peer_ends.put_nowait(theirs)
        return ours


def test_radclient_ends_a_builtin_ppp_session_through_the_runtime(tmp_path: Path) -> None:
    lns_kernel = FakePppKernel()
    builtin = BuiltinPppBackend(
        kernel=lns_kernel, hostname="lns", terminate_wait=0.3, raise_fd_limit=False
    )
    peer = BuiltinPppBackend(
        kernel=FakePppKernel(), hostname="lac", terminate_wait=0.3, raise_fd_limit=False
    )
    dataplane = PeeredDataPlane()
    acct_ids: dict[tuple[int, int], str] = {}

    async def scenario() -> None:
        async with (
            L2tpContext(dataplane=dataplane, backend=builtin) as lns,
            L2tpContext(dataplane=AsyncNullDataPlane(), backend=NullSessionBackend()) as lac,
        ):
            options = ListenOptions(ppp=SessionOptions(builtin_ppp=lns_options(tmp_path)))
            listener = await lns.listen(
                ("127.0.0.1", 0),
                config=ListenerConfig(tunnel=TunnelConfig(role=Role.LNS)),
                options=options,
            )
            tunnel = await lac.open_tunnel(listener.address, config=TunnelConfig(role=Role.LAC))
            noted: list[tuple[int, int]] = []
            directory = ContextSessionDirectory(
                lns, builtin, acct_session_id=acct_ids.get, disconnecting=noted.append
            )
            server = DynamicAuthorizationServer(
                directory,
                [DaeClient(IPv4Address("127.0.0.1"), SECRET.encode())],
                host="127.0.0.1",
                port=0,
            )
            await server.start()
            port = server.address[1]
            peers: list[Reported] = []

            async def place(serial: int) -> tuple[SessionHandle, tuple[int, int]]:
                """A call, with PPP up between the LNS backend and the in-memory peer."""
                call = tunnel.place_call(CallParams(calling_number=f"555{serial}"))
                await call.wait_established()
                sock = await asyncio.wait_for(dataplane.peer_ends.get(), 10)
                reported = Reported()
                peers.append(reported)
                session, _ = backend_session(
                    sock, lns=False, options=lac_options(), sid=serial, reported=reported
                )
                await peer.start(session)
                await until(
                    lambda: any(
                        link.peer_ipv4 is not None and link.key not in done
                        for link in builtin.links.values()
                    ),
                    "IPCP up on the new session",
                )
                (key,) = [k for k, link in builtin.links.items() if k not in done]
                done.add(key)
                return call, key

            done: set[tuple[int, int]] = set()
            try:
                # 1. Disconnect-Request by Acct-Session-Id (filled in as accounting will).
                call, key = await place(1)
                assert ipcp_up(lns_kernel)
                acct_ids[key] = "acct-0001"
                (ref,) = directory.refs()
                assert ref.user_name == "alice" and ref.framed_ip == IPv4Address("10.0.0.2")
                assert ref.calling_station_id == "5551"
                assert ref.listener == "listener"  # ListenOptions.name: its NAS scope
                rc, out = await radclient(port, "disconnect", "Acct-Session-Id = acct-0001")
                assert rc == 0 and "Received Disconnect-ACK" in out, out
                closed = await asyncio.wait_for(call.wait_closed(), 10)
                assert closed.by_peer and closed.reason is not None
                assert (closed.reason.result, closed.reason.message) == (3, DISCONNECT_MESSAGE)
                assert builtin.endings[key] is None  # stopped by the control plane
                assert noted == [key]  # accounting was told why, before the CDN
                rc, out = await radclient(port, "disconnect", "Acct-Session-Id = acct-0001")
                assert "Error-Cause = Session-Context-Not-Found" in out, out

                # 2. CoA Session-Timeout: the session ends by itself with the time-limit CDN.
                call, key = await place(2)
                address = builtin.links[key].peer_ipv4
                rc, out = await radclient(
                    port,
                    "coa",
                    f"User-Name = alice\nFramed-IP-Address = {address}\nSession-Timeout = 1",
                )
                assert rc == 0 and "Received CoA-ACK" in out, out
                began = asyncio.get_running_loop().time()
                closed = await asyncio.wait_for(call.wait_closed(), 10)
                assert asyncio.get_running_loop().time() - began >= 0.5
                assert closed.reason is not None
                assert (closed.reason.result, closed.reason.message) == (
                    3,
                    "PPP connect time limit reached",
                )
                assert builtin.endings[key] is Ending.SESSION_TIMEOUT
                assert builtin.counters.session_timeouts == 1
            finally:
                await server.close()
                await peer.close()
            c = server.counters
            assert (c.disconnect_acks, c.disconnect_naks, c.coa_acks) == (1, 1, 1)
            assert c.sessions_disconnected == 1 and c.session_timeouts_set == 1

    run(scenario)


class GatedDirectory(StubDirectory):
    """Disconnects wait for :attr:`gate`: requests stay in progress until the test says."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def disconnect(self, ref: SessionRef) -> bool:
        await self.gate.wait()
        return await super().disconnect(ref)


def test_requests_in_progress_are_bounded_and_cancelled_at_close() -> None:
    directory = GatedDirectory()
    dictionary = Dictionary(str(DICTIONARY_PATH))

    def disconnect(ident: int) -> bytes:
        pkt = rpacket.CoAPacket(
            code=rpacket.DisconnectRequest, id=ident, secret=SECRET.encode(), dict=dictionary
        )
        pkt.AddAttribute("User-Name", "alice")
        return bytes(pkt.RequestPacket())

    async def scenario() -> None:
        server = DynamicAuthorizationServer(
            directory,
            [DaeClient(IPv4Address("127.0.0.1"), SECRET.encode())],
            host="127.0.0.1",
            port=0,
            max_pending=2,
        )
        await server.start()
        loop = asyncio.get_running_loop()
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setblocking(False)
        client.connect(server.address)
        try:
            for ident in range(3):
                client.send(disconnect(ident))
            await until(lambda: server.counters.received == 3, "three datagrams")
            assert server.counters.overload == 1  # the third: two were in progress
            directory.gate.set()
            replies = [await asyncio.wait_for(loop.sock_recv(client, 4096), 5) for _ in range(2)]
            assert sorted(r[1] for r in replies) == [0, 1]
            assert {r[0] for r in replies} == {rpacket.DisconnectACK}
            directory.gate.clear()
            client.send(disconnect(7))
            await until(lambda: server.counters.received == 4, "the fourth datagram")
        finally:
            await server.close()  # the fourth is still waiting on the directory: cancelled
            client.close()
        assert not server._tasks
        assert len(directory.disconnected) == 2
        with pytest.raises(RuntimeError):
            server.address  # noqa: B018

    run(scenario)
