"""`strategy = "multi_worker"` on two real worker processes (TF_CONFIG on 127.0.0.1): only the chief writes.

Every worker runs the same stages (their collective ops pair up); the chief (worker 0 of a cluster without
a "chief" task, TensorFlow's rule) writes the run directory, its checkpoints and events; the other keeps
its files in a scratch folder that goes when it ends (the pattern Keras documents for multi-worker saves).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from kerasguide.config import save_config
from tests.conftest import ROOT, tiny_digits


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def test_two_workers_on_localhost_train_together_and_only_the_chief_writes(tmp_path):
    cfg = tiny_digits("mw", epochs=2)  # with the monitors: their probes run on every worker alike
    cfg.train.strategy = "multi_worker"
    save_config(cfg, tmp_path / "mw.toml")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    out = tmp_path / "runs"  # one folder for both, as a cluster's shared file system would be
    procs = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        env = dict(os.environ, TMPDIR=str(scratch), PYTHONUNBUFFERED="1",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "kerasguide.cli", "run", str(tmp_path / "mw.toml"), "--out", str(out), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env))
    results = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=400)
            results.append((proc.returncode, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]

    (run_dir,) = out.iterdir()  # one run directory, the chief's
    record = json.loads((run_dir / "run.json").read_text())
    assert record["multi_worker"] == {"task": "worker", "index": 0, "chief": True, "workers": 2}
    assert record["status"] == "completed" and record["epochs_done"] == 2
    assert record["final_metrics"]["val_accuracy"] > 0.3
    assert list((run_dir / "checkpoints").glob("best-*.keras")) and (run_dir / "checkpoints" / "last.keras").exists()
    assert list((run_dir / "tb" / "train").glob("events.out.tfevents.*")) and (run_dir / "report.md").exists()
    # The other worker's files went with it: nothing of it left in its temp folder, nothing beside the run.
    assert not list((tmp_path / "tmp1").glob("kerasguide-worker-*"))
    assert str(run_dir) in results[0][1] and str(out) not in results[1][1]
