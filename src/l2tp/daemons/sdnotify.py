"""systemd's readiness protocol (``Type=notify``), spoken directly over ``NOTIFY_SOCKET``.

The protocol is small and documented (sd_notify(3), "The notification protocol"): the
service manager passes the address of an ``AF_UNIX`` datagram socket in the
``NOTIFY_SOCKET`` environment variable, a file system path or, with a leading ``@``,
a name in the abstract namespace; the service sends datagrams of newline-separated
``KEY=VALUE`` assignments. So this module needs neither libsystemd nor a Python
binding of it:

* ``READY=1`` once the daemon does its job (listening, initial tunnels attempted),
  with a one-line ``STATUS=`` that ``systemctl status`` shows;
* ``RELOADING=1`` plus ``MONOTONIC_USEC=`` (the CLOCK_MONOTONIC time, which systemd
  253's ``Type=notify-reload`` requires to match the reload to the request) when a
  SIGHUP is being applied, then ``READY=1`` again;
* ``STOPPING=1`` when shutting down;
* ``WATCHDOG=1`` every half ``WATCHDOG_USEC`` (sd_watchdog_enabled(3) recommends
  half), from a task on the daemon's event loop: a loop that is stuck stops pinging,
  which is exactly what the watchdog is meant to notice.

Sends never block (a full socket drops the message: the next status or ping
replaces it) and never raise: a missing or broken socket is logged once, because a
daemon must not stop working because its supervisor went away. Without
``NOTIFY_SOCKET`` every call is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping

log = logging.getLogger("l2tp.daemons.sdnotify")

ENV_SOCKET = "NOTIFY_SOCKET"
ENV_WATCHDOG_USEC = "WATCHDOG_USEC"
ENV_WATCHDOG_PID = "WATCHDOG_PID"
STATUS_MAX = 1024
"""Longest STATUS text sent: a status is one line for ``systemctl status``, not a report."""


def socket_address(value: str) -> str | bytes | None:
    """The ``sendto`` address of a ``NOTIFY_SOCKET`` value; None when it is not one.

    A leading ``@`` names the abstract namespace (a NUL byte on the wire); an absolute
    path is a socket file. Anything else (systemd also documents ``vsock:`` addresses
    for virtual machines) is not for a daemon on the host and is ignored.
    """
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode("utf-8", "surrogateescape")
    if value.startswith("/"):
        return value
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``WATCHDOG_USEC``, or None.

    None when the watchdog is off: no (or a malformed, or zero) ``WATCHDOG_USEC``, or
    a ``WATCHDOG_PID`` naming another process (the variables were inherited from a
    parent that was the one being watched), as sd_watchdog_enabled(3) does.
    """
    usec_text = environ.get(ENV_WATCHDOG_USEC)
    if not usec_text:
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid_text = environ.get(ENV_WATCHDOG_PID)
    if pid_text:
        try:
            if int(pid_text) != pid:
                return None
        except ValueError:
            return None
    return usec / 1_000_000 / 2


def one_line(text: str) -> str:
    """A STATUS value: the protocol separates assignments by newlines, so none may be in it."""
    flat = " ".join(text.split())
    return flat if len(flat) <= STATUS_MAX else flat[: STATUS_MAX - 3] + "..."


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock ``MONOTONIC_USEC=`` is read against."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends notifications to the service manager; every method is a no-op without one.

    Build it with :meth:`from_environ` at start-up, which by default also removes the
    variables from the environment so that pppd and hook programs, started later,
    cannot notify in the daemon's name (sd_notify's ``unset_environment``).
    """

    def __init__(
        self, address: str | bytes | None, *, watchdog: float | None = None, label: str = ""
    ) -> None:
        self.address = address
        self.watchdog = watchdog
        """Seconds between watchdog pings, or None when systemd runs no watchdog."""
        self.label = label or (repr(address) if address is not None else "")
        self.sent = 0
        self.failed = 0
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environ(
        cls, environ: MutableMapping[str, str] | None = None, *, unset: bool = True
    ) -> Notifier:
        env = os.environ if environ is None else environ
        value = env.get(ENV_SOCKET, "")
        address = socket_address(value) if value else None
        if value and address is None:
            log.warning("%s=%s is not a socket address; not notifying systemd", ENV_SOCKET, value)
        watchdog = watchdog_interval(env, os.getpid()) if address is not None else None
        if unset:
            for name in (ENV_SOCKET, ENV_WATCHDOG_USEC, ENV_WATCHDOG_PID):
                env.pop(name, None)
        return cls(address, watchdog=watchdog, label=value)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; True if the socket took it.

        The protocol's own key names are the keyword arguments, in the order given:
        ``send(READY=1, STATUS="up")`` sends ``READY=1\\nSTATUS=up\\n``.
        """
        if self.address is None:
            return False
        message = "".join(f"{key}={value}\n" for key, value in fields.items())
        try:
            sock = self._socket()
            sock.sendto(message.encode("utf-8", "surrogateescape"), self.address)
        except BlockingIOError:
            # The manager is behind: this message is lost; the next one says the same.
            self.failed += 1
            return False
        except OSError as exc:
            self.failed += 1
            if not self._warned:
                self._warned = True
                log.warning(
                    "cannot notify systemd on %s: %s (further failures are not logged)",
                    self.label,
                    exc.strerror or exc,
                )
            return False
        self.sent += 1
        return True

    def _socket(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.socket(
                socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
            )
        return self._sock

    def ready(self, status: str | None = None) -> bool:
        if status is None:
            return self.send(READY=1)
        return self.send(READY=1, STATUS=one_line(status))

    def status(self, status: str) -> bool:
        return self.send(STATUS=one_line(status))

    def reloading(self, status: str = "reloading the configuration") -> bool:
        return self.send(RELOADING=1, MONOTONIC_USEC=monotonic_usec(), STATUS=one_line(status))

    def stopping(self, status: str = "stopping") -> bool:
        return self.send(STOPPING=1, STATUS=one_line(status))

    def ping(self) -> bool:
        return self.send(WATCHDOG=1)

    async def run_watchdog(
        self, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    ) -> None:
        """Ping every :attr:`watchdog` seconds until cancelled; returns at once without one.

        Runs as a task on the daemon's own loop on purpose: a loop blocked by a bug
        stops the pings, and systemd restarts the daemon (``WatchdogSec=``,
        ``Restart=on-failure``). ``sleep`` is injectable for tests.
        """
        interval = self.watchdog
        if interval is None or self.address is None:
            return
        while True:
            self.ping()
            await sleep(interval)

    def start_watchdog(self) -> asyncio.Task[None] | None:
        """:meth:`run_watchdog` in a task of the running loop (None when there is no watchdog)."""
        if self.watchdog is None or self.address is None:
            return None
        return asyncio.get_running_loop().create_task(self.run_watchdog(), name="sd-watchdog")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
