"""Shared pytest set-up: tier markers by directory and the "required tool" policy.

A test that needs an external program (tshark, xl2tpd, pppd, ip) skips when it
is missing on a developer's machine, but fails when ``L2TP_REQUIRE_TOOLS=1`` is
set, as the project's test command does: in CI a missing oracle must never turn
into a silent skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_TIERS = {"unit", "loopback", "kernel"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
