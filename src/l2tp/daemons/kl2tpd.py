"""kl2tpd: an L2TPv2 LAC from go-l2tp's kl2tpd TOML, one pppd per session.

For every ``[tunnel.T]`` it opens the tunnel (SCCRQ) and, once it is up,
places a call (ICRQ) for every ``[tunnel.T.session.S]``; each established
session gets a kernel PPP session and a pppd (:mod:`l2tp.runtime.ppp`), or
nothing with ``--null-dataplane``. ``redial = true`` re-opens a tunnel that
failed or was closed by the peer after ``redial_timeout``, at most
``max_redials`` times (0: for ever).

A tunnel whose ``peer`` is a list is an LNS pool (:class:`PoolRunner` over
:class:`l2tp.runtime.lns_failover.LnsPool`): each session is placed on an LNS chosen
by preference and weight, and placed again elsewhere when that LNS fails.

Reload (SIGHUP): tunnels added to the file are opened, tunnels removed are
closed (StopCCN), tunnels whose table changed in any key (sessions included)
are closed and opened again; unchanged tunnels are not touched. See
docs/daemons.md.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from l2tp import config as cfg
from l2tp.daemons import common
from l2tp.daemons.configmap import (
    encap,
    lns_endpoints,
    retry_policy,
    selection_policy,
    session_call,
    session_options,
    tunnel_config,
)
from l2tp.daemons.roles import RoleBase
from l2tp.protocol.constants import StopCcnResult
from l2tp.runtime.control import L2tpContext, SessionFailed, TunnelFailed, TunnelHandle
from l2tp.runtime.handles import SessionHandle
from l2tp.runtime.lns_failover import LnsPool, PoolCall
from l2tp.runtime.ppp import PppdExitStatus, login_failed

log = logging.getLogger("l2tp.kl2tpd")


@dataclass(eq=False, repr=False)
class _RunnerBase:
    """What :class:`Kl2tpd` reads of every runner of a ``[tunnel.T]``, whichever kind:
    its table (a reload compares it), whether it is being stopped (its end is then no
    failure) and its task, whose end without a stop means the tunnel has nothing left to
    do (the daemon's liveness, :meth:`Kl2tpd._check_alive`). A dataclass so that each
    kind adds its own fields without repeating the constructor."""

    ctx: L2tpContext
    config: cfg.TunnelSection
    stop_timeout: float
    log: logging.Logger = field(default=log, kw_only=True)
    stopping: bool = field(default=False, init=False)
    task: asyncio.Task[None] | None = field(default=None, init=False)


@dataclass(eq=False, repr=False)
class TunnelRunner(_RunnerBase):
    """One ``[tunnel.T]``: open, place the calls, redial per the config."""

    handle: TunnelHandle | None = field(default=None, init=False)
    on_session_end: Callable[[bool], None] | None = field(default=None, init=False)
    """Told, when each established session ends, whether our PPP failed to log in."""
    watchers: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"tunnel-{self.config.name}")

    async def run(self) -> None:
        """Open the tunnel; with ``redial``, open it again after each failure.

        L2TPv2 (kl2tpd, as go-l2tp) waits ``redial_timeout`` every time. L2TPv3
        (l2tpd) backs off: ``redial_timeout`` after a tunnel that was up, then
        doubling per consecutive failure up to ``max_redial_timeout``, so a peer
        that is down for long is not hammered and one that comes back is found
        quickly.
        """
        t = self.config
        attempts = 0
        delay = t.redial_timeout
        backoff = t.version is cfg.Version.L2TPV3
        while not self.stopping:
            self.handle = None
            try:
                await self._once()
            except TunnelFailed as exc:
                # A normal shutdown (or this tunnel removed by a reload) is not a warning.
                normal = self.stopping or self.ctx.closing
                self.log.log(
                    logging.INFO if normal else logging.WARNING,
                    "tunnel %s: %s",
                    t.name,
                    exc,
                    extra=self.handle.log_extra() if self.handle is not None else None,
                )
            except (OSError, RuntimeError) as exc:
                self.log.error("tunnel %s: %s", t.name, exc)
            if self.stopping or self.ctx.closing or not t.redial:
                return
            attempts += 1
            if t.max_redials and attempts > t.max_redials:
                self.log.error("tunnel %s: giving up after %d redials", t.name, t.max_redials)
                return
            if self.handle is not None and self.handle.established_event is not None:
                delay = t.redial_timeout
            self.log.info("tunnel %s: redialling in %.1f s", t.name, delay)
            await asyncio.sleep(delay)
            if backoff:
                delay = min(delay * 2, max(t.max_redial_timeout, t.redial_timeout))

    async def _once(self) -> None:
        t = self.config
        peer = (str(t.peer.address), t.peer.port)
        local = (str(t.local.address), t.local.port) if t.local is not None else None
        th = await self.ctx.open_tunnel(
            peer,
            local,
            config=tunnel_config(t),
            encap=encap(t.encap),
            tunnel_id=t.tid,
            wait=False,
        )
        self.handle = th
        await th.wait_established()
        self.log.info(
            "tunnel %s: up (tid %d, peer tid %d)",
            t.name,
            th.tunnel_id,
            th.peer_tunnel_id,
            extra=th.log_extra(),
        )
        calls = [th.place_call(session_call(s), options=session_options(s)) for s in t.sessions]
        for s, call in zip(t.sessions, calls, strict=True):
            try:
                info = await call.wait_established()
            except SessionFailed as exc:
                extra = th.log_extra(call.session_id)
                self.log.warning("tunnel %s session %s: %s", t.name, s.name, exc, extra=extra)
            else:
                extra = th.log_extra(info.session_id)
                self.log.info(
                    "tunnel %s session %s: up (sid %d)",
                    t.name,
                    s.name,
                    info.session_id,
                    extra=extra,
                )
                if self.on_session_end is not None:
                    self.watchers.add(asyncio.create_task(self._watch(call, self.on_session_end)))
        closed = await th.wait_closed()
        raise TunnelFailed(closed)

    async def _watch(self, call: SessionHandle, report: Callable[[bool], None]) -> None:
        """Report whether an established call ended because our PPP failed to log in:
        our CDN said so, or (the peer's CDN came first, as xl2tpd sends one as soon as
        its pppd refused us) our pppd had already exited with status 19."""
        ended = await call.wait_closed()  # the backend is stopped: its exit is recorded
        reason = ended.reason
        ours = not ended.by_peer and reason is not None and login_failed(reason.message)
        report(ours or self._pppd_login_failed(call))

    def _pppd_login_failed(self, call: SessionHandle) -> bool:
        backend = self.ctx.backend
        pppd = getattr(backend, "pppd", backend)
        exits = getattr(pppd, "exits", None)
        if not isinstance(exits, dict):
            return False
        outcome = exits.get((call.tunnel.tunnel_id, call.session_id))
        return outcome is not None and outcome.returncode == PppdExitStatus.AUTH_TOPEER_FAILED

    def owns(self, th: TunnelHandle) -> bool:
        return self.handle is th

    async def stop(self) -> None:
        self.stopping = True
        th = self.handle
        if th is not None:
            await th.close(
                StopCcnResult.GENERAL_REQUEST, message="removed", ack_timeout=self.stop_timeout
            )
        for task in (self.task, *self.watchers):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self.task, *self.watchers) if t), return_exceptions=True)


@dataclass(eq=False, repr=False)
class PoolRunner(_RunnerBase):
    """One ``[tunnel.T]`` whose ``peer`` is a list: an :class:`LnsPool` keeps its
    sessions placed over the LNSes (docs/daemons.md, "LNS selection and failover")."""

    pool: LnsPool = field(init=False)

    def __post_init__(self) -> None:
        t = self.config
        self.pool = LnsPool(
            self.ctx,
            lns_endpoints(t),
            [
                PoolCall(name=s.name, params=session_call(s), options=session_options(s))
                for s in t.sessions
            ],
            config=tunnel_config(t),
            policy=selection_policy(t),
            retry=retry_policy(t),
            local=(str(t.local.address), t.local.port) if t.local is not None else None,
            encap=encap(t.encap),
            name=t.name,
            stop_timeout=self.stop_timeout,
            logger=self.log,
        )

    def start(self) -> None:
        self.pool.start()
        self.task = asyncio.create_task(self._wait_done(), name=f"pool-{self.config.name}")

    async def _wait_done(self) -> None:
        """Ends when every session of the pool was given up (the daemon's liveness)."""
        await self.pool.done.wait()

    def owns(self, th: TunnelHandle) -> bool:
        return self.pool.owns(th)

    async def stop(self) -> None:
        self.stopping = True
        await self.pool.stop()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


Runner = TunnelRunner | PoolRunner


@dataclass(eq=False, repr=False)
class Kl2tpd(RoleBase):
    """The ``[tunnel.*]`` tables of one file; ``log`` is the daemon's logger (l2tpd's
    when l2tpd runs its initiator tunnels through this class)."""

    log: logging.Logger = field(default=log, kw_only=True)
    runners: dict[str, Runner] = field(init=False, default_factory=dict)
    exit_status: int = field(init=False, default=1)
    """The status when :attr:`failed` ends the daemon: 1, or 2 after a login failure."""

    async def start(self) -> None:
        for t in self.config.tunnels:
            self._add(t)

    def _add(self, t: cfg.TunnelSection) -> None:
        runner: Runner
        if t.peers:
            runner = PoolRunner(self.ctx, t, self.stop_timeout, log=self.log)
        else:
            runner = TunnelRunner(self.ctx, t, self.stop_timeout, log=self.log)
            if sum(len(c.sessions) for c in self.config.tunnels) == 1 and t.sessions:
                runner.on_session_end = self._only_session_ended
        self.runners[t.name] = runner
        runner.start()
        assert runner.task is not None
        runner.task.add_done_callback(lambda _: self._check_alive())

    def _only_session_ended(self, login_failure: bool) -> None:
        """The file's only session ended. When its PPP failed to authenticate us to the
        peer (pppd exit status 19), the daemon has nothing left to do: it stops with exit
        status 2, NetworkManager-l2tp's "login failed" (docs/networkmanager.md)."""
        if login_failure and not self.ctx.closing:
            self.log.error("the only session failed PPP authentication: exiting (status 2)")
            self.exit_status = 2
            self.failed.set()

    def _check_alive(self) -> None:
        live = [r for r in self.runners.values() if r.task is not None and not r.task.done()]
        if self.ctx.closing or any(r.stopping for r in self.runners.values()):
            return
        if self.runners and not live:
            self.log.error("no tunnel left")
            self.failed.set()

    async def reload(self, config: cfg.Config) -> None:
        new = {t.name: t for t in config.tunnels}
        for name, runner in list(self.runners.items()):
            if new.get(name) != runner.config:
                self.log.info("tunnel %s: %s", name, "changed" if name in new else "removed")
                del self.runners[name]
                await runner.stop()
        for name, t in new.items():
            if name not in self.runners:
                self._add(t)
        self.config = config

    def summary(self) -> str:
        return f"{len(self.runners)} tunnel(s)"

    def tunnel_name(self, th: TunnelHandle) -> str | None:
        """The ``[tunnel.NAME]`` a tunnel handle was opened for (``l2tp ctl``)."""
        for name, runner in self.runners.items():
            if runner.owns(th):
                return name
        return None

    def peers(self) -> list[dict[str, object]]:
        """Every LNS of every peer list with its state (``l2tp ctl peers``, metrics)."""
        return [
            p for r in self.runners.values() if isinstance(r, PoolRunner) for p in r.pool.peers()
        ]


def main(argv: Sequence[str] | None = None) -> int:
    return common.main(
        "kl2tpd",
        cfg.Daemon.KL2TPD,
        Kl2tpd,
        argv,
        "L2TPv2 LAC: opens the tunnels and places the calls of a go-l2tp kl2tpd TOML file "
        "(see docs/daemons.md).",
    )


if __name__ == "__main__":
    sys.exit(main())
