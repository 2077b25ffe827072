#!/usr/bin/env bash
# Installs what is missing, builds the dashboard and the relay, and runs the relay on
# http://127.0.0.1:8080/: the first camera as stream "main" when this machine has one, else the
# built-in test pattern. Any arguments go to mjpeg-relay instead, e.g.
#   scripts/run.sh --stream cam=files:/srv/frames
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash scripts/setup.sh --run
trunk build --release
cargo build --release -p mjpeg-relay
if [ $# -eq 0 ] && compgen -G "/dev/video*" >/dev/null; then
  set -- --stream main=camera
fi
exec target/release/mjpeg-relay "$@"
