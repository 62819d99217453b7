"""Helpers shared by the GUI tests: the fake CLI's argv, the commands it offers, child processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAKE_CLI = [sys.executable, str(HERE / "fake_cli.py")]
ALL_COMMANDS = {
    "run": ("--out", "--json-progress", "--epochs", "--quiet"),
    "check": ("--json", "--out"),
    "lr-find": ("--out",),
    "diagnose": (),
}


def descendants(pid: int | None = None) -> list[tuple[int, str]]:
    """Every live descendant process of `pid` (this process by default): `[(pid, cmdline)]`."""
    pid = pid or os.getpid()
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces: the parent pid follows the last ')'
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] == "Z":  # a zombie is dead, just not yet reaped
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                cmd = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            found.append((child, cmd.strip()))
            todo.append(child)
    return found


def python_children(pid: int | None = None) -> list[tuple[int, str]]:
    """Descendants that run Python or TensorBoard (CLI jobs, TensorBoard and its data server, the probe).

    Qt's own QtWebEngineProcess helpers are not counted: they live as long as
    the QApplication (see `test_the_app_leaves_no_process_behind`).
    """
    found = []
    for child, cmd in descendants(pid):
        exe = os.path.basename(cmd.split(" ")[0])
        if exe.startswith("python") or "tensorboard" in exe or "kerasguide" in exe:
            found.append((child, cmd))
    return found


def alive(pid: int) -> bool:
    """True while `pid` is a live (not zombie) process."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] != "Z"


def write_run(root: Path, name: str, *, checkpoint: bool = True, snapshots: int = 0, status: str = "completed",
              kind: str | None = None, config=None) -> Path:
    """A finished run directory as `kerasguide run` leaves it, with (or without) its checkpoints.

    The checkpoint files are placeholders: the app only looks at their names (the CLI loads them).
    """
    from kerasguide.config import RunConfig, save_config
    from kerasguide.rundir import RunDir

    run = RunDir(root / f"20260106-010203-{name}")
    run.path.mkdir(parents=True)
    cfg = config or RunConfig(name=name)
    save_config(cfg, run.config_path)
    rows = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.1 / e, "accuracy": 0.9, "val_accuracy": 0.8 + e / 100}
            for e in range(1, 4)]
    run.write_metrics(rows)
    record = {"name": name, "status": status, "started": "2026-01-06T01:02:03+00:00",
              "ended": "2026-01-06T01:03:03+00:00", "epochs_done": 3,
              "final_metrics": {k: v for k, v in rows[-1].items() if k != "epoch"},
              "best": {"metric": "val_accuracy", "value": rows[-1]["val_accuracy"], "epoch": 3}}
    if kind:
        record["kind"] = kind
    if status == "running":  # alive: its heartbeat is fresh
        import datetime as dt

        record.pop("ended")
        record["heartbeat"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    run.write_json("run.json", record)
    if checkpoint or snapshots:
        run.checkpoints_dir.mkdir()
    if checkpoint:
        (run.checkpoints_dir / "best-epoch=003-val_accuracy=0.8300.keras").write_bytes(b"placeholder")
        (run.checkpoints_dir / "last.keras").write_bytes(b"placeholder")
    for epoch in range(3 - snapshots + 1, 4) if snapshots else ():
        (run.checkpoints_dir / f"snapshot-epoch={epoch:03d}.keras").write_bytes(b"placeholder")
    return run.path
