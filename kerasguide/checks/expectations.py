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
    "class_prior",
    "expected_initial_loss",
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
)

LossKind = Literal[
    "crossentropy",
    "binary_crossentropy",
    "multiclass_hinge",
    "crammer_singer_hinge",
    "mse_onehot",
    "mse",
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


def expected_initial_loss(
    kind: LossKind,
    prior: np.ndarray | None = None,
    *,
    label_smoothing: float = 0.0,
    margin: float = 1.0,
    targets: np.ndarray | None = None,
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
    - MSE against real targets: `mean(y^2)` at zero output, `var(y)` for a
      mean-predicting model.

    Args:
        kind: One of `LOSS_KINDS`.
        prior: Class frequencies (length C) for the classification kinds.
            Defaults to `None`.
        label_smoothing: Cross-entropy label smoothing epsilon.
            Defaults to `0.0`.
        margin: The hinge margin. Defaults to `1.0`.
        targets: The regression targets, for `kind="mse"`. Defaults to `None`.

    Returns:
        `(low, high)` with `low <= high`.

    Example:

    >>> lo, hi = expected_initial_loss("crossentropy", np.full(10, 0.1))
    >>> round(lo, 3), round(hi, 3)
    (2.303, 2.303)
    """
    if kind == "mse":
        if targets is None:
            raise ValueError("Argument `targets` is required for kind='mse'. Received: targets=None")
        t = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
        zero_output = float(np.mean(t**2))
        mean_output = float(np.mean(t.var(axis=0)))
        return min(zero_output, mean_output), max(zero_output, mean_output)
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
