"""The sanity checks, the LR range test and the monitors on every model shape a practitioner brings.

Six small models written the way keras-io examples write them (a Sequential
MLP with one-hot labels, a two-input functional model with dict and list
inputs, a subclassed model, a BatchNorm CNN, an Embedding + LSTM text
model with integer tokens, a regression MLP with MSE / MAE / Huber) and a
two-output model, each on tiny seeded synthetic data made here. Every
public API must pass on the healthy model, or say `skipped` with a reason,
never crash; the new rules (regression expectations, scale-free overfit,
integer inputs in the gradient check) each have a planted bug they catch.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kerasguide._logging import import_tensorflow

import_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasguide import checks  # noqa: E402
from kerasguide.lr_finder import LRFinder  # noqa: E402
from kerasguide.monitors import default_monitors, finish_monitors  # noqa: E402

N = 240  # examples in each synthetic data set
HUBER = "huber"


# ------------------------------------------------------------------ data
def _split(x, y, n_val=60):
    take = lambda a, s: keras.tree.map_structure(lambda v: v[s], a)  # noqa: E731
    return take(x, slice(n_val, None)), take(y, slice(n_val, None)), take(x, slice(None, n_val)), take(
        y, slice(None, n_val)
    )


def tabular(n=N, d=8, classes=3, seed=0):
    """Gaussian features; the label is the argmax of the first `classes` features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    return x, x[:, :classes].argmax(axis=1).astype("int64")


def regression_data(n=N, d=8, seed=0, scale=1.0, shift=0.0):
    """A smooth nonlinear target of Gaussian features, times `scale` plus `shift`."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    t = np.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] + 0.3 * x[:, 3]
    return x, (scale * t + shift).astype("float32").reshape(-1, 1)


def images(n=N, seed=0):
    """8x8x1 images: class 0 a bright top half, 1 a bright left half, 2 noise only."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(scale=0.5, size=(n, 8, 8, 1)).astype("float32")
    x[y == 0, :4] += 1.0
    x[y == 1, :, :4] += 1.0
    return x, y.astype("int64")


def tokens(n=N, vocab=50, length=12, seed=0):
    """Integer token sequences; positive when token 7 occurs (balanced classes)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(8, vocab, size=(n, length)).astype("int32")
    y = (np.arange(n) % 2).astype("float32")
    rng.shuffle(y)
    for i in np.flatnonzero(y):
        x[i, rng.integers(0, length)] = 7
    return x, y.reshape(-1, 1)


# ---------------------------------------------------------------- models
def mlp_onehot(seed=0):
    """1. Sequential MLP, one-hot labels, softmax + categorical_crossentropy."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(8,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x, y = tabular(seed=seed)
    return model, (x, keras.utils.to_categorical(y, 3))


def two_inputs(as_list=False, seed=0):
    """2. Functional model, two named inputs concatenated, integer labels."""
    keras.utils.set_random_seed(seed)
    a = keras.Input(shape=(5,), name="a")
    b = keras.Input(shape=(3,), name="b")
    h = keras.layers.concatenate([keras.layers.Dense(16, activation="relu")(a), b])
    h = keras.layers.Dense(16, activation="relu")(h)
    out = keras.layers.Dense(3, activation="softmax")(h)
    model = keras.Model(inputs=[a, b] if as_list else {"a": a, "b": b}, outputs=out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = tabular(seed=seed)
    inputs = [x[:, :5], x[:, 5:]] if as_list else {"a": x[:, :5], "b": x[:, 5:]}
    return model, (inputs, y)


class MLPBlock(keras.Model):
    """3. A subclassed model: Dense layers in call()."""

    def __init__(self, units=32, classes=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.classes = classes
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.head = keras.layers.Dense(classes, activation="softmax")

    def call(self, inputs, training=False):
        return self.head(self.hidden(inputs))


def subclassed(seed=0):
    keras.utils.set_random_seed(seed)
    model = MLPBlock()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, tabular(seed=seed)


def bn_cnn(seed=0):
    """4. Conv2D + BatchNormalization + ReLU on 8x8x1 images."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(3, activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, images(seed=seed)


def text_lstm(seed=0):
    """5. Embedding + LSTM on integer tokens, a sigmoid output and binary_crossentropy."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(12,), dtype="int32"),
            keras.layers.Embedding(50, 8),
            keras.layers.LSTM(8),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model, tokens(seed=seed)


def regression(loss="mse", seed=0, scale=1.0, shift=0.0):
    """6. A regression MLP, float targets, metrics ["mae"]."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(8,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(
        optimizer="adam", loss=keras.losses.Huber() if loss == HUBER else loss, metrics=["mae"]
    )
    return model, regression_data(seed=seed, scale=scale, shift=shift)


def two_outputs(seed=0):
    """A classification head and a regression head, dict outputs, per-output losses."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(8,), name="features")
    h = keras.layers.Dense(32, activation="relu")(inputs)
    label = keras.layers.Dense(3, activation="softmax", name="label")(h)
    value = keras.layers.Dense(1, name="value")(h)
    model = keras.Model(inputs, {"label": label, "value": value})
    model.compile(
        optimizer="adam",
        loss={"label": "sparse_categorical_crossentropy", "value": "mse"},
        metrics={"label": ["accuracy"]},
    )
    x, y = tabular(seed=seed)
    _, t = regression_data(seed=seed)
    return model, (x, {"label": y, "value": t})


MODELS = {
    "mlp_onehot": mlp_onehot,
    "two_inputs_dict": two_inputs,
    "two_inputs_list": lambda: two_inputs(as_list=True),
    "subclassed": subclassed,
    "bn_cnn": bn_cnn,
    "text_lstm": text_lstm,
    "regression_mse": regression,
    "regression_mae": lambda: regression("mae"),
    "regression_huber": lambda: regression(HUBER),
    "two_outputs": two_outputs,
}

# What each healthy model shows beyond "every check passes".
SKIPPED_OK = {"regularization"}  # no model here has a regularizer: skipped, "nothing to compare"


def _data(name):
    model, (x, y) = MODELS[name]()
    return model, x, y, _split(x, y)


def _no_crash(results):
    crashed = {r.name: r.details["error"] for r in results if "error" in r.details}
    assert not crashed, crashed


# ------------------------------------------------------------ sanity checks
@pytest.mark.parametrize("name", list(MODELS))
def test_run_checks_passes_every_healthy_model_shape(name):
    model, _, _, (xt, yt, xv, yv) = _data(name)
    if not model.built:
        model(keras.tree.map_structure(lambda a: a[:1], xt))  # a subclassed model: its weights, to compare
    before = [np.array(v.numpy(), copy=True) for v in model.variables]
    results = checks.run_checks(model, (xt, yt, xv, yv), loss=model.loss, optimizer=model.optimizer)
    assert [r.name for r in results] == list(checks.CHECK_NAMES)
    _no_crash(results)
    failed = {r.name: r.advice for r in results if not r.passed}
    assert not failed, failed
    for r in results:
        if r.details.get("skipped"):
            assert r.name in SKIPPED_OK or r.details.get("reason"), (r.name, r.advice)
            assert r.advice  # the reason, in words
    json.dumps([r.to_dict() for r in results])  # checks.json takes every result as it is
    by_name = {r.name: r for r in results}
    assert not by_name["gradients"].details.get("skipped"), by_name["gradients"].advice
    assert not by_name["initial_loss"].details.get("skipped"), by_name["initial_loss"].advice
    for a, b in zip(before, model.variables, strict=True):
        np.testing.assert_array_equal(a, b.numpy())  # the model is left as it was


def test_each_check_alone_takes_dict_and_list_inputs():
    for name in ("two_inputs_dict", "two_inputs_list"):
        model, x, y, (xt, yt, xv, yv) = _data(name)
        assert checks.check_data(xt, yt, xv, yv).passed
        init = checks.check_initialization(model, xt)
        assert init.passed and init.details["layers"], init.advice  # per-layer statistics through both inputs
        assert checks.check_initial_loss(model, xt, yt).passed
        assert checks.check_regularization(model, xt, yt).passed
        assert checks.check_overfit(model, xt, yt).passed
        grads = checks.check_gradients(model, xt, yt)
        assert grads.passed and not grads.details.get("skipped"), grads.advice
        assert grads.details["examples"] == 4


def test_data_check_one_hot_labels_and_float_targets():
    _, x, y, (xt, yt, xv, yv) = _data("mlp_onehot")
    r = checks.check_data(xt, yt, xv, yv)
    assert r.passed and r.details["classification"] and r.details["num_classes"] == 3
    assert r.details["label_encoding"] == "one-hot"
    # Planted: a class absent from validation; the class count comes from the one-hot width.
    keep = yv.argmax(axis=1) != 2
    r = checks.check_data(xt, yt, xv[keep], yv[keep])
    assert not r.passed and r.details["missing_classes"] == {"validation": [2]}
    assert "class 2 missing from the validation split" in r.advice
    # Float targets: no "labels are not integer class ids", the class checks skipped with a reason.
    _, x, t, (xt, tt, xv, tv) = _data("regression_mse")
    r = checks.check_data(xt, tt, xv, tv)
    assert r.passed and r.details["classification"] is False
    assert "regression" in r.details["class_checks"] and "real-valued targets" in r.advice
    # Whole-number regression targets (counts): the MSE loss says they are not classes.
    model, _ = regression()
    counts = np.round(np.abs(t) * 3).astype("float32")
    by_guess = checks.check_data(x[:180], counts[:180], x[180:], counts[180:])
    results = checks.run_checks(model, (x[:180], counts[:180], x[180:], counts[180:]), skip=["overfit", "gradients"])
    assert by_guess.details["classification"] is True  # guessed from the values alone
    assert results[0].passed and results[0].details["classification"] is False


def test_data_check_per_output_of_a_two_output_model():
    _, x, y, (xt, yt, xv, yv) = _data("two_outputs")
    r = checks.check_data(xt, yt, xv, yv)
    assert r.passed, r.advice
    assert r.details["heads"]["label"]["classification"] and r.details["heads"]["label"]["num_classes"] == 3
    assert r.details["heads"]["value"]["classification"] is False
    bad = dict(yt, value=yt["value"].copy())
    bad["value"][3] = np.nan
    assert not checks.check_data(xt, bad, xv, yv).passed


# ------------------------------------------------------- D12: expectations
def test_initial_loss_expectation_per_loss():
    model, x, y, _ = _data("mlp_onehot")
    r = checks.check_initial_loss(model, x, y)
    assert r.expected == pytest.approx(math.log(3), rel=0.01)  # ln C with one-hot labels
    model, x, y, _ = _data("two_inputs_dict")
    assert checks.check_initial_loss(model, x, y).expected == pytest.approx(math.log(3), rel=0.01)
    model, x, y, _ = _data("text_lstm")
    r = checks.check_initial_loss(model, x, y)
    prior = float(np.mean(y))
    entropy = -(prior * math.log(prior) + (1 - prior) * math.log(1 - prior))
    assert r.passed and r.details["kind"] == "binary_crossentropy"
    assert r.details["expected_low"] == pytest.approx(entropy) and r.details["expected_high"] == pytest.approx(math.log(2))
    for loss, expected in (
        ("mse", lambda t: np.var(t)),  # centered targets: var(y) = mean(y^2) up to the mean's square
        ("mae", lambda t: np.mean(np.abs(t - np.median(t)))),
        (HUBER, None),
    ):
        model, x, t, _ = _data(f"regression_{loss}")
        r = checks.check_initial_loss(model, x, t)
        assert r.passed, r.advice
        assert r.details["kind"] == {"mse": "mse", "mae": "mae", HUBER: "huber"}[loss]
        if expected is not None:
            assert r.details["expected_low"] == pytest.approx(float(expected(t.astype(np.float64))), rel=1e-6)
        else:
            from kerasguide.checks.expectations import best_constant, pointwise_loss

            c = best_constant("huber", t)
            assert r.details["expected_low"] == pytest.approx(float(np.mean(pointwise_loss("huber", t - c))))
            assert r.details["expected_high"] == pytest.approx(float(np.mean(pointwise_loss("huber", t))))


def test_initial_loss_skips_a_loss_it_has_no_expectation_for():
    model, x, t, _ = _data("regression_mse")
    model.compile(optimizer="adam", loss="mean_squared_logarithmic_error")
    r = checks.check_initial_loss(model, x, np.abs(t))
    assert r.passed and r.details["skipped"]
    assert r.details["reason"] == "no expected initial value for loss mean_squared_logarithmic_error"
    assert "no expected initial value for loss" in r.advice


def _scale_output(model, factor):
    kernel = model.layers[-1].kernel
    kernel.assign(kernel.numpy() * factor)
    return model


@pytest.mark.parametrize("loss", ["mse", "mae", HUBER])
def test_initial_loss_catches_an_output_1000x_too_large(loss):
    model, x, t, _ = _data(f"regression_{loss}")
    assert checks.check_initial_loss(model, x, t).passed
    r = checks.check_initial_loss(_scale_output(model, 1000.0), x, t)
    assert not r.passed and "output layer's weights are too large" in r.advice, r.advice
    assert r.measured > r.details["accepted_range"][1]


def test_initial_loss_catches_a_saturated_sigmoid():
    model, x, y, _ = _data("text_lstm")
    model.layers[-1].bias.assign([6.0])  # every prediction near 1
    r = checks.check_initial_loss(model, x, y)
    assert not r.passed and r.measured > 2.0


def test_initial_loss_on_uncentered_targets_warns_but_passes():
    # Raw load_diabetes: targets of mean 152 and std 77. A fresh output starts near 0: at the
    # zero-output end of the expectation, which is healthy, with advice to standardize.
    x, t = _diabetes()  # scikit-learn ships the data: nothing is downloaded
    model = _diabetes_mlp()
    r = checks.check_initial_loss(model, x, t)
    assert r.passed and r.severity == "warning" and r.details["uncentered_targets"]
    assert "standardize the targets" in r.advice
    assert r.details["expected_low"] == pytest.approx(float(np.var(t.astype(np.float64))), rel=1e-6)


def test_initial_loss_per_output_of_a_two_output_model():
    model, x, y, _ = _data("two_outputs")
    r = checks.check_initial_loss(model, x, y)
    assert r.passed, r.advice
    heads = r.details["heads"]
    assert heads["label"]["kind"] == "crossentropy" and heads["value"]["kind"] == "mse"
    assert heads["label"]["expected"] == pytest.approx(math.log(3), rel=0.01)
    assert r.measured == pytest.approx(heads["label"]["loss"] + heads["value"]["loss"], rel=1e-5)
    # The compiled loss weights weigh the outputs, as in training.
    model.compile(optimizer="adam", loss=model.loss, loss_weights={"label": 1.0, "value": 0.5})
    weighted = checks.check_initial_loss(model, x, y)
    assert weighted.measured == pytest.approx(heads["label"]["loss"] + 0.5 * heads["value"]["loss"], rel=1e-5)
    assert weighted.details["heads"]["value"]["weight"] == 0.5
    model.get_layer("value").kernel.assign(model.get_layer("value").kernel.numpy() * 1000.0)
    r = checks.check_initial_loss(model, x, y)
    assert not r.passed and "output 'value'" in r.advice


# ------------------------------------------------------------ D14: overfit
def _diabetes():
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    x = ((data.data - data.data.mean(axis=0)) / data.data.std(axis=0)).astype("float32")
    return x, data.target.astype("float32").reshape(-1, 1)


def _diabetes_mlp(frozen=False, width=64):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(10,)),
            keras.layers.Dense(width, activation="relu", trainable=not frozen),
            keras.layers.Dense(width, activation="relu", trainable=not frozen),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def test_overfit_regression_is_judged_scale_free():
    # The case, recomputed: a healthy MLP on raw load_diabetes (var(y) ~ 5900). The loss
    # falls by far less than 20x, the residual is a small fraction of the targets' variance.
    x, t = _diabetes()
    r = checks.check_overfit(_diabetes_mlp(), x, t)
    assert r.passed, r.advice
    assert r.details["rule"] == "residual" and r.measured <= 0.1
    # The output layer is linear: the 20 targets are fitted standardized (a reparametrization of it).
    assert 100 < r.details["standardized_targets"]["output"]["mean"][0] < 200
    # The same rule, whatever the targets' units: x1000 gives the same verdict and residual.
    scaled = checks.check_overfit(_diabetes_mlp(), x, t * 1000.0)
    assert scaled.passed and scaled.measured == pytest.approx(r.measured, rel=1e-3)
    for loss in ("mse", "mae", HUBER):
        model, x_s, t_s, _ = _data(f"regression_{loss}")
        fit = checks.check_overfit(model, x_s, t_s)
        assert fit.passed and fit.details["rule"] == "residual", (loss, fit.advice)


def test_overfit_catches_a_frozen_regression_body():
    # Planted: the body's layers set trainable=False (a transfer-learning freeze left on). Only the
    # output layer learns: 9 weights cannot fit 20 targets, at any learning rate or step count.
    x, t = _diabetes()
    assert checks.check_overfit(_diabetes_mlp(width=8), x, t).passed
    r = checks.check_overfit(_diabetes_mlp(frozen=True, width=8), x, t)
    assert not r.passed and r.measured > 0.3, r.advice
    assert "Cannot overfit 20 examples" in r.advice and "trainable" in r.advice
    assert not r.details["extended"]  # its loss flattened out: no extra steps


def _blobs(n=240, seed=0):
    """Three tight, well-apart clusters: the labels are easy to fit, shuffled ones hard to memorize."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(scale=0.1, size=(n, 8)).astype("float32")
    x[np.arange(n), y] += 3.0
    return x, keras.utils.to_categorical(y, 3)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_overfit_catches_shuffled_one_hot_labels(seed):
    # 20 distinct points with shuffled labels can in principle be memorized; within a tight cluster
    # the 32-unit MLP does not in 200 steps, while the true labels fit at once.
    x, y = _blobs()
    model, _ = mlp_onehot()
    healthy = checks.check_overfit(model, x, y, seed=seed)
    assert healthy.passed and healthy.measured == 1.0, healthy.advice
    shuffled = y[np.random.default_rng(seed).permutation(len(y))]
    r = checks.check_overfit(model, x, shuffled, seed=seed)
    assert not r.passed and r.measured < 0.9 and r.details["rule"] == "accuracy", r.advice


def test_overfit_binary_sigmoid_is_judged_by_accuracy():
    model, x, y, _ = _data("text_lstm")
    r = checks.check_overfit(model, x, y)
    assert r.passed and r.details["rule"] == "accuracy" and r.measured == 1.0, r.advice


def test_overfit_two_outputs_judges_each_head():
    model, x, y, _ = _data("two_outputs")
    r = checks.check_overfit(model, x, y)
    assert r.passed, r.advice
    assert r.details["heads"]["label"]["rule"] == "accuracy"
    assert r.details["heads"]["value"]["rule"] == "residual"


# ---------------------------------------------------------- D15: gradients
def test_gradient_check_on_integer_tokens_checks_the_embedding():
    model, x, y, _ = _data("text_lstm")
    before = x.copy()
    r = checks.check_gradients(model, x, y)
    assert r.passed and not r.details.get("skipped"), r.advice
    embedding = [n for n in r.details["tensors"] if "embedding" in n]
    assert embedding and r.details["tensors"][embedding[0]]["coords"]
    np.testing.assert_array_equal(x, before)  # token ids untouched


def test_gradient_check_catches_a_wrong_gradient_behind_integer_tokens():
    from checks_support import HandDense

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(12,), dtype="int32"),
            keras.layers.Embedding(50, 8),
            keras.layers.LSTM(8),
            HandDense(4, kernel_factor=1.5, name="hand"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = tokens()
    r = checks.check_gradients(model, x, y)
    assert not r.passed and "hand/kernel" in r.details["worst"]["tensor"], r.advice


# ------------------------------------------------------------ LR range test
def _finds_a_rate_or_says_why(result):
    if result.found:
        opening = result.lrs[max(1, len(result.lrs) // 10)]
        assert result.chosen >= opening, (result.chosen, result.reason)  # never at the sweep's start
        assert result.chosen > result.start_lr
        assert result.chosen < result.lrs[-1], (result.chosen, result.reason)  # nor at its last point
    else:
        assert result.chosen_rule is None and result.reason.startswith("No usable rate: ")
        assert result.chosen == 1e-3 and "\n" not in result.reason


def _swept_small_data(result, batches=15, epochs=2):
    """N = 240 examples in batches of 16: 15 batches, fewer than 30 steps in one epoch, so two are swept.

    The 30 planned steps reach 10, where a model may diverge before the last one: then the sweep stops
    there, but past the first epoch (the old one-epoch sweep stopped at 15 steps).
    """
    sweep = result.extra["sweep"]
    assert sweep["batches_per_epoch"] == batches and sweep["max_epochs"] == 1.0
    assert f"small data: {batches} batches an epoch" in sweep["extended"], sweep
    assert batches < result.steps <= batches * epochs, (result.steps, result.stop_reason)
    assert sweep["epochs"] == pytest.approx(result.steps / batches, abs=1e-4)
    if result.steps < batches * epochs:
        assert result.stop_reason in ("smoothed loss above 4x its best", "loss not finite"), result.stop_reason


@pytest.mark.parametrize("name", list(MODELS))
def test_lr_finder_on_every_model_shape(name):
    model, x, y, _ = _data(name)
    if not model.built:
        model(keras.tree.map_structure(lambda a: a[:1], x))
    before = [np.array(v.numpy(), copy=True) for v in model.variables]
    result = LRFinder(model).find(x, y, batch_size=16)
    _swept_small_data(result)  # 15 batches an epoch: small data, swept over 2 epochs
    _finds_a_rate_or_says_why(result)
    for a, b in zip(before, model.variables, strict=True):
        np.testing.assert_array_equal(a, b.numpy())


def test_lr_finder_on_tf_data_with_dict_inputs():
    model, x, y, _ = _data("two_inputs_dict")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    result = LRFinder(model).find(dataset)
    _swept_small_data(result)  # the dataset's 15 batches, swept twice
    _finds_a_rate_or_says_why(result)


@pytest.mark.parametrize("batch_size, seed", [(16, 0), (16, 1), (8, 2), (4, 1)])
def test_lr_finder_on_a_batch_norm_cnn_finds_a_sensible_rate_or_says_none(batch_size, seed):
    model, x, y, _ = _data("bn_cnn")
    result = LRFinder(model).find(x, y, batch_size=batch_size, seed=seed)
    if result.found:
        assert 1e-4 <= result.chosen <= 1.0, result.reason
    else:
        assert "never fell" in result.reason, result.reason


class _Uncounted:
    """Batches of unknown length that cannot be counted ahead (no len, not a tf.data.Dataset)."""

    def __init__(self, x, y, batch):
        self.x, self.y, self.batch = x, y, batch

    def __iter__(self):
        for start in range(0, len(self.x), self.batch):
            yield self.x[start:start + self.batch], self.y[start:start + self.batch]


def test_lr_finder_a_sweep_too_short_finds_nothing():
    # 240 examples at batch size 64: 4 batches an epoch, one step per 2.7 decades of rate. The rules used
    # to pick 1e-7 (valley at the first point) or 1e-8 (the first point's minimum / 10). Of known length,
    # the sweep now takes 8 epochs (32 steps); of unknown length it stops at the epoch's end: 4 points.
    model, x, y, _ = _data("bn_cnn")
    result = LRFinder(model).find(_Uncounted(x, y, 64), seed=2)
    assert result.steps == 4 and not result.found
    assert "at least 10 are needed" in result.reason and result.chosen == 1e-3
    assert "4 batches an epoch" in result.reason and "pass steps_per_epoch" in result.reason
    # Two epochs of it are still too short; the same data counted (steps_per_epoch) are swept over 8.
    assert not LRFinder(model).find(_Uncounted(x, y, 64), max_epochs=2, seed=2).found
    counted = LRFinder(model).find(_Uncounted(x, y, 64), steps_per_epoch=4, seed=2)
    assert counted.steps == 32 and counted.extra["sweep"]["epochs"] == 8
    _finds_a_rate_or_says_why(counted)
    # The too-short sweep asked for outright (lr_find.steps below 10) says so too.
    short = LRFinder(model).find(x, y, batch_size=64, steps=6, seed=2)
    assert short.steps == 6 and not short.found and "raise lr_find.steps" in short.reason


def test_lr_rules_never_take_the_first_point():
    # The healthy-model case that returned 1e-08: a lucky first batch is the smoothed curve's
    # lowest point, so "minimum" gave lrs[0] / 10 and the other rules were dropped as past it.
    from kerasguide.lr_finder import consensus, smooth_losses, suggest_all, sweep_learning_rates

    lrs = sweep_learning_rates(1e-7, 10.0, 15)
    noisy_flat = np.array([0.80, 1.10, 1.05, 1.12, 1.08, 1.11, 1.06, 1.09, 1.10, 1.07, 1.12, 1.08, 1.10, 3.0, 9.0])
    smoothed = smooth_losses(noisy_flat)
    suggestions = suggest_all(lrs, noisy_flat, smoothed)
    assert suggestions["minimum_div_10"] is None or suggestions["minimum_div_10"] >= lrs[0]
    rule, lr, reason = consensus(suggestions, lrs, smoothed, losses=noisy_flat)
    assert (rule, lr) == (None, None) and "never fell" in reason
    # A curve that does fall is still read, the same lucky first batch notwithstanding.
    falling = noisy_flat.copy()
    falling[8:13] = [0.9, 0.7, 0.5, 0.4, 0.35]
    rule, lr, reason = consensus(suggest_all(lrs, falling, smooth_losses(falling)), lrs, smooth_losses(falling),
                                 losses=falling)
    assert rule is not None and lrs[1] <= lr < 1.0, reason


# ------------------------------------------------------------------ monitors
@pytest.mark.parametrize("name", list(MODELS))
def test_default_monitors_on_every_model_shape(name, tmp_path):
    model, x, y, _ = _data(name)
    x_probe, y_probe = keras.tree.map_structure(lambda a: a[:32], (x, y))
    callbacks = default_monitors(x_probe, y_probe, log_dir=tmp_path / "tb", record_dir=tmp_path / "monitor",
                                 images_every_epochs=1)
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=callbacks)
    finish_monitors(callbacks)
    files = {p.name for p in (tmp_path / "monitor").iterdir()}
    assert {"update_ratio.jsonl", "loss.jsonl", "probe.jsonl"} <= files, files
    probe = next(c for c in callbacks if type(c).__name__ == "ProbeMonitor")
    assert not probe._failed and len(probe.records) == 2
    assert all(np.isfinite(layer["grad_norm"]) for layer in probe.records[-1]["layers"].values() if "grad_norm" in layer)
    images = next(c for c in callbacks if type(c).__name__ == "FirstLayerImages")
    if name == "text_lstm":  # an Embedding reads the tokens: nothing to draw, said once
        assert images.skipped and "Embedding" in images.skipped and "images.jsonl" not in files
    else:
        assert images.skipped is None and "first_layer_epoch=002.png" in files


def test_probe_monitor_rejects_mismatched_structures():
    from kerasguide.monitors import ProbeMonitor

    _, x, y, _ = _data("two_inputs_dict")
    with pytest.raises(ValueError, match="equal length"):
        ProbeMonitor({"a": x["a"][:10], "b": x["b"][:9]}, y[:10])


def test_labels_as_a_plain_list_are_one_array():
    model, x, y, _ = _data("subclassed")
    labels = [int(v) for v in y]
    assert LRFinder(model).find(x, labels, batch_size=16).steps == 30  # 15 batches, small data: 2 epochs
    from kerasguide.monitors import ProbeMonitor

    probe = ProbeMonitor(x[:8], labels[:8])
    assert probe.y.shape == (8,)


def test_overfit_arguments_are_validated():
    model, x, t, _ = _data("regression_mse")
    with pytest.raises(ValueError, match="Argument `max_residual` must be > 0. Received: max_residual=0"):
        checks.check_overfit(model, x, t, max_residual=0)
    with pytest.raises(ValueError, match="Received: extra_steps=-1"):
        checks.check_overfit(model, x, t, extra_steps=-1)
