#!/usr/bin/env bash
# Re-pin constraints.txt: resolve every package of every service together, so all venvs agree.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV="${PREFLOOP_CACHE_DIR:-$HOME/.cache/prefloop}/uv-0.13.9/bin/uv"
[[ -x "$UV" ]] || { echo "run make setup first (it installs uv)" >&2; exit 1; }
cd "$ROOT"
inputs="$(mktemp)"; trap 'rm -f "$inputs"' EXIT
printf -- '-e ./%s[test]\n' libs/core libs/ml services/collector services/server services/trainer services/exporter flows >"$inputs"
{
  echo "# Pinned versions of every package prefloop installs locally (all services together)."
  echo "# Regenerate with \`make lock\` after changing a pyproject.toml; setup installs with -c this file."
  "$UV" pip compile --quiet -p 3.11 --find-links /opt/wheels "$inputs" --no-header --no-annotate | grep -v '^-e'
} >constraints.txt
echo "constraints.txt re-pinned"
