"""The ``[webhooks]`` configuration section."""

from __future__ import annotations

import msgspec


class StaticWebhook(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A webhook declared in the configuration file (``[[webhooks.endpoints]]``).

    It is registered at startup and removed again when it disappears from the file. ``id`` is
    optional; without it a stable id is derived from the URL, events and queues.
    """

    url: str
    events: list[str] = msgspec.field(default_factory=list)
    queues: list[str] = msgspec.field(default_factory=list)
    secret: str | None = None
    id: str | None = None


class WebhooksConfig(msgspec.Struct, kw_only=True):
    """Settings of the webhooks plugin (PROTOCOL §6 plus the outbox's own)."""

    enabled: bool = False
    #: Timeout of one delivery attempt.
    delivery_timeout_ms: int = 5_000
    #: Retries after the first attempt; a delivery is tried ``max_retries + 1`` times.
    max_retries: int = 3
    #: Delay after failed attempt k (0-based) is ``retry_base_delay_ms * 2**k``.
    retry_base_delay_ms: int = 1_000
    #: Deliveries in flight at once, over all webhooks.
    max_concurrency: int = 16
    #: SQLite file holding webhooks and the outbox. Default: ``rustqueue-webhooks.db`` beside the
    #: SQLite job store, else in the working directory. ``":memory:"`` keeps nothing across restarts.
    store_path: str | None = None
    #: Event batches buffered between the engine and the outbox writer; beyond it batches are dropped
    #: (counted and logged) so that the engine never waits for webhooks.
    queue_size: int = 10_000
    #: Failed deliveries kept for inspection; older ones are pruned.
    keep_failed: int = 10_000
    endpoints: list[StaticWebhook] = msgspec.field(default_factory=list)

    def validate(self) -> WebhooksConfig:
        from rustqueue_core.errors import ConfigError

        if self.delivery_timeout_ms <= 0:
            raise ConfigError("webhooks.delivery_timeout_ms must be greater than zero")
        if self.max_retries < 0:
            raise ConfigError("webhooks.max_retries must not be negative")
        if self.retry_base_delay_ms < 0:
            raise ConfigError("webhooks.retry_base_delay_ms must not be negative")
        if self.max_concurrency < 1:
            raise ConfigError("webhooks.max_concurrency must be at least 1")
        if self.queue_size < 1:
            raise ConfigError("webhooks.queue_size must be at least 1")
        if self.keep_failed < 0:
            raise ConfigError("webhooks.keep_failed must not be negative")
        from rustqueue_webhooks.events import WebhookInputError, validate_input

        for index, endpoint in enumerate(self.endpoints):
            try:
                validate_input(endpoint.url, endpoint.events, endpoint.secret)
            except WebhookInputError as exc:
                raise ConfigError(f"webhooks.endpoints[{index}]: {exc.message}") from None
        return self
