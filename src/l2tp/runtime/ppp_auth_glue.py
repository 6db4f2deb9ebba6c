"""The authentication side of one built-in PPP link (a mixin of
:class:`~l2tp.runtime.ppp_link.PppLink`): the glue between the sans-IO core's
authenticator interface and the link's :class:`~l2tp.runtime.ppp_hooks.PppAuthenticator`
hook, the decisions it keeps, and the IPv4 pool callback.

The core asks synchronously (:class:`_HookAdapter`); a hook that answers with an
awaitable is parked on the link, the core reports :class:`~l2tp.ppp.AuthRequested` and
the link feeds the verdict back with ``auth_result`` once it resolves (a RADIUS
round trip, say), without blocking the loop. A granting decision may start the
session's time limit (RADIUS Session-Timeout, RFC 2865 5.27); a failed authentication
is reported to the control plane at once (CDN).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from ipaddress import IPv4Address

from l2tp.peer_text import quoted
from l2tp.ppp import AuthDecision, AuthFailed, AuthRequest, AuthRequested, PppConnection
from l2tp.ppp.events import Role as PppRole
from l2tp.runtime.backend import BackendSession
from l2tp.runtime.ppp_hooks import AuthContext, BuiltinPppOptions
from l2tp.runtime.ppp_network import LinkSettings
from l2tp.runtime.ppp_outcome import BuiltinPppCounters, Ending

__all__ = ["PppAuthGlue"]

log = logging.getLogger("l2tp.runtime.builtin_ppp")


class PppAuthGlue:
    """Mixin: the authentication hook glue and address allocation of one link (module doc).

    It must come before :class:`~l2tp.runtime.ppp_grants.PppGrants` and
    :class:`~l2tp.runtime.ppp_network.PppNetwork` in the link's bases, as every mixin
    that defines what a later one only declares.
    """

    session: BackendSession
    options: BuiltinPppOptions
    settings: LinkSettings
    counters: BuiltinPppCounters
    conn: PppConnection
    loop: asyncio.AbstractEventLoop
    label: str
    role: PppRole
    released: bool
    pool_address: IPv4Address | None
    granted: AuthDecision | None
    denied: AuthDecision | None
    claimed_user: str | None
    _auth_task: asyncio.Task[None] | None
    _pending_auth: tuple[AuthRequest, Awaitable[AuthDecision]] | None
    _session_timer: asyncio.TimerHandle | None

    def _transmit(self) -> None:
        raise NotImplementedError  # ppp_link.PppLink

    def _report(self, ending: Ending) -> None:
        raise NotImplementedError  # ppp_link.PppLink

    def set_session_timeout(self, seconds: float | None) -> None:
        raise NotImplementedError  # ppp_link.PppLink

    def _auth_requested(self, event: AuthRequested) -> None:
        pending, self._pending_auth = self._pending_auth, None
        if pending is None or pending[0] is not event.request:
            return  # cannot happen: the adapter parks the awaitable just before the event
        request, awaitable = pending

        async def wait_for_verdict() -> None:
            try:
                decision = await awaitable
                if not isinstance(decision, AuthDecision):
                    raise TypeError(f"the authentication hook returned {decision!r}")
            except asyncio.CancelledError:
                raise
            except Exception:
                self.counters.auth_hook_errors += 1
                log.exception(
                    "%s: authentication hook failed; denying %s", self.label, quoted(request.user)
                )
                decision = AuthDecision(success=False, message="Access denied")
            if self.released:
                return
            self._decided(decision)
            self.conn.auth_result(request, decision, self.loop.time())
            self._transmit()

        self._auth_task = self.loop.create_task(wait_for_verdict())

    def _decided(self, decision: AuthDecision) -> None:
        """Keep a granting decision; start its Session-Timeout (from the first grant: a
        CHAP re-challenge does not extend the session). Keep a denial too (why it was
        denied: accounting)."""
        if not decision.success:
            self.denied = decision
            return
        self.granted = decision
        timeout = decision.session_timeout
        if timeout is not None and self._session_timer is None:
            self.set_session_timeout(timeout)

    def _auth_failed(self, event: AuthFailed) -> None:
        method = event.method.value if event.method else "no method"
        if self.role is PppRole.AUTHENTICATOR:
            self.claimed_user = event.user or self.claimed_user
            log.warning(
                "%s: %s authentication of user %s failed: %s",
                self.label,
                method,
                quoted(event.user),
                event.reason,
            )
            self._report(Ending.AUTH_FAILED)
        else:
            log.warning(
                "%s: %s authentication as user %s to the peer failed: %s",
                self.label,
                method,
                quoted(event.user or self.options.user),
                event.reason,
            )
            self._report(Ending.AUTH_TO_PEER_FAILED)

    def _context(self) -> AuthContext:
        info = self.session.info
        return AuthContext(
            tunnel_id=info.tunnel_id,
            session_id=info.session_id,
            peer=self.session.peer,
            local=self.session.local,
            server=self.settings.server,
            calling_number=info.calling_number,
            called_number=info.called_number,
            label=self.label,
        )

    def _allocate(self, user: str | None) -> IPv4Address | None:
        """The IPv4 pool callback of the core: one address per session, kept until it ends."""
        pool = self.settings.pool
        if self.pool_address is None and pool is not None:
            self.pool_address = pool.allocate()
            if self.pool_address is None:
                self.counters.pool_exhausted += 1
                log.warning(
                    "%s: address pool %s exhausted: no IPv4 address for %s",
                    self.label,
                    pool.network,
                    quoted(user),
                )
        return self.pool_address


class _HookAdapter:
    """The core's synchronous :class:`~l2tp.ppp.Authenticator`, in front of the link's hook.

    A decision returned at once goes straight back to the core; an awaitable is parked on
    the link and the core reports :class:`~l2tp.ppp.AuthRequested`, which the link
    answers once the awaitable resolves.
    """

    def __init__(self, link: PppAuthGlue) -> None:
        self._link = link

    def authenticate(self, request: AuthRequest) -> AuthDecision | None:
        link = self._link
        link.claimed_user = request.user
        hook = link.settings.hook
        if hook is None:
            return AuthDecision(success=False, message="Access denied")
        try:
            verdict = hook.authenticate(request, link._context())
        except Exception:
            link.counters.auth_hook_errors += 1
            log.exception(
                "%s: authentication hook failed; denying %s", link.label, quoted(request.user)
            )
            return AuthDecision(success=False, message="Access denied")
        if isinstance(verdict, AuthDecision):
            link._decided(verdict)
            return verdict
        link._pending_auth = (request, verdict)
        return None
