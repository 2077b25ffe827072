#!/usr/bin/env python3
"""Push annotated frames to an mjpeg-relay `push` stream, as an inference process would.

    python3 examples/push_opencv.py http://127.0.0.1:8080/streams/cam/ingest --token SECRET
        [--source 0 | --source video.mp4 | --source synthetic] [--fps 30] [--frames N]

Frames come from OpenCV (a camera index, a video file, or a synthetic moving picture when there
is no camera). A box and a label are drawn on each, where a detector's results would go, and the
frames are sent as ONE long request whose body is a multipart stream of JPEGs: `requests` sends a
generator as a chunked body, so nothing here serves HTTP. Each part carries its capture time
(X-Timestamp), so the relay measures latency from the moment the frame was taken.

Start the relay with a push stream first, e.g.
    mjpeg-relay --ingest-token SECRET --stream cam=push
and watch http://127.0.0.1:8080/streams/cam.mjpg.
"""
import argparse
import sys
import time

import cv2
import numpy as np
import requests


def capture(args):
    """Yields BGR images from the chosen source."""
    if args.source == "synthetic":
        n = 0
        while True:
            img = np.zeros((480, 640, 3), np.uint8)
            img[:, :] = (40, 30, 20)
            x = (n * 8) % 600
            cv2.circle(img, (x + 20, 240), 20, (0, 200, 255), -1)  # the "object"
            n += 1
            yield img
    source = int(args.source) if args.source.isdigit() else args.source
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        sys.exit(f"cannot open {args.source!r} with OpenCV")
    while True:
        ok, img = cap.read()
        if not ok:
            if isinstance(source, str):  # a file: loop it
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            sys.exit("the camera stopped delivering frames")
        yield img


def parts(args):
    """The multipart body: annotated JPEGs, paced to --fps."""
    period = 1.0 / args.fps
    next_due = time.monotonic()
    for n, img in enumerate(capture(args)):
        if args.frames and n >= args.frames:
            return
        captured = time.time()
        # Where an inference step would draw its detections.
        h, w = img.shape[:2]
        cv2.rectangle(img, (w // 4, h // 4), (w * 3 // 4, h * 3 // 4), (0, 255, 0), 4)
        cv2.putText(img, f"object {n}", (w // 4, h // 4 - 10), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 255, 0), 2)
        ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if not ok:
            continue
        yield (
            b"--frame\r\nContent-Type: image/jpeg\r\n"
            + f"Content-Length: {len(jpg)}\r\nX-Timestamp: {captured:.6f}\r\n\r\n".encode()
            + jpg.tobytes()
            + b"\r\n"
        )
        next_due += period
        time.sleep(max(0.0, next_due - time.monotonic()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", help="the stream's ingest URL, .../streams/NAME/ingest")
    ap.add_argument("--token", required=True, help="the relay's ingest token")
    ap.add_argument("--source", default="synthetic", help="camera index, video file, or 'synthetic'")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: never)")
    args = ap.parse_args()
    resp = requests.post(
        args.url,
        data=parts(args),
        headers={
            "Content-Type": "multipart/x-mixed-replace; boundary=frame",
            "Authorization": f"Bearer {args.token}",
        },
    )
    print(resp.status_code, resp.text)
    sys.exit(0 if resp.ok else 1)


if __name__ == "__main__":
    main()
