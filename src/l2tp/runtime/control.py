"""The runtime's public names in one place: ``from l2tp.runtime.control import L2tpContext``.

The implementation is split by responsibility (see :mod:`l2tp.runtime.context` for the
design): :mod:`~l2tp.runtime.context` (the context and its registry),
:mod:`~l2tp.runtime.endpoints` (sockets, listeners, routing),
:mod:`~l2tp.runtime.handles` and :mod:`~l2tp.runtime.session_handle` (per tunnel and per
session), :mod:`~l2tp.runtime.kernel_side` with :mod:`~l2tp.runtime.call_setup` and
:mod:`~l2tp.runtime.teardown` (kernel objects and backends),
:mod:`~l2tp.runtime.sockets` (opening sockets). This module only re-exports.
"""

from __future__ import annotations

from .context import ContextCounters, L2tpContext
from .endpoints import Listener, ListenOptions, PseudowireOffer
from .errors import SessionFailed, TunnelFailed
from .handles import TunnelHandle
from .session_handle import Admission, SessionHandle
from .sockets import ListenError

__all__ = [
    "Admission",
    "ContextCounters",
    "L2tpContext",
    "ListenError",
    "ListenOptions",
    "Listener",
    "PseudowireOffer",
    "SessionFailed",
    "SessionHandle",
    "TunnelFailed",
    "TunnelHandle",
]
