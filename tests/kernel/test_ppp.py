"""PppdBackend against a real kernel and real pppd, without the control plane.

Each side of a veth pair gets a managed L2TPv2 tunnel on its own UDP socket
(static agreed IDs: tunnel 10 <-> 20, session 1 <-> 2) and a PPP kernel
session (LNS mode on side A), as the control plane would create them after
ICCN. :class:`PppdBackend` then opens the PPPoL2TP sockets and runs pppd on
both sides; PPP comes up, a ping crosses it, and stopping one side makes the
other side's pppd exit and be reported with the mapped CDN Result Code.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

import pytest

from l2tp.kernel import LinuxDataPlane, PseudowireType, SessionConfig, TunnelConfig
from l2tp.kernel.sockets import tunnel_udp_socket
from l2tp.protocol.constants import CdnResult, ErrorCode
from l2tp.protocol.events import CallKind, Role, SessionInfo
from l2tp.runtime.backend import BackendSession, PppOptions
from l2tp.runtime.ppp import PppdBackend, PppdExitStatus, PppdOptionsError, map_exit
from tests.helpers import require_tool
from tests.kernel.conftest import VethPair
from tests.kernel.xl2tpd_harness import ping, ppp_addresses

pytestmark = pytest.mark.kernel

LNS_IP, LAC_IP = "10.55.0.1", "10.55.0.2"


@dataclass
class Side:
    """One end: its data plane, tunnel socket and the session handed to the backend."""

    ns: str
    dataplane: LinuxDataPlane
    sock: socket.socket
    tunnel: TunnelConfig
    session: BackendSession | None = None
    reports: list[tuple[int, int | None, str]] = field(default_factory=list)

    def make_session(self, sid: int, psid: int, *, lns: bool, options: PppOptions) -> None:
        info = SessionInfo(
            tunnel_id=self.tunnel.tunnel_id,
            peer_tunnel_id=self.tunnel.peer_tunnel_id,
            session_id=sid,
            peer_session_id=psid,
            kind=CallKind.LNS_INCOMING if lns else CallKind.LAC_INCOMING,
            call_serial=1,
        )
        self.dataplane.create_session(
            SessionConfig(
                tunnel_id=self.tunnel.tunnel_id,
                session_id=sid,
                peer_session_id=psid,
                pw_type=PseudowireType.PPP,
                lns_mode=lns,
            )
        )
        local, peer = self.sock.getsockname(), self.sock.getpeername()
        self.session = BackendSession(
            info=info,
            role=Role.LNS if lns else Role.LAC,
            kernel_tunnel=self.tunnel,
            tunnel_fd=self.sock.fileno(),
            dataplane=self.dataplane,
            lns_mode=lns,
            local=(local[0], local[1]),
            peer=(peer[0], peer[1]),
            options=options,
            report_down=lambda result, error, message: self.reports.append(
                (result, error, message)
            ),
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.dataplane.delete_tunnel(self.tunnel.tunnel_id)
        self.sock.close()
        self.dataplane.close()


def make_side(ns: str, local: str, peer: str, tid: int, ptid: int, port: int) -> Side:
    dataplane = LinuxDataPlane(netns=ns)
    sock = tunnel_udp_socket(ip_address(local), port, ip_address(peer), port, netns=ns)
    tunnel = TunnelConfig(tunnel_id=tid, peer_tunnel_id=ptid, version=2, fd=sock.fileno())
    try:
        dataplane.create_tunnel(tunnel)
    except BaseException:
        sock.close()
        dataplane.close()
        raise
    return Side(ns=ns, dataplane=dataplane, sock=sock, tunnel=tunnel)


@pytest.fixture
def pair(veth_pair: VethPair) -> Iterator[tuple[Side, Side]]:
    """Side A (LNS, tunnel 10, session 1) and side B (LAC, tunnel 20, session 2)."""
    a = make_side(veth_pair.ns_a, veth_pair.a4, veth_pair.b4, 10, 20, 1701)
    try:
        b = make_side(veth_pair.ns_b, veth_pair.b4, veth_pair.a4, 20, 10, 1701)
    except BaseException:
        a.close()
        raise
    yield a, b
    a.close()
    b.close()


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


async def _wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    """Poll a blocking ``predicate`` in a thread until true; TimeoutError after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not await asyncio.to_thread(predicate):
            await asyncio.sleep(0.1)


def test_pppd_both_ends_up_ping_and_hangup(pair: tuple[Side, Side]) -> None:
    require_tool("pppd")
    require_tool("ping")
    a, b = pair
    a.make_session(
        1,
        2,
        lns=True,
        options=PppOptions(name="lns", pppd_options=("noauth", f"{LNS_IP}:{LAC_IP}", "debug")),
    )
    b.make_session(
        2,
        1,
        lns=False,
        options=PppOptions(name="lac", pppd_options=("noauth", "noipdefault", "debug")),
    )
    assert a.session is not None and b.session is not None
    sa, sb = a.session, b.session

    async def scenario() -> None:
        backend_a, backend_b = PppdBackend(stop_timeout=8), PppdBackend(stop_timeout=8)
        try:
            await backend_a.start(sa)
            await backend_b.start(sb)
            pids = [backend_a.pid(sa), backend_b.pid(sb)]

            def both_up() -> bool:
                return bool(ppp_addresses(a.ns)) and bool(ppp_addresses(b.ns))

            try:
                await _wait_for(both_up, 40)
            except TimeoutError:
                await backend_a.close()
                await backend_b.close()
                raise AssertionError(
                    "PPP did not come up:\n"
                    + "\n".join(backend_a.exits[sa.key].output)
                    + "\n---\n"
                    + "\n".join(backend_b.exits[sb.key].output)
                ) from None
            ((local_b, peer_b),) = ppp_addresses(b.ns).values()
            assert (local_b, peer_b) == (LAC_IP, LNS_IP)
            assert ppp_addresses(a.ns)
            done = await asyncio.to_thread(ping, b.ns, LNS_IP)
            assert done.returncode == 0, done.stdout + done.stderr

            # Stop the LNS side: its pppd ends the link (LCP Terminate) and exits;
            # the LAC's pppd exits by itself and the backend reports it.
            await backend_a.stop(sa)
            stopped = backend_a.exits[sa.key]
            assert stopped.stopped and a.reports == []
            ended = await backend_b.wait(sb, timeout=30)
            assert not ended.stopped
            assert ended.status in (PppdExitStatus.OK, PppdExitStatus.HANGUP), ended
            assert b.reports == [map_exit(ended.returncode)]
            assert b.reports[0][0] == CdnResult.LOST_CARRIER
            await backend_a.stop(sa)  # idempotent
            await backend_b.stop(sb)
            assert not backend_a.running(sa) and not backend_b.running(sb)
            for pid in pids:
                assert pid is not None and _gone(pid), f"pppd {pid} still running"
        finally:
            await backend_a.close()
            await backend_b.close()

    asyncio.run(scenario())


@pytest.fixture
def lone(veth_pair: VethPair) -> Iterator[Side]:
    """Only side A (tunnel 30 -> 40 on UDP port 1702): for pppd that never talks to a peer."""
    side = make_side(veth_pair.ns_a, veth_pair.a4, veth_pair.b4, 30, 40, 1702)
    yield side
    side.close()


def test_pppd_options_errors(lone: Side, tmp_path: Path) -> None:
    require_tool("pppd")
    a = lone
    bad = tmp_path / "bad.args"
    bad.write_text("noauth\n# comment line\nno-such-pppd-option 1\n")
    a.make_session(1, 2, lns=True, options=PppOptions(name="bad", pppd_args=str(bad)))
    assert a.session is not None
    session = a.session

    async def scenario() -> None:
        backend = PppdBackend()
        try:
            # pppd refuses the option: exit status 2, reported as a general error.
            await backend.start(session)
            ended = await backend.wait(session, timeout=20)
            assert ended.status == PppdExitStatus.OPTION_ERROR, ended
            assert a.reports == [
                (
                    CdnResult.GENERAL_ERROR,
                    ErrorCode.VENDOR_SPECIFIC,
                    "pppd options error (pppd exit status 2)",
                )
            ]
            assert any("no-such-pppd-option" in line for line in ended.output), ended.output

            # Problems we can see before starting pppd raise at start().
            for options, text in (
                (PppOptions(pppd_args=str(tmp_path / "missing.args")), "missing.args"),
                (PppOptions(pppd_options=("noauth", "detach")), "'detach' is not allowed"),
                (PppOptions(pppd_options=("bad\x00arg",)), "NUL"),
            ):
                broken = BackendSession(
                    info=session.info,
                    role=session.role,
                    kernel_tunnel=session.kernel_tunnel,
                    tunnel_fd=session.tunnel_fd,
                    dataplane=session.dataplane,
                    lns_mode=True,
                    local=session.local,
                    peer=session.peer,
                    options=options,
                )
                with pytest.raises(PppdOptionsError, match=text):
                    await backend.start(broken)
                assert not backend.running(broken)
        finally:
            await backend.close()

    asyncio.run(scenario())
