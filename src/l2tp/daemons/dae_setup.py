"""The daemons' Dynamic Authorization server (RFC 5176): ``[radius.dae]``
(:class:`~l2tp.config.DaeSection`) turned into a running
:class:`~l2tp.radius.dae.DynamicAuthorizationServer` over the daemon's sessions
(:class:`~l2tp.radius.dae_runtime.ContextSessionDirectory`), kept up to date across
reloads. :class:`~l2tp.daemons.radius_setup.RadiusService` owns one.

Start: the client secrets are read (a ``secret_file`` that cannot be read, or a
``listen`` address that cannot be bound, is a start-up error naming the key). Reload:
new clients, secrets, ``window`` or NAS identity apply to the running server, on the
same socket, from the next request on; a new ``listen`` address closes the socket and
binds the new one, and when that fails the old one is bound again and the reload
reported incomplete. No session is touched by either. The counters run on across
reloads; removing ``[radius.dae]`` closes the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import asdict, replace
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from l2tp.config.errors import toml_string
from l2tp.config.model import DaeSection, RadiusSection
from l2tp.daemons.preflight import StartError, describe_os_error
from l2tp.radius.dae import DaeClient, DaeCounters, DynamicAuthorizationServer, NasIdentity
from l2tp.radius.dae_runtime import ContextSessionDirectory
from l2tp.runtime.context import L2tpContext

log = logging.getLogger("l2tp.radius.dae")

_Settings = tuple[DaeSection, NasIdentity, tuple[DaeClient, ...]]


def read_clients(section: DaeSection) -> tuple[DaeClient, ...]:
    """The configured clients with their secrets (files read now; raises StartError)."""
    from l2tp.daemons.radius_setup import read_secret_file  # which imports this module

    clients = []
    for index, entry in enumerate(section.clients):
        if entry.secret is not None:
            secret = entry.secret.encode("utf-8")
        else:
            assert entry.secret_file is not None
            where = f"[radius.dae] clients[{index}] secret_file = {toml_string(entry.secret_file)}"
            secret = read_secret_file(where, entry.secret_file)
        clients.append(DaeClient(entry.address, secret, entry.name or ""))
    return tuple(clients)


def nas_identity(
    section: RadiusSection, listeners: Mapping[str, RadiusSection] | None = None
) -> NasIdentity:
    """Who we are for Error-Cause 403: ``nas_identifier`` and ``nas_ip_address``, the
    values our Access-Requests carry. Without ``nas_identifier`` the Access-Requests
    carry each listener's PPP name, which can differ between listeners, so a
    NAS-Identifier in a request is not checked then. ``listeners``: the effective
    ``[listener.L.radius]`` tables by listener name, whose own identities are accepted
    too (the one server answers for every listener's sessions), each knowing its
    listeners, so that a request naming it reaches their sessions only. A listener
    whose table has the daemon's identity goes by the daemon's."""
    own = _identity(section)
    groups: dict[NasIdentity, list[str]] = {}
    for name, table in (listeners or {}).items():
        identity = _identity(table)
        if identity != own:
            groups.setdefault(identity, []).append(name)
    alternates = tuple(replace(i, listeners=tuple(names)) for i, names in groups.items())
    return replace(own, alternates=alternates)


def _identity(section: RadiusSection) -> NasIdentity:
    address = section.nas_ip_address
    return NasIdentity(
        identifier=section.nas_identifier,
        ipv4=address if isinstance(address, IPv4Address) else None,
        ipv6=address if isinstance(address, IPv6Address) else None,
    )


class DaeService:
    """The daemon's current Dynamic Authorization server, or none (module doc).

    ``builtin``: the daemon's built-in PPP backend (user names, addresses and
    Session-Timeout live there); None (pppd only, or ``--null-dataplane``): sessions
    are found by Calling-Station-Id (and Acct-Session-Id once accounting names them),
    and a CoA is refused.
    """

    def __init__(self, ctx: L2tpContext, builtin: Any = None) -> None:
        self._accounting: Any = None
        self.directory = ContextSessionDirectory(ctx, builtin)
        self.server: DynamicAuthorizationServer | None = None
        self.counters = DaeCounters()
        """Every server's, summed over reloads."""
        self._settings: _Settings | None = None

    @property
    def accounting(self) -> Any:
        """The daemon's :class:`~l2tp.daemons.radius_accounting.AccountingService`, if
        any: sessions are then found by Acct-Session-Id too, and a disconnected session's
        Stop says Disconnect-Request (Acct-Terminate-Cause Admin-Reset)."""
        return self._accounting

    @accounting.setter
    def accounting(self, service: Any) -> None:
        from l2tp.radius.records import SessionEnd

        self._accounting = service
        self.directory.acct_session_id = service.acct_session_id
        self.directory.disconnecting = lambda key: service.note_end(
            key, SessionEnd.DISCONNECT_REQUEST
        )

    async def configure(
        self, section: RadiusSection | None, listeners: Mapping[str, RadiusSection] | None = None
    ) -> bool:
        """Apply ``section`` (its ``dae``; ``listeners``: the effective listener tables,
        for their NAS identities); True when something changed. Raises StartError (a
        secret file, a listen address), leaving the current server."""
        dae = section.dae if section is not None else None
        if section is None or dae is None:
            if self.server is None:
                return False
            await self.close()
            log.info("dynamic authorization: off")
            return True
        clients = await asyncio.to_thread(read_clients, dae)
        settings = (dae, nas_identity(section, listeners), clients)
        if settings == self._settings:
            return False
        old = self._settings
        if self.server is not None and old is not None and old[0].listen == dae.listen:
            self.server.configure(
                clients,
                nas=settings[1],
                window=dae.window,
                require_event_timestamp=dae.require_event_timestamp,
            )
            self._settings = settings
            log.info("dynamic authorization: %s", _describe(settings))
            return True
        await self._rebind(settings)
        return True

    async def _rebind(self, settings: _Settings) -> None:
        """Close the current socket (it may hold the port the new address needs), bind
        the new one; when that fails, bind the old one again and raise StartError."""
        dae, nas, clients = settings
        server = DynamicAuthorizationServer(
            self.directory,
            clients,
            host=str(dae.listen.address),
            port=dae.listen.port,
            nas=nas,
            window=dae.window,
            require_event_timestamp=dae.require_event_timestamp,
            counters=self.counters,
        )
        old = self.server
        if old is not None:
            await old.close()
        try:
            await server.start()
        except OSError as exc:
            reason = f"[radius.dae] listen = {toml_string(str(dae.listen))}: "
            reason += describe_os_error(exc)
            if old is not None:
                try:
                    await old.start()
                except OSError as again:
                    self.server = self._settings = None
                    log.error(
                        "dynamic authorization: off: the old address cannot be bound again"
                        " either: %s",
                        describe_os_error(again),
                    )
            raise StartError(reason) from exc
        self.server, self._settings = server, settings
        log.info("dynamic authorization: %s", _describe(settings))

    def snapshot(self) -> dict[str, Any] | None:
        """The counters and where the server listens (no secrets); None without one."""
        if self.server is None or self._settings is None:
            return None
        return {
            "listen": str(self._settings[0].listen),
            "clients": len(self._settings[2]),
            **asdict(self.counters),
        }

    async def close(self) -> None:
        """Stop answering (requests in progress get no reply: their clients retransmit)."""
        server, self.server, self._settings = self.server, None, None
        if server is not None:
            await server.close()


def _describe(settings: _Settings) -> str:
    dae, _, clients = settings
    names = ", ".join(c.label for c in clients)
    return f"{dae.listen}, clients {names} (window {dae.window:g} s)"
