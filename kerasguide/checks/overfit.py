"""Overfit a tiny subset (recipe D14)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from kerasguide.activations import activation_kind
from kerasguide.causes import overfit_cause
from kerasguide.checks._keras import (
    accuracy,
    as_array,
    data_loss,
    heads_of,
    keras,
    loss_kind,
    noise_off,
    pick,
    preserve_state,
    resolve_loss,
    subset,
    to_tensors,
    variable_name,
)
from kerasguide.checks.expectations import REGRESSION_KINDS, fit_residual
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


def _subset(x, y, examples: int, seed: int) -> tuple[Any, Any]:
    return subset(x, y, examples, seed)


def _rule(head_loss: Any, y: np.ndarray, pred: np.ndarray) -> str:
    """How a head's fit is judged: "accuracy" (class scores), "residual" (regression), or "ratio"."""
    kind, params = loss_kind(head_loss)
    binary = kind == "binary_crossentropy"
    if accuracy(y, pred, binary=binary, from_logits=bool(params.get("from_logits"))) is not None:
        return "accuracy"
    y, pred = np.asarray(y), np.asarray(pred)
    same_shape = y.size == pred.size and len(y) == len(pred)
    if same_shape and np.issubdtype(y.dtype, np.number) and (kind in REGRESSION_KINDS or kind is None):
        return "residual"
    return "ratio"


def _judge(head_loss: Any, rule: str, y, pred, loss_value: float, initial: float, min_accuracy: float,
           loss_ratio: float, max_residual: float) -> dict[str, Any]:
    """One head's fit: its measure, the threshold, and whether it passed."""
    kind, params = loss_kind(head_loss)
    if rule == "accuracy":
        acc = accuracy(y, pred, binary=kind == "binary_crossentropy", from_logits=bool(params.get("from_logits")))
        return {"rule": rule, "measured": acc, "expected": 1.0, "tolerance": 1.0 - min_accuracy,
                "passed": acc >= min_accuracy, "reached": f"train accuracy {acc:.3f}, loss {loss_value:.4g}"}
    if rule == "residual":
        # Scale-free: the squared residual against the targets' variance (1 - R^2), whatever the loss
        # trained and whatever the targets' units: 0.05 means 95 % of the variance fitted.
        residual = fit_residual(y, pred)
        return {"rule": rule, "measured": residual, "expected": 0.0, "tolerance": max_residual,
                "passed": math.isfinite(residual) and residual <= max_residual,
                "reached": f"loss {initial:.4g} -> {loss_value:.4g}, residual {residual:.3g} of the targets' "
                           "variance"}
    ratio = loss_value / initial if initial > 0 else math.inf
    return {"rule": rule, "measured": ratio, "expected": 0.0, "tolerance": loss_ratio,
            "passed": math.isfinite(ratio) and ratio <= loss_ratio, "reached": f"loss {initial:.4g} -> {loss_value:.4g}"}


def _output_layer(model: keras.Model, head, names: list[str] | None):
    """The layer that produces a head's output, or None (a subclassed model)."""
    if not getattr(model, "outputs", None):
        return None
    try:
        if names and head.name in names:
            return model.get_layer(head.name)
        if head.key is None or isinstance(model, keras.Sequential):
            return model.layers[-1]
        return model.get_layer(names[head.key]) if names and isinstance(head.key, int) else None
    except (ValueError, IndexError, AttributeError):
        return None


def _standardize_linear_targets(model: keras.Model, heads, rules: dict[str, str], y, names):
    """Regression targets of a linear output standardized for the fit; `(y, {head: {"mean", "std"}})`.

    With a linear output layer, fitting `(y - mean) / std` instead of `y` is only a reparametrization
    of that layer (its weights / std, its bias shifted): the model can fit one exactly when it can fit
    the other. It keeps the check about the model, not about how far 200 steps of the compiled
    optimizer can move an output that starts near 0 towards targets of mean 150 and std 77 (raw
    load_diabetes). An output with an activation (relu, sigmoid) keeps the raw targets, which its
    range may be made for.
    """
    done: dict[str, dict[str, list[float]]] = {}
    for head in heads:
        if rules[head.name] != "residual":
            continue
        layer = _output_layer(model, head, names)
        if not isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)) or activation_kind(layer):
            continue
        target = np.asarray(pick(y, head, names), dtype=np.float64)
        flat = target.reshape(len(target), -1)
        mean, std = flat.mean(axis=0), flat.std(axis=0)
        if np.allclose(mean, 0.0, atol=0.1 * np.maximum(std, 1e-12)) and np.allclose(std, 1.0, rtol=0.5):
            continue  # already about standardized
        scaled = ((flat - mean) / np.where(std > 0, std, 1.0)).reshape(target.shape).astype(
            target.dtype if np.issubdtype(np.asarray(pick(y, head, names)).dtype, np.floating) else np.float32)
        y = _replace(y, head, scaled, names)
        done[head.name] = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    return y, done


def _replace(y, head, value, names):
    if head.key is None:
        return value
    if isinstance(y, dict):
        key = head.key if head.key in y else head.name
        return {**y, key: value}
    out = list(y)
    out[head.key if isinstance(head.key, int) else names.index(head.name)] = value
    return type(y)(out)


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
    max_residual: float = 0.1,
    extra_steps: int | None = None,
    seed: int = 0,
) -> CheckResult:
    """Overfit a tiny subset: a healthy model fits 20 examples perfectly (recipe D14).

    Trains on `examples` training examples, full batch, for at most `steps`
    steps (more, up to `steps + extra_steps`, while the loss still falls
    fast), with regularization off (the data loss alone) and dropout and
    noise off, using a fresh copy of the model's optimizer. It passes when
    every output fits: a classifier's train accuracy reaches `min_accuracy`
    (argmax over class scores with integer or one-hot labels; a sigmoid
    output with binary cross-entropy by its 0.5 threshold); a regression
    output's squared residual falls below `max_residual` (0.1) times the
    targets' variance (`fit_residual`: 1 - R^2, so the rule does not depend on the
    targets' units, nor on which regression loss is trained; for a linear
    output the targets are standardized for the fit, a reparametrization of
    the output layer, so that 200 steps need not carry the output from 0
    to targets of mean 150); any other
    loss falls below `loss_ratio` times its start. A model that cannot fit
    20 examples has a bug: a `stop_gradient` in the path, a frozen body,
    inputs disconnected from the output, labels that do not match the
    inputs, or a learning rate far too low. Tensors that receive no
    gradient are named. The model's weights and optimizer state are
    restored afterwards.

    Args:
        model: The Keras model (compiled, or pass `loss`).
        x: Training inputs (an array, or a dict or list of arrays).
        y: Training labels or targets (a dict or list for several outputs).
        loss: The loss; the compiled `model.loss` if None. Defaults to `None`.
        optimizer: Optimizer whose settings are copied; the compiled one, or
            Adam(1e-3), if None. Defaults to `None`.
        examples: Size of the subset. Defaults to `20`.
        steps: Maximum number of full-batch steps. Defaults to `200`.
        min_accuracy: Train accuracy to reach. Defaults to `0.99`.
        loss_ratio: Final / initial loss to reach for a loss that is neither
            classification nor regression (and, with the accuracy, a
            classifier's early stop). Defaults to `0.05`.
        max_residual: Squared residual / targets' variance to reach for a
            regression output (1 - R^2: 0.1 is 90 % of the variance fitted;
            an exact fit of real values takes more steps than argmax
            accuracy, and a frozen body or a disconnected input stays near
            1). Defaults to `0.1`.
        extra_steps: Steps a model that is not fitted after `steps` but whose
            loss still falls fast (10 % over the last quarter of `steps`) gets
            on top, a quarter of `steps` at a time; None: `steps` more.
            Defaults to `None`.
        seed: Picks the subset. Defaults to `0`.

    Returns:
        A `CheckResult` named `overfit`; `details["curve"]` holds the last
        values of the loss (and accuracy) curve, `details["rule"]` how the
        fit was judged (`"accuracy"`, `"residual"` or `"ratio"`), per output
        `details["heads"]`.

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
    if not max_residual > 0:
        raise ValueError(f"Argument `max_residual` must be > 0. Received: max_residual={max_residual}")
    if extra_steps is not None and extra_steps < 0:
        raise ValueError(f"Argument `extra_steps` must be >= 0 or None. Received: extra_steps={extra_steps}")
    loss = resolve_loss(model, loss)
    x, y = _subset(x, y, examples, seed)
    xt = to_tensors(x)
    names = getattr(model, "output_names", None)
    heads = heads_of(loss)
    opt = _fresh_optimizer(model, optimizer)
    variables = list(model.trainable_variables)
    losses: list[float] = []
    accuracies: list[float] = []
    no_gradient: list[str] = []
    grad_rms: list[list[float]] = []
    update_ratios: list[float] = []
    with preserve_state(model), noise_off(model):
        outputs0 = keras.tree.map_structure(as_array, model(xt, training=True))
        rules = {h.name: _rule(h.loss, pick(y, h, names), pick(outputs0, h, names)) for h in heads}
        y, standardized = _standardize_linear_targets(model, heads, rules, y, names)
        yt = to_tensors(y)
        with tf.GradientTape() as tape:
            pred = model(xt, training=True)
            value = data_loss(loss, yt, pred, names)
        grads = tape.gradient(value, variables)
        no_gradient = [variable_name(v) for v, g in zip(variables, grads, strict=False) if g is None]
        trained = [v for v, g in zip(variables, grads, strict=False) if g is not None]
        if trained:
            opt.build(trained)
        initial_heads = {h.name: float(data_loss(h.loss, pick(yt, h, names), pick(pred, h, names))) for h in heads}

        # Kernels (weights of rank >= 2), in layer order: their gradient RMS and update:weight ratio per step
        # tell a too-low rate (tiny updates) from vanishing gradients (tiny first-layer gradients) (issue 13).
        kernels = [i for i, v in enumerate(trained) if len(v.shape) >= 2]

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                out = model(xt, training=True)
                step_loss = data_loss(loss, yt, out, names)
            gradients = tape.gradient(step_loss, trained)
            before = [tf.identity(trained[i]) for i in kernels]
            opt.apply_gradients(zip(gradients, trained, strict=False))
            rms = [tf.sqrt(tf.reduce_mean(tf.square(tf.cast(gradients[i], tf.float32)))) for i in kernels]
            ratio = [tf.norm(tf.cast(trained[i] - b, tf.float32)) / (tf.norm(tf.cast(b, tf.float32)) + 1e-12)
                     for i, b in zip(kernels, before, strict=True)]
            return step_loss, out, tf.stack(rms or [0.0]), tf.stack(ratio or [0.0])

        done = 0
        initial = float(value)
        extra = steps if extra_steps is None else extra_steps
        window = max(1, steps // 4)
        limit, step_number = steps, 0
        while step_number < limit:
            if not trained:
                break
            step_number += 1
            done = step_number
            step_loss, out, rms, ratio = step()
            losses.append(float(step_loss))
            grad_rms.append([float(v) for v in rms.numpy()])
            update_ratios.append(float(np.median(ratio.numpy())))
            out = keras.tree.map_structure(as_array, out)
            verdicts = [_judge(h.loss, rules[h.name], pick(y, h, names), pick(out, h, names), losses[-1],
                               initial, min_accuracy, loss_ratio, max_residual) if rules[h.name] != "ratio" else None
                        for h in heads]
            first = verdicts[0]
            if first is not None and first["rule"] == "accuracy":
                accuracies.append(first["measured"])
            if not math.isfinite(losses[-1]):
                break
            # Stop once the subset is fitted: every output fitted, and a classifier's loss near zero too.
            fitted_now = all(v is not None and v["passed"] for v in verdicts)
            if fitted_now and ("accuracy" not in rules.values() or losses[-1] <= loss_ratio * initial):
                break
            # Not fitted yet but still learning fast (the loss 10 % lower than a quarter of the steps
            # ago): a slow healthy model (Adam at 1e-3 on hard-to-separate points) gets more steps, up to
            # `extra_steps` more; a broken one has long flattened out by then.
            if step_number == limit and not fitted_now and limit < steps + extra and len(losses) > window \
                    and losses[-1] < 0.9 * losses[-1 - window]:
                limit = min(steps + extra, limit + window)
        final_pred = model(xt, training=True)
        final_loss = float(data_loss(loss, yt, final_pred, names))
        final_heads = {h.name: float(data_loss(h.loss, pick(yt, h, names), pick(final_pred, h, names)))
                       for h in heads}
        final_out = keras.tree.map_structure(as_array, final_pred)
    judged = {h.name: _judge(h.loss, rules[h.name], pick(y, h, names), pick(final_out, h, names),
                             final_heads[h.name], initial_heads[h.name], min_accuracy, loss_ratio, max_residual)
              for h in heads}
    curve = {"loss": [round(v, 6) for v in losses[-10:]]}
    if accuracies:
        curve["accuracy"] = [round(v, 4) for v in accuracies[-10:]]
    main = judged[heads[0].name]
    final_acc = main["measured"] if main["rule"] == "accuracy" and len(heads) == 1 else None
    details: dict[str, Any] = {
        "examples": int(len(keras.tree.flatten(x)[0])),
        "steps": int(done if trained else 0),
        "max_steps": steps,
        "extended": bool(done > steps),
        "initial_loss": initial,
        "final_loss": final_loss,
        "final_accuracy": final_acc,
        "rule": main["rule"] if len(heads) == 1 else "per output",
        "optimizer": type(opt).__name__,
        "learning_rate": _learning_rate(opt),
        "no_gradient": no_gradient,
        "curve": curve,
    }
    details.update(_step_signals(trained, kernels if trained else [], losses,
                                 grad_rms, update_ratios))
    if standardized:
        details["standardized_targets"] = standardized
    if len(heads) > 1:
        details["heads"] = judged
        failing = [n for n, j in judged.items() if not j["passed"]]
        worst = judged[failing[0]] if failing else main
        fits = all(j["passed"] for j in judged.values())
        measured, expected, tolerance = worst["measured"], worst["expected"], worst["tolerance"]
        reached = "; ".join(f"{n}: {j['reached']}" for n, j in judged.items())
    else:
        fits = main["passed"]
        measured, expected, tolerance = main["measured"], main["expected"], main["tolerance"]
        reached = main["reached"]
        if main["rule"] != "accuracy":
            details["loss_ratio"] = measured  # residual / variance, or final / initial loss
            details["ratio_of"] = "targets' variance" if main["rule"] == "residual" else "initial loss"
    # Trainable tensors that get no gradient at all are a bug even when the layers after them can still
    # memorize 20 examples.
    passed = fits and not no_gradient
    x_count = details["examples"]
    if passed:
        advice = f"Fitted {x_count} examples in {details['steps']} steps: {reached} (recipe D14)."
        return CheckResult("overfit", True, measured, expected, tolerance, advice, "D14", "info", details)
    last = ", ".join(f"{v:.3g}" for v in losses[-5:]) or "no step taken"
    if not trained:
        cause = f"no trainable tensor receives a gradient ({', '.join(no_gradient[:3]) or 'none exist'})"
    elif no_gradient:
        cause = (
            f"{', '.join(no_gradient[:3])} receive{'s' if len(no_gradient) == 1 else ''} no gradient "
            "(a stop_gradient or a disconnected path?); make frozen weights trainable=False"
        )
    elif (likely := overfit_cause(details)) is not None:
        cause = f"likely {likely.code}: {likely.sentence}"
    elif losses and not math.isfinite(losses[-1]):
        cause = "the loss became NaN/Inf: lower the learning rate"
    else:
        cause = ("check that the inputs reach the output, the labels match the inputs, that the layers "
                 "that must learn are trainable, and the learning rate")
    if fits:  # only the layers after a stop_gradient learned
        advice = f"Only part of the model learns ({reached} on {x_count} examples): {cause} (recipe D14)."
    else:
        advice = (
            f"Cannot overfit {x_count} examples in {details['steps']} steps ({reached}; last losses {last}): "
            f"{cause} (recipe D14)."
        )
    return CheckResult("overfit", False, measured, expected, tolerance, advice, "D14", "error", details)


def _finite(value: float) -> float | None:
    return round(float(value), 8) if math.isfinite(value) else None


def _step_signals(trained: list, kernels: list[int], losses: list[float], grad_rms: list[list[float]],
                  update_ratios: list[float]) -> dict[str, Any]:
    """What tells the causes of a failed fit apart, for the diagnosis of a run the check stopped.

    The loss curve thinned to at most 21 points (first and last kept), the update:weight ratios (step 1's
    and the median over steps, as the monitors measure them during training), each kernel's gradient RMS
    at step 1 (first layer first) and the first/last ratio, the narrowest layer's width and the parameter
    count (capacity).
    """
    n = len(losses)
    picks = sorted({round(i * (n - 1) / 20) for i in range(21)}) if n else []
    out: dict[str, Any] = {"loss_trace": [[i + 1, _finite(losses[i])] for i in picks]}
    finite = [v for v in losses if math.isfinite(v)]
    out["loss_max"] = _finite(max(finite)) if finite else None
    ratios = [v for v in update_ratios if math.isfinite(v)]
    out["update_ratio_first"] = _finite(ratios[0]) if ratios else None
    out["update_ratio"] = _finite(float(np.median(ratios))) if ratios else None
    names = [variable_name(trained[i]) for i in kernels]
    first = grad_rms[0] if grad_rms else []
    out["grad_rms"] = {name: _finite(v) for name, v in zip(names, first, strict=False)}
    if len(first) >= 2 and math.isfinite(first[0]) and math.isfinite(first[-1]) and first[-1] > 0:
        out["grad_ratio"] = _finite(first[0] / first[-1])
    widths = [int(trained[i].shape[-1]) for i in kernels]
    out["narrowest"] = min(widths[:-1]) if len(widths) > 1 else None
    out["output_width"] = widths[-1] if widths else None
    out["parameters"] = int(sum(int(np.prod(v.shape)) for v in trained))
    return out


def _learning_rate(optimizer) -> float | None:
    try:
        return float(as_array(optimizer.learning_rate))
    except (TypeError, ValueError, AttributeError):
        return None
