"""Start-up checks: refuse to start a daemon that could not do its job.

A daemon that lacks CAP_NET_ADMIN or a kernel module used to print "started",
write its ready file, and fail only when the first peer arrived (issue 13,
item 11) - long after whoever started it stopped watching. These checks run
after the configuration is loaded and before anything is opened, and each
failure is one line naming what is missing and how to get it.

What is checked, for the Linux data plane only (``--null-dataplane`` needs
none of it):

* **CAP_NET_ADMIN** in the *effective* set (``CapEff`` bit 12 of
  ``/proc/self/status``): root without it (a container, ``setpriv``) fails
  like a normal user, and a non-root process granted it passes. The kernel
  asks for it to create tunnels and sessions; resolving the generic netlink
  family does not, which is why resolving alone proves nothing.
* **The ``l2tp`` generic netlink family**: resolved by
  :class:`~l2tp.kernel.dataplane.LinuxDataPlane` itself when the daemon builds
  it. Resolving makes the *kernel* load ``l2tp_netlink`` on demand
  (``request_module``), so no modprobe is run here.
* **Modules for what the file asks**: a PPPoL2TP socket (``l2tp_ppp``, PPP
  pseudowires) and an L2TPIP socket (``l2tp_ip``/``l2tp_ip6``, ``encap =
  "ip"``) are opened and closed: creating them also makes the kernel load the
  module on demand, and needs no privilege. ``l2tp_eth`` (Ethernet
  pseudowires) has no such socket; the kernel loads it when the first session
  is created, so it is looked for among the loaded (``/sys/module``) and
  installed (``/lib/modules/RELEASE/modules.{dep,builtin}``) modules, and only
  a definite "not there" fails.
* **pppd** when PPP sessions will be handed to it.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from l2tp import config as cfg
from l2tp.kernel.constants import AF_PPPOX, IPPROTO_L2TP, PX_PROTO_OL2TP
from l2tp.kernel.errors import KernelError

CAP_NET_ADMIN = 12
"""Bit of CAP_NET_ADMIN in the capability sets (``linux/capability.h``)."""

_MISSING = (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT)


class StartError(Exception):
    """A reason not to start, as the one line the daemon prints (after ``PROG:``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelNeeds:
    """What a configuration will ask of the kernel and the host."""

    ppp: bool = False
    """PPP pseudowires: PPPoL2TP sockets (``l2tp_ppp``)."""
    pppd: bool = False
    """PPP sessions are handed to pppd."""
    eth: bool = False
    """Ethernet pseudowires (``l2tp_eth``)."""
    ip: bool = False
    """L2TPv3 over IPv4 (``l2tp_ip``)."""
    ip6: bool = False
    """L2TPv3 over IPv6 (``l2tp_ip6``)."""


def _runs_pppd(pseudowire: cfg.Pseudowire, ppp: cfg.PppImplementation) -> bool:
    """A session of this kind is handed to pppd (pppac always is; ppp unless built-in)."""
    if pseudowire is cfg.Pseudowire.PPPAC:
        return True
    return pseudowire is cfg.Pseudowire.PPP and ppp is cfg.PppImplementation.PPPD


def needs_of(config: cfg.Config) -> KernelNeeds:
    """What ``config`` needs: every pseudowire and encapsulation it names.

    L2TPv2 carries PPP only, so a v2 tunnel or listener needs PPP and pppd even
    without a session table (an LNS gets its sessions from the peer). pppd is not
    needed when every PPP session runs the built-in PPP (``ppp = "builtin"``).
    """
    pseudowires: set[cfg.Pseudowire] = set()
    families: set[tuple[cfg.Encap, int]] = set()
    pppd = False
    for tunnel in config.tunnels:
        if tunnel.version is cfg.Version.L2TPV2:
            pseudowires.add(cfg.Pseudowire.PPP)
            pppd = pppd or not tunnel.sessions
        pseudowires.update(s.pseudowire for s in tunnel.sessions)
        pppd = pppd or any(_runs_pppd(s.pseudowire, s.ppp) for s in tunnel.sessions)
        families.add((tunnel.encap, tunnel.peer.family))
    for listener in config.listeners:
        if listener.version is cfg.Version.L2TPV2:
            pseudowires.add(cfg.Pseudowire.PPP)
        pseudowires.add(listener.pseudowire)
        pseudowires.update(s.pseudowire for s in listener.sessions)
        pppd = pppd or _runs_pppd(listener.pseudowire, listener.ppp)
        pppd = pppd or any(_runs_pppd(s.pseudowire, s.ppp) for s in listener.sessions)
        families.add((listener.encap, listener.listen.family))
    ppp = bool(pseudowires & {cfg.Pseudowire.PPP, cfg.Pseudowire.PPPAC})
    return KernelNeeds(
        ppp=ppp,
        pppd=ppp and pppd,
        eth=cfg.Pseudowire.ETH in pseudowires,
        ip=(cfg.Encap.IP, 4) in families,
        ip6=(cfg.Encap.IP, 6) in families,
    )


def effective_capabilities(status_path: str = "/proc/self/status") -> int | None:
    """The effective capability set (``CapEff``) as a bit mask; None if unreadable."""
    try:
        with open(status_path, encoding="ascii", errors="replace") as fp:
            for line in fp:
                if line.startswith("CapEff:"):
                    return int(line.split(":", 1)[1].strip(), 16)
    except (OSError, ValueError):
        return None
    return None


def check_net_admin(status_path: str = "/proc/self/status", *, hint: str = "") -> None:
    """Raise :class:`StartError` unless CAP_NET_ADMIN is in the effective set.

    Without ``/proc`` the effective user ID decides (root is assumed capable).
    """
    caps = effective_capabilities(status_path)
    capable = os.geteuid() == 0 if caps is None else bool(caps >> CAP_NET_ADMIN & 1)
    if not capable:
        raise StartError(
            "CAP_NET_ADMIN is required to create kernel L2TP tunnels and sessions "
            f"(run as root or grant the capability{hint})"
        )


Probe = Callable[[int, int, int], None]


def probe_socket(family: int, type: int, proto: int) -> None:
    """Open and close one socket; the kernel loads the module that provides it."""
    socket.socket(family, type, proto).close()


def module_installed(
    name: str, *, sys_module: str = "/sys/module", lib_modules: str | None = None
) -> bool | None:
    """Whether kernel module ``name`` is loaded or installed; None when it cannot be told.

    ``/lib/modules/RELEASE`` lists what ``modprobe`` (and the kernel's on-demand
    loading) can find: ``modules.dep`` the loadable ones, ``modules.builtin``
    those compiled in. Without those files nothing is concluded.
    """
    if os.path.isdir(os.path.join(sys_module, name)):
        return True
    base = Path(lib_modules or os.path.join("/lib/modules", os.uname().release))
    pattern = re.compile(rf"(^|/){re.escape(name)}\.ko(\.\w+)?(:|$)", re.MULTILINE)
    found_any = False
    for index in ("modules.dep", "modules.builtin"):
        try:
            text = (base / index).read_text(errors="replace")
        except OSError:
            continue
        found_any = True
        if pattern.search(text):
            return True
    return False if found_any else None


def _module_error(module: str, what: str, err: int | None = None) -> StartError:
    detail = f" [{os.strerror(err)}]" if err is not None else ""
    return StartError(
        f"{what}: kernel module {module} is not available; "
        f"try `modprobe {module}` (as root){detail}"
    )


def check_l2tp_family(netns: str | None) -> None:
    """Raise the :class:`KernelError` of resolving the ``l2tp`` generic netlink family
    (which names ``l2tp_netlink`` when the kernel lacks it). Blocking: before the loop
    starts, so that the most basic missing piece is the first one reported."""
    from l2tp.kernel.netlink import open_genl_socket

    sock, _, _ = open_genl_socket(netns)
    sock.close()


def check_modules(
    needs: KernelNeeds,
    *,
    probe: Probe = probe_socket,
    installed: Callable[[str], bool | None] = module_installed,
) -> None:
    """Raise :class:`StartError` for the first module ``needs`` asks for that is missing."""
    sockets = [
        (needs.ppp, "l2tp_ppp", "PPP pseudowires", (AF_PPPOX, socket.SOCK_DGRAM, PX_PROTO_OL2TP)),
        (needs.ip, "l2tp_ip", 'encap = "ip"', (socket.AF_INET, socket.SOCK_DGRAM, IPPROTO_L2TP)),
        (
            needs.ip6,
            "l2tp_ip6",
            'encap = "ip" over IPv6',
            (socket.AF_INET6, socket.SOCK_DGRAM, IPPROTO_L2TP),
        ),
    ]
    for wanted, module, what, args in sockets:
        if not wanted:
            continue
        try:
            probe(*args)
        except OSError as exc:
            if exc.errno in _MISSING:
                raise _module_error(module, what, exc.errno) from None
            # Anything else (EMFILE, EACCES by a security module ...) is not about
            # the module; the real request will report it if it persists.
    if needs.eth and installed("l2tp_eth") is False:
        raise _module_error("l2tp_eth", "Ethernet pseudowires")


def check_pppd(find: Callable[[], str] | None = None) -> None:
    """Raise :class:`StartError` when no pppd executable can be found."""
    if find is None:
        from l2tp.runtime.ppp import find_pppd

        find = find_pppd
    try:
        find()
    except FileNotFoundError as exc:
        raise StartError(f"PPP sessions need pppd: {exc}") from None


def check_ready_file(path: Path) -> None:
    """Raise :class:`StartError` unless ``path`` can be written later.

    The file is not created here: its appearance is the "started" signal that
    scripts wait for. An existing file must be a writable regular file; a new
    one needs a writable, searchable directory.
    """
    where = f"--ready-file {path}"
    mode = {"effective_ids": True} if os.access in os.supports_effective_ids else {}
    if path.is_dir():
        raise StartError(f"{where}: is a directory")
    if path.exists() or path.is_symlink():
        if not os.access(path, os.W_OK, **mode):
            raise StartError(f"{where}: not writable ({os.strerror(errno.EACCES)})")
        return
    parent = path.parent
    if not parent.exists():
        raise StartError(f"{where}: directory {parent} does not exist")
    if not parent.is_dir():
        raise StartError(f"{where}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK, **mode):
        raise StartError(f"{where}: cannot create a file in {parent} (not writable)")


def write_ready_file(path: Path) -> None:
    """Write ``up``; a failure despite :func:`check_ready_file` becomes a StartError."""
    try:
        path.write_text("up\n")
    except OSError as exc:
        raise StartError(f"--ready-file {path}: {exc.strerror or exc}") from None


def describe_os_error(exc: OSError) -> str:
    """An OS error in words, with a hint for the usual causes at bind time."""
    hints = {
        errno.EADDRNOTAVAIL: "the address is not configured on this host",
        errno.EADDRINUSE: "another process is using it",
        errno.EACCES: "ports below 1024 need root or CAP_NET_BIND_SERVICE",
    }
    # A KernelError's own message already says what failed.
    own = isinstance(exc, KernelError) or not exc.errno
    text = str(exc) if own else os.strerror(exc.errno or 0)
    hint = hints.get(exc.errno or 0)
    return f"{text} ({hint})" if hint else text
