"""kerasguide: the training recipes practitioners follow, for Keras 3.

Importing `kerasguide` is cheap: the names that need TensorFlow are loaded
on first use, so the desktop app can import `kerasguide.config` and
`kerasguide.rundir` without TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it (imported lazily, PEP 562).
_LAZY = {
    "RunConfig": "kerasguide.config",
    "load_config": "kerasguide.config",
    "save_config": "kerasguide.config",
    "ConfigError": "kerasguide.config",
    "RunDir": "kerasguide.rundir",
    "list_runs": "kerasguide.rundir",
    "read_run": "kerasguide.rundir",
    "Preprocessor": "kerasguide.data",
    "load_dataset": "kerasguide.data",
    "Dataset": "kerasguide.data",
    "build_model": "kerasguide.models",
    "SparseInitializer": "kerasguide.initializers",
    "MulticlassHinge": "kerasguide.losses",
    "run": "kerasguide.spine",
    "resume": "kerasguide.spine",
    "RunResult": "kerasguide.spine",
    "BestCheckpoint": "kerasguide.callbacks",
    "DropConnectDense": "kerasguide.layers",
    "Predictor": "kerasguide.inference",
    "load_predictor": "kerasguide.inference",
    "predict_to_csv": "kerasguide.inference",
    "export_model": "kerasguide.export",
    "set_verbosity": "kerasguide._logging",
    "CheckResult": "kerasguide.checks",
    "run_checks": "kerasguide.checks",
    "check_initial_loss": "kerasguide.checks",
    "check_regularization": "kerasguide.checks",
    "check_overfit": "kerasguide.checks",
    "check_gradients": "kerasguide.checks",
    "check_initialization": "kerasguide.checks",
    "check_data": "kerasguide.checks",
    "tune": "kerasguide.search.runner",
    "SearchResult": "kerasguide.search.runner",
    "SearchTuner": "kerasguide.search.tuner",
    "LRFinder": "kerasguide.lr_finder",
    "LRFinderResult": "kerasguide.lr_finder",
    "OneCycle": "kerasguide.schedules",
    "CyclicalLR": "kerasguide.schedules",
    "StepDecay": "kerasguide.schedules",
    "LinearWarmup": "kerasguide.schedules",
    "CycleMomentum": "kerasguide.schedules",
    "schedule_from_config": "kerasguide.schedules",
    "Ensemble": "kerasguide.ensemble",
    "EnsembleResult": "kerasguide.ensemble",
    "SnapshotCheckpoints": "kerasguide.averaging",
    "run_ensemble": "kerasguide.ensemble",
    "EMAWeights": "kerasguide.averaging",
    "WeightAveraging": "kerasguide.averaging",
    "Distiller": "kerasguide.distill",
    "distillation_loss": "kerasguide.distill",
    "log_to_mlflow": "kerasguide.tracking",
    "UpdateRatioMonitor": "kerasguide.monitors",
    "LossMonitor": "kerasguide.monitors",
    "ProbeMonitor": "kerasguide.monitors",
    "FirstLayerImages": "kerasguide.monitors",
    "DivergenceGuard": "kerasguide.monitors",
    "default_monitors": "kerasguide.monitors",
    "Finding": "kerasguide.diagnosis",
    "Babysitter": "kerasguide.babysitter",
    "diagnose": "kerasguide.diagnosis",
    "diagnose_run": "kerasguide.diagnosis",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kerasguide' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
