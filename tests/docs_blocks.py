"""Read the fenced code blocks of docs/*.md and run their ```sh blocks.

The convention (tests/test_docs_commands.py enforces it): every shell command in docs/ is
in a ```sh block, and the line right before the fence is a marker naming what runs it::

    <!-- run: tests/test_docs_api.py::test_the_api_page_commands -->
    <!-- run: ci -->                      (a command .ci/run or the Makefile's test target runs)
    <!-- not run: needs an AWS account --> (only for a real AWS or package index account)

A test that runs blocks asks for "its" blocks with :func:`blocks_run_by` (the blocks whose
marker names that test), so the page, not the test, decides what is run. Commands are run
as a reader runs them, with these changes only: ``127.0.0.1:8000`` becomes the test
server's address, ``examples/`` the checkout's examples folder, and ``niaga`` the one of
the Python running the tests.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_RUN = re.compile(r"^<!--\s*run:\s*(.*?)\s*-->$")
_NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str  # the info string's first word ("" for none)
    body: str
    before: str  # the line right before the fence, stripped

    @property
    def where(self) -> str:
        return f"{rel(self.doc)}:{self.line}"

    @property
    def run(self) -> str | None:
        """What a ``<!-- run: X -->`` marker names (``ci`` or ``tests/f.py::test``)."""
        match = _RUN.match(self.before)
        return match.group(1) if match else None

    @property
    def not_run(self) -> str | None:
        match = _NOT_RUN.match(self.before)
        return match.group(1) if match else None


def rel(path: Path) -> str:
    """The path from the checkout's root (as it is if outside it)."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def blocks(doc: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order (an unclosed fence runs to the end)."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, info = opening.group(1), opening.group(2).strip()
        j = i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence[0] * len(fence))
                                      and not lines[j].strip().strip(fence[0])):
            j += 1
        found.append(Block(doc, i + 1, info.split()[0] if info else "",
                           "\n".join(lines[i + 1:j]) + "\n", lines[i - 1].strip() if i else ""))
        i = j + 1
    return found


def blocks_run_by(doc: Path, test_file: str, test_name: str) -> list[Block]:
    """The ```sh blocks of ``doc`` whose marker names ``test_file::test_name``."""
    wanted = f"{Path(test_file).resolve().relative_to(ROOT).as_posix()}::{test_name}"
    picked = [b for b in blocks(doc) if b.lang == "sh" and b.run == wanted]
    assert picked, f"{doc.relative_to(ROOT)} has no ```sh block marked <!-- run: {wanted} -->"
    return picked


def env(**extra: str) -> dict[str, str]:
    """The environment a reader has after ``make serve``: the venv's ``niaga`` on PATH."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


def adapt(script: str, port: int | None = None) -> str:
    """The reader's commands, pointed at the test server and the checkout's examples."""
    if port is not None:
        script = script.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    script = re.sub(r"^make .*$", lambda m: make_command(m.group(0)), script, flags=re.M)
    return re.sub(r"(?<![\w/.])examples/", f"{ROOT}/examples/", script)


def run_sh(script: str, *, cwd: Path, port: int | None = None, timeout: float = 120,
           **extra_env: str) -> subprocess.CompletedProcess[str]:
    """Run a block with bash, stopping at the first failing command."""
    return subprocess.run(["bash", "-c", "set -euo pipefail\n" + adapt(script, port)],
                          cwd=cwd, env=env(**extra_env), capture_output=True, text=True,
                          timeout=timeout)


def make_command(line: str) -> str:
    """``make TARGET ...`` from the page, run on this checkout and this test's Python.

    ``-C`` the checkout, ``BIN=`` the running Python's bin folder, and ``-o`` the install
    stamp so make never reinstalls the venv under a running test suite.
    """
    words = shlex.split(line, comments=True)
    assert words[0] == "make", line
    # -o takes the target's name as the Makefile spells it ($(VENV)/.installed), relative
    # to -C: an absolute path is another file to make, and the venv would be reinstalled
    command = ["make", "--no-print-directory", "-C", str(ROOT), "-o", ".venv/.installed",
               f"BIN={BIN}", *words[1:]]
    dry = subprocess.run([*command[:1], "-n", *command[1:]], capture_output=True, text=True)
    assert "pip install" not in dry.stdout, f"`{line}` would reinstall the venv:\n{dry.stdout}"
    return shlex.join(command)


@dataclass
class Server:
    """A block whose last command starts a server (``niaga serve`` or ``make serve``), run
    in the background as a reader runs it in a terminal of its own."""

    proc: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def get(self, path: str, timeout: float = 5) -> tuple[int, str, str]:
        """(status, content type, body) of a GET."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=timeout) as answer:
                return (answer.status, answer.headers.get("content-type", ""),
                        answer.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("content-type", ""), exc.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # Ctrl-C, as a reader stops it
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def start_server(block: Block, *, cwd: Path, ready: str = "/markets", wait_s: float = 60,
                 **extra_env: str) -> Server:
    """Run the block in its own process group: the commands before the last as they are,
    the last (the server) with ``--port`` added (``SERVE_ARGS=--port N --db FILE`` for
    ``make serve``, so the test's store is not the checkout's ./niaga.sqlite)."""
    commands = _commands(block.body)
    assert commands, f"{block.where}: the block is empty"
    last = commands[-1]
    port = free_port()
    if last.startswith("make "):
        assert shlex.split(last)[1:] == ["serve"], \
            f"{block.where}: the server command must be the block's last line: {last!r}"
        serve = make_command(last) + " " + shlex.quote(
            f"SERVE_ARGS=--port {port} --db {cwd / 'niaga.sqlite'}")
    else:
        assert last.startswith("niaga serve"), \
            f"{block.where}: the last command must start the server, found {last!r}"
        serve = adapt(f"{last} --port {port}")
    script = "\n".join(["set -euo pipefail", *map(adapt, commands[:-1]), "exec " + serve])
    proc = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env(**extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    server = Server(proc, port)

    def read() -> None:  # what the server prints, as it prints it
        for line in proc.stdout:
            server.lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            time.sleep(0.2)
            raise AssertionError(f"{block.where}: the server exited ({proc.returncode}):\n"
                                 f"{server.output}")
        try:
            if server.get(ready, timeout=1)[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"{block.where}: no answer on {server.base}{ready} in {wait_s:.0f} s:"
                         f"\n{server.output}")


def _commands(body: str) -> list[str]:
    """The block's commands: comments and blank lines dropped, continuation lines joined."""
    commands, current = [], ""
    for raw in body.splitlines():
        line = raw.rstrip()
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        commands.append(re.sub(r"\s+#[^'\"]*$", "", current).strip())
        current = ""
    if current:
        commands.append(current.strip())
    return commands
