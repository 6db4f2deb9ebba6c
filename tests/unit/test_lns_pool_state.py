"""The LNS pool's bookkeeping (no loop): the retry rules for a call that lost its place,
the per-endpoint secret, and the free-text log value. The pool driving them is tested
in tests/loopback/test_lns_failover.py."""

from __future__ import annotations

import pytest

from l2tp.protocol.tunnel import TunnelConfig
from l2tp.protocol.values import Role
from l2tp.runtime.lns_pool_state import (
    CallSlot,
    PoolCall,
    RetryPolicy,
    endpoint_config,
    log_value,
)
from l2tp.runtime.lns_selection import LnsEndpoint


def slot() -> CallSlot:
    return CallSlot(PoolCall(name="s0"))


def test_failures_back_off_doubling_up_to_the_cap() -> None:
    retry = RetryPolicy(first=5.0, cap=30.0)
    s = slot()
    waits = []
    for _ in range(5):
        assert retry.after_failure(s, 100.0, denied=False) is None
        waits.append(s.retry_at - 100.0)
    assert waits == [5.0, 10.0, 20.0, 30.0, 30.0]
    assert s.failures == 5


def test_a_denylisted_endpoint_fails_over_at_once_even_without_redial() -> None:
    s = slot()
    assert RetryPolicy(redial=False).after_failure(s, 7.0, denied=True) is None
    assert s.retry_at == 7.0


def test_without_redial_a_plain_failure_gives_the_call_up() -> None:
    assert RetryPolicy(redial=False).after_failure(slot(), 7.0, denied=False) == (
        "failed and redial is off"
    )


def test_max_attempts_gives_up_after_that_many_consecutive_failures() -> None:
    retry = RetryPolicy(max_attempts=2)
    s = slot()
    assert retry.after_failure(s, 0.0, denied=True) is None
    assert retry.after_failure(s, 0.0, denied=False) is None
    assert retry.after_failure(s, 0.0, denied=True) == "2 redials"


def test_unplaceable_waits_for_the_next_denial_to_end_or_backs_off() -> None:
    retry = RetryPolicy(first=4.0, cap=60.0)
    s = slot()
    assert retry.when_unplaceable(s, 10.0, timer=25.0) is None
    assert s.retry_at == 25.0  # the selector's next deadline: an endpoint comes back
    assert retry.when_unplaceable(s, 10.0, timer=None) is None
    assert s.retry_at == 14.0  # every endpoint full: back off (at least one step)
    assert retry.when_unplaceable(s, 10.0, timer=10.0) is None
    assert s.retry_at == 14.0  # a deadline already due is no reason to wait for it
    assert RetryPolicy(redial=False).when_unplaceable(s, 10.0, timer=25.0) == "no LNS available"


def test_waiting_means_neither_placed_nor_given_up() -> None:
    s = slot()
    assert s.waiting
    s.index = 0
    assert not s.waiting
    s.index = None
    s.gave_up = True
    assert not s.waiting


@pytest.mark.parametrize("version", [2, 3])
def test_an_endpoint_secret_turns_on_authentication(version: int) -> None:
    base = TunnelConfig(role=Role.LAC, version=version)
    assert endpoint_config(base, LnsEndpoint(address="192.0.2.1")) is base
    cfg = endpoint_config(base, LnsEndpoint(address="192.0.2.1", secret="s3"))
    assert cfg.secret == b"s3"
    if version == 2:
        assert cfg.challenge  # RFC 2661 5.1.1 challenge/response
    else:
        assert cfg.digest_type == 0  # RFC 3931 4.3 Message Digest AVPs, HMAC-MD5


def test_log_value_quotes_spaces_and_marks_empty() -> None:
    assert log_value("") == "-"
    assert log_value("timeout") == "timeout"
    assert log_value("no answer") == '"no answer"'
