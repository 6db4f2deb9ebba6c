"""Which tunnel IDs the kernel holds, known without asking it for each new tunnel.

Kernel tunnel IDs are per network namespace and shared by every process in
it. A control plane picks a local tunnel ID when it sends SCCRQ or answers
with SCCRP, long before it creates the kernel tunnel (that happens once the
control connection is up); an ID another process already holds in the kernel
would only show up then, as ``EEXIST``, after the peer has been told the ID,
so a collision costs the whole tunnel. Checking with a ``TUNNEL_GET`` per
received SCCRQ is a system call on the datagram receive path. Instead,
:class:`TunnelIdTracker` is learned once and kept current:

1. subscribe to the ``l2tp`` multicast group (tunnel create/delete by anyone,
   announced by the kernel), buffering what it says;
2. dump the namespace's tunnels; the dump plus the buffered events, replayed
   in order, give the current set (any event already reflected in the dump is
   harmless to replay: the last event about an ID decides);
3. from then on apply each event as it is read on the event loop.

So a lookup is a set membership test, no system call. Two kernel facts shape
the rest: Linux 6.1 multicasts these events to *every* network namespace
(``genlmsg_multicast_allns()``; the test VM confirms a tunnel made in another
namespace is announced to a socket in ours) without saying which namespace
they come from, and it announces only changes made through netlink (not a
managed tunnel going away with its socket). So an event is a hint, checked
with one ``TUNNEL_GET`` in our namespace, off the receive path:

- a create event adds the ID at once (conservative: "in use"), and a check
  removes it again if our namespace has no such tunnel; our own creates (the
  event carries the port ID of the socket that made the request) need no check;
- a delete event keeps the ID until a check finds it gone; tunnel deletion
  finishes in a kernel work queue, so an ID can still be listed for a while
  after its delete event: the check is repeated with back-off, and after
  :data:`CHECK_DELAYS` runs out the ID simply stays "in use";
- a newer event about the same ID makes an older check's answer void.

Wrong answers that remain: an ID created by another process between our
lookup and our own create (or between its create and our reading of its
event) is reported free, and our create then fails with ``IdInUse``; an ID
whose tunnel vanished without an event (a managed tunnel whose socket was
closed by another process) stays "in use" until a resync. Both err on the side of skipping
an ID, except the first, which is the window every allocator without a
kernel-side reservation has.

The tracker is sans-IO; :class:`~l2tp.kernel.async_dataplane.AsyncLinuxDataPlane`
drives it with an event socket (:func:`open_event_socket`) and GETs.
"""

from __future__ import annotations

import ctypes
import itertools
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from l2tp.kernel import codec
from l2tp.kernel.constants import Command
from l2tp.kernel.netlink import NETLINK_ADD_MEMBERSHIP, SO_RCVBUFFORCE, SOL_NETLINK, genl_socket

CHECK_DELAYS = (0.0, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
"""Seconds before each GET of a check (a deleted tunnel may linger ~ms, more under load)."""

SO_ATTACH_FILTER = 26
_EVENT_RCVBUF = 4 << 20


@dataclass(frozen=True, slots=True)
class Check:
    """A GET to make for ``tunnel_id``; its answer goes to :meth:`TunnelIdTracker.checked`."""

    tunnel_id: int
    token: int
    after_delete: bool


class TunnelIdTracker:
    """The set of tunnel IDs in use in one namespace, from a dump and the events after it.

    Starts in the syncing state: events are buffered until :meth:`end_sync`
    hands over the dump.
    """

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._buffer: list[tuple[bool, int, bool]] | None = []
        self._checks: dict[int, Check] = {}
        self._tokens = itertools.count(1)
        self.events = 0
        self.synced = False

    def __contains__(self, tunnel_id: object) -> bool:
        return tunnel_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def syncing(self) -> bool:
        return self._buffer is not None

    @property
    def pending_checks(self) -> int:
        return len(self._checks)

    def begin_sync(self) -> None:
        """Start a resync (events lost): buffer events until :meth:`end_sync`; void checks."""
        self._buffer = []
        self._checks.clear()

    def end_sync(self, dumped: Iterable[int]) -> list[Check]:
        """The dump (made after :meth:`begin_sync`): the set, then the buffered events replayed."""
        buffered = self._buffer or []
        self._buffer = None
        self._ids = set(dumped)
        self.synced = True
        checks = [self._apply(created, tid, ours) for created, tid, ours in buffered]
        return [c for c in checks if c is not None and self._checks.get(c.tunnel_id) is c]

    def event(self, created: bool, tunnel_id: int, *, ours: bool = False) -> Check | None:
        """A tunnel create (``created``) or delete event; returns the check to make, if any."""
        self.events += 1
        if self._buffer is not None:
            self._buffer.append((created, tunnel_id, ours))
            if created:
                self._ids.add(tunnel_id)  # conservative until the dump comes
            return None
        return self._apply(created, tunnel_id, ours)

    def _apply(self, created: bool, tunnel_id: int, ours: bool) -> Check | None:
        self._checks.pop(tunnel_id, None)  # an older check's answer is void now
        if created:
            self._ids.add(tunnel_id)
            if ours:
                return None
        elif tunnel_id not in self._ids:
            return None
        check = Check(tunnel_id, next(self._tokens), after_delete=not created)
        self._checks[tunnel_id] = check
        return check

    def added(self, tunnel_id: int) -> None:
        """We created this tunnel (the kernel acknowledged it)."""
        self._checks.pop(tunnel_id, None)
        self._ids.add(tunnel_id)

    def recheck(self, tunnel_id: int) -> Check | None:
        """Ask for a check of an ID (e.g. our managed tunnel's socket was closed)."""
        if tunnel_id not in self._ids or self._buffer is not None:
            return None
        return self._apply(False, tunnel_id, False)

    def checked(self, check: Check, exists: bool) -> bool:
        """The answer of a check's GET; True: still listed after a delete, ask again later."""
        if self._checks.get(check.tunnel_id) is not check:
            return False  # superseded by a newer event or a resync
        if not exists:
            self._ids.discard(check.tunnel_id)
            del self._checks[check.tunnel_id]
            return False
        if check.after_delete:
            return True
        del self._checks[check.tunnel_id]  # a create in our namespace: confirmed
        return False

    def give_up(self, check: Check) -> None:
        """Stop checking; the ID stays "in use" (the safe answer)."""
        if self._checks.get(check.tunnel_id) is check:
            del self._checks[check.tunnel_id]


def parse_event(message: bytes, family_id: int) -> tuple[bool, int, int] | None:
    """``(created, tunnel ID, requester's port ID)`` of a tunnel create/delete event, else None."""
    if len(message) < codec.GENL_ATTRS_OFFSET:
        return None
    _len, mtype, _flags, _seq, portid = struct.unpack_from("=IHHII", message)
    if mtype != family_id:
        return None
    cmd = codec.genl_cmd(message)
    if cmd not in (Command.TUNNEL_CREATE, Command.TUNNEL_DELETE):
        return None
    tunnel_id = codec.tunnel_id_of(message)
    if tunnel_id is None:
        return None
    return cmd == Command.TUNNEL_CREATE, tunnel_id, portid


class _SockFilter(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    )


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter)))


_BPF_LDB_ABS, _BPF_JEQ_K, _BPF_RET_K = 0x30, 0x15, 0x06
_TUNNEL_EVENTS_ONLY = (
    (_BPF_LDB_ABS, 0, 0, codec.GENL_ATTRS_OFFSET - 4),  # A = genlmsghdr.cmd (byte 16)
    (_BPF_JEQ_K, 2, 0, int(Command.TUNNEL_CREATE)),  # -> accept
    (_BPF_JEQ_K, 1, 0, int(Command.TUNNEL_DELETE)),  # -> accept
    (_BPF_RET_K, 0, 0, 0),  # drop
    (_BPF_RET_K, 0, 0, 0xFFFFFFFF),  # accept the whole message
)


def attach_tunnel_event_filter(sock: socket.socket) -> bool:
    """Let the kernel drop every message but tunnel create/delete events (classic BPF).

    A busy namespace announces every session too; without the filter each
    would wake the event loop for nothing. False if the kernel refused it
    (the events are filtered again in :func:`parse_event` anyway).
    """
    program = (_SockFilter * len(_TUNNEL_EVENTS_ONLY))(
        *(_SockFilter(code, jt, jf, k) for code, jt, jf, k in _TUNNEL_EVENTS_ONLY)
    )
    fprog = _SockFprog(len(_TUNNEL_EVENTS_ONLY), program)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))
    except OSError:
        return False
    return True


def open_event_socket(netns: str | None, group: int) -> socket.socket:
    """A non-blocking generic netlink socket in ``netns`` subscribed to ``group``.

    Only listens: the kernel's announcements carry the port ID and sequence
    number of the request that caused them, so on a socket that also sends
    requests they would be taken for replies.
    """
    sock = genl_socket(netns)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _EVENT_RCVBUF)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _EVENT_RCVBUF)
        attach_tunnel_event_filter(sock)
        sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
