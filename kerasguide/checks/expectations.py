"""The pure maths of the sanity checks: expected values, errors, thresholds.

No Keras state here: every function takes NumPy arrays or numbers and is
tested directly (recipes D12, D15).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

__all__ = [
    "LOSS_KINDS",
    "REGRESSION_KINDS",
    "class_prior",
    "pointwise_loss",
    "best_constant",
    "expected_initial_loss",
    "fit_residual",
    "regression_bounds",
    "within_tolerance",
    "relative_error",
    "gradient_step",
    "is_kink",
    "classify_error",
]

# Loss kinds whose value at initialization is known (recipe D12).
LOSS_KINDS = (
    "crossentropy",  # softmax cross-entropy, sparse or one-hot labels, optional smoothing
    "binary_crossentropy",
    "multiclass_hinge",  # Weston-Watkins: sum over wrong classes
    "crammer_singer_hinge",  # Keras' categorical_hinge: max over wrong classes
    "mse_onehot",  # MSE against one-hot encoded integer labels
    "mse",  # MSE against the targets as given
    "mae",  # mean absolute error
    "huber",  # Huber loss with its `delta`
    "log_cosh",
)
# The regression kinds: a loss of the residual `y - y_pred`, its expectation from the targets alone.
REGRESSION_KINDS = ("mse", "mae", "huber", "log_cosh")

LossKind = Literal[
    "crossentropy",
    "binary_crossentropy",
    "multiclass_hinge",
    "crammer_singer_hinge",
    "mse_onehot",
    "mse",
    "mae",
    "huber",
    "log_cosh",
]


def class_prior(y: np.ndarray, num_classes: int) -> np.ndarray:
    """The class frequencies of integer labels `y` (or the mean of one-hot rows).

    Example:

    >>> class_prior(np.array([0, 0, 1, 2]), 3).tolist()
    [0.5, 0.25, 0.25]
    """
    y = np.asarray(y)
    if num_classes <= 0:
        raise ValueError(f"Argument `num_classes` must be > 0. Received: num_classes={num_classes}")
    if y.ndim == 2 and y.shape[1] == num_classes and num_classes > 1:
        prior = y.astype(np.float64).mean(axis=0)
        return prior / max(prior.sum(), 1e-300)
    labels = y.reshape(-1).astype(np.int64)
    counts = np.bincount(labels, minlength=num_classes)[:num_classes].astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def _entropy_terms(p: np.ndarray) -> np.ndarray:
    # -p ln p with 0 ln 0 = 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)


def pointwise_loss(kind: str, residual: np.ndarray, delta: float = 1.0) -> np.ndarray:
    """A regression loss of each residual `y - y_pred`, as Keras computes it (before the mean).

    Example:

    >>> pointwise_loss("huber", np.array([0.5, 3.0])).tolist()
    [0.125, 2.5]
    """
    r = np.asarray(residual, dtype=np.float64)
    if kind == "mse":
        return r**2
    if kind == "mae":
        return np.abs(r)
    if kind == "huber":
        a = np.abs(r)
        return np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))
    if kind == "log_cosh":
        a = np.abs(r)
        return a + np.log1p(np.exp(-2.0 * a)) - math.log(2.0)  # log(cosh(r)) without overflow
    raise ValueError(f"Argument `kind` must be one of {REGRESSION_KINDS}. Received: kind={kind!r}")


def best_constant(kind: str, targets: np.ndarray, delta: float = 1.0) -> np.ndarray:
    """The constant prediction (one per target column) with the lowest mean loss on `targets`.

    The mean for MSE, the median for MAE; for Huber and log-cosh (convex
    in the constant) a golden-section search between the column's minimum
    and maximum.

    Example:

    >>> best_constant("mae", np.array([[1.0], [2.0], [10.0]])).tolist()
    [2.0]
    """
    t = np.asarray(targets, dtype=np.float64)
    t = t.reshape(len(t), -1)
    if kind == "mse":
        return t.mean(axis=0)
    if kind == "mae":
        return np.median(t, axis=0)
    out = np.empty(t.shape[1])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    for j in range(t.shape[1]):
        col = t[:, j]
        lo, hi = float(col.min()), float(col.max())
        for _ in range(100):  # 0.618^100: far below float precision of any target range
            a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
            if pointwise_loss(kind, col - a, delta).mean() <= pointwise_loss(kind, col - b, delta).mean():
                hi = b
            else:
                lo = a
        out[j] = 0.5 * (lo + hi)
    return out


def fit_residual(targets: np.ndarray, predictions: np.ndarray) -> float:
    """`mean((y - y_pred)^2) / var(y)`: 1 - R^2 of a regression fit, whatever the targets' scale.

    0 for a perfect fit, 1 for predicting the mean (the variance is of each
    target column, averaged). Targets that are all equal are compared with
    their mean square instead (a fit to a constant).

    Example:

    >>> fit_residual(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.5]))
    0.125
    """
    t = np.asarray(targets, dtype=np.float64)
    t = t.reshape(len(t), -1)
    p = np.asarray(predictions, dtype=np.float64).reshape(t.shape)
    mse = float(np.mean((t - p) ** 2))
    var = float(np.mean(t.var(axis=0)))
    scale = var if var > 1e-12 * (1.0 + float(np.mean(t**2))) else max(float(np.mean(t**2)), 1e-300)
    return mse / scale


def expected_initial_loss(
    kind: LossKind,
    prior: np.ndarray | None = None,
    *,
    label_smoothing: float = 0.0,
    margin: float = 1.0,
    targets: np.ndarray | None = None,
    delta: float = 1.0,
) -> tuple[float, float]:
    """The range of losses a freshly initialized model should show (recipe D12).

    A fresh network is "at chance" in one of two ways, and both are healthy:
    its scores are near zero (uniform softmax), or its output bias encodes
    the class prior (the better start for unbalanced classes). The range
    runs from one to the other:

    - softmax cross-entropy: `ln C` (uniform) and the entropy of the class
      prior (prior-predicting); both adjusted for label smoothing, with
      which a prior-predicting model scores
      `-sum_c ((1 - eps) p_c + eps / C) ln p_c`. Balanced classes: both are
      `ln C` (2.302 for 10 classes).
    - binary cross-entropy: `ln 2` per output and the mean binary entropy
      of each output's positive rate.
    - multiclass (Weston-Watkins) hinge: `(C - 1) * margin` at zero scores.
    - Crammer-Singer hinge (Keras' `categorical_hinge`): `margin`.
    - MSE against one-hot labels: `1 / C` at zero scores, the targets'
      variance `sum_c p_c (1 - p_c) / C` for a mean-predicting model.
    - regression losses of the residual (MSE, MAE, Huber, log-cosh) on real
      targets: the loss of a zero output and the loss of the best constant
      (MSE: `mean(y^2)` and `var(y)`; MAE: `mean|y|` and `mean|y - median|`;
      Huber and log-cosh: the same two constants, computed). A fresh
      network's output is about 0 plus a small spread `s` from its random
      weights, so it scores `E[L(y - yhat)]`, about the zero-output end when
      `s` is small against the targets' spread (for MSE exactly
      `mean(y^2) + s^2`); with its output bias set to the targets' mean
      (the better start, Karpathy's "init well") it scores the constant's
      end. The measured loss itself (`E[(y - yhat_0)^2]` with the model's
      own initial outputs) would be no expectation at all: the tolerance
      bounds `s`, which is what a too large output layer inflates.

    Args:
        kind: One of `LOSS_KINDS`.
        prior: Class frequencies (length C) for the classification kinds.
            Defaults to `None`.
        label_smoothing: Cross-entropy label smoothing epsilon.
            Defaults to `0.0`.
        margin: The hinge margin. Defaults to `1.0`.
        targets: The regression targets, for the `REGRESSION_KINDS`. Defaults to `None`.
        delta: The Huber loss's `delta`. Defaults to `1.0`.

    Returns:
        `(low, high)` with `low <= high`.

    Example:

    >>> lo, hi = expected_initial_loss("crossentropy", np.full(10, 0.1))
    >>> round(lo, 3), round(hi, 3)
    (2.303, 2.303)
    """
    if kind in REGRESSION_KINDS:
        if targets is None:
            raise ValueError(f"Argument `targets` is required for kind={kind!r}. Received: targets=None")
        t = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
        zero_output = float(np.mean(pointwise_loss(kind, t, delta)))
        constant = float(np.mean(pointwise_loss(kind, t - best_constant(kind, t, delta), delta)))
        return min(zero_output, constant), max(zero_output, constant)
    if prior is None:
        raise ValueError(f"Argument `prior` is required for kind={kind!r}. Received: prior=None")
    p = np.asarray(prior, dtype=np.float64).reshape(-1)
    c = len(p)
    if kind == "crossentropy":
        if c < 2:
            raise ValueError(f"Cross-entropy needs at least 2 classes. Received: {c}")
        eps = float(label_smoothing)
        uniform = math.log(c)
        # A prior-predicting model on smoothed targets: -sum_c t_c ln p_c.
        t = (1.0 - eps) * p + eps / c
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf)
        prior_loss = float(-np.sum(np.where(t > 0, t * logs, 0.0)))
        if not math.isfinite(prior_loss):
            prior_loss = uniform
        return min(uniform, prior_loss), max(uniform, prior_loss)
    if kind == "binary_crossentropy":
        entropies = _entropy_terms(p) + _entropy_terms(1.0 - p)
        prior_loss = float(np.mean(entropies))
        return min(prior_loss, math.log(2.0)), math.log(2.0)
    if kind == "multiclass_hinge":
        value = (c - 1) * float(margin)
        return value, value
    if kind == "crammer_singer_hinge":
        return float(margin), float(margin)
    if kind == "mse_onehot":
        zero_output = 1.0 / c
        mean_output = float(np.sum(p * (1.0 - p)) / c)
        return min(zero_output, mean_output), max(zero_output, mean_output)
    raise ValueError(f"Argument `kind` must be one of {LOSS_KINDS}. Received: kind={kind!r}")


def regression_bounds(
    kind: str,
    low: float,
    high: float,
    targets: np.ndarray,
    *,
    delta: float = 1.0,
    tolerance: float = 0.25,
    spread: float = 1.25,
    correlation: float = 0.7,
) -> tuple[float, float]:
    """The initial regression losses a healthy fresh network may show, around `[low, high]` (recipe D12).

    A fresh network's output is its constant part (0, or the bias) plus a
    random spread `s` from its weights, independent of the targets up to
    a chance correlation `r`. For a loss quadratic in the residual (MSE;
    Huber and log-cosh when the targets' spread is within `delta`) it
    scores about `E[(y - c)^2] + s^2 - 2 r s std(y)`; for a linear one
    (MAE; Huber and log-cosh beyond `delta`) at most `E|y - c| + s`. The
    bounds let the spread reach `spread` (1.25) times the targets' spread,
    which Keras' default Glorot layers stay within (measured: 0.8-1.4x the
    variance for 1-2 hidden layers on standardized data), and the chance
    correlation reach `correlation` (0.7): the low end
    `(1 - r^2) * var(y)`, which a label leaking into the inputs (a loss
    near 0) stays far below. An output layer 1000x too large is far above.
    Neither bound is tighter than `tolerance` around `[low, high]`.

    Args:
        kind: One of `REGRESSION_KINDS`.
        low: The best constant's loss (`expected_initial_loss`).
        high: The zero output's loss.
        targets: The regression targets.
        delta: The Huber loss's `delta`. Defaults to `1.0`.
        tolerance: The relative tolerance the bounds are at least.
            Defaults to `0.25`.
        spread: The fresh output's spread allowed, in units of the targets'.
            Defaults to `1.25`.
        correlation: The chance correlation allowed between a fresh output
            and the targets. Defaults to `0.7`.

    Returns:
        `(lowest, highest)` losses that pass.

    Example:

    >>> lo, hi = regression_bounds("mse", 1.0, 1.0, np.random.default_rng(0).normal(size=100))
    >>> round(lo, 2), round(hi, 4)
    (0.51, 2.5625)
    """
    t = np.asarray(targets, dtype=np.float64)
    quadratic = kind == "mse" or (kind in ("huber", "log_cosh") and float(np.mean(t.std(axis=0))) <= delta)
    if quadratic:
        lowest, highest = low * (1.0 - correlation**2), high + spread**2 * low
    else:
        lowest, highest = low * math.sqrt(1.0 - correlation**2), high + spread * low
    return min(lowest, low * (1.0 - tolerance)), max(highest, high * (1.0 + tolerance))


def within_tolerance(measured: float, low: float, high: float, tolerance: float) -> tuple[bool, float]:
    """Whether `measured` lies in `[low, high]` widened by a relative `tolerance`.

    Returns `(ok, nearest)` where `nearest` is the point of `[low, high]`
    closest to `measured` (the value reported as expected).

    Example:

    >>> within_tolerance(2.5, 2.3026, 2.3026, 0.25)
    (True, 2.3026)
    """
    if not math.isfinite(measured):
        return False, low
    nearest = min(max(measured, low), high)
    return (low * (1.0 - tolerance) <= measured <= high * (1.0 + tolerance)), nearest


def relative_error(analytic: float, numeric: float, tiny: float = 1e-300) -> float:
    """`|a - n| / max(|a|, |n|, tiny)`, the gradient check's error (recipe D15).

    Example:

    >>> relative_error(2.0, 1.0)
    0.5
    """
    return abs(analytic - numeric) / max(abs(analytic), abs(numeric), tiny)


def gradient_step(values: np.ndarray, dtype_eps: float = float(np.finfo(np.float64).eps)) -> float:
    """The finite-difference step for one tensor: `eps^(1/3) * max(1, rms(w))`.

    The cube root of the machine epsilon balances the centered difference's
    truncation error (`O(h^2)`) against its round-off (`O(eps / h)`); scaling
    by the tensor's size keeps the step relative for large weights. About
    6e-6 in float64.

    Example:

    >>> round(gradient_step(np.zeros(3)) * 1e6, 2)
    6.06
    """
    values = np.asarray(values, dtype=np.float64)
    rms = float(np.sqrt(np.mean(values**2))) if values.size else 0.0
    return float(np.cbrt(dtype_eps) * max(1.0, rms))


def is_kink(forward: float, backward: float, noise: float, rtol: float = 1e-3) -> bool:
    """Whether a non-differentiable point lies within +-h of the coordinate.

    `forward = (f(w+h) - f(w)) / h` and `backward = (f(w) - f(w-h)) / h`
    differ by `h * f''(w)` (tiny) on a smooth function, and by the jump of
    the slope when a ReLU, abs or max input crosses its breakpoint between
    `w-h` and `w+h`. This detects kinks of any op, including custom ones,
    without knowing where the ops are.

    Args:
        forward: The forward difference.
        backward: The backward difference.
        noise: The round-off level of a difference (`eps * |f| / h`).
        rtol: Relative slope jump that counts as a kink. Defaults to `1e-3`.

    Example:

    >>> is_kink(1.0, 0.0, 1e-10), is_kink(1.0, 1.0 - 1e-9, 1e-10)
    (True, False)
    """
    jump = abs(forward - backward)
    return jump > rtol * max(abs(forward), abs(backward)) and jump > 100.0 * noise


def classify_error(
    error: float, kink: bool, good: float = 1e-7, acceptable: float = 1e-4, bug: float = 1e-2
) -> str:
    """`"good"`, `"acceptable"`, `"suspicious"`, `"bug"`, or `"kink"` (recipe D15).

    Below `good` the gradient is right; up to `acceptable` it is what
    kinks and deep nets give; above `bug` the gradient is wrong. A kink
    makes the numerical gradient meaningless: such coordinates are reported
    apart, never as failures.

    Example:

    >>> classify_error(1e-9, False), classify_error(0.5, False), classify_error(0.5, True)
    ('good', 'bug', 'kink')
    """
    if kink:
        return "kink"
    if not math.isfinite(error) or error > bug:
        return "bug"
    if error <= good:
        return "good"
    if error <= acceptable:
        return "acceptable"
    return "suspicious"
