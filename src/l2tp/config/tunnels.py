"""``[tunnel.T]`` tables: tunnels we initiate (kl2tpd, l2tpd) or set up statically
(ql2tpd), with their peer lists (LNS selection and failover) and session tables."""

from __future__ import annotations

from l2tp.config.control import CONTROL_KEYS, DEFAULT_HELLO_TIMEOUT, U32, LoaderBase
from l2tp.config.errors import table_path
from l2tp.config.fields import TableReader, parse_endpoint, show, toml_type
from l2tp.config.model import (
    DEFAULT_DENYLIST_CDN,
    DEFAULT_DENYLIST_STOPCCN,
    DEFAULT_DENYLIST_TIME,
    Encap,
    Endpoint,
    PeerEntry,
    SessionSection,
    TunnelMode,
    TunnelSection,
    Version,
)
from l2tp.config.profiles import default_mode
from l2tp.config.sessions import TunnelFacts, read_session

DEFAULT_REDIAL_TIMEOUT = 5.0
DEFAULT_MAX_REDIAL_TIMEOUT = 60.0
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
        *CONTROL_KEYS,
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


class TunnelTables(LoaderBase):
    """The readers of ``[tunnel.T]`` (mixed into the loader with :class:`ListenerTables`)."""

    __slots__ = ()

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
