"""Sanity checks before learning (recipes B5, D12-D15, A2).

Each check is a function called on your own Keras model (freshly
initialized, compiled or given a `loss`) and data, and returns a
`CheckResult` (name, passed, measured, expected, tolerance, advice citing
the recipe, severity, details). Every check leaves the model's weights,
batch-norm statistics and optimizer state as it found them.

- `check_data`: no NaN/Inf, labels in range, every class in both splits,
  preprocessing statistics fitted on the training split only, duplicates
  shared between training and validation (A2).
- `check_initialization`: no all-zero/all-equal weights where symmetry must
  break; per-layer activation statistics at init (B5, E19).
- `check_initial_loss`: the data loss at chance, e.g. `ln C`, `ln 2` for a
  sigmoid, the targets' variance for MSE (D12).
- `check_regularization`: raising the regularization raises the loss (D13).
- `check_overfit`: 20 examples fitted to ~100 % train accuracy, or a
  regression's residual below 10 % of the targets' variance (D14).
- `check_gradients`: float64 gradient check of every trainable tensor (D15).

Every check takes the model shapes practitioners bring: Sequential,
Functional with a dict or list of inputs, subclassed; integer token
inputs (an `Embedding`); integer, one-hot or real-valued targets; several
outputs with a loss each (a dict or list of targets, checked per output).

`run_checks` runs them all; `kerasguide check CONFIG` (`kerasguide.spine.check_config`)
does it for a config and writes checks.json into a run directory.

Example:

```python
import keras, kerasguide.checks as checks
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
results = checks.run_checks(model, (x_train, y_train, x_val, y_val))
print(checks.format_table(results))
```
"""

from kerasguide.checks.data import check_data
from kerasguide.checks.expectations import (
    best_constant,
    class_prior,
    classify_error,
    expected_initial_loss,
    fit_residual,
    gradient_step,
    is_kink,
    pointwise_loss,
    regression_bounds,
    relative_error,
)
from kerasguide.checks.gradients import check_gradients
from kerasguide.checks.initialization import activation_stats, check_initialization
from kerasguide.checks.loss import check_initial_loss, check_regularization
from kerasguide.checks.overfit import check_overfit
from kerasguide.checks.result import CheckResult, all_passed, failure_lines, format_table
from kerasguide.checks.runner import CHECK_NAMES, planned_checks, read_checks, run_checks, write_checks

__all__ = [
    "CHECK_NAMES",
    "CheckResult",
    "activation_stats",
    "all_passed",
    "best_constant",
    "check_data",
    "check_gradients",
    "check_initial_loss",
    "planned_checks",
    "check_initialization",
    "check_overfit",
    "check_regularization",
    "class_prior",
    "classify_error",
    "expected_initial_loss",
    "failure_lines",
    "fit_residual",
    "format_table",
    "gradient_step",
    "is_kink",
    "pointwise_loss",
    "read_checks",
    "regression_bounds",
    "relative_error",
    "run_checks",
    "write_checks",
]
