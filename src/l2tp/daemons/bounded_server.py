"""What the daemons' small stream servers share: :class:`BoundedServer`.

The control socket (:mod:`.control_socket`) and the metrics exporter
(:mod:`.metrics_http`) both serve clients on the daemon's own event loop, where a
client must never be able to stall or hurt the control plane. The rules are the same,
so they live here once:

* every connection is a task that is tracked, so that :meth:`BoundedServer.close` can
  end them all (cancelled, then each socket closed, at most 1 s each) and a daemon's
  shutdown never waits on a client;
* reads and writes are bounded in time (:func:`read_until`, :func:`send`) and reads in
  size (the stream reader's ``limit``, given when the server starts:
  :attr:`BoundedServer.limit`);
* how many connections are served at once is bounded (:attr:`BoundedServer.over_limit`:
  what a server says to the one too many is its own business);
* a client that goes away, stalls or sends too much ends its own connection quietly;
  anything else is a bug of ours, logged with its traceback, and the server carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

QUIET = (
    ConnectionError,
    TimeoutError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    asyncio.CancelledError,
)
"""How a client ends its own connection (gone, stalled, oversized) or the server ends
it (cancelled at close): nothing more to say to it, nothing to log."""
CLOSE_WAIT = 1.0
"""Seconds a closing connection may take to flush and close."""


async def read_until(reader: asyncio.StreamReader, separator: bytes, timeout: float) -> bytes:
    """One delimited unit (a request line, an HTTP head) within ``timeout`` seconds and the
    reader's ``limit`` (:class:`asyncio.LimitOverrunError` beyond it)."""
    return await asyncio.wait_for(reader.readuntil(separator), timeout)


async def send(writer: asyncio.StreamWriter, data: bytes, timeout: float) -> None:
    """Write ``data``; a client that does not read it within ``timeout`` s gets TimeoutError."""
    writer.write(data)
    await asyncio.wait_for(writer.drain(), timeout)


class BoundedServer:
    """A stream server's connection bookkeeping; subclasses bind it (``self._server``,
    with :meth:`_client` as the callback and :attr:`limit`) and define :meth:`_serve`."""

    def __init__(self, *, limit: int, max_clients: int, log: logging.Logger, what: str) -> None:
        self.limit = limit
        """Largest unit a stream reader buffers (the servers' ``limit=``)."""
        self.max_clients = max_clients
        self.log = log
        self.what = what
        """The server as log lines name it ("control socket", "metrics")."""
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> int:
        """Connections being served now."""
        return len(self._clients)

    @property
    def over_limit(self) -> bool:
        """More connections than ``max_clients`` (this one included)."""
        return len(self._clients) > self.max_clients

    async def close(self) -> None:
        """Stop accepting and end every connection (the socket stays bound until here)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            await self._serve(reader, writer)
        except QUIET:
            pass
        except Exception:
            self.log.exception("%s: unexpected error serving a client", self.what)
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), CLOSE_WAIT)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection (it is closed when this returns or raises)."""
        raise NotImplementedError
