#!/bin/sh
# Regenerates the real captures of other servers' MJPEG streams used by multipart.rs's tests.
# Needs ffmpeg, python3 with flask, and curl. Run from anywhere; writes next to this script.
# See README.md for what each capture shows and the versions used.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'kill "$flask_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
flask_pid=

# 1. ffmpeg's multipart muxer (boundary "ffmpeg", header "Content-length").
ffmpeg -loglevel error -y -f lavfi -i testsrc=size=160x120:rate=10 -frames:v 5 -q:v 8 \
    -f mpjpeg ffmpeg-mpjpeg.bin

# 2. The classic Flask generator, captured as the raw HTTP body a client receives.
ffmpeg -loglevel error -y -f lavfi -i testsrc2=size=128x96:rate=10 -frames:v 3 -q:v 10 \
    "$tmp/frame%d.jpg"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 flask_mjpeg.py "$port" "$tmp"/frame1.jpg "$tmp"/frame2.jpg "$tmp"/frame3.jpg \
    >"$tmp/flask.log" 2>&1 &
flask_pid=$!
i=0
until curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" 2>/dev/null || [ "$?" = 28 ]; do
    i=$((i + 1)); [ "$i" -lt 50 ] || { cat "$tmp/flask.log"; exit 1; }; sleep 0.1
done
# --max-time cuts the endless stream, usually mid-part, as a real client disconnect would.
curl -s -N --max-time 0.5 -D "$tmp/headers" -o flask-mjpeg.bin "http://127.0.0.1:$port/video_feed" || true
grep -i '^content-type' "$tmp/headers"
ls -l ffmpeg-mpjpeg.bin flask-mjpeg.bin
