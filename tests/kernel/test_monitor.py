"""The multicast event monitor sees changes made by another process (iproute2)."""

from __future__ import annotations

import asyncio
import subprocess

from l2tp.kernel import EventKind, L2tpMonitor, SessionEvent, TunnelEvent
from tests.helpers import require_tool


def test_events_from_another_process(netns: str) -> None:
    commands = "\n".join(
        [
            "l2tp add tunnel tunnel_id 700 peer_tunnel_id 701 encap udp local 127.0.0.1 "
            "remote 127.0.0.1 udp_sport 19001 udp_dport 19002",
            "l2tp add session tunnel_id 700 session_id 702 peer_session_id 703",
            "l2tp del session tunnel_id 700 session_id 702",
            "l2tp del tunnel tunnel_id 700",
        ]
    )

    async def scenario() -> list[tuple[str, EventKind, int]]:
        seen: list[tuple[str, EventKind, int]] = []
        async with L2tpMonitor(netns=netns) as monitor:
            proc = await asyncio.create_subprocess_exec(
                require_tool("ip"), "-n", netns, "-batch", "-", stdin=subprocess.PIPE
            )
            await proc.communicate(commands.encode() + b"\n")
            assert proc.returncode == 0

            async def collect() -> None:
                async for event in monitor:
                    if isinstance(event, TunnelEvent) and event.tunnel.tunnel_id == 700:
                        seen.append(("tunnel", event.kind, event.tunnel.peer_tunnel_id))
                    elif isinstance(event, SessionEvent) and event.session.tunnel_id == 700:
                        seen.append(("session", event.kind, event.session.session_id))
                    if len(seen) == 4:
                        return

            await asyncio.wait_for(collect(), timeout=20)
        return seen

    assert asyncio.run(scenario()) == [
        ("tunnel", EventKind.CREATED, 701),
        ("session", EventKind.CREATED, 702),
        ("session", EventKind.DELETED, 702),
        ("tunnel", EventKind.DELETED, 701),
    ]
