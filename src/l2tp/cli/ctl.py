"""``l2tp ctl``: talk to a running daemon over its control socket (docs/operations.md).

::

    l2tp ctl [--socket PATH | --daemon NAME] COMMAND [--json]
      status | tunnels | sessions [TUNNEL_ID] | close tunnel ID [--result N]
      | close session TUNNEL_ID SESSION_ID | reload | events | peers

Without ``--socket`` or ``--daemon`` the one socket in ``/run/l2tp`` is used (an error
names them all when there are several). Human output is aligned tables like ``l2tp
show``; ``--json`` prints the daemon's ``result`` object as it came (``events``: one
JSON object per line). Formatting is pure (:func:`tunnels_table`, ...) and tested
without a daemon.

Exit status: 0 success; 1 the daemon refused (no such tunnel, reload not applied, ...)
or cannot be reached; 2 usage.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from l2tp.cli.show import id_value, render_table, write_output
from l2tp.daemons.control_socket import RUN_DIR
from l2tp.daemons.ctl_protocol import (
    Command,
    CtlError,
    Request,
    Response,
    encode_request,
    parse_response,
)
from l2tp.radius.dae_model import DROP_COUNTERS

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
TIMEOUT = 30.0
"""Seconds to wait for an answer (``close`` waits up to 10 s for the tear-down)."""
MAX_RESPONSE = 64 * 1024 * 1024
"""A response line longer than this is not from a daemon of ours."""


class CtlFailure(Exception):
    """One line for standard error, and the exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ctl",
        help="query or command a running daemon over its control socket",
        description="Talk to kl2tpd, l2tp-lns, l2tpd or ql2tpd through its control "
        "socket (--control of the daemon). See docs/operations.md.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--socket", type=Path, metavar="PATH", help="the daemon's socket")
    where.add_argument(
        "--daemon", metavar="NAME", help=f"the socket {RUN_DIR}/NAME.sock (e.g. l2tp-lns)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = parser.add_subparsers(dest="ctl_command", metavar="COMMAND", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON")
        return p

    add("status", "daemon, version, pid, uptime, counts of tunnels and sessions by state")
    add("tunnels", "tunnels with their control channel counters")
    sessions = add("sessions", "sessions (of one tunnel) with their kernel counters")
    sessions.add_argument("tunnel_id", nargs="?", type=id_value, metavar="TUNNEL_ID")
    close = add("close", "close a tunnel (StopCCN) or a session (CDN)")
    what = close.add_subparsers(dest="close_what", metavar="tunnel|session", required=True)
    ct = what.add_parser("tunnel", help="StopCCN to the peer")
    ct.add_argument("tunnel_id", type=id_value, metavar="ID")
    ct.add_argument(
        "--result", type=int, metavar="N", help="StopCCN Result Code (default 1, general request)"
    )
    ct.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON")
    cs = what.add_parser("session", help="CDN to the peer")
    cs.add_argument("tunnel_id", type=id_value, metavar="TUNNEL_ID")
    cs.add_argument("session_id", type=id_value, metavar="SESSION_ID")
    cs.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON")
    add("reload", "re-read the configuration file, as SIGHUP does, and say what happened")
    add("events", "follow tunnel and session up/down events until interrupted")
    add("peers", "the LNSes of each peer list: state, denylisted until when and why, sessions")
    parser.set_defaults(func=run)


def socket_path(args: argparse.Namespace) -> Path:
    if args.socket is not None:
        return Path(args.socket)
    if args.daemon:
        return RUN_DIR / f"{args.daemon}.sock"
    found = sorted(RUN_DIR.glob("*.sock")) if RUN_DIR.is_dir() else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise CtlFailure(f"no control socket in {RUN_DIR} (is a daemon running? see --socket)")
    names = ", ".join(p.stem for p in found)
    raise CtlFailure(f"several daemons ({names}): choose one with --daemon NAME or --socket")


def build_request(args: argparse.Namespace) -> Request:
    cmd = args.ctl_command
    if cmd == "close":
        if args.close_what == "tunnel":
            return Request(
                id=1, command=Command.CLOSE_TUNNEL, tunnel_id=args.tunnel_id, result=args.result
            )
        return Request(
            id=1,
            command=Command.CLOSE_SESSION,
            tunnel_id=args.tunnel_id,
            session_id=args.session_id,
        )
    if cmd == "sessions":
        return Request(id=1, command=Command.SESSIONS, tunnel_id=args.tunnel_id)
    return Request(id=1, command=Command(cmd))


class Connection:
    """A blocking client connection: send a request, read response lines."""

    def __init__(self, path: Path, timeout: float | None = TIMEOUT) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError as exc:
            self.sock.close()
            hint = " (is the daemon running?)" if isinstance(exc, FileNotFoundError) else ""
            raise CtlFailure(f"cannot connect to {path}: {exc.strerror or exc}{hint}") from None
        self._buffer = b""

    def send(self, request: Request) -> None:
        self.sock.sendall(encode_request(request))

    def lines(self) -> Iterator[Response]:
        while True:
            while b"\n" not in self._buffer:
                try:
                    chunk = self.sock.recv(65536)
                except TimeoutError:
                    raise CtlFailure(f"no answer from {self.path}") from None
                if not chunk:
                    return
                self._buffer += chunk
                if len(self._buffer) > MAX_RESPONSE:
                    raise CtlFailure("response too long")
            line, self._buffer = self._buffer.split(b"\n", 1)
            try:
                yield parse_response(line)
            except CtlError as exc:
                raise CtlFailure(f"unexpected answer from the daemon: {exc.message}") from None

    def call(self, request: Request) -> Any:
        self.send(request)
        for response in self.lines():
            if response.event is not None:
                continue
            if response.error is not None:
                raise CtlFailure(f"{response.error.code}: {response.error.message}")
            return response.result
        raise CtlFailure("the daemon closed the connection without an answer")

    def close(self) -> None:
        self.sock.close()


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        request = build_request(args)
        conn = Connection(socket_path(args), timeout=TIMEOUT)
        try:
            if request.command is Command.EVENTS:
                conn.call(request)
                conn.sock.settimeout(None)
                return follow_events(conn, args.json, out)
            result = conn.call(request)
        finally:
            conn.close()
    except CtlFailure as exc:
        print(f"l2tp ctl: {exc}", file=err)
        return exc.status
    except OSError as exc:
        print(f"l2tp ctl: {exc.strerror or exc}", file=err)
        return EXIT_FAILURE
    if args.json:
        status = write_output(out, json.dumps(result, indent=2) + "\n")
    else:
        status = write_output(out, render(request.command, result))
    if request.command is Command.RELOAD and not (result.get("applied") and not result["errors"]):
        return EXIT_FAILURE
    return status


def follow_events(conn: Connection, as_json: bool, out: TextIO) -> int:
    try:
        for response in conn.lines():
            if response.event is None:
                continue
            text = json.dumps(response.event) if as_json else event_line(response.event)
            out.write(text + "\n")
            out.flush()
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


# ----------------------------------------------------------------- formatting


def uptime(seconds: float | None) -> str:
    """``2d03h``, ``1h02m``, ``3m05s``, ``12s``; ``-`` when not up."""
    if seconds is None:
        return "-"
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d{h:02d}h"
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def _cell(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def _rtt(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}ms"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def _radius_counts(c: dict[str, int]) -> str:
    """One RADIUS server's counters, the ones that are not zero after the first four."""
    always = ("requests", "accepts", "rejects", "timeouts")
    parts = [f"{c.get(k, 0)} {k}" for k in always]
    parts += [f"{v} {k.replace('_', ' ')}" for k, v in c.items() if k not in always and v]
    return ", ".join(parts)


def _dae_counts(d: dict[str, Any]) -> str:
    """The Dynamic Authorization server: where, requests and replies, then what is not
    zero of the drops (NAKs by Error-Cause: ``503 x2``)."""
    parts = [
        f"{d.get('listen', '?')}:",
        f"{d.get('disconnect_requests', 0)} disconnect"
        f" ({d.get('disconnect_acks', 0)} ack, {d.get('disconnect_naks', 0)} nak),",
        f"{d.get('coa_requests', 0)} coa ({d.get('coa_acks', 0)} ack, {d.get('coa_naks', 0)} nak)",
    ]
    causes = d.get("naks_by_cause") or {}
    extra = [f"nak {cause} x{n}" for cause, n in sorted(causes.items()) if n]
    extra += [f"{d[k]} {k.replace('_', ' ')}" for k in (*DROP_COUNTERS, "duplicates") if d.get(k)]
    return " ".join(parts) + (", " + ", ".join(extra) if extra else "")


def _accounting_counts(c: dict[str, int]) -> str:
    """The accounting engine's main counters and its spool's (RADIUS accounting)."""
    shown = (
        ("sessions", "accounting_sessions"),
        ("starts", "accounting_starts"),
        ("interims", "accounting_interims"),
        ("stops", "accounting_stops"),
        ("acknowledged", "accounting_acknowledged"),
        ("timeouts", "accounting_timeouts"),
        ("spooled", "accounting_spool_pending"),
        ("dropped", "accounting_spool_dropped"),
    )
    text = ", ".join(f"{c.get(key, 0)} {label}" for label, key in shown)
    if c.get("draining"):
        text += " (draining: no new sessions; closes once these end)"
    return text


_REFUSALS = (
    ("tunnel limit", "rejected"),
    ("pending limit", "pending_limit"),
    ("peer pending limit", "peer_pending_limit"),
    ("not allowed", "not_allowed"),
    ("bad SCCRQ", "bad_sccrq"),
    ("bad digest", "bad_digest"),
    ("malformed", "malformed"),
)
"""A listener's SCCRQ refusals as ``status`` shows them (the metric's reasons)."""


def _listener_counts(c: dict[str, Any]) -> str:
    """SCCRQs accepted and refused (by reason, those that happened), and half-open
    tunnels evicted: the listener's stateless refusals, which leave no other trace."""
    reasons = [(label, c.get(key, 0)) for label, key in _REFUSALS]
    refused = sum(n for _, n in reasons)
    text = f"{c.get('accepted', 0)} SCCRQs accepted, {refused} refused"
    parts = [f"{n} {label}" for label, n in reasons if n]
    if c.get("rejects_unsent") and parts:  # the tunnel limit's StopCCNs over reject_rate
        parts[0] += f" ({c['rejects_unsent']} unanswered)"
    detail = ", ".join(parts)
    if detail:
        text += f" ({detail})"
    return text + f", {c.get('pending_evicted', 0)} half-open evicted"


def status_text(result: dict[str, Any]) -> str:
    def by_state(counts: dict[str, int]) -> str:
        total = sum(counts.values())
        detail = ", ".join(f"{n} {state}" for state, n in counts.items())
        return f"{total} ({detail})" if detail else "0"

    lines = [
        ("daemon", f"{result['daemon']} {result['version']} (pid {result['pid']})"),
        ("uptime", uptime(result["uptime"])),
        ("config", _cell(result.get("config_file"))),
        ("summary", _cell(result.get("summary"))),
        ("tunnels", by_state(result["tunnels"])),
        ("sessions", by_state(result["sessions"])),
    ]
    for listener in result.get("listeners", []):
        text = f"{listener['name']} on {listener['address']}"
        if isinstance(listener.get("counters"), dict):
            text += f": {_listener_counts(listener['counters'])}"
        lines.append(("listener", text))
    if result.get("metrics"):
        lines.append(("metrics", f"http://{result['metrics']}/metrics"))
    radius = result.get("radius")
    if isinstance(radius, dict):
        for name, c in radius.get("servers", {}).items():
            lines.append(("radius", f"{name}: {_radius_counts(c)}"))
        dae = radius.get("dae")
        if isinstance(dae, dict):
            lines.append(("radius dae", _dae_counts(dae)))
        accounting = radius.get("accounting")
        if isinstance(accounting, dict):
            lines.append(("accounting", _accounting_counts(accounting)))
        granted = radius.get("granted") or {}
        if any(granted.values()):
            text = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in granted.items() if v)
            lines.append(("radius", f"granted: {text}"))
        for listener, own in (radius.get("listeners") or {}).items():  # [listener.L.radius]
            for name, c in own.get("servers", {}).items():
                lines.append((f"radius {listener}", f"{name}: {_radius_counts(c)}"))
            if isinstance(own.get("accounting"), dict):
                lines.append((f"accounting {listener}", _accounting_counts(own["accounting"])))
            for old in own.get("replaced_accounting") or ():  # moved to another spool
                servers = ", ".join(old.get("servers", {})) or "no servers"
                text = f"replaced, to {servers}: {_accounting_counts(old)}"
                lines.append((f"accounting {listener}", text))
    width = max(len(k) for k, _ in lines)
    return "".join(f"{k.ljust(width)}  {v}\n" for k, v in lines)


TUNNEL_HEADERS = (
    "TUNNEL",
    "PEER-TUNNEL",
    "NAME",
    "PEER",
    "ROLE",
    "VER",
    "ENCAP",
    "STATE",
    "UPTIME",
    "SESSIONS",
    "SENT",
    "RECV",
    "RETX",
    "DUP",
    "OOO",
    "HELLO-RTT",
)


def tunnels_table(records: Sequence[dict[str, Any]]) -> str:
    rows = []
    for t in records:
        c = t.get("counters")
        if c is None:  # a static ql2tpd tunnel: no control channel, nothing counted
            counts = ["-"] * 6
        else:
            counts = [
                str(sum(c["sent"].values())),
                str(sum(c["received"].values())),
                str(c["retransmissions"]),
                str(c["duplicates"]),
                str(c["out_of_order"]),
                _rtt(c.get("hello_rtt")),
            ]
        rows.append(
            [
                str(t["tunnel_id"]),
                str(t["peer_tunnel_id"]),
                _cell(t.get("name")),
                _cell(t.get("peer")),
                _cell(t.get("role")),
                str(t["version"]),
                _cell(t.get("encap")),
                _cell(t.get("state")),
                uptime(t.get("uptime")),
                str(t["sessions"]),
                *counts,
            ]
        )
    return render_table(TUNNEL_HEADERS, rows, numeric={0, 1, 5, 9, 10, 11, 12, 13, 14, 15})


SESSION_HEADERS = (
    "TUNNEL",
    "SESSION",
    "PEER-TUNNEL",
    "PEER-SESSION",
    "STATE",
    "PSEUDOWIRE",
    "INTERFACE",
    "PPPD",
    "UPTIME",
    "RX-PKTS",
    "TX-PKTS",
)


def sessions_table(records: Sequence[dict[str, Any]]) -> str:
    rows = []
    for s in records:
        kernel = s.get("kernel") or {}
        rows.append(
            [
                str(s["tunnel_id"]),
                str(s["session_id"]),
                str(s["peer_tunnel_id"]),
                str(s["peer_session_id"]),
                _cell(s.get("state")),
                _cell(s.get("pseudowire")),
                _cell(s.get("interface")),
                _cell(s.get("pppd_pid")),
                uptime(s.get("uptime")),
                _cell(kernel.get("rx_packets")),
                _cell(kernel.get("tx_packets")),
            ]
        )
    return render_table(SESSION_HEADERS, rows, numeric={0, 1, 2, 3, 7, 9, 10})


PEER_HEADERS = (
    "NAME",
    "PEER",
    "PREF",
    "WEIGHT",
    "STATE",
    "TUNNEL",
    "SESSIONS",
    "UP",
    "MAX",
    "DENYLISTED-UNTIL",
    "REASON",
    "DENIALS",
)


def peers_table(records: Sequence[dict[str, Any]]) -> str:
    """One row per LNS of a peer list; REASON is why it was last denylisted (with the
    Result Code), kept after the denial ends; DENIALS counts them all."""
    if not records:
        return "no peer lists (a tunnel's peer is one address)\n"
    rows = []
    for p in records:
        reason = p.get("reason")
        if reason is not None and p.get("result") is not None:
            reason = f"{reason} {p['result']}"
        rows.append(
            [
                _cell(p.get("name")),
                _cell(p.get("peer")),
                str(p["preference"]),
                str(p["weight"]),
                _cell(p.get("state")),
                _cell(p.get("tunnel_id")),
                str(p["sessions"]),
                str(p["established"]),
                str(p["max_sessions"] or "-"),
                _cell(p.get("denylisted_until")),
                _cell(reason),
                str(sum((p.get("denylisted_total") or {}).values())),
            ]
        )
    return render_table(PEER_HEADERS, rows, numeric={2, 3, 5, 6, 7, 8, 11})


def event_line(event: dict[str, Any]) -> str:
    """``TIME TYPE key=value ...`` (the keys that are set)."""
    parts = [_cell(event.get("time")), _cell(event.get("type"))]
    for key in ("tunnel_id", "session_id", "peer_tunnel_id", "peer_session_id", "peer", "name"):
        if event.get(key) is not None:
            parts.append(f"{key.removesuffix('_id')}={event[key]}")
    reason = event.get("reason")
    if reason:
        parts.append(f"result={reason['result']}")
        if reason.get("message"):
            parts.append(f"message={json.dumps(reason['message'])}")
    if "by_peer" in event:
        parts.append(f"by_peer={'yes' if event['by_peer'] else 'no'}")
    return " ".join(parts)


def render(command: Command, result: Any) -> str:
    match command:
        case Command.STATUS:
            return status_text(result)
        case Command.TUNNELS:
            return tunnels_table(result)
        case Command.SESSIONS:
            return sessions_table(result)
        case Command.PEERS:
            return peers_table(result)
        case Command.CLOSE_TUNNEL:
            acked = "acknowledged" if result["acknowledged"] else "not acknowledged"
            return f"tunnel {result['tunnel_id']}: StopCCN {result['result']} sent, {acked}\n"
        case Command.CLOSE_SESSION:
            return f"session {result['tunnel_id']}/{result['session_id']}: CDN sent\n"
        case Command.RELOAD:
            if not result["applied"]:
                return "reload not applied:\n" + "".join(f"  {e}\n" for e in result["errors"])
            text = f"configuration reloaded: {result['summary']}\n"
            return text + "".join(f"  incomplete: {e}\n" for e in result["errors"])
    return json.dumps(result) + "\n"  # pragma: no cover
