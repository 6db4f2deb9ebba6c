"""A stand-in for systemd's end of ``NOTIFY_SOCKET``: a real AF_UNIX datagram socket.

Tests point a daemon (or :class:`l2tp.daemons.sdnotify.Notifier`) at it and read back
what was sent, message by message, as systemd would receive it.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path


def parse(datagram: bytes) -> dict[str, str]:
    """One notification: newline-separated ``KEY=VALUE`` assignments."""
    fields: dict[str, str] = {}
    for line in datagram.decode().split("\n"):
        if line:
            key, sep, value = line.partition("=")
            assert sep, f"not an assignment: {line!r}"
            fields[key] = value
    return fields


class NotifySocket:
    """Bound at ``path`` (a file) or, with ``abstract``, at that name in the abstract namespace."""

    def __init__(self, path: Path | None = None, *, abstract: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract is not None:
            self.sock.bind("\0" + abstract)
            self.env_value = "@" + abstract
        else:
            assert path is not None
            self.sock.bind(str(path))
            self.env_value = str(path)
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []
        self.times: list[float] = []
        """``time.monotonic()`` when each message was read (for loose rate checks)."""

    def drain(self) -> list[dict[str, str]]:
        """Read whatever has arrived; returns every message so far."""
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.messages
            self.messages.append(parse(data))
            self.times.append(time.monotonic())

    def having(self, key: str, value: str | None = None) -> list[dict[str, str]]:
        """The messages so far that set ``key`` (to ``value``, when given)."""
        self.drain()
        return [m for m in self.messages if key in m and (value is None or m[key] == value)]

    def keys_in_order(self) -> list[str]:
        """The lifecycle keys (READY, RELOADING, STOPPING) in the order they came."""
        self.drain()
        order = ("READY", "RELOADING", "STOPPING")
        return [k for m in self.messages for k in order if k in m]

    def close(self) -> None:
        self.sock.close()
