"""The small shared shape of every service's command: `prefloop-<service> STAGE [args]`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from prefloop_core.settings import SettingsError

Handler = Callable[[list[str]], int]

EXIT_USAGE = 2
EXIT_NOT_BUILT = 3


def not_built(stage: str, issue: int) -> Handler:
    """A stage whose service code has not landed yet: says so plainly and fails."""

    def handler(_args: list[str]) -> int:
        print(
            f"prefloop {stage}: not built yet; it lands with issue #{issue} (see `issues show {issue}`).",
            file=sys.stderr,
        )
        return EXIT_NOT_BUILT

    return handler


def dispatch(prog: str, handlers: Mapping[str, Handler], argv: list[str] | None = None) -> int:
    """Run the handler of the stage named first in argv; user mistakes become one line and exit 2."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in handlers:
        print(f"usage: {prog} {{{','.join(handlers)}}} [args...]", file=sys.stderr)
        return EXIT_USAGE
    try:
        return handlers[argv[0]](argv[1:])
    except SettingsError as exc:
        print(f"prefloop {argv[0]}: {exc}", file=sys.stderr)
        return EXIT_USAGE
