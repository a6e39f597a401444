"""`prefloop-server`: the server's entry point (also its container's command)."""

from __future__ import annotations

import sys

from prefloop_core.servicecli import dispatch, not_built

HANDLERS = {
    "serve": not_built("serve", 6),
    "deploy": not_built("deploy", 6),
    "promote": not_built("promote", 6),
    "rollback": not_built("rollback", 6),
    "qa": not_built("qa", 6),
}


def main() -> None:
    sys.exit(dispatch("prefloop-server", HANDLERS))
