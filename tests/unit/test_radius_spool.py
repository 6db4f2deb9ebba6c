"""The accounting spool: journal replay, torn and damaged records, persisted
acknowledgements, bounds and what a full spool drops, superseding, compaction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from l2tp.radius import spool as spool_module
from l2tp.radius.interface import Attribute
from l2tp.radius.spool import Spool, decode_attributes, encode_attributes

START, STOP, INTERIM = 1, 2, 3


def rec(n: int, status: int = START) -> tuple[Attribute, ...]:
    return (
        ("Acct-Status-Type", status),
        ("Acct-Session-Id", f"s{n}"),
        ("Class", bytes([n, 0, 255])),
        ("Tunnel-Client-Endpoint", (0, "192.0.2.2")),
    )


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


async def opened(path: Path | None, **kw: object) -> Spool:
    spool = Spool(str(path) if path else None, fsync=False, **kw)  # type: ignore[arg-type]
    await spool.open()
    return spool


def test_attribute_encoding_round_trips() -> None:
    attrs = rec(5)
    assert decode_attributes(encode_attributes(attrs)) == attrs
    with pytest.raises(TypeError):
        encode_attributes([("X", 1.5)])
    with pytest.raises(ValueError):
        decode_attributes([["X", [1]]])


def test_replay_after_restart_keeps_order_values_and_unacked_only(tmp_path: Path) -> None:
    path = tmp_path / "acct.spool"

    async def scenario() -> None:
        spool = await opened(path)
        a = spool.add(rec(1), event_time=100.0, key="s1", status=START)
        b = spool.add(rec(2), event_time=101.0, key="s2", status=START)
        c = spool.add(rec(3, STOP), event_time=102.5, key="s3", status=STOP)
        assert a and b and c
        spool.ack(b.id)
        await spool.close()
        assert spool.counters.spooled == 3 and spool.counters.delivered == 1

        again = await opened(path)
        assert [(e.id, e.attributes, e.event_time) for e in again.pending.values()] == [
            (a.id, rec(1), 100.0),
            (c.id, rec(3, STOP), 102.5),
        ]
        assert again.counters.replayed == 2 and again.counters.corrupt == 0
        d = again.add(rec(4), event_time=103.0, key="s4", status=START)
        assert d is not None and d.id > c.id  # ids go on after the replayed ones
        await again.close()

    run(scenario)


def test_acknowledged_stop_is_not_replayed(tmp_path: Path) -> None:
    path = tmp_path / "acct.spool"

    async def scenario() -> None:
        spool = await opened(path)
        stop = spool.add(rec(1, STOP), event_time=1.0, key="s1", status=STOP)
        assert stop is not None
        await spool.flush()
        spool.ack(stop.id)
        await spool.close()
        again = await opened(path)
        assert again.pending == {}
        await again.close()

    run(scenario)


def test_torn_last_record_loses_nothing_before_it(tmp_path: Path) -> None:
    path = tmp_path / "acct.spool"

    async def scenario() -> None:
        spool = await opened(path)
        for n in range(1, 4):
            spool.add(rec(n), event_time=float(n), key=f"s{n}", status=START)
        await spool.close()
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 9])  # a crash in the middle of the third line
        again = await opened(path)
        assert [e.key for e in again.pending.values()] == ["s1", "s2"]
        assert again.counters.corrupt == 1
        # The journal was compacted: the torn bytes are gone, new lines follow whole ones.
        again.add(rec(9), event_time=9.0, key="s9", status=START)
        await again.close()
        third = await opened(path)
        assert [e.key for e in third.pending.values()] == ["s1", "s2", "s9"]
        assert third.counters.corrupt == 0
        await third.close()

    run(scenario)


def test_damaged_line_in_the_middle_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "acct.spool"

    async def scenario() -> None:
        spool = await opened(path)
        for n in range(1, 4):
            spool.add(rec(n), event_time=float(n), key=f"s{n}", status=START)
        await spool.close()
        lines = path.read_bytes().split(b"\n")
        lines[1] = lines[1].replace(b"s2", b"s7")  # a flipped byte: the CRC no longer fits
        path.write_bytes(b"\n".join(lines) + b"garbage without newline")
        again = await opened(path)
        assert [e.key for e in again.pending.values()] == ["s1", "s3"]
        assert again.counters.corrupt == 2
        await again.close()

    run(scenario)


def test_full_spool_drops_the_oldest_interim_then_the_oldest_record_logging_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        spool = await opened(None, max_entries=3)
        a = spool.add(rec(1), event_time=1.0, key="s1", status=START)
        b = spool.add(rec(2, INTERIM), event_time=2.0, key="s2", status=INTERIM)
        c = spool.add(rec(3, STOP), event_time=3.0, key="s3", status=STOP)
        assert a and b and c
        d = spool.add(rec(4), event_time=4.0, key="s4", status=START)
        assert d is not None
        assert list(spool.pending) == [a.id, c.id, d.id]  # the interim went first
        e = spool.add(rec(5), event_time=5.0, key="s5", status=START)
        assert e is not None
        assert list(spool.pending) == [c.id, d.id, e.id]  # then the oldest
        assert spool.counters.dropped == 2 and spool.counters.pending == 3
        await spool.close()

    with caplog.at_level(logging.ERROR, logger="l2tp.radius.spool"):
        run(scenario)
    assert len([r for r in caplog.records if "spool full" in r.message]) == 1


def test_records_in_flight_are_never_evicted_and_the_byte_bound_holds() -> None:
    async def scenario() -> None:
        spool = await opened(None, max_entries=2)
        a = spool.add(rec(1), event_time=1.0, key="s1", status=START)
        b = spool.add(rec(2), event_time=1.0, key="s2", status=START)
        assert a and b
        spool.begin(a.id)
        spool.begin(b.id)
        assert spool.add(rec(3), event_time=1.0, key="s3", status=START) is None
        assert list(spool.pending) == [a.id, b.id] and spool.counters.dropped == 1

        small = await opened(None, max_bytes=len(a.line) * 2 + 1)
        x = small.add(rec(1), event_time=1.0, key="s1", status=START)
        small.add(rec(2), event_time=1.0, key="s2", status=START)
        small.add(rec(3), event_time=1.0, key="s3", status=START)
        assert x is not None and x.id not in small.pending
        assert small.counters.bytes <= small.max_bytes and small.counters.pending == 2
        huge = small.add((*rec(1), ("Class", bytes(500))), event_time=1.0, key="z", status=1)
        assert huge is None

    run(scenario)


def test_interim_and_stop_supersede_waiting_interims_of_their_session() -> None:
    async def scenario() -> None:
        spool = await opened(None)
        i1 = spool.add(rec(1, INTERIM), event_time=1.0, key="s1", status=INTERIM)
        other = spool.add(rec(2, INTERIM), event_time=1.0, key="s2", status=INTERIM)
        i2 = spool.add(rec(1, INTERIM), event_time=2.0, key="s1", status=INTERIM)
        assert i1 and other and i2
        assert i1.id not in spool.pending and other.id in spool.pending
        spool.begin(i2.id)  # in flight: a Stop does not take it back
        stop = spool.add(rec(1, STOP), event_time=3.0, key="s1", status=STOP)
        assert stop is not None
        assert i2.id in spool.pending and spool.counters.superseded == 1
        assert spool.counters.delivered == 0 and spool.counters.dropped == 0

    run(scenario)


def test_compaction_keeps_the_journal_small_and_correct(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "COMPACT_MIN", 10)
    path = tmp_path / "acct.spool"

    async def scenario() -> None:
        spool = await opened(path)
        keep = spool.add(rec(0), event_time=0.0, key="keep", status=START)
        assert keep is not None
        for n in range(1, 40):
            entry = spool.add(rec(n), event_time=float(n), key=f"s{n}", status=START)
            assert entry is not None
            spool.ack(entry.id)
        await spool.close()
        assert spool.counters.compactions >= 2  # at open, and at least once since
        assert len(path.read_bytes().split(b"\n")) < 2 * 10 + 5
        again = await opened(path)
        assert list(again.pending) == [keep.id]
        await again.close()

    run(scenario)


def test_add_never_writes_on_the_loop_the_writer_task_does(tmp_path: Path) -> None:
    path = tmp_path / "acct.spool"

    async def scenario() -> None:
        spool = await opened(path)
        size = path.stat().st_size
        entry = spool.add(rec(1), event_time=1.0, key="s1", status=START)
        assert entry is not None
        assert path.stat().st_size == size  # add() only queued the line
        await spool.flush()
        assert path.read_bytes().endswith(entry.line)
        await spool.close()
        with pytest.raises(RuntimeError):
            Spool(None).add(rec(1), event_time=1.0, key="s1", status=START)  # not open

    run(scenario)
