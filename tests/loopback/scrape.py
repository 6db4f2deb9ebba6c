"""Scraping a daemon's metrics over HTTP, as Prometheus does, for the loopback tests."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


async def get(address: str, path: str = "/metrics") -> tuple[int, bytes]:
    """``GET http://ADDRESS/PATH``: the status and the body."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), 20)  # the server closes after one
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def scrape(address: str) -> Samples:
    """Every sample by (name, sorted labels)."""
    status, body = await get(address)
    assert status == 200, body
    out: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """The samples of ``name`` keyed by one label's value (zero values left out)."""
    out = {}
    for (n, labels), value in samples.items():
        if n == name and value:
            out[dict(labels)[label]] = value
    return out


def messages(samples: Samples) -> dict[tuple[str, str], float]:
    """``l2tp_control_messages_total`` by (direction, message)."""
    out = {}
    for (n, labels), value in samples.items():
        if n == "l2tp_control_messages_total":
            d = dict(labels)
            out[d["direction"], d["message"]] = value
    return out
