"""Issue 13 in the daemons, in-process: start-up checks (items 11, 12), the bounded
NullDataPlane record, per-daemon logger names, and the ``| head`` helper."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import io
import logging
import os
import socket
import sys
from pathlib import Path

import pytest

from l2tp import config as cfg
from l2tp.cli import pipes
from l2tp.daemons import common, kl2tpd, l2tpd, lns, preflight
from l2tp.daemons.preflight import KernelNeeds, StartError
from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.kernel.constants import AF_PPPOX, IPPROTO_L2TP, PseudowireType
from l2tp.kernel.dataplane import CALLS_KEPT, NullDataPlane
from l2tp.kernel.model import SessionConfig, TunnelConfig
from l2tp.runtime.control import L2tpContext

pytestmark = pytest.mark.unit

STATUS = """Name:\tpython3
Umask:\t0022
CapInh:\t0000000000000000
CapPrm:\t000001ffffffffff
CapEff:\t{eff}
CapBnd:\t000001ffffffffff
"""


def _status(tmp_path: Path, eff: str) -> str:
    path = tmp_path / "status"
    path.write_text(STATUS.format(eff=eff))
    return str(path)


# -- CAP_NET_ADMIN --------------------------------------------------------------------------


def test_cap_net_admin_is_read_from_the_effective_set(tmp_path: Path) -> None:
    assert preflight.effective_capabilities(_status(tmp_path, "000001ffffffefff")) == (
        0x1FFFFFFEFFF
    )
    # Bit 12 cleared (what `setpriv --bounding-set -net_admin` leaves root with): refused,
    # whatever the user ID.
    with pytest.raises(StartError, match=r"^CAP_NET_ADMIN is required .*\(run as root"):
        preflight.check_net_admin(_status(tmp_path, "000001ffffffefff"))
    # Only bit 12 set (a non-root process granted the capability): accepted.
    preflight.check_net_admin(_status(tmp_path, "0000000000001000"))


def test_cap_check_without_proc_falls_back_to_the_user_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "nope")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(StartError):
        preflight.check_net_admin(missing)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    preflight.check_net_admin(missing)


# -- modules and pppd ------------------------------------------------------------------------


def _probe_missing(*families: int) -> preflight.Probe:
    def probe(family: int, type: int, proto: int) -> None:
        if family in families:
            raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))

    return probe


def test_missing_ppp_module_is_named() -> None:
    needs = KernelNeeds(ppp=True, pppd=True)
    with pytest.raises(StartError) as info:
        preflight.check_modules(needs, probe=_probe_missing(AF_PPPOX))
    assert str(info.value) == (
        "PPP pseudowires: kernel module l2tp_ppp is not available; try `modprobe l2tp_ppp`"
        " (as root) [Address family not supported by protocol]"
    )
    # Not needed, not probed.
    preflight.check_modules(KernelNeeds(eth=False), probe=_probe_missing(AF_PPPOX))


def test_missing_l2tp_ip_modules_are_named() -> None:
    def probe(family: int, type: int, proto: int) -> None:
        if proto == IPPROTO_L2TP and family == socket.AF_INET6:
            raise OSError(errno.EPROTONOSUPPORT, "Protocol not supported")

    preflight.check_modules(KernelNeeds(ip=True), probe=probe)
    with pytest.raises(StartError, match=r"^encap = \"ip\" over IPv6: kernel module l2tp_ip6 "):
        preflight.check_modules(KernelNeeds(ip=True, ip6=True), probe=probe)


def test_other_socket_errors_do_not_block_the_start() -> None:
    def probe(family: int, type: int, proto: int) -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    preflight.check_modules(KernelNeeds(ppp=True, ip=True), probe=probe)


def test_l2tp_eth_only_blocks_when_certainly_missing() -> None:
    with pytest.raises(StartError, match=r"^Ethernet pseudowires: kernel module l2tp_eth"):
        preflight.check_modules(KernelNeeds(eth=True), installed=lambda name: False)
    preflight.check_modules(KernelNeeds(eth=True), installed=lambda name: None)
    preflight.check_modules(KernelNeeds(eth=True), installed=lambda name: True)


def test_module_installed_reads_sysfs_and_module_lists(tmp_path: Path) -> None:
    sys_module = tmp_path / "sys"
    lib = tmp_path / "lib"
    sys_module.mkdir()
    lib.mkdir()
    kw = {"sys_module": str(sys_module), "lib_modules": str(lib)}
    assert preflight.module_installed("l2tp_eth", **kw) is None  # nothing to go by
    (lib / "modules.dep").write_text(
        "kernel/net/l2tp/l2tp_core.ko.xz:\nkernel/net/l2tp/l2tp_ppp.ko.xz: l2tp_core.ko.xz\n"
    )
    assert preflight.module_installed("l2tp_eth", **kw) is False
    assert preflight.module_installed("l2tp_ppp", **kw) is True
    (lib / "modules.builtin").write_text("kernel/net/l2tp/l2tp_eth.ko\n")
    assert preflight.module_installed("l2tp_eth", **kw) is True
    (sys_module / "l2tp_ip").mkdir()
    assert preflight.module_installed("l2tp_ip", **kw) is True


def test_pppd_missing() -> None:
    def find() -> str:
        raise FileNotFoundError("pppd not found (install the ppp package)")

    with pytest.raises(StartError) as info:
        preflight.check_pppd(find)
    assert str(info.value) == "PPP sessions need pppd: pppd not found (install the ppp package)"
    preflight.check_pppd(lambda: "/usr/sbin/pppd")


def test_needs_follow_the_configuration() -> None:
    def needs(text: str, daemon: str) -> KernelNeeds:
        return preflight.needs_of(cfg.loads(text, daemon=daemon, hostname="h", resolver=None))

    lns_needs = needs('[listener.l]\nlisten = "0.0.0.0:1701"\n', "lns")
    assert lns_needs == KernelNeeds(ppp=True, pppd=True)
    # An LAC with no session table still gets PPP sessions on reload: v2 means PPP.
    assert needs('[tunnel.t]\npeer = "192.0.2.1"\n', "kl2tpd") == KernelNeeds(ppp=True, pppd=True)
    v3 = needs('[tunnel.t]\npeer = "192.0.2.1"\nencap = "ip"\n[tunnel.t.session.s]\n', "l2tpd")
    assert v3 == KernelNeeds(eth=True, ip=True)
    mixed = needs(
        '[listener.l]\nlisten = "[::]:1701"\nencap = "ip"\n'
        '[listener.l.session.p]\npseudowire = "ppp"\n',
        "l2tpd",
    )
    assert mixed == KernelNeeds(ppp=True, pppd=True, eth=True, ip6=True)
    static = needs(
        '[tunnel.t]\nlocal = "10.0.0.1"\npeer = "10.0.0.2"\ntid = 1\nptid = 2\n'
        "[tunnel.t.session.s]\nsid = 1\npsid = 2\n",
        "ql2tpd",
    )
    assert static == KernelNeeds(eth=True)


# -- the ready file ---------------------------------------------------------------------------


def test_ready_file_checked_without_creating_it(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    preflight.check_ready_file(ready)
    assert not ready.exists()  # its appearance means "started"
    with pytest.raises(StartError, match=r"directory .*/nope does not exist$"):
        preflight.check_ready_file(tmp_path / "nope" / "ready")
    with pytest.raises(StartError, match=r": is a directory$"):
        preflight.check_ready_file(tmp_path)
    plain = tmp_path / "file"
    plain.write_text("")
    with pytest.raises(StartError, match=r"file is not a directory$"):
        preflight.check_ready_file(plain / "ready")


def test_ready_file_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As root the permission bits do not stop us, so os.access stands in for a user."""
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    with pytest.raises(StartError, match=r"cannot create a file in .* \(not writable\)$"):
        preflight.check_ready_file(tmp_path / "ready")
    existing = tmp_path / "old"
    existing.write_text("up\n")
    with pytest.raises(StartError, match=r"not writable \(Permission denied\)$"):
        preflight.check_ready_file(existing)


# -- main(): one line, exit 1, before "started" -----------------------------------------------


def _run_main(
    main: object, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)  # type: ignore[operator]
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("main", "prog", "text"),
    [
        (kl2tpd.main, "kl2tpd", '[tunnel.t]\npeer = "127.0.0.1:9"\n'),
        (lns.main, "l2tp-lns", '[listener.l]\nlisten = "127.0.0.1:1701"\n'),
        (l2tpd.main, "l2tpd", '[tunnel.t]\npeer = "127.0.0.1:9"\n'),
    ],
)
def test_no_cap_net_admin_stops_before_anything_starts(
    main: object, prog: str, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text(text)
    status_file = _status(tmp_path, "0000000000000000")
    real = preflight.check_net_admin
    monkeypatch.setattr(preflight, "check_net_admin", lambda hint="": real(status_file, hint=hint))
    ready = tmp_path / "ready"
    status, out, err = _run_main(main, [str(conf), "--ready-file", str(ready)], monkeypatch)
    assert (status, out) == (1, "")
    assert err.splitlines() == [
        f"{prog}: cannot start: CAP_NET_ADMIN is required to create kernel L2TP tunnels and"
        " sessions (run as root or grant the capability, or use --null-dataplane for a"
        " control-plane-only run)"
    ]
    assert not ready.exists()


def test_null_dataplane_needs_no_privilege_or_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests and benchmarks run the daemons unprivileged with --null-dataplane."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("no kernel check with --null-dataplane")

    for name in ("check_net_admin", "check_l2tp_family", "check_modules", "check_pppd"):
        monkeypatch.setattr(preflight, name, refuse)
    args = argparse.Namespace(null_dataplane=True, netns=None)
    dataplane, backend = common.make_backend(args, KernelNeeds(ppp=True, pppd=True, eth=True))
    assert isinstance(dataplane, AsyncNullDataPlane) and backend is not None


def test_pppd_missing_stops_l2tp_lns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('[listener.l]\nlisten = "127.0.0.1:1701"\n')

    class FakePlane:
        def __init__(self, *, netns: str | None = None) -> None:
            self.closed = False

        def close(self) -> None:
            self.closed = True

    planes: list[FakePlane] = []

    def plane(*, netns: str | None = None) -> FakePlane:
        planes.append(FakePlane(netns=netns))
        return planes[-1]

    def no_pppd(find: object = None) -> None:
        raise StartError("PPP sessions need pppd: pppd not found (install the ppp package)")

    monkeypatch.setattr(preflight, "check_net_admin", lambda hint="": None)
    monkeypatch.setattr(preflight, "check_l2tp_family", lambda netns: None)
    monkeypatch.setattr(preflight, "check_modules", lambda needs: None)
    monkeypatch.setattr(preflight, "check_pppd", no_pppd)
    monkeypatch.setattr(common, "AsyncLinuxDataPlane", plane)
    status, out, err = _run_main(lns.main, [str(conf)], monkeypatch)
    assert (status, out) == (1, "")
    assert err == (
        "l2tp-lns: cannot start: PPP sessions need pppd: pppd not found (install the ppp package)\n"
    )
    assert planes == []  # no data plane before every check passed: nothing to leak


def test_unwritable_ready_file_stops_before_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('[listener.l]\nlisten = "127.0.0.1:1701"\n')
    ready = tmp_path / "missing-dir" / "ready"
    status, out, err = _run_main(
        lns.main, [str(conf), "--null-dataplane", "--ready-file", str(ready)], monkeypatch
    )
    assert (status, out) == (1, "")
    assert err == (
        f"l2tp-lns: cannot start: --ready-file {ready}: directory {ready.parent} does not exist\n"
    )


# -- logger names --------------------------------------------------------------------------


def test_each_daemon_logs_under_its_own_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = f'[listener.l]\nlisten = "127.0.0.1:{port}"\n[tunnel.t]\npeer = "127.0.0.1:{port}"\n'
    config = cfg.loads(text, daemon="l2tpd", hostname="h", resolver=None)
    args = argparse.Namespace(stop_timeout=0.1)

    async def scenario() -> None:
        async with L2tpContext(dataplane=AsyncNullDataPlane()) as ctx:
            daemon = l2tpd.L2tpd(config, ctx, args)
            await daemon.start()
            runner = daemon.initiators.runners["t"]
            assert runner.log.name == "l2tp.l2tpd"
            for _ in range(100):  # until the runner logs "tunnel t: up"
                if any(r.msg.startswith("tunnel") for r in caplog.records):
                    break
                await asyncio.sleep(0.05)
            await runner.stop()

    with caplog.at_level(logging.INFO):
        asyncio.run(asyncio.wait_for(scenario(), 10))
    daemon_logs = [r for r in caplog.records if r.name in set(common.LOGGER_NAMES.values())]
    assert {r.name for r in daemon_logs} == {"l2tp.l2tpd"}  # not l2tp.kl2tpd / l2tp.lns
    assert any(r.msg.startswith("listener") for r in daemon_logs)
    assert any(r.msg.startswith("tunnel") for r in daemon_logs)
    assert common.LOGGER_NAMES[cfg.Daemon.L2TPD] == "l2tp.l2tpd"
    assert len(set(common.LOGGER_NAMES.values())) == len(common.LOGGER_NAMES)


# -- NullDataPlane -------------------------------------------------------------------------


def test_null_dataplane_record_is_bounded() -> None:
    dp = NullDataPlane()
    for tid in range(1, CALLS_KEPT + 501):
        dp.create_tunnel(TunnelConfig(tunnel_id=tid, peer_tunnel_id=1, version=2, fd=3))
        dp.delete_tunnel(tid)
    assert len(dp.calls) == CALLS_KEPT
    assert dp.calls[-1] == ("delete_tunnel", CALLS_KEPT + 500)
    assert dp.counts["create_tunnel"] == dp.counts["delete_tunnel"] == CALLS_KEPT + 500
    assert not dp.tunnels


def test_null_dataplane_ppp_peer_closed_with_its_session() -> None:
    dp = NullDataPlane()
    tunnel = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, version=2, fd=3)
    dp.create_tunnel(tunnel)
    for sid in (5, 6):
        dp.create_session(
            SessionConfig(
                tunnel_id=1, session_id=sid, peer_session_id=9, pw_type=PseudowireType.PPP
            )
        )
    socks = [dp.open_ppp_socket(tunnel, sid, 9) for sid in (5, 6)]
    peers = [dp._ppp_peers[(1, 5)][0], dp._ppp_peers[(1, 6)][0]]
    dp.delete_session(1, 5)
    assert peers[0].fileno() == -1 and peers[1].fileno() != -1
    dp.delete_tunnel(1)
    assert peers[1].fileno() == -1 and not dp._ppp_peers
    for sock in socks:
        sock.close()


# -- | head -----------------------------------------------------------------------------------


def test_broken_pipe_elsewhere_is_not_swallowed() -> None:
    """Only stdout's reader going away is quiet; an EPIPE from a socket is an error."""

    def fails() -> int:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    if pipes.stdout_gone():  # pragma: no cover - pytest's stdout is not a closed pipe
        pytest.skip("stdout is a closed pipe")
    with pytest.raises(BrokenPipeError):
        pipes.run_quietly(fails)
    assert pipes.run_quietly(lambda: 3) == 3
    assert sys.stdout is not None
