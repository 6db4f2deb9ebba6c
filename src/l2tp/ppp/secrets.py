"""A local verifier for pppd's ``chap-secrets`` / ``pap-secrets`` format (pppd(8) "AUTHENTICATION").

One entry per line::

    # client      server     secret          [acceptable addresses...]
    alice         *          "s3cret word"   10.0.0.5
    "bob smith"   lns1       hunter2
    *             lns1       guestpass       -

Words are separated by blanks; a word may be quoted with ``"`` or ``'`` to
hold blanks or ``#``; a backslash escapes the next character (``\\n``,
``\\t``, ``\\r`` and ``\\\\`` as in C); ``#`` outside quotes starts a comment; a
backslash at the end of a line continues the entry on the next one. ``*`` as
client or server matches any name. When several entries match, pppd's
preference is kept: an exact client beats a wildcard client, then an exact
server beats a wildcard server, then the first in the file wins.

The first address word, when it is a plain IPv4 address, becomes the peer's
address (:attr:`~.auth.base.AuthDecision.peer_address`); other address words
(``-``, ``*``, subnets, ``!`` exclusions, ``+ua``) are kept but not enforced
here. Secrets starting with ``@`` (pppd: read from a file) are not expanded:
reading files is the driver's job, which also reads this one and can reload
it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import AddressValueError, IPv4Address

from .auth import mschapv2
from .auth.base import AuthDecision, AuthRequest, ChapMd5Request, MsChapV2Request, PapRequest
from .auth.chap import md5_verify

WILDCARD = "*"
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


class SecretsFileError(ValueError):
    """The secrets text is malformed; ``line`` is 1-based."""

    def __init__(self, reason: str, line: int) -> None:
        super().__init__(f"line {line}: {reason}")
        self.reason = reason
        self.line = line


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretEntry:
    client: str
    server: str
    secret: str = field(repr=False)
    addresses: tuple[str, ...] = ()
    line: int = 0

    @property
    def peer_address(self) -> IPv4Address | None:
        """The first address word if it names exactly one IPv4 address."""
        if not self.addresses:
            return None
        try:
            return IPv4Address(self.addresses[0])
        except AddressValueError:
            return None


def _split_words(text: str) -> Iterable[tuple[int, list[str]]]:
    """Yield (first line number, words) per logical line."""
    words: list[str] = []
    word: list[str] | None = None
    quote: str | None = None
    line = start = 1
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            i += 2
            if nxt == "\n":
                line += 1
                if quote is None and word is not None:
                    words.append("".join(word))
                    word = None
                continue
            word = [] if word is None else word
            word.append(_ESCAPES.get(nxt, nxt))
            continue
        i += 1
        if quote is not None:
            if ch == quote:
                quote = None
            elif ch == "\n":
                raise SecretsFileError("unterminated quoted word", line)
            else:
                assert word is not None
                word.append(ch)
            continue
        if ch in "\"'":
            quote = ch
            word = [] if word is None else word
        elif ch == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
        elif ch in " \t\r\n":
            if word is not None:
                words.append("".join(word))
                word = None
            if ch == "\n":
                if words:
                    yield start, words
                words = []
                line += 1
                start = line
        else:
            word = [] if word is None else word
            word.append(ch)
    if quote is not None:
        raise SecretsFileError("unterminated quoted word", line)
    if word is not None:
        words.append("".join(word))
    if words:
        yield start, words


def parse_secrets(text: str) -> list[SecretEntry]:
    """Parse a ``chap-secrets`` (or ``pap-secrets``) file's text."""
    entries: list[SecretEntry] = []
    for line, words in _split_words(text):
        if len(words) < 3:
            raise SecretsFileError("an entry needs client, server and secret", line)
        client, server, secret, *addresses = words
        entries.append(
            SecretEntry(
                client=client, server=server, secret=secret, addresses=tuple(addresses), line=line
            )
        )
    return entries


class SecretsIndex:
    """The entries of a secrets file by client name: pppd's choice of a line without a
    pass over the whole file per authentication.

    Why: an LNS with one line per subscriber authenticates every session against the
    same file; a linear scan of 5,000 lines is 0.2-0.5 ms on a host and ~20 times that
    in the emulated test VM, per session, on the event loop. pppd's precedence: an exact
    client beats ``*``, then an exact server beats ``*``, then the earlier line; a
    server name of ``*`` matches only lines whose server is ``*``.
    """

    __slots__ = ("_by_client", "_wildcard")

    def __init__(self, entries: Iterable[SecretEntry]) -> None:
        self._by_client: dict[str, list[SecretEntry]] = {}
        self._wildcard: list[SecretEntry] = []
        for entry in entries:
            if entry.client == WILDCARD:
                self._wildcard.append(entry)
            else:
                self._by_client.setdefault(entry.client, []).append(entry)

    def find(self, client: str, server: str) -> SecretEntry | None:
        """The best entry for ``client`` authenticating to ``server`` (pppd's precedence,
        class doc); None: no line matches."""
        for candidates in (self._by_client.get(client, ()), self._wildcard):
            fallback: SecretEntry | None = None
            for entry in candidates:
                if entry.server == server:
                    return entry
                if fallback is None and entry.server == WILDCARD:
                    fallback = entry
            if fallback is not None:
                return fallback
        return None


class SecretsAuthenticator:
    """An :class:`~.auth.base.Authenticator` that decides at once from parsed entries.

    ``server`` is our name as it appears in the file's second column (pppd
    uses its own host name or the ``name`` option).
    """

    def __init__(
        self,
        entries: Iterable[SecretEntry],
        *,
        server: str,
        index: SecretsIndex | None = None,
    ) -> None:
        self.entries = list(entries)
        self.server = server
        self.index = index if index is not None else SecretsIndex(self.entries)
        """``index``: one already built for the same entries (shared by the
        authenticators of one file, one per server name)."""

    @classmethod
    def from_text(cls, text: str, *, server: str) -> SecretsAuthenticator:
        return cls(parse_secrets(text), server=server)

    def authenticate(self, request: AuthRequest) -> AuthDecision:
        entry = self.index.find(request.user, self.server)
        denied = AuthDecision(success=False, message="Access denied")
        if entry is None:
            return denied
        granted = AuthDecision(success=True, peer_address=entry.peer_address)
        secret = entry.secret
        if isinstance(request, PapRequest):
            ok = hmac.compare_digest(secret.encode("utf-8"), request.password)
            return granted if ok else denied
        if isinstance(request, ChapMd5Request):
            ok = md5_verify(
                request.identifier, secret.encode("utf-8"), request.challenge, request.response
            )
            return granted if ok else denied
        assert isinstance(request, MsChapV2Request)
        authenticator_response = mschapv2.verify_nt_response(
            request.authenticator_challenge,
            request.peer_challenge,
            request.user,
            secret,
            request.nt_response,
        )
        if authenticator_response is None:
            return denied
        return AuthDecision(
            success=True,
            authenticator_response=authenticator_response,
            peer_address=entry.peer_address,
        )
