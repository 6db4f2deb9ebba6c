"""Good configurations: go-l2tp's documented files, the examples, defaults, dump and CLI."""

from __future__ import annotations

import argparse
import io
import ipaddress
import json
from pathlib import Path

import pytest

from l2tp.cli.main import main as cli_main
from l2tp.config import (
    Config,
    Daemon,
    Digest,
    Encap,
    Endpoint,
    FramingCap,
    L2SpecType,
    Pseudowire,
    TunnelMode,
    Version,
    add_check_argument,
    dump_toml,
    load,
    loads,
    run_check,
    to_dict,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

# go-l2tp's own documented example (config package doc), written out here.
GO_L2TP_DOC = """
[tunnel.t1]
local = "127.0.0.1:5000"
peer = "127.0.0.1:5001"
version = "l2tpv3"
encap = "udp"
tid = 62719
ptid = 72819
window_size = 10 # control messages
hello_timeout = 7500 # milliseconds
retry_timeout = 1500 # milliseconds
max_retries = 5
host_name = "basilbrush.local"
framing_caps = ["sync","async"]

[tunnel.t1.session.s1]
sid = 12389
psid = 1234
pseudowire = "eth"
seqnum = false
cookie = [ 0x12, 0xe9, 0x54, 0x0f, 0xe2, 0x68, 0x72, 0xbc ]
peer_cookie = [ 0x74, 0x2e, 0x28, 0xa8 ]
interface_name = "l2tpeth42"
l2spec_type = "default"
"""

# The kl2tpd example of the go-l2tp announcement.
GO_L2TP_KL2TPD = """
[tunnel.t1]
peer = "42.102.77.204:1701"
version = "l2tpv2"
encap = "udp"

[tunnel.t1.session.s1]
pseudowire = "ppp"
pppd_args = "/home/bob/pppd.args"
"""


def _loads(text: str, daemon: str | None = None) -> Config:
    return loads(text, file="t.toml", daemon=daemon, hostname="testhost", resolver=None)


def test_go_l2tp_documented_file() -> None:
    config = _loads(GO_L2TP_DOC, "ql2tpd")
    tunnel = config.tunnel("t1")
    assert tunnel.mode is TunnelMode.QUIESCENT  # hello_timeout > 0
    assert tunnel.local == Endpoint(address=ipaddress.ip_address("127.0.0.1"), port=5000)
    assert (tunnel.tid, tunnel.ptid, tunnel.window_size) == (62719, 72819, 10)
    assert (tunnel.hello_timeout, tunnel.retry_timeout, tunnel.max_retries) == (7.5, 1.5, 5)
    assert tunnel.host_name == "basilbrush.local"
    session = tunnel.session("s1")
    assert session.cookie == bytes.fromhex("12e9540fe26872bc")
    assert session.peer_cookie == bytes.fromhex("742e28a8")
    assert session.l2spec_type is L2SpecType.DEFAULT
    assert session.pseudowire is Pseudowire.ETH
    # Without a daemon the same file is understood the same way (ptid => static-like).
    assert _loads(GO_L2TP_DOC).tunnel("t1").mode is TunnelMode.QUIESCENT


def test_go_l2tp_kl2tpd_example_and_defaults() -> None:
    for daemon in ("kl2tpd", None):
        config = _loads(GO_L2TP_KL2TPD, daemon)
        tunnel = config.tunnels[0]
        assert tunnel.version is Version.L2TPV2
        assert tunnel.mode is TunnelMode.DYNAMIC
        assert tunnel.peer.port == 1701 and tunnel.local is None
        # Daemon defaults (issue 13, item 6): 10 retransmissions survive 30% loss, and
        # HELLO after 60 s idle finds a peer that vanished (go-l2tp: 3 and no HELLO).
        assert tunnel.max_retries == 10 and tunnel.retry_timeout == 1.0
        assert tunnel.window_size == 4 and tunnel.hello_timeout == 60.0
        assert tunnel.host_name == "testhost"
        assert tunnel.framing_caps == (FramingCap.SYNC, FramingCap.ASYNC)
        assert tunnel.sessions[0].pppd_args == "/home/bob/pppd.args"


def test_daemon_supplies_version_and_v3_retry_default() -> None:
    config = _loads('[tunnel.t1]\npeer = "[2001:db8::2]"\n', "l2tpd")
    tunnel = config.tunnels[0]
    assert tunnel.version is Version.L2TPV3 and tunnel.max_retries == 10
    assert str(tunnel.peer) == "[2001:db8::2]:1701"
    assert _loads('[tunnel.t1]\npeer = "10.1.1.1"\n', Daemon.KL2TPD).tunnels[0].max_retries == 10


def test_default_pseudowire_follows_version() -> None:
    v2 = _loads('[tunnel.a]\nversion="l2tpv2"\npeer="10.0.0.1"\n[tunnel.a.session.s]\n')
    v3 = _loads('[tunnel.a]\nversion="l2tpv3"\npeer="10.0.0.1"\n[tunnel.a.session.s]\n')
    assert v2.tunnels[0].sessions[0].pseudowire is Pseudowire.PPP
    assert v3.tunnels[0].sessions[0].pseudowire is Pseudowire.ETH


def test_host_name_resolution_is_injected() -> None:
    config = loads(
        '[tunnel.t]\nversion = "l2tpv2"\npeer = "lns.example.net:1702"\n',
        hostname="h",
        resolver=lambda name: ipaddress.ip_address("192.0.2.7"),
    )
    assert str(config.tunnels[0].peer) == "192.0.2.7:1702"


def test_bare_ipv6_and_scoped_addresses() -> None:
    config = _loads('[tunnel.t]\nversion="l2tpv3"\npeer="2001:db8::1"\nlocal="[fe80::1%eth0]:0"\n')
    tunnel = config.tunnels[0]
    assert tunnel.peer.port == 1701 and tunnel.local is not None and tunnel.local.port == 0


@pytest.mark.parametrize(
    ("name", "daemon"),
    [("ql2tpd", "ql2tpd"), ("kl2tpd", "kl2tpd"), ("lns", "lns"), ("l2tpd", "l2tpd")],
)
def test_examples_load(name: str, daemon: str) -> None:
    path = EXAMPLES / f"{name}.toml"
    config = load(path, daemon=daemon, hostname="testhost", resolver=None)
    assert config.daemon is Daemon(daemon)
    assert config.tunnels or config.listeners
    # ... and also without naming the daemon, since every example names its version.
    load(path, hostname="testhost", resolver=None)
    again = loads(dump_toml(config), file=str(path), daemon=daemon, hostname="x", resolver=None)
    assert again == config


def test_example_details() -> None:
    l2tpd = load(EXAMPLES / "l2tpd.toml", daemon="l2tpd", hostname="h", resolver=None)
    tunnel = l2tpd.tunnel("to-site-b")
    assert tunnel.digest is Digest.SHA1 and tunnel.redial and tunnel.encap is Encap.UDP
    assert tunnel.session("lan").cookie_len == 8 and tunnel.session("lan").bridge == "br-lan"
    listener = l2tpd.listener("v3")
    assert listener.listen.family == 6 and listener.cookie_len == 4
    lns = load(EXAMPLES / "lns.toml", daemon="lns", hostname="h", resolver=None)
    assert lns.listeners[0].allowed_peers[1] == ipaddress.ip_network("198.51.100.7/32")
    assert lns.listeners[0].max_sessions_per_tunnel == 50


def test_to_dict_is_complete_json() -> None:
    config = _loads(GO_L2TP_KL2TPD)
    data = to_dict(config)
    tunnel = data["tunnels"][0]  # type: ignore[index]
    assert tunnel["secret"] is None and tunnel["retry_timeout"] == 1000
    assert tunnel["sessions"][0]["cookie"] is None
    json.dumps(data)


def test_missing_file() -> None:
    err = io.StringIO()
    assert run_check("/nonexistent/x.toml", err=err, out=io.StringIO()) == 1
    assert err.getvalue() == "/nonexistent/x.toml: cannot read: No such file or directory\n"


def test_run_check_prints_resolved(tmp_path: Path) -> None:
    path = tmp_path / "k.toml"
    path.write_text(GO_L2TP_KL2TPD)
    out = io.StringIO()
    assert run_check(path, "kl2tpd", out=out, hostname="testhost", resolver=None) == 0
    assert "hello_timeout = 60000\n" in out.getvalue()
    assert 'max_retries = 10\nhost_name = "testhost"\n' in out.getvalue()
    out = io.StringIO()
    assert run_check(path, "kl2tpd", as_json=True, out=out, hostname="h", resolver=None) == 0
    assert json.loads(out.getvalue())["daemon"] == "kl2tpd"


def test_cli_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GO_L2TP_KL2TPD)
    assert cli_main(["check-config", str(good), "--daemon", "kl2tpd", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tunnels"][0]["version"] == "l2tpv2"
    bad = tmp_path / "bad.toml"
    bad.write_text(GO_L2TP_KL2TPD + "tid = 0\nmtu = 1\n")
    assert cli_main(["check-config", str(bad), "--daemon", "kl2tpd"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"{bad}: tunnel.t1.session.s1: key 'tid': unknown key (did you mean 'sid'?)",
        f"{bad}: tunnel.t1.session.s1: key 'mtu': 1 is out of range 68-65535",
    ]


def test_add_check_argument() -> None:
    parser = argparse.ArgumentParser()
    add_check_argument(parser)
    assert parser.parse_args(["--check"]).check is True
    assert parser.parse_args([]).check is False


def test_unknown_daemon_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="unknown daemon 'xl2tpd'"):
        _loads(GO_L2TP_KL2TPD, "xl2tpd")
