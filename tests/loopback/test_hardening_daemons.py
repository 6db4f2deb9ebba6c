"""Issue 13, items 9, 11 and 12, through the real executables: a daemon that cannot do
its job says so in one line and exits 1 before "started"; ``| head`` is not an error."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from l2tp.pcap import udp_frame, write_pcap
from l2tp.protocol import ControlMessage, serialize_message

pytestmark = pytest.mark.loopback

DAEMONS = {
    "kl2tpd": ("l2tp.daemons.kl2tpd", '[tunnel.t]\npeer = "127.0.0.1:9"\n'),
    "l2tp-lns": ("l2tp.daemons.lns", '[listener.l]\nlisten = "127.0.0.1:17010"\n'),
    "l2tpd": ("l2tp.daemons.l2tpd", '[listener.l]\nlisten = "127.0.0.1:17011"\n'),
    "ql2tpd": (
        "l2tp.daemons.ql2tpd",
        '[tunnel.t]\nlocal = "127.0.0.1"\npeer = "127.0.0.2"\ntid = 1\nptid = 2\n'
        "[tunnel.t.session.s]\nsid = 1\npsid = 2\n",
    ),
}
NOT_LOCAL = "192.0.2.77"
"""TEST-NET-1 (RFC 5737): never an address of the test machine."""


def _run(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _has_net_admin() -> bool:
    with open("/proc/self/status") as fp:
        for line in fp:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> 12 & 1)
    return os.geteuid() == 0


def _without_net_admin() -> list[str]:
    """argv prefix that runs a program without CAP_NET_ADMIN (skips when impossible)."""
    if not _has_net_admin():
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv not installed: cannot drop CAP_NET_ADMIN")
    prefix = [setpriv, "--bounding-set", "-net_admin"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("setpriv cannot drop CAP_NET_ADMIN here")
    return prefix


@pytest.mark.parametrize("prog", sorted(DAEMONS))
def test_without_cap_net_admin_no_start(prog: str, tmp_path: Path) -> None:
    module, text = DAEMONS[prog]
    conf = tmp_path / "c.toml"
    conf.write_text(text)
    ready = tmp_path / "ready"
    proc = _run(
        [*_without_net_admin(), sys.executable, "-m", module, str(conf), "--ready-file", str(ready)]
    )
    assert proc.returncode == 1, proc
    assert proc.stdout == ""  # no "started"
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"{prog}: cannot start: CAP_NET_ADMIN is required"), line
    assert not ready.exists()


@pytest.mark.parametrize("prog", sorted(DAEMONS))
def test_without_kernel_l2tp_no_start(prog: str, tmp_path: Path) -> None:
    """Where the kernel has no L2TP (as on the host of this suite), not where it has."""
    if not _has_net_admin():
        pytest.skip("needs CAP_NET_ADMIN to get past the privilege check")
    from l2tp.kernel.errors import KernelError
    from l2tp.kernel.netlink import open_genl_socket

    try:
        sock, _, _ = open_genl_socket(None)
    except KernelError:
        pass
    else:
        sock.close()
        pytest.skip("this kernel has L2TP")
    module, text = DAEMONS[prog]
    conf = tmp_path / "c.toml"
    conf.write_text(text)
    ready = tmp_path / "ready"
    proc = _run([sys.executable, "-m", module, str(conf), "--ready-file", str(ready)])
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"{prog}: cannot start: resolve generic netlink family 'l2tp': kernel L2TP support is"
        " missing; try `modprobe l2tp_netlink` (as root) [ENOENT: No such file or directory]\n"
    )
    assert not ready.exists()


@pytest.mark.parametrize("prog", ["l2tp-lns", "l2tpd"])
def test_listen_address_not_local(prog: str, tmp_path: Path) -> None:
    module = DAEMONS[prog][0]
    conf = tmp_path / "c.toml"
    conf.write_text(f'[listener.edge]\nlisten = "{NOT_LOCAL}:1701"\n')
    ready = tmp_path / "ready"
    proc = _run(
        [sys.executable, "-m", module, str(conf), "--null-dataplane", "--ready-file", str(ready)]
    )
    assert proc.returncode == 1
    assert proc.stdout == ""  # neither "started" nor "tunnels closed, exiting"
    assert proc.stderr == (
        f'{prog}: cannot start: [listener.edge] listen = "{NOT_LOCAL}:1701": Cannot assign'
        " requested address (the address is not configured on this host)\n"
    )
    assert not ready.exists()


@pytest.mark.parametrize("prog", ["kl2tpd", "l2tp-lns", "l2tpd"])
def test_unwritable_ready_file(prog: str, tmp_path: Path) -> None:
    module, text = DAEMONS[prog]
    conf = tmp_path / "c.toml"
    conf.write_text(text)
    ready = tmp_path / "no-such-dir" / "ready"
    proc = _run(
        [sys.executable, "-m", module, str(conf), "--null-dataplane", "--ready-file", str(ready)]
    )
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"{prog}: cannot start: --ready-file {ready}: directory {ready.parent} does not exist\n"
    )


def test_kl2tpd_check_refuses_long_host_name(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text(f'[tunnel.t]\npeer = "127.0.0.1"\nhost_name = "{"h" * 1100}"\n')
    proc = _run([sys.executable, "-m", "l2tp.daemons.kl2tpd", "--check", str(conf)])
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"{conf}: tunnel.t: key 'host_name': 1100 bytes is longer than the 1017 a Host Name"
        " AVP can carry\n"
    )


def _big_capture(tmp_path: Path) -> Path:
    hello = serialize_message(ControlMessage.hello(), version=2, tunnel_id=4, ns=1, nr=2)
    path = tmp_path / "many.pcap"
    with path.open("wb") as f:
        write_pcap(f, [udp_frame(hello)] * 5000)  # far more than a pipe buffer of text
    return path


@pytest.mark.parametrize("json_output", [False, True])
def test_decode_into_head(json_output: bool, tmp_path: Path) -> None:
    """``l2tp decode x.pcap | head -1``: one line out, nothing on stderr, status 0."""
    argv = [sys.executable, "-m", "l2tp.cli.main", "decode", str(_big_capture(tmp_path))]
    if json_output:
        argv.append("--json")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what head does after its line
    err = proc.stderr.read()
    assert proc.wait(timeout=30) == 0, err
    assert err == ""
    assert "HELLO" in first


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "l2tp.cli.main", "check-config", "{conf}"],
        ["-m", "l2tp.daemons.kl2tpd", "--check", "{conf}"],
    ],
)
def test_check_into_closed_pipe(argv: list[str], tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('[tunnel.t]\npeer = "127.0.0.1"\nversion = "l2tpv2"\n')
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        proc = subprocess.run(
            [sys.executable, *(a.format(conf=conf) for a in argv)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_listen_address_in_use_names_the_holder(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        conf = tmp_path / "c.toml"
        conf.write_text(f'[listener.second]\nlisten = "127.0.0.1:{port}"\n')
        argv = [sys.executable, "-m", "l2tp.daemons.lns", str(conf), "--null-dataplane"]
        proc = _run([*argv, "--control", "none"])
    assert (proc.returncode, proc.stdout) == (1, "")
    (line,) = proc.stderr.splitlines()
    prefix = f'l2tp-lns: cannot start: [listener.second] listen = "127.0.0.1:{port}": Address'
    assert line.startswith(prefix + " already in use (by "), line
    assert f"{os.getpid()} (" in line  # this test process holds it
