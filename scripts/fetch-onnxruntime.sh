#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library (from PyPI's onnxruntime wheel; nothing is installed
# into Python) into target/onnxruntime and prints its path. fuseprint loads it at run time
# through ORT_DYLIB_PATH; without it the pure-Rust tract backend is used.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${ORT_VERSION:-1.32.0}"
dest="target/onnxruntime/$version"
lib=$(ls "$dest"/libonnxruntime.so.* 2>/dev/null | head -n1 || true)
if [ -z "$lib" ]; then
  mkdir -p "$dest"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$tmp" "onnxruntime==$version" >&2
  python3 - "$tmp" "$dest" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "onnxruntime-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if "/capi/libonnxruntime.so" in name:
            target = os.path.join(sys.argv[2], os.path.basename(name))
            with z.open(name) as src, open(target, "wb") as dst:
                dst.write(src.read())
PY
  rm -rf "$tmp"
  lib=$(ls "$dest"/libonnxruntime.so.* | head -n1)
fi
echo "$(pwd)/$lib"
