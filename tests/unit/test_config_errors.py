"""Table-driven bad configurations, each with the exact error text it must produce.

The error format is part of the interface (operators grep for it, the docs quote
it), so every case asserts the whole message, not a fragment.
"""

from __future__ import annotations

import ipaddress
import pickle
import textwrap

import pytest

from l2tp.config import ConfigError, ConfigErrors, loads
from l2tp.config.model import IPAddress

F = "test.toml"

V3_STATIC = """
[tunnel.t1]
version = "l2tpv3"
local = "10.0.0.1:5000"
peer = "10.0.0.2:5000"
tid = 1
ptid = 2
"""
V2 = """
[tunnel.t1]
version = "l2tpv2"
peer = "10.0.0.2"
"""
V3_DYN = """
[tunnel.t1]
version = "l2tpv3"
peer = "10.0.0.2"
"""
S1 = "\n[tunnel.t1.session.s1]\n"
STATIC_S1 = S1 + "sid = 1\npsid = 2\n"
LNS = """
[listener.l1]
listen = "0.0.0.0:1701"
version = "l2tpv2"
"""


def fake_resolver(name: str) -> IPAddress:
    if name == "lac.example.net":
        return ipaddress.ip_address("192.0.2.9")
    raise OSError("no such host")


# (id, daemon, toml text, exact error lines)
CASES: list[tuple[str, str | None, str, list[str]]] = [
    (
        "syntax",
        None,
        "[tunnel.t1\npeer = 1\n",
        [f"{F}: invalid TOML at line 1, column 11: Expected ']' at the end of a table declaration"],
    ),
    (
        "syntax-value",
        None,
        '[tunnel.t1]\npeer = "x\n',
        [f"{F}: invalid TOML at line 2, column 10: Illegal character '\\n'"],
    ),
    ("empty", None, "", [f"{F}: no [tunnel.NAME] or [listener.NAME] tables: nothing to do"]),
    (
        "empty-kl2tpd",
        "kl2tpd",
        "# nothing\n",
        [f"{F}: no [tunnel.NAME] tables: nothing to do"],
    ),
    (
        "unknown-top-key",
        None,
        "tunel = 1\n",
        [f"{F}: key 'tunel': unknown key (did you mean 'tunnel'?)"],
    ),
    (
        "unknown-tunnel-key",
        None,
        V2 + 'pear = "1.2.3.4"\n',
        [f"{F}: tunnel.t1: key 'pear': unknown key (did you mean 'peer'?)"],
    ),
    (
        "unknown-key-no-hint",
        None,
        V2 + 'colour = "blue"\n',
        [f"{F}: tunnel.t1: key 'colour': unknown key"],
    ),
    (
        "unknown-session-key",
        None,
        V2 + S1 + "sidd = 3\n",
        [f"{F}: tunnel.t1.session.s1: key 'sidd': unknown key (did you mean 'sid'?)"],
    ),
    (
        "tunnel-not-table",
        None,
        "tunnel = 5\n",
        [f"{F}: key 'tunnel': expected a table such as [tunnel.NAME], got 5"],
    ),
    (
        "unnamed-tunnel",
        None,
        '[tunnel]\nlocal = "1.2.3.4"\n',
        [f"{F}: tunnel: key 'local': expected a table such as [tunnel.local], got \"1.2.3.4\""],
    ),
    (
        "session-not-table",
        None,
        V2 + "session = 3\n",
        [
            f"{F}: tunnel.t1: key 'session': expected a table such as "
            "[tunnel.t1.session.NAME], got 3"
        ],
    ),
    (
        "quoted-name",
        None,
        '[tunnel."a.b"]\nversion = "l2tpv2"\npeer = "10.0.0.2"\nwindow = 3\n',
        [f"{F}: tunnel.\"a.b\": key 'window': unknown key (did you mean 'window_size'?)"],
    ),
    (
        "v2-sid-range",
        None,
        V2 + S1 + "sid = 70000\n",
        [f"{F}: tunnel.t1.session.s1: key 'sid': 70000 is out of range 1-65535 for l2tpv2"],
    ),
    (
        "v2-tid-range",
        None,
        V2 + "tid = 65536\n",
        [f"{F}: tunnel.t1: key 'tid': 65536 is out of range 1-65535 for l2tpv2"],
    ),
    (
        "v3-ptid-range",
        None,
        V3_STATIC.replace("ptid = 2", "ptid = 4294967296"),
        [f"{F}: tunnel.t1: key 'ptid': 4294967296 is out of range 1-4294967295 for l2tpv3"],
    ),
    (
        "tid-zero",
        None,
        V2 + "tid = 0\n",
        [f"{F}: tunnel.t1: key 'tid': 0 is out of range 1-65535 for l2tpv2"],
    ),
    (
        "tid-string",
        None,
        V2 + 'tid = "10"\n',
        [f"{F}: tunnel.t1: key 'tid': expected an integer, got string \"10\""],
    ),
    (
        "cookie-length",
        None,
        V3_STATIC + STATIC_S1 + "cookie = [1, 2, 3, 4, 5]\n",
        [f"{F}: tunnel.t1.session.s1: key 'cookie': must have 4 or 8 bytes, got 5"],
    ),
    (
        "cookie-byte",
        None,
        V3_STATIC + STATIC_S1 + "peer_cookie = [1, 2, 300, 4]\n",
        [f"{F}: tunnel.t1.session.s1: key 'peer_cookie': element 2: 300 is out of range 0-255"],
    ),
    (
        "cookie-v2",
        None,
        V2 + S1 + "cookie = [1, 2, 3, 4]\n",
        [f"{F}: tunnel.t1.session.s1: key 'cookie': only for l2tpv3"],
    ),
    (
        "encap-ip-v2",
        None,
        V2 + 'encap = "ip"\n',
        [
            f"{F}: tunnel.t1: key 'encap': \"ip\" is not allowed with l2tpv2"
            " (L2TPv2 runs over UDP only)"
        ],
    ),
    (
        "encap-unknown",
        None,
        V2 + 'encap = "tcp"\n',
        [f'{F}: tunnel.t1: key \'encap\': "tcp" is not one of "udp", "ip"'],
    ),
    (
        "version-unknown",
        None,
        '[tunnel.t1]\nversion = "l2tpv4"\npeer = "10.0.0.2"\n',
        [f'{F}: tunnel.t1: key \'version\': "l2tpv4" is not one of "l2tpv2", "l2tpv3"'],
    ),
    (
        "version-missing",
        None,
        '[tunnel.t1]\npeer = "10.0.0.2"\n',
        [f"{F}: tunnel.t1: key 'version': missing (required when no daemon is named)"],
    ),
    (
        "ql2tpd-v2",
        "ql2tpd",
        V3_STATIC.replace("l2tpv3", "l2tpv2"),
        [f"{F}: tunnel.t1: key 'version': ql2tpd supports only version l2tpv3"],
    ),
    (
        "kl2tpd-v3",
        "kl2tpd",
        V3_DYN,
        [f"{F}: tunnel.t1: key 'version': kl2tpd supports only version l2tpv2"],
    ),
    (
        "eth-v2",
        "kl2tpd",
        V2 + S1 + 'pseudowire = "eth"\n',
        [
            f"{F}: tunnel.t1.session.s1: key 'pseudowire': \"eth\" is not allowed with l2tpv2"
            " (L2TPv2 carries PPP only)"
        ],
    ),
    (
        "pppac-v3",
        "l2tpd",
        V3_DYN + S1 + 'pseudowire = "pppac"\n',
        [
            f"{F}: tunnel.t1.session.s1: key 'pseudowire': \"pppac\" is not allowed with l2tpv3"
            " (it is an L2TPv2 LAC feature)"
        ],
    ),
    (
        "ql2tpd-ppp",
        "ql2tpd",
        V3_STATIC + STATIC_S1 + 'pseudowire = "ppp"\n',
        [f"{F}: tunnel.t1.session.s1: key 'pseudowire': ql2tpd supports only pseudowire eth"],
    ),
    (
        "static-missing-ptid",
        "ql2tpd",
        V3_STATIC.replace("ptid = 2\n", ""),
        [f"{F}: tunnel.t1: key 'ptid': missing (required for static tunnels)"],
    ),
    (
        "static-missing-local",
        "ql2tpd",
        V3_STATIC.replace('local = "10.0.0.1:5000"\n', ""),
        [f"{F}: tunnel.t1: key 'local': missing (required for static tunnels)"],
    ),
    (
        "static-session-ids",
        "ql2tpd",
        V3_STATIC + S1,
        [
            f"{F}: tunnel.t1.session.s1: key 'sid': missing (required for static tunnels)",
            f"{F}: tunnel.t1.session.s1: key 'psid': missing (required for static tunnels)",
        ],
    ),
    (
        "missing-peer",
        None,
        '[tunnel.t1]\nversion = "l2tpv2"\n',
        [f"{F}: tunnel.t1: key 'peer': missing (required for every tunnel)"],
    ),
    (
        "family-mismatch",
        None,
        V2 + 'local = "[2001:db8::1]:1701"\n',
        [
            f"{F}: tunnel.t1: key 'peer': address family IPv4 does not match the local"
            " address family IPv6"
        ],
    ),
    (
        "port-range",
        None,
        V2.replace('"10.0.0.2"', '"10.0.0.2:99999"'),
        [
            f"{F}: tunnel.t1: key 'peer': \"10.0.0.2:99999\" is not a valid address:"
            " port 99999 is out of range 1-65535"
        ],
    ),
    (
        "port-text",
        None,
        V2.replace('"10.0.0.2"', '"10.0.0.2:l2tp"'),
        [
            f"{F}: tunnel.t1: key 'peer': \"10.0.0.2:l2tp\" is not a valid address:"
            ' port "l2tp" is not a number'
        ],
    ),
    (
        "ipv6-without-brackets",
        None,
        V2.replace('"10.0.0.2"', '"2001:db8::zz:1701"'),
        [
            f"{F}: tunnel.t1: key 'peer': \"2001:db8::zz:1701\" is not a valid address:"
            " write an IPv6 address with a port as [address]:port"
        ],
    ),
    (
        "ipv6-bracket",
        None,
        V2.replace('"10.0.0.2"', '"[2001:db8::1:1701"'),
        [
            f"{F}: tunnel.t1: key 'peer': \"[2001:db8::1:1701\" is not a valid address:"
            " missing ']' after the IPv6 address"
        ],
    ),
    (
        "unresolvable",
        None,
        V2.replace('"10.0.0.2"', '"nowhere.example.net"'),
        [
            f"{F}: tunnel.t1: key 'peer': \"nowhere.example.net\" is not a valid address:"
            ' host name "nowhere.example.net" could not be resolved'
        ],
    ),
    (
        "not-a-host",
        None,
        V2.replace('"10.0.0.2"', '"10.0.0.256"'),
        [
            f"{F}: tunnel.t1: key 'peer': \"10.0.0.256\" is not a valid address:"
            ' "10.0.0.256" is neither an IP address nor a host name'
        ],
    ),
    (
        "ifname-long",
        None,
        V2 + S1 + 'interface_name = "averyveryverylongname"\n',
        [
            f"{F}: tunnel.t1.session.s1: key 'interface_name':"
            ' "averyveryverylongname" is longer than 15 characters'
        ],
    ),
    (
        "ifname-slash",
        None,
        V2 + S1 + 'interface_name = "ppp/0"\n',
        [
            f"{F}: tunnel.t1.session.s1: key 'interface_name':"
            " \"ppp/0\" contains '/', ':' or whitespace"
        ],
    ),
    (
        "duplicate-tid",
        None,
        V2 + 'tid = 7\n[tunnel.t2]\nversion = "l2tpv2"\npeer = "10.0.0.3"\ntid = 7\n',
        [f"{F}: tunnel.t2: key 'tid': 7 is already used by tunnel.t1"],
    ),
    (
        "duplicate-sid",
        None,
        V3_STATIC + S1 + "sid = 5\npsid = 1\n[tunnel.t1.session.s2]\nsid = 5\npsid = 2\n",
        [f"{F}: tunnel.t1.session.s2: key 'sid': 5 is already used by tunnel.t1.session.s1"],
    ),
    (
        "duplicate-ifname",
        None,
        V2 + S1 + 'interface_name = "ppp9"\n[tunnel.t1.session.s2]\ninterface_name = "ppp9"\n',
        [
            f"{F}: tunnel.t1.session.s2: key 'interface_name':"
            ' "ppp9" is already used by tunnel.t1.session.s1'
        ],
    ),
    (
        "window-zero",
        None,
        V2 + "window_size = 0\n",
        [f"{F}: tunnel.t1: key 'window_size': 0 is out of range 1-65535"],
    ),
    (
        "hello-negative",
        None,
        V2 + "hello_timeout = -1\n",
        [f"{F}: tunnel.t1: key 'hello_timeout': -1 is out of range 0-4294967295 (milliseconds)"],
    ),
    (
        "retry-float",
        None,
        V2 + "retry_timeout = 1.5\n",
        [f"{F}: tunnel.t1: key 'retry_timeout': expected an integer, got float 1.5"],
    ),
    (
        "seqnum-string",
        None,
        V2 + S1 + 'seqnum = "yes"\n',
        [
            f"{F}: tunnel.t1.session.s1: key 'seqnum':"
            ' expected a boolean (true or false), got string "yes"'
        ],
    ),
    (
        "framing-unknown",
        None,
        V2 + 'framing_caps = ["sync", "bisync"]\n',
        [f'{F}: tunnel.t1: key \'framing_caps\': "bisync" is not one of "sync", "async"'],
    ),
    (
        "framing-empty",
        None,
        V2 + "framing_caps = []\n",
        [f'{F}: tunnel.t1: key \'framing_caps\': must list at least one of "sync", "async"'],
    ),
    (
        "hide-without-secret",
        None,
        V2 + "hide_avps = true\n",
        [f"{F}: tunnel.t1: key 'hide_avps': needs 'secret' (hidden AVPs are encrypted with it)"],
    ),
    (
        "digest-v2",
        None,
        V2 + 'secret = "s"\ndigest = "md5"\n',
        [
            f"{F}: tunnel.t1: key 'digest': only for l2tpv3"
            " (L2TPv2 authenticates with 'secret' alone)"
        ],
    ),
    (
        "digest-without-secret",
        None,
        V3_DYN + 'digest = "sha1"\n',
        [f"{F}: tunnel.t1: key 'digest': needs 'secret' (the digest is keyed with it)"],
    ),
    (
        "secret-static",
        "ql2tpd",
        V3_STATIC + 'secret = "s"\n',
        [
            f"{F}: tunnel.t1: key 'secret': only for dynamic tunnels"
            " (static tunnels run no control protocol)"
        ],
    ),
    (
        "static-with-hello",
        None,
        V3_STATIC + 'mode = "static"\nhello_timeout = 1000\n',
        [
            f"{F}: tunnel.t1: key 'hello_timeout': static tunnels send no HELLO;"
            ' use mode = "quiescent"'
        ],
    ),
    (
        "quiescent-without-hello",
        "ql2tpd",
        V3_STATIC + 'mode = "quiescent"\n',
        [f"{F}: tunnel.t1: key 'hello_timeout': missing (required for quiescent tunnels)"],
    ),
    (
        "ql2tpd-dynamic",
        "ql2tpd",
        V3_STATIC + 'mode = "dynamic"\n',
        [
            f"{F}: tunnel.t1: key 'mode': ql2tpd supports only mode static or quiescent",
            f"{F}: tunnel.t1: key 'ptid': only for static and quiescent tunnels"
            " (a dynamic tunnel learns it from the peer)",
        ],
    ),
    (
        "static-v2",
        None,
        V2 + 'mode = "static"\nlocal = "10.0.0.1"\ntid = 1\nptid = 2\n',
        [f"{F}: tunnel.t1: key 'mode': \"static\" requires version l2tpv3"],
    ),
    (
        "ptid-dynamic",
        "kl2tpd",
        V2 + "ptid = 9\n",
        [
            f"{F}: tunnel.t1: key 'ptid': only for static and quiescent tunnels"
            " (a dynamic tunnel learns it from the peer)"
        ],
    ),
    (
        "psid-dynamic-out-of-range",  # accepted with a warning, but still a valid number
        "kl2tpd",
        V2 + S1 + "psid = 70000\n",
        [f"{F}: tunnel.t1.session.s1: key 'psid': 70000 is out of range 1-65535 for l2tpv2"],
    ),
    (
        "peer-cookie-dynamic",
        "l2tpd",
        V3_DYN + S1 + "peer_cookie = [1, 2, 3, 4]\n",
        [
            f"{F}: tunnel.t1.session.s1: key 'peer_cookie': only for static and quiescent"
            " tunnels (a dynamic session learns it from the peer)"
        ],
    ),
    (
        "cookie-len-value",
        "l2tpd",
        V3_DYN + S1 + "cookie_len = 5\n",
        [f"{F}: tunnel.t1.session.s1: key 'cookie_len': 5 is not 0, 4 or 8"],
    ),
    (
        "cookie-len-and-cookie",
        "l2tpd",
        V3_DYN + S1 + "cookie_len = 4\ncookie = [1, 2, 3, 4]\n",
        [
            f"{F}: tunnel.t1.session.s1: key 'cookie_len': conflicts with 'cookie'"
            " (set one or the other)"
        ],
    ),
    (
        "cookie-len-static",
        "ql2tpd",
        V3_STATIC + STATIC_S1 + "cookie_len = 4\n",
        [
            f"{F}: tunnel.t1.session.s1: key 'cookie_len': only for dynamic tunnels"
            " (static sessions set 'cookie')"
        ],
    ),
    (
        "pppd-args-eth",
        "l2tpd",
        V3_DYN + S1 + 'pppd_args = "/etc/ppp/args"\n',
        [f"{F}: tunnel.t1.session.s1: key 'pppd_args': only for pseudowire ppp or pppac"],
    ),
    (
        "bridge-ppp",
        "kl2tpd",
        V2 + S1 + 'bridge = "br0"\n',
        [f"{F}: tunnel.t1.session.s1: key 'bridge': only for pseudowire eth"],
    ),
    (
        "pppoe-on-ppp",
        "kl2tpd",
        V2 + S1 + "pppoe_session_id = 3\n",
        [f"{F}: tunnel.t1.session.s1: key 'pppoe_session_id': only for pseudowire pppac"],
    ),
    (
        "pppac-missing",
        "kl2tpd",
        V2 + S1 + 'pseudowire = "pppac"\n',
        [
            f"{F}: tunnel.t1.session.s1: key 'pppoe_session_id':"
            " missing (required for pseudowire pppac)",
            f"{F}: tunnel.t1.session.s1: key 'pppoe_peer_mac':"
            " missing (required for pseudowire pppac)",
        ],
    ),
    (
        "pppoe-mac-length",
        "kl2tpd",
        V2 + S1 + 'pseudowire = "pppac"\npppoe_session_id = 3\npppoe_peer_mac = [1, 2, 3]\n',
        [f"{F}: tunnel.t1.session.s1: key 'pppoe_peer_mac': must have 6 bytes, got 3"],
    ),
    (
        "mtu-small",
        None,
        V2 + S1 + "mtu = 60\n",
        [f"{F}: tunnel.t1.session.s1: key 'mtu': 60 is out of range 68-65535"],
    ),
    (
        "remote-end-id-v2",
        None,
        V2 + S1 + 'remote_end_id = "x"\n',
        [f"{F}: tunnel.t1.session.s1: key 'remote_end_id': only for l2tpv3"],
    ),
    (
        "l2spec-v2",
        None,
        V2 + S1 + 'l2spec_type = "default"\n',
        [f"{F}: tunnel.t1.session.s1: key 'l2spec_type': only for l2tpv3"],
    ),
    (
        "seqnum-v3-without-sublayer",
        "ql2tpd",
        V3_STATIC + STATIC_S1 + 'pseudowire = "eth"\nseqnum = true\n',
        [
            f"{F}: tunnel.t1.session.s1: key 'seqnum': needs l2spec_type = \"default\" "
            "with l2tpv3 (the sequence number travels in the L2-Specific Sublayer)"
        ],
    ),
    (
        "host-name-empty",
        None,
        V2 + 'host_name = ""\n',
        [f"{F}: tunnel.t1: key 'host_name': must not be empty"],
    ),
    (
        "redial-timeout-without-redial",
        "kl2tpd",
        V2 + "redial_timeout = 100\n",
        [f"{F}: tunnel.t1: key 'redial_timeout': needs 'redial = true'"],
    ),
    (
        "lns-tunnel",
        "lns",
        V2 + LNS,
        [f"{F}: tunnel: lns does not accept [tunnel.NAME] tables (only [listener.NAME])"],
    ),
    (
        "kl2tpd-listener",
        "kl2tpd",
        V2 + LNS,
        [f"{F}: listener: kl2tpd does not accept [listener.NAME] tables (only [tunnel.NAME])"],
    ),
    (
        "listener-missing-listen",
        "lns",
        "[listener.l1]\n",
        [f"{F}: listener.l1: key 'listen': missing (required for every listener)"],
    ),
    (
        "listener-cidr",
        "lns",
        LNS + 'allowed_peers = ["10.0.0.1/24"]\n',
        [
            f"{F}: listener.l1: key 'allowed_peers': element 0:"
            ' "10.0.0.1/24" is not a network (CIDR)'
        ],
    ),
    (
        "listener-limits",
        "lns",
        LNS + "max_sessions = 5\nmax_sessions_per_tunnel = 10\n",
        [f"{F}: listener.l1: key 'max_sessions_per_tunnel': 10 is more than max_sessions 5"],
    ),
    (
        "listener-duplicate",
        "lns",
        LNS + LNS.replace("l1", "l2"),
        [f"{F}: listener.l2: key 'listen': \"0.0.0.0:1701\" is already used by listener.l1"],
    ),
    (
        "listener-port-zero",
        "lns",
        LNS.replace(":1701", ":0"),
        [
            f"{F}: listener.l1: key 'listen': \"0.0.0.0:0\" is not a valid address:"
            " port 0 is out of range 1-65535"
        ],
    ),
    (
        "several-errors",
        None,
        V2 + "tid = 0\n" + S1 + "sid = 70000\n",
        [
            f"{F}: tunnel.t1: key 'tid': 0 is out of range 1-65535 for l2tpv2",
            f"{F}: tunnel.t1.session.s1: key 'sid': 70000 is out of range 1-65535 for l2tpv2",
        ],
    ),
]


@pytest.mark.parametrize(
    ("daemon", "text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_config_exact_error(daemon: str | None, text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigErrors) as info:
        loads(text, file=F, daemon=daemon, hostname="testhost", resolver=fake_resolver)
    assert [str(e) for e in info.value.errors] == expected
    assert str(info.value) == "\n".join(expected)


def test_there_are_many_cases() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


def test_error_attributes() -> None:
    with pytest.raises(ConfigError) as info:
        loads(V2 + S1 + "sid = 70000\n", file=F, hostname="h", resolver=None)
    error = info.value
    assert (error.file, error.path, error.key) == (F, "tunnel.t1.session.s1", "sid")
    assert error.reason == "70000 is out of range 1-65535 for l2tpv2"
    assert error.line is None


def test_syntax_error_has_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        loads("a = 1\n[x\n", file=F, hostname="h", resolver=None)
    assert (info.value.line, info.value.column) == (2, 3)
    assert info.value.path == "" and info.value.key is None


def test_errors_pickle() -> None:
    with pytest.raises(ConfigErrors) as info:
        loads(V2 + "tid = 0\nwindow_size = 0\n", file=F, hostname="h", resolver=None)
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value)
    assert again.errors[1].key == "window_size"


def test_host_names_rejected_without_resolver() -> None:
    with pytest.raises(ConfigErrors) as info:
        loads(textwrap.dedent(V2).replace("10.0.0.2", "lac.example.net"), file=F, resolver=None)
    assert str(info.value) == (
        f"{F}: tunnel.t1: key 'peer': \"lac.example.net\" is not a valid address:"
        ' host name "lac.example.net" given but name resolution is disabled'
    )
