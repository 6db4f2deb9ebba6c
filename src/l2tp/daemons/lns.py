"""l2tp-lns: an L2TPv2 LNS from ``[listener.*]`` tables, one pppd per session.

Each listener binds its ``listen`` address and accepts tunnels from the
``allowed_peers`` (any when empty; others' SCCRQs are dropped unanswered), up
to ``max_tunnels`` (beyond: StopCCN 2 / Error 4). Calls beyond
``max_sessions`` (all tunnels of the listener) or ``max_sessions_per_tunnel``
get CDN 4 / Error 4. ``secret`` turns on challenge authentication (RFC 2661
5.1.1; a wrong secret ends in StopCCN 4) and, with ``hide_avps``, AVP hiding.

Reload (SIGHUP): a listener added to the file starts, a removed one stops
(StopCCN on its tunnels), one whose ``listen`` address or ``version`` changed
is restarted; for every other listener the new limits, ``allowed_peers``,
secret, timers and pppd options apply to tunnels and calls accepted from then
on, while existing tunnels and sessions keep running unchanged. See
docs/daemons.md.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from l2tp import config as cfg
from l2tp.config.errors import table_path, toml_string
from l2tp.daemons import common
from l2tp.daemons.configmap import encap, listen_options, listener_config
from l2tp.daemons.preflight import StartError, describe_os_error
from l2tp.daemons.roles import RoleBase
from l2tp.runtime.control import Listener
from l2tp.runtime.portowner import udp_port_owners

log = logging.getLogger("l2tp.lns")


@dataclass(eq=False, repr=False)
class Lns(RoleBase):
    """The ``[listener.*]`` tables of one file; ``log`` is the daemon's logger (l2tpd's
    when l2tpd runs its listeners through this class)."""

    log: logging.Logger = field(default=log, kw_only=True)
    listeners: dict[str, tuple[cfg.ListenerSection, Listener]] = field(
        init=False, default_factory=dict
    )

    async def start(self) -> None:
        for lc in self.config.listeners:
            await self._add(lc)

    async def _add(self, lc: cfg.ListenerSection) -> None:
        """Open the listener; a socket error names the listener and its address.

        Raises :class:`StartError`, whose text is the one line the daemon
        prints (``[listener.NAME] listen = "ADDR": REASON``).
        """
        address = (str(lc.listen.address), lc.listen.port)
        try:
            listener = await self.ctx.listen(
                address,
                config=listener_config(lc),
                options=listen_options(lc),
                encap=encap(lc.encap),
            )
        except OSError as exc:
            raise StartError(self._listen_failure(lc, exc)) from exc
        self.listeners[lc.name] = (lc, listener)
        self.log.info("listener %s: listening on %s", lc.name, lc.listen)

    def _listen_failure(self, lc: cfg.ListenerSection, exc: OSError) -> str:
        """``[listener.NAME] listen = "ADDR": REASON``, in the file's own words.

        The runtime's ListenError wraps the socket's error; the reason is taken
        from that (with the processes holding the port for "address in use",
        when they can be found) so that every start-up error has one format.
        """
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        reason = describe_os_error(cause)
        udp = lc.encap is cfg.Encap.UDP
        if cause.errno == errno.EADDRINUSE and udp and self.ctx.netns is None:
            owners = udp_port_owners(str(lc.listen.address), lc.listen.port)
            if owners:
                reason = f"{os.strerror(errno.EADDRINUSE)} (by {', '.join(owners)})"
        where = f"[{table_path('listener', lc.name)}] listen = {toml_string(str(lc.listen))}"
        if not udp:
            where += ' (encap = "ip")'
        return f"{where}: {reason}"

    async def reload(self, config: cfg.Config) -> None:
        new = {lc.name: lc for lc in config.listeners}
        for name, (old, listener) in list(self.listeners.items()):
            lc = new.get(name)
            if lc is None or (lc.listen, lc.version, lc.encap) != (
                old.listen,
                old.version,
                old.encap,
            ):
                del self.listeners[name]
                self.log.info("listener %s: %s", name, "restarted" if lc else "removed")
                await listener.close(ack_timeout=self.stop_timeout)
            elif lc != old:
                listener.update(config=listener_config(lc), options=listen_options(lc))
                self.listeners[name] = (lc, listener)
                self.log.info("listener %s: new settings apply to new tunnels and calls", name)
        self.config = config
        failures = []
        for name, lc in new.items():
            if name not in self.listeners:
                try:
                    await self._add(lc)
                except StartError as exc:
                    failures.append(str(exc))
        if failures:
            raise StartError("; ".join(failures))

    def summary(self) -> str:
        parts = [
            f"{name} on {lc.listen} ({len(listener.tunnels)} tunnels, "
            f"{listener.session_count} sessions)"
            for name, (lc, listener) in self.listeners.items()
        ]
        return ", ".join(parts) or "no listener"


def main(argv: Sequence[str] | None = None) -> int:
    return common.main(
        "l2tp-lns",
        cfg.Daemon.LNS,
        Lns,
        argv,
        "L2TPv2 LNS: accepts tunnels and calls on the [listener.*] addresses of a TOML "
        "file (see docs/daemons.md).",
    )


if __name__ == "__main__":
    sys.exit(main())
