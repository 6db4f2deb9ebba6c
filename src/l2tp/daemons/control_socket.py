"""The daemons' control socket: a Unix stream socket speaking :mod:`.ctl_protocol`.

Placement and ownership (``--control PATH``, ``--control-group GROUP``): the parent
directory is created (0755), the socket is bound under a umask that leaves it 0600
(0660 and owned by GROUP with ``--control-group``) from its first instant, and removed
at exit if it is still ours. An existing socket is probed by connecting: a daemon that
answers owns it, and starting is refused with :class:`ControlSocketBusy` (its message
names the owner's pid from SO_PEERCRED); a socket nobody listens on is stale and is
replaced.

Who may talk: the file mode is the first gate; SO_PEERCRED is the second, so a socket
reached through a copied descriptor or loosened permissions still refuses a client
that is neither root, the daemon's own user, nor in the socket's group (``forbidden``,
then closed).

A client can never stall or hurt the daemon: everything runs on the daemon's event
loop without blocking; a request line is at most :data:`~.ctl_protocol.MAX_LINE`
bytes (longer: ``too-large`` and closed, having buffered no more than that); a
connection that sends no complete request within ``idle_timeout`` is closed; a
response the client does not read within ``idle_timeout`` ends the connection; at most
``max_clients`` connections are served at once; an ``events`` subscriber whose unread
output exceeds :data:`EVENT_BUFFER` is dropped (events are never queued without bound
for a reader that stopped). Garbage gets an error response and the connection stays
usable. The connection bookkeeping and time bounds are :class:`.bounded_server.BoundedServer`'s,
shared with the metrics exporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import logging
import os
import socket
import stat
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .bounded_server import BoundedServer, read_until, send
from .ctl_protocol import (
    MAX_LINE,
    Command,
    CtlError,
    ErrorCode,
    Request,
    encode_error,
    encode_event,
    encode_result,
    parse_request,
    request_id,
)

log = logging.getLogger("l2tp.control")

RUN_DIR = Path("/run/l2tp")
EVENT_BUFFER = 256 * 1024
"""Bytes of unread ``events`` output a subscriber may hold before it is dropped."""
_PEERCRED = struct.Struct("3i")


def default_path(daemon: str) -> Path:
    """``/run/l2tp/<daemon>.sock``: one socket per daemon kind."""
    return RUN_DIR / f"{daemon}.sock"


class ControlTarget(Protocol):
    """What the control socket asks of a daemon; errors are :class:`CtlError`."""

    def status(self) -> dict[str, Any]: ...

    def tunnels(self) -> list[dict[str, Any]]: ...

    async def sessions(self, tunnel_id: int | None) -> list[dict[str, Any]]: ...

    async def close_tunnel(self, tunnel_id: int, result: int | None) -> dict[str, Any]: ...

    async def close_session(self, tunnel_id: int, session_id: int) -> dict[str, Any]: ...

    async def reload(self) -> dict[str, Any]: ...

    def peers(self) -> list[dict[str, Any]]: ...

    def events(self) -> AsyncIterator[dict[str, Any]]: ...


class ControlSocketError(Exception):
    """The control socket cannot be set up; the message is the daemon's one line."""


class ControlSocketBusy(ControlSocketError):
    """A live daemon already answers on the path."""


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """SO_PEERCRED of a connected Unix socket: who is at the other end."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid)


def _supplementary_groups(pid: int) -> set[int]:
    """The client's supplementary groups from ``/proc/PID/status`` (SO_PEERCRED has only
    the primary one). procfs is memory-backed: this read does not block the loop."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except (OSError, ValueError):
        pass
    return set()


def resolve_group(name: str) -> int:
    """A group name or number; :class:`ControlSocketError` when unknown."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise ControlSocketError(f"--control-group {name}: no such group") from None


class ControlServer(BoundedServer):
    """One daemon's control socket; :meth:`start` binds it, :meth:`close` removes it."""

    def __init__(
        self,
        path: Path,
        target: ControlTarget,
        *,
        group: int | None = None,
        idle_timeout: float = 30.0,
        max_clients: int = 64,
    ) -> None:
        super().__init__(limit=MAX_LINE, max_clients=max_clients, log=log, what="control socket")
        self.path = path
        self.target = target
        self.group = group
        self.idle_timeout = idle_timeout
        self._inode: tuple[int, int] | None = None
        self.refused = 0
        """Connections refused (credentials, too many clients) or dropped (timeouts,
        oversize requests, stalled event readers)."""

    # ---------------------------------------------------------------- lifetime

    async def start(self) -> None:
        """Bind and listen; raises :class:`ControlSocketError` with the reason."""
        await self._take_over()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117 if self.group is not None else 0o177)
        try:
            sock.bind(str(self.path))
        except OSError as exc:
            sock.close()
            raise ControlSocketError(f"control socket {self.path}: {exc.strerror}") from exc
        finally:
            os.umask(old)
        try:
            if self.group is not None:
                os.chown(self.path, -1, self.group)
                os.chmod(self.path, 0o660)
            st = os.stat(self.path)
            self._inode = (st.st_dev, st.st_ino)
            self._server = await asyncio.start_unix_server(
                self._client, sock=sock, limit=self.limit
            )
        except OSError as exc:
            sock.close()
            self._unlink()
            raise ControlSocketError(f"control socket {self.path}: {exc.strerror}") from exc
        log.info("control socket listening on %s", self.path)

    async def _take_over(self) -> None:
        """Create the directory; refuse a live owner of the path; remove a stale socket."""
        try:
            self.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as exc:
            raise ControlSocketError(
                f"control socket directory {self.path.parent}: {exc.strerror}"
                " (use --control PATH, or --control none)"
            ) from exc
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlSocketError(f"control socket {self.path}: exists and is not a socket")
        owner = await _probe(self.path)
        if owner is not None:
            who = f" (pid {owner.pid})" if owner.pid else ""
            raise ControlSocketBusy(
                f"control socket {self.path} is in use by a running daemon{who}"
            )
        log.info("control socket %s: removing a stale socket", self.path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def close(self) -> None:
        """Stop accepting, end every connection, remove the socket if it is still ours."""
        await super().close()
        self._unlink()

    def _unlink(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == self._inode:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self._inode = None

    # ---------------------------------------------------------------- clients

    def _allowed(self, creds: PeerCredentials) -> bool:
        if creds.uid in (0, os.geteuid()):
            return True
        if self.group is None:
            return False
        return creds.gid == self.group or self.group in _supplementary_groups(creds.pid)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        await send(writer, data, self.idle_timeout)

    async def _refuse(
        self, writer: asyncio.StreamWriter, code: ErrorCode, message: str, rid: Any = None
    ) -> None:
        self.refused += 1
        log.info("control socket: client refused: %s", message)
        writer.write(encode_error(rid, code, message))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.drain(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        creds = peer_credentials(sock)
        if not self._allowed(creds):
            who = f"uid {creds.uid} gid {creds.gid} pid {creds.pid}"
            await self._refuse(writer, ErrorCode.FORBIDDEN, f"not allowed: {who}")
            return
        if self.over_limit:
            await self._refuse(writer, ErrorCode.BUSY, "too many control clients")
            return
        while True:
            try:
                line = await read_until(reader, b"\n", self.idle_timeout)
            except asyncio.IncompleteReadError:
                return  # end of input (a partial last line is not a request)
            except asyncio.LimitOverrunError:
                await self._refuse(
                    writer, ErrorCode.TOO_LARGE, f"request longer than {MAX_LINE} bytes"
                )
                return
            except TimeoutError:
                await self._refuse(writer, ErrorCode.TIMEOUT, "no request within the timeout")
                return
            if not line.strip():
                continue
            try:
                request = parse_request(line)
            except CtlError as exc:
                await self._send(writer, encode_error(request_id(line), exc.code, exc.message))
                continue
            if request.command is Command.EVENTS:
                await self._stream_events(request, reader, writer)
                return
            await self._send(writer, await self._answer(request))

    async def _answer(self, request: Request) -> bytes:
        target = self.target
        try:
            match request.command:
                case Command.STATUS:
                    result: Any = target.status()
                case Command.TUNNELS:
                    result = target.tunnels()
                case Command.SESSIONS:
                    result = await target.sessions(request.tunnel_id)
                case Command.CLOSE_TUNNEL:
                    assert request.tunnel_id is not None
                    result = await target.close_tunnel(request.tunnel_id, request.result)
                case Command.CLOSE_SESSION:
                    assert request.tunnel_id is not None and request.session_id is not None
                    result = await target.close_session(request.tunnel_id, request.session_id)
                case Command.RELOAD:
                    result = await target.reload()
                case Command.PEERS:
                    result = target.peers()
                case _:  # pragma: no cover - EVENTS is handled by the caller
                    raise CtlError(ErrorCode.UNKNOWN_COMMAND, str(request.command))
        except CtlError as exc:
            return encode_error(request.id, exc.code, exc.message)
        except Exception:
            log.exception("control socket: %s failed", request.command)
            return encode_error(request.id, ErrorCode.INTERNAL, "internal error (see the log)")
        return encode_result(request.id, result)

    async def _stream_events(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Turn the connection into an event stream until the client or the daemon ends it.

        Events are written without waiting for the client: once more than
        :data:`EVENT_BUFFER` bytes are unread the subscriber is dropped, so a stalled
        reader costs a bounded buffer and never delays the control plane.
        """
        events = self.target.events()
        await self._send(writer, encode_result(request.id, {"stream": "events"}))
        transport = writer.transport
        eof = asyncio.ensure_future(_until_eof(reader))
        try:
            async for record in _until(events, eof):
                writer.write(encode_event(record))
                if transport.get_write_buffer_size() > EVENT_BUFFER:
                    self.refused += 1
                    log.info("control socket: events subscriber not reading; dropped")
                    transport.abort()
                    return
        finally:
            eof.cancel()
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()


async def _until_eof(reader: asyncio.StreamReader) -> None:
    """Discard what an events subscriber sends (bounded by the reader's limit per read)
    until it closes its end."""
    while await reader.read(4096):
        pass


async def _until(
    events: AsyncIterator[dict[str, Any]], stop: asyncio.Future[None]
) -> AsyncIterator[dict[str, Any]]:
    """``events`` until ``stop`` completes (the client hung up)."""
    it = aiter(events)
    while not stop.done():
        nxt: asyncio.Future[dict[str, Any]] = asyncio.ensure_future(anext(it))
        waiting: set[asyncio.Future[Any]] = {nxt, stop}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not nxt.done():
            nxt.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await nxt
            return
        try:
            yield nxt.result()
        except StopAsyncIteration:
            return


async def _probe(path: Path) -> PeerCredentials | None:
    """Who answers on ``path``: their credentials, or None when nobody does (stale)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 2.0)
    except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
        return None
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return None
        raise ControlSocketError(f"control socket {path}: {exc.strerror}") from exc
    try:
        return peer_credentials(writer.get_extra_info("socket"))
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def add_control_arguments(parser: Any, daemon: str) -> None:
    """``--control``, ``--control-group``, ``--control-timeout`` of every daemon."""
    parser.add_argument(
        "--control",
        metavar="PATH",
        default=str(default_path(daemon)),
        help="control socket for `l2tp ctl` (default %(default)s; 'none': no socket)",
    )
    parser.add_argument(
        "--control-group",
        metavar="GROUP",
        help="group allowed to use the control socket (mode 0660; default: root only, 0600)",
    )
    parser.add_argument(
        "--control-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="close a control connection idle (or not reading) this long (default 30)",
    )


def server_from_args(args: Any, target: ControlTarget) -> ControlServer | None:
    """The server the options ask for (None with ``--control none``); raises
    :class:`ControlSocketError` for an unknown group."""
    if args.control in ("none", ""):
        return None
    group = resolve_group(args.control_group) if args.control_group else None
    return ControlServer(Path(args.control), target, group=group, idle_timeout=args.control_timeout)
