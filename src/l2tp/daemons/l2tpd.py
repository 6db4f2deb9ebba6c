"""l2tpd: a dynamic L2TPv3 LCCE (RFC 3931) from ``[tunnel.*]`` and ``[listener.*]`` tables.

Both LCCE roles in one process, on one :class:`~l2tp.runtime.control.L2tpContext`:

* every ``[tunnel.T]`` is a control connection we initiate (SCCRQ), over UDP or
  IP (``encap = "ip"``, protocol 115), with an ICRQ for each
  ``[tunnel.T.session.S]``, carrying its Remote End ID, pseudowire type and
  cookie length; ``redial = true`` re-opens it after a failure with back-off
  (``redial_timeout`` doubling up to ``max_redial_timeout``);
* every ``[listener.L]`` accepts control connections (on an L2TPIP socket bound
  to connection ID 0 for IP encapsulation) and binds each incoming session to
  the ``[listener.L.session.S]`` whose ``remote_end_id`` matches the ICRQ's
  Remote End ID, or, with no session tables, accepts every call with the
  listener's own session keys.

Each established Ethernet session becomes a kernel session in the managed
kernel tunnel on our control socket, with the negotiated IDs, cookies,
sublayer and sequencing; its ``l2tpethN`` interface gets the configured name
and MTU and joins the configured bridge. A PPP pseudowire gets a pppd, as in
kl2tpd. A peer that stops answering (HELLO or any message unacknowledged after
the retries) takes its tunnel down: kernel sessions and tunnel are removed.
With a ``secret``, every control message carries a Message Digest (HMAC-MD5 by
default, ``digest = "sha1"``) over the exchanged nonces (RFC 3931 5.4.1).

Reload (SIGHUP) applies to tunnels as in kl2tpd and to listeners as in
l2tp-lns (see docs/daemons.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from l2tp import config as cfg
from l2tp.daemons import common
from l2tp.daemons.preflight import StartError
from l2tp.runtime.control import L2tpContext, TunnelHandle

from .kl2tpd import Kl2tpd
from .lns import Lns

log = logging.getLogger("l2tp.l2tpd")


class L2tpd:
    """The initiator tunnels (kl2tpd's runners) and the listeners (l2tp-lns's) of one file."""

    def __init__(self, config: cfg.Config, ctx: L2tpContext, args: argparse.Namespace) -> None:
        self.config = config
        self.ctx = ctx
        self.initiators = Kl2tpd(config, ctx, args, log=log)
        self.responders = Lns(config, ctx, args, log=log)
        self.failed = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.responders.start()
        await self.initiators.start()
        self._watch = asyncio.create_task(self._watch_initiators())

    async def _watch_initiators(self) -> None:
        """Without listeners, the daemon has nothing to do once every tunnel gave up."""
        await self.initiators.failed.wait()
        if not self.responders.listeners:
            self.failed.set()

    async def reload(self, config: cfg.Config) -> None:
        """Apply ``config`` to both roles; a listener that cannot be bound does not stop
        the tunnels' changes (its StartError is raised once both are applied)."""
        failure: StartError | None = None
        try:
            await self.responders.reload(config)
        except StartError as exc:
            failure = exc
        await self.initiators.reload(config)
        self.config = config
        if failure is not None:
            raise failure

    def tunnel_name(self, th: TunnelHandle) -> str | None:
        """The ``[tunnel.NAME]`` of an initiator tunnel (listeners' tunnels are named by
        their listener in ``l2tp ctl``)."""
        return self.initiators.tunnel_name(th)

    def summary(self) -> str:
        parts = [self.initiators.summary()]
        if self.responders.listeners:
            parts.append("listeners: " + self.responders.summary())
        return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    return common.main(
        "l2tpd",
        cfg.Daemon.L2TPD,
        L2tpd,
        argv,
        "L2TPv3 LCCE: opens the [tunnel.*] control connections and accepts those of the "
        "[listener.*] tables, with Ethernet pseudowires in the kernel (see docs/daemons.md).",
    )


if __name__ == "__main__":
    sys.exit(main())
