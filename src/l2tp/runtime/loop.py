"""Event loop selection: uvloop when it is installed, the stdlib loop otherwise.

uvloop is an optional speed-up, never a requirement: nothing in the package
imports it unconditionally, and every runtime class works on any
:class:`asyncio.AbstractEventLoop` that implements ``add_reader``.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

T = TypeVar("T")


def uvloop_available() -> bool:
    """True when ``import uvloop`` succeeds."""
    try:
        importlib.import_module("uvloop")
    except ImportError:
        return False
    return True


def loop_factory(*, prefer_uvloop: bool = True) -> Callable[[], asyncio.AbstractEventLoop]:
    """Return a zero-argument callable creating the best available event loop."""
    if prefer_uvloop:
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            pass
        else:
            return cast("Callable[[], asyncio.AbstractEventLoop]", uvloop.new_event_loop)
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], *, prefer_uvloop: bool = True) -> T:
    """:func:`asyncio.run` on uvloop if available."""
    with asyncio.Runner(loop_factory=loop_factory(prefer_uvloop=prefer_uvloop)) as runner:
        return runner.run(main)
