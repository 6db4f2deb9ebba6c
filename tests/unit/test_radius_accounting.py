"""The accounting engine with a fake clock and an in-memory client: Start/Interim/Stop,
interim timers, back-off and probing, per-session order, Acct-Delay-Time, replay after a
restart exactly once, tunnel records, counter read failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from l2tp.radius.accounting import AccountingEngine
from l2tp.radius.interface import Attribute
from l2tp.radius.records import (
    Counters,
    SessionDescription,
    SessionEnd,
    SessionIdAllocator,
    TunnelDescription,
)
from l2tp.radius.spool import Spool
from tests.unit.radius_fakes import T0, FakeClock, MemoryClient, run_ready, settle, status, value

TUNNEL = TunnelDescription(
    tunnel_id=10, peer_tunnel_id=20, client_endpoint="192.0.2.2", server_endpoint="192.0.2.1"
)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


def describe(n: int = 1, *, interval: float | None = None, at: float = T0) -> SessionDescription:
    return SessionDescription(
        acct_session_id=f"s{n}",
        user_name=f"user{n}",
        started_at=at,
        tunnel=TUNNEL,
        session_id=n,
        interim_interval=interval,
    )


@asynccontextmanager
async def engine_with(
    client: MemoryClient, clock: FakeClock, path: Path | None = None, **kw: object
) -> AsyncIterator[AccountingEngine]:
    spool = Spool(str(path) if path else None, fsync=False)
    engine = AccountingEngine(
        client,
        spool,
        clock,
        random=lambda: 0.0,  # jitter factor 0.5: deterministic delays
        ids=SessionIdAllocator(clock.time(), random_bits=lambda n: 1),
        **kw,  # type: ignore[arg-type]
    )
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()


class Reader:
    def __init__(self) -> None:
        self.counters = Counters()
        self.fail = False
        self.reads = 0

    async def __call__(self) -> Counters:
        self.reads += 1
        if self.fail:
            raise OSError("netlink: no such device")
        return self.counters


def test_start_and_stop_are_delivered_and_counted() -> None:
    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient()
        async with engine_with(client, clock) as engine:
            engine.session_started(describe())
            await settle(lambda: len(client.acked) == 1)
            assert status(client.acked[0]) == 1
            assert value(client.acked[0], "Acct-Delay-Time") == 0
            clock.advance(42)
            await engine.session_stopped("s1", SessionEnd.PEER_TERMINATED, Counters(10, 20, 1, 2))
            await settle(lambda: len(client.acked) == 2)
            stop = client.acked[1]
            assert status(stop) == 2
            assert value(stop, "Acct-Session-Time") == 42
            assert value(stop, "Acct-Terminate-Cause") == 1
            assert value(stop, "Acct-Input-Octets") == 10
            assert engine.spool.pending == {}
            c = engine.counters
            assert (c.starts, c.stops, c.requests, c.acknowledged, c.sessions) == (1, 1, 2, 2, 0)
            assert engine.spool.counters.delivered == 2
            # A Stop for a session that never started (e.g. auth failed) sends nothing.
            await engine.session_stopped("nope", SessionEnd.AUTH_FAILED)
            await run_ready()
            assert len(client.calls) == 2

    run(scenario)


def test_interim_updates_follow_the_interval_and_stop_ends_them() -> None:
    async def scenario() -> None:
        clock, client, reader = FakeClock(), MemoryClient(), Reader()
        async with engine_with(client, clock, interim_interval=300) as engine:
            engine.session_started(describe(interval=60), read_counters=reader.__call__)
            await settle(lambda: len(client.acked) == 1)
            clock.advance(59)
            await run_ready()
            assert len(client.calls) == 1  # not due yet
            reader.counters = Counters(input_octets=2**32 + 1, output_octets=5)
            clock.advance(1)
            await settle(lambda: len(client.acked) == 2)
            interim = client.acked[1]
            assert status(interim) == 3
            assert value(interim, "Acct-Session-Time") == 60
            assert value(interim, "Acct-Input-Gigawords") == 1
            assert value(interim, "Acct-Input-Octets") == 1
            clock.advance(60)
            await settle(lambda: len(client.acked) == 3)
            reader.counters = Counters(input_octets=99)
            await engine.session_stopped("s1", SessionEnd.ADMIN_CLOSE)  # counters read now
            await settle(lambda: len(client.acked) == 4)
            assert value(client.acked[3], "Acct-Input-Octets") == 99
            assert value(client.acked[3], "Acct-Terminate-Cause") == 6
            clock.advance(600)
            await run_ready()
            assert len(client.calls) == 4 and engine.counters.interims == 2

    run(scenario)


def test_configured_interval_applies_and_is_raised_to_the_minimum() -> None:
    async def scenario() -> None:
        clock, client, reader = FakeClock(), MemoryClient(), Reader()
        async with engine_with(client, clock, interim_interval=10) as engine:
            engine.session_started(describe(), read_counters=reader.__call__)
            await settle(lambda: len(client.acked) == 1)
            clock.advance(10)
            await run_ready()
            assert len(client.calls) == 1  # RFC 2869 5.16: not below 60 s
            clock.advance(50)
            await settle(lambda: len(client.acked) == 2)

    run(scenario)


def test_failed_counter_read_uses_the_last_known_counters() -> None:
    async def scenario() -> None:
        clock, client, reader = FakeClock(), MemoryClient(), Reader()
        async with engine_with(client, clock) as engine:
            engine.session_started(describe(interval=60), read_counters=reader.__call__)
            reader.counters = Counters(input_octets=7)
            clock.advance(60)
            await settle(lambda: len(client.acked) == 2)
            reader.fail = True
            await engine.session_stopped("s1", SessionEnd.ECHO_FAILED)
            await settle(lambda: len(client.acked) == 3)
            assert value(client.acked[2], "Acct-Input-Octets") == 7
            assert value(client.acked[2], "Acct-Terminate-Cause") == 2
            assert engine.counters.counter_errors == 1

    run(scenario)


def test_back_off_is_exponential_jittered_bounded_and_delay_time_grows() -> None:
    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient("timeout")
        async with engine_with(client, clock, backoff_base=2.0, backoff_cap=10.0) as engine:
            engine.session_started(describe())
            await settle(lambda: len(client.calls) == 1)
            assert engine.counters.deferred == 1 and engine.counters.timeouts == 1
            # Failure 1: 2 s x 0.5 (jitter) = 1 s; failure 2: 2 s; 3: 4 s; 4: 5 s (cap 10 x 0.5).
            for expected in (1.0, 2.0, 4.0, 5.0, 5.0):
                calls = len(client.calls)
                clock.advance(expected - 0.01)
                await run_ready()
                assert len(client.calls) == calls, f"sent before {expected} s"
                clock.advance(0.01)
                await settle(lambda c=calls: len(client.calls) == c + 1)  # type: ignore[misc]
            assert engine.counters.retries == 5 and engine.counters.deferred == 1
            client.mode = "ack"
            clock.advance(5.0)
            await settle(lambda: len(client.acked) == 1)
            assert value(client.acked[0], "Acct-Delay-Time") == 22  # 1+2+4+5+5+5 s
            assert engine.spool.pending == {}

    run(scenario)


def test_after_a_failure_one_probe_at_a_time_then_full_concurrency() -> None:
    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient("timeout")
        async with engine_with(client, clock, max_in_flight=8) as engine:
            engine.session_started(describe(1))
            await settle(lambda: len(client.calls) == 1)
            for n in range(2, 6):
                engine.session_started(describe(n))
            await run_ready()
            assert len(client.calls) == 1  # backing off: nothing goes
            client.mode = "hold"
            clock.advance(1.0)
            await settle(lambda: len(client.calls) == 2)
            await run_ready()
            assert len(client.calls) == 2 and engine.counters.in_flight == 1  # one probe
            client.release()
            await settle(lambda: len(client.acked) == 5)
            # The probe was the record tried least: a fresh one, not the failed s1 again.
            assert value(client.calls[1], "Acct-Session-Id") == "s2"

    run(scenario)


def test_records_of_one_session_go_in_order() -> None:
    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient("hold")
        async with engine_with(client, clock) as engine:
            engine.session_started(describe(1))
            engine.session_started(describe(2))
            await settle(lambda: len(client.calls) == 2)
            await engine.session_stopped("s1", SessionEnd.PEER_TERMINATED, Counters())
            await run_ready()
            assert len(client.calls) == 2  # s1's Stop waits for its Start
            client.release()
            await settle(lambda: len(client.acked) == 3)
            assert [status(r) for r in client.acked if value(r, "Acct-Session-Id") == "s1"] == [
                1,
                2,
            ]

    run(scenario)


def test_overload_waits_the_base_delay_without_escalating() -> None:
    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient("overload")
        async with engine_with(client, clock, backoff_base=3.0) as engine:
            engine.session_started(describe())
            await settle(lambda: len(client.calls) == 1)
            clock.advance(3.0)
            await settle(lambda: len(client.calls) == 2)
            clock.advance(3.0)
            await settle(lambda: len(client.calls) == 3)
            assert engine.counters.overloads == 3 and engine.counters.timeouts == 0

    run(scenario)


def test_restart_replays_the_spool_and_delivers_the_stop_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "acct.spool"

    async def scenario() -> None:
        clock, down = FakeClock(), MemoryClient("timeout")
        async with engine_with(down, clock, path) as engine:
            engine.session_started(describe())
            clock.advance(30)
            await engine.session_stopped("s1", SessionEnd.TUNNEL_LOST, Counters(1, 2, 3, 4))
            await settle(lambda: len(down.calls) >= 1)
        assert len(engine.spool.pending) == 2

        clock.advance(100)
        up = MemoryClient()
        async with engine_with(up, clock, path) as engine:
            assert engine.spool.counters.replayed == 2
            await settle(lambda: len(up.acked) == 2)
            await engine.spool.flush()
            start, stop = up.acked
            assert status(start) == 1 and status(stop) == 2
            assert value(stop, "Acct-Terminate-Cause") == 3
            assert value(stop, "Acct-Delay-Time") == 100  # since the event, across the restart
            assert value(stop, "Event-Timestamp") == int(T0) + 30
            assert engine.counters.retries == 2

        again = MemoryClient()
        async with engine_with(again, clock, path) as engine:
            await run_ready()
            assert again.calls == [] and engine.spool.counters.replayed == 0

    run(scenario)


def test_close_with_drain_waits_for_delivery() -> None:
    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient("hold")
        engine = AccountingEngine(client, Spool(None), clock, random=lambda: 0.0)
        await engine.start()
        engine.session_started(describe())
        await settle(lambda: len(client.calls) == 1)
        closing = asyncio.ensure_future(engine.close(drain=5.0))
        await run_ready()
        assert not closing.done()
        client.release()
        await closing
        assert len(client.acked) == 1 and engine.spool.pending == {}

    run(scenario)


def test_tunnel_accounting_records_only_when_enabled() -> None:
    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient()
        async with engine_with(client, clock, tunnel_accounting=True) as engine:
            tunnel = TunnelDescription(
                tunnel_id=10,
                peer_tunnel_id=20,
                client_endpoint="192.0.2.2",
                server_endpoint="192.0.2.1",
                acct_session_id=engine.new_session_id(),
            )
            engine.tunnel_started(tunnel)
            engine.session_started(describe())
            await engine.session_stopped("s1", SessionEnd.PEER_CDN, Counters())
            engine.session_rejected(describe(2), SessionEnd.AUTH_FAILED)
            clock.advance(9)
            engine.tunnel_stopped(tunnel, SessionEnd.TUNNEL_LOST, started_at=T0)
            engine.tunnel_rejected(tunnel, SessionEnd.LOCAL_FAILURE)
            await settle(lambda: len(client.acked) == 8)
            statuses = sorted(int(str(status(r))) for r in client.acked)
            assert statuses == [1, 2, 9, 10, 11, 12, 13, 14]
            assert engine.counters.tunnel_records == 6
        plain = MemoryClient()
        async with engine_with(plain, clock) as engine:
            engine.tunnel_started(TUNNEL)
            engine.session_rejected(describe(3), SessionEnd.AUTH_FAILED)
            engine.session_started(describe(4))
            await settle(lambda: len(plain.acked) == 1)
            await run_ready()
            assert [status(r) for r in plain.calls] == [1]

    run(scenario)


def test_stop_goes_out_even_if_its_caller_is_cancelled_during_the_counter_read() -> None:
    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient()
        hang = asyncio.Event()

        async def slow() -> Counters:
            await hang.wait()
            return Counters(input_octets=1)

        async with engine_with(client, clock) as engine:
            engine.session_started(describe(), read_counters=slow)
            await settle(lambda: len(client.acked) == 1)
            stopping = asyncio.ensure_future(engine.session_stopped("s1", SessionEnd.HANGUP))
            await run_ready()
            stopping.cancel()  # e.g. the link's release gave up waiting for its observer
            await settle(lambda: len(client.acked) == 2)
            assert status(client.acked[1]) == 2
            assert value(client.acked[1], "Acct-Terminate-Cause") == 2
            assert stopping.cancelled()

    run(scenario)


def test_accounting_on_at_start_and_off_at_close_and_a_flat_snapshot() -> None:
    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient()
        async with engine_with(client, clock, on_off=True) as engine:
            await settle(lambda: len(client.acked) == 1)
            assert status(client.acked[0]) == 7
            snapshot = engine.snapshot()
            assert snapshot["accounting_acknowledged"] == 1
            assert snapshot["accounting_spool_delivered"] == 1
            assert snapshot["accounting_spool_pending"] == 0
            closing = asyncio.ensure_future(engine.close(drain=5.0))
            await settle(lambda: len(client.acked) == 2)
            await closing
        assert status(client.acked[1]) == 8

    run(scenario)


def lost_of(record: Sequence[Attribute]) -> object | None:
    """Acct-Tunnel-Packets-Lost of a record, None when it has none."""
    found = [v for k, v in record if k == "Acct-Tunnel-Packets-Lost"]
    assert len(found) <= 1
    return found[0] if found else None


def test_packets_lost_is_read_at_the_stop_and_a_failed_read_loses_only_the_attribute() -> None:
    """Acct-Tunnel-Packets-Lost (RFC 2867 4.2) from the session's ``read_lost``, in the
    Stop and the Tunnel-Link-Stop; a read that fails, times out or is cut short by the
    caller is counted and the Stop goes out without the attribute; None (unknown: no
    kernel statistics) is no attribute and no error."""

    async def scenario() -> None:
        clock, client = FakeClock(), MemoryClient()
        lost: dict[str, object] = {"s1": 7, "s2": OSError("no such session"), "s3": None}
        hang = asyncio.Event()

        def reader(key: str) -> Callable[[], Awaitable[int | None]]:
            async def read() -> int | None:
                result = lost[key]
                if result == "hang":
                    await hang.wait()
                if isinstance(result, Exception):
                    raise result
                assert result is None or isinstance(result, int)
                return result

            return read

        async with engine_with(client, clock, tunnel_accounting=True) as engine:
            engine.counter_timeout = 0.05
            for n in (1, 2, 3, 4, 5):
                engine.session_started(describe(n), read_lost=reader(f"s{n}"))
            await settle(lambda: len(client.acked) == 10)  # Start + Tunnel-Link-Start each
            await engine.session_stopped("s1", SessionEnd.HANGUP)
            await settle(lambda: len(client.acked) == 12)
            stop, link_stop = client.acked[10:]
            assert (status(stop), status(link_stop)) == (2, 13)
            assert value(stop, "Acct-Tunnel-Packets-Lost") == 7
            assert value(link_stop, "Acct-Tunnel-Packets-Lost") == 7
            assert engine.counters.lost_errors == 0
            await engine.session_stopped("s2", SessionEnd.HANGUP)  # the read fails
            await settle(lambda: len(client.acked) == 14)
            assert all(lost_of(r) is None for r in client.acked[12:])
            assert engine.counters.lost_errors == 1
            await engine.session_stopped("s3", SessionEnd.HANGUP)  # not known here
            await settle(lambda: len(client.acked) == 16)
            assert lost_of(client.acked[14]) is None
            assert engine.counters.lost_errors == 1
            lost["s4"] = "hang"  # slower than counter_timeout: the Stop does not wait
            await engine.session_stopped("s4", SessionEnd.HANGUP)
            await settle(lambda: len(client.acked) == 18)
            assert value(client.acked[16], "Acct-Terminate-Cause") == 2
            assert lost_of(client.acked[16]) is None
            assert engine.counters.lost_errors == 2
            lost["s5"] = "hang"  # the caller gives up (the link's release is bounded)
            stopping = asyncio.ensure_future(engine.session_stopped("s5", SessionEnd.HANGUP))
            await run_ready()
            stopping.cancel()
            await settle(lambda: len(client.acked) == 20)
            assert status(client.acked[18]) == 2 and stopping.cancelled()
            assert lost_of(client.acked[18]) is None
            assert engine.counters.lost_errors == 3
            assert engine.snapshot()["accounting_lost_errors"] == 3
            # An explicit value wins over the reader (which is not called).
            engine.session_started(describe(6), read_lost=reader("s2"))
            await engine.session_stopped("s6", SessionEnd.HANGUP, packets_lost=2**32 + 3)
            await settle(lambda: len(client.acked) == 24)
            assert value(client.acked[22], "Acct-Tunnel-Packets-Lost") == 3  # 32 bits
            assert engine.counters.lost_errors == 3

    run(scenario)
