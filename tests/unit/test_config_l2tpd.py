"""TOML configuration of l2tpd, the dynamic L2TPv3 LCCE.

Listener session tables matched by Remote End ID (RFC 3931 5.4.4) and their
inheritance from the listener, the Remote End ID default of tunnel sessions,
the digest default with a secret (RFC 3931 5.4.1), ``router_id`` and the
redial back-off cap. Good files have their fields asserted; every error is
asserted as its whole message, as in test_config_errors.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from l2tp.config import (
    Config,
    ConfigErrors,
    Digest,
    Encap,
    L2SpecType,
    Pseudowire,
    dump_toml,
    loads,
    to_dict,
)

F = "l2tpd.toml"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"

V3_DYN = """
[tunnel.t1]
version = "l2tpv3"
peer = "10.0.0.2"
"""
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
L3 = """
[listener.l1]
version = "l2tpv3"
listen = "0.0.0.0:1701"
"""
L2 = """
[listener.l1]
version = "l2tpv2"
listen = "0.0.0.0:1701"
"""
S1 = "\n[tunnel.t1.session.s1]\n"
LS1 = "\n[listener.l1.session.s1]\n"
LS2 = "\n[listener.l1.session.s2]\n"


def _loads(text: str, daemon: str | None = "l2tpd") -> Config:
    return loads(text, file=F, daemon=daemon, hostname="testhost", resolver=None)


def _docs_example() -> str:
    """The ``l2tpd.toml`` example of docs/config.md, so the docs stay loadable."""
    text = DOCS.read_text()
    start = text.index("An `l2tpd.toml` that initiates")
    match = re.search(r"```toml\n(.*?)```", text[start:], re.S)
    assert match is not None
    return match.group(1)


# -- good files ---------------------------------------------------------------------------


def test_docs_example() -> None:
    config = _loads(_docs_example())
    tunnel = config.tunnel("to-site-b")
    assert tunnel.encap is Encap.IP and tunnel.peer.family == 6
    assert tunnel.digest is Digest.MD5  # the default with a secret
    assert tunnel.router_id == 0xC0000201  # "192.0.2.1"
    assert (tunnel.redial, tunnel.redial_timeout, tunnel.max_redial_timeout) == (True, 2.0, 120.0)
    office, lab = tunnel.sessions
    assert (office.remote_end_id, office.cookie_len, office.bridge) == ("office", 8, "br-office")
    assert (lab.remote_end_id, lab.cookie_len, lab.seqnum) == ("site-b-lab", 8, True)
    assert office.sid is None and office.cookie is None

    listener = config.listener("v3")
    assert listener.digest is Digest.SHA1 and listener.router_id is None
    assert [s.name for s in listener.sessions] == ["lan", "cameras"]
    lan = listener.session("lan")
    assert (lan.remote_end_id, lan.bridge, lan.mtu, lan.cookie_len) == ("hq-lan", "br0", 1400, 4)
    cameras = listener.session_for("hq-cameras")
    assert cameras is not None and cameras.name == "cameras"
    assert (cameras.mtu, cameras.bridge, cameras.cookie_len) == (1280, None, 4)
    assert cameras.pseudowire is Pseudowire.ETH and cameras.sid is None
    assert listener.session_for("lan") is None
    with pytest.raises(KeyError):
        listener.session("hq-lan")
    # The listener's own values stay as written: they are the defaults.
    assert (listener.mtu, listener.cookie_len, listener.bridge) == (1400, 4, None)


def test_docs_example_round_trips_and_prints_listener_sessions() -> None:
    config = _loads(_docs_example())
    text = dump_toml(config)
    assert '\n[listener.v3.session.cameras]\npseudowire = "eth"\n' in text
    assert "router_id = 3221225985\n" in text and "max_redial_timeout = 120000\n" in text
    assert _loads(text) == config
    assert loads(text, file=F, hostname="x", resolver=None) == Config(
        file=F, tunnels=config.tunnels, listeners=config.listeners
    )
    data = to_dict(config)
    json.dumps(data)
    tunnel = data["tunnels"][0]  # type: ignore[index]
    assert tunnel["router_id"] == 3221225985 and tunnel["max_redial_timeout"] == 120000
    listener = data["listeners"][0]  # type: ignore[index]
    assert listener["router_id"] is None
    assert listener["sessions"][1] == {
        "name": "cameras",
        "pseudowire": "eth",
        "remote_end_id": "hq-cameras",
        "seqnum": False,
        "cookie_len": 4,
        "l2spec_type": "none",
        "interface_name": None,
        "pppd_args": None,
        "pppd_options": [],
        "mtu": 1280,
        "bridge": None,
        "ppp": "pppd",
        "builtin_ppp": None,
    }


def test_listener_without_session_tables() -> None:
    config = _loads(L3 + 'pseudowire = "ppp"\npppd_options = ["noauth"]\nmtu = 1450\n')
    listener = config.listener("l1")
    assert listener.sessions == ()
    assert listener.pseudowire is Pseudowire.PPP and listener.pppd_options == ("noauth",)
    assert listener.session_for("anything") is None
    assert to_dict(config)["listeners"][0]["sessions"] == []  # type: ignore[index]


def test_listener_sessions_inherit_what_fits() -> None:
    text = (
        L3
        + 'pseudowire = "ppp"\ncookie_len = 8\nl2spec_type = "default"\nseqnum = true\n'
        + 'pppd_args = "/etc/ppp/l2tp"\npppd_options = ["noauth"]\nmtu = 1400\n'
        + LS1
        + 'pseudowire = "eth"\nbridge = "br0"\n'
        + LS2
        + "cookie_len = 0\nmtu = 1500\n"
        + '\n[listener.l1.session.s3]\npppd_options = []\nl2spec_type = "default"\n'
    )
    listener = _loads(text).listener("l1")
    s1, s2, s3 = listener.sessions
    # An eth session takes the general keys but not the listener's pppd_* ones.
    assert s1.pseudowire is Pseudowire.ETH and s1.bridge == "br0"
    assert (s1.cookie_len, s1.l2spec_type, s1.seqnum, s1.mtu) == (8, L2SpecType.DEFAULT, True, 1400)
    assert (s1.pppd_args, s1.pppd_options) == (None, ())
    # A ppp session inherits everything it does not set itself.
    assert s2.pseudowire is Pseudowire.PPP and (s2.cookie_len, s2.mtu) == (0, 1500)
    assert (s2.pppd_args, s2.pppd_options) == ("/etc/ppp/l2tp", ("noauth",))
    assert s2.remote_end_id == "s2" and s2.seqnum
    # An explicit empty value overrides the listener's.
    assert s3.pppd_options == () and s3.pppd_args == "/etc/ppp/l2tp"
    config = _loads(text)
    assert _loads(dump_toml(config)) == config


def test_listener_bridge_reaches_eth_sessions_only() -> None:
    text = L3 + 'bridge = "br9"\n' + LS1 + LS2 + 'pseudowire = "ppp"\n'
    s1, s2 = _loads(text).listener("l1").sessions
    assert (s1.bridge, s2.bridge) == ("br9", None)


def test_listener_sessions_without_a_daemon() -> None:
    config = _loads(L3 + LS1 + 'remote_end_id = "pw-1"\ncookie_len = 4\n', None)
    session = config.listener("l1").sessions[0]
    assert (session.remote_end_id, session.cookie_len) == ("pw-1", 4)


def test_tunnel_session_remote_end_id_defaults_to_the_table_name() -> None:
    config = _loads(V3_DYN + S1 + '[tunnel.t1.session."b c"]\nremote_end_id = "x"\n')
    assert [s.remote_end_id for s in config.tunnel("t1").sessions] == ["s1", "x"]
    # L2TPv2 and static L2TPv3 sessions send no Remote End ID.
    assert _loads(V2 + S1, None).tunnel("t1").sessions[0].remote_end_id is None
    static = _loads(V3_STATIC + S1 + "sid = 1\npsid = 2\n", "ql2tpd")
    assert static.tunnel("t1").sessions[0].remote_end_id is None


def test_digest_defaults_to_md5_with_a_v3_secret() -> None:
    assert _loads(V3_DYN + 'secret = "s"\n').tunnel("t1").digest is Digest.MD5
    assert _loads(L3 + 'secret = "s"\n').listener("l1").digest is Digest.MD5
    assert _loads(V3_DYN + 'secret = "s"\ndigest = "sha1"\n').tunnel("t1").digest is Digest.SHA1
    assert _loads(V3_DYN).tunnel("t1").digest is Digest.NONE
    assert _loads(V3_DYN + 'digest = "none"\n').tunnel("t1").digest is Digest.NONE
    assert _loads(V2 + 'secret = "s"\n', None).tunnel("t1").digest is Digest.NONE
    assert _loads(L2 + 'secret = "s"\n', "lns").listener("l1").digest is Digest.NONE


def test_hidden_avps_on_v3() -> None:
    # RFC 3931 5.3: L2TPv3 hides AVPs with the shared secret too.
    tunnel = _loads(V3_DYN + 'secret = "s"\nhide_avps = true\n').tunnel("t1")
    assert tunnel.hide_avps and tunnel.digest is Digest.MD5


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", 1), ("4294967295", 0xFFFFFFFF), ('"10.1.2.3"', 0x0A010203), ('"0.0.0.1"', 1)],
)
def test_router_id(value: str, expected: int) -> None:
    config = _loads(V3_DYN + f"router_id = {value}\n" + L3 + f"router_id = {value}\n")
    assert config.tunnel("t1").router_id == expected
    assert config.listener("l1").router_id == expected
    assert _loads(V3_DYN).tunnel("t1").router_id is None


def test_max_redial_timeout() -> None:
    redial = V3_DYN + "redial = true\n"
    tunnel = _loads(redial).tunnel("t1")
    assert (tunnel.redial_timeout, tunnel.max_redial_timeout) == (5.0, 60.0)
    # An initial wait longer than the default cap raises the cap with it.
    tunnel = _loads(redial + "redial_timeout = 90000\n").tunnel("t1")
    assert (tunnel.redial_timeout, tunnel.max_redial_timeout) == (90.0, 90.0)
    tunnel = _loads(redial + "redial_timeout = 500\nmax_redial_timeout = 500\n").tunnel("t1")
    assert (tunnel.redial_timeout, tunnel.max_redial_timeout) == (0.5, 0.5)
    assert _loads(V3_DYN).tunnel("t1").max_redial_timeout == 60.0
    v2 = V2 + "redial = true\nredial_timeout = 90000\n"
    assert _loads(v2, None).tunnel("t1").max_redial_timeout == 60.0
    config = _loads(redial + "max_redial_timeout = 3600000\n")
    assert config.tunnel("t1").max_redial_timeout == 3600.0
    assert _loads(dump_toml(config)) == config


# -- errors -------------------------------------------------------------------------------

_ASSIGNED = "assigned by the control protocol in dynamic sessions"
_SEQ = (
    'needs l2spec_type = "default" with l2tpv3 (the sequence number travels in the'
    " L2-Specific Sublayer)"
)
_NO_V2_SESSIONS = (
    "they are matched by Remote End ID, which only L2TPv3 has); set the session keys"
    " on [listener.l1] itself"
)
_DIGEST_NONE = (
    '"none" with a secret: L2TPv3 authenticates the control connection with the Message'
    ' Digest (RFC 3931 5.4.1); set "md5" or "sha1"'
)

# (id, daemon, toml text, exact error lines)
CASES: list[tuple[str, str | None, str, list[str]]] = [
    (
        "listener-session-ids",
        "l2tpd",
        L3 + LS1 + "sid = 1\npsid = 2\n",
        [
            f"{F}: listener.l1.session.s1: key 'sid': {_ASSIGNED}",
            f"{F}: listener.l1.session.s1: key 'psid': {_ASSIGNED}",
        ],
    ),
    (
        "listener-session-cookies",
        "l2tpd",
        L3 + LS1 + "cookie = [1, 2, 3, 4]\npeer_cookie = [1, 2, 3, 4]\n",
        [
            f"{F}: listener.l1.session.s1: key 'cookie': {_ASSIGNED}; use cookie_len",
            f"{F}: listener.l1.session.s1: key 'peer_cookie': {_ASSIGNED}"
            " (the peer chooses its own cookie)",
        ],
    ),
    (
        "listener-session-unknown-key",
        "l2tpd",
        L3 + LS1 + 'reorder_timeout = 10\nbrige = "br0"\n',
        [
            f"{F}: listener.l1.session.s1: key 'reorder_timeout': unknown key",
            f"{F}: listener.l1.session.s1: key 'brige': unknown key (did you mean 'bridge'?)",
        ],
    ),
    (
        "listener-session-v2",
        None,
        L2 + LS1 + 'pseudowire = "ppp"\n',
        [f"{F}: listener.l1: key 'session': only for l2tpv3 listeners ({_NO_V2_SESSIONS}"],
    ),
    (
        "listener-session-lns",
        "lns",
        L2 + LS1,
        [
            f"{F}: listener.l1: key 'session': lns does not accept session tables in listeners"
            f" ({_NO_V2_SESSIONS}"
        ],
    ),
    (
        "listener-session-not-a-table",
        "l2tpd",
        L3 + "session = 3\n",
        [
            f"{F}: listener.l1: key 'session': expected a table such as"
            " [listener.l1.session.NAME], got 3"
        ],
    ),
    (
        "listener-session-entry-not-a-table",
        "l2tpd",
        L3 + "session.s1 = 3\n",
        [f"{F}: listener.l1.session.s1: expected a table such as [listener.l1.session.s1], got 3"],
    ),
    (
        "listener-remote-end-id-duplicate",
        "l2tpd",
        L3 + LS1 + 'remote_end_id = "pw"\n' + LS2 + 'remote_end_id = "pw"\n',
        [
            f"{F}: listener.l1.session.s2: key 'remote_end_id':"
            ' "pw" is already used by listener.l1.session.s1'
        ],
    ),
    (
        "listener-remote-end-id-duplicate-default",
        "l2tpd",
        L3 + LS1 + 'remote_end_id = "s2"\n' + LS2,
        [
            f"{F}: listener.l1.session.s2: key 'remote_end_id':"
            ' "s2" (the default: the table name) is already used by listener.l1.session.s1'
        ],
    ),
    (
        "listener-remote-end-id-empty",
        "l2tpd",
        L3 + LS1 + 'remote_end_id = " "\n',
        [f"{F}: listener.l1.session.s1: key 'remote_end_id': must not be empty"],
    ),
    (
        "listener-session-blank-name",
        "l2tpd",
        L3 + '\n[listener.l1.session." "]\n',
        [
            f"{F}: listener.l1.session.\" \": key 'remote_end_id':"
            " missing (the table name is blank, so it cannot be the default)"
        ],
    ),
    (
        "listener-session-seqnum",
        "l2tpd",
        L3 + LS1 + "seqnum = true\n",
        [f"{F}: listener.l1.session.s1: key 'seqnum': {_SEQ}"],
    ),
    (
        "listener-seqnum",
        "l2tpd",
        L3 + "seqnum = true\n",
        [f"{F}: listener.l1: key 'seqnum': {_SEQ}"],
    ),
    (
        "listener-seqnum-with-sessions",
        "l2tpd",
        L3 + "seqnum = true\n" + LS1,
        [f"{F}: listener.l1: key 'seqnum': {_SEQ}"],
    ),
    (
        "listener-session-drops-sublayer",
        "l2tpd",
        L3 + 'seqnum = true\nl2spec_type = "default"\n' + LS1 + 'l2spec_type = "none"\n',
        [
            f"{F}: listener.l1.session.s1: key 'l2spec_type': \"none\" conflicts with"
            " seqnum = true inherited from listener.l1 (with l2tpv3 the sequence number"
            " travels in the L2-Specific Sublayer)"
        ],
    ),
    (
        "listener-session-pppd-on-eth",
        "l2tpd",
        L3 + LS1 + 'pppd_options = ["noauth"]\n',
        [f"{F}: listener.l1.session.s1: key 'pppd_options': only for pseudowire ppp or pppac"],
    ),
    (
        "listener-session-bridge-on-ppp",
        "l2tpd",
        L3 + LS1 + 'pseudowire = "ppp"\nbridge = "br0"\n',
        [f"{F}: listener.l1.session.s1: key 'bridge': only for pseudowire eth"],
    ),
    (
        "listener-session-pppac",
        "l2tpd",
        L3 + LS1 + 'pseudowire = "pppac"\n',
        [
            f"{F}: listener.l1.session.s1: key 'pseudowire': \"pppac\" is not allowed with"
            " l2tpv3 (it is an L2TPv2 LAC feature)"
        ],
    ),
    (
        "listener-session-cookie-len",
        "l2tpd",
        L3 + LS1 + "cookie_len = 5\n",
        [f"{F}: listener.l1.session.s1: key 'cookie_len': 5 is not 0, 4 or 8"],
    ),
    (
        "listener-session-mtu",
        "l2tpd",
        L3 + LS1 + "mtu = 10\n",
        [f"{F}: listener.l1.session.s1: key 'mtu': 10 is out of range 68-65535"],
    ),
    (
        "listener-session-ifname-duplicate",
        "l2tpd",
        V3_DYN + S1 + 'interface_name = "l2tp0"\n' + L3 + LS1 + 'interface_name = "l2tp0"\n',
        [
            f"{F}: listener.l1.session.s1: key 'interface_name':"
            ' "l2tp0" is already used by tunnel.t1.session.s1'
        ],
    ),
    (
        "tunnel-remote-end-id-duplicate",
        "l2tpd",
        V3_DYN + S1 + '[tunnel.t1.session.s2]\nremote_end_id = "s1"\n',
        [
            f"{F}: tunnel.t1.session.s2: key 'remote_end_id':"
            ' "s1" is already used by tunnel.t1.session.s1'
        ],
    ),
    (
        "tunnel-remote-end-id-duplicate-default",
        "l2tpd",
        V3_DYN + S1 + 'remote_end_id = "s2"\n[tunnel.t1.session.s2]\n',
        [
            f"{F}: tunnel.t1.session.s2: key 'remote_end_id':"
            ' "s2" (the default: the table name) is already used by tunnel.t1.session.s1'
        ],
    ),
    (
        "tunnel-session-blank-name",
        "l2tpd",
        V3_DYN + '\n[tunnel.t1.session.""]\n',
        [
            f"{F}: tunnel.t1.session.\"\": key 'remote_end_id':"
            " missing (the table name is blank, so it cannot be the default)"
        ],
    ),
    (
        "remote-end-id-static",
        "ql2tpd",
        V3_STATIC + S1 + 'sid = 1\npsid = 2\nremote_end_id = "x"\n',
        [
            f"{F}: tunnel.t1.session.s1: key 'remote_end_id': only for dynamic tunnels"
            " (it is sent in the ICRQ)"
        ],
    ),
    (
        "digest-none-with-secret",
        "l2tpd",
        V3_DYN + 'secret = "s"\ndigest = "none"\n',
        [f"{F}: tunnel.t1: key 'digest': {_DIGEST_NONE}"],
    ),
    (
        "listener-digest-none-with-secret",
        "l2tpd",
        L3 + 'secret = "s"\ndigest = "none"\n',
        [f"{F}: listener.l1: key 'digest': {_DIGEST_NONE}"],
    ),
    (
        "router-id-v2",
        None,
        V2 + "router_id = 1\n",
        [f"{F}: tunnel.t1: key 'router_id': only for l2tpv3 (the Router ID AVP is an L2TPv3 AVP)"],
    ),
    (
        "listener-router-id-v2",
        "lns",
        L2 + 'router_id = "192.0.2.1"\n',
        [
            f"{F}: listener.l1: key 'router_id': only for l2tpv3"
            " (the Router ID AVP is an L2TPv3 AVP)"
        ],
    ),
    (
        "router-id-static",
        "ql2tpd",
        V3_STATIC + "router_id = 1\n",
        [
            f"{F}: tunnel.t1: key 'router_id': only for dynamic tunnels"
            " (static tunnels run no control protocol)"
        ],
    ),
    (
        "router-id-zero",
        "l2tpd",
        V3_DYN + "router_id = 0\n",
        [f"{F}: tunnel.t1: key 'router_id': 0 is out of range 1-4294967295"],
    ),
    (
        "router-id-too-big",
        "l2tpd",
        L3 + "router_id = 4294967296\n",
        [f"{F}: listener.l1: key 'router_id': 4294967296 is out of range 1-4294967295"],
    ),
    (
        "router-id-zero-address",
        "l2tpd",
        V3_DYN + 'router_id = "0.0.0.0"\n',
        [f"{F}: tunnel.t1: key 'router_id': \"0.0.0.0\" is 0, out of range 1-4294967295"],
    ),
    (
        "router-id-ipv6",
        "l2tpd",
        V3_DYN + 'router_id = "2001:db8::1"\n',
        [f"{F}: tunnel.t1: key 'router_id': \"2001:db8::1\" is not an IPv4 address"],
    ),
    (
        "router-id-float",
        "l2tpd",
        V3_DYN + "router_id = 1.5\n",
        [
            f"{F}: tunnel.t1: key 'router_id': expected an IPv4 address string or an integer,"
            " got float 1.5"
        ],
    ),
    (
        "max-redial-without-redial",
        "l2tpd",
        V3_DYN + "max_redial_timeout = 10000\n",
        [f"{F}: tunnel.t1: key 'max_redial_timeout': needs 'redial = true'"],
    ),
    (
        "max-redial-below-redial-timeout",
        "l2tpd",
        V3_DYN + "redial = true\nredial_timeout = 10000\nmax_redial_timeout = 5000\n",
        [f"{F}: tunnel.t1: key 'max_redial_timeout': 5000 is less than redial_timeout 10000"],
    ),
    (
        "max-redial-below-default-redial-timeout",
        "l2tpd",
        V3_DYN + "redial = true\nmax_redial_timeout = 1000\n",
        [f"{F}: tunnel.t1: key 'max_redial_timeout': 1000 is less than redial_timeout 5000"],
    ),
    (
        "max-redial-range",
        "l2tpd",
        V3_DYN + "redial = true\nmax_redial_timeout = 0\n",
        [
            f"{F}: tunnel.t1: key 'max_redial_timeout': 0 is out of range 1-4294967295"
            " (milliseconds)"
        ],
    ),
    (
        "max-redial-bad-redial-timeout",
        "l2tpd",
        V3_DYN + "redial = true\nredial_timeout = 0\nmax_redial_timeout = 1000\n",
        [f"{F}: tunnel.t1: key 'redial_timeout': 0 is out of range 1-4294967295 (milliseconds)"],
    ),
    (
        "max-redial-v2",
        "kl2tpd",
        V2 + "redial = true\nmax_redial_timeout = 10000\n",
        [
            f"{F}: tunnel.t1: key 'max_redial_timeout': only for l2tpv3"
            " (kl2tpd redials every redial_timeout, without back-off)"
        ],
    ),
    (
        "max-redial-v2-without-redial",
        None,
        V2 + "max_redial_timeout = 10000\n",
        [
            f"{F}: tunnel.t1: key 'max_redial_timeout': only for l2tpv3"
            " (kl2tpd redials every redial_timeout, without back-off)"
        ],
    ),
    (
        "max-redial-static",
        "ql2tpd",
        V3_STATIC + "max_redial_timeout = 10000\n",
        [
            f"{F}: tunnel.t1: key 'max_redial_timeout': only for dynamic tunnels"
            " (static tunnels run no control protocol)"
        ],
    ),
    (
        "docs-error-examples",
        "l2tpd",
        '[listener.v3]\nlisten = "[::]:1701"\n'
        '[listener.v3.session.lan]\nremote_end_id = "hq-lan"\n'
        "[listener.v3.session.cams]\nsid = 5\n"
        '[listener.v3.session.lab]\nremote_end_id = "hq-lan"\n',
        [
            f"{F}: listener.v3.session.cams: key 'sid': {_ASSIGNED}",
            f"{F}: listener.v3.session.lab: key 'remote_end_id':"
            ' "hq-lan" is already used by listener.v3.session.lan',
        ],
    ),
]


@pytest.mark.parametrize(
    ("daemon", "text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_config_exact_error(daemon: str | None, text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigErrors) as info:
        _loads(text, daemon)
    assert [str(e) for e in info.value.errors] == expected


def test_case_ids_are_unique() -> None:
    assert len({c[0] for c in CASES}) == len(CASES)


def test_docs_quote_the_error_examples() -> None:
    text = DOCS.read_text()
    for line in CASES[-1][3]:
        assert line.replace(F, "l2tpd.toml") in text
