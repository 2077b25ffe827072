#!/usr/bin/env bash
# Installs what is missing, then runs every test: formatting and lints, the shared crate on
# wasm32, the dashboard build, unit tests, and the black-box tests against the real relay (HTTP
# clients, ffmpeg, headless Chromium), and the Python client's tests. This is what CI runs (.ci/run).
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash scripts/setup.sh
if [ -n "${CI:-}" ]; then
  # A clean build gains nothing from incremental state, which costs gigabytes of disk.
  export CARGO_INCREMENTAL=0
fi
# Chromium leaves its scoped_dir folders in TMPDIR when it is killed; keep them in a folder of
# this run's, removed at the end whatever happens.
run_tmp=$(mktemp -d)
export TMPDIR="$run_tmp"
# Tests write videos, packages and browser profiles; a full disk fails them in ways that look
# like bugs (a CI run failed so), so each step says how much room is left.
free_space() { df -h --output=avail "$root" | tail -n 1 | tr -d ' '; }
trap 'echo "free disk at the end: $(free_space)"; rm -rf "$run_tmp"' EXIT

step() { printf '\n==> %s (free disk: %s)\n' "$*" "$(free_space)"; }
step "rustfmt"
cargo fmt --all -- --check
step "clippy"
cargo clippy --all-targets -- -D warnings
step "shared crate for wasm32"
cargo build -p mjpeg-shared --target wasm32-unknown-unknown
step "dashboard lints (wasm32)"
cargo clippy -p mjpeg-frontend --target wasm32-unknown-unknown -- -D warnings
step "dashboard unit tests (statistics, clock offset, connection budget; on the host)"
cargo test -p mjpeg-frontend
step "dashboard browser tests (player, stamp readback; wasm-bindgen-test in headless Chromium)"
# The runner takes Chromium's flags from frontend/webdriver.json (root, no sandbox, offline).
CHROMEDRIVER=/usr/bin/chromedriver \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test -p mjpeg-frontend --target wasm32-unknown-unknown
step "dashboard (trunk build --release)"
trunk build --release
step "tests"
cargo test --no-fail-fast
step "Python client (clients/python: pytest against the relay binary cargo test built)"
RELAY_BIN=target/debug/mjpeg-relay python3 -m pytest -q -p no:cacheprovider clients/python/tests
