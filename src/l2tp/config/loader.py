"""Loading a TOML file into a validated :class:`~l2tp.config.model.Config`.

go-l2tp's ``ql2tpd.toml`` / ``kl2tpd.toml`` keys are accepted unchanged (and,
as in go-l2tp, unknown keys are errors, here with a "did you mean"). The
extensions are documented in ``docs/config.md``.

Work is done in one pass per table with a :class:`TableReader` that records
errors and carries on; cross-table rules (duplicate IDs, interface names) run
afterwards. Every error is reported at the end in one
:class:`~l2tp.config.errors.ConfigErrors`. Checks that depend on a value that
was itself invalid are skipped, so one mistake gives one message.

The loader does no I/O beyond reading the file: the host name default and the
host-name resolver are injected (``hostname=``, ``resolver=``), which keeps
tests deterministic; ``pppd_args`` files are read by the daemon, not here.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from dataclasses import dataclass, field

from l2tp.config.errors import ConfigError, ConfigErrors, table_path
from l2tp.config.fields import Resolver, TableReader, show, system_resolver
from l2tp.config.model import (
    Config,
    Daemon,
    Digest,
    Encap,
    Endpoint,
    FramingCap,
    ListenerConfig,
    SessionConfig,
    TunnelConfig,
    TunnelMode,
    Version,
)
from l2tp.config.profiles import Profile, default_mode, profile_for
from l2tp.config.sessions import TunnelFacts, read_pseudowire_keys, read_session

DEFAULT_WINDOW_SIZE = 4
DEFAULT_RETRY_TIMEOUT = 1.0
DEFAULT_MAX_RETRIES = {Version.L2TPV2: 5, Version.L2TPV3: 10}
DEFAULT_REDIAL_TIMEOUT = 5.0
U32 = 0xFFFFFFFF

_CONTROL_KEYS = (
    "version",
    "encap",
    "window_size",
    "hello_timeout",
    "retry_timeout",
    "max_retries",
    "host_name",
    "framing_caps",
    "secret",
    "hide_avps",
    "digest",
)
TUNNEL_KEYS = frozenset(
    (
        *_CONTROL_KEYS,
        "local",
        "peer",
        "tid",
        "ptid",
        "mode",
        "redial",
        "redial_timeout",
        "max_redials",
        "session",
    )
)
LISTENER_KEYS = frozenset(
    (
        *_CONTROL_KEYS,
        "listen",
        "max_tunnels",
        "max_sessions",
        "max_sessions_per_tunnel",
        "allowed_peers",
        "pseudowire",
        "seqnum",
        "cookie_len",
        "l2spec_type",
        "pppd_args",
        "pppd_options",
        "mtu",
        "bridge",
    )
)
TOP_KEYS = frozenset(("tunnel", "listener"))
_SYNTAX = re.compile(
    r"^(?P<msg>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)


@dataclass(slots=True)
class _Loader:
    file: str
    profile: Profile
    hostname: str
    resolver: Resolver | None
    errors: list[ConfigError] = field(default_factory=list)

    def error(self, path: str, key: str | None, reason: str) -> None:
        self.errors.append(ConfigError(self.file, path, key, reason))

    # -- shared by tunnels and listeners ------------------------------------------------

    def version(self, r: TableReader) -> Version | None:
        version = r.choice("version", Version)
        if version is None and not r.has("version"):
            version = self.profile.default_version
            if version is None:
                r.error("version", "missing (required when no daemon is named)")
        if version is not None and version not in self.profile.versions:
            r.error("version", self.profile.only("version", self.profile.versions))
            return None
        return version

    def encap(self, r: TableReader, version: Version | None) -> Encap:
        encap = r.choice("encap", Encap) or Encap.UDP
        if encap is Encap.IP and version is Version.L2TPV2:
            r.error("encap", '"ip" is not allowed with l2tpv2 (L2TPv2 runs over UDP only)')
        return encap

    def control(self, r: TableReader, version: Version | None) -> dict[str, object]:
        """The control-connection keys common to ``[tunnel.T]`` and ``[listener.L]``."""
        caps = r.string_list("framing_caps")
        framing: tuple[FramingCap, ...] = (FramingCap.SYNC, FramingCap.ASYNC)
        if caps is not None:
            bad = [c for c in caps if c not in FramingCap._value2member_map_]
            if bad:
                r.error("framing_caps", f'{show(bad[0])} is not one of "sync", "async"')
            elif not caps:
                r.error("framing_caps", 'must list at least one of "sync", "async"')
            else:
                framing = tuple(c for c in FramingCap if c.value in caps)
        secret = r.nonempty_string("secret")
        hide = r.boolean("hide_avps", False)
        if hide and secret is None and not r.has("secret"):
            r.error("hide_avps", "needs 'secret' (hidden AVPs are encrypted with it)")
        digest = r.choice("digest", Digest) or Digest.NONE
        if digest is not Digest.NONE:
            if version is Version.L2TPV2:
                r.error("digest", "only for l2tpv3 (L2TPv2 authenticates with 'secret' alone)")
            elif secret is None and not r.has("secret"):
                r.error("digest", "needs 'secret' (the digest is keyed with it)")
        retries = r.integer("max_retries", 0, 65535)
        if retries is None:
            retries = DEFAULT_MAX_RETRIES[version or Version.L2TPV3]
        return {
            "window_size": r.integer("window_size", 1, 65535) or DEFAULT_WINDOW_SIZE,
            "hello_timeout": r.duration("hello_timeout", 0, 0.0),
            "retry_timeout": r.duration("retry_timeout", 1, DEFAULT_RETRY_TIMEOUT),
            "max_retries": retries,
            "host_name": r.nonempty_string("host_name") or self.hostname,
            "framing_caps": framing,
            "secret": secret,
            "hide_avps": hide,
            "digest": digest,
        }

    # -- tunnels ------------------------------------------------------------------------

    def tunnel(self, name: str, table: dict[str, object]) -> TunnelConfig | None:
        path = table_path("tunnel", name)
        r = TableReader(self.file, path, table, TUNNEL_KEYS, self.errors)
        version = self.version(r)
        encap = self.encap(r, version)
        id_max = 65535 if version is Version.L2TPV2 else U32
        context = f" for {version}" if version is not None else ""
        tid = r.integer("tid", 1, id_max, context=context)
        ptid = r.integer("ptid", 1, id_max, context=context)
        local = r.endpoint("local", self.resolver, min_port=0)
        peer = r.endpoint("peer", self.resolver, min_port=1)
        if not r.has("peer"):
            r.error("peer", "missing (required for every tunnel)")
        if local is not None and peer is not None and local.family != peer.family:
            r.error(
                "peer",
                f"address family IPv{peer.family} does not match the local address"
                f" family IPv{local.family}",
            )
        control = self.control(r, version)
        hello = control["hello_timeout"]
        assert isinstance(hello, float)
        mode = self.mode(r, version, ptid is not None or r.has("ptid"), hello)
        redial = r.boolean("redial", False)
        redial_timeout = r.duration("redial_timeout", 1, DEFAULT_REDIAL_TIMEOUT)
        max_redials = r.integer("max_redials", 0, 65535) or 0
        if mode is not TunnelMode.DYNAMIC:
            self.static_rules(r, mode, version, hello)
        elif r.has("ptid"):
            reason = (
                "only for static and quiescent tunnels (a dynamic tunnel learns it from the peer)"
            )
            r.error("ptid", reason)
        if not redial and (r.has("redial_timeout") or r.has("max_redials")):
            key = "redial_timeout" if r.has("redial_timeout") else "max_redials"
            r.error(key, "needs 'redial = true'")
        facts = TunnelFacts(path=path, version=version, mode=mode, profile=self.profile)
        sessions = self.sessions(r, facts)
        if version is None or peer is None:
            return None
        return TunnelConfig(
            name=name,
            version=version,
            encap=encap,
            mode=mode,
            local=local,
            peer=peer,
            tid=tid,
            ptid=ptid,
            redial=redial,
            redial_timeout=redial_timeout,
            max_redials=max_redials,
            sessions=sessions,
            **control,  # type: ignore[arg-type]
        )

    def mode(
        self, r: TableReader, version: Version | None, has_ptid: bool, hello: float
    ) -> TunnelMode:
        mode = r.choice("mode", TunnelMode)
        if mode is None:
            mode = default_mode(self.profile, version, has_ptid, hello)
        if mode not in self.profile.modes:
            r.error("mode", self.profile.only("mode", self.profile.modes))
        return mode

    def static_rules(
        self, r: TableReader, mode: TunnelMode, version: Version | None, hello: float
    ) -> None:
        """Static and quiescent tunnels: no control protocol, so everything is given."""
        if version is Version.L2TPV2:
            r.error("mode", f"{show(mode.value)} requires version l2tpv3")
        for key in ("local", "tid", "ptid"):
            if not r.has(key):
                r.error(key, f"missing (required for {mode} tunnels)")
        if mode is TunnelMode.QUIESCENT and hello <= 0 and not r.has("hello_timeout"):
            r.error("hello_timeout", "missing (required for quiescent tunnels)")
        elif mode is TunnelMode.QUIESCENT and hello <= 0:
            r.error("hello_timeout", "must be more than 0 for quiescent tunnels")
        elif mode is TunnelMode.STATIC and hello > 0:
            r.error("hello_timeout", 'static tunnels send no HELLO; use mode = "quiescent"')
        for key in ("secret", "hide_avps", "digest", "redial", "redial_timeout", "max_redials"):
            if r.has(key):
                r.error(key, f"only for dynamic tunnels ({mode} tunnels run no control protocol)")

    def sessions(self, r: TableReader, facts: TunnelFacts) -> tuple[SessionConfig, ...]:
        raw = r.table.get("session")
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            r.error(
                "session", f"expected a table such as [{facts.path}.session.NAME], got {show(raw)}"
            )
            return ()
        sessions: list[SessionConfig] = []
        by_sid: dict[int, str] = {}
        for name, table in raw.items():
            spath = f"{facts.path}.{table_path('session', name)}"
            if not isinstance(table, dict):
                self.error(spath, None, f"expected a table such as [{spath}], got {show(table)}")
                continue
            session = read_session(name, spath, table, facts, self.file, self.errors)
            if session is None:
                continue
            if session.sid is not None:
                if session.sid in by_sid:
                    self.error(
                        spath, "sid", f"{session.sid} is already used by {by_sid[session.sid]}"
                    )
                else:
                    by_sid[session.sid] = spath
            sessions.append(session)
        return tuple(sessions)

    # -- listeners ----------------------------------------------------------------------

    def listener(self, name: str, table: dict[str, object]) -> ListenerConfig | None:
        path = table_path("listener", name)
        r = TableReader(self.file, path, table, LISTENER_KEYS, self.errors)
        version = self.version(r)
        encap = self.encap(r, version)
        listen = r.endpoint("listen", self.resolver, min_port=1)
        if not r.has("listen"):
            r.error("listen", "missing (required for every listener)")
        control = self.control(r, version)
        max_tunnels = r.integer("max_tunnels", 0, U32) or 0
        total = r.integer("max_sessions", 0, U32) or 0
        per_tunnel = r.integer("max_sessions_per_tunnel", 0, U32) or 0
        if total and per_tunnel > total:
            r.error("max_sessions_per_tunnel", f"{per_tunnel} is more than max_sessions {total}")
        peers = r.networks("allowed_peers") or ()
        facts = TunnelFacts(
            path=path, version=version, mode=TunnelMode.DYNAMIC, profile=self.profile
        )
        pw = read_pseudowire_keys(r, facts)
        if version is None or listen is None:
            return None
        return ListenerConfig(
            name=name,
            listen=listen,
            version=version,
            encap=encap,
            allowed_peers=peers,
            max_tunnels=max_tunnels,
            max_sessions=total,
            max_sessions_per_tunnel=per_tunnel,
            **control,  # type: ignore[arg-type]
            **pw,  # type: ignore[arg-type]
        )

    # -- the whole file -----------------------------------------------------------------

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
        if self.errors:
            raise ConfigErrors(self.errors)
        return Config(
            file=self.file,
            daemon=self.profile.daemon,
            tunnels=tuple(tunnels),
            listeners=tuple(listeners),
        )

    def cross_checks(self, tunnels: list[TunnelConfig], listeners: list[ListenerConfig]) -> None:
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
            for session in tunnel.sessions:
                spath = f"{path}.{table_path('session', session.name)}"
                name = session.interface_name
                if name is None:
                    continue
                if name in ifnames:
                    self.error(
                        spath, "interface_name", f"{show(name)} is already used by {ifnames[name]}"
                    )
                else:
                    ifnames[name] = spath
        endpoints: dict[tuple[Endpoint, Encap], str] = {}
        for listener in listeners:
            path = table_path("listener", listener.name)
            where = (listener.listen, listener.encap)
            if where in endpoints:
                reason = f"{show(str(listener.listen))} is already used by {endpoints[where]}"
                self.error(path, "listen", reason)
            else:
                endpoints[where] = path


def _syntax_error(file: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    match = _SYNTAX.match(str(exc))
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
