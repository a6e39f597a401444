"""`prefloop-exporter`: the exporter's entry point (also its container's command)."""

from __future__ import annotations

import sys

from prefloop_core.servicecli import dispatch, not_built

HANDLERS = {
    "export": not_built("export", 5),
    "releases": not_built("releases", 5),
}


def main() -> None:
    sys.exit(dispatch("prefloop-exporter", HANDLERS))
