"""Who is calling: each reviewer has their own token (PREFLOOP_COLLECTOR_REVIEWERS).

The API takes it as `Authorization: Bearer <token>`, the review UI as a cookie set at sign-in.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status

from prefloop_collector.settings import CollectorSettings

COOKIE = "prefloop_token"


def reviewer_for(token: str | None, settings: CollectorSettings) -> str | None:
    if not token:
        return None
    for name, secret in settings.collector_reviewers.items():
        if hmac.compare_digest(token.encode(), secret.get_secret_value().encode()):
            return name
    return None


def token_from(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE)


def require_reviewer(request: Request) -> str:
    """FastAPI dependency: the signed-in reviewer's name, or 401."""
    name = reviewer_for(token_from(request), request.app.state.settings)
    if name is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a reviewer token is needed: send 'Authorization: Bearer <token>' (tokens are configured in "
            "PREFLOOP_COLLECTOR_REVIEWERS)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return name
