#!/usr/bin/env bash
# Installs everything mjpeg-relay needs to build, run and test on a fresh Debian 12 machine,
# skipping whatever is already present. Safe to run again and again.
#
#   scripts/setup.sh            everything (what the test command needs)
#   scripts/setup.sh --run      only what running the relay with the dashboard needs
#
# Versions are pinned to ones that build here with no network beyond the package registries (the
# wasm-bindgen CLI must equal frontend/Cargo.toml's wasm-bindgen; Trunk 0.21 drives both); keep
# them in step with Trunk.toml and frontend/Cargo.toml.
set -euo pipefail

TRUNK_VERSION=0.21.14
WASM_BINDGEN_VERSION=0.2.130
BINARYEN_VERSION=132.0.0

root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-all}
log() { printf '[setup] %s\n' "$*" >&2; }

# Debian packages. `apt-get update` runs at most once, and only when something is missing.
need_apt=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
want_pkg() { have_pkg "$1" || need_apt+=("$1"); }

want_pkg pkg-config
want_pkg libclang-dev      # bindgen for v4l2-sys (nokhwa, the camera source)
if [ "$mode" != "--run" ]; then
  want_pkg chromium        # headless browser tests
  want_pkg chromium-driver # WebDriver for them
  want_pkg ffmpeg          # third-party reader of the classic stream
  want_pkg nginx           # the reverse proxy of deploy/nginx, in front of the relay in a test
  want_pkg systemd         # systemd-analyze checks deploy/mjpeg-relay.service
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Python packages for the push examples' tests (examples/push_opencv.py) and the Python client's
# (clients/python, run with pytest).
if [ "$mode" != "--run" ] && ! python3 -c "import cv2, numpy, requests, prometheus_client, pytest" 2>/dev/null; then
  log "pip install requests opencv-python-headless prometheus-client pytest"
  python3 -m pip install --quiet --disable-pip-version-check requests opencv-python-headless \
    prometheus-client pytest
fi

# Rust targets and tools.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
if ! trunk --version 2>/dev/null | grep -q " $TRUNK_VERSION\$"; then
  log "cargo install trunk $TRUNK_VERSION (about 5 minutes on 2 cores)"
  cargo install --locked trunk --version "$TRUNK_VERSION"
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION\$"; then
  # No --locked: the CLI's lock file names a crate version the registry does not have (TOOLCHAIN.md).
  log "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# cargo-deb packs the .deb (scripts/package.sh; tests/tests/deploy.rs installs it with dpkg).
CARGO_DEB_VERSION=3.8.0
if [ "$mode" != "--run" ] && ! cargo deb --version 2>/dev/null | grep -q " $CARGO_DEB_VERSION\$"; then
  log "cargo install cargo-deb $CARGO_DEB_VERSION (about 2 minutes)"
  cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

# wasm-opt from npm's binaryen, into a project-local prefix: Debian's binaryen is too old for
# what wasm-bindgen 0.2.130 emits.
tools="$root/.tools"
if [ ! -x "$tools/node_modules/.bin/wasm-opt" ] || \
   ! grep -q "\"version\": \"$BINARYEN_VERSION\"" "$tools/node_modules/binaryen/package.json" 2>/dev/null; then
  log "npm install binaryen@$BINARYEN_VERSION into .tools/"
  mkdir -p "$tools"
  npm install --silent --prefix "$tools" --no-audit --no-fund "binaryen@$BINARYEN_VERSION" >/dev/null
fi
log "ready"
