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

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from l2tp import config as cfg
from l2tp.runtime import daemon as common
from l2tp.runtime.configmap import encap, listen_options, listener_config
from l2tp.runtime.control import L2tpContext, Listener

log = logging.getLogger("l2tp.lns")


class Lns:
    def __init__(self, config: cfg.Config, ctx: L2tpContext, args: argparse.Namespace) -> None:
        self.config = config
        self.ctx = ctx
        self.stop_timeout: float = args.stop_timeout
        self.listeners: dict[str, tuple[cfg.ListenerConfig, Listener]] = {}
        self.failed = asyncio.Event()

    async def start(self) -> None:
        for lc in self.config.listeners:
            await self._add(lc)

    async def _add(self, lc: cfg.ListenerConfig) -> None:
        address = (str(lc.listen.address), lc.listen.port)
        listener = await self.ctx.listen(
            address, config=listener_config(lc), options=listen_options(lc), encap=encap(lc.encap)
        )
        self.listeners[lc.name] = (lc, listener)
        log.info("listener %s: listening on %s", lc.name, lc.listen)

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
                log.info("listener %s: %s", name, "restarted" if lc else "removed")
                await listener.close(ack_timeout=self.stop_timeout)
            elif lc != old:
                listener.update(config=listener_config(lc), options=listen_options(lc))
                self.listeners[name] = (lc, listener)
                log.info("listener %s: new settings apply to new tunnels and calls", name)
        for name, lc in new.items():
            if name not in self.listeners:
                await self._add(lc)
        self.config = config

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
