"""The thin tuner: a master loop that runs trials as workers (recipe H30).

`SearchTuner` subclasses `keras_tuner.Tuner` and keeps keras-tuner's
division of labour: the oracle decides what to try, the tuner only runs it.
Each trial is a whole `kerasguide` run (its own run directory: config,
metrics, TensorBoard, and the best checkpoint with the validation score in
its file name), with the trial's hyperparameters set in the config and the
sanity checks off.

The search loop is explicit (`search()` below, keras-tuner's hooks
`on_search_begin`, `on_trial_begin`, `run_trial`, `on_trial_end`,
`on_search_end`), because it is a master in the sense of the CS231n notes:
with `workers >= 1` it launches each trial as a worker child process
(`python -m kerasguide.cli run trial.toml`), up to `workers` at once, asks
the oracle for the next trial whenever a slot frees (keras-tuner's oracle
keeps one ongoing trial per tuner id, so each slot is a tuner id), kills a
worker that runs past `trial_timeout`, and reads each worker's outcome from
its run directory. keras-tuner's own parallel mode (a gRPC chief and
worker processes running the same script) is not used: it needs a script
per worker and gives no timeouts. With `workers = 0` trials run in this
process (`run_trial`), which is faster to start but cannot be timed out.

GPUs (issue 16): each worker process sees only its own GPUs,
`search.gpus_per_trial` of them (a fraction: workers share a GPU; 0: none,
`CUDA_VISIBLE_DEVICES=-1`), with `TF_FORCE_GPU_ALLOW_GROWTH=true`; the
master finds the GPUs without TensorFlow (`kerasguide.search.gpus`) and runs
fewer workers, with a warning, when more are asked than the GPUs hold.

Pruning (issue 14): with `[search] prune` (the default) each trial's run
carries `monitor.prune = search.prune_codes`, so a `DiagnosisPruner` reads
the diagnosis after each epoch and stops a trial that has `diverged`, is
`not_learning` or whose rate is `lr_too_high` (error severity), status
`pruned`. The tuner reports such a trial, and one the divergence guard
stopped, to the oracle as FAILED (keras-tuner's status for a trial that is
not retried) and records `pruned` (code, epoch, advice, by) and
`epochs_saved` in its record.

keras-tuner saves its state (oracle.json, trial_*/trial.json) after every
trial; kerasguide adds `trial_*/kerasguide.json` (the outcome and the run
directory), so a stopped search resumes where it was.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kerasguide._logging import get_logger, import_tensorflow
from kerasguide.config import ConfigError, RunConfig, save_config
from kerasguide.procs import die_with_parent
from kerasguide.rundir import RunDir, atomic_write_json, read_json, read_run, utc_now
from kerasguide.search.gpus import assign_gpus, visible_gpus, worker_env
from kerasguide.search.space import apply_values

import_tensorflow()  # before keras-tuner imports Keras: hides TensorFlow's start-up chatter

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402

from kerasguide.spine import run  # noqa: E402
from kerasguide.training import gpu_memory_growth  # noqa: E402

__all__ = ["SearchTuner", "read_outcome", "checkpoint_score"]

logger = get_logger()

RECORD = "kerasguide.json"
_GRACE_SECONDS = 15.0
_ATTEMPTS = 2  # child processes a trial gets when a signal kills its worker
_TOLD: set[str] = set()  # GPU notes already logged: a search makes a tuner per stage, the note is said once


def checkpoint_score(run_dir: str | os.PathLike[str]) -> tuple[str | None, float | None]:
    """The best checkpoint of a run and the score in its file name (recipe H30).

    `best-epoch=012-val_accuracy=0.9812.keras` -> `(name, 0.9812)`.
    """
    folder = Path(run_dir) / "checkpoints"
    best = sorted(folder.glob("best-*.keras"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    if not best:
        return None, None
    name = best[-1].name
    try:
        value = float(name[: -len(".keras")].rsplit("=", 1)[1])
    except (IndexError, ValueError):
        value = None
    return name, value


def read_outcome(run_dir: str | os.PathLike[str] | None, metric: str, direction: str) -> dict[str, Any]:
    """What a worker's run directory says: status, score, epochs, checkpoint, error."""
    if run_dir is None or not Path(run_dir).is_dir():
        return {"status": "failed", "score": None, "epochs_done": 0, "checkpoint": None,
                "error": "the worker left no run directory"}
    rd = RunDir(Path(run_dir))
    record = rd.read_run()
    best = record.get("best") or {}
    score = best.get("value") if best.get("metric") == metric else None
    rows = rd.read_metrics()
    if score is None and rows:
        values = [r[metric] for r in rows if isinstance(r.get(metric), float) and math.isfinite(r[metric])]
        if values:
            score = max(values) if direction == "max" else min(values)
    checkpoint, named = checkpoint_score(rd.path)
    if score is None and named is not None and metric in (checkpoint or ""):
        score = named  # run.json lost (killed hard): the file name still tells
    outcome = {
        "status": record.get("status", "failed"),
        "score": score if isinstance(score, (int, float)) and math.isfinite(score) else None,
        "epochs_done": int(record.get("epochs_done") or len(rows)),
        "checkpoint": checkpoint,
        "error": record.get("error"),
    }
    pruned = _pruned(rd, record, outcome["epochs_done"])
    if pruned is not None:
        outcome["pruned"] = pruned
    return outcome


def _pruned(rd: RunDir, record: dict[str, Any], epochs_done: int) -> dict[str, Any] | None:
    """What stopped a run early for a cause the diagnosis names: the pruner's record, or the divergence guard's.

    `{code, epoch, advice, by}`; None for a run that was not stopped so.
    """
    if isinstance(record.get("pruned"), dict):
        return {**record["pruned"], "by": "diagnosis"}
    if record.get("status") != "diverged":
        return None
    findings = (rd.read("diagnosis.json", default={}) or {}).get("findings") or []
    finding = next((f for f in findings if isinstance(f, dict) and f.get("code") == "diverged"), {})
    return {"code": "diverged", "epoch": epochs_done, "by": "divergence guard",
            "advice": finding.get("advice") or record.get("stop_reason") or record.get("error")}


class _Worker:
    """One trial being run: a child process, or (workers = 0) an outcome already known."""

    def __init__(self, trial, config: RunConfig, trial_dir: Path, started: float):
        self.trial = trial
        self.config = config
        self.trial_dir = trial_dir
        self.started = started
        self.process: subprocess.Popen | None = None
        self.log_handle = None
        self.outcome: dict[str, Any] | None = None
        self.run_dir: Path | None = None
        self.timed_out = False
        self.ray_key: str | None = None  # the trial's key in the RayPool (engine = "ray")
        self.ray_outcome: dict[str, Any] | None = None
        self.placed = False  # the record says where it runs
        self.slot = 0  # the worker slot it runs in: which GPUs its process sees
        self.attempts = 0  # child processes started for this trial (a killed one is started again)

    def find_run_dir(self) -> Path | None:
        """The worker's run directory, from its `start` progress event."""
        if self.run_dir is not None:
            return self.run_dir
        try:
            text = (self.trial_dir / "worker.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        for line in reversed(text.splitlines()):  # the last attempt's (a killed worker's trial runs again)
            if line.startswith("{") and '"start"' in line:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "start" and event.get("run_dir"):
                    self.run_dir = Path(event["run_dir"])
                    return self.run_dir
        return None

    def stop(self, grace: float = _GRACE_SECONDS) -> None:
        """SIGTERM (the run records itself `interrupted`), then SIGKILL after `grace` seconds."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        if self.log_handle is not None:
            self.log_handle.close()
            self.log_handle = None


class SearchTuner(kt.Tuner):
    """A keras-tuner `Tuner` whose trials are whole kerasguide runs.

    Args:
        oracle: The stage's oracle (`kerasguide.search.oracle.make_oracle`).
        base_config: The config every trial starts from.
        stage: The stage number (1-based), used in trial names.
        epochs: Epochs per trial (Hyperband: its `tuner/epochs` instead).
        trials_dir: Where the trials' run directories go.
        workers: Trials at once, each in a child process; 0 runs them in
            this process. Fewer when `search.gpus_per_trial` of the GPUs
            hold fewer (a warning). Defaults to `1`.
        trial_timeout: Seconds before a worker is killed (child processes
            only). Defaults to `None`.
        on_event: Called as `on_event(kind, record)` with kind `"begin"` or
            `"end"` and the trial's record. Defaults to `None`.
        directory: keras-tuner's directory. Defaults to `None`.
        project_name: keras-tuner's project name. Defaults to `None`.

    Example:

    ```python
    tuner = SearchTuner(oracle, base_config=cfg, stage=1, epochs=1,
                        trials_dir="search/trials", workers=0,
                        directory="search/tuner", project_name="stage1")
    tuner.search()
    ```
    """

    def __init__(
        self,
        oracle,
        *,
        base_config: RunConfig,
        stage: int,
        epochs: int,
        trials_dir: str | os.PathLike[str],
        workers: int = 1,
        trial_timeout: float | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        directory: str | None = None,
        project_name: str | None = None,
        pool=None,
    ):
        if workers < 0:
            raise ValueError(f"Argument `workers` must be >= 0. Received: workers={workers}")
        if trial_timeout is not None and trial_timeout <= 0:
            raise ValueError(f"Argument `trial_timeout` must be > 0. Received: trial_timeout={trial_timeout}")
        if epochs < 1:
            raise ValueError(f"Argument `epochs` must be >= 1. Received: epochs={epochs}")
        self.base_config = base_config
        self.stage = stage
        self.epochs = epochs
        self.trials_dir = Path(trials_dir)
        self.workers = workers
        self.trial_timeout = trial_timeout
        self.pool = pool if workers else None  # kerasguide.search.ray_workers.RayPool: trials on Ray actors
        self.gpu_source = "none"
        self.slot_devices: list[str] = []  # each process worker slot's CUDA_VISIBLE_DEVICES
        if workers:
            gpu_memory_growth()  # the master trains nothing: what TensorFlow it uses must not hold the workers' GPUs
        self._continued: dict[str, dict[str, Any]] = {}
        self.on_event = on_event or (lambda kind, record: None)
        oracle.verbose = 0
        chatter = io.StringIO()
        # keras-tuner prints ("Reloading Tuner from ..."); stdout may be the
        # desktop app's JSON-lines channel, so its words go to the log.
        with contextlib.redirect_stdout(chatter):
            super().__init__(oracle=oracle, directory=directory, project_name=project_name, overwrite=False)
        if chatter.getvalue().strip():
            logger.debug("keras-tuner: %s", chatter.getvalue().strip())
        self.metric = oracle.objective.name
        self.direction = oracle.objective.direction

    def _share_gpus(self) -> None:
        """Each process worker slot's GPUs (`search.gpus_per_trial`); fewer slots when the GPUs hold fewer."""
        per_trial = float(self.base_config.search.gpus_per_trial)
        gpus = visible_gpus()
        self.gpu_source = gpus.source
        self.slot_devices = assign_gpus(gpus.ids, per_trial, self.workers)
        shown = f"{len(gpus.ids)} GPU{'' if len(gpus.ids) == 1 else 's'} ({', '.join(gpus.ids)}; {gpus.source})"
        if len(self.slot_devices) < self.workers:
            note = (f"search.workers = {self.workers} but {shown} hold {len(self.slot_devices)} at "
                    f"search.gpus_per_trial = {per_trial:g}: running {len(self.slot_devices)} workers")
            if note not in _TOLD:
                logger.warning("%s", note)
            self.workers = len(self.slot_devices)
        elif per_trial == 0 and gpus.ids:
            note = (f"{shown} seen but search.gpus_per_trial = 0: the workers train on the CPU "
                    "(CUDA_VISIBLE_DEVICES=-1); set search.gpus_per_trial = 1 to give each its own GPU")
            if note not in _TOLD:
                logger.info("%s", note)
        else:
            return
        _TOLD.add(note)

    # ------------------------------------------------------------ trials
    def trial_dir(self, trial) -> Path:
        return Path(self.oracle._get_trial_dir(trial.trial_id))

    def trial_epochs(self, trial) -> int:
        return int(trial.hyperparameters.values.get("tuner/epochs", self.epochs))

    def continuation(self, trial) -> dict[str, Any] | None:
        """Where a promoted trial (ASHA, Hyperband: `tuner/trial_id`) continues from; None for a new one.

        `{parent, checkpoint, epoch}` from the parent's run (its `last.keras`: weights and optimizer
        state); `{parent, from_scratch}` with the reason when that checkpoint is missing.
        """
        parent_id = trial.hyperparameters.values.get("tuner/trial_id")
        if parent_id is None:
            return None
        if trial.trial_id not in self._continued:  # the config and the record both ask: the parent's files read once
            self._continued[trial.trial_id] = self._find_continuation(trial, parent_id)
        return self._continued[trial.trial_id]

    def _find_continuation(self, trial, parent_id: str) -> dict[str, Any]:
        parent = read_json(Path(self.oracle._get_trial_dir(parent_id)) / RECORD, default=None) or {}
        run_dir = parent.get("run_dir")
        checkpoint = Path(run_dir) / "checkpoints" / "last.keras" if run_dir else None
        done = int(parent.get("epochs_done") or 0)
        if checkpoint is None or not checkpoint.is_file():
            return {"parent": parent_id, "from_scratch": f"trial {parent_id} left no checkpoints/last.keras"}
        if not 0 < done < self.trial_epochs(trial):
            return {"parent": parent_id, "from_scratch": f"trial {parent_id} trained {done} epochs"}
        found = {"parent": parent_id, "checkpoint": str(checkpoint.resolve()), "epoch": done}
        chosen = ((read_json(Path(run_dir) / "run.json", default=None) or {}).get("lr_find") or {}).get("chosen")
        if isinstance(chosen, float):
            found["learning_rate"] = chosen  # the parent's range test chose it: the continued run keeps it
        return found

    def trial_config(self, trial) -> RunConfig:
        """The trial's run config: the base config with the trial's values (validated)."""
        values = trial.hyperparameters.values
        config = apply_values(self.base_config, values, epochs=self.trial_epochs(trial))
        continued = self.continuation(trial)
        if continued and "checkpoint" in continued:
            config.train.init_from = continued["checkpoint"]
            config.train.initial_epoch = continued["epoch"]
            if config.optimizer.learning_rate == "auto" and "learning_rate" in continued:
                config.optimizer.learning_rate = continued["learning_rate"]
        config.name = f"{self.base_config.name[:44]}-s{self.stage}-t{trial.trial_id}"
        config.checks.enabled = False  # trials are many: the checks ran (or run) on the base config
        config.train.monitor_metric = self.metric  # the checkpoint's file name carries the score (H30)
        search = self.base_config.search
        config.monitor.prune = list(search.prune_codes) if search.prune else []
        config.report.plots = search.trial_plots
        return config

    def is_baseline(self, trial) -> bool:
        order = self.oracle.start_order
        return bool(order) and order[0] == trial.trial_id

    def record_of(self, trial) -> dict[str, Any]:
        return read_json(self.trial_dir(trial) / RECORD, default=None) or {}

    def _base_record(self, trial) -> dict[str, Any]:
        values = trial.hyperparameters.values
        return {
            "stage": self.stage,
            "trial_id": trial.trial_id,
            "values": {k: v for k, v in values.items() if not k.startswith("tuner/")},
            "tuner": {k[len("tuner/"):]: v for k, v in values.items() if k.startswith("tuner/")},
            "baseline": self.is_baseline(trial),
            "epochs": self.trial_epochs(trial),
            "metric": self.metric,
            "worker": "ray" if self.pool is not None else ("process" if self.workers else "inline"),
            **({"continued_from": self.continuation(trial)} if "tuner/trial_id" in values else {}),
        }

    def on_trial_begin(self, trial) -> None:
        record = {**self._base_record(trial), "status": "running", "started": utc_now(),
                  "score": None, "run_dir": None}
        atomic_write_json(self.trial_dir(trial) / RECORD, record)
        self.on_event("begin", record)

    def run_trial(self, trial, *args, **kwargs) -> dict[str, float]:
        """Run one trial in this process (workers = 0); returns `{metric: score}`."""
        config = self.trial_config(trial)
        keras.backend.clear_session()
        level = logger.level
        logger.setLevel("ERROR")  # a search's trials would drown its own messages (their diagnoses: in their run dirs)
        try:
            result = run(config, out=self.trials_dir, verbose=0)
        finally:
            logger.setLevel(level)
        self._inline_run_dir = result.path
        outcome = read_outcome(result.path, self.metric, self.direction)
        return {self.metric: outcome["score"]} if outcome["score"] is not None else {}

    def launch_trial(self, trial, slot: int = 0) -> _Worker:
        """Start a worker for `trial` in worker slot `slot`: a child process, or run it here when workers = 0."""
        trial_dir = self.trial_dir(trial)
        worker = _Worker(trial, None, trial_dir, time.perf_counter())
        worker.slot = slot
        try:
            worker.config = self.trial_config(trial)
        except ConfigError as error:
            worker.outcome = {"status": "failed", "score": None, "epochs_done": 0, "checkpoint": None,
                              "error": f"the sampled values are not a valid config: {error}"}
            return worker
        save_config(worker.config, trial_dir / "config.toml")
        if self.pool is not None:
            worker.ray_key = f"s{self.stage}-t{trial.trial_id}"
            self.pool.submit(worker.ray_key, trial_dir / "config.toml", self.trials_dir)
            return worker
        if self.workers == 0:
            self._inline_run_dir = None
            try:
                self.run_trial(trial)
            except ConfigError as error:
                worker.outcome = {"status": "failed", "score": None, "epochs_done": 0,
                                  "checkpoint": None, "error": str(error)}
            worker.run_dir = self._inline_run_dir
            if worker.outcome is None:
                worker.outcome = read_outcome(worker.run_dir, self.metric, self.direction)
            return worker
        self._start_process(worker)
        return worker

    def _start_process(self, worker: _Worker) -> None:
        """The worker's child process (again, after a kill: its log goes on)."""
        trial_dir = worker.trial_dir
        # A worker killed mid-trial, or a search stopped or killed while the trial ran (a resumed search
        # gets its unfinished trials back, in their trial directories), left a killed or interrupted run:
        # this attempt resumes it (`run --resume`: from its backup, its checks not run again).
        previous = worker.find_run_dir()
        resume = previous is not None and read_run(previous).status in ("killed", "interrupted")
        worker.log_handle = open(trial_dir / "worker.log", "ab" if worker.attempts or resume else "wb")  # noqa: SIM115
        worker.attempts += 1
        worker.run_dir = None  # the attempt's start event names its run directory
        worker.started = time.perf_counter()
        devices = self.slot_devices[worker.slot % len(self.slot_devices)] if self.slot_devices else None
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if devices is not None:  # its own GPUs only, memory taken as needed (issue 16)
            env = worker_env(env, devices, self.gpu_source)
        worker.process = subprocess.Popen(
            # -P: the working directory stays off sys.path (a user's json.py there is not imported), as for
            # the `kerasguide` script itself.
            [sys.executable, "-P", "-m", "kerasguide.cli", "run",
             *(["--resume", str(previous)] if resume else [str(trial_dir / "config.toml"), "--out", str(self.trials_dir)]),
             "--json-progress", "--quiet"],
            stdout=worker.log_handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            # Its own session: Ctrl-C in the terminal reaches the master only,
            # which then stops its workers in order.
            start_new_session=os.name == "posix",
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        logger.debug("trial %s: worker pid %d", worker.trial.trial_id, worker.process.pid)
        record = self.record_of(worker.trial)
        record["pid"] = worker.process.pid  # so the master (or a person) can find the worker
        record["attempts"] = worker.attempts
        if devices is not None:
            record["cuda_visible_devices"] = devices
        atomic_write_json(trial_dir / RECORD, record)

    def poll_worker(self, worker: _Worker) -> bool:
        """True when the worker is done (killing it first when past the timeout)."""
        if worker.outcome is not None:
            return True
        if worker.ray_key is not None:
            return self._poll_ray(worker)
        proc = worker.process
        if proc.poll() is None:
            if self.trial_timeout is None or time.perf_counter() - worker.started < self.trial_timeout:
                return False
            logger.warning("trial %s: still running after %.0f s (search.trial_timeout); stopping it",
                           worker.trial.trial_id, self.trial_timeout)
            worker.timed_out = True
            worker.stop()
        worker.close()
        if proc.returncode < 0 and not worker.timed_out and worker.attempts < _ATTEMPTS:
            # Killed by a signal the master did not send (OOM killer, a person): the config is not at
            # fault, so the trial runs again, as Ray reschedules a dead actor's trial.
            logger.warning("trial %s: its worker was killed (signal %d); running the trial again",
                           worker.trial.trial_id, -proc.returncode)
            self._start_process(worker)
            return False
        worker.outcome = self._outcome(worker, worker.find_run_dir(), lambda: (
            f"the worker ended (exit code {proc.returncode}) without finishing its run: "
            f"{_tail(worker.trial_dir / 'worker.log')}"))
        return True

    def _outcome(self, worker: _Worker, run_dir: Path | None, unfinished: Callable[[], str]) -> dict[str, Any]:
        """A finished worker's outcome from its run directory: timed out, or failed when its run never ended."""
        outcome = read_outcome(run_dir, self.metric, self.direction)
        if worker.timed_out:
            outcome.update(status="timeout", score=None,
                           error=f"stopped after {self.trial_timeout:g} s (search.trial_timeout)")
        elif run_dir is None or outcome["status"] == "running":
            outcome.update(status="failed", score=None, error=unfinished())
        return outcome

    def _poll_ray(self, worker: _Worker) -> bool:
        """A trial on a Ray actor: where it runs (into the record, once), its timeout, its outcome."""
        if worker.ray_outcome is None:
            where = self.pool.where(worker.ray_key) or {}
            if not worker.placed and where.get("state") == "running":
                worker.placed = True
                worker.started = time.perf_counter()  # the timeout counts from the start on a worker, not the queue
                record = self.record_of(worker.trial)
                record.update(pid=where.get("pid"), host=where.get("host"), node=where.get("node"))
                atomic_write_json(worker.trial_dir / RECORD, record)
            if (self.trial_timeout is None or not worker.placed
                    or time.perf_counter() - worker.started < self.trial_timeout):
                return False
            logger.warning("trial %s: still running after %.0f s (search.trial_timeout); stopping it",
                           worker.trial.trial_id, self.trial_timeout)
            cancelled = self.pool.cancel(worker.ray_key) or {}
            worker.timed_out = True
            worker.ray_outcome = {"run_dir": cancelled.get("run_dir"), "status": "timeout", "attempts": 1}
        found = worker.ray_outcome
        worker.run_dir = Path(found["run_dir"]) if found.get("run_dir") else None
        outcome = self._outcome(worker, worker.run_dir,
                                lambda: found.get("error") or "the Ray worker ended without finishing its run")
        outcome["ray"] = {k: found.get(k) for k in ("host", "pid", "node", "attempts", "worker_trials")
                          if found.get(k) is not None}
        worker.outcome = outcome
        return True

    def finish_trial(self, worker: _Worker) -> dict[str, Any]:
        """Report a finished worker's score to the oracle and record it."""
        trial, outcome = worker.trial, worker.outcome
        record = self.record_of(trial) or self._base_record(trial)
        run_dir = worker.find_run_dir()
        record.update(
            status=outcome["status"], score=outcome["score"], epochs_done=outcome["epochs_done"],
            checkpoint=outcome["checkpoint"], error=outcome["error"],
            run_dir=str(Path(run_dir).resolve()) if run_dir else None,  # a promotion continues from it
            seconds=round(time.perf_counter() - worker.started, 2), ended=utc_now(),
        )
        if outcome.get("ray"):  # where it ran, and how often (a dead worker's trial runs again elsewhere)
            record.update(outcome["ray"])
        first = int((record.get("continued_from") or {}).get("epoch") or 0)
        record["epochs_trained"] = max(0, int(outcome["epochs_done"]) - first)
        pruned = outcome.get("pruned") if self.base_config.search.prune else None
        if pruned is not None:
            # Pruned (or stopped by the divergence guard): a failed trial for the oracle, whatever it
            # scored before; the score so far is kept for the record only.
            record.update(status="pruned" if pruned["by"] == "diagnosis" else outcome["status"],
                          score=None, partial_score=outcome["score"], pruned=pruned,
                          epochs_saved=max(0, int(record["epochs"]) - int(outcome["epochs_done"])),
                          error=f"pruned after epoch {pruned['epoch']}: {pruned['code']}")
            outcome = dict(outcome, score=None)
        if outcome["score"] is not None:
            self.oracle.update_trial(trial.trial_id, {self.metric: float(outcome["score"])},
                                     step=record["epochs"])
            trial.status = kt.engine.trial.TrialStatus.COMPLETED
        else:
            # FAILED, not INVALID: keras-tuner retries an INVALID trial (`max_retries_per_trial`).
            trial.status = kt.engine.trial.TrialStatus.FAILED
            trial.message = record.get("error") or outcome["error"] or outcome["status"]
        atomic_write_json(self.trial_dir(trial) / RECORD, record)
        self.on_trial_end(trial)
        self.on_event("end", record)
        return record

    # ------------------------------------------------------------ the loop
    def search(self, *args, **kwargs) -> None:
        """The master loop: fill free worker slots with new trials, collect finished ones."""
        if self.workers and self.pool is None:
            # Here, not in __init__: a ConfigError (no room on the GPUs) is then the search's one line, not
            # taken for keras-tuner failing to reload its state.
            self._share_gpus()
        self.on_search_begin()
        slots = max(1, self.workers)
        running: dict[str, _Worker] = {}
        exhausted = False
        frozen = self.workers == 0 and self.pool is None and gc.get_freeze_count() == 0  # a caller's freeze stays
        if frozen:
            # What lives before the first trial (TensorFlow, Keras, the search) is moved out of the garbage
            # collector's reach: each trial's clear_session then collects over that trial's objects only.
            gc.collect()
            gc.freeze()
        try:
            while True:
                idle = False
                while not exhausted and len(running) < slots:
                    slot = next(i for i in range(slots) if f"worker{i}" not in running)
                    tuner_id = f"worker{slot}"
                    trial = self.oracle.create_trial(tuner_id)
                    status = trial.status
                    if status == kt.engine.trial.TrialStatus.STOPPED:
                        exhausted = True
                        break
                    if status == kt.engine.trial.TrialStatus.IDLE:
                        idle = True  # Hyperband waits for a round to finish
                        break
                    self.on_trial_begin(trial)
                    running[tuner_id] = self.launch_trial(trial, slot)
                if not running:
                    if exhausted or idle:
                        break  # idle with nothing running cannot make progress
                    continue
                if self.pool is not None:  # waits up to 0.2 s for a trial to end
                    by_key = {w.ray_key: w for w in running.values()}
                    for key, found in self.pool.poll(timeout=0.2):
                        if key in by_key:
                            by_key[key].ray_outcome = found
                done = [tid for tid, w in running.items() if self.poll_worker(w)]
                for tuner_id in done:
                    self.finish_trial(running.pop(tuner_id))
                if not done and self.pool is None:
                    time.sleep(0.2)
        finally:
            if frozen:
                gc.unfreeze()
            for worker in running.values():  # interrupted: stop the workers, keep their files
                if worker.ray_key is not None:
                    self.pool.cancel(worker.ray_key)
                worker.stop()
                worker.close()
        self.on_search_end()

    # keras-tuner asks for these; a trial's model is its run's best checkpoint.
    def load_model(self, trial):
        record = self.record_of(trial)
        if not record.get("run_dir") or not record.get("checkpoint"):
            raise ValueError(f"trial {trial.trial_id} has no checkpoint")
        return keras.saving.load_model(Path(record["run_dir"]) / "checkpoints" / record["checkpoint"])

    def save_model(self, trial_id, model, step=0):  # the worker's run saves its own checkpoints
        return None


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no output)"
    text = [line for line in text if not line.startswith("{")]
    return " | ".join(text[-lines:]) or "(no output)"

