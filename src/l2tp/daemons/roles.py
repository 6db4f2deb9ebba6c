"""What the two roles of the dynamic daemons share: kl2tpd's ``[tunnel.*]`` tables
(:class:`~l2tp.daemons.kl2tpd.Kl2tpd`) and l2tp-lns's ``[listener.*]`` tables
(:class:`~l2tp.daemons.lns.Lns`), which l2tpd runs side by side with its own logger."""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import InitVar, dataclass, field

from l2tp import config as cfg
from l2tp.runtime.control import L2tpContext


@dataclass(eq=False, repr=False)
class RoleBase:
    """The file, the context and the logger of a role, the ``--stop-timeout`` its
    StopCCNs wait for acknowledgements, and :attr:`failed` (the daemon's
    :class:`~l2tp.daemons.common.Daemon` protocol). A dataclass, as the runners'
    ``_RunnerBase`` in kl2tpd, so that each role adds its own fields without repeating
    the constructor, whose arguments stay those :func:`l2tp.daemons.common.main` and
    l2tpd pass: ``(config, ctx, args, *, log)``; each role gives ``log`` its own
    default."""

    config: cfg.Config
    ctx: L2tpContext
    args: InitVar[argparse.Namespace]
    log: logging.Logger = field(kw_only=True)
    stop_timeout: float = field(init=False)
    failed: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    """Set when the role cannot go on (e.g. every tunnel failed for good)."""

    def __post_init__(self, args: argparse.Namespace) -> None:
        self.stop_timeout = args.stop_timeout
