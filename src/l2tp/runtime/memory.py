"""Give freed heap back to the system after many tunnels went at once.

CPython returns small objects to its own arenas and glibc keeps freed heap for
reuse, so after a flood of half-open tunnels is reaped the daemon's RSS can stay
near its peak even though the memory is free. ``malloc_trim(0)`` (glibc) releases
what it can; elsewhere this is a no-op. It costs a few milliseconds on a large
heap, so callers batch it (see :class:`HeapTrimmer`), never per datagram.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
from collections.abc import Callable

__all__ = ["HeapTrimmer", "trim_heap"]


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _load_trim()


def trim_heap() -> bool:
    """Collect cycles and hand free heap back to the OS; False where unsupported.

    The collection includes objects a :class:`~l2tp.runtime.gc_pacer.GcPacer` froze:
    a closed tunnel's objects still hold reference cycles (tunnel and session table,
    endpoint and reader), so reaped tunnels are freed here, as many as triggered the
    trim, rather than at the pacer's next sweep.
    """
    frozen = gc.get_freeze_count()
    if frozen:
        gc.unfreeze()
    gc.collect()
    if frozen:
        gc.freeze()
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


class HeapTrimmer:
    """Trims once, ``delay`` seconds after at least ``threshold`` tunnels were freed."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, threshold: int = 256, delay: float = 2.0
    ) -> None:
        self._loop = loop
        self._threshold = threshold
        self._delay = delay
        self._freed = 0
        self._handle: asyncio.TimerHandle | None = None
        self.trims = 0

    def freed(self, count: int) -> None:
        self._freed += count
        if self._freed >= self._threshold and self._handle is None:
            self._handle = self._loop.call_later(self._delay, self._trim)

    def _trim(self) -> None:
        self._handle = None
        self._freed = 0
        if trim_heap():
            self.trims += 1

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
