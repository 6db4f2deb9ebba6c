"""Running the ``[hooks]`` programs: bounded in time and number, ordered per tunnel/session.

A hook is an operator's program (update a firewall set, tell a RADIUS accounting
server, page someone) run when a tunnel or session comes up or goes down. The
control plane must not care how long it takes or whether it works, so:

* **No waits on the loop.** Programs start with :func:`asyncio.create_subprocess_exec`
  (argv, never a shell) and are awaited in tasks; the control plane only appends a
  job to a queue.
* **Bounded run time.** After ``timeout`` the program's process group (each hook
  runs in a session of its own, so a shell script's children go too) gets SIGTERM,
  and :attr:`HookRunner.kill_grace` seconds later SIGKILL.
* **Bounded concurrency and memory.** At most ``max_concurrent`` run at once and at
  most ``max_queued`` wait. A job that finds the queue full is dropped, logged and
  counted (:attr:`HookCounters.dropped`) rather than growing the queue without bound
  under a storm of sessions.
* **Order per object.** A ``down`` job names the ``up`` job of the same tunnel or
  session (:attr:`HookJob.after`) and starts only once that one has finished (or
  was dropped, in which case the ``down`` is dropped too: a script never sees a
  ``down`` without its ``up``). Jobs start in queue order, so the ``up`` has always
  started first and waiting for it cannot deadlock.
* **Loud but harmless failures.** A non-zero exit, a program that cannot be run
  (missing, not executable) and a timeout are each logged at WARNING and counted.

What a hook gets is its environment: the daemon's own (minus systemd's notification
variables, which :mod:`l2tp.daemons.sdnotify` removes) plus the ``L2TP_*`` variables
that :mod:`l2tp.daemons.hook_events` builds. Its standard input is ``/dev/null``; its
output goes where the daemon's goes (the journal under systemd).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field

from l2tp.config.model import HooksSection

log = logging.getLogger("l2tp.daemons.hooks")

KILL_GRACE = 2.0
"""Seconds between a timed-out hook's SIGTERM and its SIGKILL."""


class HookEvent(enum.StrEnum):
    """What happened; the value is the ``[hooks]`` key and ``L2TP_EVENT``."""

    TUNNEL_UP = "tunnel_up"
    TUNNEL_DOWN = "tunnel_down"
    SESSION_UP = "session_up"
    SESSION_DOWN = "session_down"


def program_for(settings: HooksSection, event: HookEvent) -> tuple[str, ...]:
    """The argv configured for ``event`` (empty: none)."""
    programs = {
        HookEvent.TUNNEL_UP: settings.tunnel_up,
        HookEvent.TUNNEL_DOWN: settings.tunnel_down,
        HookEvent.SESSION_UP: settings.session_up,
        HookEvent.SESSION_DOWN: settings.session_down,
    }
    return programs[event]


@dataclass(slots=True)
class HookCounters:
    """What the hooks did since the daemon started (a plain object for the control socket).

    ``queued`` counts jobs accepted; each ends as exactly one of ``succeeded``,
    ``failed`` (non-zero exit, or the program could not be run), ``timed_out``, or
    ``dropped`` (the queue was full, its ``up`` was dropped, or the daemon stopped
    before it ended: those still running are killed). ``runs`` counts programs started;
    ``running`` and ``waiting`` are the current numbers.
    """

    queued: int = 0
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    dropped: int = 0
    running: int = 0
    waiting: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "queued": self.queued,
            "runs": self.runs,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "timed_out": self.timed_out,
            "dropped": self.dropped,
            "running": self.running,
            "waiting": self.waiting,
        }


class Outcome(enum.StrEnum):
    """How one job ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    DROPPED = "dropped"


@dataclass(eq=False, slots=True)
class HookJob:
    """One program to run for one event; ``done`` is set once it has ended, whatever way."""

    event: HookEvent
    argv: tuple[str, ...]
    env: dict[str, str]
    what: str
    """For log lines: ``tunnel 5`` or ``session 5/7``."""
    after: HookJob | None = None
    outcome: Outcome | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class HookRunner:
    """Queues and runs hook jobs under the limits of a :class:`HooksSection`."""

    def __init__(
        self,
        settings: HooksSection,
        *,
        base_env: Mapping[str, str] | None = None,
        kill_grace: float = KILL_GRACE,
    ) -> None:
        self.settings = settings
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.kill_grace = kill_grace
        self.counters = HookCounters()
        self._waiting: collections.deque[HookJob] = collections.deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    def configure(self, settings: HooksSection) -> None:
        """New settings (a reload): programs and timeout for jobs submitted from now on,
        limits at once (a higher ``max_concurrent`` starts waiting jobs now)."""
        self.settings = settings
        self._dispatch()

    def submit(
        self,
        event: HookEvent,
        variables: Mapping[str, str],
        *,
        what: str,
        after: HookJob | None = None,
    ) -> HookJob | None:
        """Queue the program of ``event`` with ``variables`` added to its environment.

        Returns the job (for a later ``down`` to name as ``after``), or None when no
        program is configured for ``event``. A job that does not fit is returned
        already ended (:attr:`Outcome.DROPPED`), so its ``down`` is dropped as well.
        """
        argv = program_for(self.settings, event)
        if not argv:
            return None
        env = {**self.base_env, **variables}
        job = HookJob(event=event, argv=argv, env=env, what=what, after=after)
        self.counters.queued += 1
        if self._closing:
            self._drop(job, "the daemon is stopping")
        elif after is not None and after.outcome is Outcome.DROPPED:
            self._drop(job, f"its {after.event} was dropped")
        elif len(self._waiting) >= self.settings.max_queued:
            self._drop(job, f"{self.settings.max_queued} hooks are already waiting (max_queued)")
        else:
            self._waiting.append(job)
            self.counters.waiting = len(self._waiting)
            self._dispatch()
        return job

    def _drop(self, job: HookJob, why: str) -> None:
        self.counters.dropped += 1
        log.warning("hook %s (%s) dropped: %s", job.event, job.what, why)
        self._end(job, Outcome.DROPPED)

    def _end(self, job: HookJob, outcome: Outcome) -> None:
        job.outcome = outcome
        job.done.set()

    def _dispatch(self) -> None:
        while self._waiting and len(self._tasks) < self.settings.max_concurrent:
            job = self._waiting.popleft()
            task = asyncio.get_running_loop().create_task(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(self._finished)
        self.counters.waiting = len(self._waiting)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("hook runner failed", exc_info=task.exception())
        if not self._closing:
            self._dispatch()

    async def _run(self, job: HookJob) -> None:
        try:
            if job.after is not None and not job.after.done.is_set():
                await job.after.done.wait()
            if job.after is not None and job.after.outcome is Outcome.DROPPED:
                self._drop(job, f"its {job.after.event} was dropped")
                return
            self._end(job, await self._execute(job))
        finally:
            if job.outcome is None:  # cancelled at shutdown before it could end
                self.counters.dropped += 1
                self._end(job, Outcome.DROPPED)

    async def _execute(self, job: HookJob) -> Outcome:
        self.counters.runs += 1
        self.counters.running += 1
        try:
            return await self._spawn_and_wait(job, self.settings.timeout)
        finally:
            self.counters.running -= 1

    async def _spawn_and_wait(self, job: HookJob, timeout: float) -> Outcome:
        try:
            proc = await asyncio.create_subprocess_exec(
                *job.argv,
                stdin=asyncio.subprocess.DEVNULL,
                env=job.env,
                start_new_session=True,  # its own process group: a timeout kills its children too
            )
        except OSError as exc:
            self.counters.failed += 1
            log.warning(
                "hook %s (%s) failed: cannot run %s: %s",
                job.event,
                job.what,
                job.argv[0],
                exc.strerror or exc,
            )
            return Outcome.FAILED
        try:
            try:
                status = await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                self.counters.timed_out += 1
                log.warning(
                    "hook %s (%s) timed out: %s still running after %g s; stopping it",
                    job.event,
                    job.what,
                    job.argv[0],
                    timeout,
                )
                await self._stop(proc)
                return Outcome.TIMED_OUT
        except asyncio.CancelledError:
            _signal_group(proc.pid, signal.SIGKILL)  # the daemon is going: no grace
            await asyncio.shield(proc.wait())
            raise
        if status != 0:
            self.counters.failed += 1
            how = f"killed by signal {-status}" if status < 0 else f"exited with status {status}"
            log.warning("hook %s (%s) failed: %s %s", job.event, job.what, job.argv[0], how)
            return Outcome.FAILED
        self.counters.succeeded += 1
        log.debug("hook %s (%s) done", job.event, job.what)
        return Outcome.SUCCEEDED

    async def _stop(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM to the hook's process group, SIGKILL after the grace period."""
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.kill_grace)
        except TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def close(self, timeout: float | None = None) -> None:
        """Let queued and running hooks finish for up to ``timeout`` seconds (default: one
        hook's timeout plus the kill grace), then kill what still runs and drop the rest.

        Called at shutdown after the last events were submitted, so the ``down`` hooks of
        the tunnels the daemon closed still run, within a bound that systemd's
        ``TimeoutStopSec`` can be set against.
        """
        wait = self.settings.timeout + self.kill_grace if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while self._tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._tasks), timeout=left)
        self._closing = True
        while self._waiting:
            self._drop(self._waiting.popleft(), "the daemon is stopping")
        self.counters.waiting = 0
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal the hook's process group (its pid: it leads a session of its own)."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass  # already gone (and reaped)
    except PermissionError:
        # The hook made itself setuid or left its group: signal what we started.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
