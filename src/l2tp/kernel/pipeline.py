"""Sans-IO netlink request pipelining: sequence numbers, an in-flight window, reply matching.

Every netlink client here (generic netlink ``l2tp``, the ``nlctrl`` family
lookup, rtnetlink; blocking or asyncio) moves bytes through one
:class:`Pipeline`: requests are queued, numbered when they leave, encoded into
one buffer per batch (the kernel processes every message of a ``send()`` in
order before it returns), and the datagrams that come back are split and
matched to their request by sequence number, in whatever order they arrive:

- a request other than a dump is sent with ``NLM_F_ACK`` and is finished by
  its ``NLMSG_ERROR`` (errno 0 is the ACK); a GET's reply message comes first
  and is kept in :attr:`Request.replies`;
- a dump is finished by ``NLMSG_DONE`` (or an error); its parts may arrive in
  many datagrams, interleaved with the ACKs of requests sent after it, because
  the kernel fills a dump only as the socket is read.

The kernel runs one dump at a time per socket (a second one is refused with
``EBUSY``), so a dump waits at the head of the queue while another is running;
the queue is never reordered, which keeps the guarantee that requests are
carried out in submission order. The window bounds what is in flight so the
replies always fit the socket's receive buffer: a netlink socket whose buffer
overflows loses replies (``ENOBUFS``) and the caller could not tell which.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from l2tp.kernel import codec
from l2tp.kernel.errors import KernelError, error_for

DEFAULT_WINDOW = 64
"""Requests in flight per socket; more wait in the queue behind them."""

_U32 = 0xFFFFFFFF


@dataclass(slots=True, eq=False)
class Request:
    """One netlink request and, once answered, its outcome.

    ``body`` is everything after the ``nlmsghdr``; ``mtype`` None means the
    generic netlink family of the pipeline (known only once it is resolved).
    ``what``, ``tunnel_id``, ``session_id``, ``module`` and ``link`` (the
    interface of an rtnetlink request) make the exception of a failure
    specific (see :func:`~l2tp.kernel.errors.error_for`). ``slow`` marks a
    request the kernel may take long over inside ``send()`` (deleting a network
    device), which an asyncio channel then sends from its thread.
    ``on_abandoned`` is called with the finished request when its caller was
    cancelled after it was sent (e.g. to undo a create the kernel carried out).
    ``flags`` are more ``nlmsghdr`` flags (``NLM_F_CREATE | NLM_F_EXCL`` for a new
    route: the kernel refuses ``RTM_NEWROUTE`` without ``NLM_F_CREATE``).
    """

    body: bytes
    what: str
    mtype: int | None = None
    dump: bool = False
    tunnel_id: int | None = None
    session_id: int | None = None
    module: str | None = None
    link: str | int | None = None
    slow: bool = False
    on_abandoned: Callable[[Request], None] | None = None
    flags: int = 0
    seq: int = 0
    replies: list[bytes] = field(default_factory=list)
    error: KernelError | None = None
    done: bool = False
    withdrawn: bool = False

    def encode(self, family_id: int, seq: int) -> bytes:
        flags = codec.NLM_F_REQUEST | (codec.NLM_F_DUMP if self.dump else codec.NLM_F_ACK)
        flags |= self.flags
        return codec.nlmsg(family_id if self.mtype is None else self.mtype, flags, seq, self.body)

    def failure(self, err: int, text: str) -> KernelError:
        """The exception for the kernel's ``err`` (and extended-ack ``text``) to this request."""
        what = f"{self.what} ({text})" if text else self.what
        return error_for(
            err,
            what,
            tunnel_id=self.tunnel_id,
            session_id=self.session_id,
            module=self.module,
            link=self.link,
        )


class Pipeline:
    """Sans-IO: queue, number and encode requests; match replies; bound what is in flight."""

    def __init__(self, family_id: int = 0, *, window: int = DEFAULT_WINDOW, first_seq: int = 1):
        if window < 1:
            raise ValueError("window must be >= 1")
        self.family_id = family_id
        self.window = window
        self._next_seq = first_seq & _U32 or 1
        self._queue: deque[Request] = deque()
        self._in_flight: dict[int, Request] = {}
        self._dump_seq: int | None = None
        self.stale = 0
        """Reply messages that matched no request in flight (dropped)."""
        self.peak_in_flight = 0
        """The most requests ever in flight at once."""

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Nothing queued (but withdrawn) and nothing in flight."""
        return not self._in_flight and all(r.withdrawn for r in self._queue)

    def submit(self, request: Request) -> None:
        """Queue ``request``; it leaves with a later :meth:`outgoing`."""
        if request.seq or request.done:
            raise ValueError(f"request {request.what!r} was already submitted")
        self._queue.append(request)

    def withdraw(self, request: Request) -> bool:
        """Take back a request not yet sent (True); False if it is in flight or done.

        A request in flight cannot be taken back: the kernel has it, and its
        reply will still be consumed (and matched) when it arrives.
        """
        if request.seq or request.done:
            return False
        request.withdrawn = True
        request.done = True
        return True

    def sendable(self) -> bool:
        """Whether :meth:`outgoing` would return a request now."""
        while self._queue and self._queue[0].withdrawn:
            self._queue.popleft()
        if not self._queue or len(self._in_flight) >= self.window:
            return False
        return not (self._queue[0].dump and self._dump_seq is not None)

    def outgoing(self, limit: int | None = None) -> tuple[bytes, list[Request]]:
        """Number and encode the requests that may leave now, in submission order.

        At most ``limit`` requests (and never more in flight than the window);
        returns the buffer to send in one ``send()`` and the requests in it.
        """
        parts: list[bytes] = []
        sent: list[Request] = []
        while self.sendable() and (limit is None or len(sent) < limit):
            request = self._queue.popleft()
            seq = self._take_seq()
            request.seq = seq
            self._in_flight[seq] = request
            if request.dump:
                self._dump_seq = seq
            parts.append(request.encode(self.family_id, seq))
            sent.append(request)
        self.peak_in_flight = max(self.peak_in_flight, len(self._in_flight))
        return b"".join(parts), sent

    def _take_seq(self) -> int:
        seq = self._next_seq
        while seq in self._in_flight:  # only after 2**32 requests with one still pending
            seq = seq + 1 & _U32 or 1
        self._next_seq = seq + 1 & _U32 or 1
        return seq

    def feed(self, data: bytes) -> list[Request]:
        """Match a received datagram; return the requests it finished, in reply order."""
        finished: list[Request] = []
        for mtype, _flags, seq, message in codec.iter_messages(data):
            request = self._in_flight.get(seq)
            if request is None:
                self.stale += 1  # e.g. the reply of a request failed by :meth:`fail_in_flight`
                continue
            if mtype == codec.NLMSG_ERROR:
                err, text = codec.parse_error(message)
                if err:
                    request.error = request.failure(err, text)
                self._finish(request, finished)
            elif mtype == codec.NLMSG_DONE:
                # A dump's DONE carries an int: 0, or a negative errno the dump stopped on.
                if len(message) >= 20:
                    (code,) = struct.unpack_from("=i", message, 16)
                    if code < 0:
                        request.error = request.failure(-code, "")
                self._finish(request, finished)
            elif mtype >= 0x10:  # a data message (below 0x10: NOOP/OVERRUN, ignored)
                request.replies.append(message)
        return finished

    def _finish(self, request: Request, finished: list[Request]) -> None:
        del self._in_flight[request.seq]
        if self._dump_seq == request.seq:
            self._dump_seq = None
        request.done = True
        finished.append(request)

    def fail_in_flight(self, make_error: Callable[[Request], KernelError]) -> list[Request]:
        """Finish every request in flight with ``make_error(request)`` (replies are lost)."""
        return self.fail(list(self._in_flight.values()), make_error)

    def fail_queued(self, make_error: Callable[[Request], KernelError]) -> list[Request]:
        """Finish every request not yet sent with an error; those in flight carry on."""
        queued = [r for r in self._queue if not r.withdrawn]
        self._queue.clear()
        return self.fail(queued, make_error)

    def fail_all(self, make_error: Callable[[Request], KernelError]) -> list[Request]:
        """Finish every request, queued or in flight, with an error (the socket is going)."""
        queued = [r for r in self._queue if not r.withdrawn]
        self._queue.clear()
        return self.fail(list(self._in_flight.values()) + queued, make_error)

    def fail(
        self, requests: Iterable[Request], make_error: Callable[[Request], KernelError]
    ) -> list[Request]:
        """Finish ``requests`` (not yet done) with ``make_error(request)``; return those."""
        failed = []
        for request in requests:
            self._in_flight.pop(request.seq, None)
            if request.done:
                continue
            request.error = make_error(request)
            request.done = True
            failed.append(request)
        self._dump_seq = None
        return failed
