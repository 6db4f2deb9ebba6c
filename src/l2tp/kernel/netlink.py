"""Sync and async clients of the kernel's ``l2tp`` generic netlink family.

Both clients build the same :class:`~l2tp.kernel.pipeline.Request` objects
(with the ``struct`` encoders of :mod:`l2tp.kernel.codec`) and run them
through the same sans-IO :class:`~l2tp.kernel.pipeline.Pipeline`, which
numbers them and turns the datagrams that come back into results or typed
exceptions; the clients only move bytes (:mod:`l2tp.kernel.channel`).

Many requests go in one ``send()``: the kernel processes every message of a
datagram in order before ``send()`` returns, so batching removes a system
call and a wake-up per request, which is what lets Python keep pace with
``ip -batch``. :class:`L2tpNetlink` sends a batch and waits for all its
replies; :class:`AsyncL2tpNetlink` keeps up to a window of requests in flight
from any number of concurrent callers and matches replies by sequence number.
``NETLINK_CAP_ACK`` keeps acknowledgements small and ``NETLINK_EXT_ACK`` adds
the kernel's error text to our exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Self, Unpack

from l2tp.kernel import codec
from l2tp.kernel.channel import AsyncChannel, Sending, SyncChannel
from l2tp.kernel.constants import GENL_NAME, Command, EncapType, PseudowireType
from l2tp.kernel.errors import KernelError, ModuleNotLoaded, TunnelNotFound
from l2tp.kernel.model import (
    NETLINK_SESSION_CHANGES,
    KernelSessionSpec,
    KernelTunnelSpec,
    NetlinkSessionChanges,
    SessionChanges,
    SessionInfo,
    Stats,
    TunnelInfo,
    given_changes,
)
from l2tp.kernel.netns import socket_in_netns
from l2tp.kernel.pipeline import DEFAULT_WINDOW, Pipeline, Request
from l2tp.kernel.rtnl import AsyncRtnl, Rtnl

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_EXT_ACK = 11
NETLINK_CAP_ACK = 10
SO_RCVBUFFORCE = 33
_RCVBUF = 4 << 20
_BATCH = 128

_Request = Request  # the name before the pipeline was shared with rtnetlink


class _Exchange:
    """One batch of requests through a fresh pipeline (kept for the codec unit tests)."""

    def __init__(self, family_id: int, first_seq: int, requests: Sequence[Request]) -> None:
        self._pipeline = Pipeline(family_id, window=max(1, len(requests)), first_seq=first_seq)
        for request in requests:
            self._pipeline.submit(request)
        self.data, _sent = self._pipeline.outgoing()

    @property
    def finished(self) -> bool:
        return self._pipeline.idle

    def feed(self, data: bytes) -> None:
        self._pipeline.feed(data)


def _tunnel_module(cfg: KernelTunnelSpec) -> str | None:
    """Module whose absence explains EPROTONOSUPPORT for this create (None: bad socket)."""
    if cfg.fd is not None:
        return None
    if cfg.encap == EncapType.IP:
        return "l2tp_ip6" if cfg.local is not None and cfg.local.version == 6 else "l2tp_ip"
    return "l2tp_netlink"


def _session_module(cfg: KernelSessionSpec) -> str:
    return "l2tp_ppp" if cfg.pw_type == PseudowireType.PPP else "l2tp_eth"


# --- request builders shared by both clients -----------------------------------------


def _create_tunnel(cfg: KernelTunnelSpec) -> Request:
    """TUNNEL_CREATE, marked slow: the first UDP-encapsulated socket enables the
    kernel's ``udp_encap_needed_key`` static key, which patches kernel text across
    CPUs inside the request (0.77 s in the emulated test VM, on the event loop before
    this was marked); tunnels are few, so the thread hand-off costs little."""
    request = Request(
        codec.genl_body(Command.TUNNEL_CREATE, codec.tunnel_create_attrs(cfg)),
        f"create tunnel {cfg.tunnel_id}",
        tunnel_id=cfg.tunnel_id,
        module=_tunnel_module(cfg),
    )
    request.slow = True
    return request


def _delete_tunnel(tunnel_id: int) -> Request:
    """TUNNEL_DELETE, marked slow: it closes every session of the tunnel inside the
    request (an RCU grace period per L2TPv3 session, device unregistrations)."""
    request = _tunnel_cmd(Command.TUNNEL_DELETE, tunnel_id, "delete")
    request.slow = True
    return request


def _tunnel_cmd(
    cmd: Command, tunnel_id: int, verb: str, attrs: codec.AttrList | None = None
) -> Request:
    return Request(
        codec.genl_body(cmd, attrs if attrs is not None else codec.tunnel_id_attrs(tunnel_id)),
        f"{verb} tunnel {tunnel_id}",
        tunnel_id=tunnel_id,
    )


def _create_session(cfg: KernelSessionSpec) -> Request:
    """SESSION_CREATE. Not marked slow although an Ethernet session registers a device
    (~1.3 ms in the test VM): from the thread, 1,000 kernel-named ones took 3.5-4.6 s
    against 2.4-2.7 s from the loop in batches of 8 (see :mod:`l2tp.kernel.channel`)."""
    return Request(
        codec.genl_body(Command.SESSION_CREATE, codec.session_create_attrs(cfg)),
        f"create session {cfg.session_id} in tunnel {cfg.tunnel_id}",
        tunnel_id=cfg.tunnel_id,
        session_id=cfg.session_id,
        module=_session_module(cfg),
    )


def _session_cmd(
    cmd: Command, tunnel_id: int, session_id: int, verb: str, attrs: codec.AttrList | None = None
) -> Request:
    return Request(
        codec.genl_body(
            cmd, attrs if attrs is not None else codec.session_id_attrs(tunnel_id, session_id)
        ),
        f"{verb} session {session_id} in tunnel {tunnel_id}",
        tunnel_id=tunnel_id,
        session_id=session_id,
    )


def _get_tunnel(tunnel_id: int) -> Request:
    return _tunnel_cmd(Command.TUNNEL_GET, tunnel_id, "get")


def _get_session(tunnel_id: int, session_id: int) -> Request:
    return _session_cmd(Command.SESSION_GET, tunnel_id, session_id, "get")


def _modify_session(
    tunnel_id: int, session_id: int, changes: SessionChanges, *, debug: int | None = None
) -> Request:
    """SESSION_MODIFY for the L2TP settings among ``changes`` (its ``mtu`` is not one:
    the MTU is an rtnetlink setting of the session's interface)."""
    attrs = codec.session_modify_attrs(
        tunnel_id,
        session_id,
        send_seq=changes.get("send_seq"),
        recv_seq=changes.get("recv_seq"),
        lns_mode=changes.get("lns_mode"),
        reorder_timeout_ms=changes.get("reorder_timeout_ms"),
        debug=debug,
    )
    return _session_cmd(Command.SESSION_MODIFY, tunnel_id, session_id, "modify", attrs)


def _modify_requests(
    tunnel_id: int, session_id: int, changes: NetlinkSessionChanges
) -> list[Request]:
    """What the clients' ``modify_session`` sends, sync or async: the SESSION_MODIFY and,
    when an MTU is to be set, a SESSION_GET in the same batch, whose reply names the
    session's interface (see :func:`_mtu_ifname`). Raises TypeError for an unknown
    keyword in ``changes``, before anything is sent."""
    given = given_changes(changes, NETLINK_SESSION_CHANGES)
    modify = _modify_session(tunnel_id, session_id, changes, debug=changes.get("debug"))
    if "mtu" not in given:
        return [modify]
    return [modify, _get_session(tunnel_id, session_id)]


def _mtu_ifname(requests: Sequence[Request], session_id: int) -> str:
    """The interface to set the MTU on, from the finished :func:`_modify_requests`."""
    ifname = _sessions(requests[-1])[0].ifname
    if ifname is None:
        raise ValueError(f"session {session_id} has no interface to set an MTU on")
    return ifname


def _delete_session(tunnel_id: int, session_id: int) -> Request:
    """SESSION_DELETE, marked slow: Linux 6.1 waits for an RCU grace period inside the
    request (``synchronize_rcu()`` unhashing an L2TPv3 session; an Ethernet session's
    device unregistration), ~20 ms for a v3 PPP session and ~56 ms for an Ethernet one
    in the test VM."""
    request = _session_cmd(Command.SESSION_DELETE, tunnel_id, session_id, "delete")
    request.slow = True
    return request


def _dump(cmd: Command, what: str) -> Request:
    return Request(codec.genl_body(cmd, []), f"dump {what}", dump=True)


def _getfamily(name: str) -> Request:
    return Request(
        codec.getfamily_body(name),
        f"resolve generic netlink family {name!r}",
        mtype=codec.GENL_ID_CTRL,
    )


def _family(request: Request) -> tuple[int, dict[str, int]]:
    """``(family id, multicast groups)`` of a finished :func:`_getfamily` (or the error)."""
    if request.error is not None:
        if request.error.errno in (errno.ENOENT, errno.EOPNOTSUPP):
            raise ModuleNotLoaded(request.error.errno, "l2tp_netlink", request.what)
        raise request.error
    return codec.parse_family(request.replies[0])


def _tunnels(req: Request) -> list[TunnelInfo]:
    return [codec.tunnel_info(codec.decode_l2tp(m)[1]) for m in req.replies]


def _sessions(req: Request) -> list[SessionInfo]:
    return [codec.session_info(codec.decode_l2tp(m)[1]) for m in req.replies]


def _reply_ifname(get: Request) -> str | None:
    """The interface named in the reply of a finished session GET (None: no reply, or a
    session without one), decoded without building a :class:`SessionInfo`."""
    return codec.ifname_of(get.replies[0]) if get.replies else None


def _session_ifname(cfg: KernelSessionSpec, get: Request | None) -> str:
    """The interface of a created session: from the spec, else from its GET reply."""
    ifname = cfg.ifname
    if ifname is None and get is not None:
        ifname = _reply_ifname(get)
    if not ifname:
        raise ValueError(f"session {cfg.session_id} has no interface to set an MTU on")
    return ifname


def genl_socket(netns: str | None) -> socket.socket:
    """A bound generic netlink socket in ``netns`` with extended ACKs and a large buffer."""
    sock = socket_in_netns(netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    try:
        for opt in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):
            with contextlib.suppress(OSError):  # older kernels: plain acks still work
                sock.setsockopt(SOL_NETLINK, opt, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RCVBUF)  # root only
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def open_genl_socket(netns: str | None) -> tuple[socket.socket, int, dict[str, int]]:
    """A bound generic netlink socket and the ``l2tp`` family's id and multicast groups.

    Resolving the family makes the kernel load ``l2tp_netlink`` on demand; if
    that fails, the error names the module to load. Blocking.
    """
    sock = genl_socket(netns)
    try:
        (request,) = SyncChannel(sock).exchange([_getfamily(GENL_NAME)])
        family_id, groups = _family(request)
    except BaseException:
        sock.close()
        raise
    return sock, family_id, groups


class L2tpNetlink:
    """Blocking client: every method is one (or one batch of) netlink round trip(s).

    ``netns`` names an ``ip netns`` namespace (or a path to one) to act in.
    Use as a context manager or call :meth:`close`. Interface changes (MTU)
    go through one rtnetlink socket, opened on first use.
    """

    def __init__(self, *, netns: str | None = None) -> None:
        self.netns = netns
        self._sock, self.family_id, self.mcast_groups = open_genl_socket(netns)
        self._channel = SyncChannel(self._sock, self.family_id, window=_BATCH)
        self._rtnl: Rtnl | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the netlink sockets (tunnels and sessions stay in the kernel)."""
        self._sock.close()
        if self._rtnl is not None:
            self._rtnl.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def rtnl(self) -> Rtnl:
        """The rtnetlink client of this namespace (opened on first use, closed with us)."""
        if self._rtnl is None:
            self._rtnl = Rtnl(netns=self.netns)
        return self._rtnl

    def _run(self, requests: Sequence[Request]) -> Sequence[Request]:
        return self._channel.run(requests)

    # tunnels
    def create_tunnel(self, config: KernelTunnelSpec) -> None:
        self._run([_create_tunnel(config)])

    def modify_tunnel(self, tunnel_id: int, *, debug: int) -> None:
        attrs = codec.tunnel_modify_attrs(tunnel_id, debug=debug)
        self._run([_tunnel_cmd(Command.TUNNEL_MODIFY, tunnel_id, "modify", attrs)])

    def delete_tunnel(self, tunnel_id: int) -> None:
        self._run([_delete_tunnel(tunnel_id)])

    def get_tunnel(self, tunnel_id: int) -> TunnelInfo:
        (req,) = self._run([_get_tunnel(tunnel_id)])
        return _tunnels(req)[0]

    def dump_tunnels(self) -> list[TunnelInfo]:
        (req,) = self._run([_dump(Command.TUNNEL_GET, "tunnels")])
        return _tunnels(req)

    def tunnel_stats(self, tunnel_id: int) -> Stats:
        return self.get_tunnel(tunnel_id).stats

    # sessions
    def create_session(self, config: KernelSessionSpec) -> None:
        self.create_sessions([config])

    def create_sessions(self, configs: Iterable[KernelSessionSpec]) -> None:
        """Create many sessions with batched requests; raises the first failure.

        An MTU is set on the session's interface afterwards (rtnetlink); a
        session created without ``ifname`` is looked up with a GET sent in the
        same batch as its create, so that costs no extra round trip.
        """
        configs = list(configs)
        requests: list[Request] = []
        gets: dict[int, Request] = {}
        for index, cfg in enumerate(configs):
            requests.append(_create_session(cfg))
            if cfg.mtu is not None and cfg.ifname is None:
                gets[index] = _get_session(cfg.tunnel_id, cfg.session_id)
                requests.append(gets[index])
        self._channel.exchange(requests)
        for request in requests:  # a create's error first; a GET fails only if it did
            if request.error is not None and request not in gets.values():
                raise request.error
        mtus = [
            (_session_ifname(cfg, gets.get(index)), cfg.mtu)
            for index, cfg in enumerate(configs)
            if cfg.mtu is not None
        ]
        for ifname, mtu in mtus:
            assert mtu is not None
            self.rtnl.set_mtu(ifname, mtu)

    def modify_session(
        self, tunnel_id: int, session_id: int, **changes: Unpack[NetlinkSessionChanges]
    ) -> None:
        """Change the given settings (see :class:`~l2tp.kernel.model.SessionChanges`)."""
        requests = _modify_requests(tunnel_id, session_id, changes)
        self._run(requests)
        mtu = changes.get("mtu")
        if mtu is not None:
            self.rtnl.set_mtu(_mtu_ifname(requests, session_id), mtu)

    def delete_session(self, tunnel_id: int, session_id: int) -> None:
        self._run([_delete_session(tunnel_id, session_id)])

    def delete_sessions(self, keys: Iterable[tuple[int, int]]) -> None:
        """Delete many ``(tunnel_id, session_id)`` with batched requests."""
        self._run([_delete_session(t, s) for t, s in keys])

    def get_session(self, tunnel_id: int, session_id: int) -> SessionInfo:
        (req,) = self._run([_get_session(tunnel_id, session_id)])
        return _sessions(req)[0]

    def dump_sessions(self, tunnel_id: int | None = None) -> list[SessionInfo]:
        (req,) = self._run([_dump(Command.SESSION_GET, "sessions")])
        found = _sessions(req)
        return found if tunnel_id is None else [s for s in found if s.tunnel_id == tunnel_id]

    def session_stats(self, tunnel_id: int, session_id: int) -> Stats:
        return self.get_session(tunnel_id, session_id).stats


class AsyncL2tpNetlink:
    """asyncio client with the same methods as :class:`L2tpNetlink`, as coroutines.

    Calls from concurrent tasks are pipelined on one non-blocking socket (up
    to ``window`` in flight, the rest queued, see :mod:`l2tp.kernel.channel`)
    and carried out by the kernel in the order they were made.
    ``AsyncL2tpNetlink(netns=...)`` resolves the ``l2tp`` family with one
    blocking round trip, as before; ``await AsyncL2tpNetlink.open(netns=...)``
    does it without blocking. MTU changes go through :attr:`rtnl` (an
    :class:`~l2tp.kernel.rtnl.AsyncRtnl`, opened on first use unless one is
    passed in; closed with us only if we opened it).
    """

    def __init__(
        self,
        *,
        netns: str | None = None,
        window: int = DEFAULT_WINDOW,
        sending: Sending = "auto",
        rtnl: AsyncRtnl | None = None,
        _channel: AsyncChannel | None = None,
        _groups: dict[str, int] | None = None,
    ) -> None:
        self.netns = netns
        self._sending: Sending = sending
        if _channel is None:
            sock, family_id, _groups = open_genl_socket(netns)
            _channel = AsyncChannel(sock, family_id, window=window, sending=sending, name="genl")
        self._channel = _channel
        self.family_id = _channel.family_id
        self.mcast_groups = _groups or {}
        self._rtnl = rtnl
        self._own_rtnl = rtnl is None

    @classmethod
    async def open(
        cls,
        *,
        netns: str | None = None,
        window: int = DEFAULT_WINDOW,
        sending: Sending = "auto",
        rtnl: AsyncRtnl | None = None,
    ) -> Self:
        """A client whose family lookup goes through the pipeline (never blocks the loop)."""
        channel = AsyncChannel(genl_socket(netns), window=window, sending=sending, name="genl")
        try:
            request = _getfamily(GENL_NAME)
            # Resolving the family may load l2tp_netlink (modprobe inside the request:
            # ~0.37 s in the test VM): from the sender thread, not the loop.
            request.slow = True
            with contextlib.suppress(KernelError):  # _family() raises it, specific
                await channel.call(request)
            channel.family_id, groups = _family(request)
        except BaseException:
            await channel.aclose()
            raise
        return cls(netns=netns, sending=sending, rtnl=rtnl, _channel=channel, _groups=groups)

    @property
    def channel(self) -> AsyncChannel:
        """The pipelined socket (for its counters; requests go through the methods)."""
        return self._channel

    @property
    def rtnl(self) -> AsyncRtnl:
        if self._rtnl is None:
            self._rtnl = AsyncRtnl(netns=self.netns, sending=self._sending)
        return self._rtnl

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def close(self) -> None:
        """Close the socket(s); requests not yet answered fail with ``DataPlaneClosed``."""
        self._channel.close()
        if self._own_rtnl and self._rtnl is not None:
            self._rtnl.close()

    async def aclose(self) -> None:
        """:meth:`close`, and wait until the sockets are closed."""
        self.close()
        await self._channel.aclose()
        if self._own_rtnl and self._rtnl is not None:
            await self._rtnl.aclose()

    def fileno(self) -> int:
        return self._channel.sock.fileno()

    async def _run(self, requests: Sequence[Request]) -> Sequence[Request]:
        return await self._channel.call_many(requests)

    async def _call(self, request: Request) -> Request:
        return await self._channel.call(request)

    async def create_tunnel(self, config: KernelTunnelSpec) -> None:
        await self._call(_create_tunnel(config))

    async def modify_tunnel(self, tunnel_id: int, *, debug: int) -> None:
        attrs = codec.tunnel_modify_attrs(tunnel_id, debug=debug)
        await self._call(_tunnel_cmd(Command.TUNNEL_MODIFY, tunnel_id, "modify", attrs))

    async def delete_tunnel(self, tunnel_id: int) -> None:
        await self._call(_delete_tunnel(tunnel_id))

    async def get_tunnel(self, tunnel_id: int) -> TunnelInfo:
        return _tunnels(await self._call(_get_tunnel(tunnel_id)))[0]

    async def dump_tunnels(self) -> list[TunnelInfo]:
        return _tunnels(await self._call(_dump(Command.TUNNEL_GET, "tunnels")))

    async def has_tunnel(self, tunnel_id: int) -> bool:
        """Whether the namespace has this tunnel (a GET; the reply is not decoded)."""
        try:
            await self._call(_get_tunnel(tunnel_id))
        except TunnelNotFound:
            return False
        return True

    async def dump_tunnel_ids(self) -> set[int]:
        """The IDs of every tunnel of the namespace (one dump, decoded without pyroute2)."""
        req = await self._call(_dump(Command.TUNNEL_GET, "tunnels"))
        return {tid for m in req.replies if (tid := codec.tunnel_id_of(m)) is not None}

    async def tunnel_stats(self, tunnel_id: int) -> Stats:
        return (await self.get_tunnel(tunnel_id)).stats

    async def create_session(self, config: KernelSessionSpec) -> str | None:
        """Create a session (and set its MTU); return its interface name if known.

        That is the spec's ``ifname``, or, when an MTU is to be set on a session
        created without one, the name the kernel chose, read by a GET sent in
        the same batch as the create (no extra round trip).
        """
        create = _create_session(config)
        if config.mtu is None:
            await self._call(create)
            return config.ifname
        get = None
        if config.ifname is None:
            get = _get_session(config.tunnel_id, config.session_id)
        await self._run([create] if get is None else [create, get])
        ifname = _session_ifname(config, get)
        await self.rtnl.set_mtu(ifname, config.mtu)
        return ifname

    async def create_sessions(self, configs: Iterable[KernelSessionSpec]) -> None:
        """Create many sessions, pipelined; raises the first failure (after all finished)."""
        configs = list(configs)
        with_mtu = [c for c in configs if c.mtu is not None]
        results = await asyncio.gather(
            self._run([_create_session(c) for c in configs if c.mtu is None]),
            *(self.create_session(c) for c in with_mtu),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def modify_session(
        self, tunnel_id: int, session_id: int, **changes: Unpack[NetlinkSessionChanges]
    ) -> None:
        """Change the given settings (see :class:`~l2tp.kernel.model.SessionChanges`)."""
        requests = _modify_requests(tunnel_id, session_id, changes)
        mtu = changes.get("mtu")
        if mtu is None:
            await self._call(requests[0])
            return
        await self._run(requests)
        await self.rtnl.set_mtu(_mtu_ifname(requests, session_id), mtu)

    async def delete_session(self, tunnel_id: int, session_id: int) -> None:
        """Delete a session (sent from the channel's thread: see :func:`_delete_session`)."""
        await self._call(_delete_session(tunnel_id, session_id))

    async def delete_sessions(self, keys: Iterable[tuple[int, int]]) -> None:
        await self._run([_delete_session(t, s) for t, s in keys])

    async def get_session(self, tunnel_id: int, session_id: int) -> SessionInfo:
        return _sessions(await self._call(_get_session(tunnel_id, session_id)))[0]

    async def session_ifname(self, tunnel_id: int, session_id: int) -> str | None:
        """The interface name of a session (a GET, decoded without pyroute2)."""
        return _reply_ifname(await self._call(_get_session(tunnel_id, session_id)))

    async def dump_sessions(self, tunnel_id: int | None = None) -> list[SessionInfo]:
        found = _sessions(await self._call(_dump(Command.SESSION_GET, "sessions")))
        return found if tunnel_id is None else [s for s in found if s.tunnel_id == tunnel_id]

    async def session_stats(self, tunnel_id: int, session_id: int) -> Stats:
        return (await self.get_session(tunnel_id, session_id)).stats
