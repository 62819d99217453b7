"""Sanity checks, part 2: each model check catches its planted bug and passes the healthy model.

Recipes B5 (initialization), D12 (initial loss), D13 (regularization),
D14 (overfit a tiny subset), D15 (gradient check). Tiny models on digits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from checks_support import (
    Disconnect,
    NegativeL2,
    StopGradient,
    compiled,
    digits_arrays,
    hand_model,
    keras,
    mlp,
    same_weights,
    weights_of,
)

from kerasguide.checks import (
    check_gradients,
    check_initial_loss,
    check_initialization,
    check_overfit,
    check_regularization,
    run_checks,
)
from kerasguide.losses import MulticlassHinge, SparseMeanSquaredError


@pytest.fixture(scope="module")
def data():
    return digits_arrays()


# ---------------------------------------------------------- D12 initial loss
def test_initial_loss_healthy_softmax_is_ln_c(data):
    x, y, _, _ = data
    r = check_initial_loss(compiled(mlp()), x, y)
    assert r.passed, r.advice
    assert r.name == "initial_loss" and r.recipe == "D12"
    assert r.expected == pytest.approx(math.log(10), abs=0.01)
    assert abs(r.measured - math.log(10)) < 0.1
    assert r.details["loss"] == r.measured and r.details["expected_loss"] == r.expected
    # the data loss alone: a strong regularizer and dropout change nothing (regularization off)
    strong = compiled(mlp(regularizer=keras.regularizers.L2(10.0), dropout=0.5))
    s = check_initial_loss(strong, x, y)
    assert s.passed, s.advice
    assert s.measured == pytest.approx(check_initial_loss(compiled(mlp()), x, y).measured, rel=1e-5)


def test_initial_loss_flags_large_output_weights(data):
    # Planted bug: the output layer initialized with large weights.
    x, y, _, _ = data
    model = compiled(mlp(head_initializer=keras.initializers.RandomNormal(stddev=3.0)))
    r = check_initial_loss(model, x, y)
    assert not r.passed and r.severity == "error"
    assert r.measured > 5
    assert "output layer's weights are too large" in r.advice and "(recipe D12)" in r.advice


def test_initial_loss_hinge_expects_c_minus_1_and_mse_the_variance(data):
    x, y, _, _ = data
    hinge = check_initial_loss(mlp(head_activation=None), x, y, loss=MulticlassHinge())
    assert hinge.passed, hinge.advice
    assert hinge.expected == pytest.approx(9.0)
    mse = check_initial_loss(mlp(head_activation=None), x, y, loss=SparseMeanSquaredError())
    assert mse.passed, mse.advice
    assert 0.09 <= mse.expected <= 0.1
    big = mlp(head_activation=None, head_initializer=keras.initializers.RandomNormal(stddev=3.0))
    assert not check_initial_loss(big, x, y, loss=MulticlassHinge()).passed


def test_initial_loss_unbalanced_classes_accepts_prior_predicting_model(data):
    # A model whose output bias encodes the class prior starts at the prior's entropy.
    x, y, _, _ = data
    keep = (y < 2) | (np.arange(len(y)) % 10 == 0)  # classes 0 and 1 dominate
    x, y = x[keep], y[keep]
    prior = np.bincount(y, minlength=10) / len(y)
    model = compiled(mlp(head_initializer="zeros"))
    model.get_layer("output").bias.assign(np.log(prior).astype("float32"))
    r = check_initial_loss(model, x, y)
    assert r.passed, r.advice
    entropy = -np.sum(prior[prior > 0] * np.log(prior[prior > 0]))
    assert r.measured == pytest.approx(entropy, rel=1e-3)
    assert r.details["prior_loss"] == pytest.approx(entropy, rel=1e-6)


def test_initial_loss_label_smoothing_and_mse_on_real_targets(data):
    x, y, _, _ = data
    keep = (y < 2) | (np.arange(len(y)) % 10 == 0)
    x_u, y_u = x[keep], y[keep]
    prior = np.bincount(y_u, minlength=10) / len(y_u)
    eps = 0.2
    model = compiled(
        mlp(head_initializer="zeros"), loss=keras.losses.CategoricalCrossentropy(label_smoothing=eps)
    )
    model.get_layer("output").bias.assign(np.log(prior).astype("float32"))
    r = check_initial_loss(model, x_u, np.eye(10, dtype="float32")[y_u])
    assert r.passed, r.advice
    smoothed = -np.sum(((1 - eps) * prior + eps / 10) * np.log(prior))  # the prior end, adjusted
    assert r.details["label_smoothing"] == eps
    assert r.details["prior_loss"] == pytest.approx(smoothed, rel=1e-6)
    assert r.measured == pytest.approx(smoothed, rel=1e-3)
    # MSE on real-valued targets: between var(t) (mean-predicting) and mean(t^2) (zero output).
    t = (x[:, :3].sum(axis=1, keepdims=True) * 0.5 + 2.0).astype("float32")
    keras.utils.set_random_seed(0)
    inp = keras.Input((64,))
    h = keras.layers.Dense(16, activation="relu")(inp)
    reg = keras.Model(
        inp, keras.layers.Dense(1, kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3))(h)
    )
    r = check_initial_loss(compiled(reg, loss="mse"), x, t, examples=len(x))
    assert r.passed, r.advice
    assert r.details["kind"] == "mse"
    assert r.details["expected_low"] == pytest.approx(float(np.var(t)), rel=1e-5)
    assert r.details["expected_high"] == pytest.approx(float(np.mean(t.astype(np.float64) ** 2)), rel=1e-5)


def test_initial_loss_needs_a_loss():
    with pytest.raises(ValueError, match="not compiled"):
        check_initial_loss(mlp(), np.zeros((4, 64)), np.zeros(4))


# -------------------------------------------------------- D13 regularization
def test_regularization_healthy_l2_raises_the_loss(data):
    x, y, _, _ = data
    r = check_regularization(compiled(mlp(regularizer=keras.regularizers.L2(1e-3))), x, y)
    assert r.passed, r.advice
    assert r.measured > r.expected
    assert r.details["penalties"]["hidden/kernel"] > 0


def test_regularization_flags_flipped_sign(data):
    # Planted bug: a regularizer whose sign is flipped lowers the loss.
    x, y, _, _ = data
    r = check_regularization(compiled(mlp(regularizer=NegativeL2(1e-3))), x, y)
    assert not r.passed
    assert r.measured < r.expected
    assert "hidden/kernel" in r.advice and "(recipe D13)" in r.advice


def test_regularization_absent_is_reported_not_failed(data):
    x, y, _, _ = data
    r = check_regularization(compiled(mlp()), x, y)
    assert r.passed and r.severity == "info" and r.details["skipped"]


# ------------------------------------------------------------- D14 overfit
def test_overfit_healthy_model_fits_20_examples_and_is_restored(data):
    x, y, _, _ = data
    model = compiled(mlp(dropout=0.5, regularizer=keras.regularizers.L2(1e-2)))
    model.train_on_batch(x[:32], y[:32])  # the optimizer has state to keep
    before = weights_of(model)
    opt_before = [np.array(v.numpy(), copy=True) for v in model.optimizer.variables]
    r = check_overfit(model, x, y, examples=20, steps=200)
    assert r.passed, r.advice
    assert r.measured == 1.0 and r.details["final_loss"] < 0.05 * r.details["initial_loss"]
    assert same_weights(before, weights_of(model))
    assert same_weights(opt_before, [np.array(v.numpy()) for v in model.optimizer.variables])
    assert model.get_layer("drop").rate == 0.5  # dropout switched back on


@pytest.mark.parametrize("bug", [StopGradient, Disconnect], ids=["stop_gradient", "disconnected_input"])
def test_overfit_flags_a_model_that_cannot_learn(data, bug):
    x, y, _, _ = data
    model = compiled(mlp(extra=bug(name="bug")))
    r = check_overfit(model, x, y, examples=20, steps=60)
    assert not r.passed and "(recipe D14)" in r.advice
    assert r.details["curve"]["loss"]
    if bug is StopGradient:
        # The head after the stop_gradient can still memorize 20 examples; the
        # layers before it never learn, and are named.
        assert r.details["no_gradient"] == ["hidden/kernel", "hidden/bias"]
        assert "hidden/kernel, hidden/bias receive no gradient" in r.advice
    else:
        assert r.measured < 0.5
        assert "Cannot overfit 20 examples" in r.advice


def test_overfit_flags_stop_gradient_on_the_output(data):
    x, y, _, _ = data
    keras.utils.set_random_seed(0)
    inp = keras.Input((64,))
    out = StopGradient()(keras.layers.Dense(10, activation="softmax", name="output")(inp))
    r = check_overfit(compiled(keras.Model(inp, out)), x, y, examples=20, steps=30)
    assert not r.passed and r.details["steps"] == 0
    assert "no trainable tensor receives a gradient" in r.advice


def test_overfit_flags_labels_disconnected_from_inputs(data):
    # Labels shuffled independently of the inputs (the 20 examples are all
    # distinct digits, so shuffled labels would still be memorizable; make
    # the inputs identical instead: then no model can separate the labels).
    x, y, _, _ = data
    x_same = np.repeat(x[:1], 40, axis=0)
    r = check_overfit(compiled(mlp()), x_same, y[:40], examples=20, steps=60)
    assert not r.passed


def test_overfit_regression_reaches_near_zero_loss_or_fails(data):
    x, _, _, _ = data
    t = x[:, :3].sum(axis=1, keepdims=True).astype("float32")  # zero-mean targets

    def regressor(extra=None):
        keras.utils.set_random_seed(0)
        inp = keras.Input((64,))
        h = keras.layers.Dense(16, activation="relu")(inp)
        if extra is not None:
            h = extra(h)
        return compiled(keras.Model(inp, keras.layers.Dense(1)(h)), loss="mse")

    r = check_overfit(regressor(), x, t, examples=20, steps=200)
    assert r.passed, r.advice
    # Judged scale-free: the squared residual against the targets' variance (1 - R^2), at most 0.1.
    assert r.details["final_accuracy"] is None and r.measured <= 0.1 and r.details["rule"] == "residual"
    assert r.measured == pytest.approx(r.details["loss_ratio"])
    r = check_overfit(regressor(Disconnect(name="bug")), x, t, examples=20, steps=60)
    assert not r.passed and r.details["loss_ratio"] > 0.5  # the disconnected input leaves the variance
    assert "Cannot overfit 20 examples" in r.advice and r.details["curve"]["loss"]


# ---------------------------------------------------------- D15 gradients
def test_gradient_check_healthy_custom_gradient_layer():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 8)).astype("float32"), rng.integers(0, 3, 16)
    model = hand_model()
    before = weights_of(model)
    r = check_gradients(model, x, y)
    assert r.passed, r.advice
    assert r.measured < 1e-7 and r.severity == "info"
    # every trainable tensor is checked, biases included
    assert set(r.details["tensors"]) == {"hand/kernel", "hand/bias", "output/kernel", "output/bias"}
    assert all(len(t["coords"]) >= 3 for t in r.details["tensors"].values())
    assert r.details["dtype"] == "float64"
    # the model itself is untouched: still float32, same weights
    assert same_weights(before, weights_of(model))
    assert all(str(v.dtype) == "float32" for v in model.weights)


@pytest.mark.parametrize(
    "kernel_factor, bias_factor, culprit",
    [(2.0, 1.0, "hand/kernel"), (1.0, 0.5, "hand/bias")],
    ids=["kernel_x2", "bias_only"],
)
def test_gradient_check_names_the_wrong_tensor(kernel_factor, bias_factor, culprit):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 8)).astype("float32"), rng.integers(0, 3, 16)
    r = check_gradients(hand_model(kernel_factor, bias_factor), x, y)
    assert not r.passed and r.severity == "error"
    assert r.details["failing_tensors"] == [culprit]
    assert r.details["worst"]["tensor"] == culprit
    assert r.measured == pytest.approx(0.5, rel=1e-3)  # factor 2 or 1/2: |a-n|/max = 0.5
    assert r.advice.startswith(f"Gradient of {culprit}[")
    assert "(recipe D15)" in r.advice
    # ... and the coordinate: a valid index of that tensor, the one in the advice
    worst = r.details["worst"]
    shape = r.details["tensors"][culprit]["shape"]
    assert len(worst["index"]) == len(shape) and all(
        0 <= i < n for i, n in zip(worst["index"], shape, strict=True)
    )
    assert r.advice.startswith(f"Gradient of {culprit}{worst['index']} is wrong")
    assert worst["analytic"] == pytest.approx(worst["numeric"] * kernel_factor * bias_factor, rel=1e-6)


def test_gradient_check_thresholds_on_a_slightly_wrong_gradient():
    # Relative error ~1e-3: above "acceptable" (1e-4), below "bug" (1e-2): passes with a warning.
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 8)).astype("float32"), rng.integers(0, 3, 16)
    r = check_gradients(hand_model(kernel_factor=1.001), x, y)
    assert r.passed and r.severity == "warning", r.advice
    assert r.measured == pytest.approx(1e-3, rel=0.01) and r.details["worst"]["tensor"] == "hand/kernel"
    assert r.details["counts"]["suspicious"] > 0 and r.details["counts"]["bug"] == 0
    assert "suspicious" in r.advice and "hand/kernel[" in r.advice
    # ~5e-2 is past the bug threshold; stricter thresholds fail the 1e-3 one too
    assert not check_gradients(hand_model(kernel_factor=1.05), x, y).passed
    assert not check_gradients(hand_model(kernel_factor=1.001), x, y, acceptable=1e-4, bug=1e-4).passed


def test_gradient_check_conv_models_and_dropout():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x2 = rng.normal(size=(8, 6, 6, 2)).astype("float32")
    y = rng.integers(0, 3, 8)
    conv2d = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(3, 3, activation="tanh"),
            keras.layers.GaussianNoise(1.0),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    r = check_gradients(compiled(conv2d), x2, y)
    assert r.passed and r.measured < 1e-6, r.advice  # noise layers off, or they would fail it
    assert len(r.details["tensors"]) == 4
    x1 = rng.normal(size=(8, 10, 2)).astype("float32")
    inp = keras.Input((10, 2))
    h = keras.layers.Conv1D(4, 3, activation="relu", padding="same")(inp)
    h = keras.layers.MaxPooling1D(2)(h)
    h = keras.layers.Flatten()(h)
    conv1d = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h))
    r = check_gradients(compiled(conv1d), x1, y)
    assert r.passed, r.advice


def test_gradient_check_reports_kinks_apart():
    # Put a ReLU input exactly on its breakpoint for example 0: perturbing the
    # weights moves it across the kink, which is reported, not failed.
    keras.utils.set_random_seed(0)
    inp = keras.Input((3,))
    h = keras.layers.Dense(2, activation="relu", name="hidden")(inp)
    model = compiled(keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="output")(h)))
    x = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -0.1]], dtype=np.float64)
    kernel = np.array([[0.5, -0.3], [0.25, 0.4], [1.0, 0.2]])
    model.get_layer("hidden").kernel.assign(kernel.astype("float32"))
    bias = -(x[0] @ kernel.astype("float32").astype(np.float64))  # unit pre-activations ~0 on example 0
    model.get_layer("hidden").bias.assign(bias.astype("float32"))
    r = check_gradients(model, x.astype("float32"), np.array([0, 1]), examples=2, coords=8)
    assert r.passed, r.advice
    assert r.details["kinks"] > 0
    kinked = [c for t in r.details["tensors"].values() for c in t["coords"] if c["status"] == "kink"]
    assert kinked and all(c["status"] != "bug" for t in r.details["tensors"].values() for c in t["coords"])


def test_gradient_check_subclassed_model_with_config():
    @keras.saving.register_keras_serializable(package="kerasguide_tests")
    class Small(keras.Model):
        def __init__(self, units=4, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.hidden = keras.layers.Dense(units, activation="tanh")
            self.out = keras.layers.Dense(3, activation="softmax")

        def call(self, x):
            return self.out(self.hidden(x))

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 5)).astype("float32"), rng.integers(0, 3, 8)
    model = Small()
    model(x[:1])
    r = check_gradients(compiled(model), x, y)
    assert r.passed and r.measured < 1e-6, r.advice
    assert len(r.details["tensors"]) == 4


def test_run_checks_on_arrays_checks_labels_against_the_output_width(data):
    # Labels 0..10 for a 10-way softmax, in both splits: every class "present",
    # but 10 is out of range for the model (sparse cross-entropy cannot score it).
    x, y, xv, yv = data
    y, yv = y.copy(), yv.copy()
    y[0], yv[0] = 10, 10
    only_data = ["initialization", "initial_loss", "regularization", "overfit", "gradients"]
    (r,) = run_checks(compiled(mlp()), (x, y, xv, yv), skip=only_data)
    assert not r.passed and r.details["num_classes"] == 10
    assert "outside 0..9" in r.advice
    (ok,) = run_checks(compiled(mlp()), data, skip=only_data)
    assert ok.passed, ok.advice


# ----------------------------------------------------- B5 initialization
def test_initialization_healthy_records_layer_stats(data):
    x, _, _, _ = data
    r = check_initialization(mlp(), x)
    assert r.passed and r.severity == "info", r.advice
    stats = r.details["layers"]["act"]
    assert stats["activation"] == "relu"
    assert set(stats) >= {"std", "dead_fraction", "saturated_fraction", "activation"}
    assert stats["dead_fraction"] < 0.2 and stats["std"] > 0.1
    assert r.details["layers"]["output"]["activation"] == "softmax"


def test_initialization_flags_all_zero_hidden_weights(data):
    # Planted bug: all-zero initialization (recipe B5).
    x, _, _, _ = data
    r = check_initialization(mlp(kernel_initializer="zeros"), x)
    assert not r.passed
    assert r.details["tensors"] == {"hidden/kernel": "all_zero"}
    assert "hidden/kernel is initialized all zero" in r.advice and "(recipe B5)" in r.advice
    r = check_initialization(mlp(kernel_initializer=keras.initializers.Constant(0.1)), x)
    assert not r.passed and r.details["tensors"]["hidden/kernel"] == "all_equal"


def test_initialization_zero_output_layer_is_only_a_warning(data):
    x, _, _, _ = data
    r = check_initialization(mlp(head_initializer="zeros"), x)
    assert r.passed and r.severity == "warning"
    assert r.details["tensors"] == {"output/kernel": "all_zero"}


def test_initialization_warns_on_dead_relus_saturated_tanh_and_collapse(data):
    x, _, _, _ = data
    dead = check_initialization(mlp(bias_initializer=keras.initializers.Constant(-50.0)), x)
    assert dead.passed and dead.severity == "warning"
    assert dead.details["layers"]["act"]["dead_fraction"] == 1.0
    assert "ReLUs are dead" in dead.advice
    saturated = check_initialization(
        mlp(activation="tanh", kernel_initializer=keras.initializers.RandomNormal(stddev=2.0)), x
    )
    assert saturated.severity == "warning"
    assert saturated.details["layers"]["act"]["saturated_fraction"] > 0.5
    collapsed = check_initialization(
        mlp(activation="tanh", kernel_initializer=keras.initializers.RandomNormal(stddev=1e-4)), x
    )
    assert collapsed.severity == "warning" and "collapsed" in collapsed.advice


# ------------------------------------------------------------- all of them
def test_run_checks_on_a_healthy_compiled_model_restores_it(data):
    model = compiled(mlp(dropout=0.2, regularizer=keras.regularizers.L2(1e-4)))
    before = weights_of(model)
    seen = []
    results = run_checks(model, data, on_result=seen.append)
    assert [r.name for r in results] == [
        "data",
        "initialization",
        "initial_loss",
        "regularization",
        "overfit",
        "gradients",
    ]
    assert seen == results
    assert all(r.passed for r in results), [r.advice for r in results if not r.passed]
    assert all("seconds" in r.details for r in results)
    assert same_weights(before, weights_of(model))
    from kerasguide.config import ChecksConfig

    skipped = run_checks(model, data, config=ChecksConfig(skip=["overfit", "gradients"]))
    assert [r.name for r in skipped] == ["data", "initialization", "initial_loss", "regularization"]
    with pytest.raises(ValueError, match="skip"):
        run_checks(model, data, skip=["nope"])
    assert [r.name for r in run_checks(model, data[:2], skip=["overfit", "gradients", "initialization"])] == [
        "data",
        "initial_loss",
        "regularization",
    ]
