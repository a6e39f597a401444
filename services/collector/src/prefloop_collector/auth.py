"""Who is calling: each reviewer has their own token (PREFLOOP_COLLECTOR_REVIEWERS), each contributor theirs (made
by an admin, stored hashed), the admin one (PREFLOOP_COLLECTOR_ADMIN_TOKEN).

The API takes a token as `Authorization: Bearer <token>`, the review UI as a cookie set at sign-in. The roles are
apart: a reviewer's token opens no contributor call and the other way round.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status

from prefloop_collector.contributors import Contributors
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


def contributor_for(token: str | None, request: Request) -> str | None:
    contributors: Contributors = request.app.state.contributors
    return contributors.who(token)


def require_contributor(request: Request) -> str:
    """FastAPI dependency: the signed-in contributor's name, or 401."""
    name = contributor_for(token_from(request), request)
    if name is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a contributor token is needed (an admin invites you with `prefloop-collector contributors invite`); "
            "a revoked one no longer works",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return name


def require_admin(request: Request) -> None:
    """FastAPI dependency: the caller holds the admin token; 403 while none is configured."""
    secret = request.app.state.settings.collector_admin_token
    if secret is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "admin calls are off: set PREFLOOP_COLLECTOR_ADMIN_TOKEN, or run `prefloop-collector contributors` "
            "on the collector's machine",
        )
    token = token_from(request) or ""
    if not hmac.compare_digest(token.encode(), secret.get_secret_value().encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "the admin token is needed: send 'Authorization: Bearer <PREFLOOP_COLLECTOR_ADMIN_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
