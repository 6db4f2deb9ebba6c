"""Hand established PPP sessions to ``pppd`` (the :class:`~l2tp.runtime.backend.SessionBackend`
for L2TPv2 and L2TPv3 PPP pseudowires).

For each session the control plane has created in the kernel, :class:`PppdBackend`
connects a PPPoL2TP socket to it (``DataPlane.open_ppp_socket``) and starts::

    pppd plugin pppol2tp.so pppol2tp FD pppol2tp_tunnel_id TID pppol2tp_session_id SID
         [pppol2tp_lns_mode] nodetach passive lcp-max-terminate 1
         [ifname NAME] [mtu N mru N] USER-OPTIONS...

with the socket passed by ``pass_fds``. ``USER-OPTIONS`` are ``file PATH`` for
the session's ``pppd_args`` file (pppd reads it with its own quoting, escape and
comment rules, as NetworkManager-l2tp expects; :mod:`l2tp.runtime.ppp_options`)
followed by its inline ``pppd_options``. Everything is an ``argv`` list given to
:func:`asyncio.create_subprocess_exec`: no shell ever sees it, and no string
the peer sent (host name, calling number ...) is ever put on pppd's command
line. The options come from the administrator's configuration and are checked
(:func:`check_user_options`) for NUL and control characters and for the few
options that would break the contract with the control plane (``detach``,
``persist``, a second ``pppol2tp`` ...).

Two of our options are there for sessions set up in bursts and torn down
together (issue 13: 6 of 40 sessions in one tunnel never came up):

* ``passive`` (as xl2tpd gives it): when the peer does not answer the first
  ``lcp-max-configure`` LCP Configure-Requests (10 x 3 s by default), pppd
  waits for the peer's instead of exiting 16. The two pppd of a session never
  start together: the LAC's starts once its ICCN is queued, the LNS's once that
  ICCN has arrived and been handled, behind every earlier message of the tunnel
  (a window of 4 unacknowledged messages) and the LNS's work for the earlier
  calls. Under a burst of calls, or on a busy host, the LNS side can start more
  than 30 s later, and a pppd without ``passive`` gives up on a session the
  control plane has just established. How long to wait for the peer is the
  control plane's business (CDN, StopCCN, HELLO), not pppd's.
* ``lcp-max-terminate 1``: pppd asked to stop (SIGTERM) sends an LCP
  Terminate-Request and waits for the Ack through 2 transmissions x 3 s = 6 s
  by default, longer than ``stop_timeout``. When the backend stops pppd the
  session is ending (CDN, StopCCN) and the peer's side is often gone already,
  so the Ack never comes and pppd would end in SIGKILL, skipping its ``ip-down``
  script; with one transmission it gives up after the restart interval and
  exits cleanly (a live peer's Ack ends it sooner).
* ``lcp-restart 1``: that interval, 1 s instead of 3 s, so an unanswered
  Terminate-Request costs 1 s (NetworkManager kills kl2tpd 2 s after its
  SIGTERM: issue 16). The same interval paces LCP Configure-Requests, which on
  an L2TP session (no link to wait for) only makes an unanswered start go
  ``passive`` sooner.

The control plane does not leave pppd to its LCP timers when a session ends:
:meth:`PppdBackend.stop` sends SIGTERM and, if pppd has not exited within the
context's ``hangup_after`` (0.2 s), the kernel session is deleted under it (which
on Linux 4.16 and later frees the kernel objects but does not hang pppd up: see
:mod:`l2tp.runtime.teardown`); a daemon shutting down stops every pppd before
its StopCCN, so that the peer still answers the LCP Terminate-Requests (issue 16).
``stop_timeout`` (10 s) is then only for a pppd that ignores SIGTERM, or whose
exit is held up: its
scripts (``ip-down``), or, in the emulated test VM, the kernel's removal of
many ppp interfaces at once, which holds the RTNL lock every pppd waits for
(20 + 20 pppd took up to 6.5 s there; at 5 s one was killed).

pppd's output (``nodetach`` logs to stdout) is logged line by line with the
session's IDs. Its ``Using interface NAME`` line, which pppd writes once it has
attached the session's channel to a new PPP unit (before LCP starts), names the
session's interface (``pppN``, or the ``ifname`` given): it is reported to the
control plane (``session.report_interface``, :mod:`l2tp.runtime.backend` step 3),
for ``l2tp ctl sessions`` and the ``session_up`` hooks. Only a line that starts
with it counts: what pppd quotes from the peer (``Remote message: ...``) never
starts a line. When pppd exits by itself, its exit status (``man pppd``, EXIT
STATUS) is mapped to a CDN Result Code by :func:`map_exit` / :data:`EXIT_TABLE`
and reported with ``session.report_down``; :meth:`PppdBackend.stop` sends
SIGTERM, waits ``stop_timeout`` seconds and then SIGKILLs, and reports nothing.

Closing a PPPoL2TP socket makes Linux delete the kernel session it is attached
to, so once pppd has exited the session may already be gone from the kernel.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import os
import re
import shutil
import signal
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from l2tp.addresses import address_text
from l2tp.protocol.constants import CdnResult, ErrorCode
from l2tp.runtime.backend import BackendSession, EndedSessions
from l2tp.runtime.ppp_options import (
    FORBIDDEN,
    MAX_ARGS_FILE,
    PppdOptionsError,
    check_user_options,
    parse_args_text,
    pppd_words,
    read_args_file,
    redact,
    user_options,
)

__all__ = [
    "FORBIDDEN",
    "MAX_ARGS_FILE",
    "PLUGIN",
    "PppdBackend",
    "PppdExit",
    "PppdExitStatus",
    "PppdNotFound",
    "PppdOptionsError",
    "build_argv",
    "check_user_options",
    "find_pppd",
    "inherited_env",
    "login_failed",
    "map_exit",
    "netns_prefix",
    "parse_args_text",
    "pppd_words",
    "read_args_file",
    "redact",
    "user_options",
]

log = logging.getLogger(__name__)

PLUGIN = "pppol2tp.so"
"""Found by pppd in its plugin directory (``/usr/lib/pppd/<version>/``)."""

USING_INTERFACE = re.compile(r"Using interface (\S{1,15})$")
"""pppd's log line naming its interface (pppd's ``set_ifunit``); IFNAMSIZ bounds it."""

PPPD_CANDIDATES = ("/usr/sbin/pppd", "/sbin/pppd", "/usr/local/sbin/pppd")


class PppdNotFound(FileNotFoundError):
    """No pppd executable."""


class PppdExitStatus(enum.IntEnum):
    """pppd's exit statuses (``man pppd``, section EXIT STATUS; ``pppd.h`` ``EXIT_*``)."""

    OK = 0
    """Detached, or the link was up and was terminated at the peer's request."""
    FATAL_ERROR = 1
    OPTION_ERROR = 2
    NOT_ROOT = 3
    NO_KERNEL_SUPPORT = 4
    USER_REQUEST = 5
    """Terminated by SIGINT, SIGTERM or SIGHUP."""
    LOCK_FAILED = 6
    OPEN_FAILED = 7
    CONNECT_FAILED = 8
    PTYCMD_FAILED = 9
    NEGOTIATION_FAILED = 10
    """PPP negotiation failed: no network protocol came up."""
    PEER_AUTH_FAILED = 11
    IDLE_TIMEOUT = 12
    CONNECT_TIME = 13
    CALLBACK = 14
    PEER_DEAD = 15
    """The peer stopped answering LCP echo requests."""
    HANGUP = 16
    """The "modem" hung up: here, the PPPoL2TP channel went away."""
    LOOPBACK = 17
    INIT_FAILED = 18
    AUTH_TOPEER_FAILED = 19
    TRAFFIC_LIMIT = 20
    CNID_AUTH_FAILED = 21


S = PppdExitStatus
R = CdnResult

EXIT_TABLE: dict[PppdExitStatus, tuple[CdnResult, str]] = {
    S.OK: (R.LOST_CARRIER, "PPP link terminated by the peer"),
    S.FATAL_ERROR: (R.GENERAL_ERROR, "pppd fatal error"),
    S.OPTION_ERROR: (R.GENERAL_ERROR, "pppd options error"),
    S.NOT_ROOT: (R.GENERAL_ERROR, "pppd lacks privileges"),
    S.NO_KERNEL_SUPPORT: (R.PERMANENT_NO_FACILITIES, "no PPP support in the kernel"),
    S.USER_REQUEST: (R.ADMINISTRATIVE, "pppd terminated by a signal"),
    S.LOCK_FAILED: (R.TEMPORARY_NO_FACILITIES, "pppd could not lock its device"),
    S.OPEN_FAILED: (R.TEMPORARY_NO_FACILITIES, "pppd could not open its device"),
    S.CONNECT_FAILED: (R.GENERAL_ERROR, "pppd connect script failed"),
    S.PTYCMD_FAILED: (R.GENERAL_ERROR, "pppd pty command failed"),
    S.NEGOTIATION_FAILED: (R.NO_FRAMING, "PPP negotiation failed"),
    S.PEER_AUTH_FAILED: (R.GENERAL_ERROR, "PPP authentication of the peer failed"),
    S.IDLE_TIMEOUT: (R.ADMINISTRATIVE, "PPP idle timeout"),
    S.CONNECT_TIME: (R.ADMINISTRATIVE, "PPP connect time limit reached"),
    S.CALLBACK: (R.ADMINISTRATIVE, "PPP callback negotiated"),
    S.PEER_DEAD: (R.LOST_CARRIER, "PPP peer not answering LCP echo requests"),
    S.HANGUP: (R.LOST_CARRIER, "PPP channel hung up"),
    S.LOOPBACK: (R.GENERAL_ERROR, "PPP loopback detected"),
    S.INIT_FAILED: (R.GENERAL_ERROR, "pppd init script failed"),
    S.AUTH_TOPEER_FAILED: (R.GENERAL_ERROR, "PPP authentication to the peer failed"),
    S.TRAFFIC_LIMIT: (R.ADMINISTRATIVE, "PPP traffic limit reached"),
    S.CNID_AUTH_FAILED: (R.GENERAL_ERROR, "PPP calling number authorisation failed"),
}
"""pppd exit status -> (CDN Result Code, Error Message sent to the peer); see docs/ppp.md.

Result Codes 6-11 exist in L2TPv2 only (RFC 3931 section 5.4.2 leaves them
out): :func:`map_exit` turns them into 2 (general error) for L2TPv3.
"""

_V2_ONLY_RESULTS = frozenset(range(6, 12))


@dataclass(frozen=True, slots=True, kw_only=True)
class PppdExit:
    """How one pppd ended and what the CDN says about it.

    ``message`` goes to the peer (CDN Error Message): it is generic and never
    contains pppd's output, which can hold local paths and addresses.
    ``output`` keeps pppd's last lines for local logs and diagnostics.
    """

    returncode: int
    """As :attr:`asyncio.subprocess.Process.returncode`: negative for a signal."""
    result: int
    error: int | None
    message: str
    stopped: bool = False
    """True when :meth:`PppdBackend.stop` ended it (nothing was reported)."""
    output: tuple[str, ...] = ()

    @property
    def status(self) -> PppdExitStatus | int | None:
        """pppd's exit status (a :class:`PppdExitStatus` when known); None after a signal."""
        if self.returncode < 0:
            return None
        try:
            return PppdExitStatus(self.returncode)
        except ValueError:
            return self.returncode


def map_exit(returncode: int, *, version: int = 2) -> tuple[int, int | None, str]:
    """``(result, error, message)`` for a CDN after pppd ended with ``returncode``.

    ``returncode`` is a process return code: ``-N`` when killed by signal N.
    General errors (Result Code 2) carry Error Code 6 (vendor-specific) and the
    message; other results carry no Error Code.
    """
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if -returncode in (signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGHUP):
            return int(R.ADMINISTRATIVE), None, f"pppd killed by {name}"
        return int(R.GENERAL_ERROR), int(ErrorCode.VENDOR_SPECIFIC), f"pppd died of {name}"
    try:
        result, text = EXIT_TABLE[PppdExitStatus(returncode)]
    except ValueError:
        result, text = R.GENERAL_ERROR, "pppd failed"
    if version == 3 and result in _V2_ONLY_RESULTS:
        result = R.GENERAL_ERROR
    message = f"{text} (pppd exit status {returncode})"
    if result == R.GENERAL_ERROR:
        return int(result), int(ErrorCode.VENDOR_SPECIFIC), message
    return int(result), None, message


def login_failed(message: str) -> bool:
    """Whether a CDN message we sent says our side failed to authenticate to the peer:
    pppd's exit status 19 (:data:`EXIT_TABLE`) or the built-in PPP's same ending, whose
    text is the same. kl2tpd exits with status 2 on it (NetworkManager's "login
    failed")."""
    return message.startswith(EXIT_TABLE[S.AUTH_TOPEER_FAILED][1])


SYSTEMD_ONLY = frozenset(
    ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
)
"""The daemon's systemd hand-over variables: meant for the daemon alone, never for pppd."""


def inherited_env(environ: Mapping[str, str]) -> dict[str, str]:
    """pppd's environment when it inherits the daemon's: all of it but :data:`SYSTEMD_ONLY`,
    with a ``PATH`` for pppd's scripts when there is none.

    NetworkManager-l2tp starts kl2tpd with ``NM_DBUS_SERVICE_L2TP``,
    ``NM_VPN_LOG_LEVEL`` and ``NM_VPN_LOG_PREFIX_TOKEN``, which its pppd plugin needs
    to reach NetworkManager (issue 16); go-l2tp's kl2tpd passes its environment on
    the same way.
    """
    env = {k: v for k, v in environ.items() if k not in SYSTEMD_ONLY}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def build_argv(
    session: BackendSession, fd: int, *, pppd: str, plugin: str = PLUGIN, extra: Sequence[str] = ()
) -> list[str]:
    """pppd's argv for ``session`` with its PPPoL2TP socket as ``fd`` (see the module doc).

    Our options come first so that the user's options can override the
    overridable ones (``mtu``, ``debug`` ...). ``extra`` are user options
    already read (:func:`user_options`).
    """
    info = session.info
    argv = [pppd, "plugin", plugin, "pppol2tp", str(fd)]
    argv += ["pppol2tp_tunnel_id", str(info.tunnel_id)]
    argv += ["pppol2tp_session_id", str(info.session_id)]
    if session.lns_mode:
        argv.append("pppol2tp_lns_mode")
    argv += ["nodetach", "passive", "lcp-restart", "1", "lcp-max-terminate", "1"]
    if session.options.interface_name:
        argv += ["ifname", session.options.interface_name]
    if session.options.mtu is not None:
        argv += ["mtu", str(session.options.mtu), "mru", str(session.options.mtu)]
    argv += check_user_options(extra)
    return argv


def find_pppd() -> str:
    """The pppd executable: ``$PATH`` first, then the usual sbin directories."""
    path = shutil.which("pppd") or next((p for p in PPPD_CANDIDATES if os.access(p, os.X_OK)), None)
    if path is None:
        raise PppdNotFound("pppd not found (install the ppp package)")
    return path


def netns_prefix(netns: str | None) -> list[str]:
    """argv prefix that runs a program inside network namespace ``netns`` (name or path).

    pppd creates its ppp interface in the namespace it runs in, so it must run
    where the L2TP session is. ``ip netns exec`` and ``nsenter`` both exec the
    program in place (no fork), so the process we wait for is pppd itself.
    """
    if netns is None:
        return []
    if "/" in netns:
        nsenter = shutil.which("nsenter") or "/usr/bin/nsenter"
        return [nsenter, f"--net={netns}", "--"]
    ip = shutil.which("ip") or "/usr/sbin/ip"
    return [ip, "netns", "exec", netns]


def _has_exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited, without reaping it (the child watcher does).

    asyncio learns of a child's exit from its child watcher through the event
    loop, which can lag seconds behind when the loop or the host is busy (40
    pppd ending at once in the test VM); ``returncode`` is still None then.
    """
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # already reaped
        return True


@dataclass
class _Running:
    session: BackendSession
    process: asyncio.subprocess.Process
    label: str
    log: logging.LoggerAdapter[logging.Logger]
    """The backend's logger with the session's context (tunnel, session, peer)."""
    output: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))
    stopping: bool = False
    monitor: asyncio.Task[PppdExit] | None = None
    interface: str | None = None


class PppdBackend:
    """:class:`~l2tp.runtime.backend.SessionBackend` that runs one pppd per session.

    ``netns``: the namespace pppd runs in; by default the data plane's
    (``session.dataplane.netns`` when it has one). ``stop_timeout``: seconds
    between SIGTERM and SIGKILL in :meth:`stop`. ``env``: pppd's environment
    (default: a minimal ``PATH`` only, so nothing of the daemon's leaks into
    pppd's scripts).
    """

    def __init__(
        self,
        *,
        pppd: str | None = None,
        plugin: str = PLUGIN,
        netns: str | None = None,
        stop_timeout: float = 10.0,
        env: dict[str, str] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._pppd = pppd
        self.plugin = plugin
        self.netns = netns
        self.stop_timeout = stop_timeout
        self.env = env if env is not None else {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        self.log = logger or log
        self._running: dict[tuple[int, int], _Running] = {}
        self.reports_interface = True
        """It reports each session's ``pppN`` (see the module doc and backend.py step 3)."""
        self.exits: EndedSessions[PppdExit] = EndedSessions()
        """The last :class:`PppdExit` of each recently ended session key, for diagnostics,
        tests and :meth:`wait`; the last :data:`~l2tp.runtime.backend.ENDED_KEPT` only."""

    @property
    def pppd(self) -> str:
        if self._pppd is None:
            self._pppd = find_pppd()
        return self._pppd

    def running(self, session: BackendSession) -> bool:
        return session.key in self._running

    def pid(self, session: BackendSession) -> int | None:
        run = self._running.get(session.key)
        return run.process.pid if run is not None else None

    def _netns_for(self, session: BackendSession) -> str | None:
        if self.netns is not None:
            return self.netns
        netns = getattr(session.dataplane, "netns", None)
        return netns if isinstance(netns, str) else None

    async def start(self, session: BackendSession) -> None:
        """Open the session's PPPoL2TP socket and start pppd on it.

        Raises PppdOptionsError (bad configured options), PppdNotFound, a
        KernelError from opening the socket, or OSError from the spawn; the
        socket is closed on every failure.
        """
        key = session.key
        if key in self._running:
            raise RuntimeError(f"pppd already running for session {key}")
        extra = user_options(session)  # fail before touching the kernel
        pppd = self.pppd
        info = session.info
        label = (
            f"{session.options.name or 'session'} "
            f"(tid {info.tunnel_id}/{info.peer_tunnel_id} sid {info.session_id}/"
            f"{info.peer_session_id})"
        )
        sock: socket.socket = session.dataplane.open_ppp_socket(
            session.kernel_tunnel, info.session_id, info.peer_session_id
        )
        try:
            fd = sock.fileno()
            argv = netns_prefix(self._netns_for(session))
            argv += build_argv(session, fd, pppd=pppd, plugin=self.plugin, extra=extra)
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=(fd,),
                env=self.env,
                start_new_session=True,
            )
        finally:
            sock.close()  # pppd holds its own copy; ours would keep the session alive
        context = {
            "tunnel": info.tunnel_id,
            "session": info.session_id,
            "peer": address_text(session.peer),
        }
        run = _Running(
            session=session,
            process=process,
            label=label,
            log=logging.LoggerAdapter(self.log, context),
        )
        self._running[key] = run
        run.log.info("%s: started pppd[%d]", label, process.pid)
        run.log.debug("%s: pppd[%d] argv: %s", label, process.pid, " ".join(redact(argv)))
        run.monitor = asyncio.create_task(self._monitor(run), name=f"pppd {label}")

    async def _read_output(self, run: _Running) -> None:
        stream = run.process.stdout
        if stream is None:
            return
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the stream limit
                raw = await stream.read(4096)
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip()
            if line:
                run.output.append(line)
                run.log.info("%s: pppd[%d]: %s", run.label, run.process.pid, line)
                if run.interface is None:
                    self._interface_line(run, line)

    def _interface_line(self, run: _Running, line: str) -> None:
        """Report pppd's interface once its ``Using interface NAME`` line comes."""
        match = USING_INTERFACE.match(line)
        if match is None:
            return
        run.interface = match.group(1)
        try:
            run.session.report_interface(run.interface)
        except Exception:
            run.log.exception("%s: report_interface failed", run.label)

    async def _monitor(self, run: _Running) -> PppdExit:
        reader = asyncio.create_task(self._read_output(run))
        returncode = await run.process.wait()
        # Scripts pppd started (ip-up ...) may still hold the pipe: do not wait for them.
        try:
            async with asyncio.timeout(1.0):
                await reader
        except TimeoutError:
            reader.cancel()
        session = run.session
        result, error, message = map_exit(returncode, version=session.kernel_tunnel.version)
        outcome = PppdExit(
            returncode=returncode,
            result=result,
            error=error,
            message=message,
            stopped=run.stopping,
            output=tuple(run.output),
        )
        self.exits[session.key] = outcome
        if self._running.get(session.key) is run:
            del self._running[session.key]
        if run.stopping:
            run.log.info("%s: pppd[%d] stopped (%d)", run.label, run.process.pid, returncode)
        else:
            run.log.warning(
                "%s: pppd[%d] exited (%d): %s; reporting CDN result %d",
                run.label,
                run.process.pid,
                returncode,
                message,
                result,
            )
            try:
                session.down(result, error, message)
            except Exception:
                run.log.exception("%s: report_down failed", run.label)
        return outcome

    async def wait(self, session: BackendSession, timeout: float | None = None) -> PppdExit:
        """Wait for the session's pppd to end; return how it ended (TimeoutError after
        ``timeout`` seconds)."""
        run = self._running.get(session.key)
        if run is None or run.monitor is None:
            try:
                return self.exits[session.key]
            except KeyError:
                raise LookupError(f"no pppd for session {session.key}") from None
        async with asyncio.timeout(timeout):
            return await asyncio.shield(run.monitor)

    async def stop(self, session: BackendSession) -> None:
        """SIGTERM pppd, wait ``stop_timeout`` s, then SIGKILL; idempotent, reports nothing."""
        run = self._running.get(session.key)
        if run is None or run.monitor is None:
            return
        run.stopping = True
        process = run.process
        if process.returncode is None:
            run.log.debug("%s: stopping pppd[%d] (SIGTERM)", run.label, process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                async with asyncio.timeout(self.stop_timeout):
                    await asyncio.shield(run.monitor)
            except TimeoutError:
                if _has_exited(process.pid):
                    # Its exit is only waiting for the event loop (busy loop, child
                    # watcher thread not yet scheduled): nothing to kill.
                    run.log.debug("%s: pppd[%d] exited; exit not seen yet", run.label, process.pid)
                else:
                    run.log.warning(
                        "%s: pppd[%d] ignored SIGTERM for %.1f s; killing it",
                        run.label,
                        process.pid,
                        self.stop_timeout,
                    )
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
        await run.monitor

    async def close(self) -> None:
        """Stop every pppd this backend runs (daemon shutdown)."""
        runs = list(self._running.values())
        await asyncio.gather(*(self.stop(run.session) for run in runs))
