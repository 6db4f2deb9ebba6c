"""The data plane for an event loop: kernel work that never blocks it.

:class:`AsyncDataPlane` is :class:`~l2tp.kernel.dataplane.DataPlane` with
coroutines, plus :meth:`~AsyncDataPlane.tunnel_id_in_use`, a lookup that makes
no system call. Two implementations:

- :class:`AsyncLinuxDataPlane`: per network namespace, one pipelined generic
  netlink socket for requests, one rtnetlink socket (MTU, bridge port, link
  up/down), one listen-only socket for the ``l2tp`` multicast group (tunnel ID
  learning, :mod:`l2tp.kernel.tunnel_ids`), all read on the event loop; the
  ``send()`` calls happen in one thread per request socket (see
  :mod:`l2tp.kernel.channel` for why). Requests on one socket are carried out
  by the kernel in the order they were made, whichever task made them.
- :class:`AsyncNullDataPlane`: no kernel; records calls (bounded) and keeps the
  kernel's ID rules, for loopback tests and benchmarks.

Lifecycle: ``await start()`` before anything else (a call before it raises
``RuntimeError``); ``await close()`` is idempotent, fails what is still in
flight with :class:`~l2tp.kernel.errors.DataPlaneClosed`, and completes even
if the caller is cancelled. Kernel objects stay where they are.

Cancellation: cancelling :meth:`~AsyncLinuxDataPlane.create_tunnel` or
:meth:`~AsyncLinuxDataPlane.create_session` leaves nothing behind: a request
not yet sent is withdrawn; one already sent is undone (deleted) if the kernel
carried it out. Cancelling a delete, modify or interface change may leave it
done or not done.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, Unpack

from l2tp.kernel import codec, netlink
from l2tp.kernel.async_null import AsyncNullDataPlane
from l2tp.kernel.channel import Sending
from l2tp.kernel.constants import GENL_MCGROUP
from l2tp.kernel.dataplane import open_ppp_socket
from l2tp.kernel.errors import (
    DataPlaneClosed,
    KernelError,
    ModuleNotLoaded,
    SessionNotFound,
    TunnelNotFound,
    data_plane_closed,
)
from l2tp.kernel.model import KernelSessionSpec, KernelTunnelSpec, SessionChanges, given_changes
from l2tp.kernel.pipeline import DEFAULT_WINDOW, Request
from l2tp.kernel.rtnl import AsyncRtnl, set_master_req
from l2tp.kernel.tunnel_ids import (
    CHECK_DELAYS,
    Check,
    TunnelIdTracker,
    open_event_socket,
    parse_event,
)

log = logging.getLogger("l2tp.kernel")

__all__ = ["AsyncDataPlane", "AsyncLinuxDataPlane", "AsyncNullDataPlane"]

_READS_PER_WAKEUP = 64
CLOSE_DRAIN_TIMEOUT = 10.0
"""Seconds :meth:`AsyncLinuxDataPlane.close` waits for requests the kernel already has."""


class AsyncDataPlane(Protocol):
    """What the control plane asks of the kernel (or of a stand-in), from an event loop."""

    async def start(self) -> None:
        """Open what is needed and learn the kernel's tunnel IDs (idempotent)."""
        ...

    async def close(self) -> None:
        """Fail what is in flight and release everything (idempotent; kernel objects stay)."""
        ...

    async def create_tunnel(self, spec: KernelTunnelSpec) -> None: ...

    async def delete_tunnel(self, tunnel_id: int) -> None: ...

    async def create_session(self, spec: KernelSessionSpec) -> None:
        """Create a session, with its interface name and MTU when the spec has them."""
        ...

    async def create_sessions(
        self, specs: Sequence[KernelSessionSpec]
    ) -> list[BaseException | None]:
        """Create several sessions at once; each one's outcome in order (None: made).

        The runtime hands over every call a tunnel established in one loop turn, so
        a burst costs one batch of requests instead of one coroutine per session.
        """
        ...

    async def delete_session(self, tunnel_id: int, session_id: int) -> None: ...

    async def modify_session(
        self, tunnel_id: int, session_id: int, **changes: Unpack[SessionChanges]
    ) -> None:
        """Change the given settings of a session (see :class:`SessionChanges`)."""
        ...

    async def attach_to_bridge(self, tunnel_id: int, session_id: int, bridge: str) -> None:
        """Make an Ethernet session's interface a port of ``bridge``."""
        ...

    async def set_session_up(self, tunnel_id: int, session_id: int, up: bool) -> None:
        """Bring an Ethernet session's interface up or down (e.g. follow the peer's
        Circuit Status, RFC 3931 5.4.5)."""
        ...

    async def session_interface(self, tunnel_id: int, session_id: int) -> str | None:
        """The network interface of an Ethernet session (the kernel's ``l2tpethN`` unless
        its spec named it): remembered, or one GET; None for a session without one."""
        ...

    def tunnel_id_in_use(self, tunnel_id: int) -> bool:
        """Whether a tunnel with this ID exists in the namespace (made by anyone), answered
        from what is already known: no system call, safe on the datagram receive path."""
        ...

    def open_ppp_socket(
        self, tunnel: KernelTunnelSpec, session_id: int, peer_session_id: int
    ) -> socket.socket:
        """A PPPoL2TP socket for pppd (``socket()`` + ``connect()``: does not block)."""
        ...


def _quiet(future: asyncio.Future[Any]) -> None:
    """Done callback: retrieve an outcome nobody awaits (no "never retrieved" warning)."""
    if not future.cancelled():
        future.exception()


class AsyncLinuxDataPlane:
    """:class:`AsyncDataPlane` over the kernel's netlink APIs, in ``netns`` if given.

    Make one per network namespace and share it: its sockets are the
    namespace's request pipeline. ``window`` bounds the requests in flight per
    socket; ``sending`` chooses where ``send()`` is called (see
    :mod:`l2tp.kernel.channel`: by default on the loop, except deletes of
    sessions that may have a network device, which go to a sender thread).
    """

    def __init__(
        self,
        *,
        netns: str | None = None,
        window: int = DEFAULT_WINDOW,
        sending: Sending = "auto",
    ) -> None:
        self.netns = netns
        self.window = window
        self.sending: Sending = sending
        self.tunnel_ids = TunnelIdTracker()
        self._netlink: netlink.AsyncL2tpNetlink | None = None
        self._rtnl: AsyncRtnl | None = None
        self._event_sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._portid = 0
        self._ifnames: dict[tuple[int, int], str] = {}  # Ethernet sessions' interfaces
        self._pw_types_made: set[int] = set()  # pseudowire types whose module is loaded
        self._tasks: set[asyncio.Task[Any]] = set()  # ID checks, resyncs
        self._undos: set[asyncio.Task[Any]] = set()  # deletes of cancelled creates
        self._starting: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self._closing: asyncio.Task[None] | None = None
        self._resync: asyncio.Task[None] | None = None
        self._resync_again = False

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Open the sockets, resolve the family, subscribe, dump the tunnel IDs.

        Idempotent; concurrent callers share one start. A failed start can be
        retried; a cancelled caller does not cancel the start others wait for.
        """
        if self._closed:
            raise data_plane_closed("start")
        if self._started:
            return
        if self._starting is None:
            self._starting = asyncio.get_running_loop().create_task(self._start())
        starting = self._starting
        try:
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if starting.cancelled() and self._closed and not (task and task.cancelling()):
                # close() stopped the start, not our caller
                raise data_plane_closed("start") from None
            raise
        except BaseException:
            if self._starting is starting:
                self._starting = None
            raise

    async def _start(self) -> None:
        try:
            self._rtnl = AsyncRtnl(netns=self.netns, window=self.window, sending=self.sending)
            self._netlink = await netlink.AsyncL2tpNetlink.open(
                netns=self.netns,
                window=self.window,
                sending=self.sending,
                rtnl=self._rtnl,
            )
            if self._closed:
                raise data_plane_closed("start")
            group = self._netlink.mcast_groups.get(GENL_MCGROUP)
            if group is None:
                raise ModuleNotLoaded(0, "l2tp_netlink", "no 'l2tp' multicast group")
            portid = self._netlink.channel.sock.getsockname()[0]
            # Subscribe before the dump: events from now on are buffered, then replayed.
            self.tunnel_ids.begin_sync()
            event_sock = open_event_socket(self.netns, group)
            await self._start_with(self._netlink, self._rtnl, event_sock, portid)
        except BaseException:
            self._release()
            raise

    async def _start_with(
        self,
        nl: netlink.AsyncL2tpNetlink,
        rtnl: AsyncRtnl,
        event_sock: socket.socket,
        portid: int,
    ) -> None:
        """Adopt open clients and a subscribed event socket; learn the tunnel IDs.

        The second half of :meth:`start` (tests hand in clients on fake sockets).
        ``portid`` is the request socket's netlink port ID: the kernel's events
        carry it when they announce our own requests.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._netlink, self._rtnl, self._event_sock = nl, rtnl, event_sock
        self._portid = portid
        if not self.tunnel_ids.syncing:
            self.tunnel_ids.begin_sync()
        loop.add_reader(event_sock.fileno(), self._on_events)
        dumped = await nl.dump_tunnel_ids()
        if self._closed:
            raise data_plane_closed("start")
        for check in self.tunnel_ids.end_sync(dumped):
            self._start_check(check)
        self._started = True

    def _release(self) -> None:
        """Close every socket now (synchronously); threads finish their last send()."""
        if self._event_sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._event_sock.fileno())
            self._event_sock.close()
            self._event_sock = None
        if self._netlink is not None:
            self._netlink.close()
        if self._rtnl is not None:
            self._rtnl.close()

    async def close(self) -> None:
        """Stop taking requests, let those the kernel already has finish, close everything.

        Idempotent; runs as a task of its own, so a caller cancelled while it waits
        does not stop it. Requests not yet sent fail at once with
        :class:`DataPlaneClosed`; those in flight get their answers (up to
        :data:`CLOSE_DRAIN_TIMEOUT` seconds, then they fail too), and the deletes
        undoing cancelled creates are carried out, so a cancelled create leaves
        nothing behind even when the data plane closes right after it.
        """
        if self._closing is None:
            self._closed = True
            self._closing = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        for task in list(self._tasks) + [t for t in (self._starting, self._resync) if t]:
            task.cancel()
        channels = [c.channel for c in (self._netlink, self._rtnl) if c is not None]
        for channel in channels:
            channel.fail_queued()
        try:
            async with asyncio.timeout(CLOSE_DRAIN_TIMEOUT):
                while True:
                    await asyncio.gather(*(c.wait_idle() for c in channels))
                    undos = [t for t in self._undos if not t.done()]
                    if not undos:
                        break
                    await asyncio.wait(undos)
        except TimeoutError:
            log.warning("kernel data plane closed with requests still unanswered")
        self._release()
        await asyncio.gather(*(c.aclose() for c in channels), return_exceptions=True)

    @property
    def netlink(self) -> netlink.AsyncL2tpNetlink:
        """The pipelined generic netlink client (queries such as ``dump_sessions``)."""
        if self._closed:
            raise data_plane_closed("netlink")
        if not self._started or self._netlink is None:
            raise RuntimeError("AsyncLinuxDataPlane: await start() first")
        return self._netlink

    @property
    def rtnl(self) -> AsyncRtnl:
        self.netlink  # noqa: B018 - the same checks
        assert self._rtnl is not None
        return self._rtnl

    # --- tunnels --------------------------------------------------------------------

    async def create_tunnel(self, spec: KernelTunnelSpec) -> None:
        """Create a tunnel; cancelled, it is withdrawn or deleted again."""
        nl = self.netlink
        tunnel_id = spec.tunnel_id

        def undo() -> Coroutine[Any, Any, None]:
            self.tunnel_ids.added(tunnel_id)
            return nl.delete_tunnel(tunnel_id)

        request = netlink._create_tunnel(spec)
        request.on_abandoned = self._undo_if_done(undo)
        await nl.channel.call(request)
        self.tunnel_ids.added(tunnel_id)

    async def delete_tunnel(self, tunnel_id: int) -> None:
        """Delete a tunnel and its sessions (the kernel finishes in a work queue)."""
        try:
            await self.netlink.delete_tunnel(tunnel_id)
        finally:
            for key in [k for k in self._ifnames if k[0] == tunnel_id]:
                del self._ifnames[key]

    def tunnel_id_in_use(self, tunnel_id: int) -> bool:
        """From the learned set (see :mod:`l2tp.kernel.tunnel_ids`); no system call."""
        if not self._started:
            raise RuntimeError("AsyncLinuxDataPlane: await start() first")
        return tunnel_id in self.tunnel_ids

    def recheck_tunnel_id(self, tunnel_id: int) -> None:
        """Check a learned ID again soon (e.g. after closing a managed tunnel's socket
        without deleting it: the kernel announces no event then)."""
        check = self.tunnel_ids.recheck(tunnel_id)
        if check is not None:
            self._start_check(check)

    async def refresh_tunnel_ids(self) -> None:
        """Learn the set again from a dump (done by itself when events were lost)."""
        if self._resync is not None and not self._resync.done():
            self._resync_again = True
            await asyncio.shield(self._resync)
            return
        self._resync = asyncio.get_running_loop().create_task(self._resync_loop())
        await asyncio.shield(self._resync)

    async def _resync_loop(self) -> None:
        self._resync_again = True
        while self._resync_again:
            self._resync_again = False
            self.tunnel_ids.begin_sync()
            dumped = await self.netlink.dump_tunnel_ids()
            for check in self.tunnel_ids.end_sync(dumped):
                self._start_check(check)

    # --- sessions -------------------------------------------------------------------

    async def create_session(self, spec: KernelSessionSpec) -> None:
        """Create a session, then set its MTU if the spec has one (rtnetlink).

        A session created without ``ifname`` but with an MTU is looked up with a
        GET sent in the same batch as its create. If the MTU cannot be set, the
        session is deleted again and the error raised: no half-made session.
        Cancelled, the session is withdrawn or deleted again.
        """
        nl = self.netlink
        key = (spec.tunnel_id, spec.session_id)
        undo = self._session_undo(spec)
        create = netlink._create_session(spec)
        create.on_abandoned = self._undo_if_done(undo)
        # The first session of a pseudowire type may load its module (l2tp_ppp,
        # l2tp_eth: modprobe inside the request, ~0.4 s in the test VM): until one
        # has been made, such creates go to the sender thread, not the loop.
        create.slow = spec.pw_type not in self._pw_types_made
        if spec.mtu is None:
            await nl.channel.call(create)
            self._pw_types_made.add(spec.pw_type)
            if spec.ifname:
                self._ifnames[key] = spec.ifname
            return
        get = None
        if spec.ifname is None:
            get = netlink._get_session(*key)
        created = False
        try:
            await nl.channel.call_many([create] if get is None else [create, get])
            created = True
            self._pw_types_made.add(spec.pw_type)
            ifname = netlink._session_ifname(spec, get)
            self._ifnames[key] = ifname
            await self.rtnl.set_mtu(ifname, spec.mtu)
        except asyncio.CancelledError:
            if created:  # else the request's on_abandoned hook takes care of it
                self._spawn_undo(undo)
            raise
        except BaseException:
            if create.done and create.error is None:  # made, but the GET or MTU failed
                self._spawn_undo(undo)
            raise

    async def create_sessions(
        self, specs: Sequence[KernelSessionSpec]
    ) -> list[BaseException | None]:
        """Sessions that need nothing but their create go out as one pipelined batch;
        the others (an MTU to set through rtnetlink, or the first of a pseudowire type,
        whose module the kernel may load) through :meth:`create_session`, alongside."""
        outcomes: list[BaseException | None] = [None] * len(specs)
        plain: list[int] = []
        other: list[int] = []
        for i, spec in enumerate(specs):
            simple = spec.mtu is None and spec.pw_type in self._pw_types_made
            (plain if simple else other).append(i)
        nl = self.netlink
        requests = []
        for i in plain:
            create = netlink._create_session(specs[i])
            create.on_abandoned = self._undo_if_done(self._session_undo(specs[i]))
            requests.append(create)

        async def each_plain() -> None:
            results = await nl.channel.call_each(requests)
            for i, error in zip(plain, results, strict=True):
                outcomes[i] = error
                spec = specs[i]
                if error is None and spec.ifname:
                    self._ifnames[(spec.tunnel_id, spec.session_id)] = spec.ifname

        async def one(i: int) -> None:
            try:
                await self.create_session(specs[i])
            except (KernelError, OSError, ValueError) as exc:
                outcomes[i] = exc

        if not other:
            await each_plain()
        else:
            await asyncio.gather(*([each_plain()] if plain else []), *(one(i) for i in other))
        return outcomes

    def _session_undo(self, spec: KernelSessionSpec) -> Callable[[], Coroutine[Any, Any, None]]:
        key = (spec.tunnel_id, spec.session_id)
        nl = self.netlink

        def undo() -> Coroutine[Any, Any, None]:
            self._ifnames.pop(key, None)
            return nl.delete_session(*key)

        return undo

    def _undo_if_done(
        self, undo: Callable[[], Coroutine[Any, Any, None]]
    ) -> Callable[[Request], None]:
        """An ``on_abandoned`` hook: undo a create that the kernel carried out."""

        def settle(request: Request) -> None:
            if request.error is None:
                self._spawn_undo(undo)

        return settle

    async def delete_session(self, tunnel_id: int, session_id: int) -> None:
        """Delete a session (from the channel's sender thread: the kernel waits for an RCU
        grace period inside ``send()``, see :mod:`l2tp.kernel.channel`)."""
        try:
            await self.netlink.delete_session(tunnel_id, session_id)
        finally:
            self._ifnames.pop((tunnel_id, session_id), None)

    async def modify_session(
        self, tunnel_id: int, session_id: int, **changes: Unpack[SessionChanges]
    ) -> None:
        """Change sequencing/LNS mode/reorder timeout (netlink) and the MTU (rtnetlink)."""
        given_changes(changes)  # TypeError for an unknown keyword, as for named parameters
        nl = self.netlink
        modify = netlink._modify_session(tunnel_id, session_id, changes)
        mtu = changes.get("mtu")
        if mtu is None:
            await nl.channel.call(modify)
            return
        key = (tunnel_id, session_id)
        if key in self._ifnames:
            await nl.channel.call(modify)
        else:
            get = netlink._get_session(tunnel_id, session_id)
            await nl.channel.call_many([modify, get])
            self._remember_ifname(key, get)
        await self.rtnl.set_mtu(self._known_ifname(key), mtu)

    async def attach_to_bridge(self, tunnel_id: int, session_id: int, bridge: str) -> None:
        """``ip link set dev IF master BRIDGE``; the bridge's index and (unless known) the
        session's interface are looked up concurrently."""
        rtnl = self.rtnl
        index, ifname = await self._gather(
            rtnl.link_index(bridge), self._ifname(tunnel_id, session_id)
        )
        await rtnl.channel.call(set_master_req(ifname, index, bridge))

    async def set_session_up(self, tunnel_id: int, session_id: int, up: bool) -> None:
        await self.rtnl.set_up(await self._ifname(tunnel_id, session_id), up)

    async def session_interface(self, tunnel_id: int, session_id: int) -> str | None:
        try:
            return await self._ifname(tunnel_id, session_id)
        except ValueError:  # no IFNAME attribute: a PPP session
            return None

    async def _ifname(self, tunnel_id: int, session_id: int) -> str:
        key = (tunnel_id, session_id)
        if key not in self._ifnames:
            get = netlink._get_session(tunnel_id, session_id)
            self._remember_ifname(key, await self.netlink.channel.call(get))
        return self._known_ifname(key)

    def _remember_ifname(self, key: tuple[int, int], get: Request) -> None:
        ifname = netlink._reply_ifname(get)
        if ifname:
            self._ifnames[key] = ifname

    def _known_ifname(self, key: tuple[int, int]) -> str:
        ifname = self._ifnames.get(key)
        if not ifname:
            raise ValueError(f"session {key[0]}/{key[1]} has no network interface")
        return ifname

    @staticmethod
    async def _gather(first: Awaitable[int], second: Awaitable[str]) -> tuple[int, str]:
        results = await asyncio.gather(first, second, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        index, ifname = results
        assert isinstance(index, int) and isinstance(ifname, str)
        return index, ifname

    def open_ppp_socket(
        self, tunnel: KernelTunnelSpec, session_id: int, peer_session_id: int
    ) -> socket.socket:
        """Connect a PPPoL2TP socket to the session (managed tunnels only)."""
        return open_ppp_socket(tunnel, session_id, peer_session_id, netns=self.netns)

    # --- background work ------------------------------------------------------------

    def _spawn(
        self, work: Coroutine[Any, Any, None], tasks: set[asyncio.Task[Any]] | None = None
    ) -> None:
        task = asyncio.get_running_loop().create_task(work)
        group = self._tasks if tasks is None else tasks
        group.add(task)
        task.add_done_callback(group.discard)
        task.add_done_callback(self._task_done)

    def _spawn_undo(self, undo: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Delete what a cancelled (or half-failed) create made; close() waits for it."""
        try:
            work = undo()
        except DataPlaneClosed:
            return
        self._spawn(work, self._undos)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None or isinstance(exc, DataPlaneClosed | TunnelNotFound | SessionNotFound):
            return
        log.warning("kernel data plane background request failed: %s", exc)

    def _on_events(self) -> None:
        sock = self._event_sock
        if sock is None:
            return
        family_id = self._netlink.family_id if self._netlink is not None else 0
        for _ in range(_READS_PER_WAKEUP):
            try:
                data = sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS and self._started:
                    log.info("l2tp events lost (receive buffer overrun): learning tunnel IDs again")
                    self._spawn(self.refresh_tunnel_ids())
                    continue
                log.warning("l2tp event socket failed: %s", exc)
                return
            for _mtype, _flags, _seq, message in codec.iter_messages(data):
                event = parse_event(message, family_id)
                if event is None:
                    continue
                created, tunnel_id, portid = event
                check = self.tunnel_ids.event(created, tunnel_id, ours=portid == self._portid)
                if check is not None:
                    self._start_check(check)

    def _start_check(self, check: Check) -> None:
        self._spawn(self._run_check(check))

    async def _run_check(self, check: Check) -> None:
        nl = self._netlink
        if nl is None:
            return
        try:
            for delay in CHECK_DELAYS:
                if delay:
                    await asyncio.sleep(delay)
                exists = await nl.has_tunnel(check.tunnel_id)
                if not self.tunnel_ids.checked(check, exists):
                    return
        except KernelError:
            if not self._closed:
                raise  # logged by _task_done
        finally:
            self.tunnel_ids.give_up(check)  # a no-op once answered; else stays "in use"
