"""Which CLI subcommands exist, and how the app calls them.

The app does not assume which commands the installed kerasguide has: at
start it asks the CLI itself, in a child process (`python -m
kerasguide_gui.commands` prints the subcommands and their options as JSON),
so importing the CLI never happens in the GUI process, and a button appears
enabled only when its command exists. `job_args` builds the argument list
from the options a command declares (`--out`, `--json-progress`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, Signal

from kerasguide.cli_args import build_parser

__all__ = ["CommandSet", "CommandProbe", "JOB_COMMANDS", "job_args", "probe_commands"]

# The job buttons, in toolbar order: (subcommand, label, what it does)
JOB_COMMANDS = [
    ("check", "Check", "Sanity checks before training: initial loss, overfit a tiny subset, gradients"),
    ("lr-find", "Find LR", "LR range test: sweep the learning rate and suggest one"),
    ("run", "Run", "Train the config and record it in a new run directory"),
    ("tune", "Tune", "Hyperparameter search over the config"),
    ("ensemble", "Ensemble", "Train and combine several models"),
]


@dataclass(frozen=True)
class CommandSet:
    """The CLI's subcommands and the options each accepts."""

    options: dict[str, tuple[str, ...]]

    def has(self, command: str) -> bool:
        return command in self.options

    def accepts(self, command: str, option: str) -> bool:
        return option in self.options.get(command, ())


def probe_commands() -> dict[str, list[str]]:
    """Subcommand -> its option strings, read from the CLI's own parser.

    Runs in a child process (`python -m kerasguide_gui.commands`). The
    parser is `kerasguide.cli_args`'s, which imports no TensorFlow (and no
    command handler), so not even this module reaches TensorFlow statically.
    """
    parser = build_parser()
    result: dict[str, list[str]] = {}
    for action in parser._actions:  # argparse has no public accessor for subparsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                opts = [o for a in sub._actions for o in a.option_strings]
                result[name] = opts
    return result


def job_args(commands: CommandSet, command: str, config_path: str | Path, workspace: str | Path) -> list[str]:
    """The arguments of a job on a config: `CONFIG [--out WS] [--json-progress]`.

    `--json` (a command's result as one JSON document) is not asked for: the
    result is read from the run directory, and the log shows the human text.
    """
    args = [str(config_path)]
    if commands.accepts(command, "--out"):
        args += ["--out", str(workspace)]
    if commands.accepts(command, "--json-progress"):
        args.append("--json-progress")
    return args


class CommandProbe(QObject):
    """Asks the CLI for its commands in a child process; emits `ready(CommandSet)`."""

    ready = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.process: QProcess | None = None
        self.commands: CommandSet | None = None

    def start(self) -> None:
        process = QProcess(self)
        process.finished.connect(self._finished)
        process.errorOccurred.connect(lambda *_: self._finished(-1, None))
        self.process = process
        process.start(sys.executable, ["-m", "kerasguide_gui.commands"])

    def stop(self) -> None:
        if self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning:
            self.process.kill()
            self.process.waitForFinished(2000)

    def _finished(self, code: int, _status) -> None:
        if self.commands is not None:
            return
        options: dict[str, tuple[str, ...]] = {}
        if code == 0 and self.process is not None:
            try:
                data = json.loads(bytes(self.process.readAllStandardOutput().data()).decode())
                options = {k: tuple(v) for k, v in data.items()}
            except ValueError:
                options = {}
        if not options:  # the probe failed: assume the foundation's commands
            options = {"run": ("--out", "--json-progress", "--epochs", "--quiet")}
        self.commands = CommandSet(options)
        self.ready.emit(self.commands)


if __name__ == "__main__":  # the probe's child process
    json.dump(probe_commands(), sys.stdout)
    sys.exit(0)
