"""Event subscriptions: what ``ctx.events()`` and ``tunnel.events()`` return."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from l2tp.protocol.events import ControlEvent


class Subscription:
    """An unbounded queue fed by the context or a tunnel; iterate it with ``async for``."""

    def __init__(self, owner: list[Subscription]) -> None:
        self.queue: asyncio.Queue[ControlEvent | None] = asyncio.Queue()
        self._owner = owner
        owner.append(self)

    def __aiter__(self) -> AsyncIterator[ControlEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ControlEvent]:
        try:
            while (event := await self.queue.get()) is not None:
                yield event
        finally:
            self.close()

    def close(self) -> None:
        if self in self._owner:
            self._owner.remove(self)
