"""docs/plugin-guide.md works as written, on the example package it describes.

The guide's shell blocks marked ``<!-- run: tests/examples/test_plugin_guide.py::... -->``
are read from the page and run in order, in a temporary folder, in a fresh virtual
environment that sees this one's packages (Niaga and its test tools) the way a plugin
author's environment has Niaga installed: the empty folder is made, the example package's
files are put in it (as the author writes them in steps 2 to 6), the package is installed
in editable mode into that environment and its tests run; the wheel is built, installed
into a scratch ``--target`` folder and checked with ``niaga plugins`` and ``niaga markets
check`` on the page's markets file; then ``niaga serve`` is started from the page's command
(on a free port instead of 8000) and the page's curl block asks it for delivery options.
Nothing is installed into this environment.

The page's ``pyproject.toml`` is the package's, and every Python block on it is an
excerpt of the package's code, verbatim. ``make test`` installs the package in editable mode
too, and pytest's ``testpaths`` collect its tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugin-guide.md"
PACKAGE = ROOT / "examples" / "plugins" / "niaga-kurir-id"
THIS = "tests/examples/test_plugin_guide.py::test_the_guide_from_an_empty_folder_to_a_wheel"
MARKER = re.compile(r"<!-- (run: \S+|not run: [^>]+) -->")


def _text() -> str:
    return GUIDE.read_text(encoding="utf-8")


def sh_blocks() -> list[tuple[str | None, str]]:
    """(marker or None, commands) for every ```sh block, in page order."""
    blocks = []
    for match in re.finditer(r"^```sh\n(.*?)^```", _text(), flags=re.M | re.S):
        before = _text()[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.fullmatch(before.strip())
        blocks.append((marker.group(1) if marker else None, match.group(1)))
    return blocks


def _example(tag: str, lang: str) -> str:
    match = re.search(rf"<!-- example:{tag} -->\s*```{lang}\n(.*?)^```", _text(),
                      flags=re.M | re.S)
    assert match, f"no ```{lang} block marked <!-- example:{tag} -->"
    return match.group(1)


def test_every_shell_block_names_how_it_is_run() -> None:
    blocks = sh_blocks()
    assert blocks
    for marker, commands in blocks:
        assert marker is not None, f"no <!-- run: ... --> marker before:\n{commands}"
        if marker.startswith("run: tests/"):
            path, _, name = marker.removeprefix("run: ").partition("::")
            assert (ROOT / path).is_file() and name, marker
            assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8"), marker
        elif marker.startswith("not run: "):
            assert "twine upload" in commands  # only what needs a real account
        else:
            assert marker == "run: ci", marker


def test_make_test_installs_the_example_and_collects_its_tests() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "KURIR_ID := examples/plugins/niaga-kurir-id" in makefile
    assert re.search(r"^\t@\$\(BIN\)/python -m pip install .*-e \$\(KURIR_ID\)$", makefile,
                     flags=re.M)
    testpaths = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"]["testpaths"]
    assert "examples/plugins/niaga-kurir-id/tests" in testpaths


def test_the_pages_pyproject_is_the_packages() -> None:
    assert _example("pyproject", "toml") == (PACKAGE / "pyproject.toml").read_text()


def test_every_python_block_is_an_excerpt_of_the_package() -> None:
    sources = [p.read_text(encoding="utf-8")
               for p in sorted([*PACKAGE.glob("src/niaga_kurir_id/*.py"),
                                *PACKAGE.glob("tests/*.py")])]
    blocks = re.findall(r"^```python\n(.*?)^```", _text(), flags=re.M | re.S)
    assert blocks
    for block in blocks:
        assert any(block in source for source in sources), f"not in the package:\n{block}"


def _run(commands: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", "-e", "-c", commands], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{commands}\nfailed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="the guide's last block uses curl")
def test_the_guide_from_an_empty_folder_to_a_wheel(tmp_path: Path) -> None:
    blocks = [commands for marker, commands in sh_blocks() if marker == f"run: {THIS}"]
    assert len(blocks) == 6, "mkdir, develop, build, try the wheel, serve, curl"
    start, develop, build, try_wheel, serve, curl = blocks

    # the author's environment: a new venv whose python sees this one's site-packages
    # (Niaga, pip, pytest) after its own; pip installs into the new venv only
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (own_site,) = venv.glob("lib/python3*/site-packages")
    (own_site / "niaga-env.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTEST_ADDOPTS", "VIRTUAL_ENV")}
    env.update(PATH=os.pathsep.join([str(venv / "bin"), str(Path(sys.executable).parent),
                                     env.get("PATH", "")]),  # niaga: this environment's
               NIAGA_ADMIN_TOKEN="adm_plugin_guide")

    # 1. the empty folder, then the files steps 2 to 5 write
    _run(start, tmp_path, env)
    folder = tmp_path / "niaga-kurir-id"
    assert (folder / "src" / "niaga_kurir_id").is_dir() and (folder / "tests").is_dir()
    ignore = shutil.ignore_patterns("*.egg-info", "__pycache__", ".pytest_cache", "build",
                                    "dist")
    shutil.copytree(PACKAGE, folder, ignore=ignore, dirs_exist_ok=True)
    (folder / "markets.toml").write_text(_example("markets", "toml"), encoding="utf-8")

    # 5. develop: an editable install into the author's venv, and the package's tests
    out = _run(develop, folder, env)
    assert list(own_site.glob("niaga_kurir_id-1.0.0.dist-info")), "not installed in the venv"
    assert re.search(r"\b\d+ passed\b", out) and " failed" not in out, out

    # 7. the wheel, installed into ../try-kurir-id and checked from there
    _run(build, folder, env)
    assert (folder / "dist" / "niaga_kurir_id-1.0.0-py3-none-any.whl").is_file()
    out = _run(try_wheel, folder, env)
    target = tmp_path / "try-kurir-id"
    (imported,) = [line for line in out.splitlines() if line.endswith("__init__.py")]
    assert Path(imported).resolve() == (target / "niaga_kurir_id" / "__init__.py").resolve()
    assert re.search(r"^kurir-id\s+1\.0\.0\s+carrier\s+before_place_order, create_shipment, "
                     r"delivery_options, track_shipment\s*$", out, flags=re.M), out
    assert "markets.toml: OK (1 markets)" in out
    assert re.search(r"^ID\s.*\bkurir-id\b", out, flags=re.M), out

    # the page's server and its curl block, on a free port
    port = free_port()
    server = subprocess.Popen(["bash", "-c", serve.replace("--port 8000", f"--port {port}")],
                              cwd=folder, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/markets", timeout=1)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(server.pid, signal.SIGKILL)
                    pytest.fail(f"the guide's niaga serve did not start:\n"
                                f"{server.stdout.read()}")
                time.sleep(0.1)
        options = json.loads(_run(curl.replace("127.0.0.1:8000", f"127.0.0.1:{port}"),
                                  folder, env))
    finally:  # bash and the server it started: their own process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    prices = {o["id"]: o["price"] for o in options if o["carrier"] == "kurir-id"}
    assert prices == {"kurir-id:reg": {"amount": "12000.00", "currency": "IDR"},
                      "kurir-id:yes": {"amount": "25000.00", "currency": "IDR"}}
