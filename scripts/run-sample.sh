#!/usr/bin/env bash
# Runs the desktop app on the bundled sample study (a synthetic CT + MR phantom pair).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
# The dev profile is optimised (opt-level 2) and shares its build with the tests.
exec cargo run --locked -- "$@"
