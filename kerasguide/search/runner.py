"""`tune`: a hyperparameter search, coarse to fine, recorded in a search directory.

What `kerasguide tune CONFIG` does (recipes H25-H31):

1. Read the space from `[search.space]` (default: learning rate and L2 on
   log scales, dropout) and check every key against the run config.
2. Run the stages (`[[search.stages]]`, default: 1 epoch, 5 epochs, then
   `train.epochs`), each with a keras-tuner oracle (random by default) and
   `SearchTuner` running every trial as a whole kerasguide run. The first
   trial of each stage is the config as given (the baseline).
3. Between stages, narrow each range around the best trials; where the best
   value sat on the border of its range, widen that side instead.
4. After the last stage, warn in plain words about a best value on a border
   and (with `widen_on_border`) run one more stage with the range widened.
5. Write `search.json`, `search.md` (table and plots) and `best.toml`; the
   best trial's model is kept in `best/` as the search goes.

The search directory (format version 1)::

    <out>/<YYYYmmdd-HHMMSS>-<name>-search/
        config.toml      the config searched, resolved
        search.json      stages, ranges, trials (values, score, status, run dir), best, warnings
        search.md        the report: best, warnings, a table per stage, search.png
        search.png       score vs each hyperparameter (log axes where log, borders marked)
        best.toml        the config with the best trial's values
        best/            the best trial's model, for `kerasguide predict` / `export` on this folder: a copy of
                         its run directory's config.toml, run.json, preprocess.npz and checkpoints/ (its best
                         checkpoint and last.keras); replaced whole (built beside it, then renamed) after every
                         trial that changes the best, and at the end; search.json's `best_model` says whose
        trials/          one run directory per trial (best checkpoint's score in its file name)
        tuner/stageN/    keras-tuner's state (oracle.json, trial_*/trial.json) + kerasguide.json

Running `tune` again on the same config and `--out` resumes the newest
unfinished search of that config (keras-tuner reloads its oracles; a trial
that was running is run again). While its master runs, the search directory holds
`.lock` (kerasguide.locks: the master's pid, host and start): a second `tune` on it is
refused in one line (exit 2); the lock of a master that was killed is taken over.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kerasguide import locks
from kerasguide._logging import get_logger
from kerasguide.config import ConfigError, RunConfig, dump_config, load_config
from kerasguide.io import atomic_dir
from kerasguide.procs import process_start
from kerasguide.progress import Progress
from kerasguide.rundir import atomic_write_json, atomic_write_text, read_json, utc_now
from kerasguide.search.declared import declared_ranges, merge_declared
from kerasguide.search.hparams import write_search_experiment
from kerasguide.search.oracle import build_hyperparameters, make_oracle
from kerasguide.search.ranges import BorderFinding, border_findings, next_ranges, rank_trials
from kerasguide.search.report import write_search_report
from kerasguide.search.space import (
    ParamRange,
    StagePlan,
    apply_values,
    baseline_values,
    objective_of,
    resolve_space,
    resolve_stages,
    with_baseline_choices,
)
from kerasguide.search.status import clear_stop_request, stop_requested
from kerasguide.search.tuner import SearchTuner
from kerasguide.tracking import ParentRun, finish_parent_run, nest_config, start_parent_run

__all__ = ["tune", "SearchResult", "find_search", "copy_best_model", "FORMAT_VERSION"]

logger = get_logger()

FORMAT_VERSION = 1
SEARCH_JSON = "search.json"
BEST_TOML = "best.toml"
BEST_DIR = "best"
CHOICE_LOCK = ".search-choice.lock"  # in `out`, held while a tune picks and locks its search directory


class SearchAborted(Exception):
    """The search cannot go on (e.g. the baseline run itself failed)."""


class SearchStopped(Exception):
    """A stop was requested (`kerasguide search-status DIR --stop`): the search ends after the running trial."""


STOPPED = ("stopped on request (kerasguide search-status --stop); run the same `kerasguide tune` again to resume")


@dataclass
class SearchResult:
    """The outcome of `tune`: its directory, status, best trial and warnings."""

    path: Path
    status: str
    best: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    resumed: bool = False

    @property
    def best_config(self) -> Path | None:
        path = self.path / BEST_TOML
        return path if path.is_file() else None

    @property
    def best_model(self) -> Path | None:
        """The folder holding the best trial's model (`best/`), once a trial has finished with a score."""
        path = self.path / BEST_DIR
        return path if path.is_dir() else None

    @property
    def state(self) -> dict[str, Any]:
        return read_json(self.path / SEARCH_JSON, default={}) or {}


def _search_hash(config: RunConfig) -> str:
    # Where the search is logged (MLflow, HParams) and how often its trials back up are not what it searches:
    # a new URI or backup time resumes the same search.
    data = {k: v for k, v in config.to_dict().items() if k != "tracking"}
    data["train"] = {k: v for k, v in data.get("train", {}).items() if k != "backup_after"}
    text = json.dumps(data, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def find_search(out: str | os.PathLike[str], config: RunConfig) -> Path | None:
    """The newest search directory of exactly this config under `out`, if any."""
    out = Path(out)
    if not out.is_dir():
        return None
    digest = _search_hash(config)
    found = []
    for path in out.glob("*-search"):
        state = read_json(path / SEARCH_JSON, default=None)
        if isinstance(state, dict) and state.get("config_hash") == digest:
            found.append(path)
    return max(found, key=lambda p: p.name) if found else None


def _new_search_dir(out: Path, config: RunConfig) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        path = out / (f"{stamp}-{config.name}-search" if attempt == 0 else f"{stamp}-{config.name}-{attempt}-search")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise OSError(f"{out}: could not create a search directory")  # pragma: no cover


class _Search:
    """One search: its config, directory, state (search.json) and progress events."""

    def __init__(self, config: RunConfig, path: Path, state: dict[str, Any], progress, config_path: str | None):
        self.config = config
        self.search = config.search
        self.path = path
        self.state = state
        self.progress = progress
        self.config_path = config_path
        self.metric, self.direction = objective_of(config)
        seed = self.search.seed if self.search.seed is not None else config.train.seed
        self.seed = 1 + 1000 * seed  # keras-tuner draws a random seed for 0
        self._pool = None
        self.parent: ParentRun | None = None  # the search's MLflow run, once opened (`open_tracking`)
        self.trial_base = self.trial_base_config()

    def trial_base_config(self) -> RunConfig:
        """The config the trials start from: nested under the search's MLflow run (the parent's id travels in
        each trial's config.toml, so trials on worker processes and Ray actors nest too), and without an HParams
        experiment of their own (the search directory holds theirs)."""
        base = nest_config(self.config, self.parent)
        if base is self.config:
            base = self.config.model_copy(deep=True)
        base.tracking.hparams_experiment = False
        return base

    def open_tracking(self) -> None:
        """The search's parent MLflow run (reopened on a resume); ConfigError (one line) when it cannot be."""
        self.parent = start_parent_run(self.config, self.path.name, "search", resume=self.state.get("mlflow"),
                                       tags={"kerasguide.search_dir": str(self.path.resolve())})
        if self.parent is not None:
            self.state["mlflow"] = self.parent.to_dict()
            logger.info("MLflow: the search is run %s; its trials nest under it", self.parent.run_id)
        self.trial_base = self.trial_base_config()

    def close_tracking(self) -> None:
        """The search's outcome into its MLflow run: the best score, its files, the best model (Keras flavour)."""
        if self.parent is None:
            return
        best = self.state.get("best") or {}
        model = self.state.get("best_model") or {}
        checkpoint = self.path / BEST_DIR / "checkpoints" / model["checkpoint"] if model.get("checkpoint") else None
        finish_parent_run(
            self.parent, self.state.get("status") or "failed",
            metrics={f"best_{self.metric}": best.get("score"),
                     "trials": float(len(_all_trials(self.state)))},
            tags={"kerasguide.best_trial": f"stage {best.get('stage')} trial {best.get('trial_id')}"} if best else None,
            artifacts=[self.path / name for name in (SEARCH_JSON, "search.md", "search.png", BEST_TOML, "config.toml")],
            model=checkpoint)

    def write_experiment(self) -> None:
        """The search's HParams experiment at its root, over the ranges of every stage so far."""
        try:
            write_search_experiment(self.path, self.config,
                                    [[ParamRange.from_dict(r) for r in stage["ranges"]] for stage in self.state["stages"]],
                                    [int(stage["epochs"]) for stage in self.state["stages"]])
        except OSError as error:  # TensorBoard's table is a view: the search goes on without it
            logger.warning("could not write the HParams experiment in %s: %s", self.path, error)

    def ray_pool(self):
        """The search's Ray workers (engine = "ray", workers >= 1), started once and shared by its stages."""
        if not self.search.workers or self.search.engine != "ray":
            return None
        if self._pool is None:
            from kerasguide.search.ray_workers import RayPool  # Ray only for a search that uses it

            logger.info("starting %d Ray worker%s (%s)", self.search.workers, "" if self.search.workers == 1 else "s",
                        self.search.address or "a local Ray")
            self._pool = RayPool(self.search.workers, address=self.search.address,
                                 gpus_per_trial=self.search.gpus_per_trial,
                                 # trials pass only paths: a small store, not Ray's 30 % of memory
                                 object_store_memory=None if self.search.address else 256 * 2**20)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # ---------------------------------------------------------- state
    def save(self) -> None:
        self.state["updated"] = utc_now()
        atomic_write_json(self.path / SEARCH_JSON, self.state)

    def stage_state(self, index: int, plan: StagePlan, ranges: list[ParamRange]) -> dict[str, Any]:
        stages = self.state["stages"]
        for stage in stages:
            if stage["index"] == index:
                return stage
        stage = {
            "index": index, "label": plan.label, "epochs": plan.epochs, "trials_planned": plan.trials,
            "algorithm": self.search.algorithm, "ranges": [r.to_dict() for r in ranges],
            "status": "pending", "trials": [], "best": None, "findings": [],
        }
        stages.append(stage)
        return stage

    def _rel(self, path: str | None) -> str | None:
        if not path:
            return None
        try:
            return os.path.relpath(Path(path).resolve(), self.path.resolve())
        except ValueError:  # another drive (Windows)
            return str(path)

    def on_trial(self, stage: dict[str, Any], kind: str, record: dict[str, Any]) -> None:
        record = dict(record, run_dir=self._rel(record.get("run_dir")))
        trials = [t for t in stage["trials"] if t["trial_id"] != record["trial_id"]]
        trials.append(record)
        trials.sort(key=lambda t: t["trial_id"])
        stage["trials"] = trials
        ranked = rank_trials(trials, self.direction)
        stage["best"] = _brief(ranked[0]) if ranked else None
        self.save()
        self.progress.emit("trial", **{k: record.get(k) for k in (
            "stage", "trial_id", "status", "values", "score", "metric", "epochs", "baseline",
            "run_dir", "checkpoint", "seconds", "error")}, stage_best=stage["best"])
        if kind == "begin":
            logger.info("stage %d trial %s%s: %s", record["stage"], record["trial_id"],
                        " (baseline)" if record.get("baseline") else "", _values_text(record["values"]))
            return
        score = f"{self.metric} {record['score']:.4f}" if record.get("score") is not None else "no score"
        logger.info("stage %d trial %s: %s, %s (%.1f s)%s", record["stage"], record["trial_id"],
                    record["status"], score, record.get("seconds") or 0.0,
                    f": {record['error']}" if record.get("error") and record["status"] != "completed" else "")
        self.update_best_model()
        if record.get("baseline") and record["stage"] == 1 and record["status"] == "failed":
            raise SearchAborted(
                f"the baseline trial (the config as given) failed: {record.get('error')}; "
                "fix the config first (`kerasguide run CONFIG`)"
            )
        # The stop request is read here, between trials (kerasguide.search.status says why a file, not a signal).
        request = stop_requested(self.path)
        if request is not None:
            self.state["stop"] = dict(request, after_trial=f"stage {record['stage']} trial {record['trial_id']}")
            raise SearchStopped(STOPPED)

    # ---------------------------------------------------------- stages
    def run_stage(self, index: int, plan: StagePlan, ranges: list[ParamRange], baseline: dict[str, Any]) -> dict[str, Any]:
        stage = self.stage_state(index, plan, ranges)
        ranges = [ParamRange.from_dict(r) for r in stage["ranges"]]  # resuming: the stage's own ranges
        ranges, _ = with_baseline_choices(ranges, baseline)
        stage["status"] = "running"
        self.save()
        self.write_experiment()
        self.progress.emit("stage", stage=index, label=stage["label"], epochs=stage["epochs"],
                           trials=stage["trials_planned"], ranges=stage["ranges"])
        logger.info("stage %d (%s): %s trials of %d epoch%s; %s", index, stage["label"],
                    f"{self.search.algorithm}'s" if self.search.algorithm in ("hyperband", "asha")
                    else stage["trials_planned"],
                    stage["epochs"], "" if stage["epochs"] == 1 else "s",
                    "; ".join(f"{r.key} {r.describe()}" for r in ranges))
        try:
            hp = build_hyperparameters(ranges, baseline,
                                       self.search.grid_points if self.search.algorithm == "grid" else None)
        except (TypeError, ValueError) as error:  # keras-tuner's own checks of a range
            raise ConfigError(f"search.space: keras-tuner cannot use this space: {error}") from None
        oracle = make_oracle(self.search.algorithm, hp, self.metric, self.direction, stage["trials_planned"],
                             seed=self.seed + index, max_epochs=stage["epochs"], factor=self.search.hyperband_factor,
                             min_epochs=self.search.min_epochs)
        if hasattr(oracle, "rungs"):
            stage["rungs"] = oracle.rungs
        try:
            tuner = SearchTuner(
                oracle, base_config=self.trial_base, stage=index, epochs=stage["epochs"],
                trials_dir=self.path / "trials", workers=self.search.workers,
                trial_timeout=self.search.trial_timeout, pool=self.ray_pool(),
                on_event=lambda kind, record: self.on_trial(stage, kind, record),
                directory=str(self.path / "tuner"), project_name=f"stage{index}",
            )
        except (RuntimeError, KeyError, ValueError) as error:
            raise ConfigError(
                f"{self.path / 'tuner' / f'stage{index}'}: keras-tuner cannot reload its state ({error}); "
                "start a new search with --new"
            ) from None
        # Trials finished before a resume are read back from keras-tuner's trial folders.
        for record_path in sorted((self.path / "tuner" / f"stage{index}").glob("trial_*/kerasguide.json")):
            record = read_json(record_path, default=None)
            if isinstance(record, dict) and record.get("status") not in (None, "running"):
                record = dict(record, run_dir=self._rel(record.get("run_dir")))
                stage["trials"] = [t for t in stage["trials"] if t["trial_id"] != record["trial_id"]] + [record]
        tuner.search()
        stage["trials"].sort(key=lambda t: t["trial_id"])
        stage["status"] = "completed"
        ranked = rank_trials(stage["trials"], self.direction)
        stage["best"] = _brief(ranked[0]) if ranked else None
        self.save()
        return stage

    def update_best_model(self) -> None:
        """Copy the best trial's model into `best/` when the best has changed (or `best/` is missing)."""
        ranked = [t for t in rank_trials(_all_trials(self.state), self.direction)
                  if t.get("run_dir") and t.get("checkpoint")]
        if not ranked:
            return
        best = ranked[0]
        key = {k: best.get(k) for k in ("stage", "trial_id", "checkpoint")}
        current = self.state.get("best_model") or {}
        if {k: current.get(k) for k in key} == key and (self.path / BEST_DIR).is_dir():
            return
        try:
            copy_best_model(self.path / best["run_dir"], best["checkpoint"], self.path / BEST_DIR)
        except OSError as error:  # a copy that fails must not take the search down; the trial's own files remain
            logger.warning("could not copy the best model to %s: %s", self.path / BEST_DIR, error)
            return
        self.state["best_model"] = dict(key, dir=BEST_DIR, run_dir=best["run_dir"], score=best.get("score"),
                                        metric=best.get("metric"), epochs=best.get("epochs"))
        self.save()

    def warn(self, finding: BorderFinding, when: str, then: str = "") -> None:
        text = f"{when}: {finding.message}{then if finding.is_warning else ''}"
        key = "warnings" if finding.is_warning else "notes"
        if text not in self.state[key]:
            self.state[key].append(text)
            self.state["findings"].append(dict(finding.to_dict(), when=when))
        if finding.is_warning:
            logger.warning("%s", text)
        self.progress.emit("message", level="warning" if finding.is_warning else "info", text=text)


def _brief(trial: dict[str, Any]) -> dict[str, Any]:
    return {k: trial.get(k) for k in ("stage", "trial_id", "values", "score", "metric", "epochs",
                                       "baseline", "run_dir", "checkpoint")}


def _values_text(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def _all_trials(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for stage in state["stages"] for t in stage["trials"]]


def copy_best_model(run_dir: str | os.PathLike[str], checkpoint: str, dest: str | os.PathLike[str]) -> Path:
    """Copy a trial's model into `dest` (a search's `best/`): what `kerasguide predict` and `export` read.

    `dest` gets the run's config.toml, run.json and preprocess.npz (those it
    has) and `checkpoints/` with `checkpoint` and last.keras. The new folder
    is complete before it takes the name `dest`: the old one is renamed away
    and the new one renamed in (a reader finding no `dest` in between falls
    back to the best trial's run directory, `kerasguide.inference.resolve_run_dir`).
    """
    run_dir, dest = Path(run_dir), Path(dest)
    source = run_dir / "checkpoints" / checkpoint
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such checkpoint")
    with atomic_dir(dest) as tmp:
        (tmp / "checkpoints").mkdir(parents=True)
        shutil.copy2(source, tmp / "checkpoints" / checkpoint)
        last = run_dir / "checkpoints" / "last.keras"
        if last.is_file() and checkpoint != last.name:
            shutil.copy2(last, tmp / "checkpoints" / last.name)
        for name in ("config.toml", "run.json", "preprocess.npz"):
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, tmp / name)
    return dest


def _write_best(search: _Search, best: dict[str, Any]) -> None:
    config = apply_values(search.config, best["values"])
    header = (
        f"# The best config of the search in {search.path.name}: stage {best['stage']} trial "
        f"{best['trial_id']}, {best['metric']} {best['score']:.4f} after {best['epochs']} epochs\n"
        f"# (run directory {best['run_dir']}). train.epochs is the config's own; run it with\n"
        f"# `kerasguide run {search.path / BEST_TOML}`.\n"
    )
    atomic_write_text(search.path / BEST_TOML, header + dump_config(config))


def tune(
    config: RunConfig | str | os.PathLike[str],
    out: str | os.PathLike[str] = "runs",
    json_progress: bool = False,
    new: bool = False,
    config_path: str | None = None,
) -> SearchResult:
    """Search a config's hyperparameters, coarse to fine, and record it all.

    Args:
        config: A `RunConfig` or the path of a TOML config; its `[search]`
            section says what to search and how.
        out: The folder that receives the search directory. Defaults to `"runs"`.
        json_progress: Emit one JSON object per line on stdout (`start`,
            `stage`, `trial`, `message`, `end`) for the desktop app.
            Defaults to `False`.
        new: Start a new search even when an unfinished one of the same
            config exists under `out`. Defaults to `False` (resume it).
        config_path: Recorded in search.json. Defaults to `None`.

    Returns:
        A `SearchResult`; `status` is `completed`, `failed`, `interrupted` or
        `stopped` (a stop request, `kerasguide.search.status.request_stop`; it resumes like an interrupted one).

    Raises:
        ConfigError: one line, for a bad space (unknown key, invalid bound).
        kerasguide.locks.Busy: (a ConfigError) the search is already running in another live process.

    Example:

    ```python
    cfg = kerasguide.load_config("resources/configs/digits_search.toml")
    result = kerasguide.tune(cfg, out="runs")
    print(result.best["values"], result.best_config)
    ```
    """
    if not isinstance(config, RunConfig):
        config_path = config_path or str(config)
        config = load_config(config)
    ranges = merge_declared(resolve_space(config), declared_ranges(config))
    plans = resolve_stages(config)
    baseline, notes = baseline_values(config, ranges)
    ranges, more = with_baseline_choices(ranges, baseline)
    notes += more
    if config.search.trial_timeout is not None and config.search.workers == 0:
        notes.append("search.trial_timeout applies to worker processes; with workers = 0 trials are not timed out")
    progress = Progress(json_progress)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Choosing the search directory and locking it is one step under a short lock on `out`: two tunes of
    # one config started together would otherwise both find no search (or the same one) and both run it.
    with locks.acquire(out, "search directory choice", name=CHOICE_LOCK, wait=120):
        existing = None if new else find_search(out, config)
        resumed = existing is not None
        if existing is not None:
            path = existing
            lock = _lock_search(path)
            state = read_json(existing / SEARCH_JSON, default={})  # read under the lock: its owner may just have ended
            if state.get("status") == "completed":
                lock.release()
                logger.info("search already completed: %s (use --new to search again)", path)
                progress.emit("start", kind="search", search_dir=str(path), name=config.name, resumed=True)
                progress.emit("end", status="completed", search_dir=str(path), best=state.get("best"), error=None)
                return SearchResult(path, "completed", state.get("best"), state.get("warnings", []), resumed=True)
            logger.info("resuming the search in %s", path)
            if lock.taken_over:
                logger.info("its lock was left by pid %s on %s, which is gone: taken over",
                            lock.taken_over.get("pid"), lock.taken_over.get("host"))
        else:
            path = _new_search_dir(out, config)
            lock = _lock_search(path)
            metric, direction = objective_of(config)
            state = {
                "format_version": FORMAT_VERSION, "kind": "search", "name": config.name,
                "config_hash": _search_hash(config), "config_path": config_path,
                "algorithm": config.search.algorithm, "objective": {"metric": metric, "direction": direction},
                "workers": config.search.workers, "baseline": baseline,
                "stages": [], "notes": [], "warnings": [], "findings": [], "best": None,
            }
            try:
                atomic_write_text(path / "config.toml", "# The config searched, resolved.\n" + dump_config(config))
                state.update(status="running", started=utc_now(), updated=utc_now(), pid=os.getpid(),
                             pid_start=process_start(os.getpid()), host=socket.gethostname())
                atomic_write_json(path / SEARCH_JSON, state)  # the next tune of this config finds it, and its lock
            except BaseException:
                lock.release()
                raise
    try:
        return _run_search(config, path, state, progress, config_path, plans, ranges, baseline, notes, resumed)
    finally:
        lock.release()


def _lock_search(path: Path) -> locks.Lock:
    """The search directory's lock: a second tune on a live search is one line and exit 2 (`locks.Busy`)."""
    return locks.acquire(path, "search", hint=f"follow it with `kerasguide search-status {path}`, stop it with "
                                             "--stop, or start another search with --new")


def _run_search(config: RunConfig, path: Path, state: dict[str, Any], progress, config_path: str | None,
                plans: list[StagePlan], ranges: list[ParamRange], baseline: dict[str, Any], notes: list[str],
                resumed: bool) -> SearchResult:
    clear_stop_request(path)  # a request left from before this run is not this run's
    state.update(status="running", started=state.get("started") or utc_now(), ended=None, error=None, pid=os.getpid(), pid_start=process_start(os.getpid()),
                 host=socket.gethostname(), stop=None)
    for note in notes:
        if note not in state["notes"]:
            state["notes"].append(note)
    search = _Search(config, path, state, progress, config_path)
    search.save()
    progress.emit("start", kind="search", search_dir=str(path), name=config.name, resumed=resumed,
                  stages=[{"epochs": p.epochs, "trials": p.trials, "label": p.label} for p in plans],
                  objective=state["objective"])
    logger.info("search directory %s", path)

    error = None
    try:
        search.open_tracking()
        stage = None
        for index, plan in enumerate(plans, start=1):
            stage = search.run_stage(index, plan, ranges, baseline)
            ranges = [ParamRange.from_dict(r) for r in stage["ranges"]]
            if index < len(plans):
                ranges, findings = next_ranges(ranges, stage["trials"], search.direction,
                                               config.search.top_k, config.search.border_fraction)
                for finding in findings:
                    search.warn(finding, f"stage {index}", f" (stage {index + 1} searches the widened side)")
        _finish_with_border(search, plans, ranges, baseline)
        ranked = rank_trials(_all_trials(state), search.direction)
        state["best"] = _brief(ranked[0]) if ranked else None
        if state["best"] is None:
            state["status"] = "failed"
            error = "no trial produced a score; see the trials' run directories (--new searches again)"
        else:
            state["status"] = "completed"
            _write_best(search, state["best"])
            state["best_config"] = BEST_TOML
            search.update_best_model()  # a resumed search's best/ too
    except SearchAborted as stop:
        state["status"], error = "failed", str(stop)
        logger.error("search stopped: %s", error)
    except SearchStopped as stop:
        state["status"], error = "stopped", str(stop)
        logger.warning("search stopped: %s", path)
    except KeyboardInterrupt:
        request = stop_requested(path)
        if request is not None:  # `--stop --now`: SIGTERM after the request, the running trials interrupted
            state["status"], error, state["stop"] = "stopped", STOPPED, request
            logger.warning("search stopped: %s", path)
        else:
            state["status"], error = "interrupted", "interrupted (Ctrl-C or SIGTERM); run the same command to resume"
            logger.warning("search interrupted: %s", path)
    except ConfigError as bad:  # e.g. a Ray address or MLflow store that cannot be reached: one line from the CLI
        state.update(status="failed", ended=utc_now(), error=str(bad))
        search.save()
        search.close()
        search.close_tracking()
        raise
    finally:
        search.close()  # the Ray workers, before the report
    clear_stop_request(path)
    state.update(ended=utc_now(), error=error)
    search.save()
    try:
        write_search_report(path)
    except Exception as report_error:  # a report failure must not hide the search's outcome
        logger.warning("search report failed: %s: %s", type(report_error).__name__, report_error)
    search.close_tracking()
    progress.emit("end", status=state["status"], search_dir=str(path), best=state.get("best"),
                  warnings=state["warnings"], error=error)
    return SearchResult(path, state["status"], state.get("best"), list(state["warnings"]), error, resumed)


def _finish_with_border(search: _Search, plans: list[StagePlan], ranges: list[ParamRange], baseline) -> None:
    """Recipe H28 after the last stage: warn, and once run a stage with the border widened."""
    state, cfg = search.state, search.config.search
    index = len(plans) + 1
    last = plans[-1]
    resuming = any(s["index"] == index for s in state["stages"])
    if not resuming:
        # The decision rests on the planned stages' trials only.
        ranked = rank_trials(_all_trials(state), search.direction)
        if not ranked:
            return
        findings = border_findings(ranges, ranked[0]["values"], cfg.border_fraction,
                                   baseline=bool(ranked[0].get("baseline")))
        warnings = [f for f in findings if f.is_warning]
        then = f" (stage {index} searches it)" if cfg.widen_on_border else ""
        for finding in findings:
            search.warn(finding, f"stage {len(plans)}", then)
        if not warnings or not cfg.widen_on_border:
            return
        widened = {f.key: f.widened for f in warnings}
        ranges = [widened.get(r.key, r) for r in ranges]
        logger.info("stage %d widens %s (search.widen_on_border)", index, ", ".join(widened))
    stage = search.run_stage(index, StagePlan(last.epochs, last.trials, "widened"), ranges, baseline)
    ranked = rank_trials(_all_trials(state), search.direction)
    if ranked:
        for finding in border_findings([ParamRange.from_dict(r) for r in stage["ranges"]],
                                       ranked[0]["values"], cfg.border_fraction,
                                       baseline=bool(ranked[0].get("baseline"))):
            search.warn(finding, f"stage {index} (widened)")
