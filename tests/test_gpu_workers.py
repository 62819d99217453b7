"""GPU-aware search workers (issue 16): the GPUs found without TensorFlow, shared out, and what each worker sees."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from kerasguide.config import ConfigError, RunConfig, SearchConfig
from kerasguide.search.gpus import NO_GPU, Gpus, assign_gpus, visible_gpus, worker_env


# ------------------------------------------------------------------ sharing out
@pytest.mark.parametrize(
    "gpus, per_trial, workers, expected",
    [
        (["0", "1"], 1, 2, ["0", "1"]),  # one GPU each
        (["0", "1", "2", "3"], 2, 2, ["0,1", "2,3"]),  # a set of two each
        (["0"], 0.5, 2, ["0", "0"]),  # two workers share the one GPU
        (["0", "1"], 0.5, 2, ["0", "1"]),  # room to share, but spread first
        (["0", "1"], 0.5, 4, ["0", "1", "0", "1"]),
        (["0"], 0.3, 5, ["0", "0", "0"]),  # 0.3: three a GPU (0.9 of it), as Ray packs fractions
        (["0", "1"], 1, 3, ["0", "1"]),  # too many workers: as many as fit
        (["0", "1", "2"], 2, 2, ["0,1"]),
        (["GPU-aa", "GPU-bb"], 1, 1, ["GPU-aa"]),  # UUIDs pass through
        (["0", "1"], 0, 3, [NO_GPU] * 3),  # none per trial: every worker told so
        ([], 0, 2, [NO_GPU] * 2),
    ],
)
def test_assign_gpus(gpus, per_trial, workers, expected):
    assert assign_gpus(gpus, per_trial, workers) == expected


@pytest.mark.parametrize(
    "gpus, per_trial, needle",
    [
        ([], 1, "shows no GPU"),
        ([], 0.5, "set it to 0"),
        (["0"], 2, "at most 1"),
        (["0", "1"], 1.5, "whole number"),
    ],
)
def test_assign_gpus_with_no_room_is_one_config_error(gpus, per_trial, needle):
    with pytest.raises(ConfigError, match=needle) as caught:
        assign_gpus(gpus, per_trial, 2)
    assert "\n" not in str(caught.value) and "gpus_per_trial" in str(caught.value)


def test_worker_env():
    env = worker_env({"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1"}, "1", "CUDA_VISIBLE_DEVICES")
    assert env == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "1", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    # nvidia-smi numbers GPUs in PCI order; CUDA's default order is fastest first.
    assert worker_env({}, "0", "nvidia-smi")["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


# ------------------------------------------------------------------ finding the GPUs, no TensorFlow
@pytest.mark.parametrize(
    "value, ids",
    [("0,1", ("0", "1")), (" 2 , 3 ", ("2", "3")), ("", ()), ("-1", ()), ("0,-1,2", ("0",)),
     ("GPU-5e1f,MIG-1", ("GPU-5e1f", "MIG-1"))],
)
def test_visible_gpus_reads_cuda_visible_devices_first(value, ids, monkeypatch, tmp_path):
    _fake_nvidia_smi(tmp_path, monkeypatch, 'echo 0; echo 1; echo 2; echo 3')  # not asked: the variable decides
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert visible_gpus() == Gpus(ids, "CUDA_VISIBLE_DEVICES")


def _fake_nvidia_smi(tmp_path: Path, monkeypatch, body: str) -> None:
    """An `nvidia-smi` on PATH that runs `body` (a shell script), the only one PATH holds."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(folder))


@pytest.mark.parametrize(
    "body, expected",
    [
        ('[ "$1" = "--query-gpu=index" ] && echo 0 && echo 1', Gpus(("0", "1"), "nvidia-smi")),
        ("echo 'NVIDIA-SMI has failed'; exit 9", Gpus((), "none")),  # installed, no driver
        ("exec /bin/sleep 30", Gpus((), "none")),  # a wedged driver: the timeout
    ],
)
def test_visible_gpus_asks_nvidia_smi_when_the_variable_is_unset(body, expected, monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    _fake_nvidia_smi(tmp_path, monkeypatch, body)
    assert visible_gpus(timeout=1.0) == expected


def test_visible_gpus_without_nvidia_smi_is_none(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert visible_gpus() == Gpus((), "none")


# ------------------------------------------------------------------ real worker processes
_BUILDER = '''
import json, os
import keras

def build(input_shape, num_classes):
    # What this worker's process was given, written from inside it.
    keys = ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH", "CUDA_DEVICE_ORDER")
    record = {"pid": os.getpid(), **{k: os.environ.get(k) for k in keys}}
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seen")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{os.getpid()}.json"), "w") as f:
        json.dump(record, f)
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(inputs))
'''


def _search_config(tmp_path: Path, **search) -> RunConfig:
    builder = tmp_path / "env_builder.py"
    builder.write_text(_BUILDER)
    cfg = RunConfig()
    cfg.name = "gpus"
    cfg.model.kind = f"python:{builder}:build"
    cfg.optimizer.learning_rate = 1e-2
    cfg.train.epochs = 1
    cfg.train.batch_size = 256
    cfg.checks.enabled = False
    cfg.monitor.enabled = False
    cfg.search = SearchConfig(algorithm="random", engine="process", stages=[{"epochs": 1, "trials": 2}],
                              widen_on_border=False, **search)
    return cfg


def _seen_by_workers(tmp_path: Path) -> list[dict]:
    seen = [json.loads(p.read_text()) for p in (tmp_path / "seen").glob("*.json")]
    return [s for s in seen if s["pid"] != os.getpid()]  # the master builds the model too (the space)


def _trials(search_dir: Path) -> list[dict]:
    return json.loads((search_dir / "search.json").read_text())["stages"][0]["trials"]


def test_each_worker_process_sees_its_own_gpu(tmp_path, monkeypatch, caplog):
    """Two GPUs, one a trial, three workers asked: two workers, one GPU each, memory growth on."""
    from kerasguide.search import tune

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # the GPUs the master may hand out
    cfg = _search_config(tmp_path, workers=3, gpus_per_trial=1)
    with caplog.at_level("WARNING", logger="kerasguide"):
        result = tune(cfg, out=tmp_path / "out")
    assert result.status == "completed", result.error
    assert "search.workers = 3 but 2 GPUs (0, 1; CUDA_VISIBLE_DEVICES) hold 2" in caplog.text
    seen = _seen_by_workers(tmp_path)
    assert len(seen) == 2 and len({s["pid"] for s in seen}) == 2
    assert sorted(s["CUDA_VISIBLE_DEVICES"] for s in seen) == ["0", "1"]
    assert all(s["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for s in seen)
    assert all(s["CUDA_DEVICE_ORDER"] is None for s in seen)  # the parent's ids, the parent's order
    trials = _trials(result.path)
    assert sorted(t["cuda_visible_devices"] for t in trials) == ["0", "1"]
    assert {t["pid"] for t in trials} == {s["pid"] for s in seen}


def test_workers_share_the_gpu_nvidia_smi_lists(tmp_path, monkeypatch):
    """No CUDA_VISIBLE_DEVICES: the GPUs come from nvidia-smi; at 0.5 a trial, two workers share GPU 0."""
    from kerasguide.search import tune

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    smi = tmp_path / "bin"
    smi.mkdir()
    (smi / "nvidia-smi").write_text("#!/bin/sh\necho 0\n")
    (smi / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{smi}{os.pathsep}{os.environ['PATH']}")
    cfg = _search_config(tmp_path, workers=2, gpus_per_trial=0.5)
    result = tune(cfg, out=tmp_path / "out")
    assert result.status == "completed", result.error
    seen = _seen_by_workers(tmp_path)
    assert len({s["pid"] for s in seen}) == 2
    assert [s["CUDA_VISIBLE_DEVICES"] for s in seen] == ["0", "0"]
    assert all(s["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and s["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" for s in seen)


def test_no_gpus_per_trial_hides_the_gpus_and_too_many_is_exit_2(tmp_path, monkeypatch):
    """gpus_per_trial = 0 on a GPU machine: workers told plainly (-1); a GPU a trial on none: exit 2, one line."""
    from kerasguide.search.tuner import SearchTuner

    cfg = _search_config(tmp_path, workers=2, gpus_per_trial=0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    tuner = SearchTuner.__new__(SearchTuner)  # the GPU plan alone, without keras-tuner's directories
    tuner.base_config, tuner.workers = cfg, 2
    tuner._share_gpus()
    assert tuner.slot_devices == [NO_GPU, NO_GPU] and tuner.workers == 2

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    tuner.base_config = _search_config(tmp_path, workers=2, gpus_per_trial=1)
    with pytest.raises(ConfigError, match="shows no GPU"):
        tuner._share_gpus()


@pytest.mark.timeout(180)
def test_a_ray_worker_without_gpus_sees_none_and_grows_memory(monkeypatch):
    """gpus_per_trial = 0 on Ray: Ray leaves CUDA_VISIBLE_DEVICES as it was, so the actor hides the GPUs itself."""
    pytest.importorskip("ray")
    import time

    from kerasguide.search.ray_workers import RayPool

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # what the actor would inherit from this driver
    pool = RayPool(workers=1, gpus_per_trial=0, object_store_memory=100 * 2**20)
    try:
        deadline = time.monotonic() + 150
        while pool.workers_info()[0] is None:
            assert time.monotonic() < deadline, "the Ray worker did not start"
            pool.poll(timeout=0.5)
        info = pool.workers_info()[0]
    finally:
        pool.shutdown()
    assert info["gpus"] == [] and info["cuda_visible_devices"] == NO_GPU
    assert info["tf_force_gpu_allow_growth"] == "true"


def test_cli_tune_a_gpu_a_trial_without_gpus_is_exit_2_with_one_line(tmp_path):
    from kerasguide.config import save_config
    from tests.conftest import run_cli

    cfg = _search_config(tmp_path, workers=2, gpus_per_trial=1)
    save_config(cfg, tmp_path / "search.toml")
    proc = run_cli("tune", str(tmp_path / "search.toml"), "--out", str(tmp_path / "out"),
                   env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = [x for x in proc.stderr.splitlines() if "error" in x]
    assert "`search.gpus_per_trial` = 1 but this machine shows no GPU" in line and "set it to 0" in line
    assert "Traceback" not in proc.stderr
    assert len(list((tmp_path / "seen").glob("*.json"))) <= 1  # the master's own build of the space: no worker


# ------------------------------------------------------------------ memory growth, in process
class _FakeConfig:
    """tf.config's GPU calls as gpu_memory_growth uses them, for two GPUs (this machine has none)."""

    def __init__(self, started=(), split=()):
        self.gpus = [SimpleNamespace(name=f"/physical_device:GPU:{i}") for i in range(2)]
        self.started, self.split, self.grown = set(started), set(split), []
        self.experimental = SimpleNamespace(set_memory_growth=self._grow)

    def list_physical_devices(self, kind):
        return self.gpus if kind == "GPU" else []

    def get_logical_device_configuration(self, gpu):
        return [object(), object()] if gpu.name in self.split else None

    def _grow(self, gpu, on):
        if gpu.name in self.started:
            raise RuntimeError("Physical devices cannot be modified after being initialized")
        self.grown.append((gpu.name, on))


@pytest.mark.parametrize(
    "started, split, env, expected",
    [
        ((), (), None, ["/physical_device:GPU:0", "/physical_device:GPU:1"]),
        (("/physical_device:GPU:0",), (), None, ["/physical_device:GPU:1"]),  # in use already: left as it is
        ((), ("/physical_device:GPU:1",), None, ["/physical_device:GPU:0"]),  # the caller's memory limit kept
        ((), (), "false", []),  # the user asked for whole GPUs
    ],
)
def test_gpu_memory_growth(started, split, env, expected, monkeypatch):
    from kerasguide import training

    fake = _FakeConfig(started, split)
    monkeypatch.setattr(training.tf, "config", fake)
    if env is None:
        monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    else:
        monkeypatch.setenv("TF_FORCE_GPU_ALLOW_GROWTH", env)
    assert training.gpu_memory_growth() == expected
    assert fake.grown == [(name, True) for name in expected]
