"""The one stable OpenAI-compatible endpoint: every request goes to the slot that is live when it arrives.

The live slot is read once per request, so a promotion sends new requests to the new slot at
once while requests (and streams) already under way finish on the old one; each slot counts
its in-flight requests, which is what replacing a slot waits for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from prefloop_server.bluegreen import BlueGreen
from prefloop_server.ensemble import Ensemble, UpstreamError, ensemble_of, stream
from prefloop_server.slots import Slot
from prefloop_server.upstream import send

log = logging.getLogger("prefloop.router")
router = APIRouter()
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


def error_body(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    """An error in OpenAI's shape, which OpenAI clients read: the official one shows `Error code: N - <message>`."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def openai_error(status: int, message: str, type_: str, code: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, type_, code), status_code=status)


def is_openai_path(path: str) -> bool:
    """The router's own paths, whose errors OpenAI clients read (the admin API keeps FastAPI's `detail`)."""
    return path == "/v1" or path.startswith("/v1/")


def _unavailable() -> JSONResponse:
    return openai_error(503, "no model is live yet: deploy and promote a release", "server_error", "model_not_live")


def _headers(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}


def request_problem(method: str, path: str, body: bytes) -> str | None:
    """What makes a request one llama-server would fail with a 500 instead of refusing it (a body that is not a JSON
    object; a chat message whose role is not text); None when it can be forwarded."""
    if method != "POST":
        return None
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):
        return "the body is not JSON: send a JSON object (Content-Type: application/json)"
    if not isinstance(request, dict):
        return f"the body must be a JSON object, not {type(request).__name__}"
    messages = request.get("messages")
    if path == "/v1/chat/completions" and isinstance(messages, list):
        for index, message in enumerate(messages):
            if isinstance(message, dict) and not isinstance(message.get("role", ""), str):
                return f"messages[{index}].role: must be a string (system, user or assistant)"
    return None


async def _forward(request: Request, path: str) -> Response:
    bluegreen: BlueGreen = request.app.state.bluegreen
    client: httpx.AsyncClient = request.app.state.http
    body = await request.body()
    if problem := request_problem(request.method, path, body):
        return openai_error(400, problem, "invalid_request_error", "invalid_request")
    # Pick the live slot and count this request on it with no await in between: a slot that stops being
    # live is drained (in_flight back to 0) before it is stopped, so it must never be picked but not counted.
    slot: Slot | None = bluegreen.live_slot()  # read once: this request stays on this slot
    if slot is None:
        return _unavailable()
    slot.in_flight += 1
    if request.app.state.settings.server_log_prompts:
        log.info("%s %s -> %s: %s", request.method, path, slot.name.value, body[:2000].decode(errors="replace"))
    ensemble = ensemble_of(slot, request.app.state.settings)
    if ensemble is not None:
        try:
            return await _ensemble_answer(ensemble, client, path, body)
        finally:
            slot.in_flight -= 1
    try:
        upstream = await send(
            client,
            client.build_request(
                request.method,
                f"{slot.url}{path}",
                content=body,
                headers={"content-type": request.headers.get("content-type", "application/json"), **slot.headers()},
            ),
            stream=True,
        )
    except httpx.HTTPError as exc:
        slot.in_flight -= 1
        return openai_error(502, f"the live slot did not answer: {exc}", "server_error", "upstream_unavailable")

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()
            slot.in_flight -= 1

    return StreamingResponse(relay(), status_code=upstream.status_code, headers=_headers(upstream.headers))


async def _ensemble_answer(ensemble: Ensemble, client: httpx.AsyncClient, path: str, body: bytes) -> Response:
    """An ensemble answers chat completions only (streamed once every member has answered), and lists itself."""
    if path == "/v1/models":
        return JSONResponse({"object": "list", "data": [{"id": ensemble.model.tag, "object": "model", "owned_by": "prefloop"}]})
    if path != "/v1/chat/completions":
        return openai_error(
            400,
            f"the live model {ensemble.model.tag} is an ensemble: it answers /v1/chat/completions only",
            "invalid_request_error",
        )
    request = json.loads(body)
    try:
        result = await ensemble.complete(client, request)
    except UpstreamError as exc:
        return Response(exc.response.content, status_code=exc.response.status_code, headers=_headers(exc.response.headers))
    except httpx.HTTPError as exc:
        return openai_error(502, f"the live slot did not answer: {exc}", "server_error", "upstream_unavailable")
    if request.get("stream"):
        options = request.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return StreamingResponse(stream(result, include_usage), media_type="text/event-stream")
    return JSONResponse(result)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    return await _forward(request, "/v1/chat/completions")


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    return await _forward(request, "/v1/completions")


@router.get("/v1/models")
async def models(request: Request) -> Response:
    return await _forward(request, "/v1/models")


@router.get("/health")
async def health(request: Request) -> Response:
    bluegreen: BlueGreen = request.app.state.bluegreen
    live = bluegreen.live_slot()
    if live is None or live.model is None:
        return JSONResponse({"status": "no model live"}, status_code=503)
    return JSONResponse({"status": "ok", "live": live.name.value, "tag": live.model.tag})
