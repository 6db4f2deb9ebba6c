"""Helpers shared by the test tiers."""

from __future__ import annotations

import os
import shutil

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
