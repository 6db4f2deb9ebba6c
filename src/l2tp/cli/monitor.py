"""``l2tp monitor``: stream the kernel's L2TP tunnel and session events, one line each.

The events are the kernel's ``l2tp`` generic netlink multicast notifications
(:class:`l2tp.kernel.L2tpMonitor`): every create, modify and delete made
*through netlink* by any process. Not announced: a managed tunnel that goes
away because its socket was closed, and sessions removed along with their
tunnel. Linux 6.1 multicasts these to every network namespace, so ``--netns``
chooses where the socket lives, not what it hears (see docs/inspect.md).

Each line starts with the local time of reception (ISO 8601, milliseconds),
then the kind and the object; ``--json`` prints one JSON object per line with
``timestamp``, ``event``, ``object`` and the keys of ``l2tp show --json``.
SIGINT and SIGTERM end the stream with exit status 0. asyncio and the kernel
package are imported only when the command runs (``l2tp --help`` stays quick).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from l2tp.cli.show import (
    EXIT_OK,
    EXIT_USAGE,
    add_netns_argument,
    check_netns,
    endpoint,
    error_message,
    pseudowire_name,
    session_record,
    silence_stdout,
    tunnel_record,
)

if TYPE_CHECKING:
    import asyncio

    from l2tp.kernel.model import Event, SessionInfo, TunnelInfo

log = logging.getLogger("l2tp.monitor")

Clock = Callable[[], datetime]


def local_now() -> datetime:
    return datetime.now().astimezone()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="print kernel L2TP tunnel/session create/modify/delete events as they happen",
        description="Stream the kernel's L2TP netlink events (created, modified, deleted "
        "tunnels and sessions), one line each, until SIGINT or SIGTERM. See docs/inspect.md.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    add_netns_argument(parser)
    parser.set_defaults(func=run)


# --- formatting ------------------------------------------------------------------------


def timestamp(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds")


def event_record(event: Event, when: datetime) -> dict[str, Any]:
    """``{"timestamp", "event", "object", ...}`` followed by the object's show keys."""
    from l2tp.kernel.model import TunnelEvent

    if isinstance(event, TunnelEvent):
        body, kind = tunnel_record(event.tunnel), "tunnel"
    else:
        body, kind = session_record(event.session), "session"
    return {"timestamp": timestamp(when), "event": event.kind.value, "object": kind, **body}


def _tunnel_text(t: TunnelInfo) -> str:
    udp = t.encap.name == "UDP"
    local = endpoint(t.local, t.local_port if udp else None)
    peer = endpoint(t.peer, t.peer_port if udp else None)
    return (
        f"tunnel {t.tunnel_id} peer-tunnel {t.peer_tunnel_id} v{t.version} "
        f"{t.encap.name.lower()} {local} -> {peer}"
    )


def _session_text(s: SessionInfo) -> str:
    parts = [
        f"session {s.session_id} tunnel {s.tunnel_id}",
        f"peer-session {s.peer_session_id} peer-tunnel {s.peer_tunnel_id}",
        str(pseudowire_name(s.pw_type)),
    ]
    if s.ifname:
        parts.append(f"interface {s.ifname}")
    if s.cookie:
        parts.append(f"cookie {s.cookie.hex()}")
    if s.peer_cookie:
        parts.append(f"peer-cookie {s.peer_cookie.hex()}")
    seq = [name for name, on in (("send", s.send_seq), ("recv", s.recv_seq)) if on]
    if seq:
        parts.append("seq " + ",".join(seq))
    if s.reorder_timeout_ms:
        parts.append(f"reorder {s.reorder_timeout_ms}ms")
    if s.lns_mode:
        parts.append("lns")
    return " ".join(parts)


def event_line(event: Event, when: datetime) -> str:
    """``2024-05-01T12:00:00.123+02:00 created tunnel 700 peer-tunnel 701 v3 udp A -> B``."""
    from l2tp.kernel.model import TunnelEvent

    if isinstance(event, TunnelEvent):
        what = _tunnel_text(event.tunnel)
    else:
        what = _session_text(event.session)
    return f"{timestamp(when)} {event.kind.value:<8} {what}"


def format_event(event: Event, when: datetime, *, as_json: bool) -> str:
    if as_json:
        return json.dumps(event_record(event, when))
    return event_line(event, when)


# --- streaming -------------------------------------------------------------------------


async def stream_events(
    events: AsyncIterator[Event],
    out: TextIO,
    stop: asyncio.Event,
    *,
    as_json: bool = False,
    clock: Clock = local_now,
) -> None:
    """Print each event as it arrives until ``stop`` is set or ``events`` ends.

    Returns normally on ``stop`` even if ``events`` is waiting for the
    kernel; errors of the event source propagate.
    """
    import asyncio

    async def pump() -> None:
        async for event in events:
            out.write(format_event(event, clock(), as_json=as_json) + "\n")
            out.flush()

    pumping = asyncio.ensure_future(pump())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({pumping, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pumping, stopping):
            task.cancel()
        await asyncio.gather(pumping, stopping, return_exceptions=True)
    if pumping.done() and not pumping.cancelled() and pumping.exception() is not None:
        raise pumping.exception()  # type: ignore[misc]


async def _serve(args: argparse.Namespace, out: TextIO) -> None:
    import asyncio

    from l2tp.kernel.monitor import L2tpMonitor

    monitor = L2tpMonitor(netns=args.netns)
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        where = f" (socket in network namespace {args.netns})" if args.netns else ""
        log.info("listening for kernel L2TP events%s; SIGINT or SIGTERM stops", where)
        await stream_events(monitor, out, stop, as_json=args.json)
    finally:
        monitor.close()


def run(args: argparse.Namespace) -> int:
    return monitor(args, sys.stdout, sys.stderr)


def monitor(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``l2tp monitor`` until a signal; returns the exit status."""
    prog = "l2tp monitor"
    if not check_netns(args.netns, prog, err):
        return EXIT_USAGE
    import asyncio  # here, not at the top: it costs ~1 s in the test VM for other commands

    try:
        asyncio.run(_serve(args, out))
    except KeyboardInterrupt:  # SIGINT before the loop's handler was installed
        return EXIT_OK
    except BrokenPipeError:
        silence_stdout(out)
        return EXIT_OK
    except (OSError, ImportError) as exc:
        message, status = error_message(exc, prog, args.netns)
        print(message, file=err)
        return status
    return EXIT_OK
