"""Typed configuration model: what every daemon receives after loading.

The dataclasses are frozen, slotted and keyword-only (as h11's events), so a
loaded configuration can be shared between tasks and compared in tests. Unlike
h11's events they do not re-validate on construction: every rule needs the
file and table path to produce a useful message, and only the loader
(:mod:`l2tp.config.loader`) has them. Code that builds these objects by hand
(the demo, tests) is trusted to pass sane values.

Units: every duration is a ``float`` number of **seconds** here (the protocol
core's clock is in seconds), while the TOML file keeps go-l2tp's integer
**milliseconds**. ``0.0`` means "disabled" where the file's ``0`` does.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORT = 1701
"""UDP port used when an address in the file omits one (RFC 2661 section 8.1)."""

if TYPE_CHECKING:
    from l2tp.config.errors import ConfigError


class Version(enum.StrEnum):
    L2TPV2 = "l2tpv2"  # RFC 2661
    L2TPV3 = "l2tpv3"  # RFC 3931


class Encap(enum.StrEnum):
    UDP = "udp"
    IP = "ip"  # L2TPv3 directly over IP protocol 115 (RFC 3931 section 4.1.1)


class Pseudowire(enum.StrEnum):
    PPP = "ppp"
    ETH = "eth"
    PPPAC = "pppac"  # PPPoE access concentrator (go-l2tp, out-of-tree kernel module)


class L2SpecType(enum.StrEnum):
    NONE = "none"
    DEFAULT = "default"  # RFC 3931 section 4.6


class Digest(enum.StrEnum):
    """L2TPv3 Message Digest AVP algorithm (RFC 3931 section 5.4.1)."""

    NONE = "none"
    MD5 = "md5"
    SHA1 = "sha1"


class TunnelMode(enum.StrEnum):
    """How a tunnel is brought up.

    ``static``: no control connection, both ends configured by hand (like
    ``ip l2tp``). ``quiescent``: static, plus HELLO keep-alives to detect a dead
    peer. ``dynamic``: the full control protocol (SCCRQ/ICRQ ...).
    """

    STATIC = "static"
    QUIESCENT = "quiescent"
    DYNAMIC = "dynamic"


class FramingCap(enum.StrEnum):
    SYNC = "sync"
    ASYNC = "async"


class PppImplementation(enum.StrEnum):
    """Who runs the PPP of a PPP session (``ppp = ...``)."""

    PPPD = "pppd"
    """One pppd process per session (go-l2tp's way, the default)."""
    BUILTIN = "builtin"
    """In the daemon, on the kernel's PPP channels (docs/builtin-ppp.md)."""


class PppAuth(enum.StrEnum):
    """PPP authentication methods (``builtin_ppp.auth``): PAP (RFC 1334), CHAP with MD5
    (RFC 1994), MS-CHAPv2 (RFC 2759)."""

    PAP = "pap"
    CHAP_MD5 = "chap-md5"
    MSCHAP_V2 = "mschap-v2"


@dataclass(frozen=True, slots=True, kw_only=True)
class BuiltinPppSection:
    """A ``[... .builtin_ppp]`` table: the built-in PPP of a session (``ppp = "builtin"``).

    A listener's sessions are the authenticator side (they check the peer with
    ``secrets``), a tunnel's sessions the peer side (they authenticate with ``user`` and
    ``password``). ``lcp_echo_interval`` is in seconds here (milliseconds in the file),
    0.0 meaning no LCP keepalive; so are ``connect_delay`` and ``auth_timeout``.
    """

    auth: tuple[PppAuth, ...] = (PppAuth.MSCHAP_V2, PppAuth.CHAP_MD5)
    secrets: str | None = None
    name: str | None = None
    local_address: ipaddress.IPv4Address | None = None
    address_pool: ipaddress.IPv4Network | None = None
    dns: tuple[ipaddress.IPv4Address, ...] = ()
    mtu: int | None = None
    mru: int | None = None
    lcp_echo_interval: float = 30.0
    lcp_echo_failure: int = 4
    ipv6: bool = False
    interface_name: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    remote_name: str | None = None
    connect_delay: float | None = None
    """Seconds; None: the side's default (1 s on the peer side, 0 on the authenticator)."""
    passive: bool = False
    auth_timeout: float = 30.0
    """Seconds; 0.0: no limit of our own."""
    resolv_file: str | None = None
    restart_interval: float = 3.0
    """Seconds (RFC 1661 4.6 Restart timer, LCP and the NCPs)."""
    max_configure: int = 10
    max_terminate: int = 2
    max_failure: int = 5


class Daemon(enum.StrEnum):
    """Validation profiles: each daemon accepts only what it can do."""

    QL2TPD = "ql2tpd"  # static / quiescent L2TPv3
    KL2TPD = "kl2tpd"  # L2TPv2 LAC handing sessions to pppd
    LNS = "lns"  # L2TPv2 LNS (listeners only)
    L2TPD = "l2tpd"  # L2TPv3 dynamic LCCE: initiator tunnels and listeners


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """An IP address and UDP port; the port is unused with ``encap = "ip"``."""

    address: IPAddress
    port: int = DEFAULT_PORT

    @property
    def family(self) -> int:
        """4 or 6, for the address-family checks and socket creation."""
        return self.address.version

    def __str__(self) -> str:
        if self.address.version == 6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerEntry:
    """One element of a tunnel's ``peer`` list: an LNS the LAC may use.

    The fields are RFC 2868's tunnel attributes (the runtime's
    :class:`~l2tp.runtime.lns_selection.LnsEndpoint`): ``endpoint`` is
    Tunnel-Server-Endpoint (3.4), ``preference`` Tunnel-Preference (3.8, lower is
    preferred), ``secret`` Tunnel-Password (3.5; None: the tunnel's ``secret``),
    ``assignment_id`` Tunnel-Assignment-ID (3.7). ``weight`` shares a preference
    level's sessions; ``max_sessions`` caps this LNS's (0: no limit).
    """

    endpoint: Endpoint
    preference: int = 0
    weight: int = 1
    secret: str | None = field(default=None, repr=False)
    max_sessions: int = 0
    assignment_id: str | None = None


DEFAULT_DENYLIST_TIME = 300.0
"""Seconds a failed LNS of a peer list is passed over (``denylist_time``)."""
DEFAULT_DENYLIST_STOPCCN = (2, 4, 5, 6, 7)
"""StopCCN Result Codes that denylist (RFC 2661 4.4.2): all but 1 (an orderly close)
and 3 (a tie-breaker outcome)."""
DEFAULT_DENYLIST_CDN = (2, 4, 5)
"""CDN Result Codes that denylist when they refuse a call: general error, no
facilities (temporary, permanent)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSection:
    """One ``[tunnel.T.session.S]`` table.

    ``sid``/``psid`` are ``None`` when the control protocol assigns them
    (dynamic tunnels); ``cookie``/``peer_cookie`` are ``None`` when unset.

    Also one ``[listener.L.session.S]`` table: a pseudowire a listener offers,
    matched against the Remote End ID of an incoming ICRQ (RFC 3931 5.4.4);
    its unset keys were filled in from the listener's own session keys.
    ``remote_end_id`` is always set for dynamic L2TPv3 sessions (tunnel and
    listener alike): the table name when the file does not give one.
    """

    name: str
    pseudowire: Pseudowire
    sid: int | None = None
    psid: int | None = None
    seqnum: bool = False
    reorder_timeout: float = 0.0
    cookie: bytes | None = None
    peer_cookie: bytes | None = None
    cookie_len: int = 0
    interface_name: str | None = None
    l2spec_type: L2SpecType = L2SpecType.NONE
    pppoe_session_id: int | None = None
    pppoe_peer_mac: bytes | None = None
    pppd_args: str | None = None
    pppd_options: tuple[str, ...] = ()
    mtu: int | None = None
    bridge: str | None = None
    remote_end_id: str | None = None
    ppp: PppImplementation = PppImplementation.PPPD
    builtin_ppp: BuiltinPppSection | None = None
    """Set (defaults filled in) exactly when ``ppp`` is ``"builtin"``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlSection:
    """The control-connection keys that ``[tunnel.T]`` and ``[listener.L]`` share, and
    their defaults (those of a dynamic tunnel: HELLO after 60 s idle, 10
    retransmissions). ``router_id`` (L2TPv3 Router ID AVP, RFC 3931 5.4.3) is ``None``
    when the daemon derives it."""

    window_size: int = 4
    hello_timeout: float = 60.0
    retry_timeout: float = 1.0
    max_retries: int = 10
    host_name: str = ""
    framing_caps: tuple[FramingCap, ...] = (FramingCap.SYNC, FramingCap.ASYNC)
    secret: str | None = None
    hide_avps: bool = False
    digest: Digest = Digest.NONE
    router_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TunnelSection(ControlSection):
    """One ``[tunnel.T]`` table: a static tunnel or one we initiate.

    A redialling tunnel waits ``redial_timeout`` after the first failure and
    doubles the wait per consecutive failure, up to ``max_redial_timeout``
    (L2TPv3; kl2tpd redials at a fixed interval).

    The timer defaults (:class:`ControlSection`) are those of a dynamic tunnel; a
    static tunnel built by hand must pass ``hello_timeout=0.0``, as the loader
    does, since a HELLO interval is what makes a tunnel quiescent.
    """

    name: str
    version: Version
    encap: Encap = Encap.UDP
    mode: TunnelMode = TunnelMode.DYNAMIC
    local: Endpoint | None = None
    peer: Endpoint
    tid: int | None = None
    ptid: int | None = None
    redial: bool = False
    redial_timeout: float = 5.0
    max_redial_timeout: float = 60.0
    max_redials: int = 0
    sessions: tuple[SessionSection, ...] = ()
    peers: tuple[PeerEntry, ...] = ()
    """The ``peer`` list (LNS selection and failover, docs/daemons.md); empty when
    ``peer`` is one address. With a list, ``peer`` is its first most preferred entry."""
    denylist_time: float = DEFAULT_DENYLIST_TIME
    denylist_stopccn: tuple[int, ...] = DEFAULT_DENYLIST_STOPCCN
    denylist_cdn: tuple[int, ...] = DEFAULT_DENYLIST_CDN
    revert: bool = False

    def session(self, name: str) -> SessionSection:
        """The session called ``name``; KeyError when there is none."""
        for session in self.sessions:
            if session.name == name:
                return session
        raise KeyError(name)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerSection(ControlSection):
    """One ``[listener.L]`` table: where we accept tunnels (LNS or v3 responder).

    ``max_tunnels`` and the session limits use ``0`` for "unlimited"; the
    pending limits (tunnels still being set up, in all and per peer address)
    are always in force. An empty ``allowed_peers`` accepts any peer. Without
    ``sessions``, the session keys (``pseudowire``, ``pppd_*``, ``mtu`` ...)
    apply to every session the peer opens. With
    ``sessions`` (L2TPv3 only), an incoming session is offered the one whose
    ``remote_end_id`` matches its Remote End ID AVP; the listener's session
    keys were already filled into each of them where the table left a key out.
    """

    name: str
    listen: Endpoint
    version: Version
    encap: Encap = Encap.UDP
    max_tunnels: int = 0
    max_pending_tunnels: int = 4096
    max_pending_per_peer: int = 64
    max_sessions: int = 0
    max_sessions_per_tunnel: int = 0
    allowed_peers: tuple[IPNetwork, ...] = ()
    pseudowire: Pseudowire = Pseudowire.PPP
    seqnum: bool = False
    cookie_len: int = 0
    l2spec_type: L2SpecType = L2SpecType.NONE
    pppd_args: str | None = None
    pppd_options: tuple[str, ...] = ()
    mtu: int | None = None
    bridge: str | None = None
    ppp: PppImplementation = PppImplementation.PPPD
    builtin_ppp: BuiltinPppSection | None = None
    sessions: tuple[SessionSection, ...] = ()
    radius: RadiusSection | None = None
    """``[listener.L.radius]`` laid over the daemon's ``[radius]`` (config/radius_listener.py):
    the RADIUS of this listener's built-in PPP sessions; None: the daemon's."""

    def session(self, name: str) -> SessionSection:
        """The session table called ``name``; KeyError when there is none."""
        for session in self.sessions:
            if session.name == name:
                return session
        raise KeyError(name)

    def session_for(self, remote_end_id: str) -> SessionSection | None:
        """The session table offered to an ICRQ carrying ``remote_end_id``, if any."""
        for session in self.sessions:
            if session.remote_end_id == remote_end_id:
                return session
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class HooksSection:
    """The ``[hooks]`` table: programs run when tunnels and sessions come and go.

    Each event's program is an argv tuple (empty: none), run without a shell by
    :mod:`l2tp.daemons.hooks`; ``timeout`` is in seconds here (milliseconds in the
    file). At most ``max_concurrent`` run at once and ``max_queued`` wait; more
    are dropped and counted.
    """

    tunnel_up: tuple[str, ...] = ()
    tunnel_down: tuple[str, ...] = ()
    session_up: tuple[str, ...] = ()
    session_down: tuple[str, ...] = ()
    timeout: float = 10.0
    max_concurrent: int = 4
    max_queued: int = 1024

    @property
    def configured(self) -> bool:
        """True when at least one event has a program."""
        return bool(self.tunnel_up or self.tunnel_down or self.session_up or self.session_down)


RADIUS_AUTH_PORT = 1812
"""RFC 2865 3: the authentication port, used when a server's address omits one."""
RADIUS_ACCT_PORT = 1813
"""RFC 2866 3: the accounting port, used when an ``acct_servers`` address omits one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RadiusServerEntry:
    """One element of a ``[radius]`` server list: where it is and how its shared secret
    is given (exactly one of ``secret`` and ``secret_file``; the file is read when the
    daemon starts, so it can be readable by root only)."""

    address: Endpoint
    secret: str | None = field(default=None, repr=False)
    secret_file: str | None = None


RADIUS_DAE_PORT = 3799
"""RFC 5176 3: the Dynamic Authorization port, used when ``listen`` omits one."""
DAE_WINDOW = 300.0
"""Seconds (``[radius.dae] window``): as :data:`l2tp.radius.dae.DEFAULT_WINDOW`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DaeClientEntry:
    """One element of ``[radius.dae] clients``: a Dynamic Authorization Client (a RADIUS
    server sending Disconnect and CoA requests), known by its source address and shared
    secret (exactly one of ``secret`` and ``secret_file``, as for the servers)."""

    address: IPAddress
    secret: str | None = field(default=None, repr=False)
    secret_file: str | None = None
    name: str | None = None
    """For logs; None: the address."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DaeSection:
    """The ``[radius.dae]`` table (docs/radius.md, Dynamic Authorization): where the
    RFC 5176 server listens and whom it answers."""

    listen: Endpoint
    clients: tuple[DaeClientEntry, ...]
    window: float = DAE_WINDOW
    """Seconds an Event-Timestamp may differ from our clock (RFC 5176 6.4), and how long
    a reply is kept for retransmissions."""
    require_event_timestamp: bool = False
    """Drop requests without Event-Timestamp (RFC 5176 6.4 "SHOULD be configurable")."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RadiusSection:
    """The ``[radius]`` table (docs/radius.md): the servers the built-in PPP's
    authenticator side asks instead of its secrets file, the client's policy, and the
    Dynamic Authorization server (``dae``).

    Accounting keys (``acct_servers`` ...) belong here too, next to ``auth_servers``.
    """

    auth_servers: tuple[RadiusServerEntry, ...] = ()
    timeout: float = 3.0
    """Seconds before a request is sent again (RFC 2865 2.4)."""
    retries: int = 3
    """Retransmissions to one server before the next is tried."""
    holddown: float = 60.0
    """Seconds after failing over before new requests try the first server again."""
    max_outstanding: int = 1024
    """Requests in flight at once; more are refused (the peer's authentication fails)."""
    nas_identifier: str | None = None
    """NAS-Identifier (RFC 2865 5.32); None: the session's PPP name (the host name)."""
    nas_ip_address: IPAddress | None = None
    """NAS-IP-Address (or NAS-IPv6-Address) sent in every request; None: not sent."""
    dae: DaeSection | None = None
    """The Dynamic Authorization server (``[radius.dae]``); None: none. Its NAS identity
    (Error-Cause 403) is ``nas_identifier`` and ``nas_ip_address`` above."""
    accounting: RadiusAccounting | None = None
    """Accounting (``acct_servers`` and its keys); None: no accounting."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RadiusAccounting:
    """The accounting keys of ``[radius]`` (docs/radius.md, "Accounting"): where the
    records go (RFC 2866, RFC 2867) and where they wait until acknowledged."""

    servers: tuple[RadiusServerEntry, ...]
    """``acct_servers``: tried in order, as ``auth_servers``."""
    spool: str
    """The spool file: records not yet acknowledged, kept across restarts."""
    interim_interval: int | None = None
    """``acct_interim_interval`` (seconds); None: Interim-Updates only when the
    Access-Accept asks (Acct-Interim-Interval, RFC 2869 5.16)."""
    tunnel_accounting: bool = False
    """Also send the RFC 2867 tunnel and tunnel-link records."""
    spool_max_records: int = 100_000
    spool_max_bytes: int = 64 * 1024 * 1024
    on_off: bool = False
    """``accounting_on_off``: Accounting-On at start, Accounting-Off at stop (RFC 2866 5.1)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """A whole loaded file. ``daemon`` is the profile it was validated for."""

    file: str
    daemon: Daemon | None = None
    tunnels: tuple[TunnelSection, ...] = ()
    listeners: tuple[ListenerSection, ...] = ()
    hooks: HooksSection = field(default_factory=HooksSection)
    metrics: Endpoint | None = None
    """Where the Prometheus exporter listens (top-level ``metrics``); None: no exporter."""
    metrics_per_tunnel: bool = False
    """Also export one series per tunnel (``l2tp_tunnel_rtt_seconds``, ...)."""
    radius: RadiusSection | None = None
    """The ``[radius]`` table; None: no RADIUS."""
    warnings: tuple[ConfigError, ...] = field(default=(), compare=False)
    """Keys accepted without effect (``sid``/``psid`` of a dynamic session, as go-l2tp
    allows): each daemon prints them at start, ``--check`` on standard error."""

    def tunnel(self, name: str) -> TunnelSection:
        """The tunnel called ``name``; KeyError when there is none."""
        for tunnel in self.tunnels:
            if tunnel.name == name:
                return tunnel
        raise KeyError(name)

    def listener(self, name: str) -> ListenerSection:
        """The listener called ``name``; KeyError when there is none."""
        for listener in self.listeners:
            if listener.name == name:
                return listener
        raise KeyError(name)


# The names these tables had before the protocol and kernel layers' TunnelConfig and
# SessionConfig made them ambiguous; kept so that existing code keeps importing.
TunnelConfig = TunnelSection
ListenerConfig = ListenerSection
SessionConfig = SessionSection
