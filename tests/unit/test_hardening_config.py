"""Issue 13 in the configuration layer: daemon defaults, AVP lengths, listener limits,
and error messages that stay one line whatever the file holds."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from l2tp.config import ConfigErrors, loads
from l2tp.config.dump import dump_toml
from l2tp.config.model import TunnelMode
from l2tp.daemons import kl2tpd
from l2tp.daemons.configmap import listener_config, tunnel_config
from l2tp.protocol.avps import MAX_VALUE_LEN

pytestmark = pytest.mark.unit

F = "t.toml"
V2_TUNNEL = '[tunnel.t1]\npeer = "192.0.2.1"\n'
V2_LISTENER = '[listener.l1]\nlisten = "0.0.0.0:1701"\n'
V3_LISTENER = '[listener.l1]\nlisten = "0.0.0.0:1701"\nversion = "l2tpv3"\n'
STATIC = '[tunnel.t1]\nlocal = "10.0.0.1"\npeer = "10.0.0.2"\ntid = 1\nptid = 2\n'


def _load(text: str, daemon: str | None) -> object:
    return loads(text, file=F, daemon=daemon, hostname="h", resolver=None)


def _errors(text: str, daemon: str | None) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        loads(text, file=F, daemon=daemon, hostname="h", resolver=None)
    return str(info.value).splitlines()


# -- item 6: defaults ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("daemon", "text"),
    [
        ("kl2tpd", V2_TUNNEL),
        ("lns", V2_LISTENER),
        ("l2tpd", '[tunnel.t1]\npeer = "192.0.2.1"\n'),
        ("l2tpd", V3_LISTENER),
        (None, V2_TUNNEL.replace("[tunnel.t1]\n", '[tunnel.t1]\nversion = "l2tpv2"\n')),
    ],
)
def test_dynamic_defaults_hello_60s_and_10_retries(daemon: str | None, text: str) -> None:
    config = loads(text, file=F, daemon=daemon, hostname="h", resolver=None)
    (table,) = config.tunnels or config.listeners
    assert (table.hello_timeout, table.max_retries) == (60.0, 10)
    # ... and that is what the control plane gets.
    if config.tunnels:
        transport = tunnel_config(config.tunnels[0]).transport
    else:
        transport = listener_config(config.listeners[0]).tunnel.transport
    assert (transport.hello_interval, transport.max_retries) == (60.0, 10)


def test_explicit_hello_0_still_means_off() -> None:
    config = loads(V2_TUNNEL + "hello_timeout = 0\n", file=F, daemon="kl2tpd", hostname="h")
    assert config.tunnels[0].hello_timeout == 0.0
    assert tunnel_config(config.tunnels[0]).transport.hello_interval is None
    lns = loads(V2_LISTENER + "hello_timeout = 0\nmax_retries = 5\n", file=F, daemon="lns")
    transport = listener_config(lns.listeners[0]).tunnel.transport
    assert (transport.hello_interval, transport.max_retries) == (None, 5)


def test_ql2tpd_tunnels_stay_static_without_hello() -> None:
    """hello_timeout > 0 selects quiescent mode in ql2tpd: the HELLO default is not for it."""
    config = loads(STATIC, file=F, daemon="ql2tpd", hostname="h")
    assert config.tunnels[0].mode is TunnelMode.STATIC
    assert config.tunnels[0].hello_timeout == 0.0
    quiescent = loads(STATIC + "hello_timeout = 5000\n", file=F, daemon="ql2tpd")
    assert quiescent.tunnels[0].mode is TunnelMode.QUIESCENT
    # Without a daemon, a v3 tunnel with ptid is static too (and keeps 0).
    plain = loads(STATIC + 'version = "l2tpv3"\n', file=F, hostname="h")
    assert (plain.tunnels[0].mode, plain.tunnels[0].hello_timeout) == (TunnelMode.STATIC, 0.0)


def test_check_prints_the_new_defaults(tmp_path: Path) -> None:
    path = tmp_path / "lns.toml"
    path.write_text(V2_LISTENER)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        from l2tp.daemons import lns

        assert lns.main(["--check", str(path)]) == 0
    text = out.getvalue()
    for line in (
        "hello_timeout = 60000",
        "max_retries = 10",
        "max_tunnels = 0",
        "max_pending_tunnels = 4096",
        "max_pending_per_peer = 64",
    ):
        assert f"\n{line}\n" in text, line


# -- item 9: strings that go into AVPs ---------------------------------------------------


def test_host_name_limit_is_the_codecs() -> None:
    assert MAX_VALUE_LEN == 1017
    ok = _load(V2_TUNNEL + f'host_name = "{"h" * 1017}"\n', "kl2tpd")
    assert ok is not None
    assert _errors(V2_TUNNEL + f'host_name = "{"h" * 1018}"\n', "kl2tpd") == [
        f"{F}: tunnel.t1: key 'host_name': 1018 bytes is longer than the 1017 a Host Name AVP"
        " can carry"
    ]
    # Bytes, not characters: 509 two-byte characters are 1018 bytes.
    assert "1018 bytes" in _errors(V2_TUNNEL + f'host_name = "{"é" * 509}"\n', "kl2tpd")[0]
    # Listeners send it in the SCCRP.
    assert _errors(V2_LISTENER + f'host_name = "{"h" * 1100}"\n', "lns") == [
        f"{F}: listener.l1: key 'host_name': 1100 bytes is longer than the 1017 a Host Name AVP"
        " can carry"
    ]


def test_kl2tpd_check_refuses_a_1100_byte_host_name(tmp_path: Path) -> None:
    path = tmp_path / "k.toml"
    path.write_text(V2_TUNNEL + f'host_name = "{"x" * 1100}"\n')
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = kl2tpd.main(["--check", str(path)])
    assert (status, out.getvalue()) == (1, "")
    assert err.getvalue() == (
        f"{path}: tunnel.t1: key 'host_name': 1100 bytes is longer than the 1017 a Host Name"
        " AVP can carry\n"
    )


def test_remote_end_id_limit_explicit_and_from_the_table_name() -> None:
    v3 = '[tunnel.t1]\npeer = "192.0.2.1"\n'
    assert _errors(v3 + f'[tunnel.t1.session.s]\nremote_end_id = "{"r" * 1018}"\n', "l2tpd") == [
        f"{F}: tunnel.t1.session.s: key 'remote_end_id': 1018 bytes is longer than the 1017 a"
        " Remote End ID AVP can carry"
    ]
    long_name = "n" * 1020
    lines = _errors(v3 + f'[tunnel.t1.session."{long_name}"]\n', "l2tpd")
    assert len(lines) == 1
    assert lines[0].endswith(
        "key 'remote_end_id': missing, and the table name (1020 bytes) is longer than the 1017"
        " a Remote End ID AVP can carry"
    )
    # A listener's session table could never match an ICRQ with a longer one.
    lines = _errors(
        V3_LISTENER + f'[listener.l1.session.s]\nremote_end_id = "{"r" * 2000}"\n', "l2tpd"
    )
    assert lines == [
        f"{F}: listener.l1.session.s: key 'remote_end_id': 2000 bytes is longer than the 1017 a"
        " Remote End ID AVP can carry"
    ]


# -- listener limits ----------------------------------------------------------------------


def test_listener_limit_defaults_and_mapping() -> None:
    config = loads(V2_LISTENER, file=F, daemon="lns", hostname="h")
    lc = config.listeners[0]
    assert (lc.max_tunnels, lc.max_pending_tunnels, lc.max_pending_per_peer) == (0, 4096, 64)
    mapped = listener_config(lc)
    assert (mapped.max_tunnels, mapped.max_pending_tunnels, mapped.max_pending_per_peer) == (
        0xFFFF,
        4096,
        64,
    )
    v3 = listener_config(loads(V3_LISTENER, file=F, daemon="l2tpd", hostname="h").listeners[0])
    assert v3.max_tunnels == 0xFFFFFFFF  # 0 = the whole 32-bit ID space
    text = V2_LISTENER + "max_tunnels = 100\nmax_pending_tunnels = 20\nmax_pending_per_peer = 2\n"
    mapped = listener_config(loads(text, file=F, daemon="lns", hostname="h").listeners[0])
    assert (mapped.max_tunnels, mapped.max_pending_tunnels, mapped.max_pending_per_peer) == (
        100,
        20,
        2,
    )


def test_per_peer_default_follows_a_lower_pending_limit() -> None:
    config = loads(V2_LISTENER + "max_pending_tunnels = 10\n", file=F, daemon="lns")
    assert config.listeners[0].max_pending_per_peer == 10
    assert "max_pending_per_peer = 10" in dump_toml(config)


@pytest.mark.parametrize(
    ("extra", "daemon", "line"),
    [
        (
            "max_pending_tunnels = 0\n",
            "lns",
            "key 'max_pending_tunnels': 0 is out of range 1-65535",
        ),
        (
            "max_pending_per_peer = 70000\n",
            "lns",
            "key 'max_pending_per_peer': 70000 is out of range 1-65535",
        ),
        (
            "max_pending_tunnels = 8\nmax_pending_per_peer = 9\n",
            "lns",
            "key 'max_pending_per_peer': 9 is more than max_pending_tunnels 8",
        ),
        (
            "max_tunnels = 65536\n",
            "lns",
            "key 'max_tunnels': 65536 is out of range 0-65535 for l2tpv2",
        ),
        (
            'max_pending_tunnels = "10"\n',
            "lns",
            "key 'max_pending_tunnels': expected an integer, got string \"10\"",
        ),
    ],
)
def test_listener_limit_errors(extra: str, daemon: str, line: str) -> None:
    assert _errors(V2_LISTENER + extra, daemon) == [f"{F}: listener.l1: {line}"]


def test_v3_listener_takes_32_bit_max_tunnels() -> None:
    config = loads(V3_LISTENER + "max_tunnels = 100000\n", file=F, daemon="l2tpd")
    assert listener_config(config.listeners[0]).max_tunnels == 100000


# -- messages stay one line --------------------------------------------------------------


def test_key_with_line_break_is_escaped() -> None:
    assert _errors(V2_TUNNEL + '"a\\nb" = 1\n', "kl2tpd") == [
        f'{F}: tunnel.t1: key "a\\nb": unknown key'
    ]
    assert _errors(V2_TUNNEL + '"it\'s" = 1\n', "kl2tpd") == [
        f'{F}: tunnel.t1: key "it\'s": unknown key'
    ]


def test_long_values_keys_and_names_are_shortened() -> None:
    (line,) = _errors(V2_TUNNEL + f'window_size = "{"w" * 100_000}"\n', "kl2tpd")
    assert line == (
        f"{F}: tunnel.t1: key 'window_size': expected an integer, got string"
        f' "{"w" * 32}..." (100000 characters)'
    )
    (line,) = _errors(V2_TUNNEL + f"{'k' * 5000} = 1\n", "kl2tpd")
    assert line == f'{F}: tunnel.t1: key "{"k" * 32}..." (5000 characters): unknown key'
    (line,) = _errors(V2_TUNNEL + f"[tunnel.{'t' * 300}]\n", "kl2tpd")
    assert len(line) < 200 and "missing" in line
    (line,) = _errors(V2_TUNNEL + f"x = [{', '.join(['1'] * 1000)}]\n", "kl2tpd")
    assert line.endswith("key 'x': unknown key")


def test_deep_nesting_is_a_toml_error_not_a_traceback() -> None:
    assert _errors("a = " + "[" * 5000 + "]" * 5000 + "\n", None) == [
        f"{F}: invalid TOML: arrays or inline tables nested too deeply"
    ]


def test_illegal_character_is_named_not_repr() -> None:
    """tomllib says ``'\\x00'`` (a Python repr); the message says U+0000."""
    assert _errors('a = "\x00"\n', None) == [
        f"{F}: invalid TOML at line 1, column 6: Illegal character U+0000"
    ]
    assert _errors('a = "\x01"\n', None) == [
        f"{F}: invalid TOML at line 1, column 6: Illegal character U+0001"
    ]


def test_one_mistake_one_message() -> None:
    """Cascades found by the config fuzz: each mistake used to give 2-3 lines."""
    sessions = '[tunnel.t1.session.s1]\npppd_options = ["noauth"]\n'
    assert _errors(V2_TUNNEL + 'version = "l2tpv4"\n' + sessions, "kl2tpd") == [
        f'{F}: tunnel.t1: key \'version\': "l2tpv4" is not one of "l2tpv2", "l2tpv3"'
    ]
    assert _errors(V2_TUNNEL + "ptid = 70000\n", "kl2tpd") == [
        f"{F}: tunnel.t1: key 'ptid': 70000 is out of range 1-65535 for l2tpv2"
    ]
    assert _errors(V2_TUNNEL + "max_redials = -1\n", "kl2tpd") == [
        f"{F}: tunnel.t1: key 'max_redials': -1 is out of range 0-65535"
    ]
    v3 = '[tunnel.t1]\npeer = "192.0.2.1"\n[tunnel.t1.session.s]\n'
    assert _errors(v3 + 'pseudowire = "atm"\npppd_options = ["noauth"]\n', "l2tpd") == [
        f'{F}: tunnel.t1.session.s: key \'pseudowire\': "atm" is not one of "ppp", "eth", "pppac"'
    ]
    assert _errors(v3 + "l2spec_type = 1\nseqnum = true\n", "l2tpd") == [
        f"{F}: tunnel.t1.session.s: key 'l2spec_type': expected a string, got integer 1"
    ]


def test_pppd_arguments_and_interface_names_the_kernel_and_exec_would_refuse() -> None:
    s = "[tunnel.t1.session.s1]\n"
    assert _errors(V2_TUNNEL + s + f'pppd_args = "/{"a" * 5000}"\n', "kl2tpd") == [
        f"{F}: tunnel.t1.session.s1: key 'pppd_args': 5001 bytes is longer than a path can be"
        " (4095)"
    ]
    assert _errors(V2_TUNNEL + s + 'pppd_args = "/etc/x\\u0000y"\n', "kl2tpd") == [
        f"{F}: tunnel.t1.session.s1: key 'pppd_args': \"/etc/x\\u0000y\" contains a control"
        " character"
    ]
    assert _errors(V2_TUNNEL + s + 'pppd_options = ["noauth", ""]\n', "kl2tpd") == [
        f"{F}: tunnel.t1.session.s1: key 'pppd_options': element 1: must not be empty"
    ]
    eth = '[tunnel.t1]\npeer = "192.0.2.1"\n[tunnel.t1.session.s]\n'
    assert _errors(eth + 'interface_name = "éééééééé"\n', "l2tpd") == [
        f"{F}: tunnel.t1.session.s: key 'interface_name': \"éééééééé\" is longer than 15"
        " bytes (UTF-8)"
    ]
    assert _errors(eth + 'interface_name = "eth\\u0001"\n', "l2tpd") == [
        f"{F}: tunnel.t1.session.s: key 'interface_name': \"eth\\u0001\" contains a control"
        " character"
    ]
