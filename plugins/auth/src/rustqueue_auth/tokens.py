"""Bearer-token checks with a per-client lockout after repeated failures.

Messages match the original server's (PROTOCOL §3.2). Tokens are compared in constant time against
every configured token, so the time taken does not reveal which token, or how much of one, matched.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Callable, Sequence

import msgspec

from rustqueue_core.errors import AuthError, ConfigError, RateLimited
from rustqueue_core.models import Credentials, Principal

MISSING_HEADER = "Missing Authorization header"
WRONG_SCHEME = "Authorization header must use Bearer scheme"
EMPTY_TOKEN = "Missing bearer token"
INVALID_BEARER = "Invalid bearer token"
INVALID_TOKEN = "Invalid authentication token"
MISSING_TOKEN = "Missing authentication token"
LOCKED_OUT = "Too many failed authentication attempts. Try again later."
BEARER_PREFIX = "Bearer "


class AuthConfig(msgspec.Struct, kw_only=True):
    """The ``[auth]`` table."""

    enabled: bool = False
    tokens: list[str] = msgspec.field(default_factory=list)
    #: Peers (addresses or CIDR networks) whose ``X-Forwarded-For`` header names the real client. Loopback by
    #: default: a reverse proxy on the same host is the usual deployment.
    trusted_proxies: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1", "::1"])
    #: Lock out loopback clients that come without a forwarded header (local processes can read the tokens
    #: from this machine's config anyway; locking them out only breaks local tooling). Off by default, as
    #: the original never locks out direct clients.
    lockout_loopback: bool = False
    max_failures: int = 5
    lockout_seconds: float = 300.0
    prune_interval_seconds: float = 60.0


class _Failures(msgspec.Struct):
    count: int
    first_at: float
    last_at: float


class TokenAuthenticator:
    """The state of one auth plugin instance: configuration, token bytes and the failure table."""

    def __init__(self, config: AuthConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        if config.max_failures < 1:
            raise ConfigError("auth.max_failures must be at least 1")
        if config.lockout_seconds <= 0:
            raise ConfigError("auth.lockout_seconds must be greater than zero")
        self.config = config
        self.enabled = config.enabled
        self._tokens: tuple[bytes, ...] = tuple(token.encode() for token in config.tokens if token)
        self._proxies = _parse_networks(config.trusted_proxies)
        self._clock = clock
        self._failures: dict[str, _Failures] = {}
        self._next_prune = 0.0

    # ------------------------------------------------------------------ the decision
    def authenticate(self, credentials: Credentials) -> Principal | None:
        if not self.enabled:
            return None
        client = self.client_key(credentials)
        now = self._clock()
        self._maybe_prune(now)
        if client is not None and self.is_locked(client, now):
            raise RateLimited(LOCKED_OUT)
        try:
            index = self._check(credentials)
        except AuthError:
            if client is not None:
                self._record_failure(client, now)
            raise
        if client is not None:
            self._failures.pop(client, None)
        return Principal(name=f"token-{index}", roles=("token",))

    def _check(self, credentials: Credentials) -> int:
        if credentials.token is not None:
            # TCP ``auth`` command and WebSocket ``?token=``: a bare token, no scheme.
            index = self.match(credentials.token)
            if index is None:
                raise AuthError(INVALID_TOKEN)
            return index
        header = credentials.header
        if header is None:
            raise AuthError(MISSING_HEADER if credentials.transport != "tcp" else MISSING_TOKEN)
        if not header.startswith(BEARER_PREFIX):
            raise AuthError(WRONG_SCHEME)
        token = header[len(BEARER_PREFIX) :]
        if not token:
            raise AuthError(EMPTY_TOKEN)
        index = self.match(token)
        if index is None:
            raise AuthError(INVALID_BEARER)
        return index

    def match(self, token: str) -> int | None:
        """Index of the matching token, comparing against every token so timing reveals nothing."""
        candidate = token.encode()
        found: int | None = None
        for index, known in enumerate(self._tokens):
            if hmac.compare_digest(candidate, known) and found is None:
                found = index
        return found

    # ------------------------------------------------------------------ lockout
    def client_key(self, credentials: Credentials) -> str | None:
        """The socket peer, or the first ``X-Forwarded-For`` entry when the peer is a trusted proxy."""
        peer = credentials.peer
        if peer is None:
            return None
        forwarded = credentials.forwarded_for
        if forwarded and self._proxies and _in_networks(peer, self._proxies):
            first = forwarded.split(",", 1)[0].strip()
            if first:
                return first
        if not self.config.lockout_loopback and _is_loopback(peer):
            return None
        return peer

    def is_locked(self, client: str, now: float | None = None) -> bool:
        entry = self._failures.get(client)
        if entry is None:
            return False
        now = self._clock() if now is None else now
        return entry.count >= self.config.max_failures and now - entry.last_at < self.config.lockout_seconds

    def failures(self, client: str) -> int:
        entry = self._failures.get(client)
        return 0 if entry is None else entry.count

    def _record_failure(self, client: str, now: float) -> None:
        entry = self._failures.get(client)
        if entry is None or now - entry.first_at > self.config.lockout_seconds:
            self._failures[client] = _Failures(1, now, now)
        else:
            entry.count += 1
            entry.last_at = now

    def _maybe_prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + self.config.prune_interval_seconds
        window = self.config.lockout_seconds
        stale = [client for client, entry in self._failures.items() if now - entry.last_at >= window]
        for client in stale:
            del self._failures[client]

    @property
    def tracked_clients(self) -> int:
        return len(self._failures)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    networks: list[Network] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            message = f"auth.trusted_proxies: {value!r} is not an address or network: {exc}"
            raise ConfigError(message) from None
    return tuple(networks)


def _in_networks(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"
