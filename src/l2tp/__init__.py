"""python-l2tp: Linux L2TP control plane, kernel data-plane API and daemons.

The names most programs need are available from here::

    from l2tp import L2tpContext, TunnelConfig, ListenerConfig, Role, CallParams
    from l2tp import AsyncLinuxDataPlane, L2tpNetlink, EncapType

Each is imported on first use, so ``import l2tp`` stays cheap: the kernel layer
pulls in pyroute2, which a program using only the codec does not need. The
subpackages (:mod:`l2tp.protocol`, :mod:`l2tp.kernel`, :mod:`l2tp.runtime`,
:mod:`l2tp.config`) hold the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # sans-IO protocol core
    "ControlMessage": "l2tp.protocol.message",
    "Avp": "l2tp.protocol.avp",
    "MessageType": "l2tp.protocol.constants",
    "AvpType": "l2tp.protocol.constants",
    "DigestType": "l2tp.protocol.constants",
    "parse_message": "l2tp.protocol.message",
    "serialize_message": "l2tp.protocol.message",
    "CodecError": "l2tp.protocol.errors",
    "Tunnel": "l2tp.protocol.tunnel",
    "TunnelConfig": "l2tp.protocol.tunnel",
    "TunnelListener": "l2tp.protocol.listener",
    "ListenerConfig": "l2tp.protocol.listener",
    "Transport": "l2tp.protocol.transport",
    "TransportConfig": "l2tp.protocol.transport",
    "CallParams": "l2tp.protocol.values",
    "Role": "l2tp.protocol.values",
    "Reason": "l2tp.protocol.values",
    "SessionInfo": "l2tp.protocol.values",
    # asyncio runtime
    "L2tpContext": "l2tp.runtime.control",
    "ListenOptions": "l2tp.runtime.control",
    "PseudowireOffer": "l2tp.runtime.control",
    "TunnelHandle": "l2tp.runtime.control",
    "SessionHandle": "l2tp.runtime.control",
    "TunnelFailed": "l2tp.runtime.control",
    "SessionFailed": "l2tp.runtime.control",
    "ListenError": "l2tp.runtime.control",
    "SessionOptions": "l2tp.runtime.backend",
    "SessionBackend": "l2tp.runtime.backend",
    # Linux data plane: asynchronous (what L2tpContext takes) and blocking (scripts)
    "AsyncDataPlane": "l2tp.kernel.async_dataplane",
    "AsyncLinuxDataPlane": "l2tp.kernel.async_dataplane",
    "AsyncNullDataPlane": "l2tp.kernel.async_null",
    "KernelTunnelSpec": "l2tp.kernel.model",
    "KernelSessionSpec": "l2tp.kernel.model",
    "DataPlane": "l2tp.kernel.dataplane",
    "LinuxDataPlane": "l2tp.kernel.dataplane",
    "NullDataPlane": "l2tp.kernel.dataplane",
    "L2tpNetlink": "l2tp.kernel.netlink",
    "AsyncL2tpNetlink": "l2tp.kernel.netlink",
    "EncapType": "l2tp.kernel.constants",
    "PseudowireType": "l2tp.kernel.constants",
    "KernelError": "l2tp.kernel.errors",
}

__all__ = [
    "AsyncDataPlane",
    "AsyncL2tpNetlink",
    "AsyncLinuxDataPlane",
    "AsyncNullDataPlane",
    "Avp",
    "AvpType",
    "CallParams",
    "CodecError",
    "ControlMessage",
    "DataPlane",
    "DigestType",
    "EncapType",
    "KernelError",
    "KernelSessionSpec",
    "KernelTunnelSpec",
    "L2tpContext",
    "L2tpNetlink",
    "LinuxDataPlane",
    "ListenError",
    "ListenOptions",
    "ListenerConfig",
    "MessageType",
    "NullDataPlane",
    "PseudowireOffer",
    "PseudowireType",
    "Reason",
    "Role",
    "SessionBackend",
    "SessionFailed",
    "SessionHandle",
    "SessionInfo",
    "SessionOptions",
    "Transport",
    "TransportConfig",
    "Tunnel",
    "TunnelConfig",
    "TunnelFailed",
    "TunnelHandle",
    "TunnelListener",
    "__version__",
    "parse_message",
    "serialize_message",
]

if TYPE_CHECKING:
    from l2tp.kernel.async_dataplane import AsyncDataPlane, AsyncLinuxDataPlane
    from l2tp.kernel.async_null import AsyncNullDataPlane
    from l2tp.kernel.constants import EncapType, PseudowireType
    from l2tp.kernel.dataplane import DataPlane, LinuxDataPlane, NullDataPlane
    from l2tp.kernel.errors import KernelError
    from l2tp.kernel.model import KernelSessionSpec, KernelTunnelSpec
    from l2tp.kernel.netlink import AsyncL2tpNetlink, L2tpNetlink
    from l2tp.protocol.avp import Avp
    from l2tp.protocol.constants import AvpType, DigestType, MessageType
    from l2tp.protocol.errors import CodecError
    from l2tp.protocol.listener import ListenerConfig, TunnelListener
    from l2tp.protocol.message import ControlMessage, parse_message, serialize_message
    from l2tp.protocol.transport import Transport, TransportConfig
    from l2tp.protocol.tunnel import Tunnel, TunnelConfig
    from l2tp.protocol.values import CallParams, Reason, Role, SessionInfo
    from l2tp.runtime.backend import SessionBackend, SessionOptions
    from l2tp.runtime.control import (
        L2tpContext,
        ListenError,
        ListenOptions,
        PseudowireOffer,
        SessionFailed,
        SessionHandle,
        TunnelFailed,
        TunnelHandle,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'l2tp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
