"""Exceptions of the kernel data-plane API, one class per failure a user can act on.

The kernel answers every failed request with a bare errno, and the same errno
means different things for different commands (``ENODEV`` is "no such tunnel"
for a tunnel command but may be "no such session" for a session command;
``EPROTONOSUPPORT`` is "module missing" for an unmanaged tunnel but "the socket
is not UDP/L2TPIP" for a managed one). :func:`error_for` turns the errno *and
the request that failed* into a specific exception whose message says what to
do, and keeps the errno in ``.errno`` for programs.
"""

from __future__ import annotations

import errno as _errno
import os

from l2tp.protocol.errors import L2tpError


class KernelError(L2tpError, OSError):
    """A kernel L2TP request failed; ``errno`` holds the kernel's error number."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, message)
        self.errno = err
        self.message = message

    def __str__(self) -> str:
        err = self.errno or 0
        name = _errno.errorcode.get(err, str(err))
        return f"{self.message} [{name}: {os.strerror(err)}]"


class ModuleNotLoaded(KernelError):
    """The kernel lacks an L2TP module; ``module`` names what to ``modprobe``."""

    def __init__(self, err: int, module: str, what: str = "") -> None:
        detail = f"{what}: " if what else ""
        super().__init__(
            err, f"{detail}kernel L2TP support is missing; try `modprobe {module}` (as root)"
        )
        self.module = module


class NotPermitted(KernelError):
    """The caller lacks CAP_NET_ADMIN (run as root or grant the capability)."""


class IdInUse(KernelError):
    """A tunnel or session with this ID already exists (``EEXIST``)."""


class TunnelNotFound(KernelError):
    """No tunnel with this ID exists in this network namespace."""


class SessionNotFound(KernelError):
    """No session with this ID exists in the given tunnel."""


class LinkNotFound(KernelError):
    """No network interface with this name or index (an rtnetlink request's ``ENODEV``)."""


class DataPlaneClosed(KernelError):
    """The request was not answered because its data plane (netlink socket) was closed.

    The kernel may or may not have carried it out if it had been sent.
    """


def data_plane_closed(what: str) -> DataPlaneClosed:
    """The error for a call made on (or cut short by) a closed data plane: one wording
    for the Linux and the null data planes, which tests and callers match alike."""
    return DataPlaneClosed(_errno.ESHUTDOWN, f"{what}: the data plane is closed")


class AddressFamilyMismatch(KernelError, ValueError):
    """Local and peer addresses, or the socket and the addresses, differ in IP version."""


class InvalidSocket(KernelError):
    """The socket handed to the kernel cannot carry this tunnel (wrong protocol, in use)."""


def error_for(
    err: int,
    request: str,
    *,
    tunnel_id: int | None = None,
    session_id: int | None = None,
    module: str | None = None,
    link: str | int | None = None,
) -> KernelError:
    """Build the exception for ``err`` returned by ``request`` (e.g. "create tunnel 5").

    ``module`` is the kernel module whose absence would explain
    ``EPROTONOSUPPORT`` / ``EAFNOSUPPORT`` for this request, or None when
    those errnos mean a bad socket instead. ``link`` is the interface (name or
    index) of an rtnetlink request, for which ``ENODEV`` means no such interface.
    """
    if err in (_errno.EPERM, _errno.EACCES):
        return NotPermitted(err, f"{request}: CAP_NET_ADMIN is required (run as root)")
    if err == _errno.EEXIST:
        return IdInUse(err, f"{request}: ID already in use")
    if err == _errno.ENODEV and link is not None:
        name = link if isinstance(link, str) else f"ifindex {link}"
        return LinkNotFound(err, f"{request}: no network interface {name}")
    if err == _errno.ENODEV or (err == _errno.ENOENT and session_id is not None):
        if session_id is None or request.startswith("create session"):
            return TunnelNotFound(err, f"{request}: tunnel {tunnel_id} not found")
        return SessionNotFound(
            err, f"{request}: session {session_id} in tunnel {tunnel_id} not found"
        )
    if err == _errno.EAFNOSUPPORT and module is None:
        return AddressFamilyMismatch(err, f"{request}: address family mismatch")
    if err in (_errno.EPROTONOSUPPORT, _errno.EAFNOSUPPORT, _errno.ESOCKTNOSUPPORT):
        if module is not None:
            return ModuleNotLoaded(err, module, request)
        return InvalidSocket(err, f"{request}: the socket does not match the tunnel's encap")
    if err == _errno.EBUSY:
        return InvalidSocket(err, f"{request}: the socket already carries a tunnel")
    return KernelError(err, f"{request} failed")
