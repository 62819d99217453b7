"""The progress events: what `--json-progress` prints, one definition for the CLI and the desktop app.

Every event is one JSON object per line on stdout with an `event` key:

| event | fields |
|---|---|
| `start` | run_dir, name; `run`: epochs; `check`: kind, planned; `lr-find`: kind, steps; `tune`: kind = "search", ... |
| `stage` | stage (a stage of the run, `checks`, `lr_find`) |
| `step` | a run: epoch, step, steps; `check`/`lr-find` (`StepEvents`): stage, step, steps, elapsed, eta |
| `epoch` | epoch, total, metrics, seconds, eta |
| `check` | a check result (`CheckResult.to_dict()`) |
| `end` | status, run_dir, error |
| `message` | level, text |

This module imports no TensorFlow: the app parses with `parse_event`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from kerasguide.io import to_json

__all__ = ["EVENTS", "EXIT_CODES", "Progress", "StepEvents", "parse_event"]

EVENTS = ("start", "stage", "step", "epoch", "check", "resumed", "end", "message")

# The CLI's exit codes and what each means (the app shows them).
EXIT_CODES = {
    0: "ok",
    1: "the run failed, was interrupted, diverged or was pruned",
    2: "bad input (config or paths)",
    3: "a sanity check failed",
}


def parse_event(line: str) -> dict[str, Any] | None:
    """A `--json-progress` event from one stdout line, or None for any other line."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if isinstance(event, dict) and isinstance(event.get("event"), str):
        return event
    return None


class Progress:
    """Progress events: JSON lines on stdout for the desktop app, or nothing.

    Args:
        json_lines: Write the events; `False` makes `emit` a no-op.
            Defaults to `False`.
        stream: Where the lines go. Defaults to `sys.stdout`.
    """

    def __init__(self, json_lines: bool = False, stream=None):
        self.json_lines = json_lines
        self.stream = stream or sys.stdout

    def emit(self, event: str, **fields: Any) -> None:
        if not self.json_lines:
            return
        self.stream.write(to_json({"event": event, **fields}) + "\n")
        self.stream.flush()


class StepEvents:
    """`step` events of a job counted in steps, with the time spent and an ETA.

    What `kerasguide check` (a step per check done) and `kerasguide lr-find`
    (a step every few sweep steps) emit: `{"event": "step", "stage": ...,
    "step": k, "steps": n, "elapsed": s, "eta": s}`. A step is emitted once
    `every` steps have passed since the last event, or `seconds` seconds,
    and always the last one.

    Args:
        progress: Where the events go.
        stage: The `stage` field of each event (`"checks"`, `"lr_find"`).
        steps: How many steps the job plans.
        every: Steps between two events. Defaults to `1`.
        seconds: Longest time between two events (while steps come).
            Defaults to `1.0`.
    """

    def __init__(self, progress: Progress, stage: str, steps: int, every: int = 1, seconds: float = 1.0):
        self.progress = progress
        self.stage = stage
        self.steps = max(int(steps), 1)
        self.every = max(int(every), 1)
        self.seconds = seconds
        self.started = time.perf_counter()
        self._last_step = 0
        self._last_time = self.started
        self._first: tuple[int, float] | None = None

    def __call__(self, step: int, **fields: Any) -> None:
        """Step `step` (1-based) is done: emit its event if it is due."""
        if not self.progress.json_lines:
            return
        now = time.perf_counter()
        if self._first is None:
            self._first = (step, now)
        due = step - self._last_step >= self.every or now - self._last_time >= self.seconds or step >= self.steps
        if not due:
            return
        self._last_step, self._last_time = step, now
        elapsed = now - self.started
        # The pace since the first step: that one also paid for tracing and compiling.
        first_step, first_time = self._first
        if step > first_step:
            eta = (now - first_time) / (step - first_step) * max(self.steps - step, 0)
        else:
            eta = elapsed / max(step, 1) * max(self.steps - step, 0)
        self.progress.emit("step", stage=self.stage, step=step, steps=self.steps, elapsed=round(elapsed, 3),
                           eta=round(eta, 3), **fields)
