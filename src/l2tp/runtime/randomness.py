"""The runtime's default random source: :func:`os.urandom`, drawn in blocks.

The protocol and PPP cores take randomness injected (``random_bytes(n)``); the
runtime hands them :data:`random_bytes`. Why blocks: every tunnel and session ID,
every Random Vector and challenge was one ``getrandom()`` system call of 2-16
bytes, and a burst of calls allocates thousands of IDs; in the emulated test VM a
system call is expensive enough that ID allocation showed up among the loop's
stalled turns (issue 14's stall probe). One 4 KiB draw serves ~2,000 session IDs.

The bytes are the kernel's CSPRNG output either way; buffering them in this
process changes nothing an attacker could see. A forked child must not reuse its
parent's buffer (both would hand out the same IDs): the buffer is dropped in the
child (``os.register_at_fork``).
"""

from __future__ import annotations

import os

__all__ = ["RandomPool", "random_bytes"]


class RandomPool:
    """``pool(n)``: ``n`` bytes of :func:`os.urandom`, read ``block`` bytes at a time."""

    __slots__ = ("__weakref__", "_block", "_buf", "_pos")

    def __init__(self, block: int = 4096) -> None:
        if block < 1:
            raise ValueError("block must be at least 1")
        self._block = block
        self._buf = b""
        self._pos = 0

    def __call__(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("negative byte count")
        if n > self._block:
            return os.urandom(n)
        pos = self._pos
        end = pos + n
        if end > len(self._buf):
            self._buf = os.urandom(self._block)
            pos, end = 0, n
        self._pos = end
        return self._buf[pos:end]

    def forget(self) -> None:
        """Drop what is buffered (the next call reads afresh)."""
        self._buf = b""
        self._pos = 0


random_bytes = RandomPool()
"""The runtime's default ``random_bytes``."""

os.register_at_fork(after_in_child=random_bytes.forget)
