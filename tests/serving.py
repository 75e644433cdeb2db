"""Helpers for tests that talk to a real ``niaga serve`` over HTTP.

:func:`niaga_serve` is the common case: the venv's ``niaga serve ARGS --port N`` on a free
port, waited for until ``GET /markets`` answers, stopped afterwards. Tests that start
several servers side by side, or need the process's output after it stops, use its parts:
:func:`spawn_niaga`, :func:`wait_up` and :func:`stop`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

NIAGA = Path(sys.executable).with_name("niaga")  # the venv's, next to the running Python


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call_json(base: str, method: str, path: str, body: Any = None,
              headers: Mapping[str, str] | None = None, *,
              timeout: float = 10) -> tuple[int, Any]:
    """(status, decoded JSON body) of a request; an error status is returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"content-type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def spawn_niaga(args: Sequence[str], *, cwd: Path | str,
                env: Mapping[str, str] | None = None) -> tuple[str, subprocess.Popen[str]]:
    """Start ``niaga serve ARGS --port N`` (output and errors on one text pipe) without
    waiting for it: (base URL, process)."""
    port = free_port()
    proc = subprocess.Popen([str(NIAGA), "serve", *args, "--port", str(port)], cwd=cwd,
                            env=None if env is None else dict(env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return f"http://127.0.0.1:{port}", proc


def _output(proc: subprocess.Popen[Any]) -> str:
    pipe = proc.stdout if proc.stdout is not None else proc.stderr
    if pipe is None:
        return "(no output captured)"
    out = pipe.read()
    return out.decode(errors="replace") if isinstance(out, bytes) else out


def wait_up(base: str, proc: subprocess.Popen[Any], *, timeout_s: float = 60,
            what: str = "niaga serve") -> None:
    """Poll ``GET base/markets`` until it answers; if the process exits first or the time
    runs out, kill it and fail the test with what it printed."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(base + "/markets", timeout=1):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"{what} did not start:\n{_output(proc)}")
            time.sleep(0.1)


def stop(proc: subprocess.Popen[Any], timeout_s: float = 10) -> None:
    """Terminate, and kill if it has not exited within ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def niaga_serve(args: Sequence[str], *, cwd: Path | str, env: Mapping[str, str] | None = None,
                timeout_s: float = 60) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``niaga serve ARGS`` on a free port, up and answering: (base URL, process)."""
    base, proc = spawn_niaga(args, cwd=cwd, env=env)
    try:
        wait_up(base, proc, timeout_s=timeout_s, what=f"niaga serve {' '.join(args)}".strip())
        yield base, proc
    finally:
        stop(proc)
