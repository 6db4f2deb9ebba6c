"""The daemon-wide metrics keys: ``metrics`` (where the Prometheus exporter listens) and
``metrics_per_tunnel``.

::

    metrics = "127.0.0.1:9701"     # HOST:PORT; absent: no exporter (the default)
    metrics_per_tunnel = true      # also one series per tunnel (RTT, sessions, ...)

    [tunnel.t1]
    ...

They are top-level keys, named like the command line's ``--metrics`` (which
overrides ``metrics``), so TOML wants them before the first table. The port is
required (there is no conventional one to default to, unlike L2TP's 1701); 0 picks
a free port, which ``l2tp ctl status`` then reports. A host name is resolved like
every other address of the file.
"""

from __future__ import annotations

from l2tp.config.errors import ConfigError
from l2tp.config.fields import TOP_LEVEL_KEYS, Resolver, TableReader, parse_endpoint, show
from l2tp.config.model import Endpoint

METRICS_KEYS = tuple(sorted(TOP_LEVEL_KEYS))


def parse_metrics_address(text: str, resolver: Resolver | None) -> Endpoint:
    """``HOST:PORT`` or ``[V6]:PORT`` with the port required; ValueError with the reason."""
    bracketed = text.startswith("[")
    has_port = text.rpartition("]")[2].startswith(":") if bracketed else text.count(":") == 1
    if not has_port:
        raise ValueError("give HOST:PORT (IPv6: [ADDRESS]:PORT); the port is required")
    return parse_endpoint(text, resolver, min_port=0)


def read_metrics(
    file: str, doc: dict[str, object], resolver: Resolver | None, errors: list[ConfigError]
) -> tuple[Endpoint | None, bool]:
    """The ``metrics`` address (None when absent) and ``metrics_per_tunnel`` of a document;
    problems go to ``errors`` in the loader's format (``FILE: key 'metrics': ...``)."""
    present = {key: doc[key] for key in METRICS_KEYS if key in doc}
    r = TableReader(file, "", present, METRICS_KEYS, errors)
    per_tunnel = r.boolean("metrics_per_tunnel", False)
    text = r.nonempty_string("metrics")
    if text is None:
        return None, per_tunnel
    try:
        return parse_metrics_address(text, resolver), per_tunnel
    except ValueError as exc:
        r.error("metrics", f"{show(text)} is not a valid address: {exc}")
        return None, per_tunnel
