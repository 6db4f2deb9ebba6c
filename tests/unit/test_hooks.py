"""The hook runner (l2tp.daemons.hooks) with real child processes, and the event glue
(l2tp.daemons.hook_events) with fake runtime objects."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from l2tp import config as cfg
from l2tp.config.model import HooksSection
from l2tp.daemons.hook_events import DaemonHooks, StaticHooks, down_variables
from l2tp.daemons.hooks import HookEvent, HookJob, HookRunner, Outcome
from l2tp.protocol.events import (
    CallKind,
    PeerInfo,
    Reason,
    SessionClosed,
    SessionEstablished,
    SessionInfo,
    TunnelClosed,
    TunnelEstablished,
)
from l2tp.runtime.backend import SessionOptions
from l2tp.runtime.context import L2tpContext
from tests.helpers import until

pytestmark = pytest.mark.unit

PY = sys.executable

# A hook that appends "<tag> start", waits for the file "go" if asked, then "<tag> end".
BLOCKING = """
import os, sys, time
log, tag, go = sys.argv[1], sys.argv[2], sys.argv[3]
with open(log, "a") as f: f.write(tag + " start\\n")
while go != "-" and not os.path.exists(go): time.sleep(0.01)
with open(log, "a") as f: f.write(tag + " end\\n")
"""
ENV_DUMP = """
import json, os, sys
json.dump({k: v for k, v in os.environ.items() if k.startswith("L2TP_")}, open(sys.argv[1], "w"))
"""


def _settings(**programs: Any) -> HooksSection:
    return HooksSection(**programs)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def _done(job: HookJob | None) -> Outcome:
    assert job is not None
    await asyncio.wait_for(job.done.wait(), 30)
    assert job.outcome is not None
    return job.outcome


def test_environment_reaches_the_program(tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    runner = HookRunner(
        _settings(session_up=(PY, "-c", ENV_DUMP, str(out))), base_env={"PATH": "/usr/bin"}
    )

    async def scenario() -> None:
        job = runner.submit(
            HookEvent.SESSION_UP,
            {"L2TP_EVENT": "session_up", "L2TP_SESSION_ID": "7", "L2TP_PEER_ADDRESS": "192.0.2.1"},
            what="session 1/7",
        )
        assert await _done(job) is Outcome.SUCCEEDED
        assert runner.submit(HookEvent.TUNNEL_UP, {}, what="tunnel 1") is None  # none configured

    asyncio.run(scenario())
    assert json.loads(out.read_text()) == {
        "L2TP_EVENT": "session_up",
        "L2TP_SESSION_ID": "7",
        "L2TP_PEER_ADDRESS": "192.0.2.1",
    }
    c = runner.counters
    assert (c.queued, c.runs, c.succeeded, c.failed, c.running, c.waiting) == (1, 1, 1, 0, 0, 0)


def test_non_zero_exit_and_missing_program_are_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = HookRunner(
        _settings(
            tunnel_up=(PY, "-c", "raise SystemExit(3)"),
            tunnel_down=("/nonexistent/l2tp-hook",),
        )
    )

    async def scenario() -> None:
        up = runner.submit(HookEvent.TUNNEL_UP, {}, what="tunnel 5")
        down = runner.submit(HookEvent.TUNNEL_DOWN, {}, what="tunnel 5", after=up)
        assert await _done(up) is Outcome.FAILED
        assert await _done(down) is Outcome.FAILED

    with caplog.at_level(logging.WARNING, logger="l2tp.daemons.hooks"):
        asyncio.run(scenario())
    assert runner.counters.failed == 2 and runner.counters.succeeded == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("tunnel_up (tunnel 5) failed" in m and "exited with status 3" in m for m in messages)
    assert any("cannot run /nonexistent/l2tp-hook" in m for m in messages)


def test_a_hanging_hook_and_its_children_are_killed_at_the_limit(tmp_path: Path) -> None:
    """SIGTERM to the whole process group (the shell and its background child) after
    ``timeout``; a program that ignores SIGTERM gets SIGKILL after the grace period."""
    pids = tmp_path / "pids"
    script = f"sleep 1000 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    stubborn = (
        "import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"open({str(pids)!r}, 'a').write(str(os.getpid()) + '\\n'); time.sleep(1000)"
    )
    runner = HookRunner(
        HooksSection(
            session_up=("/bin/sh", "-c", script),
            session_down=(PY, "-c", stubborn),
            timeout=0.3,
        ),
        kill_grace=0.2,
    )

    async def scenario() -> None:
        up = runner.submit(HookEvent.SESSION_UP, {}, what="session 1/1")
        assert await _done(up) is Outcome.TIMED_OUT
        down = runner.submit(HookEvent.SESSION_DOWN, {}, what="session 1/1", after=up)
        assert await _done(down) is Outcome.TIMED_OUT

    asyncio.run(scenario())
    assert runner.counters.timed_out == 2 and runner.counters.running == 0
    recorded = [int(p) for p in _lines(pids)]
    assert len(recorded) == 3
    for pid in recorded:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            continue
        assert state == "Z", (pid, state)  # dead, only waiting for its new parent to reap it


def test_down_waits_for_its_up(tmp_path: Path) -> None:
    log, go = tmp_path / "log", tmp_path / "go"
    runner = HookRunner(
        _settings(
            session_up=(PY, "-c", BLOCKING, str(log), "up", str(go)),
            session_down=(PY, "-c", BLOCKING, str(log), "down", "-"),
        )
    )

    async def scenario() -> None:
        up = runner.submit(HookEvent.SESSION_UP, {}, what="session 1/1")
        down = runner.submit(HookEvent.SESSION_DOWN, {}, what="session 1/1", after=up)
        await until(lambda: _lines(log) == ["up start"], "the up hook running")
        # Both fit in max_concurrent; without the ordering the down would be running too.
        assert runner.counters.runs == 1
        go.touch()
        assert await _done(down) is Outcome.SUCCEEDED

    asyncio.run(scenario())
    assert _lines(log) == ["up start", "up end", "down start", "down end"]


def test_concurrency_and_queue_are_bounded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log, go = tmp_path / "log", tmp_path / "go"
    runner = HookRunner(
        HooksSection(
            tunnel_up=(PY, "-c", BLOCKING, str(log), "t", str(go)),
            tunnel_down=(PY, "-c", BLOCKING, str(log), "d", "-"),
            max_concurrent=2,
            max_queued=2,
        )
    )

    async def scenario() -> list[HookJob | None]:
        jobs = [runner.submit(HookEvent.TUNNEL_UP, {}, what=f"tunnel {i}") for i in range(6)]
        # 2 dispatched at once, 2 waiting, 2 dropped: the queue never grows past max_queued.
        assert runner.counters.dropped == 2 and runner.counters.waiting == 2
        dropped_down = runner.submit(HookEvent.TUNNEL_DOWN, {}, what="tunnel 5", after=jobs[5])
        assert dropped_down is not None and dropped_down.outcome is Outcome.DROPPED
        await until(lambda: _lines(log).count("t start") == 2, "two hooks running")
        assert runner.counters.running == 2 and runner.counters.waiting == 2
        go.touch()
        for job in jobs[:4]:
            assert await _done(job) is Outcome.SUCCEEDED
        return jobs

    with caplog.at_level(logging.WARNING, logger="l2tp.daemons.hooks"):
        jobs = asyncio.run(scenario())
    assert [j.outcome for j in jobs if j is not None][4:] == [Outcome.DROPPED] * 2
    assert runner.counters.dropped == 3 and runner.counters.succeeded == 4
    # Never more than two at once: replay the start/end lines.
    running = peak = 0
    for line in _lines(log):
        running += 1 if line.endswith("start") else -1
        peak = max(peak, running)
    assert peak == 2
    assert sum("max_queued" in r.getMessage() for r in caplog.records) == 2


def test_close_lets_hooks_finish_then_kills_and_drops(tmp_path: Path) -> None:
    log, go = tmp_path / "log", tmp_path / "go"
    runner = HookRunner(
        HooksSection(
            tunnel_up=(PY, "-c", BLOCKING, str(log), "t", str(go)),
            session_up=(PY, "-c", BLOCKING, str(log), "s", "-"),
            max_concurrent=1,
        )
    )

    async def scenario() -> None:
        quick = runner.submit(HookEvent.SESSION_UP, {}, what="session 1/1")
        stuck = runner.submit(HookEvent.TUNNEL_UP, {}, what="tunnel 2")
        late = runner.submit(HookEvent.SESSION_UP, {}, what="session 1/2")
        await runner.close(timeout=0.5)
        assert quick is not None and quick.outcome is Outcome.SUCCEEDED
        assert stuck is not None and stuck.outcome is Outcome.DROPPED  # killed
        assert late is not None and late.outcome is Outcome.DROPPED  # never started
        after = runner.submit(HookEvent.SESSION_UP, {}, what="session 1/3")
        assert after is not None and after.outcome is Outcome.DROPPED

    asyncio.run(scenario())
    assert _lines(log) == ["s start", "s end", "t start"]
    assert runner.counters.dropped == 3 and runner.counters.running == 0


def test_configure_applies_to_later_jobs(tmp_path: Path) -> None:
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    runner = HookRunner(_settings(tunnel_up=(PY, "-c", ENV_DUMP, str(first))))

    async def scenario() -> None:
        assert await _done(runner.submit(HookEvent.TUNNEL_UP, {}, what="t")) is Outcome.SUCCEEDED
        runner.configure(_settings(tunnel_up=(PY, "-c", ENV_DUMP, str(second))))
        assert await _done(runner.submit(HookEvent.TUNNEL_UP, {}, what="t")) is Outcome.SUCCEEDED
        runner.configure(HooksSection())
        assert runner.submit(HookEvent.TUNNEL_UP, {}, what="t") is None

    asyncio.run(scenario())
    assert first.exists() and second.exists()


def test_down_variables() -> None:
    assert down_variables(None, by_peer=False) == {"L2TP_CLOSED_BY": "local"}
    assert down_variables(Reason(result=2, error=6, message="bye"), by_peer=True) == {
        "L2TP_CLOSED_BY": "peer",
        "L2TP_RESULT_CODE": "2",
        "L2TP_ERROR_CODE": "6",
        "L2TP_RESULT_MESSAGE": "bye",
    }


# -- the event glue, with fake runtime objects ------------------------------------------------


@dataclass
class FakeSession:
    options: SessionOptions = field(default_factory=SessionOptions)
    info: SessionInfo | None = None
    closed: object = None
    up: asyncio.Event = field(default_factory=asyncio.Event)
    fail: bool = False
    interface: str | None = None
    named: asyncio.Event | None = None
    """Set: :meth:`wait_interface` waits for :meth:`name` (a PPP backend's report)."""

    async def wait_established(self) -> None:
        await self.up.wait()
        if self.fail:
            raise RuntimeError("closed before it was up")

    async def wait_interface(self, timeout: float) -> str | None:
        if self.named is not None:
            await self.named.wait()
        return self.interface

    def name(self, interface: str) -> None:
        self.interface = interface
        if self.named is not None:
            self.named.set()


@dataclass
class FakeTunnel:
    peer: tuple[str, int] = ("192.0.2.9", 1701)
    ready: bool = True
    closed: object = None
    sessions: dict[int, FakeSession] = field(default_factory=dict)

    async def wait_established(self) -> None:
        return None


class FakeContext:
    def __init__(self) -> None:
        self.tunnels: dict[int, FakeTunnel] = {}
        self.closed = False

    def tunnel(self, tid: int) -> FakeTunnel | None:
        return self.tunnels.get(tid)


def _info(tid: int, sid: int) -> SessionInfo:
    return SessionInfo(
        tunnel_id=tid,
        peer_tunnel_id=100 + tid,
        session_id=sid,
        peer_session_id=200 + sid,
        kind=CallKind.LNS_INCOMING,
        call_serial=1,
    )


def _closed(tid: int, sid: int) -> SessionClosed:
    return SessionClosed(
        tunnel_id=tid,
        session_id=sid,
        peer_session_id=200 + sid,
        reason=Reason(result=3, message="admin"),
        by_peer=True,
        was_established=True,
    )


def _glue(tmp_path: Path) -> tuple[DaemonHooks, FakeContext, Path]:
    """Every event's hook appends its L2TP_EVENT and IDs to one file."""
    log = tmp_path / "events"
    line = (
        f"import os; e = os.environ; open({str(log)!r}, 'a').write(' '.join([e['L2TP_EVENT'], "
        "e['L2TP_TUNNEL_ID'], e.get('L2TP_SESSION_ID', '-'), e['L2TP_PEER_ADDRESS'], "
        "e.get('L2TP_INTERFACE', '-'), e.get('L2TP_RESULT_CODE', '-')]) + '\\n')"
    )
    argv = (PY, "-c", line)
    settings = HooksSection(
        tunnel_up=argv, tunnel_down=argv, session_up=argv, session_down=argv, max_concurrent=1
    )
    ctx = FakeContext()
    return DaemonHooks(cast(L2tpContext, ctx), settings, daemon="l2tp-lns"), ctx, log


def _run_events(hooks: DaemonHooks, steps: list[object | Callable[[], None]]) -> None:
    async def scenario() -> None:
        for step in steps:
            if callable(step):
                step()
            else:
                hooks.handle(step)
            await asyncio.sleep(0)  # let the waiters' callbacks run, as the loop would
        await hooks.runner.close(timeout=30)

    asyncio.run(scenario())


def test_events_become_hooks_with_ids_and_order(tmp_path: Path) -> None:
    hooks, ctx, log = _glue(tmp_path)
    session = FakeSession(options=SessionOptions(interface_name="pw0"))
    ctx.tunnels[5] = FakeTunnel(sessions={7: session})

    def session_up() -> None:
        session.info = _info(5, 7)
        session.up.set()

    _run_events(
        hooks,
        [
            TunnelEstablished(tunnel_id=5, peer=PeerInfo(tunnel_id=105, host_name="lac")),
            SessionEstablished(tunnel_id=5, info=_info(5, 7)),
            session_up,
            _closed(5, 7),
            TunnelClosed(tunnel_id=5, reason=None, by_peer=False),
        ],
    )
    assert _lines(log) == [
        "tunnel_up 5 - 192.0.2.9 - -",
        "session_up 5 7 192.0.2.9 pw0 -",
        "session_down 5 7 192.0.2.9 pw0 3",
        "tunnel_down 5 - 192.0.2.9 - -",
    ]
    assert hooks._tracked == {}


def test_a_session_closed_before_it_was_up_runs_no_hook(tmp_path: Path) -> None:
    hooks, ctx, log = _glue(tmp_path)
    pending, failed = FakeSession(), FakeSession(fail=True)
    ctx.tunnels[5] = FakeTunnel(sessions={7: pending, 8: failed})

    _run_events(
        hooks,
        [
            SessionEstablished(tunnel_id=5, info=_info(5, 7)),
            _closed(5, 7),  # still setting up: neither up nor down
            SessionEstablished(tunnel_id=5, info=_info(5, 8)),
            failed.up.set,  # its set-up failed
            _closed(5, 8),
        ],
    )
    assert _lines(log) == []
    assert hooks.counters.queued == 0


def test_a_session_up_whose_callback_had_not_run_gets_up_then_down(tmp_path: Path) -> None:
    """The runtime finished the set-up, and the close came in the same loop turn,
    before the waiter's callback: the session was up, so both hooks run, in order."""
    hooks, ctx, log = _glue(tmp_path)
    session = FakeSession()
    ctx.tunnels[5] = FakeTunnel(sessions={7: session})

    async def scenario() -> None:
        hooks.handle(SessionEstablished(tunnel_id=5, info=_info(5, 7)))
        session.info = _info(5, 7)
        hooks.handle(_closed(5, 7))
        await hooks.runner.close(timeout=30)

    asyncio.run(scenario())
    assert [line.split()[0] for line in _lines(log)] == ["session_up", "session_down"]


def test_session_up_waits_for_the_interface_and_carries_its_real_name(tmp_path: Path) -> None:
    """A PPP session's unit is made after the session is up (pppd, built-in PPP): its
    session_up runs once the backend has named it, with that name (not the empty
    configured one), and its session_down carries the same."""
    hooks, ctx, log = _glue(tmp_path)
    session = FakeSession(named=asyncio.Event())
    ctx.tunnels[5] = FakeTunnel(sessions={7: session})

    async def turns(n: int = 5) -> None:
        for _ in range(n):
            await asyncio.sleep(0)

    async def scenario() -> None:
        hooks.handle(SessionEstablished(tunnel_id=5, info=_info(5, 7)))
        session.info = _info(5, 7)
        session.up.set()
        await turns()
        assert hooks.counters.queued == 0  # established, but its interface is not there yet
        session.name("ppp3")
        await turns()
        assert hooks.counters.queued == 1
        hooks.handle(_closed(5, 7))
        await hooks.runner.close(timeout=30)

    asyncio.run(scenario())
    assert _lines(log) == ["session_up 5 7 192.0.2.9 ppp3 -", "session_down 5 7 192.0.2.9 ppp3 3"]


def test_config_hooks_table_loads() -> None:
    config = cfg.loads(
        '[listener.l]\nlisten = "127.0.0.1"\n[hooks]\nsession_up = ["/bin/true", "x"]\n'
        "timeout = 2500\nmax_concurrent = 8\n",
        daemon="lns",
        resolver=None,
    )
    assert config.hooks == HooksSection(
        session_up=("/bin/true", "x"), timeout=2.5, max_concurrent=8
    )
    assert config.hooks.configured and not HooksSection().configured
    assert cfg.loads(cfg.dump_toml(config), daemon="lns", resolver=None) == config
    assert cfg.to_dict(config)["hooks"] == {
        "tunnel_up": None,
        "tunnel_down": None,
        "session_up": ["/bin/true", "x"],
        "session_down": None,
        "timeout": 2500,
        "max_concurrent": 8,
        "max_queued": 1024,
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("hooks = 5\n", "F: key 'hooks': expected a table [hooks], got integer 5"),
        ("[hooks]\nsession_up = []\n", "F: hooks: key 'session_up': must not be empty"),
        ('[hooks]\ntunnel_up = "/bin/x"\n', "F: hooks: key 'tunnel_up': expected an array"),
        ('[hooks]\ntunnel_up = ["x.sh"]\n', "F: hooks: key 'tunnel_up': element 0: \"x.sh\" is"),
        ('[hooks]\ntunnel_up = ["/x", ""]\n', "F: hooks: key 'tunnel_up': element 1: must not"),
        ("[hooks]\ntimeout = 0\n", "F: hooks: key 'timeout': 0 is out of range 1-3600000"),
        ("[hooks]\nmax_queued = 0\n", "F: hooks: key 'max_queued': 0 is out of range"),
        ("[hooks]\nsesion_up = []\n", "F: hooks: key 'sesion_up': unknown key (did you mean"),
    ],
)
def test_config_hooks_errors(text: str, error: str) -> None:
    with pytest.raises(cfg.ConfigErrors) as info:
        cfg.loads(
            text + '[tunnel.t]\npeer = "127.0.0.1"\n', file="F", daemon="kl2tpd", resolver=None
        )
    assert len(info.value.errors) == 1
    assert str(info.value.errors[0]).startswith(error)


@dataclass
class FakeQuiescent:
    config: cfg.TunnelSection
    state: str = "starting"
    interfaces: dict[int, str] = field(default_factory=dict)


def test_quiescent_tunnels_run_hooks_on_each_up_and_down(tmp_path: Path) -> None:
    """ql2tpd: a quiescent tunnel that loses its peer and gets it back runs
    up, down, up, and the last down at shutdown; each session_up names the interface
    the kernel gave that generation's session."""
    log = tmp_path / "events"
    line = (
        f"import os; e = os.environ; open({str(log)!r}, 'a').write(' '.join([e['L2TP_EVENT'], "
        "e['L2TP_TUNNEL_ID'], e.get('L2TP_SESSION_ID', '-'), e['L2TP_PEER_ADDRESS'], "
        "e.get('L2TP_INTERFACE', '-')]) + '\\n')"
    )
    argv = (PY, "-c", line)
    config = cfg.loads(
        '[tunnel.q]\nlocal = "127.0.0.1:5000"\npeer = "192.0.2.7:5000"\ntid = 3\nptid = 4\n'
        "hello_timeout = 1000\n[tunnel.q.session.s]\nsid = 5\npsid = 6\n",
        daemon="ql2tpd",
        resolver=None,
    )
    hooks = StaticHooks(
        HooksSection(tunnel_up=argv, tunnel_down=argv, session_up=argv, max_concurrent=1)
    )
    q = FakeQuiescent(config.tunnels[0])

    async def scenario() -> None:
        for state, interface in (("up", "l2tpeth7"), ("probing", ""), ("up", "l2tpeth8")):
            q.state = state
            q.interfaces = {5: interface} if interface else {}
            hooks.observe(q)
        hooks.observe(q)  # the same state again: nothing new
        await hooks.close()

    asyncio.run(scenario())
    assert _lines(log) == [
        "tunnel_up 3 - 192.0.2.7 -",
        "session_up 3 5 192.0.2.7 l2tpeth7",
        "tunnel_down 3 - 192.0.2.7 -",
        "tunnel_up 3 - 192.0.2.7 -",
        "session_up 3 5 192.0.2.7 l2tpeth8",
        "tunnel_down 3 - 192.0.2.7 -",
    ]
