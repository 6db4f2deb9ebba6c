"""pppd chap-secrets parsing, matching precedence and the local verifier."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2tp.ppp import (
    ChapMd5Request,
    MsChapV2Request,
    PapRequest,
    SecretEntry,
    SecretsAuthenticator,
    SecretsFileError,
    parse_secrets,
)
from l2tp.ppp.auth import mschapv2
from l2tp.ppp.auth.chap import md5_response
from l2tp.ppp.secrets import WILDCARD, SecretsIndex

TEXT = r"""
# Secrets for authentication using CHAP
# client        server  secret                  IP addresses
alice           *       "correct horse"         10.0.0.5
"bob smith"     lns1    'it''s'                 -
carol           lns1    tab\there    # a comment after the entry
*               lns1    guest
dave            *       "has # hash"  10.0.0.6 \
                10.0.0.7
eve lns2 "quote \" inside"
"""


def test_parse_words_quotes_escapes_comments_and_continuations() -> None:
    entries = parse_secrets(TEXT)
    assert [(e.client, e.server, e.secret, e.addresses) for e in entries] == [
        ("alice", "*", "correct horse", ("10.0.0.5",)),
        ("bob smith", "lns1", "its", ("-",)),
        ("carol", "lns1", "tab\there", ()),
        ("*", "lns1", "guest", ()),
        ("dave", "*", "has # hash", ("10.0.0.6", "10.0.0.7")),
        ("eve", "lns2", 'quote " inside', ()),
    ]
    assert [e.line for e in entries] == [4, 5, 6, 7, 8, 10]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("alice * \n", 1, "an entry needs client, server and secret"),
        ("\n\nalice * 'open\n", 3, "unterminated quoted word"),
        ('alice * "open', 1, "unterminated quoted word"),
    ],
)
def test_malformed_text_names_the_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(SecretsFileError) as info:
        parse_secrets(text)
    assert (info.value.line, info.value.reason) == (line, reason)


def test_precedence_follows_pppd() -> None:
    entries = parse_secrets(
        """
        *     *     any-any
        *     lns1  any-lns1
        alice *     alice-any
        alice lns1  alice-lns1
        alice lns1  second-exact
        """
    )

    def secret(client: str, server: str) -> str | None:
        entry = SecretsIndex(entries).find(client, server)
        return None if entry is None else entry.secret

    assert secret("alice", "lns1") == "alice-lns1"  # exact both, first one wins
    assert secret("alice", "lns2") == "alice-any"  # exact client beats exact server
    assert secret("bob", "lns1") == "any-lns1"
    assert secret("bob", "lns2") == "any-any"
    assert SecretsIndex(entries[3:]).find("bob", "lns1") is None


def test_entry_repr_hides_the_secret() -> None:
    (entry,) = parse_secrets("alice * topsecret 10.0.0.5")
    assert "topsecret" not in repr(entry)
    assert entry.peer_address == IPv4Address("10.0.0.5")
    assert (
        SecretEntry(client="a", server="*", secret="s", addresses=("10.0.0.0/24",)).peer_address
        is None
    )


VERIFIER = SecretsAuthenticator.from_text(TEXT, server="lns1")


def test_pap() -> None:
    decision = VERIFIER.authenticate(PapRequest(user="alice", password=b"correct horse"))
    assert decision.success and decision.peer_address == IPv4Address("10.0.0.5")
    assert not VERIFIER.authenticate(PapRequest(user="alice", password=b"correct")).success
    assert not VERIFIER.authenticate(PapRequest(user="zed", password=b"guestx")).success
    assert VERIFIER.authenticate(PapRequest(user="zed", password=b"guest")).success  # wildcard


def test_chap_md5() -> None:
    challenge = bytes(range(16))
    good = md5_response(7, b"tab\there", challenge)
    request = ChapMd5Request(user="carol", identifier=7, challenge=challenge, response=good)
    assert VERIFIER.authenticate(request).success
    wrong_id = ChapMd5Request(user="carol", identifier=8, challenge=challenge, response=good)
    assert not VERIFIER.authenticate(wrong_id).success


def test_mschapv2_returns_the_authenticator_response() -> None:
    ac, pc = bytes(range(16)), bytes(range(16, 32))
    nt = mschapv2.generate_nt_response(ac, pc, "alice", "correct horse")
    request = MsChapV2Request(
        user="alice", identifier=1, authenticator_challenge=ac, peer_challenge=pc, nt_response=nt
    )
    decision = VERIFIER.authenticate(request)
    assert decision.success
    assert decision.authenticator_response == mschapv2.generate_authenticator_response(
        "correct horse", nt, pc, ac, "alice"
    )
    bad = MsChapV2Request(
        user="alice",
        identifier=1,
        authenticator_challenge=ac,
        peer_challenge=pc,
        nt_response=bytes(24),
    )
    assert not VERIFIER.authenticate(bad).success


def scan_for_secret(entries: list[SecretEntry], client: str, server: str) -> SecretEntry | None:
    """pppd's precedence as a plain scan of every line (the oracle the index is checked
    against): score 2 for an exact client, 1 for an exact server, ``*`` matching any
    name; the first line of the best score."""
    best: SecretEntry | None = None
    best_score = -1
    for entry in entries:
        client_exact = entry.client == client
        server_exact = entry.server == server
        if not (client_exact or entry.client == WILDCARD):
            continue
        if not (server_exact or entry.server == WILDCARD):
            continue
        score = 2 * client_exact + server_exact
        if score > best_score:
            best, best_score = entry, score
    return best


_NAMES = st.sampled_from(["*", "alice", "bob", "lns1", "lns2"])
_ENTRIES = st.lists(
    st.builds(SecretEntry, client=_NAMES, server=_NAMES, secret=st.just("s"), line=st.integers()),
    max_size=12,
)


@given(entries=_ENTRIES, client=_NAMES, server=_NAMES)
def test_index_picks_what_the_linear_scan_picks(
    entries: list[SecretEntry], client: str, server: str
) -> None:
    """The index (one lookup per authentication) and pppd's precedence as a scan agree
    on every file, including ``*`` as the asked name, down to the same line."""
    assert SecretsIndex(entries).find(client, server) is scan_for_secret(entries, client, server)


def test_authenticator_uses_the_index_not_the_list() -> None:
    """An authentication costs a lookup: the list is not scanned (a guard against a
    return to the per-authentication scan that stalled a 5,000-subscriber LNS)."""
    entries = parse_secrets(TEXT)
    auth = SecretsAuthenticator(entries, server="lns1")
    auth.entries = []  # a scan would find nothing now
    assert auth.authenticate(PapRequest(user="alice", password=b"correct horse")).success
