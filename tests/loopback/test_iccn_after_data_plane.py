"""Issue 17: a call we place with built-in PPP sends its ICCN only once its kernel session
and PPP backend are up (``CallParams.wait_data_plane``), so the LNS's first LCP frame, sent
as soon as it has the ICCN, finds them; a failure on the way is a CDN, never a hang."""

from __future__ import annotations

import asyncio

import pytest

from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.protocol.constants import CdnResult
from l2tp.protocol.events import Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.backend import BackendSession, NullSessionBackend, SessionOptions
from l2tp.runtime.control import L2tpContext, SessionFailed
from l2tp.runtime.ppp_hooks import BuiltinPppOptions

from .test_bringup_batches import RefusingDataPlane

pytestmark = pytest.mark.loopback

BUILTIN = SessionOptions(name="s", builtin_ppp=BuiltinPppOptions(user="u", password="p"))


class GatedBackend(NullSessionBackend):
    """A backend whose start waits for ``gate`` (a slow data plane) or raises (``fail``)."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.fail = fail
        self.starting: list[tuple[int, int]] = []

    async def start(self, session: BackendSession) -> None:
        self.starting.append(session.key)
        await self.gate.wait()
        if self.fail:
            raise OSError("no /dev/ppp")
        await super().start(session)


async def _pair(
    lac_backend: GatedBackend, lac_dp: AsyncNullDataPlane | None = None
) -> tuple[L2tpContext, L2tpContext, NullSessionBackend]:
    lns_backend = NullSessionBackend()
    lns = L2tpContext(backend=lns_backend)
    lac = L2tpContext(backend=lac_backend, dataplane=lac_dp or AsyncNullDataPlane())
    return lns, lac, lns_backend


def test_the_iccn_waits_for_the_lac_backend() -> None:
    async def scenario() -> None:
        lac_backend = GatedBackend()
        lns_ctx, lac_ctx, lns_backend = await _pair(lac_backend)
        async with lns_ctx as lns, lac_ctx as lac:
            listener = await lns.listen(
                ("127.0.0.1", 0), config=ListenerConfig(tunnel=TunnelConfig(role=Role.LNS))
            )
            tunnel = await lac.open_tunnel(listener.address, config=TunnelConfig(role=Role.LAC))
            call = tunnel.place_call(options=BUILTIN)
            assert call.params.wait_data_plane
            while not lac_backend.starting:  # the ICRP came: kernel session made, PPP starting
                await asyncio.sleep(0.005)
            assert call.kernel and not call.established
            await asyncio.sleep(0.3)  # many round trips: no ICCN may have left meanwhile
            assert lns_backend.started == {} and listener.session_count == 1
            lac_backend.gate.set()
            info = await call.wait_established()
            while not lns_backend.started:
                await asyncio.sleep(0.005)
            (lns_key,) = lns_backend.started
            assert lns_key[1] == info.peer_session_id
            assert lac_backend.started[tunnel.tunnel_id, call.session_id].info.peer_session_id
            # A pppd call (no builtin_ppp) is not held: its ICCN leaves with the ICRP's ack.
            plain = tunnel.place_call(options=SessionOptions(name="p"))
            assert not plain.params.wait_data_plane
            await tunnel.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


@pytest.mark.parametrize("where", ["backend", "kernel"])
def test_a_data_plane_failure_before_the_iccn_is_a_cdn_2(where: str) -> None:
    async def scenario() -> None:
        lac_backend = GatedBackend(fail=True)
        lac_backend.gate.set()
        dp = RefusingDataPlane() if where == "kernel" else AsyncNullDataPlane()
        lns_ctx, lac_ctx, lns_backend = await _pair(lac_backend, dp)
        async with lns_ctx as lns, lac_ctx as lac:
            listener = await lns.listen(
                ("127.0.0.1", 0), config=ListenerConfig(tunnel=TunnelConfig(role=Role.LNS))
            )
            tunnel = await lac.open_tunnel(listener.address, config=TunnelConfig(role=Role.LAC))
            call = tunnel.place_call(options=BUILTIN)
            with pytest.raises(SessionFailed):
                await call.wait_established()
            closed = await call.wait_closed()
            assert closed.reason is not None and closed.reason.result == CdnResult.GENERAL_ERROR
            assert not closed.by_peer and not closed.was_established
            # The LNS got the CDN (never an ICCN): its call is gone, nothing was started.
            while listener.session_count:
                await asyncio.sleep(0.005)
            assert lns_backend.started == {}
            key = (tunnel.tunnel_id, call.session_id)
            assert lac_backend.starting == ([] if where == "kernel" else [key])
            assert tunnel.ready and tunnel.closed is None

    asyncio.run(asyncio.wait_for(scenario(), 30))
