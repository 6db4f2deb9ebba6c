"""Wire numbers of the kernel's L2TP generic netlink family and socket API.

The values mirror ``include/uapi/linux/l2tp.h``, ``include/uapi/linux/if_pppox.h``
and ``include/uapi/linux/if_pppol2tp.h`` (Linux 6.1). They were checked against
pyroute2 0.9.7's ``pyroute2.netlink.generic.l2tp`` constants and ``l2tpmsg.nla_map``
(whose position in the tuple is the attribute number); ``tests/unit/test_kernel_codec.py``
asserts the two agree so a typo in either is caught without a kernel.
"""

from __future__ import annotations

import enum

GENL_NAME = "l2tp"
"""Generic netlink family name (``L2TP_GENL_NAME``)."""
GENL_VERSION = 1
"""Generic netlink family version (``L2TP_GENL_VERSION``)."""
GENL_MCGROUP = "l2tp"
"""Multicast group the kernel announces create/modify/delete on (``L2TP_GENL_MCGROUP``)."""

IPPROTO_L2TP = 115
"""IP protocol number of L2TPv3-over-IP (RFC 3931 section 4.1.1.1)."""
AF_PPPOX = 24
"""Address family of PPPoX sockets (``AF_PPPOX``)."""
PX_PROTO_OL2TP = 1
"""PPPoX protocol number for PPP over L2TP (``PX_PROTO_OL2TP``)."""

# PPPoL2TP socket options (SOL_PPPOL2TP = 273), from include/uapi/linux/if_pppol2tp.h.
SOL_PPPOL2TP = 273
PPPOL2TP_SO_DEBUG = 1
PPPOL2TP_SO_RECVSEQ = 2
PPPOL2TP_SO_SENDSEQ = 3
PPPOL2TP_SO_LNSMODE = 4
PPPOL2TP_SO_REORDERTO = 5


class Command(enum.IntEnum):
    """``L2TP_CMD_*``: the generic netlink commands of the ``l2tp`` family."""

    NOOP = 0
    TUNNEL_CREATE = 1
    TUNNEL_DELETE = 2
    TUNNEL_MODIFY = 3
    TUNNEL_GET = 4
    SESSION_CREATE = 5
    SESSION_DELETE = 6
    SESSION_MODIFY = 7
    SESSION_GET = 8


class Attr(enum.IntEnum):
    """``L2TP_ATTR_*``: top-level attributes, in uapi enum order (value = position)."""

    NONE = 0
    PW_TYPE = 1  #: u16, :class:`PseudowireType`
    ENCAP_TYPE = 2  #: u16, :class:`EncapType`
    OFFSET = 3  #: u16, unused since Linux 4.16
    DATA_SEQ = 4  #: u16, unused
    L2SPEC_TYPE = 5  #: u8, :class:`L2SpecType`
    L2SPEC_LEN = 6  #: u8, unused
    PROTO_VERSION = 7  #: u8, 2 or 3
    IFNAME = 8  #: NUL-terminated string
    CONN_ID = 9  #: u32 tunnel id
    PEER_CONN_ID = 10  #: u32
    SESSION_ID = 11  #: u32
    PEER_SESSION_ID = 12  #: u32
    UDP_CSUM = 13  #: u8, read by the kernel as a *flag*: present means "on"
    VLAN_ID = 14  #: u16, never implemented
    COOKIE = 15  #: 0, 4 or 8 bytes
    PEER_COOKIE = 16  #: 0, 4 or 8 bytes
    DEBUG = 17  #: u32, ignored since Linux 5.12 (always reported as 0)
    RECV_SEQ = 18  #: u8
    SEND_SEQ = 19  #: u8
    LNS_MODE = 20  #: u8
    USING_IPSEC = 21  #: u8
    RECV_TIMEOUT = 22  #: u64 milliseconds (reorder timeout)
    FD = 23  #: u32 file descriptor of a managed tunnel's socket
    IP_SADDR = 24  #: be32
    IP_DADDR = 25  #: be32
    UDP_SPORT = 26  #: u16
    UDP_DPORT = 27  #: u16
    MTU = 28  #: u16, not used by Linux 6.1
    MRU = 29  #: u16, not used
    STATS = 30  #: nested :class:`StatsAttr`
    IP6_SADDR = 31  #: 16 bytes
    IP6_DADDR = 32  #: 16 bytes
    UDP_ZERO_CSUM6_TX = 33  #: flag: send IPv6 UDP with a zero checksum
    UDP_ZERO_CSUM6_RX = 34  #: flag: accept IPv6 UDP with a zero checksum
    PAD = 35


class StatsAttr(enum.IntEnum):
    """``L2TP_ATTR_STATS_*``: attributes nested in :attr:`Attr.STATS` (all u64)."""

    NONE = 0
    TX_PACKETS = 1
    TX_BYTES = 2
    TX_ERRORS = 3
    RX_PACKETS = 4
    RX_BYTES = 5
    RX_SEQ_DISCARDS = 6
    RX_OOS_PACKETS = 7
    RX_ERRORS = 8
    PAD = 9


class EncapType(enum.IntEnum):
    """``L2TP_ENCAPTYPE_*``: how the tunnel's packets are carried."""

    UDP = 0
    IP = 1  #: L2TPv3 only, IP protocol 115


class PseudowireType(enum.IntEnum):
    """``L2TP_PWTYPE_*`` (RFC 3931 / IANA L2TPv3 pseudowire types) that Linux implements."""

    NONE = 0x0000
    ETH_VLAN = 0x0004
    ETH = 0x0005
    PPP = 0x0007
    PPP_AC = 0x0008
    IP = 0x000B


class L2SpecType(enum.IntEnum):
    """``L2TP_L2SPECTYPE_*``: the L2-Specific Sublayer of L2TPv3 data packets."""

    NONE = 0
    DEFAULT = 1  #: RFC 4719's 4-byte sublayer, carries the sequence number
