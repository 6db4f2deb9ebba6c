"""The control socket's view of ql2tpd: static and quiescent tunnels from the file.

ql2tpd has no :class:`~l2tp.runtime.context.L2tpContext`: a static tunnel is kernel
objects only and a quiescent one adds a HELLO-only control channel. So ``tunnels``
lists the configured tunnels with their state (``up``, ``down``, ``probing``) and, for
quiescent ones, the channel's transport counters (HELLOs, retransmissions, RTT);
``events`` reports quiescent tunnels going up and down (peer lost / answered). There is
no StopCCN or CDN to send and no reload: ``close`` and ``reload`` answer
``unsupported``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import l2tp
from l2tp import config as cfg

from . import inventory
from .ctl_protocol import CtlError, ErrorCode
from .quiescent import QuiescentTunnel

if TYPE_CHECKING:
    from .ql2tpd import Ql2tpd

_PSEUDOWIRE = {
    cfg.Pseudowire.ETH: "eth",
    cfg.Pseudowire.PPP: "ppp",
    cfg.Pseudowire.PPPAC: "ppp-ac",
}


class Ql2tpdTarget:
    """``l2tp ctl`` for ql2tpd (see the module doc)."""

    def __init__(self, daemon: Ql2tpd, config_file: str) -> None:
        self.daemon = daemon
        self.config_file = config_file
        self.loop = asyncio.get_running_loop()
        self.started_at = self.loop.time()
        self._subscribers: list[asyncio.Queue[dict[str, Any] | None]] = []
        self.metrics_address: str | None = None
        """Where the metrics exporter listens, once it does (``status``)."""
        daemon.observers.append(self._changed)

    # ------------------------------------------------------------ views

    def _state(self, t: cfg.TunnelSection) -> tuple[str, float | None, QuiescentTunnel | None]:
        q = self.daemon.quiescent_tunnels.get(t.name)
        if q is not None:
            return q.state, q.up_at, q
        for static in self.daemon.tunnels:
            if static.config.name == t.name:
                return ("up" if static.tunnel_created else "down"), self.started_at, None
        return "down", None, None

    def status(self) -> dict[str, Any]:
        tunnels: Counter[str] = Counter()
        sessions: Counter[str] = Counter()
        for t in self.daemon.config.tunnels:
            state = self._state(t)[0]
            tunnels[state] += 1
            sessions[state] += len(t.sessions)
        n = len(self.daemon.config.tunnels)
        return {
            "daemon": "ql2tpd",
            "version": l2tp.__version__,
            "pid": os.getpid(),
            "uptime": round(self.loop.time() - self.started_at, 3),
            "config_file": self.config_file,
            "summary": f"{n} tunnel(s)",
            "tunnels": dict(sorted(tunnels.items())),
            "sessions": dict(sorted(sessions.items())),
            "listeners": [],
            "metrics": self.metrics_address,
        }

    def _record(self, t: cfg.TunnelSection) -> dict[str, Any]:
        state, since, q = self._state(t)
        now = self.loop.time()
        counters = None
        if q is not None and q.channel is not None:
            counters = inventory.transport_counters(q.channel.transport)
        return {
            "tunnel_id": t.tid,
            "peer_tunnel_id": t.ptid,
            "name": t.name,
            "peer": str(t.peer) if t.peer is not None else None,
            "local": str(t.local) if t.local is not None else None,
            "role": None,
            "side": "quiescent" if q is not None else "static",
            "version": 3 if t.version is cfg.Version.L2TPV3 else 2,
            "encap": "ip" if t.encap is cfg.Encap.IP else "udp",
            "state": state,
            "uptime": None if since is None or state != "up" else round(now - since, 3),
            "sessions": len(t.sessions),
            "counters": counters,
        }

    def peers(self) -> list[dict[str, Any]]:
        """Static tunnels have one fixed peer each: no LNS selection."""
        return []

    def tunnels(self) -> list[dict[str, Any]]:
        return [self._record(t) for t in self.daemon.config.tunnels]

    async def sessions(self, tunnel_id: int | None) -> list[dict[str, Any]]:
        tunnels = [t for t in self.daemon.config.tunnels if tunnel_id in (None, t.tid)]
        if tunnel_id is not None and not tunnels:
            raise CtlError(ErrorCode.NOT_FOUND, f"no tunnel {tunnel_id}")
        kernel = await _kernel_sessions(self.daemon.dataplane)
        now = self.loop.time()
        out = []
        for t in tunnels:
            state, since, _ = self._state(t)
            for s in t.sessions:
                k = kernel.get((t.tid, s.sid))
                record: dict[str, Any] = {
                    "tunnel_id": t.tid,
                    "session_id": s.sid,
                    "peer_tunnel_id": t.ptid,
                    "peer_session_id": s.psid,
                    "state": state,
                    "pseudowire": _PSEUDOWIRE.get(s.pseudowire, str(s.pseudowire)),
                    "circuit": None,
                    "interface": (k.ifname if k is not None else None) or s.interface_name,
                    "pppd_pid": None,
                    "uptime": None if since is None or state != "up" else round(now - since, 3),
                    "kernel": None,
                }
                if k is not None:
                    record["kernel"] = {
                        "tx_packets": k.stats.tx_packets,
                        "tx_bytes": k.stats.tx_bytes,
                        "tx_errors": k.stats.tx_errors,
                        "rx_packets": k.stats.rx_packets,
                        "rx_bytes": k.stats.rx_bytes,
                        "rx_errors": k.stats.rx_errors,
                        "rx_seq_discards": k.stats.rx_seq_discards,
                        "rx_oos_packets": k.stats.rx_oos_packets,
                    }
                out.append(record)
        return out

    async def close_tunnel(self, tunnel_id: int, result: int | None) -> dict[str, Any]:
        raise CtlError(
            ErrorCode.UNSUPPORTED, "ql2tpd tunnels are static: there is no StopCCN to send"
        )

    async def close_session(self, tunnel_id: int, session_id: int) -> dict[str, Any]:
        raise CtlError(ErrorCode.UNSUPPORTED, "ql2tpd sessions are static: there is no CDN")

    async def reload(self) -> dict[str, Any]:
        raise CtlError(ErrorCode.UNSUPPORTED, "ql2tpd does not reload: restart it")

    # ------------------------------------------------------------ events

    def _changed(self, q: QuiescentTunnel) -> None:
        if q.state not in ("up", "probing"):
            return
        t = q.config
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        record = {
            "type": "tunnel-up" if q.state == "up" else "tunnel-down",
            "time": f"{stamp}.{int(now * 1000) % 1000:03d}Z",
            "daemon": "ql2tpd",
            "tunnel_id": t.tid,
            "peer_tunnel_id": t.ptid,
            "peer": str(t.peer) if t.peer is not None else None,
            "name": t.name,
        }
        for queue in self._subscribers:
            queue.put_nowait(record)

    def close(self) -> None:
        """End every events stream (the daemon is stopping)."""
        for queue in self._subscribers:
            queue.put_nowait(None)

    def events(self) -> _Events:
        return _Events(self._subscribers)


class _Events:
    """One events subscriber (subscribed on creation; :meth:`aclose` unsubscribes)."""

    def __init__(self, owner: list[asyncio.Queue[dict[str, Any] | None]]) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._owner = owner
        owner.append(self.queue)

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> dict[str, Any]:
        record = await self.queue.get()
        if record is None:
            await self.aclose()
            raise StopAsyncIteration
        return record

    async def aclose(self) -> None:
        if self.queue in self._owner:
            self._owner.remove(self.queue)


async def _kernel_sessions(dataplane: object) -> dict[tuple[int | None, int | None], Any]:
    """The kernel's sessions with the Linux data plane; nothing otherwise or on failure."""
    try:
        netlink = getattr(dataplane, "netlink", None)
        if netlink is None:
            return {}
        found = await asyncio.wait_for(netlink.dump_sessions(), 5.0)
    except Exception:  # the kernel's view is optional here
        return {}
    return {(s.tunnel_id, s.session_id): s for s in found}
