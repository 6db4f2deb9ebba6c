"""Random, non-zero tunnel / session ID allocation that stays O(1) when the space fills up.

RFC 2661 sections 4.4.3 and 4.4.4 ask for non-zero Assigned Tunnel and Session
IDs, and RFC 3931 section 5.4.3 for non-zero 32-bit Control Connection and
Session IDs. Random (rather than sequential) IDs make a stale message from an
earlier incarnation of a tunnel or session unlikely to hit the new one, and
make IDs hard to guess for an off-path attacker.

Why two modes: drawing random candidates until one is free costs fewer than
two draws on average while at most half of the space is used, but degrades to
~65,535 draws when a 16-bit space is nearly full (one tunnel may carry 65,535
sessions). So :class:`IdPool` probes randomly while sparse and, once more than
half of the IDs are in use, switches to an explicit free list with a position
index: allocation picks a random slot and swap-removes it, release appends,
both O(1). Building the free list costs O(space) once per switch, amortised
over at least space/2 allocations. 32-bit spaces never reach the dense mode in
practice (``limit`` caps them far below 2**31).

The random source is injected (``random_bytes(n)``), never drawn from the OS
here: the protocol core is deterministic under test.
"""

from __future__ import annotations

from .errors import LocalProtocolError
from .message import RandomSource

_PROBES = 32
"""Random probes before a sparse pool gives up and builds the free list."""


class IdExhausted(LocalProtocolError):
    """Every ID of the pool (or its configured ``limit``) is in use."""


class IdPool:
    """A set of allocated IDs in ``1 .. 2**bits - 1`` with random allocation.

    ``limit`` caps how many IDs may be allocated at once (e.g. max sessions per
    tunnel); it defaults to the whole space.
    """

    __slots__ = ("_bits", "_free", "_mask", "_nbytes", "_pos", "_random", "_used", "limit")

    def __init__(self, *, bits: int, random_bytes: RandomSource, limit: int | None = None) -> None:
        if bits not in (16, 32):
            raise ValueError("ID spaces are 16-bit (L2TPv2) or 32-bit (L2TPv3)")
        self._bits = bits
        self._mask = (1 << bits) - 1
        self._nbytes = bits // 8
        self._random = random_bytes
        space = self._mask
        if limit is None:
            limit = space
        if not 1 <= limit <= space:
            raise ValueError(f"limit must be 1-{space}")
        self.limit = limit
        self._used: set[int] = set()
        # Dense mode only: the free IDs, and each one's index in that list.
        self._free: list[int] | None = None
        self._pos: dict[int, int] | None = None

    @property
    def space(self) -> int:
        """How many IDs exist (zero is never handed out)."""
        return self._mask

    @property
    def dense(self) -> bool:
        """True while the explicit free list is in use."""
        return self._free is not None

    def __len__(self) -> int:
        return len(self._used)

    def __contains__(self, value: object) -> bool:
        return value in self._used

    def allocate(self) -> int:
        """Return a random free non-zero ID and mark it used; :class:`IdExhausted` if none."""
        used = self._used
        if len(used) >= self.limit:
            raise IdExhausted(f"all {self.limit} IDs are in use")
        if self._free is None:
            if len(used) * 2 < self._mask:
                for _ in range(_PROBES):
                    candidate = int.from_bytes(self._random(self._nbytes), "big") & self._mask
                    if candidate and candidate not in used:
                        used.add(candidate)
                        return candidate
            self._build_free_list()
        free = self._free
        pos = self._pos
        assert free is not None and pos is not None
        index = self._below(len(free))
        value = free[index]
        last = free.pop()
        if last != value:
            free[index] = last
            pos[last] = index
        del pos[value]
        used.add(value)
        return value

    def reserve(self, value: int) -> None:
        """Mark a specific ID as used (e.g. adopting a session ID); it must be free."""
        if not 1 <= value <= self._mask:
            raise LocalProtocolError(f"ID {value} out of range 1-{self._mask}")
        if value in self._used:
            raise LocalProtocolError(f"ID {value} is already in use")
        if len(self._used) >= self.limit:
            raise IdExhausted(f"all {self.limit} IDs are in use")
        if self._free is not None and self._pos is not None:
            index = self._pos.pop(value)
            last = self._free.pop()
            if last != value:
                self._free[index] = last
                self._pos[last] = index
        self._used.add(value)

    def release(self, value: int) -> None:
        """Return an ID to the pool; releasing an ID that is not allocated is a bug."""
        try:
            self._used.remove(value)
        except KeyError:
            raise LocalProtocolError(f"ID {value} is not allocated") from None
        free = self._free
        if free is None or self._pos is None:
            return
        if len(self._used) * 4 < self._mask:
            # Back below a quarter: random probing is cheap again, drop the list.
            self._free = self._pos = None
            return
        self._pos[value] = len(free)
        free.append(value)

    def _build_free_list(self) -> None:
        used = self._used
        free = [i for i in range(1, self._mask + 1) if i not in used]
        self._free = free
        self._pos = {v: i for i, v in enumerate(free)}

    def _below(self, n: int) -> int:
        """A uniform random integer in ``[0, n)`` by rejection sampling."""
        if n <= 1:
            return 0
        nbits = (n - 1).bit_length()
        nbytes = (nbits + 7) // 8
        mask = (1 << nbits) - 1
        while True:
            value = int.from_bytes(self._random(nbytes), "big") & mask
            if value < n:
                return value


def random_id(random_bytes: RandomSource, *, bits: int) -> int:
    """One random non-zero ID of ``bits`` bits, for callers without a pool."""
    mask = (1 << bits) - 1
    while True:
        value = int.from_bytes(random_bytes(bits // 8), "big") & mask
        if value:
            return value
