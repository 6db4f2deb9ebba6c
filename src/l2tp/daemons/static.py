"""Static L2TPv3 tunnels: turn ``[tunnel.*]`` tables into kernel objects and back.

A static tunnel runs no control protocol (RFC 3931 leaves it to configuration
when both ends agree every ID and cookie by hand), so bringing one up is a
sequence of netlink requests and tearing it down must remove *exactly* what was
created - never a tunnel that another tool or daemon made with the same ID.
:class:`StaticTunnel` records what it created and undoes it in reverse order.

Cookies follow iproute2 and the kernel: ``cookie`` is the value we put in the
packets we send and ``peer_cookie`` the value we require in packets we
receive, so the two ends of a pseudowire swap them. (go-l2tp hands
``peer_cookie`` to the kernel as the local cookie, so its sessions with cookies
pass no traffic against iproute2; we do not reproduce that.)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from l2tp import config as cfg
from l2tp.kernel.async_dataplane import AsyncDataPlane
from l2tp.kernel.constants import EncapType, L2SpecType, PseudowireType
from l2tp.kernel.errors import KernelError, SessionNotFound, TunnelNotFound
from l2tp.kernel.model import SessionConfig, TunnelConfig

log = logging.getLogger("l2tp.daemons.static")

_PSEUDOWIRES = {
    cfg.Pseudowire.ETH: PseudowireType.ETH,
    cfg.Pseudowire.PPP: PseudowireType.PPP,
    cfg.Pseudowire.PPPAC: PseudowireType.PPP_AC,
}
_L2SPEC = {cfg.L2SpecType.NONE: L2SpecType.NONE, cfg.L2SpecType.DEFAULT: L2SpecType.DEFAULT}


def kernel_tunnel(tunnel: cfg.TunnelSection, *, fd: int | None = None) -> TunnelConfig:
    """The kernel tunnel for a static (``fd`` None) or quiescent (our socket) tunnel."""
    if tunnel.tid is None or tunnel.ptid is None or tunnel.local is None:
        raise ValueError(f"tunnel {tunnel.name}: static tunnels need local, tid and ptid")
    udp = tunnel.encap is cfg.Encap.UDP
    return TunnelConfig(
        tunnel_id=tunnel.tid,
        peer_tunnel_id=tunnel.ptid,
        version=3 if tunnel.version is cfg.Version.L2TPV3 else 2,
        encap=EncapType.UDP if udp else EncapType.IP,
        fd=fd,
        local=None if fd is not None else tunnel.local.address,
        peer=None if fd is not None else tunnel.peer.address,
        local_port=tunnel.local.port if udp and fd is None else 0,
        peer_port=tunnel.peer.port if udp and fd is None else 0,
    )


def kernel_session(tunnel: cfg.TunnelSection, session: cfg.SessionSection) -> SessionConfig:
    """The kernel session for one ``[tunnel.T.session.S]`` table of a static tunnel."""
    if tunnel.tid is None or session.sid is None or session.psid is None:
        raise ValueError(f"tunnel {tunnel.name} session {session.name}: needs sid and psid")
    return SessionConfig(
        tunnel_id=tunnel.tid,
        session_id=session.sid,
        peer_session_id=session.psid,
        pw_type=_PSEUDOWIRES[session.pseudowire],
        cookie=session.cookie or b"",
        peer_cookie=session.peer_cookie or b"",
        l2spec_type=_L2SPEC[session.l2spec_type],
        send_seq=session.seqnum,
        recv_seq=session.seqnum,
        reorder_timeout_ms=round(session.reorder_timeout * 1000),
        ifname=session.interface_name,
        mtu=session.mtu,
    )


@dataclass(slots=True)
class StaticTunnel:
    """One configured tunnel and the kernel objects this process created for it."""

    config: cfg.TunnelSection
    dataplane: AsyncDataPlane
    fd: int | None = None
    tunnel_created: bool = False
    sessions_created: list[int] = field(default_factory=list)
    interfaces: dict[int, str] = field(default_factory=dict)
    """Each session's interface by Session ID: its ``interface_name``, or the name the
    kernel gave it (looked up once, after its creation), for the hooks and ``ctl``."""

    @property
    def tunnel_id(self) -> int:
        assert self.config.tid is not None
        return self.config.tid

    async def up(self) -> None:
        """Create the tunnel and its sessions; on failure (or cancellation) undo what was
        done and re-raise."""
        logger = logging.LoggerAdapter(log, {"tunnel": self.config.name})
        try:
            await self.dataplane.create_tunnel(kernel_tunnel(self.config, fd=self.fd))
            self.tunnel_created = True
            logger.info("tunnel %s: created kernel tunnel %d", self.config.name, self.tunnel_id)
            for session in self.config.sessions:
                await self.dataplane.create_session(kernel_session(self.config, session))
                assert session.sid is not None
                self.sessions_created.append(session.sid)
                await self._learn_interface(session.sid, session.interface_name)
                if session.bridge:
                    await self.dataplane.attach_to_bridge(
                        self.tunnel_id, session.sid, session.bridge
                    )
                logger.info(
                    "tunnel %s session %s: created kernel session %d",
                    self.config.name,
                    session.name,
                    session.sid,
                )
        except BaseException:
            await asyncio.shield(self.down())
            raise

    async def _learn_interface(self, sid: int, configured: str | None) -> None:
        """Remember a session's interface name; a failed lookup only leaves it unknown."""
        if configured:
            self.interfaces[sid] = configured
            return
        try:
            name = await self.dataplane.session_interface(self.tunnel_id, sid)
        except (KernelError, OSError, ValueError) as exc:
            log.info("tunnel %s: interface of session %d: %s", self.config.name, sid, exc)
            return
        if name:
            self.interfaces[sid] = name

    async def down(self) -> None:
        """Delete the sessions and tunnel this object created; never raises for absent ones.

        Objects that vanished meanwhile (the peer's managed socket closed, an
        administrator's ``ip l2tp del``) are not an error at teardown.
        """
        await self._sessions_down()
        if self.tunnel_created:
            self.tunnel_created = False
            try:
                await self.dataplane.delete_tunnel(self.tunnel_id)
            except TunnelNotFound:
                pass
            except KernelError as exc:
                log.warning("tunnel %s: deleting tunnel: %s", self.config.name, exc)
            else:
                log.info("tunnel %s: deleted kernel tunnel %d", self.config.name, self.tunnel_id)

    async def _sessions_down(self) -> None:
        while self.sessions_created:
            sid = self.sessions_created.pop()
            try:
                await self.dataplane.delete_session(self.tunnel_id, sid)
            except (SessionNotFound, TunnelNotFound):
                pass
            except KernelError as exc:
                log.warning("tunnel %s: deleting session %d: %s", self.config.name, sid, exc)
