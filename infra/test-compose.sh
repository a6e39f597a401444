#!/usr/bin/env bash
# `make test-compose`: the container stack end to end (tests/compose/check_stack.py) under a real Docker engine.
# infra/docker.sh first (engine, compose, base images: only checks where they are there); an engine this run
# had to start is stopped again at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="${PREFLOOP_VENVS_DIR:-$ROOT/.venvs}"
started=$SECONDS
if ! docker info >/dev/null 2>&1; then
  trap '"$ROOT/infra/docker.sh" stop' EXIT
fi
"$ROOT/infra/docker.sh"
echo "[test-compose] docker ready in $((SECONDS - started)) s"
"$VENVS/flows/bin/python" "$ROOT/tests/compose/check_stack.py" "$@"
