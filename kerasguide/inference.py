"""Inference from a run directory: its checkpoint with the preprocessing it was trained with.

The preprocessing statistics were fitted on the run's training split and saved
as `preprocess.npz` (recipe A2); a `Predictor` applies exactly that transform
to raw inputs before the model sees them.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np

import kerasguide.initializers  # noqa: F401  (registers custom objects for loading)
import kerasguide.layers  # noqa: F401
import kerasguide.losses  # noqa: F401
from kerasguide.config import ConfigError
from kerasguide.data import Preprocessor

__all__ = ["Predictor", "load_predictor"]


class Predictor:
    """A trained model and its fitted preprocessing, ready for raw inputs.

    Args:
        model: The trained Keras model.
        preprocessor: The `Preprocessor` fitted on the training split.

    Example:

    ```python
    predictor = kerasguide.load_predictor("runs/20261123-...-digits-mlp-0a5c59")
    probabilities = predictor.predict(raw_images)
    labels = predictor.predict_classes(raw_images)
    ```
    """

    def __init__(self, model, preprocessor: Preprocessor):
        self.model = model
        self.preprocessor = preprocessor

    def transform(self, x: np.ndarray) -> np.ndarray:
        return self.preprocessor.transform(np.asarray(x))

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (or scores) for raw inputs."""
        return self.model.predict(self.transform(x), batch_size=batch_size, verbose=0)

    def predict_classes(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict(x), axis=-1)


def load_predictor(run_dir: str | os.PathLike[str], which: str = "best") -> Predictor:
    """Load a run's `best` (or `last`) checkpoint with its preprocessing."""
    if which not in ("best", "last"):
        raise ValueError(f"Argument `which` must be 'best' or 'last'. Received: which={which!r}")
    path = Path(run_dir)
    checkpoints = path / "checkpoints"
    if which == "best":
        found = sorted(checkpoints.glob("best-*.keras"))
        checkpoint = found[-1] if found else checkpoints / "last.keras"
    else:
        checkpoint = checkpoints / "last.keras"
    if not checkpoint.exists():
        raise ConfigError(f"{path}: no {which} checkpoint in {checkpoints}")
    if not (path / "preprocess.npz").exists():
        raise ConfigError(f"{path}: no preprocess.npz; is this a kerasguide run directory?")
    return Predictor(keras.models.load_model(checkpoint), Preprocessor.load(path / "preprocess.npz"))
