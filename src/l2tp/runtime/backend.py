"""The hook between the L2TP control plane and whatever carries a session's payload (PPP).

The control plane (:mod:`l2tp.runtime.control`) owns the tunnel and session
state machines and the kernel objects; a :class:`SessionBackend` owns what runs
*on top of* an established session, e.g. a ``pppd`` attached to the session's
PPPoL2TP socket (:mod:`l2tp.runtime.ppp`). The contract, in order:

1. The session reaches established (ICCN/OCCN exchanged, RFC 2661 7.4/7.5).
2. The control plane creates the kernel session (``pw_type`` PPP; ``lns_mode``
   on the LNS side) in the managed kernel tunnel whose socket is
   :attr:`BackendSession.tunnel_fd`.
3. ``await backend.start(session)``. The backend typically calls
   ``session.dataplane.open_ppp_socket(session.kernel_tunnel,
   session.info.session_id, session.info.peer_session_id)`` and hands the
   socket to pppd. ``start`` should return once the payload side is launched
   (not when PPP is up). If it raises, the control plane closes the session
   with a CDN, Result Code 2 (general error) and the Error Message "local
   failure" (the exception text goes to our log, never to the peer), then
   deletes the kernel session; ``stop`` is *not* called.
   A backend whose payload has a network interface (pppd's or the built-in PPP's
   ``pppN``) calls ``session.report_interface(name)`` from the event loop thread
   once that interface exists, and says that it does with a true
   ``reports_interface`` attribute (:func:`reports_interface`): then
   ``SessionHandle.wait_interface`` (and so the ``session_up`` hooks) waits for the
   name; otherwise nothing waits for one.
   Optional, for a call the runtime answers with its data plane made first (a built-in
   PPP call at an LNS, ``CallParams.wait_data_plane``): a backend with an ``async def
   prepare(session)`` has it awaited after step 2 but *before* the call is established
   (before our ICRP), to open what must exist when the peer's first frame comes (the
   PPPoL2TP socket and PPP channel) without starting the payload; ``start`` follows
   once the call is established (the ICCN), with the established call's
   :class:`BackendSession`. A ``prepare`` that raises refuses the call as ``start``
   does; a call that ends in between gets ``stop`` as usual.
4. While running, when the payload side ends by itself (pppd exits, LCP
   terminated, echo failure), the backend calls
   ``session.report_down(result, error=None, message="")`` **from the event
   loop thread** (from another thread use ``loop.call_soon_threadsafe``). The
   control plane then sends a CDN carrying that Result Code
   (:class:`~l2tp.protocol.constants.CdnResult`: e.g. 1 "lost carrier" for a
   PPP link that went down, 2 "general error" with a message for a pppd
   failure, 3 "administrative" for an operator stop) and tears the session
   down, which includes calling ``stop``. Calling ``report_down`` more than
   once, or after ``stop``, is harmless.
5. ``await backend.stop(session)`` when the session ends for any other reason
   (CDN from the peer, local close, tunnel down, daemon shutdown). It must be
   idempotent, must not raise for an already-ended payload, and should return
   within a few seconds (terminate, wait briefly, then kill). The control plane
   deletes the kernel session once ``stop`` returns or, if it has not returned
   within the context's ``hangup_after`` (0.2 s), while it runs: the PPP channel
   then hangs up under the backend (pppd exits "Modem hangup"), which must end
   its wait for a peer that was told to stop and will not answer (issue 16).

Nothing here ever builds a shell command: peer-supplied strings (calling
number, host name ...) are in :attr:`BackendSession.info` as data, and a backend
must pass them as separate ``argv`` items or environment values, never through
a shell.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from l2tp.kernel.model import KernelTunnelSpec
from l2tp.protocol.events import Role, SessionInfo

if TYPE_CHECKING:  # the PPP core (and its crypto) is imported only where PPP runs in-process
    from l2tp.runtime.ppp_hooks import BuiltinPppOptions

Address = tuple[str, int]
"""``(host, port)`` as the runtime uses for UDP peers (IPv6 adds no flow/scope here)."""

ENDED_KEPT = 1024
"""How many ended sessions a backend remembers the end of (:class:`EndedSessions`)."""

_V = TypeVar("_V")


class EndedSessions(dict[tuple[int, int], _V]):
    """How the last ``limit`` (:data:`ENDED_KEPT`) sessions ended, by session key
    (diagnostics and tests: ``BuiltinPppBackend.endings``, ``PppdBackend.exits``);
    setting a key makes it the newest, and the oldest is forgotten beyond ``limit``.

    Bounded because a daemon ends sessions for as long as it runs: a record of every
    one grew by an entry per call for ever (~170 bytes each, measured; with pppd, also
    its last 20 lines of output), and a key is seldom looked up after its session's
    tear-down.
    """

    def __init__(self, limit: int | None = None) -> None:
        super().__init__()
        self.limit = ENDED_KEPT if limit is None else limit

    def __setitem__(self, key: tuple[int, int], value: _V) -> None:
        self.pop(key, None)
        super().__setitem__(key, value)
        while len(self) > self.limit:
            del self[next(iter(self))]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionOptions:
    """Per-session options of the local end, from the configuration (``[tunnel.T.session.S]``
    for an initiator, the ``[listener.L]`` defaults or the matched ``[listener.L.session.S]``
    for a responder): the pppd to run on a PPP session, the network interface of an
    Ethernet pseudowire."""

    name: str = ""
    """The config session name (kl2tpd) or ``"<listener>/<tid>/<sid>"`` (LNS); for logs/ifnames."""
    pppd_args: str | None = None
    """Path of a file of extra pppd arguments (go-l2tp's ``pppd_args``): read and split on
    whitespace as go-l2tp does (``#`` comment lines allowed), never shell-parsed."""
    pppd_options: tuple[str, ...] = ()
    """Extra pppd argv items, verbatim (already split, never shell-parsed)."""
    mtu: int | None = None
    interface_name: str | None = None
    """Name of the kernel's ``l2tpethN`` interface (Ethernet pseudowires)."""
    bridge: str | None = None
    """Attach an Ethernet pseudowire's interface to this existing bridge once created."""
    reorder_timeout: float = 0.0
    """Seconds the kernel holds out-of-order sequenced packets (0: deliver as received)."""
    builtin_ppp: BuiltinPppOptions | None = None
    """Run this PPP session's PPP in-process (``ppp = "builtin"``) with these options,
    instead of pppd (None); see :mod:`l2tp.runtime.builtin_ppp`."""


PppOptions = SessionOptions
"""The earlier name of :class:`SessionOptions` (L2TPv2 sessions only ran pppd)."""


ReportDown = Callable[[int, int | None, str], None]
"""``report_down(result, error, message)``: see the module docstring, step 4."""


class PppSockets(Protocol):
    """What a backend may use of the data plane (both ``DataPlane`` and
    ``AsyncDataPlane`` have it: ``socket()`` + ``connect()`` never block)."""

    def open_ppp_socket(
        self, tunnel: KernelTunnelSpec, session_id: int, peer_session_id: int
    ) -> socket.socket: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendSession:
    """Everything a backend needs about one established session (step 3)."""

    info: SessionInfo
    """IDs and call parameters (peer-supplied strings are data: never interpolate into a shell)."""
    role: Role
    """LAC (kl2tpd) or LNS (l2tp-lns); the LNS side runs pppd as the authenticator."""
    kernel_tunnel: KernelTunnelSpec
    """The managed kernel tunnel the session lives in (for ``open_ppp_socket``)."""
    tunnel_fd: int
    """The tunnel's UDP socket (``kernel_tunnel.fd``); owned by the control plane: do not close."""
    dataplane: PppSockets
    """The context's data plane, for ``open_ppp_socket`` only (and its ``netns``
    attribute, where it has one): kernel sessions are the control plane's to make
    and delete."""
    lns_mode: bool
    local: Address
    peer: Address
    options: SessionOptions = field(default_factory=SessionOptions)
    report_down: ReportDown = field(default=lambda result, error, message: None)
    """Tell the control plane the payload side ended; it answers with a CDN (step 4)."""
    report_interface: Callable[[str], None] = field(default=lambda name: None)
    """Tell the control plane the name of the payload's network interface (step 3)."""

    @property
    def key(self) -> tuple[int, int]:
        """``(tunnel_id, session_id)``: unique among live sessions of one context."""
        return (self.info.tunnel_id, self.info.session_id)

    def down(self, result: int, error: int | None = None, message: str = "") -> None:
        """Shorthand for :attr:`report_down` with keyword defaults."""
        self.report_down(result, error, message)


class SessionBackend(Protocol):
    """Runs the payload of established sessions; see the module docstring for the contract."""

    async def start(self, session: BackendSession) -> None:
        """Launch the payload side of ``session``; raise to refuse it (CDN 2 is sent)."""
        ...

    async def stop(self, session: BackendSession) -> None:
        """End the payload side of ``session``; idempotent, never raises for a dead payload."""
        ...


def reports_interface(backend: object) -> bool:
    """Whether ``backend`` reports its sessions' interface names (see step 3)."""
    return bool(getattr(backend, "reports_interface", False))


class NullSessionBackend:
    """Runs nothing: every session is just an L2TP session (tests, benchmarks, control only).

    ``started`` / ``stopped`` record session keys for tests; ``stopped`` keeps the last
    :data:`ENDED_KEPT` only, since the daemons run this backend on the null data plane
    for as long as they run. :meth:`report_down` lets a test simulate the payload ending
    (e.g. pppd exiting).
    """

    def __init__(self) -> None:
        self.started: dict[tuple[int, int], BackendSession] = {}
        self.stopped: list[tuple[int, int]] = []

    async def start(self, session: BackendSession) -> None:
        self.started[session.key] = session

    async def stop(self, session: BackendSession) -> None:
        if self.started.pop(session.key, None) is not None:
            self.stopped.append(session.key)
            if len(self.stopped) > ENDED_KEPT:
                del self.stopped[0]

    def report_down(
        self, key: tuple[int, int], result: int, error: int | None = None, message: str = ""
    ) -> None:
        """Simulate the payload of session ``key`` ending with ``result``."""
        session = self.started.get(key)
        if session is not None:
            session.down(result, error, message)
