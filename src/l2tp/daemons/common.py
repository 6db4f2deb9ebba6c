"""What kl2tpd, l2tp-lns and l2tpd share: arguments, data plane and backend, signals, the run loop.

Start-up, in order, each failure one line on stderr and exit status 1 before
anything is opened: the configuration; ``--ready-file`` writable; with the
Linux data plane, the checks of :mod:`l2tp.daemons.preflight` (CAP_NET_ADMIN,
the ``l2tp`` generic netlink family, the modules the file needs, pppd); then
:meth:`Daemon.start` (a listen address that cannot be bound names its
listener). Only then "started" is printed and the ready file written.

Signals: SIGTERM and SIGINT stop the daemon (StopCCN on every tunnel, up to
``--stop-timeout`` seconds for the acknowledgements, pppd stopped, kernel
objects removed); SIGHUP re-reads the configuration file and applies it
(:meth:`Daemon.reload`; a file with errors, or a change that cannot be
applied, is reported and the daemon goes on).

Under systemd (``NOTIFY_SOCKET``, :mod:`l2tp.daemons.sdnotify`): READY=1 where
"started" is printed, RELOADING=1 ... READY=1 around each reload, STOPPING=1,
watchdog pings from the loop. The ``[hooks]`` programs
(:mod:`l2tp.daemons.hook_events`) are fed by the context's events; at shutdown
their ``down`` hooks run after the tunnels are closed, within the hooks' bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, Protocol

import l2tp
from l2tp import config as cfg
from l2tp.cli.pipes import run_quietly
from l2tp.daemons import preflight, sdnotify
from l2tp.daemons.control_socket import (
    ControlServer,
    ControlSocketError,
    add_control_arguments,
)
from l2tp.daemons.control_socket import server_from_args as control_server
from l2tp.daemons.ctl_target import ContextTarget, DaemonInfo, ReloadResult
from l2tp.daemons.hook_events import DaemonHooks
from l2tp.daemons.logformat import add_log_arguments
from l2tp.daemons.logformat import setup as setup_logging
from l2tp.daemons.metrics_http import add_metrics_arguments, exporter_from, reload_settings
from l2tp.daemons.preflight import KernelNeeds, StartError
from l2tp.daemons.radius_accounting import AccountingService
from l2tp.daemons.radius_listeners import ListenerRadius, combined
from l2tp.daemons.radius_setup import RadiusService
from l2tp.kernel.async_dataplane import AsyncDataPlane, AsyncLinuxDataPlane
from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.kernel.errors import KernelError
from l2tp.radius.records import SessionEnd
from l2tp.runtime.backend import NullSessionBackend, SessionBackend
from l2tp.runtime.control import L2tpContext
from l2tp.runtime.gc_pacer import GcPacer
from l2tp.runtime.loop import run as run_loop


class Daemon(Protocol):
    ctx: L2tpContext
    failed: asyncio.Event
    """Set when the daemon cannot go on (e.g. every tunnel failed for good)."""

    async def start(self) -> None: ...

    async def reload(self, config: cfg.Config) -> None: ...

    def summary(self) -> str: ...


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("config_file", nargs="?", metavar="CONFIG", help="TOML configuration")
    parser.add_argument(
        "-config", "--config", dest="config_opt", metavar="CONFIG", help="same as CONFIG"
    )
    cfg.add_check_argument(parser)
    parser.add_argument(
        "--null-dataplane",
        action="store_true",
        help="no kernel objects and no pppd: control protocol only (testing)",
    )
    parser.add_argument(
        "--netns",
        help="open the control sockets, create kernel objects and run pppd in this namespace",
    )
    parser.add_argument(
        "--ready-file", type=Path, help="write this file once started (see docs/daemons.md)"
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=1.0,
        help="seconds to wait for StopCCN acknowledgements on SIGTERM (default 1)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    add_log_arguments(parser)
    add_control_arguments(parser, prog)
    add_metrics_arguments(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {l2tp.__version__}")
    return parser


LOGGER_NAMES = {
    cfg.Daemon.KL2TPD: "l2tp.kl2tpd",
    cfg.Daemon.LNS: "l2tp.lns",
    cfg.Daemon.L2TPD: "l2tp.l2tpd",
    cfg.Daemon.QL2TPD: "l2tp.ql2tpd",
}
"""One logger per daemon, so that a log line says which daemon wrote it."""

_NULL_HINT = ", or use --null-dataplane for a control-plane-only run"


def make_backend(
    args: argparse.Namespace, needs: KernelNeeds | None = None
) -> tuple[AsyncDataPlane, SessionBackend | None]:
    """The data plane (not started: :func:`serve` starts it on the loop) and session
    backend, after the start-up checks for the kernel one.

    Raises :class:`StartError` (missing privilege, module or pppd) or the
    :class:`KernelError` of resolving the ``l2tp`` netlink family.
    """
    if args.null_dataplane:
        return AsyncNullDataPlane(), NullSessionBackend()
    from l2tp.runtime.builtin_ppp import BuiltinPppBackend, DispatchingBackend
    from l2tp.runtime.ppp import PppdBackend, inherited_env

    preflight.check_net_admin(hint=_NULL_HINT)
    preflight.check_l2tp_family(args.netns)
    if needs is not None:
        preflight.check_modules(needs)
        if needs.pppd:
            preflight.check_pppd()
    # pppd inherits the daemon's environment: NetworkManager-l2tp's pppd plugin needs
    # the NM_* variables it starts kl2tpd with (docs/networkmanager.md).
    pppd = PppdBackend(netns=args.netns, env=inherited_env(os.environ))
    backend = DispatchingBackend(pppd=pppd, builtin=BuiltinPppBackend(netns=args.netns))
    return AsyncLinuxDataPlane(netns=args.netns), backend


def main(
    prog: str,
    daemon_kind: cfg.Daemon,
    factory: Callable[[cfg.Config, L2tpContext, argparse.Namespace], Daemon],
    argv: Sequence[str] | None,
    description: str,
) -> int:
    args = build_parser(prog, description).parse_args(argv)
    path = args.config_file or args.config_opt
    if not path:
        print(f"{prog}: a configuration file is required ({prog} CONFIG)", file=sys.stderr)
        return 2
    setup_logging(args.log_format, args.verbose, prog)
    if args.check:
        return run_quietly(lambda: cfg.run_check(path, daemon_kind))
    try:
        config = cfg.load(path, daemon=daemon_kind)
    except cfg.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for warning in config.warnings:
        print(f"{prog}: warning: {warning}", file=sys.stderr)
    try:
        if args.ready_file is not None:
            preflight.check_ready_file(args.ready_file)
        dataplane, backend = make_backend(args, preflight.needs_of(config))
    except (StartError, KernelError, OSError) as exc:
        print(f"{prog}: cannot start: {exc}", file=sys.stderr)
        return 1
    status = run_loop(serve(prog, path, daemon_kind, config, dataplane, backend, factory, args))
    if argv is None:  # run as a program (not called by a test or another program)
        exit_now(status)
    return status


SHUTDOWN_NICE = -5
"""The daemon's scheduling priority (nice value) once it is stopping, when it may raise it."""


def run_ahead_of_children() -> None:
    """Raise the daemon's scheduling priority above its pppd's for its shutdown.

    Signalled pppd wake up at once and compete for the CPU with the daemon that still
    has to signal the others, send the StopCCNs and remove the kernel objects: in the
    emulated test VM the SIGTERMs to 20 pppd were spread over 0.6 s, and the last pppd
    signalled was the last to end. Ahead of them, the daemon does its little work
    first. Without the privilege (not root) the priority stays as it is."""
    with contextlib.suppress(OSError):
        if os.getpriority(os.PRIO_PROCESS, 0) > SHUTDOWN_NICE:
            os.setpriority(os.PRIO_PROCESS, 0, SHUTDOWN_NICE)


def exit_now(status: int) -> NoReturn:
    """End the process with ``status`` once output is flushed, skipping the interpreter's
    finalisation (module teardown, a last garbage collection of every object).

    By then :func:`serve` has released everything that outlives the process: pppd
    reaped, kernel objects deleted, sockets closed, hooks run. The finalisation took
    0.4 s in the emulated test VM, a fifth of the 2 s NetworkManager-l2tp allows
    between SIGTERM and SIGKILL (docs/networkmanager.md)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


async def serve(
    prog: str,
    path: str,
    daemon_kind: cfg.Daemon,
    config: cfg.Config,
    dataplane: AsyncDataPlane,
    backend: SessionBackend | None,
    factory: Callable[[cfg.Config, L2tpContext, argparse.Namespace], Daemon],
    args: argparse.Namespace,
) -> int:
    log = logging.getLogger(LOGGER_NAMES.get(daemon_kind, f"l2tp.{prog}"))
    notify = sdnotify.Notifier.from_environ()  # systemd Type=notify; no-op without it
    watchdog = notify.start_watchdog()
    ctx = L2tpContext(dataplane=dataplane, backend=backend, netns=args.netns)
    daemon = factory(config, ctx, args)
    hooks = DaemonHooks(ctx, config.hooks, daemon=prog)  # [hooks]: runs nothing without
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stop_signal_at: list[float] = []

    def on_stop_signal(signum: signal.Signals) -> None:
        if not stop_signal_at:
            stop_signal_at.append(loop.time())
            log.info("%s: stopping", signum.name)
            run_ahead_of_children()
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_stop_signal, signum)
    reloads: asyncio.Queue[None] = asyncio.Queue()
    loop.add_signal_handler(signal.SIGHUP, reloads.put_nowait, None)

    reload_lock = asyncio.Lock()

    async def reload_config() -> ReloadResult:
        """Re-read and apply the file: SIGHUP and ``l2tp ctl reload`` both come here,
        one reload at a time, and get the outcome (the socket returns it)."""
        async with reload_lock:
            notify.reloading()
            try:
                try:
                    # Off the loop: the file, the resolver, the spools' paths (stat).
                    new = await asyncio.to_thread(cfg.load, path, daemon=daemon_kind)
                except cfg.ConfigError as exc:
                    log.error("reload ignored: %s", exc)
                    print(f"{prog}: reload ignored:\n{exc}", file=sys.stderr, flush=True)
                    return ReloadResult(applied=False, errors=str(exc).splitlines())
                hooks.configure(new.hooks)
                reload_settings(metrics, args, new)
                problems: list[str] = []
                try:
                    await radius.configure(new.radius, _listener_radius(new))
                except StartError as exc:  # a secret file, a DAE address: the old stays
                    problems.append(str(exc))
                if accounting is not None:
                    try:
                        await accounting.configure(new.radius)
                    except StartError as exc:  # the engine and its client stay
                        problems.append(str(exc))
                if listeners is not None:
                    try:
                        await listeners.configure(new)  # [listener.L.radius]
                    except StartError as exc:
                        problems.append(str(exc))
                try:
                    await daemon.reload(new)
                except (StartError, KernelError, OSError) as exc:
                    # E.g. a new listener whose address cannot be bound: the rest of
                    # the new file is applied, and the daemon keeps running.
                    problems.append(str(exc))
                if listeners is not None:
                    try:  # after the reload: the tunnels of the listeners gone are closed
                        await listeners.drop_gone(new)
                    except StartError as exc:
                        problems.append(str(exc))
                if problems:
                    text = "; ".join(problems)
                    log.error("reload: %s", text)
                    print(f"{prog}: reload incomplete: {text}", file=sys.stderr, flush=True)
                    return ReloadResult(applied=True, summary=daemon.summary(), errors=problems)
                print(f"{prog}: configuration reloaded: {daemon.summary()}", flush=True)
                return ReloadResult(applied=True, summary=daemon.summary())
            finally:
                notify.ready(daemon.summary())  # ends the reload, applied or not

    async def reloader() -> None:
        while True:
            await reloads.get()
            await reload_config()

    reload_task = asyncio.create_task(reloader())
    radius = _radius_service(backend, ctx)
    accounting = _accounting_service(backend)
    listeners = ListenerRadius(accounting.backend, accounting) if accounting is not None else None
    if listeners is not None and radius.dae is not None:
        radius.dae.accounting = listeners  # Acct-Session-Id lookups, Disconnect causes
    target = ContextTarget(
        ctx,
        DaemonInfo(name=prog, config_file=str(Path(path).resolve()), started_at=loop.time()),
        summary=daemon.summary,
        reload=reload_config,
        names=getattr(daemon, "tunnel_name", None),
        peers=getattr(daemon, "peers", None),
        radius=_radius_status(radius, accounting, listeners),
        closing=listeners.operator_close if listeners is not None else None,
    )
    control = None
    metrics = None
    gc_pacer = GcPacer(loop)
    status = 0
    started = False
    try:
        try:
            # The control socket first: a live daemon on its path stops us before
            # anything (listen sockets, tunnels) is opened; then the metrics port.
            control = control_server(args, target)
            metrics = exporter_from(
                args,
                config,
                target,
                ctx=ctx,
                hooks=lambda: hooks.counters,
                clients=_clients(control),
            )
            if control is not None:
                await control.start()
            if metrics is not None:
                await metrics.start()  # subscribed before the first tunnel can come up
                target.metrics_address = metrics.address
            hooks.start()  # subscribed before the first tunnel can come up
            await radius.configure(config.radius, _listener_radius(config))  # before any session
            if accounting is not None:
                await accounting.configure(config.radius)  # the spool replayed, sending
                accounting.watch(ctx)
            if listeners is not None:
                await listeners.configure(config)  # [listener.L.radius], as [radius]
                listeners.watch(ctx)
            await ctx.start()  # the data plane: netlink sockets, the kernel's tunnel IDs
            await daemon.start()
        except (StartError, KernelError, OSError, ControlSocketError) as exc:
            print(f"{prog}: cannot start: {exc}", file=sys.stderr, flush=True)
            return 1
        print(f"{prog}: started: {daemon.summary()}; SIGTERM stops, SIGHUP reloads", flush=True)
        started = True
        gc_pacer.start()  # no collector pass over every session during bursts
        notify.ready(daemon.summary())
        if args.ready_file is not None:
            try:
                preflight.write_ready_file(args.ready_file)
            except StartError as exc:
                print(f"{prog}: {exc}", file=sys.stderr, flush=True)
                return 1
        failed = asyncio.create_task(daemon.failed.wait())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([failed, stopped], return_when=asyncio.FIRST_COMPLETED)
        failed.cancel()
        stopped.cancel()
        if daemon.failed.is_set() and not stop.is_set():
            status = int(getattr(daemon, "exit_status", 1))
    finally:
        gc_pacer.stop()
        reload_task.cancel()
        notify.stopping()
        if control is not None:
            await control.close()
        await radius.stop_serving()  # no Disconnect-Request races the shutdown
        closing_at = loop.time()
        if listeners is not None:  # every engine, the daemon's and the listeners'
            listeners.note_all(SessionEnd.SHUTDOWN)  # before the PPP sessions stop
        await ctx.close(ack_timeout=args.stop_timeout)
        if stop_signal_at:
            log.debug("tunnels closed %.3f s after the signal", loop.time() - stop_signal_at[0])
        await hooks.close()  # the down hooks of what ctx.close ended, within their bound
        if metrics is not None:
            await metrics.close()  # after ctx.close: its last events are counted
        close_backend = getattr(backend, "close", None)
        if close_backend is not None:
            await close_backend()  # the built-in PPP's rtnetlink socket and threads
        if accounting is not None:
            # What the shutdown's budget leaves to send the Stops; the rest stays
            # in the spool for the next start (RFC 2866 5.2: nothing is lost).
            left = max(0.0, args.stop_timeout - (loop.time() - closing_at))
            await asyncio.gather(
                accounting.close(drain=left),
                *([listeners.close(drain=left)] if listeners is not None else []),
            )
        radius.close()
        await dataplane.close()
        if started:
            print(f"{prog}: tunnels closed, exiting", flush=True)
        if stop_signal_at:
            log.debug("closed %.3f s after the signal", loop.time() - stop_signal_at[0])
        if watchdog is not None:
            watchdog.cancel()
        notify.close()
    return status


def _listener_radius(config: cfg.Config) -> dict[str, cfg.RadiusSection]:
    """The listeners' effective ``radius`` tables by name (the DAE server answers to
    their NAS identities too, each for its listeners' sessions)."""
    return {lc.name: lc.radius for lc in config.listeners if lc.radius is not None}


def _radius_service(backend: SessionBackend | None, ctx: L2tpContext) -> RadiusService:
    """The RADIUS service: authentication through the built-in PPP backend when the
    daemon has one (not with ``--null-dataplane``: no PPP runs there), Dynamic
    Authorization over ``ctx``'s sessions in any case. Idle without ``[radius]``."""
    from l2tp.runtime.builtin_ppp import BuiltinPppBackend

    builtin = getattr(backend, "builtin", backend)
    return RadiusService(builtin if isinstance(builtin, BuiltinPppBackend) else None, ctx)


def _accounting_service(backend: SessionBackend | None) -> AccountingService | None:
    """RADIUS accounting for the built-in PPP backend, when the daemon has one (its
    sessions are what is accounted; pppd sessions are not)."""
    from l2tp.runtime.builtin_ppp import BuiltinPppBackend

    builtin = getattr(backend, "builtin", backend)
    if not isinstance(builtin, BuiltinPppBackend):
        return None
    return AccountingService(builtin)


def _radius_status(
    radius: RadiusService,
    accounting: AccountingService | None,
    listeners: ListenerRadius | None = None,
) -> Callable[[], dict[str, Any] | None]:
    """``status``'s ``radius``: the authentication client's and the DAE server's
    counters, with the accounting servers among ``servers`` and the engine's counters
    as ``accounting``; ``listeners``: the same for each listener with RADIUS of its own
    (``[listener.L.radius]``), by name."""

    def status() -> dict[str, Any] | None:
        out = combined(radius.snapshot(), accounting.snapshot() if accounting else None)
        own = listeners.snapshot() if listeners is not None else {}
        if own:
            out = {**(out or {}), "listeners": own}
        return out

    return status


def _clients(control: ControlServer | None) -> Callable[[], tuple[int, int]] | None:
    """The control socket's (connected, refused) for the metrics."""
    if control is None:
        return None
    return lambda: (control.connected, control.refused)
