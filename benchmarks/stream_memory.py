"""Memory bar for streamed image folders: resident memory flat (<= 1.2x) from 2,000 to 20,000 images.

Writes one folder of 20,000 generated PNG images (10 classes, 32x32 RGB) and a
2,000-image folder of the same kind, then measures the peak resident memory
(ru_maxrss) of one child process per (folder, way of reading it), each child
training one epoch of the same small CNN:

- `kerasguide run` with `data.source = "images:DIR"` (streamed: the whole
  run, checks, monitors, checkpoints and report included);
- plain Keras: `keras.utils.image_dataset_from_directory` + `model.fit`, the
  streamed pipeline a Keras user writes by hand (the peer);
- NumPy in memory: every image decoded into one float32 array, then
  `model.fit` (what `images:` did before it was streamed).

The children of each pair are interleaved (2,000 then 20,000, repeated), so
that a noisy machine affects both sizes alike; the table gives the ratio of
the peaks, 20,000 over 2,000.

Usage: python benchmarks/stream_memory.py [--images 20000] [--small 2000] [--repeats 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE = 32
CLASSES = 10


def write_folder(root: Path, count: int, seed: int = 0) -> Path:
    """`count` PNGs in CLASSES subfolders: a class-coloured square at a class-dependent place, over noise."""
    from PIL import Image

    if root.exists() and len(list(root.rglob("*.png"))) == count:
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for c in range(CLASSES):
        (root / f"class{c}").mkdir(parents=True)
    for i in range(count):
        c = i % CLASSES
        image = rng.integers(0, 90, (SIZE, SIZE, 3)).astype(np.uint8)
        row, col = divmod(c, 4)
        image[row * 8:row * 8 + 10, col * 8:col * 8 + 10, c % 3] = 240
        Image.fromarray(image).save(root / f"class{c}" / f"{i:05d}.png", compress_level=1)
    return root


CHILD = r'''
import json, os, resource, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
way, folder, out = sys.argv[1], sys.argv[2], sys.argv[3]
started = time.perf_counter()
import numpy as np
import keras

def cnn():
    return keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255.0),
                             keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.MaxPooling2D(),
                             keras.layers.Flatten(), keras.layers.Dense(10)])

if way == "kerasguide":
    from kerasguide.config import config_from_dict
    from kerasguide.spine import run
    config = config_from_dict({
        "name": "stream-memory", "data": {"source": f"images:{folder}", "image_size": [32, 32]},
        "model": {"kind": "cnn", "filters": [16], "hidden": [32]}, "train": {"epochs": 1, "batch_size": 64},
        "checks": {"stop_on_failure": False}})  # memory is measured here, not the checks
    result = run(config, out=out, verbose=0)
    assert result.status == "completed", result.error
elif way == "keras":
    train, val = keras.utils.image_dataset_from_directory(folder, validation_split=0.2, subset="both", seed=0,
                                                          image_size=(32, 32), batch_size=64, verbose=False)
    model = cnn()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(train, validation_data=val, epochs=1, verbose=0)
else:
    ds = keras.utils.image_dataset_from_directory(folder, image_size=(32, 32), batch_size=None, shuffle=False,
                                                  verbose=False)
    xs, ys = zip(*ds.as_numpy_iterator())
    x, y = np.stack(xs).astype("float32"), np.array(ys)
    model = cnn()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, validation_split=0.2, batch_size=64, epochs=1, verbose=0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
print(json.dumps({"peak_mib": peak, "seconds": time.perf_counter() - started}))
'''


def measure(way: str, folder: Path, out: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, way, str(folder), str(out)], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if proc.returncode != 0:
        raise SystemExit(f"{way} on {folder} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--ways", nargs="+", default=["kerasguide", "keras", "numpy"])
    parser.add_argument("--keep", help="a folder to keep the generated images in (reused when complete)")
    args = parser.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="stream-memory-"))
    started = time.perf_counter()
    folders = {n: write_folder(base / f"images-{n}", n) for n in (args.small, args.images)}
    print(f"images written in {time.perf_counter() - started:.0f} s under {base}; nproc {os.cpu_count()}", flush=True)
    peaks: dict[tuple[str, int], list[float]] = {}
    seconds: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for way in args.ways:
            for n, folder in folders.items():
                with tempfile.TemporaryDirectory() as out:
                    found = measure(way, folder, Path(out))
                peaks.setdefault((way, n), []).append(found["peak_mib"])
                seconds.setdefault((way, n), []).append(found["seconds"])
                print(f"{way:10s} {n:6d} images: peak {found['peak_mib']:7.0f} MiB, {found['seconds']:5.1f} s",
                      flush=True)
    print(f"\n| way of reading | peak RSS, {args.small:,} images (MiB) | peak RSS, {args.images:,} images (MiB) | "
          "ratio | seconds (small / large) |")
    print("|---|---|---|---|---|")
    for way in args.ways:
        small, large = (statistics.median(peaks[(way, n)]) for n in (args.small, args.images))
        s_small, s_large = (statistics.median(seconds[(way, n)]) for n in (args.small, args.images))
        print(f"| {way} | {small:.0f} | {large:.0f} | **{large / small:.2f}x** | {s_small:.0f} / {s_large:.0f} |")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
