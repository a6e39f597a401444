#!/usr/bin/env bash
# Every test suite, each in the venv of the code it tests (core in the collector's: no torch), in two
# lanes that run side by side: the torch suites (trainer, exporter) spend their time computing, the
# others mostly wait on servers, browsers and Prefect, so together they take about the longer lane's
# time instead of the sum. Each suite's output is printed whole when it ends; the exit status is
# non-zero if any suite failed, and the failing suites are named at the end.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="${PREFLOOP_VENVS_DIR:-$ROOT/.venvs}"
LOGS="$(mktemp -d "${TMPDIR:-/tmp}/prefloop-test.XXXXXX")"
trap 'rm -rf "$LOGS"' EXIT
cd "$ROOT"

suite() {  # name venv paths...
  local name="$1" venv="$2"; shift 2
  local started=$SECONDS
  "$VENVS/$venv/bin/python" -m pytest -q -p no:cacheprovider --durations=5 "$@" >"$LOGS/$name.log" 2>&1
  local status=$?
  { echo "[test] $name ($((SECONDS - started)) s, exit $status)"; cat "$LOGS/$name.log"; } | flock "$LOGS/.print" cat
  [[ $status -eq 0 ]] || echo "$name" >>"$LOGS/failed"
}

lane_torch() {
  suite trainer trainer services/trainer/tests
  suite exporter exporter services/exporter/tests
}

lane_services() {
  suite core collector libs/core/tests
  suite collector collector services/collector/tests
  suite server server services/server/tests
  suite "flows, layout and end to end" flows flows/tests tests
}

started=$SECONDS
lane_torch &
torch_pid=$!
lane_services
wait "$torch_pid"
if [[ -s "$LOGS/failed" ]]; then
  echo "[test] FAILED after $((SECONDS - started)) s: $(paste -sd, "$LOGS/failed")"
  exit 1
fi
echo "[test] all suites passed in $((SECONDS - started)) s"
