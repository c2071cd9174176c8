"""What both WebSocket servers share: authentication of the handshake and the send loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import msgspec

from rustqueue_core.errors import RustQueueError
from rustqueue_core.models import Credentials, Principal
from rustqueue_websocket.broker import Subscriber

EVENTS_PATH = "/api/v1/events"


class HandshakeRejected(Exception):
    """The handshake is answered with an HTTP error and the JSON error envelope."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @property
    def body(self) -> bytes:
        return msgspec.json.encode(
            {"ok": False, "error": {"code": self.code, "message": self.message, "details": None}}
        )


def authenticate_handshake(
    host: object | None,
    *,
    authorization: str | None,
    query_token: str | None,
    peer: str | None,
    forwarded_for: str | None,
) -> Principal | None:
    """Ask the plugin host who connects: the ``Authorization`` header, else ``?token=`` (browsers
    cannot set headers on a WebSocket)."""
    authenticate = getattr(host, "authenticate", None)
    if authenticate is None:
        return None
    credentials = Credentials(
        transport="websocket",
        header=authorization,
        token=query_token if authorization is None else None,
        peer=peer,
        forwarded_for=forwarded_for,
    )
    try:
        principal: Principal = authenticate(credentials)
    except RustQueueError as exc:
        raise HandshakeRejected(exc.status, exc.code, exc.message) from None
    return principal


async def pump(
    subscriber: Subscriber,
    send_text: Callable[[str], Awaitable[None]],
    wait_closed: Callable[[], Awaitable[None]],
) -> None:
    """Send the subscriber's frames until the client goes away or the broker closes it.

    The client's messages are read (and ignored) only to notice a close promptly."""

    async def watch() -> None:
        try:
            await wait_closed()
        finally:
            subscriber.close()

    watcher = asyncio.create_task(watch())
    try:
        while True:
            frame = await subscriber.frames.get()
            if frame is None:
                break
            await send_text(frame)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
