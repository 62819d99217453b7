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
from kerasguide.config import RunConfig, load_config
from kerasguide.rundir import read_json

__all__ = ["CommandSet", "CommandProbe", "EnsembleSpec", "JOB_COMMANDS", "ENSEMBLE_MODES", "job_args",
           "tune_args", "ensemble_args", "predict_args", "fix_args", "existing_search", "probe_commands"]

# The job buttons, in toolbar order: (subcommand, label, what it does)
JOB_COMMANDS = [
    ("check", "Check", "Sanity checks before training: initial loss, overfit a tiny subset, gradients"),
    ("lr-find", "Find LR", "LR range test: sweep the learning rate and suggest one"),
    ("run", "Run", "Train the config and record it in a new run directory"),
    ("tune", "Tune", "Hyperparameter search over the config (resume its search, or start afresh)"),
    ("ensemble", "Ensemble", "Combine several models: seeds of the config, existing runs or one run's snapshots; "
     "optionally distilled into one"),
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


def tune_args(commands: CommandSet, config_path: str | Path, workspace: str | Path, new: bool = False) -> list[str]:
    """`tune`'s arguments: resume the search of this config (the CLI's default), or `--new`: start afresh."""
    args = job_args(commands, "tune", config_path, workspace)
    if new:
        if not commands.accepts("tune", "--new"):
            raise ValueError("this kerasguide's `tune` has no --new (it always resumes)")
        args.append("--new")
    return args


def existing_search(workspace: str | Path, config: RunConfig) -> Path | None:
    """The newest search directory in `workspace` of exactly this config: the one `tune` would resume.

    `kerasguide.search.runner.find_search` matches a hash of the config; that
    module loads keras-tuner, so the app compares the config the search
    recorded (its config.toml, written from the same config the hash is of).
    """
    folder = Path(workspace)
    if not folder.is_dir():
        return None
    wanted = config.to_dict()
    found = []
    for path in folder.glob("*-search"):
        if not isinstance(read_json(path / "search.json", default=None), dict):
            continue
        try:
            if load_config(path / "config.toml").to_dict() == wanted:
                found.append(path)
        except Exception:  # noqa: BLE001 - an unreadable or foreign config is not this config's search
            continue
    return max(found, key=lambda p: p.name) if found else None


# The Ensemble dialog's modes: (mode, label, the option that gives its members).
ENSEMBLE_MODES = [
    ("seeds", "Seeds of this config", "--members"),
    ("runs", "Existing runs", "--runs"),
    ("snapshots", "Snapshots of one run", "--snapshots"),
]


@dataclass(frozen=True)
class EnsembleSpec:
    """What the Ensemble dialog asks for.

    Args:
        mode: `"seeds"` (train `members` seeds of the config), `"runs"` (the
            best checkpoints of `runs`: run or search directories) or
            `"snapshots"` (the snapshot checkpoints of the run `snapshots`).
        members: seeds: how many to train; runs: the best trials taken from a
            search directory. `None`: the CLI's default. Defaults to `None`.
        runs: The run or search directories. Defaults to `()`.
        snapshots: The run directory. Defaults to `None`.
        distill: Also train one student on the ensemble. Defaults to `False`.
        temperature: `--temperature`; `None`: the config's. Defaults to `None`.
        alpha: `--alpha`; `None`: the config's. Defaults to `None`.
    """

    mode: str = "seeds"
    members: int | None = None
    runs: tuple[str, ...] = ()
    snapshots: str | None = None
    distill: bool = False
    temperature: float | None = None
    alpha: float | None = None


def ensemble_args(commands: CommandSet, spec: EnsembleSpec, config_path: str | Path | None,
                  workspace: str | Path) -> list[str]:
    """`ensemble`'s arguments for a spec, from the options the CLI declares.

    Seeds run on the config (`CONFIG --members N`); runs and snapshots need no
    config (the members' own data and preprocessing are used), so none is
    passed. Raises ValueError when the spec is incomplete or asks for an
    option this CLI does not have.
    """
    def need(option: str) -> None:
        if not commands.accepts("ensemble", option):
            raise ValueError(f"this kerasguide's `ensemble` has no {option}")

    args: list[str] = []
    if spec.mode == "seeds":
        if config_path is None:
            raise ValueError("an ensemble of seeds needs a config")
        args.append(str(config_path))
        if spec.members is not None:
            need("--members")
            args += ["--members", str(int(spec.members))]
    elif spec.mode == "runs":
        if not spec.runs:
            raise ValueError("an ensemble of runs needs run or search directories")
        need("--runs")
        args += ["--runs", *(str(p) for p in spec.runs)]
        if spec.members is not None:
            need("--members")
            args += ["--members", str(int(spec.members))]
    elif spec.mode == "snapshots":
        if not spec.snapshots:
            raise ValueError("a snapshot ensemble needs a run directory")
        need("--snapshots")
        args += ["--snapshots", str(spec.snapshots)]
    else:
        raise ValueError(f"Argument `mode` must be one of seeds, runs, snapshots. Received: mode={spec.mode!r}")
    if spec.distill:
        need("--distill")
        args.append("--distill")
        for option, value in (("--temperature", spec.temperature), ("--alpha", spec.alpha)):
            if value is not None:
                need(option)
                args += [option, f"{float(value):g}"]
    elif spec.temperature is not None or spec.alpha is not None:
        raise ValueError("--temperature and --alpha are the distillation's: they need --distill")
    if commands.accepts("ensemble", "--out"):
        args += ["--out", str(workspace)]
    if commands.accepts("ensemble", "--json-progress"):
        args.append("--json-progress")
    return args


def predict_args(commands: CommandSet, run_dir: str | Path, input_path: str | Path, out: str | Path) -> list[str]:
    """`predict`'s arguments: `RUN_DIR INPUT --out CSV` (the app says where, to show it afterwards)."""
    args = [str(run_dir), str(input_path)]
    if commands.accepts("predict", "--out"):
        args += ["--out", str(out)]
    if commands.accepts("predict", "--json-progress"):
        args.append("--json-progress")
    return args


def fix_args(commands: CommandSet, run_dir: str | Path, workspace: str | Path) -> list[str]:
    """`fix`'s arguments: `RUN_DIR --out WS --json-progress` (the repaired runs land in the workspace, listed)."""
    args = [str(run_dir)]
    if commands.accepts("fix", "--out"):
        args += ["--out", str(workspace)]
    if commands.accepts("fix", "--json-progress"):
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
