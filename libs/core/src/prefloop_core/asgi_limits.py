"""Request body size limit for every service's HTTP app, as plain ASGI middleware (also for bodies sent without Content-Length).

A body that grows past the limit while it is read gets a 413 at once; the application then
sees the client as disconnected and whatever it tries to send is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Message = dict[str, Any]


def detail_body(_path: str, message: str) -> dict[str, Any]:
    """FastAPI's shape of an error: `{"detail": message}`."""
    return {"detail": message}


class BodySizeLimit:
    def __init__(
        self, app: Any, max_bytes: int, setting: str, error_body: Callable[[str, str], dict[str, Any]] = detail_body
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.setting = setting  # the variable that raises the limit, named in the refusal
        self.error_body = error_body  # (request path, message) -> the refusal's JSON, in the shape that path's clients read

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        seen = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message: Message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    await self._refuse(scope, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, scope: dict[str, Any], send: Any) -> None:
        message = f"request body is over the limit of {self.max_bytes:,} bytes ({self.setting})"
        body = json.dumps(self.error_body(scope.get("path", ""), message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
