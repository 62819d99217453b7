"""A stand-in for `python -m kerasguide.cli` that replays recorded output (no TensorFlow).

The GUI tests run it instead of the real CLI where a real run would be slow.
It replays `data/run_progress.jsonl` and `data/run_stderr.txt` (recorded from
a real `kerasguide run --json-progress`), creating a run directory with a
`run.json` and `metrics.csv` as the real one does. `FAKE_CLI_MODE` picks the
scenario:

- `ok` (default): the whole recorded run, exit 0.
- `fail`: two epochs, then a Python traceback on stderr, exit 1.
- `bad_input`: one `kerasguide: error:` line, exit 2.
- `hang`: start, then wait for SIGTERM; then record `interrupted`, exit 1.

The subcommand picks what is replayed: `ensemble` replays the run once per
member (`FAKE_CLI_MEMBERS`, default 3) into an ensemble directory's `members/`
and writes its ensemble.json, as the real `ensemble --json-progress` does;
`tune` emits a search's events (`start` with its stages, `stage`, `trial`,
`end`) and writes search.json and a run directory per trial in `trials/`;
`predict RUN_DIR INPUT --out CSV` writes a predictions CSV (`FAKE_CLI_ROWS`
rows, default 300: the predicted class and ten probabilities), or says in one
line that INPUT does not exist (exit 2), as the real one does;
`check` and `lr-find` record a check or LR-sweep run directory and, with
`--json-progress`, emit what the real ones do (`start`, `stage`, a `check` and
a `step` event per check or `step` events of the sweep, each with its ETA,
`end`), the human text then on stderr; anything else replays one run.

`FAKE_CLI_DELAY` is the pause between lines (seconds, default 0.02), and
`FAKE_CLI_LOG` a file to which each invocation's argv is appended.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import signal
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _write_run(run_dir: Path, status: str, rows: list[dict], name: str) -> None:
    record = {"name": name, "status": status, "started": _STARTED, "heartbeat": _now(),
              "epochs_done": len(rows)}
    if rows:
        last = rows[-1]
        record["final_metrics"] = {k: v for k, v in last.items() if k != "epoch"}
        best = max(rows, key=lambda r: r.get("val_accuracy", 0))
        record["best"] = {"metric": "val_accuracy", "value": best.get("val_accuracy"), "epoch": best["epoch"]}
    if status != "running":
        record["ended"] = _now()
    tmp = run_dir / ".run.json.tmp"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, run_dir / "run.json")
    if rows:
        with open(run_dir / ".metrics.tmp", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        os.replace(run_dir / ".metrics.tmp", run_dir / "metrics.csv")


_STARTED = _now()


def main(argv: list[str]) -> int:
    mode = os.environ.get("FAKE_CLI_MODE", "ok")
    delay = float(os.environ.get("FAKE_CLI_DELAY", "0.02"))
    if os.environ.get("FAKE_CLI_LOG"):
        with open(os.environ["FAKE_CLI_LOG"], "a") as handle:
            handle.write(json.dumps(argv) + "\n")
    if mode == "bad_input":
        print("kerasguide: error: config: `train.epochs` = 0: Input should be greater than 0", file=sys.stderr)
        return 2
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else Path("runs")
    interrupted: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: interrupted.append(True))
    if argv and argv[0] == "predict":
        return _predict(argv[1], argv[2], out, mode, delay, interrupted)
    if argv and argv[0] == "tune":
        return _tune(out, delay)
    if argv and argv[0] in ("check", "lr-find"):
        return _steps(argv[0], out, delay, "--json-progress" in argv, mode, interrupted)
    if argv and argv[0] == "ensemble":
        folder = out / f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}-fake-ensemble" / "members"
        for _ in range(int(os.environ.get("FAKE_CLI_MEMBERS", "3"))):
            code = _run(folder, mode, delay, interrupted)
            if code:
                return code
        _write_json(folder.parent / "ensemble.json", {
            "format_version": 1, "kind": "seeds", "name": "fake-ensemble",
            "members": [{"name": p.name, "run_dir": f"members/{p.name}"} for p in sorted(folder.iterdir())],
            "validation": {"examples": 360, "ensemble": {"accuracy": 0.9611, "log_loss": 0.15},
                           "mean_member": {"accuracy": 0.95, "log_loss": 0.2}, "members": []},
            "test": None, "student": None})
        (folder.parent / "ensemble.md").write_text("# Ensemble fake-ensemble\n")
        print(f"ensemble directory: {folder.parent}", file=sys.stderr, flush=True)
        return 0
    return _run(out, mode, delay, interrupted)


def _predict(run_dir: str, source: str, out: Path, mode: str, delay: float, interrupted: list[bool]) -> int:
    if not Path(source).exists():
        print(f"kerasguide: error: {source}: no such file or folder (an .npz, a .csv or a folder of images)",
              file=sys.stderr)
        return 2
    if mode == "hang":
        while not interrupted:
            time.sleep(0.05)
        print("kerasguide: interrupted", file=sys.stderr, flush=True)
        return 1
    rows = int(os.environ.get("FAKE_CLI_ROWS", "300"))
    time.sleep(delay)
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "predicted", *(f"p_{k}" for k in range(10))])
        for index in range(rows):
            probs = [0.01] * 10
            probs[index % 10] = 0.91
            writer.writerow([index, index % 10, *probs])
    print(f"predictions: {out} ({rows} rows, {Path(run_dir).name})", flush=True)
    return 0


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _steps(command: str, out: Path, delay: float, events: bool, mode: str, interrupted: list[bool]) -> int:
    """`check` (6 checks) or `lr-find` (a 20-step sweep, an event every 2 steps), as the real ones record them."""
    kind = "check" if command == "check" else "lr_find"
    run_dir = out / f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}-fake-{kind}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text('name = "fake"\n')
    record = {"name": "fake", "kind": kind, "status": "running", "started": _STARTED, "heartbeat": _now()}
    _write_json(run_dir / "run.json", record)
    human = sys.stderr if events else sys.stdout
    names = ["data", "initialization", "initial_loss", "regularization", "overfit", "gradients"]
    steps = len(names) if kind == "check" else 20
    if events:
        _emit("start", run_dir=str(run_dir), name="fake", kind=kind, **(
            {"planned": names} if kind == "check" else {"steps": steps}))
        _emit("stage", stage="checks" if kind == "check" else "lr_find")
    results, lrs, losses = [], [], []
    for step in range(1, steps + 1):
        if interrupted:
            break
        time.sleep(delay)
        eta = round(delay * (steps - step), 3)
        if kind == "check":
            result = {"name": names[step - 1], "passed": True, "measured": 0.0, "expected": 0.0,
                      "tolerance": 0.0, "advice": "fine", "recipe": "D12", "severity": "info", "details": {}}
            results.append(result)
            if events:
                _emit("check", **result)
                _emit("step", stage="checks", step=step, steps=steps, elapsed=round(delay * step, 3), eta=eta,
                      name=result["name"])
        else:
            lrs.append(1e-6 * 10 ** (step / 3))
            losses.append(2.3 - 0.05 * step if step < 17 else 2.3 + step)
            if events and (step % 2 == 0 or step == steps):
                _emit("step", stage="lr_find", step=step, steps=steps, elapsed=round(delay * step, 3), eta=eta,
                      lr=lrs[-1], loss=losses[-1])
        if mode == "hang" and step == 2:
            while not interrupted:
                time.sleep(0.05)
    status = "interrupted" if interrupted else "completed"
    if kind == "check":
        _write_json(run_dir / "checks.json", results)
    elif not interrupted:
        _write_json(run_dir / "lr_find.json", {"lrs": lrs, "losses": losses, "smoothed": losses,
                                                "suggestions": {"steepest": lrs[10]}, "chosen": lrs[10],
                                                "chosen_rule": "steepest", "reason": "fake", "steps": steps,
                                                "seconds": delay * steps})
    _write_json(run_dir / "run.json", dict(record, status=status, ended=_now(), heartbeat=_now()))
    if events:
        _emit("end", status=status, run_dir=str(run_dir), error=None)
    if interrupted:
        print("kerasguide: interrupted", file=sys.stderr, flush=True)
        return 1
    if kind == "check":
        print("check           result  measured  expected  recipe", file=human)
        print(f"checks.json: {run_dir / 'checks.json'}", file=human, flush=True)
    else:
        print(f"chosen: {lrs[10]:.3g}. fake", file=human)
        print(f"lr_find.json: {run_dir / 'lr_find.json'}", file=human, flush=True)
    return 0


def _tune(out: Path, delay: float) -> int:
    search_dir = out / f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-fake-search"
    search_dir.mkdir(parents=True)
    (search_dir / "config.toml").write_text('name = "fake"\n')
    stages = [{"epochs": 1, "trials": 4, "label": "coarse"}, {"epochs": 5, "trials": 2, "label": "fine"}]
    state = {"format_version": 1, "kind": "search", "name": "fake", "status": "running", "started": _now(),
             "objective": {"metric": "val_accuracy", "direction": "max"}, "stages": [], "best": None}
    _write_json(search_dir / "search.json", state)
    print(json.dumps({"event": "start", "kind": "search", "search_dir": str(search_dir), "name": "fake",
                      "resumed": False, "stages": stages}), flush=True)
    for index, plan in enumerate(stages, start=1):
        stage = {"index": index, "label": plan["label"], "epochs": plan["epochs"], "trials": [], "best": None}
        state["stages"].append(stage)
        print(json.dumps({"event": "stage", "stage": index, "label": plan["label"], "epochs": plan["epochs"],
                          "trials": plan["trials"]}), flush=True)
        for trial in range(plan["trials"]):
            trial_id = f"{index}-{trial}"
            score = round(0.8 + 0.02 * index + 0.01 * trial, 4)
            trial_dir = search_dir / "trials" / f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}-fake-t{trial_id}"
            trial_dir.mkdir(parents=True)
            rows = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.1 / e, "val_accuracy": score}
                    for e in range(1, plan["epochs"] + 1)]
            _write_run(trial_dir, "completed", rows, f"fake-t{trial_id}")
            record = {"stage": index, "trial_id": trial_id, "status": "completed", "score": score,
                      "metric": "val_accuracy", "epochs": plan["epochs"], "values": {"optimizer.learning_rate": 0.01},
                      "run_dir": f"trials/{trial_dir.name}"}
            stage["trials"].append(record)
            stage["best"] = max(stage["trials"], key=lambda t: t["score"])
            _write_json(search_dir / "search.json", state)
            for status in ("running", "completed"):
                print(json.dumps({"event": "trial", "stage": index, "trial_id": trial_id,
                                  "status": status, "score": score if status == "completed" else None,
                                  "seconds": 0.5 * plan["epochs"] if status == "completed" else None}),
                      flush=True)
                time.sleep(delay)
    state.update(status="completed", ended=_now(),
                 best=max((t for s in state["stages"] for t in s["trials"]), key=lambda t: t["score"]))
    _write_json(search_dir / "search.json", state)
    (search_dir / "search.md").write_text("# Search fake\n")
    print(json.dumps({"event": "end", "status": "completed", "search_dir": str(search_dir), "error": None}),
          flush=True)
    print(f"search directory: {search_dir}", file=sys.stderr, flush=True)
    return 0


def _run(out: Path, mode: str, delay: float, interrupted: list[bool]) -> int:
    name = "fake"
    run_dir = out / f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}-{name}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text(f'name = "{name}"\n')
    rows: list[dict] = []
    _write_run(run_dir, "running", rows, name)
    stderr_lines = (DATA / "run_stderr.txt").read_text().replace("{run_dir}", str(run_dir)).splitlines()
    print(stderr_lines[0], file=sys.stderr, flush=True)
    for line in (DATA / "run_progress.jsonl").read_text().splitlines():
        line = line.replace("{run_dir}", str(run_dir))
        event = json.loads(line)
        if event["event"] == "end":
            break
        print(line, flush=True)
        if event["event"] == "epoch":
            rows.append({"epoch": event["epoch"], **event["metrics"]})
            _write_run(run_dir, "running", rows, name)
            if mode == "fail" and len(rows) == 2:
                print("Traceback (most recent call last):", file=sys.stderr)
                print('  File "kerasguide/pipeline.py", line 1, in fit', file=sys.stderr)
                print("ValueError: planted failure: the loss became NaN at epoch 2", file=sys.stderr, flush=True)
                _write_run(run_dir, "failed", rows, name)
                print(json.dumps({"event": "end", "status": "failed", "run_dir": str(run_dir),
                                  "error": "ValueError: planted failure"}), flush=True)
                return 1
        if event["event"] == "start" and mode == "hang":
            while not interrupted:
                time.sleep(0.05)
            _write_run(run_dir, "interrupted", rows, name)
            print(json.dumps({"event": "end", "status": "interrupted", "run_dir": str(run_dir),
                              "error": None}), flush=True)
            print("run interrupted", file=sys.stderr, flush=True)
            return 1
        time.sleep(delay)
    _write_run(run_dir, "completed", rows, name)
    print(json.dumps({"event": "end", "status": "completed", "run_dir": str(run_dir), "error": None}), flush=True)
    for line in stderr_lines[1:]:
        print(line, file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
