"""Processes the kernel tier runs in network namespaces: one harness for all of them.

:class:`ManagedProcess` is what every such process needs: started with its output in a
log file, waited for until it says it is ready (failing with its log when it exits or
takes too long), stopped with a signal and, past a time limit, SIGKILL. On it:

* :class:`DaemonProcess`, one of our daemons, either inside the namespace (``ip netns
  exec``) or outside it with ``--netns`` (sockets and kernel objects must end up there
  just the same), ready when its ``--ready-file`` exists. Subclasses name the module
  and the log verbosity, and may start it by forking this process (``FORK``, see
  :class:`ForkedChild`): ~0.1 s instead of the ~12 s a new Python takes to import the
  daemon in the emulated VM.
* ``xl2tpd_harness.Xl2tpd`` (xl2tpd, ready when its control pipe exists) and
  ``xl2tpd_harness.Capture`` (tcpdump, ready when it says "listening on").

What a stopped daemon must not leave behind is read here too, without starting a
process where possible (each costs 0.25-0.5 s in the emulated VM): :func:`pppd_in`
(from /proc), :func:`l2tp_objects` (one ``ip -batch``). :func:`clean_up` is the
fixtures' end: SIGKILL what still runs, keep the logs (``L2TP_TEST_LOGS``), kill the
pppd a failed test left in its namespaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.helpers import wait_until

CLONE_NEWNET = 0x40000000


class ForkedChild:
    """One of our daemons in a child of this process: ``fork`` without ``exec``.

    A new Python imports a daemon's code for ~12 s in the emulated VM (pyroute2 alone
    3-4 s; three starting at once on its two CPUs took 38 s); the test process has
    imported it once already, so a fork starts the daemon in well under a second. The
    child runs the daemon module's own ``main`` with the arguments of its command line,
    its output going to the log, and ends with ``os._exit`` (none of pytest's clean-up
    runs twice). With ``netns`` the child first moves itself into that namespace (what
    ``ip netns exec`` does, less its private ``/sys`` mount: our daemons read interfaces
    over netlink, not ``/sys/class/net``), so pppd and hook scripts it starts are there
    too. Forking is safe only while this process has no other thread: :meth:`possible`.

    Quacks like the parts of :class:`subprocess.Popen` the harness uses (``pid``,
    ``returncode``, ``poll``, ``wait``, ``send_signal``, ``terminate``, ``kill``).
    """

    def __init__(self, module: str, argv: Sequence[str], log: Path, netns: str | None) -> None:
        main: Callable[[list[str]], int] = importlib.import_module(module).main
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            status = 70
            try:
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.close(fd)
                sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                # The test process's objects are the daemon's garbage collector's work
                # too unless frozen: every full pass would walk (and, copy-on-write,
                # copy) all of pytest's heap.
                gc.freeze()
                if netns is not None:
                    _enter_netns(netns)
                status = main(list(argv))
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(status)
        self.pid = pid
        self.returncode: int | None = None

    @staticmethod
    def possible() -> bool:
        """Whether forking is safe now: no other thread (it could hold a lock the child
        would wait on for ever)."""
        return threading.active_count() == 1

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (status := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            time.sleep(0.02)
        return status

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _enter_netns(ns: str) -> None:
    """Move this (single-threaded) process into network namespace ``ns`` for good."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


class ManagedProcess:
    """One process and its log; ``proc`` is None until :meth:`spawn`."""

    def __init__(self, label: str, log: Path) -> None:
        self.label = label
        """What error messages call it ("xl2tpd lns", "l2tpd")."""
        self.log = log
        self.proc: subprocess.Popen[bytes] | ForkedChild | None = None

    def spawn(self, argv: Sequence[str], *, append: bool = True) -> None:
        """Start ``argv`` with stdout and stderr going to the log."""
        with self.log.open("ab" if append else "wb") as out:
            self.proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT)

    def is_ready(self) -> bool:
        """Whether the process has said it is ready (subclasses say how)."""
        return True

    def wait_ready(self, timeout: float) -> None:
        """Wait until :meth:`is_ready`; AssertionError with the log if it exits or is late."""

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.label} exited {self.proc.returncode}:\n{self.output()}"
                )
            return self.is_ready()

        try:
            wait_until(ready, timeout, f"{self.label} to be ready")
        except AssertionError as exc:
            if self.proc is not None and self.proc.poll() is not None:
                raise
            raise AssertionError(f"{exc}:\n{self.output()}") from None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(
        self, sig: int = signal.SIGTERM, timeout: float = 30.0, *, raise_on_timeout: bool = True
    ) -> int | None:
        """Send ``sig`` (if still running) and wait; past ``timeout`` SIGKILL it, then
        raise :class:`subprocess.TimeoutExpired` unless ``raise_on_timeout`` is false.
        Returns the exit status (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait()
            if raise_on_timeout:
                raise
            return status

    def stop_timed(
        self, done: Callable[[], bool] | None = None, timeout: float = 30.0
    ) -> tuple[float, float, int]:
        """SIGTERM and watch: ``(seconds until done() first held, seconds until exit,
        exit status)``, polled every 50 ms; done() not seen before the exit counts as the
        exit. Past ``timeout`` SIGKILL and AssertionError with the log's tail."""
        assert self.proc is not None, f"{self.label} was never started"
        t0 = time.monotonic()
        self.proc.terminate()
        seen: float | None = None
        while self.proc.poll() is None and time.monotonic() - t0 < timeout:
            if seen is None and done is not None and done():
                seen = time.monotonic() - t0
            time.sleep(0.05)
        if self.proc.poll() is None:
            self.kill()
            raise AssertionError(
                f"{self.label} still running {timeout} s after SIGTERM\n{self.tail()}"
            )
        took = time.monotonic() - t0
        status = self.proc.poll()
        assert status is not None
        return (took if seen is None else seen), took, status

    def kill(self) -> None:
        """SIGKILL if still running (fixtures' clean-up after a failed test)."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 60) -> str:
        """The log's last lines, headed by the label (for assertion messages)."""
        text = "\n".join(self.output().splitlines()[-lines:])
        return f"--- {self.label} (last {lines} lines)\n{text}"


class DaemonProcess(ManagedProcess):
    """A daemon with its config file, log and readiness file under ``workdir``."""

    MODULE = "l2tp.daemons.l2tpd"
    VERBOSITY = "-v"
    FORK = False
    """Start it with :class:`ForkedChild` when that is possible (a new Python otherwise):
    for tests that do not need the daemon's own command line (``ps``, NetworkManager).
    Not for tests that time what the daemon's own children do (test_shutdown): a forked
    daemon's address space is the test process's, copied page by page as it writes, and
    its first seconds (and its forks of pppd) are slower for it in the emulated VM
    (20 sessions: up after 7.0-12.7 s forked, 6.2-7.5 s as a new Python)."""

    def __init__(
        self, ns: str, config: str, workdir: Path, name: str, *, netns_flag: bool = False
    ) -> None:
        super().__init__(self.MODULE.rsplit(".", 1)[-1], workdir / f"{name}.log")
        self.ns = ns
        self.netns_flag = netns_flag
        self.path = workdir / f"{name}.toml"
        self.path.write_text(config)
        self.ready = workdir / f"{name}.ready"

    @property
    def program(self) -> str:
        return self.label

    @property
    def forked(self) -> bool:
        """Whether it was started by :class:`ForkedChild` (for a test's printed figures)."""
        return isinstance(self.proc, ForkedChild)

    def is_ready(self) -> bool:
        return self.ready.exists()

    def start(self, timeout: float = 60.0, *, wait_ready: bool = True) -> None:
        self.ready.unlink(missing_ok=True)
        args = [str(self.path), "--ready-file", str(self.ready), self.VERBOSITY]
        args += ["--control", str(self.path.with_suffix(".sock"))]  # not /run/l2tp: shared
        if self.netns_flag:
            args += ["--netns", self.ns]
        if self.FORK and ForkedChild.possible() and not os.environ.get("L2TP_TEST_NO_FORK"):
            netns = None if self.netns_flag else self.ns
            self.proc = ForkedChild(self.MODULE, args, self.log, netns)
        else:
            argv = [] if self.netns_flag else ["ip", "netns", "exec", self.ns]
            self.spawn([*argv, sys.executable, "-m", self.MODULE, *args])
        if wait_ready:
            self.wait_ready(timeout)

    def stop(
        self, sig: int = signal.SIGTERM, timeout: float = 30.0, *, raise_on_timeout: bool = True
    ) -> int:
        status = super().stop(sig, timeout, raise_on_timeout=raise_on_timeout)
        assert status is not None, f"{self.label} was never started"
        return status


def _ns_inode(ns: str) -> int:
    return os.stat(f"/run/netns/{ns}").st_ino


def pppd_in(ns: str) -> list[int]:
    """pids of the pppol2tp pppd processes in namespace ``ns`` (read from /proc)."""
    want = _ns_inode(ns)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            if b"pppol2tp" not in cmd or not cmd.split(b"\0", 1)[0].endswith(b"pppd"):
                continue
            if os.stat(f"/proc/{entry}/ns/net").st_ino == want:
                found.append(int(entry))
        except OSError:
            continue
    return found


def l2tp_objects(ns: str) -> tuple[list[Any], list[Any]]:
    """The kernel's L2TP tunnels and sessions in ``ns`` (one ``ip -batch`` process)."""
    done = subprocess.run(
        ["ip", "-n", ns, "-j", "-batch", "-"],
        input="l2tp show tunnel\nl2tp show session\n",
        capture_output=True,
        text=True,
    )
    decoder = json.JSONDecoder()
    docs: list[Any] = []
    text = done.stdout.strip()
    while text:
        doc, end = decoder.raw_decode(text)
        docs.append(doc)
        text = text[end:].strip()
    while len(docs) < 2:  # ip prints nothing for an empty list
        docs.append([])
    return docs[0], docs[1]


def clean_up(started: Iterable[ManagedProcess], namespaces: Iterable[str] = ()) -> None:
    """A fixture's end: SIGKILL what still runs, copy the logs to ``L2TP_TEST_LOGS`` (a
    writable folder) when it is set, and SIGKILL the pppd left in ``namespaces`` (by pid:
    a failed test's daemon may not have reaped them)."""
    started = list(started)
    for proc in started:
        proc.kill()
    keep = os.environ.get("L2TP_TEST_LOGS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for proc in started:
            (Path(keep) / proc.log.name).write_text(proc.output())
    for ns in namespaces:
        for pid in pppd_in(ns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
