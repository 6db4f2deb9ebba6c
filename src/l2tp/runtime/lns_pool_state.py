"""The bookkeeping of :class:`~l2tp.runtime.lns_failover.LnsPool`, apart from its driver.

:mod:`l2tp.runtime.lns_selection` decides which endpoint takes a call;
:mod:`l2tp.runtime.lns_failover` is the asyncio driver that opens the tunnels and
places the calls. Between the two sits what the driver keeps about each call and each
tunnel, the retry rules it applies to a call that lost its place, and the records it
reports (``l2tp ctl peers``, the ``l2tp_peer_*`` metrics). That part awaits nothing and
is kept here so that the driver's module holds only the tasks and their outcomes: the
retry rules are plain functions of ``now``, testable without a loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from l2tp.protocol.events import CallParams
from l2tp.protocol.tunnel import TunnelConfig

from .backend import SessionOptions
from .handles import TunnelHandle
from .lns_selection import LnsEndpoint, LnsSelector, backoff_delay
from .session_handle import SessionHandle

__all__ = [
    "CallSlot",
    "PoolCall",
    "PoolTunnel",
    "RetryPolicy",
    "endpoint_config",
    "log_value",
    "peer_records",
    "wall_clock",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolCall:
    """One call the pool keeps placed; ``name`` is unique in the pool."""

    name: str
    params: CallParams | None = None
    options: SessionOptions | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When a call that lost its place is placed again.

    A call whose endpoint was denylisted is placed again at once (on the next choice).
    Any other failure waits ``first`` seconds, doubling per consecutive failure up to
    ``cap``; with ``redial`` off such a call is given up instead, as is a call for
    which no endpoint is available. ``max_attempts`` (0: no limit) gives a call up
    after that many consecutive failures. A call that comes up starts counting anew.
    """

    redial: bool = True
    first: float = 5.0
    cap: float = 60.0
    max_attempts: int = 0

    def after_failure(self, slot: CallSlot, now: float, denied: bool) -> str | None:
        """``slot`` lost its place after a failure: count it and set when to place it
        again. Returns why the call is given up instead, or None."""
        slot.failures += 1
        if self.max_attempts and slot.failures > self.max_attempts:
            return f"{self.max_attempts} redials"
        if denied:
            slot.retry_at = now  # fail over at once: the next choice is another endpoint
        elif not self.redial:
            return "failed and redial is off"
        else:
            slot.retry_at = now + backoff_delay(slot.failures, self.first, self.cap)
        return None

    def when_unplaceable(self, slot: CallSlot, now: float, timer: float | None) -> str | None:
        """No endpoint can take ``slot`` now (``timer``: the selector's next deadline,
        a denial's end). Sets when to try again; returns why it is given up instead."""
        if not self.redial:
            return "no LNS available"
        if timer is not None and timer > now:
            slot.retry_at = timer  # the next endpoint let off the denylist
        else:  # every endpoint full: try again later (or when a place frees up)
            slot.retry_at = now + backoff_delay(max(slot.failures, 1), self.first, self.cap)
        return None


class CallSlot:
    """What the pool knows of one call: where it is placed and when to retry it."""

    __slots__ = ("call", "failures", "gave_up", "handle", "index", "moving", "retry_at")

    def __init__(self, call: PoolCall) -> None:
        self.call = call
        self.index: int | None = None
        """The endpoint it is placed on (its tunnel may still be opening)."""
        self.handle: SessionHandle | None = None
        self.failures = 0
        self.retry_at = 0.0
        self.gave_up = False
        self.moving = False
        """Closed by us to move it to a better endpoint (revert): not a failure."""

    @property
    def waiting(self) -> bool:
        """Not placed and not given up: the pump places it once ``retry_at`` is due."""
        return self.index is None and self.handle is None and not self.gave_up


class PoolTunnel:
    """The one tunnel of an endpoint in use, as the pool tracks it."""

    __slots__ = ("denied", "ended", "established", "handle", "index", "requested", "task")

    def __init__(self, index: int) -> None:
        self.index = index
        self.handle: TunnelHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.established = False
        self.requested = False
        """We close it on purpose (idle, stopping): its end denylists nothing."""
        self.ended = False
        """Its control connection is closed; its clean-up (backends, kernel) may still
        be running, and its calls are placed again only once that is done."""
        self.denied = False
        """Its end denylisted the endpoint (its calls fail over at once)."""

    @property
    def usable(self) -> bool:
        """Up and staying up: calls may be placed on it. Not while we close it (the
        sans-IO tunnel refuses new sessions from StopCCN on) nor once it ended."""
        return self.established and not self.requested and not self.ended and bool(self.handle)


def endpoint_config(config: TunnelConfig, ep: LnsEndpoint) -> TunnelConfig:
    """The pool's tunnel config with the endpoint's secret (RFC 2868 3.5), if any."""
    if ep.secret is None:
        return config
    secret = ep.secret.encode()
    if config.version == 3:
        digest = config.digest_type if config.digest_type is not None else 0
        return dataclasses.replace(config, secret=secret, digest_type=digest)
    return dataclasses.replace(config, secret=secret, challenge=True)


def wall_clock(loop_time: float, now: float) -> str:
    """A loop time as UTC ISO 8601 (seconds): when a denial ends, for people."""
    stamp = time.time() + (loop_time - now)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def log_value(text: str) -> str:
    """A free-text log value: quoted when it has spaces, ``-`` when empty."""
    if not text:
        return "-"
    return f'"{text}"' if any(c.isspace() for c in text) else text


def peer_records(
    name: str,
    selector: LnsSelector,
    slots: Mapping[str, CallSlot],
    tunnels: Mapping[int, PoolTunnel],
    now: float,
) -> list[dict[str, Any]]:
    """One record per endpoint of pool ``name``: what ``l2tp ctl peers`` prints and
    the metrics read."""
    up: dict[int, int] = {}
    for slot in slots.values():
        if slot.index is not None and slot.handle is not None and slot.handle.established:
            up[slot.index] = up.get(slot.index, 0) + 1
    records = []
    for st in selector.snapshot(now):
        ep = st.endpoint
        t = tunnels.get(st.index)
        until = st.denylisted_until
        records.append(
            {
                "name": name,
                "peer": ep.label,
                "address": ep.address,
                "port": ep.port,
                "assignment_id": ep.assignment_id,
                "preference": ep.preference,
                "weight": ep.weight,
                "max_sessions": ep.max_sessions,
                "state": st.state.value,
                "tunnel_id": t.handle.tunnel_id if t is not None and t.handle else None,
                "sessions": st.sessions,
                "established": up.get(st.index, 0),
                "denylisted_until": None if until is None else wall_clock(until, now),
                "denylisted_for": None if until is None else round(until - now, 3),
                "reason": None if st.reason is None else st.reason.value,
                "result": st.result,
                "denylisted_total": {r.value: n for r, n in st.denylisted_total.items()},
            }
        )
    return records
