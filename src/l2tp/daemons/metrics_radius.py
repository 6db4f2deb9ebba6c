"""The ``l2tp_radius_*`` metrics of :class:`~l2tp.daemons.metrics.L2tpCollector`, from
``status``'s ``radius`` (what ``l2tp ctl status`` prints, so both say the same).

* ``l2tp_radius_*{server}``: the daemon's clients (``[radius]``), per server;
  ``l2tp_radius_dae_*``: its Dynamic Authorization server; ``l2tp_radius_acct_*``: its
  accounting engine.
* ``l2tp_radius_listener_*{listener, server}`` and ``l2tp_radius_listener_acct_*{listener}``:
  the same for each listener with clients of its own (``[listener.L.radius]``, the
  status's ``radius.listeners``). Families of their own rather than a ``listener``
  label on the daemon's: the daemon's series keep their labels (and the dashboards
  built on them), and no series pretends the daemon is a listener.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from l2tp.radius.dae_model import DROP_COUNTERS

__all__ = ["radius_metrics"]


def radius_metrics(snapshot: Mapping[str, Any] | None) -> Iterator[Any]:
    """Every ``l2tp_radius_*`` family (module doc); none without RADIUS."""
    if not snapshot:
        return
    yield from _radius_dae(snapshot.get("dae"))
    if "servers" in snapshot:  # not with Dynamic Authorization only: no client
        yield from _clients("l2tp_radius", [((), snapshot)])
        yield from _radius_granted(snapshot.get("granted"))
    yield from _radius_accounting("l2tp_radius_acct_", [((), snapshot)])
    listeners: Mapping[str, Mapping[str, Any]] = snapshot.get("listeners") or {}
    if listeners:
        own = [((name,), status) for name, status in sorted(listeners.items())]
        yield from _clients("l2tp_radius_listener", own)
        yield from _radius_accounting("l2tp_radius_listener_acct_", own)


_GRANTED_HELP = {
    "routes_added": "Framed-Routes of Access-Accepts installed.",
    "route_errors": "Framed-Routes of Access-Accepts the kernel refused.",
    "session_timeouts": "Sessions ended by their Access-Accept's Session-Timeout.",
    "idle_timeouts": "Sessions ended by their Access-Accept's Idle-Timeout.",
}
"""``status``'s ``radius.granted`` (what the built-in PPP did with what Access-Accepts
granted, :data:`~l2tp.daemons.radius_setup.GRANTED`): ``l2tp_radius_granted_<name>``."""


def _radius_granted(granted: Mapping[str, Any] | None) -> Iterator[Any]:
    """``l2tp_radius_granted_*``: the built-in PPP's counters of the Access-Accepts'
    grants (every listener's sessions), the numbers ``l2tp ctl status`` shows on its
    ``radius granted`` line."""
    if not isinstance(granted, Mapping):
        return
    for name, what in _GRANTED_HELP.items():
        value = granted.get(name)
        if isinstance(value, int):
            yield CounterMetricFamily(f"l2tp_radius_granted_{name}", what, value=value)


def _clients(
    prefix: str, clients: Sequence[tuple[tuple[str, ...], Mapping[str, Any]]]
) -> Iterator[Any]:
    """Per-server counters of ``clients`` (``(labels, snapshot)``: ``()`` for the
    daemon's, ``(listener,)`` for a listener's, under ``prefix``)."""
    extra = ["listener"] if prefix.endswith("_listener") else []
    requests = CounterMetricFamily(
        f"{prefix}_requests",
        "RADIUS requests sent (first transmissions).",
        labels=[*extra, "server"],
    )
    retransmissions = CounterMetricFamily(
        f"{prefix}_retransmissions", "RADIUS requests sent again.", labels=[*extra, "server"]
    )
    timeouts = CounterMetricFamily(
        f"{prefix}_timeouts",
        "RADIUS requests given up on a server after every retransmission.",
        labels=[*extra, "server"],
    )
    replies = CounterMetricFamily(
        f"{prefix}_replies", "Verified RADIUS replies by kind.", labels=[*extra, "server", "kind"]
    )
    dropped = CounterMetricFamily(
        f"{prefix}_dropped_replies",
        "RADIUS replies dropped: bad authenticator, malformed, or for no outstanding request.",
        labels=[*extra, "server", "reason"],
    )
    outstanding = GaugeMetricFamily(
        f"{prefix}_outstanding", "RADIUS requests in flight now.", labels=extra
    )
    for labels, snapshot in clients:
        servers: Mapping[str, Mapping[str, int]] = snapshot.get("servers", {})
        for name, c in servers.items():
            requests.add_metric([*labels, name], c.get("requests", 0))
            retransmissions.add_metric([*labels, name], c.get("retransmissions", 0))
            timeouts.add_metric([*labels, name], c.get("timeouts", 0))
            for kind in ("accepts", "rejects", "challenges", "acct_responses"):
                replies.add_metric([*labels, name, kind.rstrip("s")], c.get(kind, 0))
            for reason in ("bad_authenticators", "malformed", "unmatched"):
                dropped.add_metric([*labels, name, reason.rstrip("s")], c.get(reason, 0))
        outstanding.add_metric(list(labels), snapshot.get("outstanding", 0))
    yield from (requests, retransmissions, timeouts, replies, dropped, outstanding)


def _radius_dae(c: Mapping[str, Any] | None) -> Iterator[Any]:
    """``l2tp_radius_dae_*``: the Dynamic Authorization server (RFC 5176) counters."""
    if not c:
        return
    requests = CounterMetricFamily(
        "l2tp_radius_dae_requests",
        "Verified Dynamic Authorization requests by kind.",
        labels=["kind"],
    )
    requests.add_metric(["disconnect"], c.get("disconnect_requests", 0))
    requests.add_metric(["coa"], c.get("coa_requests", 0))
    replies = CounterMetricFamily(
        "l2tp_radius_dae_replies",
        "Dynamic Authorization replies sent, by kind (ack, nak).",
        labels=["kind", "reply"],
    )
    for kind in ("disconnect", "coa"):
        for reply in ("ack", "nak"):
            replies.add_metric([kind, reply], c.get(f"{kind}_{reply}s", 0))
    naks = CounterMetricFamily(
        "l2tp_radius_dae_naks", "NAKs by Error-Cause (RFC 5176 3.5).", labels=["cause"]
    )
    for cause, n in sorted((c.get("naks_by_cause") or {}).items()):
        naks.add_metric([str(cause)], n)
    dropped = CounterMetricFamily(
        "l2tp_radius_dae_dropped",
        "Dynamic Authorization datagrams dropped unanswered, by reason.",
        labels=["reason"],
    )
    for reason in DROP_COUNTERS:
        dropped.add_metric([reason], c.get(reason, 0))
    yield from (requests, replies, naks, dropped)
    yield CounterMetricFamily(
        "l2tp_radius_dae_duplicates",
        "Retransmitted Dynamic Authorization requests (answered from the cache, or dropped).",
        value=c.get("duplicates", 0),
    )
    yield CounterMetricFamily(
        "l2tp_radius_dae_sessions_disconnected",
        "Sessions closed by a Disconnect-Request.",
        value=c.get("sessions_disconnected", 0),
    )
    yield CounterMetricFamily(
        "l2tp_radius_dae_session_timeouts",
        "Session-Timeouts set by a CoA-Request.",
        value=c.get("session_timeouts_set", 0),
    )


_ACCT_GAUGES = frozenset(
    (
        "accounting_sessions",
        "accounting_in_flight",
        "accounting_spool_pending",
        "accounting_spool_bytes",
    )
)
"""The accounting values that are levels now; the others only grow."""


def _radius_accounting(
    prefix: str, engines: Sequence[tuple[tuple[str, ...], Mapping[str, Any]]]
) -> Iterator[Any]:
    """``PREFIX*`` from each status's ``accounting`` (the engine's and its spool's
    counters, :meth:`~l2tp.radius.accounting.AccountingEngine.snapshot`; accounting
    configured): ``accounting_starts`` becomes ``l2tp_radius_acct_starts``,
    ``accounting_spool_pending`` ``l2tp_radius_acct_spool_pending``. ``engines``:
    ``(labels, status)``, labels ``()`` for the daemon's, ``(listener,)`` for a
    listener's (one family per key, a sample per engine)."""
    names = ["listener"] if prefix.startswith("l2tp_radius_listener") else []
    families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
    for labels, snapshot in engines:
        accounting = snapshot.get("accounting")
        if not isinstance(accounting, Mapping):
            continue
        for key, value in accounting.items():
            if not key.startswith("accounting_") or not isinstance(value, int):
                continue
            family = families.get(key)
            if family is None:
                name = prefix + key.removeprefix("accounting_")
                what = key.removeprefix("accounting_").replace("_", " ")
                if key in _ACCT_GAUGES:
                    family = GaugeMetricFamily(
                        name, f"RADIUS accounting: {what} now.", labels=names
                    )
                else:
                    family = CounterMetricFamily(name, f"RADIUS accounting: {what}.", labels=names)
                families[key] = family
            family.add_metric(list(labels), value)
    yield from families.values()
    yield from _draining(prefix, names, engines)


def _draining(
    prefix: str, names: list[str], engines: Sequence[tuple[tuple[str, ...], Mapping[str, Any]]]
) -> Iterator[Any]:
    """``PREFIXdraining``: 1 while the engine is out of service, kept for the sessions it
    accounts (``acct_servers`` removed by a reload); for listeners also
    ``l2tp_radius_listener_acct_replaced``: engines a move to another spool replaced that
    still drain (docs/radius.md, "accounting domains"). An alert on either says where the
    Stops of the sessions started before the reload go."""
    draining = GaugeMetricFamily(
        prefix + "draining",
        "RADIUS accounting: 1 while the engine takes no new sessions and waits for its own to end.",
        labels=names,
    )
    replaced = GaugeMetricFamily(
        prefix + "replaced",
        "RADIUS accounting: engines replaced by a move to another spool, still draining.",
        labels=names,
    )
    any_draining = any_replaced = False
    for labels, snapshot in engines:
        accounting = snapshot.get("accounting")
        if isinstance(accounting, Mapping):
            draining.add_metric(list(labels), 1 if accounting.get("draining") else 0)
            any_draining = True
        if names:
            replaced.add_metric(list(labels), len(snapshot.get("replaced_accounting") or ()))
            any_replaced = True
    if any_draining:
        yield draining
    if any_replaced:
        yield replaced
