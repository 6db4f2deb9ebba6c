"""Built-in PPP: run PPP sessions in this process on the kernel's PPP channels, without pppd.

:class:`BuiltinPppBackend` is a :class:`~l2tp.runtime.backend.SessionBackend` (the contract
of :mod:`l2tp.runtime.backend`): for every established PPP session it opens the session's
PPPoL2TP socket, attaches a ``/dev/ppp`` channel to it and runs the sans-IO PPP core
(:mod:`l2tp.ppp`) there, one :class:`~l2tp.runtime.ppp_link.PppLink` per session, all on
the event loop (``loop.add_reader`` and one ``loop.call_at`` timer per session; no thread
and no process per session). When LCP reaches the network phase it creates the PPP unit
and its interface; when the link ends by itself it reports the CDN Result Code of
:func:`~l2tp.runtime.ppp_link.map_ending`; :meth:`BuiltinPppBackend.stop` sends an LCP
Terminate-Request, waits at most ``terminate_wait`` seconds and releases every fd.

Roles (RFC 1661 3.5): on the LNS (``session.role is Role.LNS``) we are the authenticator
and check the peer with the session's secrets file or with the backend's ``authenticator``
hook (:class:`~l2tp.runtime.ppp_hooks.PppAuthenticator`, where RADIUS plugs in: the
session's listener's own hook in ``authenticators`` if it has one,
:meth:`BuiltinPppBackend.authenticator_for`); on the LAC we are the peer and authenticate
with the configured ``user`` and ``password``.

:class:`DispatchingBackend` lets one daemon serve both kinds of session: each session's
:attr:`~l2tp.runtime.backend.SessionOptions.builtin_ppp` (from ``ppp = "builtin"`` in the
configuration) picks the built-in backend, its absence pppd.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import Callable
from ipaddress import IPv4Network

from l2tp.kernel.ppp_device import MAX_FRAME, LinuxPppKernel, PppChannel
from l2tp.kernel.ppp_device import close_channel as _close_channel
from l2tp.kernel.ppp_device import raise_fd_limit as _raise_fd_limit
from l2tp.ppp.secrets import WILDCARD
from l2tp.protocol.events import Role
from l2tp.runtime.backend import (
    BackendSession,
    EndedSessions,
    SessionBackend,
    SessionOptions,
    reports_interface,
)
from l2tp.runtime.ppp_hooks import (
    AddressPool,
    AuthContext,
    BuiltinPppOptions,
    PppAuthenticator,
    SecretsFileAuthenticator,
)
from l2tp.runtime.ppp_link import LinkSettings, PppKernel, PppLink
from l2tp.runtime.ppp_observer import PppSessionView, SessionObserver
from l2tp.runtime.ppp_outcome import BuiltinPppCounters, Ending, map_ending
from l2tp.runtime.randomness import random_bytes as default_random_bytes

__all__ = [
    "AddressPool",
    "AuthContext",
    "BuiltinPppBackend",
    "BuiltinPppCounters",
    "BuiltinPppOptions",
    "DispatchingBackend",
    "Ending",
    "PppAuthenticator",
    "PppSessionView",
    "SecretsFileAuthenticator",
    "SessionObserver",
    "map_ending",
]

log = logging.getLogger(__name__)

DEFAULT_TERMINATE_WAIT = 1.0
"""Seconds :meth:`BuiltinPppBackend.stop` waits for the peer's Terminate-Ack. Short: the
session is ending anyway and its L2TP peer is often gone already (StopCCN, CDN); all
sessions wait at once, so a daemon's shutdown takes this long, not this times N."""


class BuiltinPppBackend:
    """:class:`~l2tp.runtime.backend.SessionBackend` running PPP in-process (module doc).

    ``netns``: the namespace of the sessions' interfaces; by default the data plane's
    (``session.dataplane.netns``). ``authenticator``: a hook that checks every
    authenticator-side session instead of its ``secrets`` file (RADIUS). ``kernel``: the
    device layer (tests pass a fake). ``hostname``: our PPP name when a session's options
    name none (default: the host name, as pppd). ``raise_fd_limit``: raise the soft
    ``RLIMIT_NOFILE`` to the hard one (each session holds three fds here, where pppd held
    them in its own process; 1024 would stop the daemon at ~330 sessions). ``observer``:
    told when each session is up and down (accounting, :mod:`.ppp_observer`).
    """

    def __init__(
        self,
        *,
        netns: str | None = None,
        authenticator: PppAuthenticator | None = None,
        kernel: PppKernel | None = None,
        terminate_wait: float = DEFAULT_TERMINATE_WAIT,
        hostname: str | None = None,
        random_bytes: Callable[[int], bytes] = default_random_bytes,
        raise_fd_limit: bool = True,
        observer: SessionObserver | None = None,
    ) -> None:
        if raise_fd_limit:
            before, after = _raise_fd_limit()
            if after != before:
                log.info("file descriptor limit raised from %d to %d", before, after)
        self.netns = netns
        self.authenticator = authenticator
        self.observer = observer
        self.authenticators: dict[str, PppAuthenticator] = {}
        """Hooks of listeners with RADIUS of their own, by listener name
        (:attr:`BuiltinPppOptions.listener`); the others' sessions use ``authenticator``."""
        self.observers: dict[str, SessionObserver] = {}
        """Observers of listeners with accounting of their own, as ``authenticators``."""
        self.kernel: PppKernel = kernel if kernel is not None else LinuxPppKernel()
        self.terminate_wait = terminate_wait
        self.hostname = hostname or socket.gethostname() or "python-l2tp"
        self.random_bytes = random_bytes
        self.counters = BuiltinPppCounters()
        self.reports_interface = True
        """Each session's interface is reported once made (backend.py, step 3)."""
        self.links: dict[tuple[int, int], PppLink] = {}
        """The running links by session key (tests and diagnostics)."""
        self.endings: EndedSessions[Ending | None] = EndedSessions()
        """How the last link of each recently ended session key ended (None: stopped by
        the control plane before anything went wrong), for diagnostics and tests; the
        last :data:`~l2tp.runtime.backend.ENDED_KEPT` only."""
        self._secrets: dict[str, SecretsFileAuthenticator] = {}
        self._pools: dict[IPv4Network, AddressPool] = {}
        self._read_buffer = bytearray(MAX_FRAME)

    def _netns_for(self, session: BackendSession) -> str | None:
        if self.netns is not None:
            return self.netns
        netns = getattr(session.dataplane, "netns", None)
        return netns if isinstance(netns, str) else None

    def pool(self, options: BuiltinPppOptions) -> AddressPool | None:
        """The shared pool of ``options.address_pool`` (one per network, whoever names it)."""
        network = options.address_pool
        if network is None:
            return None
        pool = self._pools.get(network)
        if pool is None:
            pool = self._pools[network] = AddressPool(network)
        if options.local_address is not None:
            pool.exclude(options.local_address)
        return pool

    async def _hook_for(
        self, session: BackendSession, options: BuiltinPppOptions
    ) -> PppAuthenticator | None:
        if session.role is not Role.LNS or not options.auth:
            return None
        hook = self.authenticator_for(options)
        if hook is not None:
            return hook
        if options.secrets is None:
            raise ValueError(
                "the built-in PPP authenticator needs a secrets file (or an authenticator hook)"
            )
        return await self._secrets_file(options.secrets)

    def authenticator_for(self, options: BuiltinPppOptions) -> PppAuthenticator | None:
        """The hook checking a session of ``options.listener``: that listener's own, or
        the daemon-wide ``authenticator`` (None: the session's secrets file)."""
        own = self.authenticators.get(options.listener) if options.listener else None
        return own if own is not None else self.authenticator

    def observer_for(self, options: BuiltinPppOptions) -> SessionObserver | None:
        """The observer (accounting) of a session of ``options.listener``: that
        listener's own, or the daemon-wide ``observer``."""
        own = self.observers.get(options.listener) if options.listener else None
        return own if own is not None else self.observer

    async def _secrets_file(self, path: str) -> SecretsFileAuthenticator:
        """The (shared, cached) secrets file at ``path``, re-read if it changed."""
        secrets = self._secrets.get(path)
        if secrets is None:
            secrets = self._secrets[path] = SecretsFileAuthenticator(path)
        await secrets.refresh()
        return secrets

    async def _peer_password(self, options: BuiltinPppOptions) -> BuiltinPppOptions:
        """The peer side's options with the password filled in from its secrets file.

        As pppd's client does: the line whose client is ``user`` and whose server is
        ``remote_name`` (pppd's ``remotename``), a ``*`` on either side matching any
        name, an exact name beating a wildcard (:class:`l2tp.ppp.secrets.SecretsIndex`).
        """
        if options.user is None or options.password is not None or options.secrets is None:
            return options
        index = (await self._secrets_file(options.secrets)).index
        entry = index.find(options.user, options.remote_name or WILDCARD) if index else None
        if entry is None:
            server = options.remote_name or "*"
            raise ValueError(
                f"secrets file {options.secrets}: no secret for user {options.user!r}"
                f" and server {server!r}"
            )
        return dataclasses.replace(options, password=entry.secret)

    async def prepare(self, session: BackendSession) -> None:
        """Open the PPPoL2TP socket and attach the channel of a call not yet established,
        without starting PPP (:meth:`PppLink.attach`): an LNS does this before its ICRP,
        so the LAC's first LCP frame, sent right after its ICCN, waits in the channel's
        queue instead of reaching a kernel without the session's socket (issue 17).
        :meth:`start` then starts LCP; :meth:`stop` releases a link never started.

        Raises as :meth:`start` does, with nothing left open.
        """
        self.links[session.key] = await self._new_link(session)

    async def start(self, session: BackendSession) -> None:
        """Start the session's PPP (backend.py step 3): returns once LCP is under way.
        A link :meth:`prepare` attached starts on its channel, with ``session`` (the
        established call) as its description.

        Raises ValueError (unusable options or secrets file), KernelError or OSError (the
        socket or channel); nothing is left open then.
        """
        key = session.key
        link = self.links.get(key)
        if link is not None and link.started_at is None and not link.released:
            try:
                link.start(session)
            except BaseException:
                del self.links[key]  # start() closed its fds; stop() is not called now
                raise
            return
        link = await self._new_link(session)
        link.start()
        self.links[key] = link

    async def _new_link(self, session: BackendSession) -> PppLink:
        """The link of a session not yet running: secrets read, its PPPoL2TP socket and
        channel opened (off the loop where the kernel layer can) and attached, LCP not
        started. Raises with nothing left open."""
        key = session.key
        if key in self.links:
            raise RuntimeError(f"built-in PPP already running for session {key}")
        options = session.options.builtin_ppp or BuiltinPppOptions()
        hook = await self._hook_for(session, options)
        if session.role is not Role.LNS:
            options = await self._peer_password(options)
        if key in self.links:  # started twice while the secrets were being read
            raise RuntimeError(f"built-in PPP already running for session {key}")
        netns = self._netns_for(session)
        channel = await self._open_channel(session, netns)
        if key in self.links:  # started twice while the channel was being opened
            if channel is not None:
                _close_channel(channel)
            raise RuntimeError(f"built-in PPP already running for session {key}")
        settings = LinkSettings(
            kernel=self.kernel,
            netns=netns,
            server=options.name or self.hostname,
            hook=hook,
            pool=self.pool(options) if session.role is Role.LNS else None,
            counters=self.counters,
            terminate_wait=self.terminate_wait,
            random_bytes=self.random_bytes,
            read_buffer=self._read_buffer,
            observer=self.observer_for(options),
        )
        try:
            link = PppLink(session, options, settings)
        except BaseException:
            if channel is not None:
                _close_channel(channel)
            raise
        link.attach(channel)
        return link

    async def _open_channel(self, session: BackendSession, netns: str | None) -> PppChannel | None:
        """The session's PPPoL2TP socket and channel, opened off the event loop when the
        kernel layer can (:meth:`LinuxPppKernel.open_channel_async`: ``PPPIOCGCHAN`` waits
        for an RCU grace period); None: :meth:`PppLink.start` opens them (other kernels,
        e.g. the tests' fakes)."""
        if not isinstance(self.kernel, LinuxPppKernel):
            return None
        info, dataplane = session.info, session.dataplane

        def open_socket() -> socket.socket:
            return dataplane.open_ppp_socket(
                session.kernel_tunnel, info.session_id, info.peer_session_id
            )

        return await self.kernel.open_channel_async(open_socket, netns=netns)

    async def stop(self, session: BackendSession) -> None:
        """End the session's PPP (backend.py step 5); idempotent, bounded by
        ``terminate_wait`` plus the time to close its fds."""
        link = self.links.get(session.key)
        if link is None:
            return
        try:
            await link.stop()
        finally:
            if self.links.get(session.key) is link:
                del self.links[session.key]
                self.endings[session.key] = link.ending

    async def close(self) -> None:
        """Stop every link (all at once) and close the kernel layer's sockets."""
        links = list(self.links.values())
        await asyncio.gather(*(self.stop(link.session) for link in links))
        await self.kernel.aclose()


def uses_builtin(options: SessionOptions) -> bool:
    """Whether a session's options select the built-in PPP (``ppp = "builtin"``)."""
    return options.builtin_ppp is not None


class DispatchingBackend:
    """Hands each PPP session to the built-in backend or to pppd, by its options.

    A session whose :attr:`~l2tp.runtime.backend.SessionOptions.builtin_ppp` is set
    (``ppp = "builtin"``) goes to ``builtin``; any other to ``pppd``. The choice is made
    at :meth:`start` and remembered, so :meth:`stop` reaches the same backend even if the
    options of the listener were reloaded in between.
    """

    def __init__(self, *, pppd: SessionBackend, builtin: SessionBackend) -> None:
        self.pppd = pppd
        self.builtin = builtin
        self._chosen: dict[tuple[int, int], SessionBackend] = {}

    @property
    def stop_timeout(self) -> float:
        """The longer of the two backends' (how long a context waits for stops at close)."""
        return max(
            float(getattr(self.pppd, "stop_timeout", 0.0)),
            float(getattr(self.builtin, "stop_timeout", 0.0)),
        )

    @property
    def reports_interface(self) -> bool:
        return reports_interface(self.pppd) or reports_interface(self.builtin)

    def backend_for(self, session: BackendSession) -> SessionBackend:
        return self.builtin if uses_builtin(session.options) else self.pppd

    async def prepare(self, session: BackendSession) -> None:
        """The chosen backend's ``prepare`` (before the call is established), if it has one."""
        backend = self.backend_for(session)
        prepare = getattr(backend, "prepare", None)
        if prepare is None:
            return
        self._chosen[session.key] = backend
        try:
            await prepare(session)
        except BaseException:
            if self._chosen.get(session.key) is backend:
                del self._chosen[session.key]
            raise

    async def start(self, session: BackendSession) -> None:
        backend = self.backend_for(session)
        self._chosen[session.key] = backend
        try:
            await backend.start(session)
        except BaseException:
            if self._chosen.get(session.key) is backend:
                del self._chosen[session.key]
            raise

    async def stop(self, session: BackendSession) -> None:
        backend = self._chosen.pop(session.key, None)
        if backend is not None:
            await backend.stop(session)

    async def close(self) -> None:
        """Close both backends (each that has a ``close()``)."""
        for backend in (self.builtin, self.pppd):
            close = getattr(backend, "close", None)
            if close is not None:
                await close()
