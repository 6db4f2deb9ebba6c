"""One of our daemons as a subprocess with the null data plane, for the loopback tier.

Its output goes to a file next to its configuration, so that a test can wait for what
the daemon says (``started``, ``redialling``, ``configuration reloaded``) while it runs,
instead of sleeping and hoping it got there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import until


class Daemon:
    """``python -m MODULE CONFIG --null-dataplane --ready-file ... --control ...`` and its
    output. The control socket is next to the configuration (not the default under
    /run/l2tp, which two daemons of one kind in a test, or a real daemon, would share)."""

    def __init__(self, module: str, config: Path, *args: str, stderr_apart: bool = False) -> None:
        self.program = module.rsplit(".", 1)[-1]
        self.log = config.with_suffix(".log")
        self.stderr_log = config.with_suffix(".stderr") if stderr_apart else None
        """With ``stderr_apart``: the log records (standard error) kept apart from the
        status lines (standard output, :meth:`output`)."""
        self.ready = config.with_suffix(".ready")
        self.control = config.with_suffix(".sock")
        argv = [sys.executable, "-m", module, str(config), "--null-dataplane"]
        argv += ["--ready-file", str(self.ready)]
        if "--control" not in args:
            argv += ["--control", str(self.control)]
        argv += args
        with self.log.open("w") as out:
            err = self.stderr_log.open("w") if self.stderr_log is not None else None
            try:
                self.proc = subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=err if err is not None else subprocess.STDOUT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            finally:
                if err is not None:
                    err.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def records(self) -> str:
        """Standard error when kept apart (``stderr_apart``), else everything."""
        path = self.stderr_log if self.stderr_log is not None else self.log
        return path.read_text(errors="replace")

    def says(self, text: str) -> bool:
        """True once ``text`` is in the output; fails at once if the daemon has exited."""
        if text in self.output():
            return True
        assert self.proc.poll() is None, f"{self.program} exited:\n{self.output()}"
        return False

    async def wait_ready(self) -> None:
        await until(lambda: self.says("started") and self.ready.exists(), f"{self.program} ready")

    async def wait_says(self, text: str) -> None:
        await until(lambda: self.says(text), f"{self.program} to say {text!r}")

    def send_signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, wait: float = 5.0) -> str:
        """Wait ``wait`` s for an exit the test asked for, else SIGTERM (then SIGKILL);
        returns the output. Never a second SIGTERM: one during shutdown kills."""
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.output()
