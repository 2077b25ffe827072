#!/usr/bin/env bash
# The wall's figures in docs/benchmarks.md ("The wall"): sixteen 640x480 `files:` streams (the
# ~48 KB frames of scripts/bench.sh) on the dashboard's /wall in headless Chromium, tiles about
# 325 px wide (a rendition 352 px wide each), at 30 fps and at 15 fps; then sixteen 320x240
# streams at 30 fps, which tiles that wide play as they are. Reports each tile's FPS
# and latency, the renderer's CPU and the relay's, per second. Builds the release binaries and
# dist/ (no-ops when they are fresh) and makes the frames it lacks.
# Results go to bench-out/wall-*.json. Takes about 3 minutes.
set -euo pipefail
source "$(dirname "$0")/env.sh"
out=bench-out
cargo build --release -p mjpeg-relay -p mjpeg-bench
trunk build --release
mkdir -p "$out"
[ -d "$out/frames" ] || target/release/mjpeg-bench frames "$out/frames" --count 60 --target-kb 48

# 320x240 frames, for tiles that play the sources' own frames (no rendition: the browser's
# cost alone).
small="$out/frames-320"
if [ ! -d "$small" ]; then
  rm -rf "$small.tmp" && mkdir -p "$small.tmp"
  ffmpeg -loglevel error -f lavfi -i testsrc2=size=320x240:rate=30 -frames:v 60 -q:v 5 \
    "$small.tmp/f%03d.jpg"
  mv "$small.tmp" "$small"
fi

port=18091
relay_pid=
trap 'kill $relay_pid 2>/dev/null || true' EXIT
# wall NAME DIR FPS: sixteen streams of DIR's frames at FPS on the wall, tiles ~325 px wide.
wall() {
  streams=()
  for i in $(seq -w 1 16); do streams+=(--stream "s$i=files:$2?fps=$3"); done
  target/release/mjpeg-relay --listen "127.0.0.1:$port" "${streams[@]}" --dashboard dist --log warn &
  relay_pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "relay did not start" >&2; exit 1; }
  target/release/mjpeg-bench wall "http://127.0.0.1:$port/wall" --seconds 20 --window 1320x1200 \
    --pid "$relay_pid" --json "$out/$1.json"
  kill "$relay_pid"; wait "$relay_pid" || true
}
for fps in 30 15; do
  echo "== wall: 16 streams 640x480 at $fps fps, tiles ~325 px (renditions 352 px wide)"
  wall "wall-$fps" "$out/frames" "$fps"
done
echo "== wall: 16 streams 320x240 at 30 fps, tiles ~325 px (the sources' own frames)"
wall wall-source-30 "$small" 30
