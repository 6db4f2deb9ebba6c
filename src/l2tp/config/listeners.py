"""``[listener.L]`` tables: where we accept tunnels (l2tp-lns, l2tpd, the L2TPv3
responder), with their limits, session defaults and session tables."""

from __future__ import annotations

from typing import TypedDict

from l2tp.config.control import CONTROL_KEYS, DEFAULT_HELLO_TIMEOUT, U32, LoaderBase
from l2tp.config.errors import table_path
from l2tp.config.fields import TableReader
from l2tp.config.model import (
    Encap,
    ListenerSection,
    PppImplementation,
    SessionSection,
    TunnelMode,
    Version,
)
from l2tp.config.radius_listener import read_listener_radius
from l2tp.config.sessions import (
    PSEUDOWIRE_KEYS,
    Inherited,
    TunnelFacts,
    read_listener_session,
    read_pseudowire_keys,
)

DEFAULT_MAX_PENDING_TUNNELS = 4096
"""Tunnels of one listener still being set up (SCCRQ answered, no SCCCN yet)."""
DEFAULT_MAX_PENDING_PER_PEER = 64
"""Pending set-ups from one peer address, so that one source cannot starve the others."""
MAX_PENDING = 0xFFFF
"""Highest pending-set-up limit: more half-open tunnels than that is a flood anyway."""
LISTENER_KEYS = frozenset(
    (
        *CONTROL_KEYS,
        "listen",
        "max_tunnels",
        "max_pending_tunnels",
        "max_pending_per_peer",
        "max_sessions",
        "max_sessions_per_tunnel",
        "allowed_peers",
        *PSEUDOWIRE_KEYS,
        "session",
        "radius",
    )
)


class _Limits(TypedDict):
    max_tunnels: int
    max_pending_tunnels: int
    max_pending_per_peer: int
    max_sessions: int
    max_sessions_per_tunnel: int


class ListenerTables(LoaderBase):
    """The readers of ``[listener.L]`` (mixed into the loader with :class:`TunnelTables`)."""

    __slots__ = ()

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
        if radius is not None and not _runs_builtin_ppp(pw, sessions):
            # pppd checks and accounts its users itself (its radius plugin): a table
            # that would silently do nothing is most likely a mistake.
            r.error(
                "radius",
                "has no effect: this listener's sessions run pppd; [listener.L.radius]"
                ' applies to sessions with ppp = "builtin"',
            )
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


def _runs_builtin_ppp(pseudowire: dict[str, object], sessions: tuple[SessionSection, ...]) -> bool:
    """Whether the listener or any of its session tables selects the built-in PPP."""
    if pseudowire.get("ppp") is PppImplementation.BUILTIN:
        return True
    return any(s.ppp is PppImplementation.BUILTIN for s in sessions)
