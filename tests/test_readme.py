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


def _data_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Bring your own data")
    return text[start:text.index("\n## ", start + 10)]


def test_the_data_examples_run_stream_augment_predict_and_export(tmp_path):
    section = _data_section()
    for name in ("my_data.py", "streamed.toml", "images.toml", "make_shapes.py"):
        (tmp_path / name).write_text(_block(section, f"# {name}"))
    commands = _block(section, "python make_shapes.py")
    script = "set -e\n" + commands.replace("kerasguide ", f"{sys.executable} -m kerasguide.cli ").replace(
        "--out runs", "--out runs --epochs 2 --quiet")
    (tmp_path / "commands.sh").write_text(script.replace("python make_shapes.py", f"{sys.executable} make_shapes.py"))
    out = _run(["bash", "commands.sh"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all((run / "report.md").exists() for run in runs)
    rows = (tmp_path / "left.csv").read_text().splitlines()
    assert len(rows) == 41 and "p_left" in rows[0]
    assert (tmp_path / "shapes.tflite").stat().st_size > 0


def test_the_predict_and_export_example_runs(tmp_path):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Use the result"):]
    (block,) = [b for b in re.findall(r"```\n(.*?)```", section[:section.index("\n## ", 10)], re.S)
                if "kerasguide predict" in b]
    # The commands as the venv runs them (`kerasguide` is its console script), a shorter run.
    script = (block.replace("--epochs 5", "--epochs 1").replace("python -c", f"{sys.executable} -c")
              .replace("kerasguide ", f"{sys.executable} -m kerasguide "))
    out = _run(["bash", "-e", "-c", script], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "100 predictions written to predictions.csv" in out.stdout
    assert (tmp_path / "predictions.csv").read_text().splitlines()[0].startswith("id,predicted,p_0")
    assert (tmp_path / "digits.tflite").stat().st_size > 1000
