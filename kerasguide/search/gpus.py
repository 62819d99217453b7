"""Which GPUs each search worker gets: the machine's GPUs found without TensorFlow, shared out by `gpus_per_trial`.

A TensorFlow process takes every GPU it sees, and all of each GPU's memory,
so two worker processes on one card run out of memory. The master finds the
GPUs without importing TensorFlow (it would grab them too):
`CUDA_VISIBLE_DEVICES` when it is set, else `nvidia-smi`, else none; each
worker then sees only its own through `CUDA_VISIBLE_DEVICES`, with
`TF_FORCE_GPU_ALLOW_GROWTH=true` so that a shared GPU is not taken whole.

- `gpus_per_trial = 1` (or 2, 3...): each worker its own GPU (or set of them).
- `gpus_per_trial = 0.5` (a fraction): two workers share each GPU (0.25: four).
- `gpus_per_trial = 0`: trials on the CPU; workers get `CUDA_VISIBLE_DEVICES=-1`
  (`-1` rather than an empty value, which some launchers read as "unset"),
  as Ray gives its GPU-less actors no GPU.

More workers than the GPUs hold run as many workers as fit, with a warning
(Ray does the same: an actor without room waits): a search gives the same
trials on fewer workers, only later, and a config written for a bigger
machine still runs on a smaller one. Not even one worker's GPUs is a
`ConfigError` (exit 2).

No TensorFlow here: the master imports this before any worker starts.

Example:

```python
gpus = visible_gpus()                  # e.g. Gpus(ids=("0", "1"), source="nvidia-smi")
for i, devices in enumerate(assign_gpus(gpus.ids, per_trial=1, workers=2)):
    env = worker_env(os.environ, devices, gpus.source)   # worker i: CUDA_VISIBLE_DEVICES = "0", then "1"
```
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kerasguide._logging import get_logger
from kerasguide.errors import ConfigError

__all__ = ["Gpus", "visible_gpus", "assign_gpus", "worker_env", "NO_GPU"]

logger = get_logger()

NO_GPU = "-1"  # CUDA_VISIBLE_DEVICES of a worker that must see no GPU
_NVIDIA_SMI_TIMEOUT = 10.0  # seconds: a wedged driver must not hang the search's start


@dataclass(frozen=True)
class Gpus:
    """The GPUs this process may use: their CUDA ids (or UUIDs) and where they were read."""

    ids: tuple[str, ...]
    source: str  # "CUDA_VISIBLE_DEVICES", "nvidia-smi" or "none"


def _from_cuda_visible_devices(value: str) -> tuple[str, ...]:
    """The devices a `CUDA_VISIBLE_DEVICES` value names; CUDA stops at the first negative id ("-1": none)."""
    ids = []
    for part in value.split(","):
        part = part.strip()
        if not part or (part.lstrip("-").isdigit() and int(part) < 0):
            break
        ids.append(part)
    return tuple(ids)


def visible_gpus(timeout: float = _NVIDIA_SMI_TIMEOUT) -> Gpus:
    """The GPUs a worker could be given, read without TensorFlow.

    `CUDA_VISIBLE_DEVICES` when it is set (its ids, UUIDs kept as they are;
    empty or `-1`: none), else `nvidia-smi --query-gpu=index` (run with a
    `timeout`, no shell), else none (no `nvidia-smi`, or it failed).

    Args:
        timeout: Seconds `nvidia-smi` may take. Defaults to `10`.
    """
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is not None:
        return Gpus(_from_cuda_visible_devices(value), "CUDA_VISIBLE_DEVICES")
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return Gpus((), "none")
    try:
        done = subprocess.run([smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        logger.debug("nvidia-smi: %s", error)
        return Gpus((), "none")
    if done.returncode != 0:  # installed without a working driver (a CPU node of a GPU image)
        logger.debug("nvidia-smi exit %d: %s", done.returncode, done.stderr.strip()[:200])
        return Gpus((), "none")
    ids = tuple(line.strip() for line in done.stdout.splitlines() if line.strip().isdigit())
    return Gpus(ids, "nvidia-smi" if ids else "none")


def assign_gpus(gpus: Sequence[str], per_trial: float, workers: int) -> list[str]:
    """Each worker's `CUDA_VISIBLE_DEVICES`: one entry per worker that fits, at most `workers`.

    Whole numbers give each worker its own GPUs (`gpus[i*k:(i+1)*k]`); a
    fraction `f` puts `floor(1/f)` workers on each GPU, spread round-robin
    (two GPUs at 0.5 with two workers: one GPU each); 0 gives every worker
    `-1` (no GPU). A shorter list than `workers` means the rest do not fit.

    Args:
        gpus: The GPU ids (`visible_gpus().ids`).
        per_trial: `search.gpus_per_trial`.
        workers: `search.workers` (>= 1).

    Raises:
        ConfigError: `per_trial` above 1 and not whole, or not even one
            worker's GPUs.

    Example:

    ```python
    assign_gpus(["0", "1", "2", "3"], per_trial=2, workers=2)   # ["0,1", "2,3"]
    assign_gpus(["0"], per_trial=0.5, workers=2)                # ["0", "0"]
    ```
    """
    if workers < 1:
        raise ValueError(f"Argument `workers` must be >= 1. Received: workers={workers}")
    if not per_trial >= 0 or math.isinf(per_trial):
        raise ConfigError(f"`search.gpus_per_trial` must be >= 0; got {per_trial}")
    if per_trial == 0:
        return [NO_GPU] * workers
    if per_trial > 1 and per_trial != int(per_trial):
        raise ConfigError(f"`search.gpus_per_trial` = {per_trial:g}: above 1 it must be a whole number of GPUs "
                          "(a fraction below 1 shares a GPU: 0.5, 0.25)")
    if not gpus:
        raise ConfigError(f"`search.gpus_per_trial` = {per_trial:g} but this machine shows no GPU "
                          "(CUDA_VISIBLE_DEVICES, nvidia-smi): set it to 0 to run the trials on the CPU")
    if per_trial >= 1:
        k = int(per_trial)
        fit = len(gpus) // k
        if fit == 0:
            raise ConfigError(f"`search.gpus_per_trial` = {k} but this machine shows {len(gpus)} GPU"
                              f"{'' if len(gpus) == 1 else 's'} ({', '.join(gpus)}): at most {len(gpus)}")
        return [",".join(gpus[i * k:(i + 1) * k]) for i in range(min(workers, fit))]
    share = math.floor(1 / per_trial + 1e-9)  # 0.3 -> 3 a GPU, as Ray packs fractions (0.9 of one)
    return [gpus[i % len(gpus)] for i in range(min(workers, share * len(gpus)))]


def worker_env(base: Mapping[str, str], devices: str, source: str) -> dict[str, str]:
    """The environment of a worker given `devices` (an `assign_gpus` entry).

    `CUDA_VISIBLE_DEVICES=devices`, `TF_FORCE_GPU_ALLOW_GROWTH=true` (its
    TensorFlow takes GPU memory as it needs it, even before kerasguide's
    code runs), and `CUDA_DEVICE_ORDER=PCI_BUS_ID` when the ids came from
    `nvidia-smi`, which numbers GPUs in PCI order (CUDA's own default is
    fastest first: on a mixed machine the numbers would name other cards).
    """
    env = dict(base, CUDA_VISIBLE_DEVICES=devices, TF_FORCE_GPU_ALLOW_GROWTH="true")
    if source == "nvidia-smi":
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return env
