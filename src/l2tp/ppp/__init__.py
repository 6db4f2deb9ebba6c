"""A sans-IO PPP implementation: LCP, PAP/CHAP/MS-CHAPv2, IPCP and IPv6CP.

Frames in and out are what a Linux ``/dev/ppp`` channel carries (Protocol
field first, no HDLC). The entry point is :class:`PppConnection`; see
``docs/ppp-core.md`` for the event contract with the driver.
"""

from __future__ import annotations

from .auth.base import (
    AuthDecision,
    Authenticator,
    AuthRequest,
    ChapMd5Request,
    MsChapV2Request,
    PapRequest,
    PeerRoute,
)
from .config import AddressPool, PppConfig
from .constants import AuthMethod, Protocol
from .cp import RestartConfig
from .events import (
    AuthFailed,
    AuthRequested,
    AuthSucceeded,
    EchoFailed,
    LinkDown,
    LinkUp,
    NetworkDown,
    NetworkFailed,
    NetworkPhase,
    NetworkUp,
    Phase,
    PppEvent,
    Role,
    Terminated,
)
from .secrets import SecretEntry, SecretsAuthenticator, SecretsFileError, parse_secrets
from .session import PppConnection, PppCounters

__all__ = [
    "AddressPool",
    "AuthDecision",
    "AuthFailed",
    "AuthMethod",
    "AuthRequest",
    "AuthRequested",
    "AuthSucceeded",
    "Authenticator",
    "ChapMd5Request",
    "EchoFailed",
    "LinkDown",
    "LinkUp",
    "MsChapV2Request",
    "NetworkDown",
    "NetworkFailed",
    "NetworkPhase",
    "NetworkUp",
    "PapRequest",
    "PeerRoute",
    "Phase",
    "PppConfig",
    "PppConnection",
    "PppCounters",
    "PppEvent",
    "Protocol",
    "RestartConfig",
    "Role",
    "SecretEntry",
    "SecretsAuthenticator",
    "SecretsFileError",
    "Terminated",
    "parse_secrets",
]
