"""Jobs: `kerasguide` CLI commands run as child processes, one at a time, in a queue.

A `Job` wraps a `QProcess`. Its stdout is read line by line as it arrives;
lines that are `--json-progress` events update the job's `Progress`, every
other line goes to its log. Stderr (the CLI's human messages) goes to the log
and to a short tail shown when the job fails. Cancel sends SIGTERM (the CLI
then records the run as interrupted) and, if the child is still alive after
a grace period, kills it. Nothing here blocks the event loop.

The pure parts (`Progress.apply`, `format_eta`, `describe_exit`) are plain
functions, tested directly; `parse_event` and the exit codes' meanings are
`kerasguide.progress`'s, the definition the CLI writes by (re-exported here).
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

# The events and the exit codes are the CLI's own definitions (TensorFlow-free), not copies.
from kerasguide.progress import EXIT_CODES, parse_event

__all__ = [
    "Job",
    "JobQueue",
    "Progress",
    "parse_event",
    "format_eta",
    "describe_exit",
    "cli_program",
    "QUEUED",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
]

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = "queued", "running", "completed", "failed", "cancelled"
FINISHED_STATES = (COMPLETED, FAILED, CANCELLED)


_RUN_DIR_LINE = re.compile(r"run directory:?\s+(\S.*)$")
# `tune` and `ensemble` end by naming the folder they wrote: what "Show run" selects afterwards.
_FOLDER_LINE = re.compile(r"^(search|ensemble) directory:\s+(\S.*)$")
# "checks.json: /runs/x/checks.json" and the like: the run directory is the file's folder.
# The CLI's one line on failure: `kerasguide: error: ...` (bad input), `kerasguide: ...` (a failed command).
_CLI_LINE = re.compile(r"^kerasguide(?: [\w-]+)?: \S")
_RESULT_FILE_LINE = re.compile(r"(?:^|\s)(/\S+|[A-Za-z]:\\\S+|\S+)/(?:checks|lr_find|diagnosis|run)\.json\s*$")


def cli_program() -> list[str]:
    """The argv prefix that runs the kerasguide CLI with this interpreter."""
    return [sys.executable, "-P", "-m", "kerasguide.cli"]  # -P: a user's json.py in the cwd is not imported


def format_eta(seconds: float | None) -> str:
    """`83.2` -> `"1:23"`; `4000` -> `"1:06:40"`; None -> `""`."""
    if seconds is None or not isinstance(seconds, (int, float)) or seconds != seconds or seconds < 0:
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe_exit(code: int | None) -> str:
    """A short meaning of a CLI exit code."""
    if code is None:
        return "the process did not start or crashed"
    return EXIT_CODES.get(code, f"exit code {code}")


def child_process(parent: QObject) -> QProcess:
    """A QProcess for a `kerasguide` child: unbuffered UTF-8 output, TensorFlow's logs quiet, stdout and
    stderr apart (progress events on one, messages on the other)."""
    process = QProcess(parent)
    env = QProcessEnvironment.systemEnvironment()
    env.insert("PYTHONUNBUFFERED", "1")
    env.insert("PYTHONIOENCODING", "utf-8")
    env.insert("TF_CPP_MIN_LOG_LEVEL", env.value("TF_CPP_MIN_LOG_LEVEL", "3"))
    process.setProcessEnvironment(env)
    process.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
    return process


@dataclass
class Progress:
    """What the progress events of a job said so far.

    `fraction` (0..1) counts finished epochs plus the current epoch's steps;
    a step-only job (`lr-find`'s sweep steps, `check`'s checks) uses its
    steps, and the ETA its step events carry. A job that trains
    several runs one after the other (an ensemble's members) starts each
    run's count afresh and, when `runs_total` is known, counts the finished
    runs too. A search (`tune`, whose `start` event has `kind = "search"`)
    counts its finished trials against the trials its stages plan. A resumed
    run (`run --resume`, its `resumed` event) counts from the epoch it resumed
    after, and its line says so.
    """

    stage: str = ""
    epoch: int = 0
    total: int = 0
    step: int = 0
    steps: int = 0
    eta: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    run_dir: str | None = None
    status: str | None = None
    error: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    # several runs in one job (ensemble members)
    runs: int = 0
    runs_total: int = 0
    elapsed: float = 0.0  # seconds into the current run (its last epoch event)
    run_seconds: list[float] = field(default_factory=list)  # the finished runs'
    # a search (tune)
    search_dir: str | None = None
    search_stage: int = 0
    stage_plan: dict[int, tuple[int | None, int]] = field(default_factory=dict)  # stage -> (trials, epochs)
    trials_done: dict[tuple[Any, Any], float] = field(default_factory=dict)  # (stage, trial) -> seconds
    # a resumed run (`run --resume`): the epoch its backup had done, and "backup" or "start" (no backup yet)
    resumed_after: int | None = None
    resumed_from: str | None = None

    @property
    def is_search(self) -> bool:
        return self.search_dir is not None

    def _run_fraction(self) -> float | None:
        if self.status is not None and self.status == "completed":
            return 1.0
        if self.total > 0:
            done = max(self.epoch - 1, 0) if self.step else self.epoch
            partial = self.step / self.steps if self.steps and self.step else 0.0
            if self.step and self.steps and self.step >= self.steps:
                done, partial = self.epoch, 0.0
            return min(1.0, (done + partial) / self.total)
        if self.steps > 0:
            return min(1.0, self.step / self.steps)
        return None

    def _trials_planned(self) -> int:
        return sum(trials for trials, _ in self.stage_plan.values() if trials)

    @property
    def fraction(self) -> float | None:
        if self.is_search:
            if self.status == "completed":
                return 1.0
            planned = self._trials_planned()
            return min(1.0, len(self.trials_done) / planned) if planned else None
        current = self._run_fraction()
        if self.runs_total > 1 and self.runs:
            return min(1.0, (min(self.runs, self.runs_total) - 1 + (current or 0.0)) / self.runs_total)
        return current

    @property
    def remaining(self) -> float | None:
        """Seconds left for the whole job, when the events allow an estimate."""
        if self.status is not None and (self.is_search or self.runs >= self.runs_total):
            return None
        if self.is_search:
            # Trials cost about their epochs: seconds per trial-epoch so far, times the epochs to go.
            spent = sum(self.trials_done.values())
            epochs_done = sum(self.stage_plan.get(_int(s, 0), (None, 1))[1] for s, _ in self.trials_done)
            if not self.trials_done or not epochs_done or not spent:
                return None
            to_go = 0
            for index, (trials, epochs) in self.stage_plan.items():
                done = sum(1 for s, _ in self.trials_done if _int(s, 0) == index)
                to_go += max((trials or 0) - done, 0) * epochs
            return spent / epochs_done * to_go
        if self.eta is None:
            return None
        later = max(self.runs_total - self.runs, 0)
        if not later:
            return self.eta
        per_run = (sum(self.run_seconds) / len(self.run_seconds) if self.run_seconds
                   else self.elapsed + self.eta)
        return self.eta + later * per_run

    def apply(self, event: dict[str, Any]) -> None:
        """Update from one event (unknown events and missing keys are ignored)."""
        kind = event.get("event")
        if kind == "start":
            if event.get("kind") == "search":
                self.search_dir = str(event.get("search_dir") or "")
                for index, plan in enumerate(event.get("stages") or [], start=1):
                    if isinstance(plan, dict):
                        trials = plan.get("trials")
                        self.stage_plan[index] = (_int(trials, 0) or None, _int(plan.get("epochs"), 1) or 1)
                return
            if self.runs:  # the next run of the job: its own epochs, steps and verdict
                if self.elapsed:
                    self.run_seconds.append(self.elapsed)
                self.epoch = self.step = self.steps = 0
                self.eta, self.status, self.error, self.elapsed = None, None, None, 0.0
            self.runs += 1
            self.run_dir = event.get("run_dir") or self.run_dir
            self.total = _int(event.get("epochs"), self.total)
        elif kind == "stage":
            stage = event.get("stage")
            if self.is_search and isinstance(stage, int) and not isinstance(stage, bool):
                self.search_stage = stage
                known = self.stage_plan.get(stage, (None, 1))
                trials = _int(event.get("trials"), 0) or known[0]
                self.stage_plan[stage] = (trials, _int(event.get("epochs"), known[1]) or 1)
                label = event.get("label")
                self.stage = f"stage {stage}" + (f" ({label})" if label else "")
            else:
                self.stage = str(stage or "")
        elif kind == "trial":
            status = event.get("status")
            if status and status != "running":
                seconds = event.get("seconds")
                self.trials_done[(event.get("stage"), event.get("trial_id"))] = (
                    float(seconds) if isinstance(seconds, (int, float)) else 0.0)
        elif kind == "step":
            epoch = _int(event.get("epoch"), self.epoch)
            if epoch != self.epoch:
                self.epoch = epoch
            self.step = _int(event.get("step"), self.step)
            self.steps = _int(event.get("steps"), self.steps)
            if isinstance(event.get("stage"), str) and event["stage"]:
                self.stage = event["stage"]
            # A job counted in steps (`check`, `lr-find`) says its own ETA; a
            # training step does not, and the last epoch's ETA stands.
            eta = event.get("eta")
            if isinstance(eta, (int, float)) and not isinstance(eta, bool) and not self.total:
                self.eta = float(eta)
                elapsed = event.get("elapsed")
                if isinstance(elapsed, (int, float)):
                    self.elapsed = float(elapsed)
        elif kind == "epoch":
            self.epoch = _int(event.get("epoch"), self.epoch)
            self.total = _int(event.get("total"), self.total)
            self.step = 0
            eta = event.get("eta")
            self.eta = float(eta) if isinstance(eta, (int, float)) else None
            elapsed = event.get("elapsed")
            if isinstance(elapsed, (int, float)):
                self.elapsed = float(elapsed)
            metrics = event.get("metrics")
            if isinstance(metrics, dict):
                self.metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        elif kind == "check":
            self.checks.append({k: v for k, v in event.items() if k != "event"})
        elif kind == "end":
            self.status = event.get("status") or self.status
            self.run_dir = event.get("run_dir") or self.run_dir
            self.search_dir = event.get("search_dir") or self.search_dir
            self.error = event.get("error") or self.error
        elif kind == "message":
            text = event.get("text")
            if text:
                self.messages.append(str(text))
        elif kind == "resumed":
            self.resumed_after = _int(event.get("epoch"), 0)
            self.resumed_from = str(event.get("source") or "backup")
            self.epoch, self.step = self.resumed_after, 0  # those epochs are done: the bar starts there

    def describe(self) -> str:
        """One line, e.g. `"epoch 3/40 · step 12/23 · ETA 0:42"`."""
        parts = []
        if self.is_search:
            if self.search_stage:
                parts.append(f"stage {self.search_stage}/{max(len(self.stage_plan), self.search_stage)}")
            planned = self._trials_planned()
            if planned:
                parts.append(f"trial {len(self.trials_done)}/{planned}")
            eta = format_eta(self.remaining)
            if eta and self.status is None:
                parts.append(f"ETA {eta}")
            return " · ".join(parts)
        if self.runs_total > 1:
            parts.append(f"run {min(self.runs, self.runs_total)}/{self.runs_total}")
        elif self.runs > 1:
            parts.append(f"run {self.runs}")
        if self.total:
            parts.append(f"epoch {max(self.epoch, 0)}/{self.total}")
        if self.steps and self.step:
            unit = "check" if self.stage == "checks" and not self.total else "step"
            parts.append(f"{unit} {self.step}/{self.steps}")
        eta = format_eta(self.remaining)
        if eta and self.status is None:
            parts.append(f"ETA {eta}")
        has_counts = bool(parts) and parts != [f"run {self.runs}"]
        if not has_counts and self.stage:
            parts.append(self.stage)
        elif self.stage and self.status is None and self.stage not in ("fit", *(() if self.total else ("checks",))):
            parts.append(self.stage)  # (a check job's "check k/n" already says it)
        if self.resumed_after is not None:
            parts.append(_resumed_words(self.resumed_after, self.resumed_from))
        return " · ".join(parts)


def _resumed_words(epoch: int, source: str | None) -> str:
    return "resumed from the start (no backup yet)" if source == "start" else f"resumed after epoch {epoch}"


def _int(value: Any, default: int) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


_IDS = itertools.count(1)


class Job(QObject):
    """One CLI command in a child process.

    Args:
        kind: The subcommand (`"run"`, `"check"`, `"lr-find"`, ...).
        args: Its arguments after the subcommand.
        title: What the jobs list shows. Defaults to the kind.
        source: What it runs on, for the jobs list (a config's name). Defaults
            to its first argument.
        program: The argv prefix that runs the CLI. Defaults to `cli_program()`.
        cancel_grace: Seconds between SIGTERM and SIGKILL on cancel: the CLI
            finishes the run's record and report in between, which takes
            seconds on a busy machine. Defaults to `60`.

    Signals:
        changed(): state or progress changed.
        output(str): new log text (already newline-terminated).
        finished(): the job reached a final state.
    """

    changed = Signal()
    output = Signal(str)
    finished = Signal()

    LOG_LINES = 5000
    TAIL_LINES = 25

    def __init__(self, kind: str, args: list[str], title: str | None = None,
                 program: list[str] | None = None, cancel_grace: float = 60.0,
                 parent: QObject | None = None, source: str | None = None):
        super().__init__(parent)
        self.source = source or (args[0] if args else "")
        self.id = next(_IDS)
        self.kind = kind
        self.args = list(args)
        self.title = title or kind
        self.program = list(program or cli_program())
        self.cancel_grace = cancel_grace
        self.state = QUEUED
        self.progress = Progress()
        self.exit_code: int | None = None
        self.error: str | None = None
        self.log: deque[str] = deque(maxlen=self.LOG_LINES)
        self.stderr_tail: deque[str] = deque(maxlen=self.TAIL_LINES)
        self.stdout_text: list[str] = []  # non-event stdout (e.g. `check --json`)
        # The search or ensemble directory the job named (`tune`, `ensemble`), once it did.
        self.folder: str | None = None
        self.folder_kind: str | None = None
        # The file the job writes that the app shows afterwards (`predict`'s CSV), when the app chose it.
        self.output_file: str | None = None
        self.created = time.time()
        self.started: float | None = None
        self.ended: float | None = None
        self.process: QProcess | None = None
        self._cancel_requested = False
        self._buffers = {"out": b"", "err": b""}
        self._kill_timer: QTimer | None = None

    # ------------------------------------------------------------ queries
    @property
    def argv(self) -> list[str]:
        return [*self.program, self.kind, *self.args]

    @property
    def run_dir(self) -> str | None:
        """What the job wrote: its run directory; for `tune` its search directory, for
        `ensemble` (once it named it) its ensemble directory, else the member training."""
        return self.folder or self.progress.search_dir or self.progress.run_dir

    @property
    def finished_state(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def cli_message(self) -> str | None:
        """The CLI's own one-line verdict (`kerasguide: error: ...`, `kerasguide: ensemble failed: ...`): its
        last line on stderr, when that is one; None otherwise (a traceback's last line, say)."""
        last = next((line.strip() for line in reversed(self.stderr_tail) if line.strip()), "")
        return last if _CLI_LINE.match(last) else None

    def result_json(self) -> Any:
        """The JSON document the command printed on stdout, if any (e.g. `check --json`)."""
        text = "\n".join(self.stdout_text).strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return None

    # ------------------------------------------------------------ control
    def start(self) -> None:
        if self.state != QUEUED:
            return
        process = child_process(self)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._finished)
        process.errorOccurred.connect(self._error)
        self.process = process
        self.state = RUNNING
        self.started = time.time()
        self._append(f"$ {' '.join(_quote(a) for a in self.argv)}\n")
        self.changed.emit()
        process.start(self.argv[0], self.argv[1:])

    def cancel(self) -> None:
        """Stop the job: a queued one never starts, a running one gets SIGTERM, then SIGKILL."""
        if self.state == QUEUED:
            self.state = CANCELLED
            self.ended = time.time()
            self.changed.emit()
            self.finished.emit()
            return
        if self.state != RUNNING or self.process is None:
            return
        if self._cancel_requested:  # a second Cancel: do not wait any longer
            self.process.kill()
            return
        self._cancel_requested = True
        self._append("[cancel requested: SIGTERM sent; the run will be marked interrupted]\n")
        self.process.terminate()
        self._kill_timer = QTimer(self, singleShot=True)
        self._kill_timer.timeout.connect(self._kill_if_alive)
        self._kill_timer.start(int(self.cancel_grace * 1000))
        self.changed.emit()

    def stop_now(self, timeout_ms: int = 20000) -> None:
        """Terminate and wait (blocking, bounded): used when the app closes."""
        process = self.process
        if process is None or process.state() == QProcess.ProcessState.NotRunning:
            if self.state == QUEUED:
                self.cancel()
            return
        self._cancel_requested = True
        process.terminate()
        if not process.waitForFinished(timeout_ms):
            process.kill()
            process.waitForFinished(2000)

    def _kill_if_alive(self) -> None:
        if self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning:
            self._append("[the child did not stop within the grace period: killed]\n")
            self.process.kill()

    # ------------------------------------------------------------ reading
    def _lines(self, key: str, data: bytes, final: bool = False) -> list[str]:
        buffer = self._buffers[key] + data
        *lines, rest = buffer.split(b"\n")
        if final and rest:
            lines.append(rest)
            rest = b""
        self._buffers[key] = rest
        return [line.decode("utf-8", errors="replace").rstrip("\r") for line in lines]

    def _read_stdout(self, final: bool = False) -> None:
        if self.process is None:
            return
        data = bytes(self.process.readAllStandardOutput().data())
        lines = self._lines("out", data, final)
        if not lines:
            return
        text = []
        progressed = False
        for line in lines:
            event = parse_event(line)
            if event is None:
                self.stdout_text.append(line)
                self._scan_run_dir(line)
                text.append(line)
                continue
            self.progress.apply(event)
            progressed = True
            summary = _summarize(event)
            if summary:
                text.append(summary)
        if text:
            self._append("".join(t + "\n" for t in text))
        if progressed:
            self.changed.emit()

    def _read_stderr(self, final: bool = False) -> None:
        if self.process is None:
            return
        data = bytes(self.process.readAllStandardError().data())
        lines = self._lines("err", data, final)
        if not lines:
            return
        for line in lines:
            self._scan_run_dir(line)
            if line.strip():
                self.stderr_tail.append(line)
        self._append("".join(line + "\n" for line in lines))

    def _scan_run_dir(self, line: str) -> None:
        folder = _FOLDER_LINE.search(line.strip())
        if folder:
            self.folder_kind, self.folder = folder.group(1), folder.group(2).strip()
            return
        if self.progress.run_dir is not None:
            return
        match = _RUN_DIR_LINE.search(line)
        if match:
            self.progress.run_dir = match.group(1).strip()
            return
        match = _RESULT_FILE_LINE.search(line)
        if match:
            self.progress.run_dir = match.group(1).strip()

    def _append(self, text: str) -> None:
        for line in text.splitlines():
            self.log.append(line)
        self.output.emit(text)

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._read_stdout(final=True)
        self._read_stderr(final=True)
        if self._kill_timer is not None:
            self._kill_timer.stop()
        crashed = status == QProcess.ExitStatus.CrashExit
        self.exit_code = None if crashed else code
        if self._cancel_requested:
            self.state = CANCELLED
        elif not crashed and code == 0:
            self.state = COMPLETED
        else:
            self.state = FAILED
            why = "crashed (killed by a signal)" if crashed else f"exit code {code}: {describe_exit(code)}"
            self.error = f"{self.kind} {why}"
        self.ended = time.time()
        self._append(f"[{self.state}{'' if crashed else f', exit code {code}'}]\n")
        self.changed.emit()
        self.finished.emit()

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.state = FAILED
            self.error = f"could not start {self.argv[0]}: {self.process.errorString() if self.process else ''}"
            self.stderr_tail.append(self.error)
            self.ended = time.time()
            self._append(f"[{self.error}]\n")
            self.changed.emit()
            self.finished.emit()


def _quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "-_./=:," for c in arg) else json.dumps(arg)


def _summarize(event: dict[str, Any]) -> str:
    kind = event.get("event")
    if kind == "stage":
        return f"· stage {event.get('stage')}"
    if kind == "epoch":
        metrics = event.get("metrics") or {}
        shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
        secs = event.get("seconds")
        took = f"  ({secs:.1f} s)" if isinstance(secs, (int, float)) else ""
        return f"epoch {event.get('epoch')}/{event.get('total')}  {shown}{took}"
    if kind == "check":
        name = event.get("name", "check")
        verdict = "passed" if event.get("passed") else "FAILED"
        return f"check {name}: {verdict}"
    if kind == "end":
        return f"· end: {event.get('status')}" + (f" ({event.get('error')})" if event.get("error") else "")
    if kind == "start":
        return f"· run directory {event.get('run_dir')}"
    if kind == "message":
        return f"{event.get('level', 'info')}: {event.get('text', '')}"
    if kind == "resumed":
        source = str(event.get("source") or "backup")
        return f"· {_resumed_words(_int(event.get('epoch'), 0), source)}" + (
            " from backup/ (weights, optimizer state)" if source == "backup" else "")
    return ""  # step events are too many for the log


class JobQueue(QObject):
    """Jobs in order; one runs at a time (training wants the whole CPU).

    Signals:
        added(Job), jobChanged(Job), jobFinished(Job), idle(bool): True when
            nothing is running or queued.
    """

    added = Signal(object)
    jobChanged = Signal(object)
    jobFinished = Signal(object)
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.jobs: list[Job] = []
        self._busy = False

    def submit(self, job: Job) -> Job:
        job.setParent(self)
        self.jobs.append(job)
        job.changed.connect(lambda j=job: self.jobChanged.emit(j))
        job.finished.connect(lambda j=job: self._job_finished(j))
        self.added.emit(job)
        QTimer.singleShot(0, self._next)
        self._set_busy()
        return job

    def running(self) -> Job | None:
        return next((j for j in self.jobs if j.state == RUNNING), None)

    def active(self) -> list[Job]:
        return [j for j in self.jobs if j.state in (QUEUED, RUNNING)]

    def remove_finished(self) -> None:
        self.jobs = [j for j in self.jobs if not j.finished_state]

    def shutdown(self) -> None:
        """Cancel everything and wait for the children to exit (bounded)."""
        for job in list(self.jobs):
            if job.state == QUEUED:
                job.cancel()
        for job in list(self.jobs):
            if job.state == RUNNING:
                job.stop_now()

    def _next(self) -> None:
        if self.running() is not None:
            return
        for job in self.jobs:
            if job.state == QUEUED:
                job.start()
                break
        self._set_busy()

    def _job_finished(self, job: Job) -> None:
        self.jobFinished.emit(job)
        QTimer.singleShot(0, self._next)
        self._set_busy()

    def _set_busy(self) -> None:
        busy = bool(self.active())
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)


def workspace_config_dir(workspace: Path) -> Path:
    """Where the app writes the config snapshot each job runs."""
    return Path(workspace) / ".kerasguide-gui" / "configs"
