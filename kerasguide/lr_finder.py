"""The LR range test (recipe G24): sweep the learning rate, watch the loss, suggest a rate.

`LRFinder(model).find(x, y)` trains the user's own compiled Keras model
(Sequential, functional or subclassed; any optimizer; NumPy arrays or
`tf.data`) for at most `steps` mini-batches (100 by default, as fastai and
Lightning) and never more than `max_epochs` (1) of data, with the learning
rate growing exponentially from `start_lr` (1e-7) to `end_lr` (10). It stops
when the smoothed loss passes `diverge_factor` (4) times its best or stops
being finite. Afterwards the model's variables (weights, normalization
statistics, random-seed state) and the optimizer's variables (slots,
iteration count, learning rate) are put back exactly as they were, also
when the sweep fails half-way (try/finally).

The suggestion rules are pure functions of `(lrs, losses)`:
`suggest_steepest`, `suggest_valley`, `suggest_minimum`, combined by
`consensus`; they read the losses with early spikes set aside
(`ignore_early_spikes`). `kerasguide lr-find CONFIG` and the pipeline's "lr_find" stage
(`optimizer.learning_rate = "auto"`) write lr_find.json and lr_find.png into
a run directory.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kerasguide._logging import get_logger

__all__ = [
    "LRFinder",
    "LRFinderResult",
    "smooth_losses",
    "suggest_steepest",
    "suggest_valley",
    "suggest_minimum",
    "consensus",
    "suggest_all",
    "ignore_early_spikes",
    "sweep_learning_rates",
    "lr_find_config",
    "planned_steps",
    "pipeline_stage",
    "RULES",
]

logger = get_logger()

# The rules, in the order a tie between two of them is broken.
RULES = ("valley", "steepest", "minimum_div_10")
FALLBACK_LR = 1e-3


# ----------------------------------------------------------------- pure maths
def sweep_learning_rates(start_lr: float, end_lr: float, steps: int) -> np.ndarray:
    """`steps` rates from `start_lr` to `end_lr`, evenly spaced on a log scale."""
    if steps == 1:
        return np.array([float(start_lr)])
    return float(start_lr) * (float(end_lr) / float(start_lr)) ** (np.arange(steps) / (steps - 1))


def smooth_losses(losses: Iterable[float], beta: float = 0.98) -> np.ndarray:
    """Exponential moving average with bias correction (fastai's `SmoothenValue`).

    `avg_i = beta * avg_{i-1} + (1 - beta) * loss_i`, `smoothed_i = avg_i / (1 - beta ** (i + 1))`;
    the correction makes the first values the plain mean of what was seen.
    A non-finite loss makes the rest non-finite.
    """
    losses = np.asarray(list(losses), dtype=np.float64)
    out = np.empty_like(losses)
    avg = 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1.0 - beta) * loss
        out[i] = avg / (1.0 - beta ** (i + 1))
    return out


def _finite_prefix(lrs, smoothed) -> tuple[np.ndarray, np.ndarray]:
    lrs = np.asarray(lrs, dtype=np.float64)
    smoothed = np.asarray(smoothed, dtype=np.float64)
    n = min(len(lrs), len(smoothed))
    lrs, smoothed = lrs[:n], smoothed[:n]
    keep = np.isfinite(smoothed) & np.isfinite(lrs) & (lrs > 0)
    return lrs[keep], smoothed[keep]


def _start_level(losses: np.ndarray) -> float:
    """The loss before the rate matters: the median of the first tenth (at least 3 points).

    A median, so that one early spike does not raise it (Lightning#1767).
    """
    head = losses[: max(3, len(losses) // 10)]
    head = head[np.isfinite(head)]
    return float(np.median(head)) if len(head) else math.inf


def ignore_early_spikes(losses, factor: float = 1.5) -> tuple[np.ndarray, list[int]]:
    """The raw losses with the early spikes replaced by the starting level, and the spikes' steps.

    Before the loss starts to fall the rate is too small to change the
    model, so a loss far above the starting level there is a hard batch,
    not information (Lightning#1767). On a short sweep (one epoch of a small
    data set: 20-30 steps) the smoothed loss carries such a spike for the
    rest of the sweep: its washing out looks like the steepest fall, and the
    smoothed loss may never get back below its first value (so "minimum"
    picks the first rate). The rules therefore look at these losses.

    The starting level is the median of the lower half of the first fifth
    of the losses (at least 5 of them), which spikes covering up to half of
    them do not raise. The points before the loss first falls below 0.9x
    that level which exceed `factor` x the level are the spikes. Nothing is
    replaced when the loss never falls below 0.9x the level (a sweep that
    only rises or never learns has no spike to wash out).

    Args:
        losses: The raw losses of the sweep.
        factor: A point this many times the starting level is a spike. Defaults to `1.5`.

    Returns:
        `(losses, steps)`: a copy with the spikes at the starting level, and their indices.
    """
    raw = np.asarray(list(losses), dtype=np.float64)
    clean = raw.copy()
    head = raw[: max(5, len(raw) // 5)]
    head = np.sort(head[np.isfinite(head)])
    if len(head) < 3:
        return clean, []
    level = float(np.median(head[: (len(head) + 1) // 2]))
    if not level > 0:  # a loss that is not positive: no relative threshold
        return clean, []
    fallen = np.where(np.isfinite(raw) & (raw < 0.9 * level))[0]
    if len(fallen) == 0:
        return clean, []
    early = raw[: fallen[0]]
    spikes = [int(i) for i in np.where(~np.isfinite(early) | (early > factor * level))[0]]
    clean[spikes] = level
    return clean, spikes


def suggest_steepest(lrs, smoothed, losses=None, skip_end: int = 1) -> float | None:
    """The rate where the smoothed loss falls fastest against log(lr), before its minimum.

    Only points whose smoothed loss is below the starting level (the median
    of the first raw losses) count: a spike in the first batches makes the
    smoothed loss fall steeply while it washes out, at rates that do not
    train at all (Lightning#1767), and this guard ignores that fall.

    Args:
        lrs: The learning rates of the sweep.
        smoothed: The smoothed losses.
        losses: The raw losses (for the starting level). Defaults to `smoothed`.
        skip_end: Points ignored at the end. Defaults to `1`.
    """
    lrs, sm = _finite_prefix(lrs, smoothed)
    if len(sm) < 3:
        return None
    raw = np.asarray(losses if losses is not None else smoothed, dtype=np.float64)
    level = _start_level(raw)
    end = int(np.argmin(sm)) + 1
    end = min(end, len(sm) - skip_end) if skip_end else end
    if end < 2:
        return None
    grad = np.gradient(sm, np.log10(lrs))[:end]
    candidates = np.where(sm[:end] < level)[0]
    if len(candidates) == 0:
        return None
    best = candidates[np.argmin(grad[candidates])]
    if not grad[best] < 0:
        return None
    return float(lrs[best])


def suggest_valley(lrs, smoothed) -> float | None:
    """fastai's default: a rate inside the longest descending stretch of the loss.

    The longest decreasing subsequence of the smoothed loss is found; the
    suggestion sits half-way into its middle third (fastai's `valley`).
    """
    lrs, sm = _finite_prefix(lrs, smoothed)
    n = len(sm)
    if n < 3:
        return None
    lds = np.ones(n, dtype=int)
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if sm[i] < sm[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    if max_end == 0:
        return None
    sections = (max_end - max_start) / 3
    index = max(0, min(n - 1, max_start + int(sections) + int(sections / 2)))
    return float(lrs[index])


def suggest_minimum(lrs, smoothed, divisor: float = 10.0) -> float | None:
    """The rate of the smoothed loss's minimum, divided by `divisor` (fastai's `minimum`)."""
    lrs, sm = _finite_prefix(lrs, smoothed)
    if len(sm) < 2:
        return None
    return float(lrs[int(np.argmin(sm))] / divisor)


def suggest_all(lrs, losses, smoothed) -> dict[str, float | None]:
    """Every rule's suggestion, `None` where a rule has no answer."""
    return {
        "valley": suggest_valley(lrs, smoothed),
        "steepest": suggest_steepest(lrs, smoothed, losses),
        "minimum_div_10": suggest_minimum(lrs, smoothed),
    }


def consensus(suggestions: dict[str, float | None], lrs=None, smoothed=None,
              target: str = "constant") -> tuple[str | None, float | None, str]:
    """The chosen rate from the rules' suggestions.

    Non-finite suggestions, and those at or past the rate of the loss
    minimum (the loss already rises there), are dropped first. For a
    constant rate (`target="constant"`), the chosen one is the median (on a
    log scale) of what is left: a median of three ignores one rule fooled by
    its curve (a flat start for "valley", a spike for "steepest"); with two
    left, the lower one (the safer side). For the peak of one-cycle or the
    upper bound of a cyclical schedule (`target="peak"`), Smith's rule is
    the largest rate at which the loss still falls fast: "steepest" (its
    early-spike guard applied), else the same median. benchmarks/README.md
    shows both choices against a grid of constant rates.

    Args:
        suggestions: `{rule: lr or None}`.
        lrs: The sweep's rates (to find the loss minimum). Defaults to `None`.
        smoothed: The smoothed losses. Defaults to `None`.
        target: `"constant"` or `"peak"`. Defaults to `"constant"`.

    Returns:
        `(rule, lr, reason)`: the rule whose value was chosen (None if none
        is usable), its rate, and one sentence saying why.
    """
    finite = {k: float(v) for k, v in suggestions.items()
              if isinstance(v, (int, float)) and math.isfinite(v) and v > 0}
    dropped = []
    if lrs is not None and smoothed is not None:
        flrs, fsm = _finite_prefix(lrs, smoothed)
        if len(fsm):
            lr_min = float(flrs[int(np.argmin(fsm))])
            dropped = [k for k, v in finite.items() if v >= lr_min]
            finite = {k: v for k, v in finite.items() if v < lr_min}
    if not finite:
        return None, None, "no rule found a descending loss (the sweep diverged at once or never learned)"
    extra = f"; {', '.join(dropped)} dropped (at or past the loss minimum)" if dropped else ""
    if target == "peak" and "steepest" in finite:
        listed = ", ".join(f"{k} {v:.2g}" for k, v in sorted(finite.items(), key=lambda kv: kv[1]))
        lr = finite["steepest"]
        return "steepest", lr, (f"steepest {lr:.2g} is where the loss falls fastest, Smith's peak for a "
                                f"one-cycle or cyclical schedule ({listed}){extra}.")
    order = sorted(finite.items(), key=lambda kv: (kv[1], RULES.index(kv[0]) if kv[0] in RULES else 99))
    if len(order) == 1:
        rule, lr = order[0]
        how = "the only usable rule"
    elif len(order) == 2:
        rule, lr = order[0]
        how = "the lower of two usable rules"
    else:
        rule, lr = order[(len(order) - 1) // 2]
        how = f"the median of {len(order)} rules"
    listed = ", ".join(f"{k} {v:.2g}" for k, v in sorted(finite.items(), key=lambda kv: kv[1]))
    return rule, lr, f"{rule} {lr:.2g} is {how} ({listed}){extra}."


# ------------------------------------------------------------------ result
@dataclass
class LRFinderResult:
    """What a range test found: the curve, every rule's suggestion, the chosen rate and why."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestions: dict[str, float | None]
    chosen: float
    chosen_rule: str | None
    reason: str
    steps: int
    seconds: float
    start_lr: float
    end_lr: float
    stop_reason: str = "completed"
    extra: dict[str, Any] = field(default_factory=dict)

    def suggestion(self, rule: str | None = None) -> float | None:
        """The chosen rate, or one rule's (`"valley"`, `"steepest"`, `"minimum_div_10"`)."""
        if rule is None:
            return self.chosen
        if rule not in self.suggestions:
            raise ValueError(f"Argument `rule` must be one of {tuple(self.suggestions)}. Received: rule={rule!r}")
        return self.suggestions[rule]

    @property
    def found(self) -> bool:
        """Whether a rule found a rate (otherwise `chosen` is a fallback)."""
        return self.chosen_rule is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("extra") or {})
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LRFinderResult:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}

        def floats(values):
            return [math.nan if v is None else float(v) for v in values or []]

        kwargs = {k: data[k] for k in known if k in data}
        for key in ("lrs", "losses", "smoothed"):
            kwargs[key] = floats(data.get(key))
        kwargs.setdefault("suggestions", {})
        kwargs.setdefault("chosen_rule", None)
        kwargs.setdefault("reason", "")
        kwargs.setdefault("steps", len(kwargs["lrs"]))
        kwargs.setdefault("seconds", math.nan)
        kwargs.setdefault("start_lr", kwargs["lrs"][0] if kwargs["lrs"] else math.nan)
        kwargs.setdefault("end_lr", kwargs["lrs"][-1] if kwargs["lrs"] else math.nan)
        kwargs.setdefault("chosen", FALLBACK_LR)
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in known})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LRFinderResult:
        """Read an lr_find.json (or the one in a run directory)."""
        from kerasguide.rundir import read_json

        path = Path(path)
        if path.is_dir():
            path = path / "lr_find.json"
        data = read_json(path, default=None)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not an lr_find.json")
        return cls.from_dict(data)

    def plot(self, path: str | os.PathLike[str] | None = None, ax=None):
        """Loss against learning rate (log axis), the suggestions marked. Returns the figure.

        matplotlib is imported here, only when called (Agg backend when
        saving). With `path`, the PNG is written atomically.
        """
        import matplotlib

        if path is not None and ax is None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6.4, 4.0))
        else:
            fig = ax.figure
        lrs = np.asarray(self.lrs, dtype=float)
        ax.plot(lrs, self.losses, color="#9ecae1", lw=1, label="loss")
        ax.plot(lrs, self.smoothed, color="#1f77b4", lw=2, label="smoothed loss")
        colors = {"valley": "#2ca02c", "steepest": "#ff7f0e", "minimum_div_10": "#9467bd"}
        for rule, lr in self.suggestions.items():
            if lr is None or not math.isfinite(lr):
                continue
            strong = rule == self.chosen_rule
            ax.axvline(lr, color=colors.get(rule, "#7f7f7f"), ls="-" if strong else "--", lw=2 if strong else 1,
                       label=f"{rule}: {lr:.2g}" + (" (chosen)" if strong else ""))
        ax.set_xscale("log")
        finite = np.asarray([v for v in self.smoothed if v is not None and math.isfinite(v)])
        raw = [v for v in self.losses if v is not None and math.isfinite(v)]
        if len(finite):
            low, start = min(float(finite.min()), min(raw, default=math.inf)), float(finite[0])
            top = max(start, low) + 0.25 * max(abs(start - low), 1e-3)
            ax.set_ylim(low - 0.1 * max(abs(start - low), 1e-3), top)
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("training loss")
        ax.set_title(f"LR range test: {self.steps} steps, chosen {self.chosen:.2g}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        if path is not None:
            path = Path(path)
            tmp = path.with_name(f".{path.stem}.tmp.png")
            fig.tight_layout()
            fig.savefig(tmp, dpi=110)
            plt.close(fig)
            os.replace(tmp, path)
        return fig

    def save(self, directory: str | os.PathLike[str], plot: bool = True) -> Path:
        """Write lr_find.json (and lr_find.png) into `directory`, atomically. Returns the JSON path."""
        from kerasguide.rundir import atomic_write_json

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "lr_find.json"
        atomic_write_json(target, self.to_dict())
        if plot:
            self.plot(directory / "lr_find.png")
        return target

    def write_tensorboard(self, log_dir: str | os.PathLike[str]) -> None:
        """The curve as TensorBoard scalars (step = sweep step): loss, smoothed loss, log10 lr."""
        # TensorBoard's event writer in plain Python: four eager `tf.summary` ops per sweep step
        # cost about a millisecond each, a visible part of the range test on a small model.
        from kerasguide.monitors import EventWriter

        writer = EventWriter(log_dir)
        for i, (lr, loss, sm) in enumerate(zip(self.lrs, self.losses, self.smoothed, strict=False)):
            with writer:
                writer.scalar("lr_find/learning_rate", lr, i)
                writer.scalar("lr_find/log10_learning_rate", math.log10(lr), i)
                if math.isfinite(loss):
                    writer.scalar("lr_find/loss", loss, i)
                if math.isfinite(sm):
                    writer.scalar("lr_find/smoothed_loss", sm, i)
        writer.text("lr_find/chosen", f"{self.chosen:.3g} ({self.chosen_rule}): {self.reason}", 0)
        writer.flush()
        writer.close()


# ------------------------------------------------------------------ finder
def _check(name: str, value: Any, ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"Argument `{name}` must be {what}. Received: {name}={value!r}")


class _Batches:
    """Mini-batches of NumPy arrays (shuffled with the seed) or of any iterable (tf.data)."""

    def __init__(self, x, y, sample_weight, batch_size: int, seed: int, steps_per_epoch: int | None):
        import keras

        self.numpy = y is not None or not _is_iterable_dataset(x)
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
            if y is not None and len(y) != self.n:
                raise ValueError(f"Arguments `x` and `y` must have as many examples. Received: {self.n} and {len(y)}")
            self.steps_per_epoch = steps_per_epoch or math.ceil(self.n / batch_size)
        else:
            self.steps_per_epoch = steps_per_epoch or _cardinality(x)
        # Batches in one pass over data of unknown length, once a pass has ended.
        self.first_pass: int | None = None

    def __iter__(self) -> Iterator[tuple[Any, Any, Any]]:
        import keras

        while True:
            if self.numpy:
                order = self.rng.permutation(self.n)
                for start in range(0, self.n, self.batch_size):
                    idx = order[start:start + self.batch_size]
                    yield (keras.tree.map_structure(lambda a, idx=idx: np.asarray(a)[idx], self.x),
                           None if self.y is None else np.asarray(self.y)[idx],
                           None if self.sample_weight is None else np.asarray(self.sample_weight)[idx])
            else:
                count = 0
                for batch in self.x:
                    count += 1
                    yield keras.utils.unpack_x_y_sample_weight(batch)
                if self.first_pass is None:
                    self.first_pass = count
                if count == 0:
                    return


def _is_iterable_dataset(x) -> bool:
    if isinstance(x, np.ndarray):
        return False
    try:
        import tensorflow as tf

        if isinstance(x, tf.data.Dataset):
            return True
    except ImportError:  # pragma: no cover
        pass
    return hasattr(x, "__iter__") and not isinstance(x, (list, tuple, dict))


def _count_batches(data, limit: int) -> int | None:
    """The batches of a `tf.data.Dataset` of unknown cardinality, counted up to `limit` (None past it)."""
    try:
        import tensorflow as tf

        if isinstance(data, tf.data.Dataset):
            count = int(data.take(limit + 1).reduce(np.int64(0), lambda n, *_: n + 1).numpy())
            return count if 0 < count <= limit else None
    except (ImportError, TypeError, ValueError):  # pragma: no cover
        pass
    return None


def _cardinality(data) -> int | None:
    try:
        import tensorflow as tf

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
        import keras

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
                sweep is compressed into fewer steps instead). Defaults to `1.0`.
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
            An `LRFinderResult`.
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
        if batches.steps_per_epoch is not None:
            if n_steps < steps:
                logger.info("LR range test: %d steps (%.3g epochs of %d batches; raise max_epochs for more)",
                            n_steps, max_epochs, batches.steps_per_epoch)
        else:
            logger.info("LR range test: data of unknown length, %d steps and %.3g epochs at most", n_steps,
                        max_epochs)
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
                if batches.first_pass is not None and i >= max(1, math.floor(max_epochs * batches.first_pass)):
                    # Unknown length: the epoch ended before the sweep did; never more than max_epochs.
                    stop_reason = (f"{max_epochs:g} epoch(s) of data swept (data of unknown length: pass "
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
        chosen_rule, chosen, reason = consensus(suggestions, lrs, rule_smoothed, target)
        picked = suggestions.get(rule) if rule != "auto" else None
        if picked is not None and math.isfinite(picked):
            usual = "none" if chosen is None else f"{chosen_rule} {chosen:.2g}"
            chosen_rule, chosen = rule, picked
            reason = f"{rule} {picked:.2g} was asked for (rule = {rule!r}); the consensus would be {usual}."
        elif rule != "auto":
            reason = f"{rule} found no rate; {reason}"
        if chosen is None:
            chosen = FALLBACK_LR
            reason = f"No rule found a rate ({reason}); falling back to {FALLBACK_LR:g}."
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
            extra={"target": target, "rule": rule, "early_spikes": spikes},
        )


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
        import keras

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


# ---------------------------------------------------------- config-driven use
def _find_on_config(config, dataset, model, strategy=None, on_step=None) -> LRFinderResult:
    """Compile `model` with the config's optimizer and loss, and run the range test on the training split."""
    import keras

    from kerasguide.pipeline import compile_model

    lf = config.lr_find
    scope = strategy.scope() if strategy is not None else _nullcontext()
    with scope:
        compile_model(model, config, 1e-3, 1)
    keras.utils.set_random_seed(config.train.seed)
    return LRFinder(model).find(
        dataset.x_train, dataset.y_train, batch_size=config.train.batch_size, start_lr=lf.start_lr,
        end_lr=lf.end_lr, steps=lf.steps, smoothing=lf.smoothing, diverge_factor=lf.diverge_factor,
        max_epochs=lf.max_epochs, seed=config.train.seed, on_step=on_step, target=_target(config),
        rule=lf.rule,
    )


def _target(config) -> str:
    """A one-cycle or cyclical schedule wants its peak from the test; anything else, a constant rate."""
    return "peak" if config.schedule.kind in ("one_cycle", "cyclical") else "constant"


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _bounds(config, chosen: float) -> dict[str, float]:
    """What the chosen rate sets: the peak of one-cycle, the bounds of a cyclical schedule, else the rate."""
    sc = config.schedule
    if sc.kind == "one_cycle":
        return {"max_lr": chosen}
    if sc.kind == "cyclical":
        min_lr = sc.min_lr if sc.min_lr is not None and sc.min_lr < chosen else chosen / 10.0
        return {"max_lr": chosen, "min_lr": min_lr}
    return {"learning_rate": chosen}


def _record(result: LRFinderResult, config) -> dict[str, Any]:
    return {
        "chosen": result.chosen,
        "chosen_rule": result.chosen_rule,
        "reason": result.reason,
        "suggestions": result.suggestions,
        "steps": result.steps,
        "seconds": result.seconds,
        "stop_reason": result.stop_reason,
        "start_lr": result.start_lr,
        "end_lr": result.end_lr,
        "used": _bounds(config, result.chosen),
        "file": "lr_find.json",
    }


def pipeline_stage(ctx) -> None:
    """The pipeline's "lr_find" stage: only when `optimizer.learning_rate = "auto"`.

    Runs the range test on the fresh model (restored afterwards), writes
    lr_find.json/png and the curve to TensorBoard (`tb/lr_find`), records
    the test and the value used in run.json, and sets `ctx.learning_rate`
    for the "schedule" stage (the peak of one-cycle, the upper bound of a
    cyclical schedule).
    """
    config = ctx.config
    if config.optimizer.learning_rate != "auto":
        return
    total = [0]

    def on_step(i, lr, loss):
        total[0] = i + 1
        ctx.progress.emit("step", stage="lr_find", step=i + 1, steps=config.lr_find.steps, lr=lr, loss=loss)

    result = _find_on_config(config, ctx.dataset, ctx.model, ctx.strategy, on_step)
    # lr_find.png is drawn with the report, after training (the report stage always runs):
    # matplotlib's figure costs as much as the sweep itself on a small model.
    result.save(ctx.run_dir.path, plot=False)
    try:
        result.write_tensorboard(ctx.run_dir.tb_dir / "lr_find")
    except Exception as error:  # noqa: BLE001 - TensorBoard is a view, never a reason to fail
        logger.warning("could not write the LR range test to TensorBoard: %s", error)
    ctx.learning_rate = result.chosen
    ctx.update_run(lr_find=_record(result, config))
    logger.info("LR range test: %d steps in %.1fs, chosen %.3g (%s)", result.steps, result.seconds, result.chosen,
                result.reason)


def planned_steps(steps: int, max_epochs: float, steps_per_epoch: int | None) -> int:
    """The steps a sweep of at most `steps` steps takes over data of `steps_per_epoch` batches.

    Never more than `max_epochs` of data, never fewer than 2 steps; `steps`
    for data of unknown length.
    """
    if steps_per_epoch is None:
        return steps
    return min(steps, max(2, int(math.floor(max_epochs * steps_per_epoch))))


def lr_find_config(config, out: str | os.PathLike[str] = "runs", config_path: str | None = None,
                   on_step=None, progress=None):
    """What `kerasguide lr-find` does: the range test on a config's data and fresh model, in a new run directory.

    Writes config.toml, run.json (kind `lr_find`), lr_find.json, lr_find.png,
    tb/lr_find and report.md. Interrupted (Ctrl-C, or SIGTERM turned into
    `KeyboardInterrupt` by the CLI), it marks run.json `interrupted` (the
    model is restored as always), writes the report and raises the
    `KeyboardInterrupt` again.

    Args:
        config: The run config.
        out: The folder that receives the run directory. Defaults to `"runs"`.
        config_path: Recorded in run.json. Defaults to `None`.
        on_step: Called as `on_step(step, lr, loss)` after each sweep step.
            Defaults to `None`.
        progress: A `kerasguide.pipeline.Progress`: `start`, `stage`, a
            `step` event every few sweep steps (step of steps, elapsed, eta,
            lr, loss; about 20 in all, and at least one a second) and `end`.
            Defaults to `None` (no events).

    Returns:
        `(run_dir, result)`. Bad data or config raise `ConfigError`.
    """
    from kerasguide.pipeline import (
        Progress,
        StepEvents,
        prepare,
        record_interrupted,
        start_command_run,
        unwrapped_interrupts,
    )
    from kerasguide.report import write_report
    from kerasguide.rundir import new_run_dir, utc_now

    progress = progress or Progress(False)
    started = time.perf_counter()
    dataset, model = prepare(config)
    run_dir = new_run_dir(out, config)
    lf = config.lr_find
    steps = planned_steps(lf.steps, lf.max_epochs, math.ceil(len(dataset.x_train) / config.train.batch_size))
    try:
        start_command_run(run_dir, config, config_path, "lr_find", dataset, model)
        progress.emit("start", run_dir=str(run_dir.path), name=config.name, kind="lr_find", steps=steps)
        progress.emit("stage", stage="lr_find")
        step = StepEvents(progress, "lr_find", steps, every=max(1, steps // 20))

        def each_step(i, lr, loss):
            step(i + 1, lr=lr, loss=loss)
            if on_step is not None:
                on_step(i, lr, loss)

        with unwrapped_interrupts():  # Ctrl-C inside TensorFlow's C++ layer may come out wrapped
            result = _find_on_config(config, dataset, model, None, each_step)
        result.save(run_dir.path)
        try:
            result.write_tensorboard(run_dir.tb_dir / "lr_find")
        except Exception as error:  # noqa: BLE001
            logger.warning("could not write the LR range test to TensorBoard: %s", error)
        status = "completed" if result.found else "failed"
        run_dir.update_run(
            status=status,
            ended=utc_now(),
            seconds=round(time.perf_counter() - started, 3),
            error=None if result.found else result.reason,
            lr_find=_record(result, config),
        )
        write_report(run_dir)
    except KeyboardInterrupt:
        logger.warning("LR range test interrupted: keeping what was written in %s", run_dir.path)
        record_interrupted(run_dir, started, progress)
        raise
    except BaseException as error:
        run_dir.update_run(status="failed", ended=utc_now(), error=f"{type(error).__name__}: {error}",
                           seconds=round(time.perf_counter() - started, 3))
        progress.emit("end", status="failed", run_dir=str(run_dir.path), error=f"{type(error).__name__}: {error}")
        raise
    progress.emit("end", status=status, run_dir=str(run_dir.path), error=None if result.found else result.reason)
    return run_dir, result
