"""The Linux data plane: generic netlink ``l2tp`` family, L2TPIP and PPPoL2TP sockets."""

from l2tp.kernel.constants import (
    Attr,
    Command,
    EncapType,
    L2SpecType,
    PseudowireType,
    StatsAttr,
)
from l2tp.kernel.dataplane import DataPlane, LinuxDataPlane, NullDataPlane
from l2tp.kernel.errors import (
    AddressFamilyMismatch,
    IdInUse,
    InvalidSocket,
    KernelError,
    ModuleNotLoaded,
    NotPermitted,
    SessionNotFound,
    TunnelNotFound,
)
from l2tp.kernel.model import (
    Event,
    EventKind,
    SessionConfig,
    SessionEvent,
    SessionInfo,
    Stats,
    TunnelConfig,
    TunnelEvent,
    TunnelInfo,
)
from l2tp.kernel.monitor import L2tpMonitor
from l2tp.kernel.netlink import AsyncL2tpNetlink, L2tpNetlink
from l2tp.kernel.sockets import (
    connect_l2tpip,
    l2tpip_listen_socket,
    l2tpip_socket,
    pppol2tp_socket,
    tunnel_udp_socket,
)

__all__ = [
    "AddressFamilyMismatch",
    "AsyncL2tpNetlink",
    "Attr",
    "Command",
    "DataPlane",
    "EncapType",
    "Event",
    "EventKind",
    "IdInUse",
    "InvalidSocket",
    "KernelError",
    "L2SpecType",
    "L2tpMonitor",
    "L2tpNetlink",
    "LinuxDataPlane",
    "ModuleNotLoaded",
    "NotPermitted",
    "NullDataPlane",
    "PseudowireType",
    "SessionConfig",
    "SessionEvent",
    "SessionInfo",
    "SessionNotFound",
    "Stats",
    "StatsAttr",
    "TunnelConfig",
    "TunnelEvent",
    "TunnelInfo",
    "TunnelNotFound",
    "connect_l2tpip",
    "l2tpip_listen_socket",
    "l2tpip_socket",
    "pppol2tp_socket",
    "tunnel_udp_socket",
]
