"""Log output of the daemons: ``--log-format text`` (default) or ``json``.

Text keeps the format the daemons always had (``TIME LEVEL LOGGER: MESSAGE``) and
appends the context a record carries as ``key=value`` (``tunnel=4711 peer_tunnel=12
session=9 peer=192.0.2.1:1701``). JSON writes one object per line with ``time`` (UTC,
ISO 8601, milliseconds), ``level``, ``logger``, ``message``, ``daemon`` and the same
context keys, plus ``exception`` (the traceback as one string) when there is one, so
that a log shipper needs no parser of its own.

Context comes from the record's attributes, set with ``extra={"tunnel": ...}`` or a
:class:`logging.LoggerAdapter`: the protocol core's tunnels and sessions log with
their ``Tunnel.log_context`` (``tunnel``, ``peer_tunnel``, ``peer`` as the runtime
sets it, and ``session``), the runtime with ``TunnelHandle.log_extra()``. The
daemon's name is added to every record by the handler, so library loggers
(``l2tp.runtime.*``) are attributed too. Addresses are written ``host:port``
(``[v6]:port``), never as a Python tuple (:func:`l2tp.addresses.address_text`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any, TextIO

CONTEXT_KEYS = ("tunnel", "peer_tunnel", "session", "peer")
"""Record attributes reported as context, in this order."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_log_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text (default) or one JSON object per line",
    )


def _context(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in CONTEXT_KEYS:
        value = getattr(record, key, None)
        if value is not None:
            out[key] = value if isinstance(value, int | float | bool) else str(value)
    return out


class TextFormatter(logging.Formatter):
    """The classic line with ``key=value`` context appended."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = _context(record)
        if not context:
            return line
        first, sep, rest = line.partition("\n")  # keep a traceback below the context
        pairs = " ".join(f"{k}={v}" for k, v in context.items())
        return f"{first} {pairs}{sep}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; never raises for odd arguments (they become text)."""

    def __init__(self, daemon: str) -> None:
        super().__init__()
        self.daemon = daemon

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        obj: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "daemon": self.daemon,
        }
        obj.update(_context(record))
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False, default=str)


def setup(
    log_format: str, verbose: int, daemon: str, *, stream: TextIO | None = None
) -> logging.Handler:
    """Configure the root logger as the daemons do (-v: INFO, -vv: DEBUG)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(daemon) if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING - 10 * min(verbose, 2))
    return handler
