"""Sanity checks, part 1: the pure maths, `CheckResult`, and the data check (recipes D12, D15, A2)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kerasguide.checks import (
    CheckResult,
    activation_stats,
    all_passed,
    check_data,
    class_prior,
    classify_error,
    expected_initial_loss,
    failure_lines,
    format_table,
    gradient_step,
    is_kink,
    relative_error,
)
from kerasguide.checks.data import preprocessing_fitted_on_train, shared_duplicates
from kerasguide.checks.expectations import within_tolerance
from kerasguide.config import DataConfig
from kerasguide.data import Preprocessor, load_dataset


# ------------------------------------------------------------ expectations
def test_softmax_balanced_expects_ln_c():
    low, high = expected_initial_loss("crossentropy", np.full(10, 0.1))
    assert low == pytest.approx(2.302585, abs=1e-6) and high == pytest.approx(2.302585, abs=1e-6)


def test_softmax_unbalanced_range_reaches_prior_entropy():
    prior = np.array([0.7, 0.2, 0.1])
    low, high = expected_initial_loss("crossentropy", prior)
    entropy = -np.sum(prior * np.log(prior))
    assert low == pytest.approx(entropy) and high == pytest.approx(math.log(3))
    assert low < high


def test_label_smoothing_adjusts_the_prior_end_only():
    prior = np.array([0.7, 0.2, 0.1])
    eps = 0.2
    low, high = expected_initial_loss("crossentropy", prior, label_smoothing=eps)
    t = (1 - eps) * prior + eps / 3
    assert low == pytest.approx(-np.sum(t * np.log(prior)))
    assert high == pytest.approx(math.log(3))  # uniform scores: smoothing changes nothing
    # balanced classes: still exactly ln C
    assert expected_initial_loss("crossentropy", np.full(4, 0.25), label_smoothing=0.3) == pytest.approx(
        (math.log(4), math.log(4))
    )


def test_hinge_and_mse_expectations():
    assert expected_initial_loss("multiclass_hinge", np.full(10, 0.1)) == (9.0, 9.0)
    assert expected_initial_loss("multiclass_hinge", np.full(5, 0.2), margin=2.0) == (8.0, 8.0)
    assert expected_initial_loss("crammer_singer_hinge", np.full(10, 0.1)) == (1.0, 1.0)
    low, high = expected_initial_loss("mse_onehot", np.full(10, 0.1))
    assert low == pytest.approx(0.09) and high == pytest.approx(0.1)
    y = np.array([1.0, 3.0, 5.0])
    low, high = expected_initial_loss("mse", targets=y)
    assert low == pytest.approx(np.var(y)) and high == pytest.approx(np.mean(y**2))
    low, high = expected_initial_loss("binary_crossentropy", np.array([0.5]))
    assert low == pytest.approx(math.log(2)) and high == pytest.approx(math.log(2))


def test_expectation_argument_errors():
    with pytest.raises(ValueError, match="kind"):
        expected_initial_loss("nope", np.full(2, 0.5))
    with pytest.raises(ValueError, match="targets"):
        expected_initial_loss("mse")
    with pytest.raises(ValueError, match="num_classes"):
        class_prior(np.array([0]), 0)


def test_class_prior_of_labels_and_onehot():
    assert class_prior(np.array([0, 0, 1, 3]), 4).tolist() == [0.5, 0.25, 0.0, 0.25]
    onehot = np.eye(3)[[0, 1, 1, 2]]
    assert class_prior(onehot, 3).tolist() == [0.25, 0.5, 0.25]


def test_within_tolerance_reports_nearest_expected():
    assert within_tolerance(2.5, 2.3, 2.3, 0.25) == (True, 2.3)
    assert within_tolerance(9.8, 2.3, 2.3, 0.25)[0] is False
    assert within_tolerance(1.0, 2.0, 2.3, 0.25) == (False, 2.0)
    assert within_tolerance(float("nan"), 2.3, 2.3, 0.25)[0] is False


def test_relative_error_and_thresholds():
    assert relative_error(2.0, 1.0) == 0.5
    assert relative_error(0.0, 0.0) == 0.0
    assert relative_error(1e-3, 1e-3 * (1 + 1e-9)) < 1e-8
    assert classify_error(1e-9, False) == "good"
    assert classify_error(1e-6, False) == "acceptable"
    assert classify_error(1e-3, False) == "suspicious"
    assert classify_error(0.5, False) == "bug"
    assert classify_error(float("nan"), False) == "bug"
    assert classify_error(0.5, True) == "kink"


def test_gradient_step_scales_with_the_tensor():
    small = gradient_step(np.full(4, 0.01))
    assert small == pytest.approx(np.cbrt(np.finfo(np.float64).eps))
    assert gradient_step(np.full(4, 100.0)) == pytest.approx(100 * small)


def test_kink_detection_on_relu_and_smooth_functions():
    h = 1e-6

    def diffs(f, w):
        return (f(w + h) - f(w)) / h, (f(w) - f(w - h)) / h

    relu = lambda w: max(w, 0.0)  # noqa: E731
    fwd, bwd = diffs(relu, 0.3 * h)  # breakpoint within +-h
    assert is_kink(fwd, bwd, noise=1e-10)
    fwd, bwd = diffs(relu, 0.5)  # far from the breakpoint
    assert not is_kink(fwd, bwd, noise=1e-10)
    fwd, bwd = diffs(math.tanh, 0.5)  # smooth
    assert not is_kink(fwd, bwd, noise=1e-10)


def test_activation_stats_dead_and_saturated():
    relu = activation_stats(np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 3.0]]), "relu")
    assert relu["dead_fraction"] == pytest.approx(1 / 3) and relu["saturated_fraction"] == 0.0
    tanh = activation_stats(np.array([[0.999, -0.995], [0.1, -0.2]]), "tanh")
    assert tanh["saturated_fraction"] == 0.5
    sigmoid = activation_stats(np.array([[0.001, 0.5]]), "sigmoid")
    assert sigmoid["saturated_fraction"] == 0.5
    conv = activation_stats(np.zeros((2, 4, 4, 3)), "relu")  # units are channels
    assert conv["units"] == 3 and conv["dead_fraction"] == 1.0
    for key in ("std", "dead_fraction", "saturated_fraction", "activation"):
        assert key in relu


# ---------------------------------------------------------------- results
def test_check_result_roundtrip_and_severity():
    r = CheckResult("x", False, 3, 1, 0.5, "advice (recipe D12)", "D12", "info", {"a": 1})
    assert r.severity == "error"  # a failure is always an error
    data = json.loads(json.dumps(r.to_dict()))
    assert set(data) == {
        "name",
        "passed",
        "measured",
        "expected",
        "tolerance",
        "advice",
        "recipe",
        "severity",
        "details",
    }
    assert CheckResult.from_dict({**data, "extra": 1}) == r
    with pytest.raises(ValueError, match="severity"):
        CheckResult("x", True, severity="fatal")


def test_table_and_failure_lines():
    results = [
        CheckResult("a", True, 2.31, 2.30, 0.25, "ok", "D12"),
        CheckResult("b", False, 9.8, 2.3, 0.25, "too large (recipe D12)", "D12"),
        CheckResult("c", True, None, None, None, "look (recipe B5)", "B5", "warning"),
    ]
    table = format_table(results)
    assert table.splitlines()[0].split() == ["check", "result", "measured", "expected", "recipe"]
    assert "FAIL" in table and "warn" in table
    assert failure_lines(results) == ["FAILED b: too large (recipe D12)", "warning c: look (recipe B5)"]
    assert not all_passed(results) and all_passed(results[::2])


# ------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(source="digits"), seed=0)


def test_data_check_passes_on_kerasguide_dataset(digits):
    r = check_data(digits)
    assert r.passed, r.advice
    assert r.details["preprocessing"]["train_only"] is True
    assert r.details["preprocessing"]["fingerprint_matches"] is True
    assert r.details["num_classes"] == 10
    assert "(recipe A2)" in r.advice


def test_data_check_flags_nan_and_inf(digits):
    x = digits.x_train.copy()
    x[3, 5] = np.nan
    x[4, 0] = np.inf
    r = check_data(x, digits.y_train, digits.x_val, digits.y_val)
    assert not r.passed and r.severity == "error"
    assert r.details["nonfinite"]["train"] == {"nan": 1, "inf": 1}
    assert "NaN" in r.advice


def test_data_check_flags_nan_and_inf_in_labels_and_targets(digits):
    # Regression targets with a NaN: the loss would be NaN from the first step.
    targets = digits.x_train[:, :2].sum(axis=1).astype("float64")
    targets[7] = np.nan
    val_targets = digits.x_val[:, :2].sum(axis=1).astype("float64")
    val_targets[0] = np.inf
    r = check_data(digits.x_train, targets, digits.x_val, val_targets, classification=False)
    assert not r.passed and r.severity == "error"
    assert r.details["nonfinite"] == {}  # the inputs are clean
    assert r.details["nonfinite_labels"] == {
        "train": {"nan": 1, "inf": 0},
        "validation": {"nan": 0, "inf": 1},
    }
    assert "the train labels hold 1 NaN and 0 Inf values" in r.advice
    # Float-coded class ids with a NaN: flagged, still seen as classes, no crash.
    labels = digits.y_train.astype("float64")
    labels[0] = np.nan
    r = check_data(digits.x_train, labels, digits.x_val, digits.y_val.astype("float64"))
    assert not r.passed and r.details["classification"] is True
    assert r.details["nonfinite_labels"] == {"train": {"nan": 1, "inf": 0}}
    assert r.details["num_classes"] == 10 and r.details["missing_classes"] == {}
    r = check_data(digits.x_train, labels, classification=True)
    assert not r.passed and r.details["label_range"] == [0.0, 9.0]


def test_data_check_flags_labels_out_of_range(digits):
    y = digits.y_train.copy()
    y[0] = 12
    r = check_data(digits.x_train, y, digits.x_val, digits.y_val, num_classes=10)
    assert not r.passed and "outside 0..9" in r.advice


def test_data_check_flags_class_missing_from_validation(digits):
    keep = digits.y_val != 7
    r = check_data(digits.x_train, digits.y_train, digits.x_val[keep], digits.y_val[keep], num_classes=10)
    assert not r.passed
    assert r.details["missing_classes"] == {"validation": [7]}
    assert "class 7 missing from the validation split" in r.advice


def test_data_check_flags_validation_leaked_into_normalization(digits):
    # The planted bug of recipe A2: statistics fitted on train + validation.
    raw_train, raw_val = digits.raw_train, digits.raw_val
    leaky = Preprocessor("standardize").fit(np.concatenate([raw_train, raw_val]))
    r = check_data(
        leaky.transform(raw_train),
        digits.y_train,
        leaky.transform(raw_val),
        digits.y_val,
        preprocessor=leaky,
        raw_train=raw_train,
        raw_val=raw_val,
    )
    assert not r.passed
    pre = r.details["preprocessing"]
    assert pre["train_only"] is False and pre["matches_train_plus_validation"] is True
    assert pre["fingerprint_matches"] is False
    assert "not fitted on the training split alone (they match train + validation)" in r.advice
    # the same arrays with train-only statistics pass
    honest = Preprocessor("standardize").fit(raw_train)
    assert check_data(
        honest.transform(raw_train),
        digits.y_train,
        honest.transform(raw_val),
        digits.y_val,
        preprocessor=honest,
        raw_train=raw_train,
        raw_val=raw_val,
    ).passed


@pytest.mark.parametrize("mode", ["center", "pca", "whiten"])
def test_data_check_leak_detection_in_every_mode(digits, mode):
    raw_train, raw_val = digits.raw_train, digits.raw_val
    leaky = Preprocessor(mode, k=8 if mode != "center" else None).fit(np.concatenate([raw_train, raw_val]))
    result = preprocessing_fitted_on_train(leaky, raw_train, raw_val)
    assert result["checked"] and not result["train_only"]
    honest = Preprocessor(mode, k=8 if mode != "center" else None).fit(raw_train)
    assert preprocessing_fitted_on_train(honest, raw_train, raw_val)["train_only"]


def test_data_check_keras_normalization_and_sklearn_leaks(digits):
    import keras
    from sklearn.preprocessing import StandardScaler

    raw_train, raw_val = digits.raw_train, digits.raw_val
    everything = np.concatenate([raw_train, raw_val])
    norm = keras.layers.Normalization()
    norm.adapt(everything)
    assert not preprocessing_fitted_on_train(norm, raw_train, raw_val)["train_only"]
    norm = keras.layers.Normalization()
    norm.adapt(raw_train)
    assert preprocessing_fitted_on_train(norm, raw_train, raw_val)["train_only"]
    scaler = StandardScaler().fit(everything)
    assert not preprocessing_fitted_on_train(scaler, raw_train, raw_val)["train_only"]
    assert preprocessing_fitted_on_train(StandardScaler().fit(raw_train), raw_train)["train_only"]


def test_data_check_counts_duplicates_shared_by_train_and_validation(digits):
    x_val = digits.x_val.copy()
    x_val[:5] = digits.x_train[:5]
    r = check_data(digits.x_train, digits.y_train, x_val, digits.y_val)
    assert r.passed and r.severity == "warning"
    assert r.details["duplicates"]["count"] >= 5
    assert set(range(5)) <= set(r.details["duplicates"]["examples"])
    assert "also appear in training" in r.advice
    assert shared_duplicates(np.array([[1, 2], [3, 4]]), np.array([[3, 4], [5, 6]])) == [0]
