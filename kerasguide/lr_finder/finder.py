"""`LRFinder`: the range test on anyone's compiled Keras model, which it leaves exactly as it found it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from kerasguide._logging import get_logger, import_tensorflow

import_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasguide.lr_finder.result import LRFinderResult  # noqa: E402
from kerasguide.lr_finder.suggest import (  # noqa: E402
    FALLBACK_LR,
    MIN_SWEEP,
    RULES,
    SMALL_DATA_EPOCHS,
    consensus,
    curve_problem,
    ignore_early_spikes,
    planned_steps,
    smooth_losses,
    start_points,
    suggest_all,
    sweep_learning_rates,
)

__all__ = ["LRFinder"]

logger = get_logger()

# Fewer points than this cannot show a curve: with the default 1e-7..10, one point per 1.1 decades.
MIN_STEPS = 10  # fewer points than this: no rate is read from the curve


def _check(name: str, value: Any, ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"Argument `{name}` must be {what}. Received: {name}={value!r}")


class _Batches:
    """Mini-batches of NumPy arrays (shuffled with the seed) or of any iterable (tf.data)."""

    def __init__(self, x, y, sample_weight, batch_size: int, seed: int, steps_per_epoch: int | None):
        self.numpy = y is not None or not _is_iterable_dataset(x)
        y, sample_weight = _as_arrays(y), _as_arrays(sample_weight)
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        if self.numpy:
            leaves = keras.tree.flatten(x)
            if not leaves:
                raise ValueError("Argument `x` must hold data. Received: an empty structure")
            self.n = len(leaves[0])
            if self.n == 0:
                raise ValueError("Argument `x` must hold at least one example. Received: 0 examples")
            # x, y and sample_weight may each be a structure (dict, list) of arrays: several inputs or outputs.
            for name, value in (("y", y), ("sample_weight", sample_weight)):
                for leaf in [] if value is None else keras.tree.flatten(value):
                    if len(leaf) != self.n:
                        raise ValueError(f"Arguments `x` and `{name}` must have as many examples. "
                                         f"Received: {self.n} and {len(leaf)}")
            self.steps_per_epoch = steps_per_epoch or math.ceil(self.n / batch_size)
        else:
            self.steps_per_epoch = steps_per_epoch or _cardinality(x)
        # Batches in one pass over data of unknown length, once a pass has ended.
        self.first_pass: int | None = None

    def __iter__(self) -> Iterator[tuple[Any, Any, Any]]:
        while True:
            if self.numpy:
                order = self.rng.permutation(self.n)
                for start in range(0, self.n, self.batch_size):
                    idx = order[start:start + self.batch_size]
                    yield tuple(None if part is None else
                                keras.tree.map_structure(lambda a, idx=idx: np.asarray(a)[idx], part)
                                for part in (self.x, self.y, self.sample_weight))
            else:
                count = 0
                for batch in self.x:
                    count += 1
                    yield keras.utils.unpack_x_y_sample_weight(batch)
                if self.first_pass is None:
                    self.first_pass = count
                if count == 0:
                    return


def _as_arrays(value):
    """Targets or weights as arrays: a list of numbers is one array, a dict or list of arrays stays a structure."""
    if isinstance(value, (list, tuple)) and value and not all(hasattr(v, "shape") for v in value):
        return np.asarray(value)
    return value


def _is_iterable_dataset(x) -> bool:
    if isinstance(x, np.ndarray):
        return False
    try:
        if isinstance(x, tf.data.Dataset):
            return True
    except ImportError:  # pragma: no cover
        pass
    return hasattr(x, "__iter__") and not isinstance(x, (list, tuple, dict))


def _count_batches(data, limit: int) -> int | None:
    """The batches of a `tf.data.Dataset` of unknown cardinality, counted up to `limit` (None past it)."""
    try:
        if isinstance(data, tf.data.Dataset):
            count = int(data.take(limit + 1).reduce(np.int64(0), lambda n, *_: n + 1).numpy())
            return count if 0 < count <= limit else None
    except (ImportError, TypeError, ValueError):  # pragma: no cover
        pass
    return None


def _cardinality(data) -> int | None:
    try:
        if isinstance(data, tf.data.Dataset):
            value = int(data.cardinality().numpy())
            return value if value > 0 else None
    except (ImportError, TypeError):  # pragma: no cover
        pass
    try:
        return len(data) or None
    except TypeError:
        return None


class LRFinder:
    """The LR range test on your own compiled Keras model (recipe G24).

    The learning rate grows exponentially from `start_lr` to `end_lr`, one
    step per mini-batch, while the training loss is recorded; the loss
    against the rate (log scale) shows where training works. The model and
    its optimizer are restored exactly afterwards.

    Args:
        model: A compiled Keras model (Sequential, functional or subclassed;
            any optimizer, a constant rate or a schedule).

    Example:

    ```python
    model.compile(keras.optimizers.SGD(momentum=0.9), "sparse_categorical_crossentropy")
    result = kerasguide.LRFinder(model).find(x_train, y_train, batch_size=64)
    result.suggestion()          # the chosen rate
    result.suggestions           # {"valley": ..., "steepest": ..., "minimum_div_10": ...}
    result.plot("lr_find.png")
    ```
    """

    def __init__(self, model):
        if not isinstance(model, keras.Model):
            raise ValueError(f"Argument `model` must be a keras.Model. Received: model={type(model).__name__}")
        self.model = model

    def find(
        self,
        x,
        y=None,
        batch_size: int = 32,
        start_lr: float = 1e-7,
        end_lr: float = 10.0,
        steps: int = 100,
        smoothing: float = 0.98,
        diverge_factor: float = 4.0,
        max_epochs: float = 1.0,
        steps_per_epoch: int | None = None,
        sample_weight=None,
        seed: int = 0,
        on_step: Callable[[int, float, float], None] | None = None,
        target: str = "constant",
        rule: str = "auto",
    ) -> LRFinderResult:
        """Run the sweep and return what it found; the model is left as it was.

        Args:
            x: Inputs (NumPy array or a structure of them), or a `tf.data.Dataset`
                (or any iterable) of `(x, y)` / `(x, y, sample_weight)` batches.
            y: Targets for NumPy inputs. Defaults to `None`.
            batch_size: NumPy inputs only; use the training batch size. Defaults to `32`.
            start_lr: The first rate. Defaults to `1e-7`.
            end_lr: The last rate. Defaults to `10.0`.
            steps: At most this many steps. Defaults to `100`.
            smoothing: The loss's moving-average factor. Defaults to `0.98`.
            diverge_factor: Stop once the smoothed loss exceeds this times its
                best. Defaults to `4.0`.
            max_epochs: Never sweep more data than this many epochs (the
                sweep is compressed into fewer steps instead), unless fewer
                than 30 steps fit in them (`MIN_SWEEP`): small data are then
                swept over more epochs, up to 10 (`SMALL_DATA_EPOCHS`; the
                result's `sweep` says so). Defaults to `1.0`.
            steps_per_epoch: For an iterable of unknown length. Defaults to `None`.
            sample_weight: NumPy inputs only. Defaults to `None`.
            seed: Shuffling of NumPy inputs. Defaults to `0`.
            on_step: Called as `on_step(step, lr, loss)` after each step. Defaults to `None`.
            target: What the chosen rate is for: `"constant"` (a constant or
                decaying rate) or `"peak"` (the maximum of one-cycle, the
                upper bound of a cyclical schedule); see `consensus`.
                Defaults to `"constant"`.
            rule: `"auto"` (the consensus for `target`) or one rule whose
                suggestion is taken (`"valley"`, `"steepest"`,
                `"minimum_div_10"`; the consensus if it has none). Defaults to `"auto"`.

        Returns:
            An `LRFinderResult`. `found` is False (`reason` opens "No usable
            rate" and says why, `chosen` is the fallback 1e-3) when the sweep
            recorded fewer than 10 points (`MIN_STEPS`: `steps` below it, data
            of unknown length with fewer batches in `max_epochs`, a loss that
            blew up at once), when its smoothed loss never falls 5 % and
            clearly more than the batches' noise below its starting level
            (`curve_problem`), or when the only rate found is the sweep's last
            point; no rate at the very start or the very end of the sweep is
            ever chosen, asked for by `rule` or not. `extra["sweep"]` holds
            the batches an epoch, the epochs swept and why they exceed
            `max_epochs` (small data), if they do.
        """
        _check("start_lr", start_lr, isinstance(start_lr, (int, float)) and 0 < start_lr < math.inf, "> 0")
        _check("end_lr", end_lr, isinstance(end_lr, (int, float)) and start_lr < end_lr < math.inf,
               f"> start_lr ({start_lr})")
        _check("steps", steps, isinstance(steps, int) and steps >= 2, "an integer >= 2")
        _check("batch_size", batch_size, isinstance(batch_size, int) and batch_size > 0, "a positive integer")
        _check("smoothing", smoothing, isinstance(smoothing, (int, float)) and 0 <= smoothing < 1, "in [0, 1)")
        _check("diverge_factor", diverge_factor, isinstance(diverge_factor, (int, float)) and diverge_factor > 1,
               "> 1")
        _check("max_epochs", max_epochs, isinstance(max_epochs, (int, float)) and max_epochs > 0, "> 0")
        _check("target", target, target in ("constant", "peak"), 'one of ("constant", "peak")')
        _check("rule", rule, rule == "auto" or rule in RULES, f"one of {('auto', *RULES)}")
        model = self.model
        if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", True):
            raise ValueError("The model must be compiled (with its optimizer and loss) before `find`.")

        batches = _Batches(x, y, sample_weight, batch_size, seed, steps_per_epoch)
        if batches.steps_per_epoch is None:
            # A tf.data pipeline of unknown cardinality (filter, from_generator): count its
            # batches, as far as the sweep could use them, so that the sweep fits in max_epochs.
            batches.steps_per_epoch = _count_batches(x, math.ceil(steps / max_epochs))
        n_steps = planned_steps(steps, max_epochs, batches.steps_per_epoch)
        per_epoch = batches.steps_per_epoch
        extended = None  # why the sweep takes more than max_epochs of data, if it does
        if per_epoch is not None:
            if n_steps / per_epoch > max_epochs:
                extended = (f"small data: {_batches(per_epoch)} give {math.floor(max_epochs * per_epoch)} "
                            f"step(s) in max_epochs = {max_epochs:g}, fewer than {MIN_SWEEP}: swept over "
                            f"{n_steps / per_epoch:.3g} epochs (at most {max(SMALL_DATA_EPOCHS, max_epochs):g})")
                logger.info("LR range test: %d steps; %s", n_steps, extended)
            elif n_steps < steps:
                logger.info("LR range test: %d steps (%.3g epochs of %d batches; raise max_epochs for more)",
                            n_steps, max_epochs, per_epoch)
        else:
            logger.info("LR range test: data of unknown length, %d steps and %.3g epochs at most", n_steps,
                        max_epochs)
        # Small data are swept over more than max_epochs (planned_steps): the epochs the plan takes.
        sweep_epochs = max(max_epochs, n_steps / per_epoch) if per_epoch else max_epochs
        schedule = sweep_learning_rates(start_lr, end_lr, n_steps)

        started = time.perf_counter()
        iterator = iter(batches)
        first = next(iterator, None)
        if first is None:
            raise ValueError("Argument `x` must yield at least one batch. Received: an empty dataset")
        with _Restored(model, first) as restore:
            lrs: list[float] = []
            losses: list[float] = []
            best = math.inf
            avg = 0.0
            stop_reason = "completed"
            batch = first
            for i in range(n_steps):
                if batch is None:
                    stop_reason = "data exhausted"
                    break
                if batches.first_pass is not None and i >= max(1, math.floor(sweep_epochs * batches.first_pass)):
                    # Unknown length: the epoch ended before the sweep did; never more than the planned epochs.
                    stop_reason = (f"{sweep_epochs:g} epoch(s) of data swept (data of unknown length: pass "
                                   "steps_per_epoch to spread the sweep over it)")
                    break
                lr = float(schedule[i])
                restore.set_learning_rate(lr)
                xb, yb, swb = batch
                logs = model.train_on_batch(xb, yb, sample_weight=swb, return_dict=True)
                loss = float(np.asarray(logs["loss"]))
                lrs.append(lr)
                losses.append(loss)
                avg = smoothing * avg + (1 - smoothing) * loss
                smoothed_now = avg / (1 - smoothing ** (i + 1))
                if on_step is not None:
                    on_step(i, lr, loss)
                if not math.isfinite(smoothed_now):
                    stop_reason = "loss not finite"
                    break
                best = min(best, smoothed_now)
                if smoothed_now > diverge_factor * best:
                    stop_reason = f"smoothed loss above {diverge_factor:g}x its best"
                    break
                if i + 1 < n_steps:
                    batch = next(iterator, None)
        seconds = time.perf_counter() - started
        smoothed = smooth_losses(losses, smoothing)
        # The rules read the curve without its early spikes (Lightning#1767); `smoothed` stays the plain EMA.
        clean, spikes = ignore_early_spikes(losses)
        rule_smoothed = smooth_losses(clean, smoothing) if spikes else smoothed
        suggestions = suggest_all(lrs, clean, rule_smoothed)
        chosen_rule, chosen, reason = consensus(suggestions, lrs, rule_smoothed, target, clean, smoothing)
        problem = curve_problem(lrs, rule_smoothed, clean, smoothing=smoothing)
        advised = False  # whether the reason already says what to do
        if len(lrs) < MIN_STEPS:
            # Too few points to draw a curve (a small data set at a large batch size, data of unknown
            # length cut at its epoch's end, a sweep stopped early): every rule reads noise.
            cut = per_epoch is None and batches.first_pass is not None
            problem = _too_few_points(len(lrs), n_steps, steps, per_epoch or batches.first_pass, cut, stop_reason)
            chosen_rule, chosen, reason, advised = None, None, problem, True
        if problem is None and chosen is not None and chosen >= lrs[-1]:
            # The sweep's last point is where it stopped (diverged, or ran out), not a rate the curve supports.
            problem = (f"the only rate found ({chosen:.2g}) is the sweep's last point: raise lr_find.end_lr "
                       "or lr_find.steps")
            chosen_rule, chosen, reason, advised = None, None, problem, True
        picked = suggestions.get(rule) if rule != "auto" and problem is None else None
        if picked is not None and picked < lrs[min(start_points(len(lrs)), len(lrs) - 1)]:
            picked = None  # at the very start of the sweep, where nothing trains
        if picked is not None and picked >= lrs[-1]:
            picked = None  # the sweep's last point, where it stopped
        if picked is not None and math.isfinite(picked):
            usual = "none" if chosen is None else f"{chosen_rule} {chosen:.2g}"
            chosen_rule, chosen = rule, picked
            reason = f"{rule} {picked:.2g} was asked for (rule = {rule!r}); the consensus would be {usual}."
        elif rule != "auto":
            reason = f"{rule} found no rate; {reason}"
        if chosen is None:
            if not advised:  # a curve that never falls (or no rule's fall): the sweep, and what to do
                swept = per_epoch or batches.first_pass
                over = f", {_batches(swept)} over {len(lrs) / swept:.3g} epoch(s)" if swept else ""
                reason += (f" ({len(lrs)} steps{over}): raise lr_find.end_lr or lr_find.max_epochs, or set "
                           "optimizer.learning_rate yourself")
            chosen = FALLBACK_LR
            reason = f"No usable rate: {reason}; falling back to {FALLBACK_LR:g}."
        if spikes:
            reason += f" The early loss spike at step{'s' if len(spikes) > 1 else ''} " \
                      f"{', '.join(map(str, spikes))} was ignored by the rules."
        return LRFinderResult(
            lrs=lrs,
            losses=losses,
            smoothed=[float(v) for v in smoothed],
            suggestions=suggestions,
            chosen=float(chosen),
            chosen_rule=chosen_rule,
            reason=reason,
            steps=len(lrs),
            seconds=round(seconds, 4),
            start_lr=float(start_lr),
            end_lr=float(end_lr),
            stop_reason=stop_reason,
            extra={"target": target, "rule": rule, "early_spikes": spikes,
                   "sweep": _sweep_record(len(lrs), per_epoch or batches.first_pass, max_epochs, extended)},
        )


def _batches(n: int | None) -> str:
    return "batches of unknown number" if not n else f"{n} batch{'es' if n != 1 else ''} an epoch"


def _too_few_points(points: int, planned: int, steps: int, per_epoch: int | None, cut: bool,
                    stop_reason: str) -> str:
    """One sentence: why the sweep has fewer than `MIN_STEPS` points, naming the batches and what to do.

    `cut`: data of unknown length, whose epochs ended before the sweep did.
    """
    what = f"the sweep recorded only {points} point{'s' if points != 1 else ''} ({_batches(per_epoch)}"
    needed = f"at least {MIN_STEPS} are needed to read a curve"
    if steps < MIN_STEPS:  # lr_find.steps itself is below the minimum
        return f"{what}, lr_find.steps = {steps}); {needed}: raise lr_find.steps"
    if cut:
        return (f"{what} of data of unknown length, {points / per_epoch:g} epoch(s) swept); {needed}: pass "
                "steps_per_epoch, raise lr_find.max_epochs or lower the batch size")
    if points >= planned:  # the whole plan: too few batches in the epochs swept
        over = f" over {points / per_epoch:g} epoch(s)" if per_epoch else ""
        return f"{what}{over}); {needed}: lower the batch size or raise lr_find.max_epochs"
    return (f"{what}; {stop_reason} after {points} of {planned} steps); {needed}: raise lr_find.steps or "
            "lower lr_find.end_lr, so that the rate climbs more slowly")


def _sweep_record(points: int, per_epoch: int | None, max_epochs: float, extended: str | None) -> dict[str, Any]:
    """lr_find.json's `sweep`: the batches an epoch, the epochs swept and, past max_epochs, why."""
    return {
        "batches_per_epoch": per_epoch,
        "epochs": round(points / per_epoch, 4) if per_epoch else None,
        "max_epochs": float(max_epochs),
        "extended": extended,
    }


class _Restored:
    """Snapshot the model's and optimizer's variables; put them back on exit, whatever happened.

    Also lets the sweep set the learning rate: an optimizer built with a
    schedule has no settable rate, so its rate is swapped for a variable
    during the sweep (and the train step traced again before and after).
    """

    def __init__(self, model, first_batch):
        self.model = model
        self.first_batch = first_batch

    def __enter__(self):
        model = self.model
        xb, yb, _ = self.first_batch
        if not model.built:
            model(xb, training=False)  # subclassed models create their weights on first call
        optimizer = model.optimizer
        self.inner = getattr(optimizer, "inner_optimizer", optimizer)
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        # (variable, value) pairs: variables created during the sweep (e.g.
        # lazily built metrics) are not part of the state to restore.
        self.saved = [(v, np.array(v.numpy(), copy=True)) for v in [*model.variables, *optimizer.variables]]
        self.original_lr = self.inner._learning_rate
        if isinstance(self.original_lr, keras.Variable):
            self.lr_variable = self.original_lr
            self.swapped = False
        else:
            # A schedule (or callable) rate: read our variable instead while sweeping.
            # A callable, not an attribute holding the variable, so that the
            # optimizer does not track it as one of its own variables.
            variable = keras.Variable(1e-7, dtype=keras.config.floatx(), trainable=False, name="lr_find_lr")
            self.lr_variable = variable
            self.inner._learning_rate = lambda: variable
            self.swapped = True
            model.make_train_function(force=True)
        return self

    def set_learning_rate(self, lr: float) -> None:
        self.lr_variable.assign(lr)

    def __exit__(self, exc_type, exc, tb):
        model = self.model
        try:
            if self.swapped:
                self.inner._learning_rate = self.original_lr
                model.make_train_function(force=True)
        finally:
            for variable, value in self.saved:
                variable.assign(value)
            model.reset_metrics()
        return False
