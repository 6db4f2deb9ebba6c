"""Stand-ins for the accounting engine's tests: a clock advanced by hand and an
in-memory :class:`~l2tp.radius.interface.AccountingClient`.

:class:`FakeClock` keeps wall time and the engine's sleepers; :meth:`FakeClock.advance`
moves time and wakes the sleepers whose deadline passed, so back-off and interim timers
are tested without waiting. :func:`settle` lets the event loop run the tasks that are
ready (loop turns, never time) until a condition holds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from l2tp.radius.interface import Attribute, RadiusOverload, RadiusTimeout

T0 = 1_780_000_000.0
"""The fake clock's start (UNIX time)."""


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), future))
        await future

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def next_deadline(self) -> float | None:
        live = [d for d, _, f in self._sleepers if not f.done()]
        return min(live) if live else None


async def settle(condition: Callable[[], object], *, turns: int = 200) -> None:
    """Run ready tasks until ``condition()`` holds; fail after ``turns`` loop turns."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    assert condition(), "condition not reached"


async def run_ready(turns: int = 50) -> None:
    """Let every ready task run (to check that nothing more happens without time)."""
    for _ in range(turns):
        await asyncio.sleep(0)


class MemoryClient:
    """Records every ``account`` call; ``mode``: ack, timeout, overload or hold (each call
    waits for :meth:`release`)."""

    def __init__(self, mode: str = "ack") -> None:
        self.mode = mode
        self.calls: list[tuple[Attribute, ...]] = []
        self.acked: list[tuple[Attribute, ...]] = []
        self._gate = asyncio.Event()

    async def account(self, attributes: Sequence[Attribute]) -> None:
        attrs = tuple(attributes)
        self.calls.append(attrs)
        if self.mode == "timeout":
            raise RadiusTimeout("no server answered")
        if self.mode == "overload":
            raise RadiusOverload("queue full")
        if self.mode == "hold":
            await self._gate.wait()
        self.acked.append(attrs)

    def release(self) -> None:
        self._gate.set()


def value(record: Sequence[Attribute], name: str) -> object:
    found = [v for k, v in record if k == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def status(record: Sequence[Attribute]) -> object:
    return value(record, "Acct-Status-Type")


def add_to_packet(packet: Any, attributes: Sequence[Attribute]) -> None:
    """Put ``attributes`` into a pyrad packet (a tagged ``(tag, value)`` as pyrad's
    ``Name:tag``), as a transport would."""
    for name, item in attributes:
        if isinstance(item, tuple):
            tag, inner = item
            packet.AddAttribute(f"{name}:{tag}", inner)
        else:
            packet.AddAttribute(name, item)
