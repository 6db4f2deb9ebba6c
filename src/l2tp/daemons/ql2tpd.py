"""ql2tpd: static and quiescent L2TPv3 tunnels from a TOML file (go-l2tp compatible).

Static tunnels are unmanaged kernel tunnels (the kernel owns the socket) built
from the file and removed again on SIGTERM/SIGINT: exactly what this process
created, nothing else. Quiescent tunnels (``mode = "quiescent"`` or
``hello_timeout`` > 0) are described in :mod:`l2tp.daemons.quiescent`.

The daemon is deliberately thin: configuration comes from :mod:`l2tp.config`,
kernel objects from :mod:`l2tp.daemons.static` over a
:class:`~l2tp.kernel.dataplane.DataPlane`. Before any of that it runs the
start-up checks of :mod:`l2tp.daemons.preflight` (CAP_NET_ADMIN, the ``l2tp``
netlink family, the modules the file needs, a writable ``--ready-file``), so a
daemon that could not work says so in one line instead of half-starting.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

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
from l2tp.daemons.hook_events import StaticHooks
from l2tp.daemons.logformat import add_log_arguments
from l2tp.daemons.logformat import setup as setup_logging
from l2tp.daemons.metrics_http import MetricsExporter, add_metrics_arguments, exporter_from
from l2tp.daemons.preflight import StartError
from l2tp.daemons.ql2tpd_ctl import Ql2tpdTarget
from l2tp.daemons.quiescent import QuiescentTunnel
from l2tp.daemons.static import StaticTunnel
from l2tp.kernel.async_dataplane import AsyncDataPlane, AsyncLinuxDataPlane
from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.kernel.errors import KernelError
from l2tp.runtime.gc_pacer import GcPacer

log = logging.getLogger("l2tp.ql2tpd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ql2tpd",
        description="Bring up static and quiescent L2TPv3 tunnels with Ethernet pseudowires "
        "in the Linux kernel from a TOML file (go-l2tp ql2tpd.toml keys accepted unchanged), "
        "and remove them again on SIGTERM/SIGINT. Static tunnels run no control protocol; "
        "quiescent tunnels (hello_timeout > 0) exchange HELLOs, tear down after hello_timeout "
        "+ the full retransmission interval without an answer, and come back when the peer "
        "answers a probe. Cookies: cookie is what we send, peer_cookie what we require.",
        epilog="Exit status: 0 stopped by a signal (or --check of a valid file); 1 invalid "
        "configuration, a start-up check failed (CAP_NET_ADMIN, kernel L2TP modules, "
        "--ready-file) or the kernel refused a tunnel/session; 2 usage error. "
        "See docs/ql2tpd.md and docs/config.md.",
    )
    parser.add_argument(
        "config_file", nargs="?", metavar="CONFIG", help="the TOML configuration file"
    )
    parser.add_argument(
        "-config",
        "--config",
        dest="config_opt",
        metavar="CONFIG",
        help="same as CONFIG (go-l2tp's spelling)",
    )
    cfg.add_check_argument(parser)
    parser.add_argument(
        "--netns",
        metavar="NS",
        help="create the tunnels (and quiescent tunnels' sockets) in network namespace NS "
        "(`ip netns` name or path)",
    )
    parser.add_argument(
        "--ready-file",
        type=Path,
        metavar="FILE",
        help="write 'up' to FILE once every tunnel is up (for scripts)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    parser.add_argument(
        "--null-dataplane",
        action="store_true",
        help="create no kernel objects (quiescent tunnels still exchange HELLOs): for tests",
    )
    add_log_arguments(parser)
    add_control_arguments(parser, "ql2tpd")
    add_metrics_arguments(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {l2tp.__version__}")
    return parser


class Ql2tpd:
    """The running daemon: its tunnels, and the stop event that signals set."""

    def __init__(self, config: cfg.Config, dataplane: AsyncDataPlane) -> None:
        self.config = config
        self.dataplane = dataplane
        self.tunnels: list[StaticTunnel] = []
        self.quiescent: list[asyncio.Task[None]] = []
        self.failed: BaseException | None = None
        self.stop = asyncio.Event()
        self.quiescent_tunnels: dict[str, QuiescentTunnel] = {}
        """By tunnel name, for ``l2tp ctl``."""
        self.observers: list[Callable[[QuiescentTunnel], None]] = []
        """Told of every quiescent tunnel's state change (``l2tp ctl events``)."""
        self.hooks: StaticHooks | None = None
        """The ``[hooks]`` runner once running (its counters are exported)."""

    async def start(self) -> None:
        """Bring every tunnel up; if one fails, remove what was already built and raise."""
        try:
            for tunnel in self.config.tunnels:
                if tunnel.mode is cfg.TunnelMode.QUIESCENT:
                    await self._start_quiescent(tunnel)
                    continue
                static = StaticTunnel(tunnel, self.dataplane)
                await static.up()
                self.tunnels.append(static)
                log.info("tunnel %s: static tunnel up", tunnel.name)
        except BaseException:
            await self.shutdown()
            raise

    async def _start_quiescent(self, tunnel: cfg.TunnelSection) -> None:
        """Start a quiescent tunnel's task and wait until its kernel objects exist."""
        q = QuiescentTunnel(tunnel, self.dataplane, netns=getattr(self.dataplane, "netns", None))
        q.observers.append(self._observe)
        self.quiescent_tunnels[tunnel.name] = q
        task = asyncio.create_task(q.run(self.stop), name=f"quiescent-{tunnel.name}")
        task.add_done_callback(self._task_done)
        self.quiescent.append(task)
        up = asyncio.ensure_future(q.first_up.wait())
        await asyncio.wait([up, task], return_when=asyncio.FIRST_COMPLETED)
        up.cancel()
        if task.done() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    def _observe(self, q: QuiescentTunnel) -> None:
        for observer in self.observers:
            observer(q)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A quiescent tunnel's task ended: fine at shutdown, fatal otherwise."""
        if task.cancelled() or self.stop.is_set():
            return
        self.failed = task.exception()
        log.error("%s stopped: %s", task.get_name(), self.failed)
        self.stop.set()

    async def shutdown(self) -> None:
        """Remove everything this process created, newest first."""
        self.stop.set()
        if self.quiescent:
            await asyncio.gather(*self.quiescent, return_exceptions=True)
        while self.tunnels:
            await self.tunnels.pop().down()


async def serve(
    config: cfg.Config,
    dataplane: AsyncDataPlane,
    *,
    ready_file: Path | None = None,
    args: argparse.Namespace | None = None,
    config_file: str = "",
) -> int:
    """Run until SIGTERM/SIGINT; owns ``dataplane`` (starts and closes it). ``args``:
    the command line, for the control socket (none without it)."""
    try:
        return await _serve(config, dataplane, ready_file=ready_file, args=args, path=config_file)
    finally:
        await dataplane.close()


async def _serve(
    config: cfg.Config,
    dataplane: AsyncDataPlane,
    *,
    ready_file: Path | None,
    args: argparse.Namespace | None = None,
    path: str = "",
) -> int:
    daemon = Ql2tpd(config, dataplane)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, daemon.stop.set)
    target = Ql2tpdTarget(daemon, path)
    control = metrics = None
    try:
        try:
            control = control_server(args, target) if args is not None else None
            if control is not None:
                await control.start()  # before any tunnel: a live owner stops us here
            metrics = _exporter(args, config, target, daemon, control)
            if metrics is not None:
                await metrics.start()
                target.metrics_address = metrics.address
        except (ControlSocketError, StartError) as exc:
            print(f"ql2tpd: cannot start: {exc}", file=sys.stderr)
            return 1
        return await _serve_daemon(config, daemon, ready_file)
    finally:
        target.close()
        if metrics is not None:
            await metrics.close()
        if control is not None:
            await control.close()


def _exporter(
    args: argparse.Namespace | None,
    config: cfg.Config,
    target: Ql2tpdTarget,
    daemon: Ql2tpd,
    control: ControlServer | None,
) -> MetricsExporter | None:
    """``--metrics``: ql2tpd's exporter reads its ``l2tp ctl`` views (no runtime events:
    static tunnels have no set-up to time and no Result Codes)."""
    if args is None:
        return None
    return exporter_from(
        args,
        config,
        target,
        hooks=lambda: daemon.hooks.counters if daemon.hooks is not None else None,
        clients=None if control is None else lambda: (control.connected, control.refused),
    )


async def _serve_daemon(config: cfg.Config, daemon: Ql2tpd, ready_file: Path | None) -> int:
    notify = sdnotify.Notifier.from_environ()  # systemd Type=notify; no-op without it
    watchdog = notify.start_watchdog()
    try:
        return await _run(config, daemon, notify, ready_file)
    finally:
        if watchdog is not None:
            watchdog.cancel()
        notify.close()


async def _run(
    config: cfg.Config, daemon: Ql2tpd, notify: sdnotify.Notifier, ready_file: Path | None
) -> int:
    hooks = StaticHooks(config.hooks)  # [hooks]: runs nothing without
    daemon.hooks = hooks
    daemon.observers.append(hooks.observe)  # quiescent tunnels going up and down
    try:
        await daemon.dataplane.start()  # netlink sockets, the kernel's tunnel IDs
        await daemon.start()
    except (KernelError, OSError) as exc:
        print(f"ql2tpd: cannot start: {exc}", file=sys.stderr)
        notify.stopping(f"cannot start: {exc}")
        await hooks.close()
        return 1
    for static in daemon.tunnels:
        hooks.up(static.config, static.interfaces)
    print(f"ql2tpd: {len(config.tunnels)} tunnel(s) up; SIGTERM removes them", flush=True)
    notify.ready(f"{len(config.tunnels)} tunnel(s) up")
    gc_pacer = GcPacer(asyncio.get_running_loop())
    gc_pacer.start()  # see l2tp.runtime.gc_pacer
    try:
        if ready_file is not None:
            try:
                preflight.write_ready_file(ready_file)
            except StartError as exc:
                print(f"ql2tpd: {exc}", file=sys.stderr, flush=True)
                return 1
        await daemon.stop.wait()
    finally:
        gc_pacer.stop()
        notify.stopping()
        await daemon.shutdown()
        await hooks.close()  # the down hooks of the tunnels just removed, within bounds
        print("ql2tpd: tunnels removed, exiting", flush=True)
    if daemon.failed is not None:
        print(f"ql2tpd: {daemon.failed}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = args.config_file or args.config_opt
    if not path:
        print("ql2tpd: a configuration file is required (ql2tpd CONFIG)", file=sys.stderr)
        return 2
    setup_logging(args.log_format, args.verbose, "ql2tpd")
    if args.check:
        return run_quietly(lambda: cfg.run_check(path, cfg.Daemon.QL2TPD))
    try:
        config = cfg.load(path, daemon=cfg.Daemon.QL2TPD)
    except cfg.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    try:
        if args.ready_file is not None:
            preflight.check_ready_file(args.ready_file)
        if not args.null_dataplane:
            preflight.check_net_admin()
            preflight.check_l2tp_family(args.netns)
            preflight.check_modules(preflight.needs_of(config))
    except (StartError, KernelError, OSError) as exc:
        print(f"ql2tpd: cannot start: {exc}", file=sys.stderr)
        return 1
    dataplane: AsyncDataPlane = (
        AsyncNullDataPlane() if args.null_dataplane else AsyncLinuxDataPlane(netns=args.netns)
    )
    config_file = str(Path(path).resolve())
    return asyncio.run(
        serve(config, dataplane, ready_file=args.ready_file, args=args, config_file=config_file)
    )


if __name__ == "__main__":
    sys.exit(main())
