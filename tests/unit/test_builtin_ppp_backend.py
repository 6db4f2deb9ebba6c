"""BuiltinPppBackend on a real event loop over socket pairs (see builtin_ppp_fakes.py).

An LNS-side backend (authenticator) and a LAC-side backend (peer) each get one end of a
SEQPACKET pair as their session's PPPoL2TP socket: LCP, authentication and the NCPs run
between them through the backends' readers and timers. What the kernel would be asked
(units, NP modes, interface requests) is recorded by the fake and checked in order; how
each way of ending becomes a CDN is checked against the documented table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from l2tp.kernel.ppp_device import PPP_IP, PPP_IPV6, NpMode
from l2tp.ppp import AuthDecision, AuthMethod, AuthRequest, RestartConfig
from l2tp.protocol.constants import CdnResult, ErrorCode
from l2tp.runtime import backend as backend_module
from l2tp.runtime.backend import ENDED_KEPT, EndedSessions, NullSessionBackend, SessionOptions
from l2tp.runtime.builtin_ppp import (
    AuthContext,
    BuiltinPppBackend,
    BuiltinPppOptions,
    DispatchingBackend,
    Ending,
    map_ending,
)
from tests.helpers import until
from tests.unit.builtin_ppp_fakes import (
    FakePppKernel,
    Reported,
    backend_session,
    socket_pair,
)

SECRETS = """\
# client  server  secret            address
alice     *       "correct horse"
bob       lns     hunter2           10.9.9.9
"""
LNS_IP = IPv4Address("10.0.0.1")
POOL = IPv4Network("10.0.0.0/29")


def lns_options(tmp_path: Path, **kw: Any) -> BuiltinPppOptions:
    secrets = tmp_path / "chap-secrets"
    if not secrets.exists():
        secrets.write_text(SECRETS)
    kw.setdefault("secrets", str(secrets))
    kw.setdefault("local_address", LNS_IP)
    kw.setdefault("address_pool", POOL)
    kw.setdefault("name", "lns")
    kw.setdefault("lcp_echo_interval", None)
    return BuiltinPppOptions(**kw)


def lac_options(**kw: Any) -> BuiltinPppOptions:
    kw.setdefault("user", "alice")
    kw.setdefault("password", "correct horse")
    kw.setdefault("lcp_echo_interval", None)
    return BuiltinPppOptions(**kw)


@dataclass
class Pair:
    lns: BuiltinPppBackend
    lac: BuiltinPppBackend
    lns_kernel: FakePppKernel
    lac_kernel: FakePppKernel
    lns_reported: Reported = field(default_factory=Reported)
    lac_reported: Reported = field(default_factory=Reported)
    sessions: dict[str, Any] = field(default_factory=dict)

    async def start(self, lns_opts: BuiltinPppOptions, lac_opts: BuiltinPppOptions) -> None:
        a, b = socket_pair()
        self.sessions["lns"], _ = backend_session(
            a, lns=True, options=lns_opts, reported=self.lns_reported
        )
        self.sessions["lac"], _ = backend_session(
            b, lns=False, options=lac_opts, reported=self.lac_reported
        )
        await self.lns.start(self.sessions["lns"])
        await self.lac.start(self.sessions["lac"])

    def np(self, kernel: FakePppKernel) -> dict[int, NpMode]:
        modes: dict[int, NpMode] = {}
        for call in kernel.calls:
            if call[0] == "np":
                modes[int(str(call[2]))] = call[3]  # type: ignore[assignment]
        return modes

    async def close(self) -> None:
        """Both ends at once, as when the CDN reaches each side's control plane."""
        await asyncio.gather(self.lns.close(), self.lac.close())


def make_pair(lac_terminate_wait: float = 0.5, **kw: Any) -> Pair:
    lns_kernel, lac_kernel = FakePppKernel(), FakePppKernel()
    return Pair(
        lns=BuiltinPppBackend(kernel=lns_kernel, hostname="lns", terminate_wait=0.5, **kw),
        lac=BuiltinPppBackend(kernel=lac_kernel, hostname="lac", terminate_wait=lac_terminate_wait),
        lns_kernel=lns_kernel,
        lac_kernel=lac_kernel,
    )


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


def ipcp_up(kernel: FakePppKernel) -> bool:
    return any(c[0] == "set_up" for c in kernel.interfaces_.calls) and any(
        c[0] == "np" and c[2] == PPP_IP and c[3] is NpMode.PASS for c in kernel.calls
    )


@pytest.mark.parametrize("method", list(AuthMethod))
def test_each_method_brings_the_link_up_and_configures_the_unit(
    tmp_path: Path, method: AuthMethod, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="l2tp.runtime")

    async def scenario() -> None:
        pair = make_pair()
        try:
            await pair.start(
                lns_options(tmp_path, auth=(method,), interface_name="lns%d", mtu=1400),
                lac_options(auth=(method,)),
            )
            await until(lambda: ipcp_up(pair.lns_kernel) and ipcp_up(pair.lac_kernel), "IPCP")
            ops = pair.lns_kernel.interfaces_.calls
            # Found by its kernel name, renamed, sized, up, then addressed: in that order.
            assert [c[0] for c in ops] == [
                "index_of",
                "rename",
                "set_mtu",
                "set_up",
                "add_address",
            ]
            assert ops[0] == ("index_of", "ppp" + ops[0][1][3:])  # type: ignore[index]
            assert ops[1][2] == "lns%d" and ops[2][2] == 1400
            # The pool's first address goes to alice (no address in her secrets line).
            assert ops[4][1:] == (40, LNS_IP, IPv4Address("10.0.0.2"), 32)
            lac_ops = pair.lac_kernel.interfaces_.calls
            assert ("add_address", 40, IPv4Address("10.0.0.2"), LNS_IP, 32) in lac_ops
            kernel_calls = [c[0] for c in pair.lns_kernel.calls]
            assert kernel_calls[:3] == ["open_channel", "create_unit", "set_mru"]
            assert pair.np(pair.lns_kernel) == {PPP_IP: NpMode.PASS}
            assert pair.lns.counters.auth_succeeded == 1
            assert pair.lns.counters.network_up == 1
        finally:
            await pair.close()
        assert pair.lns_reported.downs == [] and pair.lac_reported.downs == []
        assert not pair.lns_kernel.open_fds and not pair.lac_kernel.open_fds
        assert pair.lns_kernel.closed

    run(scenario)
    assert 'user "alice" succeeded' in caplog.text
    assert "correct horse" not in caplog.text


def test_secrets_line_address_and_ipv6(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair()
        try:
            await pair.start(
                lns_options(tmp_path, ipv6=True),
                lac_options(user="bob", password="hunter2", ipv6=True),
            )

            def both() -> bool:
                modes = pair.np(pair.lac_kernel)
                return modes.get(PPP_IP) is NpMode.PASS and modes.get(PPP_IPV6) is NpMode.PASS

            await until(both, "IPCP and IPv6CP on the LAC")

            def adds() -> list[tuple[object, ...]]:
                calls = pair.lns_kernel.interfaces_.calls
                return [c for c in calls if c[0] == "add_address"]

            await until(lambda: len(adds()) == 2, "both addresses on the LNS")
            v4 = next(c for c in adds() if isinstance(c[2], IPv4Address))
            assert v4[3] == IPv4Address("10.9.9.9")  # bob's line names his address
            v6 = next(c for c in adds() if not isinstance(c[2], IPv4Address))
            assert str(v6[2]).startswith("fe80::") and str(v6[3]).startswith("fe80::")
            assert v6[4] == 128 and v6[2] != v6[3]
            pool = pair.lns.pool(pair.sessions["lns"].options.builtin_ppp)
            assert pool is not None and pool.in_use == 0  # the pool was not needed
        finally:
            await pair.close()

    run(scenario)


def test_wrong_password_ends_with_the_documented_cdn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="l2tp.runtime")

    async def scenario() -> None:
        pair = make_pair()
        try:
            await pair.start(
                lns_options(tmp_path, auth=(AuthMethod.MSCHAP_V2,)),
                lac_options(password="wrong horse", auth=(AuthMethod.MSCHAP_V2,)),
            )
            await until(lambda: pair.lns_reported.downs and pair.lac_reported.downs, "both down")
            assert pair.lns_reported.downs == [
                (CdnResult.GENERAL_ERROR, ErrorCode.VENDOR_SPECIFIC, "PPP authentication failed")
            ]
            assert pair.lac_reported.downs == [
                (
                    CdnResult.GENERAL_ERROR,
                    ErrorCode.VENDOR_SPECIFIC,
                    "PPP authentication to the peer failed",
                )
            ]
            assert pair.lns.counters.auth_failed == 1
            # No unit was ever made, and everything is released without waiting for stop().
            assert not any(c[0] == "create_unit" for c in pair.lns_kernel.calls)
            await until(lambda: not pair.lns_kernel.open_fds, "LNS fds released")
            await pair.lns.stop(pair.sessions["lns"])  # what the control plane does next
            assert pair.lns.endings[pair.sessions["lns"].key] is Ending.AUTH_FAILED
        finally:
            await pair.close()

    run(scenario)
    assert 'mschap-v2 authentication of user "alice" failed' in caplog.text
    assert "wrong horse" not in caplog.text and "correct horse" not in caplog.text


def test_unknown_user_and_pap_refused_when_not_offered(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair()
        try:
            # The LAC only does PAP, the LNS does not offer it: LCP cannot agree.
            await pair.start(
                lns_options(tmp_path), lac_options(user="mallory", auth=(AuthMethod.PAP,))
            )
            await until(lambda: pair.lns_reported.downs, "LNS down")
            assert pair.lns_reported.downs[0][0] == CdnResult.GENERAL_ERROR
        finally:
            await pair.close()

    run(scenario)


def test_peer_terminate_is_lost_carrier(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair()
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: ipcp_up(pair.lns_kernel) and ipcp_up(pair.lac_kernel), "IPCP")
            # The LAC's PPP ends the link but its L2TP session stays (a pppd told to hang
            # up): the LNS acknowledges, waits one restart interval (RFC 1661 4.3 "zrc",
            # 3 s) and reports.
            pair.lac_kernel.hold_channels = True
            lac_link = pair.lac.links[pair.sessions["lac"].key]
            lac_link.conn.close(asyncio.get_running_loop().time(), "user request")
            lac_link._transmit()
            await until(lambda: pair.lns_reported.downs, "LNS down", timeout=6)
            assert pair.lns_reported.downs == [
                (CdnResult.LOST_CARRIER, None, "PPP link terminated by the peer")
            ]
            assert pair.lns.counters.peer_terminated == 1
            await until(lambda: not pair.lns_kernel.open_fds, "LNS released")
            pool = pair.lns.pool(pair.sessions["lns"].options.builtin_ppp)
            assert pool is not None and pool.in_use == 0  # alice's address came back
            # The address was taken off the interface when IPCP went down.
            assert any(c[0] == "delete_address" for c in pair.lns_kernel.interfaces_.calls)
        finally:
            await pair.close()

    run(scenario)


def test_stop_is_fast_idempotent_and_reports_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        # A terminate_wait far beyond run()'s 30 s limit: stop() can only return in
        # time if it ended on the peer's Terminate-Ack, not on the timer.
        pair = make_pair(lac_terminate_wait=3600)
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: ipcp_up(pair.lns_kernel) and ipcp_up(pair.lac_kernel), "IPCP")
            await pair.lac.stop(pair.sessions["lac"])  # LCP Terminate-Request to the LNS
            await pair.lac.stop(pair.sessions["lac"])  # idempotent
            assert pair.lac_reported.downs == []  # stop() reports nothing
            assert not pair.lac_kernel.open_fds and not pair.lac.links
            assert pair.lac.endings == {pair.sessions["lac"].key: None}
        finally:
            await pair.close()

    run(scenario)


def test_stop_with_a_silent_peer_waits_at_most_terminate_wait(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair()
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: ipcp_up(pair.lns_kernel) and ipcp_up(pair.lac_kernel), "IPCP")
            lac_link = pair.lac.links[pair.sessions["lac"].key]
            for fd in list(lac_link._readers):
                lac_link._unwatch(fd)  # the LAC stops answering
            loop = asyncio.get_running_loop()
            started = loop.time()
            await pair.lns.stop(pair.sessions["lns"])
            assert 0.45 <= loop.time() - started < 1.5
        finally:
            await pair.close()

    run(scenario)


def test_restart_settings_bound_lcp_with_a_silent_peer(tmp_path: Path) -> None:
    """``restart_interval`` x ``max_configure`` (RFC 1661 4.6) is how long LCP asks a
    peer that never answers: 3 x 0.1 s here, not the defaults' 10 x 3 s."""

    async def scenario() -> None:
        lns = BuiltinPppBackend(kernel=FakePppKernel(), hostname="lns", terminate_wait=0.5)
        a, b = socket_pair()  # b is the peer: it never reads nor answers
        reported = Reported()
        restart = RestartConfig(restart_interval=0.1, max_configure=3)
        session, _ = backend_session(
            a, lns=True, options=lns_options(tmp_path, restart=restart), reported=reported
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await lns.start(session)
            await until(lambda: reported.downs, "LCP gave up", timeout=5)
            assert 0.25 <= loop.time() - started < 2.0
            assert reported.downs == [(CdnResult.NO_FRAMING, None, "PPP negotiation failed")]
        finally:
            await lns.close()
            b.close()

    run(scenario)


def test_echo_failure_is_lost_carrier(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair()
        try:
            await pair.start(
                lns_options(tmp_path, lcp_echo_interval=0.1, lcp_echo_failure=3), lac_options()
            )
            await until(lambda: ipcp_up(pair.lns_kernel) and ipcp_up(pair.lac_kernel), "IPCP")
            lac_link = pair.lac.links[pair.sessions["lac"].key]
            for fd in list(lac_link._readers):
                lac_link._unwatch(fd)  # frozen: SIGSTOP in the kernel tier
            await until(lambda: pair.lns_reported.downs, "echo failure", timeout=5)
            assert pair.lns_reported.downs == [
                (CdnResult.LOST_CARRIER, None, "PPP peer not answering LCP echo requests")
            ]
            assert pair.lns.counters.echo_failed == 1
        finally:
            await pair.close()

    run(scenario)


def test_hangup_when_the_kernel_session_goes(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair()
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: ipcp_up(pair.lns_kernel), "IPCP")
            await pair.lac.close()  # its socket closes: end of file on the LNS channel
            await until(lambda: pair.lns_reported.downs, "hangup")
            assert pair.lns_reported.downs == [
                (CdnResult.LOST_CARRIER, None, "PPP channel hung up")
            ]
            await until(lambda: not pair.lns_kernel.open_fds, "released")
        finally:
            await pair.close()

    run(scenario)


def test_unit_creation_failure_is_a_local_failure(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair()
        pair.lns_kernel.fail_unit = True
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: pair.lns_reported.downs, "LNS down")
            assert pair.lns_reported.downs == [
                (CdnResult.TEMPORARY_NO_FACILITIES, None, "local failure")
            ]
        finally:
            await pair.close()

    run(scenario)


def test_failed_address_ends_the_link(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair()
        pair.lns_kernel.interfaces_.fail.add("add_address")
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: pair.lns_reported.downs, "LNS down")
            assert pair.lns_reported.downs[0][0] == CdnResult.TEMPORARY_NO_FACILITIES
            assert pair.lns.counters.interface_errors == 1
        finally:
            await pair.close()

    run(scenario)


def test_rename_failure_keeps_the_kernel_name(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair()
        pair.lns_kernel.interfaces_.fail.add("rename")
        try:
            await pair.start(lns_options(tmp_path, interface_name="taken"), lac_options())
            await until(lambda: ipcp_up(pair.lns_kernel), "IPCP")
            link = pair.lns.links[pair.sessions["lns"].key]
            assert link.ifname is not None and link.ifname.startswith("ppp")
            assert pair.lns_reported.downs == []
        finally:
            await pair.close()

    run(scenario)


class AsyncHook:
    """Answers after a round trip through the loop, as a RADIUS client would."""

    def __init__(self, ok: bool = True, fail: bool = False) -> None:
        self.ok = ok
        self.fail = fail
        self.contexts: list[AuthContext] = []

    def authenticate(self, request: AuthRequest, context: AuthContext) -> Awaitable[AuthDecision]:
        self.contexts.append(context)

        async def verdict() -> AuthDecision:
            await asyncio.sleep(0.01)
            if self.fail:
                raise RuntimeError("RADIUS server unreachable")
            return AuthDecision(success=self.ok, peer_address=IPv4Address("10.7.7.7"))

        return verdict()


def test_async_hook_decides(tmp_path: Path) -> None:
    async def scenario() -> None:
        hook = AsyncHook()
        pair = make_pair(authenticator=hook)
        try:
            await pair.start(
                lns_options(tmp_path, auth=(AuthMethod.PAP,), secrets=None),
                lac_options(auth=(AuthMethod.PAP,)),
            )
            await until(lambda: ipcp_up(pair.lac_kernel), "IPCP")
            (context,) = hook.contexts
            assert (context.tunnel_id, context.session_id, context.server) == (10, 1, "lns")
            assert context.calling_number == "5551234"
            lac_ops = pair.lac_kernel.interfaces_.calls
            assert ("add_address", 40, IPv4Address("10.7.7.7"), LNS_IP, 32) in lac_ops
        finally:
            await pair.close()

    run(scenario)


def test_failing_hook_denies(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair(authenticator=AsyncHook(fail=True))
        try:
            await pair.start(
                lns_options(tmp_path, auth=(AuthMethod.PAP,), secrets=None),
                lac_options(auth=(AuthMethod.PAP,)),
            )
            await until(lambda: pair.lns_reported.downs, "LNS down")
            assert pair.lns_reported.downs[0][2] == "PPP authentication failed"
            assert pair.lns.counters.auth_hook_errors == 1
        finally:
            await pair.close()

    run(scenario)


def test_start_refuses_without_secrets_and_closes_the_socket(tmp_path: Path) -> None:
    async def scenario() -> None:
        backend = BuiltinPppBackend(kernel=FakePppKernel(), hostname="lns")
        a, b = socket_pair()
        for options, text in (
            (lns_options(tmp_path, secrets=None), "needs a secrets file"),
            (lns_options(tmp_path, secrets=str(tmp_path / "missing")), "No such file"),
        ):
            session, dataplane = backend_session(a, lns=True, options=options)
            with pytest.raises(ValueError, match=text):
                await backend.start(session)
            assert dataplane.opened == 0  # refused before the kernel was touched
        assert not backend.links
        a.close()
        b.close()

    run(scenario)


def test_secrets_file_is_reloaded_and_a_broken_edit_keeps_the_old(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair()
        try:
            options = lns_options(tmp_path, auth=(AuthMethod.CHAP_MD5,))
            assert options.secrets is not None
            secrets = Path(options.secrets)
            secrets.write_text('carol * "s3cret"\n')
            await pair.start(
                options, lac_options(user="carol", password="s3cret", auth=(AuthMethod.CHAP_MD5,))
            )
            await until(lambda: ipcp_up(pair.lac_kernel), "carol up")
            secrets.write_text('carol * "unterminated\n')  # a broken edit
            pair2 = make_pair()
            pair2.lns = pair.lns  # the same backend: its cache of the file
            a, b = socket_pair()
            s_lns, _ = backend_session(a, lns=True, options=options, sid=5, psid=6)
            s_lac, _ = backend_session(
                b,
                lns=False,
                options=lac_options(user="carol", password="s3cret", auth=(AuthMethod.CHAP_MD5,)),
                sid=6,
                psid=5,
            )
            await pair.lns.start(s_lns)
            await pair2.lac.start(s_lac)
            await until(lambda: ipcp_up(pair2.lac_kernel), "carol again, old contents")
            await pair2.lac.close()
        finally:
            await pair.close()

    run(scenario)


def test_map_ending_table() -> None:
    assert map_ending(Ending.AUTH_FAILED) == (2, 6, "PPP authentication failed")
    assert map_ending(Ending.ECHO_FAILED)[0] == CdnResult.LOST_CARRIER
    assert map_ending(Ending.PEER_TERMINATED)[:2] == (CdnResult.LOST_CARRIER, None)
    assert map_ending(Ending.HANGUP)[0] == CdnResult.LOST_CARRIER
    assert map_ending(Ending.NEGOTIATION_FAILED) == (11, None, "PPP negotiation failed")
    # L2TPv3 has no Result Codes 6-11 (RFC 3931 5.4.2).
    assert map_ending(Ending.NEGOTIATION_FAILED, version=3) == (2, 6, "PPP negotiation failed")
    assert map_ending(Ending.LOCAL_FAILURE) == (4, None, "local failure")
    assert map_ending(Ending.INTERNAL_ERROR) == (2, None, "local failure")
    for ending in Ending:
        result, _, message = map_ending(ending, version=3)
        assert result not in range(6, 12) and message


def test_dispatching_backend_routes_by_options(tmp_path: Path) -> None:
    async def scenario() -> None:
        pppd, builtin = NullSessionBackend(), NullSessionBackend()
        dispatch = DispatchingBackend(pppd=pppd, builtin=builtin)
        a, b = socket_pair()
        s1, _ = backend_session(a, lns=True, options=lns_options(tmp_path), sid=1)
        s2, _ = backend_session(b, lns=True, options=None, sid=2)
        assert s2.options.builtin_ppp is None
        await dispatch.start(s1)
        await dispatch.start(s2)
        assert list(builtin.started) == [s1.key] and list(pppd.started) == [s2.key]
        # The choice sticks even if the options object changed since (a reload).
        await dispatch.stop(replace(s1, options=SessionOptions()))
        await dispatch.stop(s2)
        await dispatch.stop(s2)
        assert builtin.stopped == [s1.key] and pppd.stopped == [s2.key]
        await dispatch.close()
        a.close()
        b.close()

    run(scenario)


@pytest.mark.allow_internal_errors
def test_a_bug_ends_only_its_session_with_a_general_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair()

        def broken(*args: object) -> None:
            raise RuntimeError("bug in the device layer")

        pair.lns_kernel.set_mru = broken  # type: ignore[method-assign,assignment]
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            await until(lambda: pair.lns_reported.downs, "LNS down")
            assert pair.lns_reported.downs == [(CdnResult.GENERAL_ERROR, None, "local failure")]
            await until(lambda: not pair.lns_kernel.open_fds, "released")
        finally:
            await pair.close()

    run(scenario)


def test_a_prepared_lns_link_keeps_the_lacs_first_frame_until_it_starts(tmp_path: Path) -> None:
    """Issue 17, the LNS side: ``prepare`` attaches the channel without reading it or
    sending anything; the LAC's first Configure-Request (sent at once, no connect delay)
    waits in the channel's queue, and once ``start`` (at the ICCN) reads it, LCP opens
    without the LAC's 3 s restart timer (RFC 1661 4.6) having to resend it."""

    async def scenario() -> None:
        pair = make_pair()
        try:
            a, b = socket_pair()
            lns_session, _ = backend_session(a, lns=True, options=lns_options(tmp_path))
            lac_session, _ = backend_session(b, lns=False, options=lac_options(connect_delay=0))
            await pair.lns.prepare(lns_session)
            (link,) = pair.lns.links.values()
            assert link.channel is not None and link.started_at is None
            await pair.lac.start(lac_session)
            await until(lambda: pair.lac.counters.frames_out >= 1, "the LAC's first frame")
            assert pair.lns.counters.frames_out == pair.lns.counters.frames_in == 0
            assert pair.lns.counters.started == 0
            established = replace(lns_session, info=replace(lns_session.info, tx_connect_speed=9))
            await pair.lns.start(established)
            assert pair.lns.links[lns_session.key] is link and link.session is established
            await until(lambda: ipcp_up(pair.lns_kernel) and ipcp_up(pair.lac_kernel), "IPCP")
            lac_link = pair.lac.links[lac_session.key]
            assert lac_link.lcp_up_after is not None and lac_link.lcp_up_after < 2.0
            assert link.heard_after is not None and link.heard_after < 0.5  # it was waiting
            assert pair.lac.counters.frames_out >= 1 and pair.lns.counters.started == 1
        finally:
            await pair.close()

    run(scenario)


def test_stopping_a_prepared_link_releases_it_at_once(tmp_path: Path) -> None:
    """A call that ends before its ICCN (the LAC's CDN): no LCP to terminate, so no wait
    (terminate_wait is an hour here) and no frame; every fd is closed."""

    async def scenario() -> None:
        kernel = FakePppKernel()
        backend = BuiltinPppBackend(kernel=kernel, hostname="lns", terminate_wait=3600)
        told: list[str] = []

        class Observer:  # a call the LAC abandoned is no Tunnel-Link-Reject of ours
            def session_up(self, view: object) -> None:
                told.append("up")

            async def session_down(self, view: object, ending: object) -> None:
                told.append("down")

            def session_failed(self, view: object, ending: object) -> None:
                told.append("failed")

        backend.observer = Observer()
        a, b = socket_pair()
        session, dataplane = backend_session(a, lns=True, options=lns_options(tmp_path))
        await backend.prepare(session)
        assert dataplane.opened == 1 and kernel.open_fds
        await backend.stop(session)
        assert not kernel.open_fds and not backend.links
        assert told == []
        assert backend.counters.started == backend.counters.stopped == 0
        assert backend.counters.frames_out == 0
        assert b.recv(100) == b""  # the socket's end, and no frame before it
        b.close()
        await backend.close()

    run(scenario)


def test_dispatching_backend_prepares_only_the_builtin(tmp_path: Path) -> None:
    async def scenario() -> None:
        kernel = FakePppKernel()
        builtin = BuiltinPppBackend(kernel=kernel, hostname="lns")
        pppd = NullSessionBackend()
        dispatch = DispatchingBackend(pppd=pppd, builtin=builtin)
        a, b = socket_pair()
        session, _ = backend_session(a, lns=True, options=lns_options(tmp_path))
        await dispatch.prepare(session)
        assert session.key in builtin.links
        plain, _ = backend_session(b, lns=True, options=None, sid=5)
        await dispatch.prepare(plain)  # pppd has nothing to prepare
        assert pppd.started == {}
        await dispatch.stop(session)
        assert not builtin.links and not kernel.open_fds
        b.close()
        await builtin.close()

    run(scenario)


def test_endings_keep_only_the_last_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """How sessions ended is kept for the last ENDED_KEPT of them only, oldest forgotten
    first (a session key ended again is the newest): a daemon's record of every session
    it ever ended grew by one entry per call for ever."""
    monkeypatch.setattr(backend_module, "ENDED_KEPT", 3)
    kernel = FakePppKernel()
    backend = BuiltinPppBackend(kernel=kernel, hostname="lac", terminate_wait=0.01)

    async def one(sid: int) -> tuple[int, int]:
        a, b = socket_pair()
        session, _ = backend_session(a, lns=False, options=lac_options(), sid=sid)
        try:
            await backend.start(session)
            await backend.stop(session)
        finally:
            b.close()
        return session.key

    async def scenario() -> None:
        keys = [await one(sid) for sid in range(1, 6)]
        assert list(backend.endings) == keys[2:]
        assert await one(3) == keys[2]
        assert list(backend.endings) == [keys[3], keys[4], keys[2]]
        assert not backend.links and not kernel.open_fds
        await backend.close()

    run(scenario)


def test_ended_sessions_forget_the_oldest() -> None:
    ended: EndedSessions[str] = EndedSessions(2)
    ended[(1, 1)] = "a"
    ended[(1, 2)] = "b"
    ended[(1, 1)] = "c"  # again: now the newest
    ended[(1, 3)] = "d"
    assert ended == {(1, 1): "c", (1, 3): "d"}
    assert EndedSessions().limit == ENDED_KEPT


def test_null_backend_keeps_only_the_last_stopped_sessions() -> None:
    """The daemons run the null backend on the null data plane for their whole life:
    its record of stopped sessions must not grow by one per call for ever."""
    backend = NullSessionBackend()

    async def scenario() -> None:
        for sid in range(ENDED_KEPT + 10):
            a, b = socket_pair()
            b.close()
            session, _ = backend_session(a, lns=True, options=None, sid=sid + 1)
            await backend.start(session)
            await backend.stop(session)
            a.close()

    run(scenario)
    assert len(backend.stopped) == ENDED_KEPT
    assert backend.stopped[0] == (10, 11) and backend.stopped[-1] == (10, ENDED_KEPT + 10)
    assert not backend.started
