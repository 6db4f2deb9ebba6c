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
and a listener whose table is gone goes back to the daemon's. Its accounting engine is
then closed as the daemon's is when ``acct_servers`` is removed (what is unsent stays in
its spool for the next start).

A listener gone from the file (removed or renamed) keeps its services until
:meth:`ListenerRadius.drop_gone`, which the daemon calls once its reload has closed
that listener's tunnels: the sessions ended there still have their engine for their
Stop. An engine is never opened on a spool that another running engine holds (two
would replay each other's records, and the compaction of one would cut the other's
appends off): the daemon's (whose spool changes only at a restart), another
listener's; one held by a gone listener is opened by :meth:`ListenerRadius.drop_gone`,
once that one is closed (a listener renamed with its spool).

The reasons sessions end (an operator's close, a Disconnect-Request, the daemon
stopping, the runtime's events) go to every engine (:meth:`ListenerRadius.note_end`
...): an engine ignores the sessions it does not account for.
"""

from __future__ import annotations

import asyncio
import logging
import os.path
from typing import TYPE_CHECKING, Any, cast

from l2tp.config.errors import table_path, toml_string
from l2tp.config.model import Config, RadiusSection
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

    def __init__(self, backend: BuiltinPppBackend, name: str, stats: StatsReader | None) -> None:
        self.name = name
        self.slot = slot = ListenerSlot(backend, name)
        self.table = f"[{table_path('listener', name)}.radius]"
        self.auth = RadiusService(slot)
        # The slot has what AccountingService uses of a backend (links, observer).
        self.accounting = AccountingService(cast("BuiltinPppBackend", slot), stats=stats)

    def spool(self) -> str | None:
        """The absolute path of the spool its engine holds (None: no engine)."""
        engine = self.accounting.engine
        path = engine.spool.path if engine is not None else None
        return None if path is None else os.path.abspath(path)

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
        """As the daemon's ``radius`` status (no secrets); None: nothing of its own."""
        return combined(self.auth.snapshot(), self.accounting.snapshot())


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

    async def configure(self, config: Config, *, only: set[str] | None = None) -> bool:
        """Apply every listener's ``radius`` of ``config`` (``only``: these listeners');
        True when something changed. Raises StartError (every listener's problems in
        one), the others applied.

        The listeners gone from ``config`` are left as they are (:meth:`drop_gone`);
        those whose table is gone go first, so that their spools are free for the
        others."""
        present = {lc.name for lc in config.listeners}
        wanted = {lc.name: lc.radius for lc in config.listeners if lc.radius is not None}
        names = sorted(set(self.listeners) & present | set(wanted), key=lambda n: (n in wanted, n))
        if only is not None:
            names = [name for name in names if name in only]
        self._deferred -= set(names)
        problems: list[str] = []
        changed = False
        for name in names:
            listener = self.listeners.get(name)
            section = wanted.get(name)
            if listener is None:
                if section is None:
                    continue
                listener = self.listeners[name] = _Listener(self.backend, name, self.stats)
                if self._ctx is not None:
                    listener.accounting.watch(self._ctx)
            accounting = True
            if section is not None and section.accounting is not None and listener.spool() is None:
                holder = self._spool_holder(os.path.abspath(section.accounting.spool), present)
                if holder is not None:
                    accounting = False
                    if holder == "":  # a gone listener's: free after drop_gone
                        self._deferred.add(name)
                    else:
                        problems.append(
                            f"[{table_path('listener', name)}.radius] spool ="
                            f" {toml_string(section.accounting.spool)}: in use by {holder}"
                            " (each accounting engine needs a spool file of its own)"
                        )
            try:
                if await listener.configure(section, config.radius, accounting=accounting):
                    changed = True
                    what = "its own" if section is not None else "the daemon's"
                    log.info("listener %s: RADIUS: %s", name, what)
            except StartError as exc:
                problems.append(str(exc))
        if problems:
            raise StartError("; ".join(problems))
        return changed

    def _spool_holder(self, path: str, present: set[str]) -> str | None:
        """Who runs an engine on the spool at (absolute) ``path``: the daemon's
        ``[radius]`` or a listener's table; "" for a listener gone from the file; None:
        nobody."""
        held = self.daemon.engine.spool.path if self.daemon.engine is not None else None
        if held is not None and os.path.abspath(held) == path:
            return "[radius] (its spool changes at the next start)"
        for name, listener in self.listeners.items():
            if listener.spool() == path:
                return f"[{table_path('listener', name)}.radius]" if name in present else ""
        return None

    async def drop_gone(self, config: Config, *, drain: float = 0.0) -> bool:
        """Close the services of the listeners gone from ``config`` (after the daemon's
        reload closed their tunnels: their sessions' Stops went to their engines), then
        open the engines that waited for their spools; True when something changed.
        Raises StartError as :meth:`configure`."""
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
        await asyncio.gather(*(x.accounting.close(drain=drain) for x in gone))
        for listener in gone:
            listener.slot.authenticator = None
            listener.auth.close()  # its sessions are closed: nothing waits for an answer
            log.info("listener %s: RADIUS: closed (the listener is gone)", listener.name)
        deferred, self._deferred = self._deferred, set()
        if deferred:
            await self.configure(config, only=deferred)
        return True

    def watch(self, ctx: L2tpContext) -> None:
        """Note the reasons the runtime's events give, in every listener's engine."""
        self._ctx = ctx
        for listener in self.listeners.values():
            listener.accounting.watch(ctx)

    def _engines(self) -> list[AccountingService]:
        return [self.daemon, *(x.accounting for x in self.listeners.values())]

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
        listeners = list(self.listeners.values())
        await asyncio.gather(*(x.accounting.close(drain=drain) for x in listeners))
        for listener in listeners:
            listener.auth.close()
