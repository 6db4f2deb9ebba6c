"""Sync and async clients of the kernel's ``l2tp`` generic netlink family.

Both clients share one sans-IO core (:class:`_Exchange`): it numbers requests,
encodes them, and turns the datagrams that come back into results or typed
exceptions; the clients only move bytes. Many requests can be sent in one
``send()`` (:meth:`L2tpNetlink.create_sessions`): the kernel processes every
message of a datagram before ``send()`` returns, so batching removes a system
call and a wake-up per request, which is what lets Python keep pace with
``ip -batch``. ``NETLINK_CAP_ACK`` keeps acknowledgements small and
``NETLINK_EXT_ACK`` adds the kernel's error text to our exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from l2tp.kernel import codec, rtnl
from l2tp.kernel.constants import GENL_NAME, Command, EncapType, PseudowireType
from l2tp.kernel.errors import KernelError, ModuleNotLoaded, error_for
from l2tp.kernel.model import SessionConfig, SessionInfo, Stats, TunnelConfig, TunnelInfo
from l2tp.kernel.netns import socket_in_netns

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_EXT_ACK = 11
NETLINK_CAP_ACK = 10
_RCVBUF = 4 << 20
_BATCH = 128
_BUFSIZE = 1 << 16


@dataclass(slots=True)
class _Request:
    """One request in flight and what the reply means for it."""

    cmd: Command
    attrs: codec.AttrList
    what: str
    dump: bool = False
    tunnel_id: int | None = None
    session_id: int | None = None
    module: str | None = None
    seq: int = 0
    replies: list[bytes] = field(default_factory=list)
    error: KernelError | None = None
    done: bool = False


class _Exchange:
    """Sans-IO: encode a list of requests and match the kernel's replies to them."""

    def __init__(self, family_id: int, first_seq: int, requests: Sequence[_Request]) -> None:
        self.pending: dict[int, _Request] = {}
        parts = []
        for offset, req in enumerate(requests):
            req.seq = (first_seq + offset) & 0xFFFFFFFF or 1
            flags = codec.NLM_F_REQUEST | (codec.NLM_F_DUMP if req.dump else codec.NLM_F_ACK)
            parts.append(
                codec.encode_message(family_id, req.cmd, req.attrs, seq=req.seq, flags=flags)
            )
            self.pending[req.seq] = req
        self.data = b"".join(parts)

    @property
    def finished(self) -> bool:
        return not self.pending

    def feed(self, data: bytes) -> None:
        for mtype, _flags, seq, message in codec.iter_messages(data):
            req = self.pending.get(seq)
            if req is None:
                continue  # a stale reply to an abandoned request
            if mtype == codec.NLMSG_ERROR:
                err, text = codec.parse_error(message)
                if err:
                    what = f"{req.what} ({text})" if text else req.what
                    req.error = error_for(
                        err,
                        what,
                        tunnel_id=req.tunnel_id,
                        session_id=req.session_id,
                        module=req.module,
                    )
                self._finish(req)
            elif mtype == codec.NLMSG_DONE:
                self._finish(req)
            else:
                req.replies.append(message)
                if not req.dump:
                    # A get is answered by one message and then an ACK; keep waiting.
                    pass

    def _finish(self, req: _Request) -> None:
        req.done = True
        del self.pending[req.seq]


def _tunnel_module(cfg: TunnelConfig) -> str | None:
    """Module whose absence explains EPROTONOSUPPORT for this create (None: bad socket)."""
    if cfg.fd is not None:
        return None
    if cfg.encap == EncapType.IP:
        return "l2tp_ip6" if cfg.local is not None and cfg.local.version == 6 else "l2tp_ip"
    return "l2tp_netlink"


def _session_module(cfg: SessionConfig) -> str:
    return "l2tp_ppp" if cfg.pw_type == PseudowireType.PPP else "l2tp_eth"


# --- request builders shared by both clients -----------------------------------------


def _create_tunnel(cfg: TunnelConfig) -> _Request:
    return _Request(
        Command.TUNNEL_CREATE,
        codec.tunnel_create_attrs(cfg),
        f"create tunnel {cfg.tunnel_id}",
        tunnel_id=cfg.tunnel_id,
        module=_tunnel_module(cfg),
    )


def _tunnel_cmd(cmd: Command, tunnel_id: int, verb: str) -> _Request:
    return _Request(
        cmd, codec.tunnel_id_attrs(tunnel_id), f"{verb} tunnel {tunnel_id}", tunnel_id=tunnel_id
    )


def _create_session(cfg: SessionConfig) -> _Request:
    return _Request(
        Command.SESSION_CREATE,
        codec.session_create_attrs(cfg),
        f"create session {cfg.session_id} in tunnel {cfg.tunnel_id}",
        tunnel_id=cfg.tunnel_id,
        session_id=cfg.session_id,
        module=_session_module(cfg),
    )


def _session_cmd(
    cmd: Command, tunnel_id: int, session_id: int, verb: str, attrs: codec.AttrList | None = None
) -> _Request:
    return _Request(
        cmd,
        attrs if attrs is not None else codec.session_id_attrs(tunnel_id, session_id),
        f"{verb} session {session_id} in tunnel {tunnel_id}",
        tunnel_id=tunnel_id,
        session_id=session_id,
    )


def _dump(cmd: Command, what: str) -> _Request:
    return _Request(cmd, [], f"dump {what}", dump=True)


def _check(requests: Iterable[_Request]) -> None:
    for req in requests:
        if req.error is not None:
            raise req.error


def _tunnels(req: _Request) -> list[TunnelInfo]:
    return [codec.tunnel_info(codec.decode_l2tp(m)[1]) for m in req.replies]


def _sessions(req: _Request) -> list[SessionInfo]:
    return [codec.session_info(codec.decode_l2tp(m)[1]) for m in req.replies]


def open_genl_socket(netns: str | None) -> tuple[socket.socket, int, dict[str, int]]:
    """A bound generic netlink socket and the ``l2tp`` family's id and multicast groups.

    Resolving the family makes the kernel load ``l2tp_netlink`` on demand; if
    that fails, the error names the module to load.
    """
    sock = socket_in_netns(netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    try:
        for opt in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):
            with contextlib.suppress(OSError):  # older kernels: plain acks still work
                sock.setsockopt(SOL_NETLINK, opt, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, _RCVBUF)  # SO_RCVBUFFORCE (root)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        sock.bind((0, 0))
        sock.send(codec.getfamily_request(GENL_NAME, seq=1))
        while True:
            for mtype, _flags, seq, message in codec.iter_messages(sock.recv(_BUFSIZE)):
                if seq != 1:
                    continue
                if mtype == codec.NLMSG_ERROR:
                    err, _text = codec.parse_error(message)
                    if err in (errno.ENOENT, errno.EOPNOTSUPP):
                        raise ModuleNotLoaded(
                            err, "l2tp_netlink", "resolve generic netlink family 'l2tp'"
                        )
                    raise error_for(err, "resolve generic netlink family 'l2tp'")
                family_id, groups = codec.parse_family(message)
                return sock, family_id, groups
    except BaseException:
        sock.close()
        raise


class _Base:
    """State shared by the sync and async clients."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._sock, self.family_id, self.mcast_groups = open_genl_socket(netns)
        self._seq = 1

    def _exchange(self, requests: Sequence[_Request]) -> _Exchange:
        exchange = _Exchange(self.family_id, self._seq + 1, requests)
        self._seq = (self._seq + len(requests)) & 0xFFFFFFFF
        return exchange

    def close(self) -> None:
        """Close the netlink socket (tunnels and sessions stay in the kernel)."""
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()


class L2tpNetlink(_Base):
    """Blocking client: every method is one (or one batch of) netlink round trip(s).

    ``netns`` names an ``ip netns`` namespace (or a path to one) to act in.
    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, *, netns: str | None = None) -> None:
        super().__init__(netns)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, requests: Sequence[_Request]) -> Sequence[_Request]:
        for start in range(0, len(requests), _BATCH):
            exchange = self._exchange(requests[start : start + _BATCH])
            self._sock.send(exchange.data)
            while not exchange.finished:
                exchange.feed(self._sock.recv(_BUFSIZE))
        _check(requests)
        return requests

    # tunnels
    def create_tunnel(self, config: TunnelConfig) -> None:
        self._run([_create_tunnel(config)])

    def modify_tunnel(self, tunnel_id: int, *, debug: int) -> None:
        req = _tunnel_cmd(Command.TUNNEL_MODIFY, tunnel_id, "modify")
        req.attrs = codec.tunnel_modify_attrs(tunnel_id, debug=debug)
        self._run([req])

    def delete_tunnel(self, tunnel_id: int) -> None:
        self._run([_tunnel_cmd(Command.TUNNEL_DELETE, tunnel_id, "delete")])

    def get_tunnel(self, tunnel_id: int) -> TunnelInfo:
        (req,) = self._run([_tunnel_cmd(Command.TUNNEL_GET, tunnel_id, "get")])
        return _tunnels(req)[0]

    def dump_tunnels(self) -> list[TunnelInfo]:
        (req,) = self._run([_dump(Command.TUNNEL_GET, "tunnels")])
        return _tunnels(req)

    def tunnel_stats(self, tunnel_id: int) -> Stats:
        return self.get_tunnel(tunnel_id).stats

    # sessions
    def create_session(self, config: SessionConfig) -> None:
        self._run([_create_session(config)])
        if config.mtu is not None:
            self._apply_mtu(config)

    def create_sessions(self, configs: Iterable[SessionConfig]) -> None:
        """Create many sessions with batched requests; raises the first failure."""
        configs = list(configs)
        self._run([_create_session(c) for c in configs])
        for cfg in configs:
            if cfg.mtu is not None:
                self._apply_mtu(cfg)

    def _apply_mtu(self, cfg: SessionConfig) -> None:
        assert cfg.mtu is not None
        ifname = self.get_session(cfg.tunnel_id, cfg.session_id).ifname
        if ifname is None:
            raise ValueError(f"session {cfg.session_id} has no interface to set an MTU on")
        rtnl.set_mtu(ifname, cfg.mtu, netns=self.netns)

    def modify_session(
        self,
        tunnel_id: int,
        session_id: int,
        *,
        send_seq: bool | None = None,
        recv_seq: bool | None = None,
        lns_mode: bool | None = None,
        reorder_timeout_ms: int | None = None,
        debug: int | None = None,
        mtu: int | None = None,
    ) -> None:
        attrs = codec.session_modify_attrs(
            tunnel_id,
            session_id,
            send_seq=send_seq,
            recv_seq=recv_seq,
            lns_mode=lns_mode,
            reorder_timeout_ms=reorder_timeout_ms,
            debug=debug,
        )
        self._run([_session_cmd(Command.SESSION_MODIFY, tunnel_id, session_id, "modify", attrs)])
        if mtu is not None:
            ifname = self.get_session(tunnel_id, session_id).ifname
            if ifname is None:
                raise ValueError(f"session {session_id} has no interface to set an MTU on")
            rtnl.set_mtu(ifname, mtu, netns=self.netns)

    def delete_session(self, tunnel_id: int, session_id: int) -> None:
        self._run([_session_cmd(Command.SESSION_DELETE, tunnel_id, session_id, "delete")])

    def delete_sessions(self, keys: Iterable[tuple[int, int]]) -> None:
        """Delete many ``(tunnel_id, session_id)`` with batched requests."""
        self._run([_session_cmd(Command.SESSION_DELETE, t, s, "delete") for t, s in keys])

    def get_session(self, tunnel_id: int, session_id: int) -> SessionInfo:
        (req,) = self._run([_session_cmd(Command.SESSION_GET, tunnel_id, session_id, "get")])
        return _sessions(req)[0]

    def dump_sessions(self, tunnel_id: int | None = None) -> list[SessionInfo]:
        (req,) = self._run([_dump(Command.SESSION_GET, "sessions")])
        found = _sessions(req)
        return found if tunnel_id is None else [s for s in found if s.tunnel_id == tunnel_id]

    def session_stats(self, tunnel_id: int, session_id: int) -> Stats:
        return self.get_session(tunnel_id, session_id).stats


class AsyncL2tpNetlink(_Base):
    """asyncio client with the same methods as :class:`L2tpNetlink`, as coroutines.

    The socket is non-blocking and driven by the event loop; the MTU change
    (rtnetlink, rare) runs in a worker thread.
    """

    def __init__(self, *, netns: str | None = None) -> None:
        super().__init__(netns)
        self._sock.setblocking(False)
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    async def _run(self, requests: Sequence[_Request]) -> Sequence[_Request]:
        loop = asyncio.get_running_loop()
        async with self._lock:
            for start in range(0, len(requests), _BATCH):
                exchange = self._exchange(requests[start : start + _BATCH])
                await loop.sock_sendall(self._sock, exchange.data)
                while not exchange.finished:
                    exchange.feed(await loop.sock_recv(self._sock, _BUFSIZE))
        _check(requests)
        return requests

    async def create_tunnel(self, config: TunnelConfig) -> None:
        await self._run([_create_tunnel(config)])

    async def modify_tunnel(self, tunnel_id: int, *, debug: int) -> None:
        req = _tunnel_cmd(Command.TUNNEL_MODIFY, tunnel_id, "modify")
        req.attrs = codec.tunnel_modify_attrs(tunnel_id, debug=debug)
        await self._run([req])

    async def delete_tunnel(self, tunnel_id: int) -> None:
        await self._run([_tunnel_cmd(Command.TUNNEL_DELETE, tunnel_id, "delete")])

    async def get_tunnel(self, tunnel_id: int) -> TunnelInfo:
        (req,) = await self._run([_tunnel_cmd(Command.TUNNEL_GET, tunnel_id, "get")])
        return _tunnels(req)[0]

    async def dump_tunnels(self) -> list[TunnelInfo]:
        (req,) = await self._run([_dump(Command.TUNNEL_GET, "tunnels")])
        return _tunnels(req)

    async def create_session(self, config: SessionConfig) -> None:
        await self.create_sessions([config])

    async def create_sessions(self, configs: Iterable[SessionConfig]) -> None:
        configs = list(configs)
        await self._run([_create_session(c) for c in configs])
        for cfg in configs:
            if cfg.mtu is not None:
                await self._set_mtu(cfg.tunnel_id, cfg.session_id, cfg.mtu)

    async def _set_mtu(self, tunnel_id: int, session_id: int, mtu: int) -> None:
        ifname = (await self.get_session(tunnel_id, session_id)).ifname
        if ifname is None:
            raise ValueError(f"session {session_id} has no interface to set an MTU on")
        await asyncio.to_thread(rtnl.set_mtu, ifname, mtu, netns=self.netns)

    async def modify_session(
        self,
        tunnel_id: int,
        session_id: int,
        *,
        send_seq: bool | None = None,
        recv_seq: bool | None = None,
        lns_mode: bool | None = None,
        reorder_timeout_ms: int | None = None,
        debug: int | None = None,
        mtu: int | None = None,
    ) -> None:
        attrs = codec.session_modify_attrs(
            tunnel_id,
            session_id,
            send_seq=send_seq,
            recv_seq=recv_seq,
            lns_mode=lns_mode,
            reorder_timeout_ms=reorder_timeout_ms,
            debug=debug,
        )
        await self._run(
            [_session_cmd(Command.SESSION_MODIFY, tunnel_id, session_id, "modify", attrs)]
        )
        if mtu is not None:
            await self._set_mtu(tunnel_id, session_id, mtu)

    async def delete_session(self, tunnel_id: int, session_id: int) -> None:
        await self._run([_session_cmd(Command.SESSION_DELETE, tunnel_id, session_id, "delete")])

    async def delete_sessions(self, keys: Iterable[tuple[int, int]]) -> None:
        await self._run([_session_cmd(Command.SESSION_DELETE, t, s, "delete") for t, s in keys])

    async def get_session(self, tunnel_id: int, session_id: int) -> SessionInfo:
        (req,) = await self._run([_session_cmd(Command.SESSION_GET, tunnel_id, session_id, "get")])
        return _sessions(req)[0]

    async def dump_sessions(self, tunnel_id: int | None = None) -> list[SessionInfo]:
        (req,) = await self._run([_dump(Command.SESSION_GET, "sessions")])
        found = _sessions(req)
        return found if tunnel_id is None else [s for s in found if s.tunnel_id == tunnel_id]
