"""Slow start and congestion avoidance for the control channel (RFC 2661 Appendix A).

RFC 2661 section 5.8 and RFC 3931 section 4.2 say a sender SHOULD adapt the
number of unacknowledged control messages it keeps in flight with the TCP-like
procedure of RFC 2661 Appendix A (also RFC 3931 Appendix A):

* ``cwnd`` starts at one message and ``ssthresh`` at the peer's advertised
  Receive Window Size;
* while ``cwnd < ssthresh`` (slow start) every acknowledgement that advances
  the window adds one message;
* from then on (congestion avoidance) ``cwnd`` grows by ``1/cwnd`` per
  acknowledgement, i.e. by one message after ``cwnd`` acknowledgements; the
  fraction is kept as an integer counter so the arithmetic is exact;
* a retransmission timeout saves half of ``cwnd`` in ``ssthresh`` and drops
  ``cwnd`` back to one;
* ``cwnd`` never exceeds the peer's Receive Window Size.

The class is a plain value holder with no clock: :class:`~l2tp.protocol.transport.Transport`
calls :meth:`on_ack` and :meth:`on_timeout` at the right moments.
"""

from __future__ import annotations

DEFAULT_PEER_WINDOW = 4
"""RFC 2661 section 5.8 / RFC 3931 section 4.2: assume 4 when no Receive Window Size AVP came."""


class CongestionWindow:
    """Congestion state of one control connection's send direction."""

    __slots__ = ("_ca_acks", "cwnd", "peer_window", "ssthresh")

    def __init__(self, peer_window: int = DEFAULT_PEER_WINDOW) -> None:
        _check_window(peer_window)
        self.peer_window = peer_window
        """The peer's advertised Receive Window Size: a hard limit on messages in flight."""
        self.cwnd = 1
        """The congestion window in messages (Appendix A: initialised to one packet)."""
        self.ssthresh = peer_window
        """Slow start threshold (Appendix A: initialised to the advertised window)."""
        self._ca_acks = 0

    @property
    def limit(self) -> int:
        """How many unacknowledged messages may be in flight now."""
        return min(self.cwnd, self.peer_window)

    @property
    def in_slow_start(self) -> bool:
        return self.cwnd < self.ssthresh

    def set_peer_window(self, window: int) -> None:
        """Adopt the Receive Window Size AVP from the peer's SCCRQ or SCCRP.

        Appendix A initialises SSTHRESH from the advertised window; as the
        value normally arrives after the first message went out, it is applied
        here and ``cwnd`` is clamped to it.
        """
        _check_window(window)
        self.peer_window = window
        self.ssthresh = window
        self.cwnd = min(self.cwnd, window)
        self._ca_acks = 0

    def on_ack(self) -> None:
        """An acknowledgement (ZLB, ACK or piggy-backed Nr) advanced the window."""
        if self.cwnd >= self.peer_window:
            self._ca_acks = 0
            return
        if self.cwnd < self.ssthresh:
            self.cwnd += 1
            return
        self._ca_acks += 1
        if self._ca_acks >= self.cwnd:
            self._ca_acks = 0
            self.cwnd += 1

    def on_timeout(self) -> None:
        """A retransmission timer fired: the Appendix A congestion signal."""
        self.ssthresh = max(self.cwnd // 2, 1)
        self.cwnd = 1
        self._ca_acks = 0


def _check_window(window: int) -> None:
    # RFC 2661 section 5.8: "A value of 0 for the Receive Window Size AVP is invalid."
    if not 1 <= window <= 0xFFFF:
        raise ValueError(f"receive window size must be 1-65535, not {window}")
