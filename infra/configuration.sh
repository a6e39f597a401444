#!/usr/bin/env bash
# Write docs/configuration.md from the settings classes themselves (each in its service's venv: no service imports
# another). Each service's tests fail when its section is stale; run `make docs` to rewrite it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="${PREFLOOP_VENVS_DIR:-$ROOT/.venvs}"
table() {  # venv, module, class
  "$VENVS/$1/bin/python" -c "from prefloop_core.settings import settings_markdown; from $2 import $3; print(settings_markdown($3))"
}
{
  cat <<'MD'
# Configuration

Every setting is an environment variable with the `PREFLOOP_` prefix, or a line in a `.env` file in the working
directory. Settings are validated when a command starts: a bad value stops it with one line naming the variable,
the problem and the value. `prefloop config` prints what is in effect (secrets hidden). `make setup` writes
`PREFLOOP_VENVS_DIR` and `PREFLOOP_LLAMA_CPP_DIR` to `.venvs/env`; `./prefloop` and the Makefile read it. In compose,
`.env.example` lists what the stack needs.

This page is generated from the settings classes (`make docs`); a test in each service keeps its section in sync.

## Every service

MD
  table collector prefloop_core.settings Settings
  printf '\n## Collector\n\n'
  table collector prefloop_collector.settings CollectorSettings
  printf '\n## Server\n\n'
  table server prefloop_server.settings ServerSettings
  printf '\n## Flows\n\n'
  table flows prefloop_flows.settings FlowsSettings
  printf '\nThe trainer reads a YAML config of its own (`prefloop train --help`, [training.md](training.md)).\n'
} >"$ROOT/docs/configuration.md"
echo "docs/configuration.md written"
