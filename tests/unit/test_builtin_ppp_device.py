"""The kernel glue's encodings (no root): ioctl numbers, rtnetlink address and rename
messages, IPv6 link-local addresses; and the address pool."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
from ipaddress import IPv4Address, IPv4Network, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2tp.kernel import ppp_device as dev
from l2tp.kernel import rtnl
from l2tp.kernel.codec import raw_attrs
from l2tp.kernel.netns import in_netns
from l2tp.kernel.pipeline import Request
from l2tp.kernel.rtnl import IFLA_IFNAME, RTM_NEWLINK
from l2tp.runtime.ppp_hooks import AddressPool

# What gcc prints for these macros with <sys/ioctl.h> and <linux/ppp-ioctl.h> (x86-64,
# linux-libc-dev 6.1): the numbers the module computes must be the header's.
FROM_THE_HEADER = {
    "PPPIOCGCHAN": 0x80047437,
    "PPPIOCATTCHAN": 0x40047438,
    "PPPIOCDISCONN": 0x7439,
    "PPPIOCCONNECT": 0x4004743A,
    "PPPIOCNEWUNIT": 0xC004743E,
    "PPPIOCSNPMODE": 0x4008744B,
    "PPPIOCGNPMODE": 0xC008744C,
    "PPPIOCSMRU": 0x40047452,
    "PPPIOCGUNIT": 0x80047456,
    "PPPIOCGIDLE64": 0x8010743F,
}


@pytest.mark.parametrize(("name", "value"), sorted(FROM_THE_HEADER.items()))
def test_ioctl_numbers_match_linux_ppp_ioctl_h(name: str, value: int) -> None:
    assert getattr(dev, name) == value


def test_np_modes_match_ppp_defs_h() -> None:
    assert [m.value for m in dev.NpMode] == [0, 1, 2, 3]  # PASS, DROP, ERROR, QUEUE


def _header(request: Request) -> tuple[int, int, int, int, int]:
    family, prefixlen, flags, scope, index = struct.unpack_from("=BBBBI", request.body)
    return family, prefixlen, flags, scope, index


def test_ipv4_point_to_point_address() -> None:
    request = dev.add_address_req(7, IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), 32)
    assert request.mtype == dev.RTM_NEWADDR and request.link == 7 and not request.slow
    assert _header(request) == (socket.AF_INET, 32, 0, dev.RT_SCOPE_UNIVERSE, 7)
    attrs = raw_attrs(request.body, 8)
    assert attrs[dev.IFA_LOCAL] == IPv4Address("10.0.0.1").packed
    assert attrs[dev.IFA_ADDRESS] == IPv4Address("10.0.0.2").packed
    assert dev.IFA_FLAGS not in attrs
    delete = dev.delete_address_req(7, IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), 32)
    assert delete.mtype == dev.RTM_DELADDR and delete.body == request.body


def test_ipv6_link_local_address_has_no_dad() -> None:
    local = dev.ipv6_link_local(bytes.fromhex("0102030405060708"))
    peer = dev.ipv6_link_local(bytes.fromhex("1112131415161718"))
    assert local == IPv6Address("fe80::102:304:506:708")
    request = dev.add_address_req(9, local, peer, 128)
    assert _header(request) == (socket.AF_INET6, 128, dev.IFA_F_NODAD, dev.RT_SCOPE_LINK, 9)
    attrs = raw_attrs(request.body, 8)
    assert attrs[dev.IFA_LOCAL] == local.packed and attrs[dev.IFA_ADDRESS] == peer.packed
    assert struct.unpack("=I", attrs[dev.IFA_FLAGS]) == (dev.IFA_F_NODAD,)
    with pytest.raises(ValueError):
        dev.ipv6_link_local(b"\x01")


def test_address_message_matches_pyroute2() -> None:
    """The same bytes as pyroute2's ifaddrmsg encoder (the project's netlink reference)."""
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET
    msg["prefixlen"] = 32
    msg["index"] = 7
    msg["attrs"] = [("IFA_LOCAL", "10.0.0.1"), ("IFA_ADDRESS", "10.0.0.2")]
    msg.encode()
    theirs = bytes(msg.data[16 : msg["header"]["length"]])
    ours = dev.address_body(7, IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), 32)
    assert ours == theirs


def test_route_through_the_peer_is_a_link_scope_route_created_exclusively() -> None:
    request = rtnl.add_route_req(7, IPv4Network("10.79.1.0/24"), None, 7)
    assert request.mtype == rtnl.RTM_NEWROUTE and request.link == 7 and not request.slow
    # RTM_NEWROUTE without NLM_F_CREATE is refused by the kernel (ENOENT); EXCL: an equal
    # route someone else made is not replaced.
    assert request.flags == rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
    flags = struct.unpack_from("=H", request.encode(0, 1), 6)[0]
    assert flags & (rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL) == request.flags
    family, dst_len, _, _, table, proto, scope, kind, rflags = struct.unpack_from(
        "=BBBBBBBBI", request.body
    )
    assert (family, dst_len, table) == (socket.AF_INET, 24, rtnl.RT_TABLE_MAIN)
    assert (proto, scope, kind, rflags) == (rtnl.RTPROT_STATIC, 253, rtnl.RTN_UNICAST, 0)
    attrs = raw_attrs(request.body, 12)
    assert attrs[rtnl.RTA_DST] == IPv4Address("10.79.1.0").packed
    assert struct.unpack("=I", attrs[rtnl.RTA_OIF]) == (7,)
    assert struct.unpack("=I", attrs[rtnl.RTA_PRIORITY]) == (7,)
    assert rtnl.RTA_GATEWAY not in attrs
    delete = rtnl.delete_route_req(7, IPv4Network("10.79.1.0/24"), None, 7)
    assert delete.mtype == rtnl.RTM_DELROUTE and delete.body == request.body and not delete.flags


def test_route_message_matches_pyroute2() -> None:
    """A route with a gateway: universe scope, onlink, the same bytes as pyroute2's rtmsg."""
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    msg = rtmsg()
    msg["family"] = socket.AF_INET
    msg["dst_len"] = 16
    msg["table"] = 254
    msg["proto"] = 4
    msg["scope"] = 0
    msg["type"] = 1
    msg["flags"] = 4
    msg["attrs"] = [
        ("RTA_DST", "10.8.0.0"),
        ("RTA_OIF", 9),
        ("RTA_GATEWAY", "10.0.0.9"),
    ]
    msg.encode()
    theirs = bytes(msg.data[16 : msg["header"]["length"]])
    ours = rtnl.route_body(9, IPv4Network("10.8.0.0/16"), IPv4Address("10.0.0.9"), None)
    assert ours == theirs


def test_rename_is_a_slow_newlink_by_index_and_the_name_is_read_back() -> None:
    request = dev.rename_req(12, "l2tp%d")
    assert request.mtype == RTM_NEWLINK and request.slow
    (index,) = struct.unpack_from("=i", request.body, 4)
    assert index == 12
    assert raw_attrs(request.body, 16)[IFLA_IFNAME] == b"l2tp%d\0"
    reply = Request(b"", "get")
    header = struct.pack("=IHHII", 0, 16, 0, 1, 0)
    reply.replies.append(
        header + struct.pack("=BxHiII", 0, 0, 12, 0, 0) + struct.pack("=HH", 10, 3) + b"l2tp3\0\0\0"
    )
    assert dev.link_name(reply) == "l2tp3"


def test_in_netns_none_changes_nothing() -> None:
    before = os.stat("/proc/thread-self/ns/net").st_ino
    with in_netns(None):
        assert os.stat("/proc/thread-self/ns/net").st_ino == before


def test_pool_hands_out_lowest_first_and_skips_excluded() -> None:
    pool = AddressPool(IPv4Network("10.0.0.0/29"), exclude=[IPv4Address("10.0.0.1")])
    assert pool.size == 6
    got = [pool.allocate() for _ in range(6)]
    assert got == [IPv4Address(f"10.0.0.{n}") for n in (2, 3, 4, 5, 6)] + [None]
    assert pool.in_use == 5
    pool.release(IPv4Address("10.0.0.4"))
    pool.release(IPv4Address("10.0.0.3"))
    pool.release(IPv4Address("10.0.0.4"))  # twice: harmless
    pool.release(IPv4Address("192.0.2.1"))  # not ours: ignored
    assert pool.allocate() == IPv4Address("10.0.0.3")
    assert pool.allocate() == IPv4Address("10.0.0.4")
    assert pool.allocate() is None
    assert IPv4Address("10.0.0.2") in pool and IPv4Address("10.0.0.7") not in pool


@pytest.mark.parametrize(("cidr", "first", "size"), [("10.0.0.8/31", 8, 2), ("10.0.0.9/32", 9, 1)])
def test_small_pools_use_every_address(cidr: str, first: int, size: int) -> None:
    pool = AddressPool(IPv4Network(cidr))
    assert pool.size == size
    assert pool.allocate() == IPv4Address(f"10.0.0.{first}")


def test_a_large_pool_costs_nothing_up_front() -> None:
    pool = AddressPool(IPv4Network("10.0.0.0/8"))
    assert pool.size == 2**24 - 2
    assert pool.allocate() == IPv4Address("10.0.0.1")


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 13)), max_size=60))
def test_pool_never_hands_out_an_address_twice(ops: list[tuple[bool, int]]) -> None:
    pool = AddressPool(IPv4Network("10.0.0.0/28"), exclude=[IPv4Address("10.0.0.5")])
    held: list[IPv4Address] = []
    for allocate, pick in ops:
        if allocate:
            address = pool.allocate()
            if address is None:
                assert len(held) == 13
            else:
                assert address not in held and address != IPv4Address("10.0.0.5")
                held.append(address)
        elif held:
            pool.release(held.pop(pick % len(held)))
        assert pool.in_use == len(held)


def test_group_requests_delete_a_batch_of_interfaces() -> None:
    move = dev.set_group_req(12, 0x80001234)
    assert move.mtype == RTM_NEWLINK and not move.slow
    assert struct.unpack_from("=i", move.body, 4) == (12,)
    assert raw_attrs(move.body, 16)[dev.IFLA_GROUP] == struct.pack("=I", 0x80001234)
    delete = dev.delete_group_req(0x80001234)
    assert delete.mtype == dev.RTM_DELLINK and delete.slow
    assert struct.unpack_from("=i", delete.body, 4) == (0,)  # no index: the whole group
    assert raw_attrs(delete.body, 16) == {dev.IFLA_GROUP: struct.pack("=I", 0x80001234)}


class FakeLinks:
    """Stands in for PppInterfaces.delete_links; each call is one kernel batch."""

    def __init__(self, refuse: set[int] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.refuse = refuse or set()

    async def delete_links(self, indexes: list[int]) -> set[int]:
        self.batches.append(list(indexes))
        await asyncio.sleep(0.01)  # the kernel's batch takes a while
        return set(indexes) - self.refuse


def test_reaper_batches_units_released_together() -> None:
    async def scenario() -> None:
        links = FakeLinks()
        reaper = dev._Reaper(links)  # type: ignore[arg-type]
        units = []
        for n in range(5):
            r, w = socket.socketpair()
            w.close()
            units.append(dev.PppUnit(fd=r.detach(), number=n))
        first = asyncio.create_task(reaper.drop(units[0], 100))
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # its batch is in the kernel now
        await asyncio.gather(*(reaper.drop(u, 100 + u.number) for u in units[1:3]), first)
        # The first starts a batch at once; those that came while it ran share the next.
        assert links.batches == [[100], [101, 102]]
        await asyncio.gather(reaper.drop(units[3], None), reaper.drop(units[4], 104))
        assert links.batches[-1] == [104]  # a unit without an index is just closed
        await reaper.idle()
        for unit in units:  # every unit fd was closed
            with pytest.raises(OSError):
                os.fstat(unit.fd)

    asyncio.run(scenario())


class FakeChannelCalls:
    """Stands in for ``channel_index`` and ``attach_channel``: the first blocks (as the
    kernel's ``PPPIOCGCHAN`` waits for an RCU grace period) until ``release`` is set."""

    def __init__(self, parties: int = 1) -> None:
        self.barrier = threading.Barrier(parties, timeout=10)
        self.release = threading.Event()
        self.threads: set[int] = set()
        self.attached: list[int] = []
        self.fds: list[int] = []
        self.sockets: list[socket.socket] = []
        """What :meth:`open_socket` made (the PPPoL2TP sockets of the opens)."""

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(dev, "channel_index", self.channel_index)
        monkeypatch.setattr(dev, "attach_channel", self.attach_channel)

    def open_socket(self) -> socket.socket:
        sock, other = socket.socketpair()
        other.close()
        self.sockets.append(sock)
        return sock

    def channel_index(self, sock: socket.socket | int) -> int:
        self.threads.add(threading.get_ident())
        self.barrier.wait()  # every caller is in here at once, or this raises
        assert self.release.wait(10)
        return 40 + len(self.threads)

    def attach_channel(self, index: int, *, netns: str | None = None) -> int:
        r, w = socket.socketpair()
        w.close()
        self.attached.append(index)
        self.fds.append(r.detach())
        return self.fds[-1]


def test_channels_are_opened_off_the_loop_and_together(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = FakeChannelCalls(parties=3)
    calls.release.set()
    calls.install(monkeypatch)
    open_socket, sockets = calls.open_socket, calls.sockets

    async def scenario() -> list[dev.PppChannel]:
        kernel = dev.LinuxPppKernel()
        try:
            return await asyncio.gather(
                *(kernel.open_channel_async(open_socket, netns=None) for _ in range(3))
            )
        finally:
            await kernel.aclose()

    channels = asyncio.run(scenario())
    # Three waits at once (the barrier), none of them on the loop's thread.
    assert threading.get_ident() not in calls.threads and len(calls.threads) == 3
    assert sorted(c.index for c in channels) == sorted(calls.attached)
    assert {id(c.sock) for c in channels} == {id(s) for s in sockets}
    for channel in channels:
        dev.close_channel(channel)
        assert channel.sock.fileno() == -1
        with pytest.raises(OSError):
            os.fstat(channel.fd)


def test_a_cancelled_open_closes_the_channel_it_opened_anyway(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = FakeChannelCalls()
    calls.install(monkeypatch)
    open_socket, sockets = calls.open_socket, calls.sockets

    async def scenario() -> dev.LinuxPppKernel:
        kernel = dev.LinuxPppKernel()
        task = asyncio.create_task(kernel.open_channel_async(open_socket, netns=None))
        while not calls.threads:  # the worker is in the (fake) kernel wait
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return kernel

    kernel = asyncio.run(scenario())
    calls.release.set()  # the wait ends after the caller gave up
    assert kernel._opener is not None
    kernel._opener.shutdown(wait=True)
    assert len(sockets) == 1 and sockets[0].fileno() == -1
    assert len(calls.fds) == 1
    with pytest.raises(OSError):
        os.fstat(calls.fds[0])
