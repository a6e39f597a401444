"""The review UI: server-rendered pages over the same queue the API uses (see web/routes.py)."""

from prefloop_collector.web.routes import router

__all__ = ["router"]
