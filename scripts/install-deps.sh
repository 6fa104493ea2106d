#!/usr/bin/env bash
# Installs what fuseprint needs on a fresh Debian/Ubuntu machine: a Rust toolchain and the
# system libraries the window and the headless GPU tests load at run time.
# Usage: scripts/install-deps.sh [--test]   (--test adds Xvfb and friends for the test suite)
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

runtime_pkgs=(ca-certificates curl gcc libc6-dev pkg-config
  libvulkan1 mesa-vulkan-drivers libegl1 libgl1-mesa-dri libx11-6 libx11-xcb1 libxcursor1
  libxrandr2 libxi6 libxkbcommon0 libxkbcommon-x11-0 libwayland-client0 libwayland-cursor0
  libwayland-egl1 libfontconfig1 libdbus-1-3)
test_pkgs=(xvfb imagemagick xdotool)

pkgs=("${runtime_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then pkgs+=("${test_pkgs[@]}"); fi

if [ "${1:-}" = "--test" ] && ! python3 -m pip --version >/dev/null 2>&1; then pkgs+=(python3 python3-pip); fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "installing the Rust toolchain (rustup)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
