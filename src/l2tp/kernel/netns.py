"""Open sockets inside a named network namespace, on the calling thread.

Netlink requests and tunnel sockets act in the network namespace of the
socket they go through, so a socket opened inside namespace ``NS`` drives the
L2TP state of ``NS`` for the rest of its life. ``setns(CLONE_NEWNET)`` changes
the namespace of the calling *thread* only, and a socket keeps the namespace
it was created in, so :func:`socket_in_netns` switches the calling thread into
``NS``, creates the socket and switches back (in a ``finally``): a handful of
system calls, no thread and no process (pyroute2's ``netns=`` sockets fork a
child, ~0.5 s in the emulated test VM; a helper thread per socket, what this
module did before, costs a thread start and join).

Why switching the caller's thread is safe: nothing else runs on this thread
between the two ``setns()`` calls except ``socket()`` itself. On an asyncio
event loop no other callback can run in between (there is no ``await``);
other threads are unaffected (the namespace is per thread). The only code
that could run in the window is a Python signal handler installed with
``signal.signal`` (asyncio's ``add_signal_handler`` defers to the loop) or a
finalizer; one that opened a socket there would open it in ``NS``. If the
switch back fails, the thread would stay in ``NS``: that is raised as an
error that names the problem rather than carried on silently.

The fd of the thread's own namespace is opened once per thread and kept. The
target namespace is opened by path on each call and closed again: caching it
would keep a namespace deleted with ``ip netns del`` alive (with its
interfaces and tunnels) for as long as the cache holds it, and would miss a
namespace re-created under the same name.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import socket
import threading
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_home = threading.local()


def netns_path(netns: str) -> str:
    """Path of a namespace given by ``ip netns`` name or by path."""
    return netns if "/" in netns else os.path.join(NETNS_RUN_DIR, netns)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns({what}): {os.strerror(err)}")


class _HomeNamespace:
    """An fd of the namespace a thread started in; closed when the thread's locals go."""

    def __init__(self) -> None:
        self.fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def __del__(self) -> None:
        os.close(self.fd)


def _home_fd() -> int:
    """An fd of the calling thread's own network namespace (opened once per thread)."""
    home: _HomeNamespace | None = getattr(_home, "ns", None)
    if home is None:
        home = _home.ns = _HomeNamespace()
    return home.fd


@contextlib.contextmanager
def in_netns(netns: str | None) -> Iterator[None]:
    """Run the body with the calling thread in network namespace ``netns`` (None: as is).

    The body must not await or block: it runs between two ``setns()`` calls on the
    caller's thread (the module documentation says why that is safe). Used for the
    sockets below and for the two ``/dev/ppp`` ioctls that act in the caller's
    namespace (:mod:`l2tp.kernel.ppp_device`).
    """
    if netns is None:
        yield
        return
    home = _home_fd()
    target = os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target, netns)
    finally:
        os.close(target)
    try:
        yield
    finally:
        try:
            _setns(home, "back to our own namespace")
        except OSError as exc:  # pragma: no cover - needs a kernel that refuses
            raise RuntimeError(f"this thread is stuck in network namespace {netns}: {exc}") from exc


def socket_in_netns(netns: str | None, family: int, type: int, proto: int = 0) -> socket.socket:
    """``socket.socket(family, type, proto)`` created in ``netns`` (None: our own)."""
    with in_netns(netns):
        return socket.socket(family, type, proto)
