"""The accounting spool: every accounting record until a server acknowledged it, on disk.

"Nothing lost" (issue 18): a record is added here when it is made, before its first
send, and removed only once an Accounting-Response for it verified (:meth:`Spool.ack`);
a daemon that stops or crashes meanwhile finds it again at its next start
(:meth:`Spool.open`) and sends it then. The first send does not wait for the disk: a
crash in the milliseconds between a record's creation and its journal line being
written loses it (the server may have it already), which is the price of never making
a session's end wait for an fsync. The file is an append-only journal, one line per
change, written by one writer task through ``asyncio.to_thread`` (the event loop never
waits for the disk):

``<crc32 hex> <json>\\n`` where the JSON is ``{"add": id, "t": event time, "k": order
key, "s": status type, "a": attributes}`` or ``{"del": id}``.

Crash safety: lines are only ever appended, each with its own CRC-32, so a write torn by
a crash (a last line cut short, or garbage after a power loss) is detected and skipped
without losing any line before it; a damaged line in the middle is skipped and counted
the same way. At :meth:`Spool.open`, and whenever acknowledged records make up most of
the journal, it is compacted: the pending records are written to a temporary file, which
is fsynced and renamed over the journal (atomic on POSIX), so a crash during compaction
leaves either the old journal or the new one.

Exactly once, as far as a client can: the deletion of an acknowledged record is
journaled, so a restart does not send a Stop that was acknowledged before (a crash in the
milliseconds between the server's answer and that line reaching the disk is the one
window where a server can see a record twice; RADIUS servers de-duplicate on
Acct-Session-Id + Acct-Status-Type + Event-Timestamp for this reason).

Bounds (``max_entries``, ``max_bytes``, the size of the journal lines): a full spool
first drops its oldest Interim-Update (its totals are repeated by every later record of
the session), otherwise its oldest record: the oldest is the most stale, and keeping the
newest keeps the records of sessions still running, whose Stop would otherwise have no
Start. A drop is counted and logged once per episode of being full. An Interim-Update or
Stop also supersedes the waiting (not in-flight) Interim-Updates of its own session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from l2tp.radius.interface import Attribute

__all__ = ["Spool", "SpoolCounters", "SpoolEntry", "decode_attributes", "encode_attributes"]

log = logging.getLogger(__name__)

INTERIM_UPDATE = 3
"""Acct-Status-Type Interim-Update (RFC 2866 5.1): the records a newer one supersedes."""
STOP = 2
DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
COMPACT_MIN = 1024
"""Journal lines beyond twice the pending records that trigger a compaction."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One accounting record waiting for its acknowledgement."""

    id: int
    event_time: float
    """UNIX time of the event; Acct-Delay-Time (RFC 2866 5.2) counts from here."""
    key: str
    """Records of one key (a session's Acct-Session-Id) are delivered in order."""
    status: int
    attributes: tuple[Attribute, ...]
    line: bytes
    """Its journal line (its size counts against ``max_bytes``; compaction rewrites it)."""


@dataclass(slots=True)
class SpoolCounters:
    """What the spool counts (``l2tp ctl`` / metrics names without the prefix)."""

    spooled: int = 0
    """Records added (every accounting record passes through the spool)."""
    replayed: int = 0
    """Records found pending in the journal at :meth:`Spool.open`."""
    delivered: int = 0
    """Records acknowledged by a server and removed."""
    dropped: int = 0
    """Records dropped because the spool was full (see the module docstring)."""
    superseded: int = 0
    """Interim-Updates removed because a newer record of their session replaced them."""
    corrupt: int = 0
    """Journal lines skipped at open (torn by a crash or damaged)."""
    write_errors: int = 0
    compactions: int = 0
    pending: int = 0
    bytes: int = 0


def _encode_value(value: object) -> Any:
    if isinstance(value, bool):
        raise TypeError("boolean attribute values are not RADIUS values")
    if isinstance(value, int | str):
        return value
    if isinstance(value, bytes):
        return {"x": value.hex()}
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int):
        return {"tag": value[0], "v": _encode_value(value[1])}
    raise TypeError(f"cannot spool attribute value {value!r}")


def _decode_value(value: Any) -> object:
    if isinstance(value, dict):
        if "x" in value:
            return bytes.fromhex(value["x"])
        return (int(value["tag"]), _decode_value(value["v"]))
    if isinstance(value, int | str) and not isinstance(value, bool):
        return value
    raise ValueError(f"bad spooled value {value!r}")


def encode_attributes(attributes: Iterable[Attribute]) -> list[Any]:
    """Attributes as JSON values (bytes as hex, tagged values as objects)."""
    return [[name, _encode_value(value)] for name, value in attributes]


def decode_attributes(data: Any) -> tuple[Attribute, ...]:
    """The inverse of :func:`encode_attributes`; raises ValueError on anything else."""
    if not isinstance(data, list):
        raise ValueError("attributes are a list")
    out: list[Attribute] = []
    for item in data:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError(f"bad spooled attribute {item!r}")
        out.append((item[0], _decode_value(item[1])))
    return tuple(out)


def _line(obj: dict[str, Any]) -> bytes:
    payload = json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def _parse_line(line: bytes) -> dict[str, Any] | None:
    """The record of one journal line, or None if torn or damaged."""
    crc, _, payload = line.partition(b" ")
    try:
        if len(crc) != 8 or int(crc, 16) != zlib.crc32(payload):
            return None
        obj = json.loads(payload)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _entry(
    entry_id: int, event_time: float, key: str, status: int, attrs: tuple[Attribute, ...]
) -> SpoolEntry:
    line = _line(
        {"add": entry_id, "t": event_time, "k": key, "s": status, "a": encode_attributes(attrs)}
    )
    return SpoolEntry(entry_id, event_time, key, status, attrs, line)


@dataclass(slots=True)
class _Loaded:
    entries: list[SpoolEntry]
    corrupt: int


def _load(path: str) -> _Loaded:
    """Read the journal (worker thread): the pending entries in order, damaged lines."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return _Loaded([], 0)
    pending: dict[int, SpoolEntry] = {}
    corrupt = 0
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        lines.pop()  # a last line without its newline: torn by a crash mid-write
        corrupt += 1
    for raw in lines:
        obj = _parse_line(raw)
        try:
            if obj is None:
                raise ValueError("damaged")
            if "del" in obj:
                pending.pop(int(obj["del"]), None)
            else:
                attrs = decode_attributes(obj["a"])
                entry_id = int(obj["add"])
                pending[entry_id] = _entry(
                    entry_id, float(obj["t"]), str(obj["k"]), int(obj["s"]), attrs
                )
        except (ValueError, KeyError, TypeError):
            corrupt += 1
    return _Loaded(sorted(pending.values(), key=lambda e: e.id), corrupt)


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Pending accounting records, journaled to ``path`` (None: memory only).

    Use: ``await open()`` once (replays the journal), then :meth:`add` / :meth:`ack` /
    :meth:`drop` from the event loop (they never wait), :meth:`flush` to wait for the
    disk, :meth:`close` at the end. The engine marks records it is sending with
    :meth:`begin` / :meth:`end` so that eviction and superseding leave them alone.
    """

    def __init__(
        self,
        path: str | None,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        fsync: bool = True,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("spool bounds must be positive")
        self.path = path
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.counters = SpoolCounters()
        self.pending: dict[int, SpoolEntry] = {}
        """Waiting records by id, oldest first."""
        self._in_flight: set[int] = set()
        self._next_id = 1
        self._journal_lines = 0
        self._queue: list[bytes | list[SpoolEntry]] = []
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._idle: asyncio.Event | None = None
        self._fd: int | None = None
        self._full = False
        self._opened = False

    # ------------------------------------------------------------------ open and close

    async def open(self) -> list[SpoolEntry]:
        """Replay the journal (in a worker thread) and compact it; return what is pending."""
        if self._opened:
            raise RuntimeError("spool opened twice")
        self._opened = True
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        entries: list[SpoolEntry] = []
        if self.path is not None:
            loaded = await asyncio.to_thread(_load, self.path)
            entries = loaded.entries
            self.counters.corrupt += loaded.corrupt
            if loaded.corrupt:
                log.warning(
                    "accounting spool %s: %d damaged record(s) skipped", self.path, loaded.corrupt
                )
        for entry in entries:
            self._next_id = max(self._next_id, entry.id + 1)
            self._insert(entry)
        self.counters.replayed += len(self.pending)
        if self.path is not None:
            await asyncio.to_thread(self._compact, list(self.pending.values()))
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        return list(self.pending.values())

    async def flush(self) -> None:
        """Return once everything journaled so far is written (and fsynced)."""
        assert self._idle is not None and self._wake is not None
        while self._queue or not self._idle.is_set():
            self._wake.set()
            await self._idle.wait()
            if self._queue:
                await asyncio.sleep(0)  # the writer takes the next batch

    async def close(self) -> None:
        """Write what is queued, stop the writer, close the journal (idempotent)."""
        if self._writer is None:
            return
        await self.flush()
        writer, self._writer = self._writer, None
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # ------------------------------------------------------------------ the loop side

    def add(
        self, attributes: tuple[Attribute, ...], *, event_time: float, key: str, status: int
    ) -> SpoolEntry | None:
        """Add a record; None if it was dropped at once (the spool is full of records in
        flight, or the record alone is larger than ``max_bytes``)."""
        if not self._opened:
            raise RuntimeError("the spool is not open yet (await open() first)")
        if status in (INTERIM_UPDATE, STOP):
            self._supersede(key)
        entry = _entry(self._next_id, event_time, key, status, attributes)
        self._next_id += 1
        if not self._make_room(len(entry.line)):
            self._count_drop(entry, "new")
            return None
        self._insert(entry)
        self.counters.spooled += 1
        self._journal(entry.line)
        return entry

    def ack(self, entry_id: int) -> None:
        """A server acknowledged the record: remove it, for good (journaled)."""
        if self._remove(entry_id):
            self.counters.delivered += 1

    def drop(self, entry_id: int) -> None:
        """Remove a record without delivery (counted as dropped)."""
        if self._remove(entry_id):
            self.counters.dropped += 1

    def begin(self, entry_id: int) -> None:
        """The engine is sending this record: it is neither evicted nor superseded."""
        self._in_flight.add(entry_id)

    def end(self, entry_id: int) -> None:
        self._in_flight.discard(entry_id)

    def is_in_flight(self, entry_id: int) -> bool:
        return entry_id in self._in_flight

    # ------------------------------------------------------------------ internals

    def _insert(self, entry: SpoolEntry) -> None:
        self.pending[entry.id] = entry
        self.counters.pending = len(self.pending)
        self.counters.bytes += len(entry.line)

    def _remove(self, entry_id: int) -> bool:
        entry = self.pending.pop(entry_id, None)
        self._in_flight.discard(entry_id)
        if entry is None:
            return False
        self.counters.pending = len(self.pending)
        self.counters.bytes -= len(entry.line)
        self._journal(_line({"del": entry_id}))
        if (
            self._full
            and len(self.pending) <= self.max_entries // 2
            and self.counters.bytes <= self.max_bytes // 2
        ):
            self._full = False  # half empty again: the next drop is logged again
        self._maybe_compact()
        return True

    def _supersede(self, key: str) -> None:
        for entry in [e for e in self.pending.values() if e.key == key]:
            if entry.status == INTERIM_UPDATE and entry.id not in self._in_flight:
                self._remove(entry.id)
                self.counters.superseded += 1

    def _victim(self) -> SpoolEntry | None:
        oldest: SpoolEntry | None = None
        for entry in self.pending.values():
            if entry.id in self._in_flight:
                continue
            if entry.status == INTERIM_UPDATE:
                return entry
            if oldest is None:
                oldest = entry
        return oldest

    def _make_room(self, size: int) -> bool:
        if size > self.max_bytes:
            return False
        while len(self.pending) >= self.max_entries or self.counters.bytes + size > self.max_bytes:
            victim = self._victim()
            if victim is None:
                return False
            self._count_drop(victim, "oldest")
            self._remove(victim.id)
        return True

    def _count_drop(self, entry: SpoolEntry, which: str) -> None:
        self.counters.dropped += 1
        if not self._full:
            self._full = True
            log.error(
                "accounting spool full (%d records, %d bytes; limits %d, %d): dropping the"
                " %s record (Acct-Status-Type %d, key %s); further drops are only counted",
                len(self.pending),
                self.counters.bytes,
                self.max_entries,
                self.max_bytes,
                which,
                entry.status,
                entry.key,
            )

    def _journal(self, line: bytes) -> None:
        if self.path is None:
            return
        self._queue.append(line)
        self._journal_lines += 1
        if self._wake is not None:
            self._wake.set()

    def _maybe_compact(self) -> None:
        if self.path is None or self._journal_lines <= 2 * len(self.pending) + COMPACT_MIN:
            return
        self._journal_lines = len(self.pending)
        self._queue.append(list(self.pending.values()))
        if self._wake is not None:
            self._wake.set()

    async def _write_loop(self) -> None:
        assert self._wake is not None and self._idle is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
                continue
            batch, self._queue = self._queue, []
            self._idle.clear()
            try:
                await asyncio.to_thread(self._write_batch, batch)
            finally:
                self._idle.set()

    def _write_batch(self, batch: list[bytes | list[SpoolEntry]]) -> None:
        """Worker thread: append lines, compact where asked, in order; fsync once."""
        lines: list[bytes] = []
        for item in batch:
            if isinstance(item, bytes):
                lines.append(item)
                continue
            self._append(lines)
            lines = []
            self._compact(item)
        self._append(lines)

    def _append(self, lines: list[bytes]) -> None:
        if not lines or self.path is None:
            return
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(self._fd, b"".join(lines))
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            self.counters.write_errors += 1
            log.error("accounting spool %s: writing: %s", self.path, exc)

    def _compact(self, entries: list[SpoolEntry]) -> None:
        """Worker thread (or :meth:`open`): rewrite the journal as ``entries``, atomically."""
        assert self.path is not None
        tmp = f"{self.path}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"".join(entry.line for entry in entries))
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            if self.fsync:
                _fsync_dir(self.path)
        except OSError as exc:
            self.counters.write_errors += 1
            log.error("accounting spool %s: compacting: %s", self.path, exc)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.counters.compactions += 1
