"""From the runtime's events to hook jobs: :class:`DaemonHooks`.

Fed by :meth:`L2tpContext.events() <l2tp.runtime.context.L2tpContext.events>`, the
same subscription an embedding program would use, so the control plane does nothing
for hooks beyond queueing one event per change.

When each hook runs:

* ``tunnel_up``: the tunnel is established *and* its kernel tunnel exists
  (:meth:`TunnelHandle.wait_established`); ``tunnel_down``: on its
  :class:`~l2tp.protocol.events.TunnelClosed`.
* ``session_up``: the call is established and its kernel session and payload (pppd,
  the built-in PPP) are started (:meth:`SessionHandle.wait_established`), and its
  network interface exists (:meth:`SessionHandle.wait_interface`): an Ethernet
  pseudowire's at once, a PPP session's once pppd has attached its unit (its
  ``Using interface`` line, a fraction of a second after it starts) or the built-in
  PPP has reached the network phase (after LCP and authentication). A PPP session
  whose interface has not come within :data:`INTERFACE_WAIT` seconds runs its
  ``session_up`` then with ``L2TP_INTERFACE`` empty (and a log line says so);
  ``session_down``: on its :class:`~l2tp.protocol.events.SessionClosed`.
* A ``down`` runs only for a tunnel or session whose ``up`` was queued, and after
  that ``up`` has finished (:class:`~l2tp.daemons.hooks.HookRunner`). A call that
  fails before it is up runs neither. Hooks configured by a reload apply to
  tunnels and sessions that come up after it.

The environment (only the variables that apply are set):

``L2TP_EVENT``, ``L2TP_DAEMON``, ``L2TP_TUNNEL_ID``, ``L2TP_PEER_TUNNEL_ID``,
``L2TP_PEER_ADDRESS`` (IP address), ``L2TP_PEER_PORT`` (UDP; 0 with IP
encapsulation); sessions add ``L2TP_SESSION_ID``, ``L2TP_PEER_SESSION_ID``,
``L2TP_INTERFACE`` (the interface's real name: ``l2tpethN``, ``pppN`` or the
configured ``interface_name``); ``down`` events add ``L2TP_RESULT_CODE``,
``L2TP_ERROR_CODE`` and ``L2TP_RESULT_MESSAGE`` when a Result Code was exchanged
(StopCCN/CDN), and ``L2TP_CLOSED_BY`` (``peer`` or ``local``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from l2tp.config.model import Encap, HooksSection, TunnelSection
from l2tp.protocol.events import (
    Reason,
    SessionClosed,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
)
from l2tp.runtime.context import L2tpContext
from l2tp.runtime.session_handle import SessionHandle
from l2tp.runtime.subscription import Subscription

from .hooks import HookCounters, HookEvent, HookJob, HookRunner

log = logging.getLogger("l2tp.daemons.hooks")

INTERFACE_WAIT = 10.0
"""Longest a ``session_up`` hook waits for a PPP session's interface to exist."""

Key = tuple[int, int | None]
"""``(tunnel_id, session_id)``; ``session_id`` None for the tunnel itself."""


@dataclass(slots=True, eq=False)
class _Tracked:
    """A tunnel or session between its establishment and its ``down``."""

    env: dict[str, str]
    what: str
    waiter: asyncio.Task[object] | None = None
    up: HookJob | None = None
    is_up: Callable[[], bool] | None = None
    """True once the runtime's own "up" is complete (checked when it closes first)."""
    closed: bool = False
    interface: Callable[[], str] | None = None
    """A session's ``L2TP_INTERFACE``, read when its hooks are queued."""


def down_variables(reason: Reason | None, by_peer: bool) -> dict[str, str]:
    env = {"L2TP_CLOSED_BY": "peer" if by_peer else "local"}
    if reason is not None:
        env["L2TP_RESULT_CODE"] = str(reason.result)
        env["L2TP_RESULT_MESSAGE"] = reason.message
        if reason.error is not None:
            env["L2TP_ERROR_CODE"] = str(reason.error)
    return env


def interface_of(handle: SessionHandle) -> str:
    """The session's interface name: as the runtime learnt it (:attr:`SessionHandle.interface`),
    else as far as the configuration fixes it.

    ``interface_name`` names an Ethernet pseudowire's ``l2tpeth`` device and, for
    pppd, its ``ifname``; the built-in PPP's own ``interface_name`` applies when it
    has no ``%d``. Otherwise (no interface, or not known in time) this is empty.
    """
    if handle.interface:
        return handle.interface
    options = handle.options
    if options.interface_name:
        return options.interface_name
    builtin = options.builtin_ppp
    name = getattr(builtin, "interface_name", None) if builtin is not None else None
    if isinstance(name, str) and "%d" not in name:
        return name
    return ""


class DaemonHooks:
    """The hooks of one daemon: a :class:`HookRunner` fed by its context's events."""

    def __init__(self, ctx: L2tpContext, settings: HooksSection, *, daemon: str) -> None:
        self.ctx = ctx
        self.daemon = daemon
        self.runner = HookRunner(settings)
        self._tracked: dict[Key, _Tracked] = {}
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def counters(self) -> HookCounters:
        return self.runner.counters

    def start(self) -> None:
        """Subscribe to the context's events if any hook is configured (idempotent).

        Without hooks nothing subscribes, so a daemon without ``[hooks]`` pays
        nothing per event.
        """
        if self._task is not None or not self.runner.settings.configured:
            return
        self._sub = self.ctx.events()
        self._task = asyncio.get_running_loop().create_task(self._consume(self._sub))

    def configure(self, settings: HooksSection) -> None:
        """Apply a reloaded ``[hooks]`` table (see :meth:`HookRunner.configure`)."""
        self.runner.configure(settings)
        self.start()

    async def close(self) -> None:
        """After the context is closed: take its last events, then let the hooks finish
        within their bound (:meth:`HookRunner.close`)."""
        if self._task is not None:
            if self.ctx.closed:
                await self._task  # ends with the context's end-of-events marker
            else:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        for tracked in self._tracked.values():
            if tracked.waiter is not None:
                tracked.waiter.cancel()
        await self.runner.close()

    async def _consume(self, sub: Subscription) -> None:
        async for event in sub:
            try:
                self.handle(event)
            except Exception:  # a bug here must not end the hooks for good
                log.exception("hooks: cannot handle %s", type(event).__name__)

    def handle(self, event: object) -> None:
        if isinstance(event, TunnelEstablished):
            self._tunnel_up(event)
        elif isinstance(event, SessionEstablished):
            self._session_up(event)
        elif isinstance(event, SessionClosed):
            key: Key = (event.tunnel_id, event.session_id)
            self._down(key, HookEvent.SESSION_DOWN, down_variables(event.reason, event.by_peer))
        elif isinstance(event, TunnelClosed):
            key = (event.tunnel_id, None)
            self._down(key, HookEvent.TUNNEL_DOWN, down_variables(event.reason, event.by_peer))

    # -- up ------------------------------------------------------------------------------

    def _tunnel_up(self, event: TunnelEstablished) -> None:
        th = self.ctx.tunnel(event.tunnel_id)
        if th is None or th.closed is not None:
            return  # gone before we looked: its TunnelClosed follows, and runs nothing
        host, port = th.peer[0], th.peer[1]
        env = {
            "L2TP_DAEMON": self.daemon,
            "L2TP_TUNNEL_ID": str(event.tunnel_id),
            "L2TP_PEER_TUNNEL_ID": str(event.peer.tunnel_id),
            "L2TP_PEER_ADDRESS": host,
            "L2TP_PEER_PORT": str(port),
        }
        tracked = _Tracked(env=env, what=f"tunnel {event.tunnel_id}", is_up=lambda: th.ready)
        self._track((event.tunnel_id, None), tracked, HookEvent.TUNNEL_UP, th.wait_established)

    def _session_up(self, event: SessionEstablished) -> None:
        info = event.info
        th = self.ctx.tunnel(info.tunnel_id)
        handle = th.sessions.get(info.session_id) if th is not None else None
        parent = self._tracked.get((info.tunnel_id, None))
        if handle is None or handle.closed is not None:
            return
        base = dict(parent.env) if parent is not None else {"L2TP_DAEMON": self.daemon}
        if parent is None and th is not None:
            base |= {
                "L2TP_TUNNEL_ID": str(info.tunnel_id),
                "L2TP_PEER_TUNNEL_ID": str(info.peer_tunnel_id),
                "L2TP_PEER_ADDRESS": th.peer[0],
                "L2TP_PEER_PORT": str(th.peer[1]),
            }
        env = base | {
            "L2TP_SESSION_ID": str(info.session_id),
            "L2TP_PEER_SESSION_ID": str(info.peer_session_id),
        }
        what = f"session {info.tunnel_id}/{info.session_id}"
        tracked = _Tracked(
            env=env,
            what=what,
            is_up=lambda: handle.info is not None,
            interface=lambda: interface_of(handle),
        )
        key: Key = (info.tunnel_id, info.session_id)

        async def up_with_interface() -> object:
            established = await handle.wait_established()
            if not await handle.wait_interface(INTERFACE_WAIT) and not interface_of(handle):
                log.info("hooks: %s: no interface name known; L2TP_INTERFACE is empty", what)
            return established

        self._track(key, tracked, HookEvent.SESSION_UP, up_with_interface)

    def _track(
        self,
        key: Key,
        tracked: _Tracked,
        event: HookEvent,
        wait_up: Callable[[], Awaitable[object]],
    ) -> None:
        """Queue ``event`` once the runtime's own set-up (kernel objects, payload) is done."""
        old = self._tracked.get(key)
        if old is not None and old.waiter is not None:
            old.waiter.cancel()
        self._tracked[key] = tracked

        async def when_up() -> object:
            return await wait_up()

        def done(task: asyncio.Task[object]) -> None:
            if task.cancelled():
                return
            failed = task.exception() is not None  # (retrieved either way: no warning)
            if tracked.closed or self._tracked.get(key) is not tracked:
                return
            tracked.waiter = None
            if not failed:
                tracked.up = self._submit(event, tracked)
            # else: it failed before it was up; its closed event removes the entry.

        tracked.waiter = asyncio.get_running_loop().create_task(when_up())
        tracked.waiter.add_done_callback(done)

    def _submit(
        self, event: HookEvent, tracked: _Tracked, extra: dict[str, str] | None = None
    ) -> HookJob | None:
        env = {"L2TP_EVENT": str(event), **tracked.env, **(extra or {})}
        if tracked.interface is not None:
            env["L2TP_INTERFACE"] = tracked.interface()
        return self.runner.submit(event, env, what=tracked.what, after=tracked.up)

    # -- down ----------------------------------------------------------------------------

    def _down(self, key: Key, event: HookEvent, extra: dict[str, str]) -> None:
        tracked = self._tracked.pop(key, None)
        if tracked is None:
            return
        tracked.closed = True
        waiter, tracked.waiter = tracked.waiter, None
        if waiter is not None:
            # Closed while we waited for it to be up. If the runtime had finished its
            # set-up in the meantime (our callback simply has not run yet), it was up:
            # run its up, then its down. Otherwise it never was: run neither.
            waiter.cancel()
            if tracked.is_up is None or not tracked.is_up():
                return
            up = HookEvent.TUNNEL_UP if event is HookEvent.TUNNEL_DOWN else HookEvent.SESSION_UP
            tracked.up = self._submit(up, tracked)
        self._submit(event, tracked, extra)


class QuiescentState(Protocol):
    """What :class:`StaticHooks` reads of a :class:`~l2tp.daemons.quiescent.QuiescentTunnel`."""

    config: TunnelSection
    state: str
    interfaces: dict[int, str]


class StaticHooks:
    """ql2tpd's hooks: it has no control protocol, so no runtime events.

    A static tunnel is up from the moment its kernel objects exist until the daemon
    removes them; a quiescent one goes down when its HELLOs stop being answered and up
    again when the peer answers a probe (its ``state``). IDs come from the
    configuration (both ends are fixed there); ``down`` events have
    ``L2TP_CLOSED_BY=local`` and no Result Code, since no StopCCN or CDN exists.
    ``L2TP_INTERFACE`` is the name the kernel objects' owner learnt for each session
    (``interfaces``: the configured ``interface_name`` or the kernel's ``l2tpethN``).
    """

    def __init__(self, settings: HooksSection, *, daemon: str = "ql2tpd") -> None:
        self.daemon = daemon
        self.runner = HookRunner(settings)
        self._up: dict[str, tuple[TunnelSection, _Tracked, list[_Tracked]]] = {}

    @property
    def counters(self) -> HookCounters:
        return self.runner.counters

    def up(self, tunnel: TunnelSection, interfaces: Mapping[int, str] | None = None) -> None:
        if tunnel.name in self._up:
            return
        env = {
            "L2TP_DAEMON": self.daemon,
            "L2TP_TUNNEL_ID": str(tunnel.tid),
            "L2TP_PEER_TUNNEL_ID": str(tunnel.ptid),
            "L2TP_PEER_ADDRESS": str(tunnel.peer.address),
            "L2TP_PEER_PORT": str(tunnel.peer.port if tunnel.encap is Encap.UDP else 0),
        }
        parent = _Tracked(env=env, what=f"tunnel {tunnel.tid}")
        parent.up = self._submit(HookEvent.TUNNEL_UP, parent)
        sessions = []
        for section in tunnel.sessions:
            senv = env | {
                "L2TP_SESSION_ID": str(section.sid),
                "L2TP_PEER_SESSION_ID": str(section.psid),
                "L2TP_INTERFACE": (interfaces or {}).get(section.sid or 0)
                or section.interface_name
                or "",
            }
            tracked = _Tracked(env=senv, what=f"session {tunnel.tid}/{section.sid}")
            tracked.up = self._submit(HookEvent.SESSION_UP, tracked)
            sessions.append(tracked)
        self._up[tunnel.name] = (tunnel, parent, sessions)

    def down(self, tunnel: TunnelSection) -> None:
        entry = self._up.pop(tunnel.name, None)
        if entry is None:
            return
        _, parent, sessions = entry
        for tracked in sessions:
            self._submit(HookEvent.SESSION_DOWN, tracked, local=True)
        self._submit(HookEvent.TUNNEL_DOWN, parent, local=True)

    def observe(self, quiescent: QuiescentState) -> None:
        """A quiescent tunnel changed state (an observer of ql2tpd's tunnels)."""
        if quiescent.state == "up":
            self.up(quiescent.config, quiescent.interfaces)
        else:
            self.down(quiescent.config)

    def _submit(
        self, event: HookEvent, tracked: _Tracked, *, local: bool = False
    ) -> HookJob | None:
        env = {"L2TP_EVENT": str(event), **tracked.env}
        if local:
            env["L2TP_CLOSED_BY"] = "local"
        return self.runner.submit(event, env, what=tracked.what, after=tracked.up)

    async def close(self) -> None:
        """At shutdown, once the kernel objects are removed: the down hooks, within bounds."""
        for section, _, _ in list(self._up.values()):
            self.down(section)
        await self.runner.close()
