"""Tunnel-ID learning without a kernel: the sans-IO tracker, event parsing, the BPF filter,
and :class:`AsyncLinuxDataPlane` driven over fake sockets (start's dump, event-driven
checks, cancellation that undoes a create, a failed MTU that removes its session)."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Awaitable, Callable, Iterator

import pytest

from l2tp.kernel import codec, netlink
from l2tp.kernel.async_dataplane import AsyncLinuxDataPlane
from l2tp.kernel.channel import AsyncChannel
from l2tp.kernel.constants import Attr, Command
from l2tp.kernel.errors import DataPlaneClosed, KernelError, LinkNotFound
from l2tp.kernel.model import KernelSessionSpec, KernelTunnelSpec
from l2tp.kernel.rtnl import RTM_NEWLINK, AsyncRtnl
from l2tp.kernel.tunnel_ids import (
    TunnelIdTracker,
    attach_tunnel_event_filter,
    parse_event,
)
from tests.unit.test_async_dataplane_pipeline import (
    FAMILY,
    FakeKernel,
    ack,
    done,
    reply,
    tunnel_attrs,
)

OUR_PORT = 4242


def event(cmd: Command, tunnel_id: int, portid: int = 777, seq: int = 5) -> bytes:
    body = codec.genl_body(cmd, tunnel_attrs(tunnel_id))
    message = bytearray(codec.nlmsg(FAMILY, codec.NLM_F_ACK, seq, body))
    message[12:16] = portid.to_bytes(4, "little")
    return bytes(message)


# --- the tracker --------------------------------------------------------------------


def test_events_during_the_dump_are_replayed_over_it() -> None:
    ids = TunnelIdTracker()
    assert ids.syncing
    assert ids.event(True, 5) is None  # buffered, but already counted as in use
    assert 5 in ids
    assert ids.event(False, 9) is None
    assert ids.event(True, 11) is None
    checks = ids.end_sync([9, 10])  # the dump saw 9 (deleted after) and 10, not 11
    assert not ids.syncing and ids.synced
    assert all(t in ids for t in (5, 9, 10, 11))
    # The delete of 9 and the creates by others (5, 11) are checked; 10 needs nothing.
    assert sorted((c.tunnel_id, c.after_delete) for c in checks) == [
        (5, False),
        (9, True),
        (11, False),
    ]


def test_create_event_check_removes_an_id_of_another_namespace() -> None:
    ids = TunnelIdTracker()
    ids.end_sync([])
    check = ids.event(True, 40)
    assert check is not None and 40 in ids
    assert ids.checked(check, exists=False) is False
    assert 40 not in ids and ids.pending_checks == 0


def test_our_own_create_event_needs_no_check() -> None:
    ids = TunnelIdTracker()
    ids.end_sync([])
    assert ids.event(True, 41, ours=True) is None
    assert 41 in ids


def test_delete_event_keeps_the_id_until_a_check_finds_it_gone() -> None:
    ids = TunnelIdTracker()
    ids.end_sync([7])
    check = ids.event(False, 7)
    assert check is not None and check.after_delete and 7 in ids
    assert ids.checked(check, exists=True) is True  # still listed: ask again later
    assert 7 in ids
    assert ids.checked(check, exists=False) is False
    assert 7 not in ids


def test_newer_event_voids_an_older_check() -> None:
    ids = TunnelIdTracker()
    ids.end_sync([7])
    stale = ids.event(False, 7)
    assert stale is not None
    assert ids.event(True, 7, ours=True) is None  # re-created meanwhile
    assert ids.checked(stale, exists=False) is False
    assert 7 in ids  # the stale "gone" answer did not remove the new tunnel


def test_give_up_leaves_the_id_in_use_and_unknown_delete_is_ignored() -> None:
    ids = TunnelIdTracker()
    ids.end_sync([8])
    check = ids.event(False, 8)
    assert check is not None
    ids.give_up(check)
    assert 8 in ids and ids.pending_checks == 0
    assert ids.event(False, 99) is None and 99 not in ids


def test_resync_voids_pending_checks() -> None:
    ids = TunnelIdTracker()
    ids.end_sync([3])
    check = ids.event(False, 3)
    assert check is not None
    ids.begin_sync()
    assert ids.checked(check, exists=False) is False
    assert 3 in ids
    assert ids.end_sync([]) == [] and 3 not in ids


# --- event parsing and the kernel-side filter ---------------------------------------


def test_parse_event_reads_tunnel_events_only() -> None:
    assert parse_event(event(Command.TUNNEL_CREATE, 12, portid=99), FAMILY) == (True, 12, 99)
    assert parse_event(event(Command.TUNNEL_DELETE, 13), FAMILY) == (False, 13, 777)
    assert parse_event(event(Command.TUNNEL_CREATE, 12), FAMILY + 1) is None
    session = codec.nlmsg(
        FAMILY, 0, 1, codec.genl_body(Command.SESSION_CREATE, [(Attr.CONN_ID, 12)])
    )
    assert parse_event(session, FAMILY) is None
    assert parse_event(event(Command.TUNNEL_MODIFY, 12), FAMILY) is None


def test_bpf_filter_passes_only_tunnel_create_and_delete() -> None:
    rx, tx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with rx, tx:
        assert attach_tunnel_event_filter(rx)
        rx.settimeout(2)
        for cmd, tid in (
            (Command.SESSION_CREATE, 1),
            (Command.TUNNEL_CREATE, 2),
            (Command.TUNNEL_MODIFY, 3),
            (Command.SESSION_DELETE, 4),
            (Command.TUNNEL_DELETE, 5),
        ):
            tx.send(event(cmd, tid))
        got = [parse_event(rx.recv(4096), FAMILY) for _ in range(2)]
        assert got == [(True, 2, 777), (False, 5, 777)]
        rx.setblocking(False)
        with pytest.raises(BlockingIOError):
            rx.recv(4096)


# --- AsyncLinuxDataPlane over fake sockets ------------------------------------------


class Rig:
    """A data plane whose generic netlink, rtnetlink and event sockets are socketpairs."""

    def __init__(self) -> None:
        self.genl, self.rtnl = FakeKernel(), FakeKernel()
        self.events_rx, self.events_tx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.events_rx.setblocking(False)
        self.dp = AsyncLinuxDataPlane()

    async def start(self, dumped: list[int]) -> None:
        rtnl = AsyncRtnl(channel=AsyncChannel(self.rtnl.ours, sending="loop"))
        nl = netlink.AsyncL2tpNetlink(
            _channel=AsyncChannel(self.genl.ours, FAMILY, sending="loop"), rtnl=rtnl
        )
        task = asyncio.ensure_future(self.dp._start_with(nl, rtnl, self.events_rx, OUR_PORT))
        ((_t, flags, seq, _m),) = await self.genl.receive()
        assert flags & codec.NLM_F_DUMP
        self.genl.send(
            *(reply(seq, Command.TUNNEL_GET, tunnel_attrs(t), multi=True) for t in dumped),
            done(seq),
        )
        await task

    async def answer_get(self, tunnel_id: int, exists: bool) -> None:
        ((_t, _f, seq, message),) = await self.genl.receive()
        assert codec.genl_cmd(message) == Command.TUNNEL_GET
        assert codec.tunnel_id_of(message) == tunnel_id
        if exists:
            self.genl.send(reply(seq, Command.TUNNEL_GET, tunnel_attrs(tunnel_id)), ack(seq))
        else:
            self.genl.send(ack(seq, errno.ENODEV))

    def close(self) -> None:
        self.genl.close()
        self.rtnl.close()
        self.events_tx.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.close()


def play(rig: Rig, scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        try:
            await asyncio.wait_for(scenario(), 20)
        finally:
            await rig.dp.close()

    asyncio.run(main())


def test_ids_learned_from_dump_and_events_without_a_request_per_lookup(rig: Rig) -> None:
    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="start"):
            rig.dp.tunnel_id_in_use(1)
        await rig.start([100, 101])
        sends = rig.dp.netlink.channel.sends
        assert rig.dp.tunnel_id_in_use(100) and not rig.dp.tunnel_id_in_use(102)
        for _ in range(1000):
            rig.dp.tunnel_id_in_use(102)
        assert rig.dp.netlink.channel.sends == sends  # lookups send nothing
        # Another process creates 102: in use at once, confirmed by one GET.
        rig.events_tx.send(event(Command.TUNNEL_CREATE, 102))
        await rig.answer_get(102, exists=True)
        assert rig.dp.tunnel_id_in_use(102)
        # A tunnel 103 created in another namespace: the check removes it.
        rig.events_tx.send(event(Command.TUNNEL_CREATE, 103))
        await asyncio.sleep(0.01)
        assert rig.dp.tunnel_id_in_use(103)
        await rig.answer_get(103, exists=False)
        await asyncio.sleep(0.01)
        assert not rig.dp.tunnel_id_in_use(103)
        # 100 deleted: still listed at the first check (work queue), gone at the second.
        rig.events_tx.send(event(Command.TUNNEL_DELETE, 100))
        await rig.answer_get(100, exists=True)
        assert rig.dp.tunnel_id_in_use(100)
        await rig.answer_get(100, exists=False)
        await asyncio.sleep(0.01)
        assert not rig.dp.tunnel_id_in_use(100)
        # Our own create event (our port ID) costs no GET.
        rig.events_tx.send(event(Command.TUNNEL_CREATE, 104, portid=OUR_PORT))
        await asyncio.sleep(0.01)
        assert rig.dp.tunnel_id_in_use(104)
        assert await rig.genl.quiet()

    play(rig, scenario)


def test_cancelled_create_tunnel_is_deleted_once_the_kernel_made_it(rig: Rig) -> None:
    spec = KernelTunnelSpec(tunnel_id=50, peer_tunnel_id=51, fd=3)

    async def scenario() -> None:
        await rig.start([])
        task = asyncio.ensure_future(rig.dp.create_tunnel(spec))
        ((_t, _f, seq, message),) = await rig.genl.receive()
        assert codec.genl_cmd(message) == Command.TUNNEL_CREATE
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        rig.genl.send(ack(seq))  # the kernel did create it
        ((_t, _f, seq2, message2),) = await rig.genl.receive()
        assert codec.genl_cmd(message2) == Command.TUNNEL_DELETE
        assert codec.tunnel_id_of(message2) == 50
        rig.genl.send(ack(seq2))
        await asyncio.sleep(0.01)

    play(rig, scenario)


def test_create_cancelled_in_the_iteration_its_ack_arrives_is_undone(rig: Rig) -> None:
    """The reply is matched before the cancelled task resumes: its outcome must still count."""
    spec = KernelTunnelSpec(tunnel_id=55, peer_tunnel_id=56, fd=3)

    async def scenario() -> None:
        await rig.start([])
        task = asyncio.ensure_future(rig.dp.create_tunnel(spec))
        ((_t, _f, seq, _m),) = await rig.genl.receive()
        rig.genl.send(ack(seq))
        pipeline = rig.dp.netlink.channel.pipeline
        while pipeline.in_flight:
            await asyncio.sleep(0)
        assert not task.done()  # the ACK is matched; the task has not resumed yet
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        ((_t, _f, seq2, message2),) = await rig.genl.receive()
        assert codec.genl_cmd(message2) == Command.TUNNEL_DELETE
        rig.genl.send(ack(seq2))

    play(rig, scenario)


def test_cancelled_create_that_failed_deletes_nothing(rig: Rig) -> None:
    """EEXIST means the ID is someone else's tunnel: the undo must not delete it."""
    spec = KernelTunnelSpec(tunnel_id=60, peer_tunnel_id=61, fd=3)

    async def scenario() -> None:
        await rig.start([])
        task = asyncio.ensure_future(rig.dp.create_tunnel(spec))
        ((_t, _f, seq, _m),) = await rig.genl.receive()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        rig.genl.send(ack(seq, errno.EEXIST))
        assert await rig.genl.quiet(0.1)
        assert not rig.dp.tunnel_id_in_use(60)

    play(rig, scenario)


def test_failed_mtu_removes_the_new_session(rig: Rig) -> None:
    spec = KernelSessionSpec(tunnel_id=5, session_id=6, peer_session_id=7, ifname="pw0", mtu=1500)

    async def scenario() -> None:
        await rig.start([5])
        task = asyncio.ensure_future(rig.dp.create_session(spec))
        ((_t, _f, seq, message),) = await rig.genl.receive()  # no GET: the name is known
        assert codec.genl_cmd(message) == Command.SESSION_CREATE
        rig.genl.send(ack(seq))
        ((mtype, _f, rseq, _m),) = await rig.rtnl.receive()
        assert mtype == RTM_NEWLINK
        rig.rtnl.send(ack(rseq, errno.ENODEV))
        with pytest.raises(LinkNotFound):
            await task
        ((_t, _f, seq3, message3),) = await rig.genl.receive()
        assert codec.genl_cmd(message3) == Command.SESSION_DELETE
        rig.genl.send(ack(seq3))
        await asyncio.sleep(0.01)

    play(rig, scenario)


def test_bridge_port_looks_up_bridge_and_session_concurrently(rig: Rig) -> None:
    async def scenario() -> None:
        await rig.start([5])
        task = asyncio.ensure_future(rig.dp.attach_to_bridge(5, 6, "br0"))
        ((_t, _f, gseq, gmessage),) = await rig.genl.receive()
        ((mtype, _f, lseq, lmessage),) = await rig.rtnl.receive()  # before the GET is answered
        assert codec.genl_cmd(gmessage) == Command.SESSION_GET and b"br0\0" in lmessage
        attrs: codec.AttrList = [(Attr.CONN_ID, 5), (Attr.SESSION_ID, 6), (Attr.IFNAME, "pw6")]
        rig.genl.send(reply(gseq, Command.SESSION_GET, attrs), ack(gseq))
        link = bytearray(codec.nlmsg(16, 0, lseq, bytes(16)))
        link[20:24] = (9).to_bytes(4, "little")  # ifinfomsg.ifi_index of br0
        rig.rtnl.send(bytes(link), ack(lseq))
        ((mtype, _f, mseq, mmessage),) = await rig.rtnl.receive()
        assert mtype == RTM_NEWLINK and b"pw6\0" in mmessage
        assert mmessage.endswith(
            (8).to_bytes(2, "little") + (10).to_bytes(2, "little") + (9).to_bytes(4, "little")
        )
        rig.rtnl.send(ack(mseq))
        await task
        # The interface name is remembered: bringing it down is one rtnetlink request.
        down = asyncio.ensure_future(rig.dp.set_session_up(5, 6, False))
        ((_t, _f, dseq, dmessage),) = await rig.rtnl.receive()
        assert b"pw6\0" in dmessage
        rig.rtnl.send(ack(dseq))
        await down
        assert await rig.genl.quiet()

    play(rig, scenario)


def test_close_drains_what_the_kernel_has_and_survives_cancellation(rig: Rig) -> None:
    async def scenario() -> None:
        await rig.start([])
        rig.dp.netlink.channel.pipeline.window = 1
        in_flight = asyncio.ensure_future(rig.dp.delete_tunnel(9))
        queued = asyncio.ensure_future(rig.dp.delete_tunnel(10))
        ((_t, _f, seq, _m),) = await rig.genl.receive()
        closing = asyncio.ensure_future(rig.dp.close())
        await asyncio.sleep(0)
        closing.cancel()  # the close goes on regardless
        with pytest.raises(DataPlaneClosed):
            await queued  # never sent: failed at once
        with pytest.raises(DataPlaneClosed, match="the data plane is closed"):
            await rig.dp.delete_tunnel(1)
        assert rig.genl.ours.fileno() != -1  # still waiting for the kernel's answer
        rig.genl.send(ack(seq))
        await in_flight  # answered, not failed
        await rig.dp.close()
        assert rig.genl.ours.fileno() == -1 and rig.rtnl.ours.fileno() == -1
        assert rig.events_rx.fileno() == -1

    play(rig, scenario)


def test_cancelled_create_is_undone_even_when_closing_right_after(rig: Rig) -> None:
    spec = KernelTunnelSpec(tunnel_id=70, peer_tunnel_id=71, fd=3)

    async def scenario() -> None:
        await rig.start([])
        task = asyncio.ensure_future(rig.dp.create_tunnel(spec))
        ((_t, _f, seq, _m),) = await rig.genl.receive()
        task.cancel()
        closing = asyncio.ensure_future(rig.dp.close())
        await asyncio.sleep(0.01)
        rig.genl.send(ack(seq))  # the kernel made it: close must wait for the undo
        ((_t, _f, seq2, message2),) = await rig.genl.receive()
        assert codec.genl_cmd(message2) == Command.TUNNEL_DELETE
        assert not closing.done()
        rig.genl.send(ack(seq2))
        await closing
        assert rig.genl.ours.fileno() == -1

    play(rig, scenario)


def test_established_sessions_are_created_in_one_batch_each_with_its_outcome(rig: Rig) -> None:
    """The runtime's bring-up worker hands over a burst of calls at once: their creates
    are all sent before any reply (pipelined, ``max_batch`` per ``send()``), and one
    failing (EEXIST) does not fail the others."""

    def spec(sid: int) -> KernelSessionSpec:
        return KernelSessionSpec(tunnel_id=5, session_id=sid, peer_session_id=sid + 100)

    async def scenario() -> None:
        await rig.start([5])
        # The first of its pseudowire type goes alone (the kernel may load a module).
        task = asyncio.ensure_future(rig.dp.create_sessions([spec(1)]))
        ((_t, _f, seq, message),) = await rig.genl.receive()
        assert codec.genl_cmd(message) == Command.SESSION_CREATE
        rig.genl.send(ack(seq))
        assert await task == [None]
        task = asyncio.ensure_future(rig.dp.create_sessions([spec(2), spec(3), spec(4)]))
        messages = await rig.genl.receive()
        while len(messages) < 3:  # no reply sent yet: the rest must come all the same
            messages += await rig.genl.receive()
        assert [codec.genl_cmd(m[3]) for m in messages] == [Command.SESSION_CREATE] * 3
        rig.genl.send(ack(messages[2][2]), ack(messages[1][2], errno.EEXIST), ack(messages[0][2]))
        outcomes = await task
        assert outcomes[0] is None and outcomes[2] is None
        assert isinstance(outcomes[1], KernelError) and outcomes[1].errno == errno.EEXIST

    play(rig, scenario)
