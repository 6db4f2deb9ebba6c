"""RFC 2661 Appendix A slow start and congestion avoidance, step by step."""

from __future__ import annotations

import pytest

from l2tp.protocol.congestion import DEFAULT_PEER_WINDOW, CongestionWindow


def test_initial_state() -> None:
    window = CongestionWindow()
    assert window.peer_window == DEFAULT_PEER_WINDOW == 4
    assert (window.cwnd, window.ssthresh, window.limit) == (1, 4, 1)
    assert window.in_slow_start


def test_slow_start_adds_one_per_ack_until_ssthresh() -> None:
    window = CongestionWindow(16)
    for expected in range(2, 17):
        window.on_ack()
        assert window.cwnd == expected
    window.on_ack()
    assert window.cwnd == 16  # never above the peer's window


def test_congestion_avoidance_adds_one_per_cwnd_acks() -> None:
    window = CongestionWindow(32)
    window.cwnd = 8
    window.on_timeout()
    assert (window.cwnd, window.ssthresh) == (1, 4)
    for _ in range(3):
        window.on_ack()
    assert window.cwnd == 4 and not window.in_slow_start
    for _ in range(3):
        window.on_ack()
    assert window.cwnd == 4
    window.on_ack()  # the fourth ack at cwnd 4
    assert window.cwnd == 5
    for _ in range(5):
        window.on_ack()
    assert window.cwnd == 6


def test_timeout_halves_into_ssthresh_with_floor_of_one() -> None:
    window = CongestionWindow(4)
    window.on_timeout()
    assert (window.cwnd, window.ssthresh) == (1, 1)
    window.on_ack()
    window.on_ack()
    assert window.cwnd == 2  # congestion avoidance from the start: 1 ack at cwnd 1


def test_set_peer_window_clamps_and_resets_threshold() -> None:
    window = CongestionWindow(8)
    for _ in range(7):
        window.on_ack()
    assert window.cwnd == 8
    window.set_peer_window(3)
    assert (window.cwnd, window.ssthresh, window.limit) == (3, 3, 3)
    window.set_peer_window(10)
    assert window.limit == 3 and window.in_slow_start


@pytest.mark.parametrize("bad", [0, -1, 0x10000])
def test_invalid_windows_rejected(bad: int) -> None:
    with pytest.raises(ValueError):
        CongestionWindow(bad)
    with pytest.raises(ValueError):
        CongestionWindow().set_peer_window(bad)
