"""The control socket's view of kl2tpd, l2tp-lns and l2tpd: one :class:`L2tpContext`.

:class:`ContextTarget` answers :class:`~.control_socket.ControlTarget` from the
snapshots of :mod:`.inventory` and acts through the runtime's public API only:
``TunnelHandle.begin_close`` (StopCCN), ``SessionHandle.close`` (CDN) and the
daemon's reload function (the same one SIGHUP runs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import l2tp
from l2tp.protocol.constants import CdnResult, StopCcnResult
from l2tp.runtime.context import L2tpContext, live
from l2tp.runtime.endpoints import Listener
from l2tp.runtime.handles import TunnelHandle
from l2tp.runtime.subscription import Subscription

from . import inventory
from .ctl_protocol import CtlError, ErrorCode

log = logging.getLogger("l2tp.control")

CLOSE_WAIT = 10.0
"""Longest a ``close`` request waits for the tunnel or session to be torn down."""
OPERATOR_MESSAGE = "closed by operator"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadResult:
    """What a reload did: ``applied`` (maybe with ``errors`` of parts that failed, e.g. a
    new listener that cannot bind), or not applied because the file has ``errors``."""

    applied: bool
    summary: str = ""
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonInfo:
    """Who the daemon is, for ``status``."""

    name: str
    config_file: str
    started_at: float
    """Loop time of start."""
    pid: int = field(default_factory=os.getpid)


class ContextTarget:
    """``l2tp ctl`` for a daemon built on one :class:`L2tpContext`.

    ``summary``: the daemon's one-line summary; ``names``: its name for a tunnel;
    ``reload``: the daemon's reload (as SIGHUP).
    """

    def __init__(
        self,
        ctx: L2tpContext,
        info: DaemonInfo,
        *,
        summary: Callable[[], str],
        reload: Callable[[], Awaitable[ReloadResult]],
        names: inventory.TunnelNames | None = None,
        peers: Callable[[], list[dict[str, Any]]] | None = None,
        radius: Callable[[], dict[str, Any] | None] | None = None,
        closing: Callable[[int, int | None], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self._peers = peers
        self._radius = radius
        self._closing = closing
        """Told ``(tunnel_id, session_id or None)`` before an operator's close (the
        accounting's Acct-Terminate-Cause Admin-Reset)."""
        self.info = info
        self._summary = summary
        self._reload = reload
        self._names = names
        self.metrics_address: str | None = None
        """Where the metrics exporter listens, once it does (``status``)."""

    def _name(self, th: TunnelHandle) -> str | None:
        """The daemon's name for the tunnel, else its listener's ``[listener.NAME]``."""
        name = self._names(th) if self._names is not None else None
        if name is None and isinstance(th.endpoint, Listener):
            name = th.endpoint.options.name
        return name

    def _now(self) -> float:
        return self.ctx.loop.time()

    def status(self) -> dict[str, Any]:
        now = self._now()
        counts = inventory.state_counts(self.ctx.tunnels.values())
        return {
            "daemon": self.info.name,
            "version": l2tp.__version__,
            "pid": self.info.pid,
            "uptime": round(now - self.info.started_at, 3),
            "config_file": self.info.config_file,
            "summary": self._summary(),
            "tunnels": counts["tunnels"],
            "sessions": counts["sessions"],
            "listeners": [
                {
                    "name": lst.options.name,
                    "address": inventory._address(lst.address),
                    "counters": listener_counters(lst),
                }
                for lst in self.ctx.listeners
            ],
            "counters": asdict(self.ctx.counters),
            "metrics": self.metrics_address,
            **self._radius_status(),
        }

    def _radius_status(self) -> dict[str, Any]:
        """``radius``: the RADIUS client's counters, only when the daemon uses RADIUS."""
        snapshot = self._radius() if self._radius is not None else None
        return {} if snapshot is None else {"radius": snapshot}

    def tunnels(self) -> list[dict[str, Any]]:
        now = self._now()
        return [
            inventory.tunnel_record(th, now, self._name(th))
            for _, th in sorted(self.ctx.tunnels.items())
        ]

    def _tunnel(self, tunnel_id: int) -> TunnelHandle:
        th = self.ctx.tunnel(tunnel_id)
        if th is None:
            raise CtlError(ErrorCode.NOT_FOUND, f"no tunnel {tunnel_id}")
        return th

    async def sessions(self, tunnel_id: int | None) -> list[dict[str, Any]]:
        if tunnel_id is not None:
            handles = [self._tunnel(tunnel_id)]
        else:
            handles = [th for _, th in sorted(self.ctx.tunnels.items())]
        kernel = await self._kernel_sessions()
        pid_of = _pid_lookup(self.ctx.backend)
        now = self._now()
        records = []
        for th in handles:
            for sid, sh in sorted(th.sessions.items()):
                pid = None
                if pid_of is not None and sh.backend_session is not None:
                    pid = pid_of(sh.backend_session)
                k = kernel.get((th.tunnel_id, sid)) if sh.kernel else None
                records.append(inventory.session_record(th, sh, now, kernel=k, pid=pid))
        return records

    async def _kernel_sessions(self) -> dict[tuple[int, int], Any]:
        """The kernel's sessions (interface, data counters) in one netlink dump, when the
        data plane is Linux's; nothing with the null data plane or if the dump fails."""
        try:
            netlink = getattr(self.ctx.dataplane, "netlink", None)
            if netlink is None:
                return {}
            found = await asyncio.wait_for(netlink.dump_sessions(), 5.0)
        except Exception as exc:  # the kernel's view is optional here
            log.info("control socket: kernel session dump failed: %s", exc)
            return {}
        return {(s.tunnel_id, s.session_id): s for s in found}

    async def close_tunnel(self, tunnel_id: int, result: int | None) -> dict[str, Any]:
        th = self._tunnel(tunnel_id)
        if not live(th):
            raise CtlError(ErrorCode.NOT_FOUND, f"tunnel {tunnel_id} is already closing")
        code = StopCcnResult.GENERAL_REQUEST if result is None else result
        if self._closing is not None:
            self._closing(tunnel_id, None)
        try:
            th.begin_close(code, message=OPERATOR_MESSAGE)
        except ValueError as exc:
            raise CtlError(ErrorCode.BAD_REQUEST, str(exc)) from None
        log.info(
            "tunnel %d: closed by operator (StopCCN %d)", tunnel_id, code, extra=th.log_extra()
        )
        try:
            await asyncio.wait_for(th.wait_closed(), CLOSE_WAIT)
            acked = await th.wait_stop_acked(2.0)
        except TimeoutError:
            acked = False
        return {"tunnel_id": tunnel_id, "result": int(code), "acknowledged": acked}

    async def close_session(self, tunnel_id: int, session_id: int) -> dict[str, Any]:
        th = self._tunnel(tunnel_id)
        sh = th.sessions.get(session_id)
        if sh is None or sh.closed is not None:
            raise CtlError(ErrorCode.NOT_FOUND, f"no session {session_id} in tunnel {tunnel_id}")
        if self._closing is not None:
            self._closing(tunnel_id, session_id)
        log.info(
            "session %d/%d: closed by operator (CDN)",
            tunnel_id,
            session_id,
            extra=th.log_extra(session_id),
        )
        try:
            await asyncio.wait_for(
                sh.close(CdnResult.ADMINISTRATIVE, message=OPERATOR_MESSAGE), CLOSE_WAIT
            )
            done = True
        except TimeoutError:
            done = False
        return {"tunnel_id": tunnel_id, "session_id": session_id, "released": done}

    async def reload(self) -> dict[str, Any]:
        return (await self._reload()).as_dict()

    def peers(self) -> list[dict[str, Any]]:
        """The LNSes of the daemon's peer lists (``LnsPool.peers`` records); empty for a
        daemon without any."""
        return self._peers() if self._peers is not None else []

    def events(self) -> EventRecords:
        """Tunnel and session up/down records, in the order the runtime reports them,
        from this call on (the subscription is made here, not at the first read)."""
        return EventRecords(self.ctx.events(), self.info.name, self.ctx.tunnel, self._name)


class EventRecords:
    """An async iterator of event records over a runtime subscription; :meth:`aclose`
    ends the subscription (whether or not iteration ever started)."""

    def __init__(
        self,
        subscription: Subscription,
        daemon: str,
        tunnel: Callable[[int], TunnelHandle | None],
        name: Callable[[TunnelHandle], str | None],
    ) -> None:
        self._sub = subscription
        self._daemon = daemon
        self._tunnel = tunnel
        self._name = name

    def __aiter__(self) -> EventRecords:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while True:
            event = await self._sub.queue.get()
            if event is None:
                self._sub.close()
                raise StopAsyncIteration
            th = self._tunnel(event.tunnel_id)
            record = inventory.event_record(event, th, self._name(th) if th else None)
            if record is not None:
                record["time"] = _wall_clock()
                record["daemon"] = self._daemon
                return record

    async def aclose(self) -> None:
        self._sub.close()


def listener_counters(listener: Listener) -> dict[str, int]:
    """What a listener did with the SCCRQs it got (the sans-IO core's
    :class:`~l2tp.protocol.listener.ListenerCounters`, and the runtime's ``allowed_peers``
    drops): the refusals that leave no tunnel behind, and so no other trace."""
    return {**asdict(listener.listener.counters), "not_allowed": listener.not_allowed}


def _wall_clock() -> str:
    """UTC ISO 8601 with milliseconds: when the daemon reported the event."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}Z"


def _pid_lookup(backend: object) -> Callable[[Any], int | None] | None:
    """The pppd pid of a backend session, for backends that run pppd."""
    pid = getattr(backend, "pid", None)
    if pid is None:
        pid = getattr(getattr(backend, "pppd", None), "pid", None)
    return pid if callable(pid) else None
