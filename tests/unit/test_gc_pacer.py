"""GcPacer: frozen generations, full sweeps, restored settings."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from l2tp.runtime.gc_pacer import GcPacer
from tests.helpers import until


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    before = gc.get_threshold()
    try:
        asyncio.run(asyncio.wait_for(scenario(), 20))
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def make_cycle() -> list[Any]:
    a: list[Any] = []
    b: list[Any] = [a]
    a.append(b)
    return a


def test_start_freezes_and_raises_threshold_stop_restores() -> None:
    async def scenario() -> None:
        before = gc.get_threshold()
        pacer = GcPacer(asyncio.get_running_loop(), threshold0=12_345)
        pacer.start()
        pacer.start()  # idempotent
        assert pacer.running and gc.get_freeze_count() > 0
        assert gc.get_threshold() == (12_345, before[1], before[2])
        pacer.stop()
        pacer.stop()
        assert not pacer.running and gc.get_freeze_count() == 0
        assert gc.get_threshold() == before

    run(scenario)


def test_frozen_cycle_escapes_collection_until_the_sweep() -> None:
    async def scenario() -> None:
        pacer = GcPacer(asyncio.get_running_loop(), freeze_interval=3600)
        gc.collect()
        cycle = make_cycle()
        pacer.start()  # freezes the cycle while it is still referenced
        try:
            del cycle
            assert gc.collect() == 0  # frozen: a normal collection does not see it
            assert pacer.sweep() >= 2  # the two lists
            assert pacer.counters.sweeps == 1 and pacer.counters.swept_objects >= 2
            assert gc.get_freeze_count() > 0  # frozen again after the sweep
        finally:
            pacer.stop()

    run(scenario)


def test_ticks_freeze_new_objects_and_sweep_when_due() -> None:
    async def scenario() -> None:
        pacer = GcPacer(asyncio.get_running_loop(), freeze_interval=0.01, sweep_interval=0.05)
        pacer.start()
        try:
            kept = [make_cycle() for _ in range(10)]
            frozen = gc.get_freeze_count()
            await until(lambda: gc.get_freeze_count() > frozen, "new objects frozen by a tick")
            assert len(kept) == 10
            await until(lambda: pacer.counters.sweeps >= 1, "a sweep once due")
            assert pacer.counters.freezes >= 2
        finally:
            pacer.stop()

    run(scenario)


@pytest.mark.parametrize("kw", [{"freeze_interval": 0}, {"sweep_interval": -1}, {"threshold0": 0}])
def test_bad_settings_are_refused(kw: dict[str, Any]) -> None:
    async def scenario() -> None:
        with pytest.raises(ValueError):
            GcPacer(asyncio.get_running_loop(), **kw)

    run(scenario)
