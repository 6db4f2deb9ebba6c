"""Open sockets inside a named network namespace without starting a process.

Netlink requests and tunnel sockets act in the network namespace of the
socket they go through, so a socket opened inside namespace ``NS`` drives the
L2TP state of ``NS`` for the rest of its life. ``setns(CLONE_NEWNET)`` changes
only the calling *thread*, so we switch a short-lived helper thread into the
namespace, open the socket there and hand it back: no fork, no ``ip netns
exec`` (pyroute2's own ``netns=`` sockets fork a child process, which costs
~0.5 s in the emulated test VM).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def netns_path(netns: str) -> str:
    """Path of a namespace given by ``ip netns`` name or by path."""
    return netns if "/" in netns else os.path.join(NETNS_RUN_DIR, netns)


def socket_in_netns(netns: str | None, family: int, type: int, proto: int = 0) -> socket.socket:
    """``socket.socket(family, type, proto)`` created in ``netns`` (None: our own)."""
    if netns is None:
        return socket.socket(family, type, proto)
    fd = os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
    result: list[socket.socket | BaseException] = []

    def worker() -> None:
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            result.append(socket.socket(family, type, proto))
        except BaseException as exc:  # handed to the caller's thread
            result.append(exc)

    try:
        thread = threading.Thread(target=worker, name=f"netns-{netns}")
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    (outcome,) = result
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
