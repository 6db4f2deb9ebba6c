"""The daemons' RADIUS: ``[radius]`` (:class:`~l2tp.config.RadiusSection`) turned into a
:class:`~l2tp.radius.client.RadiusClient` and the built-in PPP's authentication hook
(:class:`~l2tp.radius.auth.RadiusAuthenticator`), kept up to date across reloads.

:class:`RadiusService` is started by :func:`l2tp.daemons.common.serve` before the
listeners open (an unreadable ``secret_file`` stops the daemon with the key that names
it) and given each reloaded file: a changed ``[radius]`` (or a changed secret file)
builds a new client and hook for new authentications; the old client is closed once the
requests already in flight have had their full time (``timeout`` x (``retries`` + 1) per
server), so a reload never denies a peer that was being checked. Removing ``[radius]``
puts the listeners back on their ``secrets`` files.

A listener with a ``[listener.L.radius]`` of its own gets a :class:`RadiusService` of
its own too (:mod:`l2tp.daemons.radius_listeners`), installed as the backend's
``authenticators[L]`` instead of ``authenticator``; this one is the daemon's.

It also owns the Dynamic Authorization server of ``[radius.dae]``
(:class:`~l2tp.daemons.dae_setup.DaeService`), which runs with or without the built-in
PPP (with ``--null-dataplane`` too): a ``[radius]`` with only ``[radius.dae]`` leaves
the listeners on their ``secrets`` files.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from l2tp.config.errors import toml_string
from l2tp.config.model import RadiusSection, RadiusServerEntry
from l2tp.daemons.dae_setup import DaeService
from l2tp.daemons.preflight import StartError, describe_os_error
from l2tp.radius.auth import RadiusAuthenticator
from l2tp.radius.client import RadiusClient, RadiusServer
from l2tp.runtime.context import L2tpContext

log = logging.getLogger("l2tp.radius")

MAX_SECRET_FILE = 4096
GRANTED = ("routes_added", "route_errors", "session_timeouts", "idle_timeouts")
"""The built-in PPP's counters of what Access-Accepts granted, shown with RADIUS's
(``l2tp ctl status``: ``radius.granted``)."""


def _read_secret(index: int, entry: RadiusServerEntry, *, key: str = "auth_servers") -> bytes:
    """The shared secret of one server (of the list ``key``): inline, or the first line
    of its file."""
    if entry.secret is not None:
        return entry.secret.encode("utf-8")
    assert entry.secret_file is not None
    where = f"[radius] {key}[{index}] secret_file = {toml_string(entry.secret_file)}"
    return read_secret_file(where, entry.secret_file)


def read_secret_file(where: str, path: str) -> bytes:
    """The first line of a secret file, stripped; StartError starting with ``where``
    (the key that names the file) when it cannot be read or is empty."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_SECRET_FILE + 1)
    except OSError as exc:
        raise StartError(f"{where}: {describe_os_error(exc)}") from exc
    if len(data) > MAX_SECRET_FILE:
        raise StartError(f"{where}: larger than {MAX_SECRET_FILE} bytes")
    lines = data.splitlines()
    secret = lines[0].strip() if lines else b""
    if not secret:
        raise StartError(f"{where}: the file is empty")
    return secret


def read_servers(section: RadiusSection) -> tuple[RadiusServer, ...]:
    """The configured authentication servers with their secrets (files read now)."""
    return tuple(
        RadiusServer(str(entry.address.address), entry.address.port, _read_secret(i, entry))
        for i, entry in enumerate(section.auth_servers)
    )


def auth_part(section: RadiusSection | None) -> RadiusSection | None:
    """What authentication uses of ``section``: None without ``auth_servers`` (a
    ``[radius]`` for accounting only: the listeners keep their secrets files); the
    accounting keys and ``[radius.dae]`` left out, so that changing only them rebuilds
    nothing here (:mod:`l2tp.daemons.radius_accounting` and :class:`DaeService` apply
    them)."""
    if section is None or not section.auth_servers:
        return None
    return replace(section, accounting=None, dae=None)


class RadiusService:
    """The daemon's current RADIUS client and hook, installed on the built-in PPP backend
    (``backend.authenticator``), and its Dynamic Authorization server (module doc)."""

    def __init__(self, backend: Any, ctx: L2tpContext | None = None) -> None:
        self.backend = backend
        """A :class:`~l2tp.runtime.builtin_ppp.BuiltinPppBackend` (or anything with an
        ``authenticator`` attribute); None: no PPP runs in-process (no authentication)."""
        self.client: RadiusClient | None = None
        self.authenticator: RadiusAuthenticator | None = None
        self._settings: tuple[RadiusSection, tuple[RadiusServer, ...]] | None = None
        self._retiring: dict[asyncio.TimerHandle, RadiusClient] = {}
        self.dae = DaeService(ctx, backend) if ctx is not None else None
        """``[radius.dae]``, over the sessions of ``ctx`` (None: no server possible)."""

    async def configure(
        self, section: RadiusSection | None, listeners: Mapping[str, RadiusSection] | None = None
    ) -> bool:
        """Apply ``section``; True when something changed. Raises StartError (a secret
        file that cannot be read, a DAE address that cannot be bound), leaving the
        current client, or server, in place; the other part is applied all the same."""
        problems: list[str] = []
        try:
            changed = await self._configure_auth(section)
        except StartError as exc:
            changed = False
            problems.append(str(exc))
        if self.dae is not None:
            try:
                changed = await self.dae.configure(section, listeners) or changed
            except StartError as exc:
                problems.append(str(exc))
        if problems:
            raise StartError("; ".join(problems))
        return changed

    async def _configure_auth(self, section: RadiusSection | None) -> bool:
        """The authentication client and hook: only with ``auth_servers`` and a
        built-in PPP backend to install the hook on."""
        section = auth_part(section)
        if section is None or self.backend is None:
            if self.client is None:
                return False
            self._retire()
            self.backend.authenticator = None
            self.client = self.authenticator = None
            self._settings = None
            log.info("RADIUS off: listeners check peers with their secrets files")
            return True
        servers = await asyncio.to_thread(read_servers, section)
        if self._settings == (section, servers):
            return False
        client = RadiusClient(
            auth_servers=servers,
            timeout=section.timeout,
            retries=section.retries,
            holddown=section.holddown,
            max_outstanding=section.max_outstanding,
        )
        authenticator = RadiusAuthenticator(
            client,
            nas_identifier=section.nas_identifier,
            nas_ip_address=section.nas_ip_address,
        )
        self._retire()
        self.client, self.authenticator, self._settings = client, authenticator, (section, servers)
        self.backend.authenticator = authenticator
        log.info(
            "RADIUS authentication via %s (timeout %.3g s, %d retries)",
            ", ".join(str(s) for s in servers),
            section.timeout,
            section.retries,
        )
        return True

    def _retire(self) -> None:
        """Close the current client once its requests in flight have had their time."""
        old, settings = self.client, self._settings
        if old is None or settings is None:
            return
        section = settings[0]
        grace = section.timeout * (section.retries + 1) * max(1, len(settings[1])) + 1.0
        loop = asyncio.get_running_loop()

        def close() -> None:
            self._retiring.pop(handle, None)
            old.close()

        handle = loop.call_later(grace, close)
        self._retiring[handle] = old

    def snapshot(self) -> dict[str, Any] | None:
        """Counters of the current client and hook, and ``dae``: the Dynamic
        Authorization server's (no secrets); None without either."""
        out: dict[str, Any] = {}
        if self.client is not None and self.authenticator is not None:
            from dataclasses import asdict

            out = {"auth": asdict(self.authenticator.counters), **self.client.snapshot()}
            counters = getattr(self.backend, "counters", None)
            if counters is not None:  # what the built-in PPP did with the Accepts' grants
                out["granted"] = {name: getattr(counters, name, 0) for name in GRANTED}
        dae = self.dae.snapshot() if self.dae is not None else None
        if dae is not None:
            out["dae"] = dae
        return out or None

    async def stop_serving(self) -> None:
        """Close the Dynamic Authorization server (the daemon is stopping: before its
        tunnels are closed, so that no request races the shutdown)."""
        if self.dae is not None:
            await self.dae.close()

    def close(self) -> None:
        """Close every client now (the daemon is stopping: its sessions are gone)."""
        for handle, old in list(self._retiring.items()):
            handle.cancel()
            old.close()
        self._retiring.clear()
        if self.client is not None:
            self.client.close()
