"""``ppp = "builtin" | "pppd"`` and the ``builtin_ppp`` table of sessions and listeners.

Why the table is not called ``ppp``: TOML cannot give one key both a string value and a
table value, and ``ppp = "builtin"`` is the switch (issue 17). The settings of the
built-in PPP therefore live in ``[PATH.builtin_ppp]`` next to it::

    [listener.main]
    listen = "192.0.2.1"
    ppp = "builtin"

    [listener.main.builtin_ppp]
    auth = ["mschap-v2", "chap-md5"]
    secrets = "/etc/ppp/chap-secrets"
    local_address = "10.0.0.1"
    address_pool = "10.0.0.0/24"

The side is the table's: a listener and its session tables are the authenticator (the
LNS checks the peer: ``secrets``, ``local_address``, ``address_pool``, ``dns``), a
tunnel's session tables are the peer (the LAC authenticates itself: ``user``,
``password`` or ``secrets`` + ``remote_name``, and may write the DNS servers it learns
to ``resolv_file``). Keys of the other side are errors, so a file says what it will do.
Durations are milliseconds, as everywhere in the file.
"""

from __future__ import annotations

import ipaddress

from l2tp.config.errors import ConfigError
from l2tp.config.fields import TableReader, show
from l2tp.config.model import BuiltinPppSection, PppAuth, PppImplementation, Pseudowire

BUILTIN_PPP_KEYS = frozenset(
    (
        "auth",
        "secrets",
        "name",
        "local_address",
        "address_pool",
        "dns",
        "mtu",
        "mru",
        "lcp_echo_interval",
        "lcp_echo_failure",
        "ipv6",
        "interface_name",
        "user",
        "password",
        "remote_name",
        "connect_delay",
        "passive",
        "auth_timeout",
        "resolv_file",
        "restart_interval",
        "max_configure",
        "max_terminate",
        "max_failure",
    )
)
AUTHENTICATOR_ONLY = ("address_pool", "dns")
PEER_ONLY = ("user", "password", "remote_name", "resolv_file")
MAX_DELAY_MS = 60_000
MIN_MRU = 128
"""pppd's floor (PPP_MINMRU), the PPP core's too."""
NAME_MAX = 255
"""PAP and CHAP carry names and passwords with one length octet (RFC 1334 2.2.1)."""
U32 = 0xFFFFFFFF


def _short_text(r: TableReader, key: str) -> str | None:
    value = r.nonempty_string(key)
    if value is None:
        return None
    size = len(value.encode("utf-8", "surrogateescape"))
    if size > NAME_MAX:
        r.error(key, f"{size} bytes is longer than the {NAME_MAX} PAP and CHAP can carry")
        return None
    if "\x00" in value:
        r.error(key, "contains a NUL character")
        return None
    return value


def _ipv4(r: TableReader, key: str, text: str, where: str = "") -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        r.error(key, f"{where}{show(text)} is not an IPv4 address")
        return None


def _auth(r: TableReader) -> tuple[PppAuth, ...] | None:
    names = r.string_list("auth")
    if names is None:
        return None
    methods: list[PppAuth] = []
    for index, name in enumerate(names):
        try:
            method = PppAuth(name)
        except ValueError:
            allowed = ", ".join(show(m.value) for m in PppAuth)
            r.error("auth", f"element {index}: {show(name)} is not one of {allowed}")
            return None
        if method in methods:
            r.error("auth", f"element {index}: {show(name)} is listed twice")
            return None
        methods.append(method)
    return tuple(methods)


def _interface_name(r: TableReader, listener: bool) -> str | None:
    name = r.interface_name("interface_name")
    if name is None:
        return None
    percent = name.find("%")
    if percent >= 0 and (name[percent + 1 : percent + 2] != "d" or "%" in name[percent + 1 :]):
        r.error("interface_name", f"{show(name)}: '%' may only appear once, as %d")
        return None
    if listener and percent < 0:
        r.error(
            "interface_name",
            f"{show(name)} would be the same for every session of the listener;"
            " add %d (the kernel then picks a free number)",
        )
        return None
    return name


def read_builtin_ppp(
    file: str,
    path: str,
    table: dict[str, object],
    *,
    listener: bool,
    errors: list[ConfigError],
    radius: bool = False,
) -> BuiltinPppSection | None:
    """Read one ``builtin_ppp`` table (``path`` is its own dotted path); None on errors.

    ``radius``: the file has RADIUS authentication servers, which check the peers of
    listeners instead of a ``secrets`` file (so it is not required there)."""
    before = len(errors)
    r = TableReader(file, path, table, BUILTIN_PPP_KEYS, errors)
    auth = _auth(r)
    secrets = r.file_path("secrets")
    name = _short_text(r, "name")
    local_text = r.nonempty_string("local_address")
    local = _ipv4(r, "local_address", local_text) if local_text is not None else None
    pool = None
    pool_text = r.nonempty_string("address_pool")
    if pool_text is not None:
        try:
            pool = ipaddress.IPv4Network(pool_text, strict=True)
        except ValueError as exc:
            r.error("address_pool", f"{show(pool_text)} is not an IPv4 network (CIDR): {exc}")
    dns: list[ipaddress.IPv4Address] = []
    for index, text in enumerate(r.string_list("dns") or ()):
        found = _ipv4(r, "dns", text, f"element {index}: ")
        if found is None:
            break
        dns.append(found)
    if len(dns) > 2:
        r.error("dns", f"{len(dns)} servers; PPP offers at most two (RFC 1877)")
    mtu = r.integer("mtu", MIN_MRU, 0xFFFF)
    mru = r.integer("mru", MIN_MRU, 0xFFFF)
    echo = r.integer("lcp_echo_interval", 0, U32, context=" (milliseconds)")
    echo_failure = r.integer("lcp_echo_failure", 1, 255)
    ipv6 = r.boolean("ipv6", False)
    interface_name = _interface_name(r, listener)
    user = _short_text(r, "user")
    password = _short_text(r, "password")
    remote_name = _short_text(r, "remote_name")
    connect_delay = r.integer("connect_delay", 0, MAX_DELAY_MS, context=" (milliseconds)")
    passive = r.boolean("passive", False)
    auth_timeout = r.integer("auth_timeout", 0, U32, context=" (milliseconds)")
    resolv_file = r.file_path("resolv_file")
    # RFC 1661 4.6's timer and counters, for LCP and every NCP (pppd's lcp-restart,
    # lcp-max-configure, lcp-max-terminate, lcp-max-failure).
    restart = r.integer("restart_interval", 100, MAX_DELAY_MS, context=" (milliseconds)")
    max_configure = r.integer("max_configure", 1, 255)
    max_terminate = r.integer("max_terminate", 1, 255)
    max_failure = r.integer("max_failure", 1, 255)

    if listener:
        for key in PEER_ONLY:
            if r.has(key):
                r.error(
                    key,
                    "only for a tunnel's sessions (the side that authenticates itself);"
                    " a listener checks its peers with 'secrets'",
                )
        methods = auth if auth is not None else BuiltinPppSection().auth
        if methods and not radius and not r.has("secrets") and "auth" not in r.failed:
            shown = ", ".join(show(m.value) for m in methods)
            r.error(
                "secrets",
                f"missing (needed to check the peer with auth = [{shown}], unless"
                " [radius] has auth_servers; auth = [] accepts any peer)",
            )
        if not r.has("local_address"):
            r.error("local_address", "missing (the authenticator side needs its own IPv4 address)")
    else:
        for key in AUTHENTICATOR_ONLY:
            if r.has(key):
                r.error(key, "only for listeners (the authenticator side)")
        if r.has("password") and not r.has("user"):
            r.error("user", "missing (goes with 'password')")
        if r.has("user") and not r.has("password") and not r.has("secrets"):
            r.error(
                "password",
                "missing (goes with 'user'; or name a 'secrets' file to find it in)",
            )
        if r.has("secrets") and not r.has("user"):
            r.error("user", "missing (the peer side's 'secrets' is looked up by 'user')")
        if r.has("auth") and auth and not r.has("user"):
            r.error("user", "missing (auth lists methods to authenticate with)")
    if len(errors) > before:
        return None
    return BuiltinPppSection(
        auth=auth if auth is not None else BuiltinPppSection().auth,
        secrets=secrets,
        name=name,
        local_address=local,
        address_pool=pool,
        dns=tuple(dns),
        mtu=mtu,
        mru=mru,
        lcp_echo_interval=30.0 if echo is None else echo / 1000,
        lcp_echo_failure=4 if echo_failure is None else echo_failure,
        ipv6=ipv6,
        interface_name=interface_name,
        user=user,
        password=password,
        remote_name=remote_name,
        connect_delay=None if connect_delay is None else connect_delay / 1000,
        passive=passive,
        auth_timeout=30.0 if auth_timeout is None else auth_timeout / 1000,
        resolv_file=resolv_file,
        restart_interval=3.0 if restart is None else restart / 1000,
        max_configure=10 if max_configure is None else max_configure,
        max_terminate=2 if max_terminate is None else max_terminate,
        max_failure=5 if max_failure is None else max_failure,
    )


def read_ppp_keys(
    r: TableReader,
    *,
    pseudowire: Pseudowire,
    pseudowire_known: bool,
    listener: bool,
    base: dict[str, object] | None,
    radius: bool = False,
) -> tuple[PppImplementation, BuiltinPppSection | None]:
    """``ppp`` and ``builtin_ppp`` of a session, listener or listener session table.

    ``base`` is the listener's resolved keys for a listener's session table: a table
    that leaves ``ppp`` out takes the listener's, and a built-in session without its own
    ``builtin_ppp`` table takes the listener's (whole, not merged key by key).
    """
    raw = r.table.get("ppp")
    kind: PppImplementation | None
    if isinstance(raw, dict):
        r.error(
            "ppp",
            'expected "builtin" or "pppd", got a table (the built-in PPP settings go in'
            f" [{r.path}.builtin_ppp])",
        )
        kind = None
    else:
        kind = r.choice("ppp", PppImplementation)
    known = r.has("ppp") and "ppp" not in r.failed and pseudowire_known
    if known and pseudowire is not Pseudowire.PPP:
        r.error("ppp", "only for pseudowire ppp")
    inherited = base is not None and not r.has("ppp")
    if kind is None:
        kind = PppImplementation.PPPD
        if inherited and base is not None:
            found = base.get("ppp")
            if isinstance(found, PppImplementation):
                kind = found
    if pseudowire is not Pseudowire.PPP:
        kind = PppImplementation.PPPD
    section: BuiltinPppSection | None = None
    if r.has("builtin_ppp"):
        table = r.table["builtin_ppp"]
        sub = f"{r.path}.builtin_ppp"
        if not isinstance(table, dict):
            r.error("builtin_ppp", f"expected a table such as [{sub}], got {show(table)}")
        elif kind is not PppImplementation.BUILTIN:
            if "ppp" not in r.failed and (not pseudowire_known or pseudowire is Pseudowire.PPP):
                r.error("builtin_ppp", 'needs ppp = "builtin"')
        else:
            section = read_builtin_ppp(
                r.file, sub, table, listener=listener, errors=r.errors, radius=radius
            )
            if section is None:
                r.failed.add("builtin_ppp")
    elif kind is PppImplementation.BUILTIN:
        found = base.get("builtin_ppp") if base is not None else None
        if isinstance(found, BuiltinPppSection):
            section = found
        elif listener:
            r.error(
                "ppp",
                f'"builtin" on the authenticator side needs a [{r.path}.builtin_ppp] table'
                " with 'local_address' and 'secrets' (or auth = [])",
            )
        else:
            section = BuiltinPppSection()
    return kind, section
