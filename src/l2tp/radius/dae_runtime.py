"""The daemons' :class:`~l2tp.radius.dae.SessionDirectory`: the established sessions of an
:class:`~l2tp.runtime.context.L2tpContext`, with what the built-in PPP knows about them.

A session is described by its runtime key, its Calling-Station-Id (the Calling Number AVP
of its call, RFC 2661 4.4.5) and, for a built-in PPP session, the user its PPP
authenticated and the peer's IPCP address (Framed-IP-Address), and its listener (the
built-in PPP's :attr:`~l2tp.runtime.ppp_options.BuiltinPppOptions.listener`, which picks
that listener's RADIUS and so its NAS identity; for a pppd session, the listener that
accepted its tunnel), so that a request naming one listener's NAS identity reaches
that listener's sessions only (:meth:`~l2tp.radius.dae_model.NasIdentity.scope`). Its
Acct-Session-Id is the accounting engine's (RFC 2866 5.5): the engine hands the directory
a lookup ``acct_session_id(key)``; without one, sessions are found by the other
attributes only.

A Disconnect closes the session the way ``l2tp ctl close session`` does
(:meth:`~l2tp.runtime.session_handle.SessionHandle.close`: a CDN with Result Code 3,
administrative, RFC 2661 4.4.2), and works for pppd sessions as well. A CoA's
Session-Timeout goes to the built-in PPP link's deadline
(:meth:`~l2tp.runtime.ppp_link.PppLink.set_session_timeout`); a pppd session cannot take
one (the CoA is refused, Error-Cause 401).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from l2tp.protocol.constants import CdnResult
from l2tp.radius.dae import SessionQuery, SessionRef
from l2tp.runtime.context import L2tpContext
from l2tp.runtime.endpoints import Listener

if TYPE_CHECKING:  # the PPP core is imported only where PPP runs in-process
    from l2tp.runtime.builtin_ppp import BuiltinPppBackend
    from l2tp.runtime.handles import TunnelHandle
    from l2tp.runtime.ppp_link import PppLink

__all__ = ["DISCONNECT_MESSAGE", "ContextSessionDirectory"]

log = logging.getLogger("l2tp.radius.dae")

CLOSE_WAIT = 10.0
"""Longest a Disconnect waits for its session to be torn down (as ``l2tp ctl close``)."""
DISCONNECT_MESSAGE = "closed by operator"
"""The CDN's Error Message: the same words as ``l2tp ctl close session`` (an operator
acting through RADIUS), nothing about the request or the server."""

SessionKey = tuple[int, int]


class ContextSessionDirectory:
    """:class:`~l2tp.radius.dae.SessionDirectory` over ``ctx`` (module documentation).

    ``builtin``: the daemon's built-in PPP backend (``DispatchingBackend.builtin``), where
    user names, addresses and session deadlines live; None: pppd only. ``acct_session_id``:
    the accounting engine's Acct-Session-Id of a session key (None when it has none).
    """

    def __init__(
        self,
        ctx: L2tpContext,
        builtin: BuiltinPppBackend | None = None,
        *,
        acct_session_id: Callable[[SessionKey], str | None] | None = None,
        close_wait: float = CLOSE_WAIT,
        disconnecting: Callable[[SessionKey], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.builtin = builtin
        self.acct_session_id = acct_session_id
        self.close_wait = close_wait
        self.disconnecting = disconnecting
        """Told the key of each session a Disconnect-Request is about to close (the
        accounting engine: Acct-Terminate-Cause Admin-Reset, RFC 2866 5.10)."""

    def refs(self) -> list[SessionRef]:
        """Every established session of the context, described."""
        links = self.builtin.links if self.builtin is not None else {}
        refs = []
        for th in list(self.ctx.tunnels.values()):
            for sid, sh in list(th.sessions.items()):
                if not sh.established or sh.info is None:
                    continue
                key = (th.tunnel_id, sid)
                link = links.get(key)
                refs.append(
                    SessionRef(
                        key=key,
                        acct_session_id=(
                            self.acct_session_id(key) if self.acct_session_id else None
                        ),
                        user_name=link.user if link is not None else None,
                        framed_ip=link.peer_ipv4 if link is not None else None,
                        calling_station_id=sh.info.calling_number,
                        listener=_listener(th, link),
                    )
                )
        return refs

    def find(self, query: SessionQuery) -> list[SessionRef]:
        return [ref for ref in self.refs() if ref.matches(query)]

    async def disconnect(self, ref: SessionRef) -> bool:
        tunnel_id, session_id = ref.key
        th = self.ctx.tunnel(tunnel_id)
        sh = th.sessions.get(session_id) if th is not None else None
        if th is None or sh is None:
            return False
        if sh.closed is None:
            if self.disconnecting is not None:
                self.disconnecting(ref.key)
            log.info(
                "session %d/%d: disconnected by RADIUS (CDN)",
                tunnel_id,
                session_id,
                extra=th.log_extra(session_id),
            )
        try:
            async with asyncio.timeout(self.close_wait):
                if sh.closed is None:
                    await sh.close(CdnResult.ADMINISTRATIVE, message=DISCONNECT_MESSAGE)
                else:  # already ending: done once it is gone
                    await sh.wait_closed()
        except TimeoutError:
            return False
        return True

    async def set_session_timeout(self, ref: SessionRef, seconds: int | None) -> bool:
        link = self.builtin.links.get(ref.key) if self.builtin is not None else None
        if link is None or link.released or link.stopping:
            return False
        link.set_session_timeout(seconds)
        log.info(
            "%s: Session-Timeout %s by RADIUS",
            link.label,
            f"{seconds} s from now" if seconds is not None else "removed",
        )
        return True


def _listener(th: TunnelHandle, link: PppLink | None) -> str | None:
    """The listener a session goes by: its built-in PPP's (whose RADIUS, and so NAS
    identity, that listener's table chose), else the listener that accepted its tunnel;
    None for a LAC's session."""
    if link is not None and link.options.listener is not None:
        return link.options.listener
    return th.endpoint.options.name if isinstance(th.endpoint, Listener) else None
