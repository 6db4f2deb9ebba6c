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
from typing import TypedDict

from l2tp.config.errors import ConfigError, ConfigErrors, table_path
from l2tp.config.fields import (
    Resolver,
    TableReader,
    avp_max_length,
    parse_endpoint,
    show,
    system_resolver,
    toml_type,
)
from l2tp.config.hooks import read_hooks
from l2tp.config.metrics import METRICS_KEYS, read_metrics
from l2tp.config.model import (
    DEFAULT_DENYLIST_CDN,
    DEFAULT_DENYLIST_STOPCCN,
    DEFAULT_DENYLIST_TIME,
    Config,
    Daemon,
    Digest,
    Encap,
    Endpoint,
    FramingCap,
    ListenerSection,
    PeerEntry,
    RadiusSection,
    SessionSection,
    TunnelMode,
    TunnelSection,
    Version,
)
from l2tp.config.profiles import Profile, default_mode, profile_for
from l2tp.config.radius import read_radius
from l2tp.config.radius_listener import read_listener_radius, unique_spools
from l2tp.config.sessions import (
    Inherited,
    TunnelFacts,
    read_listener_session,
    read_pseudowire_keys,
    read_session,
)
from l2tp.protocol.constants import AvpType

DEFAULT_WINDOW_SIZE = 4
DEFAULT_RETRY_TIMEOUT = 1.0
DEFAULT_HELLO_TIMEOUT = 60.0
"""HELLO after 60 s idle in dynamic tunnels and listeners (RFC 2661 5.5 and RFC 3931
4.4 recommend keep-alives; the library's TunnelSection uses 60 s too): without it a
peer that vanished while idle is never noticed and its tunnel stays "established".
Static and quiescent tunnels keep 0, since there ``hello_timeout`` > 0 *selects*
quiescent mode (go-l2tp)."""
DEFAULT_MAX_RETRIES = {Version.L2TPV2: 10, Version.L2TPV3: 10}
"""10 for both versions: with 5, tunnels died at 30% loss (issue 13, item 6); 10
retransmissions (1 + 2 + 4 + 8 x 8 = 71 s to give up) lost none."""
DEFAULT_REDIAL_TIMEOUT = 5.0
DEFAULT_MAX_REDIAL_TIMEOUT = 60.0
DEFAULT_MAX_PENDING_TUNNELS = 4096
"""Tunnels of one listener still being set up (SCCRQ answered, no SCCCN yet)."""
DEFAULT_MAX_PENDING_PER_PEER = 64
"""Pending set-ups from one peer address, so that one source cannot starve the others."""
MAX_PENDING = 0xFFFF
"""Highest pending-set-up limit: more half-open tunnels than that is a flood anyway."""
U32 = 0xFFFFFFFF
HOST_NAME_MAX = avp_max_length(AvpType.HOST_NAME)

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
    "router_id",
)
PEER_LIST_KEYS = ("denylist_time", "denylist_results", "revert")
"""Keys of a tunnel whose ``peer`` is a list (LNS selection and failover)."""
PEER_KEYS = frozenset(
    ("address", "preference", "weight", "secret", "max_sessions", "assignment_id")
)
"""Keys of one inline table of a ``peer`` list (RFC 2868's tunnel attributes)."""
DENYLIST_RESULT_KEYS = frozenset(("stopccn", "cdn"))
MAX_PREFERENCE = 0xFFFFFF
"""Tunnel-Preference is three octets (RFC 2868 3.8)."""
MAX_ASSIGNMENT_ID = 253
"""Tunnel-Assignment-ID: a RADIUS string attribute, at most 253 octets (RFC 2868 3.7)."""
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
        "max_redial_timeout",
        "max_redials",
        "session",
        *PEER_LIST_KEYS,
    )
)
LISTENER_KEYS = frozenset(
    (
        *_CONTROL_KEYS,
        "listen",
        "max_tunnels",
        "max_pending_tunnels",
        "max_pending_per_peer",
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
        "ppp",
        "builtin_ppp",
        "session",
        "radius",
    )
)
TOP_KEYS = frozenset(("tunnel", "listener", "hooks", "radius", *METRICS_KEYS))
_SYNTAX = re.compile(
    r"^(?P<msg>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)


class _Limits(TypedDict):
    max_tunnels: int
    max_pending_tunnels: int
    max_pending_per_peer: int
    max_sessions: int
    max_sessions_per_tunnel: int


@dataclass(slots=True)
class _Loader:
    file: str
    profile: Profile
    hostname: str
    resolver: Resolver | None
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list)
    """Accepted but without effect (go-l2tp keys we ignore): printed, never fatal."""
    radius_auth: bool = False
    """``[radius]`` names authentication servers (read before the listeners)."""
    radius: RadiusSection | None = None
    """The daemon's ``[radius]``, under each ``[listener.L.radius]`` (read before them)."""

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
        digest = r.choice("digest", Digest)
        if digest is None and not r.has("digest") and secret is not None:
            # RFC 3931 5.4.1: an L2TPv3 control connection is authenticated by the
            # Message Digest AVP, keyed with the shared secret.
            digest = Digest.MD5 if version is Version.L2TPV3 else None
        digest = digest or Digest.NONE
        if digest is not Digest.NONE:
            if version is Version.L2TPV2:
                r.error("digest", "only for l2tpv3 (L2TPv2 authenticates with 'secret' alone)")
            elif secret is None and not r.has("secret"):
                r.error("digest", "needs 'secret' (the digest is keyed with it)")
        elif r.has("digest") and secret is not None and version is Version.L2TPV3:
            r.error(
                "digest",
                '"none" with a secret: L2TPv3 authenticates the control connection with'
                ' the Message Digest (RFC 3931 5.4.1); set "md5" or "sha1"',
            )
        router_id = r.router_id("router_id")
        if r.has("router_id") and version is Version.L2TPV2:
            r.error("router_id", "only for l2tpv3 (the Router ID AVP is an L2TPv3 AVP)")
        retries = r.integer("max_retries", 0, 65535)
        if retries is None:
            retries = DEFAULT_MAX_RETRIES[version or Version.L2TPV3]
        hello = r.integer("hello_timeout", 0, U32, context=" (milliseconds)")
        return {
            "window_size": r.integer("window_size", 1, 65535) or DEFAULT_WINDOW_SIZE,
            # None when absent (or invalid): the default depends on the tunnel's mode.
            "hello_timeout": None if hello is None else hello / 1000,
            "retry_timeout": r.duration("retry_timeout", 1, DEFAULT_RETRY_TIMEOUT),
            "max_retries": retries,
            "host_name": r.avp_text("host_name", HOST_NAME_MAX, "Host Name") or self.hostname,
            "framing_caps": framing,
            "secret": secret,
            "hide_avps": hide,
            "digest": digest,
            "router_id": router_id,
        }

    # -- tunnels ------------------------------------------------------------------------

    def tunnel(self, name: str, table: dict[str, object]) -> TunnelSection | None:
        path = table_path("tunnel", name)
        r = TableReader(self.file, path, table, TUNNEL_KEYS, self.errors)
        version = self.version(r)
        encap = self.encap(r, version)
        id_max = 65535 if version is Version.L2TPV2 else U32
        context = f" for {version}" if version is not None else ""
        tid = r.integer("tid", 1, id_max, context=context)
        ptid = r.integer("ptid", 1, id_max, context=context)
        local = r.endpoint("local", self.resolver, min_port=0)
        peers: tuple[PeerEntry, ...] = ()
        listed = isinstance(r.table.get("peer"), list)
        if listed:
            peers = self.peer_list(r, path, version)
            peer = min(peers, key=lambda p: p.preference).endpoint if peers else None
        else:
            # go-l2tp writes IP-encapsulated peers with port 0 ("[2001:db8::1]:0"): the
            # port means nothing there (RFC 3931 4.1.1.1). A UDP peer needs a real one.
            peer = r.endpoint("peer", self.resolver, min_port=0 if encap is Encap.IP else 1)
        if not r.has("peer"):
            r.error("peer", "missing (required for every tunnel)")
        families = {p.endpoint.family for p in peers} or ({peer.family} if peer else set())
        if local is not None and families - {local.family}:
            (family,) = families - {local.family}
            r.error(
                "peer",
                f"address family IPv{family} does not match the local address"
                f" family IPv{local.family}",
            )
        elif len(families) > 1:
            r.error("peer", "mixes IPv4 and IPv6 addresses (one tunnel socket family)")
        if local is not None and local.port and len(peers) > 1:
            zero = Endpoint(address=local.address, port=0)
            r.error(
                "local",
                f"port {local.port} with a list of peers: each LNS gets a tunnel socket of its"
                f' own, so give port 0 ("{zero}")',
            )
        failover = self.failover_keys(r, listed)
        control = self.control(r, version)
        given_hello = control["hello_timeout"]
        assert given_hello is None or isinstance(given_hello, float)
        hello = given_hello or 0.0
        mode = self.mode(r, version, ptid is not None or r.has("ptid"), hello)
        if given_hello is None:
            control["hello_timeout"] = DEFAULT_HELLO_TIMEOUT if mode is TunnelMode.DYNAMIC else 0.0
        redial = r.boolean("redial", False)
        redial_timeout, max_redial_timeout = self.redial_timeouts(
            r, version, redial, backoff=listed
        )
        max_redials = r.integer("max_redials", 0, 65535) or 0
        if mode is not TunnelMode.DYNAMIC:
            self.static_rules(r, mode, version, hello)
        else:
            if r.has("ptid"):
                reason = (
                    "only for static and quiescent tunnels"
                    " (a dynamic tunnel learns it from the peer)"
                )
                r.error("ptid", reason)
            keys = ("redial_timeout", "max_redial_timeout", "max_redials")
            # max_redial_timeout with l2tpv2 was already reported as such.
            v2 = version is Version.L2TPV2 and not listed
            present = [k for k in keys if r.has(k) and not (v2 and k == "max_redial_timeout")]
            if not redial and present:
                r.error(present[0], "needs 'redial = true'")
        facts = TunnelFacts(path=path, version=version, mode=mode, profile=self.profile)
        sessions = self.tunnel_sessions(r, facts)
        if version is None or peer is None:
            return None
        return TunnelSection(
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
            max_redial_timeout=max_redial_timeout,
            max_redials=max_redials,
            sessions=sessions,
            peers=peers,
            **failover,  # type: ignore[arg-type]
            **control,  # type: ignore[arg-type]
        )

    def peer_list(
        self, r: TableReader, path: str, version: Version | None
    ) -> tuple[PeerEntry, ...]:
        """``peer = [...]``: the LNSes of an L2TPv2 LAC tunnel, each an address string or
        an inline table of RFC 2868's tunnel attributes (see :class:`PeerEntry`)."""
        raw = r.table["peer"]
        assert isinstance(raw, list)
        if version is Version.L2TPV3:
            r.error("peer", "a list of peers is only for l2tpv2 tunnels (an LNS selection)")
            return ()
        if not raw:
            r.error("peer", "must list at least one peer")
            return ()
        entries: list[PeerEntry] = []
        seen: dict[tuple[Endpoint, str | None], int] = {}
        ok = True
        for index, item in enumerate(raw):
            entry = self.peer_entry(r, f"{path}.peer[{index}]", index, item)
            if entry is None:
                ok = False
                continue
            key = (entry.endpoint, entry.assignment_id)
            if key in seen:
                what = str(entry.endpoint)
                if entry.assignment_id is not None:
                    what += f" with assignment_id {show(entry.assignment_id)}"
                r.error("peer", f"element {index}: {what} is already element {seen[key]}")
                ok = False
                continue
            seen[key] = index
            entries.append(entry)
        return tuple(entries) if ok else ()

    def peer_entry(self, r: TableReader, epath: str, index: int, item: object) -> PeerEntry | None:
        if isinstance(item, str):
            try:
                endpoint = parse_endpoint(item, self.resolver, min_port=1)
            except ValueError as exc:
                r.error("peer", f"element {index}: {show(item)} is not a valid address: {exc}")
                return None
            return PeerEntry(endpoint=endpoint)
        if not isinstance(item, dict):
            got = toml_type(item)
            r.error(
                "peer", f"element {index}: expected an address string or an inline table, got {got}"
            )
            return None
        before = len(self.errors)
        e = TableReader(self.file, epath, item, PEER_KEYS, self.errors)
        address = e.endpoint("address", self.resolver, min_port=1)
        if not e.has("address"):
            e.error("address", "missing (required for every peer)")
        preference = e.integer("preference", 0, MAX_PREFERENCE, context=" (RFC 2868 3.8)")
        weight = e.integer("weight", 1, 0xFFFF)
        secret = e.nonempty_string("secret")
        max_sessions = e.integer("max_sessions", 0, U32)
        assignment_id = e.avp_text("assignment_id", MAX_ASSIGNMENT_ID, "Tunnel-Assignment-ID")
        if address is None or len(self.errors) > before:
            return None
        return PeerEntry(
            endpoint=address,
            preference=preference or 0,
            weight=weight or 1,
            secret=secret,
            max_sessions=max_sessions or 0,
            assignment_id=assignment_id,
        )

    def failover_keys(self, r: TableReader, listed: bool) -> dict[str, object]:
        """``denylist_time``, ``denylist_results``, ``revert``: only with a peer list."""
        out: dict[str, object] = {}
        if not listed:
            for key in PEER_LIST_KEYS:
                if r.has(key):
                    r.error(key, "only with a list of peers (peer = [...])")
            return out
        ms = r.integer("denylist_time", 0, U32, context=" (milliseconds; 0: no denylist)")
        out["denylist_time"] = DEFAULT_DENYLIST_TIME if ms is None else ms / 1000
        out["revert"] = r.boolean("revert", False)
        raw = r.table.get("denylist_results")
        if raw is None:
            return out
        if not isinstance(raw, dict):
            got = toml_type(raw)
            r.error(
                "denylist_results",
                f"expected an inline table such as {{ stopccn = [2, 4], cdn = [4] }}, got {got}",
            )
            return out
        d = TableReader(
            self.file, f"{r.path}.denylist_results", raw, DENYLIST_RESULT_KEYS, self.errors
        )
        for kind, default in (("stopccn", DEFAULT_DENYLIST_STOPCCN), ("cdn", DEFAULT_DENYLIST_CDN)):
            codes = d.array(kind)
            if codes is None:
                out[f"denylist_{kind}"] = default
                continue
            values: list[int] = []
            for index, code in enumerate(codes):
                if not isinstance(code, int) or isinstance(code, bool) or not 1 <= code <= 0xFFFF:
                    shown = show(code) if not isinstance(code, dict) else toml_type(code)
                    d.error(kind, f"element {index}: {shown} is not a Result Code (1-65535)")
                    break
                values.append(code)
            else:
                out[f"denylist_{kind}"] = tuple(sorted(set(values)))
        return out

    def redial_timeouts(
        self, r: TableReader, version: Version | None, redial: bool, *, backoff: bool = False
    ) -> tuple[float, float]:
        """``redial_timeout`` and its back-off cap ``max_redial_timeout`` (seconds).

        The cap is an L2TPv3 extension (kl2tpd, the L2TPv2 initiator, redials at
        a fixed interval), and is also taken by an L2TPv2 tunnel with a peer list
        (``backoff``: its sessions are placed again with back-off); absent, it is
        60 s or ``redial_timeout`` if longer. Without ``redial`` both keep their
        defaults (the keys are then errors).
        """
        first = r.integer("redial_timeout", 1, U32, context=" (milliseconds)")
        redial_timeout = DEFAULT_REDIAL_TIMEOUT if first is None else first / 1000
        cap = r.integer("max_redial_timeout", 1, U32, context=" (milliseconds)")
        if backoff and version is Version.L2TPV2:
            version = Version.L2TPV3  # the L2TPv3 rules below: back-off with a cap
        if r.has("max_redial_timeout") and version is Version.L2TPV2:
            reason = "only for l2tpv3 (kl2tpd redials every redial_timeout, without back-off)"
            r.error("max_redial_timeout", reason)
            return redial_timeout, DEFAULT_MAX_REDIAL_TIMEOUT
        if not redial or version is not Version.L2TPV3:
            return redial_timeout, DEFAULT_MAX_REDIAL_TIMEOUT
        if cap is None:
            return redial_timeout, max(DEFAULT_MAX_REDIAL_TIMEOUT, redial_timeout)
        first_valid = first is not None or not r.has("redial_timeout")
        if first_valid and cap / 1000 < redial_timeout:
            first_ms = round(redial_timeout * 1000)
            r.error("max_redial_timeout", f"{cap} is less than redial_timeout {first_ms}")
        return redial_timeout, cap / 1000

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
        keys = (
            "secret",
            "hide_avps",
            "digest",
            "router_id",
            "redial",
            "redial_timeout",
            "max_redial_timeout",
            "max_redials",
        )
        for key in keys:
            if r.has(key):
                r.error(key, f"only for dynamic tunnels ({mode} tunnels run no control protocol)")

    def session_tables(self, r: TableReader, path: str) -> list[tuple[str, str, dict[str, object]]]:
        """The ``session`` sub-tables of a tunnel or listener: (name, path, table)."""
        raw = r.table.get("session")
        if raw is None:
            return []
        if not isinstance(raw, dict):
            r.error("session", f"expected a table such as [{path}.session.NAME], got {show(raw)}")
            return []
        out = []
        for name, table in raw.items():
            spath = f"{path}.{table_path('session', name)}"
            if not isinstance(table, dict):
                self.error(spath, None, f"expected a table such as [{spath}], got {show(table)}")
                continue
            out.append((name, spath, table))
        return out

    def tunnel_sessions(self, r: TableReader, facts: TunnelFacts) -> tuple[SessionSection, ...]:
        sessions: list[SessionSection] = []
        by_sid: dict[int, str] = {}
        by_remote_end: dict[str, str] = {}
        for name, spath, table in self.session_tables(r, facts.path):
            session = read_session(name, spath, table, facts, self.file, self.errors, self.warnings)
            if session is None:
                continue
            if session.sid is not None:
                if session.sid in by_sid:
                    self.error(
                        spath, "sid", f"{session.sid} is already used by {by_sid[session.sid]}"
                    )
                else:
                    by_sid[session.sid] = spath
            self.unique_remote_end_id(session, spath, "remote_end_id" in table, by_remote_end)
            sessions.append(session)
        return tuple(sessions)

    def unique_remote_end_id(
        self, session: SessionSection, spath: str, explicit: bool, seen: dict[str, str]
    ) -> None:
        """Remote End IDs select a pseudowire, so two sessions may not share one."""
        rid = session.remote_end_id
        if rid is None:
            return
        if rid in seen:
            how = "" if explicit else " (the default: the table name)"
            self.error(spath, "remote_end_id", f"{show(rid)}{how} is already used by {seen[rid]}")
        else:
            seen[rid] = spath

    # -- listeners ----------------------------------------------------------------------

    def listener(self, name: str, table: dict[str, object]) -> ListenerSection | None:
        path = table_path("listener", name)
        r = TableReader(self.file, path, table, LISTENER_KEYS, self.errors)
        version = self.version(r)
        encap = self.encap(r, version)
        listen = r.endpoint("listen", self.resolver, min_port=0 if encap is Encap.IP else 1)
        if not r.has("listen"):
            r.error("listen", "missing (required for every listener)")
        control = self.control(r, version)
        if control["hello_timeout"] is None:
            control["hello_timeout"] = DEFAULT_HELLO_TIMEOUT
        limits = self.listener_limits(r, version)
        peers = r.networks("allowed_peers") or ()
        raw_radius = table.get("radius")
        radius = read_listener_radius(
            self.file, path, raw_radius, self.radius, self.resolver, self.errors
        )
        own_auth = isinstance(raw_radius, dict) and "auth_servers" in raw_radius
        facts = TunnelFacts(
            path=path,
            version=version,
            mode=TunnelMode.DYNAMIC,
            profile=self.profile,
            listener=True,
            radius=self.radius_auth or own_auth,
        )
        pw = read_pseudowire_keys(r, facts)
        sessions = self.listener_sessions(r, facts, pw)
        if version is None or listen is None:
            return None
        return ListenerSection(
            name=name,
            listen=listen,
            version=version,
            encap=encap,
            allowed_peers=peers,
            sessions=sessions,
            radius=radius,
            **limits,
            **control,  # type: ignore[arg-type]
            **pw,  # type: ignore[arg-type]
        )

    def listener_limits(self, r: TableReader, version: Version | None) -> _Limits:
        """``max_tunnels``, ``max_pending_*`` and the session limits of a listener.

        ``max_tunnels`` (established tunnels) is at most the tunnel ID space:
        65535 for l2tpv2; 0 means "no limit" there and for the session limits.
        The pending limits have no "unlimited": half-open set-ups are what a
        flood consists of. An absent ``max_pending_per_peer`` follows a lower
        ``max_pending_tunnels``.
        """
        v2 = version is Version.L2TPV2
        context = f" for {version}" if version is not None else ""
        max_tunnels = r.integer("max_tunnels", 0, 0xFFFF if v2 else U32, context=context) or 0
        pending = r.integer("max_pending_tunnels", 1, MAX_PENDING)
        per_peer = r.integer("max_pending_per_peer", 1, MAX_PENDING)
        if pending is not None and per_peer is not None and per_peer > pending:
            r.error(
                "max_pending_per_peer", f"{per_peer} is more than max_pending_tunnels {pending}"
            )
        pending = pending or DEFAULT_MAX_PENDING_TUNNELS
        if per_peer is None:
            per_peer = min(DEFAULT_MAX_PENDING_PER_PEER, pending)
        total = r.integer("max_sessions", 0, U32) or 0
        per_tunnel = r.integer("max_sessions_per_tunnel", 0, U32) or 0
        if total and per_tunnel > total:
            r.error("max_sessions_per_tunnel", f"{per_tunnel} is more than max_sessions {total}")
        return _Limits(
            max_tunnels=max_tunnels,
            max_pending_tunnels=pending,
            max_pending_per_peer=per_peer,
            max_sessions=total,
            max_sessions_per_tunnel=per_tunnel,
        )

    def listener_sessions(
        self, r: TableReader, facts: TunnelFacts, defaults: dict[str, object]
    ) -> tuple[SessionSection, ...]:
        """``[listener.L.session.S]``: pseudowires offered by Remote End ID (L2TPv3)."""
        if not r.has("session"):
            return ()
        fix = f"set the session keys on [{facts.path}] itself"
        why = "they are matched by Remote End ID, which only L2TPv3 has"
        if Version.L2TPV3 not in self.profile.versions:
            reason = (
                f"{self.profile.name} does not accept session tables in listeners ({why}); {fix}"
            )
            r.error("session", reason)
            return ()
        if facts.version is Version.L2TPV2:
            r.error("session", f"only for l2tpv3 listeners ({why}); {fix}")
            return ()
        inherited = Inherited(path=facts.path, values=defaults)
        sessions: list[SessionSection] = []
        by_remote_end: dict[str, str] = {}
        for name, spath, table in self.session_tables(r, facts.path):
            session = read_listener_session(
                name, spath, table, facts, inherited, self.file, self.errors
            )
            if session is None:
                continue
            self.unique_remote_end_id(session, spath, "remote_end_id" in table, by_remote_end)
            sessions.append(session)
        return tuple(sessions)

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
