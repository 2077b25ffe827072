#!/usr/bin/env bash
# Installs what is missing, then runs every test: formatting and lints, the shared crate on
# wasm32, the dashboard build, unit tests, and the black-box tests against the real relay (HTTP
# clients, ffmpeg, headless Chromium). This is what CI runs (.ci/run).
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash scripts/setup.sh

step() { printf '\n==> %s\n' "$*"; }
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
