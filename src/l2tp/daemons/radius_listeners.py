"""Per-listener RADIUS: the clients of ``[listener.L.radius]`` (config/radius_listener.py).

A listener with a ``radius`` table of its own gets, next to the daemon's
:class:`~l2tp.daemons.radius_setup.RadiusService` and
:class:`~l2tp.daemons.radius_accounting.AccountingService`, services of its own, built
from its effective table (the daemon's ``[radius]`` with the listener's keys laid
over). They are the same classes, looking at the built-in PPP backend through a
:class:`ListenerSlot`: what they install as the backend's ``authenticator`` and
``observer`` lands in its ``authenticators[L]`` and ``observers[L]``, which the
backend picks for the sessions of listener ``L``
(:meth:`~l2tp.runtime.builtin_ppp.BuiltinPppBackend.authenticator_for`); a session of
a listener without them gets the daemon's.

* Authentication: only when the listener's effective settings differ from the
  daemon's (a table that names only ``acct_servers`` leaves authentication to the
  daemon's client, not to a copy of it).
* Accounting: only with the listener's own ``acct_servers`` (and spool); otherwise the
  daemon's engine accounts for the listener's sessions.

Authentication fails closed: a listener whose own client cannot be built (a secret
file that cannot be read; the reload goes on with the rest) and has none running
refuses its peers (:class:`Refuse`) rather than letting the daemon's servers, which
its file says are not the ones to judge them, decide; a client it had stays, as the
daemon's does.

Reloads go through each listener's services as through the daemon's: a listener whose
effective table is unchanged keeps its clients (a change in the daemon's ``[radius]``
rebuilds a listener's client only when the listener inherits the changed key), a
changed one gets new ones (the old closed once its requests in flight had their time),
and a listener whose table is gone goes back to the daemon's. A listener whose
``acct_servers`` are gone (its table removed, or kept without them) has its sessions
from then on accounted by the daemon's engine, and its own engine drains as the
daemon's does when ``acct_servers`` is removed
(:class:`~l2tp.daemons.radius_accounting.AccountingService`): the sessions it sent a
Start for get their Interim-Updates and Stop from it, to its servers, and it closes
once they have ended. A listener whose ``spool`` names another file (another
accounting domain, docs/radius.md) gets a new engine on it for the sessions starting
from then on, while the one it replaces drains the same way with its servers
(:attr:`_Listener.retired`); a changed server list or secret on the same spool is
swapped in under the engine, as the daemon's is. A session keeps the engine it
started under either way (the built-in PPP fixes a link's observer when the link
starts): one that started on the daemon's engine before its listener got
``acct_servers`` of its own ends there too.

A listener gone from the file (removed or renamed) keeps its services until
:meth:`ListenerRadius.drop_gone`, which the daemon calls once its reload has closed
that listener's tunnels: the sessions ended there still have their engine for their
Stop. An engine is never opened on a spool that another running engine holds (two
would replay each other's records, and the compaction of one would cut the other's
appends off), whatever path names it (:func:`~l2tp.config.radius_listener.spool_keys`,
looked at in a thread): the daemon's (whose spool changes only at a restart), another
listener's; one held by a gone listener is opened by :meth:`ListenerRadius.drop_gone`,
once that one is closed (a listener renamed with its spool), one held by a draining
engine once that one has closed. The daemon's engine, opened by a reload that gives
``[radius]`` its ``acct_servers`` (before the listeners' tables are applied), asks the
same (:attr:`AccountingService.spool_holder`) and opens once the listener engine on
its spool has closed.

The reasons sessions end (an operator's close, a Disconnect-Request, the daemon
stopping, the runtime's events) go to every engine (:meth:`ListenerRadius.note_end`
...): an engine ignores the sessions it does not account for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from l2tp.config.errors import table_path, toml_string
from l2tp.config.model import Config, RadiusSection
from l2tp.config.radius_listener import spool_keys
from l2tp.daemons.preflight import StartError
from l2tp.daemons.radius_accounting import AccountingService
from l2tp.daemons.radius_setup import RadiusService, auth_part
from l2tp.ppp import AuthDecision, AuthRequest
from l2tp.radius.records import SessionEnd
from l2tp.radius.session_accounting import StatsReader
from l2tp.runtime.context import L2tpContext

if TYPE_CHECKING:
    from l2tp.runtime.builtin_ppp import BuiltinPppBackend
    from l2tp.runtime.ppp_hooks import AuthContext, PppAuthenticator
    from l2tp.runtime.ppp_link import PppLink
    from l2tp.runtime.ppp_observer import SessionObserver

__all__ = ["ListenerRadius", "ListenerSlot", "Refuse", "combined"]

log = logging.getLogger("l2tp.radius")

SessionKey = tuple[int, int]


def combined(auth: dict[str, Any] | None, acct: dict[str, Any] | None) -> dict[str, Any] | None:
    """One ``radius`` status from a :class:`RadiusService`'s and an
    :class:`AccountingService`'s snapshots: the accounting servers among ``servers``, the
    requests in flight summed, the engine's counters as ``accounting``."""
    if acct is None:
        return auth
    acct = dict(acct)
    out: dict[str, Any] = dict(auth) if auth is not None else {"servers": {}}
    out["servers"] = {**out.get("servers", {}), **acct.pop("servers")}
    out["outstanding"] = out.get("outstanding", 0) + acct.pop("outstanding")
    out["accounting"] = acct
    return out


class Refuse:
    """The hook of a listener whose own authentication could not be set up: every peer
    is refused, with nothing said of why (the reason is the daemon's log's)."""

    def authenticate(self, request: AuthRequest, context: AuthContext) -> AuthDecision:
        return AuthDecision(success=False)


class ListenerSlot:
    """The built-in PPP backend as one listener's services see it: its
    ``authenticator`` and ``observer`` are the backend's entries for that listener."""

    def __init__(self, backend: BuiltinPppBackend, listener: str) -> None:
        self.backend = backend
        self.listener = listener

    @property
    def links(self) -> dict[SessionKey, PppLink]:
        """Every link of the backend (what an Access-Accept granted, by session key)."""
        return self.backend.links

    @property
    def authenticator(self) -> PppAuthenticator | None:
        return self.backend.authenticators.get(self.listener)

    @authenticator.setter
    def authenticator(self, hook: PppAuthenticator | None) -> None:
        if hook is None:
            self.backend.authenticators.pop(self.listener, None)
        else:
            self.backend.authenticators[self.listener] = hook

    @property
    def observer(self) -> SessionObserver | None:
        return self.backend.observers.get(self.listener)

    @observer.setter
    def observer(self, observer: SessionObserver | None) -> None:
        if observer is None:
            self.backend.observers.pop(self.listener, None)
        else:
            self.backend.observers[self.listener] = observer


class _Listener:
    """One listener's services (created the first time it has a table; kept, idle,
    once it has none, so that the clients they retire are still closed at the end)."""

    def __init__(
        self,
        backend: BuiltinPppBackend,
        name: str,
        new_accounting: Callable[[ListenerSlot], AccountingService],
    ) -> None:
        self.name = name
        self.slot = slot = ListenerSlot(backend, name)
        self.table = f"[{table_path('listener', name)}.radius]"
        self.auth = RadiusService(slot)
        self._new_accounting = new_accounting
        self.accounting = new_accounting(slot)
        self.retired: list[AccountingService] = []
        """Engines replaced by one on another spool, draining (module doc)."""

    def spool(self) -> str | None:
        """The path of the spool its engine holds, draining too (None: no engine)."""
        return self.accounting.spool_path

    def services(self) -> list[AccountingService]:
        """Its accounting: the service in use, and the replaced ones still draining."""
        return [self.accounting, *self.retired]

    async def replace_accounting(self) -> None:
        """The listener's accounting moves to another spool (another accounting domain):
        the engine in service drains for the sessions it has (their Interim-Updates and
        Stops to its servers), a new service takes the sessions starting from now on."""
        old = self.accounting
        await old.configure(None)  # drains, or closes at once when nothing is left
        if old.spool_path is None:
            await old.close()  # its event watcher
        else:
            self.retired.append(old)
        self.accounting = self._new_accounting(self.slot)

    async def prune(self) -> None:
        """Forget the replaced services whose engine has closed."""
        for service in list(self.retired):
            if service.spool_path is None and not service.draining:
                self.retired.remove(service)
                await service.close()

    async def configure(
        self,
        section: RadiusSection | None,
        daemon: RadiusSection | None,
        *,
        accounting: bool = True,
    ) -> bool:
        """Apply the listener's effective ``section`` (None: no table); StartError
        names the listener's table, the rest being applied all the same.
        ``accounting`` False: leave the accounting as it is (its spool is not free)."""
        own_auth = (
            section if section is not None and auth_part(section) != auth_part(daemon) else None
        )
        own_accounting = section if section is not None and section.accounting is not None else None
        problems: list[str] = []
        changed = False
        services: list[tuple[RadiusService | AccountingService, RadiusSection | None]] = [
            (self.auth, own_auth)
        ]
        if accounting:
            services.append((self.accounting, own_accounting))
        if own_auth is None and isinstance(self.slot.authenticator, Refuse):
            self.slot.authenticator = None  # back on the daemon's
            changed = True
        for service, part in services:
            try:
                changed = await service.configure(part) or changed
            except StartError as exc:
                problems.append(str(exc).replace("[radius]", self.table))
                if service is self.auth and self.auth.client is None:
                    self.slot.authenticator = Refuse()  # fail closed (module doc)
        if problems:
            raise StartError("; ".join(problems))
        return changed

    def snapshot(self) -> dict[str, Any] | None:
        """As the daemon's ``radius`` status (no secrets); None: nothing of its own.
        Engines it replaced that still drain are listed under ``replaced_accounting``
        (each with its servers), so that an operator sees where the Stops of the
        sessions started before the move go."""
        out = combined(self.auth.snapshot(), self.accounting.snapshot())
        replaced = [s for s in (r.snapshot() for r in self.retired) if s is not None]
        if replaced:
            out = out if out is not None else {"servers": {}, "outstanding": 0}
            out["replaced_accounting"] = replaced
        return out


class ListenerRadius:
    """Every listener's RADIUS services, and the daemon's accounting with them where a
    reason for a session's end is told (module doc).

    ``backend``: the built-in PPP backend; ``daemon``: the daemon's accounting service
    (told of every reason too); ``stats``: the counter reader of the listeners'
    accounting (default: the kernel's interface counters).
    """

    def __init__(
        self,
        backend: BuiltinPppBackend,
        daemon: AccountingService,
        *,
        stats: StatsReader | None = None,
    ) -> None:
        self.backend = backend
        self.daemon = daemon
        self.stats = stats
        self.listeners: dict[str, _Listener] = {}
        self._ctx: L2tpContext | None = None
        self._deferred: set[str] = set()
        """Listeners whose engine waits for a gone listener's spool (:meth:`drop_gone`)."""
        self._after_drain: set[str] = set()
        """Listeners whose engine waits for a draining engine's spool (:meth:`_drained`)."""
        self._config: Config | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        """What runs after a drain (:meth:`_drained`), cancelled by :meth:`close`."""
        self._daemon_waits = False
        """The daemon's engine waits for a listener engine's spool (:meth:`_retry_daemon`)."""
        daemon.on_drained = self._drained
        daemon.spool_holder = self._daemon_spool_holder

    async def configure(self, config: Config, *, only: set[str] | None = None) -> bool:
        """Apply every listener's ``radius`` of ``config`` (``only``: these listeners');
        True when something changed. Raises StartError (every listener's problems in
        one), the others applied.

        The listeners gone from ``config`` are left as they are (:meth:`drop_gone`);
        those whose table is gone go first, so that their spools are free for the
        others."""
        async with self._lock:
            return await self._configure(config, only=only)

    async def _configure(self, config: Config, *, only: set[str] | None) -> bool:
        self._config = config
        present = {lc.name for lc in config.listeners}
        wanted = {lc.name: lc.radius for lc in config.listeners if lc.radius is not None}
        names = sorted(set(self.listeners) & present | set(wanted), key=lambda n: (n in wanted, n))
        if only is not None:
            names = [name for name in names if name in only]
        self._deferred -= set(names)
        self._after_drain -= set(names)
        problems: list[str] = []
        changed = False
        for name in names:
            listener = self.listeners.get(name)
            section = wanted.get(name)
            if listener is None:
                if section is None:
                    continue
                listener = self.listeners[name] = _Listener(
                    self.backend, name, self._new_accounting
                )
            accounting = True
            renew = False  # another spool: a new engine, the old one drains
            own = section.accounting if section is not None else None
            spool = own.spool if own is not None else None
            current = listener.spool()
            if spool is not None and current is not None:
                renew = not await _same_file(current, spool)
            if spool is not None and (current is None or renew):
                holder, draining = await self._spool_holder(spool, present)
                if holder is not None:
                    accounting = renew = False
                    if holder == "":  # a gone listener's: free after drop_gone
                        self._deferred.add(name)
                    else:
                        if draining:  # free once it has closed: opened then
                            self._after_drain.add(name)
                        problems.append(
                            f"[{table_path('listener', name)}.radius] spool ="
                            f" {toml_string(spool)}: in use by {holder}"
                            " (each accounting engine needs a spool file of its own)"
                        )
            if renew:
                await listener.replace_accounting()
                log.info("listener %s: RADIUS: accounting moves to spool %s", name, spool)
                changed = True
            try:
                if await listener.configure(section, config.radius, accounting=accounting):
                    changed = True
                    what = "its own" if section is not None else "the daemon's"
                    log.info("listener %s: RADIUS: %s", name, what)
            except StartError as exc:
                problems.append(str(exc))
        await self._retry_daemon()  # a listener engine closed here may free its spool
        if problems:
            raise StartError("; ".join(problems))
        return changed

    async def _spool_holder(self, path: str, present: set[str]) -> tuple[str | None, bool]:
        """Who runs an engine on the spool ``path`` names (:func:`_holder`): the daemon's
        ``[radius]`` or a listener's table; "" for a listener gone from the file; None:
        nobody. True with it: that engine drains (free once it has closed)."""
        held: list[tuple[str, str, bool]] = []
        daemon = self.daemon.spool_path
        if daemon is not None:
            if self.daemon.draining:
                held.append((f"[radius]{DRAINING}", daemon, True))
            else:
                held.append(("[radius] (its spool changes at the next start)", daemon, False))
        for name, table, service, spool in self._listener_spools():
            if name not in present:
                held.append(("", spool, False))
            elif service.draining:
                held.append((f"{table}{DRAINING}", spool, True))
            else:
                held.append((table, spool, False))
        return await _holder(path, held)

    def _listener_spools(self) -> list[tuple[str, str, AccountingService, str]]:
        """(name, table, service, spool) of every listener engine holding a spool."""
        return [
            (name, f"[{table_path('listener', name)}.radius]", service, spool)
            for name, listener in self.listeners.items()
            for service in listener.services()
            if (spool := service.spool_path) is not None
        ]

    async def _daemon_spool_holder(self, path: str) -> str | None:
        """For the daemon's engine about to open (a reload's ``[radius]`` with
        ``acct_servers`` where it had none): the listener engine on the spool ``path``
        names. The file check sees one file, but a listener's engine may still hold the
        spool the previous file gave it: draining, in service until the listeners'
        reload (which comes after the daemon's), or gone from the file until
        :meth:`drop_gone`. The daemon's engine is then opened once it is free
        (:meth:`_retry_daemon`)."""
        held = [
            (f"{table}{DRAINING}" if s.draining else f"{table}'s engine", spool, s.draining)
            for _, table, s, spool in self._listener_spools()
        ]
        holder, _ = await _holder(path, held)
        if holder is not None:
            self._daemon_waits = True
        return holder

    async def _retry_daemon(self) -> None:
        """Open the daemon's engine that waited for a listener engine's spool, if it is
        free now (else it waits on); its problems are logged (the reload that refused
        it said why)."""
        config = self._config
        if not self._daemon_waits or config is None:
            return
        self._daemon_waits = False
        try:
            if await self.daemon.configure(config.radius):
                log.info("RADIUS: [radius]'s accounting engine opened (its spool is free)")
        except StartError as exc:
            log.warning("RADIUS: [radius]'s accounting: %s", exc)

    def _new_accounting(self, slot: ListenerSlot) -> AccountingService:
        """A listener's accounting service (the slot has what it uses of a backend:
        links, observer)."""
        service = AccountingService(cast("BuiltinPppBackend", slot), stats=self.stats)
        service.on_drained = self._drained
        if self._ctx is not None:
            service.watch(self._ctx)
        return service

    def _drained(self) -> None:
        """A draining engine has closed (its drain's last step): what follows runs in a
        task of its own, which a reload in progress (holding the lock, perhaps waiting
        for that drain to end) does not wait for."""
        task = asyncio.get_running_loop().create_task(self._after_drain_ended())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after_drain_ended(self) -> None:
        """Forget the closed engines, open those that waited for a spool (one still held
        by another draining engine waits on)."""
        async with self._lock:
            for listener in list(self.listeners.values()):
                await listener.prune()
            await self._retry_daemon()
            config = self._config
            waiting, self._after_drain = self._after_drain, set()
            if not waiting or config is None:
                return
            try:
                await self._configure(config, only=waiting)
            except StartError as exc:
                log.warning("RADIUS: after a draining engine closed: %s", exc)

    async def drop_gone(self, config: Config, *, drain: float = 0.0) -> bool:
        """Close the services of the listeners gone from ``config`` (after the daemon's
        reload closed their tunnels: their sessions' Stops went to their engines), then
        open the engines that waited for their spools; True when something changed.
        Raises StartError as :meth:`configure`."""
        async with self._lock:
            return await self._drop_gone(config, drain=drain)

    async def _drop_gone(self, config: Config, *, drain: float) -> bool:
        present = {lc.name for lc in config.listeners}
        gone = [self.listeners.pop(name) for name in sorted(set(self.listeners) - present)]
        if not gone:
            return False
        # Their tunnels are closed, but a link's release (LCP Terminate, then the Stop
        # to its engine) may still be under way: it ends first (the backend's stop is
        # idempotent and bounded by its terminate_wait; the runtime's own finds it done).
        names = {x.name for x in gone}
        links = [x for x in self.backend.links.values() if x.options.listener in names]
        await asyncio.gather(*(self.backend.stop(x.session) for x in links))
        await asyncio.gather(*(s.close(drain=drain) for x in gone for s in x.services()))
        for listener in gone:
            listener.slot.authenticator = None
            listener.auth.close()  # its sessions are closed: nothing waits for an answer
            log.info("listener %s: RADIUS: closed (the listener is gone)", listener.name)
        await self._retry_daemon()
        deferred, self._deferred = self._deferred, set()
        if deferred:
            await self._configure(config, only=deferred)
        return True

    def watch(self, ctx: L2tpContext) -> None:
        """Note the reasons the runtime's events give, in every listener's engine."""
        self._ctx = ctx
        for listener in self.listeners.values():
            for service in listener.services():
                service.watch(ctx)

    def _engines(self) -> list[AccountingService]:
        return [self.daemon, *(s for x in self.listeners.values() for s in x.services())]

    # What the Disconnect-Request server and ``l2tp ctl close`` use of the accounting
    # (DaeService.accounting, ContextTarget's ``closing``), over every engine.

    def acct_session_id(self, key: SessionKey) -> str | None:
        """The Acct-Session-Id of session ``key`` in whichever engine accounts for it."""
        for engine in self._engines():
            found = engine.acct_session_id(key)
            if found is not None:
                return found
        return None

    def note_end(self, key: SessionKey, end: SessionEnd) -> None:
        for engine in self._engines():
            engine.note_end(key, end)

    def operator_close(self, tunnel_id: int, session_id: int | None) -> None:
        for engine in self._engines():
            engine.operator_close(tunnel_id, session_id)

    def note_all(self, end: SessionEnd) -> None:
        for engine in self._engines():
            engine.note_all(end)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """The counters of each listener with clients of its own, by listener name."""
        out = {}
        for name, listener in sorted(self.listeners.items()):
            snapshot = listener.snapshot()
            if snapshot is not None:
                out[name] = snapshot
        return out

    async def close(self, *, drain: float = 0.0) -> None:
        """Stop every listener's accounting (``drain`` as the daemon's) and close its
        clients."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        listeners = list(self.listeners.values())
        await asyncio.gather(*(s.close(drain=drain) for x in listeners for s in x.services()))
        for listener in listeners:
            listener.auth.close()


async def _same_file(a: str, b: str) -> bool:
    """Whether spool paths ``a`` and ``b`` name one file (:func:`spool_keys`, off the
    loop; the same string needs no look)."""
    if a == b:
        return True
    return await asyncio.to_thread(lambda: bool(spool_keys(a) & spool_keys(b)))


DRAINING = "'s draining engine (until the sessions it accounts end)"


async def _holder(path: str, held: list[tuple[str, str, bool]]) -> tuple[str | None, bool]:
    """The (who, draining) of the first of ``held`` (who, spool path, draining) whose
    spool is the file ``path`` names (:func:`spool_keys`, in a thread: it looks at the
    file system); (None, False): none."""
    if not held:
        return None, False

    def look() -> tuple[str | None, bool]:
        keys = spool_keys(path)
        for who, spool, draining in held:
            if keys & spool_keys(spool):
                return who, draining
        return None, False

    return await asyncio.to_thread(look)
