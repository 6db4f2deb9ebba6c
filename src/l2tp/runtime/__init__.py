"""The asyncio runtime that drives the sans-IO core over real sockets and timers."""
