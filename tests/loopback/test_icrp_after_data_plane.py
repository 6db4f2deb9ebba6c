"""Issue 17, the LNS side: a call answered with built-in PPP gets its kernel session and PPP
channel (the backend's ``prepare``) before its ICRP leaves, so the LAC's first LCP frame,
sent right after its ICCN, finds them; the LNS's own PPP (``start``) begins only at the
ICCN. A failure on the way is CDN 2 "local failure" to the LAC, never an ICRP."""

from __future__ import annotations

import asyncio

import pytest

from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.protocol.constants import CdnResult
from l2tp.protocol.events import CallKind, CallParams, Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.session_fsm import SessionState
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.backend import BackendSession, NullSessionBackend, SessionOptions
from l2tp.runtime.control import L2tpContext, SessionFailed
from l2tp.runtime.endpoints import ListenOptions
from l2tp.runtime.ppp_hooks import BuiltinPppOptions

from .test_bringup_batches import RefusingDataPlane

pytestmark = pytest.mark.loopback

BUILTIN = SessionOptions(name="lns", builtin_ppp=BuiltinPppOptions())
LNS_CONFIG = ListenerConfig(tunnel=TunnelConfig(role=Role.LNS))


class PreparingBackend(NullSessionBackend):
    """Records ``prepare`` and ``start`` with what the LNS's kernel held at each; ``prepare``
    waits for ``gate`` (a slow channel) or raises (``fail``)."""

    def __init__(self, dataplane: AsyncNullDataPlane, *, fail: bool = False) -> None:
        super().__init__()
        self.dataplane = dataplane
        self.gate = asyncio.Event()
        self.fail = fail
        self.prepared: dict[tuple[int, int], BackendSession] = {}
        self.log: list[str] = []

    async def prepare(self, session: BackendSession) -> None:
        assert (session.key in self.dataplane.sessions) is True  # the kernel session first
        self.log.append("prepare")
        await self.gate.wait()
        if self.fail:
            raise OSError("no /dev/ppp")
        self.prepared[session.key] = session

    async def start(self, session: BackendSession) -> None:
        self.log.append("start")
        await super().start(session)

    async def stop(self, session: BackendSession) -> None:
        self.prepared.pop(session.key, None)
        self.log.append("stop")
        await super().stop(session)


async def _lns(
    fail: bool = False, dataplane: AsyncNullDataPlane | None = None
) -> tuple[L2tpContext, PreparingBackend, AsyncNullDataPlane]:
    dp = dataplane or AsyncNullDataPlane()
    backend = PreparingBackend(dp, fail=fail)
    return L2tpContext(backend=backend, dataplane=dp), backend, dp


def test_the_icrp_waits_for_the_lns_channel_and_ppp_starts_at_the_iccn() -> None:
    async def scenario() -> None:
        lns_ctx, backend, dp = await _lns()
        async with lns_ctx as lns, L2tpContext(dataplane=AsyncNullDataPlane()) as lac:
            listener = await lns.listen(
                ("127.0.0.1", 0), config=LNS_CONFIG, options=ListenOptions(ppp=BUILTIN)
            )
            tunnel = await lac.open_tunnel(listener.address, config=TunnelConfig(role=Role.LAC))
            call = tunnel.place_call(CallParams(sequencing_required=True))
            while not backend.log:  # the ICRQ came: kernel session made, channel opening
                await asyncio.sleep(0.005)
            (lns_tunnel,) = listener.tunnels.values()
            (answer,) = lns_tunnel.sessions.values()
            assert answer.params.wait_data_plane and answer.kernel
            held = lns_tunnel.tunnel.sessions.require(answer.session_id)
            assert held.state is SessionState.WAIT_DATA_PLANE
            await asyncio.sleep(0.3)  # many round trips: no ICRP may have left meanwhile
            lac_call = tunnel.tunnel.sessions.require(call.session_id)
            assert lac_call.state is SessionState.WAIT_REPLY
            assert backend.log == ["prepare"] and not call.kernel
            backend.gate.set()
            info = await call.wait_established()
            lns_info = await answer.wait_established()
            assert backend.log == ["prepare", "start"]
            (started,) = backend.started.values()
            # start() gets the established call (the ICCN's AVPs), prepare() the agreed IDs.
            assert started.info.kind is CallKind.LNS_INCOMING
            assert started.info.session_id == info.peer_session_id == lns_info.session_id
            assert started.info.sequencing_required
            assert not backend.prepared[started.key].info.sequencing_required
            # Made before the ICCN (without sequencing), the kernel session takes the
            # sequencing the ICCN asked for in place (RFC 2661 5.4).
            assert not dp.sessions[started.key].send_seq and dp.sessions[started.key].lns_mode
            modified = [args for name, args in dp.calls if name == "modify_session"]
            assert modified == [(*started.key, {"send_seq": True, "recv_seq": True})]
            await tunnel.close()
            while backend.prepared:
                await asyncio.sleep(0.005)
            assert backend.log == ["prepare", "start", "stop"]

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_call_that_ends_before_its_icrp_releases_the_prepared_channel() -> None:
    """The LAC gives up (CDN) while the LNS's channel is still being prepared: no ICRP, no
    start, and the prepared backend session is stopped (its fds released)."""

    async def scenario() -> None:
        lns_ctx, backend, dp = await _lns()
        async with lns_ctx as lns, L2tpContext(dataplane=AsyncNullDataPlane()) as lac:
            listener = await lns.listen(
                ("127.0.0.1", 0), config=LNS_CONFIG, options=ListenOptions(ppp=BUILTIN)
            )
            tunnel = await lac.open_tunnel(listener.address, config=TunnelConfig(role=Role.LAC))
            call = tunnel.place_call()
            while not backend.log:
                await asyncio.sleep(0.005)
            tunnel.close_session(call.session_id, result=CdnResult.ADMINISTRATIVE)
            while listener.session_count:
                await asyncio.sleep(0.005)
            backend.gate.set()
            while "stop" not in backend.log:
                await asyncio.sleep(0.005)
            assert backend.log == ["prepare", "stop"] and not backend.prepared
            assert dp.sessions == {}  # the early kernel session is deleted too

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_an_iccn_after_the_backends_were_stopped_starts_no_ppp() -> None:
    """A daemon shutting down stops every backend, prepared ones too, before its StopCCN
    (``stop_backends``); an ICCN that arrives after that must not start PPP on the link
    being released (seen in the kernel tier's churn test as "built-in PPP already
    running" errors at SIGTERM)."""

    async def scenario() -> None:
        lns_ctx, backend, _dp = await _lns()
        async with lns_ctx as lns, L2tpContext(dataplane=AsyncNullDataPlane()) as lac:
            listener = await lns.listen(
                ("127.0.0.1", 0), config=LNS_CONFIG, options=ListenOptions(ppp=BUILTIN)
            )
            tunnel = await lac.open_tunnel(listener.address, config=TunnelConfig(role=Role.LAC))
            call = tunnel.place_call()
            while not backend.log:  # prepare under way
                await asyncio.sleep(0.005)
            (lns_tunnel,) = listener.tunnels.values()
            stops = lns_tunnel.stop_backends()
            assert len(stops) == 1
            backend.gate.set()  # prepare finishes: ICRP, then the LAC's ICCN
            await call.wait_established()
            await asyncio.gather(*stops)
            await asyncio.sleep(0.2)  # the ICCN handled by the LNS
            assert backend.log == ["prepare", "stop"] and not backend.started

    asyncio.run(asyncio.wait_for(scenario(), 30))


@pytest.mark.parametrize("where", ["backend", "kernel"])
def test_a_data_plane_failure_before_the_icrp_is_a_cdn_2(where: str) -> None:
    async def scenario() -> None:
        dp = RefusingDataPlane() if where == "kernel" else AsyncNullDataPlane()
        lns_ctx, backend, _ = await _lns(fail=True, dataplane=dp)
        backend.gate.set()
        async with lns_ctx as lns, L2tpContext(dataplane=AsyncNullDataPlane()) as lac:
            listener = await lns.listen(
                ("127.0.0.1", 0), config=LNS_CONFIG, options=ListenOptions(ppp=BUILTIN)
            )
            tunnel = await lac.open_tunnel(listener.address, config=TunnelConfig(role=Role.LAC))
            call = tunnel.place_call()
            with pytest.raises(SessionFailed):
                await call.wait_established()
            closed = await call.wait_closed()
            assert closed.by_peer and not closed.was_established
            assert closed.reason is not None
            assert closed.reason.result == CdnResult.GENERAL_ERROR
            assert closed.reason.message == "local failure"  # never our error text
            assert backend.log == ([] if where == "kernel" else ["prepare"])
            assert backend.started == {}
            assert tunnel.ready and tunnel.closed is None

    asyncio.run(asyncio.wait_for(scenario(), 30))
