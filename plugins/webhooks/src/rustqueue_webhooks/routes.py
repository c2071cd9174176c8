"""Litestar route handlers of the webhook API (PROTOCOL §3.5), bound to one service.

Imported only when the http plugin collects routes, so Litestar stays out of plain imports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery

from rustqueue_core.errors import NotReady
from rustqueue_webhooks.events import WebhookInputError
from rustqueue_webhooks.service import WebhookService
from rustqueue_webhooks.store import FAILED, PENDING

_encoder = msgspec.json.Encoder()
_TAGS = ["webhooks"]


class WebhookInput(msgspec.Struct, kw_only=True):
    url: str = ""
    events: list[str] = msgspec.field(default_factory=list)
    queues: list[str] = msgspec.field(default_factory=list)
    secret: str | None = None


_decoder = msgspec.json.Decoder(WebhookInput)


def _json(payload: Any, status: int = 200) -> Response[bytes]:
    return Response(content=_encoder.encode(payload), status_code=status, media_type="application/json")


def _error(code: str, message: str, status: int) -> Response[bytes]:
    # Webhook-route errors carry no "details" key, as in the original.
    return _json({"ok": False, "error": {"code": code, "message": message}}, status)


def _disabled() -> Response[bytes]:
    return _error("WEBHOOKS_DISABLED", "Webhooks are not enabled", 503)


def _not_found(webhook_id: str) -> Response[bytes]:
    return _error("WEBHOOK_NOT_FOUND", f"Webhook '{webhook_id}' not found", 404)


def webhook_route_handlers(
    resolve: Callable[[], WebhookService | None], starting: Callable[[], bool] = lambda: False
) -> list[Any]:
    """The webhook routes of one engine; ``resolve`` returns its running service. They answer 503
    ``WEBHOOKS_DISABLED`` while the plugin is disabled or not running for that engine, except while the
    engine is still starting (``starting()``): the service starts with the engine's lifespans, after
    recovery, so until then they answer the startup gate's ``NOT_READY`` (503 with ``Retry-After``)."""

    def current() -> WebhookService | None:
        service = resolve()
        if service is not None and service.enabled and service.running:
            return service
        if starting() and (service is None or service.enabled):
            raise NotReady()
        return None

    @post(
        "/api/v1/webhooks",
        tags=_TAGS,
        summary="Register a webhook",
        description='Body `{"url": "https://...", "events": [...], "queues": [...], "secret": str|null}`. '
        "Events accept `job_completed` and `job.completed` spellings (pushed, completed, failed, dlq, "
        'cancelled, progress); empty lists mean all. Answers `201 {"ok": true, "webhook": {...}}`; '
        "the secret is never returned.",
        status_code=201,
    )
    async def create_webhook(request: Request[Any, Any, Any]) -> Response[bytes]:
        service = current()
        if service is None:
            return _disabled()
        raw = await request.body()
        try:
            body = _decoder.decode(raw)
        except msgspec.ValidationError as exc:
            return _error("VALIDATION_ERROR", f"Validation error: {exc}", 422)
        except msgspec.DecodeError as exc:
            return _error("VALIDATION_ERROR", f"Validation error: malformed JSON body: {exc}", 400)
        try:
            hook = await service.create_webhook(body.url, body.events, body.queues, body.secret)
        except WebhookInputError as exc:
            return _error("VALIDATION_ERROR", exc.message, exc.status)
        return _json({"ok": True, "webhook": hook.to_wire()}, 201)

    @get("/api/v1/webhooks", tags=_TAGS, summary="List webhooks")
    async def list_webhooks() -> Response[bytes]:
        service = current()
        if service is None:
            return _disabled()
        return _json({"ok": True, "webhooks": [h.to_wire() for h in service.list_webhooks()]})

    @get("/api/v1/webhooks/{webhook_id:str}", tags=_TAGS, summary="Get a webhook")
    async def get_webhook(webhook_id: FromPath[str]) -> Response[bytes]:
        service = current()
        if service is None:
            return _disabled()
        hook = service.get_webhook(webhook_id)
        if hook is None:
            return _not_found(webhook_id)
        return _json({"ok": True, "webhook": hook.to_wire()})

    @delete("/api/v1/webhooks/{webhook_id:str}", tags=_TAGS, summary="Delete a webhook", status_code=200)
    async def delete_webhook(webhook_id: FromPath[str]) -> Response[bytes]:
        service = current()
        if service is None:
            return _disabled()
        if not await service.delete_webhook(webhook_id):
            return _not_found(webhook_id)
        return _json({"ok": True})

    @get(
        "/api/v1/webhooks/{webhook_id:str}/deliveries",
        tags=_TAGS,
        summary="Inspect a webhook's outbox: pending and failed deliveries (newest first)",
    )
    async def list_deliveries(
        webhook_id: FromPath[str], status: FromQuery[str | None] = None, limit: FromQuery[int] = 50
    ) -> Response[bytes]:
        service = current()
        if service is None:
            return _disabled()
        if status not in (None, PENDING, FAILED):
            return _error("VALIDATION_ERROR", "Validation error: status must be 'pending' or 'failed'", 400)
        if not 1 <= limit <= 1000:
            return _error("VALIDATION_ERROR", "Validation error: limit must be between 1 and 1000", 400)
        rows = await service.list_deliveries(webhook_id, status, limit)
        return _json({"ok": True, "deliveries": [d.to_wire() for d in rows]})

    return [create_webhook, list_webhooks, get_webhook, delete_webhook, list_deliveries]
