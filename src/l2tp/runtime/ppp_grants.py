"""What the verifier granted a built-in PPP session beyond its address: routes through
the peer and an idle time limit (a mixin of :class:`~l2tp.runtime.ppp_link.PppLink`).

Both come from an :class:`~l2tp.ppp.AuthDecision` (RADIUS: Framed-Route, RFC 2865
5.22, and Idle-Timeout, 5.28; :mod:`l2tp.radius.auth` parses them):

* **routes** (``decision.routes``) are added on the session's interface once IPCP is up
  and its addresses are in place (one more request in the link's ordered interface
  queue, so the peer's /32 exists first), and deleted when IPCP goes down; when the
  session ends the kernel removes them with the interface. A gateway that is absent,
  0.0.0.0 or the peer's own address makes a plain route through the interface (on a
  point-to-point link every packet goes to the peer); any other gateway is installed
  ``onlink``. A route the kernel refuses (an equal route exists already, ...) is logged
  and counted (``route_errors``) and the session carries on without it: a route is an
  extra, never a reason to drop a paying user.
* **idle time limit** (``decision.idle_timeout``): from the first NCP up, the unit's idle
  times are read with ``PPPIOCGIDLE`` (:func:`l2tp.kernel.ppp_device.idle_seconds`: the
  kernel's seconds since the unit last sent and last received a data frame; LCP echoes do
  not count, as for pppd's ``idle``), once when the limit could first have run out and
  then again when it next could (``limit - idle`` seconds later, at least one): one ioctl
  per session every few seconds at most, none per packet. When both directions have been
  idle for the limit, the session ends as for Session-Timeout: CDN Result Code 3 "PPP
  idle timeout" (pppd's exit status 12 maps to the same), then LCP Terminate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address, IPv4Network

from l2tp.kernel.errors import KernelError
from l2tp.kernel.ppp_device import PppUnit
from l2tp.ppp import AuthDecision
from l2tp.ppp.constants import Protocol as PppProtocol
from l2tp.runtime.ppp_network import IPAddress, LinkSettings
from l2tp.runtime.ppp_outcome import BuiltinPppCounters, Ending

log = logging.getLogger("l2tp.runtime.builtin_ppp")

MIN_IDLE_POLL = 1.0
"""Seconds: the shortest wait between two idle checks of one session (the kernel counts
idle time in whole seconds)."""

InstalledRoute = tuple[IPv4Network, IPv4Address | None, int | None]
"""(destination, gateway as installed, metric): what deleting the route needs again."""


class PppGrants:
    """Mixin: the granted routes and idle time limit of one link (module doc)."""

    settings: LinkSettings
    counters: BuiltinPppCounters
    loop: asyncio.AbstractEventLoop
    label: str
    unit: PppUnit | None
    ifindex: int | None
    ifname: str | None
    released: bool
    stopping: bool
    granted: AuthDecision | None

    def _queue(
        self, what: str, op: Callable[[], Awaitable[object]], *, essential: bool = True
    ) -> None:
        raise NotImplementedError

    def _limit_reached(self, ending: Ending, why: str) -> None:
        raise NotImplementedError

    def _internal_error(self, what: str) -> None:
        raise NotImplementedError

    def _init_grants(self) -> None:
        self.routes_installed: list[InstalledRoute] = []
        """The granted routes on the interface now (diagnostics, tests)."""
        self._idle_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ NCP up and down

    def _granted_up(self, protocol: PppProtocol, peer: IPAddress | None) -> None:
        """An NCP reached Opened: add the routes (IPCP) and start the idle watch (any)."""
        granted = self.granted
        if granted is None or self.released:
            return
        if protocol is PppProtocol.IPCP and granted.routes and isinstance(peer, IPv4Address):
            add = self._add_routes
            self._queue("adding the granted routes", lambda: add(peer), essential=False)
        if granted.idle_timeout is not None and self._idle_timer is None:
            self._idle_timer = self.loop.call_later(granted.idle_timeout, self._check_idle)

    def _granted_down(self, protocol: PppProtocol) -> None:
        """IPCP left Opened: take the routes away again (re-added if it comes back). Queued
        behind any addition still pending, so it removes whatever that installed."""
        granted = self.granted
        if protocol is not PppProtocol.IPCP or granted is None or not granted.routes:
            return
        if not self.released:
            self._queue("deleting the granted routes", self._delete_routes, essential=False)

    async def _add_routes(self, peer: IPv4Address) -> None:
        granted = self.granted
        if granted is None or self.ifindex is None:
            return  # no interface: reported already
        ops = self.settings.kernel.interfaces(self.settings.netns)
        for route in granted.routes:
            gateway = None if route.gateway in (None, peer) else route.gateway
            installed = (route.destination, gateway, route.metric)
            try:
                await ops.add_route(self.ifindex, *installed)
            except (KernelError, OSError) as exc:
                self.counters.route_errors += 1
                log.warning(
                    "%s: granted route %s not installed: %s", self.label, route.destination, exc
                )
                continue
            self.routes_installed.append(installed)
            self.counters.routes_added += 1
            log.info(
                "%s: route %s via %s dev %s%s",
                self.label,
                route.destination,
                gateway or peer,
                self.ifname,
                "" if route.metric is None else f" metric {route.metric}",
            )

    async def _delete_routes(self) -> None:
        routes, self.routes_installed = self.routes_installed, []
        if self.ifindex is None:
            return
        ops = self.settings.kernel.interfaces(self.settings.netns)
        for route in routes:
            try:
                await ops.delete_route(self.ifindex, *route)
            except (KernelError, OSError) as exc:
                # Gone already (an administrator, or with the peer's address): nothing to undo.
                log.debug("%s: deleting route %s: %s", self.label, route[0], exc)

    # ------------------------------------------------------------------ idle time limit

    def _check_idle(self) -> None:
        """Read the unit's idle times; end the session or look again when it next could."""
        self._idle_timer = None
        granted = self.granted
        if self.released or self.stopping or self.unit is None or granted is None:
            return
        limit = granted.idle_timeout
        if limit is None:
            return
        try:
            try:
                xmit, recv = self.settings.kernel.idle_seconds(self.unit)
            except (KernelError, OSError) as exc:
                self.counters.interface_errors += 1
                log.warning("%s: reading the idle time: %s", self.label, exc)
                idle = 0.0
            else:
                idle = float(min(xmit, recv))
            if idle >= limit:
                self._limit_reached(Ending.IDLE_TIMEOUT, "idle time limit reached")
                return
            self._idle_timer = self.loop.call_later(
                max(limit - idle, MIN_IDLE_POLL), self._check_idle
            )
        except Exception:
            self._internal_error("checking the idle time")

    def _cancel_grants(self) -> None:
        """The link is being released: no more idle checks (the routes go with the
        interface)."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self.routes_installed = []
