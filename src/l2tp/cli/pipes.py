"""A reader that goes away (``l2tp decode x.pcap | head -1``) is not an error.

Python ignores SIGPIPE, so a write to a pipe whose reader has exited raises
:class:`BrokenPipeError`; left alone it ends in ``[Errno 32] Broken pipe`` or a
traceback, exit status 1 or 120. The standard fix (Python's ``signal`` module
documentation, "Note on SIGPIPE") is to catch it around the program, point
stdout at ``/dev/null`` so the interpreter's final flush stays quiet, and exit
as the shell tools do when ``head`` has what it wanted: successfully.

:func:`run_quietly` does that for one command, and only when it is *stdout*
whose reader went away: an EPIPE from anything else (a socket, a child's pipe)
is a real error and propagates.
"""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable


def stdout_gone() -> bool:
    """Whether stdout is a pipe (or socket) whose reading end has been closed."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    try:
        events = poller.poll(0)
    except OSError:
        return False
    return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in events)


def silence_stdout() -> None:
    """Point stdout's file descriptor at /dev/null (the interpreter still flushes it at exit)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def run_quietly(func: Callable[[], int]) -> int:
    """``func()``, then flush stdout; exit status 0 if stdout's reader went away meanwhile."""
    try:
        status = func()
        sys.stdout.flush()
    except BrokenPipeError:
        if not stdout_gone():
            raise
        silence_stdout()
        return 0
    return status
