"""The README's "Optimizers" and "Your own model" sections run as written: every code block, in
order, in a fresh folder (a block whose first line names a file is written to that file; a bash
block's `optiscope` lines run the command line)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def section(heading: str) -> str:
    """The README text under `heading` up to the next heading of the same or a higher level
    (lines inside code blocks are not headings)."""
    lines = (ROOT / "README.md").read_text().splitlines(keepends=True)
    level = len(heading) - len(heading.lstrip("#"))
    start = lines.index(heading + "\n")
    fenced = False
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("```"):
            fenced = not fenced
        m = re.match(r"(#+) ", lines[i])
        if not fenced and m and len(m.group(1)) <= level:
            return "".join(lines[start:i])
    return "".join(lines[start:])


def blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"^```(\w+)\n(.*?)^```", text, re.M | re.S)


def named_file(code: str) -> str | None:
    """'# mypkg/models.py, beside ...' -> 'mypkg/models.py'."""
    m = re.match(r"#\s*([\w./-]+\.(?:py|toml))\b", code)
    return m.group(1) if m else None


def run_section(heading: str, folder: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    found = blocks(section(heading))
    assert found, heading
    for lang, code in found:
        path = named_file(code)
        if path is not None:
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code)
            if target.suffix == ".py" and target.parent != folder:
                (target.parent / "__init__.py").touch()
        elif lang == "python":
            out = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True)
            assert out.returncode == 0, f"{heading} block failed:\n{code}\n{out.stderr[-3000:]}"
        elif lang == "bash":
            for line in code.splitlines():
                if line.startswith("optiscope "):
                    args = shlex.split(line)[1:]
                    out = subprocess.run([sys.executable, "-m", "optiscope.cli", *args], cwd=folder, env=env,
                                         capture_output=True, text=True)
                    assert out.returncode == 0, f"{line}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"


def test_the_optimizers_section_runs_as_written(tmp_path):
    run_section("### Optimizers", tmp_path)


def test_the_your_own_model_section_runs_as_written(tmp_path):
    run_section("#### Your own model", tmp_path)
    assert (tmp_path / "runs" / "mine" / "runs").is_dir()
    assert (tmp_path / "runs" / "mine-loop" / "report.html").exists()
    from optiscope.store import RunStore

    trained = RunStore.open(tmp_path / "runs" / "mine")
    assert trained.query("SELECT count(*), count(DISTINCT cell_id) FROM runs WHERE status = 'ok'")[1] == [(8, 2)]
    recorded = RunStore.open(tmp_path / "runs" / "mine-loop")
    assert recorded.query("SELECT count(*), count(DISTINCT cell_id) FROM runs WHERE status = 'ok'")[1] == [(4, 1)]


@pytest.mark.parametrize("heading", ["### Optimizers", "#### Your own model"])
def test_the_sections_have_code_to_run(heading):
    kinds = [lang for lang, _ in blocks(section(heading))]
    assert "python" in kinds
