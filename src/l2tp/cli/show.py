"""``l2tp show tunnel|session``: the kernel's L2TP tunnels and sessions, as a table or JSON.

The data is one netlink dump (``L2TP_CMD_TUNNEL_GET`` / ``L2TP_CMD_SESSION_GET``
with ``NLM_F_DUMP``) through :class:`l2tp.kernel.L2tpNetlink`, so it shows
everything in the network namespace, whoever created it (iproute2, a daemon,
us). The table is one aligned row per object; ``--json`` prints a list of
objects whose keys are those of ``ip -j l2tp show`` where the concept is the
same (including iproute2's ``peer_tunnel`` and its present-as-``null`` flags
``send_seq``/``recv_seq``), plus extras listed in docs/inspect.md.

Formatting is pure (:func:`tunnel_record`, :func:`session_record`,
:func:`tunnel_table`, :func:`session_table`) so it is tested from hand-built
infos without root. The kernel package (and pyroute2) is imported only when a
command runs, so ``l2tp decode`` keeps working without them.

Exit status: 0 on success; 1 when the kernel cannot answer (no L2TP support,
no permission) or a requested ``--tunnel-id``/``--session-id`` does not exist;
2 for a bad command line or a network namespace that does not exist. Errors are
one line on standard error, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from ipaddress import IPv6Address
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from l2tp.kernel.model import SessionInfo, Stats, TunnelInfo

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

_U32 = 0xFFFFFFFF

STATS_COLUMNS = (
    ("TX-PKTS", "tx_packets"),
    ("TX-BYTES", "tx_bytes"),
    ("TX-ERR", "tx_errors"),
    ("RX-PKTS", "rx_packets"),
    ("RX-BYTES", "rx_bytes"),
    ("RX-ERR", "rx_errors"),
)
"""Counters shown as table columns with ``--stats`` (JSON carries all eight)."""

_PSEUDOWIRE_NAMES = {
    0x0000: "none",
    0x0004: "eth_vlan",
    0x0005: "eth",
    0x0007: "ppp",
    0x0008: "pppac",
    0x000B: "ip",
}
"""``L2TP_PWTYPE_*`` by the names the configuration files use (``pseudowire = "eth"``)."""


class ShowClient(Protocol):
    """What ``l2tp show`` needs from :class:`l2tp.kernel.L2tpNetlink` (tests pass a fake)."""

    def dump_tunnels(self) -> list[TunnelInfo]: ...

    def dump_sessions(self, tunnel_id: int | None = None) -> list[SessionInfo]: ...

    def close(self) -> None: ...


ClientFactory = Callable[[str | None], ShowClient]


# --- command line ----------------------------------------------------------------------


def id_value(text: str) -> int:
    """argparse type of a tunnel or session ID: 1..4294967295."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 1 <= value <= _U32:
        raise argparse.ArgumentTypeError(f"{value} is out of range 1-{_U32}")
    return value


def add_netns_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--netns",
        metavar="NS",
        help="network namespace: an `ip netns` name or a path such as /proc/PID/ns/net",
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "show",
        help="list the kernel's L2TP tunnels or sessions (like `ip l2tp show`)",
        description="List the L2TP tunnels or sessions the kernel holds, as an aligned "
        "table or (--json) with the key names of `ip -j l2tp show`. See docs/inspect.md.",
    )
    parser.add_argument("what", choices=("tunnel", "session"), help="what to list")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead")
    parser.add_argument(
        "-s", "--stats", action="store_true", help="add the data-plane counters (packets, bytes)"
    )
    add_netns_argument(parser)
    parser.add_argument("--tunnel-id", type=id_value, metavar="N", help="only tunnel N")
    parser.add_argument(
        "--session-id", type=id_value, metavar="N", help="only session N (show session)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.what == "tunnel" and args.session_id is not None:
        print("l2tp show: --session-id applies to `show session` only", file=sys.stderr)
        return EXIT_USAGE
    return show(args, sys.stdout, sys.stderr)


# --- errors ----------------------------------------------------------------------------


def error_message(exc: BaseException, prog: str, netns: str | None) -> tuple[str, int]:
    """One line and an exit status for a failure to reach or query the kernel."""
    from l2tp.kernel.errors import KernelError, ModuleNotLoaded, NotPermitted

    where = f" in network namespace {netns!r}" if netns else ""
    if isinstance(exc, ModuleNotLoaded):
        return (
            f"{prog}: this kernel has no L2TP netlink support{where}: "
            f"load it with `modprobe {exc.module}` (as root)",
            EXIT_FAILURE,
        )
    if isinstance(exc, NotPermitted) or (
        isinstance(exc, OSError) and exc.errno in (errno.EPERM, errno.EACCES)
    ):
        return (
            f"{prog}: permission denied{where}: CAP_NET_ADMIN is required (run as root)",
            EXIT_FAILURE,
        )
    if isinstance(exc, KernelError):
        return f"{prog}: {exc}", EXIT_FAILURE
    if netns and isinstance(exc, OSError) and exc.errno == errno.EINVAL:
        return f"{prog}: {netns!r} is not a network namespace", EXIT_USAGE
    if isinstance(exc, ImportError):
        return f"{prog}: kernel access needs pyroute2 ({exc})", EXIT_FAILURE
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return f"{prog}: {reason}{where}", EXIT_FAILURE
    return f"{prog}: {exc}", EXIT_FAILURE


def check_netns(netns: str | None, prog: str, err: TextIO) -> bool:
    """False (after a message) when ``netns`` names no existing namespace file."""
    if netns is None:
        return True
    path = netns if "/" in netns else os.path.join("/run/netns", netns)
    if os.path.exists(path):
        return True
    hint = " (see `ip netns list`)" if "/" not in netns else ""
    print(f"{prog}: network namespace {netns!r} not found: no {path}{hint}", file=err)
    return False


def _default_client(netns: str | None) -> ShowClient:
    from l2tp.kernel.netlink import L2tpNetlink

    return L2tpNetlink(netns=netns)


# --- records (JSON) --------------------------------------------------------------------


def stats_record(stats: Stats) -> dict[str, int]:
    """All eight counters, named as the kernel's ``L2TP_ATTR_*`` stats attributes."""
    return {
        "tx_packets": stats.tx_packets,
        "tx_bytes": stats.tx_bytes,
        "tx_errors": stats.tx_errors,
        "rx_packets": stats.rx_packets,
        "rx_bytes": stats.rx_bytes,
        "rx_seq_discards": stats.rx_seq_discards,
        "rx_oos_packets": stats.rx_oos_packets,
        "rx_errors": stats.rx_errors,
    }


def _is_udp(tunnel: TunnelInfo) -> bool:
    return tunnel.encap.name == "UDP"


def _is_ipv6(tunnel: TunnelInfo) -> bool:
    return isinstance(tunnel.local, IPv6Address) or isinstance(tunnel.peer, IPv6Address)


def tunnel_record(tunnel: TunnelInfo, *, stats: bool = False) -> dict[str, Any]:
    """A tunnel as ``ip -j l2tp show tunnel`` prints it, plus ``version``, ``using_ipsec``
    and (``stats``) ``stats``.

    iproute2's checksum keys are kept: ``checksum`` for IPv4 UDP, and for IPv6
    UDP ``checksum_tx``/``checksum_rx`` (true unless the zero-checksum flag of
    RFC 6935 is set for that direction).
    """
    record: dict[str, Any] = {"tunnel_id": tunnel.tunnel_id, "encap": tunnel.encap.name}
    if tunnel.local is not None:
        record["local"] = str(tunnel.local)
    if tunnel.peer is not None:
        record["peer"] = str(tunnel.peer)
    record["peer_tunnel"] = tunnel.peer_tunnel_id
    if _is_udp(tunnel):
        if tunnel.local_port is not None:
            record["local_port"] = tunnel.local_port
        if tunnel.peer_port is not None:
            record["peer_port"] = tunnel.peer_port
        if _is_ipv6(tunnel):
            record["checksum_tx"] = not tunnel.udp6_zero_csum_tx
            record["checksum_rx"] = not tunnel.udp6_zero_csum_rx
        elif tunnel.udp_csum is not None:
            record["checksum"] = tunnel.udp_csum
    record["version"] = tunnel.version
    record["using_ipsec"] = tunnel.using_ipsec
    if stats:
        record["stats"] = stats_record(tunnel.stats)
    return record


def pseudowire_name(pw_type: int) -> str | int:
    """``"eth"``, ``"ppp"`` ... for a known ``L2TP_PWTYPE_*``, else the number."""
    return _PSEUDOWIRE_NAMES.get(int(pw_type), int(pw_type))


def session_record(session: SessionInfo, *, stats: bool = False) -> dict[str, Any]:
    """A session as ``ip -j l2tp show session`` prints it, plus our extras.

    As in iproute2: ``interface``, ``cookie``/``peer_cookie`` (hex) and
    ``reorder_timeout`` (ms) appear only when set, and ``send_seq``/``recv_seq``
    appear (with the value ``null``) only when on. Extras, always present:
    ``pseudowire``, ``lns_mode``, ``using_ipsec``; with ``stats``, ``stats``.
    """
    record: dict[str, Any] = {
        "session_id": session.session_id,
        "tunnel_id": session.tunnel_id,
        "peer_session_id": session.peer_session_id,
        "peer_tunnel_id": session.peer_tunnel_id,
    }
    if session.ifname:
        record["interface"] = session.ifname
    if session.cookie:
        record["cookie"] = session.cookie.hex()
    if session.peer_cookie:
        record["peer_cookie"] = session.peer_cookie.hex()
    if session.reorder_timeout_ms:
        record["reorder_timeout"] = session.reorder_timeout_ms
    if session.send_seq:
        record["send_seq"] = None
    if session.recv_seq:
        record["recv_seq"] = None
    record["pseudowire"] = pseudowire_name(session.pw_type)
    record["lns_mode"] = session.lns_mode
    record["using_ipsec"] = session.using_ipsec
    if stats:
        record["stats"] = stats_record(session.stats)
    return record


# --- tables ----------------------------------------------------------------------------


def endpoint(address: object | None, port: int | None) -> str:
    """``10.0.0.1:1701``, ``[2001:db8::1]:1701``, or the bare address when there is no port."""
    if address is None:
        return "-"
    if port is None:
        return str(address)
    if isinstance(address, IPv6Address):
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int]) -> str:
    """Columns padded to their widest cell (two spaces apart); ``numeric`` columns right-aligned."""
    table = [list(headers)] + [list(row) for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = []
    for row in table:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _checksum_cell(tunnel: TunnelInfo) -> str:
    if not _is_udp(tunnel):
        return "-"
    if _is_ipv6(tunnel):
        tx = "off" if tunnel.udp6_zero_csum_tx else "on"
        rx = "off" if tunnel.udp6_zero_csum_rx else "on"
        return tx if tx == rx else f"tx {tx}, rx {rx}"
    if tunnel.udp_csum is None:
        return "-"
    return "on" if tunnel.udp_csum else "off"


def _stats_cells(stats: Stats) -> list[str]:
    return [str(getattr(stats, name)) for _header, name in STATS_COLUMNS]


def tunnel_table(tunnels: Sequence[TunnelInfo], *, stats: bool = False) -> str:
    """One row per tunnel: IDs, version, encapsulation, endpoints, UDP checksum."""
    headers = ["TUNNEL", "PEER-TUNNEL", "VER", "ENCAP", "LOCAL", "PEER", "CSUM"]
    rows = []
    for t in tunnels:
        row = [
            str(t.tunnel_id),
            str(t.peer_tunnel_id),
            f"v{t.version}",
            t.encap.name.lower(),
            endpoint(t.local, t.local_port if _is_udp(t) else None),
            endpoint(t.peer, t.peer_port if _is_udp(t) else None),
            _checksum_cell(t),
        ]
        if stats:
            row += _stats_cells(t.stats)
        rows.append(row)
    numeric = {0, 1}
    if stats:
        first = len(headers)
        headers += [h for h, _name in STATS_COLUMNS]
        numeric |= set(range(first, len(headers)))
    return render_table(headers, rows, numeric)


def _seq_cell(session: SessionInfo) -> str:
    parts = [name for name, on in (("send", session.send_seq), ("recv", session.recv_seq)) if on]
    return ",".join(parts) or "-"


def _options_cell(session: SessionInfo) -> str:
    parts = []
    if session.reorder_timeout_ms:
        parts.append(f"reorder={session.reorder_timeout_ms}ms")
    if session.lns_mode:
        parts.append("lns")
    if session.using_ipsec:
        parts.append("ipsec")
    return " ".join(parts) or "-"


def session_table(sessions: Sequence[SessionInfo], *, stats: bool = False) -> str:
    """One row per session: IDs, pseudowire, interface, cookies, sequencing, options.

    ``COOKIE`` is what the kernel puts in the packets it sends, ``PEER-COOKIE``
    what it requires in the packets it receives (iproute2's meaning).
    """
    headers = [
        "TUNNEL",
        "SESSION",
        "PEER-TUNNEL",
        "PEER-SESSION",
        "PW",
        "INTERFACE",
        "COOKIE",
        "PEER-COOKIE",
        "SEQ",
        "OPTIONS",
    ]
    rows = []
    for s in sessions:
        row = [
            str(s.tunnel_id),
            str(s.session_id),
            str(s.peer_tunnel_id),
            str(s.peer_session_id),
            str(pseudowire_name(s.pw_type)),
            s.ifname or "-",
            s.cookie.hex() or "-",
            s.peer_cookie.hex() or "-",
            _seq_cell(s),
            _options_cell(s),
        ]
        if stats:
            row += _stats_cells(s.stats)
        rows.append(row)
    numeric = {0, 1, 2, 3}
    if stats:
        first = len(headers)
        headers += [h for h, _name in STATS_COLUMNS]
        numeric |= set(range(first, len(headers)))
    return render_table(headers, rows, numeric)


# --- the command -----------------------------------------------------------------------


def show(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    client_factory: ClientFactory = _default_client,
) -> int:
    """Run ``l2tp show`` with parsed ``args``; returns the exit status."""
    prog = "l2tp show"
    netns: str | None = args.netns
    if not check_netns(netns, prog, err):
        return EXIT_USAGE
    try:
        client = client_factory(netns)
        try:
            tunnels = sorted(client.dump_tunnels(), key=lambda t: t.tunnel_id)
            sessions = (
                sorted(client.dump_sessions(), key=lambda s: (s.tunnel_id, s.session_id))
                if args.what == "session"
                else []
            )
        finally:
            client.close()
    except (OSError, ImportError) as exc:
        message, status = error_message(exc, prog, netns)
        print(message, file=err)
        return status

    tunnel_id: int | None = args.tunnel_id
    if tunnel_id is not None and all(t.tunnel_id != tunnel_id for t in tunnels):
        print(f"{prog}: tunnel {tunnel_id} not found", file=err)
        return EXIT_FAILURE
    text: str
    if args.what == "tunnel":
        tunnels = [t for t in tunnels if tunnel_id in (None, t.tunnel_id)]
        if args.json:
            text = json.dumps([tunnel_record(t, stats=args.stats) for t in tunnels]) + "\n"
        else:
            text = tunnel_table(tunnels, stats=args.stats)
    else:
        session_id: int | None = args.session_id
        sessions = [
            s
            for s in sessions
            if tunnel_id in (None, s.tunnel_id) and session_id in (None, s.session_id)
        ]
        if session_id is not None and not sessions:
            where = f" in tunnel {tunnel_id}" if tunnel_id is not None else ""
            print(f"{prog}: session {session_id}{where} not found", file=err)
            return EXIT_FAILURE
        if args.json:
            text = json.dumps([session_record(s, stats=args.stats) for s in sessions]) + "\n"
        else:
            text = session_table(sessions, stats=args.stats)
    return write_output(out, text)


def write_output(out: TextIO, text: str) -> int:
    """Write and flush; a reader that went away (``| head``) is not an error."""
    try:
        out.write(text)
        out.flush()
    except BrokenPipeError:
        silence_stdout(out)
    return EXIT_OK


def silence_stdout(out: TextIO) -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    if out is sys.stdout:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":  # pragma: no cover - use ``l2tp show``
    from l2tp.cli.main import main

    sys.exit(main(["show", *sys.argv[1:]]))
