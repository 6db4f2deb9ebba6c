"""IdPool: random non-zero IDs, O(1) allocation up to a full 16-bit space."""

from __future__ import annotations

import random

import pytest

from l2tp.protocol.errors import LocalProtocolError
from l2tp.protocol.ids import IdExhausted, IdPool, random_id


def pool(bits: int = 16, seed: int = 0, limit: int | None = None) -> IdPool:
    return IdPool(bits=bits, random_bytes=random.Random(seed).randbytes, limit=limit)


def test_ids_are_random_nonzero_and_unique() -> None:
    p = pool()
    ids = [p.allocate() for _ in range(1000)]
    assert 0 not in ids
    assert len(set(ids)) == 1000
    assert ids != sorted(ids)
    assert len(p) == 1000 and ids[0] in p


def test_zero_source_never_yields_zero() -> None:
    draws = iter([b"\x00\x00", b"\x00\x00", b"\x00\x07"])
    p = IdPool(bits=16, random_bytes=lambda n: next(draws))
    assert p.allocate() == 7
    assert random_id(lambda n: b"\x00\x00\x00\x05", bits=32) == 5


def test_whole_16_bit_space_then_exhausted_quickly() -> None:
    """O(1) each, counted in random draws rather than timed: probing for a free ID
    until one turns up would cost ~65,535 draws per ID as the space fills."""
    rng = random.Random(0)
    draws: list[int] = []

    def counted(n: int) -> bytes:
        draws[-1] += 1
        return rng.randbytes(n)

    p = IdPool(bits=16, random_bytes=counted)
    ids = set()
    for _ in range(0xFFFF):
        draws.append(0)
        ids.add(p.allocate())
    assert ids == set(range(1, 0x10000))
    assert p.dense
    with pytest.raises(IdExhausted):
        p.allocate()
    # At most the sparse probes and then a few rejection-sampling draws per ID; about
    # two on average (a probe while sparse, a draw from the free list when dense).
    assert max(draws) <= 32 + 8
    assert sum(draws) < 3 * 0xFFFF


def test_release_and_reuse_in_dense_mode() -> None:
    p = pool()
    ids = [p.allocate() for _ in range(0xFFFF)]
    for value in ids[:10]:
        p.release(value)
    again = {p.allocate() for _ in range(10)}
    assert again == set(ids[:10])


def test_back_to_sparse_below_a_quarter() -> None:
    p = pool()
    ids = [p.allocate() for _ in range(40000)]
    assert p.dense
    for value in ids[:30000]:
        p.release(value)
    assert not p.dense
    assert p.allocate() not in set(ids[30000:])


def test_reserve_and_errors() -> None:
    p = pool()
    p.reserve(42)
    assert 42 in p
    with pytest.raises(LocalProtocolError):
        p.reserve(42)
    with pytest.raises(LocalProtocolError):
        p.reserve(0)
    with pytest.raises(LocalProtocolError):
        p.release(43)
    ids = [p.allocate() for _ in range(40000)]
    assert p.dense
    free = next(i for i in range(1, 0x10000) if i not in p)
    p.reserve(free)
    assert free in p and free not in ids
    for _ in range(0xFFFF - len(p)):
        assert p.allocate() != free


def test_limit() -> None:
    p = pool(limit=3)
    for _ in range(3):
        p.allocate()
    with pytest.raises(IdExhausted):
        p.allocate()


def test_32_bit() -> None:
    p = pool(bits=32, limit=1000)
    ids = {p.allocate() for _ in range(1000)}
    assert all(0 < i <= 0xFFFFFFFF for i in ids) and len(ids) == 1000
    assert max(ids) > 0xFFFF


@pytest.mark.parametrize("bits", [8, 24])
def test_bad_widths(bits: int) -> None:
    with pytest.raises(ValueError):
        pool(bits=bits)
