"""The option negotiation automaton of RFC 1661 section 4, as a table.

One table drives LCP and every NCP (RFC 1661 4: "The same automaton is used
by ... each of the Network Control Protocols"). :data:`AUTOMATON` maps
``(State, Event)`` to a :class:`Transition`: the actions to run, in the
order the RFC lists them, and the next state. The engine that runs the
actions (timers, counters, packets) is :class:`~.cp.ControlProtocol`.

Pairs the RFC marks "-" ("the event cannot occur in this state", 4.1) are
absent. The engine treats an absent pair for a received packet as a packet
to discard silently (it can only arrive when the lower layer is down, i.e.
in Initial or Starting, where RFC 1661 3.4 and 3.5 have non-LCP packets
discarded), and an absent pair for a local event (Up, Down) as API misuse.

The RFC's option flags are kept on the transition, not acted on:

* ``r`` (restart, 4.3 "Open"): an Open in Stopped, Closing, Stopping or
  Opened does not restart the link; the driver may Down/Up it instead.
* ``p`` (passive, 4.2 "Stopped"): after TO- the automaton waits in Stopped
  for a Configure-Request; the connection above decides whether that ends
  the link (for LCP it does: our L2TP session has no one to wait for).
* ``x`` (crossed connection, 4.3 "RCA"): nothing special is needed, the
  table entry already restarts negotiation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.IntEnum):
    """The ten states, numbered as in RFC 1661 4.2."""

    INITIAL = 0
    """Lower layer down, no Open yet."""
    STARTING = 1
    """Open, waiting for the lower layer (This-Layer-Started was signalled)."""
    CLOSED = 2
    """Lower layer up, no Open: Terminate-Ack answers everything."""
    STOPPED = 3
    """Open, negotiation ended or given up: waiting for a Configure-Request (passive)."""
    CLOSING = 4
    """Terminate-Request sent on Close; Closed follows."""
    STOPPING = 5
    """Terminate-Request sent (or peer's acknowledged); Stopped follows."""
    REQ_SENT = 6
    """Our Configure-Request sent, nothing acknowledged yet."""
    ACK_RCVD = 7
    """Our request acknowledged, the peer's not yet."""
    ACK_SENT = 8
    """The peer's request acknowledged, ours not yet."""
    OPENED = 9
    """Both acknowledged: This-Layer-Up."""


class Event(enum.Enum):
    """RFC 1661 4.3 events."""

    UP = "Up"
    DOWN = "Down"
    OPEN = "Open"
    CLOSE = "Close"
    TO_PLUS = "TO+"
    """Restart timer expired, counter still positive."""
    TO_MINUS = "TO-"
    """Restart timer expired with the counter exhausted."""
    RCR_PLUS = "RCR+"
    """Receive-Configure-Request, every option acceptable."""
    RCR_MINUS = "RCR-"
    """Receive-Configure-Request needing a Nak or Reject."""
    RCA = "RCA"
    RCN = "RCN"
    """Receive-Configure-Nak or -Reject."""
    RTR = "RTR"
    RTA = "RTA"
    RUC = "RUC"
    """Receive-Unknown-Code."""
    RXJ_PLUS = "RXJ+"
    """Code-Reject or Protocol-Reject of something we can do without."""
    RXJ_MINUS = "RXJ-"
    """Code-Reject or Protocol-Reject that makes the link unusable."""
    RXR = "RXR"
    """Echo-Request, Echo-Reply or Discard-Request."""


class Action(enum.Enum):
    """RFC 1661 4.4 actions."""

    TLU = "tlu"
    """This-Layer-Up."""
    TLD = "tld"
    """This-Layer-Down."""
    TLS = "tls"
    """This-Layer-Started."""
    TLF = "tlf"
    """This-Layer-Finished."""
    IRC = "irc"
    """Initialize-Restart-Count (Max-Configure, or Max-Terminate before str)."""
    ZRC = "zrc"
    """Zero-Restart-Count: one restart period, then TO-."""
    SCR = "scr"
    """Send-Configure-Request."""
    SCA = "sca"
    """Send-Configure-Ack."""
    SCN = "scn"
    """Send-Configure-Nak or -Reject."""
    STR = "str"
    """Send-Terminate-Request."""
    STA = "sta"
    """Send-Terminate-Ack."""
    SCJ = "scj"
    """Send-Code-Reject."""
    SER = "ser"
    """Send-Echo-Reply."""


@dataclass(frozen=True, slots=True)
class Transition:
    actions: tuple[Action, ...]
    next_state: State
    flag: str = ""
    """The RFC's option letter: "r", "p", "x" or empty."""


LOCAL_EVENTS = frozenset({Event.UP, Event.DOWN, Event.OPEN, Event.CLOSE})
TIMER_STATES = frozenset(
    {State.CLOSING, State.STOPPING, State.REQ_SENT, State.ACK_RCVD, State.ACK_SENT}
)
"""RFC 1661 4.6: the states in which the restart timer runs."""


def _t(text: str) -> Transition:
    """Parse one RFC table cell such as ``"irc,scr/6"`` or ``"tlf/3p"``."""
    actions_text, _, state_text = text.rpartition("/") if "/" in text else ("", "", text)
    flag = state_text[1:]
    actions = tuple(Action(a) for a in actions_text.split(",") if a)
    return Transition(actions, State(int(state_text[0])), flag)


E = Event

# RFC 1661 section 4.1, transcribed row by row in the RFC's two halves ("-": cannot occur).
# fmt: off
_LEFT: dict[Event, tuple[str, str, str, str, str, str]] = {
    #              0 Initial  1 Starting   2 Closed     3 Stopped        4 Closing  5 Stopping
    E.UP:        ("2",       "irc,scr/6", "-",         "-",             "-",       "-"),
    E.DOWN:      ("-",       "-",         "0",         "tls/1",         "0",       "1"),
    E.OPEN:      ("tls/1",   "1",         "irc,scr/6", "3r",            "5r",      "5r"),
    E.CLOSE:     ("0",       "tlf/0",     "2",         "2",             "4",       "4"),
    E.TO_PLUS:   ("-",       "-",         "-",         "-",             "str/4",   "str/5"),
    E.TO_MINUS:  ("-",       "-",         "-",         "-",             "tlf/2",   "tlf/3"),
    E.RCR_PLUS:  ("-",       "-",         "sta/2",     "irc,scr,sca/8", "4",       "5"),
    E.RCR_MINUS: ("-",       "-",         "sta/2",     "irc,scr,scn/6", "4",       "5"),
    E.RCA:       ("-",       "-",         "sta/2",     "sta/3",         "4",       "5"),
    E.RCN:       ("-",       "-",         "sta/2",     "sta/3",         "4",       "5"),
    E.RTR:       ("-",       "-",         "sta/2",     "sta/3",         "sta/4",   "sta/5"),
    E.RTA:       ("-",       "-",         "2",         "3",             "tlf/2",   "tlf/3"),
    E.RUC:       ("-",       "-",         "scj/2",     "scj/3",         "scj/4",   "scj/5"),
    E.RXJ_PLUS:  ("-",       "-",         "2",         "3",             "4",       "5"),
    E.RXJ_MINUS: ("-",       "-",         "tlf/2",     "tlf/3",         "tlf/2",   "tlf/3"),
    E.RXR:       ("-",       "-",         "2",         "3",             "4",       "5"),
}
_RIGHT: dict[Event, tuple[str, str, str, str]] = {
    #              6 Req-Sent   7 Ack-Rcvd   8 Ack-Sent   9 Opened
    E.UP:        ("-",         "-",         "-",         "-"),
    E.DOWN:      ("1",         "1",         "1",         "tld/1"),
    E.OPEN:      ("6",         "7",         "8",         "9r"),
    E.CLOSE:     ("irc,str/4", "irc,str/4", "irc,str/4", "tld,irc,str/4"),
    E.TO_PLUS:   ("scr/6",     "scr/6",     "scr/8",     "-"),
    E.TO_MINUS:  ("tlf/3p",    "tlf/3p",    "tlf/3p",    "-"),
    E.RCR_PLUS:  ("sca/8",     "sca,tlu/9", "sca/8",     "tld,scr,sca/8"),
    E.RCR_MINUS: ("scn/6",     "scn/7",     "scn/6",     "tld,scr,scn/6"),
    E.RCA:       ("irc/7",     "scr/6x",    "irc,tlu/9", "tld,scr/6x"),
    E.RCN:       ("irc,scr/6", "scr/6x",    "irc,scr/8", "tld,scr/6x"),
    E.RTR:       ("sta/6",     "sta/6",     "sta/6",     "tld,zrc,sta/5"),
    E.RTA:       ("6",         "6",         "8",         "tld,scr/6"),
    E.RUC:       ("scj/6",     "scj/7",     "scj/8",     "scj/9"),
    E.RXJ_PLUS:  ("6",         "7",         "8",         "9"),
    E.RXJ_MINUS: ("tlf/3",     "tlf/3",     "tlf/3",     "tld,irc,str/5"),
    E.RXR:       ("6",         "7",         "8",         "ser/9"),
}
# fmt: on

AUTOMATON: dict[tuple[State, Event], Transition] = {
    (State(index), event): _t(cell)
    for event in Event
    for index, cell in enumerate(_LEFT[event] + _RIGHT[event])
    if cell != "-"
}
"""The whole automaton; a missing pair is an RFC "-" cell."""


def lookup(state: State, event: Event) -> Transition | None:
    """The transition for ``(state, event)``, None where RFC 1661 4.1 has "-"."""
    return AUTOMATON.get((state, event))
