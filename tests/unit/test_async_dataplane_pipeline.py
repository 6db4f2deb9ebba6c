"""Pipelined netlink without a kernel: a datagram socketpair whose far end plays the kernel.

Covers :class:`l2tp.kernel.pipeline.Pipeline` through both channels: batching
into one ``send()``, sequence matching with replies out of order, multipart
dumps interleaved with later ACKs, one dump at a time, errors to the right
caller, cancellation before and after sending, the in-flight window, close,
and a receive-buffer overrun. Every async test runs with the ``send()`` on the
event loop and in the sender thread; "auto" (the loop, slow requests in the
thread) is checked for order.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from l2tp.kernel import codec, netlink
from l2tp.kernel.channel import AsyncChannel, Sending, SyncChannel
from l2tp.kernel.constants import Attr, Command
from l2tp.kernel.errors import (
    DataPlaneClosed,
    IdInUse,
    KernelError,
    LinkNotFound,
    SessionNotFound,
    TunnelNotFound,
)
from l2tp.kernel.model import KernelSessionSpec, KernelTunnelSpec
from l2tp.kernel.pipeline import Pipeline, Request
from l2tp.kernel.rtnl import RTM_NEWLINK, AsyncRtnl

FAMILY = 30
Message = tuple[int, int, int, bytes]


# --- messages the fake kernel sends -------------------------------------------------


def ack(seq: int, err: int = 0, text: str = "") -> bytes:
    tlvs = codec.nla(codec.NLMSGERR_ATTR_MSG, text.encode() + b"\0") if text else b""
    flags = codec.NLM_F_CAPPED | (codec.NLM_F_ACK_TLVS if text else 0)
    body = struct.pack("=i", -err) + struct.pack("=IHHII", 36, FAMILY, 5, seq, 0) + tlvs
    return codec.nlmsg(codec.NLMSG_ERROR, flags, seq, body)


def reply(seq: int, cmd: Command, attrs: codec.AttrList, *, multi: bool = False) -> bytes:
    flags = codec.NLM_F_MULTI if multi else 0
    return codec.nlmsg(FAMILY, flags, seq, codec.genl_body(cmd, attrs))


def done(seq: int, code: int = 0) -> bytes:
    return codec.nlmsg(codec.NLMSG_DONE, codec.NLM_F_MULTI, seq, struct.pack("=i", code))


def tunnel_attrs(tunnel_id: int) -> codec.AttrList:
    return [(Attr.CONN_ID, tunnel_id), (Attr.PEER_CONN_ID, 1), (Attr.PROTO_VERSION, 3)]


def delete_session(tid: int, sid: int) -> Request:
    return netlink._session_cmd(Command.SESSION_DELETE, tid, sid, "delete")


def delete_tunnel(tid: int) -> Request:
    return netlink._tunnel_cmd(Command.TUNNEL_DELETE, tid, "delete")


def dump_tunnels() -> Request:
    return netlink._dump(Command.TUNNEL_GET, "tunnels")


class FakeKernel:
    """The far end of a datagram socketpair: reads request datagrams, writes replies."""

    def __init__(self) -> None:
        self.ours, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.theirs.setblocking(False)

    async def receive(self, timeout: float = 5.0) -> list[Message]:
        """The messages of the next datagram (one ``send()`` of the channel)."""
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.theirs, 1 << 16), timeout)
        return list(codec.iter_messages(data))

    async def quiet(self, wait: float = 0.05) -> bool:
        """True if nothing more is sent within ``wait`` seconds."""
        try:
            await self.receive(timeout=wait)
        except TimeoutError:
            return True
        return False

    def send(self, *messages: bytes) -> None:
        self.theirs.send(b"".join(messages))

    def close(self) -> None:
        self.theirs.close()
        self.ours.close()


@pytest.fixture(params=["loop", "thread"])
def sending(request: pytest.FixtureRequest) -> Sending:
    mode: Sending = request.param
    return mode


@pytest.fixture
def kernel() -> Iterator[FakeKernel]:
    fake = FakeKernel()
    yield fake
    fake.close()


def run(
    kernel: FakeKernel,
    sending: Sending,
    scenario: Callable[[AsyncChannel], Awaitable[None]],
    **options: Any,
) -> AsyncChannel:
    """Run ``scenario`` with a channel on ``kernel``'s socket; close it afterwards.

    These scenarios are about pipelining (several requests per ``send()``): they use
    a batch of 8 unless told, not the default, which is small for the loop's sake."""
    options.setdefault("max_batch", 8)
    channel = AsyncChannel(kernel.ours, FAMILY, sending=sending, **options)

    async def main() -> None:
        try:
            await asyncio.wait_for(scenario(channel), 20)
        finally:
            await channel.aclose()

    asyncio.run(main())
    return channel


# --- sans-IO pipeline -----------------------------------------------------------------


def test_pipeline_numbers_in_submission_order_and_skips_zero_on_wrap() -> None:
    pipe = Pipeline(FAMILY, window=8, first_seq=0xFFFFFFFE)
    reqs = [delete_tunnel(t) for t in (1, 2, 3)]
    for r in reqs:
        pipe.submit(r)
    data, sent = pipe.outgoing()
    assert sent == reqs
    assert [r.seq for r in reqs] == [0xFFFFFFFE, 0xFFFFFFFF, 1]
    assert [(m[0], m[2]) for m in codec.iter_messages(data)] == [
        (FAMILY, 0xFFFFFFFE),
        (FAMILY, 0xFFFFFFFF),
        (FAMILY, 1),
    ]
    with pytest.raises(ValueError, match="already submitted"):
        pipe.submit(reqs[0])


def test_pipeline_done_with_negative_code_is_a_dump_error() -> None:
    pipe = Pipeline(FAMILY)
    req = dump_tunnels()
    pipe.submit(req)
    pipe.outgoing()
    finished = pipe.feed(reply(req.seq, Command.TUNNEL_GET, tunnel_attrs(5), multi=True))
    assert finished == [] and len(req.replies) == 1
    assert pipe.feed(done(req.seq, -errno.EINTR)) == [req]
    assert req.error is not None and req.error.errno == errno.EINTR


def test_pipeline_fail_in_flight_leaves_queue_and_drops_late_replies() -> None:
    pipe = Pipeline(FAMILY, window=1)
    first, second = delete_tunnel(1), delete_tunnel(2)
    pipe.submit(first)
    pipe.submit(second)
    pipe.outgoing()
    lost = pipe.fail_in_flight(lambda r: KernelError(errno.ENOBUFS, r.what))
    assert lost == [first] and first.error is not None and first.error.errno == errno.ENOBUFS
    assert pipe.feed(ack(first.seq)) == [] and pipe.stale == 1
    _data, sent = pipe.outgoing()
    assert sent == [second]


# --- async channel --------------------------------------------------------------------


def test_requests_of_one_iteration_leave_in_one_send(kernel: FakeKernel, sending: Sending) -> None:
    async def scenario(channel: AsyncChannel) -> None:
        reqs = [delete_session(1, s) for s in (10, 11, 12)]
        futures = [channel.submit(r) for r in reqs]
        messages = await kernel.receive()
        seqs = [seq for _t, _f, seq, _m in messages]
        assert [m[0] for m in messages] == [FAMILY] * 3
        assert len(set(seqs)) == 3 and seqs == [r.seq for r in reqs]
        for _t, flags, _s, _m in messages:
            assert flags == codec.NLM_F_REQUEST | codec.NLM_F_ACK
        kernel.send(*(ack(seq) for seq in seqs))
        assert [await f for f in futures] == reqs
        assert channel.sends == 1 and (channel._sender is not None) == (sending == "thread")

    run(kernel, sending, scenario)


def test_out_of_order_replies_reach_their_own_callers(kernel: FakeKernel, sending: Sending) -> None:
    async def scenario(channel: AsyncChannel) -> None:
        create = netlink._create_tunnel(
            KernelTunnelSpec(tunnel_id=7, peer_tunnel_id=8, fd=3, version=3)
        )
        gone = delete_session(7, 99)
        fine = delete_tunnel(9)
        tasks = [asyncio.ensure_future(channel.call(r)) for r in (create, gone, fine)]
        messages = await kernel.receive()
        s_create, s_gone, s_fine = (m[2] for m in messages)
        # Replies in reverse order, split over two datagrams.
        kernel.send(ack(s_fine), ack(s_gone, errno.ENODEV, "no such session"))
        assert await tasks[2] is fine
        kernel.send(ack(s_create, errno.EEXIST))
        with pytest.raises(IdInUse, match="create tunnel 7: ID already in use"):
            await tasks[0]
        with pytest.raises(SessionNotFound) as missing:
            await tasks[1]
        assert "no such session" in str(missing.value) and missing.value.errno == errno.ENODEV
        assert channel.pipeline.in_flight == 0 and channel.pipeline.stale == 0

    run(kernel, sending, scenario)


def test_get_reply_is_kept_until_its_ack(kernel: FakeKernel, sending: Sending) -> None:
    async def scenario(channel: AsyncChannel) -> None:
        get = netlink._session_cmd(Command.SESSION_GET, 4, 40, "get")
        task = asyncio.ensure_future(channel.call(get))
        ((_t, _f, seq, _m),) = await kernel.receive()
        attrs: codec.AttrList = [
            (Attr.CONN_ID, 4),
            (Attr.SESSION_ID, 40),
            (Attr.IFNAME, "l2tpeth7"),
        ]
        kernel.send(reply(seq, Command.SESSION_GET, attrs))
        await asyncio.sleep(0.02)
        assert not task.done()  # the ACK finishes a GET, not its reply
        kernel.send(ack(seq))
        finished = await task
        assert codec.ifname_of(finished.replies[0]) == "l2tpeth7"

    run(kernel, sending, scenario)


def test_multipart_dump_interleaved_with_later_acks(kernel: FakeKernel, sending: Sending) -> None:
    async def scenario(channel: AsyncChannel) -> None:
        dump = dump_tunnels()
        later = delete_tunnel(3)
        dump_task = asyncio.ensure_future(channel.call(dump))
        later_task = asyncio.ensure_future(channel.call(later))
        messages = await kernel.receive()
        assert [m[2] for m in messages] == [dump.seq, later.seq]
        assert messages[0][1] == codec.NLM_F_REQUEST | codec.NLM_F_DUMP
        kernel.send(
            *(reply(dump.seq, Command.TUNNEL_GET, tunnel_attrs(t), multi=True) for t in (1, 2))
        )
        kernel.send(ack(later.seq))  # the kernel ran the later request while the dump waits
        assert await later_task is later
        assert not dump_task.done()
        kernel.send(
            reply(dump.seq, Command.TUNNEL_GET, tunnel_attrs(5), multi=True), done(dump.seq)
        )
        result = await dump_task
        assert [t.tunnel_id for t in netlink._tunnels(result)] == [1, 2, 5]

    run(kernel, sending, scenario)


def test_one_dump_at_a_time_without_reordering(kernel: FakeKernel, sending: Sending) -> None:
    async def scenario(channel: AsyncChannel) -> None:
        first, after_first, second, after_second = (
            dump_tunnels(),
            delete_tunnel(1),
            dump_tunnels(),
            delete_tunnel(2),
        )
        futures = [channel.submit(r) for r in (first, after_first, second, after_second)]
        messages = await kernel.receive()
        assert [m[2] for m in messages] == [first.seq, after_first.seq]
        assert second.seq == 0 and after_second.seq == 0  # queued, in order, behind the dump
        kernel.send(ack(after_first.seq))
        assert await kernel.quiet()
        kernel.send(done(first.seq))
        messages = await kernel.receive()
        assert [m[2] for m in messages] == [second.seq, after_second.seq]
        kernel.send(done(second.seq), ack(after_second.seq))
        for future in futures:
            await future

    run(kernel, sending, scenario)


def test_cancelled_after_send_reply_is_consumed(kernel: FakeKernel, sending: Sending) -> None:
    async def scenario(channel: AsyncChannel) -> None:
        abandoned = delete_session(1, 1)
        task = asyncio.ensure_future(channel.call(abandoned))
        ((_t, _f, seq_abandoned, _m),) = await kernel.receive()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert channel.pipeline.in_flight == 1  # still the kernel's: its reply will come
        follow = delete_session(1, 2)
        follow_task = asyncio.ensure_future(channel.call(follow))
        ((_t, _f, seq_follow, _m),) = await kernel.receive()
        assert seq_follow != seq_abandoned
        # The cancelled request's (failed) reply arrives first: dropped, not given to the next.
        kernel.send(ack(seq_abandoned, errno.ENODEV), ack(seq_follow))
        assert await follow_task is follow
        assert channel.pipeline.in_flight == 0 and channel.pipeline.stale == 0

    run(kernel, sending, scenario)


def test_cancelled_before_send_is_never_sent(kernel: FakeKernel, sending: Sending) -> None:
    async def scenario(channel: AsyncChannel) -> None:
        blocker = delete_tunnel(1)
        first = asyncio.ensure_future(channel.call(blocker))
        await kernel.receive()
        withdrawn = delete_tunnel(2)
        task = asyncio.ensure_future(channel.call(withdrawn))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert withdrawn.withdrawn and withdrawn.seq == 0
        kernel.send(ack(blocker.seq))
        await first
        assert await kernel.quiet()

    # window=1: the second request waits in the queue, so it can be withdrawn.
    run(kernel, sending, scenario, window=1)


def test_window_bounds_requests_in_flight(kernel: FakeKernel, sending: Sending) -> None:
    async def scenario(channel: AsyncChannel) -> None:
        reqs = [delete_session(1, s) for s in range(1, 11)]
        futures = [channel.submit(r) for r in reqs]
        first = await kernel.receive()
        assert [m[2] for m in first] == [r.seq for r in reqs[:4]]
        assert channel.pipeline.in_flight == 4 and channel.pipeline.queued == 6
        assert await kernel.quiet()
        kernel.send(ack(reqs[1].seq), ack(reqs[3].seq))  # two slots free, out of order
        second = await kernel.receive()
        assert [m[2] for m in second] == [r.seq for r in reqs[4:6]]
        assert channel.pipeline.in_flight == 4
        pending = {r.seq for r in reqs[:6]} - {reqs[1].seq, reqs[3].seq}
        sent = 6
        while pending:
            kernel.send(*(ack(seq) for seq in sorted(pending)))
            pending = set()
            if sent < len(reqs):
                batch = await kernel.receive()
                assert len(batch) <= 4
                sent += len(batch)
                pending = {m[2] for m in batch}
        for future in futures:
            await future

    run(kernel, sending, scenario, window=4)


def test_close_fails_pending_and_is_idempotent(kernel: FakeKernel, sending: Sending) -> None:
    async def scenario(channel: AsyncChannel) -> None:
        sent = asyncio.ensure_future(channel.call(delete_tunnel(1)))
        queued = asyncio.ensure_future(channel.call(delete_tunnel(2)))
        await kernel.receive()
        channel.close()
        channel.close()
        for task in (sent, queued):
            with pytest.raises(DataPlaneClosed, match="socket was closed"):
                await task
        with pytest.raises(DataPlaneClosed):
            channel.submit(delete_tunnel(3))
        await channel.aclose()
        assert channel.sock.fileno() == -1

    run(kernel, sending, scenario, window=1)


class _OverrunSocket(socket.socket):
    """Raises ENOBUFS once on recv, as a netlink socket whose buffer overflowed."""

    overrun = False

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self.overrun:
            self.overrun = False
            raise OSError(errno.ENOBUFS, "No buffer space available")
        return super().recv(bufsize, flags)


def test_receive_overrun_fails_in_flight_then_channel_works(
    kernel: FakeKernel, sending: Sending
) -> None:
    sock = _OverrunSocket(socket.AF_UNIX, socket.SOCK_DGRAM, fileno=kernel.ours.detach())
    kernel.ours = sock

    async def scenario(channel: AsyncChannel) -> None:
        lost = asyncio.ensure_future(channel.call(delete_tunnel(1)))
        ((_t, _f, seq, _m),) = await kernel.receive()
        sock.overrun = True
        kernel.send(ack(seq))  # wakes the reader, which gets ENOBUFS first
        with pytest.raises(KernelError, match="may or may not have been carried out") as exc:
            await lost
        assert exc.value.errno == errno.ENOBUFS
        after = asyncio.ensure_future(channel.call(delete_tunnel(2)))
        ((_t, _f, seq2, _m),) = await kernel.receive()
        kernel.send(ack(seq2))
        await after
        assert channel.pipeline.stale == 1  # the lost request's late ACK, dropped

    run(kernel, sending, scenario)


def test_call_many_raises_first_failure_after_all_finished(
    kernel: FakeKernel, sending: Sending
) -> None:
    async def scenario(channel: AsyncChannel) -> None:
        reqs = [delete_session(2, s) for s in (1, 2, 3)]
        task = asyncio.ensure_future(channel.call_many(reqs))
        messages = await kernel.receive()
        kernel.send(
            ack(messages[2][2], errno.ENODEV), ack(messages[1][2], errno.EPERM), ack(messages[0][2])
        )
        with pytest.raises(KernelError, match="CAP_NET_ADMIN"):
            await task
        assert all(r.done for r in reqs) and isinstance(reqs[2].error, SessionNotFound)

    run(kernel, sending, scenario)


# --- clients on the channel -----------------------------------------------------------


def run_client(
    kernel: FakeKernel,
    sending: Sending,
    scenario: Callable[[netlink.AsyncL2tpNetlink, FakeKernel], Awaitable[None]],
) -> None:
    """Run ``scenario`` with an ``AsyncL2tpNetlink`` on ``kernel`` whose rtnetlink client
    talks to a second fake kernel (handed to the scenario too)."""
    rtnl_kernel = FakeKernel()

    async def with_client(channel: AsyncChannel) -> None:
        rtnl = AsyncRtnl(channel=AsyncChannel(rtnl_kernel.ours, sending=sending))
        try:
            await scenario(netlink.AsyncL2tpNetlink(_channel=channel, rtnl=rtnl), rtnl_kernel)
        finally:
            await rtnl.aclose()

    try:
        run(kernel, sending, with_client)
    finally:
        rtnl_kernel.close()


def answer_with_ifname(kernel: FakeKernel, first: Message, get: Message, ifname: str) -> None:
    """ACK ``first`` and answer the session GET sent with it: the session has ``ifname``."""
    attrs: codec.AttrList = [(Attr.CONN_ID, 3), (Attr.SESSION_ID, 30), (Attr.IFNAME, ifname)]
    kernel.send(ack(first[2]), reply(get[2], Command.SESSION_GET, attrs), ack(get[2]))


async def expect_mtu(rtnl_kernel: FakeKernel, ifname: str, mtu: int) -> None:
    """The rtnetlink request that sets ``ifname``'s MTU to ``mtu``; ACK it."""
    ((mtype, _f, seq, message),) = await rtnl_kernel.receive()
    assert mtype == RTM_NEWLINK and ifname.encode() + b"\0" in message
    assert message.endswith(struct.pack("=HHI", 8, 4, mtu))  # IFLA_MTU
    rtnl_kernel.send(ack(seq))


def test_session_with_mtu_and_no_ifname_is_create_plus_get_in_one_send(
    kernel: FakeKernel, sending: Sending
) -> None:
    async def scenario(client: netlink.AsyncL2tpNetlink, rtnl_kernel: FakeKernel) -> None:
        spec = KernelSessionSpec(tunnel_id=3, session_id=30, peer_session_id=31, mtu=1400)
        task = asyncio.ensure_future(client.create_session(spec))
        create, get = await kernel.receive()
        assert codec.genl_cmd(create[3]) == Command.SESSION_CREATE
        assert codec.genl_cmd(get[3]) == Command.SESSION_GET
        answer_with_ifname(kernel, create, get, "l2e5")
        await expect_mtu(rtnl_kernel, "l2e5", 1400)
        assert await task == "l2e5"

    run_client(kernel, sending, scenario)


def test_modify_session_with_mtu_is_modify_plus_get_in_one_send(
    kernel: FakeKernel, sending: Sending
) -> None:
    async def scenario(client: netlink.AsyncL2tpNetlink, rtnl_kernel: FakeKernel) -> None:
        with pytest.raises(TypeError, match="unexpected keyword argument 'sendseq'"):
            await client.modify_session(3, 30, sendseq=True)  # type: ignore[call-arg]
        task = asyncio.ensure_future(
            client.modify_session(3, 30, send_seq=True, debug=2, lns_mode=None, mtu=1300)
        )
        modify, get = await kernel.receive()  # the misspelt call sent nothing
        given: codec.AttrList = [
            (Attr.CONN_ID, 3),
            (Attr.SESSION_ID, 30),
            (Attr.SEND_SEQ, 1),
            (Attr.DEBUG, 2),
        ]  # lns_mode=None is left out; mtu is no L2TP attribute
        assert modify[3][16:] == codec.genl_body(Command.SESSION_MODIFY, given)
        assert codec.genl_cmd(get[3]) == Command.SESSION_GET
        answer_with_ifname(kernel, modify, get, "l2e6")
        await expect_mtu(rtnl_kernel, "l2e6", 1300)
        await task
        task = asyncio.ensure_future(client.modify_session(3, 30, recv_seq=False))
        ((_t, _f, seq, message),) = await kernel.receive()  # no MTU: the MODIFY alone
        given = [(Attr.CONN_ID, 3), (Attr.SESSION_ID, 30), (Attr.RECV_SEQ, 0)]
        assert message[16:] == codec.genl_body(Command.SESSION_MODIFY, given)
        kernel.send(ack(seq))
        await task

    run_client(kernel, sending, scenario)


def test_rtnl_missing_interface_is_link_not_found(kernel: FakeKernel, sending: Sending) -> None:
    async def scenario(channel: AsyncChannel) -> None:
        rtnl = AsyncRtnl(channel=channel)
        task = asyncio.ensure_future(rtnl.set_up("pw9", True))
        ((_t, _f, seq, _m),) = await kernel.receive()
        kernel.send(ack(seq, errno.ENODEV))
        with pytest.raises(LinkNotFound, match="set pw9 up: no network interface pw9"):
            await task

    run(kernel, sending, scenario)


def test_sync_channel_waits_for_every_reply_of_a_batch(kernel: FakeKernel) -> None:
    kernel.theirs.setblocking(True)
    seen: list[list[int]] = []

    def play() -> None:
        for _ in range(2):
            messages = list(codec.iter_messages(kernel.theirs.recv(1 << 16)))
            seen.append([m[2] for m in messages])
            seqs = [m[2] for m in messages]
            kernel.send(*(ack(s, errno.ENODEV if s == seqs[0] else 0) for s in reversed(seqs)))

    thread = threading.Thread(target=play)
    thread.start()
    channel = SyncChannel(kernel.ours, FAMILY, window=3)
    reqs = [delete_tunnel(t) for t in range(1, 6)]
    with pytest.raises(TunnelNotFound, match="delete tunnel 1"):
        channel.run(reqs)
    thread.join(5)
    assert seen == [[r.seq for r in reqs[:3]], [r.seq for r in reqs[3:]]]
    assert isinstance(reqs[3].error, TunnelNotFound) and reqs[4].error is None


class _SlowSocket(socket.socket):
    """send() from the sender thread takes 0.2 s, as a device delete does in the kernel."""

    threads: list[str] = []

    def send(self, data: Any, flags: int = 0) -> int:
        self.threads.append(threading.current_thread().name)
        if threading.current_thread() is not threading.main_thread():
            time.sleep(0.2)
        return super().send(data, flags)


def test_auto_sends_slow_requests_from_the_thread_in_order(kernel: FakeKernel) -> None:
    sock = _SlowSocket(socket.AF_UNIX, socket.SOCK_DGRAM, fileno=kernel.ours.detach())
    kernel.ours = sock

    async def scenario(channel: AsyncChannel) -> None:
        fast = delete_tunnel(1)
        first = channel.submit(fast)
        (message,) = await kernel.receive()
        assert sock.threads == [threading.current_thread().name]  # on the loop
        slow = netlink._delete_session(1, 2)
        assert slow.slow
        futures = [channel.submit(slow)]
        await asyncio.sleep(0)  # let the slow one leave (to the thread) before the next
        after = delete_tunnel(3)
        futures.append(channel.submit(after))
        # The later fast request must not overtake the slow one held in send(): it goes
        # to the thread too (the thread may join both in one send()).
        arrived = await kernel.receive()
        if len(arrived) == 1:
            arrived += await kernel.receive()
        assert [m[2] for m in arrived] == [slow.seq, after.seq]
        assert set(sock.threads[1:]) == {"netlink-send"}
        kernel.send(ack(message[2]), ack(slow.seq), ack(after.seq))
        await first
        for future in futures:
            await future
        # Once the thread is idle, fast requests go back to the loop.
        last = asyncio.ensure_future(channel.call(delete_tunnel(4)))
        (m_last,) = await kernel.receive()
        kernel.send(ack(m_last[2]))
        await last
        assert sock.threads[-1] == threading.current_thread().name

    run(kernel, "auto", scenario)
