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
