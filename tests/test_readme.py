"""The README's "Bring your own model" examples run as written (a shorter fit)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Bring your own model")
    return text[start:text.index("\n## ", start + 10)]


def _block(text: str, first_line: str) -> str:
    start = text.index(first_line)
    return text[start:text.index("```", start)]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_the_babysitter_example_runs(tmp_path):
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", _section(), re.S) if "Babysitter" in b]
    code = code.replace("epochs=10", "epochs=2")
    (tmp_path / "example.py").write_text(code)
    out = _run([sys.executable, "example.py"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[-1].startswith("completed") and (tmp_path / "runs" / "my-fit" / "report.md").exists()


def test_the_builder_example_runs_and_its_config_sets_the_hyperparameter(tmp_path):
    section = _section()
    (tmp_path / "my_model.py").write_text(_block(section, "# my_model.py"))
    (tmp_path / "mine.toml").write_text(_block(section, "# mine.toml"))
    cli = [sys.executable, "-m", "kerasguide.cli"]
    out = _run([*cli, "run", "mine.toml", "--epochs", "1", "--quiet", "--out", "runs"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert '"units": 32' in (run_dir / "run.json").read_text()
