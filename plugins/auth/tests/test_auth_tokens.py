"""Token checks and lockout on their own, with a hand-driven clock."""

from __future__ import annotations

import pytest
from rustqueue_auth.tokens import AuthConfig, TokenAuthenticator

from rustqueue_core.errors import AuthError, ConfigError, RateLimited
from rustqueue_core.models import Credentials


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock | None = None, **settings: object) -> TokenAuthenticator:
    config = AuthConfig(enabled=True, tokens=["alpha", "beta"], **settings)  # type: ignore[arg-type]
    return TokenAuthenticator(config, clock=clock or Clock())


def http(header: str | None, peer: str | None = "10.0.0.1", forwarded: str | None = None) -> Credentials:
    return Credentials(transport="http", header=header, peer=peer, forwarded_for=forwarded)


def test_disabled_abstains():
    authenticator = TokenAuthenticator(AuthConfig(enabled=False, tokens=["alpha"]))
    assert authenticator.authenticate(http(None)) is None


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Missing Authorization header"),
        ("Basic YWxwaGE=", "Authorization header must use Bearer scheme"),
        ("bearer alpha", "Authorization header must use Bearer scheme"),
        ("Bearer ", "Missing bearer token"),
        ("Bearer gamma", "Invalid bearer token"),
        ("Bearer alph", "Invalid bearer token"),
    ],
)
def test_http_rejections_use_the_original_messages(header, message):
    with pytest.raises(AuthError) as caught:
        make().authenticate(http(header))
    assert caught.value.message == message
    assert (caught.value.code, caught.value.status) == ("UNAUTHORIZED", 401)


def test_every_configured_token_is_accepted_with_a_distinct_principal():
    authenticator = make()
    first = authenticator.authenticate(http("Bearer alpha"))
    second = authenticator.authenticate(http("Bearer beta"))
    assert first is not None and second is not None
    assert first.name != second.name and not first.anonymous
    assert "alpha" not in first.name


def test_bare_tokens_from_tcp_and_websocket():
    authenticator = make()
    assert authenticator.authenticate(Credentials(transport="tcp", token="beta", peer="10.0.0.2")) is not None
    with pytest.raises(AuthError) as caught:
        authenticator.authenticate(Credentials(transport="tcp", token="nope", peer="10.0.0.2"))
    assert caught.value.message == "Invalid authentication token"


def test_lockout_on_the_sixth_request_even_with_a_valid_token():
    clock = Clock()
    authenticator = make(clock)
    for _ in range(5):
        with pytest.raises(AuthError):
            authenticator.authenticate(http("Bearer wrong"))
        clock.now += 1
    with pytest.raises(RateLimited) as caught:
        authenticator.authenticate(http("Bearer alpha"))
    assert caught.value.message == "Too many failed authentication attempts. Try again later."
    assert caught.value.status == 429
    # Other clients are unaffected.
    assert authenticator.authenticate(http("Bearer alpha", peer="10.0.0.9")) is not None
    # The lock ends 300 s after the last failure (at t+4; the clock now reads t+5).
    clock.now += 298
    with pytest.raises(RateLimited):
        authenticator.authenticate(http("Bearer alpha"))
    clock.now += 2
    assert authenticator.authenticate(http("Bearer alpha")) is not None
    assert authenticator.failures("10.0.0.1") == 0


def test_success_clears_the_count_and_old_failures_restart_it():
    clock = Clock()
    authenticator = make(clock)
    for _ in range(4):
        with pytest.raises(AuthError):
            authenticator.authenticate(http("Bearer wrong"))
    authenticator.authenticate(http("Bearer alpha"))
    assert authenticator.failures("10.0.0.1") == 0
    for _ in range(4):
        with pytest.raises(AuthError):
            authenticator.authenticate(http(None))
    clock.now += 301
    with pytest.raises(AuthError):
        authenticator.authenticate(http(None))
    assert authenticator.failures("10.0.0.1") == 1


def test_forwarded_for_counts_only_behind_a_trusted_proxy():
    clock = Clock()
    authenticator = make(clock, trusted_proxies=["127.0.0.1", "10.1.0.0/16"])
    direct = http("Bearer wrong", peer="192.168.1.5", forwarded="1.2.3.4")
    assert authenticator.client_key(direct) == "192.168.1.5"
    proxied = http("Bearer wrong", peer="10.1.2.3", forwarded="1.2.3.4, 10.1.2.3")
    assert authenticator.client_key(proxied) == "1.2.3.4"
    for _ in range(5):
        with pytest.raises(AuthError):
            authenticator.authenticate(proxied)
    with pytest.raises(RateLimited):
        authenticator.authenticate(http("Bearer alpha", peer="127.0.0.1", forwarded="1.2.3.4"))
    # The proxy itself, and other clients behind it, are not locked.
    assert authenticator.authenticate(http("Bearer alpha", peer="127.0.0.1", forwarded="5.6.7.8")) is not None
    assert authenticator.authenticate(http("Bearer alpha", peer="10.1.2.3")) is not None


def test_stale_entries_are_pruned():
    clock = Clock()
    authenticator = make(clock)
    for peer in ("a", "b", "c"):
        with pytest.raises(AuthError):
            authenticator.authenticate(http(None, peer=peer))
    assert authenticator.tracked_clients == 3
    clock.now += 400
    authenticator.authenticate(http("Bearer alpha", peer="d"))
    assert authenticator.tracked_clients == 0


def test_unknown_peer_is_never_locked():
    authenticator = make()
    for _ in range(10):
        with pytest.raises(AuthError):
            authenticator.authenticate(http("Bearer wrong", peer=None))


def test_invalid_settings_are_rejected():
    with pytest.raises(ConfigError):
        TokenAuthenticator(AuthConfig(enabled=True, trusted_proxies=["not-an-ip"]))
    with pytest.raises(ConfigError):
        TokenAuthenticator(AuthConfig(enabled=True, max_failures=0))


def test_loopback_clients_are_not_locked_out_unless_configured() -> None:
    from rustqueue_core.errors import AuthError, RateLimited
    from rustqueue_core.models import Credentials

    def attempts(auth: TokenAuthenticator, peer: str, forwarded: str | None = None) -> str:
        for _ in range(6):
            try:
                auth.authenticate(
                    Credentials(transport="http", header="Bearer wrong", peer=peer, forwarded_for=forwarded)
                )
            except RateLimited:
                return "locked"
            except AuthError:
                continue
        return "open"

    default = TokenAuthenticator(AuthConfig(enabled=True, tokens=["t"]))
    assert attempts(default, "127.0.0.1") == "open"  # a local process, like the original's direct clients
    assert attempts(default, "::1") == "open"
    assert attempts(default, "127.0.0.1", forwarded="203.0.113.9") == "locked"  # behind a local proxy
    assert attempts(default, "198.51.100.7") == "locked"  # a remote peer is keyed on its address
    strict = TokenAuthenticator(AuthConfig(enabled=True, tokens=["t"], lockout_loopback=True))
    assert attempts(strict, "127.0.0.1") == "locked"
