"""The review UI: server-rendered pages over the same queue the API uses (see web/routes.py), and the contributors'
pages (web/contribute.py)."""

from prefloop_collector.web.contribute import router as contribute_router
from prefloop_collector.web.routes import router

router.include_router(contribute_router)

__all__ = ["router"]
