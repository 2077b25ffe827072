#!/usr/bin/env bash
# Pushes a video (or ffmpeg's test picture) to an mjpeg-relay `push` stream with ffmpeg alone:
# one long POST whose body is ffmpeg's multipart JPEG stream (the mpjpeg muxer), paced at real
# time.
#
#   examples/push_ffmpeg.sh http://127.0.0.1:8080/streams/cam/ingest SECRET [INPUT]
#
# INPUT is anything ffmpeg reads (a file, which loops, or an RTSP URL); without it, a 640x480
# test pattern. FRAMES=N in the environment stops after N frames.
set -euo pipefail
url=${1:?ingest URL}
token=${2:?ingest token}
input=${3:-}
if [ -z "$input" ]; then
  in_args=(-re -f lavfi -i "testsrc=size=640x480:rate=30")
else
  in_args=(-re -stream_loop -1 -i "$input")
fi
limit=()
[ -n "${FRAMES:-}" ] && limit=(-frames:v "$FRAMES")
exec ffmpeg -hide_banner -nostdin -loglevel warning "${in_args[@]}" "${limit[@]}" -an \
  -c:v mjpeg -q:v 5 -f mpjpeg -boundary_tag frame \
  -method POST -content_type "multipart/x-mixed-replace; boundary=frame" \
  -headers "Authorization: Bearer ${token}"$'\r\n' "$url"
