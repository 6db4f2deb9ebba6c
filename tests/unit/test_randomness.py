"""The runtime's block-read random source."""

from __future__ import annotations

import os

import pytest

from l2tp.runtime import randomness
from l2tp.runtime.randomness import RandomPool


def test_reads_the_os_in_blocks_and_never_repeats_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    counter = iter(range(10**6))

    def fake_urandom(n: int) -> bytes:
        reads.append(n)
        return bytes(next(counter) % 256 for _ in range(n))

    monkeypatch.setattr(os, "urandom", fake_urandom)
    pool = RandomPool(block=64)
    drawn = b"".join(pool(2) for _ in range(64))  # 128 bytes: two blocks
    assert reads == [64, 64]
    assert drawn == bytes(i % 256 for i in range(128))  # every byte used once, in order
    assert pool(100) and reads[-1] == 100  # larger than a block: straight from the OS
    pool.forget()
    pool(1)
    assert reads[-1] == 64


def test_a_forked_child_does_not_reuse_the_parents_buffer() -> None:
    randomness.random_bytes(1)  # something buffered
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the same next bytes as the parent would be a bug
        os.close(r)
        os.write(w, randomness.random_bytes(16))
        os._exit(0)
    os.close(w)
    child = os.read(r, 16)
    os.close(r)
    os.waitpid(pid, 0)
    assert len(child) == 16
    assert randomness.random_bytes(16) != child


def test_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        RandomPool(block=0)
    with pytest.raises(ValueError):
        RandomPool()(-1)
