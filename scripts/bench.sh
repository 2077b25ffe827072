#!/usr/bin/env bash
# Reproduces the figures in docs/benchmarks.md: builds release binaries, makes ~48 KB 640x480
# frames, starts the relay on loopback and runs the load client against it, one configuration
# after another, then the relay against the floor (scripts/bench-floor.sh: ../shared/floor and the
# relay through the same load in alternating rounds, reported as ratios), then the dashboard in
# headless Chromium for 5 minutes, then the wall (scripts/bench-wall.sh). Results go to
# bench-out/*.json. Takes about 19 minutes.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cargo build --release -p mjpeg-relay -p mjpeg-bench
out=bench-out
mkdir -p "$out"
[ -d "$out/frames" ] || target/release/mjpeg-bench frames "$out/frames" --count 60 --target-kb 48

port=18090
relay_pid=
start_relay() {
  target/release/mjpeg-relay --listen "127.0.0.1:$port" --stream "$1" "${@:2}" --log warn &
  relay_pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1; done
  echo "relay did not start" >&2; exit 1
}
stop_relay() { kill "$relay_pid"; wait "$relay_pid" || true; }
bench() { target/release/mjpeg-bench run "http://127.0.0.1:$port/streams/main.frames" --pid "$relay_pid" "$@"; }
trap 'kill $relay_pid 2>/dev/null || true' EXIT

echo "== test pattern 640x480 at 30 fps, one viewer: CPU of rendering + encoding + serving"
start_relay "main=test?size=640x480&fps=30"
bench --viewers 1 --seconds 20 --json "$out/test-pattern.json" >/dev/null
stop_relay

echo "== files source, 100 viewers (+10 joining viewers timed)"
start_relay "main=files:$out/frames"
bench --viewers 100 --seconds 20 --join-probes 20 --json "$out/viewers-100.json" >/dev/null
stop_relay

echo "== files source, 1000 viewers"
start_relay "main=files:$out/frames"
bench --viewers 1000 --seconds 20 --warmup 5 --json "$out/viewers-1000.json" >/dev/null
stop_relay

# A 100 KB/s link emulated by a reader that reads its socket itself, 4 KB at a time, sleeping
# what each read takes at that rate (unread bytes stay in its receive buffer, as on a real link),
# with a 4 KB, a 64 KB and the kernel's default (autotuned) receive buffer; then the same with
# ?adapt=1 (.frames: quality and size). Frames are 48 KB: one takes 0.48 s to cross such a link.
for rcvbuf in 4096 65536 0; do
  echo "== files source, 100 viewers + 1 viewer on a 100 KB/s link, receive buffer ${rcvbuf/#0/default}"
  start_relay "main=files:$out/frames"
  bench --viewers 100 --slow 1 --slow-rate 100000 --slow-rcvbuf "$rcvbuf" --seconds 20 \
    --json "$out/slow-viewer-$rcvbuf.json" >/dev/null
  stop_relay
done
for rcvbuf in 65536 0; do
  echo "== the same, the slow viewer with ?adapt=1, receive buffer ${rcvbuf/#0/default}"
  start_relay "main=files:$out/frames"
  bench --viewers 100 --slow 1 --slow-rate 100000 --slow-rcvbuf "$rcvbuf" --slow-query adapt=1 \
    --seconds 20 --json "$out/adaptive-$rcvbuf.json" >/dev/null
  stop_relay
done

echo "== relay chain: origin (files) -> edge (upstream) -> 100 viewers on the edge"
start_relay "main=files:$out/frames"
origin_pid=$relay_pid
target/release/mjpeg-relay --listen "127.0.0.1:$((port + 1))" --stream "main=http://127.0.0.1:$port/streams/main.frames" --log warn &
edge_pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$((port + 1))/healthz" >/dev/null && break; sleep 0.1; done
target/release/mjpeg-bench run "http://127.0.0.1:$((port + 1))/streams/main.frames" --pid "$edge_pid" \
  --viewers 100 --seconds 20 --json "$out/chain-edge.json" >/dev/null
kill "$edge_pid"; wait "$edge_pid" || true
relay_pid=$origin_pid
stop_relay

echo "== the relay against the floor (../shared/floor): 100 and 1000 viewers, 3 alternating rounds"
RELAY_BIN=target/release/mjpeg-relay BENCH_BIN=target/release/mjpeg-bench scripts/bench-floor.sh

echo "== camera: encoding raw 1280x720 YUYV frames on one core"
target/release/mjpeg-bench encode-yuyv --width 1280 --height 720 --frames 300 > "$out/encode-yuyv.json"
# A rendition's cost per frame (docs/renditions.md): 1280x720 to 320 and 640 wide.
for to in 320 640; do
  target/release/mjpeg-bench rendition --to "$to" --frames 300 > "$out/rendition-$to.json"
done

echo "== dashboard in headless Chromium: test pattern 640x480 at 30 fps, 60 s fetch path, then compare mode"
trunk build --release
printf '{"wasm_bytes": %d, "wasm_gzip9_bytes": %d}\n' "$(stat -c %s dist/*.wasm)" \
  "$(gzip -9 -c dist/*.wasm | wc -c)" > "$out/wasm-size.json"
start_relay "main=test?size=640x480&fps=30" --dashboard dist
target/release/mjpeg-bench dashboard "http://127.0.0.1:$port/" --seconds 300 --fetch-only 60 \
  --json "$out/dashboard.json" >/dev/null
stop_relay

scripts/bench-wall.sh

for f in test-pattern viewers-100 viewers-1000 slow-viewer-4096 slow-viewer-65536 slow-viewer-0 adaptive-65536 adaptive-0 chain-edge floor encode-yuyv rendition-320 rendition-640 wasm-size dashboard wall-30 wall-15 wall-source-30; do echo "--- $f"; cat "$out/$f.json"; echo; done
