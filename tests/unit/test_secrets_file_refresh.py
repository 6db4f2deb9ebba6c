"""SecretsFileAuthenticator.refresh under a burst of sessions: one read of the file.

The 5,000-session benchmark (docs/benchmarks.md, section 9) lost LAC tunnels now and
then: an LNS prepares the calls of a burst together (before their ICRPs), each prepare
awaited ``refresh``, and every one that came before the first read had finished
started a read of its own. Each parse of the 5,000-line file held the GIL for ~0.45 s
in the test VM, so the event loop froze for as many times that, left tunnel sockets
unread, and LACs gave up on their unacknowledged ICRQs after 31 s. Here the read is
made slow (it sleeps on its worker thread) so that every caller of the burst arrives
while it runs.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from l2tp.ppp.secrets import SecretEntry
from l2tp.runtime.builtin_ppp import BuiltinPppBackend, BuiltinPppOptions
from l2tp.runtime.ppp_hooks import SecretsFileAuthenticator
from tests.unit.builtin_ppp_fakes import FakePppKernel, backend_session, socket_pair

BURST = 50
READ_S = 0.1
"""How long each read takes here: longer than the burst takes to arrive."""


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


class SlowReads(SecretsFileAuthenticator):
    """Counts the reads of the file (each on a worker thread) and makes them slow."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.reads = 0
        self._lock = threading.Lock()

    def _read(self) -> list[SecretEntry]:
        with self._lock:
            self.reads += 1
        time.sleep(READ_S)
        return super()._read()


def secrets_file(tmp_path: Path, users: int = 3) -> Path:
    path = tmp_path / "chap-secrets"
    path.write_text("".join(f'u{i} * "pw{i}"\n' for i in range(users)))
    return path


def test_a_burst_of_refreshes_reads_the_file_once(tmp_path: Path) -> None:
    path = secrets_file(tmp_path)

    async def scenario() -> None:
        auth = SlowReads(str(path))
        await asyncio.gather(*(auth.refresh() for _ in range(BURST)))
        assert (auth.reads, auth.loads) == (1, 1)
        assert auth.entries is not None and len(auth.entries) == 3
        await auth.refresh()  # unchanged: no read at all
        assert auth.reads == 1

    run(scenario)


def test_a_change_after_the_read_is_read_again(tmp_path: Path) -> None:
    path = secrets_file(tmp_path)

    async def scenario() -> None:
        auth = SlowReads(str(path))
        await asyncio.gather(*(auth.refresh() for _ in range(BURST)))
        path.write_text('u0 * "changed"\nu9 * "new"\n')
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        await asyncio.gather(*(auth.refresh() for _ in range(BURST)))
        assert (auth.reads, auth.loads) == (2, 2)
        assert auth.entries is not None and [e.client for e in auth.entries] == ["u0", "u9"]

    run(scenario)


def test_every_waiter_of_a_failed_first_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chap-secrets"
    path.write_text('u0 * "unterminated\n')

    async def scenario() -> None:
        auth = SlowReads(str(path))
        outcomes = await asyncio.gather(
            *(auth.refresh() for _ in range(BURST)), return_exceptions=True
        )
        assert auth.reads == 1 and auth.errors == 1 and auth.entries is None
        assert all(isinstance(o, ValueError) for o in outcomes)

    run(scenario)


def test_a_cancelled_waiter_does_not_stop_the_read(tmp_path: Path) -> None:
    path = secrets_file(tmp_path)

    async def scenario() -> None:
        auth = SlowReads(str(path))
        first = asyncio.ensure_future(auth.refresh())
        others = [asyncio.ensure_future(auth.refresh()) for _ in range(3)]
        await asyncio.sleep(READ_S / 4)
        first.cancel()
        await asyncio.gather(*others)
        with pytest.raises(asyncio.CancelledError):
            await first
        assert (auth.reads, auth.loads) == (1, 1) and auth.entries is not None

    run(scenario)


def test_an_lns_burst_of_prepared_calls_reads_the_secrets_file_once(tmp_path: Path) -> None:
    """What the benchmark did: every call of a burst prepared at once (the LNS's
    wait-data-plane, before its ICRP), each needing the listener's secrets file."""
    path = secrets_file(tmp_path, users=BURST)

    async def scenario() -> None:
        backend = BuiltinPppBackend(kernel=FakePppKernel(), hostname="lns")
        auth = backend._secrets[str(path)] = SlowReads(str(path))
        options = BuiltinPppOptions(secrets=str(path), name="lns", lcp_echo_interval=None)
        pairs = [socket_pair() for _ in range(BURST)]
        sessions = [
            backend_session(a, lns=True, options=options, sid=i + 1, psid=1000 + i)[0]
            for i, (a, _) in enumerate(pairs)
        ]
        try:
            await asyncio.gather(*(backend.prepare(s) for s in sessions))
            assert len(backend.links) == BURST
            assert (auth.reads, auth.loads) == (1, 1)
        finally:
            await backend.close()
            for a, b in pairs:
                a.close()
                b.close()

    run(scenario)
