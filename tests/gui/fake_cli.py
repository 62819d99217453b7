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
member (`FAKE_CLI_MEMBERS`, default 3) into an ensemble directory, as the real
`ensemble --json-progress` does; `tune` emits a search's events (`start`
with its stages, `stage`, `trial`, `end`); anything else replays one run.

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
    if argv and argv[0] == "tune":
        return _tune(out, delay)
    if argv and argv[0] == "ensemble":
        folder = out / f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}-fake-ensemble" / "members"
        for _ in range(int(os.environ.get("FAKE_CLI_MEMBERS", "3"))):
            code = _run(folder, mode, delay, interrupted)
            if code:
                return code
        print(f"ensemble directory: {folder.parent}", file=sys.stderr, flush=True)
        return 0
    return _run(out, mode, delay, interrupted)


def _tune(out: Path, delay: float) -> int:
    search_dir = out / f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-fake-search"
    search_dir.mkdir(parents=True)
    stages = [{"epochs": 1, "trials": 4, "label": "coarse"}, {"epochs": 5, "trials": 2, "label": "fine"}]
    print(json.dumps({"event": "start", "kind": "search", "search_dir": str(search_dir), "name": "fake",
                      "resumed": False, "stages": stages}), flush=True)
    for index, plan in enumerate(stages, start=1):
        print(json.dumps({"event": "stage", "stage": index, "label": plan["label"], "epochs": plan["epochs"],
                          "trials": plan["trials"]}), flush=True)
        for trial in range(plan["trials"]):
            for status in ("running", "completed"):
                print(json.dumps({"event": "trial", "stage": index, "trial_id": f"{index}-{trial}",
                                  "status": status, "score": 0.9 if status == "completed" else None,
                                  "seconds": 0.5 * plan["epochs"] if status == "completed" else None}),
                      flush=True)
                time.sleep(delay)
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
