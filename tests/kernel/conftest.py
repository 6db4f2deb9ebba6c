"""Kernel tier fixtures: the L2TP availability gate, namespaces and veth pairs.

Every test here needs root and a kernel with L2TP. Without them a test is
skipped on a developer's machine but *fails* when ``L2TP_REQUIRE_KERNEL=1``
(set by ``tools/vmtest``): the kernel tier must never pass by skipping.
Process starts are slow in the emulated VM (0.25-0.5 s each), so set-up is
done with as few ``ip -batch`` calls as possible and namespaces are shared
per module where tests use distinct IDs.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers import require_tool
from tests.helpers import wait_until as wait_until  # re-exported for the kernel tests

_names = itertools.count(1)


def _unavailable(message: str) -> None:
    if os.environ.get("L2TP_REQUIRE_KERNEL") == "1":
        pytest.fail(f"kernel L2TP required but unavailable: {message}")
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def l2tp_kernel() -> None:
    """Fail or skip the tier unless we are root on a kernel with L2TP."""
    if os.geteuid() != 0:
        _unavailable("kernel tests need root")
    subprocess.run(
        ["modprobe", "-a", "l2tp_eth", "l2tp_ip", "l2tp_ip6", "l2tp_ppp"],
        capture_output=True,
        check=False,
    )
    from l2tp.kernel.errors import KernelError
    from l2tp.kernel.netlink import L2tpNetlink

    try:
        L2tpNetlink().close()
    except KernelError as exc:
        _unavailable(str(exc))


def unique_name(prefix: str) -> str:
    """A short name unique in this test run (interface names are limited to 15 bytes)."""
    return f"{prefix}{os.getpid() % 1000}x{next(_names)}"


def ip_batch(commands: list[str], netns: str | None = None) -> str:
    """Run iproute2 commands in one process; raise with its stderr on failure."""
    ip = require_tool("ip")
    argv = [ip] + (["-n", netns] if netns else []) + ["-batch", "-"]
    done = subprocess.run(argv, input="\n".join(commands) + "\n", capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"ip -batch failed: {done.stderr}\n" + "\n".join(commands))
    return done.stdout


def ip_json(commands: list[str], netns: str | None = None) -> list[Any]:
    """Run ``ip -j -d`` commands in one process and return each command's JSON document."""
    ip = require_tool("ip")
    argv = [ip, "-j", "-d"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    done = subprocess.run(argv, input="\n".join(commands) + "\n", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    decoder = json.JSONDecoder()
    docs: list[Any] = []
    text = done.stdout.strip()
    while text:
        doc, end = decoder.raw_decode(text)
        docs.append(doc)
        text = text[end:].strip()
    return docs


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    """A fresh network namespace (with lo up) shared by one test module."""
    name = unique_name("l2n")
    ip_batch([f"netns add {name}"])
    ip_batch(["link set lo up"], netns=name)
    yield name
    ip_batch([f"netns del {name}"])


@dataclass(frozen=True)
class VethPair:
    """Two namespaces joined by a veth with IPv4 and IPv6 addresses on each end."""

    ns_a: str
    ns_b: str
    a4: str
    b4: str
    a6: str
    b6: str


@pytest.fixture(scope="module")
def veth_pair() -> Iterator[VethPair]:
    a, b = unique_name("l2a"), unique_name("l2b")
    pair = VethPair(a, b, "10.201.0.1", "10.201.0.2", "fd00:201::1", "fd00:201::2")
    ip_batch(
        [
            f"netns add {a}",
            f"netns add {b}",
            f"link add va netns {a} type veth peer name vb netns {b}",
        ]
    )
    for ns, dev, v4, v6 in ((a, "va", pair.a4, pair.a6), (b, "vb", pair.b4, pair.b6)):
        ip_batch(
            [
                "link set lo up",
                f"addr add {v4}/24 dev {dev}",
                f"addr add {v6}/64 dev {dev} nodad",
                f"link set {dev} up",
            ],
            netns=ns,
        )
    yield pair
    ip_batch([f"netns del {a}", f"netns del {b}"])
