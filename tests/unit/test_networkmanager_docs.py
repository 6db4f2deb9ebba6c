"""docs/networkmanager.md shows the strongSwan files the kernel tier runs, unchanged.

The page's swanctl examples for the L2TP/IPsec client and the server in front of
l2tp-lns are what ``tests/kernel/test_networkmanager.py`` negotiates IKEv2 with in the
VM (``tests/kernel/strongswan.py`` writes them): a change to either side must show here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kernel.strongswan import client_swanctl_conf, server_swanctl_conf

DOCS = Path(__file__).resolve().parents[2] / "docs" / "networkmanager.md"


@pytest.mark.parametrize(
    ("heading", "conf"),
    [
        ("### Client: strongSwan (swanctl)", client_swanctl_conf),
        ("### Server: l2tp-lns behind strongSwan", server_swanctl_conf),
    ],
)
def test_docs_show_the_tested_swanctl_files(heading: str, conf: Callable[[str, str], str]) -> None:
    text = DOCS.read_text()
    section = text[text.index(heading) :]
    section = section[: section.index("\n### ", 1)]
    assert "```\n# /etc/swanctl/conf.d/" in section
    assert conf("203.0.113.10", "pre-shared key") in section
