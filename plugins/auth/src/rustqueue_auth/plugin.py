"""Entry point of the auth plugin (group ``rustqueue``, name ``auth``).

The host registers one ``AuthPlugin`` per plugin host (``rustqueue_plugin_factory``), so two engines in
one process never share tokens or lockout state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rustqueue_auth.tokens import AuthConfig, TokenAuthenticator
from rustqueue_core import hookimpl

if TYPE_CHECKING:
    from rustqueue_core.config import Config, OptionRegistry
    from rustqueue_core.models import Credentials, Principal
    from rustqueue_core.plugins import PluginHost

logger = logging.getLogger("rustqueue.auth")


class AuthPlugin:
    """Bearer tokens from ``[auth]``: abstains while disabled, rejects bad credentials when enabled."""

    def __init__(self, config: AuthConfig | None = None) -> None:
        self.authenticator = TokenAuthenticator(config or AuthConfig())

    @hookimpl
    def rustqueue_add_options(self, options: OptionRegistry) -> None:
        options.add(
            key="auth.enabled",
            flag="--auth",
            env="RUSTQUEUE_AUTH_ENABLED",
            type=bool,
            help="require bearer tokens on HTTP, TCP and WebSocket",
        )
        options.add(
            key="auth.tokens", env="RUSTQUEUE_AUTH_TOKENS", type=list, help="comma-separated list of accepted tokens"
        )

    @hookimpl
    def rustqueue_configure(self, config: Config) -> None:
        settings = config.section("auth", AuthConfig)
        self.authenticator = TokenAuthenticator(settings)
        if settings.enabled and not settings.tokens:
            logger.warning("auth is enabled but no token is configured: every protected request is rejected")

    @hookimpl
    def rustqueue_authenticate(self, credentials: Credentials) -> Principal | None:
        return self.authenticator.authenticate(credentials)


def rustqueue_plugin_factory(host: PluginHost) -> AuthPlugin:
    return AuthPlugin()
