"""PppdBackend without root: argv building, option checks, exit mapping, and the process
life cycle against a fake pppd (a Python script) on a NullDataPlane socketpair."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from l2tp.kernel import PseudowireType, SessionConfig, TunnelConfig
from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.protocol.constants import CdnResult, ErrorCode
from l2tp.protocol.events import CallKind, Role, SessionInfo
from l2tp.runtime import backend as backend_module
from l2tp.runtime.backend import BackendSession, PppOptions
from l2tp.runtime.ppp import (
    EXIT_TABLE,
    PppdBackend,
    PppdExitStatus,
    PppdOptionsError,
    _has_exited,
    build_argv,
    check_user_options,
    inherited_env,
    login_failed,
    map_exit,
    netns_prefix,
    parse_args_text,
    pppd_words,
    read_args_file,
    redact,
    user_options,
)
from l2tp.runtime.ppp_outcome import Ending, map_ending
from tests.helpers import until

pytestmark = pytest.mark.unit

Reports = list[tuple[int, int | None, str]]


def make_session(
    options: PppOptions | None = None,
    *,
    lns: bool = False,
    version: int = 2,
    dataplane: AsyncNullDataPlane | None = None,
    reports: Reports | None = None,
    sid: int = 1,
) -> BackendSession:
    dataplane = dataplane if dataplane is not None else AsyncNullDataPlane()
    tunnel = TunnelConfig(tunnel_id=10, peer_tunnel_id=20, version=version, fd=3)
    if 10 not in dataplane.tunnels:
        dataplane.null.create_tunnel(tunnel)
    dataplane.null.create_session(
        SessionConfig(tunnel_id=10, session_id=sid, peer_session_id=2, pw_type=PseudowireType.PPP)
    )
    sink: Reports = reports if reports is not None else []
    return BackendSession(
        info=SessionInfo(
            tunnel_id=10,
            peer_tunnel_id=20,
            session_id=sid,
            peer_session_id=2,
            kind=CallKind.LNS_INCOMING if lns else CallKind.LAC_INCOMING,
            call_serial=1,
            calling_number="$(reboot); `id` 'x'",
        ),
        role=Role.LNS if lns else Role.LAC,
        kernel_tunnel=tunnel,
        tunnel_fd=3,
        dataplane=dataplane,
        lns_mode=lns,
        local=("192.0.2.1", 1701),
        peer=("192.0.2.2", 1701),
        options=options or PppOptions(),
        report_down=lambda result, error, message: sink.append((result, error, message)),
    )


# -- argv ---------------------------------------------------------------------


def test_argv_lac_minimal() -> None:
    argv = build_argv(make_session(), 7, pppd="/usr/sbin/pppd")
    assert argv == [
        "/usr/sbin/pppd",
        "plugin",
        "pppol2tp.so",
        "pppol2tp",
        "7",
        "pppol2tp_tunnel_id",
        "10",
        "pppol2tp_session_id",
        "1",
        "nodetach",
        # Wait for the peer's LCP however late it starts; one Terminate-Request on stop.
        "passive",
        "lcp-restart",
        "1",
        "lcp-max-terminate",
        "1",
    ]


def test_argv_lns_ifname_mtu_and_user_options_last() -> None:
    options = PppOptions(interface_name="l2tp-ppp0", mtu=1400, pppd_options=("noauth", "debug"))
    session = make_session(options, lns=True)
    argv = build_argv(session, 9, pppd="pppd", extra=user_options(session))
    assert argv[argv.index("pppol2tp_session_id") + 2] == "pppol2tp_lns_mode"
    assert argv[argv.index("ifname") + 1] == "l2tp-ppp0"
    assert argv[argv.index("mtu") + 1] == "1400" and argv[argv.index("mru") + 1] == "1400"
    assert argv[-2:] == ["noauth", "debug"]


def test_user_options_come_after_ours_so_pppd_takes_theirs() -> None:
    session = make_session(PppOptions(pppd_options=("lcp-max-terminate", "3")))
    argv = build_argv(session, 7, pppd="pppd", extra=user_options(session))
    ours, theirs = [i for i, arg in enumerate(argv) if arg == "lcp-max-terminate"]
    assert argv[ours + 1] == "1" and argv[theirs + 1] == "3" and ours < theirs


def test_peer_strings_never_reach_argv() -> None:
    session = make_session(PppOptions(pppd_options=("noauth",)), lns=True)
    argv = build_argv(session, 5, pppd="pppd", extra=user_options(session))
    assert session.info.calling_number is not None
    assert not any(session.info.calling_number in arg for arg in argv)


def test_args_file_goes_to_pppd_as_file_then_inline_options(tmp_path: Path) -> None:
    """pppd reads the file itself (``file PATH``), so its quoting and comments apply."""
    args = tmp_path / "pppd.args"
    args.write_text('noauth  10.0.0.1:10.0.0.2\n\n   # a comment\nuser "alice smith"\n')
    session = make_session(PppOptions(pppd_args=str(args), pppd_options=("lcp-echo-interval", "5")))
    assert user_options(session) == ["file", str(args), "lcp-echo-interval", "5"]
    assert read_args_file(args) == ["noauth", "10.0.0.1:10.0.0.2", "user", "alice smith"]


def test_relative_args_file_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "opts").write_text("noauth\n")
    monkeypatch.chdir(tmp_path)
    session = make_session(PppOptions(pppd_args="opts"))
    assert user_options(session) == ["file", str(tmp_path / "opts")]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        # NetworkManager-l2tp's ppp-options: one option per line, values quoted.
        (
            'user "alice smith"\nkey "/run/nm/k"\nipparam nm-l2tp-service-1\nnodetach\n'
            "plugin /usr/lib/pppd/2.4.9/nm-l2tp-pppd-plugin.so\nmru 1400\n",
            [
                "user",
                "alice smith",
                "key",
                "/run/nm/k",
                "ipparam",
                "nm-l2tp-service-1",
                "nodetach",
                "plugin",
                "/usr/lib/pppd/2.4.9/nm-l2tp-pppd-plugin.so",
                "mru",
                "1400",
            ],
        ),
        ("a'b c'd \"e f\"", ["ab cd", "e f"]),  # quotes inside a word, both kinds
        ("noauth # comment persist\ndebug", ["noauth", "debug"]),
        ("word#comment\nnext", ["word", "next"]),  # '#' ends a word (pppd's getword)
        ('"#not a comment"', ["#not a comment"]),
        ("a\\ b c", ["a b", "c"]),  # backslash-space joins
        ("a\\\nb", ["ab"]),  # backslash-newline is ignored
        ("x\\s\\t\\101\\x41\\q", ["x \tAAq"]),  # \s, \t, octal, hex, plain
        ("'\\'' \"'\"", ["'", "'"]),  # escaped quote in quotes, other quote inside
        ('"unterminated words', ["unterminated words"]),
        ("", []),
        ("  \n\t# only a comment", []),
    ],
)
def test_pppd_words_follow_pppd(text: str, words: list[str]) -> None:
    assert pppd_words(text) == words


def test_forbidden_option_is_found_the_way_pppd_reads_the_file(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden.args"
    hidden.write_text('noauth "persist"\n')  # a quoted word is still the option
    with pytest.raises(PppdOptionsError, match="argument 2 'persist' is not allowed"):
        read_args_file(hidden)
    commented = tmp_path / "commented.args"
    commented.write_text("noauth # persist\n")  # a comment is not
    assert read_args_file(commented) == ["noauth"]


def test_files_named_by_file_are_checked_too(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.write_text("updetach\n")
    outer = tmp_path / "outer"
    outer.write_text(f"noauth file {inner}\n")
    with pytest.raises(PppdOptionsError, match=r"inner.*'updetach' is not allowed"):
        read_args_file(outer)
    loop = tmp_path / "loop"
    loop.write_text(f"file {loop}\n")
    with pytest.raises(PppdOptionsError, match="nested more than"):
        read_args_file(loop)


def test_inherited_env_keeps_networkmanager_and_drops_systemd() -> None:
    env = inherited_env(
        {
            "NM_DBUS_SERVICE_L2TP": "org.freedesktop.NetworkManager.l2tp.Connection_3",
            "NM_VPN_LOG_LEVEL": "4",
            "NOTIFY_SOCKET": "/run/systemd/notify",
            "WATCHDOG_USEC": "1000",
        }
    )
    assert env == {
        "NM_DBUS_SERVICE_L2TP": "org.freedesktop.NetworkManager.l2tp.Connection_3",
        "NM_VPN_LOG_LEVEL": "4",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    assert inherited_env({"PATH": "/opt/bin"}) == {"PATH": "/opt/bin"}


def test_login_failed_is_pppd_status_19_or_the_builtin_ending() -> None:
    assert login_failed(map_exit(19)[2])
    assert not login_failed(map_exit(11)[2]) and not login_failed(map_exit(16)[2])
    assert login_failed(map_ending(Ending.AUTH_TO_PEER_FAILED)[2])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ok", ""], "argument 2 '' is empty"),
        (["a\x00b"], "NUL"),
        (["a\nb"], "control character"),
        (["a\x7f"], "control character"),
        (["detach"], "'detach' is not allowed"),
        (["updetach"], "not allowed"),
        (["persist"], "not allowed"),
        (["demand"], "not allowed"),
        (["pppol2tp", "3"], "'pppol2tp' is not allowed"),
        (["pppol2tp_session_id", "3"], "not allowed"),
        ([b"bytes"], "must be a string"),
    ],
)
def test_bad_user_options(args: list[object], message: str) -> None:
    with pytest.raises(PppdOptionsError, match=message):
        check_user_options(args)


def test_args_text_with_nul_is_refused() -> None:
    with pytest.raises(PppdOptionsError, match="NUL"):
        parse_args_text("noauth\x00debug")


def test_args_file_errors(tmp_path: Path) -> None:
    with pytest.raises(PppdOptionsError, match=r"missing\.args.*No such file"):
        read_args_file(tmp_path / "missing.args")
    big = tmp_path / "big.args"
    big.write_text("debug\n" * 20000)
    with pytest.raises(PppdOptionsError, match="larger than"):
        read_args_file(big)
    latin = tmp_path / "latin.args"
    latin.write_bytes(b"name caf\xe9\n")
    with pytest.raises(PppdOptionsError, match="not UTF-8"):
        read_args_file(latin)
    forbidden = tmp_path / "forbidden.args"
    forbidden.write_text("noauth\npersist\n")
    with pytest.raises(PppdOptionsError, match=r"forbidden\.args.*argument 2 'persist'"):
        read_args_file(forbidden)


def test_redact_password() -> None:
    assert redact(["pppd", "user", "bob", "password", "s3cret", "debug"]) == [
        "pppd",
        "user",
        "bob",
        "password",
        "***",
        "debug",
    ]


def test_netns_prefix() -> None:
    assert netns_prefix(None) == []
    assert netns_prefix("blue")[-3:] == ["netns", "exec", "blue"]
    assert netns_prefix("/proc/1/ns/net")[-2:] == ["--net=/proc/1/ns/net", "--"]


# -- exit mapping ---------------------------------------------------------------


def test_exit_table_covers_every_status() -> None:
    assert set(EXIT_TABLE) == set(PppdExitStatus)


@pytest.mark.parametrize(
    ("returncode", "result", "error"),
    [
        (0, CdnResult.LOST_CARRIER, None),
        (1, CdnResult.GENERAL_ERROR, ErrorCode.VENDOR_SPECIFIC),
        (2, CdnResult.GENERAL_ERROR, ErrorCode.VENDOR_SPECIFIC),
        (4, CdnResult.PERMANENT_NO_FACILITIES, None),
        (5, CdnResult.ADMINISTRATIVE, None),
        (7, CdnResult.TEMPORARY_NO_FACILITIES, None),
        (10, CdnResult.NO_FRAMING, None),
        (11, CdnResult.GENERAL_ERROR, ErrorCode.VENDOR_SPECIFIC),
        (12, CdnResult.ADMINISTRATIVE, None),
        (15, CdnResult.LOST_CARRIER, None),
        (16, CdnResult.LOST_CARRIER, None),
        (19, CdnResult.GENERAL_ERROR, ErrorCode.VENDOR_SPECIFIC),
        (99, CdnResult.GENERAL_ERROR, ErrorCode.VENDOR_SPECIFIC),
        (-signal.SIGTERM, CdnResult.ADMINISTRATIVE, None),
        (-signal.SIGKILL, CdnResult.ADMINISTRATIVE, None),
        (-signal.SIGSEGV, CdnResult.GENERAL_ERROR, ErrorCode.VENDOR_SPECIFIC),
    ],
)
def test_map_exit(returncode: int, result: int, error: int | None) -> None:
    got = map_exit(returncode)
    assert got[:2] == (result, error)
    assert got[2]


def test_map_exit_messages() -> None:
    assert map_exit(16) == (1, None, "PPP channel hung up (pppd exit status 16)")
    assert map_exit(-signal.SIGSEGV)[2] == "pppd died of SIGSEGV"


def test_map_exit_v3_has_no_v2_only_results() -> None:
    assert map_exit(10, version=2)[0] == CdnResult.NO_FRAMING
    assert map_exit(10, version=3)[:2] == (CdnResult.GENERAL_ERROR, ErrorCode.VENDOR_SPECIFIC)
    for status in PppdExitStatus:
        assert not 6 <= map_exit(status, version=3)[0] <= 11


# -- life cycle against a fake pppd --------------------------------------------

FAKE_PPPD = """\
import os, signal, sys, time
args = sys.argv[1:]
fd = int(args[args.index("pppol2tp") + 1])
os.fstat(fd)  # the PPPoL2TP socket was passed
print("fake pppd", " ".join(args), flush=True)
if "exit-with" in args:
    sys.exit(int(args[args.index("exit-with") + 1]))
if "crash" in args:
    os.kill(os.getpid(), signal.SIGSEGV)
if "ignore-term" in args:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:  # like pppd: exit status 5 on SIGTERM
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(5))
if "say-interface" in args:  # as pppd: after a peer's quoted text, before any other
    print("Remote message: Using interface evil0", flush=True)
    print("Using interface " + args[args.index("say-interface") + 1], flush=True)
    print("Using interface late9", flush=True)
if "ready-file" in args:
    open(args[args.index("ready-file") + 1], "w").close()
while True:
    time.sleep(1)
"""


@pytest.fixture
def fake_pppd(tmp_path: Path) -> str:
    path = tmp_path / "pppd"
    path.write_text(f"#!{sys.executable}\n{FAKE_PPPD}")
    path.chmod(0o755)
    return str(path)


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_exit_is_reported_with_mapped_result(
    fake_pppd: str, caplog: pytest.LogCaptureFixture
) -> None:
    reports: Reports = []
    session = make_session(PppOptions(name="s1", pppd_options=("exit-with", "16")), reports=reports)

    async def main() -> None:
        backend = PppdBackend(pppd=fake_pppd, env=dict(os.environ))
        await backend.start(session)
        assert backend.running(session)
        ended = await backend.wait(session, timeout=20)
        assert ended.status == PppdExitStatus.HANGUP and not ended.stopped
        assert ended.output[0].startswith("fake pppd plugin pppol2tp.so pppol2tp ")
        assert not backend.running(session)
        assert await backend.wait(session) is ended
        await backend.stop(session)  # after exit: nothing to do, no second report

    with caplog.at_level(logging.INFO, logger="l2tp.runtime.ppp"):
        run(main())
    assert reports == [(CdnResult.LOST_CARRIER, None, "PPP channel hung up (pppd exit status 16)")]
    assert any("s1 (tid 10/20 sid 1/2): pppd[" in r.getMessage() for r in caplog.records)


def test_stop_terminates_without_report(fake_pppd: str) -> None:
    reports: Reports = []
    session = make_session(reports=reports)

    async def main() -> None:
        backend = PppdBackend(pppd=fake_pppd, env=dict(os.environ))
        await backend.start(session)
        await backend.stop(session)
        ended = backend.exits[session.key]
        # SIGTERM may arrive before the fake installs its handler.
        assert ended.stopped and ended.returncode in (5, -signal.SIGTERM)
        await backend.stop(session)

    run(main())
    assert reports == []


def test_the_interface_pppd_names_is_reported_once(fake_pppd: str) -> None:
    names: list[str] = []
    session = dataclasses.replace(
        make_session(PppOptions(pppd_options=("say-interface", "ppp7"))),
        report_interface=names.append,
    )

    async def main() -> None:
        backend = PppdBackend(pppd=fake_pppd, env=dict(os.environ))
        assert backend.reports_interface
        await backend.start(session)
        await until(lambda: len(backend._running[session.key].output) >= 4, "pppd's lines")
        await backend.stop(session)

    run(main())
    assert names == ["ppp7"]


def test_stop_kills_after_timeout(fake_pppd: str, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    session = make_session(PppOptions(pppd_options=("ignore-term", "ready-file", str(ready))))

    async def main() -> None:
        backend = PppdBackend(pppd=fake_pppd, env=dict(os.environ), stop_timeout=0.5)
        await backend.start(session)
        async with asyncio.timeout(20):  # until it ignores SIGTERM
            while not ready.exists():
                await asyncio.sleep(0.02)
        pid = backend.pid(session)
        assert pid is not None and not _has_exited(pid)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await backend.stop(session)
        assert loop.time() - started < 5
        assert backend.exits[session.key].returncode == -signal.SIGKILL

    run(main())


def test_an_exit_the_event_loop_has_not_seen_yet_is_not_taken_for_a_live_pppd(
    fake_pppd: str,
) -> None:
    session = make_session(PppOptions(pppd_options=("exit-with", "16")))

    async def main() -> None:
        backend = PppdBackend(pppd=fake_pppd, env=dict(os.environ))
        await backend.start(session)
        pid = backend.pid(session)
        assert pid is not None
        # Hold the event loop until the child has exited: asyncio cannot have seen it.
        deadline = time.monotonic() + 20
        while not _has_exited(pid):
            assert time.monotonic() < deadline, "fake pppd did not exit"
            time.sleep(0.02)
        assert backend.running(session)  # so stop() must not kill (or warn about) it
        ended = await backend.wait(session, timeout=20)
        assert ended.status == PppdExitStatus.HANGUP
        assert _has_exited(pid)  # reaped by now: still an exited child

    run(main())


def test_crash_is_a_general_error(fake_pppd: str) -> None:
    reports: Reports = []
    session = make_session(PppOptions(pppd_options=("crash",)), reports=reports)

    async def main() -> None:
        backend = PppdBackend(pppd=fake_pppd, env=dict(os.environ))
        await backend.start(session)
        await backend.wait(session, timeout=20)

    run(main())
    assert reports == [(CdnResult.GENERAL_ERROR, ErrorCode.VENDOR_SPECIFIC, "pppd died of SIGSEGV")]


def test_option_errors_raise_before_the_socket_is_opened(fake_pppd: str) -> None:
    dataplane = AsyncNullDataPlane()
    session = make_session(PppOptions(pppd_options=("detach",)), dataplane=dataplane)

    async def main() -> None:
        backend = PppdBackend(pppd=fake_pppd)
        with pytest.raises(PppdOptionsError):
            await backend.start(session)
        assert not backend.running(session)

    run(main())
    assert not [c for c in dataplane.calls if c[0] == "open_ppp_socket"]


def test_double_start_and_close_all(fake_pppd: str) -> None:
    dataplane = AsyncNullDataPlane()
    one = make_session(dataplane=dataplane, sid=1)
    two = make_session(dataplane=dataplane, sid=3)

    async def main() -> None:
        backend = PppdBackend(pppd=fake_pppd, env=dict(os.environ))
        await backend.start(one)
        await backend.start(two)
        with pytest.raises(RuntimeError, match="already running"):
            await backend.start(one)
        await backend.close()
        assert not backend.running(one) and not backend.running(two)
        assert backend.exits[one.key].stopped and backend.exits[two.key].stopped

    run(main())


def test_exits_keeps_only_the_last_sessions(
    fake_pppd: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon ends sessions for as long as it runs: the record of how they ended is
    bounded (ENDED_KEPT), oldest forgotten first; before, it kept every session's."""
    monkeypatch.setattr(backend_module, "ENDED_KEPT", 2)
    dataplane = AsyncNullDataPlane()
    sessions = [make_session(dataplane=dataplane, sid=sid) for sid in (1, 3, 5)]

    async def main() -> None:
        backend = PppdBackend(pppd=fake_pppd, env=dict(os.environ))
        for session in sessions:
            await backend.start(session)
            await backend.stop(session)
        assert list(backend.exits) == [sessions[1].key, sessions[2].key]
        assert (await backend.wait(sessions[2])).stopped
        with pytest.raises(LookupError):
            await backend.wait(sessions[0])

    run(main())


def test_missing_pppd_raises_before_the_socket_is_opened(tmp_path: Path) -> None:
    dataplane = AsyncNullDataPlane()
    session = make_session(dataplane=dataplane)

    async def main() -> None:
        backend = PppdBackend(pppd=str(tmp_path / "no-pppd"))
        with pytest.raises(FileNotFoundError):
            await backend.start(session)
        assert not backend.running(session)

    run(main())
