"""Every file a run or a search writes keeps the user's umask, whichever writer made it (issue 15: "shared by accident").

The atomic writer once wrote 0600 (mkstemp) beside Keras' and TensorBoard's 0644: a team sharing a runs
folder, or TensorBoard under another user, could read only half a run.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kerasguide.config import save_config
from tests.conftest import cli_in_process, tiny_digits


def _modes(root: Path) -> dict[str, list[str]]:
    wrong: dict[str, list[str]] = {}
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        wrong.setdefault(oct(mode) + ("/" if path.is_dir() else ""), []).append(str(path.relative_to(root)))
    return wrong


def _with_umask(umask: int, capsys, *args: str):
    old = os.umask(umask)
    try:
        return cli_in_process(capsys, *args)
    finally:
        os.umask(old)


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)],
                         ids=["umask022", "umask027"])
def test_a_run_writes_every_file_with_the_umask(tmp_path, capsys, umask, file_mode, dir_mode):
    cfg = tiny_digits("perm", epochs=1)  # monitors on: jsonl records and images; TensorBoard events; checkpoints
    cfg.checks.enabled = True  # checks.json
    save_config(cfg, tmp_path / "c.toml")
    done = _with_umask(umask, capsys, "run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = next((tmp_path / "runs").iterdir())
    names = {p.name for p in run_dir.rglob("*")}
    assert {"run.json", "config.toml", "metrics.csv", "report.md", "checks.json", "last.keras"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names) and any(n.endswith(".jsonl") for n in names)
    modes = _modes(run_dir)
    assert set(modes) == {oct(file_mode), oct(dir_mode) + "/"}, modes


def test_a_search_writes_every_file_with_the_umask(tmp_path, capsys):
    """search.json, the report, best/, keras-tuner's oracle and trial files, the trials' run directories."""
    cfg = tiny_digits("permsearch", epochs=1, monitors=False, algorithm="random", workers=0, widen_on_border=False,
                      stages=[{"epochs": 1, "trials": 2}])
    save_config(cfg, tmp_path / "s.toml")
    done = _with_umask(0o027, capsys, "tune", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    search = next((tmp_path / "out").glob("*-search"))
    names = {p.name for p in search.rglob("*")}
    assert {"search.json", "search.md", "best.toml", "oracle.json", "trial.json", "kerasguide.json"} <= names
    modes = _modes(tmp_path / "out")
    assert set(modes) == {"0o640", "0o750/"}, modes
