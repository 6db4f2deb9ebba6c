"""Prometheus metrics of a daemon: a collector over the :mod:`.inventory` snapshots, and
the few counts only events can give.

Why a custom :class:`~prometheus_client.registry.Collector` rather than metric objects
incremented where things happen: the runtime already counts everything per tunnel
(the sans-IO core's counters, :class:`~l2tp.runtime.driver.ContextCounters`) and
:mod:`.inventory` turns that into the records ``l2tp ctl`` prints. Reading those at
scrape time costs the control plane nothing between scrapes, and the exported values
are by construction the ones ``l2tp ctl status`` / ``tunnels`` report.

Two things a snapshot cannot give come from the context's event subscription
(:meth:`L2tpContext.events() <l2tp.runtime.context.L2tpContext.events>`), consumed by
:class:`EventTally` in a task of its own, which keeps only counts:

* set-up times (``l2tp_tunnel_setup_seconds``, ``l2tp_session_setup_seconds``): on
  each ``TunnelEstablished`` / ``SessionEstablished``, the handle's
  ``established_at - created_at`` (loop times the runtime records anyway);
* what ended how (``l2tp_tunnel_closed_total{result}``, ...), and the control
  counters of tunnels that are gone: a closed tunnel is remembered until the runtime
  has reaped it, then its final counters are added to a running total, so
  ``l2tp_control_messages_total`` and friends never go down when tunnels leave.

Everything here runs on the daemon's event loop (the HTTP side is
:mod:`.metrics_http`), so reading the runtime's dicts needs no lock.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from l2tp.protocol.events import (
    Reason,
    SessionClosed,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
)
from l2tp.runtime.context import L2tpContext
from l2tp.runtime.handles import TunnelHandle
from l2tp.runtime.lns_selection import DenyReason
from l2tp.runtime.subscription import Subscription

from . import inventory
from .hooks import HookCounters
from .metrics_radius import radius_metrics

__all__ = [
    "SETUP_BUCKETS",
    "ControlTotals",
    "EventTally",
    "Histogram",
    "L2tpCollector",
    "listener_metrics",
]

log = logging.getLogger("l2tp.metrics")

SETUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds. A tunnel or call on a LAN is up in a few ms; one that needed retransmissions
takes 1-2 s per lost message (RFC 2661's 1 s initial timeout, doubling)."""

_SCALARS = (
    "retransmissions",
    "duplicates",
    "out_of_order",
    "out_of_window",
    "zlb_sent",
    "zlb_received",
    "digest_failures",
    "malformed",
    "hello_sent",
    "hello_acked",
)
"""The integer counters of an :func:`inventory.transport_counters` dict."""


class Histogram:
    """Bucket counts, a sum and a count: what a Prometheus histogram exports, without
    its per-observation locking (everything here runs on one loop)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Iterable[float] = SETUP_BUCKETS) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        value = max(0.0, value)
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # le: bound >= value
        self.sum += value
        self.count += 1

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        buckets: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.sum)


class ControlTotals:
    """Control-channel counters summed over tunnels (the shape of
    :func:`inventory.transport_counters`, messages by type name)."""

    __slots__ = ("received", "scalars", "sent")

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.scalars: Counter[str] = Counter()

    def add(self, counters: Mapping[str, Any] | None) -> None:
        if not counters:
            return
        self.sent.update(counters["sent"])
        self.received.update(counters["received"])
        for key in _SCALARS:
            self.scalars[key] += counters[key]

    def plus(self, other: ControlTotals) -> ControlTotals:
        out = ControlTotals()
        for mine, theirs, dest in (
            (self.sent, other.sent, out.sent),
            (self.received, other.received, out.received),
            (self.scalars, other.scalars, out.scalars),
        ):
            dest.update(mine)
            dest.update(theirs)
        return out


def result_label(reason: Reason | None) -> str:
    """The Result Code of a StopCCN/CDN as a label value; ``none`` when none was exchanged
    (a peer that went silent, a session ended with its tunnel, a local failure)."""
    return "none" if reason is None else str(reason.result)


class EventTally:
    """Counts taken from a context's events (see the module doc); :meth:`start`
    subscribes, :meth:`handle` takes one event (a plain method, for unit tests)."""

    FOLD_AT = 256
    """Closed tunnels kept before checking whether the runtime has reaped them."""

    def __init__(self, ctx: L2tpContext) -> None:
        self.ctx = ctx
        self.tunnel_setup = Histogram()
        self.session_setup = Histogram()
        self.tunnels_closed: Counter[tuple[str, str]] = Counter()
        """By (result, closed_by)."""
        self.sessions_closed: Counter[tuple[str, str]] = Counter()
        self.retired = ControlTotals()
        """Final counters of the tunnels the runtime has reaped."""
        self._closing: list[TunnelHandle] = []
        self._fold_at = self.FOLD_AT
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._handlers: dict[type, Callable[[Any], None]] = {
            SessionEstablished: self._session_up,
            SessionClosed: self._session_down,
            TunnelEstablished: self._tunnel_up,
            TunnelClosed: self._tunnel_down,
        }

    def start(self) -> None:
        """Subscribe (before the first tunnel can come up, so no set-up is missed)."""
        if self._task is None:
            self._sub = self.ctx.events()
            self._task = asyncio.get_running_loop().create_task(self._consume(self._sub))

    async def close(self) -> None:
        if self._task is None:
            return
        if self.ctx.closed:
            await self._task  # ends with the context's end-of-events marker
        else:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _consume(self, sub: Subscription) -> None:
        """Take events as they come, draining whatever is queued at each wake-up (in a
        burst of calls that is many per wake-up: the cost per event is then a dict
        lookup and a few additions)."""
        queue = sub.queue
        try:
            while True:
                event = await queue.get()
                while event is not None:
                    handler = self._handlers.get(type(event))
                    if handler is not None:
                        try:
                            handler(event)
                        except Exception:  # a bug here must not stop the counting
                            log.exception("metrics: cannot count %s", type(event).__name__)
                    try:
                        event = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                else:
                    return  # the context's end-of-events marker
        finally:
            sub.close()

    def handle(self, event: object) -> None:
        """Count one event (kinds other than the four below are ignored)."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _session_up(self, event: SessionEstablished) -> None:
        th = self.ctx.tunnel(event.info.tunnel_id)
        sh = th.sessions.get(event.info.session_id) if th is not None else None
        if sh is not None and sh.created_at is not None and sh.established_at is not None:
            self.session_setup.observe(sh.established_at - sh.created_at)

    def _session_down(self, event: SessionClosed) -> None:
        by = "peer" if event.by_peer else "local"
        self.sessions_closed[result_label(event.reason), by] += 1

    def _tunnel_up(self, event: TunnelEstablished) -> None:
        th = self.ctx.tunnel(event.tunnel_id)
        if th is not None and th.established_at is not None:
            self.tunnel_setup.observe(th.established_at - th.created_at)

    def _tunnel_down(self, event: TunnelClosed) -> None:
        by = "peer" if event.by_peer else "local"
        self.tunnels_closed[result_label(event.reason), by] += 1
        th = self.ctx.tunnel(event.tunnel_id)
        if th is not None:
            self._closing.append(th)
            if len(self._closing) >= self._fold_at:
                self.fold()
                self._fold_at = max(self.FOLD_AT, 2 * len(self._closing))

    def fold(self) -> None:
        """Add the final counters of every closed tunnel the runtime has let go of to
        :attr:`retired`; those still in the context stay in its snapshot until then."""
        keep = []
        for th in self._closing:
            if self.ctx.tunnels.get(th.tunnel_id) is th:
                keep.append(th)
            else:
                self.retired.add(inventory.control_counters(th))
        self._closing = keep


class MetricsSource(Protocol):
    """The :mod:`.inventory` views the collector reads: a daemon's ``l2tp ctl`` target
    (:class:`~.ctl_target.ContextTarget`, :class:`~.ql2tpd_ctl.Ql2tpdTarget`)."""

    def status(self) -> dict[str, Any]: ...

    def tunnels(self) -> list[dict[str, Any]]: ...


class L2tpCollector(Collector):
    """Every ``l2tp_*`` metric of one daemon, built at scrape time (see the module doc).

    ``tally``: the event counts (None for ql2tpd, which has no runtime events: its
    set-up and closed families are then left out); ``hooks`` and ``clients``: the
    hook runner's counters and the number of control-socket connections, when there
    are any. ``per_tunnel`` may change at run time (a reload).
    """

    def __init__(
        self,
        source: MetricsSource,
        *,
        tally: EventTally | None = None,
        hooks: Callable[[], HookCounters | None] | None = None,
        clients: Callable[[], tuple[int, int]] | None = None,
        per_tunnel: bool = False,
        started: float | None = None,
    ) -> None:
        self.source = source
        self.tally = tally
        self.hooks = hooks
        self.clients = clients
        self.per_tunnel = per_tunnel
        self.started = time.time() if started is None else started
        """Unix time the daemon started."""

    def describe(self) -> list[Any]:
        return []  # no registration-time collect(): names are ours alone in the registry

    def collect(self) -> Iterator[Any]:
        if self.tally is not None:
            self.tally.fold()  # before the snapshot: a reaped tunnel moves to the totals
        status = self.source.status()
        tunnels = self.source.tunnels()
        yield from self._daemon(status)
        yield _by_state("l2tp_tunnels", "Tunnels by state.", status["tunnels"])
        yield _by_state("l2tp_sessions", "Sessions by state.", status["sessions"])
        live = ControlTotals()
        for record in tunnels:
            live.add(record["counters"])
        totals = live.plus(self.tally.retired) if self.tally is not None else live
        yield from _control(totals)
        yield from _context(status.get("counters"), totals)
        yield from listener_metrics(status.get("listeners") or [])
        if self.tally is not None:
            yield from _events(self.tally)
        yield from self._hooks()
        yield from radius_metrics(status.get("radius"))
        yield from self._clients()
        yield from _peers(self.source)
        if self.per_tunnel:
            yield from _per_tunnel(tunnels)

    def _daemon(self, status: Mapping[str, Any]) -> Iterator[Any]:
        info = InfoMetricFamily(
            "l2tp_daemon", "The daemon and its version.", labels=["daemon", "version"]
        )
        info.add_metric([status["daemon"], status["version"]], {})
        yield info
        yield GaugeMetricFamily(
            "l2tp_daemon_start_time_seconds",
            "Unix time the daemon started.",
            value=self.started,
        )
        yield GaugeMetricFamily(
            "l2tp_daemon_uptime_seconds",
            "Seconds since the daemon started.",
            value=status["uptime"],
        )

    def _hooks(self) -> Iterator[Any]:
        counters = self.hooks() if self.hooks is not None else None
        if counters is None:
            return
        yield CounterMetricFamily("l2tp_hook_runs", "Hook programs started.", value=counters.runs)
        failures = CounterMetricFamily(
            "l2tp_hook_failures",
            "Hooks that failed: non-zero exit or not runnable (failed), killed at their"
            " timeout (timeout), or dropped unrun (queue full, daemon stopping).",
            labels=["reason"],
        )
        failures.add_metric(["failed"], counters.failed)
        failures.add_metric(["timeout"], counters.timed_out)
        failures.add_metric(["dropped"], counters.dropped)
        yield failures
        yield GaugeMetricFamily("l2tp_hooks_running", "Hooks running now.", value=counters.running)
        yield GaugeMetricFamily(
            "l2tp_hooks_waiting", "Hooks queued, waiting to run.", value=counters.waiting
        )

    def _clients(self) -> Iterator[Any]:
        if self.clients is None:
            return
        connected, refused = self.clients()
        yield GaugeMetricFamily(
            "l2tp_control_clients", "Connections to the control socket now.", value=connected
        )
        yield CounterMetricFamily(
            "l2tp_control_clients_refused",
            "Control-socket connections refused or dropped (credentials, too many clients,"
            " timeouts, oversize requests, stalled event readers).",
            value=refused,
        )


def _by_state(name: str, documentation: str, counts: Mapping[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["state"])
    for state, n in sorted(counts.items()):
        family.add_metric([state], n)
    if "established" not in counts:  # the series a dashboard plots exists from the start
        family.add_metric(["established"], 0)
    return family


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _control(t: ControlTotals) -> Iterator[Any]:
    messages = CounterMetricFamily(
        "l2tp_control_messages",
        "Control messages by direction and type (sent: first transmissions; received:"
        " delivered, duplicates not counted); ZLBs are counted apart.",
        labels=["direction", "message"],
    )
    for direction, counts in (("sent", t.sent), ("received", t.received)):
        for message, n in sorted(counts.items()):
            messages.add_metric([direction, message], n)
    yield messages
    s = t.scalars
    yield _counter(
        "l2tp_retransmissions", "Control messages sent again after a timeout.", s["retransmissions"]
    )
    yield _counter(
        "l2tp_duplicates",
        "Control messages received again (ours not acknowledged).",
        s["duplicates"],
    )
    yield _counter(
        "l2tp_out_of_order", "Control messages received ahead of a gap.", s["out_of_order"]
    )
    yield _counter(
        "l2tp_out_of_window", "Control messages too far ahead, dropped.", s["out_of_window"]
    )
    zlb = CounterMetricFamily("l2tp_zlb", "Bare acknowledgements (ZLB).", labels=["direction"])
    zlb.add_metric(["sent"], s["zlb_sent"])
    zlb.add_metric(["received"], s["zlb_received"])
    yield zlb
    yield _counter(
        "l2tp_digest_failures",
        "L2TPv3 control messages dropped for a missing or wrong Message Digest.",
        s["digest_failures"],
    )
    hellos = CounterMetricFamily(
        "l2tp_hellos", "HELLOs sent on idle, and those acknowledged.", labels=["outcome"]
    )
    hellos.add_metric(["sent"], s["hello_sent"])
    hellos.add_metric(["acked"], s["hello_acked"])
    yield hellos


_DROPS = ("not_control", "foreign_source", "unknown_tunnel", "not_allowed")


def _context(counters: Mapping[str, int] | None, t: ControlTotals) -> Iterator[Any]:
    """The daemon's datagram counters (ql2tpd has none: only the malformed total)."""
    header = counters["malformed"] if counters else 0
    yield _counter(
        "l2tp_malformed_datagrams",
        "Control datagrams that did not decode: headers (any socket) and message bodies"
        " or required AVPs (a tunnel's).",
        header + t.scalars["malformed"],
    )
    if counters is None:
        return
    datagrams = CounterMetricFamily(
        "l2tp_datagrams", "Control datagrams on our sockets.", labels=["direction"]
    )
    datagrams.add_metric(["in"], counters["datagrams_in"])
    datagrams.add_metric(["out"], counters["datagrams_out"])
    yield datagrams
    dropped = CounterMetricFamily(
        "l2tp_datagrams_dropped",
        "Datagrams dropped before a tunnel saw them, by reason; and sends that failed.",
        labels=["reason"],
    )
    for reason in _DROPS:
        dropped.add_metric([reason], counters[reason])
    dropped.add_metric(["send_would_block"], counters["send_dropped"])
    dropped.add_metric(["send_error"], counters["send_errors"])
    yield dropped
    yield _counter(
        "l2tp_internal_errors",
        "Unexpected exceptions (bugs) caught in a tunnel's handling; each closed it.",
        counters["internal_errors"],
    )


LISTENER_REFUSALS = (
    ("tunnel_limit", "rejected"),
    ("pending_limit", "pending_limit"),
    ("peer_pending_limit", "peer_pending_limit"),
    ("not_allowed", "not_allowed"),
    ("bad_sccrq", "bad_sccrq"),
    ("bad_digest", "bad_digest"),
    ("malformed", "malformed"),
)
"""``l2tp_listener_sccrq_refused_total``'s ``reason`` label and the status counter of
each (:func:`~.ctl_target.listener_counters`)."""


def listener_metrics(listeners: Iterable[Mapping[str, Any]]) -> Iterator[Any]:
    """``l2tp_listener_*{listener}``: what each listener did with the SCCRQs it got, from
    ``status``'s ``listeners``. The refusals a listener makes statelessly (before any
    tunnel exists, so that a flood stays cheap) leave no tunnel, no event and no
    accounting record behind: these counters are their only trace. Every reason is
    exported, 0 where none, so that a rate can be taken from the start; the cardinality
    is the configuration's (listeners times reasons)."""
    records = [r for r in listeners if isinstance(r.get("counters"), Mapping)]
    if not records:
        return
    accepted = CounterMetricFamily(
        "l2tp_listener_sccrq_accepted",
        "SCCRQs that got a tunnel (answered with an SCCRP).",
        labels=["listener"],
    )
    refused = CounterMetricFamily(
        "l2tp_listener_sccrq_refused",
        "SCCRQs refused without a tunnel, by reason: tunnel_limit (max_tunnels reached or no"
        " free Tunnel ID: StopCCN 2), pending_limit and peer_pending_limit (set-ups full:"
        " dropped), not_allowed (allowed_peers), bad_sccrq (Ns/Nr not 0), bad_digest"
        " (L2TPv3 Message Digest), malformed (tunnel 0 message that did not decode).",
        labels=["listener", "reason"],
    )
    unsent = CounterMetricFamily(
        "l2tp_listener_refusals_unsent",
        "Of the tunnel_limit refusals, those whose StopCCN was not sent (over the rate limit).",
        labels=["listener"],
    )
    evicted = CounterMetricFamily(
        "l2tp_listener_pending_evicted",
        "Half-open tunnels dropped to make room for a new SCCRQ (max_pending_tunnels).",
        labels=["listener"],
    )
    for record in records:
        name = str(record["name"])
        counters: Mapping[str, int] = record["counters"]
        accepted.add_metric([name], counters.get("accepted", 0))
        for reason, key in LISTENER_REFUSALS:
            refused.add_metric([name, reason], counters.get(key, 0))
        unsent.add_metric([name], counters.get("rejects_unsent", 0))
        evicted.add_metric([name], counters.get("pending_evicted", 0))
    yield from (accepted, refused, unsent, evicted)


def _events(tally: EventTally) -> Iterator[Any]:
    yield tally.tunnel_setup.family(
        "l2tp_tunnel_setup_seconds", "From SCCRQ sent or received to the tunnel established."
    )
    yield tally.session_setup.family(
        "l2tp_session_setup_seconds", "From ICRQ/OCRQ sent or received to the call established."
    )
    for name, doc, counts in (
        ("l2tp_tunnel_closed", "Tunnels ended, by StopCCN Result Code.", tally.tunnels_closed),
        ("l2tp_session_closed", "Calls ended, by CDN Result Code.", tally.sessions_closed),
    ):
        family = CounterMetricFamily(
            name,
            doc + " result=none: no code exchanged; closed_by: who ended it.",
            labels=["result", "closed_by"],
        )
        for (result, by), n in sorted(counts.items()):
            family.add_metric([result, by], n)
        yield family


def _peers(source: object) -> Iterator[Any]:
    """The LNSes of the daemon's peer lists (kl2tpd), from its ``peers()`` records: one
    series per configured endpoint (and reason), so the cardinality is the file's."""
    peers = getattr(source, "peers", None)
    records: list[dict[str, Any]] = peers() if callable(peers) else []
    if not records:
        return
    labels = ["name", "peer"]
    up = GaugeMetricFamily(
        "l2tp_peer_up",
        "1 while the tunnel to this LNS of a peer list is established.",
        labels=labels,
    )
    denied = GaugeMetricFamily(
        "l2tp_peer_denylist_remaining_seconds",
        "Seconds until this LNS may be chosen again; 0 when it is not denylisted.",
        labels=labels,
    )
    sessions = GaugeMetricFamily(
        "l2tp_peer_sessions", "Sessions placed on this LNS (being set up or up).", labels=labels
    )
    total = CounterMetricFamily(
        "l2tp_peer_denylisted",
        "Times this LNS was denylisted, by reason (docs/daemons.md).",
        labels=[*labels, "reason"],
    )
    for p in records:
        key = [str(p["name"]), str(p["peer"])]
        up.add_metric(key, 1 if p["state"] == "up" else 0)
        denied.add_metric(key, p["denylisted_for"] or 0)
        sessions.add_metric(key, p["sessions"])
        counts = p.get("denylisted_total") or {}
        for reason in DenyReason:
            total.add_metric([*key, reason.value], counts.get(reason.value, 0))
    yield from (up, denied, sessions, total)


def _per_tunnel(tunnels: list[dict[str, Any]]) -> Iterator[Any]:
    labels = ["tunnel_id", "name", "peer"]
    rtt = GaugeMetricFamily(
        "l2tp_tunnel_rtt_seconds",
        "Last HELLO to its acknowledgement (includes the peer's acknowledgement delay).",
        labels=labels,
    )
    sessions = GaugeMetricFamily("l2tp_tunnel_sessions", "Sessions of the tunnel.", labels=labels)
    retx = CounterMetricFamily(
        "l2tp_tunnel_retransmissions", "Retransmissions on the tunnel.", labels=labels
    )
    for record in tunnels:
        key = [str(record["tunnel_id"]), record["name"] or "", record["peer"] or ""]
        sessions.add_metric(key, record["sessions"])
        counters = record["counters"]
        if counters is None:
            continue
        retx.add_metric(key, counters["retransmissions"])
        if counters["hello_rtt"] is not None:
            rtt.add_metric(key, counters["hello_rtt"])
    yield from (rtt, sessions, retx)


def samples(collector: Collector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a collector by (name, sorted labels): for tests and the benchmark."""
    out = {}
    for family in collector.collect():
        s: Sample
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out
