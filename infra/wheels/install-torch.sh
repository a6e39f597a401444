#!/bin/sh
# Installs constraints.txt's torch in an image, in the build TORCH_VARIANT names (cpu, cu128): from a wheel of
# that build in this folder if there is one (its dependencies from PyPI), else from TORCH_INDEX_URL. Leaves the
# pins without torch's line in /tmp/constraints-without-torch.txt, for the image's later installs.
#   usage (in a Dockerfile): install-torch.sh CONSTRAINTS_FILE
set -eu
dir="$(cd "$(dirname "$0")" && pwd)"
version="$(sed -n 's/^torch==\([^+]*\).*/\1/p' "$1")"
[ -n "$version" ] || { echo "install-torch: no torch== line in $1" >&2; exit 1; }
grep -v '^torch==' "$1" >/tmp/constraints-without-torch.txt
for wheel in "$dir"/torch-"$version"+"$TORCH_VARIANT"-*.whl; do
  if [ -f "$wheel" ]; then
    echo "install-torch: torch $version+$TORCH_VARIANT from $(basename "$wheel")"
    exec pip install -c /tmp/constraints-without-torch.txt "$wheel"
  fi
done
echo "install-torch: torch $version from $TORCH_INDEX_URL"
exec pip install --index-url "$TORCH_INDEX_URL" "torch==$version"
