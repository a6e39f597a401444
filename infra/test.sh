#!/usr/bin/env bash
# Every test suite, each in the venv of the code it tests (core in the collector's: no torch), one
# after the other (side by side on 2 cores they took longer: the suites are CPU-bound). Each suite
# prints as it runs, then its time and slowest tests; every suite runs even if one fails, and the
# failing ones are named at the end (exit status 1).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="${PREFLOOP_VENVS_DIR:-$ROOT/.venvs}"
LOGS="$(mktemp -d "${TMPDIR:-/tmp}/prefloop-test.XXXXXX")"
trap 'rm -rf "$LOGS"' EXIT
cd "$ROOT"

suite() {  # name venv paths...
  local name="$1" venv="$2"; shift 2
  local started=$SECONDS
  echo "[test] $name"
  "$VENVS/$venv/bin/python" -m pytest -q -p no:cacheprovider --durations=5 "$@"
  local status=$?
  echo "[test] $name: $((SECONDS - started)) s, exit $status"
  [[ $status -eq 0 ]] || echo "$name" >>"$LOGS/failed"
}

check() {  # name command...: a static check, reported like a suite
  local name="$1"; shift
  local started=$SECONDS
  echo "[test] $name"
  "$@"
  local status=$?
  echo "[test] $name: $((SECONDS - started)) s, exit $status"
  [[ $status -eq 0 ]] || echo "$name" >>"$LOGS/failed"
}

started=$SECONDS
check "lint (ruff check)" "$VENVS/collector/bin/ruff" check --no-cache libs services flows tests benchmarks
check "format (ruff format --check)" "$VENVS/collector/bin/ruff" format --check --no-cache libs services flows tests benchmarks
check "types (mypy --strict: core)" "$VENVS/collector/bin/mypy" --strict --cache-dir "$LOGS/mypy" libs/core/src/prefloop_core
for code in services/collector services/server services/trainer services/exporter flows; do  # mypy.ini's checks
  check "types (mypy: ${code#services/})" env MYPYPATH=libs/core/src:libs/ml/src \
    "$VENVS/$(basename "$code")/bin/mypy" --cache-dir "$LOGS/mypy-$(basename "$code")" "$code/src"
done
suite core collector libs/core/tests
suite collector collector services/collector/tests
suite server server services/server/tests
suite trainer trainer services/trainer/tests
suite exporter exporter services/exporter/tests
suite "flows, layout and end to end" flows flows/tests tests
if [[ -s "$LOGS/failed" ]]; then
  echo "[test] FAILED after $((SECONDS - started)) s: $(paste -sd, "$LOGS/failed")"
  exit 1
fi
echo "[test] all suites passed in $((SECONDS - started)) s"
