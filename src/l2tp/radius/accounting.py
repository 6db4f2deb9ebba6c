"""The accounting engine: session and tunnel records (RFC 2866, RFC 2867) to a RADIUS
accounting client, through the spool, on the event loop.

:class:`AccountingEngine` builds the records (:mod:`.records`), adds each to the
:class:`~l2tp.radius.spool.Spool` before its first send, and sends them with
``client.account(attributes)`` (:class:`~l2tp.radius.interface.AccountingClient`); a
record leaves the spool only once acknowledged. One task runs the engine, in the shape
of aioquic's driver: after every input (a new record, a send finished, the timer) it
starts the sends that may start, fires the Interim-Updates that are due, and sleeps until
the next deadline.

Back-off: the client raises :class:`~l2tp.radius.interface.RadiusTimeout` only after
its own retries and failover, so a failure means "no server now", not "this packet was
lost". The engine then stops sending for ``backoff_base * 2**(failures-1)`` seconds
(at most ``backoff_cap``), scaled by a jitter factor in [0.5, 1) from the injected
random source so that many NASes that lost the same server do not return in step; then
it sends one record at a time (a probe, the one tried least often, so that a record the
server keeps dropping cannot block the others) until one is acknowledged, and only then
``max_in_flight`` at once again. :class:`~l2tp.radius.interface.RadiusOverload` (our
own queue was full) waits ``backoff_base`` without counting as a server failure.

Ordering: records of one session are sent in order, one at a time (a Stop never
overtakes its Start); records of different sessions go in parallel.

Acct-Delay-Time (RFC 2866 5.2) is added to every send: whole seconds between the event
(the record's creation) and now, on the wall clock, so that it stays right for a record
replayed by the next process. Changing it changes the packet, which the transport sends
with a new Identifier, as 5.2 requires.

Interim-Updates: per session every ``interim_interval`` seconds (the Access-Accept's
Acct-Interim-Interval overrides the configured one; RFC 2869 5.16 "SHOULD NOT be
smaller than 60", so less is raised to ``min_interim``), with the counters read through
the session's ``read_counters`` coroutine (the kernel's interface statistics over
rtnetlink); all sessions share the engine's one timer.

Acct-Tunnel-Packets-Lost (RFC 2867 4.2): a session started with ``read_lost`` has it
read at its Stop, at the same time as the counters and bounded by the same
``counter_timeout``; a read that fails or is late is counted (``lost_errors``) and the
Stop goes out without the attribute: never later, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from l2tp.radius.interface import (
    AccountingClient,
    Attribute,
    RadiusOverload,
    RadiusTimeout,
)
from l2tp.radius.records import (
    TERMINATE_CAUSES,
    Counters,
    NasIdentity,
    SessionDescription,
    SessionEnd,
    SessionIdAllocator,
    StatusType,
    TerminateCause,
    TunnelDescription,
    interim_record,
    nas_record,
    start_record,
    stop_record,
    tunnel_link_record,
    tunnel_record,
)
from l2tp.radius.spool import Spool, SpoolCounters, SpoolEntry

__all__ = [
    "AccountingCounters",
    "AccountingEngine",
    "Clock",
    "CounterReader",
    "LossReader",
    "SystemClock",
]

log = logging.getLogger(__name__)

CounterReader = Callable[[], Awaitable[Counters]]
"""Reads one session's counters now (the kernel's, over netlink)."""

LossReader = Callable[[], Awaitable[int | None]]
"""Reads one session's lost data packets now (Acct-Tunnel-Packets-Lost); None: not
known here (no kernel statistics), so the Stop has no such attribute."""


class Clock(Protocol):
    """Wall-clock time and sleeping (tests pass a fake one they advance by hand)."""

    def time(self) -> float:
        """UNIX time (Event-Timestamp, Acct-Delay-Time and Acct-Session-Time use it)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """``time.time`` and ``asyncio.sleep``."""

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(slots=True)
class AccountingCounters:
    """What the engine counts (the spool counts its own: :class:`~.spool.SpoolCounters`)."""

    sessions: int = 0
    """Sessions being accounted now (gauge)."""
    starts: int = 0
    interims: int = 0
    stops: int = 0
    tunnel_records: int = 0
    """Tunnel-Start/Stop/Reject and Tunnel-Link-Start/Stop/Reject made."""
    requests: int = 0
    """Sends to the client (first tries and retries)."""
    acknowledged: int = 0
    timeouts: int = 0
    """Sends the client gave up on (no server answered: back-off)."""
    overloads: int = 0
    retries: int = 0
    """Sends of a record that had failed before (or was replayed from the spool)."""
    deferred: int = 0
    """Records whose first send failed and that now wait in the spool."""
    errors: int = 0
    """Sends that raised something unexpected (a bug; logged with its traceback)."""
    counter_errors: int = 0
    """Counter reads that failed or timed out (the last known counters were used)."""
    lost_errors: int = 0
    """Reads of Acct-Tunnel-Packets-Lost that failed or timed out (the Stop went without)."""
    in_flight: int = 0


_ENGINE_FIELDS = tuple(f.name for f in dataclasses.fields(AccountingCounters))
_SPOOL_FIELDS = tuple(f.name for f in dataclasses.fields(SpoolCounters))


@dataclass(slots=True, eq=False)
class _Live:
    session: SessionDescription
    reader: CounterReader | None
    interval: float | None
    lost_reader: LossReader | None = None
    last: Counters = field(default_factory=Counters)
    due: float | None = None
    reading: bool = False


@dataclass(slots=True)
class _Sending:
    entry: SpoolEntry
    task: asyncio.Task[None]


class AccountingEngine:
    """Accounting for the sessions (and tunnels) of one daemon (module documentation).

    ``random``: a source in [0, 1) for the back-off jitter. ``interim_interval``: the
    configured Acct-Interim-Interval (None: no Interim-Updates unless the Access-Accept
    asks). ``tunnel_accounting``: also send RFC 2867 tunnel and tunnel-link records.
    ``counter_timeout``: how long a counter read may take before the last known counters
    are used (shorter than the built-in PPP's wait for its observer,
    :data:`~l2tp.runtime.ppp_observer.OBSERVER_WAIT`). ``on_off``: send Accounting-On at
    :meth:`start` and Accounting-Off at :meth:`close` (RFC 2866 5.1), so that a server
    closes the sessions a crashed process never sent a Stop for.
    """

    def __init__(
        self,
        client: AccountingClient,
        spool: Spool,
        clock: Clock | None = None,
        *,
        random: Callable[[], float] = _random.random,
        ids: SessionIdAllocator | None = None,
        nas: NasIdentity | None = None,
        interim_interval: float | None = None,
        min_interim: float = 60.0,
        tunnel_accounting: bool = False,
        max_in_flight: int = 16,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        counter_timeout: float = 0.5,
        on_off: bool = False,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.client = client
        self.spool = spool
        self.clock: Clock = clock or SystemClock()
        self.random = random
        self.ids = ids or SessionIdAllocator(self.clock.time())
        self.nas = nas or NasIdentity()
        self.interim_interval = interim_interval
        self.min_interim = min_interim
        self.tunnel_accounting = tunnel_accounting
        self.max_in_flight = max_in_flight
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.counter_timeout = counter_timeout
        self.on_off = on_off
        self.counters = AccountingCounters()
        self.sessions: dict[str, _Live] = {}
        self._attempts: dict[int, int] = {}
        self._sending: dict[int, _Sending] = {}
        self._interims: list[tuple[float, int, str]] = []
        self._seq = 0
        self._failures = 0
        self._resume_at: float | None = None
        self._probing = False
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        """Set whenever a send finished (what :meth:`close` waits on while draining)."""
        self._task: asyncio.Task[None] | None = None
        self._helpers: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Open the spool (replaying what an earlier process left) and start sending."""
        if self._task is not None:
            raise RuntimeError("accounting engine started twice")
        replayed = await self.spool.open()
        for entry in replayed:
            self._attempts[entry.id] = 1  # sent (or tried) by an earlier process
        if replayed:
            log.info("accounting: %d record(s) replayed from the spool", len(replayed))
        self._task = asyncio.get_running_loop().create_task(self._run())
        if self.on_off:
            self._nas_record(StatusType.ACCOUNTING_ON)

    async def close(self, *, drain: float = 0.0) -> None:
        """Stop: wait up to ``drain`` seconds (on the engine's clock) for the spool to
        empty, then cancel what is in flight (it stays in the spool, for the next start)
        and write the spool out."""
        if self._task is None:
            return
        if self.on_off:
            self._nas_record(StatusType.ACCOUNTING_OFF)
        if drain > 0 and self.spool.pending:
            with contextlib.suppress(TimeoutError):
                await self._wait_empty(drain)
        task, self._task = self._task, None
        task.cancel()
        helpers = [*self._helpers, *(s.task for s in self._sending.values())]
        for helper in helpers:
            helper.cancel()
        for awaited in (task, *helpers):
            with contextlib.suppress(asyncio.CancelledError):
                await awaited
        await self.spool.close()

    async def wait_sent(self, seconds: float) -> bool:
        """Wait up to ``seconds`` (on the engine's clock) for every record in the spool
        to be acknowledged; True when none is left. Sends go on meanwhile."""
        if self.spool.pending:
            with contextlib.suppress(TimeoutError):
                await self._wait_empty(seconds)
        return not self.spool.pending

    async def _wait_empty(self, seconds: float) -> None:
        deadline = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            while self.spool.pending:
                self._progress.clear()
                waiter = asyncio.ensure_future(self._progress.wait())
                try:
                    await asyncio.wait((deadline, waiter), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()  # also when the wait itself is cancelled
                if deadline.done():
                    raise TimeoutError
        finally:
            deadline.cancel()

    def snapshot(self) -> dict[str, int]:
        """Every counter of the engine and its spool, flat (``l2tp ctl`` / metrics)."""
        values = {f"accounting_{k}": getattr(self.counters, k) for k in _ENGINE_FIELDS}
        values.update(
            {f"accounting_spool_{k}": getattr(self.spool.counters, k) for k in _SPOOL_FIELDS}
        )
        return values

    # ------------------------------------------------------------------ sessions

    def new_session_id(self) -> str:
        """A fresh Acct-Session-Id (for the Access-Request and then the records)."""
        return self.ids.next()

    def session_started(
        self,
        session: SessionDescription,
        *,
        read_counters: CounterReader | None = None,
        read_lost: LossReader | None = None,
    ) -> None:
        """Send the Start (and a Tunnel-Link-Start) and begin the Interim-Updates (only
        with ``read_counters``: an Interim-Update without counters says nothing).
        ``read_lost``: read at the Stop for its Acct-Tunnel-Packets-Lost.

        Synchronous: the record is in the spool when this returns; nothing waits.
        Raises ValueError for an Acct-Session-Id already being accounted."""
        key = session.acct_session_id
        if key in self.sessions:
            raise ValueError(f"accounting session {key} started twice")
        now = self.clock.time()
        interval = session.interim_interval or self.interim_interval
        if interval is not None:
            interval = max(float(interval), self.min_interim)
        live = _Live(session, read_counters, interval, read_lost)
        self.sessions[key] = live
        self.counters.sessions = len(self.sessions)
        self.counters.starts += 1
        self._submit(start_record(session, now), now, key, StatusType.START)
        if self.tunnel_accounting:
            self._tunnel_submit(
                tunnel_link_record(StatusType.TUNNEL_LINK_START, session, now), now, key
            )
        if interval is not None and read_counters is not None:
            self._schedule(live, now + interval)

    async def session_stopped(
        self,
        acct_session_id: str,
        end: SessionEnd | TerminateCause,
        counters: Counters | None = None,
        *,
        packets_lost: int | None = None,
    ) -> None:
        """Send the Stop (and a Tunnel-Link-Stop), with ``counters`` or, if None, the
        session's reader's (the last known ones if that fails), and ``packets_lost`` or,
        if None, the session's ``read_lost``'s (read at the same time; none if that
        fails). Unknown ids are ignored (a session that never had a Start:
        authentication failed, say)."""
        live = self.sessions.pop(acct_session_id, None)
        if live is None:
            return
        self.counters.sessions = len(self.sessions)
        live.due = None
        losing: asyncio.Future[int | None] | None = None
        if packets_lost is None and live.lost_reader is not None:
            losing = asyncio.ensure_future(self._read_lost(live, live.lost_reader))
        try:
            if counters is None:
                counters = await self._read(live)
            if losing is not None:
                packets_lost = await losing
        except asyncio.CancelledError:
            # The caller gave up waiting (a link's release is bounded): the Stop goes
            # out anyway, with the last known counters and the loss if it is known
            # already. Nothing is lost.
            if losing is not None:
                if losing.done() and not losing.cancelled():
                    packets_lost = losing.result()  # _read_lost raises nothing else
                else:
                    losing.cancel()
                    self.counters.lost_errors += 1
            self._stop(live, end, counters if counters is not None else live.last, packets_lost)
            raise
        self._stop(live, end, counters, packets_lost)

    def _stop(
        self,
        live: _Live,
        end: SessionEnd | TerminateCause,
        counters: Counters,
        packets_lost: int | None,
    ) -> None:
        cause = end if isinstance(end, TerminateCause) else TERMINATE_CAUSES[end]
        now = self.clock.time()
        session = live.session
        key = session.acct_session_id
        self.counters.stops += 1
        record = stop_record(session, counters, cause, now, packets_lost=packets_lost)
        self._submit(record, now, key, StatusType.STOP)
        if self.tunnel_accounting:
            link = tunnel_link_record(
                StatusType.TUNNEL_LINK_STOP,
                session,
                now,
                counters=counters,
                cause=cause,
                packets_lost=packets_lost,
            )
            self._tunnel_submit(link, now, key)

    def session_rejected(self, session: SessionDescription, end: SessionEnd) -> None:
        """A call that never came up (e.g. authentication failed): a Tunnel-Link-Reject
        with ``tunnel_accounting`` (RFC 2867 3.6), nothing otherwise (no Start was sent)."""
        if self.tunnel_accounting:
            now = self.clock.time()
            cause = TERMINATE_CAUSES[end]
            record = tunnel_link_record(StatusType.TUNNEL_LINK_REJECT, session, now, cause=cause)
            self._tunnel_submit(record, now, session.acct_session_id)

    # ------------------------------------------------------------------ tunnels

    def tunnel_started(self, tunnel: TunnelDescription) -> None:
        """Tunnel-Start (RFC 2867 3.1), with ``tunnel_accounting``."""
        if self.tunnel_accounting:
            now = self.clock.time()
            record = tunnel_record(StatusType.TUNNEL_START, tunnel, now, nas=self.nas)
            self._tunnel_submit(record, now, f"tunnel:{tunnel.acct_session_id}")

    def tunnel_stopped(
        self, tunnel: TunnelDescription, end: SessionEnd, *, started_at: float | None = None
    ) -> None:
        """Tunnel-Stop (RFC 2867 3.2), with ``tunnel_accounting``."""
        if self.tunnel_accounting:
            now = self.clock.time()
            record = tunnel_record(
                StatusType.TUNNEL_STOP,
                tunnel,
                now,
                nas=self.nas,
                started_at=started_at,
                cause=TERMINATE_CAUSES[end],
            )
            self._tunnel_submit(record, now, f"tunnel:{tunnel.acct_session_id}")

    def tunnel_rejected(self, tunnel: TunnelDescription, end: SessionEnd) -> None:
        """Tunnel-Reject (RFC 2867 3.3), with ``tunnel_accounting``."""
        if self.tunnel_accounting:
            now = self.clock.time()
            cause = TERMINATE_CAUSES[end]
            record = tunnel_record(StatusType.TUNNEL_REJECT, tunnel, now, nas=self.nas, cause=cause)
            self._tunnel_submit(record, now, f"tunnel:{tunnel.acct_session_id}")

    # ------------------------------------------------------------------ records in

    def _nas_record(self, status: StatusType) -> None:
        now = self.clock.time()
        record = nas_record(status, self.nas, self.ids.next(), now)
        self._submit(record, now, "nas", status)

    def _tunnel_submit(self, record: tuple[Attribute, ...], now: float, key: str) -> None:
        self.counters.tunnel_records += 1
        status = record[0][1]
        assert isinstance(status, int)
        self._submit(record, now, key, status)

    def _submit(self, record: tuple[Attribute, ...], now: float, key: str, status: int) -> None:
        self.spool.add(record, event_time=now, key=key, status=status)
        self._wake.set()

    def _schedule(self, live: _Live, due: float) -> None:
        live.due = due
        self._seq += 1
        heapq.heappush(self._interims, (due, self._seq, live.session.acct_session_id))
        self._wake.set()

    async def _read(self, live: _Live) -> Counters:
        if live.reader is None:
            return live.last
        try:
            async with asyncio.timeout(self.counter_timeout):
                live.last = await live.reader()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.counters.counter_errors += 1
            log.warning(
                "accounting %s: reading the counters: %s; using the last known ones",
                live.session.acct_session_id,
                exc or type(exc).__name__,
            )
        return live.last

    async def _read_lost(self, live: _Live, reader: LossReader) -> int | None:
        """The session's lost packets now; None when unknown, or when the read failed
        or took over ``counter_timeout`` (counted: the Stop goes without the attribute)."""
        try:
            async with asyncio.timeout(self.counter_timeout):
                lost = await reader()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.counters.lost_errors += 1
            log.warning(
                "accounting %s: reading the lost packets: %s; the Stop goes without"
                " Acct-Tunnel-Packets-Lost",
                live.session.acct_session_id,
                exc or type(exc).__name__,
            )
            return None
        return None if lost is None else max(0, int(lost))

    async def _interim(self, live: _Live) -> None:
        live.reading = True
        try:
            counters = await self._read(live)
        finally:
            live.reading = False
        key = live.session.acct_session_id
        if self.sessions.get(key) is not live:
            return  # stopped meanwhile: the Stop carries the totals
        now = self.clock.time()
        self.counters.interims += 1
        self._submit(
            interim_record(live.session, counters, now), now, key, StatusType.INTERIM_UPDATE
        )

    # ------------------------------------------------------------------ the driver

    async def _run(self) -> None:
        while True:
            now = self.clock.time()
            self._fire_interims(now)
            self._dispatch(now)
            deadline = self._next_deadline()
            self._wake.clear()
            waiter = asyncio.ensure_future(self._wake.wait())
            waits: set[asyncio.Future[Any]] = {waiter}
            sleeper = None
            if deadline is not None:
                sleeper = asyncio.ensure_future(self.clock.sleep(max(0.0, deadline - now)))
                waits.add(sleeper)
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                if sleeper is not None:
                    sleeper.cancel()

    def _next_deadline(self) -> float | None:
        deadlines = []
        if self._interims:
            deadlines.append(self._interims[0][0])
        if self._resume_at is not None and self.spool.pending:
            deadlines.append(self._resume_at)
        return min(deadlines) if deadlines else None

    def _fire_interims(self, now: float) -> None:
        while self._interims and self._interims[0][0] <= now:
            due, _, key = heapq.heappop(self._interims)
            live = self.sessions.get(key)
            if live is None or live.due != due or live.interval is None:
                continue  # stopped, or rescheduled
            following = due + live.interval
            if following <= now:  # the loop was away longer than an interval: no burst
                following = now + live.interval
            self._schedule(live, following)
            if not live.reading:
                self._spawn(self._interim(live))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    def _dispatch(self, now: float) -> None:
        if len(self._attempts) > 2 * len(self.spool.pending) + 64:
            # Records the spool dropped or superseded while waiting.
            self._attempts = {i: n for i, n in self._attempts.items() if i in self.spool.pending}
        if self._resume_at is not None:
            if now < self._resume_at:
                return
            self._resume_at = None
        limit = 1 if self._probing else self.max_in_flight
        if len(self._sending) >= limit:
            return
        busy = {s.entry.key for s in self._sending.values()}
        ready: list[SpoolEntry] = []
        for entry in self.spool.pending.values():
            if entry.key in busy:
                continue
            busy.add(entry.key)  # only the oldest record of a key may go
            ready.append(entry)
        if self._probing:
            ready.sort(key=lambda e: (self._attempts.get(e.id, 0), e.id))
        for entry in ready[: limit - len(self._sending)]:
            self._begin(entry)

    def _begin(self, entry: SpoolEntry) -> None:
        self.spool.begin(entry.id)
        task = asyncio.get_running_loop().create_task(self._send(entry))
        self._sending[entry.id] = _Sending(entry, task)
        self.counters.in_flight = len(self._sending)

    async def _send(self, entry: SpoolEntry) -> None:
        attempts = self._attempts.get(entry.id, 0)
        self._attempts[entry.id] = attempts + 1
        if attempts:
            self.counters.retries += 1
        delay = max(0, int(self.clock.time() - entry.event_time))
        attributes = (*entry.attributes, ("Acct-Delay-Time", delay))
        self.counters.requests += 1
        outcome = "failed"
        try:
            await self.client.account(attributes)
            outcome = "acked"
        except RadiusTimeout:
            self.counters.timeouts += 1
        except RadiusOverload:
            self.counters.overloads += 1
            outcome = "overload"
        except Exception:
            self.counters.errors += 1
            log.exception("accounting: sending record %d failed", entry.id)
        finally:
            self._sending.pop(entry.id, None)
            self.counters.in_flight = len(self._sending)
            self.spool.end(entry.id)
        if outcome == "acked":
            self.counters.acknowledged += 1
            self._attempts.pop(entry.id, None)
            self.spool.ack(entry.id)
            self._failures = 0
            self._probing = False
        else:
            if attempts == 0:
                self.counters.deferred += 1
            self._back_off(overload=outcome == "overload")
        self._wake.set()
        self._progress.set()

    def _back_off(self, *, overload: bool) -> None:
        now = self.clock.time()
        if overload:
            delay = self.backoff_base
        else:
            self._failures += 1
            self._probing = True
            delay = min(self.backoff_cap, self.backoff_base * 2 ** min(self._failures - 1, 32))
            delay *= 0.5 + self.random() / 2  # jitter in [0.5, 1)
        resume = now + delay
        if self._resume_at is None or resume > self._resume_at:
            self._resume_at = resume
