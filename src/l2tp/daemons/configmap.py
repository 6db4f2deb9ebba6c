"""From the TOML model (:mod:`l2tp.config`) to the control plane's policy objects.

Durations in the model are seconds already. ``hello_timeout = 0`` means no
HELLO (the loader's default for dynamic tunnels and listeners is 60 s);
go-l2tp's ``retry_timeout`` is the first retransmission timeout, which then
doubles up to 8 s (RFC 2661 5.8) or ``retry_timeout`` if that is longer.

Listener limits: ``max_tunnels = 0`` ("no limit") becomes the tunnel ID space
(65535 for L2TPv2); ``max_pending_tunnels`` and ``max_pending_per_peer`` are
passed as they are (the loader gives their defaults).

L2TPv3 (RFC 3931): ``digest`` turns the secret into Control Message
Authentication (5.4.1); the Router ID is the configured one, else the local
IPv4 address, else a stable number derived from the host name (5.4.3); the
Pseudowire Capabilities List names the pseudowire types of the tunnel's (or
listener's) sessions; ``seqnum`` asks the peer to sequence every packet (Data
Sequencing 2) and ``l2spec_type = "default"`` asks for the Default L2-Specific
Sublayer (4.6), which Linux needs to carry sequence numbers.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from dataclasses import replace
from typing import Any

from l2tp import config as cfg
from l2tp.kernel.constants import EncapType
from l2tp.ppp import AuthMethod, RestartConfig
from l2tp.protocol.constants import DigestType, FramingBits
from l2tp.protocol.events import CallParams, Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.backend import SessionOptions
from l2tp.runtime.control import ListenOptions, PseudowireOffer
from l2tp.runtime.lns_failover import RetryPolicy
from l2tp.runtime.lns_selection import LnsEndpoint, SelectionPolicy
from l2tp.runtime.ppp_hooks import BuiltinPppOptions

_FRAMING = {cfg.FramingCap.SYNC: FramingBits.SYNC, cfg.FramingCap.ASYNC: FramingBits.ASYNC}
_DIGEST = {cfg.Digest.MD5: DigestType.HMAC_MD5, cfg.Digest.SHA1: DigestType.HMAC_SHA1}
PW_TYPES = {cfg.Pseudowire.ETH: 0x0005, cfg.Pseudowire.PPP: 0x0007}
"""IANA L2TPv3 Pseudowire Types (RFC 3931 10.6; Ethernet RFC 4719, PPP RFC 4591)."""
U32 = 0xFFFFFFFF
"""``max_tunnels = 0`` ("no limit") of an L2TPv3 listener: the whole 32-bit ID space."""
DATA_SEQUENCING_ALL = 2
"""Data Sequencing AVP: "all incoming data packets require sequencing" (RFC 3931 5.4.4)."""


def _framing(caps: tuple[cfg.FramingCap, ...]) -> FramingBits:
    bits = FramingBits(0)
    for cap in caps:
        bits |= _FRAMING[cap]
    return bits


def _transport(
    retry_timeout: float, max_retries: int, window_size: int, hello: float
) -> TransportConfig:
    return TransportConfig(
        initial_timeout=retry_timeout,
        max_timeout=max(8.0, retry_timeout),
        max_retries=max_retries,
        receive_window=min(window_size, 0x7FFF),
        hello_interval=hello or None,
    )


def encap(value: cfg.Encap) -> EncapType:
    return EncapType.IP if value is cfg.Encap.IP else EncapType.UDP


def router_id(
    configured: int | None, local: ipaddress.IPv4Address | ipaddress.IPv6Address | None
) -> int:
    """The L2TPv3 Router ID (RFC 3931 5.4.3): configured, else our IPv4 address, else
    32 bits of a hash of the host name (stable across restarts, non-zero)."""
    if configured is not None:
        return configured
    if isinstance(local, ipaddress.IPv4Address) and not local.is_unspecified:
        return int(local)
    digest = hashlib.sha256(socket.gethostname().encode()).digest()
    return int.from_bytes(digest[:4], "big") or 1


def _capabilities(pseudowires: list[cfg.Pseudowire]) -> tuple[int, ...]:
    found = tuple(dict.fromkeys(PW_TYPES[p] for p in pseudowires if p in PW_TYPES))
    return found or (PW_TYPES[cfg.Pseudowire.ETH],)


def _control_config(
    c: cfg.TunnelSection | cfg.ListenerSection,
    role: Role,
    local: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    pseudowires: list[cfg.Pseudowire],
    **extra: Any,
) -> TunnelConfig:
    """The control-connection policy shared by ``[tunnel.T]`` and ``[listener.L]`` tables."""
    secret = c.secret.encode() if c.secret else None
    hide = bool(c.hide_avps and secret)
    transport = _transport(c.retry_timeout, c.max_retries, c.window_size, c.hello_timeout)
    if c.version is cfg.Version.L2TPV3:
        return TunnelConfig(
            role=role,
            version=3,
            host_name=c.host_name or socket.gethostname() or "python-l2tp",
            secret=secret,
            challenge=False,
            hide_avps=hide,
            digest_type=_DIGEST.get(c.digest) if secret else None,
            router_id=router_id(c.router_id, local),
            pseudowire_capabilities=_capabilities(pseudowires),
            transport=transport,
            **extra,
        )
    return TunnelConfig(
        role=role,
        host_name=c.host_name or "python-l2tp",
        secret=secret,
        challenge=secret is not None,
        hide_avps=hide,
        framing_capabilities=_framing(c.framing_caps),
        transport=transport,
        **extra,
    )


def tunnel_config(t: cfg.TunnelSection, *, role: Role = Role.LAC) -> TunnelConfig:
    """A ``[tunnel.T]`` table as the initiator's :class:`TunnelConfig`."""
    v3 = t.version is cfg.Version.L2TPV3
    seq = any(s.seqnum for s in t.sessions)
    return _control_config(
        t,
        role,
        t.local.address if t.local is not None else None,
        [s.pseudowire for s in t.sessions],
        call_params=CallParams() if v3 else CallParams(sequencing_required=seq),
    )


def lns_endpoints(t: cfg.TunnelSection) -> tuple[LnsEndpoint, ...]:
    """A ``peer`` list as the runtime's endpoints (RFC 2868's attributes, one to one)."""
    return tuple(
        LnsEndpoint(
            address=str(p.endpoint.address),
            port=p.endpoint.port,
            preference=p.preference,
            weight=p.weight,
            secret=p.secret,
            max_sessions=p.max_sessions,
            assignment_id=p.assignment_id,
        )
        for p in t.peers
    )


def selection_policy(t: cfg.TunnelSection) -> SelectionPolicy:
    return SelectionPolicy(
        denylist_time=t.denylist_time,
        denylist_stopccn=frozenset(t.denylist_stopccn),
        denylist_cdn=frozenset(t.denylist_cdn),
        revert=t.revert,
    )


def retry_policy(t: cfg.TunnelSection) -> RetryPolicy:
    """A peer list's sessions are placed again with back-off from ``redial_timeout``
    up to ``max_redial_timeout``; without ``redial`` only on another LNS."""
    return RetryPolicy(
        redial=t.redial,
        first=t.redial_timeout,
        cap=t.max_redial_timeout,
        max_attempts=t.max_redials,
    )


def session_call(s: cfg.SessionSection) -> CallParams:
    """The call parameters of a session we place; L2TPv2 sessions ignore the v3 fields."""
    return _v3_params(s)


def _v3_params(s: cfg.SessionSection) -> CallParams:
    return CallParams(
        sequencing_required=s.seqnum,
        pseudowire_type=PW_TYPES.get(s.pseudowire, PW_TYPES[cfg.Pseudowire.ETH]),
        cookie_length=s.cookie_len,
        l2_specific_sublayer=1 if s.l2spec_type is cfg.L2SpecType.DEFAULT else None,
        data_sequencing=DATA_SEQUENCING_ALL if s.seqnum else None,
        remote_end_id=s.remote_end_id or s.name,
    )


def builtin_ppp_options(
    section: cfg.BuiltinPppSection,
    *,
    mtu: int | None = None,
    interface_name: str | None = None,
) -> BuiltinPppOptions:
    """A ``builtin_ppp`` table as the runtime's options (``ppp = "builtin"``).

    The session's own ``mtu`` and ``interface_name`` (the keys pppd gets as ``mtu``/``mru``
    and ``ifname``) apply where the table gives none, so switching a session from pppd to
    the built-in PPP keeps its interface's name and size.
    """
    return BuiltinPppOptions(
        auth=tuple(AuthMethod(m.value) for m in section.auth),
        secrets=section.secrets,
        name=section.name,
        local_address=section.local_address,
        address_pool=section.address_pool,
        dns=section.dns,
        mtu=section.mtu if section.mtu is not None else mtu,
        mru=section.mru if section.mru is not None else mtu,
        lcp_echo_interval=section.lcp_echo_interval or None,
        lcp_echo_failure=section.lcp_echo_failure,
        ipv6=section.ipv6,
        interface_name=section.interface_name or interface_name,
        user=section.user,
        password=section.password,
        remote_name=section.remote_name,
        connect_delay=section.connect_delay,
        passive=section.passive,
        auth_timeout=section.auth_timeout or None,
        resolv_file=section.resolv_file,
        restart=RestartConfig(
            restart_interval=section.restart_interval,
            max_configure=section.max_configure,
            max_terminate=section.max_terminate,
            max_failure=section.max_failure,
        ),
    )


def _builtin(
    ppp: cfg.PppImplementation,
    section: cfg.BuiltinPppSection | None,
    mtu: int | None,
    interface_name: str | None,
) -> BuiltinPppOptions | None:
    if ppp is not cfg.PppImplementation.BUILTIN:
        return None
    return builtin_ppp_options(
        section or cfg.BuiltinPppSection(), mtu=mtu, interface_name=interface_name
    )


def session_options(s: cfg.SessionSection) -> SessionOptions:
    return SessionOptions(
        name=s.name,
        pppd_args=s.pppd_args,
        pppd_options=s.pppd_options,
        mtu=s.mtu,
        interface_name=s.interface_name,
        bridge=s.bridge,
        reorder_timeout=s.reorder_timeout,
        builtin_ppp=_builtin(s.ppp, s.builtin_ppp, s.mtu, s.interface_name),
    )


session_ppp = session_options
"""The earlier name of :func:`session_options`."""


def _listener_session(lc: cfg.ListenerSection) -> cfg.SessionSection:
    """The listener's own session keys as a session table (its defaults for every call)."""
    return cfg.SessionSection(
        name=lc.name,
        pseudowire=lc.pseudowire,
        seqnum=lc.seqnum,
        cookie_len=lc.cookie_len,
        l2spec_type=lc.l2spec_type,
        pppd_args=lc.pppd_args,
        pppd_options=lc.pppd_options,
        mtu=lc.mtu,
        bridge=lc.bridge,
        remote_end_id=lc.name,
        ppp=lc.ppp,
        builtin_ppp=lc.builtin_ppp,
    )


def listener_config(lc: cfg.ListenerSection) -> ListenerConfig:
    """A ``[listener.L]`` table as the sans-IO :class:`ListenerConfig`."""
    v3 = lc.version is cfg.Version.L2TPV3
    tunnel = _control_config(
        lc,
        Role.LNS,
        lc.listen.address,
        [lc.pseudowire, *(s.pseudowire for s in lc.sessions)],
        # Session limits are the runtime's admission check (ListenOptions), so a
        # reload changes them for existing tunnels too; the ID pool is not capped.
        max_sessions=0xFFFF,
        auto_accept=False,
        call_params=(
            _v3_params(_listener_session(lc)) if v3 else CallParams(sequencing_required=lc.seqnum)
        ),
    )
    return ListenerConfig(
        tunnel=tunnel,
        max_tunnels=lc.max_tunnels or (0xFFFF if lc.version is cfg.Version.L2TPV2 else U32),
        max_pending_tunnels=lc.max_pending_tunnels,
        max_pending_per_peer=lc.max_pending_per_peer,
    )


def _of_listener(options: SessionOptions, listener: str) -> SessionOptions:
    """``options`` with the built-in PPP told its listener (which picks that listener's
    RADIUS, ``[listener.L.radius]``, in :class:`~l2tp.runtime.builtin_ppp.BuiltinPppBackend`)."""
    if options.builtin_ppp is None:
        return options
    return replace(options, builtin_ppp=replace(options.builtin_ppp, listener=listener))


def listen_options(lc: cfg.ListenerSection) -> ListenOptions:
    offers = tuple(
        PseudowireOffer(
            remote_end_id=s.remote_end_id or s.name,
            params=_v3_params(s),
            options=_of_listener(session_options(s), lc.name),
        )
        for s in lc.sessions
    )
    return ListenOptions(
        name=lc.name,
        max_sessions=lc.max_sessions,
        max_sessions_per_tunnel=lc.max_sessions_per_tunnel,
        allowed_peers=lc.allowed_peers,
        seqnum=lc.seqnum,
        ppp=_of_listener(
            SessionOptions(
                name=lc.name,
                pppd_args=lc.pppd_args,
                pppd_options=lc.pppd_options,
                mtu=lc.mtu,
                bridge=lc.bridge,
                builtin_ppp=_builtin(lc.ppp, lc.builtin_ppp, lc.mtu, None),
            ),
            lc.name,
        ),
        pseudowires=offers,
    )
