"""What the built-in PPP backend is configured with and plugs into: per-session options
(:class:`BuiltinPppOptions`), the authentication hook (:class:`PppAuthenticator`, with the
chap-secrets file implementation :class:`SecretsFileAuthenticator`) and IPv4 address pools
(:class:`AddressPool`).

The authentication hook
-----------------------
The sans-IO core (:mod:`l2tp.ppp`) asks an :class:`~l2tp.ppp.Authenticator` for a verdict on
each PAP request or CHAP/MS-CHAPv2 response; a verifier that cannot answer at once returns
``None``, the core reports :class:`~l2tp.ppp.AuthRequested` and waits for
:meth:`~l2tp.ppp.PppConnection.auth_result`. :class:`PppAuthenticator` is the runtime's
side of that: it also gets the session's :class:`AuthContext` (who is calling, over which
tunnel), and may return an :class:`~l2tp.ppp.AuthDecision` at once (a local file: no task,
no round trip through the event loop) or an awaitable of one (RADIUS: the backend awaits it
in a task and hands the decision to the core). A hook must not raise on bad credentials;
if it raises anyway, or its awaitable fails, the backend logs it and denies access.

Secrets never reach a log: the requests' secret fields are ``repr=False``
(:mod:`l2tp.ppp.auth.base`) and the backend logs user names only.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol

from l2tp.ppp import (
    AuthDecision,
    AuthMethod,
    AuthRequest,
    RestartConfig,
    SecretsAuthenticator,
    SecretsFileError,
)
from l2tp.ppp.secrets import SecretEntry, SecretsIndex, parse_secrets

log = logging.getLogger(__name__)

DEFAULT_AUTH = (AuthMethod.MSCHAP_V2, AuthMethod.CHAP_MD5)
"""The authenticator's default demand, best first: no clear-text passwords (PAP) unless the
configuration lists it."""
PEER_CONNECT_DELAY = 1.0
"""The peer side's default ``connect_delay``: pppd's ``connect-delay`` default for a link
that was just connected. The LNS starts its PPP only once it has processed our ICCN, so
a Configure-Request sent at once would usually reach a kernel without the session yet."""
MAX_SECRETS_FILE = 4 * 1024 * 1024
"""A secrets file larger than this is refused (it is read whole, on a worker thread)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BuiltinPppOptions:
    """How one session runs the built-in PPP (``[... .builtin_ppp]`` in the configuration).

    Which side authenticates is the session's role: the LNS (a listener's session) is the
    authenticator (RFC 1661 3.5: it demands ``auth`` from the peer and checks the answers
    with ``secrets``, or with the backend's hook), the LAC (a tunnel's session) is the
    peer (it answers with ``user`` and ``password`` using one of ``auth``).
    """

    auth: tuple[AuthMethod, ...] = DEFAULT_AUTH
    """Authenticator: methods demanded, best first (empty: none). Peer: methods agreed to."""
    secrets: str | None = None
    """A file in pppd's chap-secrets format (authenticator; re-read when it changes)."""
    name: str | None = None
    """Our PPP name (CHAP Name, the second column of the secrets file); None: host name."""
    local_address: IPv4Address | None = None
    """Our IPv4 address (authenticator: required for IPCP; peer: None asks the LNS)."""
    address_pool: IPv4Network | None = None
    """Where the peer's IPv4 address comes from when the secrets file names none."""
    dns: tuple[IPv4Address, ...] = ()
    """Up to two DNS servers offered to the peer (RFC 1877)."""
    mtu: int | None = None
    """Largest frame we send (the interface MTU); None: the peer's MRU."""
    mru: int | None = None
    """The MRU we ask for (RFC 1661 6.1); None: 1500, not negotiated."""
    lcp_echo_interval: float | None = 30.0
    """Seconds between LCP Echo-Requests (RFC 1661 5.8); None: no keepalive."""
    lcp_echo_failure: int = 4
    """Unanswered Echo-Requests in a row that end the session (CDN 1, lost carrier)."""
    ipv6: bool = False
    """Run IPv6CP (RFC 5072) besides IPCP."""
    interface_name: str | None = None
    """Name for the unit's interface; ``%d`` picks the lowest free number. None: ``pppN``."""
    user: str | None = None
    """Peer: the name we authenticate with."""
    password: str | None = field(default=None, repr=False)
    """Peer: its secret; None with ``secrets``: the secrets file's line for ``user``."""
    remote_name: str | None = None
    """Peer: the authenticator's name in the secrets file's server column (pppd's
    ``remotename``); None: only lines whose server is ``*``."""
    connect_delay: float | None = None
    """Seconds to wait for the other end's first LCP packet before sending ours (pppd's
    ``connect-delay``); None: the role's default, :data:`PEER_CONNECT_DELAY` on the peer
    side, none on the authenticator side; 0: none."""
    passive: bool = False
    """Wait for the other end after Max-Configure unanswered requests (pppd's ``passive``)."""
    auth_timeout: float | None = 30.0
    """Seconds the authentication phase may take; None: no limit of our own (the peer side
    then waits for the authenticator's verdict, as pppd's client does)."""
    resolv_file: str | None = None
    """Peer: a file to write the DNS servers learned in IPCP to (RFC 1877), in
    resolv.conf form (pppd's ``usepeerdns`` writes ``/etc/ppp/resolv.conf``)."""
    restart: RestartConfig = field(default_factory=RestartConfig)
    """RFC 1661 4.6's Restart timer and Max-Configure/-Terminate/-Failure counters, for
    LCP and every NCP (pppd's ``lcp-restart``, ``lcp-max-configure`` ...)."""
    listener: str | None = None
    """Authenticator: the listener whose session this is. Its RADIUS hook and accounting
    observer, when it has its own (``[listener.L.radius]``), are the backend's
    ``authenticators[listener]`` and ``observers[listener]``; None, or a listener without:
    the backend's ``authenticator`` and ``observer``."""

    def __post_init__(self) -> None:
        if len(self.dns) > 2:
            raise ValueError("at most two DNS servers (RFC 1877)")
        if self.password is not None and self.user is None:
            raise ValueError("a password needs a user")
        if self.user is not None and self.password is None and self.secrets is None:
            raise ValueError("user needs a password, or a secrets file to find it in")
        if self.connect_delay is not None and self.connect_delay < 0:
            raise ValueError("connect_delay must not be negative")
        if self.auth_timeout is not None and not self.auth_timeout > 0:
            raise ValueError("auth_timeout must be positive, or None")
        if self.lcp_echo_failure < 1:
            raise ValueError("lcp_echo_failure must be at least 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthContext:
    """The session a credential check is for (a RADIUS client sends these as attributes)."""

    tunnel_id: int
    session_id: int
    peer: tuple[str, int]
    """The L2TP peer (LAC) address and port."""
    local: tuple[str, int] | None = None
    """Our end of the tunnel (RADIUS Tunnel-Server-Endpoint)."""
    server: str
    """Our PPP name: the second column of a secrets file, RADIUS NAS-Identifier."""
    calling_number: str | None = None
    called_number: str | None = None
    label: str = ""
    """How the backend's logs name the session."""


class PppAuthenticator(Protocol):
    """Checks a peer's credentials for the authenticator side of built-in PPP sessions.

    Return the decision, or an awaitable of it (e.g. a coroutine doing a RADIUS
    round trip). Deny with ``AuthDecision(success=False)``; do not raise.
    """

    def authenticate(
        self, request: AuthRequest, context: AuthContext
    ) -> AuthDecision | Awaitable[AuthDecision]: ...


class SecretsFileAuthenticator:
    """:class:`PppAuthenticator` over a file in pppd's chap-secrets format.

    Existing pppd files work unchanged (:mod:`l2tp.ppp.secrets`). The file is read by
    :meth:`refresh`, which the backend awaits before each session starts: it looks at
    the file's size and modification time and, when they changed, reads and parses the
    file again on a worker thread. A file that became unreadable or malformed is
    reported (with its line) and the last good contents stay in use; a file that was
    never read successfully makes :meth:`refresh` raise, so the session is refused.

    One read at a time: sessions that call :meth:`refresh` while the file is being read
    wait for that read and share its outcome. Why: an LNS prepares the calls of a burst
    together (before their ICRPs), and each one that came before the first read had
    finished started a read of its own. In the emulated test VM parsing a 5,000-line
    file takes ~0.45 s of CPU under the GIL, so N such reads froze the event loop for
    about N x 0.45 s (16 reads, 7 s, in a logged run); a freeze longer than a LAC's
    retransmission cycle (31 s) ended its tunnels, their ICRQs unacknowledged
    (benchmarks.md, section 9, the 5,000 point).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.entries: list[SecretEntry] | None = None
        self._stamp: tuple[int, int] | None = None
        self._failed_stamp: tuple[int, int] | None = None
        self.loads = 0
        """Successful reads of the file."""
        self.errors = 0
        """Reads that failed (unreadable, too large, not UTF-8, malformed)."""
        self._refreshing: asyncio.Task[None] | None = None
        self._index: SecretsIndex | None = None
        self._authenticators: dict[str, SecretsAuthenticator] = {}
        """By server name, for the entries read last (made on first use)."""

    def _read(self) -> list[SecretEntry]:
        with open(self.path, "rb") as stream:
            data = stream.read(MAX_SECRETS_FILE + 1)
        if len(data) > MAX_SECRETS_FILE:
            raise ValueError(f"larger than {MAX_SECRETS_FILE} bytes")
        return parse_secrets(data.decode("utf-8"))

    async def refresh(self) -> None:
        """Re-read the file if it changed; raise when no good version was ever read.
        While a read is under way, wait for it instead of starting another (see the
        class documentation); cancelling the wait does not stop the read."""
        running = self._refreshing
        if running is None:
            stamp, _ = self._look()
            if stamp is not None and stamp == self._stamp:
                return  # unchanged: no task, no thread
            running = self._refreshing = asyncio.get_running_loop().create_task(self._reload())
            running.add_done_callback(self._reloaded)
        await asyncio.shield(running)

    def _look(self) -> tuple[tuple[int, int] | None, str | None]:
        """The file's (modification time, size), or None and why it cannot be read."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            return None, exc.strerror or str(exc)
        return (st.st_mtime_ns, st.st_size), None

    def _reloaded(self, task: asyncio.Task[None]) -> None:
        if self._refreshing is task:
            self._refreshing = None
        if not task.cancelled():
            task.exception()  # raised to every waiter; retrieved if none is left

    async def _reload(self) -> None:
        stamp, problem = self._look()
        if stamp is not None and stamp == self._stamp:
            return
        if stamp is not None and stamp != self._failed_stamp:
            try:
                entries = await asyncio.to_thread(self._read)
            except (OSError, ValueError, UnicodeDecodeError, SecretsFileError) as exc:
                problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                self._failed_stamp = stamp
            else:
                self.entries, self._stamp, self._failed_stamp = entries, stamp, None
                self._index = None
                self._authenticators.clear()
                self.loads += 1
                log.info("secrets file %s: %d entries", self.path, len(entries))
                return
        if problem is not None:
            self.errors += 1
            if self.entries is None:
                raise ValueError(f"secrets file {self.path}: {problem}")
            log.error("secrets file %s: %s; keeping the previous contents", self.path, problem)

    def authenticate(self, request: AuthRequest, context: AuthContext) -> AuthDecision:
        if self.entries is None:
            return AuthDecision(success=False, message="Access denied")
        return self._authenticator(context.server).authenticate(request)

    @property
    def index(self) -> SecretsIndex | None:
        """The entries read last by client name (None: never read)."""
        if self._index is None and self.entries is not None:
            self._index = SecretsIndex(self.entries)
        return self._index

    def _authenticator(self, server: str) -> SecretsAuthenticator:
        """One per server name per version of the file: an authentication costs a
        lookup, not a copy and a scan of every line (:class:`SecretsIndex`)."""
        authenticator = self._authenticators.get(server)
        if authenticator is None:
            assert self.entries is not None
            authenticator = SecretsAuthenticator(self.entries, server=server, index=self.index)
            self._authenticators[server] = authenticator
        return authenticator


class AddressPool:
    """IPv4 addresses of one network for the peers of PPP sessions (lowest free first).

    The network and broadcast addresses are never given out (except in /31 and /32),
    nor the ``exclude`` addresses (the LNS's own). Addresses come back with
    :meth:`release` when a session ends and are handed out again, lowest first.
    Allocation is O(log n): a cursor over the never-used addresses plus a heap of
    returned ones, so a /16 costs nothing until it is used.
    """

    def __init__(self, network: IPv4Network, *, exclude: Iterable[IPv4Address] = ()) -> None:
        self.network = network
        if network.prefixlen >= 31:
            self._first, self._last = int(network.network_address), int(network.broadcast_address)
        else:
            self._first = int(network.network_address) + 1
            self._last = int(network.broadcast_address) - 1
        self._cursor = self._first
        self._returned: list[int] = []
        self._excluded: set[int] = set()
        self._in_use: set[int] = set()
        for address in exclude:
            self.exclude(address)

    def exclude(self, address: IPv4Address) -> None:
        """Never hand out ``address`` (e.g. a local address inside the pool)."""
        self._excluded.add(int(address))

    @property
    def size(self) -> int:
        return self._last - self._first + 1

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def allocate(self) -> IPv4Address | None:
        """The lowest free address, or None when the pool is exhausted."""
        while self._returned:
            value = heapq.heappop(self._returned)
            if value not in self._excluded and value not in self._in_use:
                self._in_use.add(value)
                return IPv4Address(value)
        while self._cursor <= self._last:
            value = self._cursor
            self._cursor += 1
            if value not in self._excluded and value not in self._in_use:
                self._in_use.add(value)
                return IPv4Address(value)
        return None

    def release(self, address: IPv4Address) -> None:
        """Give ``address`` back (an address this pool did not hand out is ignored)."""
        value = int(address)
        if value in self._in_use:
            self._in_use.discard(value)
            heapq.heappush(self._returned, value)

    def __contains__(self, address: object) -> bool:
        return isinstance(address, IPv4Address) and int(address) in self._in_use
