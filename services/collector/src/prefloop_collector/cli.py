"""`prefloop-collector`: the collector's entry point (also its container's command)."""

from __future__ import annotations

import sys

from prefloop_core.servicecli import dispatch, not_built

HANDLERS = {
    "collect": not_built("collect", 3),
    "status": not_built("status", 3),
    "review": not_built("review", 3),
    "import": not_built("import", 3),
    "snapshot": not_built("snapshot", 3),
}


def main() -> None:
    sys.exit(dispatch("prefloop-collector", HANDLERS))
