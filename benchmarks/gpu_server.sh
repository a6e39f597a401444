#!/usr/bin/env bash
# Issue #6's GPU measurement: prefloop's QA runner against a CUDA llama-server, N requests in flight vs one at a time
# (benchmarks/qa_concurrency.py). The device tool's H200 image has nvcc, CMake and ninja but no package index and no
# llama.cpp, so the pinned llama.cpp source travels as a trimmed archive and infra/llama_cpp/build.sh (what the CUDA
# server image runs) builds it there for Hopper only. It also checks that CUDA build path.
#
#   benchmarks/gpu_server.sh prepare   here, after `benchmarks/gpu_train.sh prepare` (its wheels and SmolLM2's
#                                      tokenizer and config are reused): .gpu/llama-src.tar.xz (the pinned llama.cpp
#                                      source, trimmed, ~8 MB)
#   benchmarks/gpu_server.sh build     there: llama.cpp with CUDA for sm_90 into /tmp/prefloop-cache (12 of the 16
#                                      cores); its log in $OUT/llama_build.log
#   benchmarks/gpu_server.sh bench     there, after build: a SmolLM2-shaped model with random weights (the real one is
#                                      98 MB, over the carry limit beside the wheels) -> f16 GGUF by llama.cpp's own
#                                      converter -> llama-server -ngl 999 -np 8 -> the bundled QA set (72 RAG prompts, <= 64
#                                      tokens) at 1 vs 4 vs 8 in flight -> $OUT/gpu_server.md
#
# With the trainer's GPU check, as one device call (the build compiles while the model trains):
#   run(command="bash benchmarks/gpu_server.sh build & bash benchmarks/gpu_train.sh run; wait; bash benchmarks/gpu_server.sh bench",
#       carry=[".gpu"], timeout_s=590)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
GPU_DIR="$ROOT/.gpu"
VERSION="$(sed -n 's/^VERSION="\${LLAMA_CPP_PYTHON_VERSION:-\([0-9.]*\)}"$/\1/p' infra/llama_cpp/build.sh)"
CACHE=/tmp/prefloop-cache
VARIANT=cuda-sm90
OUT="${OUT:-$GPU_DIR/out}"

case "${1:-}" in
  prepare)
    [[ -d "$GPU_DIR/wheels" && -f "$GPU_DIR/tokenizer/config.json" ]] \
      || { echo "gpu_server.sh: run 'benchmarks/gpu_train.sh prepare' first (its wheels, SmolLM2's tokenizer and config)" >&2; exit 2; }
    work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
    python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$work"
    tar -xzf "$work/llama_cpp_python-$VERSION.tar.gz" -C "$work"
    # What the build and the converter need; the rest of the tree (models' vocabularies, docs, tests) is 120 MB.
    tar -cJf "$GPU_DIR/llama-src.tar.xz" -C "$work/llama_cpp_python-$VERSION/vendor/llama.cpp" CMakeLists.txt cmake \
      ggml src include common vendor tools licenses conversion gguf-py convert_hf_to_gguf.py convert_lora_to_gguf.py \
      scripts/ui-assets.cmake
    du -sh "$GPU_DIR"
    ;;
  build)
    mkdir -p "$OUT" /tmp/llama-src
    tar -xJf "$GPU_DIR/llama-src.tar.xz" -C /tmp/llama-src
    started=$SECONDS
    LLAMA_CPP_SRC=/tmp/llama-src PREFLOOP_CACHE_DIR="$CACHE" LLAMA_CPP_VARIANT="$VARIANT" JOBS=12 \
      LLAMA_CPP_CMAKE_ARGS="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90" \
      bash infra/llama_cpp/build.sh >"$OUT/llama_build.log" 2>&1 || { tail -n 40 "$OUT/llama_build.log"; exit 1; }
    echo "llama.cpp CUDA build: $((SECONDS - started)) s" | tee -a "$OUT/llama_build.log"
    ;;
  bench)
    LLAMA="$CACHE/llama.cpp/$VERSION-$VARIANT"
    [[ -x "$LLAMA/bin/llama-server" ]] || { echo "gpu_server.sh: no CUDA llama-server in $LLAMA: build failed or not run"; exit 1; }
    mkdir -p "$OUT"
    [[ -d /tmp/site/pydantic ]] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site "$GPU_DIR"/wheels/*.whl
    export PYTHONPATH="/tmp/site:$ROOT/libs/core/src:$ROOT/services/server/src" PYTHONUNBUFFERED=1
    python3 - "$GPU_DIR/tokenizer" /tmp/random-smollm2 <<'EOF'
import sys
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
torch.manual_seed(0)
smollm2, out = sys.argv[1:3]
AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(smollm2), dtype=torch.float16).save_pretrained(out)
AutoTokenizer.from_pretrained(smollm2).save_pretrained(out)
EOF
    PYTHONPATH="$LLAMA/src/gguf-py:$PYTHONPATH" python3 "$LLAMA/src/convert_hf_to_gguf.py" /tmp/random-smollm2 \
      --outtype f16 --outfile /tmp/random-smollm2.gguf >"$OUT/convert.log" 2>&1 || { tail -n 30 "$OUT/convert.log"; exit 1; }
    "$LLAMA/bin/llama-server" -m /tmp/random-smollm2.gguf -ngl 999 -np 8 -c 16384 --host 127.0.0.1 --port 18080 \
      --no-webui >"$OUT/llama_server.log" 2>&1 &
    server=$!
    trap 'kill "$server" 2>/dev/null || true' EXIT
    for _ in $(seq 120); do curl -sf http://127.0.0.1:18080/health >/dev/null && break; sleep 1; done
    curl -sf http://127.0.0.1:18080/health >/dev/null || { tail -n 30 "$OUT/llama_server.log"; exit 1; }
    gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
    python3 benchmarks/qa_concurrency.py --url http://127.0.0.1:18080 --llama-server --levels 4,8 --max-tokens 64 --out "$OUT/gpu_server.md" \
      --qa-set flows/src/prefloop_flows/data/qa_set.json \
      --label "$gpu · SmolLM2-135M shape, random weights, f16 GGUF, llama.cpp $VERSION CUDA (sm_90) -ngl 999 -np 8, straight to llama-server"
    grep -m1 -i "offloaded" "$OUT/llama_server.log" | tee -a "$OUT/gpu_server.md" || true
    ;;
  *)
    sed -n 2,19p "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
