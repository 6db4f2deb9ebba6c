"""Keep CPython's cycle collector from stalling a daemon's event loop.

CPython's collector is not incremental: a generation-2 pass walks every tracked
container object in the process, and it runs whenever the long-lived objects have
grown by a quarter since the last one. A daemon setting up thousands of sessions
grows its heap exactly like that, so passes come during bursts and each walks every
tunnel and session already up: measured in benchmark section 2 (10,000 sessions),
42-197 ms per pass on the host, hence the 0.24-1.2 s loop stalls measured in the
test VM (which runs Python ~6x slower), and up to a third of the LNS's CPU time.

Most of the control plane's objects do not need the collector: sessions are freed
by reference counting when they close (tests/loopback/test_no_cyclic_garbage.py).
A closed tunnel still leaves a few cycles (~34 objects: tunnel and session table,
endpoint and reader); they are collected, frozen or not, by the heap trim that
follows every 256 reaped tunnels (:mod:`l2tp.runtime.memory`), as before. So
:class:`GcPacer`

- moves every object alive into the *permanent generation* (``gc.freeze()``, a
  constant-time list splice) every ``freeze_interval`` seconds: a collection then
  walks only what was made since, however many sessions are up;
- raises the generation-0 threshold (``threshold0``), so the young-object passes,
  now cheap, also come less often;
- once every ``sweep_interval`` seconds runs one full collection over everything
  (``gc.unfreeze()``, ``gc.collect()``, ``gc.freeze()``), so that cycles that became
  garbage after being frozen (e.g. an exception and the frames of its traceback)
  are still freed: one walk of the heap per sweep interval instead of one per
  quarter of heap growth (with 10,000 sessions, ~40 ms on the host: harmless to
  L2TP's 1 s retransmission timer, but no longer in every burst).

It changes interpreter-wide settings, so it is for a process's owner — the daemons
install it; an application embedding :class:`~l2tp.runtime.control.L2tpContext`
may, but the context never does so on its own. :meth:`stop` restores the previous
thresholds and unfreezes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass

__all__ = ["GcCounters", "GcPacer"]

log = logging.getLogger("l2tp.runtime.gc")

FREEZE_INTERVAL = 1.0
SWEEP_INTERVAL = 600.0
THRESHOLD0 = 20_000
"""Allocations (net) between young-generation passes; CPython's default is 700."""


@dataclass
class GcCounters:
    freezes: int = 0
    sweeps: int = 0
    swept_objects: int = 0
    """Unreachable objects the full sweeps found (cycles that were frozen)."""


class GcPacer:
    """Freeze what lives every ``freeze_interval`` s, sweep all every ``sweep_interval`` s."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        freeze_interval: float = FREEZE_INTERVAL,
        sweep_interval: float = SWEEP_INTERVAL,
        threshold0: int = THRESHOLD0,
    ) -> None:
        if freeze_interval <= 0 or sweep_interval <= 0:
            raise ValueError("GcPacer intervals must be positive")
        if threshold0 < 1:
            raise ValueError("threshold0 must be at least 1")
        self.loop = loop
        self.freeze_interval = freeze_interval
        self.sweep_interval = sweep_interval
        self.threshold0 = threshold0
        self.counters = GcCounters()
        self._saved: tuple[int, int, int] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._next_sweep = 0.0

    @property
    def running(self) -> bool:
        return self._saved is not None

    def start(self) -> None:
        """Freeze what exists (imports, configuration) and start pacing (idempotent)."""
        if self._saved is not None:
            return
        current = gc.get_threshold()
        self._saved = (current[0], current[1], current[2])
        gc.set_threshold(self.threshold0, current[1], current[2])
        now = self.loop.time()
        self._next_sweep = now + self.sweep_interval
        self._freeze()
        self._handle = self.loop.call_later(self.freeze_interval, self._tick)

    def _tick(self) -> None:
        if self.loop.time() >= self._next_sweep:
            self.sweep()
        self._freeze()
        self._handle = self.loop.call_later(self.freeze_interval, self._tick)

    def _freeze(self) -> None:
        gc.freeze()
        self.counters.freezes += 1

    def sweep(self) -> int:
        """One full collection over every object, frozen ones included; the count found."""
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self.counters.sweeps += 1
        self.counters.swept_objects += found
        self._next_sweep = self.loop.time() + self.sweep_interval
        if found:
            log.debug("gc sweep freed %d unreachable objects", found)
        return found

    def stop(self) -> None:
        """Stop pacing: thresholds as they were, nothing left frozen (idempotent)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None
            gc.unfreeze()
