#!/usr/bin/env python3
"""A vision pipeline done right: capture, detect, push the frame with its boxes and stage times.

    python3 clients/python/examples/detect.py http://127.0.0.1:8080/streams/cam/ingest \
        --token SECRET [--source 0 | --source video.mp4 | --source synthetic] [--seconds N]

Frames come from OpenCV (a camera index, a video file, or a generated scene where no camera
exists). The detector needs no downloaded model: it finds saturated colour blobs (HSV threshold
and contours), the kind of thing a real model's boxes replace. The boxes go as metadata, beside
the frame, not burned into it, so viewers can show or hide them; the capture, detection and
encoding times go as stages, so the dashboard shows where the milliseconds go. The publisher
never blocks the loop: a slow relay or link drops frames, it never makes them late.

Start the relay with a push stream first:
    mjpeg-relay --ingest-token SECRET --stream cam=push
and open http://127.0.0.1:8080/ (or read it back: clients/python/README.md).
"""
import argparse
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, __file__.rsplit("/examples/", 1)[0])
from mjpeg_relay import Publisher  # noqa: E402


def frames(source):
    """BGR images from a camera, a file (looped) or a generated scene."""
    if source == "synthetic":
        n = 0
        while True:
            img = np.full((480, 640, 3), (40, 30, 20), np.uint8)
            x = int(320 + 250 * np.sin(n / 30))
            y = int(240 + 150 * np.cos(n / 45))
            cv2.circle(img, (x, y), 30, (0, 140, 255), -1)
            cv2.rectangle(img, ((n * 4) % 600, 60), ((n * 4) % 600 + 40, 100), (255, 80, 0), -1)
            n += 1
            yield img
    cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not cap.isOpened():
        sys.exit(f"cannot open {source!r} with OpenCV")
    while True:
        ok, img = cap.read()
        if not ok:
            if not source.isdigit():
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            sys.exit("the camera stopped delivering frames")
        yield img


def detect(img):
    """Saturated, bright blobs as boxes, in fractions of the picture."""
    h, w = img.shape[:2]
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    mask = cv2.inRange(hsv, (0, 120, 120), (180, 255, 255))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        if bw * bh < 200:
            continue
        boxes.append({"x": x / w, "y": y / h, "w": bw / w, "h": bh / h, "label": "blob",
                      "score": round(min(1.0, cv2.contourArea(c) / (bw * bh)), 2)})
    return boxes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", help="the stream's ingest URL, .../streams/NAME/ingest")
    ap.add_argument("--token", required=True)
    ap.add_argument("--source", default="synthetic")
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: never)")
    args = ap.parse_args()
    started = time.monotonic()
    period = 1 / args.fps
    due = started
    with Publisher(args.url, token=args.token) as pub:
        for img in frames(args.source):
            if args.seconds and time.monotonic() - started > args.seconds:
                break
            captured = time.time()
            boxes = detect(img)
            detected = time.time()
            pub.send(img, meta={"boxes": boxes, "text": [f"{len(boxes)} blobs"]},
                     stages={"detected": detected}, captured=captured)
            due += period
            time.sleep(max(0.0, due - time.monotonic()))
        print(f"sent {pub.sent}, dropped {pub.dropped}", file=sys.stderr)


if __name__ == "__main__":
    main()
