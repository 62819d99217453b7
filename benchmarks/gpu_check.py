"""GPU check for a machine with a GPU (issue 16): mixed precision, `mirrored` steps per execution, GPU workers.

One prepared script, each part in its own child process (a TensorFlow
process holds its GPUs until it exits; this master never imports
TensorFlow, so it holds none):

1. `kerasguide run` of the mnist1d CNN preset, float32 then mixed precision
   (`train.mixed_precision = true`), monitors on: status, validation
   accuracy, training steps/s, peak GPU memory, the saved model's policy,
   the monitor files written and the diagnosis' findings.
2. A `mirrored` run (`train.strategy = "mirrored"`) with steps_per_execution
   "auto" against 1, interleaved: the steps per call used, epoch time,
   speed-up; then `benchmarks/mirrored_steps.py --device gpu` (two GPUs, or
   one split in two logical GPUs) for the one- and two-replica table and
   whether Keras' multi-step loop works over two replicas.
3. `kerasguide tune` with 2 process workers, `search.gpus_per_trial = 1`
   (0.5 on a one-GPU machine, so that both workers share it): each worker's
   `CUDA_VISIBLE_DEVICES` and what its TensorFlow sees (written from inside
   the worker by the model's builder), and each process's GPU memory
   (`nvidia-smi --query-compute-apps`, sampled twice a second).

It prints markdown tables to paste into benchmarks/README.md and writes them
to `$OUT/gpu_check.md` (and every number to `$OUT/gpu_check.json`) when
`OUT` is set, else to `--out`. The parts share a deadline (`--budget`,
7 minutes by default: under 8 on an H200, TensorFlow's start included);
a part that would pass it is skipped and says so.

Without a GPU it says so and exits 0; `--cpu` runs every part on the CPU
instead, small (a smoke run of this script: the search's workers get the
fake GPUs "0" and "1").

Usage: python benchmarks/gpu_check.py [--cpu] [--out DIR] [--budget SECONDS] [--only PART ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from kerasguide.config import RunConfig, SearchConfig, load_config, save_config
from kerasguide.presets import preset_path
from kerasguide.search.gpus import visible_gpus

ROOT = Path(__file__).resolve().parents[1]

_RUNS = r'''
import json, sys, time
from pathlib import Path
from kerasguide._logging import import_tensorflow, set_verbosity
tf = import_tensorflow()
import keras
from kerasguide.config import load_config
from kerasguide.spine import run
set_verbosity("WARNING")
spec = json.loads(sys.argv[1])
gpus = tf.config.list_physical_devices("GPU")
info = tf.sysconfig.get_build_info()
out = {"tensorflow": tf.__version__, "keras": keras.__version__, "gpus": [g.name for g in gpus],
       "cuda": info.get("cuda_version"), "cudnn": info.get("cudnn_version"), "runs": []}
for item in spec["runs"]:
    cfg = load_config(spec["config"])
    for key, value in item["set"].items():
        section, name = key.split(".")
        setattr(getattr(cfg, section), name, value)
    cfg.name = item["name"]
    if gpus:
        tf.config.experimental.reset_memory_stats("GPU:0")
    started = time.perf_counter()
    result = run(cfg, out=spec["out"], verbose=0)
    record = result.run_dir.read_run()
    rows = result.run_dir.read_metrics()
    epoch_s = sorted(r["seconds"] for r in rows[1:] if isinstance(r.get("seconds"), float))
    policy = None
    last = result.path / "checkpoints" / "last.keras"
    if last.is_file():
        # The layers' policies (a mixed model keeps its output layer float32 for a stable softmax).
        policy = " + ".join(sorted({l.dtype_policy.name for l in keras.saving.load_model(last, compile=False).layers
                                    if l.weights}))
    diagnosis = json.loads((result.path / "diagnosis.json").read_text()) if (result.path / "diagnosis.json").is_file() else {}
    out["runs"].append({
        "name": item["name"], "label": item["label"], "status": result.status, "error": result.error,
        "wall_s": round(time.perf_counter() - started, 1), "train_s": record.get("train_seconds"),
        "epochs": len(rows), "steps_per_epoch": record.get("steps_per_epoch"),
        "steps_per_execution": record.get("steps_per_execution"),
        "epoch_s_median": epoch_s[len(epoch_s) // 2] if epoch_s else None,
        "val_accuracy": (result.final_metrics or {}).get("val_accuracy"),
        "peak_gpu_mib": round(tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20) if gpus else None,
        "policy": policy,
        "monitor_files": sum(1 for p in (result.path / "monitor").rglob("*") if p.is_file())
                         if (result.path / "monitor").is_dir() else 0,
        "findings": [f.get("code") for f in diagnosis.get("findings", []) if isinstance(f, dict)],
        "run_dir": str(result.path),
    })
print("RESULT " + json.dumps(out))
'''

_BUILDER = '''
import json, os
import keras

def build(input_shape, num_classes):
    """The digits MLP, after writing what this worker process sees (environment, TensorFlow's GPUs)."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    seen = {"pid": os.getpid(), "gpus": [g.name for g in gpus],
            "memory_growth": [tf.config.experimental.get_memory_growth(g) for g in gpus],
            **{k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH",
                                              "CUDA_DEVICE_ORDER")}}
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seen")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{os.getpid()}.json"), "w") as f:
        json.dump(seen, f)
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(256, activation="relu")(inputs)
    x = keras.layers.Dense(128, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
'''


class _Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def _child(args: list[str], timeout: float, env: dict | None = None) -> tuple[int | None, str, str]:
    """(exit code, stdout, stderr tail) of a child; exit code None when it ran past `timeout` (killed)."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        partial = error.stdout.decode(errors="replace") if isinstance(error.stdout, bytes) else error.stdout
        return None, partial or "", "timed out"
    return done.returncode, done.stdout, done.stderr[-3000:]


def _result(stdout: str) -> dict | None:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT "):]) if lines else None


def _runs(config: Path, runs: list[dict], out: Path, deadline: _Deadline, need: float) -> dict:
    """The runs of `_RUNS` in one child (TensorFlow started once)."""
    if deadline.left() < need:
        return {"skipped": f"under {need:.0f} s left of the budget"}
    spec = json.dumps({"config": str(config), "out": str(out), "runs": runs})
    code, stdout, stderr = _child([sys.executable, "-c", _RUNS, spec], timeout=deadline.left() - 5)
    found = _result(stdout)
    if found is None:
        return {"failed": f"exit {code}: {stderr.strip().splitlines()[-1] if stderr.strip() else '(no output)'}"}
    return found


def _fmt(value, spec: str = "") -> str:
    if value is None:
        return "–"
    return format(value, spec) if spec else str(value)


# ------------------------------------------------------------------ 1. mixed precision
def mixed_precision(work: Path, deadline: _Deadline, smoke: bool) -> tuple[dict, str]:
    cfg = load_config(preset_path("mnist1d_cnn"))
    cfg.train.epochs = 2 if smoke else 12
    cfg.monitor.enabled = True
    path = work / "mnist1d.toml"
    save_config(cfg, path)
    runs = [{"name": "gpu-fp32", "label": "float32", "set": {"train.mixed_precision": False}},
            {"name": "gpu-mixed", "label": "mixed_float16", "set": {"train.mixed_precision": True}}]
    found = _runs(path, runs, work / "runs", deadline, need=60)
    if "runs" not in found:
        return found, f"1. mixed precision: {found}\n"
    lines = [f"mnist1d CNN preset, {cfg.train.epochs} epochs, checks and monitors on\n",
             "| precision | status | val acc | steps/s (epochs 2..N) | peak GPU MiB | saved policy | monitor files "
             "| findings |", "|---|---|---|---|---|---|---|---|"]
    for r in found["runs"]:
        sps = r["steps_per_epoch"] / r["epoch_s_median"] if r["epoch_s_median"] else None
        r["steps_per_s"] = sps
        lines.append(f"| {r['label']} | {r['status']} | {_fmt(r['val_accuracy'], '.3f')} | {_fmt(sps, '.0f')} "
                     f"| {_fmt(r['peak_gpu_mib'])} | {_fmt(r['policy'])} | {r['monitor_files']} "
                     f"| {', '.join(r['findings']) or 'none'} |")
    fp32, mixed = found["runs"]
    if fp32.get("steps_per_s") and mixed.get("steps_per_s"):
        lines.append(f"\nmixed / float32 speed: {mixed['steps_per_s'] / fp32['steps_per_s']:.2f}x")
    return found, "\n".join(lines) + "\n"


# ------------------------------------------------------------------ 2. mirrored
def mirrored(work: Path, deadline: _Deadline, smoke: bool) -> tuple[dict, str]:
    cfg = load_config(preset_path("mnist1d_cnn"))
    cfg.train.epochs = 3 if smoke else 10
    cfg.train.strategy = "mirrored"
    cfg.checks.enabled = False  # the strategy's speed, not the checks'
    cfg.monitor.enabled = False
    path = work / "mirrored.toml"
    save_config(cfg, path)
    runs = []
    for pair in range(1 if smoke else 2):  # interleaved: auto, 1, auto, 1
        for spe in ("auto", 1):
            runs.append({"name": f"mirrored-{spe}-{pair}", "label": str(spe),
                         "set": {"train.steps_per_execution": spe}})
    found = _runs(path, runs, work / "runs", deadline, need=60)
    text = []
    if "runs" in found:
        text += [f"`kerasguide run`, mnist1d CNN, strategy mirrored, {cfg.train.epochs} epochs "
                 f"({len(found['gpus']) or 'no'} GPU{'' if len(found['gpus']) == 1 else 's'})\n",
                 "| steps_per_execution | steps used a call | status | epoch s (median, epochs 2..N) | val acc |",
                 "|---|---|---|---|---|"]
        for r in found["runs"]:
            text.append(f"| {r['label']} | {r['steps_per_execution']} | {r['status']} "
                        f"| {_fmt(r['epoch_s_median'], '.3f')} | {_fmt(r['val_accuracy'], '.3f')} |")
        by = {label: sorted(r["epoch_s_median"] for r in found["runs"] if r["label"] == label and r["epoch_s_median"])
              for label in ("auto", "1")}
        if by["auto"] and by["1"]:
            text.append(f"\nspeed-up of auto over 1: {by['1'][len(by['1']) // 2] / by['auto'][len(by['auto']) // 2]:.2f}x")
    else:
        text.append(f"mirrored runs: {found}")
    if deadline.left() < 90:
        found["two_replicas"] = "skipped: under 90 s left of the budget"
    else:
        device = ["--device", "cpu", "--repeats", "1", "--epochs", "2"] if smoke else \
            ["--device", "gpu", "--repeats", "2", "--epochs", "4"]
        code, stdout, stderr = _child([sys.executable, str(ROOT / "benchmarks" / "mirrored_steps.py"), *device],
                                      timeout=min(240, deadline.left() - 60))
        table = stdout[stdout.find("Keras "):] if "Keras " in stdout else ""
        found["two_replicas"] = table or f"exit {code}: {stderr.strip().splitlines()[-1:] or '(no output)'}"
        text.append("\n`benchmarks/mirrored_steps.py " + " ".join(device) + "`:\n\n" + found["two_replicas"])
    return found, "\n".join(text) + "\n"


# ------------------------------------------------------------------ 3. GPU workers
class _GpuSampler(threading.Thread):
    """The most GPU memory each process (and each GPU) held, from nvidia-smi twice a second."""

    def __init__(self):
        super().__init__(daemon=True)
        self.smi = shutil.which("nvidia-smi")
        self.by_pid: dict[int, int] = {}
        self.by_gpu: dict[str, int] = {}
        self.stop = threading.Event()

    def _query(self, what: str) -> list[list[str]]:
        try:
            done = subprocess.run([self.smi, f"--query-{what}", "--format=csv,noheader,nounits"],
                                  capture_output=True, text=True, timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return []
        return [[c.strip() for c in line.split(",")] for line in done.stdout.splitlines() if line.strip()]

    def run(self):
        while self.smi and not self.stop.is_set():
            for pid, used in (r for r in self._query("compute-apps=pid,used_memory") if len(r) == 2):
                if pid.isdigit() and used.isdigit():
                    self.by_pid[int(pid)] = max(self.by_pid.get(int(pid), 0), int(used))
            for index, used in (r for r in self._query("gpu=index,memory.used") if len(r) == 2):
                if used.isdigit():
                    self.by_gpu[index] = max(self.by_gpu.get(index, 0), int(used))
            self.stop.wait(0.5)


def gpu_workers(work: Path, deadline: _Deadline, smoke: bool, n_gpus: int) -> tuple[dict, str]:
    if deadline.left() < 80:
        return {"skipped": "under 80 s left of the budget"}, "3. GPU workers: skipped (budget)\n"
    per_trial = 1.0 if smoke or n_gpus >= 2 else 0.5  # one GPU: both workers share it
    (work / "search").mkdir(exist_ok=True)
    builder = work / "search" / "env_builder.py"
    builder.write_text(_BUILDER)
    cfg = RunConfig()
    cfg.name = "gpu-workers"
    cfg.model.kind = f"python:{builder}:build"
    cfg.optimizer.learning_rate = 1e-3
    cfg.train.epochs = 3
    cfg.checks.enabled = False  # the master trains nothing: it must not touch the GPUs
    cfg.search = SearchConfig(algorithm="random", engine="process", workers=2, gpus_per_trial=per_trial,
                              stages=[{"epochs": 3, "trials": 4}], widen_on_border=False)
    path = work / "search" / "search.toml"
    save_config(cfg, path)
    env = dict(os.environ)
    if smoke:
        env["CUDA_VISIBLE_DEVICES"] = "0,1"  # fake GPUs: what each worker is told is the check
    sampler = _GpuSampler()
    sampler.start()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "kerasguide.cli", "tune", str(path), "--out",
                             str(work / "search" / "out"), "--json-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    try:
        stdout, stderr = proc.communicate(timeout=max(10, deadline.left() - 5))
    except subprocess.TimeoutExpired:
        proc.terminate()  # the master stops its workers in order
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
    sampler.stop.set()
    sampler.join(5)
    wall = time.perf_counter() - started
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    end = next((e for e in reversed(events) if e.get("event") == "end"), {})
    found = {"gpus_per_trial": per_trial, "exit": proc.returncode, "wall_s": round(wall, 1),
             "status": end.get("status"), "master_pid": proc.pid, "master_gpu_mib": sampler.by_pid.get(proc.pid),
             "gpu_mib_max": sampler.by_gpu, "trials": [],
             "stderr_tail": [line for line in stderr.splitlines() if "GPU" in line or "warning" in line.lower()][-3:]}
    seen = {s["pid"]: s for s in (json.loads(p.read_text()) for p in (work / "search" / "seen").glob("*.json"))}
    search_dir = Path(end["search_dir"]) if end.get("search_dir") else None
    for record_path in sorted(search_dir.glob("tuner/stage*/trial_*/kerasguide.json")) if search_dir else []:
        record = json.loads(record_path.read_text())
        inside = seen.get(record.get("pid"), {})
        found["trials"].append({
            "trial": record.get("trial_id"), "status": record.get("status"), "score": record.get("score"),
            "seconds": record.get("seconds"), "pid": record.get("pid"),
            "cuda_visible_devices": record.get("cuda_visible_devices"),
            "inside": {k: inside.get(k) for k in ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH", "gpus",
                                                   "memory_growth")},
            "gpu_mib": sampler.by_pid.get(record.get("pid")),
        })
    lines = [f"`kerasguide tune`, 2 process workers, search.gpus_per_trial = {per_trial:g}, 4 trials x 3 epochs of "
             f"a digits MLP: {found['status'] or 'no end event'} in {wall:.0f} s (exit {proc.returncode})\n",
             "| trial | worker pid | CUDA_VISIBLE_DEVICES (given / seen inside) | TF_FORCE_GPU_ALLOW_GROWTH "
             "| TensorFlow's GPUs | memory growth | GPU MiB (max) | status | val acc | s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for t in found["trials"]:
        inside = t["inside"]
        lines.append(f"| {t['trial']} | {t['pid']} | {_fmt(t['cuda_visible_devices'])} / "
                     f"{_fmt(inside['CUDA_VISIBLE_DEVICES'])} | {_fmt(inside['TF_FORCE_GPU_ALLOW_GROWTH'])} "
                     f"| {len(inside['gpus'] or [])} | {_fmt(inside['memory_growth'])} | {_fmt(t['gpu_mib'])} "
                     f"| {t['status']} | {_fmt(t['score'], '.3f')} | {_fmt(t['seconds'])} |")
    lines.append(f"\nthe master's GPU memory: {_fmt(found['master_gpu_mib'])} MiB; each GPU's most used: "
                 f"{found['gpu_mib_max'] or '–'} MiB")
    if found["stderr_tail"]:
        lines.append("\nthe master said: " + " / ".join(found["stderr_tail"]))
    return found, "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="a small smoke run of every part on the CPU")
    parser.add_argument("--out", default=None, help="where the results go when $OUT is not set")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for all parts (default 7 minutes)")
    parser.add_argument("--only", action="append", choices=["gpu_workers", "mixed_precision", "mirrored"],
                        help="run this part only (repeatable); default: all three")
    args = parser.parse_args(argv)
    deadline = _Deadline(args.budget)
    out = Path(os.environ.get("OUT") or args.out or tempfile.mkdtemp(prefix="gpu_check-"))
    out.mkdir(parents=True, exist_ok=True)
    gpus = visible_gpus()
    header = [f"# GPU check ({time.strftime('%Y-%m-%d', time.gmtime())}, {platform.node()}, "
              f"{'CPU smoke run' if args.cpu else f'{len(gpus.ids)} GPU(s) {list(gpus.ids)} from {gpus.source}'})\n"]
    smi = shutil.which("nvidia-smi")
    if smi and not args.cpu:
        code, stdout, _ = _child([smi, "--query-gpu=index,name,memory.total,driver_version",
                                  "--format=csv,noheader"], timeout=10)
        header.append("GPUs: " + "; ".join(line.strip() for line in stdout.splitlines()) + "\n")
    results: dict = {"gpus": list(gpus.ids), "source": gpus.source, "cpu_smoke": args.cpu}
    if not gpus.ids and not args.cpu:
        text = "\n".join(header) + ("\nNo GPU visible (CUDA_VISIBLE_DEVICES unset or empty, no working nvidia-smi): "
                                    "nothing to check here. `--cpu` runs a smoke run of every part on the CPU.\n")
        results["skipped"] = "no GPU"
    else:
        with tempfile.TemporaryDirectory(prefix="gpu_check-work-") as work_dir:
            work = Path(work_dir)
            parts = []
            # The workers first: what issue 16 is about, and the part a short budget must not lose.
            steps = (("gpu_workers", lambda: gpu_workers(work, deadline, args.cpu, len(gpus.ids))),
                     ("mixed_precision", lambda: mixed_precision(work, deadline, args.cpu)),
                     ("mirrored", lambda: mirrored(work, deadline, args.cpu)))
            for name, part in (step for step in steps if not args.only or step[0] in args.only):
                results[name], text = part()
                parts.append(f"## {name}\n\n{text}")
                print(text, file=sys.stderr, flush=True)  # as it goes: a killed check still shows its parts
        text = "\n".join(header + parts)
        results["seconds"] = round(args.budget - deadline.left(), 1)
        text += f"\nall parts: {results['seconds']:.0f} s\n"
    print(text)
    (out / "gpu_check.md").write_text(text)
    (out / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"results: {out / 'gpu_check.md'}, {out / 'gpu_check.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
