"""Shared pytest set-up: tier markers by directory and the "required tool" policy.

A test that needs an external program (tshark, xl2tpd, pppd, ip) skips when it
is missing on a developer's machine, but fails when ``L2TP_REQUIRE_TOOLS=1`` is
set, as the project's test command does: in CI a missing oracle must never turn
into a silent skip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from l2tp.runtime.errors import INTERNAL_ERROR

_TIERS = {"unit", "loopback", "kernel"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


class _InternalErrors(logging.Handler):
    """Collects the runtime's "internal error" log records (see l2tp.runtime.errors)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, INTERNAL_ERROR, False):
            self.records.append(record)


@pytest.fixture(autouse=True)
def _fail_on_internal_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """No test passes while the runtime hides a bug: an unexpected exception that the
    runtime caught and logged (it closes the tunnel and carries on, as it must in
    production) fails the test, unless the test is about exactly that and says so with
    ``@pytest.mark.allow_internal_errors``."""
    handler = _InternalErrors()
    logger = logging.getLogger("l2tp")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.records and request.node.get_closest_marker("allow_internal_errors") is None:
        first = handler.records[0]
        detail = logging.Formatter().format(first)
        pytest.fail(
            f"{len(handler.records)} internal error(s) logged by the runtime:\n{detail}",
            pytrace=False,
        )
