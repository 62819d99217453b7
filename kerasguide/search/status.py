"""A search seen from outside while it runs, and a graceful stop: `kerasguide search-status DIR [--stop]`.

No TensorFlow here: it reads the search directory (search.json, the trials'
`kerasguide.json` records, their run directories' run.json and metrics.csv).

The stop is a request file, `stop-request.json` in the search directory, that
the search's master reads after every trial (`stop_requested`), rather than a
signal to the master's recorded pid: the file reaches a master the caller
cannot signal (another user, container or machine sharing the folder), cannot
hit an unrelated process that reused a stale pid, lets the master tell a
requested stop (recorded `stopped`, running trials finished) from a Ctrl-C
(`interrupted`), and works the same on Windows. `now=True` adds SIGTERM to the
master (same host, pid alive and a kerasguide process) for a trial too long to
wait for: the running trials are then interrupted and run again on resume.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from kerasguide.config import load_config
from kerasguide.rundir import atomic_write_json, owner_alive, read_json, read_metrics, utc_now

__all__ = ["STOP_REQUEST", "NotASearch", "search_status", "request_stop", "stop_requested", "clear_stop_request",
           "format_status"]

STOP_REQUEST = "stop-request.json"
SEARCH_JSON = "search.json"


class NotASearch(ValueError):
    """The folder is no search directory (no readable search.json)."""


def _state(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise NotASearch(f"{path}: no such search directory")
    state = read_json(path / SEARCH_JSON, default=None)
    if not isinstance(state, dict) or state.get("kind") != "search":
        raise NotASearch(f"{path}: not a kerasguide search directory (no search.json; `kerasguide tune` makes one)")
    return state


def stop_requested(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The stop request waiting in a search directory, if any."""
    request = read_json(Path(path) / STOP_REQUEST, default=None)
    return request if isinstance(request, dict) else None


def clear_stop_request(path: str | os.PathLike[str]) -> None:
    try:
        (Path(path) / STOP_REQUEST).unlink()
    except FileNotFoundError:
        pass


def _master_alive(state: dict[str, Any]) -> bool:
    if not owner_alive(state):  # gone, or another host's (not seen from here)
        return False
    if state.get("pid_start"):  # the master from the Python API too (its command line need not say kerasguide)
        return True
    cmdline = Path(f"/proc/{state['pid']}/cmdline")
    if cmdline.is_file():  # an older record, Linux: make sure the pid is still a kerasguide process
        try:
            return b"kerasguide" in cmdline.read_bytes()
        except OSError:
            return False
    return True


def request_stop(path: str | os.PathLike[str], now: bool = False) -> dict[str, Any]:
    """Ask the search in `path` to stop: after its running trials (default), or at once with `now`.

    Returns `{"requested": bool, "running": bool, "signalled": bool, "message": str}`;
    a search that is not running is left alone.
    """
    path = Path(path)
    state = _state(path)
    if state.get("status") != "running" or not _master_alive(state):
        return {"requested": False, "running": False, "signalled": False,
                "message": f"{path.name}: not running (status {state.get('status')}); nothing to stop"}
    atomic_write_json(path / STOP_REQUEST, {"requested": utc_now(), "now": now, "by_pid": os.getpid(),
                                            "host": socket.gethostname()})
    signalled = False
    if now:
        try:
            os.kill(state["pid"], signal.SIGTERM)
            signalled = True
        except OSError:
            pass
    what = ("the running trials are stopped now" if signalled
            else "the running trials finish first, no new trial starts")
    return {"requested": True, "running": True, "signalled": signalled,
            "message": f"stop requested for {path.name} (master pid {state['pid']}): {what}; "
                       "running the same `kerasguide tune` again resumes it"}


def _run_dir_of(path: Path, state: dict[str, Any], trial: dict[str, Any], record: dict[str, Any]) -> Path | None:
    if trial.get("run_dir"):
        return path / trial["run_dir"]
    log = path / "tuner" / f"stage{trial['stage']}" / f"trial_{trial['trial_id']}" / "worker.log"
    if log.is_file():  # a worker process: its `start` event names it
        import json

        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{") and '"start"' in line:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("run_dir"):
                    return Path(event["run_dir"])
    # In the master's process (workers = 0): the run named after the trial (SearchTuner.trial_config).
    name = f"{str(state.get('name', ''))[:44]}-s{trial['stage']}-t{trial['trial_id']}"
    found = [p for p in (path / "trials").glob("*") if (read_json(p / "run.json", default={}) or {}).get("name") == name]
    return max(found, key=lambda p: p.name) if found else None


def _per_trial_seconds(done: list[dict[str, Any]]) -> tuple[float, float] | None:
    """`(overhead, seconds_per_epoch)` from finished trials: a least-squares line of seconds against epochs."""
    # A continued trial (ASHA, Hyperband) trains only the epochs its parent had not.
    points = [(t.get("epochs_trained") or t["epochs"], t["seconds"]) for t in done if t.get("seconds") and t.get("epochs")]
    if not points:
        return None
    xs = [p[0] for p in points]
    if len(set(xs)) < 2:
        mean = sum(p[1] for p in points) / len(points)
        return 0.0, mean / xs[0]
    mx, my = sum(xs) / len(xs), sum(p[1] for p in points) / len(points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    slope = max(slope, 1e-6)
    return max(0.0, my - slope * mx), slope


def _planned_stages(path: Path, state: dict[str, Any]) -> list[tuple[int, int, int, int]]:
    """`[(stage, trials, epochs, epochs each trains), ...]` the search plans (search.json's, and stages to come)."""
    from kerasguide.search.budget import plan_budget

    try:
        budget = plan_budget(load_config(path / "config.toml"))
    except Exception:  # an unreadable config.toml: the stages recorded are all there is
        budget = None
    rows: dict[int, list[tuple[int, int, int]]] = {}
    for row in budget.rows if budget else []:
        rows.setdefault(row.stage, []).append((row.trials, row.epochs, row.epochs_each))
    for stage in state.get("stages", []):
        if stage["index"] not in rows or state.get("algorithm") not in ("hyperband", "asha"):
            rows[stage["index"]] = [(stage["trials_planned"], stage["epochs"], stage["epochs"])]
    return [(index, *row) for index in sorted(rows) for row in rows[index]]


def search_status(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a search is doing: status, running trials (pid or inline, epoch), scores so far, best, ETA.

    Raises:
        NotASearch: `path` holds no search.json.
    """
    path = Path(path)
    state = _state(path)
    running, done = [], []
    for stage in state.get("stages", []):
        for trial in stage.get("trials", []):
            if trial.get("status") == "running":
                running.append((stage, trial))
            else:
                done.append(trial)
    alive = state.get("status") == "running" and _master_alive(state)
    running_rows = []
    for _stage, trial in running:
        record = read_json(path / "tuner" / f"stage{trial['stage']}" / f"trial_{trial['trial_id']}" /
                           "kerasguide.json", default={}) or {}
        run_dir = _run_dir_of(path, state, trial, record)
        rows = read_metrics(run_dir / "metrics.csv") if run_dir and (run_dir / "metrics.csv").is_file() else []
        epoch_seconds = [r.get("seconds") for r in rows if isinstance(r.get("seconds"), float)
                         and math.isfinite(r["seconds"])]
        pid = record.get("pid")
        running_rows.append({
            "stage": trial["stage"], "trial_id": trial["trial_id"], "values": trial.get("values"),
            # A continued trial's metrics.csv starts after its parent's epochs: the epoch it is at, and what it trained.
            "epochs": trial.get("epochs"), "epochs_done": int(rows[-1].get("epoch") or len(rows)) if rows else
            int((trial.get("continued_from") or {}).get("epoch") or 0), "epochs_trained": len(rows),
            "continued_from": (trial.get("continued_from") or {}).get("parent"),
            "where": (f"Ray worker pid {pid} on {record.get('host')}" if pid and record.get("node")
                      else f"worker pid {pid}" if pid
                      else "queued for a Ray worker" if record.get("worker") == "ray"
                      else f"in the master (pid {state.get('pid')})"),
            "pid": pid or state.get("pid"), "run_dir": str(run_dir) if run_dir else None,
            "started": trial.get("started"),
            "epoch_seconds": round(sum(epoch_seconds) / len(epoch_seconds), 2) if epoch_seconds else None,
            "val_score": next((r.get(trial.get("metric")) for r in reversed(rows) if trial.get("metric") in r), None),
        })
    # ETA: the remaining plan at the speed of the finished trials (a line: overhead + epochs x seconds an epoch).
    speed = _per_trial_seconds(done)
    eta = None
    remaining_trials = 0
    if speed is not None and state.get("status") == "running":
        overhead, per_epoch = speed
        left = 0.0
        started = {s["index"]: s for s in state.get("stages", [])}
        counted: dict[int, int] = {}
        for index, trials, epochs, trained in _planned_stages(path, state):
            stage = started.get(index)
            if stage is not None and stage.get("status") == "completed":
                continue
            finished = len([t for t in (stage or {}).get("trials", []) if t.get("status") != "running"
                            and t.get("epochs") == epochs])
            already = counted.get(index, 0)
            take = min(trials, max(0, finished - already))
            counted[index] = already + take
            n = max(0, trials - take)
            remaining_trials += n
            left += n * (overhead + trained * per_epoch)
        for row in running_rows:  # running trials are in the plan: credit the part already trained
            left -= min(row["epochs_trained"], row["epochs"] or 0) * per_epoch
        eta = max(0.0, left) / max(1, int(state.get("workers") or 1))
    best = state.get("best") or next(
        (s.get("best") for s in sorted(state.get("stages", []), key=lambda s: -s["epochs"]) if s.get("best")), None)
    return {
        "search_dir": str(path), "name": state.get("name"), "status": state.get("status"),
        "master_alive": alive, "pid": state.get("pid"), "host": state.get("host"),
        "algorithm": state.get("algorithm"), "workers": state.get("workers"),
        "objective": state.get("objective"), "started": state.get("started"), "updated": state.get("updated"),
        "stages": [{"index": s["index"], "label": s.get("label"), "status": s.get("status"),
                    "epochs": s.get("epochs"), "trials_planned": s.get("trials_planned"),
                    "trials_done": len([t for t in s.get("trials", []) if t.get("status") != "running"]),
                    "best": s.get("best")} for s in state.get("stages", [])],
        "running": running_rows,
        "scores": [{k: t.get(k) for k in ("stage", "trial_id", "status", "score", "epochs", "seconds", "values")}
                   for t in done],
        "best": best,
        "remaining_trials": remaining_trials if eta is not None else None,
        "eta_seconds": None if eta is None else round(eta, 1),
        "stop_requested": stop_requested(path), "stop": state.get("stop"),
        "error": state.get("error"),
    }


def _values_text(values: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in (values or {}).items())


def format_status(status: dict[str, Any]) -> str:
    """`search_status` as lines for a terminal."""
    metric = (status.get("objective") or {}).get("metric", "score")
    state = status["status"]
    if state == "running" and not status["master_alive"]:
        state = "running? (its master process is gone: killed; run the same tune again to resume)"
    lines = [f"search {status['name']}: {state} (master pid {status.get('pid')}, {status.get('algorithm')}, "
             f"{status.get('workers') or 'no'} workers)", f"  {status['search_dir']}"]
    for stage in status["stages"]:
        best = stage.get("best")
        lines.append(f"  stage {stage['index']} ({stage['label']}): {stage['status']}, {stage['trials_done']}/"
                     f"{stage['trials_planned']} trials of {stage['epochs']} epochs"
                     + (f", best {metric} {best['score']:.4f}" if best and best.get("score") is not None else ""))
    for row in status["running"]:
        score = f", {metric} {row['val_score']:.4f}" if isinstance(row.get("val_score"), float) else ""
        parent = f", continuing trial {row['continued_from']}" if row.get("continued_from") else ""
        lines.append(f"  running: stage {row['stage']} trial {row['trial_id']} ({row['where']}{parent}): epoch "
                     f"{row['epochs_done']}/{row['epochs']}{score}; {_values_text(row['values'])}")
    scored = [s for s in status["scores"] if s.get("score") is not None]
    if scored:
        lines.append("  scores so far: " + ", ".join(
            f"s{s['stage']}t{s['trial_id']} {s['score']:.4f}" for s in scored[-8:]))
    best = status.get("best")
    if best and best.get("score") is not None:
        lines.append(f"  best: {metric} {best['score']:.4f} after {best['epochs']} epochs "
                     f"(stage {best['stage']} trial {best['trial_id']}): {_values_text(best.get('values'))}")
    if status.get("eta_seconds") is not None:
        lines.append(f"  ETA: {_eta(status['eta_seconds'])} ({status['remaining_trials']} trials to start, "
                     "at the finished trials' speed; a widened stage would add more)")
    if status.get("stop_requested"):
        lines.append(f"  stop requested at {status['stop_requested'].get('requested')}")
    if status.get("error"):
        lines.append(f"  {status['error']}")
    return "\n".join(lines)


def _eta(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86400 else f"{seconds / 3600:.0f} h"
