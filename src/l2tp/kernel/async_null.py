"""The async data plane without a kernel, for loopback tests and benchmarks."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any, Unpack

from l2tp.kernel.constants import PseudowireType
from l2tp.kernel.dataplane import CALLS_KEPT, NullDataPlane
from l2tp.kernel.errors import IdInUse, KernelError, SessionNotFound, data_plane_closed
from l2tp.kernel.model import KernelSessionSpec, KernelTunnelSpec, SessionChanges


class AsyncNullDataPlane:
    """``AsyncDataPlane`` without a kernel: a :class:`NullDataPlane` behind coroutines.

    Records every call, bounded (:attr:`calls` keeps the latest ``calls_kept``,
    :attr:`counts` counts all), and keeps the kernel's ID rules, raising the
    same exceptions. :attr:`foreign_tunnel_ids` stands for tunnels another
    process holds: :meth:`tunnel_id_in_use` reports them and creating one raises
    :class:`IdInUse`. With ``latency`` > 0 each call first sleeps that long, so
    tests can cancel a call "in flight"; cancelled there, it has no effect.
    """

    def __init__(self, *, latency: float = 0.0, calls_kept: int = CALLS_KEPT) -> None:
        self.null = NullDataPlane()
        if calls_kept != CALLS_KEPT:
            self.null.calls = deque(maxlen=calls_kept)
        self.latency = latency
        self.foreign_tunnel_ids: set[int] = set()
        self.started = False
        self.closed = False
        self._ifnames: dict[tuple[int, int], str] = {}
        self._next_ifindex = 0

    @property
    def calls(self) -> deque[tuple[str, Any]]:
        """The latest calls as ``(method name, arguments)`` (a bounded deque)."""
        return self.null.calls

    @property
    def counts(self) -> Counter[str]:
        """Every call so far, by method name."""
        return self.null.counts

    @property
    def tunnels(self) -> dict[int, KernelTunnelSpec]:
        return self.null.tunnels

    @property
    def sessions(self) -> dict[tuple[int, int], KernelSessionSpec]:
        return self.null.sessions

    async def start(self) -> None:
        if self.closed:
            raise data_plane_closed("start")
        self.started = True

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.null.close()

    async def _enter(self, what: str) -> None:
        if self.closed:
            raise data_plane_closed(what)
        if not self.started:
            raise RuntimeError("AsyncNullDataPlane: await start() first")
        if self.latency > 0:
            await asyncio.sleep(self.latency)
            if self.closed:
                raise data_plane_closed(what)

    async def create_tunnel(self, spec: KernelTunnelSpec) -> None:
        await self._enter(f"create tunnel {spec.tunnel_id}")
        if spec.tunnel_id in self.foreign_tunnel_ids:
            self.null._record("create_tunnel", spec)
            raise IdInUse(errno.EEXIST, f"create tunnel {spec.tunnel_id}: ID already in use")
        self.null.create_tunnel(spec)

    async def delete_tunnel(self, tunnel_id: int) -> None:
        await self._enter(f"delete tunnel {tunnel_id}")
        self.null.delete_tunnel(tunnel_id)
        for key in [k for k in self._ifnames if k[0] == tunnel_id]:
            del self._ifnames[key]

    async def create_session(self, spec: KernelSessionSpec) -> None:
        await self._enter(f"create session {spec.session_id} in tunnel {spec.tunnel_id}")
        self.null.create_session(spec)

    async def create_sessions(
        self, specs: Sequence[KernelSessionSpec]
    ) -> list[BaseException | None]:
        await self._enter(f"create {len(specs)} sessions")
        outcomes: list[BaseException | None] = []
        for spec in specs:
            try:
                self.null.create_session(spec)
            except KernelError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    async def delete_session(self, tunnel_id: int, session_id: int) -> None:
        await self._enter(f"delete session {session_id} in tunnel {tunnel_id}")
        self.null.delete_session(tunnel_id, session_id)
        self._ifnames.pop((tunnel_id, session_id), None)

    async def modify_session(
        self, tunnel_id: int, session_id: int, **changes: Unpack[SessionChanges]
    ) -> None:
        await self._enter(f"modify session {session_id} in tunnel {tunnel_id}")
        self.null.modify_session(tunnel_id, session_id, **changes)

    async def attach_to_bridge(self, tunnel_id: int, session_id: int, bridge: str) -> None:
        await self._enter(f"attach session {session_id} to {bridge}")
        self.null.attach_to_bridge(tunnel_id, session_id, bridge)

    async def set_session_up(self, tunnel_id: int, session_id: int, up: bool) -> None:
        await self._enter(f"set session {session_id} up")
        self.null.set_session_up(tunnel_id, session_id, up)

    async def session_interface(self, tunnel_id: int, session_id: int) -> str | None:
        """An Ethernet session's configured ``ifname``, else a name in the kernel's
        ``l2tpethN`` pattern, given on the first lookup and kept while the session is."""
        await self._enter(f"interface of session {session_id} in tunnel {tunnel_id}")
        spec = self.null.sessions.get((tunnel_id, session_id))
        if spec is None:
            raise SessionNotFound(errno.ENOENT, f"session {session_id} not found")
        if spec.pw_type != PseudowireType.ETH:
            return None
        if spec.ifname:
            return spec.ifname
        key = (tunnel_id, session_id)
        name = self._ifnames.get(key)
        if name is None:
            name = self._ifnames[key] = f"l2tpeth{self._next_ifindex}"
            self._next_ifindex += 1
        return name

    def tunnel_id_in_use(self, tunnel_id: int) -> bool:
        if not self.started:
            raise RuntimeError("AsyncNullDataPlane: await start() first")
        return tunnel_id in self.null.tunnels or tunnel_id in self.foreign_tunnel_ids

    def open_ppp_socket(
        self, tunnel: KernelTunnelSpec, session_id: int, peer_session_id: int
    ) -> socket.socket:
        if self.closed:
            raise data_plane_closed("open PPP socket")
        return self.null.open_ppp_socket(tunnel, session_id, peer_session_id)
