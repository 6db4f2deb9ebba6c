"""One of our daemons as a real process in a network namespace, for the kernel tier.

Either inside the namespace (``ip netns exec``) or outside it with ``--netns``
(sockets and kernel objects must end up there just the same). Subclasses name
the module and the log verbosity.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path


class DaemonProcess:
    """A daemon with its config file, log and readiness file under ``workdir``."""

    MODULE = "l2tp.daemons.l2tpd"
    VERBOSITY = "-v"

    def __init__(
        self, ns: str, config: str, workdir: Path, name: str, *, netns_flag: bool = False
    ) -> None:
        self.ns = ns
        self.netns_flag = netns_flag
        self.path = workdir / f"{name}.toml"
        self.path.write_text(config)
        self.ready = workdir / f"{name}.ready"
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def program(self) -> str:
        return self.MODULE.rsplit(".", 1)[-1]

    def start(self, timeout: float = 60.0, *, wait_ready: bool = True) -> None:
        self.ready.unlink(missing_ok=True)
        argv = [] if self.netns_flag else ["ip", "netns", "exec", self.ns]
        argv += [sys.executable, "-m", self.MODULE, str(self.path)]
        argv += ["--ready-file", str(self.ready), self.VERBOSITY]
        if self.netns_flag:
            argv += ["--netns", self.ns]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while wait_ready and not self.ready.exists():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.program} exited {self.proc.returncode}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.program} not ready after {timeout} s:\n{self.output()}"
                )
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
