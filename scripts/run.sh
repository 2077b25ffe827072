#!/usr/bin/env bash
# Installs what is missing, builds the dashboard and the relay, and runs the relay:
# by default the built-in test pattern as stream "main" on http://127.0.0.1:8080/.
# Any arguments go to mjpeg-relay, e.g.  scripts/run.sh --stream cam=files:/srv/frames
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash scripts/setup.sh --run
trunk build --release
cargo build --release -p mjpeg-relay
exec target/release/mjpeg-relay --dashboard dist "$@"
