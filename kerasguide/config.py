"""The run config: one typed schema, stored as TOML, the single source of truth.

Everything that *does* something in kerasguide (the CLI, the pipeline, the
desktop app, the search) reads or edits a `RunConfig`. Loading a config never
executes code: the only user code that ever runs is an explicit
`model.kind = "python:PATH:FUNCTION"` builder, and the run record says so.

This module must stay free of TensorFlow/Keras imports: the desktop app
imports it to build its form.

Example:

```python
from kerasguide.config import RunConfig, load_config
cfg = RunConfig()                       # the bundled digits default
cfg = load_config("resources/configs/digits.toml")
cfg.optimizer.learning_rate             # 0.001
```
"""

from __future__ import annotations

import math
import os
import re
import reprlib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kerasguide.errors import ConfigError, one_line
from kerasguide.io import atomic_write_bytes  # re-exported: older callers
from kerasguide.tasks import REGRESSION_SOURCES, config_task, task_settings  # noqa: F401  (re-exported)

__all__ = [
    "ConfigError", "RunConfig", "DataConfig", "AugmentConfig", "ModelConfig", "OptimizerConfig", "ScheduleConfig",
    "TrainConfig", "ChecksConfig", "MonitorConfig", "LRFindConfig", "SearchConfig", "EnsembleConfig",
    "TrackingConfig",
    "load_config", "loads_config", "dump_config", "save_config", "config_from_dict",
    "format_validation_error", "check_metric_names",
    "DEFAULT_CONFIG_NAME",
]

DEFAULT_CONFIG_NAME = "digits"

KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")
BUNDLED_DATASETS = ("digits", "mnist1d", "diabetes")
SOURCE_PREFIXES = ("npz:", "csv:", "images:", "python:")

ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "linear")
INITIALIZERS = (
    "he_normal",
    "he_uniform",
    "glorot_normal",
    "glorot_uniform",
    "normal",
    "zeros",
    "sparse",
)


# Largest magnitude any number in a config may have: beyond these, TensorFlow's int32 step counters overflow
# or a float is no setting anyone means (`epochs = 10**18`, `bias_init = 1e308` ended in TensorFlow tracebacks).
MAX_INT = 2**31 - 1
MAX_FLOAT = 1e15


class _Section(BaseModel):
    """Base of every section: unknown keys are errors, assignment is validated.

    strict: no string or bool is coerced into a number (`epochs = "3"`, `epochs = true`, `batch_norm = "yes"`
    were silently accepted); an int still fills a float. allow_inf_nan=False: every float is finite
    (`bias_init = nan` trained at chance, `l2 = inf` failed later in Keras without naming the key).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _bounded_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        for item in value if isinstance(value, list | tuple) else (value,):
            if isinstance(item, bool) or not isinstance(item, int | float):
                continue
            if isinstance(item, int) and abs(item) > MAX_INT:
                raise ValueError(f"must be at most {MAX_INT} in size")
            if isinstance(item, float) and abs(item) > MAX_FLOAT:
                raise ValueError(f"must be at most {MAX_FLOAT:g} in size")
        return value


PositiveInt = Annotated[int, Field(gt=0)]


class AugmentConfig(_Section):
    """Random changes to the training examples, with Keras' preprocessing layers (training split only).

    Off for the sanity checks (recipe D15: checks see the data as it is), the
    validation and test splits, and prediction. Flip, rotation, zoom,
    translation and contrast need images (height, width, channels); noise
    works on any single input array.
    """

    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = Field(
        "none", description="images: random flips (keras.layers.RandomFlip).")
    rotation: float = Field(0.0, ge=0.0, le=1.0, description=(
        "images: random rotation up to this fraction of a full turn either way (RandomRotation; 0.1 = 36 degrees)."))
    zoom: float = Field(0.0, ge=0.0, lt=1.0, description="images: random zoom in or out by up to this fraction (RandomZoom).")
    translation: float = Field(0.0, ge=0.0, lt=1.0, description=(
        "images: random shift by up to this fraction of the height and width (RandomTranslation)."))
    contrast: float = Field(0.0, ge=0.0, lt=1.0, description="images: random contrast change by up to this fraction (RandomContrast).")
    noise: float = Field(0.0, ge=0.0, le=1.0, description=(
        "Gaussian noise of this standard deviation, added after preprocessing (GaussianNoise)."))

    def active(self) -> dict[str, Any]:
        """The augmentations that are on, by name (empty when none is)."""
        return {k: v for k, v in self.model_dump().items() if v not in (0.0, "none")}


class DataConfig(_Section):
    """Where the data come from, how they are split and preprocessed (recipes A1-A3)."""

    source: str = Field("digits", description=(
        "digits | mnist1d | diabetes (regression) | mnist | fashion_mnist | cifar10 | npz:PATH | csv:PATH | images:DIR "
        "| python:PATH:FUNCTION (your function returns the splits: kerasguide.user_data)"))
    task: Literal["auto", "classification", "binary", "regression"] = Field("auto", description=(
        "auto: regression for train.loss = mae or huber, the diabetes source, or targets that are not whole "
        "numbers; binary for train.loss = binary_crossentropy; else classification. binary: 2 classes, a sigmoid "
        "output. regression: a linear output per target; train's defaults mean mse, [mae, rmse], val_loss."))
    label_column: str = Field("label", description="csv: the column holding the labels (regression: the target).")
    # TOML has no tuple: a list is taken (strict mode would refuse it), its items still strict ints.
    image_size: Annotated[tuple[PositiveInt, PositiveInt],
                          BeforeValidator(lambda v: tuple(v) if isinstance(v, list) else v)] = Field(
        (32, 32), description="images: every image is resized to (height, width).")
    color_mode: Literal["grayscale", "rgb"] = Field("rgb", description="images: channels.")
    validation_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="One validation split, shuffled with the seed, stratified by class (A3).")
    subset: PositiveInt | None = Field(
        None, description="Keep only this many training examples (after the split).")
    preprocess: Literal["none", "center", "standardize", "pca", "whiten"] = Field(
        "standardize", description="Fitted on the training split only, then applied everywhere (A1, A2).")
    pca_k: PositiveInt | None = Field(
        None, description="pca/whiten: keep this many components (all if unset).")
    epsilon: float = Field(1e-5, gt=0.0, description="whiten: added to the eigenvalues; larger damps noise.")
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0, description=(
        "Hold out this fraction as a test split (stratified, with the seed) when the source has none of its own "
        "(images:, csv:, npz: without x_test, the bundled sets); 0 = no test split."))
    sample: PositiveInt = Field(2048, description=(
        "Streamed data (images:, tf.data from python:): training examples read into memory to fit the "
        "preprocessing and run the sanity checks on; the rest stays on disk."))
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description=(
        "Random changes to the training examples only (Keras preprocessing layers)."))

    @model_validator(mode="after")
    def _check_fractions(self) -> DataConfig:
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError(f"validation_fraction + test_fraction = {self.validation_fraction + self.test_fraction:g} "
                             "leaves no training data; keep their sum below 1")
        return self

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str) -> str:
        if value in BUNDLED_DATASETS or value in KERAS_DATASETS:
            return value
        if value.startswith("python:"):
            path, _, name = value[len("python:"):].rpartition(":")
            if not (path.strip() and name.isidentifier()):
                raise ValueError("your own data is written python:PATH:FUNCTION")
            return value
        for prefix in SOURCE_PREFIXES:
            if value.startswith(prefix):
                if not value[len(prefix) :].strip():
                    raise ValueError(f"`{prefix}` needs a path after the colon")
                return value
        allowed = ", ".join(BUNDLED_DATASETS + KERAS_DATASETS)
        raise ValueError(f"unknown data source; allowed: {allowed}, npz:PATH, csv:PATH, images:DIR, "
                         "python:PATH:FUNCTION")


class ModelConfig(_Section):
    """The network: an MLP, a CNN, or the user's own builder (recipes B4-B8, C9-C11)."""

    kind: str = Field(
        "mlp", description="mlp | cnn | python:PATH:FUNCTION (runs that file's code; FUNCTION may be a "
        "keras-tuner HyperModel) | keras:PATH.keras (a saved model, fine-tuned)."
    )
    hidden: list[PositiveInt] = Field(
        [256, 128], description="mlp: hidden layer sizes; cnn: dense layers after the convs."
    )
    filters: list[PositiveInt] = Field([32, 64], description="cnn: filters per conv block.")
    kernel_size: PositiveInt = Field(3, description="cnn: kernel size (k, or k x k for images).")
    pool: int = Field(2, ge=0, description="cnn: max-pool size after each block (0 = none).")
    strides: PositiveInt = Field(1, description="cnn: conv strides.")
    conv_dims: Literal["auto", "1d", "2d"] = Field(
        "auto", description="cnn: 1d for sequences, 2d for images; auto from the data shape."
    )
    activation: Literal["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "linear"] = (
        "relu"
    )
    kernel_initializer: Literal[
        "he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "normal", "zeros", "sparse"
    ] = Field("he_normal", description="He for ReLU, Glorot for tanh (recipe B4).")
    init_stddev: float = Field(0.01, gt=0.0, description="normal: its standard deviation.")
    sparse_k: PositiveInt = Field(10, description="sparse: inputs connected per unit (B6).")
    bias_init: float = Field(0.0, ge=-100.0, le=100.0, description="Constant bias initial value (B7: 0, or 0.01).")
    batch_norm: bool = Field(False, description="BatchNorm after dense/conv, before the nonlinearity.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Inverted dropout rate (C11).")
    dropconnect: float = Field(
        0.0, ge=0.0, lt=1.0, description="DropConnect: fraction of hidden weights dropped (C11)."
    )
    l1: float = Field(0.0, ge=0.0, description="L1 strength on weights (C9).")
    l2: float = Field(0.0, ge=0.0, description="L2 strength on weights (C9).")
    regularize_bias: bool = Field(False, description="Also regularize biases (usually not).")
    max_norm: float | None = Field(None, gt=0.0, description="Max-norm c, about 3 or 4 (C10).")
    freeze: int = Field(0, ge=0, description="keras: freeze the first N layers with weights (fine-tuning).")
    hp: dict[str, float | int | str | bool] = Field(
        default_factory=dict,
        description="python: values of the hyperparameters the builder declares (hp.Int, hp.Float, "
        "hp.Choice...); unset ones take their declared default. `kerasguide tune` searches them.",
    )

    @field_validator("kind")
    @classmethod
    def _check_kind(cls, value: str) -> str:
        if value in ("mlp", "cnn"):
            return value
        if value.startswith("keras:"):
            if not value[len("keras:"):].strip().endswith(".keras"):
                raise ValueError("a saved model is written keras:PATH.keras")
            return value
        if value.startswith("python:"):
            parts = value.split(":")
            # Windows drive letters ("python:C:/x.py:build") keep working.
            if len(parts) >= 3 and parts[-1].isidentifier() and ":".join(parts[1:-1]).strip():
                return value
            raise ValueError("a user builder is written python:PATH:FUNCTION")
        raise ValueError("allowed: mlp, cnn, python:PATH:FUNCTION, keras:PATH.keras")

    @property
    def builder(self) -> tuple[str, str] | None:
        """`(path, function)` of a user's builder, or None for the built-in kinds."""
        if not self.kind.startswith("python:"):
            return None
        parts = self.kind.split(":")
        return ":".join(parts[1:-1]), parts[-1]

    @property
    def saved_model(self) -> str | None:
        """The path of a `keras:PATH.keras` saved model, or None."""
        return self.kind[len("keras:"):].strip() if self.kind.startswith("keras:") else None


class OptimizerConfig(_Section):
    """The parameter update (recipe F21): SGD + Nesterov and Adam are the defaults to try."""

    name: Literal["sgd", "adagrad", "rmsprop", "adam", "adamw"] = "adam"
    learning_rate: float | Literal["auto"] = Field(
        1e-3,
        description='Initial (or maximum) learning rate; "auto" runs the LR range test first.',
    )
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="sgd: momentum.")
    nesterov: bool = Field(True, description="sgd: Nesterov momentum.")
    beta_1: float = Field(0.9, ge=0.0, lt=1.0, description="adam/adamw: beta_1.")
    beta_2: float = Field(0.999, ge=0.0, lt=1.0, description="adam/adamw: beta_2.")
    weight_decay: float | None = Field(None, ge=0.0, description="Decoupled weight decay.")
    ema: bool = Field(False, description="Keep an exponential moving average of the weights (J35).")
    ema_momentum: float = Field(0.99, gt=0.0, lt=1.0, description="ema: its momentum.")
    clipnorm: float | None = Field(None, gt=0.0, description="Clip each gradient's norm.")
    global_clipnorm: float | None = Field(None, gt=0.0, description="Clip the global norm.")

    @field_validator("learning_rate")
    @classmethod
    def _check_lr(cls, value: float | str) -> float | str:
        if isinstance(value, str):
            return value
        if not math.isfinite(value) or value <= 0:
            raise ValueError("must be a positive number or \"auto\"")
        return value


ScheduleKind = Literal[
    "constant",
    "step",
    "exponential",
    "inverse_time",
    "piecewise",
    "cosine",
    "cosine_restarts",
    "cyclical",
    "one_cycle",
]


class ScheduleConfig(_Section):
    """How the learning rate moves over training (recipes G22-G23). Durations in epochs."""

    kind: ScheduleKind = "constant"
    warmup_epochs: float = Field(0.0, ge=0.0, description="Linear warm-up before any schedule.")
    # step decay
    every_epochs: float = Field(5.0, gt=0.0, description="step: decay every N epochs.")
    factor: float = Field(0.5, gt=0.0, description="step: multiply the LR by this every `every_epochs`.")
    # exponential / inverse time: lr = a0 * exp(-k t), a0 / (1 + k t), t in epochs
    decay_rate: float = Field(0.1, ge=0.0, description="exponential/inverse_time: k per epoch.")
    # piecewise
    boundaries_epochs: list[float] = Field([], description="piecewise: epoch boundaries.")
    values: list[float] = Field(
        [], description="piecewise: factors of the learning rate, one more than boundaries."
    )
    # cosine
    alpha: float = Field(0.0, ge=0.0, le=1.0, description="cosine: final fraction of the LR.")
    first_decay_epochs: float = Field(10.0, gt=0.0, description="cosine_restarts: first cycle.")
    # cyclical (Smith 2015)
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular"
    min_lr: float | None = Field(None, gt=0.0, description="cyclical: lower bound (max/10 if unset).")
    step_size_epochs: float = Field(2.0, gt=0.0, description="cyclical: half a cycle, in epochs.")
    gamma: float = Field(0.99994, gt=0.0, le=1.0, description="cyclical exp_range: decay per step.")
    # one-cycle
    pct_start: float = Field(0.25, gt=0.0, lt=1.0, description="one_cycle: warm-up fraction.")
    div_factor: float = Field(25.0, gt=1.0, description="one_cycle: start LR = max / div_factor.")
    div_final: float = Field(1e4, gt=1.0, description="one_cycle: end LR = max / div_final.")
    cycle_momentum: bool = Field(True, description="one_cycle: cycle momentum inversely.")
    max_momentum: float = Field(0.95, gt=0.0, lt=1.0)
    min_momentum: float = Field(0.85, gt=0.0, lt=1.0)
    # reduce on plateau (Keras' callback), may combine with constant
    reduce_on_plateau: bool = Field(False, description="Multiply the LR on a val_loss plateau.")
    plateau_factor: float = Field(0.5, gt=0.0, lt=1.0)
    plateau_patience: PositiveInt = 3

    @model_validator(mode="after")
    def _check_piecewise(self) -> ScheduleConfig:
        if self.kind == "piecewise" and len(self.values) != len(self.boundaries_epochs) + 1:
            raise ValueError(
                "piecewise: `values` needs exactly one more entry than `boundaries_epochs`"
            )
        return self

    @model_validator(mode="after")
    def _check_plateau(self) -> ScheduleConfig:
        # Keras' ReduceLROnPlateau assigns the optimizer's rate, which a schedule
        # (or a warm-up, itself a schedule) does not allow: refused here, before a
        # run starts, rather than by a TypeError at the first plateau.
        if self.reduce_on_plateau and (self.kind != "constant" or self.warmup_epochs > 0):
            what = (f"`schedule.kind` = {self.kind!r}" if self.kind != "constant"
                    else f"`schedule.warmup_epochs` = {self.warmup_epochs:g}")
            raise ValueError(
                f"`schedule.reduce_on_plateau` = true needs a constant rate (`schedule.kind` = "
                f"\"constant\", `schedule.warmup_epochs` = 0), not {what}: Keras' ReduceLROnPlateau "
                "cannot change a scheduled rate; set `schedule.reduce_on_plateau` = false or use a constant rate"
            )
        return self


class TrainConfig(_Section):
    """The fit itself: loss, metrics, epochs, batch size, seed, speed and distribution."""

    loss: Literal["sparse_categorical_crossentropy", "categorical_hinge", "mse", "binary_crossentropy", "mae",
                  "huber"] = Field("sparse_categorical_crossentropy", description=(
        "classification: sparse_categorical_crossentropy, categorical_hinge, mse (against one-hot labels); "
        "binary: binary_crossentropy; regression: mse, mae, huber (against the targets)."))
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    huber_delta: float = Field(1.0, gt=0.0, description="huber: where the loss turns linear, in the targets' units.")
    metrics: list[Literal["accuracy", "top3_accuracy", "mae", "rmse"]] = Field(
        ["accuracy"], description="classification: accuracy, top3_accuracy; regression: mae, rmse.")
    epochs: PositiveInt = 30
    batch_size: PositiveInt = 64
    seed: int = Field(0, ge=0)
    steps_per_execution: PositiveInt | Literal["auto"] = Field(
        "auto", description='Steps per compiled call; "auto" = one epoch up to 64 (speed).')
    jit_compile: bool = False
    mixed_precision: bool = False
    strategy: Literal["default", "mirrored", "multi_worker"] = "default"
    early_stopping_patience: int | None = Field(
        None, gt=0, description="Stop when val_loss has not improved for N epochs.")
    backup_after: float = Field(
        10.0, ge=0.0, le=1e6, description="Seconds of training before the first backup for `run --resume` "
        "(weights, optimizer, epoch; then at most ~5% of the time): a run killed sooner starts again. 0: from "
        "the first epoch.")
    monitor_metric: str = Field(
        "val_accuracy", description="The metric that picks the best checkpoint (minimized: loss, mae, rmse).")
    init_from: str | None = Field(
        None, description="A .keras checkpoint of the same model to continue from: its weights and optimizer "
        "state (step counter, so the schedule's position too). A search sets it for a promoted trial.")
    initial_epoch: int = Field(
        0, ge=0, description="Epochs already trained (with init_from): fit runs epochs initial_epoch+1..epochs.")

    @model_validator(mode="after")
    def _check_continue(self) -> TrainConfig:
        if self.initial_epoch >= self.epochs:
            raise ValueError(f"`train.initial_epoch` ({self.initial_epoch}) must be less than `train.epochs` "
                             f"({self.epochs}): the epochs already trained come first")
        return self


class ChecksConfig(_Section):
    """Sanity checks before training (recipes B5, D12-D15, A2)."""

    enabled: bool = True
    stop_on_failure: bool = Field(True, description="Stop before training when a check fails.")
    initial_loss_tolerance: float = Field(0.25, gt=0.0, description="Relative tolerance.")
    overfit_examples: PositiveInt = 20
    overfit_steps: PositiveInt = 200
    gradcheck_examples: PositiveInt = 4
    gradcheck_coords: PositiveInt = Field(4, description="Coordinates per parameter tensor.")
    overfit_accuracy: float = Field(0.99, gt=0.0, le=1.0, description="Train accuracy the overfit check must reach.")
    probe_examples: PositiveInt = Field(256, description="Examples in the probe batch (init stats, losses).")
    skip: list[Literal["data", "initialization", "initial_loss", "regularization", "overfit", "gradients"]] = Field(
        [], description="Checks not to run."
    )


class MonitorConfig(_Section):
    """Babysitting monitors (recipes E16-E20) and the divergence guard."""

    enabled: bool = True
    update_ratio_every: int = Field(
        1,
        ge=0,
        description="Update:weight ratios every N training steps, measured inside the compiled step (E18); "
        "0 = the first step of every execution (cheapest; the diagnosis thresholds assume 1).",
    )
    histogram_every_epochs: PositiveInt = Field(
        1, description="Activation/gradient/weight histograms on the probe batch every N epochs (E19)."
    )
    images_every_epochs: PositiveInt = Field(5, description="First-layer weights as images every N epochs (E20).")
    probe_batch: PositiveInt = Field(
        64,
        description="Training examples in the fixed probe batch (E19). A unit counts as dead when it is zero on "
        "all of them; 64 costs a third of 256's time per probe (the diagnosis is calibrated on 64).",
    )
    divergence_factor: float = Field(
        4.0, gt=1.0, description="Stop (status diverged) when the smoothed loss exceeds this x its start."
    )
    prune: list[Literal["diverged", "not_learning", "lr_too_high"]] = Field(
        [],
        description="Stop the run (status pruned) when the diagnosis, read after each epoch, finds one of these "
        "at error severity. Empty: never (kerasguide tune sets it for its trials from search.prune_codes).",
    )
    prune_after: PositiveInt = Field(
        3, description="The first epoch the pruning reads (a slow first epoch is not a dead run)."
    )


class LRFindConfig(_Section):
    """The LR range test (recipe G24)."""

    start_lr: float = Field(1e-7, gt=0.0, description="The first rate of the sweep.")
    end_lr: float = Field(10.0, gt=0.0, description="The last rate of the sweep.")
    steps: int = Field(100, ge=2, description="At most this many steps (fastai's and Lightning's 100).")
    smoothing: float = Field(0.98, ge=0.0, lt=1.0, description="EMA factor of the loss.")
    diverge_factor: float = Field(4.0, gt=1.0, description="Stop when the smoothed loss passes this x its best.")
    max_epochs: float = Field(
        1.0, gt=0.0, description="Never sweep more data than this (fewer steps instead), unless fewer than "
        "30 steps fit: small data are swept over up to 10 epochs."
    )
    rule: Literal["auto", "valley", "steepest", "minimum_div_10"] = Field(
        "auto",
        description="The suggestion used: auto = the consensus (steepest for a one-cycle/cyclical "
        "peak, else the median of the rules).",
    )

    @model_validator(mode="after")
    def _check_range(self) -> LRFindConfig:
        if self.end_lr <= self.start_lr:
            raise ValueError(
                f"`end_lr` must be greater than `start_lr`. Received: "
                f"start_lr={self.start_lr}, end_lr={self.end_lr}"
            )
        return self


class SearchConfig(_Section):
    """Hyperparameter search (recipes H25-H31). Filled in by `kerasguide tune`."""

    class Param(_Section):
        """One searched key: a numeric range `low`..`high` (log scale with `log`) or `choices`."""

        low: float | None = Field(None, description="Lower bound of the range.")
        high: float | None = Field(None, description="Upper bound of the range.")
        log: bool = Field(False, description="Sample 10 ** uniform(log10 low, log10 high) (H27).")
        step: float | None = Field(None, gt=0.0, description="grid: spacing (a factor when log).")
        choices: list[bool | int | float | str] | None = Field(
            None, description="A list of values instead of a range."
        )

        @model_validator(mode="after")
        def _check_param(self) -> SearchConfig.Param:
            if self.choices is not None:
                if self.low is not None or self.high is not None:
                    raise ValueError("give either `choices` or `low` and `high`, not both")
                if not self.choices:
                    raise ValueError("`choices` must not be empty")
                return self
            if self.low is None or self.high is None:
                raise ValueError("a searched key needs `low` and `high` (or `choices`)")
            if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
                raise ValueError(
                    f"`low` must be less than `high`. Received: low={self.low}, high={self.high}"
                )
            if self.log and self.low <= 0:
                raise ValueError(f"a log range needs `low` > 0. Received: low={self.low}")
            if self.log and self.step is not None and self.step <= 1:
                raise ValueError(f"a log range's `step` is a factor > 1. Received: step={self.step}")
            return self

    class Stage(_Section):
        """One stage of a coarse-to-fine search (recipe H29)."""

        epochs: PositiveInt = Field(description="Epochs each trial of this stage trains.")
        trials: PositiveInt = Field(description="Trials in this stage (hyperband: ignored).")

    algorithm: Literal["asha", "random", "grid", "bayesian", "hyperband"] = Field(
        "asha", description="asha: successive halving that continues promoted trials from their checkpoints, "
        "TPE sampling once trials have scores (H26, H29); random is preferred to grid (Bergstra & Bengio)."
    )
    trials: PositiveInt = Field(
        20, description="Trials in the first (coarse) stage; asha: configurations started at its first rung.")
    min_epochs: PositiveInt | None = Field(
        None, description="asha: epochs of the first rung (each rung trains factor x longer, up to train.epochs); "
        "unset: as many rungs as `trials` can fill, at most 3 (train.epochs / factor**2)."
    )
    space: dict[str, Param] = Field(
        {},
        description='Dotted config key -> range, e.g. "optimizer.learning_rate" = {low = 1e-5, '
        "high = 1e-1, log = true}. Empty: learning rate and L2 (log) and dropout (H25).",
    )
    stages: list[Stage] = Field(
        [],
        description="Coarse to fine (H29). Empty: 1 epoch x trials, 5 epochs x trials/2, "
        "train.epochs x trials/4 (hyperband: one stage of train.epochs).",
    )
    objective: str | None = Field(
        None, description="Metric the search maximizes (minimizes for losses); train.monitor_metric if unset."
    )
    top_k: PositiveInt = Field(3, description="A later stage narrows each range around this many best trials.")
    border_fraction: float = Field(
        0.1, gt=0.0, lt=0.5, description="Best value in this outer fraction of its range = on the border (H28)."
    )
    widen_on_border: bool = Field(True, description="Run one more stage with a border range widened (H28).")
    prune: bool = Field(
        True, description="Stop a trial the diagnosis condemns after an epoch (monitor.prune); the oracle sees it fail."
    )
    prune_codes: list[Literal["diverged", "not_learning", "lr_too_high"]] = Field(
        ["diverged", "not_learning", "lr_too_high"],
        description="The error findings that prune a trial (from monitor.prune_after epochs on).",
    )
    workers: int = Field(
        1, ge=0, description="Trials run at once, each on a worker (`engine`, H30); 0 = in this process."
    )
    engine: Literal["ray", "process"] = Field(
        "ray", description="workers >= 1: Ray actors that import TensorFlow once each (this machine, or a cluster: "
        "`address`), or a child process per trial (`python -m kerasguide.cli run`, H30)."
    )
    address: str | None = Field(
        None, description="ray: a running cluster's HOST:PORT (`ray start --head`); unset: a local Ray "
        "(or RAY_ADDRESS). Every node needs kerasguide and the search directory at the same path."
    )
    gpus_per_trial: float = Field(
        0.0, ge=0.0, description="GPUs each trial's worker holds (ray: Ray sets its CUDA_VISIBLE_DEVICES; "
        "process: the master does, from CUDA_VISIBLE_DEVICES or nvidia-smi); memory growth on. A fraction shares "
        "a GPU (0.5: two workers a GPU); 0 = trials on the CPU (GPUs hidden). More workers than the GPUs hold: "
        "fewer run, with a warning."
    )
    trial_timeout: float | None = Field(
        None, gt=0.0, description="Seconds before a trial's worker is killed (workers >= 1)."
    )
    trial_plots: bool = Field(
        False, description="Each trial's report.md with its plots (report.plots); off: a second less a trial.")
    grid_points: int = Field(4, ge=2, description="grid: values per numeric key without a `step`.")
    hyperband_factor: int = Field(
        3, ge=2, description="asha and hyperband: reduction factor between rungs (1 in factor trials promoted).")
    seed: int | None = Field(None, ge=0, description="Sampling seed; train.seed if unset.")

    @model_validator(mode="after")
    def _check_asha(self) -> SearchConfig:
        if self.algorithm == "asha" and self.stages:
            raise ValueError(
                "`search.stages` sets the stages of random, grid and bayesian searches; asha's rungs come from "
                "`search.min_epochs`, `search.hyperband_factor` and `train.epochs`: drop the stages or set "
                '`search.algorithm = "random"`'
            )
        return self


class EnsembleConfig(_Section):
    """Ensembles, weight averaging and distillation (recipes J34-J36)."""

    members: PositiveInt = Field(5, description="Models in the ensemble.")
    split_seed: int | None = Field(
        None,
        ge=0,
        description="Seed of the data split when it must not follow train.seed: `kerasguide "
        "ensemble` sets it so that members of different seeds share one train/validation split.",
    )
    snapshots: int = Field(
        0, ge=0, description="Keep the last N epoch checkpoints of a run (snapshot ensemble); 0 = off."
    )
    snapshot_every_epochs: PositiveInt = Field(
        1, description="One snapshot every N epochs (a cyclical schedule's cycle length)."
    )
    average_epochs: int = Field(
        0, ge=0, description="Average the weights of the last N epochs at the end (Polyak/SWA); 0 = off."
    )
    temperature: float = Field(4.0, gt=0.0, description="distill: softmax temperature T of the soft targets.")
    alpha: float = Field(
        0.1, ge=0.0, le=1.0, description="distill: weight of the hard-label loss (1 - alpha on the soft one)."
    )
    student_hidden: list[PositiveInt] | None = Field(
        None, description="distill: the student's hidden sizes (model.hidden if unset)."
    )
    student_epochs: PositiveInt | None = Field(None, description="distill: epochs (train.epochs if unset).")


class ReportConfig(_Section):
    """report.md at the end of a run (recipe I32)."""

    plots: bool = Field(
        True, description="Draw its plots (loss.png, lr_find.png): about a second of matplotlib a run. "
        "kerasguide tune turns them off for its trials (search.trial_plots).")


# What MLflow can store a run in (its tracking-store schemes); a typo in the scheme was a traceback at the end
# of a run, or a search's trials all logged nowhere.
MLFLOW_SCHEMES = ("file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")


class TrackingConfig(_Section):
    """Where a run is recorded besides its run directory: MLflow, and TensorBoard's HParams (recipe I33)."""

    mlflow: str | None = Field(None, description=(
        "MLflow tracking URI: sqlite:///PATH, http(s)://HOST:PORT, postgresql://..., databricks, file:PATH "
        "(MLflow 3: with MLFLOW_ALLOW_FILE_STORE=true). Unset: off, unless the KERASGUIDE_MLFLOW environment "
        "variable asks (this key wins over it)."))
    experiment: str | None = Field(None, description=(
        'MLflow experiment name; unset: KERASGUIDE_MLFLOW_EXPERIMENT, else "kerasguide".'))
    parent_run: str | None = Field(None, description=(
        "The MLflow run this run nests under (mlflow.parentRunId): kerasguide tune and ensemble set it for their "
        "trials and members."))
    hparams_experiment: bool = Field(True, description=(
        "Write the run's own HParams experiment (every setting with its domain, the train and validation "
        "metrics) beside its HParams session in tb/. kerasguide tune turns it off for its trials: the search "
        "directory holds their one experiment."))

    @field_validator("mlflow")
    @classmethod
    def _check_mlflow(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        scheme, colon, rest = value.partition(":")
        if scheme.lower() in ("databricks", "databricks-uc", "uc") and not colon:
            return value  # Databricks' profile URIs may be the bare scheme
        if not colon or scheme.lower() not in MLFLOW_SCHEMES or not rest.strip("/"):
            raise ValueError(f"not an MLflow tracking URI; use {', '.join(s + ':' for s in MLFLOW_SCHEMES[:7])} "
                             "or databricks, e.g. sqlite:///mlflow.db or http://127.0.0.1:5000")
        return value

    @field_validator("parent_run")
    @classmethod
    def _check_parent_run(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            raise ValueError("an MLflow run id is 1-64 letters, digits, '_' or '-'")
        return value


class RunConfig(_Section):
    """A whole run. Every field has a default: `RunConfig()` is the digits recipe."""

    name: str = Field("digits-mlp", description="Used in the run directory's name.")
    description: str = ""
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainConfig = TrainConfig()
    checks: ChecksConfig = ChecksConfig()
    monitor: MonitorConfig = MonitorConfig()
    lr_find: LRFindConfig = LRFindConfig()
    search: SearchConfig = SearchConfig()
    ensemble: EnsembleConfig = EnsembleConfig()
    report: ReportConfig = ReportConfig()
    tracking: TrackingConfig = TrackingConfig()

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
            raise ValueError("use 1-64 letters, digits, '.', '_' or '-', starting alphanumeric")
        return value

    @field_validator("checks", "monitor", mode="before")
    @classmethod
    def _bool_shorthand(cls, value: Any) -> Any:
        # `checks = false` at the top level is shorthand for `[checks] enabled = false`.
        if isinstance(value, bool):
            return {"enabled": value}
        return value

    @model_validator(mode="after")
    def _check_task(self) -> RunConfig:  # a task the data decide is checked by the data stage
        task = config_task(self)
        if task:
            try:
                task_settings(self, task)
            except ConfigError as error:
                raise ValueError(str(error)) from None
        return self

    def to_dict(self) -> dict[str, Any]:
        """Every field, defaults filled in, in TOML-friendly types (None dropped)."""
        return _drop_none(self.model_dump(mode="json"))


def _drop_none(value: Any) -> Any:
    # TOML has no null: an unset optional is simply absent.
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


# Echoed bad values are cut (reprlib) and at most this many errors are listed: a 10 MB `name` or a config of
# 100 000 unknown keys is named in one short line, not echoed whole.
_ECHO = reprlib.Repr()  # Python 3.11's takes no arguments
_ECHO.maxstring = _ECHO.maxother = 40
_ECHO.maxlevel, _ECHO.maxlist, _ECHO.maxdict, _ECHO.maxtuple = 2, 4, 4, 4
_MAX_ERRORS = 3
# Arrays and inline tables nested deeper than this are refused before tomllib (or pydantic) recurses: 600
# levels in 1.2 kB of TOML was a RecursionError. No setting nests deeper than 3.
MAX_NESTING = 32


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loc(loc: tuple[Any, ...]) -> str:
    return _short(".".join(str(part) for part in loc if not isinstance(part, int)) or "(top level)")


def format_validation_error(error: ValidationError, source: str = "config") -> str:
    """One line (at most `MAX_MESSAGE` characters) naming the key, the bad value and what is allowed."""
    items = error.errors()
    unknown = [_loc(item["loc"]) for item in items if item["type"] == "extra_forbidden"]
    parts = []
    if unknown:
        listed = ", ".join(f"`{key}`" for key in unknown[:_MAX_ERRORS])
        more = f" and {len(unknown) - _MAX_ERRORS} more" if len(unknown) > _MAX_ERRORS else ""
        parts.append(f"unknown key{'s' if len(unknown) > 1 else ''} {listed}{more} (check the spelling; "
                     "`kerasguide config --schema` lists them)")
    others = [item for item in items if item["type"] != "extra_forbidden"]
    for item in others[:_MAX_ERRORS]:
        key = _loc(item["loc"])
        msg = item["msg"].removeprefix("Value error, ")
        if not item["loc"] or isinstance(item.get("input"), dict):  # a rule over several keys: its message names them
            parts.append(msg)
        elif item["type"] == "missing":
            parts.append(f"`{key}` is missing")
        else:
            parts.append(f"`{key}` = {_ECHO.repr(item.get('input'))}: {msg}")
    if len(others) > _MAX_ERRORS:
        parts.append(f"and {len(others) - _MAX_ERRORS} more")
    # One line, always: a key or value may itself hold line breaks.
    return one_line(f"{_short(source, 120)}: " + "; ".join(parts))


def _depth(data: Any) -> int:
    """How deep lists and dicts nest in `data`, without recursing (a value may be nested 10 000 deep)."""
    deepest, stack = 0, [(data, 0)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict | list | tuple):
            deepest = max(deepest, level + 1)
            if deepest > MAX_NESTING:
                return deepest
            stack.extend((v, level + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def _toml_nesting(text: str) -> int:
    """The deepest nesting of `[` and `{` in TOML text outside strings and comments (an upper bound of what
    tomllib recurses into), read in one pass without recursing."""
    depth = deepest = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "#":
            i = text.find("\n", i)
            if i < 0:
                break
        elif c in "\"'":
            quote = text[i : i + 3] if text.startswith(c * 3, i) else c
            # the string's end; a basic string's escaped quotes are skipped
            j = text.find(quote, i + len(quote)) if c == "'" else _basic_end(text, i + len(quote), quote)
            if j < 0:
                return deepest  # unterminated: tomllib says so
            i = j + len(quote) - 1
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth = max(depth - 1, 0)
        i += 1
    return deepest


def _basic_end(text: str, start: int, quote: str) -> int:
    j = start
    while True:
        j = text.find(quote, j)
        if j < 0:
            return -1
        backslashes = len(text[:j]) - len(text[:j].rstrip("\\"))
        if backslashes % 2 == 0:
            return j
        j += 1


def _task_metrics(config: RunConfig) -> list[tuple[set[str], str]] | None:
    """For each task the data may still decide: the metric names a run logs (`loss`, the configured metrics, each
    also with `val_`) and the monitored one as that task resolves it; None when a user's model may bring its own
    compile (`python:`, `keras:`) and so its own metrics."""
    if config.model.kind not in ("mlp", "cnn"):
        return None
    task = config_task(config)
    if task is None and config.data.source in BUNDLED_DATASETS + KERAS_DATASETS:
        task = "classification"  # the bundled sets' labels are classes (diabetes, a regression, has its task)
    found = []
    for candidate in (task,) if task else ("classification", "regression"):
        try:
            settings = task_settings(config, candidate)
        except ConfigError:  # this task's loss or metrics do not fit: not a task this config can run
            continue
        names = {"loss", *settings.metrics}
        found.append((names | {f"val_{name}" for name in names}, settings.monitor_metric))
    return found


def check_metric_names(config: RunConfig, source: str = "config") -> None:
    """`train.monitor_metric` and `search.objective` must be metrics the run logs: a typo (`val_acc`) ran with no
    best checkpoint, and a search with every score null. Raises `ConfigError` naming the key and the metrics."""
    tasks = _task_metrics(config)
    if not tasks:
        return
    available = set().union(*(names for names, _ in tasks))
    for key, value, ok in (
            # the classification default (`val_accuracy`) stands for a regression's `val_loss`: as the task resolves it
            ("train.monitor_metric", config.train.monitor_metric, any(m in names for names, m in tasks)),
            ("search.objective", config.search.objective, config.search.objective in available)):
        if value is not None and not ok:
            raise ConfigError(one_line(f"{_short(source, 120)}: `{key}` = {_ECHO.repr(value)} is not a metric this "
                                       f"run logs; use one of: {', '.join(sorted(available))}"))


def config_from_dict(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a plain dict as a `RunConfig`, raising `ConfigError` with one line."""
    if not isinstance(data, dict):
        raise ConfigError(f"{_short(source, 120)}: expected a table of settings, got {type(data).__name__}")
    if _depth(data) > MAX_NESTING:
        raise ConfigError(f"{_short(source, 120)}: nested more than {MAX_NESTING} levels deep; no setting nests so deep")
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None
    except (TypeError, ValueError, RecursionError) as error:  # pragma: no cover - defensive
        raise ConfigError(one_line(f"{_short(source, 120)}: {error}")) from None
    check_metric_names(config, source)
    return config


def loads_config(text: str, source: str = "config") -> RunConfig:
    """Parse TOML text into a `RunConfig`."""
    if _toml_nesting(text) > MAX_NESTING:
        raise ConfigError(f"{_short(source, 120)}: arrays or tables nested more than {MAX_NESTING} levels deep; "
                          "no setting nests so deep")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(one_line(f"{_short(source, 120)}: not valid TOML: {error}")) from None
    except RecursionError:  # a backstop: the scan above should have refused it
        raise ConfigError(f"{_short(source, 120)}: nested too deep to read") from None
    return config_from_dict(data, source)


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read a TOML run config. Raises `ConfigError` with one line naming what is wrong."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "config.toml"
        if not candidate.is_file():
            raise ConfigError(f"{path}: is a directory without a config.toml")
        path = candidate
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    return loads_config(text, str(path))


def dump_config(config: RunConfig) -> str:
    """The resolved config as TOML text (every default filled in)."""
    return tomli_w.dumps(config.to_dict())


def save_config(config: RunConfig, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as TOML, atomically."""
    atomic_write_bytes(path, dump_config(config).encode("utf-8"))
