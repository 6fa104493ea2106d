#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs what it needs, then runs every test.
# GPU code runs on Mesa's lavapipe (CPU Vulkan); no display or GPU is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
export PATH="$HOME/.cargo/bin:$PATH"
# wgpu/winit complain without a private runtime dir.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"
# Real-data tests read ../shared/data; in CI its absence is an error, not a skip.
if [ -n "${CI:-}" ]; then export FUSEPRINT_REQUIRE_DATA=1 FUSEPRINT_REQUIRE_GPU=1; fi
# The real-model tests compare against ONNX Runtime's outputs; fetch the library (PyPI wheel) so
# they run on it. tract, the built-in backend, is covered by the unit tests.
if ort_lib=$(scripts/fetch-onnxruntime.sh); then
  export ORT_DYLIB_PATH="$ort_lib"
  [ -n "${CI:-}" ] && export FUSEPRINT_REQUIRE_ORT=1
else
  echo "note: ONNX Runtime could not be fetched; real-model tests will be skipped on tract" >&2
fi
cargo test --locked --all-targets "$@"
