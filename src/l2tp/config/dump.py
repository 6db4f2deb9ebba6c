"""Printing a loaded configuration back, with every default filled in.

Two renderings of one ordered list of ``(key, value)`` pairs per table, in the
file's own vocabulary (go-l2tp key names, durations in integer milliseconds):

* :func:`dump_toml` writes TOML that loads again to an equal
  :class:`~l2tp.config.model.Config` (the round trip is tested), so the output
  of ``--check`` can be saved as a fully explicit configuration. Keys that are
  unset, or that the loader would reject for the table's version or mode, are
  left out. The one exception: RADIUS shared secrets are never printed (``secret =
  "(hidden)"``), so a file with an inline ``[radius]`` secret does not round-trip;
  ``secret_file`` does.
* :func:`to_dict` gives the JSON view for ``--json``: every field, ``null``
  where unset, so scripts need not know the defaults.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from l2tp.config.errors import table_path, toml_string
from l2tp.config.model import (
    BuiltinPppSection,
    Config,
    Endpoint,
    HooksSection,
    ListenerSection,
    PeerEntry,
    PppImplementation,
    Pseudowire,
    SessionSection,
    TunnelMode,
    TunnelSection,
    Version,
)
from l2tp.config.radius import dae_items, radius_items
from l2tp.config.radius_listener import listener_radius_items

Items = list[tuple[str, object]]


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _opt(value: object) -> object:
    """File vocabulary of one value: enums as their names, endpoints as text ..."""
    if isinstance(value, Endpoint):
        return str(value)
    if isinstance(value, PeerEntry):
        return peer_entry_items(value)
    if isinstance(value, dict):
        return {k: _opt(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, tuple):
        return [_opt(v) for v in value]
    if isinstance(value, str):  # includes the StrEnums
        return str(value)
    return value


def tunnel_items(tunnel: TunnelSection, *, full: bool) -> Items:
    dynamic = tunnel.mode is TunnelMode.DYNAMIC
    v3 = tunnel.version is Version.L2TPV3
    items: Items = [
        ("version", tunnel.version),
        ("encap", tunnel.encap),
        ("mode", tunnel.mode),
        ("local", tunnel.local),
        ("peer", tunnel.peers or tunnel.peer),
        ("tid", tunnel.tid),
        ("ptid", tunnel.ptid),
        ("window_size", tunnel.window_size),
        ("hello_timeout", _ms(tunnel.hello_timeout)),
        ("retry_timeout", _ms(tunnel.retry_timeout)),
        ("max_retries", tunnel.max_retries),
        ("host_name", tunnel.host_name),
        ("framing_caps", tunnel.framing_caps),
    ]
    if full or dynamic:
        items += [
            ("secret", tunnel.secret),
            ("hide_avps", tunnel.hide_avps),
            ("digest", tunnel.digest),
            ("router_id", tunnel.router_id),
            ("redial", tunnel.redial),
        ]
    if full or (dynamic and tunnel.redial):
        items.append(("redial_timeout", _ms(tunnel.redial_timeout)))
        if full or v3 or tunnel.peers:
            items.append(("max_redial_timeout", _ms(tunnel.max_redial_timeout)))
        items.append(("max_redials", tunnel.max_redials))
    if full or tunnel.peers:
        items += [
            ("denylist_time", _ms(tunnel.denylist_time)),
            ("denylist_results", {"stopccn": tunnel.denylist_stopccn, "cdn": tunnel.denylist_cdn}),
            ("revert", tunnel.revert),
        ]
    return items


def peer_entry_items(entry: PeerEntry) -> dict[str, object]:
    """One element of a ``peer`` list, as the inline table that loads back to it."""
    items: dict[str, object] = {
        "address": str(entry.endpoint),
        "preference": entry.preference,
        "weight": entry.weight,
        "max_sessions": entry.max_sessions,
    }
    if entry.secret is not None:
        items["secret"] = entry.secret
    if entry.assignment_id is not None:
        items["assignment_id"] = entry.assignment_id
    return items


def session_items(session: SessionSection, *, full: bool) -> Items:
    items: Items = [
        ("pseudowire", session.pseudowire),
        ("sid", session.sid),
        ("psid", session.psid),
        ("seqnum", session.seqnum),
        ("reorder_timeout", _ms(session.reorder_timeout)),
        ("cookie", session.cookie),
        ("peer_cookie", session.peer_cookie),
        ("cookie_len", session.cookie_len if full or session.cookie_len else None),
        ("interface_name", session.interface_name),
        ("l2spec_type", session.l2spec_type),
        ("pppoe_session_id", session.pppoe_session_id),
        ("pppoe_peer_mac", session.pppoe_peer_mac),
        ("pppd_args", session.pppd_args),
        ("pppd_options", session.pppd_options if full or session.pppd_options else None),
        ("mtu", session.mtu),
        ("bridge", session.bridge),
        ("remote_end_id", session.remote_end_id),
        ("ppp", _ppp(session.pseudowire, session.ppp, full=full)),
    ]
    return items


def _ppp(pseudowire: Pseudowire, ppp: object, *, full: bool) -> object:
    """``ppp`` is only accepted with pseudowire ppp (a listener's sessions inherit it)."""
    return ppp if full or pseudowire is Pseudowire.PPP else None


def builtin_ppp_items(section: BuiltinPppSection, *, full: bool) -> Items:
    """A ``[... .builtin_ppp]`` table. Keys of the other side (``dns``, ``user`` ...) are
    written only when set, since the loader refuses them where they do not belong."""
    default_auth = BuiltinPppSection().auth
    peer_side = section.user is not None
    write_auth = full or section.auth != default_auth or peer_side
    return [
        ("auth", tuple(str(m) for m in section.auth) if write_auth else None),
        ("secrets", section.secrets),
        ("name", section.name),
        ("local_address", None if section.local_address is None else str(section.local_address)),
        ("address_pool", None if section.address_pool is None else str(section.address_pool)),
        ("dns", tuple(str(a) for a in section.dns) if full or section.dns else None),
        ("mtu", section.mtu),
        ("mru", section.mru),
        ("lcp_echo_interval", _ms(section.lcp_echo_interval)),
        ("lcp_echo_failure", section.lcp_echo_failure),
        ("ipv6", section.ipv6),
        ("interface_name", section.interface_name),
        ("user", section.user),
        ("password", section.password),
        ("remote_name", section.remote_name),
        ("connect_delay", None if section.connect_delay is None else _ms(section.connect_delay)),
        ("passive", section.passive),
        ("auth_timeout", _ms(section.auth_timeout)),
        ("resolv_file", section.resolv_file),
        ("restart_interval", _ms(section.restart_interval)),
        ("max_configure", section.max_configure),
        ("max_terminate", section.max_terminate),
        ("max_failure", section.max_failure),
    ]


def listener_session_items(session: SessionSection, *, full: bool) -> Items:
    """A ``[listener.L.session.S]`` table: every inheritable key written out.

    A key left out would be inherited from the listener on loading, so values
    equal to the plain defaults (``cookie_len = 0``, ``pppd_options = []``)
    are written too. ``pppd_*`` and ``bridge`` are only written where they fit
    the pseudowire; elsewhere they are unset and not inherited either.
    """
    ppp_like = session.pseudowire in (Pseudowire.PPP, Pseudowire.PPPAC)
    ppp_like = ppp_like and session.ppp is PppImplementation.PPPD  # builtin: pppd_* refused
    return [
        ("pseudowire", session.pseudowire),
        ("remote_end_id", session.remote_end_id),
        ("seqnum", session.seqnum),
        ("cookie_len", session.cookie_len),
        ("l2spec_type", session.l2spec_type),
        ("interface_name", session.interface_name),
        ("pppd_args", session.pppd_args),
        ("pppd_options", session.pppd_options if full or ppp_like else None),
        ("mtu", session.mtu),
        ("bridge", session.bridge),
        ("ppp", _ppp(session.pseudowire, session.ppp, full=full)),
    ]


def listener_items(listener: ListenerSection, *, full: bool) -> Items:
    return [
        ("listen", listener.listen),
        ("version", listener.version),
        ("encap", listener.encap),
        ("window_size", listener.window_size),
        ("hello_timeout", _ms(listener.hello_timeout)),
        ("retry_timeout", _ms(listener.retry_timeout)),
        ("max_retries", listener.max_retries),
        ("host_name", listener.host_name),
        ("framing_caps", listener.framing_caps),
        ("secret", listener.secret),
        ("hide_avps", listener.hide_avps),
        ("digest", listener.digest),
        ("router_id", listener.router_id),
        ("max_tunnels", listener.max_tunnels),
        ("max_pending_tunnels", listener.max_pending_tunnels),
        ("max_pending_per_peer", listener.max_pending_per_peer),
        ("max_sessions", listener.max_sessions),
        ("max_sessions_per_tunnel", listener.max_sessions_per_tunnel),
        ("allowed_peers", tuple(str(n) for n in listener.allowed_peers)),
        ("pseudowire", listener.pseudowire),
        ("seqnum", listener.seqnum),
        ("cookie_len", listener.cookie_len if full or listener.cookie_len else None),
        ("l2spec_type", listener.l2spec_type),
        ("pppd_args", listener.pppd_args),
        ("pppd_options", listener.pppd_options if full or listener.pppd_options else None),
        ("mtu", listener.mtu),
        ("bridge", listener.bridge),
        ("ppp", _ppp(listener.pseudowire, listener.ppp, full=full)),
    ]


def hooks_items(hooks: HooksSection, *, full: bool) -> Items:
    """The ``[hooks]`` table; programs not set are left out (``null`` in JSON)."""
    return [
        ("tunnel_up", hooks.tunnel_up or None),
        ("tunnel_down", hooks.tunnel_down or None),
        ("session_up", hooks.session_up or None),
        ("session_down", hooks.session_down or None),
        ("timeout", _ms(hooks.timeout)),
        ("max_concurrent", hooks.max_concurrent),
        ("max_queued", hooks.max_queued),
    ]


def _builtin_table(path: str, section: BuiltinPppSection | None) -> list[str]:
    if section is None:
        return []
    return ["", *_toml_table(f"{path}.builtin_ppp", builtin_ppp_items(section, full=False))]


def _builtin_json(section: BuiltinPppSection | None) -> object:
    return None if section is None else _json_items(builtin_ppp_items(section, full=True))


def _toml_value(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return "[" + ", ".join(f"0x{b:02x}" for b in value) + "]"
    value = _opt(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(key, v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table (a peer list's element)
        pairs = (f"{k} = {_toml_value(k, v)}" for k, v in value.items())
        return "{ " + ", ".join(pairs) + " }"
    return str(value)


def _toml_table(header: str, items: Iterable[tuple[str, object]]) -> list[str]:
    lines = [f"[{header}]"]
    lines += [f"{key} = {_toml_value(key, value)}" for key, value in items if value is not None]
    return lines


def dump_toml(config: Config) -> str:
    """The resolved configuration as TOML (loads back to an equal Config)."""
    daemon = config.daemon or "any"
    out = [f"# Resolved configuration of {config.file} (daemon: {daemon})."]
    out.append("# Every default is filled in; durations are in milliseconds.")
    if config.metrics is not None:  # top-level keys: before the first table
        out.append(f"metrics = {toml_string(str(config.metrics))}")
    if config.metrics_per_tunnel:
        out.append("metrics_per_tunnel = true")
    for tunnel in config.tunnels:
        path = table_path("tunnel", tunnel.name)
        out += ["", *_toml_table(path, tunnel_items(tunnel, full=False))]
        for session in tunnel.sessions:
            spath = f"{path}.{table_path('session', session.name)}"
            out += ["", *_toml_table(spath, session_items(session, full=False))]
            out += _builtin_table(spath, session.builtin_ppp)
    for listener in config.listeners:
        path = table_path("listener", listener.name)
        out += ["", *_toml_table(path, listener_items(listener, full=False))]
        out += _builtin_table(path, listener.builtin_ppp)
        if listener.radius is not None:  # the effective table: inherited keys written out
            out += ["", *_toml_table(f"{path}.radius", listener_radius_items(listener.radius))]
        for session in listener.sessions:
            spath = f"{path}.{table_path('session', session.name)}"
            out += ["", *_toml_table(spath, listener_session_items(session, full=False))]
            out += _builtin_table(spath, session.builtin_ppp)
    if config.hooks != HooksSection():
        out += ["", *_toml_table("hooks", hooks_items(config.hooks, full=False))]
    if config.radius is not None:
        out += ["", *_toml_table("radius", radius_items(config.radius, full=False))]
        if config.radius.dae is not None:
            out += ["", *_toml_table("radius.dae", dae_items(config.radius.dae))]
    return "\n".join(out) + "\n"


def _json_items(items: Items) -> dict[str, object]:
    return {key: _opt(value) for key, value in items}


def to_dict(config: Config) -> dict[str, object]:
    """A JSON-ready view of every field, in the file's vocabulary (ms, key names)."""
    tunnels = []
    for tunnel in config.tunnels:
        entry: dict[str, object] = {"name": tunnel.name}
        entry.update(_json_items(tunnel_items(tunnel, full=True)))
        entry["sessions"] = [
            {
                "name": s.name,
                **_json_items(session_items(s, full=True)),
                "builtin_ppp": _builtin_json(s.builtin_ppp),
            }
            for s in tunnel.sessions
        ]
        tunnels.append(entry)
    listeners = []
    for listener in config.listeners:
        entry = {"name": listener.name}
        entry.update(_json_items(listener_items(listener, full=True)))
        entry["builtin_ppp"] = _builtin_json(listener.builtin_ppp)
        entry["radius"] = (
            None if listener.radius is None else _json_items(listener_radius_items(listener.radius))
        )
        entry["sessions"] = [
            {
                "name": s.name,
                **_json_items(listener_session_items(s, full=True)),
                "builtin_ppp": _builtin_json(s.builtin_ppp),
            }
            for s in listener.sessions
        ]
        listeners.append(entry)
    return {
        "file": config.file,
        "daemon": None if config.daemon is None else str(config.daemon),
        "tunnels": tunnels,
        "listeners": listeners,
        "hooks": _json_items(hooks_items(config.hooks, full=True)),
        "metrics": None if config.metrics is None else str(config.metrics),
        "metrics_per_tunnel": config.metrics_per_tunnel,
        "radius": None
        if config.radius is None
        else _json_items(radius_items(config.radius, full=True)),
    }


def dump_json(config: Config) -> str:
    """:func:`to_dict` as indented JSON text."""
    return json.dumps(to_dict(config), indent=2, ensure_ascii=False) + "\n"
