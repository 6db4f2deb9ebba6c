"""LnsPool over real UDP on 127.0.0.1 with the null data plane: several in-process LNS
listeners, sessions spread by preference and weight, and each failover trigger (no
answer, StopCCN, CDN, a tunnel lost) moving the sessions to the other LNSes, with no
session placed twice and none lost."""

from __future__ import annotations

import asyncio
import math
import random
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from l2tp.protocol.constants import StopCcnResult
from l2tp.protocol.events import Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.backend import BackendSession, NullSessionBackend
from l2tp.runtime.control import L2tpContext, Listener, ListenOptions
from l2tp.runtime.handles import TunnelHandle
from l2tp.runtime.lns_failover import LnsPool, PoolCall, RetryPolicy
from l2tp.runtime.lns_selection import LnsEndpoint, SelectionPolicy
from l2tp.runtime.session_handle import SessionHandle
from tests.helpers import until

pytestmark = pytest.mark.loopback
T = TypeVar("T")
FAST = TransportConfig(initial_timeout=0.1, max_timeout=0.2, max_retries=2, hello_interval=0.3)
RETRY = RetryPolicy(first=0.05, cap=0.2)


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(main())


def lac_config() -> TunnelConfig:
    return TunnelConfig(role=Role.LAC, host_name="lac", transport=FAST)


def lns_config(secret: bytes | None = None) -> ListenerConfig:
    tunnel = TunnelConfig(role=Role.LNS, host_name="lns", transport=FAST, secret=secret)
    return ListenerConfig(tunnel=tunnel, max_tunnels=1024)


def endpoint(listener: Listener | tuple[str, int], **kw: Any) -> LnsEndpoint:
    host, port = listener.address if isinstance(listener, Listener) else listener
    return LnsEndpoint(address=host, port=port, **kw)


def blackhole() -> socket.socket:
    """A bound UDP port that never answers: an LNS that is down (no ICMP either)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def calls(n: int) -> list[PoolCall]:
    return [PoolCall(name=f"s{i}") for i in range(n)]


class Audit:
    """Samples the LAC's sessions at every one of its events: the most sessions the LAC
    ever held at once (pending, up or closing) must not exceed the pool's calls, or a
    call was placed a second time while its first session still existed."""

    def __init__(self, ctx: L2tpContext) -> None:
        self.ctx = ctx
        self.most = 0
        self._sub = ctx.events()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for _ in self._sub:
            self.most = max(self.most, sum(len(t.sessions) for t in self.ctx.tunnels.values()))

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def established(pool: LnsPool) -> dict[int, int]:
    """Established calls per endpoint index."""
    return {i: p["established"] for i, p in enumerate(pool.peers())}


async def settled(pool: LnsPool, n: int, where: dict[int, int], what: str) -> None:
    """Every call up, ``where`` (endpoint index -> count) holding them, nothing pending."""

    def done() -> bool:
        up = [h for h in pool.placed().values() if h.established]
        return len(up) == n and established(pool) == where

    await until(done, what, timeout=20.0)


def assert_whole(pool: LnsPool, n: int, lns: list[Listener]) -> None:
    """None lost, none twice: n calls, n distinct sessions, and the LNSes hold n too."""
    placed = pool.placed()
    assert len(placed) == n
    ids = {(h.tunnel.tunnel_id, h.session_id) for h in placed.values()}
    assert len(ids) == n
    assert sum(lst.session_count for lst in lns) == n


def make_pool(ctx: L2tpContext, endpoints: list[LnsEndpoint], n: int, **kw: Any) -> LnsPool:
    policy = kw.pop("policy", SelectionPolicy(denylist_time=60.0))
    return LnsPool(
        ctx,
        endpoints,
        calls(n),
        config=lac_config(),
        policy=policy,
        retry=kw.pop("retry", RETRY),
        rng=random.Random(kw.pop("seed", 1)),
        name="t1",
        **kw,
    )


def test_thousand_sessions_split_by_weight_over_three_lnses() -> None:
    """1,000 sessions over three LNSes weighted 1:2:3, through real tunnels: the split
    passes Pearson's chi-square test at alpha = 0.001 with 2 degrees of freedom (critical
    value -2 ln 0.001 = 13.82; a correct selector fails with probability 0.1% per seed;
    the seed is fixed, so the outcome is deterministic), each LNS holds exactly the
    sessions the LAC placed on it, in one tunnel per LNS."""

    async def scenario() -> None:
        async with L2tpContext() as lns, L2tpContext() as lac:
            listeners = [await lns.listen(("127.0.0.1", 0), config=lns_config()) for _ in range(3)]
            eps = [endpoint(lst, weight=w) for lst, w in zip(listeners, (1, 2, 3), strict=True)]
            pool = make_pool(lac, eps, 1000, seed=3)
            pool.start()
            await until(
                lambda: sum(1 for h in pool.placed().values() if h.established) == 1000,
                "1,000 sessions up",
                timeout=30.0,
            )
            observed = [p["established"] for p in pool.peers()]
            expected = [1000 * w / 6 for w in (1, 2, 3)]
            chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
            assert chi2 < -2 * math.log(0.001), observed
            assert [lst.session_count for lst in listeners] == observed
            assert [len(lst.tunnels) for lst in listeners] == [1, 1, 1]
            assert_whole(pool, 1000, listeners)
            await pool.stop()
            await until(lambda: not lac.tunnels, "the pool's tunnels closed")

    run(scenario)


def test_preference_levels_and_no_answer_failover() -> None:
    """The preferred LNS never answers: its SCCRQ retransmissions run out, it is
    denylisted (no-answer), and every session comes up on the backup level."""

    async def scenario() -> None:
        dead = blackhole()
        async with L2tpContext() as lns, L2tpContext() as lac:
            backup = await lns.listen(("127.0.0.1", 0), config=lns_config())
            unused = await lns.listen(("127.0.0.1", 0), config=lns_config())
            eps = [
                endpoint(dead.getsockname(), preference=0),
                endpoint(backup, preference=10),
                endpoint(unused, preference=20),
            ]
            audit = Audit(lac)
            pool = make_pool(lac, eps, 10)
            pool.start()
            await settled(pool, 10, {0: 0, 1: 10, 2: 0}, "all sessions on the backup")
            a, b, c = pool.peers()
            assert (a["state"], a["reason"], a["result"]) == ("denylisted", "no-answer", None)
            assert a["denylisted_for"] is not None and 50 < a["denylisted_for"] <= 60
            assert a["denylisted_total"] == {"no-answer": 1}
            assert (b["state"], b["sessions"], c["state"]) == ("up", 10, "idle")
            assert unused.session_count == 0 and not unused.tunnels
            assert_whole(pool, 10, [backup, unused])
            assert audit.most <= 10
            await audit.close()
            await pool.stop()
        dead.close()

    run(scenario)


@pytest.mark.parametrize(
    "result,denied",
    [(StopCcnResult.SHUTTING_DOWN, True), (StopCcnResult.GENERAL_REQUEST, False)],
)
def test_stopccn_from_the_lns(result: StopCcnResult, denied: bool) -> None:
    """The preferred LNS closes its tunnel. StopCCN 6 (in denylist_results): denylisted,
    the sessions move to the backup. StopCCN 1 (an orderly close, not listed): not
    denylisted, the sessions are placed again after the back-off, on the same LNS."""

    async def scenario() -> None:
        async with L2tpContext() as lns, L2tpContext() as lac:
            first = await lns.listen(("127.0.0.1", 0), config=lns_config())
            backup = await lns.listen(("127.0.0.1", 0), config=lns_config())
            eps = [endpoint(first, preference=0), endpoint(backup, preference=1)]
            audit = Audit(lac)
            pool = make_pool(lac, eps, 6)
            pool.start()
            await settled(pool, 6, {0: 6, 1: 0}, "all sessions on the preferred LNS")
            (lns_side,) = first.tunnels.values()
            old = set(pool.placed().values())
            lns_side.begin_close(result, message="bye")
            if denied:
                await settled(pool, 6, {0: 0, 1: 6}, "all sessions moved to the backup")
                a = pool.peers()[0]
                assert (a["state"], a["reason"], a["result"]) == ("denylisted", "stopccn", 6)
            else:
                await until(lambda: not (old & set(pool.placed().values())), "new sessions")
                await settled(pool, 6, {0: 6, 1: 0}, "all sessions back on the preferred LNS")
                a = pool.peers()[0]
                assert a["state"] == "up" and a["denylisted_total"] == {}
            assert_whole(pool, 6, [first, backup])
            assert audit.most <= 6
            await audit.close()
            await pool.stop()

    run(scenario)


def test_wrong_secret_denylists_that_lns() -> None:
    """One LNS has another secret: its tunnel fails authentication (StopCCN 4) and it is
    denylisted; the sessions use the other LNS of the same level."""

    async def scenario() -> None:
        async with L2tpContext() as lns, L2tpContext() as lac:
            wrong = await lns.listen(("127.0.0.1", 0), config=lns_config(secret=b"other"))
            right = await lns.listen(("127.0.0.1", 0), config=lns_config(secret=b"s3cret"))
            eps = [endpoint(wrong, secret="s3cret"), endpoint(right, secret="s3cret")]
            pool = make_pool(lac, eps, 8, seed=5)
            pool.start()
            await settled(pool, 8, {0: 0, 1: 8}, "all sessions on the LNS with our secret")
            a = pool.peers()[0]
            assert a["state"] == "denylisted" and a["result"] == StopCcnResult.NOT_AUTHORIZED
            # We check the LNS's challenge response first (RFC 2661 5.1.1): our refusal.
            assert a["reason"] == "refused"
            assert_whole(pool, 8, [wrong, right])
            await pool.stop()

    run(scenario)


def test_cdn_no_facilities_denylists_and_moves_the_refused_calls() -> None:
    """The preferred LNS takes two sessions and refuses more (CDN 4, in denylist_results):
    it is denylisted, its two sessions stay, the refused calls come up on the backup."""

    async def scenario() -> None:
        async with L2tpContext() as lns, L2tpContext() as lac:
            small = await lns.listen(
                ("127.0.0.1", 0), config=lns_config(), options=ListenOptions(max_sessions=2)
            )
            backup = await lns.listen(("127.0.0.1", 0), config=lns_config())
            eps = [endpoint(small, preference=0), endpoint(backup, preference=1)]
            audit = Audit(lac)
            pool = make_pool(lac, eps, 5)
            pool.start()
            await settled(pool, 5, {0: 2, 1: 3}, "two on the small LNS, three on the backup")
            a = pool.peers()[0]
            assert (a["state"], a["reason"], a["result"]) == ("denylisted", "cdn", 4)
            assert a["denylisted_total"] == {"cdn": 3}
            assert_whole(pool, 5, [small, backup])
            assert audit.most <= 5
            await audit.close()
            await pool.stop()

    run(scenario)


def test_established_tunnel_lost() -> None:
    """The preferred LNS vanishes without a word (its tunnel dropped, nothing sent): our
    HELLO goes unacknowledged, the tunnel is lost, the LNS denylisted (tunnel-lost) and
    the sessions placed on the other LNS."""

    async def scenario() -> None:
        async with L2tpContext() as lns, L2tpContext() as lac:
            first = await lns.listen(("127.0.0.1", 0), config=lns_config())
            backup = await lns.listen(("127.0.0.1", 0), config=lns_config())
            eps = [endpoint(first, preference=0), endpoint(backup, preference=1)]
            audit = Audit(lac)
            pool = make_pool(lac, eps, 6)
            pool.start()
            await settled(pool, 6, {0: 6, 1: 0}, "all sessions on the preferred LNS")
            (lns_side,) = first.tunnels.values()
            lns_side.abandon()  # gone: no StopCCN, no answer to anything any more
            await settled(pool, 6, {0: 0, 1: 6}, "all sessions moved to the backup")
            a = pool.peers()[0]
            assert (a["state"], a["reason"]) == ("denylisted", "tunnel-lost")
            assert backup.session_count == 6
            assert audit.most <= 6
            await audit.close()
            await pool.stop()

    run(scenario)


def test_denylist_expiry_and_revert() -> None:
    """``revert``: the preferred LNS is down, the sessions go to the backup; it comes
    back, its denial expires, the pool probes it (a tunnel with no session), and once
    that tunnel is up moves every session back and closes the idle backup tunnel."""

    async def scenario() -> None:
        dead = blackhole()
        port = dead.getsockname()[1]
        async with L2tpContext() as lns, L2tpContext() as lac:
            backup = await lns.listen(("127.0.0.1", 0), config=lns_config())
            eps = [endpoint(("127.0.0.1", port), preference=0), endpoint(backup, preference=1)]
            audit = Audit(lac)
            policy = SelectionPolicy(denylist_time=1.0, revert=True)
            pool = make_pool(lac, eps, 4, policy=policy)
            pool.start()
            await settled(pool, 4, {0: 0, 1: 4}, "all sessions on the backup")
            assert pool.peers()[0]["state"] == "denylisted"
            dead.close()
            returned = await lns.listen(("127.0.0.1", port), config=lns_config())
            await settled(pool, 4, {0: 4, 1: 0}, "all sessions back on the preferred LNS")
            await until(lambda: not backup.tunnels, "the idle backup tunnel closed")
            assert [p["state"] for p in pool.peers()] == ["up", "idle"]
            assert_whole(pool, 4, [returned, backup])
            assert audit.most <= 4
            await audit.close()
            await pool.stop()

    run(scenario)


def test_max_sessions_and_assignment_ids_share_tunnels() -> None:
    """Two entries for one LNS with different assignment IDs are two tunnels to it, each
    shared by its sessions (RFC 2868 3.7); each takes at most three sessions, the rest
    spill to the next level."""

    async def scenario() -> None:
        async with L2tpContext() as lns, L2tpContext() as lac:
            big = await lns.listen(("127.0.0.1", 0), config=lns_config())
            spill = await lns.listen(("127.0.0.1", 0), config=lns_config())
            eps = [
                endpoint(big, assignment_id="x", max_sessions=3),
                endpoint(big, assignment_id="y", max_sessions=3),
                endpoint(spill, preference=1),
            ]
            pool = make_pool(lac, eps, 8)
            pool.start()
            await settled(pool, 8, {0: 3, 1: 3, 2: 2}, "3 + 3 on the big LNS, 2 spilled")
            assert len(big.tunnels) == 2 and len(spill.tunnels) == 1
            tunnels = {pool.tunnel_of(f"s{i}") for i in range(8)}
            assert len(tunnels) == 3
            assert_whole(pool, 8, [big, spill])
            await pool.stop()

    run(scenario)


def test_without_redial_calls_are_given_up_when_no_lns_is_left() -> None:
    async def scenario() -> None:
        dead = blackhole()
        async with L2tpContext() as lac:
            pool = make_pool(
                lac, [endpoint(dead.getsockname())], 3, retry=RetryPolicy(redial=False)
            )
            pool.start()
            await asyncio.wait_for(pool.done.wait(), 10.0)
            assert all(s.gave_up for s in pool.slots.values())
            assert pool.placed() == {} and not lac.tunnels
            await pool.stop()
        dead.close()

    run(scenario)


class GatedBackend(NullSessionBackend):
    """A backend whose sessions stop only when the test opens the gate: a real data
    plane's clean-up (pppd, the built-in PPP's Terminate wait, kernel deletes) takes a
    second or more, and the pool must behave during it."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.stopping = 0

    async def stop(self, session: BackendSession) -> None:
        self.stopping += 1
        try:
            await self.gate.wait()
        finally:
            self.stopping -= 1
        await super().stop(session)


def test_a_lost_lns_is_denylisted_before_its_clean_up_ends() -> None:
    """The preferred LNS vanishes while its sessions' backends take their time to stop:
    the endpoint is denylisted as soon as the tunnel is lost (found on the real kernel:
    the denial waited for the built-in PPP's clean-up, and the endpoint stayed "up" and
    choosable meanwhile), and its sessions are placed on the backup only once that
    clean-up is done (never twice)."""

    async def scenario() -> None:
        backend = GatedBackend()
        async with L2tpContext() as lns, L2tpContext(backend=backend, hangup_after=0) as lac:
            first = await lns.listen(("127.0.0.1", 0), config=lns_config())
            backup = await lns.listen(("127.0.0.1", 0), config=lns_config())
            eps = [endpoint(first, preference=0), endpoint(backup, preference=1)]
            pool = make_pool(lac, eps, 3)
            pool.start()
            await settled(pool, 3, {0: 3, 1: 0}, "all sessions on the preferred LNS")
            (lns_side,) = first.tunnels.values()
            lns_side.abandon()
            await until(lambda: backend.stopping == 3, "the three backends stopping")
            a, b = pool.peers()
            assert (a["state"], a["reason"], a["sessions"]) == ("denylisted", "tunnel-lost", 3)
            assert (b["state"], b["sessions"]) == ("idle", 0) and not backup.tunnels
            backend.gate.set()
            await settled(pool, 3, {0: 0, 1: 3}, "all sessions moved to the backup")
            assert_whole(pool, 3, [backup])
            await pool.stop()

    run(scenario)


def test_no_call_is_placed_on_a_tunnel_that_ended() -> None:
    """An LNS closes its tunnel in order (StopCCN 1: not denylisted) while a call it
    refused earlier (CDN 4, not denylisting here) waits to be placed again. That call
    is placed on the same LNS during the tunnel's clean-up, and must wait for the next
    tunnel: before, the pool placed it on the closed one, the sans-IO tunnel refused
    the session and the exception ended the pool's pump (no call was ever placed
    again)."""

    async def scenario() -> None:
        backend = GatedBackend()
        async with L2tpContext() as lns, L2tpContext(backend=backend, hangup_after=0) as lac:
            small = await lns.listen(
                ("127.0.0.1", 0), config=lns_config(), options=ListenOptions(max_sessions=2)
            )
            policy = SelectionPolicy(denylist_time=60.0, denylist_cdn=frozenset())
            retry = RetryPolicy(first=0.3, cap=0.3)
            pool = make_pool(lac, [endpoint(small)], 3, policy=policy, retry=retry)
            pool.start()
            await settled(pool, 2, {0: 2}, "two sessions up, the third refused")

            def refused() -> list[str]:
                return [n for n, s in pool.slots.items() if s.handle is None]

            await until(lambda: len(refused()) == 1, "the third call waiting to retry")
            (waiting,) = refused()
            (lns_side,) = small.tunnels.values()
            lns_side.begin_close(StopCcnResult.GENERAL_REQUEST, message="maintenance")
            await until(lambda: backend.stopping == 2, "the two backends stopping")
            slot = pool.slots[waiting]
            await until(lambda: slot.index == 0, "the waiting call placed during the clean-up")
            assert slot.handle is None  # not on the closed tunnel
            assert pool._pump is not None and not pool._pump.done()
            assert pool.peers()[0]["state"] == "idle"
            backend.gate.set()
            await settled(pool, 2, {0: 2}, "two sessions up again in a new tunnel")
            assert pool._pump is not None and not pool._pump.done()
            assert len(small.tunnels) == 1
            await pool.stop()

    run(scenario)


def test_a_call_the_tunnel_refuses_to_place_is_retried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``place_call`` raising (e.g. no session ID left) fails that one call, loudly, and
    it is placed again after the back-off; the pool goes on (it used to end its pump)."""
    original = TunnelHandle.place_call
    refused: list[int] = []

    def place_call(self: TunnelHandle, *args: Any, **kwargs: Any) -> SessionHandle:
        if not refused:
            refused.append(self.tunnel_id)
            raise RuntimeError("no session ID left")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TunnelHandle, "place_call", place_call)

    async def scenario() -> None:
        async with L2tpContext() as lns, L2tpContext() as lac:
            listener = await lns.listen(("127.0.0.1", 0), config=lns_config())
            pool = make_pool(lac, [endpoint(listener)], 3)
            pool.start()
            await settled(pool, 3, {0: 3}, "every call up, the refused one included")
            assert refused and pool._pump is not None and not pool._pump.done()
            assert_whole(pool, 3, [listener])
            await pool.stop()

    run(scenario)
    assert "could not be placed" in caplog.text and "no session ID left" in caplog.text
