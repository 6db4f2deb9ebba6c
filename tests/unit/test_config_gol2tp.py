"""go-l2tp's configuration files, and NetworkManager-l2tp's kl2tpd.conf, run unchanged (issue 16).

The files below are written for this project from go-l2tp's configuration keys
(``/work/shared/reference/go-l2tp-config-keys.md``) in the shapes go-l2tp's own
configuration tests and examples use: static L2TPv3 tunnels over IPv6 with IP
encapsulation and port 0, dynamic kl2tpd sessions that still carry ``sid`` and
``psid``, and the file NetworkManager-l2tp 1.52 writes for kl2tpd (with and
without ``local``, IPv4 and IPv6).
"""

from __future__ import annotations

import io
import ipaddress
from pathlib import Path

import pytest

from l2tp.config import ConfigErrors, Encap, L2SpecType, TunnelMode, loads, run_check
from l2tp.daemons import kl2tpd

F = "go.toml"

# go-l2tp's ql2tpd style: two static L2TPv3 tunnels, one over IPv6 with IP
# encapsulation, whose ports are 0 because they mean nothing there.
QL2TPD = """
[tunnel.t1]
local = "127.0.0.1:5000"
peer = "127.0.0.1:5001"
version = "l2tpv3"
encap = "udp"
tid = 412
ptid = 8192

[tunnel.t1.session.s1]
pseudowire = "eth"
sid = 90210
psid = 1237812
seqnum = true
l2spec_type = "default"
cookie = [0x34, 0x04, 0xa9, 0xbe]
peer_cookie = [0x80, 0x12, 0xff, 0x5b]
interface_name = "l2tpeth42"

[tunnel.t2]
local = "[2001:db8::1]:0"
peer = "[2001:db8::2]:0"
version = "l2tpv3"
encap = "ip"
tid = 1001
ptid = 2002

[tunnel.t2.session.s1]
pseudowire = "eth"
sid = 1
psid = 2
"""

# go-l2tp's kl2tpd style: a dynamic L2TPv2 tunnel whose session names IDs anyway.
KL2TPD = """
[tunnel.t1]
peer = "42.102.77.204:1701"
version = "l2tpv2"
encap = "udp"
host_name = "client"
hello_timeout = 5000
retry_timeout = 500
max_retries = 5
framing_caps = ["sync"]

[tunnel.t1.session.s1]
pseudowire = "ppp"
sid = 1
psid = 2
pppd_args = "/home/bob/pppd.args"
"""


def nm_conf(*, local: str | None, peer: str) -> str:
    """kl2tpd.conf exactly as NetworkManager-l2tp 1.52 writes it (nm-l2tp-service.c)."""
    text = "[tunnel.t1]\n"
    if local is not None:
        text += f'local = "{local}"\n'
    text += f'peer = "{peer}"\nversion = "l2tpv2"\nencap = "udp"\n'
    text += '[tunnel.t1.session.s1]\npseudowire = "ppp"\n'
    text += 'pppd_args = "/run/nm-l2tp-0f2c/ppp-options"\n'
    return text


def test_ql2tpd_static_tunnels_with_ip_encap_port_zero() -> None:
    config = loads(QL2TPD, file=F, daemon="ql2tpd", hostname="h")
    t1, t2 = config.tunnels
    assert t1.mode is t2.mode is TunnelMode.STATIC
    assert t2.encap is Encap.IP
    assert t2.local is not None and t2.local.port == 0 and t2.peer.port == 0
    assert t2.peer.address == ipaddress.IPv6Address("2001:db8::2")
    assert (t2.sessions[0].sid, t2.sessions[0].psid) == (1, 2)
    s1 = t1.sessions[0]
    assert s1.l2spec_type is L2SpecType.DEFAULT and s1.cookie == bytes([0x34, 4, 0xA9, 0xBE])
    assert config.warnings == ()


def test_port_zero_means_nothing_only_for_ip_encap() -> None:
    # A UDP peer must have a port; a UDP local port 0 is an ephemeral port.
    udp = QL2TPD.replace('encap = "ip"', 'encap = "udp"')
    with pytest.raises(ConfigErrors) as info:
        loads(udp, file=F, daemon="ql2tpd", hostname="h")
    assert [str(e) for e in info.value.errors] == [
        f"{F}: tunnel.t2: key 'peer': \"[2001:db8::2]:0\" is not a valid address:"
        " port 0 is out of range 1-65535"
    ]


def test_dynamic_session_ids_are_accepted_with_a_warning_and_ignored() -> None:
    config = loads(KL2TPD, file=F, daemon="kl2tpd", hostname="h")
    session = config.tunnels[0].sessions[0]
    assert (session.sid, session.psid) == (None, None)  # the control protocol assigns them
    assert [str(w) for w in config.warnings] == [
        f"{F}: tunnel.t1.session.s1: key 'sid': ignored in a dynamic session"
        " (the control protocol assigns our ID)",
        f"{F}: tunnel.t1.session.s1: key 'psid': ignored in a dynamic session"
        " (the control protocol assigns the peer's ID)",
    ]


def test_ignored_ids_are_still_checked() -> None:
    with pytest.raises(ConfigErrors, match="'sid': 0 is out of range 1-65535"):
        loads(KL2TPD.replace("sid = 1", "sid = 0"), file=F, daemon="kl2tpd", hostname="h")


@pytest.mark.parametrize(
    ("local", "peer", "port"),
    [
        ("0.0.0.0:1701", "192.0.2.1:1701", 1701),
        ("[::]:1701", "[2001:db8::1]:1701", 1701),
        (None, "192.0.2.1:1701", None),  # NetworkManager's "ephemeral port" choice
    ],
)
def test_networkmanager_kl2tpd_conf(local: str | None, peer: str, port: int | None) -> None:
    config = loads(nm_conf(local=local, peer=peer), file=F, daemon="kl2tpd", hostname="h")
    (tunnel,) = config.tunnels
    assert tunnel.mode is TunnelMode.DYNAMIC and tunnel.encap is Encap.UDP
    assert (tunnel.local.port if tunnel.local else None) == port
    assert tunnel.peer.port == 1701
    assert tunnel.sessions[0].pppd_args == "/run/nm-l2tp-0f2c/ppp-options"
    assert config.warnings == ()


def test_check_shows_l2spec_type_and_prints_warnings(tmp_path: Path) -> None:
    path = tmp_path / "ql2tpd.toml"
    # (seqnum needs the default sublayer in L2TPv3: both go)
    path.write_text(QL2TPD.replace('seqnum = true\nl2spec_type = "default"\n', ""))
    out, err = io.StringIO(), io.StringIO()
    assert run_check(path, "ql2tpd", out=out, err=err, hostname="h") == 0
    # The default is go-l2tp's "none" (iproute2's `ip l2tp add session` uses "default").
    assert out.getvalue().count('l2spec_type = "none"') == 2
    assert err.getvalue() == ""
    path.write_text(KL2TPD)
    out, err = io.StringIO(), io.StringIO()
    assert run_check(path, "kl2tpd", out=out, err=err, hostname="h") == 0
    assert err.getvalue().splitlines() == [
        f"warning: {path}: tunnel.t1.session.s1: key 'sid': ignored in a dynamic session"
        " (the control protocol assigns our ID)",
        f"warning: {path}: tunnel.t1.session.s1: key 'psid': ignored in a dynamic session"
        " (the control protocol assigns the peer's ID)",
    ]
    assert "sid" not in out.getvalue().replace("pppd_args", "")


def test_kl2tpd_go_spelling_of_the_config_option_and_exit_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kl2tpd.conf"
    path.write_text(nm_conf(local="0.0.0.0:1701", peer="192.0.2.1:1701") + "bogus = 1\n")
    assert kl2tpd.main(["-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "key 'bogus': unknown key" in err


def test_listener_port_zero_only_with_ip_encap() -> None:
    v3 = '[listener.l]\nversion = "l2tpv3"\nencap = "ip"\nlisten = "[2001:db8::1]:0"\n'
    config = loads(v3, file=F, daemon="l2tpd", hostname="h")
    assert config.listeners[0].listen.port == 0
    with pytest.raises(ConfigErrors, match="port 0 is out of range 1-65535"):
        loads('[listener.l]\nlisten = "0.0.0.0:0"\n', file=F, daemon="lns")
