"""Quality bar of the bundled default: digits reaches >= 0.97 validation accuracy.

(The time limit, 60 s of training, and the mnist1d preset's >= 0.90 are
measured in benchmarks/accuracy.py, not here: tests are never timed.)
"""

from __future__ import annotations

from kerasguide.config import load_config
from kerasguide.presets import preset_path
from kerasguide.spine import run


def test_digits_default_reaches_097(tmp_path):
    cfg = load_config(preset_path("digits"))
    result = run(cfg, out=tmp_path, verbose=0)
    assert result.status == "completed", result.error
    assert result.final_metrics["val_accuracy"] >= 0.97
