#!/usr/bin/env bash
# The relay against the floor (../shared/floor, a minimal reference MJPEG server; see its README),
# in the same run: the same frames (the ~48 KB 640x480 JPEGs of scripts/bench.sh) at 30 fps, the
# same `mjpeg-bench run` load, the floor and the relay one after the other, ROUNDS times
# (default 5, the order flipped every round: floor/relay, relay/floor, ...) so that the
# machine's drift hits both alike. For every figure `mjpeg-bench run` gives, prints the relay's
# median over the rounds, the floor's and the ratio relay/floor, and writes them, with the
# per-round values, to bench-out/floor.json (bench-out/floor-$LABEL.json with LABEL set).
# Takes about 8 minutes with the defaults (2 loads x 2 servers x 5 rounds x ~25 s).
#
#   scripts/bench-floor.sh
#   RELAY_BIN=/work/bench-before/target/release/mjpeg-relay LABEL=before scripts/bench-floor.sh
#
# Env:
#   RELAY_BIN     an already-built relay to measure; nothing of the project is built then
#   BENCH_BIN     the mjpeg-bench to load with; default: the one beside RELAY_BIN, else
#                 target/release/mjpeg-bench (built when missing). Give the same BENCH_BIN to a
#                 "before" and an "after" run so that only the relay differs.
#   LABEL         names the output: bench-out/floor-$LABEL.json
#   ROUNDS        rounds of floor + relay per load (5: with 3, the same relay read 1.11x the
#                 floor's CPU per GB in one run and 1.24x in the next, docs/benchmarks.md)
#   BENCH_SECONDS measured seconds per run (20); BENCH_VIEWERS loads, e.g. "100" ("100 1000")
#   RELAY_PATH    the relay's stream path (/streams/main.mjpg?layout=strict, see below)
#   REPORT_ONLY=1 measure nothing: print the table and rewrite the JSON from the raw runs kept in
#                 bench-out/floor-$LABEL/ (meta.json and one JSON per run)
#   FLOOR_SRC     the floor's source (../shared/floor); it is copied to bench-out/floor-build and
#                 built there (../shared is read-only in CI), again only when its source changed
#
# Which relay stream: `/streams/main.mjpg?layout=strict` is the floor's wire format but for one
# header: a `--B` line once, then per part Content-Type, Content-Length, X-Timestamp (the relay
# adds X-Sequence) and the JPEG followed by the next boundary line, as multipart/x-mixed-replace.
# Both are parsed by the same shared parser, and with Content-Length a part counts as complete the
# moment its last JPEG byte arrives, so fps and latency mean the same thing for both. (The
# `.frames` stream that scripts/bench.sh measures puts the boundary before each part instead and
# is served as application/octet-stream: same bytes per part, different content type.)
# What the load client cannot see on the floor: frames a viewer skipped (`skipped_total`), which
# it counts from X-Sequence gaps; the floor sends no X-Sequence, so its figure is always 0 and no
# ratio is given. Latency is part complete minus X-Timestamp on both: the floor stamps a frame
# when it publishes it, the relay when it reads the file.
set -euo pipefail
# Paths given relative to where the script was started, before env.sh moves to the project root.
abs() { [ -z "$1" ] || realpath -e "$1"; }
relay_bin=$(abs "${RELAY_BIN:-}")
bench_bin=$(abs "${BENCH_BIN:-}")
floor_src=$(abs "${FLOOR_SRC:-}")
source "$(dirname "$0")/env.sh"
floor_src=${floor_src:-$(realpath -e ../shared/floor)}

rounds=${ROUNDS:-5}
seconds=${BENCH_SECONDS:-20}
loads=${BENCH_VIEWERS:-100 1000}
relay_path=${RELAY_PATH:-/streams/main.mjpg?layout=strict}
label=${LABEL:-}
out=bench-out
name=floor${label:+-$label}
raw=$out/$name
mkdir -p "$out"

# Measuring, down to the matching `fi` (REPORT_ONLY=1 skips it).
if [ "${REPORT_ONLY:-}" != 1 ]; then
rm -rf "$raw"
mkdir -p "$raw"
started=$(date +%s)

# --- binaries
if [ -z "$relay_bin" ]; then
  cargo build --release -p mjpeg-relay -p mjpeg-bench
  relay_bin=$PWD/target/release/mjpeg-relay
fi
if [ -z "$bench_bin" ]; then
  if [ -x "$(dirname "$relay_bin")/mjpeg-bench" ]; then
    bench_bin=$(dirname "$relay_bin")/mjpeg-bench
  else
    [ -x target/release/mjpeg-bench ] || cargo build --release -p mjpeg-bench
    bench_bin=$PWD/target/release/mjpeg-bench
  fi
fi

# The floor: copied out of ../shared (never built there) into an ignored folder, built once.
floor_dir=$out/floor-build
floor_bin=$floor_dir/target/release/floor
if [ ! -x "$floor_bin" ] || ! diff -rq "$floor_src/src" "$floor_dir/floor/src" >/dev/null ||
   ! cmp -s "$floor_src/Cargo.toml" "$floor_dir/floor/Cargo.toml" ||
   ! cmp -s "$floor_src/Cargo.lock" "$floor_dir/floor/Cargo.lock"; then
  rm -rf "$floor_dir"
  mkdir -p "$floor_dir"
  cp -r "$floor_src" "$floor_dir/floor"
  chmod -R u+w "$floor_dir/floor"
  CARGO_TARGET_DIR=$PWD/$floor_dir/target cargo build --release --locked \
    --manifest-path "$floor_dir/floor/Cargo.toml"
fi

[ -d "$out/frames" ] || "$bench_bin" frames "$out/frames" --count 60 --target-kb 48

echo "relay: $relay_bin"
echo "floor: $floor_bin (from $floor_src)"
echo "load:  $bench_bin run URL --pid PID --viewers N --seconds $seconds --warmup 3 (5 for 1000+)"
echo "relay stream: $relay_path; $rounds rounds per load; loads: $loads viewers"

# --- servers
relay_port=18090
floor_port=18091
server_pid=
trap '[ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true' EXIT
wait_up() {
  for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return; sleep 0.1; done
  echo "$2 did not start" >&2
  exit 1
}
start() {
  case $1 in
    floor)
      FRAMES_DIR=$out/frames FPS=30 "$floor_bin" --port "$floor_port" >>"$raw/floor.log" 2>&1 &
      server_pid=$!
      url=http://127.0.0.1:$floor_port/video_feed
      wait_up "http://127.0.0.1:$floor_port/" floor
      ;;
    relay)
      "$relay_bin" --listen "127.0.0.1:$relay_port" --stream "main=files:$out/frames" --log warn \
        >>"$raw/relay.log" 2>&1 &
      server_pid=$!
      url=http://127.0.0.1:$relay_port$relay_path
      wait_up "http://127.0.0.1:$relay_port/healthz" relay
      ;;
  esac
}
stop() { kill "$server_pid"; wait "$server_pid" || true; server_pid=; }

# --- rounds: per load, floor and relay back to back, the order flipped every round
for r in $(seq "$rounds"); do
  for n in $loads; do
    warmup=3
    [ "$n" -lt 1000 ] || warmup=5
    order="floor relay"
    [ $((r % 2)) -eq 1 ] || order="relay floor"
    for s in $order; do
      start "$s"
      printf 'round %d/%d, %4d viewers, %s ... ' "$r" "$rounds" "$n" "$s"
      "$bench_bin" run "$url" --pid "$server_pid" --viewers "$n" --seconds "$seconds" \
        --warmup "$warmup" --json "$raw/$s-$n-r$r.json" >/dev/null
      stop
      jq -r '"fps min \(.fast.fps_min|.*100|round/100), CPU \(.server_cpu_seconds_per_gb|.*1000|round/1000) s/GB, p99 \(.fast.latency_ms_p99) ms"' \
        "$raw/$s-$n-r$r.json"
    done
  done
done

# What the report needs to know about this run, kept beside the raw results.
command=
for v in RELAY_BIN BENCH_BIN LABEL ROUNDS BENCH_SECONDS BENCH_VIEWERS RELAY_PATH FLOOR_SRC; do
  [ -z "${!v:-}" ] || command+="$v=${!v} "
done
jq -n --arg lbl "$label" --arg date "$(date +%F)" --arg command "${command}scripts/bench-floor.sh" \
  --arg relay_bin "$relay_bin" --arg bench_bin "$bench_bin" --arg floor_src "$floor_src" \
  --arg relay_path "$relay_path" --argjson rounds "$rounds" --argjson seconds "$seconds" \
  --arg loads "$loads" --argjson wall "$(( $(date +%s) - started ))" \
  --argjson frame_bytes "$(cat "$out"/frames/*.jpg | wc -c)" \
  --argjson frame_count "$(ls "$out"/frames/*.jpg | wc -l)" \
  '{"label": $lbl, "date": $date, "command": $command, "relay_bin": $relay_bin,
    "bench_bin": $bench_bin, "floor_src": $floor_src, "relay_url_path": $relay_path,
    "floor_url_path": "/video_feed", "fps": 30, "rounds": $rounds, "seconds": $seconds,
    "loads": ($loads | split(" ") | map(select(. != ""))), "wall_seconds": $wall,
    "frame_mean_bytes": ($frame_bytes / $frame_count)}' > "$raw/meta.json"
fi

# --- medians over the rounds and ratios relay/floor
python3 - "$raw" "$out/$name.json" <<'EOF'
import json, statistics, sys
raw, dest = sys.argv[1:]
with open(f"{raw}/meta.json") as f:
    result = json.load(f)
rounds, frame_bytes = result["rounds"], result["frame_mean_bytes"]
def g(*path):
    def get(d):
        for p in path:
            d = d.get(p) if isinstance(d, dict) else None
        return d
    return get
def us_per_frame(d):
    # Frames delivered = payload bytes / the frames' mean size (both serve the same 60 files,
    # cycled, so over a window this is the count to a fraction of a percent).
    if d.get("server_cpu_seconds") is None or not d.get("delivered_gb"):
        return None
    return d["server_cpu_seconds"] / (d["delivered_gb"] * 1e9 / frame_bytes) * 1e6
def frames_per_viewer(d):
    f = d.get("fast") or {}
    return None if f.get("fps_median") is None else round(f["fps_median"] * d["seconds"])
figures = [
    ("server_cpu_seconds_per_gb", "server CPU s per delivered GB", g("server_cpu_seconds_per_gb")),
    ("server_cpu_us_per_frame", "server CPU us per frame delivered", us_per_frame),
    ("server_cpu_cores", "server CPU, cores", g("server_cpu_cores")),
    ("server_peak_rss_mb", "server peak RSS, MB", g("server_peak_rss_mb")),
    ("latency_ms_p50", "latency p50, ms", g("fast", "latency_ms_p50")),
    ("latency_ms_p99", "latency p99, ms", g("fast", "latency_ms_p99")),
    ("latency_ms_max", "latency max, ms", g("fast", "latency_ms_max")),
    ("fps_min", "fps, slowest viewer", g("fast", "fps_min")),
    ("fps_median", "fps, median viewer", g("fast", "fps_median")),
    ("frames_per_viewer", "frames, median viewer, in the window", frames_per_viewer),
    ("delivered_gbit_per_s", "delivered, Gbit/s", g("delivered_gbit_per_s")),
    # The floor sends no X-Sequence, so the client cannot count its skips: no ratio.
    ("skipped_total", "frames skipped, all viewers (floor: not seen)", g("fast", "skipped_total")),
]
med = lambda xs: statistics.median(xs) if xs else None
fmt = lambda v: "-" if v is None else f"{v:.4g}"
lines = [f"{result['date']}: relay {result['relay_url_path']} vs floor /video_feed, 30 fps, "
         f"{rounds} round(s) of {result['seconds']:g} s, medians over the rounds"]
result["figures"] = {}
for n in result["loads"]:
    load = {}
    lines.append(f"\n{n} viewers")
    lines.append(f"{'figure':<48} {'relay':>10} {'floor':>10} {'relay/floor':>12}")
    for key, text, get in figures:
        vals = {}
        for s in ("relay", "floor"):
            vals[s] = []
            for r in range(1, rounds + 1):
                with open(f"{raw}/{s}-{n}-r{r}.json") as f:
                    vals[s].append(get(json.load(f)))
        mr = med([v for v in vals["relay"] if v is not None])
        mf = med([v for v in vals["floor"] if v is not None])
        ok = key != "skipped_total"
        if not ok:
            mf = None  # its 0 means "none counted", not "none skipped"
        ratio = mr / mf if (ok and mr is not None and mf) else None
        load[key] = {"relay": mr, "floor": mf, "ratio": ratio,
                     "relay_rounds": vals["relay"], "floor_rounds": vals["floor"],
                     # relay/floor within each round (the two ran back to back)
                     "ratio_rounds": [a / b if (ok and a is not None and b) else None
                                      for a, b in zip(vals["relay"], vals["floor"])]}
        lines.append(f"{text:<48} {fmt(mr):>10} {fmt(mf):>10} {fmt(ratio):>12}")
    result["figures"][n] = load
lines.append(f"\n{result['command']}  (took {result['wall_seconds']} s)")
print("\n".join(lines))
with open(dest, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
print(f"wrote {dest}")
EOF
