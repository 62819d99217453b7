"""Recipe J35: the running (exponential) average of the weights is what is validated, saved and kept.

Each test that guards the recipe also runs with the bug planted (no
`EMAWeights`, or Keras' in-place `SwapEMAWeights` with an early stop) and
shows the check fails there.
"""

from __future__ import annotations

import numpy as np
import pytest

from kerasguide._logging import import_tensorflow

import_tensorflow()

import keras  # noqa: E402

from kerasguide.averaging import EMAWeights, WeightAveraging, averaging_callbacks, ema_variables  # noqa: E402
from kerasguide.config import DataConfig, RunConfig  # noqa: E402
from kerasguide.data import load_dataset  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(source="digits"), 0)


def _model(digits, use_ema=True, lr=0.05):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(digits.input_shape),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(
        optimizer=keras.optimizers.SGD(lr, momentum=0.9, use_ema=use_ema, ema_momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class _Probe(keras.callbacks.Callback):
    """Records the raw weights and the optimizer's EMA after every training batch."""

    def on_train_batch_end(self, batch, logs=None):
        self.raw = [np.array(v) for v in self.model.trainable_variables]
        self.ema = [np.array(avg) for _, avg in ema_variables(self.model)]


class _StopAfter(keras.callbacks.Callback):
    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.epochs:
            self.model.stop_training = True


def _fit(model, digits, callbacks, epochs=3):
    probe = _Probe()
    history = model.fit(
        digits.x_train, digits.y_train, batch_size=128, epochs=epochs,
        validation_data=(digits.x_val, digits.y_val), callbacks=[probe, *callbacks], verbose=0,
    )
    return history.history, probe


def _final(model):
    return [np.array(v) for v in model.trainable_variables]


def _same(a, b, atol=1e-6):
    return all(np.allclose(x, y, atol=atol) for x, y in zip(a, b, strict=True))


def _validated_weights_are_kept(model, digits, history) -> bool:
    """The last epoch's val_loss is the loss of the weights the model ends with."""
    loss = model.evaluate(digits.x_val, digits.y_val, batch_size=128, verbose=0)[0]
    return abs(loss - history["val_loss"][-1]) < 1e-5


def test_ema_weights_differ_from_raw_and_are_the_ones_validated_and_kept(digits):
    model = _model(digits)
    history, probe = _fit(model, digits, [EMAWeights()])
    assert not _same(probe.raw, probe.ema, atol=1e-3)  # there is something to average
    assert _same(_final(model), probe.ema)  # the model keeps the EMA
    assert _validated_weights_are_kept(model, digits, history)
    # The raw weights validate differently: the logged val_loss was not theirs.
    model.set_weights(probe.raw)
    raw_loss = model.evaluate(digits.x_val, digits.y_val, batch_size=128, verbose=0)[0]
    assert abs(raw_loss - history["val_loss"][-1]) > 1e-4


def test_planted_bug_without_the_callback_the_raw_weights_are_validated(digits):
    model = _model(digits)
    history, probe = _fit(model, digits, [])
    assert _same(_final(model), probe.ema)  # Keras still ends on the EMA ...
    assert not _validated_weights_are_kept(model, digits, history)  # ... but validated the raw ones


def test_early_stop_keeps_the_ema_where_keras_swap_loses_it(digits):
    # Planted bug: Keras' in-place swap, training stopped before the last epoch.
    model = _model(digits)
    history, probe = _fit(model, digits, [keras.callbacks.SwapEMAWeights(swap_on_epoch=True), _StopAfter(1)])
    assert len(history["loss"]) == 1
    assert _same(_final(model), probe.raw) and not _same(_final(model), probe.ema, atol=1e-3)

    model = _model(digits)
    history, probe = _fit(model, digits, [EMAWeights(), _StopAfter(1)])
    assert len(history["loss"]) == 1
    assert _same(_final(model), probe.ema)
    assert _validated_weights_are_kept(model, digits, history)


def test_between_epochs_callbacks_after_it_see_the_ema_and_training_resumes_from_raw(digits):
    seen = {}

    class Look(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.setdefault("epoch_end", [np.array(v) for v in self.model.trainable_variables])
            seen.setdefault("ema", [np.array(a) for _, a in ema_variables(self.model)])

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                seen["begin"] = [np.array(v) for v in self.model.trainable_variables]

    class Raw(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                seen["raw"] = [np.array(v) for v in self.model.trainable_variables]

    model = _model(digits)
    _fit(model, digits, [Raw(), EMAWeights(), Look()], epochs=2)
    assert _same(seen["epoch_end"], seen["ema"])
    assert _same(seen["begin"], seen["raw"])  # the next epoch trains the raw weights


def test_ema_weights_needs_use_ema(digits):
    model = _model(digits, use_ema=False)
    with pytest.raises(ValueError, match="use_ema=True"):
        model.fit(digits.x_train[:64], digits.y_train[:64], epochs=1, verbose=0, callbacks=[EMAWeights()])


def test_weight_averaging_is_the_mean_of_the_last_epochs(digits):
    ends = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(self.model.get_weights())

    model = _model(digits, use_ema=False)
    avg = WeightAveraging(epochs=2)
    model.fit(digits.x_train, digits.y_train, batch_size=128, epochs=4, verbose=0, callbacks=[Record(), avg])
    expected = [(a + b) / 2 for a, b in zip(ends[2], ends[3], strict=True)]
    assert avg.averaged == 2
    assert _same(model.get_weights(), expected)
    assert not _same(model.get_weights(), ends[3], atol=1e-4)
    # one instance, reused: state is reset in on_train_begin
    model.fit(digits.x_train, digits.y_train, batch_size=128, epochs=1, verbose=0, callbacks=[avg])
    assert avg.averaged == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_weight_averaging_validates_epochs(bad):
    with pytest.raises(ValueError, match=f"Received: epochs={bad!r}"):
        WeightAveraging(epochs=bad)


def test_averaging_callbacks_from_the_config():
    cfg = RunConfig()
    assert averaging_callbacks(cfg) == []
    cfg.optimizer.ema = True
    cfg.ensemble.average_epochs = 3
    callbacks = averaging_callbacks(cfg)
    assert [type(c) for c in callbacks] == [EMAWeights, WeightAveraging]
    assert callbacks[1].epochs == 3


def test_pipeline_with_optimizer_ema_validates_checkpoints_and_keeps_the_ema(tiny_config, tmp_path, monkeypatch):
    from kerasguide.spine import run
    from kerasguide.spine.stages import averaging as averaging_stage

    tiny_config.optimizer.ema = True
    tiny_config.optimizer.ema_momentum = 0.9
    tiny_config.train.epochs = 3

    def final_matches_last_epoch(result) -> bool:
        # The weights the run ends with (last.keras) score what the last epoch's validation said.
        rows = result.run_dir.read_metrics()
        model = keras.models.load_model(result.path / "checkpoints" / "last.keras")
        ds = load_dataset(tiny_config.data, 0)
        val_loss = model.evaluate(ds.x_val, ds.y_val, verbose=0, return_dict=True)["loss"]
        return abs(val_loss - rows[-1]["val_loss"]) < 1e-4

    result = run(tiny_config, out=tmp_path / "ema", verbose=0)
    assert result.status == "completed"
    assert final_matches_last_epoch(result)
    # The final metrics are the best checkpoint's (its epoch's validation row).
    evaluated = result.run_dir.read_run()["evaluated"]
    assert evaluated["weights"] == "best"
    rows = result.run_dir.read_metrics()
    assert result.final_metrics["val_loss"] == pytest.approx(rows[evaluated["epoch"] - 1]["val_loss"], abs=1e-4)
    # The best checkpoint's score (in its name) is the score of the weights it holds.
    best = next((result.path / "checkpoints").glob("best-*.keras"))
    rows = result.run_dir.read_metrics()
    epoch = int(best.name.split("epoch=")[1][:3])
    ds = load_dataset(tiny_config.data, 0)
    model = keras.models.load_model(best)
    probs = model.predict(ds.x_val, verbose=0)
    assert np.mean(probs.argmax(-1) == ds.y_val) == pytest.approx(rows[epoch - 1]["val_accuracy"], abs=1e-6)

    # Planted bug: the pipeline without the averaging callbacks validates raw weights.
    monkeypatch.setattr(averaging_stage, "averaging_callbacks", lambda config: [])
    result = run(tiny_config, out=tmp_path / "no-ema", verbose=0)
    assert result.status == "completed"
    assert not final_matches_last_epoch(result)
