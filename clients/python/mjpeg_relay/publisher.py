"""Publisher: frames to a push stream, never blocking the pipeline that makes them."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np
import requests
from requests.adapters import HTTPAdapter

BOUNDARY = "mjpegrelaypush"

FrameLike = Union[bytes, bytearray, memoryview, "np.ndarray"]


def _encode(frame: FrameLike, quality: int) -> bytes:
    """JPEG bytes as they are, or a numpy image encoded with OpenCV."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return bytes(frame)
    import cv2  # only needed for numpy images

    ok, jpg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the image as JPEG")
    return jpg.tobytes()


def _stage_header(name: str) -> str:
    if not name or len(name) > 64 or not all((c.isascii() and c.isalnum()) or c == "-" for c in name):
        raise ValueError(f"stage name {name!r}: letters, digits and '-', at most 64")
    return f"X-Stage-{name}"


#: Bytes the kernel may hold unsent for the push connection: about a frame. With the kernel's
#: defaults it autotunes to megabytes, and frames would queue there for seconds on a slow link
#: instead of being dropped here.
SEND_BUFFER = 64 * 1024


def _socket_options() -> List[Tuple[int, int, int]]:
    opts = [
        (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
        (socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER),
    ]
    # Linux: accept new bytes only while little is unsent (the relay does the same for viewers).
    if hasattr(socket, "TCP_NOTSENT_LOWAT"):
        opts.append((socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, 16 * 1024))
    return opts


class _SmallBuffers(HTTPAdapter):
    """An adapter whose connections keep little unsent data in the kernel."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["socket_options"] = _socket_options()
        super().init_poolmanager(*args, **kwargs)


class Publisher:
    """Sends frames to ``url`` (``.../streams/NAME/ingest``) with ``token``.

    ``send`` returns at once; a background thread writes the newest frame when the connection
    can take it. Frames replaced before they were written are counted in ``dropped``; frames
    written in ``sent``. ``close`` ends the request.
    """

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        *,
        quality: int = 80,
        timeout: float = 10.0,
        session: Optional[requests.Session] = None,
    ) -> None:
        self.url = url
        self.quality = quality
        self.timeout = timeout
        self.sent = 0
        self.dropped = 0
        #: The last error the connection met, if any (it reconnects by itself).
        self.last_error: Optional[str] = None
        self._headers = {"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        if session is None:
            session = requests.Session()
            session.mount("http://", _SmallBuffers())
            session.mount("https://", _SmallBuffers())
        self._session = session
        self._slot: Optional[bytes] = None
        self._cond = threading.Condition()
        self._closed = False
        #: Set by close(): ends the backoff wait at once (frames arriving must not end it).
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mjpeg-relay-publisher", daemon=True)
        self._thread.start()

    def send(
        self,
        frame: FrameLike,
        meta: Optional[Mapping[str, Any]] = None,
        stages: Optional[Mapping[str, float]] = None,
        captured: Optional[float] = None,
    ) -> None:
        """Queues ``frame`` (JPEG bytes, or a BGR numpy image) as the newest, replacing any frame
        not yet written. ``meta`` goes with it as JSON, ``stages`` as ``X-Stage-NAME`` times (Unix
        seconds), ``captured`` (Unix seconds, default now) as its capture time."""
        captured = time.time() if captured is None else captured
        jpeg = _encode(frame, self.quality)
        stamp = f"X-Timestamp: {captured:.6f}"
        part = b""
        if meta is not None:
            # First, naming its frame by capture time: the relay then never waits for it.
            body = json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode()
            part += (
                f"--{BOUNDARY}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n{stamp}\r\n\r\n"
            ).encode() + body + b"\r\n"
        head = [
            f"--{BOUNDARY}",
            "Content-Type: image/jpeg",
            f"Content-Length: {len(jpeg)}",
            stamp,
        ]
        for name, at in (stages or {}).items():
            head.append(f"{_stage_header(name)}: {at:.6f}")
        part += ("\r\n".join(head) + "\r\n\r\n").encode() + jpeg + b"\r\n"
        with self._cond:
            if self._slot is not None:
                self.dropped += 1
            self._slot = part
            self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Ends the push and waits for the thread (at most ``timeout`` seconds)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._stopping.set()
        self._thread.join(timeout)

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _parts(self) -> Iterator[bytes]:
        """The request body: each newest frame once, as the connection takes it."""
        while True:
            with self._cond:
                while self._slot is None and not self._closed:
                    self._cond.wait(1.0)
                if self._slot is None:  # closed, and the last frame sent
                    return
                part, self._slot = self._slot, None
            yield part
            self.sent += 1

    def _run(self) -> None:
        delay = 1.0
        while not self._closed:
            started = time.monotonic()
            try:
                resp = self._session.post(
                    self.url,
                    data=self._parts(),
                    headers=self._headers,
                    timeout=(self.timeout, None),
                )
                if resp.status_code >= 400:
                    try:
                        why = resp.json().get("error", resp.text)
                    except ValueError:
                        why = resp.text
                    self.last_error = f"{resp.status_code}: {why}"
            except requests.RequestException as err:
                self.last_error = str(err)
            if self._closed:
                return
            # A connection that lasted resets the backoff; one that failed at once doubles it.
            if time.monotonic() - started > 10:
                delay = 1.0
            self._stopping.wait(delay)
            delay = min(delay * 2, 30.0)
