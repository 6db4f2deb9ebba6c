"""The two roles of the dynamic daemons share their constructor (l2tp.daemons.roles):
``(config, ctx, args, *, log)`` as l2tp.daemons.common.main and l2tpd call it, each role
with its own default logger and state of its own."""

from __future__ import annotations

import argparse
import logging
from typing import cast

import pytest

from l2tp import config as cfg
from l2tp.daemons.kl2tpd import Kl2tpd
from l2tp.daemons.lns import Lns
from l2tp.runtime.control import L2tpContext

CONFIG = cfg.Config(file="<test>")
CTX = cast("L2tpContext", object())  # only stored: no role touches it before start()


@pytest.mark.parametrize(("role", "logger"), [(Kl2tpd, "l2tp.kl2tpd"), (Lns, "l2tp.lns")])
def test_roles_take_the_daemon_arguments(role: type[Kl2tpd] | type[Lns], logger: str) -> None:
    args = argparse.Namespace(stop_timeout=2.5)
    first = role(CONFIG, CTX, args)
    second = role(CONFIG, CTX, args, log=logging.getLogger("l2tp.l2tpd"))
    assert first.config is CONFIG and first.ctx is CTX
    assert first.stop_timeout == 2.5
    assert first.log.name == logger
    assert second.log.name == "l2tp.l2tpd"
    assert not first.failed.is_set()
    first.failed.set()
    assert not second.failed.is_set()  # one event per role, not a shared default
    assert first != second and len({first, second}) == 2  # compared and hashed by identity


def test_each_role_keeps_its_own_tables() -> None:
    args = argparse.Namespace(stop_timeout=1.0)
    a, b = Kl2tpd(CONFIG, CTX, args), Kl2tpd(CONFIG, CTX, args)
    assert a.runners == {} and a.runners is not b.runners
    assert a.exit_status == 1
    x, y = Lns(CONFIG, CTX, args), Lns(CONFIG, CTX, args)
    assert x.listeners == {} and x.listeners is not y.listeners
