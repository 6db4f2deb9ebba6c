"""The control socket's wire format (l2tp.daemons.ctl_protocol), both directions."""

from __future__ import annotations

import json

import pytest

from l2tp.daemons.ctl_protocol import (
    MAX_LINE,
    PROTOCOL_VERSION,
    Command,
    CtlError,
    ErrorCode,
    Request,
    encode_error,
    encode_event,
    encode_request,
    encode_result,
    parse_request,
    parse_response,
    request_id,
)


@pytest.mark.parametrize(
    "request_",
    [
        Request(id=1, command=Command.STATUS),
        Request(id="abc", command=Command.TUNNELS),
        Request(id=2, command=Command.SESSIONS, tunnel_id=7),
        Request(id=3, command=Command.SESSIONS),
        Request(id=4, command=Command.CLOSE_TUNNEL, tunnel_id=0xFFFFFFFF, result=6),
        Request(id=5, command=Command.CLOSE_TUNNEL, tunnel_id=9),
        Request(id=6, command=Command.CLOSE_SESSION, tunnel_id=9, session_id=12),
        Request(id=None, command=Command.RELOAD),
        Request(id=8, command=Command.EVENTS),
    ],
)
def test_request_round_trip(request_: Request) -> None:
    line = encode_request(request_)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert parse_request(line) == request_


def test_request_wire_names() -> None:
    line = encode_request(Request(id=4, command=Command.CLOSE_SESSION, tunnel_id=1, session_id=2))
    assert json.loads(line) == {"v": 1, "id": 4, "cmd": "close-session", "tunnel": 1, "session": 2}


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"garbage", ErrorCode.BAD_JSON),
        (b"\xff\xfe", ErrorCode.BAD_JSON),
        (b"[1, 2]", ErrorCode.BAD_JSON),
        (b'{"cmd": "status"}', ErrorCode.BAD_VERSION),
        (b'{"v": 2, "cmd": "status"}', ErrorCode.BAD_VERSION),
        (b'{"v": "1", "cmd": "status"}', ErrorCode.BAD_VERSION),
        (b'{"v": 1, "cmd": "shutdown"}', ErrorCode.UNKNOWN_COMMAND),
        (b'{"v": 1}', ErrorCode.UNKNOWN_COMMAND),
        (b'{"v": 1, "cmd": "close-tunnel"}', ErrorCode.BAD_REQUEST),
        (b'{"v": 1, "cmd": "close-session", "tunnel": 1}', ErrorCode.BAD_REQUEST),
        (b'{"v": 1, "cmd": "close-tunnel", "tunnel": 0}', ErrorCode.BAD_REQUEST),
        (b'{"v": 1, "cmd": "close-tunnel", "tunnel": 4294967296}', ErrorCode.BAD_REQUEST),
        (b'{"v": 1, "cmd": "close-tunnel", "tunnel": "1"}', ErrorCode.BAD_REQUEST),
        (b'{"v": 1, "cmd": "close-tunnel", "tunnel": true}', ErrorCode.BAD_REQUEST),
        (b'{"v": 1, "cmd": "close-tunnel", "tunnel": 1, "result": 65536}', ErrorCode.BAD_REQUEST),
        (b'{"v": 1, "cmd": "status", "id": [1]}', ErrorCode.BAD_REQUEST),
        (b'{"v": 1, "cmd": "status", "id": "' + b"x" * 65 + b'"}', ErrorCode.BAD_REQUEST),
    ],
)
def test_bad_requests_are_errors_with_a_code(line: bytes, code: ErrorCode) -> None:
    with pytest.raises(CtlError) as info:
        parse_request(line)
    assert info.value.code is code
    assert info.value.message


def test_request_id_of_a_bad_line() -> None:
    """An error about a request is addressed to its id when the line has a usable one."""
    assert request_id(b'{"v": 1, "id": 9, "cmd": "nope"}') == 9
    assert request_id(b'{"id": true}') is None
    assert request_id(b"garbage") is None


def test_responses_and_events_round_trip() -> None:
    ok = parse_response(encode_result(3, {"a": [1, 2]}))
    assert (ok.id, ok.ok, ok.result, ok.error, ok.event) == (3, True, {"a": [1, 2]}, None, None)
    err = parse_response(encode_error(4, ErrorCode.NOT_FOUND, "no tunnel 9"))
    assert (err.id, err.ok) == (4, False)
    assert err.error is not None
    assert (err.error.code, err.error.message) == (ErrorCode.NOT_FOUND, "no tunnel 9")
    ev = parse_response(encode_event({"type": "tunnel-up", "tunnel_id": 1}))
    assert ev.event == {"type": "tunnel-up", "tunnel_id": 1}
    assert json.loads(encode_error(None, ErrorCode.TOO_LARGE, "x")) == {
        "v": PROTOCOL_VERSION,
        "id": None,
        "ok": False,
        "error": {"code": "too-large", "message": "x"},
    }


def test_unknown_error_code_from_a_newer_daemon_is_kept_as_internal() -> None:
    line = b'{"v": 1, "id": 1, "ok": false, "error": {"code": "brand-new", "message": "m"}}'
    resp = parse_response(line)
    assert resp.error is not None and resp.error.code is ErrorCode.INTERNAL


@pytest.mark.parametrize(
    "line", [b"{}", b'{"v": 1, "ok": false}', b'{"v": 1, "event": 3}', b"nope"]
)
def test_malformed_responses(line: bytes) -> None:
    with pytest.raises(CtlError):
        parse_response(line)


def test_max_line_is_64_kib() -> None:
    assert MAX_LINE == 65536
