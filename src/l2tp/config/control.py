"""The loader's state and the keys ``[tunnel.T]`` and ``[listener.L]`` share.

:class:`LoaderBase` holds what one load of a file carries (its name, the daemon's
profile, the injected host name and resolver, the errors found so far) and reads
the control-connection keys common to tunnels (:mod:`l2tp.config.tunnels`) and
listeners (:mod:`l2tp.config.listeners`), and their ``session`` sub-tables. Each of
those modules adds its own table's readers to it; :mod:`l2tp.config.loader` puts
them together for the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from l2tp.config.errors import ConfigError, table_path
from l2tp.config.fields import Resolver, TableReader, avp_max_length, show
from l2tp.config.model import Digest, Encap, FramingCap, RadiusSection, SessionSection, Version
from l2tp.config.profiles import Profile
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
U32 = 0xFFFFFFFF
HOST_NAME_MAX = avp_max_length(AvpType.HOST_NAME)

CONTROL_KEYS = (
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


@dataclass(slots=True)
class LoaderBase:
    """One load of one file: where errors go, and the readers tunnels and listeners share."""

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

    # -- session tables of both ---------------------------------------------------------

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
