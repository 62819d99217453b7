"""Initial loss at chance (recipe D12) and regularization raises the loss (D13)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kerasguide.checks._keras import (
    as_array,
    data_loss,
    keras,
    loss_kind,
    noise_off,
    preserve_state,
    resolve_loss,
    variable_name,
)
from kerasguide.checks.expectations import class_prior, expected_initial_loss, within_tolerance
from kerasguide.checks.result import CheckResult

__all__ = ["check_initial_loss", "check_regularization"]


def _probe(x, y, examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_array(x), as_array(y)
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} examples, {len(y)} labels")
    if len(x) == 0:
        raise ValueError("Argument `x` is empty")
    if examples < len(x):
        keep = np.sort(np.random.default_rng(seed).choice(len(x), size=examples, replace=False))
        x, y = x[keep], y[keep]
    return x, y


def _mean_loss(model, loss, x, y, batch_size: int) -> tuple[float, np.ndarray]:
    total, count, outputs = 0.0, 0, []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        pred = model(xb, training=True)
        total += float(data_loss(loss, yb, pred)) * len(xb)
        count += len(xb)
        outputs.append(as_array(pred))
    return total / count, np.concatenate(outputs, axis=0)


def check_initial_loss(
    model: keras.Model,
    x,
    y,
    *,
    loss: Any = None,
    num_classes: int | None = None,
    tolerance: float = 0.25,
    examples: int = 512,
    batch_size: int = 128,
    seed: int = 0,
) -> CheckResult:
    """Initial loss at chance: the data loss of a fresh model vs its expected value (recipe D12).

    The data loss alone (the loss function on the model's outputs, no
    regularization terms, dropout and noise off) is averaged over a few
    batches and compared with what chance predicts: `ln C` for softmax
    cross-entropy with balanced classes (2.302 for 10), the entropy of the
    class prior when they are unbalanced (adjusted for label smoothing),
    `C - 1` for the multiclass hinge, the targets' variance for MSE (see
    `expected_initial_loss`). A loss far above chance means the output
    layer's weights are too large; far below, the labels leak or the model
    is not fresh. Weights, batch-norm statistics and optimizer state are
    restored afterwards.

    Args:
        model: A freshly initialized Keras model (compiled, or pass `loss`).
        x: Training inputs.
        y: Training labels (integer ids or one-hot) or targets.
        loss: The loss; the compiled `model.loss` if None. Defaults to `None`.
        num_classes: Classes; the model's output width if None.
            Defaults to `None`.
        tolerance: Relative tolerance around the expected range.
            Defaults to `0.25`.
        examples: Examples averaged over (a random subset). Defaults to `512`.
        batch_size: Batch size of the forward passes. Defaults to `128`.
        seed: Picks the subset. Defaults to `0`.

    Returns:
        A `CheckResult` named `initial_loss`; `details` hold the measured
        and expected losses (`loss`, `expected_loss`, `uniform_loss`,
        `prior_loss`).

    Example:

    ```python
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    result = kerasguide.checks.check_initial_loss(model, x_train, y_train)
    print(result.measured, result.expected)   # e.g. 2.36 2.303
    ```
    """
    if tolerance <= 0:
        raise ValueError(f"Argument `tolerance` must be > 0. Received: tolerance={tolerance}")
    loss = resolve_loss(model, loss)
    x, y = _probe(x, y, examples, seed)
    with preserve_state(model), noise_off(model):
        measured, outputs = _mean_loss(model, loss, x, y, batch_size)
    kind, params = loss_kind(loss)
    width = outputs.shape[-1] if outputs.ndim > 1 else 1
    classes = int(num_classes or width)
    details: dict[str, Any] = {
        "loss": measured,
        "loss_function": getattr(loss, "name", None) or getattr(loss, "__name__", type(loss).__name__),
        "kind": kind,
        "num_classes": classes,
        "examples": int(len(x)),
        "output_mean": float(np.mean(outputs)),
        "output_std": float(np.std(outputs)),
    }
    if kind is None:
        return CheckResult(
            "initial_loss",
            True,
            measured,
            None,
            tolerance,
            f"No expected initial value is known for the loss {details['loss_function']!r}; "
            "check by hand that it starts at chance (recipe D12).",
            "D12",
            "warning",
            {**details, "skipped": True},
        )
    y_arr = np.asarray(y)
    if kind == "mse":
        low, high = expected_initial_loss("mse", targets=y_arr.astype(np.float64))
        prior = None
    else:
        if kind == "binary_crossentropy":
            prior = y_arr.reshape(len(y_arr), -1).astype(np.float64).mean(axis=0)
        else:
            prior = class_prior(y_arr, classes)
        low, high = expected_initial_loss(
            kind, prior, label_smoothing=params.get("label_smoothing", 0.0), margin=params.get("margin", 1.0)
        )
    ok, expected = within_tolerance(measured, low, high, tolerance)
    details.update(
        expected_loss=expected,
        expected_low=low,
        expected_high=high,
        uniform_loss=high if kind == "crossentropy" else None,
        prior_loss=low if kind == "crossentropy" else None,
        label_smoothing=params.get("label_smoothing"),
    )
    if prior is not None and kind != "binary_crossentropy":
        details["class_prior"] = [round(float(p), 6) for p in prior]
    if ok:
        advice = f"Initial loss {measured:.4g} is at chance ({_range(low, high)}) (recipe D12)."
        return CheckResult(
            "initial_loss", True, measured, expected, tolerance, advice, "D12", "info", details
        )
    if not math.isfinite(measured):
        advice = (
            f"Initial loss is {measured}: the network produces NaN or Inf before any training; "
            "check the inputs for NaN and the output layer (recipe D12)."
        )
    elif measured > high:
        advice = (
            f"Initial loss {measured:.4g}, expected {_range(low, high)}: the output layer's weights "
            "are too large; check its initializer and activation (recipe D12)."
        )
    else:
        advice = (
            f"Initial loss {measured:.4g} is below chance ({_range(low, high)}): the model is not "
            "freshly initialized, or the labels leak into the inputs (recipe D12)."
        )
    return CheckResult("initial_loss", False, measured, expected, tolerance, advice, "D12", "error", details)


def _range(low: float, high: float) -> str:
    if math.isclose(low, high, rel_tol=1e-3):
        return f"{high:.4g}"
    return f"{low:.4g} to {high:.4g}"


def check_regularization(
    model: keras.Model,
    x,
    y,
    *,
    loss: Any = None,
    factor: float = 10.0,
    examples: int = 256,
    seed: int = 0,
) -> CheckResult:
    """Raising the regularization strength must raise the loss (recipe D13).

    On the model's current weights, the data loss plus the regularization
    losses (`model.losses`: kernel, bias and activity regularizers) scaled by
    `factor` must exceed the data loss with no regularization. Keras'
    L1/L2 penalties are linear in their strength, so scaling the losses is
    scaling the strength. Each weight's penalty is listed in `details`; a
    penalty below zero (a regularizer whose sign is flipped) is named.
    A model without regularization passes with an info note.

    Args:
        model: The Keras model (compiled, or pass `loss`).
        x: Training inputs.
        y: Training labels or targets.
        loss: The loss; the compiled `model.loss` if None. Defaults to `None`.
        factor: Strength multiplier. Defaults to `10.0`.
        examples: Examples in the probe batch. Defaults to `256`.
        seed: Picks the probe batch. Defaults to `0`.

    Returns:
        A `CheckResult` named `regularization`: `measured` is the loss with
        the strength x`factor`, `expected` the data loss it must exceed.

    Example:

    ```python
    result = kerasguide.checks.check_regularization(model, x_train, y_train)
    result.details["penalties"]   # {"dense/kernel": 0.0123, ...}
    ```
    """
    if factor <= 1:
        raise ValueError(f"Argument `factor` must be > 1. Received: factor={factor}")
    loss = resolve_loss(model, loss)
    x, y = _probe(x, y, examples, seed)
    with preserve_state(model), noise_off(model):
        pred = model(x, training=True)
        base = float(data_loss(loss, y, pred))
        extra = [float(v) for v in model.losses]
        penalties = {
            variable_name(v): float(v.regularizer(v))
            for v in model.trainable_weights
            if getattr(v, "regularizer", None) is not None
        }
    reg = float(np.sum(extra)) if extra else 0.0
    scaled = base + factor * reg
    details = {
        "data_loss": base,
        "regularization_loss": reg,
        "scaled_loss": scaled,
        "factor": factor,
        "penalties": penalties,
        "terms": len(extra),
    }
    if not extra:
        details["skipped"] = True
        return CheckResult(
            "regularization",
            True,
            base,
            base,
            0.0,
            "The model has no regularizer: nothing to compare (recipe D13).",
            "D13",
            "info",
            details,
        )
    if scaled > base and reg > 0:
        advice = f"Regularization x{factor:g} raises the loss from {base:.4g} to {scaled:.4g} (recipe D13)."
        return CheckResult("regularization", True, scaled, base, 0.0, advice, "D13", "info", details)
    negative = [name for name, value in penalties.items() if value < 0]
    if negative:
        culprit = f"the penalty on {', '.join(negative[:3])} is {penalties[negative[0]]:.3g} < 0"
    elif reg < 0:
        culprit = f"an activity or added loss is negative ({reg:.3g})"
    else:
        culprit = "the regularization terms add nothing (a zero strength, or all-zero weights)"
    advice = (
        f"Regularization x{factor:g} does not raise the loss ({base:.4g} -> {scaled:.4g}): {culprit}; "
        "check the regularizer's sign and strength (recipe D13)."
    )
    return CheckResult("regularization", False, scaled, base, 0.0, advice, "D13", "error", details)
