"""The daemons' RADIUS accounting (RFC 2866, RFC 2867): ``[radius]``'s ``acct_servers``
turned into an :class:`~l2tp.radius.accounting.AccountingEngine` with its spool, fed by
the built-in PPP (:class:`~l2tp.radius.session_accounting.PppAccounting` as the backend's
``observer``), told why sessions end, and drained at shutdown.

A sibling of :class:`~l2tp.daemons.radius_setup.RadiusService` (authentication), with a
client of its own: a reload that changes only the accounting servers leaves the
authentication client alone, and the other way round.

Reloads: the engine (its sessions, its spool, its Acct-Session-Id instance) is kept for
the daemon's life; a changed server list or secret builds a new
:class:`~l2tp.radius.client.RadiusClient` and swaps it in (the old one is closed once
the requests in flight have had their full time, as the authentication client is), and
the interval, tunnel records and NAS identity apply from then on. The spool's file and
bounds are read once: changing them needs a restart (the reload says so).

Removing ``acct_servers`` takes the engine out of service, not out of the daemon: the
sessions (and, with ``tunnel_accounting``, the tunnels) it sent a Start for keep it,
with its servers, for their Interim-Updates and their Stop, while the sessions that
start from then on are not its (the backend's observer is no longer its). The engine
*drains*: once nothing it accounts is left (no session up, no Stop being made, no link
that started under it still coming up), its records waiting for an answer get the
time a request has (every server's retries), then it closes (what is still unsent
stays in its spool for the next start on that file). A reload that gives
``acct_servers`` back while it drains takes it back into service (with the new
servers); the spool it holds stays held until it is closed. Why, rather than closing
at once: every Start has its Stop in the same accounting domain (the engine, its spool,
its servers), so that a server never keeps a session open that ended (RFC 2866 has
nothing on reconfiguration; a server that got a Start and never a Stop bills the
session until a NAS reboot or a stale-session sweep closes it).

Why a session ended (the Stop's Acct-Terminate-Cause, RFC 2866 5.10): the built-in PPP
knows when the link ended by itself; otherwise the first reason noted wins
(:meth:`PppAccounting.note_end`): the operator (``l2tp ctl close``: Admin-Reset), the
daemon stopping (:meth:`AccountingService.note_all` before the tunnels close:
Admin-Reboot), and the runtime's events (:meth:`AccountingService.watch`): the peer's
CDN by its Result Code (:func:`~l2tp.radius.records.end_from_cdn`), and a session
closed because its tunnel went (Lost-Service). The events reach the watcher in the loop
turn after the control plane handled them, while the link's release (which reads the
note) is still awaiting its own tear-down.

Tunnel records (``tunnel_accounting``, RFC 2867 3.1-3.3), from the same events, for
tunnels a LAC sets up with us: Tunnel-Start at ``TunnelEstablished``, Tunnel-Stop at
its ``TunnelClosed``, and Tunnel-Reject at the ``TunnelClosed`` of one that was never
established, if the LAC had answered our SCCRP (:func:`rejected_end` says why only
those). A built-in PPP session that never came up gets its Tunnel-Link-Reject from the
observer (:meth:`PppAccounting.session_failed`); a note taken while its PPP was
starting (``note_end`` for a key in ``backend.links``) is its cause.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from l2tp.config.errors import toml_string
from l2tp.config.model import RadiusAccounting, RadiusSection
from l2tp.daemons.preflight import StartError, describe_os_error
from l2tp.daemons.radius_setup import _read_secret
from l2tp.protocol.constants import StopCcnResult
from l2tp.protocol.events import Role, SessionClosed, TunnelClosed, TunnelEstablished
from l2tp.radius.accounting import AccountingEngine
from l2tp.radius.auth import RadiusAuthorization
from l2tp.radius.client import RadiusClient, RadiusServer
from l2tp.radius.records import NasIdentity, SessionEnd, TunnelDescription, end_from_cdn
from l2tp.radius.session_accounting import (
    AcceptInfo,
    LostReader,
    PppAccounting,
    StatsReader,
)
from l2tp.radius.spool import Spool
from l2tp.runtime.context import L2tpContext

if TYPE_CHECKING:
    from l2tp.runtime.builtin_ppp import BuiltinPppBackend
    from l2tp.runtime.handles import TunnelHandle

__all__ = ["AccountingService", "read_acct_servers"]

log = logging.getLogger("l2tp.radius.accounting")

SessionKey = tuple[int, int]

DRAIN_POLL = 1.0
"""Seconds between two looks at whether a draining engine has anything left to account
(a look is a pass over the built-in PPP's links: cheap, and only while draining)."""


def read_acct_servers(accounting: RadiusAccounting) -> tuple[RadiusServer, ...]:
    """The configured accounting servers with their secrets (files read now)."""
    return tuple(
        RadiusServer(
            str(entry.address.address),
            entry.address.port,
            _read_secret(i, entry, key="acct_servers"),
        )
        for i, entry in enumerate(accounting.servers)
    )


def nas_identity(section: RadiusSection) -> NasIdentity:
    """NAS-Identifier / NAS-IP-Address: RFC 2866 4.1 wants one of them in every record;
    without either configured, the host name identifies the NAS (as in the
    Access-Requests)."""
    address = section.nas_ip_address
    ip = str(address) if address is not None and address.version == 4 else None
    identifier = section.nas_identifier
    if identifier is None and ip is None:
        identifier = socket.gethostname()
    return NasIdentity(identifier=identifier, ip_address=ip)


class AccountingService:
    """The daemon's accounting engine, its client and the PPP observer (module doc).

    ``backend``: the built-in PPP backend whose ``observer`` this sets and whose links
    say what each session's Access-Accept granted. ``stats``: the counter reader
    (default: the kernel's interface counters); ``lost``: the Acct-Tunnel-Packets-Lost
    reader (default: the kernel L2TP session's statistics, :class:`KernelPacketsLost`).
    ``drain_poll``: seconds between two looks at a draining engine (module doc;
    default :data:`DRAIN_POLL`).
    ``on_drained``: called once a draining engine is closed (its spool free).
    ``spool_holder(path)``: who else runs an engine on the spool ``path`` names (None:
    nobody), asked before an engine is opened (the listeners' engines, for the daemon's).
    """

    def __init__(
        self,
        backend: BuiltinPppBackend,
        *,
        stats: StatsReader | None = None,
        lost: LostReader | None = None,
        drain_poll: float | None = None,
    ) -> None:
        self.backend = backend
        self.stats = stats
        self.lost = lost
        self.drain_poll = DRAIN_POLL if drain_poll is None else drain_poll
        self.on_drained: Callable[[], None] | None = None
        self.spool_holder: Callable[[str], Awaitable[str | None]] | None = None
        self._drain: asyncio.Task[None] | None = None
        self._drain_closing = False
        """The drain is closing the engine (not to be cancelled: it is quick)."""
        self._closing_spool: str | None = None
        self.engine: AccountingEngine | None = None
        self.observer: PppAccounting | None = None
        self.client: RadiusClient | None = None
        self._settings: tuple[RadiusSection, tuple[RadiusServer, ...]] | None = None
        self._spool_settings: tuple[str, int, int] | None = None
        self._retiring: dict[asyncio.TimerHandle, RadiusClient] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._tunnels: dict[int, tuple[TunnelDescription, float]] = {}
        """The LNS tunnels up, for their Tunnel-Stop (``tunnel_accounting``)."""
        self._tunnel_ends: dict[int, SessionEnd] = {}

    # ------------------------------------------------------------------ configuration

    async def configure(self, section: RadiusSection | None) -> bool:
        """Apply ``section``'s accounting; True when something changed. Raises
        StartError (a secret file that cannot be read, a spool that cannot be opened,
        spool settings changed by a reload), leaving what runs in place."""
        accounting = section.accounting if section is not None else None
        if section is None or accounting is None:
            if self.engine is None or self._drain is not None:
                return False
            await self._retire_engine()
            return True
        servers = await asyncio.to_thread(read_acct_servers, accounting)
        taken_back = await self._take_back()
        settings = (replace(section, auth_servers=()), servers)
        if self._settings == settings:
            return taken_back
        spool_settings = (
            accounting.spool,
            accounting.spool_max_records,
            accounting.spool_max_bytes,
        )
        spool_changed = self._spool_settings not in (None, spool_settings)
        client = RadiusClient(
            acct_servers=servers,
            timeout=section.timeout,
            retries=section.retries,
            holddown=section.holddown,
            max_outstanding=section.max_outstanding,
        )
        interval = float(accounting.interim_interval) if accounting.interim_interval else None
        if self.engine is None:
            holder = await self.spool_holder(accounting.spool) if self.spool_holder else None
            if holder is not None:
                client.close()
                raise StartError(
                    f"[radius] spool = {toml_string(accounting.spool)}: in use by {holder}"
                    " (each accounting engine needs a spool file of its own)"
                )
            spool = Spool(
                accounting.spool,
                max_entries=accounting.spool_max_records,
                max_bytes=accounting.spool_max_bytes,
            )
            engine = AccountingEngine(
                client,
                spool,
                nas=nas_identity(section),
                interim_interval=interval,
                tunnel_accounting=accounting.tunnel_accounting,
                on_off=accounting.on_off,
            )
            try:
                # The spool logs write errors and goes on (a full disk must not stop
                # the sessions); a spool that cannot be written at all stops the start.
                await asyncio.to_thread(_check_writable, accounting.spool)
                await engine.start()  # opens the spool: replays what the last run left
            except OSError as exc:
                client.close()
                where = f"[radius] spool = {toml_string(accounting.spool)}"
                raise StartError(f"{where}: {describe_os_error(exc)}") from exc
            self.engine, self._spool_settings = engine, spool_settings
            self.observer = PppAccounting(
                engine, accepted=self.accepted, stats=self.stats, lost=self.lost, denied=self.denied
            )
            self.backend.observer = self.observer
        else:
            self._retire()
            self.engine.client = client
            self.engine.nas = nas_identity(section)
            self.engine.interim_interval = interval
            self.engine.tunnel_accounting = accounting.tunnel_accounting
            self.engine.on_off = accounting.on_off
        self.client, self._settings = client, settings
        log.info(
            "RADIUS accounting via %s (spool %s)",
            ", ".join(str(s) for s in servers),
            self.engine.spool.path,
        )
        if spool_changed:
            raise StartError(
                "[radius] spool, spool_max_records and spool_max_bytes take effect at the"
                " next start (the running spool is kept; the other keys are applied)"
            )
        return True

    # ------------------------------------------------------------------ draining

    @property
    def draining(self) -> bool:
        """The engine is out of service, kept for what it accounts (module doc)."""
        return self._drain is not None

    @property
    def spool_path(self) -> str | None:
        """The spool file its engine holds, in service, draining or being closed (None:
        none held)."""
        return self.engine.spool.path if self.engine is not None else self._closing_spool

    def busy(self) -> bool:
        """The engine still accounts for something: a session up (or its Stop being
        made), a built-in PPP link that started under it and may still come up, a
        tunnel that had its Tunnel-Start."""
        observer = self.observer
        if observer is None:
            return False
        if observer.active or observer.stopping or self._tunnels:
            return True
        return any(
            link.settings.observer is observer and not link.released
            for link in self.backend.links.values()
        )

    def _grace(self) -> float:
        """The time a request has: every server's retries, and a second."""
        settings = self._settings
        if settings is None:
            return 0.0
        section = settings[0]
        return section.timeout * (section.retries + 1) * max(1, len(settings[1])) + 1.0

    async def _retire_engine(self) -> None:
        """``acct_servers`` removed: out of service now, closed once drained."""
        engine = self.engine
        assert engine is not None
        if self.backend.observer is self.observer:
            self.backend.observer = None  # the sessions starting now are not its
        if not self.busy() and not engine.spool.pending:
            await self._stop_engine(drain=0.0)
            log.info("RADIUS accounting off")
            return
        observer = self.observer
        sessions = len(observer.active) if observer is not None else 0
        log.info(
            "RADIUS accounting off for new sessions; the engine (spool %s) stays for the"
            " %d session(s) it accounts, until they end",
            engine.spool.path,
            sessions,
        )
        self._drain_closing = False
        self._drain = asyncio.get_running_loop().create_task(self._drain_engine())

    async def _drain_engine(self) -> None:
        """Wait until nothing is left to account, give the records their time, close."""
        engine = self.engine
        assert engine is not None
        while self.busy():
            await asyncio.sleep(self.drain_poll)
        await engine.wait_sent(self._grace())
        self._drain_closing = True
        await self._stop_engine(drain=0.0)
        log.info("RADIUS accounting: the draining engine's sessions have ended; closed")
        self._drain = None
        if self.on_drained is not None:
            self.on_drained()

    async def _end_drain(self, *, take_back: bool) -> bool:
        """Stop draining: cancelled while it waits (True: the engine is still here), or
        awaited while it closes the engine (False). The engine goes back into service
        with ``take_back``."""
        task = self._drain
        if task is None:
            return False
        if not self._drain_closing:
            task.cancel()
        await asyncio.wait((task,))
        self._drain = None
        if self.engine is None:
            return False
        if take_back:
            self.backend.observer = self.observer
            log.info("RADIUS accounting: the draining engine is back in service")
        return True

    async def _take_back(self) -> bool:
        """``acct_servers`` given back while the engine drains: it serves again (True);
        one that was already closing has closed first (its spool free)."""
        return await self._end_drain(take_back=True)

    def _retire(self) -> None:
        """Close the current client once its requests in flight have had their time."""
        old, settings = self.client, self._settings
        if old is None or settings is None:
            return
        grace = self._grace()

        def close() -> None:
            self._retiring.pop(handle, None)
            old.close()

        handle = asyncio.get_running_loop().call_later(grace, close)
        self._retiring[handle] = old

    # ------------------------------------------------------------------ sessions

    def accepted(self, key: SessionKey) -> AcceptInfo | None:
        """What the session's Access-Accept granted (None: not authenticated through
        RADIUS, so the records say Acct-Authentic Local)."""
        link = self.backend.links.get(key)
        granted = link.granted if link is not None else None
        authorization = granted.authorization if granted is not None else None
        if not isinstance(authorization, RadiusAuthorization):
            return None
        return AcceptInfo(
            classes=authorization.classes,
            interim_interval=authorization.acct_interim_interval,
        )

    def denied(self, key: SessionKey) -> object | None:
        """What the verifier's last denial of session ``key`` said (``authorization``:
        :class:`~l2tp.radius.auth.NoVerdict` when no RADIUS server decided), or None."""
        link = self.backend.links.get(key)
        denial = link.denied if link is not None else None
        return denial.authorization if denial is not None else None

    def acct_session_id(self, key: SessionKey) -> str | None:
        """The Acct-Session-Id of session ``key`` (None: not accounted). The lookup the
        Disconnect-Request server's session directory takes
        (:class:`~l2tp.radius.dae_runtime.ContextSessionDirectory`)."""
        return self.observer.active.get(key) if self.observer is not None else None

    def note_end(self, key: SessionKey, end: SessionEnd) -> None:
        """Why session ``key`` is about to end, if nothing said so before (a session
        whose PPP is not up yet too: the cause of its Tunnel-Link-Reject)."""
        observer = self.observer
        if observer is not None:
            # A link that reports to this observer ends with session_down or
            # session_failed, which take the note; one started before it would not.
            link = self.backend.links.get(key)
            starting = link is not None and link.settings.observer is observer
            observer.note_end(key, end, starting=starting)

    def _keys(self) -> set[SessionKey]:
        """The accounted sessions and the built-in PPP links not up yet."""
        keys = set(self.backend.links)
        if self.observer is not None:
            keys.update(self.observer.active)
        return keys

    def note_tunnel(self, tunnel_id: int, end: SessionEnd) -> None:
        """Why tunnel ``tunnel_id`` and every accounted session in it is about to end."""
        if tunnel_id in self._tunnels:
            self._tunnel_ends.setdefault(tunnel_id, end)
        for key in self._keys():
            if key[0] == tunnel_id:
                self.note_end(key, end)

    def operator_close(self, tunnel_id: int, session_id: int | None) -> None:
        """``l2tp ctl close``: the session (or every session of the tunnel) ends by the
        operator's hand: Acct-Terminate-Cause Admin-Reset."""
        if session_id is None:
            self.note_tunnel(tunnel_id, SessionEnd.ADMIN_CLOSE)
        else:
            self.note_end((tunnel_id, session_id), SessionEnd.ADMIN_CLOSE)

    def note_all(self, end: SessionEnd) -> None:
        """Why every accounted session and tunnel is about to end (the daemon stopping)."""
        for tunnel_id in self._tunnels:
            self._tunnel_ends.setdefault(tunnel_id, end)
        for key in self._keys():
            self.note_end(key, end)

    def watch(self, ctx: L2tpContext) -> None:
        """Note the reasons the runtime's events give (module doc); until :meth:`close`."""
        if self._watcher is None:
            subscription = ctx.events()
            self._watcher = asyncio.get_running_loop().create_task(self._watch(ctx, subscription))

    async def _watch(self, ctx: L2tpContext, subscription: Any) -> None:
        async for event in subscription:
            if isinstance(event, SessionClosed):
                self.note_end((event.tunnel_id, event.session_id), closed_end(ctx, event))
            elif isinstance(event, TunnelEstablished):
                self._tunnel_up(ctx, event)
            elif isinstance(event, TunnelClosed):
                if event.tunnel_id in self._tunnels:
                    self._tunnel_down(event)
                else:
                    self._tunnel_rejected(ctx, event)

    def _tunnel_up(self, ctx: L2tpContext, event: TunnelEstablished) -> None:
        """Tunnel-Start (RFC 2867 3.1) for a tunnel a LAC set up with us."""
        engine, th = self.engine, ctx.tunnel(event.tunnel_id)
        if engine is None or not engine.tunnel_accounting or th is None or th.role is not Role.LNS:
            return
        if self._drain is not None:  # out of service: new tunnels are not its
            return
        description = _describe_tunnel(
            engine, th, event.tunnel_id, event.peer.tunnel_id, event.peer.host_name or None
        )
        self._tunnels[event.tunnel_id] = (description, engine.clock.time())
        engine.tunnel_started(description)

    def _tunnel_rejected(self, ctx: L2tpContext, event: TunnelClosed) -> None:
        """Tunnel-Reject (RFC 2867 3.3) for a tunnel a LAC tried to set up with us that
        ended before it was established (:func:`rejected_end` says which count)."""
        engine, th = self.engine, ctx.tunnel(event.tunnel_id)
        if engine is None or not engine.tunnel_accounting or th is None or self._drain is not None:
            return
        if th.role is not Role.LNS or th.established_at is not None:
            return
        end = rejected_end(th, event)
        if end is None:
            return
        peer = th.tunnel.peer
        description = _describe_tunnel(
            engine,
            th,
            event.tunnel_id,
            peer.tunnel_id if peer is not None else th.tunnel.peer_tunnel_id,
            peer.host_name or None if peer is not None else None,
        )
        engine.tunnel_rejected(description, end)

    def _tunnel_down(self, event: TunnelClosed) -> None:
        """Tunnel-Stop (RFC 2867 3.2) for a tunnel that had a Tunnel-Start."""
        known = self._tunnels.pop(event.tunnel_id, None)
        noted = self._tunnel_ends.pop(event.tunnel_id, None)
        if known is None or self.engine is None:
            return
        description, started_at = known
        end = noted or (
            SessionEnd.TUNNEL_LOST
            if event.by_peer or event.reason is None
            else SessionEnd.NAS_REQUEST
        )
        self.engine.tunnel_stopped(description, end, started_at=started_at)

    # ------------------------------------------------------------------ counters, end

    def snapshot(self) -> dict[str, Any] | None:
        """The engine's and spool's counters and the accounting servers' (no secrets);
        None without accounting."""
        if self.engine is None or self.client is None:
            return None
        client = self.client.snapshot()
        snapshot: dict[str, Any] = {
            **self.engine.snapshot(),
            "servers": client["servers"],
            "outstanding": client["outstanding"],
        }
        if self.draining:  # out of service, kept for the sessions it accounts
            snapshot["draining"] = True
        return snapshot

    async def close(self, *, drain: float = 0.0) -> None:
        """Stop: up to ``drain`` seconds for the records waiting to be acknowledged;
        what is left stays in the spool for the next start (RFC 2866: nothing lost)."""
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        await self._end_drain(take_back=False)  # a draining engine closes as any
        await self._stop_engine(drain=drain)

    async def _stop_engine(self, *, drain: float) -> None:
        engine, observer = self.engine, self.observer
        self.engine = self.observer = None
        if self.backend.observer is observer:
            self.backend.observer = None
        if engine is not None:
            self._closing_spool = engine.spool.path
            try:
                await engine.close(drain=drain)
            except Exception:
                log.exception("accounting: closing the engine failed")
            self._closing_spool = None
            left = len(engine.spool.pending)
            if left:
                log.info("accounting: %d record(s) kept in the spool for the next start", left)
        if observer is not None:
            aclose = getattr(observer.stats, "aclose", None)
            if aclose is not None:
                await aclose()
        for handle, old in list(self._retiring.items()):
            handle.cancel()
            old.close()
        self._retiring.clear()
        if self.client is not None:
            self.client.close()
        self.client = None
        self._settings = self._spool_settings = None


def _describe_tunnel(
    engine: AccountingEngine,
    th: TunnelHandle,
    tunnel_id: int,
    peer_tunnel_id: int,
    host_name: str | None,
) -> TunnelDescription:
    """A tunnel as RFC 2867 describes it, with a fresh Acct-Session-Id; our endpoint is
    the socket's address, or ``nas_ip_address`` for a wildcard socket."""
    peer_host = str(th.peer[0])
    try:
        local_host = str(th.sock.getsockname()[0])
    except OSError:
        local_host = ""
    if local_host in ("", "0.0.0.0", "::") and engine.nas.ip_address:
        local_host = engine.nas.ip_address
    return TunnelDescription(
        tunnel_id=tunnel_id,
        peer_tunnel_id=peer_tunnel_id,
        client_endpoint=peer_host,
        server_endpoint=local_host,
        ipv6=_is_ipv6(peer_host),
        acct_session_id=engine.new_session_id(),
        client_auth_id=host_name,
    )


def rejected_end(th: TunnelHandle, event: TunnelClosed) -> SessionEnd | None:
    """Why an LNS tunnel that was never established was rejected (Tunnel-Reject's
    Acct-Terminate-Cause), or None when it does not count as a LAC's attempt.

    It counts once the LAC has shown that it is at its address: it answered our SCCRP
    with a message of its own (an SCCCN, or a StopCCN), so the tunnel handed up more
    than the SCCRQ. That covers a failed tunnel authentication (RFC 2661 5.1.1: the
    SCCCN's Challenge Response is wrong, or the LAC found ours wrong) and a LAC's
    StopCCN during set-up. Not counted: half-open tunnels that heard nothing but an
    SCCRQ (set-up timed out, evicted by the pending limit, refused from the SCCRQ alone)
    and SCCRQs refused at the tunnel limit, which have no tunnel at all (a stateless
    StopCCN, so that a refusal stays cheap). Their source address is unproven: a flood
    of spoofed SCCRQs must not fill the accounting spool, whose bound would then drop
    the records of real sessions. The protocol listener counts them
    (:class:`~l2tp.protocol.listener.ListenerCounters`).

    The cause: tunnel authentication failed (StopCCN 4, RFC 2661 4.4.2, whichever side
    found the other's Challenge Response wrong: the shared secrets differ, and which
    one is wrong cannot be told): User-Error; any other StopCCN of the LAC:
    User-Request; the peer went silent: Lost-Service; anything else we ended it for:
    NAS-Request.
    """
    if event.replaced_by is not None or th.tunnel.counters.messages < 2:
        return None
    reason = event.reason
    if reason is not None and reason.result == StopCcnResult.NOT_AUTHORIZED:
        return SessionEnd.AUTH_FAILED
    if event.by_peer:
        return SessionEnd.PEER_CDN
    if reason is None:
        return SessionEnd.TUNNEL_LOST
    return SessionEnd.NAS_REQUEST


def _is_ipv6(host: str) -> bool:
    """Tunnel-Medium-Type from the peer's address (RFC 2868 3.2), parsed, not guessed."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).version == 6
    except ValueError:
        return False


def _check_writable(path: str) -> None:
    """Raise OSError unless the spool file can be opened for appending (created if new)."""
    with open(path, "ab"):
        pass


def closed_end(ctx: L2tpContext, event: SessionClosed) -> SessionEnd:
    """The :class:`SessionEnd` of a closed session: its tunnel went (Lost-Service), or
    the CDN by its Result Code (ours: NAS-Request)."""
    th = ctx.tunnel(event.tunnel_id)
    if th is None or th.closed is not None:
        return SessionEnd.TUNNEL_LOST
    if event.reason is None:
        return SessionEnd.NAS_REQUEST
    return end_from_cdn(event.reason.result, by_peer=event.by_peer)
