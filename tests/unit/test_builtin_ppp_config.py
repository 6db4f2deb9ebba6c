"""``ppp = "builtin" | "pppd"`` and ``[... .builtin_ppp]``: loading, exact errors, dump round
trip, and the mapping into the runtime's SessionOptions / BuiltinPppOptions."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network

import pytest

from l2tp.config import (
    BuiltinPppSection,
    ConfigErrors,
    PppAuth,
    PppImplementation,
    dump_toml,
    loads,
    to_dict,
)
from l2tp.daemons.configmap import listen_options, session_options
from l2tp.ppp import AuthMethod, RestartConfig
from l2tp.runtime.ppp_hooks import BuiltinPppOptions

F = "t.toml"

LNS = """
[listener.main]
listen = "192.0.2.1:1701"
version = "l2tpv2"
ppp = "builtin"

[listener.main.builtin_ppp]
auth = ["mschap-v2", "chap-md5", "pap"]
secrets = "/etc/ppp/chap-secrets"
name = "lns1"
local_address = "10.0.0.1"
address_pool = "10.0.0.0/24"
dns = ["192.0.2.53"]
mru = 1400
lcp_echo_interval = 10000
lcp_echo_failure = 3
ipv6 = true
interface_name = "l2tp%d"
"""
LAC = """
[tunnel.t1]
peer = "192.0.2.1"
version = "l2tpv2"

[tunnel.t1.session.s1]
pseudowire = "ppp"
ppp = "builtin"
interface_name = "uplink"
mtu = 1420

[tunnel.t1.session.s1.builtin_ppp]
auth = ["chap-md5"]
user = "alice"
password = "correct horse"
"""


def load(text: str, daemon: str | None = None) -> object:
    return loads(text, file=F, daemon=daemon, hostname="h", resolver=None)


def errors(text: str, daemon: str | None = None) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        loads(text, file=F, daemon=daemon, hostname="h", resolver=None)
    return str(info.value).splitlines()


def test_listener_table_loads_and_maps() -> None:
    config = loads(LNS, file=F, daemon="lns", hostname="h", resolver=None)
    listener = config.listener("main")
    assert listener.ppp is PppImplementation.BUILTIN
    section = listener.builtin_ppp
    assert section == BuiltinPppSection(
        auth=(PppAuth.MSCHAP_V2, PppAuth.CHAP_MD5, PppAuth.PAP),
        secrets="/etc/ppp/chap-secrets",
        name="lns1",
        local_address=IPv4Address("10.0.0.1"),
        address_pool=IPv4Network("10.0.0.0/24"),
        dns=(IPv4Address("192.0.2.53"),),
        mru=1400,
        lcp_echo_interval=10.0,
        lcp_echo_failure=3,
        ipv6=True,
        interface_name="l2tp%d",
    )
    options = listen_options(listener).ppp.builtin_ppp
    assert options == BuiltinPppOptions(
        auth=(AuthMethod.MSCHAP_V2, AuthMethod.CHAP_MD5, AuthMethod.PAP),
        secrets="/etc/ppp/chap-secrets",
        name="lns1",
        local_address=IPv4Address("10.0.0.1"),
        address_pool=IPv4Network("10.0.0.0/24"),
        dns=(IPv4Address("192.0.2.53"),),
        mru=1400,
        lcp_echo_interval=10.0,
        lcp_echo_failure=3,
        ipv6=True,
        interface_name="l2tp%d",
        listener="main",  # picks the listener's RADIUS, when it has its own
    )


def test_tunnel_session_loads_and_takes_the_session_mtu_and_name() -> None:
    config = loads(LAC, file=F, daemon="kl2tpd", hostname="h", resolver=None)
    session = config.tunnel("t1").session("s1")
    assert session.ppp is PppImplementation.BUILTIN and session.builtin_ppp is not None
    assert session.builtin_ppp.password == "correct horse"
    assert "correct horse" not in repr(session)
    options = session_options(session).builtin_ppp
    assert options is not None
    assert (options.user, options.password, options.auth) == (
        "alice",
        "correct horse",
        (AuthMethod.CHAP_MD5,),
    )
    # pppd would have had "mtu 1420 mru 1420 ifname uplink": the same here.
    assert (options.mtu, options.mru, options.interface_name) == (1420, 1420, "uplink")
    assert options.lcp_echo_interval == 30.0


LAC_SECRETS = LAC.replace(
    'password = "correct horse"\n',
    'secrets = "/etc/ppp/chap-secrets"\nremote_name = "lns1"\nconnect_delay = 250\n'
    'passive = true\nauth_timeout = 0\nresolv_file = "/run/uplink.resolv"\n',
)


def test_peer_side_secrets_file_delay_passive_and_resolv_file_load_and_map() -> None:
    config = loads(LAC_SECRETS, file=F, daemon="kl2tpd", hostname="h", resolver=None)
    session = config.tunnel("t1").session("s1")
    assert session.builtin_ppp is not None and session.builtin_ppp.password is None
    options = session_options(session).builtin_ppp
    assert options is not None
    assert (options.user, options.password, options.secrets, options.remote_name) == (
        "alice",
        None,
        "/etc/ppp/chap-secrets",
        "lns1",
    )
    assert (options.connect_delay, options.passive, options.auth_timeout) == (0.25, True, None)
    assert options.resolv_file == "/run/uplink.resolv"
    again = loads(dump_toml(config), file=F, daemon="kl2tpd", hostname="h", resolver=None)
    assert again == config
    # Defaults: the side's connect delay, a 30 s authentication phase.
    plain = session_options(
        loads(LAC, file=F, daemon="kl2tpd", hostname="h", resolver=None).tunnel("t1").session("s1")
    ).builtin_ppp
    assert plain is not None
    assert (plain.connect_delay, plain.passive, plain.auth_timeout) == (None, False, 30.0)


def test_pppd_stays_the_default_and_maps_to_no_builtin_options() -> None:
    config = loads(
        '[tunnel.t1]\npeer = "192.0.2.1"\n[tunnel.t1.session.s1]\npseudowire = "ppp"\n',
        file=F,
        daemon="kl2tpd",
        hostname="h",
        resolver=None,
    )
    session = config.tunnel("t1").session("s1")
    assert session.ppp is PppImplementation.PPPD and session.builtin_ppp is None
    assert session_options(session).builtin_ppp is None


def test_builtin_without_table_on_a_tunnel_session_uses_defaults() -> None:
    config = loads(
        '[tunnel.t1]\npeer = "192.0.2.1"\n[tunnel.t1.session.s1]\nppp = "builtin"\n',
        file=F,
        daemon="kl2tpd",
        hostname="h",
        resolver=None,
    )
    session = config.tunnel("t1").session("s1")
    assert session.builtin_ppp == BuiltinPppSection()
    assert session_options(session).builtin_ppp == BuiltinPppOptions()


def test_restart_timer_and_counters_load_map_and_round_trip() -> None:
    """RFC 1661 4.6's timer and counters (pppd's lcp-restart, lcp-max-configure ...)
    reach the PPP core's RestartConfig; left out, they are the RFC's defaults."""
    text = LAC.replace(
        'auth = ["chap-md5"]',
        'auth = ["chap-md5"]\nrestart_interval = 500\nmax_configure = 4\n'
        "max_terminate = 1\nmax_failure = 3",
    )
    config = loads(text, file=F, daemon="kl2tpd", hostname="h", resolver=None)
    options = session_options(config.tunnel("t1").session("s1")).builtin_ppp
    assert options is not None
    assert options.restart == RestartConfig(
        restart_interval=0.5, max_configure=4, max_terminate=1, max_failure=3
    )
    assert loads(dump_toml(config), file=F, daemon="kl2tpd", hostname="h", resolver=None) == config
    plain = session_options(
        loads(LAC, file=F, daemon="kl2tpd", hostname="h", resolver=None).tunnel("t1").session("s1")
    ).builtin_ppp
    assert plain is not None and plain.restart == RestartConfig()


def test_zero_echo_interval_turns_the_keepalive_off() -> None:
    text = LAC.replace('auth = ["chap-md5"]', 'auth = ["chap-md5"]\nlcp_echo_interval = 0')
    config = loads(text, file=F, daemon="kl2tpd", hostname="h", resolver=None)
    options = session_options(config.tunnel("t1").session("s1")).builtin_ppp
    assert options is not None and options.lcp_echo_interval is None


@pytest.mark.parametrize("text", [LNS, LAC])
def test_dump_round_trips(text: str) -> None:
    config = loads(text, file=F, hostname="h", resolver=None)
    dumped = dump_toml(config)
    assert "builtin_ppp]" in dumped
    assert loads(dumped, file=F, hostname="h", resolver=None) == config
    data = to_dict(config)
    json.dumps(data)


def test_json_view_of_a_listener() -> None:
    config = loads(LNS, file=F, hostname="h", resolver=None)
    listener = to_dict(config)["listeners"][0]  # type: ignore[index]
    assert listener["ppp"] == "builtin"
    assert listener["builtin_ppp"]["auth"] == ["mschap-v2", "chap-md5", "pap"]
    assert listener["builtin_ppp"]["lcp_echo_interval"] == 10000
    assert listener["builtin_ppp"]["address_pool"] == "10.0.0.0/24"


L3 = """
[listener.v3]
listen = "192.0.2.1"
version = "l2tpv3"
pseudowire = "ppp"
ppp = "builtin"

[listener.v3.builtin_ppp]
secrets = "/etc/ppp/chap-secrets"
local_address = "10.1.0.1"
address_pool = "10.1.0.0/24"
"""


def test_l2tpd_listener_sessions_inherit_ppp_and_the_table() -> None:
    text = (
        L3
        + '\n[listener.v3.session.a]\nremote_end_id = "a"\n'
        + '\n[listener.v3.session.b]\nremote_end_id = "b"\nppp = "pppd"\n'
        + 'pppd_options = ["noauth"]\n'
        + '\n[listener.v3.session.c]\nremote_end_id = "c"\n'
        + '[listener.v3.session.c.builtin_ppp]\nauth = []\nlocal_address = "10.2.0.1"\n'
        + '\n[listener.v3.session.d]\npseudowire = "eth"\n'
    )
    config = loads(text, file=F, daemon="l2tpd", hostname="h", resolver=None)
    listener = config.listener("v3")
    a, b, c, d = (listener.session(n) for n in "abcd")
    assert a.ppp is PppImplementation.BUILTIN and a.builtin_ppp == listener.builtin_ppp
    assert b.ppp is PppImplementation.PPPD and b.builtin_ppp is None
    assert b.pppd_options == ("noauth",)
    assert c.builtin_ppp is not None and c.builtin_ppp.auth == ()
    assert c.builtin_ppp.local_address == IPv4Address("10.2.0.1")
    assert d.ppp is PppImplementation.PPPD and d.builtin_ppp is None
    assert loads(dump_toml(config), file=F, daemon="l2tpd", hostname="h", resolver=None) == config
    offers = {o.remote_end_id: o.options for o in listen_options(listener).pseudowires}
    assert offers["a"].builtin_ppp is not None and offers["b"].builtin_ppp is None


P = f"{F}: listener.main.builtin_ppp"
S = f"{F}: tunnel.t1.session.s1.builtin_ppp"


@pytest.mark.parametrize(
    ("text", "daemon", "expected"),
    [
        (
            LNS.replace('ppp = "builtin"', 'ppp = "kernel"'),
            "lns",
            [
                f'{F}: listener.main: key \'ppp\': "kernel" is not one of "pppd", "builtin"',
            ],
        ),
        (
            LNS.replace('ppp = "builtin"', 'ppp = "pppd"'),
            "lns",
            [f"{F}: listener.main: key 'builtin_ppp': needs ppp = \"builtin\""],
        ),
        (
            LNS.replace('ppp = "builtin"\n', 'ppp = "builtin"\npppd_options = ["noauth"]\n'),
            "lns",
            [
                f"{F}: listener.main: key 'pppd_options': only with ppp = \"pppd\""
                " (this session runs the built-in PPP)"
            ],
        ),
        (
            LNS.replace('auth = ["mschap-v2", "chap-md5", "pap"]', 'auth = ["eap", "pap"]'),
            "lns",
            [f'{P}: key \'auth\': element 0: "eap" is not one of "pap", "chap-md5", "mschap-v2"'],
        ),
        (
            LNS.replace('auth = ["mschap-v2", "chap-md5", "pap"]', 'auth = ["pap", "pap"]'),
            "lns",
            [f"{P}: key 'auth': element 1: \"pap\" is listed twice"],
        ),
        (
            LNS.replace('secrets = "/etc/ppp/chap-secrets"\n', ""),
            "lns",
            [
                f"{P}: key 'secrets': missing (needed to check the peer with auth ="
                ' ["mschap-v2", "chap-md5", "pap"], unless [radius] has auth_servers;'
                " auth = [] accepts any peer)"
            ],
        ),
        (
            LNS.replace('local_address = "10.0.0.1"\n', ""),
            "lns",
            [
                f"{P}: key 'local_address': missing (the authenticator side needs its own"
                " IPv4 address)"
            ],
        ),
        (
            LNS.replace('"10.0.0.0/24"', '"10.0.0.1/24"'),
            "lns",
            [
                f"{P}: key 'address_pool': \"10.0.0.1/24\" is not an IPv4 network (CIDR):"
                " 10.0.0.1/24 has host bits set"
            ],
        ),
        (
            LNS.replace('"10.0.0.1"', '"fd00::1"'),
            "lns",
            [f"{P}: key 'local_address': \"fd00::1\" is not an IPv4 address"],
        ),
        (
            LNS.replace('dns = ["192.0.2.53"]', 'dns = ["192.0.2.53", "192.0.2.54", "192.0.2.55"]'),
            "lns",
            [f"{P}: key 'dns': 3 servers; PPP offers at most two (RFC 1877)"],
        ),
        (
            LNS.replace('"l2tp%d"', '"l2tp-lns"'),
            "lns",
            [
                f"{P}: key 'interface_name': \"l2tp-lns\" would be the same for every"
                " session of the listener; add %d (the kernel then picks a free number)"
            ],
        ),
        (
            LNS.replace('"l2tp%d"', '"l2tp%s"'),
            "lns",
            [f"{P}: key 'interface_name': \"l2tp%s\": '%' may only appear once, as %d"],
        ),
        (
            LNS.replace("mru = 1400", "mru = 100"),
            "lns",
            [f"{P}: key 'mru': 100 is out of range 128-65535"],
        ),
        (
            LNS + "restart_interval = 50\nmax_configure = 0\n",
            "lns",
            [
                f"{P}: key 'restart_interval': 50 is out of range 100-60000 (milliseconds)",
                f"{P}: key 'max_configure': 0 is out of range 1-255",
            ],
        ),
        (
            LNS.replace("lcp_echo_failure = 3", "lcp_echo_failure = 0"),
            "lns",
            [f"{P}: key 'lcp_echo_failure': 0 is out of range 1-255"],
        ),
        (
            LNS + 'user = "alice"\npassword = "x"\nretries = 3\n',
            "lns",
            [
                f"{P}: key 'retries': unknown key",
                f"{P}: key 'user': only for a tunnel's sessions (the side that authenticates"
                " itself); a listener checks its peers with 'secrets'",
                f"{P}: key 'password': only for a tunnel's sessions (the side that"
                " authenticates itself); a listener checks its peers with 'secrets'",
            ],
        ),
        (
            LNS.split("[listener.main.builtin_ppp]")[0],
            "lns",
            [
                f"{F}: listener.main: key 'ppp': \"builtin\" on the authenticator side needs a"
                " [listener.main.builtin_ppp] table with 'local_address' and 'secrets'"
                " (or auth = [])"
            ],
        ),
        (
            LNS.split("[listener.main.builtin_ppp]")[0].replace('ppp = "builtin"\n', "")
            + '[listener.main.ppp]\nauth = ["pap"]\n',
            "lns",
            [
                f'{F}: listener.main: key \'ppp\': expected "builtin" or "pppd", got a table'
                " (the built-in PPP settings go in [listener.main.builtin_ppp])"
            ],
        ),
        (
            LAC.replace('user = "alice"\n', ""),
            "kl2tpd",
            [f"{S}: key 'user': missing (goes with 'password')"],
        ),
        (
            LAC.replace('password = "correct horse"\n', ""),
            "kl2tpd",
            [
                f"{S}: key 'password': missing (goes with 'user';"
                " or name a 'secrets' file to find it in)"
            ],
        ),
        (
            LAC.replace(
                'user = "alice"\npassword = "correct horse"\n', 'secrets = "/s"\nauth = []\n'
            ).replace('auth = ["chap-md5"]\n', ""),
            "kl2tpd",
            [f"{S}: key 'user': missing (the peer side's 'secrets' is looked up by 'user')"],
        ),
        (
            LNS + 'remote_name = "x"\nresolv_file = "/run/r"\nconnect_delay = 60001\n',
            "lns",
            [
                f"{P}: key 'connect_delay': 60001 is out of range 0-60000 (milliseconds)",
                f"{P}: key 'remote_name': only for a tunnel's sessions (the side that"
                " authenticates itself); a listener checks its peers with 'secrets'",
                f"{P}: key 'resolv_file': only for a tunnel's sessions (the side that"
                " authenticates itself); a listener checks its peers with 'secrets'",
            ],
        ),
        (
            LAC + "passive = 1\nauth_timeout = -1\n",
            "kl2tpd",
            [
                f"{S}: key 'passive': expected a boolean (true or false), got integer 1",
                f"{S}: key 'auth_timeout': -1 is out of range 0-4294967295 (milliseconds)",
            ],
        ),
        (
            LAC.replace('user = "alice"\npassword = "correct horse"\n', ""),
            "kl2tpd",
            [f"{S}: key 'user': missing (auth lists methods to authenticate with)"],
        ),
        (
            LAC.replace('password = "correct horse"', f'password = "{"x" * 256}"'),
            "kl2tpd",
            [f"{S}: key 'password': 256 bytes is longer than the 255 PAP and CHAP can carry"],
        ),
        (
            '[tunnel.t1]\nversion = "l2tpv3"\npeer = "192.0.2.1"\n'
            '[tunnel.t1.session.s1]\npseudowire = "eth"\nppp = "builtin"\n',
            "l2tpd",
            [f"{F}: tunnel.t1.session.s1: key 'ppp': only for pseudowire ppp"],
        ),
        (
            LAC.replace("[tunnel.t1.session.s1.builtin_ppp]", "[tunnel.t1.session.s1.x]"),
            "kl2tpd",
            [
                f"{F}: tunnel.t1.session.s1: key 'x': unknown key",
            ],
        ),
    ],
)
def test_errors(text: str, daemon: str, expected: list[str]) -> None:
    assert errors(text, daemon) == expected


def test_pppd_is_not_needed_when_every_ppp_session_is_builtin() -> None:
    from l2tp.daemons.preflight import KernelNeeds, needs_of

    assert needs_of(loads(LNS, file=F, daemon="lns", hostname="h", resolver=None)) == (
        KernelNeeds(ppp=True, pppd=False)
    )
    assert needs_of(loads(LAC, file=F, daemon="kl2tpd", hostname="h", resolver=None)) == (
        KernelNeeds(ppp=True, pppd=False)
    )
    mixed = LAC + '\n[tunnel.t1.session.s2]\npseudowire = "ppp"\n'
    assert needs_of(loads(mixed, file=F, daemon="kl2tpd", hostname="h", resolver=None)).pppd
    pppd_lns = LNS.split("[listener.main.builtin_ppp]")[0].replace('ppp = "builtin"', "")
    assert needs_of(loads(pppd_lns, file=F, daemon="lns", hostname="h", resolver=None)).pppd
