"""A search's budget before it runs: trials x epochs per stage, and the time one training step says it takes.

`plan_budget(config)` is pure (no TensorFlow): the stages `tune` would run
(`resolve_stages`), and for Hyperband the rounds of successive halving its
oracle will ask for (keras-tuner's own bracket arithmetic). `estimate_budget`
adds an estimated time: it builds the config's data and model once, times a
warm-up step (the trace) and then a few real training and validation steps on
one batch, and scales them by the steps per epoch and the planned epochs, plus
a per-trial overhead measured the same way (data loading, model building,
compiling, tracing; with worker processes also the TensorFlow import).
Nothing is written anywhere: `kerasguide tune CONFIG --dry-run`.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kerasguide.config import RunConfig
from kerasguide.search.space import resolve_stages

__all__ = ["BudgetRow", "Budget", "plan_budget", "hyperband_rounds", "estimate_budget", "format_budget"]

# What the timed steps do not show, per trial: the run directory, checkpoints, the test split, the report and the
# diagnosis a run writes at its end, and the master's bookkeeping (keras-tuner's state, search.json, best/).
# Measured on digits trials (tests/test_search_status.py compares the estimate with a real search).
TRIAL_RECORD_SECONDS = 1.2
# Once per search: search.md and search.png at the end.
SEARCH_REPORT_SECONDS = 1.5


@dataclass
class BudgetRow:
    """One line of the plan: `trials` trials of `epochs` epochs in stage `stage` (ASHA, Hyperband: a rung).

    `trained`: the epochs each of them trains; a promoted trial continues from its parent's checkpoint,
    so it trains `epochs` minus the parent's. Defaults to `None` (`epochs`).
    """

    stage: int
    label: str
    trials: int
    epochs: int
    seconds: float | None = None
    trained: int | None = None

    @property
    def epochs_each(self) -> int:
        return self.epochs if self.trained is None else self.trained

    @property
    def total_epochs(self) -> int:
        return self.trials * self.epochs_each


@dataclass
class Budget:
    """The whole plan, and (after `estimate_budget`) its estimated time and what it rests on."""

    name: str
    algorithm: str
    workers: int
    rows: list[BudgetRow]
    seconds: float | None = None
    timing: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def trials(self) -> int:
        return sum(r.trials for r in self.rows)

    @property
    def total_epochs(self) -> int:
        return sum(r.total_epochs for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "algorithm": self.algorithm, "workers": self.workers,
            "rows": [dict(asdict(r), trained=r.epochs_each, total_epochs=r.total_epochs) for r in self.rows],
            "trials": self.trials, "total_epochs": self.total_epochs,
            "seconds": None if self.seconds is None else round(self.seconds, 1),
            "timing": self.timing, "notes": self.notes,
        }


def hyperband_rounds(max_epochs: int, factor: int) -> list[tuple[int, int]]:
    """`[(trials, epochs), ...]` of one Hyperband iteration, as keras-tuner's `HyperbandOracle` plans it.

    Brackets from the most aggressive down; bracket `b` has rounds `r = 0..b`
    of `ceil(ceil(1 + log_f(max_epochs)) / (b + 1) * f ** (b - r))` trials of
    `ceil(max_epochs / f ** (b - r))` epochs (a round after the first of its
    bracket continues its trials from the round before: `plan_budget`).
    """
    max_epochs = max(1, int(max_epochs))
    brackets, epochs = 0, float(max_epochs)
    while epochs >= 1:
        epochs /= factor
        brackets += 1
    end_size = math.ceil(1 + math.log(max_epochs, factor))
    rounds = []
    for bracket in range(brackets - 1, -1, -1):
        for round_num in range(bracket + 1):
            trials = math.ceil(end_size / (bracket + 1) * factor ** (bracket - round_num))
            rounds.append((trials, math.ceil(max_epochs / factor ** (bracket - round_num))))
    return rounds


def plan_budget(config: RunConfig) -> Budget:
    """The stages (and Hyperband's rounds) of a search of `config`: trials x epochs, no time yet."""
    search = config.search
    rows: list[BudgetRow] = []
    notes: list[str] = []
    for index, plan in enumerate(resolve_stages(config), start=1):
        if search.algorithm == "hyperband":
            before = 0
            for number, (trials, epochs) in enumerate(hyperband_rounds(plan.epochs, search.hyperband_factor)):
                before = before if epochs > before else 0  # not longer than the round before: a new bracket
                rows.append(BudgetRow(index, f"hyperband round {number + 1}", trials, epochs,
                                      trained=epochs - before))
                before = epochs
        elif search.algorithm == "asha":
            from kerasguide.search.asha_plan import asha_plan, asha_rungs  # pure: no TensorFlow here

            rungs = asha_rungs(plan.epochs, search.hyperband_factor, search.min_epochs, plan.trials)
            for number, (trials, epochs, trained) in enumerate(asha_plan(rungs, plan.trials,
                                                                         search.hyperband_factor)):
                rows.append(BudgetRow(index, f"asha rung {number + 1}", trials, epochs, trained=trained))
            notes.append("asha: the most each rung gets (1 in hyperband_factor of a rung is promoted; "
                         "a promoted trial continues from its checkpoint)")
        else:
            rows.append(BudgetRow(index, plan.label, plan.trials, plan.epochs))
    if search.algorithm == "grid":
        notes.append("grid: a stage may end sooner, when its grid has fewer points than trials")
    if search.widen_on_border:
        notes.append("a best value on a range's border adds one more stage like the last (search.widen_on_border)")
    return Budget(config.name, search.algorithm, search.workers, rows, notes=notes)


def _timed(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def estimate_budget(config: RunConfig, steps: int = 5, import_seconds: float = 0.0) -> Budget:
    """`plan_budget` with an estimated time, from real training steps of the config's model.

    Args:
        config: The config to be searched.
        steps: Training steps timed after the warm-up step. Defaults to `5`.
        import_seconds: What importing TensorFlow, keras-tuner and the
            spine took in this process (the CLI measures it): the search's
            start, and each worker process pays it again. Defaults to `0.0`.

    Returns:
        The `Budget` with `seconds` (the whole `tune` command: start-up, the
        trials divided among `search.workers` running at once, the report)
        and `timing` (what was measured).
    """
    import keras

    from kerasguide.tasks import apply_task
    from kerasguide.training import (
        build_for_fit,
        compile_model,
        initial_learning_rate,
        prepare,
        split_batches,
    )

    budget = plan_budget(config)
    start = time.perf_counter()
    dataset, model = prepare(config)
    cfg = apply_task(config, dataset.task)
    # One step per call: what is timed is a step (the run's steps_per_execution only saves Python round trips).
    compile_model(model, cfg, initial_learning_rate(cfg), 1)
    build_for_fit(model, dataset.x_train, dataset.y_train)
    batch_size = cfg.train.batch_size
    train = iter(split_batches(dataset, "train", batch_size, True, cfg.train.seed).repeat())
    x, y = next(train)
    model.train_on_batch(x, y)  # the warm-up: the trace
    setup = time.perf_counter() - start
    step = _timed(lambda: model.train_on_batch(x, y), steps)
    val_x, val_y = next(iter(split_batches(dataset, "validation", batch_size)))
    model.test_on_batch(val_x, val_y)  # its trace
    val_step = _timed(lambda: model.test_on_batch(val_x, val_y), steps)
    train_steps = dataset.steps("train", batch_size)
    val_steps = dataset.steps("validation", batch_size)
    with tempfile.TemporaryDirectory() as tmp:  # a checkpoint a run writes each epoch (best and last): timed, not kept
        save = _timed(lambda: model.save(Path(tmp) / "probe.keras"))
    keras.backend.clear_session()
    epoch = train_steps * step + val_steps * val_step + 1.5 * save
    per_trial = setup + TRIAL_RECORD_SECONDS + (import_seconds if budget.workers else 0.0)
    for row in budget.rows:
        row.seconds = row.trials * (per_trial + row.epochs_each * epoch)
    slots = max(1, budget.workers)
    budget.seconds = import_seconds + sum(r.seconds for r in budget.rows) / slots + SEARCH_REPORT_SECONDS
    budget.timing = {
        "step_seconds": round(step, 5), "val_step_seconds": round(val_step, 5),
        "train_steps_per_epoch": train_steps, "val_steps_per_epoch": val_steps,
        "epoch_seconds": round(epoch, 3), "setup_seconds": round(setup, 2),
        "trial_overhead_seconds": round(per_trial, 2), "import_seconds": round(import_seconds, 2),
        "checkpoint_seconds": round(save, 3), "report_seconds": SEARCH_REPORT_SECONDS,
        "batch_size": batch_size, "timed_steps": steps,
    }
    if slots > 1:
        budget.notes.append(f"{slots} workers at once: the time is the trials' time divided by {slots}")
    return budget


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_budget(budget: Budget) -> str:
    """The plan as a table: stage, trials x epochs, epochs, estimated time; then the totals."""
    lines = [f"search {budget.name}: {budget.algorithm}, {budget.workers or 'no'} worker process"
             f"{'' if budget.workers == 1 else 'es'}",
             f"{'stage':>5}  {'':24s} {'trials x epochs':>15}  {'epochs':>6}  {'time':>12}"]
    for row in budget.rows:
        each = f"{row.trials} x {row.epochs}" + (f" (+{row.epochs_each})" if row.epochs_each != row.epochs else "")
        lines.append(f"{row.stage:>5}  {row.label:24s} {each:>15}  "
                     f"{row.total_epochs:>6}  {_duration(row.seconds):>12}")
    lines.append(f"{'total':>5}  {'':24s} {f'{budget.trials} trials':>15}  {budget.total_epochs:>6}  "
                 f"{_duration(budget.seconds):>12}")
    timing = budget.timing
    if timing:
        lines.append(f"estimate: {timing['step_seconds'] * 1000:.1f} ms a training step x "
                     f"{timing['train_steps_per_epoch']} steps an epoch (+ validation: {timing['epoch_seconds']:.2f} s "
                     f"an epoch), plus {timing['trial_overhead_seconds']:.1f} s a trial to set up and record, "
                     f"{timing['import_seconds']:.1f} s to start and {timing['report_seconds']:.1f} s for the report")
    lines += [f"note: {note}" for note in budget.notes]
    return "\n".join(lines)
