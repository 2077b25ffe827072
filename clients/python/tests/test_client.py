"""The Python client against the real relay: what the publisher sends, the reader reads back,
each frame with its own metadata and stages; over a link slower than the pipeline the publisher
drops frames and never makes them late."""

import socket
import statistics
import threading
import time

import cv2
import numpy as np
import pytest

from conftest import TOKEN
from mjpeg_relay import Publisher, Reader

BASE = 1_763_700_000.0


def picture(i: int, size=(240, 320)) -> np.ndarray:
    img = np.zeros((*size, 3), np.uint8)
    img[:, :, 1] = (i * 7) % 256
    cv2.putText(img, str(i), (20, size[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
    return img


def read_until(reader: Reader, done, limit: float = 15.0):
    frames = []
    deadline = time.monotonic() + limit
    for frame in reader:
        frames.append(frame)
        if done(frame) or time.monotonic() > deadline:
            break
    return frames


def test_closing_sends_the_last_frame(relay):
    with Publisher(f"{relay}/streams/cam/ingest", token=TOKEN) as pub:
        pub.send(picture(1), meta={"frame": 1}, captured=BASE + 1)
    assert pub.sent == 1 and pub.dropped == 0, (pub.sent, pub.dropped, pub.last_error)


def test_the_reader_reads_what_the_publisher_sent(relay):
    reader = Reader(f"{relay}/streams/cam.frames", timeout=10)
    got = []
    thread = threading.Thread(
        target=lambda: got.extend(read_until(reader, lambda f: f.meta and f.meta["frame"] == 59))
    )
    thread.start()
    with Publisher(f"{relay}/streams/cam/ingest", token=TOKEN) as pub:
        for i in range(60):
            pub.send(picture(i), meta={"frame": i, "boxes": []},
                     stages={"inferred": BASE + i + 0.25}, captured=BASE + i)
            time.sleep(0.02)
        thread.join(15)
    reader.close()
    assert got and got[-1].meta["frame"] == 59, [f.meta for f in got][-5:]
    for frame in got:
        i = round(frame.captured - BASE)
        assert frame.meta == {"frame": i, "boxes": []}, "each frame with its own metadata"
        assert [name for name, _ in frame.stages] == ["inferred", "received"]
        assert abs(frame.stages[0][1] - (BASE + i + 0.25)) < 1e-6
        assert frame.image().shape == (240, 320, 3)
    assert pub.sent >= 55 and pub.last_error is None


class Throttle:
    """A TCP proxy that carries client-to-server bytes at ``rate`` bytes a second, with small
    buffers, like a slow uplink."""

    def __init__(self, target: str, rate: int):
        host, port = target.rsplit("//", 1)[1].split(":")
        self.target = (host, int(port))
        self.rate = rate
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src, dst, slow):
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                dst.sendall(data)
                if slow:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


def test_over_a_slow_link_the_publisher_drops_frames_and_never_lags(relay):
    # 30 fps of ~20 KB frames (about 600 KB/s) over a 200 KB/s link.
    link = Throttle(relay, 200_000)
    rng = np.random.default_rng(1)
    noisy = []
    for i in range(4):
        img = picture(i, (480, 640))
        img[::20, ::20] = rng.integers(0, 255, img[::20, ::20].shape, np.uint8)
        noisy.append(img)
    # A short read timeout ends the watcher soon after the last frame.
    reader = Reader(f"{relay}/streams/cam.frames", meta=False, timeout=2)
    ages = []

    def watch():
        # Until the reader is closed below (the read then fails: that is the end).
        try:
            for frame in reader:
                ages.append(time.time() - frame.captured)
        except Exception:
            pass

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    slowest = 0.0
    pub = Publisher(f"{link.url}/streams/cam/ingest", token=TOKEN)
    started = time.monotonic()
    for i in range(120):  # 4 s at 30 fps
        t0 = time.monotonic()
        pub.send(noisy[i % 4])
        slowest = max(slowest, time.monotonic() - t0)
        time.sleep(max(0.0, started + (i + 1) / 30 - time.monotonic()))
    pub.close()
    reader.close()
    watcher.join(10)
    link.close()
    assert slowest < 0.25, f"send() took {slowest:.3f} s: it must never wait for the link"
    assert pub.dropped > 30, f"only {pub.dropped} of 120 frames dropped over a link a quarter as fast"
    late = ages[len(ages) // 2 :]
    assert late, "the relay received frames through the slow link"
    assert statistics.median(late) < 1.0, f"frames aged {late}: the publisher queued instead of dropping"
