"""The metrics exporter's HTTP side: a small server on the daemon's own event loop.

Why not :func:`prometheus_client.start_http_server`: it serves from a thread, and our
collector (:class:`~.metrics.L2tpCollector`) reads the runtime's dicts of tunnels and
sessions, which the loop changes while it runs. From another thread that read could
see a dict change size mid-iteration or a half-updated tunnel; a lock around it would
put the scrape on the control plane's path anyway. Serving on the loop makes each
scrape one synchronous step between two control-plane steps, consistent by
construction. The cost is that the step blocks the loop for the time
:func:`~prometheus_client.exposition.generate_latest` takes (proportional to the
series: ~60 families, plus 3 per tunnel with ``metrics_per_tunnel``), once per scrape.

The server is deliberately minimal: HTTP/1.0 and 1.1 ``GET`` (and ``HEAD``) of
``/metrics`` (``/`` says where they are), one request per connection (the response
closes it), a request head of at most 8 KiB read within :data:`REQUEST_TIMEOUT`, at
most :data:`MAX_CLIENTS` connections. The text format, or OpenMetrics when the
scraper asks for it (``Accept``); no gzip (it would be CPU on the loop for bytes on
the local network). No TLS or authentication: bind it to a management address, or
put a reverse proxy in front. The connection bookkeeping and bounds are
:class:`.bounded_server.BoundedServer`'s, shared with the control socket.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder

from l2tp import config as cfg
from l2tp.config.fields import show
from l2tp.config.metrics import parse_metrics_address
from l2tp.runtime.context import L2tpContext

from .bounded_server import BoundedServer, read_until, send
from .hooks import HookCounters
from .metrics import EventTally, L2tpCollector, MetricsSource
from .preflight import StartError, describe_os_error

log = logging.getLogger("l2tp.metrics")

MAX_HEAD = 8192
REQUEST_TIMEOUT = 10.0
MAX_CLIENTS = 16
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_INDEX = b"python-l2tp metrics exporter: see /metrics\n"


class MetricsServer(BoundedServer):
    """Serves ``registry`` on ``host:port`` (port 0: any free one; see :attr:`address`)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        super().__init__(limit=MAX_HEAD, max_clients=MAX_CLIENTS, log=log, what="metrics")
        self.registry = registry
        self.host = host
        self.port = port
        self.scrapes = 0

    @property
    def address(self) -> str:
        """``HOST:PORT`` as bound (``[V6]:PORT`` for IPv6)."""
        assert self._server is not None and self._server.sockets
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def start(self) -> None:
        """Bind and listen; :class:`StartError` with one line when the address cannot be
        bound (the daemon prints it and exits with status 1)."""
        try:
            self._server = await asyncio.start_server(
                self._client, self.host, self.port, limit=self.limit, reuse_address=True
            )
        except OSError as exc:
            where = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
            raise StartError(f"metrics {where}: {describe_os_error(exc)}") from exc
        log.info("metrics: serving on http://%s/metrics", self.address)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request, one response, closed (gone, stalled or oversized: closed unanswered)."""
        if self.over_limit:
            return  # closed unanswered: a scraper retries at its next interval
        head = await read_until(reader, b"\r\n\r\n", REQUEST_TIMEOUT)
        status, ctype, body, head_only = self._answer(head)
        reason = _REASONS.get(status, "")
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        if status == 405:
            lines.append("Allow: GET, HEAD")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        await send(writer, b"" if head_only else body, REQUEST_TIMEOUT)

    def _answer(self, head: bytes) -> tuple[int, str, bytes, bool]:
        """(status, content type, body, HEAD) for a request head."""
        text = "text/plain; charset=utf-8"
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, text, b"bad request\n", False
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return 405, text, b"only GET and HEAD\n", False
        path = target.split("?", 1)[0]
        if path == "/":
            return 200, text, _INDEX, method == "HEAD"
        if path != "/metrics":
            return 404, text, b"not found: see /metrics\n", method == "HEAD"
        accept = ""
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "accept":
                accept = value.strip()
        encoder, ctype = choose_encoder(accept)
        self.scrapes += 1
        return 200, ctype, encoder(self.registry), method == "HEAD"


class MetricsExporter:
    """The registry (our collector and prometheus_client's process metrics), the event
    tally feeding it and the HTTP server: what ``--metrics`` turns on in a daemon."""

    def __init__(
        self,
        source: MetricsSource,
        host: str,
        port: int,
        *,
        ctx: L2tpContext | None = None,
        hooks: Callable[[], HookCounters | None] | None = None,
        clients: Callable[[], tuple[int, int]] | None = None,
        per_tunnel: bool = False,
    ) -> None:
        self.tally = EventTally(ctx) if ctx is not None else None
        self.collector = L2tpCollector(
            source, tally=self.tally, hooks=hooks, clients=clients, per_tunnel=per_tunnel
        )
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, RSS, fds, ...
        self.server = MetricsServer(self.registry, host, port)

    @property
    def address(self) -> str:
        return self.server.address

    async def start(self) -> None:
        """Bind (a :class:`StartError` if it cannot), then subscribe to events."""
        await self.server.start()
        if self.tally is not None:
            self.tally.start()

    async def close(self) -> None:
        """After the context is closed (its last events counted) or on a failed start."""
        await self.server.close()
        if self.tally is not None:
            await self.tally.close()


# ------------------------------------------------------------------ command line


def _metrics_option(text: str) -> cfg.Endpoint | None:
    if text in ("none", "off"):
        return None
    try:
        return parse_metrics_address(text, cfg.system_resolver)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{show(text)}: {exc}") from None


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    """``--metrics HOST:PORT`` and ``--metrics-per-tunnel`` of every daemon."""
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        type=_metrics_option,
        default=False,
        help="serve Prometheus metrics on http://HOST:PORT/metrics (default: the file's "
        "top-level 'metrics' key, else off; 'none': off whatever the file says)",
    )
    parser.add_argument(
        "--metrics-per-tunnel",
        action="store_true",
        help="also export per-tunnel series (RTT, sessions, retransmissions); "
        "as metrics_per_tunnel = true in the file",
    )


def metrics_settings(args: Any, config: cfg.Config) -> tuple[cfg.Endpoint | None, bool]:
    """Where to serve (None: no exporter) and whether per tunnel: the command line over
    the file."""
    endpoint = config.metrics if args.metrics is False else args.metrics
    return endpoint, bool(args.metrics_per_tunnel or config.metrics_per_tunnel)


def exporter_from(
    args: Any,
    config: cfg.Config,
    source: MetricsSource,
    **kwargs: Any,
) -> MetricsExporter | None:
    """The exporter the options and file ask for, not started; None when off."""
    endpoint, per_tunnel = metrics_settings(args, config)
    if endpoint is None:
        return None
    return MetricsExporter(
        source, str(endpoint.address), endpoint.port, per_tunnel=per_tunnel, **kwargs
    )


def reload_settings(exporter: MetricsExporter | None, args: Any, config: cfg.Config) -> None:
    """Apply a reloaded file: ``metrics_per_tunnel`` at once; a new address only at
    restart (the scraper's target would move under it), which is logged."""
    if exporter is None:
        return
    endpoint, per_tunnel = metrics_settings(args, config)
    exporter.collector.per_tunnel = per_tunnel
    if endpoint is None or (str(endpoint.address), endpoint.port) != (
        exporter.server.host,
        exporter.server.port,
    ):
        log.warning("metrics: a changed 'metrics' address applies when the daemon restarts")
