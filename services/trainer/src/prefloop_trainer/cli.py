"""`prefloop-trainer`: the trainer's entry point (also its container's command)."""

from __future__ import annotations

import sys

from prefloop_core.servicecli import dispatch, not_built

HANDLERS = {
    "train": not_built("train", 4),
}


def main() -> None:
    sys.exit(dispatch("prefloop-trainer", HANDLERS))
