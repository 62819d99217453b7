"""`kerasguide.callbacks.BestCheckpoint`: the best weights it holds for the run's evaluation are the ones it wrote."""

from __future__ import annotations

import keras
import numpy as np

from kerasguide.callbacks import BestCheckpoint


def _fit_begun(tmp_path, monitor: str) -> tuple[keras.Model, BestCheckpoint]:
    """A tiny compiled model and its BestCheckpoint, as at the start of a fit."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    checkpoint = BestCheckpoint(tmp_path, monitor=monitor)
    checkpoint.set_model(model)
    checkpoint.on_train_begin()
    return model, checkpoint


def test_the_held_best_weights_are_the_best_epochs_and_its_files(tmp_path):
    model, checkpoint = _fit_begun(tmp_path, "val_accuracy")
    for epoch, score in enumerate([0.5, 0.9, 0.7]):  # the second epoch is the best, not the last
        model.set_weights([np.full_like(w, epoch + 1) for w in model.get_weights()])
        checkpoint.on_epoch_end(epoch, {"val_accuracy": score})
    checkpoint.on_train_end()
    assert checkpoint.best_epoch == 2 and checkpoint.best_path.name.startswith("best-epoch=002")
    assert all(np.all(w == 2) for w in checkpoint.best_weights)
    saved = keras.models.load_model(checkpoint.best_path)
    for on_disk, held in zip(saved.get_weights(), checkpoint.best_weights, strict=True):
        np.testing.assert_array_equal(on_disk, held)
    assert all(np.all(w == 3) for w in model.get_weights())  # the model keeps its last weights


def test_a_new_fit_holds_nothing_until_it_improves(tmp_path):
    _, checkpoint = _fit_begun(tmp_path, "val_loss")
    checkpoint.on_epoch_end(0, {"val_loss": 1.0})
    checkpoint.on_train_end()
    checkpoint.resume_from(0.5, 1, checkpoint.best_path)  # a resumed run: its best is on disk, from before
    checkpoint.on_train_begin()
    checkpoint.on_epoch_end(1, {"val_loss": 2.0})  # worse: the file stays the best, nothing is held
    checkpoint.on_train_end()
    assert checkpoint.best_weights is None and checkpoint.best_epoch == 1
