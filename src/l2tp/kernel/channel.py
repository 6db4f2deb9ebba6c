"""Netlink sockets driven through a :class:`~l2tp.kernel.pipeline.Pipeline`.

:class:`SyncChannel` blocks (the CLI tools and the static daemons);
:class:`AsyncChannel` never blocks the event loop. Both share the pipeline, so
encoding, sequence numbers and reply matching exist once.

Where :class:`AsyncChannel` calls ``send()``
-------------------------------------------
A netlink request is carried out *inside* the ``send()`` that hands it to the
kernel: the socket being non-blocking changes nothing, the kernel's handler
runs to completion in the caller's thread before ``send()`` returns (only the
replies are queued). Measured in the emulated test VM: creating a PPP session
takes ~0.2 ms, an Ethernet one ~1.3 ms (it registers an ``l2tpethN`` device),
and deleting a session waits for RCU grace periods (Linux 6.1 calls
``synchronize_rcu()`` to unhash an L2TPv3 session, and an Ethernet session's
device is unregistered): ~20 ms (v3 PPP) to ~56 ms (Ethernet) each, ~0.58 s for
a batch of 16 Ethernet deletes. Three ways to send (``sending=``):

- ``"auto"`` (default): on the event loop, at most ``max_batch`` (2) requests
  per ``send()`` (one turn of the loop each: 8 PPP session creates were one
  ``send()`` of ~45 ms of kernel work in the emulated VM, the longest part of a
  stalled turn while 3,000 sessions came up; 2 keep it near 10 ms), except
  batches with a request marked :attr:`~l2tp.kernel.pipeline.Request.slow`
  (tunnel creates and deletes, every session delete, and the rtnetlink link
  changes, which run a device's notifier chains), which go to a sender thread
  started on first use; while the thread has work, every batch goes to it, so
  the kernel still sees the requests in submission order.
  Ethernet session creates stay on the loop: 1,000 of them in the test VM took
  1.5-1.8 s from the thread against 1.7-2.2 s from the loop with names given,
  but 3.5-4.6 s against 2.4-2.7 s with names chosen by the kernel
  (``l2tpeth%d``), while the loop's stall per ``send()`` of 8 stayed ~10-30 ms;
- ``"loop"``: every ``send()`` on the event loop;
- ``"thread"``: every ``send()`` in the thread. Quick requests (GETs, PPP
  sessions, tunnels) gain nothing from it and pay a thread switch, under the
  GIL, per hand-over.

Replies are always read on the event loop (``loop.add_reader``).

Cancellation: a caller cancelled before its request left has it withdrawn
(never sent); after, the reply is still consumed and matched (then handed to
the request's ``on_abandoned`` hook, if any, and dropped), so the socket never
goes out of step.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import queue
import socket
import threading
from collections.abc import Sequence
from typing import Literal

from l2tp.kernel.errors import DataPlaneClosed, KernelError
from l2tp.kernel.pipeline import DEFAULT_WINDOW, Pipeline, Request

BUFSIZE = 1 << 16
"""Receive size: one datagram from the kernel is at most ~32 KiB (a dump part)."""
MAX_BATCH = 2
"""Requests per ``send()`` when sending on the event loop (bounds each stall)."""
_READS_PER_WAKEUP = 64

Sending = Literal["auto", "loop", "thread"]
"""Where :class:`AsyncChannel` calls ``send()`` (see the module's documentation)."""


def _closed_error(request: Request) -> KernelError:
    return DataPlaneClosed(errno.ESHUTDOWN, f"{request.what}: the netlink socket was closed")


def _lost_error(request: Request) -> KernelError:
    return KernelError(
        errno.ENOBUFS,
        f"{request.what}: the kernel's reply was lost (netlink receive buffer overrun); "
        "the request may or may not have been carried out",
    )


class SyncChannel:
    """Blocking: send a list of requests in batches of the window; wait for every reply."""

    def __init__(
        self, sock: socket.socket, family_id: int = 0, *, window: int = DEFAULT_WINDOW
    ) -> None:
        self.sock = sock
        self.pipeline = Pipeline(family_id, window=window)

    def run(self, requests: Sequence[Request]) -> Sequence[Request]:
        """Carry out ``requests`` in order; raise the first one's error (after all finished)."""
        self.exchange(requests)
        for request in requests:
            if request.error is not None:
                raise request.error
        return requests

    def exchange(self, requests: Sequence[Request]) -> Sequence[Request]:
        """Carry out ``requests`` in order; their outcomes are in ``.error``/``.replies``."""
        pipeline = self.pipeline
        for request in requests:
            pipeline.submit(request)
        try:
            while not pipeline.idle:
                data, _sent = pipeline.outgoing()
                if data:
                    self.sock.send(data)
                while pipeline.in_flight:  # whole batches: one send, then every reply
                    pipeline.feed(self.sock.recv(BUFSIZE))
        except BaseException:
            # A broken socket (or ^C): forget the rest so the next call starts clean.
            pipeline.fail_all(_closed_error)
            raise
        return requests

    def close(self) -> None:
        self.sock.close()


class _Sender:
    """The thread that does a channel's slow ``send()`` calls, in FIFO order."""

    def __init__(self, channel: AsyncChannel, loop: asyncio.AbstractEventLoop, name: str):
        self._channel = channel
        self._loop = loop
        self._queue: queue.SimpleQueue[tuple[bytes, list[Request]] | None] = queue.SimpleQueue()
        self.stopped: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, data: bytes, requests: list[Request]) -> None:
        self._queue.put((data, requests))

    def stop(self) -> None:
        """Let the thread finish what it was given, close the socket and exit."""
        self._queue.put(None)

    def _call(self, *args: object) -> None:
        # RuntimeError: the event loop is closed, nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(*args)  # type: ignore[arg-type]

    def _run(self) -> None:
        sock = self._channel.sock
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while True:  # what piled up while the kernel was busy goes in one send()
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            if self._channel.closed:  # its requests have failed with DataPlaneClosed
                continue
            try:
                self._channel.send_calls += 1  # the loop sends nothing while we have work
                sock.send(b"".join(data for data, _ in batch))
            except OSError as exc:
                failed = [r for _, requests in batch for r in requests]
                self._call(self._channel._send_failed, failed, exc)
            self._call(self._channel._sent_in_thread, len(batch))
        sock.close()
        self._call(self._set_stopped)

    def _set_stopped(self) -> None:
        if not self.stopped.done():
            self.stopped.set_result(None)


class AsyncChannel:
    """A non-blocking netlink socket: pipelined requests, replies read on the event loop.

    Bound to the first event loop that uses it. ``family_id`` is the generic
    netlink family of requests whose ``mtype`` is None (set it once resolved).
    """

    def __init__(
        self,
        sock: socket.socket,
        family_id: int = 0,
        *,
        window: int = DEFAULT_WINDOW,
        sending: Sending = "auto",
        max_batch: int = MAX_BATCH,
        name: str = "netlink",
    ) -> None:
        if sending not in ("auto", "loop", "thread"):
            raise ValueError(f"sending must be 'auto', 'loop' or 'thread', not {sending!r}")
        sock.setblocking(False)
        self.sock = sock
        self.pipeline = Pipeline(family_id, window=window)
        self.name = name
        self.sending = sending
        self.max_batch = max_batch
        self._in_thread = 0  # batches handed to the sender thread, not yet sent
        self._futures: dict[Request, asyncio.Future[Request]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sender: _Sender | None = None
        self._flush_scheduled = False
        self._idle_waiters: list[asyncio.Future[None]] = []
        self.closed = False
        self.sends = 0
        """Batches that left the pipeline (sent on the loop or handed to the thread)."""
        self.send_calls = 0
        """``send()`` system calls made (the thread joins batches that piled up)."""

    @property
    def family_id(self) -> int:
        return self.pipeline.family_id

    @family_id.setter
    def family_id(self, value: int) -> None:
        self.pipeline.family_id = value

    def _attach(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            loop.add_reader(self.sock.fileno(), self._on_readable)
        elif loop is not self._loop:
            raise RuntimeError(f"{self.name} channel is bound to another event loop")
        return loop

    def submit(self, request: Request) -> asyncio.Future[Request]:
        """Queue ``request``; the future resolves to it, or raises its :class:`KernelError`.

        Requests submitted in the same event-loop iteration leave together.
        """
        if self.closed:
            raise _closed_error(request)
        loop = self._attach()
        future: asyncio.Future[Request] = loop.create_future()
        self._futures[request] = future
        self.pipeline.submit(request)
        self._schedule_flush()
        return future

    def withdraw(self, request: Request) -> bool:
        """Take back a request not yet sent; False once it is in flight (or done)."""
        if not self.pipeline.withdraw(request):
            return False
        future = self._futures.pop(request, None)
        if future is not None and not future.done():
            future.cancel()
        self._check_idle()
        return True

    async def call(self, request: Request) -> Request:
        """Submit, await the outcome; cancelling withdraws it or drops its reply.

        A request cancelled once sent is still matched with its reply, then its
        :attr:`~l2tp.kernel.pipeline.Request.on_abandoned` (if any) is called.
        """
        future = self.submit(request)
        try:
            return await future
        except asyncio.CancelledError:
            self._cancelled(request, future)
            raise

    def _cancelled(self, request: Request, future: asyncio.Future[Request]) -> None:
        """The caller stopped waiting for ``request``."""
        if self.withdraw(request):
            return  # never sent
        if future.done() and not future.cancelled():
            future.exception()  # answered in the very iteration the caller was cancelled
            self._abandoned(request)
        else:
            future.cancel()  # _resolve() calls on_abandoned when the reply comes

    @staticmethod
    def _abandoned(request: Request) -> None:
        if request.on_abandoned is not None:
            request.on_abandoned(request)

    async def call_many(self, requests: Sequence[Request]) -> Sequence[Request]:
        """Submit all (they are batched), await all; raise the first one's error, in order."""
        for error in await self.call_each(requests):
            if error is not None:
                raise error
        return requests

    async def call_each(self, requests: Sequence[Request]) -> list[BaseException | None]:
        """Submit all (they are batched), await all; each one's outcome in order, None
        for done: one failure does not hide the others' (a batch of independent creates).
        Cancelled, each is withdrawn or its reply dropped as with :meth:`call`."""
        futures = [self.submit(r) for r in requests]
        try:
            await asyncio.wait(futures)
        except asyncio.CancelledError:
            for request, future in zip(requests, futures, strict=True):
                self._cancelled(request, future)
            raise
        return [
            _closed_error(r) if f.cancelled() else f.exception()
            for r, f in zip(requests, futures, strict=True)
        ]

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.closed:
            return
        offload = self.sending == "thread" or self._in_thread > 0
        data, sent = self.pipeline.outgoing(None if offload else self.max_batch)
        if not data:
            return
        self.sends += 1
        if offload or (self.sending == "auto" and any(r.slow for r in sent)):
            if self._sender is None:
                assert self._loop is not None
                self._sender = _Sender(self, self._loop, f"{self.name}-send")
            self._in_thread += 1
            self._sender.put(data, sent)
            return
        try:
            self.send_calls += 1
            self.sock.send(data)
        except OSError as exc:
            self._send_failed(sent, exc)
        if self.pipeline.sendable():
            self._schedule_flush()  # the rest after other callbacks have run

    def _sent_in_thread(self, batches: int) -> None:
        self._in_thread -= batches
        if not self._in_thread and not self.closed and self.pipeline.sendable():
            self._schedule_flush()

    def _send_failed(self, requests: list[Request], exc: OSError) -> None:
        """A ``send()`` failed as a whole: none of its requests reached the kernel."""
        err = exc.errno or errno.EIO
        for request in self.pipeline.fail(
            requests, lambda r: KernelError(err, f"{r.what}: netlink send failed ({exc})")
        ):
            self._resolve(request)
        self._schedule_flush()
        self._check_idle()

    def fail_queued(self) -> None:
        """Fail the requests not yet sent with :class:`DataPlaneClosed` (a close is coming);
        those in flight are still answered."""
        for request in self.pipeline.fail_queued(_closed_error):
            self._resolve(request)
        self._check_idle()

    async def wait_idle(self) -> None:
        """Return once no request is queued or in flight."""
        if self.closed or self.pipeline.idle:
            return
        loop = self._attach()
        waiter: asyncio.Future[None] = loop.create_future()
        self._idle_waiters.append(waiter)
        await waiter

    def _check_idle(self) -> None:
        if self._idle_waiters and (self.closed or self.pipeline.idle):
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _on_readable(self) -> None:
        pipeline = self.pipeline
        for _ in range(_READS_PER_WAKEUP):
            try:
                data = self.sock.recv(BUFSIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    self._fail_everything(exc)
                    return
                for request in pipeline.fail_in_flight(_lost_error):
                    self._resolve(request)
                continue
            for request in pipeline.feed(data):
                self._resolve(request)
        if pipeline.sendable():
            self._schedule_flush()
        self._check_idle()

    def _resolve(self, request: Request) -> None:
        future = self._futures.pop(request, None)
        if future is None or future.done():
            if future is not None and future.cancelled():
                self._abandoned(request)  # the caller is gone; the reply is consumed
            return
        if request.error is not None:
            future.set_exception(request.error)
        else:
            future.set_result(request)

    def _fail_everything(self, exc: OSError) -> None:
        err = exc.errno or errno.EIO
        for request in self.pipeline.fail_all(
            lambda r: KernelError(err, f"{r.what}: netlink socket failed ({exc})")
        ):
            self._resolve(request)

    def close(self) -> None:
        """Fail every request not yet answered with :class:`DataPlaneClosed`; close the socket.

        Idempotent. If a sender thread was started, it closes the socket once it
        has finished the ``send()`` it may be in; :meth:`aclose` waits for that.
        """
        if self.closed:
            return
        self.closed = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.sock.fileno())
        for request in self.pipeline.fail_all(_closed_error):
            self._resolve(request)
        for future in self._futures.values():
            future.cancel()
        self._futures.clear()
        self._check_idle()
        if self._sender is not None:
            self._sender.stop()
        else:
            self.sock.close()

    async def aclose(self) -> None:
        """:meth:`close`, then wait until the socket is really closed."""
        self.close()
        if self._sender is not None:
            await asyncio.shield(self._sender.stopped)
