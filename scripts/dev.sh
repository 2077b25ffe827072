#!/usr/bin/env bash
# Dashboard development: `trunk serve` on http://127.0.0.1:8081/ (rebuilds and reloads on every
# change under frontend/ and shared/), with /streams/ and /api/ proxied to a relay.
#   scripts/dev.sh                         # relay on http://127.0.0.1:8080 (started if none answers)
#   scripts/dev.sh http://10.0.0.5:8080    # another relay
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash scripts/setup.sh --run
relay=${1:-http://127.0.0.1:8080}
relay=${relay%/}

relay_pid=
if ! curl -sf "$relay/healthz" >/dev/null; then
  if [ $# -gt 0 ]; then
    echo "no relay answers at $relay/healthz" >&2
    exit 1
  fi
  echo "starting a relay on the test pattern at $relay"
  cargo build --release -p mjpeg-relay
  target/release/mjpeg-relay --listen 127.0.0.1:8080 --stream main=test --log warn &
  relay_pid=$!
  trap 'kill $relay_pid 2>/dev/null || true' EXIT
  for _ in $(seq 50); do curl -sf "$relay/healthz" >/dev/null && break; sleep 0.1; done
fi

# Trunk.toml with the relay's address in its proxies, next to it so its relative paths hold.
config=.trunk-dev.toml
sed "s|http://127.0.0.1:8080/|$relay/|" Trunk.toml > "$config"
trunk serve --config "$config"
