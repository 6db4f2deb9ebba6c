"""Async iterator over the kernel's ``l2tp`` multicast notifications.

The kernel announces every tunnel and session create, modify and delete *made
through netlink* (by anyone: us, iproute2, another daemon) on the ``l2tp``
multicast group. It does not announce a tunnel that disappears because its
managed socket was closed, nor sessions removed along with their tunnel.
Linux 6.1 sends these with ``genlmsg_multicast_allns()``, so a monitor sees
events from every network namespace, without a word on which (asserted in
``tests/kernel/test_async_dataplane.py``): the ``netns`` argument chooses where
the socket lives, not what it hears.

The subscription is made in the constructor, so no event that happens after
``L2tpMonitor()`` returns can be missed, even before the first ``await``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Self

from l2tp.kernel import codec
from l2tp.kernel.constants import GENL_MCGROUP, Command
from l2tp.kernel.errors import ModuleNotLoaded
from l2tp.kernel.model import Event, EventKind, SessionEvent, TunnelEvent
from l2tp.kernel.netlink import NETLINK_ADD_MEMBERSHIP, SOL_NETLINK, open_genl_socket

_KINDS = {
    Command.TUNNEL_CREATE: EventKind.CREATED,
    Command.TUNNEL_MODIFY: EventKind.MODIFIED,
    Command.TUNNEL_DELETE: EventKind.DELETED,
    Command.SESSION_CREATE: EventKind.CREATED,
    Command.SESSION_MODIFY: EventKind.MODIFIED,
    Command.SESSION_DELETE: EventKind.DELETED,
}
_TUNNEL_CMDS = {Command.TUNNEL_CREATE, Command.TUNNEL_MODIFY, Command.TUNNEL_DELETE}


def decode_event(message: bytes) -> Event | None:
    """The event carried by one multicast message, or None if it is not one."""
    cmd, attrs = codec.decode_l2tp(message)
    try:
        kind = _KINDS[Command(cmd)]
    except (ValueError, KeyError):
        return None
    if cmd in _TUNNEL_CMDS:
        return TunnelEvent(kind=kind, tunnel=codec.tunnel_info(attrs))
    return SessionEvent(kind=kind, session=codec.session_info(attrs))


class L2tpMonitor:
    """``async for event in L2tpMonitor()``: :class:`TunnelEvent` and :class:`SessionEvent`."""

    def __init__(self, *, netns: str | None = None) -> None:
        self._sock, self.family_id, groups = open_genl_socket(netns)
        try:
            if GENL_MCGROUP not in groups:
                raise ModuleNotLoaded(0, "l2tp_netlink", "no 'l2tp' multicast group")
            self._sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, groups[GENL_MCGROUP])
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise
        self._queue: deque[Event] = deque()

    def close(self) -> None:
        self._sock.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        loop = asyncio.get_running_loop()
        while not self._queue:
            try:
                data = await loop.sock_recv(self._sock, 1 << 16)
            except OSError:
                if self._sock.fileno() == -1:
                    raise StopAsyncIteration from None
                raise
            for mtype, _flags, _seq, message in codec.iter_messages(data):
                if mtype != self.family_id:
                    continue
                event = decode_event(message)
                if event is not None:
                    self._queue.append(event)
        return self._queue.popleft()
