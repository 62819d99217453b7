"""Overfit a tiny subset (recipe D14)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from kerasguide.checks._keras import (
    accuracy,
    as_array,
    data_loss,
    keras,
    noise_off,
    preserve_state,
    resolve_loss,
    variable_name,
)
from kerasguide.checks.result import CheckResult

__all__ = ["check_overfit"]


def _fresh_optimizer(model: keras.Model, optimizer: Any) -> keras.optimizers.Optimizer:
    # A new instance with the same settings: the user's optimizer (and its
    # slots and step count) is never touched.
    if optimizer is None:
        optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return keras.optimizers.Adam(1e-3)
    if isinstance(optimizer, str):
        return keras.optimizers.get(optimizer)
    return optimizer.__class__.from_config(optimizer.get_config())


def _subset(x, y, examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_array(x), as_array(y)
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} examples, {len(y)} labels")
    if examples < len(x):
        keep = np.sort(np.random.default_rng(seed).choice(len(x), size=examples, replace=False))
        x, y = x[keep], y[keep]
    return x, y


def check_overfit(
    model: keras.Model,
    x,
    y,
    *,
    loss: Any = None,
    optimizer: Any = None,
    examples: int = 20,
    steps: int = 200,
    min_accuracy: float = 0.99,
    loss_ratio: float = 0.05,
    seed: int = 0,
) -> CheckResult:
    """Overfit a tiny subset: a healthy model fits 20 examples perfectly (recipe D14).

    Trains on `examples` training examples, full batch, for at most `steps`
    steps, with regularization off (the data loss alone) and dropout and
    noise off, using a fresh copy of the model's optimizer. It passes when
    the train accuracy reaches `min_accuracy` (classification) or the loss
    falls below `loss_ratio` times its start (regression). A model that
    cannot fit 20 examples has a bug: a `stop_gradient` in the path, inputs
    disconnected from the output, labels that do not match the inputs, or a
    learning rate far too low. Tensors that receive no gradient are named.
    The model's weights and optimizer state are restored afterwards.

    Args:
        model: The Keras model (compiled, or pass `loss`).
        x: Training inputs.
        y: Training labels or targets.
        loss: The loss; the compiled `model.loss` if None. Defaults to `None`.
        optimizer: Optimizer whose settings are copied; the compiled one, or
            Adam(1e-3), if None. Defaults to `None`.
        examples: Size of the subset. Defaults to `20`.
        steps: Maximum number of full-batch steps. Defaults to `200`.
        min_accuracy: Train accuracy to reach. Defaults to `0.99`.
        loss_ratio: Final/initial loss to reach when there is no accuracy.
            Defaults to `0.05`.
        seed: Picks the subset. Defaults to `0`.

    Returns:
        A `CheckResult` named `overfit`; `details["curve"]` holds the last
        values of the loss (and accuracy) curve.

    Example:

    ```python
    result = kerasguide.checks.check_overfit(model, x_train, y_train, examples=20)
    result.passed, result.measured   # True 1.0
    ```
    """
    for name, value in (("examples", examples), ("steps", steps)):
        if value <= 0:
            raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")
    if not 0 < min_accuracy <= 1:
        raise ValueError(f"Argument `min_accuracy` must be in (0, 1]. Received: min_accuracy={min_accuracy}")
    loss = resolve_loss(model, loss)
    x, y = _subset(x, y, examples, seed)
    xt = tf.convert_to_tensor(x)
    yt = tf.convert_to_tensor(y)
    opt = _fresh_optimizer(model, optimizer)
    variables = list(model.trainable_variables)
    losses: list[float] = []
    accuracies: list[float] = []
    no_gradient: list[str] = []
    with preserve_state(model), noise_off(model):
        with tf.GradientTape() as tape:
            pred = model(xt, training=True)
            value = data_loss(loss, yt, pred)
        grads = tape.gradient(value, variables)
        no_gradient = [variable_name(v) for v, g in zip(variables, grads, strict=False) if g is None]
        trained = [v for v, g in zip(variables, grads, strict=False) if g is not None]
        if trained:
            opt.build(trained)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                out = model(xt, training=True)
                step_loss = data_loss(loss, yt, out)
            gradients = tape.gradient(step_loss, trained)
            opt.apply_gradients(zip(gradients, trained, strict=False))
            return step_loss, out

        done = 0
        initial = float(value)
        for step_number in range(1, steps + 1):
            if not trained:
                break
            done = step_number
            step_loss, out = step()
            losses.append(float(step_loss))
            acc = accuracy(y, as_array(out))
            if acc is not None:
                accuracies.append(acc)
            if not math.isfinite(losses[-1]):
                break
            # Stop once the subset is fitted: every example right, loss near zero.
            if acc is not None and acc >= min_accuracy and losses[-1] <= loss_ratio * initial:
                break
        final_pred = as_array(model(xt, training=True))
        final_loss = float(data_loss(loss, yt, final_pred))
        final_acc = accuracy(y, final_pred)
    curve = {"loss": [round(v, 6) for v in losses[-10:]]}
    if accuracies:
        curve["accuracy"] = [round(v, 4) for v in accuracies[-10:]]
    details: dict[str, Any] = {
        "examples": int(len(x)),
        "steps": int(done if trained else 0),
        "max_steps": steps,
        "initial_loss": initial,
        "final_loss": final_loss,
        "final_accuracy": final_acc,
        "optimizer": type(opt).__name__,
        "learning_rate": _learning_rate(opt),
        "no_gradient": no_gradient,
        "curve": curve,
    }
    if final_acc is not None:
        # Trainable tensors that get no gradient at all are a bug even when the
        # layers after them can still memorize 20 examples.
        passed = final_acc >= min_accuracy and not no_gradient
        measured, expected, tolerance = final_acc, 1.0, 1.0 - min_accuracy
        reached = f"train accuracy {final_acc:.3f}, loss {final_loss:.4g}"
    else:
        ratio = final_loss / initial if initial > 0 else math.inf
        passed = math.isfinite(ratio) and ratio <= loss_ratio and not no_gradient
        measured, expected, tolerance = ratio, 0.0, loss_ratio
        details["loss_ratio"] = ratio
        reached = f"loss {initial:.4g} -> {final_loss:.4g}"
    if passed:
        advice = f"Fitted {len(x)} examples in {details['steps']} steps: {reached} (recipe D14)."
        return CheckResult("overfit", True, measured, expected, tolerance, advice, "D14", "info", details)
    last = ", ".join(f"{v:.3g}" for v in losses[-5:]) or "no step taken"
    if not trained:
        cause = f"no trainable tensor receives a gradient ({', '.join(no_gradient[:3]) or 'none exist'})"
    elif no_gradient:
        cause = (
            f"{', '.join(no_gradient[:3])} receive{'s' if len(no_gradient) == 1 else ''} no gradient "
            "(a stop_gradient or a disconnected path?); make frozen weights trainable=False"
        )
    elif losses and not math.isfinite(losses[-1]):
        cause = "the loss became NaN/Inf: lower the learning rate"
    else:
        cause = "check that the inputs reach the output, the labels match the inputs, and the learning rate"
    fitted = (final_acc is not None and final_acc >= min_accuracy) or (
        final_acc is None and details.get("loss_ratio", math.inf) <= loss_ratio
    )
    if fitted:  # only the layers after a stop_gradient learned
        advice = f"Only part of the model learns ({reached} on {len(x)} examples): {cause} (recipe D14)."
    else:
        advice = (
            f"Cannot overfit {len(x)} examples in {details['steps']} steps ({reached}; last losses {last}): "
            f"{cause} (recipe D14)."
        )
    return CheckResult("overfit", False, measured, expected, tolerance, advice, "D14", "error", details)


def _learning_rate(optimizer) -> float | None:
    try:
        return float(as_array(optimizer.learning_rate))
    except (TypeError, ValueError, AttributeError):
        return None
