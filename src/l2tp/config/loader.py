"""Loading a TOML file into a validated :class:`~l2tp.config.model.Config`.

go-l2tp's ``ql2tpd.toml`` / ``kl2tpd.toml`` keys are accepted unchanged (and,
as in go-l2tp, unknown keys are errors, here with a "did you mean"). The
extensions are documented in ``docs/config.md``.

Work is done in one pass per table with a :class:`TableReader` that records
errors and carries on; cross-table rules (duplicate IDs, interface names) run
afterwards. Every error is reported at the end in one
:class:`~l2tp.config.errors.ConfigErrors`. Checks that depend on a value that
was itself invalid are skipped, so one mistake gives one message.

The loader does no I/O beyond reading the file and looking at the accounting spools'
paths (:func:`~l2tp.config.radius_listener.spool_keys`: two paths for one file are
refused, which only the file system can tell): the host name default and the
host-name resolver are injected (``hostname=``, ``resolver=``), which keeps
tests deterministic; ``pppd_args`` files are read by the daemon, not here. The
daemons load before their event loop starts, and reload in a thread.

The tables' readers live with their tables: :mod:`l2tp.config.control` (the
loader's state and what tunnels and listeners share), :mod:`l2tp.config.tunnels`,
:mod:`l2tp.config.listeners`; this module reads the file and its top level.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib

from l2tp.config.errors import ConfigError, ConfigErrors, table_path
from l2tp.config.fields import Resolver, TableReader, show, system_resolver
from l2tp.config.hooks import read_hooks
from l2tp.config.listeners import ListenerTables
from l2tp.config.metrics import METRICS_KEYS, read_metrics
from l2tp.config.model import (
    Config,
    Daemon,
    Encap,
    Endpoint,
    ListenerSection,
    SessionSection,
    TunnelSection,
)
from l2tp.config.profiles import profile_for
from l2tp.config.radius import read_radius
from l2tp.config.radius_listener import unique_spools
from l2tp.config.tunnels import TunnelTables

TOP_KEYS = frozenset(("tunnel", "listener", "hooks", "radius", *METRICS_KEYS))
_SYNTAX = re.compile(
    r"^(?P<msg>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)


class _Loader(TunnelTables, ListenerTables):
    """The whole file: its top-level keys, then every table, then the rules spanning tables."""

    __slots__ = ()

    def named_tables(
        self, doc: dict[str, object], kind: str
    ) -> list[tuple[str, dict[str, object]]]:
        raw = doc.get(kind)
        if raw is None:
            return []
        if not isinstance(raw, dict):
            self.error("", kind, f"expected a table such as [{kind}.NAME], got {show(raw)}")
            return []
        allowed = self.profile.tunnels if kind == "tunnel" else self.profile.listeners
        if not allowed:
            other = "listener" if kind == "tunnel" else "tunnel"
            reason = (
                f"{self.profile.name} does not accept [{kind}.NAME] tables (only [{other}.NAME])"
            )
            self.error(kind, None, reason)
            return []
        out = []
        for name, table in raw.items():
            if isinstance(table, dict):
                out.append((name, table))
            else:
                reason = f"expected a table such as [{table_path(kind, name)}], got {show(table)}"
                self.error(kind, name, reason)
        return out

    def config(self, doc: dict[str, object]) -> Config:
        TableReader(self.file, "", doc, TOP_KEYS, self.errors)
        radius = read_radius(self.file, doc.get("radius"), self.profile, self.resolver, self.errors)
        self.radius = radius
        raw_radius = doc.get("radius")
        # A [radius] with errors still counts: one mistake there should not add a
        # "secrets missing" error to every listener.
        self.radius_auth = isinstance(raw_radius, dict) and "auth_servers" in raw_radius
        tunnels = [t for n, tab in self.named_tables(doc, "tunnel") if (t := self.tunnel(n, tab))]
        listeners = [
            x for n, tab in self.named_tables(doc, "listener") if (x := self.listener(n, tab))
        ]
        if not self.errors and not tunnels and not listeners:
            kinds = [
                f"[{k}.NAME]"
                for k, ok in (
                    ("tunnel", self.profile.tunnels),
                    ("listener", self.profile.listeners),
                )
                if ok
            ]
            self.error("", None, f"no {' or '.join(kinds)} tables: nothing to do")
        self.cross_checks(tunnels, listeners)
        unique_spools(self.file, radius, listeners, self.errors)
        hooks = read_hooks(self.file, doc.get("hooks"), self.errors)
        metrics, per_tunnel = read_metrics(self.file, doc, self.resolver, self.errors)
        if self.errors:
            raise ConfigErrors(self.errors)
        return Config(
            file=self.file,
            daemon=self.profile.daemon,
            tunnels=tuple(tunnels),
            listeners=tuple(listeners),
            hooks=hooks,
            metrics=metrics,
            metrics_per_tunnel=per_tunnel,
            radius=radius,
            warnings=tuple(self.warnings),
        )

    def cross_checks(self, tunnels: list[TunnelSection], listeners: list[ListenerSection]) -> None:
        """Rules spanning tables: the kernel's tunnel IDs and interface names are per host."""
        tids: dict[int, str] = {}
        ifnames: dict[str, str] = {}
        for tunnel in tunnels:
            path = table_path("tunnel", tunnel.name)
            if tunnel.tid is not None:
                if tunnel.tid in tids:
                    self.error(path, "tid", f"{tunnel.tid} is already used by {tids[tunnel.tid]}")
                else:
                    tids[tunnel.tid] = path
            self.unique_interface_names(path, tunnel.sessions, ifnames)
        for listener in listeners:
            path = table_path("listener", listener.name)
            self.unique_interface_names(path, listener.sessions, ifnames)
        endpoints: dict[tuple[Endpoint, Encap], str] = {}
        for listener in listeners:
            path = table_path("listener", listener.name)
            where = (listener.listen, listener.encap)
            if where in endpoints:
                reason = f"{show(str(listener.listen))} is already used by {endpoints[where]}"
                self.error(path, "listen", reason)
            else:
                endpoints[where] = path

    def unique_interface_names(
        self, path: str, sessions: tuple[SessionSection, ...], seen: dict[str, str]
    ) -> None:
        for session in sessions:
            spath = f"{path}.{table_path('session', session.name)}"
            name = session.interface_name
            if name is None:
                continue
            if name in seen:
                self.error(spath, "interface_name", f"{show(name)} is already used by {seen[name]}")
            else:
                seen[name] = spath


_CHAR_REPR = re.compile(r"'\\(?:x([0-9a-f]{2})|u([0-9a-f]{4})|U([0-9a-f]{8}))'")


def _char_names(message: str) -> str:
    """tomllib quotes an illegal character as Python would (``'\\x00'``); say ``U+0000``."""
    return _CHAR_REPR.sub(lambda m: f"U+{int(next(g for g in m.groups() if g), 16):04X}", message)


def _syntax_error(file: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    match = _SYNTAX.match(_char_names(str(exc)))
    if match is None:
        return ConfigError(file, "", None, f"invalid TOML: {exc}")
    if match["line"] is None:
        return ConfigError(file, "", None, f"invalid TOML at end of document: {match['msg']}")
    line, column = int(match["line"]), int(match["col"])
    reason = f"invalid TOML at line {line}, column {column}: {match['msg']}"
    return ConfigError(file, "", None, reason, line=line, column=column)


def loads(
    text: str,
    *,
    file: str = "<string>",
    daemon: Daemon | str | None = None,
    hostname: str | None = None,
    resolver: Resolver | None = system_resolver,
) -> Config:
    """Parse and validate TOML ``text``; ``file`` is only used in messages.

    ``daemon`` selects the validation profile (None: accept anything valid).
    ``hostname`` is the ``host_name`` default (None: ``socket.gethostname()``,
    read now). ``resolver`` turns host names in addresses into IP addresses
    (None: host names are rejected). Raises :class:`ConfigErrors`.
    """
    profile = profile_for(daemon)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigErrors([_syntax_error(file, exc)]) from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        reason = "invalid TOML: arrays or inline tables nested too deeply"
        raise ConfigErrors([ConfigError(file, "", None, reason)]) from None
    name = socket.gethostname() if hostname is None else hostname
    return _Loader(file, profile, name, resolver).config(doc)


def load(
    path: str | os.PathLike[str],
    *,
    daemon: Daemon | str | None = None,
    hostname: str | None = None,
    resolver: Resolver | None = system_resolver,
) -> Config:
    """Read and validate the file at ``path`` (see :func:`loads`)."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as fp:
            data = fp.read()
    except OSError as exc:
        raise ConfigErrors([ConfigError(file, "", None, f"cannot read: {exc.strerror}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"invalid TOML: not UTF-8 (byte {exc.start})"
        raise ConfigErrors([ConfigError(file, "", None, reason)]) from None
    return loads(text, file=file, daemon=daemon, hostname=hostname, resolver=resolver)
