"""The data plane as the control plane sees it: a small interface, two implementations.

This is the blocking interface (static daemons, scripts); the event-loop one,
with the same operations as coroutines, is :mod:`l2tp.kernel.async_dataplane`.

The control plane (tunnel/session state machines) only needs to create and
delete tunnels and sessions, change a session's sequencing settings, and for
PPP open the session socket pppd takes. :class:`LinuxDataPlane` does that with
netlink; :class:`NullDataPlane` records the calls and keeps the same ID rules
as the kernel (IDs unique, sessions need their tunnel, deleting a tunnel
deletes its sessions), for control-plane-only runs and tests.
"""

from __future__ import annotations

import errno
import socket
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Protocol, Unpack

from l2tp.kernel.errors import IdInUse, SessionNotFound, TunnelNotFound
from l2tp.kernel.model import KernelSessionSpec, KernelTunnelSpec, SessionChanges, given_changes
from l2tp.kernel.netlink import L2tpNetlink
from l2tp.kernel.sockets import pppol2tp_socket


class DataPlane(Protocol):
    """What the control plane asks of the kernel (or of a stand-in)."""

    def create_tunnel(self, config: KernelTunnelSpec) -> None: ...

    def delete_tunnel(self, tunnel_id: int) -> None: ...

    def create_session(self, config: KernelSessionSpec) -> None: ...

    def delete_session(self, tunnel_id: int, session_id: int) -> None: ...

    def modify_session(
        self, tunnel_id: int, session_id: int, **changes: Unpack[SessionChanges]
    ) -> None:
        """Change the given settings of a session (see :class:`SessionChanges`)."""
        ...

    def open_ppp_socket(
        self, tunnel: KernelTunnelSpec, session_id: int, peer_session_id: int
    ) -> socket.socket: ...

    def attach_to_bridge(self, tunnel_id: int, session_id: int, bridge: str) -> None:
        """Make an Ethernet session's interface a port of ``bridge``."""
        ...

    def set_session_up(self, tunnel_id: int, session_id: int, up: bool) -> None:
        """Bring an Ethernet session's interface up or down (e.g. follow the peer's
        Circuit Status, RFC 3931 5.4.5)."""
        ...

    def tunnel_exists(self, tunnel_id: int) -> bool:
        """Whether the kernel already has a tunnel with this ID (made by anyone: kernel
        tunnel IDs are per network namespace, shared by every process in it)."""
        ...

    def close(self) -> None: ...


def open_ppp_socket(
    tunnel: KernelTunnelSpec, session_id: int, peer_session_id: int, *, netns: str | None
) -> socket.socket:
    """A PPPoL2TP socket connected to a session of a managed tunnel (for pppd)."""
    if tunnel.fd is None:
        raise ValueError("PPP sessions need a managed tunnel (a KernelTunnelSpec with fd)")
    return pppol2tp_socket(
        tunnel_fd=tunnel.fd,
        version=tunnel.version,
        tunnel_id=tunnel.tunnel_id,
        session_id=session_id,
        peer_tunnel_id=tunnel.peer_tunnel_id,
        peer_session_id=peer_session_id,
        netns=netns,
    )


class LinuxDataPlane:
    """:class:`DataPlane` over the kernel's netlink API (in ``netns`` if given)."""

    def __init__(self, *, netns: str | None = None) -> None:
        self.netns = netns
        self.netlink = L2tpNetlink(netns=netns)

    def create_tunnel(self, config: KernelTunnelSpec) -> None:
        self.netlink.create_tunnel(config)

    def delete_tunnel(self, tunnel_id: int) -> None:
        self.netlink.delete_tunnel(tunnel_id)

    def create_session(self, config: KernelSessionSpec) -> None:
        self.netlink.create_session(config)

    def delete_session(self, tunnel_id: int, session_id: int) -> None:
        self.netlink.delete_session(tunnel_id, session_id)

    def modify_session(
        self, tunnel_id: int, session_id: int, **changes: Unpack[SessionChanges]
    ) -> None:
        given_changes(changes)  # the netlink client would also take ``debug``: not here
        self.netlink.modify_session(tunnel_id, session_id, **changes)

    def open_ppp_socket(
        self, tunnel: KernelTunnelSpec, session_id: int, peer_session_id: int
    ) -> socket.socket:
        """Connect a PPPoL2TP socket to the session (managed tunnels only)."""
        return open_ppp_socket(tunnel, session_id, peer_session_id, netns=self.netns)

    def _ifname(self, tunnel_id: int, session_id: int) -> str:
        """An Ethernet session's interface, asked of the kernel (ValueError: it has none)."""
        ifname = self.netlink.get_session(tunnel_id, session_id).ifname
        if not ifname:
            raise ValueError(f"session {tunnel_id}/{session_id} has no network interface")
        return ifname

    def attach_to_bridge(self, tunnel_id: int, session_id: int, bridge: str) -> None:
        self.netlink.rtnl.set_master(self._ifname(tunnel_id, session_id), bridge)

    def tunnel_exists(self, tunnel_id: int) -> bool:
        try:
            self.netlink.get_tunnel(tunnel_id)
        except TunnelNotFound:
            return False
        return True

    def set_session_up(self, tunnel_id: int, session_id: int, up: bool) -> None:
        self.netlink.rtnl.set_up(self._ifname(tunnel_id, session_id), up)

    def close(self) -> None:
        self.netlink.close()


CALLS_KEPT = 4096
"""How many of the latest calls :attr:`NullDataPlane.calls` keeps."""


@dataclass(slots=True)
class NullDataPlane:
    """Records calls as ``(method name, arguments)``; no kernel.

    A daemon run with ``--null-dataplane`` (benchmarks, floods) makes calls for
    as long as it runs, so the record is bounded: :attr:`calls` keeps the
    latest :data:`CALLS_KEPT` (a deque: ``in``, iteration and indexing work as
    on a list) and :attr:`counts` counts every call by method name. The other
    end of each PPP socketpair is closed with its session.
    """

    calls: deque[tuple[str, Any]] = field(default_factory=lambda: deque(maxlen=CALLS_KEPT))
    counts: Counter[str] = field(default_factory=Counter)
    tunnels: dict[int, KernelTunnelSpec] = field(default_factory=dict)
    sessions: dict[tuple[int, int], KernelSessionSpec] = field(default_factory=dict)
    _ppp_peers: dict[tuple[int, int], list[socket.socket]] = field(default_factory=dict)

    def _record(self, name: str, args: Any) -> None:
        self.calls.append((name, args))
        self.counts[name] += 1

    def _need_session(self, tunnel_id: int, session_id: int, message: str) -> None:
        """Raise what the kernel would for a session that does not exist (``ENODEV``)."""
        if (tunnel_id, session_id) not in self.sessions:
            raise SessionNotFound(errno.ENODEV, message)

    def _close_peers(self, tunnel_id: int, session_id: int | None = None) -> None:
        keys = [
            k
            for k in self._ppp_peers
            if k[0] == tunnel_id and (session_id is None or k[1] == session_id)
        ]
        for key in keys:
            for sock in self._ppp_peers.pop(key):
                sock.close()

    def create_tunnel(self, config: KernelTunnelSpec) -> None:
        self._record("create_tunnel", config)
        if config.tunnel_id in self.tunnels:
            raise IdInUse(errno.EEXIST, f"create tunnel {config.tunnel_id}: ID already in use")
        self.tunnels[config.tunnel_id] = config

    def delete_tunnel(self, tunnel_id: int) -> None:
        self._record("delete_tunnel", tunnel_id)
        if self.tunnels.pop(tunnel_id, None) is None:
            raise TunnelNotFound(errno.ENODEV, f"delete tunnel {tunnel_id}: tunnel not found")
        for key in [k for k in self.sessions if k[0] == tunnel_id]:
            del self.sessions[key]
        self._close_peers(tunnel_id)

    def create_session(self, config: KernelSessionSpec) -> None:
        self._record("create_session", config)
        key = (config.tunnel_id, config.session_id)
        if config.tunnel_id not in self.tunnels:
            raise TunnelNotFound(
                errno.ENODEV, f"create session: tunnel {config.tunnel_id} not found"
            )
        if key in self.sessions:
            raise IdInUse(errno.EEXIST, f"create session {config.session_id}: ID already in use")
        self.sessions[key] = config

    def delete_session(self, tunnel_id: int, session_id: int) -> None:
        self._record("delete_session", (tunnel_id, session_id))
        self._close_peers(tunnel_id, session_id)
        if self.sessions.pop((tunnel_id, session_id), None) is None:
            raise SessionNotFound(
                errno.ENODEV, f"delete session {session_id} in tunnel {tunnel_id}: not found"
            )

    def modify_session(
        self, tunnel_id: int, session_id: int, **changes: Unpack[SessionChanges]
    ) -> None:
        """Recorded with the settings given (not None) as a dict."""
        self._record("modify_session", (tunnel_id, session_id, given_changes(changes)))
        self._need_session(
            tunnel_id, session_id, f"modify session {session_id} in tunnel {tunnel_id}: not found"
        )

    def open_ppp_socket(
        self, tunnel: KernelTunnelSpec, session_id: int, peer_session_id: int
    ) -> socket.socket:
        """One end of a socketpair stands in for the PPPoL2TP socket."""
        self._record("open_ppp_socket", (tunnel.tunnel_id, session_id, peer_session_id))
        self._need_session(
            tunnel.tunnel_id, session_id, f"open PPP socket: session {session_id} not found"
        )
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._ppp_peers.setdefault((tunnel.tunnel_id, session_id), []).append(theirs)
        return ours

    def attach_to_bridge(self, tunnel_id: int, session_id: int, bridge: str) -> None:
        self._record("attach_to_bridge", (tunnel_id, session_id, bridge))
        self._need_session(
            tunnel_id, session_id, f"attach to bridge: session {session_id} not found"
        )

    def tunnel_exists(self, tunnel_id: int) -> bool:
        return tunnel_id in self.tunnels

    def set_session_up(self, tunnel_id: int, session_id: int, up: bool) -> None:
        self._record("set_session_up", (tunnel_id, session_id, up))
        self._need_session(tunnel_id, session_id, f"set session up: session {session_id} not found")

    def close(self) -> None:
        self._record("close", None)
        for socks in self._ppp_peers.values():
            for sock in socks:
                sock.close()
        self._ppp_peers.clear()
