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


def python_children() -> list[tuple[int, str]]:
    """Descendants that are Python processes (CLI jobs, TensorBoard, the probe)."""
    return [(p, c) for p, c in descendants() if "python" in c.split(" ")[0] or "tensorboard" in c]
