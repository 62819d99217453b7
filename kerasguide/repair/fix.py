"""`fix_run`: diagnose, change the config, run it again, until no warning remains or the rounds are spent.

Each round is a whole `kerasguide run` of the repaired config (the same
`kerasguide.spine.run`), in a new run directory beside the original, whose
run.json names its `parent` (the run it repairs) and the `repair` (the
changes, the reasons, what could not change). The last run directory gets
the comparison: fix.json, fix.md and fix.png (the chain's curves overlaid).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kerasguide.config import load_config
from kerasguide.diagnosis import CODES, read_diagnosis, write_diagnosis
from kerasguide.repair.compare import run_summary, write_comparison
from kerasguide.repair.plan import Repair, apply_repair, config_diff, plan_repair
from kerasguide.rundir import RunDir
from kerasguide.spine import run

__all__ = ["fix_run", "FixResult", "RepairError", "load_fix"]


class RepairError(ValueError):
    """Bad input to `fix_run` (not a run directory, no config.toml): one line meant for a user."""


@dataclass
class FixResult:
    """The outcome of `fix_run`.

    `outcome` is `fixed` (the last run has no warning or error), `nothing_to_fix` (the original had none),
    `cannot_change` (findings remain that no config change answers), `rounds_spent`, or the status of a
    repaired run that did not complete (`failed`, `interrupted`, ...).
    """

    origin: Path
    outcome: str
    message: str
    runs: list[Path] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    cannot: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)
    report: Path | None = None

    @property
    def last(self) -> Path:
        return self.runs[-1] if self.runs else self.origin


def _findings(rd: RunDir) -> list[dict[str, Any]]:
    if not rd.file("diagnosis.json").is_file():
        write_diagnosis(rd)
    return [f.to_dict() for f in read_diagnosis(rd)] + _raw_extra(rd)


def _raw_extra(rd: RunDir) -> list[dict[str, Any]]:
    # Findings whose code this kerasguide's vocabulary does not know yet (read_diagnosis drops them).
    data = rd.read("diagnosis.json", default={}) or {}
    return [f for f in data.get("findings") or [] if isinstance(f, dict) and isinstance(f.get("code"), str)
            and f["code"] not in CODES and f.get("severity") in ("warning", "error", "info")]


def _problems(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in findings if f.get("severity") in ("warning", "error")]


def _open(run_dir: str | os.PathLike[str]) -> RunDir:
    path = Path(run_dir)
    if not path.is_dir():
        raise RepairError(f"{path}: no such run directory")
    if not (path / "run.json").is_file():
        raise RepairError(f"{path}: not a kerasguide run directory (no run.json)")
    if not (path / "config.toml").is_file():
        raise RepairError(f"{path}: no config.toml to repair (a `Babysitter` run of your own fit has none: change "
                          "your script as its diagnosis says)")
    return RunDir(path)


def fix_run(
    run_dir: str | os.PathLike[str],
    rounds: int = 2,
    out: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
    json_progress: bool = False,
    verbose: int = 0,
) -> FixResult:
    """Repair a run: plan config changes from its findings, re-run, repeat (`kerasguide fix`).

    Args:
        run_dir: The run directory to repair (its config.toml, run.json and diagnosis.json).
        rounds: At most this many repaired runs. Defaults to `2`.
        out: The folder of the repaired runs. Defaults to `None` (beside `run_dir`).
        progress: Called with one line of text per step (planned changes, each run's outcome). Defaults to
            `None` (silent).
        json_progress: The runs emit their JSON events on stdout (the desktop app). Defaults to `False`.
        verbose: Keras' progress bar for the runs (0: none). Defaults to `0`.

    Returns:
        A `FixResult`. Not a run directory, or one without a config.toml, raises `RepairError`; a config that
        no longer loads raises `ConfigError`.

    Example:

    ```python
    result = fix_run("runs/20260101-120000-digits-mlp-abc123", rounds=2)
    print(result.outcome, result.report)
    ```
    """
    if rounds < 1:
        raise RepairError(f"Argument `rounds` must be >= 1. Received: rounds={rounds}")
    say = progress or (lambda text: None)
    current = _open(run_dir)
    origin = current.path
    out = Path(out) if out is not None else origin.parent
    config = load_config(current.config_path)
    findings = _findings(current)
    summaries = [run_summary(current, findings)]
    steps: list[dict[str, Any]] = []
    cannot: list[str] = []
    result = FixResult(origin, "nothing_to_fix", "no warning or error in its diagnosis", runs=[origin])
    for index in range(1, rounds + 1):
        problems = _problems(findings)
        if not problems:
            if index > 1:
                result.outcome, result.message = "fixed", "no warning or error remains"
            break
        record = current.read_run()
        repair: Repair = plan_repair(config, findings, record)
        cannot += [c for c in repair.cannot if c not in cannot]
        if not repair:
            result.outcome = "cannot_change"
            result.message = "no config change answers " + ", ".join(sorted({f["code"] for f in problems}))
            break
        say(f"round {index}: {', '.join(dict.fromkeys(f['code'] for f in problems))} in {current.path.name}")
        for key, (old, new) in repair.changes.items():
            say(f"  {key}: {old!r} -> {new!r}")
        for line in repair.cannot:
            say(f"  cannot: {line}")
        new_config = apply_repair(config, repair)
        repaired = run(new_config, out=out, json_progress=json_progress, verbose=verbose)
        new_dir = repaired.run_dir
        step = {"round": index, "parent": str(current.path), "run_dir": str(new_dir.path),
                **repair.to_dict(), "diff": {k: list(v) for k, v in config_diff(config, new_config).items()}}
        new_dir.update_run(parent=str(current.path), repair={k: v for k, v in step.items() if k != "run_dir"})
        findings = _findings(new_dir)
        summaries.append(run_summary(new_dir, findings))
        steps.append(step)
        result.runs.append(new_dir.path)
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in repaired.final_metrics.items() if k.startswith("val_"))
        left = [f"{f['code']}" for f in _problems(findings)]
        say(f"round {index}: run {repaired.status}{': ' + metrics if metrics else ''}; "
            f"{'still ' + ', '.join(left) if left else 'no warning or error'} ({new_dir.path.name})")
        current, config = new_dir, new_config
        if repaired.status not in ("completed", "diverged", "checks_failed"):
            result.outcome, result.message = repaired.status, f"the repaired run ended {repaired.status}"
            break
        if not left:
            result.outcome, result.message = "fixed", "no warning or error remains"
            break
        result.outcome = "rounds_spent"
        result.message = f"{len(steps)} round{'s' if len(steps) > 1 else ''} spent, still {', '.join(left)}"
    result.rounds, result.cannot = steps, cannot
    result.remaining = [f["code"] for f in _problems(findings)]
    if steps:
        fix = {"format_version": 1, "origin": str(origin), "outcome": result.outcome, "message": result.message,
               "runs": summaries, "rounds": steps, "cannot": cannot, "remaining": result.remaining}
        result.report = write_comparison(current, fix)
    return result


def load_fix(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A run directory's fix.json (the last run of a repair chain), or None."""
    data = RunDir(Path(run_dir)).read("fix.json", default=None)
    return data if isinstance(data, dict) else None

