"""The classic Flask MJPEG pattern, as found in countless tutorials and camera projects.

Usage: python3 flask_mjpeg.py PORT FRAME.jpg [FRAME.jpg ...]
Serves /video_feed as multipart/x-mixed-replace; boundary=frame, cycling through the given JPEGs
forever, one every 50 ms, until killed.
"""

import sys
import time

from flask import Flask, Response

app = Flask(__name__)
FRAMES = [open(path, "rb").read() for path in sys.argv[2:]]


def gen():
    i = 0
    while True:
        jpeg = FRAMES[i % len(FRAMES)]
        i += 1
        # The exact yield of the tutorials: boundary, one header, blank line, JPEG, CRLF.
        yield b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n"
        time.sleep(0.05)


@app.route("/video_feed")
def video_feed():
    return Response(gen(), mimetype="multipart/x-mixed-replace; boundary=frame")


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
