"""The server process: router + admin API in one FastAPI app, owning the two llama-server slots."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException as StarletteHTTPException

from prefloop_core.asgi_limits import BodySizeLimit, detail_body
from prefloop_core.store import ArtifactNotFound, IntegrityError, open_store
from prefloop_core.toolchain import llama_cpp
from prefloop_server.admin import install_error_handlers
from prefloop_server.admin import router as admin_router
from prefloop_server.bluegreen import BlueGreen, OperationRefused
from prefloop_server.router import error_body, is_openai_path, openai_error
from prefloop_server.router import router as openai_router
from prefloop_server.settings import ServerSettings
from prefloop_server.slots import SlotFailed

log = logging.getLogger("prefloop.server")


def create_app(settings: ServerSettings, initial_tag: str | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bluegreen = BlueGreen(open_store(settings), llama_cpp(settings), settings, settings.home / "server" / "logs")
        app.state.bluegreen = bluegreen
        bluegreen.sweep()
        # Generous read timeout: a long generation streams for minutes; no limit on the pool. Idle connections are
        # dropped after 2 s, before llama-server's own keep-alive timeout (5 s) closes them under a request.
        app.state.http = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=5, read=600, write=60, pool=None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64, keepalive_expiry=2),
        )
        tag = initial_tag or bluegreen.last_live_tag() or settings.server_initial_release
        if tag:
            try:
                await bluegreen.restore(tag, "server start")
                log.warning("serving %s", tag)
            except (SlotFailed, OperationRefused, ArtifactNotFound, IntegrityError) as exc:  # the router starts anyway
                log.error("could not restore %s at start: %s", tag, exc)
        yield
        await app.state.http.aclose()
        await bluegreen.shutdown()

    app = FastAPI(
        title="prefloop server",
        version="0.1.0",
        lifespan=lifespan,
        description="OpenAI-compatible router over blue/green llama-server slots; admin API under /admin.",
    )
    app.state.settings = settings
    app.include_router(openai_router)
    app.include_router(admin_router)
    install_error_handlers(app)

    @app.exception_handler(StarletteHTTPException)
    async def openai_shaped(request: Request, exc: StarletteHTTPException) -> Response:
        """The router's own 404 and 405 in OpenAI's shape; the admin API's errors stay FastAPI's."""
        if not is_openai_path(request.url.path):
            return await http_exception_handler(request, exc)
        return openai_error(
            exc.status_code,
            f"{exc.detail}: {request.method} {request.url.path}",
            "invalid_request_error",
            "unknown_url" if exc.status_code == 404 else None,
        )

    def limit_body(path: str, message: str) -> dict[str, Any]:
        return (
            error_body(message, "invalid_request_error", "request_too_large")
            if is_openai_path(path)
            else detail_body(path, message)
        )

    app.add_middleware(
        BodySizeLimit,
        max_bytes=int(settings.server_max_body_mb * 1024 * 1024),
        setting="PREFLOOP_SERVER_MAX_BODY_MB",
        error_body=limit_body,
    )
    return app


def serve(settings: ServerSettings, host: str, port: int, tag: str | None) -> int:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if settings.server_admin_token is None:
        print("server: PREFLOOP_SERVER_ADMIN_TOKEN is not set: the admin API (deploy, promote, ...) is off", file=sys.stderr)
    print(f"server: OpenAI-compatible router on http://{host}:{port}/v1 (admin API under /admin)")
    uvicorn.run(create_app(settings, tag), host=host, port=port, log_level=settings.log_level.lower(), access_log=False)
    return 0
