"""Session tables (``[tunnel.T.session.S]``, ``[listener.L.session.S]``) and the
session defaults of listeners.

The rules here depend on the enclosing tunnel (version, mode, daemon), which is
passed in as :class:`TunnelFacts`; a tunnel whose version was itself invalid
passes ``version=None`` and the version-dependent checks are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from l2tp.config.errors import ConfigError
from l2tp.config.fields import TableReader, avp_max_length
from l2tp.config.model import (
    L2SpecType,
    PppImplementation,
    Pseudowire,
    SessionSection,
    TunnelMode,
    Version,
)
from l2tp.config.ppp import read_ppp_keys
from l2tp.config.profiles import Profile
from l2tp.protocol.constants import AvpType

PSEUDOWIRE_KEYS = (
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
)
"""The pseudowire keys: those of every session table, and of a listener, where they
are its sessions' defaults (which its session tables inherit)."""
SESSION_KEYS = frozenset(
    (
        *PSEUDOWIRE_KEYS,
        "sid",
        "psid",
        "reorder_timeout",
        "cookie",
        "peer_cookie",
        "interface_name",
        "pppoe_session_id",
        "pppoe_peer_mac",
        "remote_end_id",
    )
)
# A listener's session tables describe pseudowires offered to the peer's
# incoming calls: the IDs and cookies there come from the control protocol.
_ASSIGNED = "assigned by the control protocol in dynamic sessions"
LISTENER_SESSION_REJECTED = {
    "sid": _ASSIGNED,
    "psid": _ASSIGNED,
    "cookie": f"{_ASSIGNED}; use cookie_len",
    "peer_cookie": f"{_ASSIGNED} (the peer chooses its own cookie)",
}
LISTENER_SESSION_KEYS = frozenset(
    (*PSEUDOWIRE_KEYS, "remote_end_id", "interface_name", *LISTENER_SESSION_REJECTED)
)
_PPP_LIKE = (Pseudowire.PPP, Pseudowire.PPPAC)
T = TypeVar("T")
_DYNAMIC_ONLY = "only for dynamic tunnels"


@dataclass(frozen=True, slots=True, kw_only=True)
class TunnelFacts:
    """What a session's rules need to know about its tunnel (or listener)."""

    path: str
    version: Version | None
    mode: TunnelMode
    profile: Profile
    listener: bool = False
    """A listener or its session tables: the PPP authenticator side (config/ppp.py)."""
    radius: bool = False
    """The file has RADIUS authentication servers: the authenticator side needs no
    secrets file (config/radius.py)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Inherited:
    """A listener's own session keys, the defaults of its ``[listener.L.session.S]`` tables.

    ``values`` is what :func:`read_pseudowire_keys` returned for the listener
    (already checked there, so it is not checked again); ``path`` names the
    listener in messages about a conflict with an inherited value.
    """

    path: str
    values: dict[str, object]


def read_pseudowire_keys(
    r: TableReader, facts: TunnelFacts, inherited: Inherited | None = None
) -> dict[str, object]:
    """Keys shared by sessions and listeners (which set them for incoming sessions).

    With ``inherited`` (a listener's session table), a key the table leaves
    out takes the listener's value; ``pppd_*`` and ``bridge`` are inherited
    only when they fit the session's own pseudowire.
    """
    v2 = facts.version is Version.L2TPV2
    v3 = facts.version is Version.L2TPV3
    base = inherited.values if inherited is not None else None
    given = r.choice("pseudowire", Pseudowire)
    pw = given
    if pw is None and base is not None:
        pw = _as(base["pseudowire"], Pseudowire)
    if pw is None:
        pw = Pseudowire.PPP if v2 else Pseudowire.ETH
    # A default derived from an invalid version (None) is not the user's mistake:
    # the version was already reported, so the profile check would only echo it.
    if given is not None or (base is None and facts.version is not None):
        if pw is Pseudowire.ETH and v2:
            r.error("pseudowire", '"eth" is not allowed with l2tpv2 (L2TPv2 carries PPP only)')
        elif pw is Pseudowire.PPPAC and v3:
            r.error(
                "pseudowire", '"pppac" is not allowed with l2tpv3 (it is an L2TPv2 LAC feature)'
            )
        elif pw not in facts.profile.pseudowires:
            r.error("pseudowire", facts.profile.only("pseudowire", facts.profile.pseudowires))
    # Rules that depend on the pseudowire are skipped when it is unknown (its key
    # or the version was invalid, and reported): one mistake, one message.
    pw_known = "pseudowire" not in r.failed and (
        given is not None or base is not None or facts.version is not None
    )

    cookie_len = r.integer("cookie_len", 0, 8)
    if cookie_len is not None and cookie_len not in (0, 4, 8):
        r.error("cookie_len", f"{cookie_len} is not 0, 4 or 8")
        cookie_len = 0
    if r.has("cookie_len") and v2:
        r.error("cookie_len", "only for l2tpv3")
    elif r.has("cookie_len") and facts.mode is not TunnelMode.DYNAMIC:
        r.error("cookie_len", f"{_DYNAMIC_ONLY} (static sessions set 'cookie')")
    if cookie_len is None and base is not None and not r.has("cookie_len"):
        cookie_len = _as(base["cookie_len"], int)
    l2spec = r.choice("l2spec_type", L2SpecType)
    if l2spec is None and base is not None and not r.has("l2spec_type"):
        l2spec = _as(base["l2spec_type"], L2SpecType)
    l2spec = l2spec or L2SpecType.NONE
    if r.has("l2spec_type") and l2spec is not L2SpecType.NONE and v2:
        r.error("l2spec_type", "only for l2tpv3")
    seqnum = r.boolean("seqnum", _as(base["seqnum"], bool) if base is not None else False)
    if seqnum and v3 and l2spec is L2SpecType.NONE and "l2spec_type" not in r.failed:
        # RFC 3931 section 4.6: L2TPv3 data carries sequence numbers only in the
        # L2-Specific Sublayer; Linux discards every packet of a recv_seq session
        # that has none, so this combination would pass no traffic at all.
        if r.has("seqnum") or inherited is None:
            r.error(
                "seqnum",
                'needs l2spec_type = "default" with l2tpv3 (the sequence number '
                "travels in the L2-Specific Sublayer)",
            )
        elif r.has("l2spec_type"):
            r.error(
                "l2spec_type",
                f'"none" conflicts with seqnum = true inherited from {inherited.path}'
                " (with l2tpv3 the sequence number travels in the L2-Specific Sublayer)",
            )

    ppp, builtin_ppp = read_ppp_keys(
        r,
        pseudowire=pw,
        pseudowire_known=pw_known,
        listener=facts.listener,
        base=base,
        radius=facts.radius,
    )
    builtin = ppp is PppImplementation.BUILTIN
    pppd_args = r.file_path("pppd_args")
    pppd_options = r.argument_list("pppd_options")
    for key in ("pppd_args", "pppd_options"):
        if r.has(key) and pw_known and pw not in _PPP_LIKE:
            r.error(key, "only for pseudowire ppp or pppac")
        elif r.has(key) and builtin and "ppp" not in r.failed:
            r.error(key, 'only with ppp = "pppd" (this session runs the built-in PPP)')
    bridge = r.interface_name("bridge")
    if r.has("bridge") and pw_known and pw is not Pseudowire.ETH:
        r.error("bridge", "only for pseudowire eth")
    mtu = r.integer("mtu", 68, 65535)
    if base is not None:
        if pw in _PPP_LIKE and not builtin and not r.has("pppd_args"):
            pppd_args = _as_optional(base["pppd_args"], str)
        if pw in _PPP_LIKE and not builtin and not r.has("pppd_options"):
            pppd_options = _as(base["pppd_options"], tuple)
        if pw is Pseudowire.ETH and not r.has("bridge"):
            bridge = _as_optional(base["bridge"], str)
        if not r.has("mtu"):
            mtu = _as_optional(base["mtu"], int)
    return {
        "pseudowire": pw,
        "seqnum": seqnum,
        "cookie_len": cookie_len or 0,
        "l2spec_type": l2spec,
        "pppd_args": pppd_args,
        "pppd_options": pppd_options or (),
        "mtu": mtu,
        "bridge": bridge,
        "ppp": ppp,
        "builtin_ppp": builtin_ppp,
    }


def _as(value: object, cls: type[T]) -> T:
    assert isinstance(value, cls)
    return value


def _as_optional(value: object, cls: type[T]) -> T | None:
    return None if value is None else _as(value, cls)


REMOTE_END_ID_MAX = avp_max_length(AvpType.REMOTE_END_ID)


def remote_end_id_key(r: TableReader) -> str | None:
    """An explicit ``remote_end_id``: non-empty and short enough for its AVP."""
    return r.avp_text("remote_end_id", REMOTE_END_ID_MAX, "Remote End ID")


def default_remote_end_id(r: TableReader, name: str) -> str | None:
    """``remote_end_id``, or the table name when the key is absent.

    A blank table name (``[tunnel.t1.session." "]``) cannot be sent as a
    Remote End ID, so it is an error there rather than a silent empty AVP;
    neither can a name longer than the AVP allows (the ICRQ could not be
    encoded, and a listener could never see it in one).
    """
    if r.has("remote_end_id"):
        return remote_end_id_key(r)
    if not name.strip():
        r.error("remote_end_id", "missing (the table name is blank, so it cannot be the default)")
        return None
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > REMOTE_END_ID_MAX:
        r.error(
            "remote_end_id",
            f"missing, and the table name ({size} bytes) is longer than the"
            f" {REMOTE_END_ID_MAX} a Remote End ID AVP can carry",
        )
        return None
    return name


def read_session(
    name: str,
    path: str,
    table: dict[str, object],
    facts: TunnelFacts,
    file: str,
    errors: list[ConfigError],
    warnings: list[ConfigError] | None = None,
) -> SessionSection | None:
    """Read one session table; None when it had errors (they are in ``errors``).

    ``warnings`` collects what is accepted but has no effect (go-l2tp compatibility)."""
    before = len(errors)
    r = TableReader(file, path, table, SESSION_KEYS, errors)
    v2 = facts.version is Version.L2TPV2
    dynamic = facts.mode is TunnelMode.DYNAMIC
    id_max = 65535 if v2 else 0xFFFFFFFF
    context = f" for {facts.version}" if facts.version is not None else ""
    sid = r.integer("sid", 1, id_max, context=context)
    psid = r.integer("psid", 1, id_max, context=context)
    if not dynamic:
        for key in ("sid", "psid"):
            if not r.has(key):
                r.error(key, f"missing (required for {facts.mode} tunnels)")
    else:
        # go-l2tp's kl2tpd takes both keys in a dynamic session (its own example
        # configurations carry them) and ignores them: the control protocol assigns
        # the IDs (RFC 2661 5.4.4 / RFC 3931 5.4.4). A go-l2tp file must run unchanged,
        # so they are accepted, dropped from the model, and named in a warning.
        for key in ("sid", "psid"):
            if r.has(key) and key not in r.failed and warnings is not None:
                whose = "our" if key == "sid" else "the peer's"
                reason = f"ignored in a dynamic session (the control protocol assigns {whose} ID)"
                warnings.append(ConfigError(file, path, key, reason))
        sid = psid = None

    pw = read_pseudowire_keys(r, facts)
    cookie = r.byte_array("cookie", (4, 8))
    peer_cookie = r.byte_array("peer_cookie", (4, 8))
    for key in ("cookie", "peer_cookie"):
        if r.has(key) and v2:
            r.error(key, "only for l2tpv3")
    if r.has("peer_cookie") and dynamic and not v2:
        r.error(
            "peer_cookie",
            "only for static and quiescent tunnels (a dynamic session learns it from the peer)",
        )
    if r.has("cookie") and r.has("cookie_len") and pw["cookie_len"]:
        r.error("cookie_len", "conflicts with 'cookie' (set one or the other)")

    pppoe_id = r.integer("pppoe_session_id", 1, 65535)
    pppoe_mac = r.byte_array("pppoe_peer_mac", (6,))
    # pppac on l2tpv3 was already reported; do not pile the pppoe rules on top.
    is_pppac = pw["pseudowire"] is Pseudowire.PPPAC and facts.version is not Version.L2TPV3
    pw_known = "pseudowire" not in r.failed and facts.version is not None
    for key in ("pppoe_session_id", "pppoe_peer_mac"):
        if not pw_known:
            break
        if r.has(key) and not is_pppac:
            r.error(key, "only for pseudowire pppac")
        elif is_pppac and not r.has(key):
            r.error(key, "missing (required for pseudowire pppac)")

    if dynamic and facts.version is Version.L2TPV3:
        # RFC 3931 5.4.4: the ICRQ names the pseudowire it wants at the far end;
        # by default, the name this session has in the file.
        remote_end_id = default_remote_end_id(r, name)
    else:
        remote_end_id = remote_end_id_key(r)
    if r.has("remote_end_id"):
        if v2:
            r.error("remote_end_id", "only for l2tpv3")
        elif not dynamic:
            r.error("remote_end_id", f"{_DYNAMIC_ONLY} (it is sent in the ICRQ)")
    reorder = r.duration("reorder_timeout", 0, 0.0)
    interface_name = r.interface_name("interface_name")
    if len(errors) > before:
        return None
    return SessionSection(
        name=name,
        sid=sid,
        psid=psid,
        reorder_timeout=reorder,
        cookie=cookie,
        peer_cookie=peer_cookie,
        interface_name=interface_name,
        pppoe_session_id=pppoe_id,
        pppoe_peer_mac=pppoe_mac,
        remote_end_id=remote_end_id,
        **pw,  # type: ignore[arg-type]
    )


def read_listener_session(
    name: str,
    path: str,
    table: dict[str, object],
    facts: TunnelFacts,
    inherited: Inherited,
    file: str,
    errors: list[ConfigError],
) -> SessionSection | None:
    """Read one ``[listener.L.session.S]`` table; None when it had errors.

    The table describes a pseudowire the listener offers: the peer's ICRQ
    selects it by Remote End ID (``remote_end_id``, by default the table
    name). Keys it leaves out come from the listener (``inherited``).
    """
    before = len(errors)
    r = TableReader(file, path, table, LISTENER_SESSION_KEYS, errors)
    for key, reason in LISTENER_SESSION_REJECTED.items():
        if r.has(key):
            r.error(key, reason)
    pw = read_pseudowire_keys(r, facts, inherited)
    remote_end_id = default_remote_end_id(r, name)
    interface_name = r.interface_name("interface_name")
    if len(errors) > before:
        return None
    return SessionSection(
        name=name,
        interface_name=interface_name,
        remote_end_id=remote_end_id,
        **pw,  # type: ignore[arg-type]
    )
