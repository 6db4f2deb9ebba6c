"""``l2tp monitor``: event lines, JSON lines, stopping, signals and errors (no root)."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta, timezone
from ipaddress import ip_address
from typing import Any, Self

import pytest

from l2tp.cli import monitor as cli
from l2tp.cli.main import main
from l2tp.kernel import (
    EncapType,
    EventKind,
    ModuleNotLoaded,
    PseudowireType,
    SessionEvent,
    SessionInfo,
    TunnelEvent,
    TunnelInfo,
)
from l2tp.kernel.model import Event

WHEN = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))

TUNNEL = TunnelInfo(
    tunnel_id=700,
    peer_tunnel_id=701,
    version=3,
    encap=EncapType.UDP,
    local=ip_address("127.0.0.1"),
    peer=ip_address("127.0.0.2"),
    local_port=19001,
    peer_port=19002,
    udp_csum=False,
)
SESSION = SessionInfo(
    tunnel_id=700,
    session_id=702,
    peer_tunnel_id=701,
    peer_session_id=703,
    pw_type=PseudowireType.ETH,
    ifname="l2tpeth0",
    cookie=b"\x01\x02\x03\x04",
    peer_cookie=bytes(range(8)),
    send_seq=True,
    reorder_timeout_ms=100,
)
IP6_TUNNEL = TunnelInfo(
    tunnel_id=5,
    peer_tunnel_id=6,
    version=3,
    encap=EncapType.IP,
    local=ip_address("2001:db8::1"),
    peer=ip_address("2001:db8::2"),
)


def test_tunnel_line() -> None:
    line = cli.event_line(TunnelEvent(kind=EventKind.CREATED, tunnel=TUNNEL), WHEN)
    assert line == (
        "2024-05-01T12:30:15.123+02:00 created  tunnel 700 peer-tunnel 701 v3 udp "
        "127.0.0.1:19001 -> 127.0.0.2:19002"
    )
    line = cli.event_line(TunnelEvent(kind=EventKind.DELETED, tunnel=IP6_TUNNEL), WHEN)
    assert line.endswith("deleted  tunnel 5 peer-tunnel 6 v3 ip 2001:db8::1 -> 2001:db8::2")


def test_session_line() -> None:
    line = cli.event_line(SessionEvent(kind=EventKind.MODIFIED, session=SESSION), WHEN)
    assert line == (
        "2024-05-01T12:30:15.123+02:00 modified session 702 tunnel 700 peer-session 703 "
        "peer-tunnel 701 eth interface l2tpeth0 cookie 01020304 peer-cookie 0001020304050607 "
        "seq send reorder 100ms"
    )
    bare = SessionInfo(
        tunnel_id=1, session_id=2, peer_tunnel_id=3, peer_session_id=4, pw_type=7, lns_mode=True
    )
    line = cli.event_line(SessionEvent(kind=EventKind.DELETED, session=bare), WHEN)
    assert line.endswith("deleted  session 2 tunnel 1 peer-session 4 peer-tunnel 3 ppp lns")


def test_json_lines_carry_show_keys() -> None:
    record = json.loads(
        cli.format_event(TunnelEvent(kind=EventKind.CREATED, tunnel=TUNNEL), WHEN, as_json=True)
    )
    assert record == {
        "timestamp": "2024-05-01T12:30:15.123+02:00",
        "event": "created",
        "object": "tunnel",
        "tunnel_id": 700,
        "encap": "UDP",
        "local": "127.0.0.1",
        "peer": "127.0.0.2",
        "peer_tunnel": 701,
        "local_port": 19001,
        "peer_port": 19002,
        "checksum": False,
        "version": 3,
        "using_ipsec": False,
    }
    text = cli.format_event(
        SessionEvent(kind=EventKind.DELETED, session=SESSION), WHEN, as_json=True
    )
    assert "\n" not in text
    record = json.loads(text)
    assert (record["event"], record["object"], record["session_id"]) == ("deleted", "session", 702)
    assert record["cookie"] == "01020304" and record["send_seq"] is None
    assert "recv_seq" not in record and "stats" not in record


class FakeSource:
    """An async iterator of events that then waits for ever (like a quiet kernel)."""

    def __init__(self, events: Iterable[Event], error: BaseException | None = None) -> None:
        self.events = list(events)
        self.error = error
        self.waiting = threading.Event()
        self.closed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        if self.events:
            return self.events.pop(0)
        if self.error is not None:
            raise self.error
        self.waiting.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.closed = True


def _clock() -> datetime:
    return WHEN


def test_stream_prints_each_event_and_stops_on_request() -> None:
    source = FakeSource(
        [
            TunnelEvent(kind=EventKind.CREATED, tunnel=TUNNEL),
            SessionEvent(kind=EventKind.CREATED, session=SESSION),
        ]
    )
    out = io.StringIO()

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(
            cli.stream_events(source, out, stop, as_json=True, clock=_clock)
        )
        while not source.waiting.is_set():
            await asyncio.sleep(0)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["event"], r["object"]) for r in lines] == [
        ("created", "tunnel"),
        ("created", "session"),
    ]


def test_stream_ends_when_the_source_ends() -> None:
    async def two() -> AsyncIterator[Event]:
        yield TunnelEvent(kind=EventKind.CREATED, tunnel=TUNNEL)
        yield TunnelEvent(kind=EventKind.DELETED, tunnel=TUNNEL)

    out = io.StringIO()
    asyncio.run(cli.stream_events(two(), out, asyncio.Event(), clock=_clock))
    assert [line.split()[1] for line in out.getvalue().splitlines()] == ["created", "deleted"]


def test_stream_propagates_source_errors() -> None:
    source = FakeSource([], error=OSError(errno.ENOBUFS, "No buffer space available"))
    with pytest.raises(OSError, match="No buffer space"):
        asyncio.run(cli.stream_events(source, io.StringIO(), asyncio.Event()))


def _patch_monitor(monkeypatch: pytest.MonkeyPatch, factory: Any) -> None:
    import l2tp.kernel.monitor

    monkeypatch.setattr(l2tp.kernel.monitor, "L2tpMonitor", factory)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_the_command_with_status_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], signum: int
) -> None:
    source = FakeSource([TunnelEvent(kind=EventKind.CREATED, tunnel=TUNNEL)])
    _patch_monitor(monkeypatch, lambda netns: source)

    def kill_when_waiting() -> None:
        if source.waiting.wait(10):
            os.kill(os.getpid(), signum)

    killer = threading.Thread(target=kill_when_waiting)
    killer.start()
    try:
        assert main(["monitor"]) == 0
    finally:
        killer.join()
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and " created  tunnel 700 " in out
    assert source.closed


def test_kernel_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(netns: str | None) -> Any:
        raise ModuleNotLoaded(errno.ENOENT, "l2tp_netlink", "resolve generic netlink family")

    _patch_monitor(monkeypatch, missing)
    assert main(["monitor", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "l2tp monitor: this kernel has no L2TP netlink support: "
        "load it with `modprobe l2tp_netlink` (as root)\n"
    )


def test_missing_namespace_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "--netns", "no-such-ns-here"]) == 2
    assert capsys.readouterr().err == (
        "l2tp monitor: network namespace 'no-such-ns-here' not found: "
        "no /run/netns/no-such-ns-here (see `ip netns list`)\n"
    )


def test_broken_pipe_ends_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    source = FakeSource([TunnelEvent(kind=EventKind.CREATED, tunnel=TUNNEL)])
    _patch_monitor(monkeypatch, lambda netns: source)
    args = cli_args()
    assert cli.monitor(args, Closed(), io.StringIO()) == 0
    assert source.closed


def cli_args(*argv: str) -> Any:
    import argparse

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return parser.parse_args(["monitor", *argv])
