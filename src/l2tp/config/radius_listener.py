"""``[listener.L.radius]``: one listener's RADIUS, overriding the daemon's ``[radius]``.

::

    [listener.branch.radius]
    auth_servers = [ { address = "192.0.2.20", secret_file = "/etc/l2tp/branch.secret" } ]
    acct_servers = [ { address = "192.0.2.20", secret_file = "/etc/l2tp/branch.secret" } ]
    spool = "/var/lib/l2tp/branch-acct.spool"   # its own: never the daemon's or another's
    nas_identifier = "lns-1-branch"

The sessions of that listener are authenticated (and accounted, with ``acct_servers``)
with the result of laying the table over the daemon's ``[radius]``; the sessions of
other listeners keep the daemon's. What is inherited and what is not:

* ``auth_servers``, ``timeout``, ``retries``, ``holddown``, ``max_outstanding``,
  ``nas_identifier``, ``nas_ip_address``: a key the table leaves out is the daemon's
  (a table naming only ``auth_servers`` keeps the daemon's ``timeout`` and NAS
  identity; one naming only ``nas_identifier`` asks the daemon's servers with another
  NAS-Identifier).
* Accounting is per spool: a table with ``acct_servers`` has an accounting engine of
  its own, which needs its own ``spool`` (two engines appending to one file would
  replay each other's records) and takes ``acct_interim_interval``,
  ``spool_max_records`` and ``spool_max_bytes`` from the table only (they describe
  that engine). A table without ``acct_servers`` leaves its sessions to the daemon's
  engine, with the daemon's accounting keys and NAS identity, and the accounting keys
  are then an error (they would do nothing).
* Daemon-wide, refused here: ``[radius.dae]`` (one Dynamic Authorization server
  reaches every session), ``tunnel_accounting`` (the RFC 2867 tunnel records are the
  daemon's engine's) and ``accounting_on_off`` (Accounting-On/Off say that the whole
  NAS restarted).

The result is a whole :class:`~l2tp.config.model.RadiusSection` (``dae`` None,
``accounting`` the listener's own or None), stored as
:attr:`~l2tp.config.model.ListenerSection.radius`; ``--check`` prints it as such, the
inherited keys written out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace

from l2tp.config.errors import ConfigError, table_path
from l2tp.config.fields import Resolver, TableReader, show, toml_type
from l2tp.config.model import RADIUS_AUTH_PORT, ListenerSection, RadiusSection
from l2tp.config.radius import (
    ACCT_KEYS,
    radius_items,
    read_accounting,
    read_client_keys,
    read_servers,
)

DAEMON_WIDE = {
    "dae": "[radius.dae] is daemon-wide (one Dynamic Authorization server for every"
    " listener's sessions): set it in [radius]",
    "tunnel_accounting": "daemon-wide (the tunnel records go to [radius]'s acct_servers):"
    " set it in [radius]",
    "accounting_on_off": "daemon-wide (Accounting-On/Off say the whole NAS restarted):"
    " set it in [radius]",
}
"""Keys of ``[radius]`` that a listener's table refuses, with why."""
LISTENER_RADIUS_KEYS = frozenset(
    (
        "auth_servers",
        "timeout",
        "retries",
        "holddown",
        "max_outstanding",
        "nas_identifier",
        "nas_ip_address",
        *ACCT_KEYS,
        *DAEMON_WIDE,
    )
)


def read_listener_radius(
    file: str,
    path: str,
    raw: object,
    daemon: RadiusSection | None,
    resolver: Resolver | None,
    errors: list[ConfigError],
) -> RadiusSection | None:
    """The listener's effective RADIUS (module doc) from its ``radius`` value ``raw``
    (None when absent or wrong); ``path`` is the listener's table path, ``daemon`` the
    daemon's ``[radius]`` (None: none, or one with errors: the defaults are laid
    under)."""
    if raw is None:
        return None
    where = f"{path}.radius"
    if not isinstance(raw, dict):
        got = toml_type(raw)
        shown = f" {show(raw)}" if not isinstance(raw, list | dict) else ""
        reason = f"expected a table [{where}], got {got}{shown}"
        errors.append(ConfigError(file, path, "radius", reason))
        return None
    before = len(errors)
    r = TableReader(file, where, raw, LISTENER_RADIUS_KEYS, errors)
    for key, why in DAEMON_WIDE.items():
        if r.has(key):
            r.error(key, why)
    if not raw:
        r.error(None, "empty: name at least one key to override (or remove the table)")
    base = daemon if daemon is not None else RadiusSection()
    auth_servers = read_servers(r, "auth_servers", RADIUS_AUTH_PORT, resolver)
    accounting = read_accounting(r, resolver)  # a refused key is reported once only
    client = read_client_keys(r, base)
    if len(errors) > before:
        return None
    return replace(
        base,
        auth_servers=base.auth_servers if auth_servers is None else auth_servers,
        dae=None,
        accounting=accounting,
        **client,
    )


SpoolKey = tuple[object, ...]
"""One of the marks of the file a spool path names (:func:`spool_keys`)."""


def spool_keys(path: str) -> frozenset[SpoolKey]:
    """What tells whether two spool paths name one file: two paths do when their keys
    meet. The keys are the real path (symbolic links, ``.`` and ``..`` resolved as the
    kernel resolves them; a relative path from the working directory, which the daemon
    does not change), the (device, inode) of the directory that holds the file, with the
    file's name (a directory reached through two paths: a bind mount, a symbolic link
    the real path cannot see through), and the file's own (device, inode) when it
    exists (a hard link). A path that cannot be looked at (a directory missing, no
    permission) keeps the keys that could be had: its real path at least.

    Looks at the file system (stat, readlink; no file opened): the loader runs before
    the event loop starts, and a reload loads off it (a thread)."""
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):  # not a path the system takes (the reader refuses NUL)
        real = os.path.abspath(path)
    keys: set[SpoolKey] = {("path", real)}
    directory, name = os.path.split(real)
    try:
        st = os.stat(directory)
    except (OSError, ValueError):
        pass
    else:
        keys.add(("dir", st.st_dev, st.st_ino, name))
    try:
        st = os.stat(real)
    except (OSError, ValueError):
        pass
    else:
        keys.add(("file", st.st_dev, st.st_ino))
    return frozenset(keys)


def unique_spools(
    file: str,
    radius: RadiusSection | None,
    listeners: Iterable[ListenerSection],
    errors: list[ConfigError],
) -> None:
    """Every accounting engine has a spool of its own: two appending to one file would
    replay (send again) each other's records at the next start. Two paths are one file
    when :func:`spool_keys` says so: ``a//b`` and ``a/b``, a relative path and its
    absolute path, a symbolic link (to the file or to a directory on the way) and its
    target, ``..`` segments, a hard link, two bind mounts of one directory."""
    seen: dict[SpoolKey, str] = {}
    if radius is not None and radius.accounting is not None:
        seen.update(dict.fromkeys(spool_keys(radius.accounting.spool), "radius.spool"))
    for listener in listeners:
        accounting = listener.radius.accounting if listener.radius is not None else None
        if accounting is None:
            continue
        path = f"{table_path('listener', listener.name)}.radius"
        keys = spool_keys(accounting.spool)
        holder = next((seen[key] for key in sorted(keys, key=repr) if key in seen), None)
        if holder is not None:
            reason = (
                f"{show(accounting.spool)} is already used by {holder} (each accounting"
                " engine needs a spool file of its own)"
            )
            errors.append(ConfigError(file, path, "spool", reason))
        else:
            seen.update(dict.fromkeys(keys, f"{path}.spool"))


def listener_radius_items(section: RadiusSection) -> list[tuple[str, object]]:
    """A listener's effective table for ``--check`` (secrets hidden, as ``[radius]``'s),
    without the daemon-wide keys it refuses, so that the output loads back."""
    return [
        (key, value) for key, value in radius_items(section, full=False) if key not in DAEMON_WIDE
    ]
