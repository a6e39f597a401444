#!/usr/bin/env bash
# Build llama.cpp's llama-server, llama-quantize and llama-perplexity from the pinned llama-cpp-python
# source distribution (PyPI carries the whole llama.cpp tree; GitHub is unreachable here).
# The build is cached outside the work tree, keyed by version, so a second run does nothing.
#
#   infra/llama_cpp/build.sh            -> prints the install directory on its last line
#   LLAMA_CPP_CMAKE_ARGS="-DGGML_CUDA=ON" infra/llama_cpp/build.sh   (CUDA images)
#   LLAMA_CPP_SRC=DIR infra/llama_cpp/build.sh   (build that llama.cpp tree, of the same version, instead of downloading)
#   LLAMA_CPP_VARIANT=cpu-avx512 infra/llama_cpp/build.sh   (adds AVX-512 kernels; see below)
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE="${PREFLOOP_CACHE_DIR:-$HOME/.cache/prefloop}"
# CPU instruction sets. ggml's default native build (-march=native) also compiles its AMX kernels, and on these
# VMs (they advertise AMX) llama-server then crashes on its first matrix multiply (see shared/ENVIRONMENT.md). So the
# build names its instruction sets: AVX2 (cpu-portable, the default: any x86-64 of the last decade), or, asked for
# with LLAMA_CPP_VARIANT=cpu-avx512 on a machine that has them, AVX-512 with VBMI, VNNI and BF16 too (prompt
# processing 1.41x, decoding 1.15x on these VMs, but greedy answers change: benchmarks/results/llama_cpp_build.md).
# The variant's name keys the cache.
VARIANT="${LLAMA_CPP_VARIANT:-cpu-portable}"
CPU_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
if [[ "$VARIANT" == cpu-avx512 ]]; then
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  for flag in avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi avx512_vnni avx512_bf16; do
    [[ "$flags" == *" $flag "* ]] || { echo "llama.cpp: this CPU has no $flag: build the default cpu-portable variant" >&2; exit 1; }
  done
  CPU_ARGS+=" -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON"
fi
DEST="$CACHE/llama.cpp/$VERSION-$VARIANT"
PYTHON="${PYTHON:-python3}"
JOBS="${JOBS:-$(nproc)}"

if [[ -x "$DEST/bin/llama-server" && -x "$DEST/bin/llama-quantize" && -x "$DEST/bin/llama-perplexity" && -f "$DEST/src/conversion/__init__.py" ]]; then
  echo "$DEST"
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/llama-cpp-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if [[ -n "${LLAMA_CPP_SRC:-}" ]]; then  # a llama.cpp tree already here (a machine with no package index)
  src="$LLAMA_CPP_SRC"
else
  echo "llama.cpp: downloading llama-cpp-python==$VERSION source distribution" >&2
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
    "llama-cpp-python==$VERSION" -d "$work" >&2
  tar -xzf "$work"/llama_cpp_python-"$VERSION".tar.gz -C "$work"
  src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"
fi
[[ -f "$src/CMakeLists.txt" ]] || { echo "llama.cpp: no CMakeLists.txt in $src" >&2; exit 1; }

# Extra flags (CUDA) come from LLAMA_CPP_CMAKE_ARGS. No unified `llama` app and no web UI: prefloop runs
# llama-server with --no-webui, and fetching the UI's prebuilt assets needs the network
# (a machine without it would wait on the download's timeouts).
echo "llama.cpp: building llama-server, llama-quantize and llama-perplexity ($VARIANT) with $JOBS jobs (several minutes on 2 cores)" >&2
# shellcheck disable=SC2086
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF \
  $CPU_ARGS ${LLAMA_CPP_CMAKE_ARGS:-} >"$work/cmake.log" 2>&1 \
  || { tail -n 30 "$work/cmake.log" >&2; exit 1; }
cmake --build "$work/build" -j "$JOBS" --target llama-server llama-quantize llama-perplexity >"$work/build.log" 2>&1 \
  || { tail -n 40 "$work/build.log" >&2; exit 1; }

staging="$DEST.partial"
rm -rf "$staging"
mkdir -p "$staging/bin" "$staging/src"
cp "$work/build/bin/llama-server" "$work/build/bin/llama-quantize" "$work/build/bin/llama-perplexity" "$staging/bin/"
# The converters and their own gguf-py travel with the binaries: PyPI's gguf is too old for them.
cp "$src"/convert_hf_to_gguf.py "$src"/convert_lora_to_gguf.py "$staging/src/"
cp -r "$src/gguf-py" "$staging/src/gguf-py"
cp -r "$src/conversion" "$staging/src/conversion"  # the converters' model classes (split out of convert_hf_to_gguf.py)
[[ -f "$src/convert_hf_to_gguf_update.py" ]] && cp "$src/convert_hf_to_gguf_update.py" "$staging/src/"
echo "$VERSION" >"$staging/VERSION"
rm -rf "$DEST"
mv "$staging" "$DEST"
echo "$DEST"
