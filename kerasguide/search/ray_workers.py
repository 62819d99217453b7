"""Search trials on Ray: persistent workers that import TensorFlow once (issue 14, recipe H30).

keras-tuner's oracle still decides what to try; `RayPool` only runs the
trials. Each worker is a Ray actor (`TrialWorker`) that imports TensorFlow
and kerasguide once, in its `__init__`, then runs one trial after another
(`kerasguide.spine.run` with `keras.backend.clear_session()` before each), so
a trial on a warm worker pays no start-up. A worker asks Ray for
`cpus_per_trial` CPUs and `gpus_per_trial` GPUs (Ray sets
`CUDA_VISIBLE_DEVICES` per actor: one GPU per trial with `gpus_per_trial=1`;
GPU memory growth on, `kerasguide.training.gpu_memory_growth`, as for process
workers; with `gpus_per_trial=0` the GPUs are hidden: `CUDA_VISIBLE_DEVICES=-1`);
workers are spread over the cluster's nodes.

- `address=None`: a local Ray cluster on this machine (`ray.init()`), or the
  one `RAY_ADDRESS` names.
- More machines: `ray start --head` on one, `ray start --address HEAD:6379`
  on the others, then `RayPool(..., address="HEAD:6379")`. Every node needs
  the same Python environment with kerasguide installed, and the search
  directory (the `out` of each trial, and its config file) on a filesystem
  that every node sees at the same path (NFS or similar): a trial writes its
  run directory itself, where it runs.

A worker that dies while it runs a trial (its process killed, its node
gone) is recreated, and the trial is run again on a live worker, up to
`max_attempts` times in all; the outcome says how many (`attempts`).

Example:

```python
pool = RayPool(workers=2)
pool.submit("t1", "search/trials/t1/config.toml", out="search/trials")
while not (done := pool.poll(timeout=1.0)):
    pass
key, outcome = done[0]
print(outcome["status"], outcome["run_dir"], outcome["attempts"])
pool.shutdown()
```
"""

from __future__ import annotations

import gc
import math
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")  # no usage report from a search (and no network)

import ray  # noqa: E402
from ray import exceptions as ray_errors  # noqa: E402

from kerasguide._logging import get_logger  # noqa: E402
from kerasguide.config import ConfigError, load_config  # noqa: E402
from kerasguide.rundir import config_hash, read_run  # noqa: E402
from kerasguide.search.gpus import NO_GPU  # noqa: E402

__all__ = ["RayPool", "TrialWorker"]

logger = get_logger()

# A worker or its node gone: the trial did not fail on its own, so it is run again.
_DIED = (ray_errors.RayActorError, ray_errors.WorkerCrashedError, ray_errors.NodeDiedError,
         ray_errors.ObjectLostError)


def _one_line(error: BaseException | str) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    name = type(error).__name__ if isinstance(error, BaseException) else ""
    return f"{name}: {first}" if name and first else (first or name or "unknown error")


class TrialWorker:
    """A Ray actor that runs kerasguide trials, TensorFlow imported once.

    Created by `RayPool` (as `ray.remote(TrialWorker)`), not by hand.
    """

    def __init__(self):
        started = time.perf_counter()
        # Only the GPUs Ray gave this actor are visible; grow, don't grab them whole (set before TensorFlow
        # starts, so it holds whatever runs first), as process workers do.
        os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        if not ray.get_gpu_ids():
            # No GPU asked for (gpus_per_trial = 0): Ray (2.60) then leaves CUDA_VISIBLE_DEVICES as it was, and
            # every such actor would see (and use) every GPU; hidden, as for process workers.
            os.environ["CUDA_VISIBLE_DEVICES"] = NO_GPU
        from kerasguide._logging import import_tensorflow

        import_tensorflow()  # its start-up chatter hidden
        import keras

        from kerasguide.spine import resume, run  # the whole run's imports, once per worker
        from kerasguide.training import gpu_memory_growth

        gpu_memory_growth()

        self._keras, self._run, self._resume = keras, run, resume
        # What the imports made lives as long as the worker: out of the garbage collector's reach, so each
        # trial's clear_session collects over that trial's objects only (as in-process searches do).
        gc.collect()
        gc.freeze()
        self.import_seconds = time.perf_counter() - started
        self.trials = 0
        get_logger().setLevel("WARNING")  # the trials' messages would only fill Ray's worker logs

    def info(self) -> dict[str, Any]:
        """Where this worker runs: Ray node id, host name, pid, its GPUs (Ray's ids and CUDA_VISIBLE_DEVICES)
        and its import time."""
        return {"node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
                "pid": os.getpid(), "gpus": [str(g) for g in ray.get_gpu_ids()],
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "tf_force_gpu_allow_growth": os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH"),
                "import_seconds": round(self.import_seconds, 3)}

    def run_trial(self, config_path: str, out: str, resume: str | None = None) -> dict[str, Any]:
        """Run one trial config into `out` (or resume its killed run `resume`); returns the small outcome
        dict (never raises)."""
        started = time.perf_counter()
        self.trials += 1
        run_dir, status, error = None, "failed", None
        try:
            config = load_config(config_path)
            self._keras.backend.clear_session()
            if resume is not None:
                result = self._resume(resume, verbose=0)
            else:
                result = self._run(config, out=out, verbose=0, config_path=str(config_path))
            run_dir, status, error = str(result.path), result.status, result.error
        except Exception as caught:  # bad input (ConfigError) or a failure the run did not record
            error = _one_line(caught)
        return {"run_dir": run_dir, "status": status, "error": error,
                "node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
                "pid": os.getpid(), "seconds": round(time.perf_counter() - started, 3),
                "worker_trials": self.trials}


@dataclass
class _Slot:
    index: int
    actor: Any = None
    info_ref: Any = None
    info: dict[str, Any] | None = None
    key: str | None = None
    deaths_before_ready: int = 0
    broken: str | None = None


@dataclass
class _Job:
    key: str
    config_path: str
    out: str
    attempts: int = 0
    ref: Any = None
    slot: _Slot | None = None
    started: float | None = None
    errors: list[str] = field(default_factory=list)


class RayPool:
    """Persistent Ray workers that run search trials, a dead worker's trial run again.

    Args:
        workers: How many workers (trials at once).
        address: A running Ray cluster (`"HEAD:6379"`, `"auto"`); `None`
            starts a local one (or uses `RAY_ADDRESS`). Defaults to `None`.
        gpus_per_trial: GPUs each worker holds (Ray sets its
            `CUDA_VISIBLE_DEVICES`). Defaults to `0`.
        cpus_per_trial: CPUs each worker holds. Defaults to `1`.
        max_attempts: Runs of a trial in all when its worker dies; then it
            comes back `failed`. Defaults to `3`.
        object_store_memory: Bytes for a local cluster's object store (trials
            pass only paths). Defaults to `None` (Ray's own choice).

    Raises:
        ConfigError: The address cannot be reached, or the cluster has no
            room for even one worker.
        RuntimeError: A local Ray cluster could not start.

    Example:

    ```python
    pool = RayPool(workers=2, address="10.0.0.1:6379", gpus_per_trial=1)
    pool.submit("s1-t0", "search/trials/s1-t0/config.toml", out="search/trials")
    for key, outcome in pool.poll(timeout=5):
        print(key, outcome["status"], outcome["host"], outcome["attempts"])
    pool.shutdown()
    ```
    """

    def __init__(
        self,
        workers: int,
        address: str | None = None,
        gpus_per_trial: float = 0,
        cpus_per_trial: float = 1,
        max_attempts: int = 3,
        object_store_memory: int | None = None,
    ):
        if workers < 1:
            raise ValueError(f"Argument `workers` must be >= 1. Received: workers={workers}")
        if max_attempts < 1:
            raise ValueError(f"Argument `max_attempts` must be >= 1. Received: max_attempts={max_attempts}")
        if gpus_per_trial < 0 or cpus_per_trial < 0:
            raise ValueError("Arguments `gpus_per_trial` and `cpus_per_trial` must be >= 0. "
                             f"Received: gpus_per_trial={gpus_per_trial}, cpus_per_trial={cpus_per_trial}")
        self.workers = workers
        self.max_attempts = max_attempts
        self._owns_ray = not ray.is_initialized()
        address = address or os.environ.get("RAY_ADDRESS") or None
        self.address = address
        self._connect(address, workers, gpus_per_trial, cpus_per_trial, object_store_memory)
        self._check_room(gpus_per_trial, cpus_per_trial)
        self._actor_class = ray.remote(TrialWorker).options(
            num_cpus=cpus_per_trial, num_gpus=gpus_per_trial,
            scheduling_strategy="SPREAD",  # one worker per node first, so more machines mean more trials
            max_restarts=0,  # the pool recreates a dead worker itself, and knows which trial it had
        )
        self._slots = [_Slot(i) for i in range(workers)]
        for slot in self._slots:
            self._start_actor(slot)
        self._jobs: dict[str, _Job] = {}
        self._queue: deque[_Job] = deque()
        self._done: list[tuple[str, dict[str, Any]]] = []

    # ------------------------------------------------------------ connecting
    def _connect(self, address, workers, gpus, cpus, object_store_memory) -> None:
        common = {"include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True,
                  "configure_logging": False}
        if address is None:
            try:
                # Logical CPUs: room for every worker asked for, however many cores there are.
                ray.init(num_cpus=max(os.cpu_count() or 1, math.ceil(workers * cpus)),
                         object_store_memory=object_store_memory, **common)
            except Exception as error:
                raise RuntimeError(f"could not start a local Ray cluster: {_one_line(error)}") from None
            return
        if address != "auto" and not address.startswith("ray://"):
            _reachable(address)  # ray.init would retry an unreachable address for minutes
        try:
            ray.init(address=address, **common)
        except Exception as error:
            raise ConfigError(f"Ray address {address!r}: cannot connect to a Ray cluster there "
                              f"({_one_line(error)}); start one with `ray start --head`") from None

    def _check_room(self, gpus: float, cpus: float) -> None:
        total = ray.cluster_resources()
        if gpus > total.get("GPU", 0) or cpus > total.get("CPU", 0):
            have = f"{total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs"
            self.shutdown()
            raise ConfigError(f"the Ray cluster ({have}) has no room for one trial worker "
                              f"({cpus:g} CPUs, {gpus:g} GPUs per trial)")

    def _start_actor(self, slot: _Slot) -> None:
        slot.actor = self._actor_class.remote()
        slot.info_ref = slot.actor.info.remote()  # runs after __init__: resolves when the worker is warm
        slot.info = None
        slot.key = None

    # ------------------------------------------------------------ the interface
    def submit(self, key: str, config_path: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
        """Run the trial config `config_path` into `out` on the next free worker.

        Args:
            key: The trial's name, unique in this pool (the search's trial id).
            config_path: Its TOML config, on the filesystem the workers share.
            out: The folder that receives its run directory (shared too).
        """
        if key in self._jobs:
            raise ValueError(f"trial {key!r} was already submitted and has not come back")
        job = _Job(key, str(Path(config_path).resolve()), str(Path(out).resolve()))
        self._jobs[key] = job
        self._queue.append(job)
        self._dispatch()

    def poll(self, timeout: float = 0) -> list[tuple[str, dict[str, Any]]]:
        """The trials that finished, waiting up to `timeout` seconds for the first.

        Returns:
            `[(key, outcome)]`; outcome is `{"run_dir", "status", "error",
            "node", "host", "pid", "seconds", "attempts", "worker_trials",
            "earlier_run_dirs"}`. A trial whose worker died `max_attempts`
            times comes back `status="failed"` with a one-line `error`.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            self._dispatch()
            refs = [j.ref for j in self._jobs.values() if j.ref is not None]
            refs += [s.info_ref for s in self._slots if s.info is None and s.broken is None]
            if refs and not self._done:
                left = max(0.0, deadline - time.monotonic())
                ray.wait(refs, num_returns=1, timeout=left)
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                self._collect(set(ready))
            if self._done or time.monotonic() >= deadline or not refs:
                break
        done, self._done = self._done, []
        return done

    def where(self, key: str) -> dict[str, Any] | None:
        """Where trial `key` runs: `{"state": "queued"|"running", "node", "host", "pid", "attempts", "started"}`.

        `started` is `time.time()` when its current attempt began (None while
        queued); None for a key that is not pending.
        """
        job = self._jobs.get(key)
        if job is None:
            return None
        info = (job.slot.info if job.slot else None) or {}
        return {"state": "running" if job.slot else "queued", "node": info.get("node"),
                "host": info.get("host"), "pid": info.get("pid"), "attempts": job.attempts,
                "started": job.started}

    def cancel(self, key: str) -> dict[str, Any] | None:
        """Stop trial `key` (a timeout): its worker is killed and a new one started in its place.

        Returns:
            What `where(key)` said, plus `run_dir` (the run directory it was
            writing, or None); None when `key` is not pending. The trial does
            not come back from `poll`.
        """
        where = self.where(key)
        job = self._jobs.pop(key, None)
        if job is None:
            return None
        if job.slot is None:
            self._queue.remove(job)
        else:
            ray.kill(job.slot.actor, no_restart=True)
            self._start_actor(job.slot)
        where["run_dir"] = next(iter(_run_dirs(job)[-1:]), None)
        self._dispatch()
        return where

    def pending(self) -> list[str]:
        """The keys submitted that have not come back (queued or running)."""
        return list(self._jobs)

    def workers_info(self) -> list[dict[str, Any] | None]:
        """Each worker's `TrialWorker.info()` (None while it starts), plus the trial it runs (`key`)."""
        return [dict(s.info, key=s.key) if s.info else None for s in self._slots]

    def shutdown(self) -> None:
        """Kill the workers; stop Ray when this pool started it."""
        for slot in getattr(self, "_slots", []):
            if slot.actor is not None:
                try:
                    ray.kill(slot.actor, no_restart=True)
                except Exception:  # already gone
                    pass
                slot.actor = None
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    # ------------------------------------------------------------ internals
    def _dispatch(self) -> None:
        """Give queued trials to warm, idle workers (a worker still starting, or never placeable, gets none)."""
        for slot in self._slots:
            if not self._queue:
                return
            if slot.key is None and slot.info is not None and slot.broken is None:
                job = self._queue.popleft()
                # A trial whose worker died, or that a stopped or killed search left unfinished, resumes its
                # run (`run --resume`: from its backup).
                killed = _unfinished_run(job)
                job.attempts += 1
                job.slot, job.started = slot, time.time()
                job.ref = slot.actor.run_trial.remote(job.config_path, job.out, killed)
                slot.key = job.key
        if self._queue and all(s.broken for s in self._slots):
            for job in list(self._queue):
                self._finish(job, {"status": "failed", "run_dir": None,
                                   "error": f"no Ray worker could start: {self._slots[0].broken}"})
            self._queue.clear()

    def _collect(self, ready: set) -> None:
        for slot in self._slots:
            if slot.info is None and slot.broken is None and slot.info_ref in ready:
                try:
                    slot.info = ray.get(slot.info_ref)
                    slot.deaths_before_ready = 0
                except Exception as error:  # the worker died while it started (its import failed?)
                    slot.deaths_before_ready += 1
                    if slot.deaths_before_ready >= self.max_attempts:
                        slot.broken = _one_line(error)
                        logger.warning("Ray worker %d could not start: %s", slot.index, slot.broken)
                    else:
                        self._start_actor(slot)
        for job in [j for j in self._jobs.values() if j.ref is not None and j.ref in ready]:
            ref, slot, job.ref, job.slot = job.ref, job.slot, None, None
            slot.key = None
            try:
                outcome = ray.get(ref)
            except _DIED as error:
                message = _one_line(error)
                job.errors.append(message)
                logger.warning("trial %s: its Ray worker died (%s); attempt %d of %d", job.key,
                               message, job.attempts, self.max_attempts)
                self._start_actor(slot)
                if job.attempts < self.max_attempts:
                    self._queue.appendleft(job)  # first in line: it has waited longest
                    continue
                outcome = {"status": "failed", "run_dir": None,
                           "error": f"its Ray worker died {job.attempts} times; last: {message}"}
            except Exception as error:  # the trial's own task failed outside the run
                outcome = {"status": "failed", "run_dir": None, "error": _one_line(error)}
            self._finish(job, outcome)

    def _finish(self, job: _Job, outcome: dict[str, Any]) -> None:
        self._jobs.pop(job.key, None)
        outcome = {"node": None, "host": None, "pid": None, "seconds": None, "worker_trials": None,
                   **outcome, "attempts": job.attempts}
        outcome["earlier_run_dirs"] = [d for d in _run_dirs(job) if d != outcome.get("run_dir")]
        self._done.append((job.key, outcome))


def _unfinished_run(job: _Job) -> str | None:
    """The newest run directory of the trial if it is `killed` (its worker gone from this host) or
    `interrupted`, else None."""
    found = _run_dirs(job)
    return found[-1] if found and read_run(found[-1]).status in ("killed", "interrupted") else None


def _run_dirs(job: _Job) -> list[str]:
    """The run directories this trial's config has made under `out`, oldest first (a killed attempt's too)."""
    try:
        config = load_config(job.config_path)
    except (ConfigError, OSError):
        return []
    found = Path(job.out).glob(f"*-{config.name}-{config_hash(config)}*")
    return [str(p) for p in sorted(found, key=lambda p: p.stat().st_mtime) if p.is_dir()]


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Raise a one-line ConfigError when nothing listens at `host:port`."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address {address!r}: expected HOST:PORT (e.g. 10.0.0.1:6379), "
                          "'auto' or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as error:
        raise ConfigError(f"Ray address {address!r}: no Ray cluster answers there ({error.strerror or error}); "
                          "start one with `ray start --head`, or leave the address empty for a local one") from None
