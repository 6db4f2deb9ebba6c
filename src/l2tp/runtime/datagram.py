"""Non-blocking datagram sockets for the control plane: open, frame, drain.

Why not :class:`asyncio.DatagramProtocol`: the stdlib transport reads one
datagram per readiness wake-up, which tops out near 25,000 datagrams/s on the
development machine. :class:`DatagramReader` registers the socket with
``loop.add_reader`` and calls ``recvfrom`` in a loop until ``BlockingIOError``
(bounded per turn of the loop by a :class:`ReadScheduler` shared by all sockets,
so neither a flood nor many busy tunnels hold the loop; the rest is read on a
later turn), which reaches about 100,000.
It also lets the owner flush its output once per batch rather than once per
datagram.

Framing. Over UDP a control message is the datagram. Over IP (protocol 115,
RFC 3931 4.1.1.2) it is preceded by a 32-bit zero session ID; Linux's
``IPPROTO_L2TP`` socket (``l2tp_ip``) strips that word on receive and inserts it
on send, so those sockets use :data:`UDP_FRAMING` as well. :data:`IP_RAW_FRAMING`
is for raw IP sockets and captures that see the word.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..protocol.errors import CodecError
from ..protocol.header import IP_ENCAP_CONTROL_PREFIX, strip_ip_encap_control
from .errors import INTERNAL_ERROR

log = logging.getLogger(__name__)

Address = Any
"""A socket address as the socket family spells it (a tuple for AF_INET/AF_INET6)."""

IPPROTO_L2TP = 115
"""The IP protocol number of L2TPv3 over IP (RFC 3931 4.1.1)."""

MAX_DATAGRAM = 65535


class Framing(Protocol):
    """How a control message sits in a datagram of a given socket type."""

    def unwrap(self, datagram: bytes) -> bytes:
        """Return the control message, or raise :class:`CodecError` for a data message."""
        ...

    def wrap(self, message: bytes) -> bytes:
        """Return the datagram payload that carries ``message``."""
        ...


@dataclass(frozen=True, slots=True)
class _Identity:
    def unwrap(self, datagram: bytes) -> bytes:
        return datagram

    def wrap(self, message: bytes) -> bytes:
        return message


@dataclass(frozen=True, slots=True)
class _ZeroSessionPrefix:
    def unwrap(self, datagram: bytes) -> bytes:
        return strip_ip_encap_control(datagram)

    def wrap(self, message: bytes) -> bytes:
        return IP_ENCAP_CONTROL_PREFIX + message


UDP_FRAMING: Framing = _Identity()
"""UDP sockets and Linux ``IPPROTO_L2TP`` sockets: the payload is the message."""
IP_RAW_FRAMING: Framing = _ZeroSessionPrefix()
"""Raw L2TPv3-over-IP payloads: a zero session ID marks control (RFC 3931 4.1.1.2)."""


def open_udp_socket(
    host: str = "127.0.0.1", port: int = 0, *, family: socket.AddressFamily | None = None
) -> socket.socket:
    """Create a bound, non-blocking UDP socket (port 0: any free port).

    The family follows the host (``::1`` gives AF_INET6) unless given. Other
    kinds, such as ``socket(AF_INET, SOCK_DGRAM, IPPROTO_L2TP)``, are opened by
    the caller and passed to :class:`~l2tp.runtime.channel.ControlChannel` as is.
    """
    if family is None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass(slots=True, kw_only=True)
class ReaderCounters:
    datagrams: int = 0
    wakeups: int = 0
    errors: int = 0
    """``recvfrom`` failures other than "would block" (e.g. ICMP errors reported by the kernel)."""
    handler_errors: int = 0
    """Exceptions escaping the handler: a bug, logged, never allowed to stop the reader."""
    budget_ends: int = 0
    """Visits ended by the loop turn's budget with datagrams possibly left for a later turn."""


TURN_BUDGET = 0.005
"""Seconds of datagram handling per turn of the event loop, shared by all its sockets.
Why 5 ms: a timer that falls due during a turn runs two turns later at the earliest
(due timers join the ready queue after that turn's I/O callbacks, and a task woken by
one runs in the turn after), so the loop's longest stall is about three turns. In the
emulated test VM (issue 14's section 3 probe, 10 x 300 kernel sessions, 3 alternating
runs each) 10 ms gave the LNS 48-52 ms stalls, 5 ms 26-34 ms at the same or a better
set-up rate; on the host the CPU per session is the same."""

QUANTUM = 4
"""Datagrams one socket may have handled per visit before the next socket's turn. The
turn's budget is checked after each datagram but the visit's ``on_batch`` (sending what
the datagrams produced) comes after them: a small quantum keeps that overshoot small."""


class ReadScheduler:
    """Shares each turn of an event loop between its readable sockets.

    Why: with one callback per readable socket, each reading until its own budget
    ran out, a turn of the loop lasted ``sockets x budget`` and then some (each
    callback also finishes the message it is in): with 10-20 busy tunnel sockets,
    ~250 ms turns in the emulated test VM, during which no timer fired and no
    kernel reply was taken (issue 14's stall probe). Here every socket that the
    selector reports readable joins one round-robin queue; the queue is served
    ``quantum`` datagrams per socket at a time until the turn's ``turn_budget`` is
    spent, and the rest waits for the next turn **in the same order**, so a busy
    socket late in the queue is not starved (the failure of a plain shared
    budget, where late readers got one datagram per turn: 2/3 of the set-up rate
    lost). A turn thus holds the loop for about ``turn_budget`` plus one
    message, however many sockets are busy.

    The budget resets at the next turn of the loop: starting a turn schedules
    (``call_soon``) the callback that ends it, which asyncio runs first in the
    following turn, before that turn's I/O callbacks and timers.

    One scheduler per event loop (:meth:`of`), shared by every reader on it, so
    fairness holds across tunnels, listeners and contexts alike.
    """

    __slots__ = ("__weakref__", "_deadline", "_loop", "_queue", "quantum", "turn_budget", "turns")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        turn_budget: float = TURN_BUDGET,
        quantum: int = QUANTUM,
    ) -> None:
        if not turn_budget > 0:
            raise ValueError("turn_budget must be positive")
        if quantum < 1:
            raise ValueError("quantum must be at least 1")
        self._loop = loop
        self.turn_budget = turn_budget
        self.quantum = quantum
        self.turns = 0
        """Turns in which datagrams were handled (for tests and counters)."""
        self._queue: collections.deque[DatagramReader] = collections.deque()
        self._deadline: float | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> ReadScheduler:
        """The loop's scheduler (created on first use)."""
        try:
            scheduler = _SCHEDULERS.get(loop)
            if scheduler is None:
                scheduler = _SCHEDULERS[loop] = cls(loop)
        except TypeError:  # a loop class without weak references (some alternatives)
            scheduler = _STRONG_SCHEDULERS.get(id(loop))
            if scheduler is None or scheduler._loop is not loop:
                scheduler = _STRONG_SCHEDULERS[id(loop)] = cls(loop)
        return scheduler

    def ready(self, reader: DatagramReader) -> None:
        """``reader``'s socket is readable (its selector callback)."""
        if not reader._queued:
            reader._queued = True
            self._queue.append(reader)
        if self._deadline is None:
            self._begin_turn()
        elif time.monotonic() >= self._deadline:
            return  # this turn is spent: the next one starts with the queue
        self._drain()

    def discard(self, reader: DatagramReader) -> None:
        """Forget ``reader`` (stopped): it is not visited again."""
        if reader._queued:
            reader._queued = False
            with contextlib.suppress(ValueError):
                self._queue.remove(reader)

    def _begin_turn(self) -> None:
        self.turns += 1
        self._deadline = time.monotonic() + self.turn_budget
        self._loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._deadline = None
        if self._queue:
            self._begin_turn()
            self._drain()

    def _drain(self) -> None:
        queue = self._queue
        deadline = self._deadline
        assert deadline is not None
        clock = time.monotonic
        while queue:
            reader = queue[0]
            drained = reader._visit(deadline, self.quantum)
            # A handler may have stopped readers (tunnels closing): act on the head
            # only if it is still the reader just visited.
            if queue and queue[0] is reader:
                if drained:
                    queue.popleft()
                    reader._queued = False
                else:
                    queue.rotate(-1)
            if clock() >= deadline:
                break


_SCHEDULERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReadScheduler] = (
    weakref.WeakKeyDictionary()
)
_STRONG_SCHEDULERS: dict[int, ReadScheduler] = {}
"""For loops that cannot be weakly referenced: kept for the process's life (one per loop)."""


class DatagramReader:
    """Calls ``handler(data, address)`` for every datagram of ``sock``.

    ``on_batch`` runs once after each visit's datagrams, which is where the owner
    sends what the batch produced and re-arms its timer.

    The socket is read when the loop's :class:`ReadScheduler` (or ``scheduler``)
    gives it its turn: ``quantum`` datagrams per visit at most, within the loop
    turn's budget; what is left stays in the socket for a later visit (it is still
    readable, and queued). Reading a burst to the end in one callback would hold
    the loop for the whole burst (~1 s for 1,000 messages in the emulated test
    VM), stalling every other tunnel's timers and the kernel replies.
    """

    __slots__ = (
        "_handler",
        "_loop",
        "_on_batch",
        "_queued",
        "_reading",
        "_scheduler",
        "counters",
        "sock",
    )

    def __init__(
        self,
        sock: socket.socket,
        handler: Callable[[bytes, Address], None],
        *,
        on_batch: Callable[[], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        scheduler: ReadScheduler | None = None,
    ) -> None:
        self.sock = sock
        self.counters = ReaderCounters()
        self._handler = handler
        self._on_batch = on_batch
        self._loop = loop
        self._scheduler = scheduler
        self._reading = False
        self._queued = False

    def start(self) -> None:
        if self._reading:
            return
        self.sock.setblocking(False)
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if self._scheduler is None:
            self._scheduler = ReadScheduler.of(self._loop)
        self._loop.add_reader(self.sock.fileno(), self._on_readable)
        self._reading = True

    def stop(self) -> None:
        if self._reading and self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
        self._reading = False
        if self._scheduler is not None:
            self._scheduler.discard(self)

    def _on_readable(self) -> None:
        self.counters.wakeups += 1
        assert self._scheduler is not None
        self._scheduler.ready(self)

    def _visit(self, deadline: float, quantum: int) -> bool:
        """Handle up to ``quantum`` datagrams (or until ``deadline``); True when the
        socket has nothing more for now (or the reader was stopped)."""
        if not self._reading:
            return True
        counters = self.counters
        recvfrom = self.sock.recvfrom
        handler = self._handler
        clock = time.monotonic
        count = 0
        drained = False
        try:
            while count < quantum:
                try:
                    data, address = recvfrom(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    drained = True
                    break
                except OSError:
                    # E.g. an ICMP error reported on a connected socket; if data
                    # remain, the selector reports the socket again.
                    counters.errors += 1
                    drained = True
                    break
                count += 1
                try:
                    handler(data, address)
                except Exception:
                    counters.handler_errors += 1
                    log.exception("datagram handler failed", extra={INTERNAL_ERROR: True})
                if not self._reading:
                    break
                if clock() >= deadline:
                    counters.budget_ends += 1
                    break
        finally:
            counters.datagrams += count
            if count and self._on_batch is not None:
                try:
                    self._on_batch()
                except Exception:
                    counters.handler_errors += 1
                    log.exception("datagram batch callback failed", extra={INTERNAL_ERROR: True})
        return drained or not self._reading


def unwrap_control(framing: Framing, datagram: bytes) -> bytes | None:
    """Unwrap ``datagram`` with ``framing``; None when it is not a control message."""
    try:
        return framing.unwrap(datagram)
    except CodecError:
        return None
