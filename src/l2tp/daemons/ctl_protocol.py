"""The control socket's wire format: versioned JSON lines (``docs/operations.md``).

One request per line, one response line per request, in order::

    -> {"v": 1, "id": 7, "cmd": "close-tunnel", "tunnel": 4711, "result": 6}
    <- {"v": 1, "id": 7, "ok": true, "result": {...}}
    <- {"v": 1, "id": 7, "ok": false, "error": {"code": "not-found", "message": "..."}}

``events`` answers once with ``{"ok": true, "result": {"stream": "events"}}`` and from
then on the connection carries one ``{"v": 1, "event": {...}}`` line per event until
either side closes it.

Why JSON lines rather than a binary framing: operators debug with ``socat`` and ``jq``,
and the volume is tiny. The version ``v`` is checked on every request, so a future
``v: 2`` client gets a clear ``bad-version`` error from an old daemon instead of a
misread. Everything a client sends is untrusted: :func:`parse_request` turns any fault
into a :class:`CtlError` with its :class:`ErrorCode`, never another exception.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
"""The ``v`` of every line; bumped on an incompatible change."""
MAX_LINE = 64 * 1024
"""Longest request line the daemon reads (bytes, newline included); longer: error, closed."""

_U32 = 0xFFFFFFFF


class Command(enum.StrEnum):
    """The ``cmd`` of a request."""

    STATUS = "status"
    TUNNELS = "tunnels"
    SESSIONS = "sessions"
    """Optional ``tunnel``: only that tunnel's sessions."""
    CLOSE_TUNNEL = "close-tunnel"
    """``tunnel``, optional ``result`` (StopCCN Result Code, default 1)."""
    CLOSE_SESSION = "close-session"
    """``tunnel`` and ``session``: a CDN."""
    RELOAD = "reload"
    EVENTS = "events"
    PEERS = "peers"
    """The LNSes of each peer list (kl2tpd): state, denylist, sessions."""


class ErrorCode(enum.StrEnum):
    """The ``error.code`` of a failed request (the message is for people)."""

    BAD_JSON = "bad-json"
    """The line is not a JSON object."""
    BAD_VERSION = "bad-version"
    BAD_REQUEST = "bad-request"
    """A field is missing, of the wrong type or out of range."""
    UNKNOWN_COMMAND = "unknown-command"
    TOO_LARGE = "too-large"
    """The line exceeds :data:`MAX_LINE`; the connection is closed after this error."""
    FORBIDDEN = "forbidden"
    """The client's credentials (SO_PEERCRED) are neither root nor the socket's group."""
    BUSY = "busy"
    """Too many clients connected; the connection is closed after this error."""
    TIMEOUT = "timeout"
    """No complete request within the idle timeout; the connection is closed."""
    NOT_FOUND = "not-found"
    """No such tunnel or session."""
    UNSUPPORTED = "unsupported"
    """This daemon has no such operation (e.g. closing a static ql2tpd tunnel)."""
    INTERNAL = "internal"
    """A bug in the daemon; the details are in its log."""


class CtlError(Exception):
    """A request that failed: its wire code and a one-line message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


RequestId = int | str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One decoded request; which optional fields apply depends on ``command``."""

    id: RequestId = None
    command: Command
    tunnel_id: int | None = None
    session_id: int | None = None
    result: int | None = None

    def __post_init__(self) -> None:
        if self.command in (Command.CLOSE_TUNNEL, Command.CLOSE_SESSION) and (
            self.tunnel_id is None
        ):
            raise CtlError(ErrorCode.BAD_REQUEST, f"{self.command} needs 'tunnel'")
        if self.command is Command.CLOSE_SESSION and self.session_id is None:
            raise CtlError(ErrorCode.BAD_REQUEST, "close-session needs 'session'")


def _int_field(obj: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise CtlError(ErrorCode.BAD_REQUEST, f"'{key}' must be an integer {lo}-{hi}")
    return value


def _json_object(line: bytes | str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CtlError(ErrorCode.BAD_JSON, f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CtlError(ErrorCode.BAD_JSON, "a request is a JSON object")
    return obj


def request_id(line: bytes) -> RequestId:
    """The ``id`` of a line, if it has a usable one (to address an error about it)."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    rid = obj.get("id") if isinstance(obj, dict) else None
    return rid if _valid_id(rid) else None


def _valid_id(rid: object) -> bool:
    if isinstance(rid, bool):
        return False
    return rid is None or (isinstance(rid, int | str) and len(str(rid)) <= 64)


def parse_request(line: bytes | str) -> Request:
    """Decode one request line; any fault is a :class:`CtlError`."""
    obj = _json_object(line)
    if obj.get("v") != PROTOCOL_VERSION:
        raise CtlError(
            ErrorCode.BAD_VERSION, f"protocol version {PROTOCOL_VERSION} expected in 'v'"
        )
    rid = obj.get("id")
    if not _valid_id(rid):
        raise CtlError(ErrorCode.BAD_REQUEST, "'id' must be an integer or a short string")
    cmd = obj.get("cmd")
    try:
        command = Command(str(cmd))
    except ValueError:
        raise CtlError(ErrorCode.UNKNOWN_COMMAND, f"unknown command {str(cmd)[:40]!r}") from None
    return Request(
        id=rid,
        command=command,
        tunnel_id=_int_field(obj, "tunnel", 1, _U32),
        session_id=_int_field(obj, "session", 1, _U32),
        result=_int_field(obj, "result", 0, 0xFFFF),
    )


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode() + b"\n"


def encode_request(req: Request) -> bytes:
    obj: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": req.id, "cmd": str(req.command)}
    for key, value in (
        ("tunnel", req.tunnel_id),
        ("session", req.session_id),
        ("result", req.result),
    ):
        if value is not None:
            obj[key] = value
    return _line(obj)


def encode_result(rid: RequestId, result: Any) -> bytes:
    return _line({"v": PROTOCOL_VERSION, "id": rid, "ok": True, "result": result})


def encode_error(rid: RequestId, code: ErrorCode, message: str) -> bytes:
    error = {"code": str(code), "message": message}
    return _line({"v": PROTOCOL_VERSION, "id": rid, "ok": False, "error": error})


def encode_event(event: dict[str, Any]) -> bytes:
    return _line({"v": PROTOCOL_VERSION, "event": event})


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """A response or an event line as the client decodes it."""

    id: RequestId = None
    ok: bool = True
    result: Any = None
    error: CtlError | None = None
    event: dict[str, Any] | None = None


def parse_response(line: bytes | str) -> Response:
    """Decode a line from the daemon; a malformed one is a :class:`CtlError` (BAD_JSON)."""
    obj = _json_object(line)
    if obj.get("v") != PROTOCOL_VERSION:
        raise CtlError(ErrorCode.BAD_VERSION, f"daemon speaks protocol {obj.get('v')!s}")
    if "event" in obj:
        event = obj["event"]
        if not isinstance(event, dict):
            raise CtlError(ErrorCode.BAD_JSON, "'event' is not an object")
        return Response(event=event)
    rid = obj.get("id")
    if obj.get("ok") is True:
        return Response(id=rid, result=obj.get("result"))
    error = obj.get("error")
    if not isinstance(error, dict):
        raise CtlError(ErrorCode.BAD_JSON, "a failed response carries an 'error' object")
    try:
        code = ErrorCode(str(error.get("code")))
    except ValueError:
        code = ErrorCode.INTERNAL
    return Response(id=rid, ok=False, error=CtlError(code, str(error.get("message", ""))))
