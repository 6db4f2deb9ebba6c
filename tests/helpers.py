"""Helpers shared by the test tiers."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable

import pytest


def require_tool(name: str) -> str:
    """Return the path of ``name`` or skip (locally) / fail (when tools are required)."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None
    )
    if path is None:
        message = f"{name} is not installed (run the project's set-up: tools/setup)"
        if os.environ.get("L2TP_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


async def until(
    condition: Callable[[], object], what: str, *, timeout: float = 10.0, interval: float = 0.005
) -> None:
    """Bounded polling on the running event loop: return once ``condition()`` is true.

    For a state the code under test reaches on its own (a counter, a table entry) with
    no event to await. Fails after ``timeout`` seconds naming ``what``, so a test that
    waits never passes or hangs by accident of timing.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


async def until_blocking(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll a blocking ``predicate`` (a subprocess, a /proc read) in a thread every 0.1 s,
    so that the loop keeps serving the code under test meanwhile; AssertionError naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


def wait_until(
    condition: Callable[[], object],
    timeout: float = 10.0,
    what: str = "the condition",
    *,
    interval: float = 0.05,
) -> None:
    """:func:`until` for code outside an event loop (other processes, the kernel, files)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
