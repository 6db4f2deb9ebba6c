"""MS-CHAPv2 against the example of RFC 2759 section 9.2, and CHAP-MD5 against hashlib."""

from __future__ import annotations

import hashlib

import pytest

from l2tp.ppp.auth import mschapv2 as m
from l2tp.ppp.auth.chap import md5_response, md5_verify, parse_value_packet

# RFC 2759 section 9.2.
USER = "User"
PASSWORD = "clientPass"
AUTHENTICATOR_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
CHALLENGE_HASH = bytes.fromhex("D02E4386BCE91226")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
PASSWORD_HASH = bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
PASSWORD_HASH_HASH = bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F")
AUTHENTICATOR_RESPONSE = b"S=407A5589115FD0D6209F510FE9C04566932CDA56"


def test_rfc2759_example() -> None:
    assert m.challenge_hash(PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, USER) == CHALLENGE_HASH
    assert m.nt_password_hash(PASSWORD) == PASSWORD_HASH
    assert m.nt_password_hash_hash(PASSWORD_HASH) == PASSWORD_HASH_HASH
    assert m.challenge_response(CHALLENGE_HASH, PASSWORD_HASH) == NT_RESPONSE
    nt = m.generate_nt_response(AUTHENTICATOR_CHALLENGE, PEER_CHALLENGE, USER, PASSWORD)
    assert nt == NT_RESPONSE
    response = m.generate_authenticator_response(
        PASSWORD, NT_RESPONSE, PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, USER
    )
    assert m.format_success(response) == AUTHENTICATOR_RESPONSE


def test_domain_prefix_is_not_hashed() -> None:
    assert m.challenge_hash(PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, "BIGCO\\User") == (
        CHALLENGE_HASH
    )


def test_verify_accepts_the_example_and_refuses_a_wrong_password() -> None:
    good = m.verify_nt_response(
        AUTHENTICATOR_CHALLENGE, PEER_CHALLENGE, USER, PASSWORD, NT_RESPONSE
    )
    assert good is not None and m.format_success(good) == AUTHENTICATOR_RESPONSE
    assert (
        m.verify_nt_response(
            AUTHENTICATOR_CHALLENGE, PEER_CHALLENGE, USER, "clientpass", NT_RESPONSE
        )
        is None
    )


def test_response_value_layout() -> None:
    value = m.build_response_value(PEER_CHALLENGE, NT_RESPONSE)
    assert len(value) == 49
    assert value[16:24] == bytes(8) and value[-1] == 0  # Reserved and Flags (RFC 2759 4)
    assert m.parse_response_value(value) == (PEER_CHALLENGE, NT_RESPONSE)
    assert m.parse_response_value(value[:-1]) is None


def test_success_and_failure_messages() -> None:
    raw = bytes.fromhex("407A5589115FD0D6209F510FE9C04566932CDA56")
    assert m.format_success(raw, "Welcome") == AUTHENTICATOR_RESPONSE + b" M=Welcome"
    assert m.parse_success(AUTHENTICATOR_RESPONSE + b" M=Welcome") == (raw, "Welcome")
    assert m.parse_success(AUTHENTICATOR_RESPONSE.lower().replace(b"s=", b"S=")) == (raw, "")
    assert m.parse_success(b"S=1234") is None
    failure = m.format_failure(AUTHENTICATOR_CHALLENGE, "bad password")
    assert failure == (b"E=691 R=0 C=5B5D7C7D7B3F2F3E3C2C602132262628 V=3 M=bad password")
    assert m.failure_text(failure) == "error 691: bad password"
    assert m.failure_text(b"E=649 R=0") == "error 649"


@pytest.mark.parametrize("identifier", [0, 1, 255])
def test_chap_md5_response(identifier: int) -> None:
    challenge = bytes(range(16))
    expected = hashlib.md5(bytes([identifier]) + b"secret" + challenge).digest()
    assert md5_response(identifier, b"secret", challenge) == expected
    assert md5_verify(identifier, b"secret", challenge, expected)
    assert not md5_verify(identifier, b"Secret", challenge, expected)


def test_value_packet_parsing() -> None:
    assert parse_value_packet(b"\x02abname") == (b"ab", "name")
    assert parse_value_packet(b"\x05ab") is None
    assert parse_value_packet(b"\x00") is None
    assert parse_value_packet(b"") is None
