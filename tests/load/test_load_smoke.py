"""A short run of the load script itself (`make load` is the real one): two steps of 3 s."""

from __future__ import annotations

import re
from pathlib import Path

from tests.load import load


def test_quick_load_run_passes_and_writes_its_section(tmp_path: Path, capsys) -> None:
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nkept text\n", encoding="utf-8")
    assert load.main(["--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no discrepancies" in printed  # niaga audit ran on the load's store
    text = out.read_text(encoding="utf-8")
    assert "kept text" in text and text.count(load.START) == 1 and text.count(load.END) == 1
    rows = re.findall(r"(?m)^\| (\d+) \| ([\d.]+) \| ([\d.]+) \|", text)
    assert [int(r[0]) for r in rows] == [1, 2], text  # --quick: concurrency 1 then 2
    assert all(float(r[1]) > 0 and float(r[2]) > 0 for r in rows), rows
    assert not re.search(r"\b5\d\d: ", text), text  # no 5xx among the status codes
    assert "none oversold" in text
    # a second run replaces the section rather than adding one
    load.write_section(out, f"{load.START}\nnew\n{load.END}")
    assert out.read_text(encoding="utf-8").count(load.START) == 1
