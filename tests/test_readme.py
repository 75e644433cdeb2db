"""The README's curl walkthrough, run verbatim against a real `niaga serve`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.serving import niaga_serve

ROOT = Path(__file__).resolve().parents[1]


def _readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    # the walkthrough's section only: later sections (the AWS shape) have their own test
    walkthrough = text.split("## Five minutes with curl", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", walkthrough, flags=re.S)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walkthrough uses curl")
def test_readme_walkthrough_runs_verbatim(tmp_path: Path) -> None:
    env = {**os.environ, "NIAGA_ADMIN_TOKEN": "dev-admin"}
    with niaga_serve([], cwd=tmp_path, env=env) as (base, _):
        script = "set -e\n" + "\n".join(_readme_blocks()).replace(
            "127.0.0.1:8000", base.removeprefix("http://"))
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.strip().splitlines()
        # the first walkthrough ends with the order's status and total, as the README says
        assert "paid" in lines
        assert "{'amount': '673000.00', 'currency': 'IDR'}" in lines
        # bank transfer: pending until the admin marks it paid
        assert lines[-2:] == ["pending_payment", "paid"]
        assert (tmp_path / "niaga.sqlite").exists()  # the default store is a file in cwd
