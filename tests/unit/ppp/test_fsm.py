"""The RFC 1661 automaton: the table against the RFC's own text, then every (state, event)
pair run through the real engine (LCP) and checked for next state, packets and layer actions."""

from __future__ import annotations

import random
import re

import pytest

from l2tp.ppp.codec import Option, Packet, parse_frame, parse_packet, serialize_packet
from l2tp.ppp.constants import Code, LcpOption
from l2tp.ppp.cp import ControlProtocol, RestartConfig
from l2tp.ppp.fsm import AUTOMATON, TIMER_STATES, Action, Event, State, lookup
from l2tp.ppp.lcp import Lcp, LcpOptions
from l2tp.protocol.errors import LocalProtocolError

# RFC 1661 section 4.1, as printed in the RFC (both halves).
RFC1661_TABLE = """
      | State
      |    0         1         2         3         4         5
Events| Initial   Starting  Closed    Stopped   Closing   Stopping
------+-----------------------------------------------------------
 Up   |    2     irc,scr/6     -         -         -         -
 Down |    -         -         0       tls/1       0         1
 Open |  tls/1       1     irc,scr/6     3r        5r        5r
 Close|    0       tlf/0       2         2         4         4
      |
  TO+ |    -         -         -         -       str/4     str/5
  TO- |    -         -         -         -       tlf/2     tlf/3
      |
 RCR+ |    -         -       sta/2 irc,scr,sca/8   4         5
 RCR- |    -         -       sta/2 irc,scr,scn/6   4         5
 RCA  |    -         -       sta/2     sta/3       4         5
 RCN  |    -         -       sta/2     sta/3       4         5
      |
 RTR  |    -         -       sta/2     sta/3     sta/4     sta/5
 RTA  |    -         -         2         3       tlf/2     tlf/3
      |
 RUC  |    -         -       scj/2     scj/3     scj/4     scj/5
 RXJ+ |    -         -         2         3         4         5
 RXJ- |    -         -       tlf/2     tlf/3     tlf/2     tlf/3
      |
 RXR  |    -         -         2         3         4         5

      | State
      |    6         7         8           9
Events| Req-Sent  Ack-Rcvd  Ack-Sent    Opened
------+-----------------------------------------
 Up   |    -         -         -           -
 Down |    1         1         1         tld/1
 Open |    6         7         8           9r
 Close|irc,str/4 irc,str/4 irc,str/4 tld,irc,str/4
      |
  TO+ |  scr/6     scr/6     scr/8         -
  TO- |  tlf/3p    tlf/3p    tlf/3p        -
      |
 RCR+ |  sca/8   sca,tlu/9   sca/8   tld,scr,sca/8
 RCR- |  scn/6     scn/7     scn/6   tld,scr,scn/6
 RCA  |  irc/7     scr/6x  irc,tlu/9   tld,scr/6x
 RCN  |irc,scr/6   scr/6x  irc,scr/8   tld,scr/6x
      |
 RTR  |  sta/6     sta/6     sta/6   tld,zrc,sta/5
 RTA  |    6         6         8       tld,scr/6
      |
 RUC  |  scj/6     scj/7     scj/8       scj/9
 RXJ+ |    6         7         8           9
 RXJ- |  tlf/3     tlf/3     tlf/3   tld,irc,str/5
      |
 RXR  |    6         7         8         ser/9
"""


def rfc_cells() -> dict[tuple[State, Event], str]:
    """Parse the RFC text into {(state, event): cell}."""
    cells: dict[tuple[State, Event], str] = {}
    columns: list[int] = []
    for line in RFC1661_TABLE.splitlines():
        if "|" not in line:
            continue
        label, _, rest = line.partition("|")
        if not label.strip() and re.fullmatch(r"[\s\d]+", rest) and rest.strip():
            columns = [int(n) for n in rest.split()]
            continue
        if not label.strip() or label.strip() == "Events":
            continue
        event = Event(label.strip())
        entries = rest.split()
        assert len(entries) == len(columns), line
        for state, cell in zip(columns, entries, strict=True):
            cells[State(state), event] = cell
    return cells


def test_table_matches_rfc_text() -> None:
    cells = rfc_cells()
    assert len(cells) == len(State) * len(Event) == 160
    for (state, event), cell in cells.items():
        transition = lookup(state, event)
        if cell == "-":
            assert transition is None, (state, event)
            continue
        assert transition is not None, (state, event)
        actions, _, target = cell.rpartition("/")
        expected_actions = tuple(Action(a) for a in actions.split(",") if a)
        assert transition.actions == expected_actions, (state, event)
        assert transition.next_state == State(int(target[0])), (state, event)
        assert transition.flag == target[1:], (state, event)
    assert len(AUTOMATON) == sum(1 for cell in cells.values() if cell != "-")


# ------------------------------------------------------------- the engine walk


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def this_layer_up(self, cp: ControlProtocol, now: float) -> None:
        self.calls.append("tlu")

    def this_layer_down(self, cp: ControlProtocol, now: float) -> None:
        self.calls.append("tld")

    def this_layer_started(self, cp: ControlProtocol, now: float) -> None:
        self.calls.append("tls")

    def this_layer_finished(self, cp: ControlProtocol, now: float) -> None:
        self.calls.append("tlf")


class Harness:
    def __init__(self, config: RestartConfig | None = None) -> None:
        self.recorder = Recorder()
        self.sent: list[Packet] = []
        self.lcp = Lcp(
            LcpOptions(random_bytes=random.Random(3).randbytes),
            self.recorder,
            self._send,
            config or RestartConfig(),
            on_protocol_reject=lambda protocol, now: None,
            on_echo_failure=lambda now: None,
        )

    def _send(self, protocol: int, packet: bytes) -> None:
        self.sent.append(parse_packet(packet))

    def last_request(self) -> Packet:
        return [p for p in self.sent if p.code == Code.CONFIGURE_REQUEST][-1]

    def feed(self, packet: Packet, now: float = 0.0) -> None:
        self.lcp.receive(packet, now)


GOOD_REQUEST = Packet(
    code=Code.CONFIGURE_REQUEST, identifier=0x42, data=Option(LcpOption.MRU, b"\x05\xdc").to_bytes()
)
BAD_REQUEST = Packet(
    code=Code.CONFIGURE_REQUEST, identifier=0x42, data=Option(LcpOption.ACCM, bytes(4)).to_bytes()
)


def reach(state: State) -> Harness:
    """A harness whose LCP got to ``state`` by ordinary events and packets."""
    h = Harness(RestartConfig(max_configure=1) if state is State.STOPPED else None)
    lcp = h.lcp
    if state is State.STARTING:
        lcp.open(0)
    elif state is State.CLOSED:
        lcp.up(0)
    elif state is State.STOPPED:
        lcp.up(0)
        lcp.open(0)
        lcp.handle_timer(3.0)  # Max-Configure 1: TO- at once
    elif state is State.CLOSING:
        lcp.up(0)
        lcp.open(0)
        lcp.close(0, "bye")
    elif state in (State.REQ_SENT, State.ACK_RCVD, State.ACK_SENT, State.OPENED, State.STOPPING):
        lcp.up(0)
        lcp.open(0)
        request = h.last_request()
        ack = Packet(code=Code.CONFIGURE_ACK, identifier=request.identifier, data=request.data)
        if state in (State.ACK_RCVD, State.OPENED, State.STOPPING):
            h.feed(ack)
        if state in (State.ACK_SENT, State.OPENED, State.STOPPING):
            h.feed(GOOD_REQUEST)
        if state is State.STOPPING:
            h.feed(Packet(code=Code.TERMINATE_REQUEST, identifier=9))
    assert lcp.state is state
    h.sent.clear()
    h.recorder.calls.clear()
    return h


EVENT_PACKETS: dict[Event, Packet] = {
    Event.RCR_PLUS: GOOD_REQUEST,
    Event.RCR_MINUS: BAD_REQUEST,
    Event.RCA: Packet(code=Code.CONFIGURE_ACK, identifier=7),
    Event.RCN: Packet(code=Code.CONFIGURE_NAK, identifier=7),
    Event.RTR: Packet(code=Code.TERMINATE_REQUEST, identifier=0x43, data=b"why"),
    Event.RTA: Packet(code=Code.TERMINATE_ACK, identifier=0x44),
    Event.RUC: Packet(code=0x55, identifier=0x45, data=b"?"),
    Event.RXJ_PLUS: Packet(
        code=Code.CODE_REJECT, identifier=1, data=bytes([9, 1, 0, 8, 0, 0, 0, 0])
    ),
    Event.RXJ_MINUS: Packet(code=Code.CODE_REJECT, identifier=1, data=bytes([1, 1, 0, 4])),
    Event.RXR: Packet(code=Code.ECHO_REQUEST, identifier=0x46, data=bytes(4)),
}

ACTION_CODES = {
    Action.SCR: [Code.CONFIGURE_REQUEST],
    Action.SCA: [Code.CONFIGURE_ACK],
    Action.STR: [Code.TERMINATE_REQUEST],
    Action.STA: [Code.TERMINATE_ACK],
    Action.SCJ: [Code.CODE_REJECT],
    Action.SER: [Code.ECHO_REPLY],
}
LAYER_ACTIONS = {Action.TLU: "tlu", Action.TLD: "tld", Action.TLS: "tls", Action.TLF: "tlf"}


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
@pytest.mark.parametrize("event", list(Event), ids=lambda e: e.value)
def test_every_pair_runs_as_the_table_says(state: State, event: Event) -> None:
    h = reach(state)
    transition = lookup(state, event)
    packet = EVENT_PACKETS.get(event)
    now = 100.0
    if transition is None:
        if event in (Event.UP, Event.DOWN, Event.OPEN, Event.CLOSE):
            with pytest.raises(LocalProtocolError):
                h.lcp.process(event, now, packet)
        else:
            before = h.lcp.counters.unexpected
            h.lcp.process(event, now, packet)
            assert h.lcp.counters.unexpected == before + 1
        assert h.lcp.state is state
        assert h.sent == [] and h.recorder.calls == []
        return
    h.lcp.process(event, now, packet)
    assert h.lcp.state is transition.next_state
    # Layer actions are reported in the table's order.
    assert h.recorder.calls == [LAYER_ACTIONS[a] for a in transition.actions if a in LAYER_ACTIONS]
    expected_codes: list[int] = []
    for action in transition.actions:
        if action is Action.SCN:
            expected_codes.append(Code.CONFIGURE_REJECT)  # BAD_REQUEST carries ACCM
        else:
            expected_codes += ACTION_CODES.get(action, [])
    assert [p.code for p in h.sent] == expected_codes
    for sent in h.sent:
        if sent.code in (Code.TERMINATE_ACK, Code.CONFIGURE_ACK, Code.CONFIGURE_REJECT):
            assert packet is not None and sent.identifier == packet.identifier
        if sent.code == Code.CODE_REJECT:
            assert packet is not None and sent.data == serialize_packet(packet)
    # RFC 1661 4.6: the restart timer runs exactly in the five waiting states.
    timer = h.lcp.get_timer()
    assert (timer is not None) == (transition.next_state in TIMER_STATES)
    if Action.ZRC in transition.actions:
        assert timer == now + h.lcp.config.restart_interval


def test_timer_states_have_timer_events() -> None:
    for state in State:
        has_timeout = lookup(state, Event.TO_PLUS) is not None
        assert has_timeout == (state in TIMER_STATES)


# ------------------------------------------------------------- counters (4.6)


def test_max_configure_requests_then_finished() -> None:
    h = Harness(RestartConfig(restart_interval=3.0, max_configure=10))
    h.lcp.up(0)
    h.lcp.open(0)
    now = 0.0
    while (deadline := h.lcp.get_timer()) is not None:
        assert deadline == now + 3.0
        now = deadline
        h.lcp.handle_timer(now)
    assert [p.code for p in h.sent] == [Code.CONFIGURE_REQUEST] * 10
    assert now == 30.0
    assert h.lcp.state is State.STOPPED
    assert h.recorder.calls == ["tlf"]
    # A new identifier for every request (RFC 1661 5.1 allows either; ours always changes).
    assert len({p.identifier for p in h.sent}) == 10


def test_max_terminate_requests_then_closed() -> None:
    h = reach(State.CLOSING)
    h.lcp.close(0, "again")  # Close in Closing changes nothing
    now = 0.0
    while (deadline := h.lcp.get_timer()) is not None:
        now = deadline
        h.lcp.handle_timer(now)
    # The first Terminate-Request went out in reach(); one more on TO+, then TO-.
    assert [p.code for p in h.sent] == [Code.TERMINATE_REQUEST]
    assert now == 6.0
    assert h.lcp.state is State.CLOSED
    assert h.recorder.calls == ["tlf"]


def test_terminate_request_carries_the_reason() -> None:
    h = reach(State.OPENED)
    h.lcp.close(5.0, "admin says bye")
    (request,) = h.sent
    assert request.code == Code.TERMINATE_REQUEST
    assert request.data == b"admin says bye"


def test_max_failure_turns_naks_into_rejects() -> None:
    h = reach(State.REQ_SENT)
    small_mru = Packet(
        code=Code.CONFIGURE_REQUEST,
        identifier=1,
        data=Option(LcpOption.MRU, b"\x00\x10").to_bytes(),
    )
    for i in range(5):
        h.feed(Packet(code=small_mru.code, identifier=i, data=small_mru.data))
    h.feed(Packet(code=small_mru.code, identifier=99, data=small_mru.data))
    codes = [p.code for p in h.sent]
    assert codes == [Code.CONFIGURE_NAK] * 5 + [Code.CONFIGURE_REJECT]
    assert h.sent[-1].data == small_mru.data  # the offending option, verbatim


# ---------------------------------------------------- reply identifiers (5.2-5.4)


def state_of(cp: ControlProtocol) -> State:
    """The state now (a call, so that mypy does not keep an earlier narrowing)."""
    return cp.state


def requesting() -> tuple[Harness, Packet]:
    h = Harness()
    h.lcp.up(0)
    h.lcp.open(0)
    return h, h.last_request()


def test_replies_must_match_the_outstanding_request() -> None:
    h, request = requesting()
    wrong_id = (request.identifier + 1) & 0xFF
    h.feed(Packet(code=Code.CONFIGURE_ACK, identifier=wrong_id, data=request.data))
    assert h.lcp.state is State.REQ_SENT
    assert h.lcp.counters.stale_replies == 1
    # Right identifier, other options: also discarded (5.2: "exactly").
    h.feed(Packet(code=Code.CONFIGURE_ACK, identifier=request.identifier, data=b"\x01\x04\x05\xdc"))
    assert h.lcp.state is State.REQ_SENT
    assert h.lcp.counters.stale_replies == 2
    h.feed(Packet(code=Code.CONFIGURE_ACK, identifier=request.identifier, data=request.data))
    assert state_of(h.lcp) is State.ACK_RCVD


def test_duplicate_ack_does_not_restart_an_opened_link() -> None:
    h, request = requesting()
    ack = Packet(code=Code.CONFIGURE_ACK, identifier=request.identifier, data=request.data)
    h.feed(ack)
    h.feed(GOOD_REQUEST)
    assert h.lcp.state is State.OPENED
    h.feed(ack)  # the network repeated it
    assert h.lcp.state is State.OPENED
    assert h.recorder.calls == ["tlu"]


def test_reject_must_list_only_options_we_sent() -> None:
    h, request = requesting()
    bogus = Option(LcpOption.PFC).to_bytes()
    h.feed(Packet(code=Code.CONFIGURE_REJECT, identifier=request.identifier, data=bogus))
    assert h.lcp.counters.stale_replies == 1
    assert len([p for p in h.sent if p.code == Code.CONFIGURE_REQUEST]) == 1


def test_frames_of_the_walk_are_lcp() -> None:
    # The harness's send callable receives the protocol number: LCP for everything.
    seen: list[int] = []
    h = Harness()
    h.lcp._send = lambda protocol, packet: seen.append(protocol)
    h.lcp.up(0)
    h.lcp.open(0)
    assert seen == [0xC021]
    assert parse_frame(b"\xc0\x21\x01\x01\x00\x04")[0] == 0xC021


def test_repeated_acknowledged_request_is_acked_again_in_opened() -> None:
    h, request = requesting()
    h.feed(Packet(code=Code.CONFIGURE_ACK, identifier=request.identifier, data=request.data))
    h.feed(GOOD_REQUEST)
    assert h.lcp.state is State.OPENED
    h.sent.clear()
    h.feed(GOOD_REQUEST)  # our Ack was lost and the peer repeats its request
    assert h.lcp.state is State.OPENED
    assert [(p.code, p.identifier, p.data) for p in h.sent] == [
        (Code.CONFIGURE_ACK, GOOD_REQUEST.identifier, GOOD_REQUEST.data)
    ]
    assert h.recorder.calls == ["tlu"]
    # A new request (another Identifier) is a renegotiation: RFC 1661 RCR+ in Opened.
    h.sent.clear()
    h.feed(Packet(code=Code.CONFIGURE_REQUEST, identifier=0x50, data=GOOD_REQUEST.data))
    assert state_of(h.lcp) is State.ACK_SENT
    assert [p.code for p in h.sent] == [Code.CONFIGURE_REQUEST, Code.CONFIGURE_ACK]
    assert h.recorder.calls == ["tlu", "tld"]
