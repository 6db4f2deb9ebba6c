"""The ``[radius]`` table: RADIUS servers and the client's policy (docs/radius.md).

::

    [radius]
    auth_servers = [
        { address = "192.0.2.10", secret_file = "/etc/l2tp/radius.secret" },
        { address = "192.0.2.11:1812", secret = "s3cret" },
    ]
    timeout = 3000          # ms before a request is sent again (RFC 2865 2.4)
    retries = 3             # retransmissions per server, then the next server
    nas_identifier = "lns-1"
    nas_ip_address = "192.0.2.1"

With ``auth_servers``, the built-in PPP's authenticator side (``ppp = "builtin"`` on a
listener) asks RADIUS instead of a ``secrets`` file, so the ``builtin_ppp`` tables of
listeners need no ``secrets`` then. Only daemons with listeners accept the table. An
address without a port uses 1812 (RFC 2865 3). Each server has exactly one of
``secret`` and ``secret_file``; the file is read when the daemon starts (not by the
loader, which does no I/O), so it may be readable by root only. Secrets are never
printed by ``--check`` (shown as ``"(hidden)"``). The table is the daemon's; a listener
overrides it for its own sessions with ``[listener.L.radius]``
(:mod:`l2tp.config.radius_listener`).

The Dynamic Authorization server (RFC 5176) is the sub-table ``[radius.dae]``::

    [radius.dae]
    listen = "192.0.2.1"    # port 3799 unless given (RFC 5176 3)
    clients = [
        { address = "192.0.2.10", secret_file = "/etc/l2tp/dae.secret", name = "radius-1" },
    ]
    window = 300            # seconds: Event-Timestamp skew allowed (RFC 5176 6.4)
    require_event_timestamp = false

A sub-table because it is a server, not a client: its ``clients`` are the RADIUS
servers allowed to send requests, matched by source address only (no port), and none
of the client's policy keys (``timeout``, ``retries`` ...) applies to it; what it
shares with the rest of ``[radius]`` is the NAS identity (``nas_identifier``,
``nas_ip_address``), which a request naming another NAS is refused for (Error-Cause
403). ``window`` is in seconds, unlike the table's milliseconds, because
Event-Timestamp counts whole seconds (RFC 2869 5.3).

Accounting (RFC 2866, RFC 2867) is configured in the same table (:func:`read_accounting`)::

    acct_servers = [ { address = "192.0.2.10", secret_file = "/etc/l2tp/radius.secret" } ]
    spool = "/var/lib/l2tp/radius-acct.spool"   # required with acct_servers
    acct_interim_interval = 300                 # seconds; absent or 0: as the Access-Accept says
    tunnel_accounting = false                   # RFC 2867 tunnel / tunnel-link records
    accounting_on_off = false                   # Accounting-On / -Off (RFC 2866 5.1)
    spool_max_records = 100000
    spool_max_bytes = 67108864

A ``[radius]`` needs at least one of ``auth_servers``, ``acct_servers`` and
``[radius.dae]``: with only ``acct_servers``, sessions authenticated from a ``secrets``
file are accounted. An
``acct_servers`` address without a port uses 1813 (RFC 2866 3). The project has no
state directory of its own (``/run/l2tp`` does not survive a reboot), so ``spool`` has
no default: it must be given with ``acct_servers``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

from l2tp.config.errors import ConfigError
from l2tp.config.fields import Resolver, TableReader, parse_endpoint, show, toml_type
from l2tp.config.model import (
    DAE_WINDOW,
    RADIUS_ACCT_PORT,
    RADIUS_AUTH_PORT,
    RADIUS_DAE_PORT,
    DaeClientEntry,
    DaeSection,
    Endpoint,
    IPAddress,
    RadiusAccounting,
    RadiusSection,
    RadiusServerEntry,
)
from l2tp.config.profiles import Profile

RADIUS_KEYS = frozenset(
    (
        "auth_servers",
        "timeout",
        "retries",
        "holddown",
        "max_outstanding",
        "nas_identifier",
        "nas_ip_address",
        "dae",
    )
)
ACCT_KEYS = frozenset(
    (
        "acct_servers",
        "acct_interim_interval",
        "tunnel_accounting",
        "spool",
        "spool_max_records",
        "spool_max_bytes",
        "accounting_on_off",
    )
)
"""The accounting keys (:func:`read_accounting`)."""
MAX_INTERIM = 0xFFFFFFFF
"""Acct-Interim-Interval is a 32-bit integer (RFC 2869 5.16)."""
MAX_SPOOL_RECORDS = 10_000_000
MAX_SPOOL_BYTES = 1 << 40
SERVER_KEYS = frozenset(("address", "secret", "secret_file"))
DAE_KEYS = frozenset(("listen", "clients", "window", "require_event_timestamp"))
DAE_CLIENT_KEYS = frozenset(("address", "secret", "secret_file", "name"))
MAX_WINDOW = 86_400
"""Seconds: a day of clock skew is already far more than any replay window needs."""
MAX_NAME = 64
MAX_TIMEOUT_MS = 60_000
MAX_RETRIES = 10
MAX_HOLDDOWN_MS = 86_400_000
MAX_OUTSTANDING = 65_535
MAX_TEXT = 253
"""RFC 2865 5: the longest attribute value (NAS-Identifier)."""
HIDDEN = "(hidden)"
"""What ``--check`` prints for a secret."""
_DEFAULTS = RadiusSection()


def _has_port(text: str) -> bool:
    if text.startswith("["):
        return text.rpartition("]")[2].startswith(":")
    return text.count(":") == 1


def _read_secret(e: TableReader) -> tuple[str | None, str | None]:
    """``secret`` and ``secret_file`` of one server or client: exactly one of them."""
    secret = e.nonempty_string("secret")
    secret_file = e.file_path("secret_file")
    if e.has("secret") and e.has("secret_file"):
        e.error("secret_file", "give either 'secret' or 'secret_file', not both")
    elif not e.has("secret") and not e.has("secret_file"):
        e.error(None, "missing 'secret' or 'secret_file' (the shared secret, RFC 2865 3)")
    return secret, secret_file


def read_servers(
    r: TableReader, key: str, default_port: int, resolver: Resolver | None
) -> tuple[RadiusServerEntry, ...] | None:
    """``KEY = [ { address, secret | secret_file }, ... ]``; None when absent or wrong.

    Element errors name the element's own path (``radius.auth_servers[0]``).
    """
    raw = r.array(key)
    if raw is None:
        return None
    if not raw:
        r.error(key, "must list at least one server")
        return None
    entries: list[RadiusServerEntry] = []
    seen: dict[Endpoint, int] = {}
    ok = True
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            r.error(
                key,
                f"element {index}: expected an inline table such as"
                f' {{ address = "192.0.2.10", secret = "..." }}, got {toml_type(item)}',
            )
            return None
        before = len(r.errors)
        e = TableReader(r.file, f"{r.path}.{key}[{index}]", item, SERVER_KEYS, r.errors)
        address = _read_endpoint(e, "address", resolver, default_port)
        if address is None and not e.has("address"):
            e.error("address", "missing (required for every server)")
        secret, secret_file = _read_secret(e)
        if address is None or len(r.errors) > before:
            ok = False
            continue
        if address in seen:
            r.error(key, f"element {index}: {address} is already element {seen[address]}")
            ok = False
            continue
        seen[address] = index
        entries.append(RadiusServerEntry(address=address, secret=secret, secret_file=secret_file))
    return tuple(entries) if ok else None


def read_radius(
    file: str,
    raw: object,
    profile: Profile,
    resolver: Resolver | None,
    errors: list[ConfigError],
) -> RadiusSection | None:
    """The ``radius`` value of a document (None when absent) as a :class:`RadiusSection`;
    problems go to ``errors`` in the loader's format."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        got = toml_type(raw)
        shown = f" {show(raw)}" if not isinstance(raw, list | dict) else ""
        errors.append(
            ConfigError(file, "", "radius", f"expected a table [radius], got {got}{shown}")
        )
        return None
    before = len(errors)
    r = TableReader(file, "radius", raw, RADIUS_KEYS | ACCT_KEYS, errors)
    if not profile.listeners:
        r.error(
            None,
            f"{profile.name} does not accept [radius] (RADIUS authenticates the peers of"
            " listeners: l2tp-lns, l2tpd)",
        )
        return None
    auth_servers = read_servers(r, "auth_servers", RADIUS_AUTH_PORT, resolver)
    dae = read_dae(r, resolver)
    accounting = read_accounting(r, resolver)
    if not r.has("auth_servers") and not r.has("acct_servers") and not r.has("dae"):
        r.error(
            None,
            "missing 'auth_servers' (the servers to authenticate PPP peers with),"
            " 'acct_servers' (accounting only) or a [radius.dae] table (the Dynamic"
            " Authorization server)",
        )
    client = read_client_keys(r, _DEFAULTS)
    if len(errors) > before:
        return None
    return replace(
        _DEFAULTS, auth_servers=auth_servers or (), dae=dae, accounting=accounting, **client
    )


def read_client_keys(r: TableReader, base: RadiusSection) -> dict[str, Any]:
    """The client keys of a RADIUS table (``timeout``, ``retries``, ``holddown``,
    ``max_outstanding``, ``nas_identifier``, ``nas_ip_address``) as fields of a
    :class:`RadiusSection`: each one the table names, the value of ``base`` for the others
    (``[radius]`` over the defaults; ``[listener.L.radius]`` over the daemon's ``[radius]``).
    Problems are reported through ``r``."""
    timeout = r.integer("timeout", 1, MAX_TIMEOUT_MS, context=" (milliseconds)")
    retries = r.integer("retries", 0, MAX_RETRIES)
    holddown = r.integer("holddown", 0, MAX_HOLDDOWN_MS, context=" (milliseconds)")
    max_outstanding = r.integer("max_outstanding", 1, MAX_OUTSTANDING)
    nas_identifier = r.avp_text("nas_identifier", MAX_TEXT, "NAS-Identifier")
    nas_ip = base.nas_ip_address
    nas_text = r.nonempty_string("nas_ip_address")
    if nas_text is not None:
        try:
            nas_ip = ipaddress.ip_address(nas_text)
        except ValueError:
            r.error("nas_ip_address", f"{show(nas_text)} is not an IP address")
    return {
        "timeout": base.timeout if timeout is None else timeout / 1000,
        "retries": base.retries if retries is None else retries,
        "holddown": base.holddown if holddown is None else holddown / 1000,
        "max_outstanding": base.max_outstanding if max_outstanding is None else max_outstanding,
        "nas_identifier": base.nas_identifier if nas_identifier is None else nas_identifier,
        "nas_ip_address": nas_ip,
    }


def read_accounting(r: TableReader, resolver: Resolver | None) -> RadiusAccounting | None:
    """The accounting keys of ``[radius]`` (module documentation); None without
    ``acct_servers`` (the other accounting keys are then an error: they would do nothing)."""
    servers = read_servers(r, "acct_servers", RADIUS_ACCT_PORT, resolver)
    interim = r.integer("acct_interim_interval", 0, MAX_INTERIM, context=" (seconds)")
    tunnel_accounting = r.boolean("tunnel_accounting", False)
    spool = r.file_path("spool")
    max_records = r.integer("spool_max_records", 1, MAX_SPOOL_RECORDS)
    max_bytes = r.integer("spool_max_bytes", 4096, MAX_SPOOL_BYTES, context=" (bytes)")
    on_off = r.boolean("accounting_on_off", False)
    if not r.has("acct_servers"):
        for key in sorted(ACCT_KEYS - {"acct_servers"}):
            if r.has(key):
                r.error(key, "has no effect without acct_servers (the accounting servers)")
        return None
    if not r.has("spool"):
        r.error(
            "spool",
            "missing (required with acct_servers: the file where accounting records wait"
            " until a server acknowledges them, e.g. /var/lib/l2tp/radius-acct.spool)",
        )
    if servers is None or spool is None:
        return None
    defaults = RadiusAccounting(servers=(), spool="")
    return RadiusAccounting(
        servers=servers,
        spool=spool,
        interim_interval=interim or None,
        tunnel_accounting=tunnel_accounting,
        spool_max_records=max_records or defaults.spool_max_records,
        spool_max_bytes=max_bytes or defaults.spool_max_bytes,
        on_off=on_off,
    )


def _read_endpoint(
    r: TableReader, key: str, resolver: Resolver | None, default_port: int
) -> Endpoint | None:
    """``key``'s address (``HOST``, ``HOST:PORT`` or ``[V6]:PORT``), ``default_port``
    when it names none; None (with the error noted) when absent or not an address."""
    text = r.nonempty_string(key)
    if text is None:
        return None
    try:
        endpoint = parse_endpoint(text, resolver, min_port=1)
    except ValueError as exc:
        r.error(key, f"{show(text)} is not a valid address: {exc}")
        return None
    if _has_port(text):
        return endpoint
    return Endpoint(address=endpoint.address, port=default_port)


def read_dae(radius: TableReader, resolver: Resolver | None) -> DaeSection | None:
    """``[radius.dae]`` (None when absent or wrong); errors name ``radius.dae``."""
    if not radius.has("dae"):
        return None
    raw = radius.table["dae"]
    if not isinstance(raw, dict):
        radius.error("dae", f"expected a table [radius.dae], got {toml_type(raw)} {show(raw)}")
        return None
    before = len(radius.errors)
    r = TableReader(radius.file, f"{radius.path}.dae", raw, DAE_KEYS, radius.errors)
    listen = _read_endpoint(r, "listen", resolver, RADIUS_DAE_PORT)
    if listen is None and not r.has("listen"):
        r.error("listen", 'missing (the address to listen on, e.g. "192.0.2.1" for port 3799)')
    clients = _read_clients(r, listen)
    if not r.has("clients"):
        r.error("clients", "missing (the RADIUS servers allowed to send requests)")
    window = r.integer("window", 1, MAX_WINDOW, context=" (seconds)")
    require = r.boolean("require_event_timestamp", False)
    if listen is None or clients is None or len(radius.errors) > before:
        return None
    return DaeSection(
        listen=listen,
        clients=clients,
        window=DAE_WINDOW if window is None else float(window),
        require_event_timestamp=require,
    )


def _read_clients(r: TableReader, listen: Endpoint | None) -> tuple[DaeClientEntry, ...] | None:
    """``clients = [ { address, secret | secret_file, name }, ... ]``; a client the
    ``listen`` socket cannot hear from (another address family) is an error."""
    raw = r.array("clients")
    if raw is None:
        return None
    if not raw:
        r.error("clients", "must list at least one client")
        return None
    entries: list[DaeClientEntry] = []
    seen: dict[IPAddress, int] = {}
    ok = True
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            r.error(
                "clients",
                f"element {index}: expected an inline table such as"
                f' {{ address = "192.0.2.10", secret = "..." }}, got {toml_type(item)}',
            )
            return None
        before = len(r.errors)
        e = TableReader(r.file, f"{r.path}.clients[{index}]", item, DAE_CLIENT_KEYS, r.errors)
        address = None
        text = e.nonempty_string("address")
        if text is not None:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                e.error(
                    "address",
                    f"{show(text)} is not an IP address (requests are matched by their"
                    " source address, any port)",
                )
            else:
                problem = _family_problem(address, listen)
                if problem is not None:
                    e.error("address", problem)
        elif not e.has("address"):
            e.error("address", "missing (required for every client)")
        secret, secret_file = _read_secret(e)
        name = e.nonempty_string("name")
        if name is not None and (len(name) > MAX_NAME or not name.isprintable()):
            e.error("name", f"{show(name)}: at most {MAX_NAME} printable characters")
        if address is None or len(r.errors) > before:
            ok = False
            continue
        if address in seen:
            r.error("clients", f"element {index}: {address} is already element {seen[address]}")
            ok = False
            continue
        seen[address] = index
        entries.append(
            DaeClientEntry(address=address, secret=secret, secret_file=secret_file, name=name)
        )
    return tuple(entries) if ok else None


def _family_problem(address: IPAddress, listen: Endpoint | None) -> str | None:
    """Why a socket bound to ``listen`` never receives from ``address`` (None: it can).

    An IPv6 socket bound to ``::`` also receives IPv4 (as IPv4-mapped addresses)."""
    if listen is None or address.version == listen.address.version:
        return None
    if address.version == 4 and listen.address == ipaddress.IPv6Address("::"):
        return None
    return f"an IPv{address.version} client, but listen is the IPv{listen.address.version} {listen}"


def radius_items(section: RadiusSection, *, full: bool) -> list[tuple[str, object]]:
    """The ``[radius]`` table for ``--check`` (secrets shown as :data:`HIDDEN`);
    ``full`` (the JSON view) includes ``dae``, which the TOML view prints as its own
    ``[radius.dae]`` table (:func:`dae_items`)."""
    servers = [
        {
            "address": str(entry.address),
            **({"secret": HIDDEN} if entry.secret is not None else {}),
            **({"secret_file": entry.secret_file} if entry.secret_file is not None else {}),
        }
        for entry in section.auth_servers
    ]
    nas_ip = None if section.nas_ip_address is None else str(section.nas_ip_address)
    dae: list[tuple[str, object]] = []
    if full:
        dae = [("dae", None if section.dae is None else dict(dae_items(section.dae)))]
    return [
        ("auth_servers", servers if servers or full else None),  # TOML: absent when empty
        ("timeout", round(section.timeout * 1000)),
        ("retries", section.retries),
        ("holddown", round(section.holddown * 1000)),
        ("max_outstanding", section.max_outstanding),
        ("nas_identifier", section.nas_identifier),
        ("nas_ip_address", nas_ip),
        *accounting_items(section.accounting),
        *dae,
    ]


def dae_items(section: DaeSection) -> list[tuple[str, object]]:
    """The ``[radius.dae]`` table for ``--check`` (secrets shown as :data:`HIDDEN`)."""
    clients = [
        {
            "address": str(entry.address),
            **({"secret": HIDDEN} if entry.secret is not None else {}),
            **({"secret_file": entry.secret_file} if entry.secret_file is not None else {}),
            **({"name": entry.name} if entry.name is not None else {}),
        }
        for entry in section.clients
    ]
    return [
        ("listen", str(section.listen)),
        ("clients", clients),
        ("window", round(section.window)),
        ("require_event_timestamp", section.require_event_timestamp),
    ]


def _server_items(entries: tuple[RadiusServerEntry, ...]) -> list[dict[str, str]]:
    return [
        {
            "address": str(entry.address),
            **({"secret": HIDDEN} if entry.secret is not None else {}),
            **({"secret_file": entry.secret_file} if entry.secret_file is not None else {}),
        }
        for entry in entries
    ]


def accounting_items(accounting: RadiusAccounting | None) -> list[tuple[str, object]]:
    """The accounting keys for ``--check`` (none without accounting; secrets hidden)."""
    if accounting is None:
        return []
    return [
        ("acct_servers", _server_items(accounting.servers)),
        ("acct_interim_interval", accounting.interim_interval or 0),
        ("tunnel_accounting", accounting.tunnel_accounting),
        ("spool", accounting.spool),
        ("spool_max_records", accounting.spool_max_records),
        ("spool_max_bytes", accounting.spool_max_bytes),
        ("accounting_on_off", accounting.on_off),
    ]
