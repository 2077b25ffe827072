"""Reader: a stream's frames, one object each, with stage times and metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np
import requests


@dataclass
class Frame:
    """One frame of a ``.frames`` stream."""

    #: The frame's number in its stream (gaps are frames this reader skipped).
    sequence: int
    #: Capture time, Unix seconds.
    captured: float
    #: Pipeline stages in order, (name, Unix seconds); each relay on the way adds ``received``.
    stages: List[Tuple[str, float]]
    jpeg: bytes
    #: The frame's metadata, when read with ``meta=True`` and the pusher sent some.
    meta: Optional[Any] = None
    _image: Optional["np.ndarray"] = field(default=None, repr=False)

    def image(self) -> "np.ndarray":
        """The picture as a BGR numpy array, decoded with OpenCV on first use."""
        if self._image is None:
            import cv2

            self._image = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
            if self._image is None:
                raise ValueError(f"frame {self.sequence} is not a decodable JPEG")
        return self._image


def _parse_head(block: bytes) -> List[Tuple[str, str]]:
    headers = []
    for line in block.decode("latin-1").split("\r\n"):
        if ":" in line:
            name, value = line.split(":", 1)
            headers.append((name.strip(), value.strip()))
    return headers


class Reader:
    """Iterates the frames of ``url`` (``.../streams/NAME.frames``), with metadata unless
    ``meta=False``. Each ``read`` waits at most ``timeout`` seconds."""

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        *,
        meta: bool = True,
        timeout: float = 10.0,
        session: Optional[requests.Session] = None,
    ) -> None:
        params = {"meta": "1"} if meta else {}
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._resp = (session or requests.Session()).get(
            url, params=params, headers=headers, stream=True, timeout=timeout
        )
        self._resp.raise_for_status()
        self._raw = self._resp.raw
        self._buf = b""

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        meta: Optional[Any] = None
        while True:
            headers, body = self._part()
            kind = dict((k.lower(), v) for k, v in headers).get("content-type", "")
            if kind.startswith("application/json"):
                meta = json.loads(body)
                continue
            return self._frame(headers, body, meta)

    def _fill(self, need: int) -> None:
        while len(self._buf) < need:
            chunk = self._raw.read1(65536) if hasattr(self._raw, "read1") else self._raw.read(4096)
            if not chunk:
                raise StopIteration
            self._buf += chunk

    def _part(self) -> Tuple[List[Tuple[str, str]], bytes]:
        """The next part: `--boundary`, headers, a Content-Length body, CRLF."""
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            self._fill(len(self._buf) + 1)
        block, self._buf = self._buf[:end], self._buf[end + 4 :]
        headers = _parse_head(block.split(b"\r\n", 1)[1] if block.startswith(b"--") else block)
        length = int(dict((k.lower(), v) for k, v in headers)["content-length"])
        self._fill(length + 2)
        body, self._buf = self._buf[:length], self._buf[length + 2 :]
        return headers, body

    @staticmethod
    def _frame(headers: List[Tuple[str, str]], body: bytes, meta: Optional[Any]) -> Frame:
        named = dict((k.lower(), v) for k, v in headers)
        stages = [
            (k[len("x-stage-") :].lower(), float(v))
            for k, v in headers
            if k.lower().startswith("x-stage-")
        ]
        return Frame(
            sequence=int(named.get("x-sequence", "0")),
            captured=float(named.get("x-timestamp", "0")),
            stages=stages,
            jpeg=body,
            meta=meta,
        )
