"""The pieces of a Keras fit that every recipe shares: tf.data, the strategy, compile, building before fit.

What the run's stages, the sanity checks, the LR range test, distillation
and the benchmarks use alike; none of it knows about run directories.
"""

from __future__ import annotations

import json
import os
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from kerasguide._logging import get_logger, import_tensorflow
from kerasguide.config import RunConfig
from kerasguide.io import atomic_path
from kerasguide.tasks import apply_task, config_task
from kerasguide.user_data import is_structured, n_examples

import_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasguide.data import Dataset, load_dataset  # noqa: E402
from kerasguide.errors import ConfigError  # noqa: E402
from kerasguide.models import build_model, make_loss, make_metrics, make_optimizer  # noqa: E402
from kerasguide.streams import preprocess_tf  # noqa: E402

__all__ = [
    "make_tf_dataset",
    "split_batches",
    "predict_split",
    "make_augmenter",
    "make_strategy",
    "gpu_memory_growth",
    "steps_per_execution",
    "compile_model",
    "build_for_fit",
    "split_seed",
    "prepare",
    "initial_learning_rate",
    "loss_and_optimizer",
    "save_model_atomic",
    "io_structure",
]

logger = get_logger()

_WEIGHTS_ONLY: weakref.WeakSet = weakref.WeakSet()  # models saved as weights only (warned once)


def make_tf_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int
) -> tf.data.Dataset:
    """A cached, shuffled (with the seed), batched, prefetched `tf.data` pipeline."""
    # A list of input arrays is several inputs, not one tensor to stack: tf.data takes a tuple.
    x, y = (tuple(v) if isinstance(v, list) else v for v in (x, y))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle:
        ds = ds.shuffle(n_examples(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class Augmenter:
    """The `[data.augment]` layers for one dataset: image changes on raw examples, noise after preprocessing."""

    def __init__(self, image_layers: list[keras.layers.Layer], noise: keras.layers.Layer | None,
                 image_shape: tuple[int, ...] | None, active: dict[str, Any]):
        self.image = keras.Sequential(image_layers, name="augment") if image_layers else None
        self.noise = noise
        self.image_shape = image_shape
        self.active = active

    def images(self, x):
        if self.image is None:
            return x
        if self.image_shape is None:
            return self.image(x, training=True)
        # Flat examples of images (digits): augment them as images, then flatten again.
        shaped = tf.reshape(x, (-1, *self.image_shape))
        return tf.reshape(self.image(shaped, training=True), tf.shape(x))


def make_augmenter(config: RunConfig, dataset: Dataset) -> Augmenter | None:
    """The augmentation `data.augment` asks for, checked against the data; None when it asks for none.

    Keras' preprocessing layers (RandomFlip, RandomRotation, RandomZoom, RandomTranslation,
    RandomContrast, GaussianNoise), seeded with `train.seed`, in the training pipeline only.
    """
    aug, seed = config.data.augment, config.train.seed
    active = aug.active()
    if not active:
        return None
    raw = dataset.raw_train
    if raw is None or is_structured(dataset.x_train):
        raise ConfigError("data.augment needs one input array; with several inputs (or your own preprocessing), "
                          "augment in your tf.data pipeline or model")
    layers: list[keras.layers.Layer] = []
    image_keys = [k for k in ("flip", "rotation", "zoom", "translation", "contrast") if k in active]
    shape = tuple(raw.shape[1:])
    flat_image = None
    if image_keys:
        if len(shape) != 3:
            if dataset.image_shape is None or len(dataset.image_shape) != 3 or int(np.prod(dataset.image_shape)) != \
                    int(np.prod(shape)):
                raise ConfigError(f"data.augment: {', '.join(image_keys)} need images (height, width, channels); "
                                  f"this data's examples have shape {shape}: use noise only")
            flat_image = tuple(dataset.image_shape)
        low, high = float(np.min(raw)), float(np.max(raw))
        if aug.flip != "none":
            layers.append(keras.layers.RandomFlip(aug.flip, seed=seed))
        if aug.rotation:
            layers.append(keras.layers.RandomRotation(aug.rotation, fill_mode="reflect", seed=seed + 1))
        if aug.zoom:
            layers.append(keras.layers.RandomZoom(aug.zoom, fill_mode="reflect", seed=seed + 2))
        if aug.translation:
            layers.append(keras.layers.RandomTranslation(aug.translation, aug.translation, fill_mode="reflect",
                                                         seed=seed + 3))
        if aug.contrast:
            layers.append(keras.layers.RandomContrast(aug.contrast, value_range=(low, high), seed=seed + 4))
    noise = keras.layers.GaussianNoise(aug.noise, seed=seed + 5) if aug.noise else None
    return Augmenter(layers, noise, flat_image, active)


def split_batches(dataset: Dataset, split: str, batch_size: int, shuffle: bool = False, seed: int = 0,
                  augment: Augmenter | None = None) -> tf.data.Dataset:
    """A split of `dataset` as the batches Keras reads: arrays or a stream, preprocessed, augmented when asked.

    Streams (`dataset.streamed`) hold raw examples: the fitted preprocessing is mapped over their
    batches (as TensorFlow ops) and nothing is read ahead but prefetching. A python: source's
    datasets keep their own batching and shuffling (`batch_size` and `shuffle` do not apply).
    Augmentation changes the raw training examples, then the preprocessing runs, then the noise.
    """
    names = {"train": ("x_train", "y_train", "raw_train"), "validation": ("x_val", "y_val", "raw_val"),
             "test": ("x_test", "y_test", None)}
    if not dataset.streamed:
        x_name, y_name, raw_name = names[split]
        if augment is None:
            return make_tf_dataset(getattr(dataset, x_name), getattr(dataset, y_name), batch_size, shuffle, seed)
        raw = getattr(dataset, raw_name)
        ds = tf.data.Dataset.from_tensor_slices((raw, getattr(dataset, y_name))).cache()
        if shuffle:
            ds = ds.shuffle(len(raw), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)
    else:
        ds = dataset.streams[split]
        if not dataset.stream_batched:
            ds = ds.batch(batch_size)
    transform = preprocess_tf(dataset.preprocessor)
    if augment is not None or transform is not None:
        def apply(x, *rest):
            if augment is not None:
                x = augment.images(x)
            if transform is not None:
                x = transform(x)
            if augment is not None and augment.noise is not None:
                x = augment.noise(x, training=True)
            return (x, *rest)

        ds = ds.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def predict_split(predict, dataset: Dataset, split: str, batch_size: int = 256) -> tuple[np.ndarray, Any]:
    """`(outputs, targets)` of `predict(x_batch)` over a whole split, arrays or stream (read once, batch by batch).

    Only the outputs and targets are gathered (examples x classes), never the inputs of a stream.
    """
    outputs, targets = [], []
    for batch in split_batches(dataset, split, batch_size):
        outputs.append(keras.ops.convert_to_numpy(predict(batch[0])))
        targets.append(np.asarray(batch[1]))
    axis = 1 if outputs and outputs[0].ndim == 3 else 0  # an ensemble's (members, examples, classes)
    return np.concatenate(outputs, axis=axis), np.concatenate(targets)


def gpu_memory_growth() -> list[str]:
    """Let TensorFlow take GPU memory as it needs it, not each visible GPU whole; returns the GPUs set so.

    Search workers sharing a GPU (`search.gpus_per_trial` < 1), or a run
    beside other work on the card, would otherwise fail for want of memory
    the first process took and never used. Possible only before TensorFlow
    starts its runtime: a GPU already in use, or given a memory limit
    (logical devices) by the caller, is left as it is. Worker processes also
    get `TF_FORCE_GPU_ALLOW_GROWTH=true`, which holds before this runs.

    Example:

    ```python
    gpu_memory_growth()   # first thing, before any tensor is made
    ```
    """
    grown = []
    if os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH", "").lower() == "false":
        return grown  # the user asked TensorFlow for whole GPUs: theirs to decide
    for gpu in tf.config.list_physical_devices("GPU"):
        if tf.config.get_logical_device_configuration(gpu):
            continue  # the caller split it or capped its memory: growth would clash with that
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as error:  # the runtime has started: its setting stays
            logger.debug("memory growth on %s left as it is: %s", gpu.name, error)
            continue
        grown.append(gpu.name)
    return grown


def _mirrored_devices() -> list[str]:
    """The devices a `mirrored` strategy mirrors over: every GPU, else the logical CPUs."""
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [d.name for d in devices]


def make_strategy(config: RunConfig) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy that `train.strategy` names (GPU memory growth on first)."""
    gpu_memory_growth()
    kind = config.train.strategy
    if kind == "mirrored":
        if not tf.config.list_physical_devices("GPU"):
            # On a CPU-only machine, mirror over two logical CPU devices (possible
            # only before TensorFlow's runtime starts; otherwise use what exists).
            try:
                cpu = tf.config.list_physical_devices("CPU")[0]
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
                )
            except RuntimeError:
                pass
        return tf.distribute.MirroredStrategy(_mirrored_devices())
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _replicas(config: RunConfig, strategy: tf.distribute.Strategy | None) -> int:
    """How many replicas train in sync: the strategy's, else what `make_strategy` makes (or made) of the config."""
    if strategy is not None:
        return int(strategy.num_replicas_in_sync)
    if config.train.strategy == "mirrored":
        return len(_mirrored_devices())
    if config.train.strategy == "multi_worker":
        try:
            cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster") or {}
        except (ValueError, AttributeError):
            cluster = {}
        tasks = sum(len(cluster.get(kind) or []) for kind in ("chief", "worker")) or 1
        return tasks * max(1, len(tf.config.list_physical_devices("GPU")))
    return 1


def steps_per_execution(config: RunConfig, steps_per_epoch: int,
                        strategy: tf.distribute.Strategy | None = None) -> int:
    """`train.steps_per_execution`, with "auto" = one epoch per call, at most 64.

    Fewer Python round trips per step is most of the speed-up over a plain
    `fit` on small models (benchmarks/README.md). Under a `tf.distribute`
    strategy with one replica (`mirrored` or `multi_worker` on one GPU, or
    one CPU) Keras' multi-step loop works and is kept; with more than one
    replica in sync it is 1: Keras 3.15's training loop of several steps
    fails there (`fit` only: "You must feed a value for placeholder tensor"
    inside its `tf.while_loop`; measured in benchmarks/mirrored_steps.py).

    Args:
        config: The run's config.
        steps_per_epoch: Training batches an epoch.
        strategy: The run's strategy (`make_strategy`). Defaults to `None`:
            the replicas `make_strategy` makes of the config.
    """
    value = config.train.steps_per_execution
    if config.train.strategy != "default" and value != 1:
        replicas = _replicas(config, strategy)
        if replicas > 1:
            # A value asked for by name is a warning; "auto" (the default) only says why it is 1.
            say = logger.info if value == "auto" else logger.warning
            say("steps_per_execution=%s is not supported with strategy %r over %d replicas (Keras' multi-step "
                "training loop fails there); using 1", value, config.train.strategy, replicas)
            return 1
    if value == "auto":
        return max(1, min(steps_per_epoch, 64))
    return int(value)


def compile_model(model: keras.Model, config: RunConfig, learning_rate: Any, steps_per_exec: int = 1,
                  own: bool = False) -> None:
    """Compile with the config's optimizer, loss and metrics (then see `build_for_fit`).

    With `own` (a model that came compiled: a `python:` builder that
    compiles, a saved `.keras`), the model keeps its own optimizer, loss and
    metrics: it is compiled again from its compile config (a fresh optimizer
    of the same settings) with the config's `steps_per_execution` and
    `jit_compile`; `learning_rate` is not used. Whether a model came
    compiled is known only before anything compiles it: ask `is_compiled`
    then, not after (the LR range test compiles the model it sweeps).
    """
    if own:
        settings = model.get_compile_config()
        settings.update(steps_per_execution=steps_per_exec, jit_compile=config.train.jit_compile)
        model.compile_from_config(settings)
        return
    model.compile(
        optimizer=make_optimizer(config.optimizer, learning_rate),
        loss=make_loss(config),
        metrics=make_metrics(config),
        steps_per_execution=steps_per_exec,
        jit_compile=config.train.jit_compile,
    )


def loss_and_optimizer(model: keras.Model, config: RunConfig, own: bool) -> tuple[Any, keras.optimizers.Optimizer]:
    """The loss and a fresh optimizer for a recipe that trains on its own (the sanity checks).

    The model's own with `own` (it came compiled), else the config's ("auto" learning rate: 1e-3).
    """
    if own:
        return model.loss, keras.optimizers.deserialize(keras.optimizers.serialize(model.optimizer))
    return make_loss(config), make_optimizer(config.optimizer, initial_learning_rate(config))


def build_for_fit(model: keras.Model, x: Any, y: Any) -> bool:
    """Create the optimizer's slots and the compiled metrics' state before `fit`.

    Without a distribution strategy, Keras 3 leaves them to the first trace
    of the training step, and a `tf.function` that creates variables on its
    first call is traced a second time: the first epoch pays for two traces
    (cost: benchmarks/README.md, "build_for_fit"). Keras builds the same
    state ahead (`_symbolic_build`) only under a strategy; this does it with
    public calls on a couple of real examples (inference mode, metrics reset
    afterwards, weights untouched). Returns False, and changes nothing that
    matters, for a model it cannot build this way (Keras then builds lazily)
    and under a strategy (Keras already does it).

    Example:

    ```python
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    build_for_fit(model, x_train[:2], y_train[:2])
    model.fit(x_train, y_train)   # one trace of the training step
    ```
    """
    if tf.distribute.has_strategy() or model.distribute_strategy is not tf.distribute.get_strategy():
        return False
    try:
        x, y = x[:2], y[:2]
        y_pred = model(x, training=False)
        model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
        model.compute_metrics(x, y, y_pred)
    except Exception as error:  # an exotic model (own train_step, dict inputs...): Keras builds lazily
        logger.debug("build_for_fit: left to Keras (%s: %s)", type(error).__name__, error)
        return False
    finally:
        model.reset_metrics()
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return True


def io_structure(model: keras.Model) -> tuple[Any, Any]:
    """A Functional or Sequential model's symbolic inputs and outputs, in the structure it was built with.

    A dict of named inputs stays a dict and a list a list (Keras matches a dict of arrays to named
    inputs either way, but warns when a single input comes as a one-element list); one input or
    output is the tensor itself. Raises AttributeError for a model without symbolic inputs.
    """

    def structure(name: str, flat: list):
        try:
            return getattr(model, name)  # a Functional model's own structure (a dict stays a dict)
        except (AttributeError, ValueError):  # a Sequential model not called yet
            return flat[0] if len(flat) == 1 else list(flat)

    inputs, outputs = list(model.inputs), list(model.outputs)
    return structure("input", inputs), structure("output", outputs)


def split_seed(config: RunConfig) -> int:
    """The data split's seed: `ensemble.split_seed` if set (ensemble members of
    different `train.seed` share one split, recipe J34), else `train.seed`."""
    value = config.ensemble.split_seed
    return config.train.seed if value is None else value


def prepare(config: RunConfig, seed: int | None = None) -> tuple[Dataset, keras.Model]:
    """Load the data and build the model of a config (for checks and tools).

    The model is built for the task the data show (`dataset.task`); a caller that goes on with the
    config takes `kerasguide.tasks.apply_task(config, dataset.task)`.
    """
    data_seed = split_seed(config) if seed is None else seed
    seed = config.train.seed if seed is None else seed
    keras.utils.set_random_seed(seed)
    dataset = load_dataset(config.data, data_seed, task=config_task(config))
    config = apply_task(config, dataset.task)
    model = build_model(config, dataset.input_shape, dataset.num_classes, dataset.image_shape,
                        target_stats=dataset.target_stats)
    return dataset, model


def initial_learning_rate(config: RunConfig) -> float:
    """`optimizer.learning_rate`, with "auto" (before the range test has chosen) as 1e-3."""
    lr = config.optimizer.learning_rate
    return 1e-3 if lr == "auto" else float(lr)


def save_model_atomic(model: keras.Model, path: str | os.PathLike[str]) -> Path:
    """`model.save` to a temporary file beside `path`, then rename over it. Returns the path written.

    A model Keras cannot save whole (a subclassed model without `get_config`) is saved as its weights,
    `NAME.weights.h5` beside `path`, with one warning for that model: the run goes on.
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            model.save(tmp)
        return path
    except NotImplementedError as error:
        weights = path.with_name(path.name.removesuffix(".keras") + ".weights.h5")
        if model not in _WEIGHTS_ONLY:  # one warning a model, not one a checkpoint
            _WEIGHTS_ONLY.add(model)
            logger.warning("%s cannot be saved whole (%s): its checkpoints hold the weights only (%s)",
                           type(model).__name__, str(error).strip().splitlines()[0][:120], weights.name)
        with atomic_path(weights) as tmp:
            model.save_weights(tmp)
        return weights
