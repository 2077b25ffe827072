#!/usr/bin/env bash
# Reproduces docs/scaling.md: one origin relay, two edge relays that each relay the origin's
# stream (an `http://` upstream source), and nginx in front balancing viewers over the edges.
# Runs VIEWERS viewers (default 200) for 20 s straight on the origin, then the same number
# through the balancer, and records fps, latency (from the origin's capture time, which edges
# keep), each process's CPU (edge 1 by mjpeg-bench over its 20 s window; the origin, edge 2 and
# nginx from /proc/PID/stat over the whole run, warm-up included), and how the viewers spread. Results in bench-out/scale-*.json.
# Everything runs on this one machine, load client included: the figures show what a hop and a
# balancer cost, not the capacity of separate machines. Takes about a minute.
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash scripts/setup.sh >/dev/null
cargo build --release -p mjpeg-relay -p mjpeg-bench
out=bench-out
mkdir -p "$out"
[ -d "$out/frames" ] || target/release/mjpeg-bench frames "$out/frames" --count 60 --target-kb 48
viewers=${VIEWERS:-200}
seconds=20
origin=18100 edge1=18101 edge2=18102 lb=18103
pids=()
dir=$(mktemp -d)
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

# Up means answering on the port *and* still running: a leftover process from an earlier run
# holding the port would answer too, while ours exited on "address in use".
wait_up() {
  for _ in $(seq 100); do
    kill -0 "$2" 2>/dev/null || { echo "process for :$1 exited (port taken?)" >&2; exit 1; }
    curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return
    sleep 0.1
  done
  echo "nothing on :$1" >&2; exit 1
}
relay() { target/release/mjpeg-relay --listen "127.0.0.1:$1" --stream "$2" --log warn & pids+=($!); wait_up "$1" "$!"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # user + system CPU, clock ticks
hz=$(getconf CLK_TCK)

relay "$origin" "main=files:$out/frames"
origin_pid=${pids[-1]}

echo "== $viewers viewers straight on the origin"
target/release/mjpeg-bench run "http://127.0.0.1:$origin/streams/main.frames" --pid "$origin_pid" \
  --viewers "$viewers" --seconds "$seconds" --warmup 3 --json "$out/scale-origin.json" >/dev/null

relay "$edge1" "main=http://127.0.0.1:$origin/streams/main.frames"
edge1_pid=${pids[-1]}
relay "$edge2" "main=http://127.0.0.1:$origin/streams/main.frames"
edge2_pid=${pids[-1]}

# nginx as the balancer, with the deployment's own locations file; the upstream lists the edges.
cat > "$dir/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
error_log $dir/error.log warn; pid $dir/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  upstream mjpeg_relay { least_conn; server 127.0.0.1:$edge1; server 127.0.0.1:$edge2; keepalive 32; }
  server { listen 127.0.0.1:$lb; include $PWD/deploy/nginx/mjpeg-relay-locations.conf; }
}
CONF
nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" & pids+=($!)
nginx_pid=${pids[-1]}
wait_up "$lb" "$nginx_pid"

echo "== $viewers viewers through nginx over two edges"
before=("$(ticks "$origin_pid")" "$(ticks "$edge2_pid")" "$(ticks "$nginx_pid")")
started=$(date +%s.%N)
( sleep $((seconds / 2 + 3))
  for p in $origin $edge1 $edge2; do curl -s "http://127.0.0.1:$p/api/streams/main"; echo; done \
    > "$out/scale-spread.txt" ) &
spread_pid=$!
pids+=("$spread_pid")
target/release/mjpeg-bench run "http://127.0.0.1:$lb/streams/main.frames" --pid "$edge1_pid" \
  --viewers "$viewers" --seconds "$seconds" --warmup 3 --json "$out/scale-edges.json" >/dev/null
wait "$spread_pid"
after=("$(ticks "$origin_pid")" "$(ticks "$edge2_pid")" "$(ticks "$nginx_pid")")
elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
cores() { awk -v a="$1" -v b="$2" -v hz="$hz" -v t="$elapsed" 'BEGIN { printf "%.3f", (b - a) / hz / t }'; }
printf '{"cpu_cores_over_%ss": {"origin": %s, "edge2": %s, "nginx": %s}}\n' "$elapsed" \
  "$(cores "${before[0]}" "${after[0]}")" "$(cores "${before[1]}" "${after[1]}")" \
  "$(cores "${before[2]}" "${after[2]}")" > "$out/scale-cpu.json"

for f in scale-origin.json scale-edges.json scale-cpu.json scale-spread.txt; do echo "--- $f"; cat "$out/$f"; echo; done
