"""Typed configuration and state of kernel tunnels and sessions.

Specs (what we ask the kernel for: :class:`KernelTunnelSpec`,
:class:`KernelSessionSpec`, named apart from the protocol's ``TunnelConfig``;
the old names ``TunnelConfig``/``SessionConfig`` stay as aliases) validate on
construction, so a bad ID or mixed IPv4/IPv6 addresses fail at the call site
with a clear exception rather than as an ``EINVAL`` from the kernel. Infos
(what the kernel reports) carry only what ``L2TP_CMD_*_GET`` returns on Linux
6.1: e.g. the kernel does not report a session's L2-specific sublayer or MTU,
so those are not in :class:`SessionInfo`.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Final, TypedDict

from l2tp.kernel.constants import EncapType, L2SpecType, PseudowireType
from l2tp.kernel.errors import AddressFamilyMismatch

IPAddress = IPv4Address | IPv6Address

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


def _check_id(name: str, value: int, version: int) -> None:
    limit = _U16 if version == 2 else _U32
    if not 1 <= value <= limit:
        raise ValueError(f"{name} must be 1..{limit} for L2TPv{version}, got {value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """Data-plane counters of a tunnel or session (``L2TP_ATTR_STATS``)."""

    tx_packets: int = 0
    tx_bytes: int = 0
    tx_errors: int = 0
    rx_packets: int = 0
    rx_bytes: int = 0
    rx_seq_discards: int = 0
    rx_oos_packets: int = 0
    rx_errors: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelTunnelSpec:
    """A tunnel to create: managed (``fd`` of our UDP/L2TPIP socket) or unmanaged.

    An unmanaged tunnel has no ``fd``; the kernel opens its own socket from
    ``local``/``peer`` (and the ports, for UDP). Only L2TPv3 may be unmanaged in
    practice, and L2TPv2 is UDP only. ``udp_csum`` turns on IPv4 UDP checksums;
    the two ``udp6_zero_csum_*`` flags *disable* IPv6 UDP checksums (RFC 6935)
    on transmit / accept zero checksums on receive. They apply to unmanaged
    tunnels only: a managed tunnel uses its socket's own settings.
    """

    tunnel_id: int
    peer_tunnel_id: int
    version: int = 3
    encap: EncapType = EncapType.UDP
    fd: int | None = None
    local: IPAddress | None = None
    peer: IPAddress | None = None
    local_port: int = 0
    peer_port: int = 0
    udp_csum: bool = False
    udp6_zero_csum_tx: bool = False
    udp6_zero_csum_rx: bool = False
    debug: int | None = None

    def __post_init__(self) -> None:
        if self.version not in (2, 3):
            raise ValueError(f"version must be 2 or 3, got {self.version}")
        _check_id("tunnel_id", self.tunnel_id, self.version)
        _check_id("peer_tunnel_id", self.peer_tunnel_id, self.version)
        if self.version == 2 and self.encap != EncapType.UDP:
            raise ValueError("L2TPv2 is carried over UDP only")
        for name in ("local_port", "peer_port"):
            if not 0 <= getattr(self, name) <= _U16:
                raise ValueError(f"{name} must be 0..65535")
        if self.fd is None:
            if self.local is None or self.peer is None:
                raise ValueError("an unmanaged tunnel (no fd) needs local and peer addresses")
            for name in ("local", "peer"):
                if not isinstance(getattr(self, name), IPv4Address | IPv6Address):
                    raise TypeError(f"{name} must be an ipaddress.IPv4Address or IPv6Address")
            if self.local.version != self.peer.version:
                raise AddressFamilyMismatch(
                    errno.EAFNOSUPPORT,
                    f"tunnel {self.tunnel_id}: local {self.local} and peer {self.peer} "
                    "are of different IP versions",
                )
        elif self.fd < 0:
            raise ValueError("fd must be a valid file descriptor")

    @property
    def managed(self) -> bool:
        """True when userspace owns the tunnel socket (and runs the control protocol)."""
        return self.fd is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class TunnelInfo:
    """A tunnel as the kernel reports it (``L2TP_CMD_TUNNEL_GET``)."""

    tunnel_id: int
    peer_tunnel_id: int
    version: int
    encap: EncapType
    local: IPAddress | None = None
    peer: IPAddress | None = None
    local_port: int | None = None
    peer_port: int | None = None
    udp_csum: bool | None = None  #: reported for IPv4 UDP tunnels only
    udp6_zero_csum_tx: bool = False
    udp6_zero_csum_rx: bool = False
    using_ipsec: bool = False
    stats: Stats = field(default_factory=Stats)


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelSessionSpec:
    """A session (pseudowire) to create in an existing tunnel.

    ``cookie`` is what we put in the packets we send and ``peer_cookie`` what
    we require in packets from the peer (as in the kernel and iproute2; the
    two ends swap them), each 0, 4 or 8 bytes
    (RFC 3931 section 5.4.4). ``l2spec_type`` None leaves the kernel default (the
    default 4-byte sublayer for L2TPv3); cookies, sublayer and ``ifname`` are
    L2TPv3 only. ``mtu`` is applied to an Ethernet session's interface through
    rtnetlink after creation, because Linux 6.1 ignores ``L2TP_ATTR_MTU``.
    """

    tunnel_id: int
    session_id: int
    peer_session_id: int
    pw_type: PseudowireType = PseudowireType.ETH
    cookie: bytes = b""
    peer_cookie: bytes = b""
    l2spec_type: L2SpecType | None = None
    send_seq: bool = False
    recv_seq: bool = False
    lns_mode: bool = False
    reorder_timeout_ms: int = 0
    ifname: str | None = None
    mtu: int | None = None
    debug: int | None = None

    def __post_init__(self) -> None:
        for name in ("tunnel_id", "session_id", "peer_session_id"):
            _check_id(name, getattr(self, name), 3)
        for name in ("cookie", "peer_cookie"):
            if len(getattr(self, name)) not in (0, 4, 8):
                raise ValueError(f"{name} must be 0, 4 or 8 bytes")
        if self.reorder_timeout_ms < 0:
            raise ValueError("reorder_timeout_ms must be >= 0")
        if self.ifname is not None and not 0 < len(self.ifname.encode()) < 16:
            raise ValueError("ifname must be 1..15 bytes (IFNAMSIZ)")
        if self.mtu is not None and not 68 <= self.mtu <= _U16:
            raise ValueError("mtu must be 68..65535")


class SessionChanges(TypedDict, total=False):
    """The keyword arguments of every data plane's ``modify_session``: what it changes.

    A setting left out, or None, is kept as it is. ``mtu`` is set on the session's
    interface through rtnetlink; the others are ``L2TP_CMD_SESSION_MODIFY``
    attributes. The two :class:`~l2tp.kernel.dataplane.DataPlane` protocols, their
    Linux and null implementations and the netlink clients all take these as
    ``**changes: Unpack[SessionChanges]``, so the list is written once, here.
    """

    send_seq: bool | None
    recv_seq: bool | None
    lns_mode: bool | None
    reorder_timeout_ms: int | None
    mtu: int | None


class NetlinkSessionChanges(SessionChanges, total=False):
    """:class:`SessionChanges` plus ``debug``, which only the netlink clients
    (:class:`~l2tp.kernel.netlink.L2tpNetlink`, ``AsyncL2tpNetlink``) offer: Linux
    >= 5.12 ignores it, so the data planes leave it out."""

    debug: int | None


SESSION_CHANGES: Final[tuple[str, ...]] = tuple(SessionChanges.__annotations__)
"""The keywords of :class:`SessionChanges`, in their order."""
NETLINK_SESSION_CHANGES: Final[tuple[str, ...]] = tuple(NetlinkSessionChanges.__annotations__)
"""The keywords of :class:`NetlinkSessionChanges`, in their order."""


def given_changes(
    changes: Mapping[str, object], keywords: Sequence[str] = SESSION_CHANGES
) -> dict[str, object]:
    """The settings of ``changes`` that are given (not None), in the order of ``keywords``.

    Raises the TypeError of a call with an unknown keyword argument: Python does not
    check ``**changes`` against its ``TypedDict`` at run time as it checks named
    parameters, and a misspelt setting must not be silently ignored.
    """
    for key in changes:
        if key not in keywords:
            raise TypeError(f"modify_session() got an unexpected keyword argument {key!r}")
    return {key: changes[key] for key in keywords if changes.get(key) is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionInfo:
    """A session as the kernel reports it (``L2TP_CMD_SESSION_GET``)."""

    tunnel_id: int
    session_id: int
    peer_tunnel_id: int
    peer_session_id: int
    pw_type: PseudowireType | int
    ifname: str | None = None
    cookie: bytes = b""
    peer_cookie: bytes = b""
    send_seq: bool = False
    recv_seq: bool = False
    lns_mode: bool = False
    reorder_timeout_ms: int = 0
    using_ipsec: bool = False
    stats: Stats = field(default_factory=Stats)


class EventKind(enum.Enum):
    """What happened to the object of a multicast notification."""

    CREATED = "created"
    MODIFIED = "modified"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True, kw_only=True)
class TunnelEvent:
    """The kernel announced a tunnel create/modify/delete made through netlink."""

    kind: EventKind
    tunnel: TunnelInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEvent:
    """The kernel announced a session create/modify/delete made through netlink."""

    kind: EventKind
    session: SessionInfo


Event = TunnelEvent | SessionEvent

# The names before issue 14 (three classes were called ``TunnelConfig``); kept as
# aliases while the rest of the code base moves to the ``Kernel*Spec`` names.
TunnelConfig = KernelTunnelSpec
SessionConfig = KernelSessionSpec
