"""The real relay for the client's tests: the binary cargo built (RELAY_BIN to choose another),
on a free loopback port, with a push stream ``cam`` and ingest token ``T``."""

import os
import pathlib
import subprocess
import sys
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "clients" / "python"))

TOKEN = "T"


def relay_binary() -> str:
    path = os.environ.get("RELAY_BIN") or str(ROOT / "target" / "debug" / "mjpeg-relay")
    if not os.path.exists(path):
        pytest.fail(f"no relay binary at {path}: build it (cargo build -p mjpeg-relay) or set RELAY_BIN")
    return path


@pytest.fixture
def relay():
    """The relay's base URL (``http://127.0.0.1:PORT``)."""
    proc = subprocess.Popen(
        [relay_binary(), "--listen", "127.0.0.1:0", "--ingest-token", TOKEN, "--stream", "cam=push"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()))
    reader.start()
    reader.join(10)
    if not line or "listening on" not in line[0]:
        proc.kill()
        pytest.fail(f"the relay printed no address: {line}")
    base = line[0].split("listening on ", 1)[1].strip().rstrip("/")
    yield base
    proc.kill()
    proc.wait(5)
