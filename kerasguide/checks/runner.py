"""All checks in order, for a model and its data (`run_checks`), and checks.json."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from kerasguide.checks._keras import MultiLoss, heads_of, keras, loss_kind, resolve_loss
from kerasguide.checks.data import check_data
from kerasguide.checks.gradients import check_gradients
from kerasguide.checks.initialization import check_initialization
from kerasguide.checks.loss import check_initial_loss, check_regularization
from kerasguide.checks.overfit import check_overfit
from kerasguide.checks.result import CheckResult, first_line
from kerasguide.config import ChecksConfig
from kerasguide.rundir import RunDir

__all__ = ["CHECK_NAMES", "CHECKS_JSON", "planned_checks", "run_checks", "write_checks", "read_checks"]

logger = logging.getLogger("kerasguide")

CHECKS_JSON = "checks.json"
# The order they run in: data first (nothing else means much on bad data),
# the model's state at init, then the checks that compute gradients.
CHECK_NAMES = ("data", "initialization", "initial_loss", "regularization", "overfit", "gradients")


def _unpack(data: Any) -> dict[str, Any]:
    if hasattr(data, "x_train"):
        return {
            "dataset": data,
            "x": data.x_train,
            "y": data.y_train,
            "num_classes": data.num_classes or None,
        }
    if isinstance(data, (tuple, list)) and len(data) in (2, 4):
        x, y = data[0], data[1]
        return {
            "dataset": None,
            "x": x,
            "y": y,
            "x_val": data[2] if len(data) == 4 else None,
            "y_val": data[3] if len(data) == 4 else None,
            "num_classes": None,
        }
    raise ValueError(
        "Argument `data` must be a kerasguide Dataset or a tuple (x_train, y_train[, x_val, y_val]). "
        f"Received: {type(data).__name__}"
    )


def _output_classes(model: keras.Model) -> int | None:
    """The width of a single-output model's class scores (labels must lie in `0..width-1`), or None."""
    try:
        outputs = getattr(model, "outputs", None)
        if outputs and len(outputs) == 1:
            width = outputs[0].shape[-1]
            return int(width) if width is not None and int(width) > 1 else None
    except (AttributeError, TypeError, ValueError, IndexError):
        pass
    return None


_CLASS_KINDS = ("crossentropy", "binary_crossentropy", "multiclass_hinge", "crammer_singer_hinge", "mse_onehot")
_REGRESSION_KINDS = ("mse", "mae", "huber", "log_cosh")


def _task(model: keras.Model, loss: Any) -> Any:
    """Whether each output's targets are class labels, from its loss: True, False, or None (guess from the data).

    A cross-entropy or hinge loss means class labels; a regression loss (MSE, MAE, Huber, log-cosh)
    means real targets even when they happen to be whole numbers (counts, prices). For several
    outputs, a dict by output name and position.
    """
    try:
        resolved = resolve_loss(model, loss)
    except (ValueError, TypeError):
        return None

    def flag(head_loss) -> bool | None:
        kind, _ = loss_kind(head_loss)
        return True if kind in _CLASS_KINDS else False if kind in _REGRESSION_KINDS else None

    if not isinstance(resolved, MultiLoss):
        return flag(resolved)
    hint: dict[str, bool | None] = {}
    for i, head in enumerate(heads_of(resolved)):
        hint[head.name] = hint[str(head.key if head.key is not None else i)] = flag(head.loss)
    return hint


def run_checks(
    model: keras.Model,
    data: Any,
    *,
    loss: Any = None,
    optimizer: Any = None,
    config: ChecksConfig | None = None,
    seed: int = 0,
    skip: tuple[str, ...] | list[str] = (),
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Run every sanity check on a model and its data (recipes B5, D12-D15, A2).

    The model's weights and optimizer state are the same afterwards. A check
    that cannot run on an exotic model is reported as a skipped warning
    rather than stopping the others.

    Args:
        model: A freshly initialized Keras model, compiled (or pass `loss`).
        data: A kerasguide `Dataset`, or `(x_train, y_train)` /
            `(x_train, y_train, x_val, y_val)`: inputs an array or a dict or
            list of arrays, labels integer ids, one-hot rows or real-valued
            targets (a dict or list of them for several outputs). Class
            labels are then checked against the model's output width; the
            loss says whether the targets are classes (cross-entropy, hinge)
            or real values (MSE, MAE, Huber: the class checks are skipped).
        loss: The loss; the compiled one if None. Defaults to `None`.
        optimizer: Settings for the overfit check; the compiled one if None.
            Defaults to `None`.
        config: Tolerances and sizes; `ChecksConfig()` if None.
            Defaults to `None`.
        seed: Picks subsets and coordinates. Defaults to `0`.
        skip: Names of checks not to run. Defaults to `()`.
        on_result: Called with each result as it is ready. Defaults to `None`.

    Returns:
        The list of `CheckResult`, in `CHECK_NAMES` order.

    Example:

    ```python
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    results = kerasguide.checks.run_checks(model, (x_train, y_train, x_val, y_val))
    print(kerasguide.checks.format_table(results))
    ```
    """
    cfg = config or ChecksConfig()
    unknown = [name for name in skip if name not in CHECK_NAMES]
    if unknown:
        raise ValueError(f"Argument `skip` has unknown checks {unknown}; known: {', '.join(CHECK_NAMES)}")
    d = _unpack(data)
    x, y = d["x"], d["y"]
    calls: dict[str, Callable[[], CheckResult]] = {
        "data": lambda: (
            check_data(d["dataset"])
            if d["dataset"] is not None
            else check_data(x, y, d.get("x_val"), d.get("y_val"), num_classes=_output_classes(model),
                            classification=_task(model, loss))
        ),
        "initialization": lambda: check_initialization(model, x, examples=cfg.probe_examples, seed=seed),
        "initial_loss": lambda: check_initial_loss(
            model,
            x,
            y,
            loss=loss,
            num_classes=d["num_classes"],
            tolerance=cfg.initial_loss_tolerance,
            examples=cfg.probe_examples * 2,
            seed=seed,
        ),
        "regularization": lambda: check_regularization(
            model, x, y, loss=loss, examples=cfg.probe_examples, seed=seed
        ),
        "overfit": lambda: check_overfit(
            model,
            x,
            y,
            loss=loss,
            optimizer=optimizer,
            examples=cfg.overfit_examples,
            steps=cfg.overfit_steps,
            min_accuracy=cfg.overfit_accuracy,
            seed=seed,
        ),
        "gradients": lambda: check_gradients(
            model, x, y, loss=loss, examples=cfg.gradcheck_examples, coords=cfg.gradcheck_coords, seed=seed
        ),
    }
    results = []
    for name in CHECK_NAMES:
        if name in skip or name in cfg.skip:
            continue
        started = time.perf_counter()
        try:
            result = calls[name]()
        except Exception as error:  # one check's trouble must not hide the others' findings
            logger.warning("check %s could not run: %s: %s", name, type(error).__name__, error)
            logger.debug("%s", traceback.format_exc())
            result = CheckResult(
                name,
                True,
                None,
                None,
                None,
                f"The {name} check could not run on this model ({type(error).__name__}: {first_line(error)}).",
                "",
                "warning",
                {"skipped": True, "error": f"{type(error).__name__}: {error}"},
            )
        result.details["seconds"] = round(time.perf_counter() - started, 3)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def write_checks(run_dir: Any, results: list[CheckResult]) -> Any:
    """Write checks.json (atomically) into a run directory (a `RunDir` or a path)."""
    if not isinstance(run_dir, RunDir):
        run_dir = RunDir(run_dir)
    return run_dir.write_json(CHECKS_JSON, [r.to_dict() for r in results])


def read_checks(run_dir: Any) -> list[CheckResult]:
    """The results in a run directory's checks.json ([] if there is none)."""
    if not isinstance(run_dir, RunDir):
        run_dir = RunDir(run_dir)
    return [CheckResult.from_dict(item) for item in (run_dir.read(CHECKS_JSON, default=[]) or [])]


def planned_checks(config: ChecksConfig, skip: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The names of the checks `run_checks` will run with these settings, in order."""
    return [name for name in CHECK_NAMES if name not in skip and name not in config.skip]
