"""The few named numbers the rules read, measured from a run's `Signals`."""

from __future__ import annotations

import math
import statistics
from typing import Any

from kerasguide.diagnosis.findings import Signals

__all__ = ["measure", "is_finite"]


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _series(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) if is_finite(r.get(key)) else math.nan for r in rows if key in r]


def _tail_mean(values: list[float], n: int = 3) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite[-n:]) if finite else math.nan


def _median(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def measure(signals: Signals) -> dict[str, float]:
    """The numbers the rules read, from a run's signals. Missing signals give NaN.

    - `loss_start`: the loss at initialization (the first batch's loss if recorded, else epoch 1's loss);
      `loss_final` (mean of the last three epochs), `loss_min`; `progress`: `1 - loss_final / loss_start`;
      `late_progress`: relative decrease of the epoch loss over the last third of the epochs (at least 2);
      `nonfinite_loss`: 1 if any epoch loss is NaN/Inf.
    - `accuracy`, `val_accuracy` (means of the last three epochs), `gap`, `chance_accuracy` (1 / classes).
    - `val_loss_min`, `val_loss_final`, `val_rise` (`final / min - 1`).
    - `unexplained` (the better of train and validation) and `loss_gap` (validation - train): errors over what
      predicting the mean costs, `rmse²/target_variance` if known, else `loss/loss_start`.
    - `update_ratio`: median over epochs (the first skipped when there are more) of the per-epoch median over
      layers; `update_ratio_first`: epoch 1's (large while a tiny output layer grows, huge when the learning
      rate is too high).
    - `loss_noise`: median batch-loss noise over the epochs whose mean loss is above 0.3 x `loss_start` (else
      epoch 1's).
    - `dead_fraction`, `saturated_fraction`: the largest over layers in the last probe; `grad_ratio`: median
      over probes of the gradient RMS of the first layer with weights over the last's; `grad_nonfinite`.
    - `roughness`: the last first-layer image's.
    """
    m: dict[str, float] = {}
    rows = signals.epochs
    losses = _series(rows, "loss")
    m["epochs"] = float(len(rows))
    m["nonfinite_loss"] = float(any(not math.isfinite(v) for v in losses))
    finite = [v for v in losses if math.isfinite(v)]
    batch = [v for r in signals.loss[:1] for v in (r.get("losses") or []) if is_finite(v)]
    if batch:
        # The first batch's loss is computed before any update: the loss at initialization.
        m["loss_start"] = batch[0]
    else:
        m["loss_start"] = finite[0] if finite else math.nan
    m["loss_final"] = _tail_mean(losses)
    m["loss_min"] = min(finite) if finite else math.nan
    m["progress"] = 1.0 - m["loss_final"] / m["loss_start"] if m["loss_start"] > 0 else math.nan
    k = max(2, len(finite) // 3)
    first, last = (finite[-k], finite[-1]) if len(finite) >= 3 else (math.nan, math.nan)
    m["late_progress"] = (first - last) / first if first > 0 else math.nan
    m["accuracy"] = _tail_mean(_series(rows, "accuracy"))
    m["val_accuracy"] = _tail_mean(_series(rows, "val_accuracy"))
    m["gap"] = m["accuracy"] - m["val_accuracy"]
    m["chance_accuracy"] = 1.0 / signals.num_classes if signals.num_classes else math.nan
    val = [v for v in _series(rows, "val_loss") if math.isfinite(v)]
    m["val_loss_min"] = min(val) if val else math.nan
    m["val_loss_final"] = _tail_mean(val)
    m["val_rise"] = m["val_loss_final"] / m["val_loss_min"] - 1.0 if val and m["val_loss_min"] > 0 else math.nan
    m["target_variance"] = float(signals.target_variance) if is_finite(signals.target_variance) else math.nan
    errors = [_tail_mean(_series(rows, "rmse")) ** 2, _tail_mean(_series(rows, "val_rmse")) ** 2, m["target_variance"]]
    if not all(math.isfinite(v) for v in errors) or errors[2] <= 0:
        errors, m["target_variance"] = [m["loss_final"], m["val_loss_final"], m["loss_start"]], math.nan
    scale = errors[2] or math.nan
    m["unexplained"], m["loss_gap"] = min(errors[:2]) / scale, (errors[1] - errors[0]) / scale
    m["loss_ratio"] = errors[1] / errors[0] if errors[0] > 0 else math.nan
    ratios = [float(r["median"]) for r in signals.update_ratio if is_finite(r.get("median"))]
    m["update_ratio_first"] = ratios[0] if ratios else math.nan
    m["update_ratio"] = _median(ratios[1:] if len(ratios) > 1 else ratios)
    # The wiggle while the loss is still high: late in training, when the loss is near zero, a single
    # misclassified example makes any batch jump.
    noisy = [(float(r.get("mean", math.nan)), float(r["noise"])) for r in signals.loss if is_finite(r.get("noise"))]
    early = [n for mean, n in noisy if math.isfinite(mean) and mean > 0.3 * m["loss_start"]]
    m["loss_noise"] = _median(early) if early else (noisy[0][1] if noisy else math.nan)
    m.update(_probe_measures(signals.probe))
    rough = [float(r["roughness"]) for r in signals.images if is_finite(r.get("roughness"))]
    m["roughness"] = rough[-1] if rough else math.nan
    return m


def _probe_measures(records: list[dict[str, Any]]) -> dict[str, float]:
    m = {"dead_fraction": math.nan, "saturated_fraction": math.nan, "grad_ratio": math.nan,
         "grad_nonfinite": 0.0, "dead_layer_index": math.nan, "saturated_layer_index": math.nan}
    if not records:
        return m
    last = records[-1].get("layers") or {}
    acts = [(name, v) for name, v in last.items() if isinstance(v, dict) and "kind" in v]
    for key in ("dead_fraction", "saturated_fraction"):
        values = [(float(v[key]), i) for i, (_, v) in enumerate(acts) if is_finite(v.get(key))]
        if values:
            best = max(values)
            m[key] = best[0]
            m[key.replace("fraction", "layer_index")] = float(best[1])
    ratios = []
    for record in records:
        layers = record.get("layers") or {}
        order = [name for name in record.get("order") or [] if isinstance(layers.get(name), dict)]
        rms = [layers[name].get("grad_rms") for name in order]
        if any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in rms):
            m["grad_nonfinite"] = 1.0
            continue
        if len(rms) >= 2 and is_finite(rms[0]) and is_finite(rms[-1]) and rms[-1] > 0:
            ratios.append(float(rms[0]) / float(rms[-1]))
    m["grad_ratio"] = _median(ratios)
    return m
