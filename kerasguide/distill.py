"""Distillation of an ensemble into one model, "dark knowledge" (recipe J36).

Hinton, Vinyals & Dean (2015): a student is trained on the teacher's
predictions softened by a temperature `T`, mixed with the hard labels:

    loss = alpha * CE(y, softmax(z_s))
         + (1 - alpha) * T^2 * KL(softmax(log q / T) || softmax(z_s / T))

where `z_s` are the student's logits and `q` the teacher's (ensemble's)
probabilities. `T^2` keeps the soft term's gradients on the scale of the
hard term's as `T` changes. `distillation_loss` is that formula;
`Distiller` is a `keras.Model` that trains a student with it.

Example:

```python
distiller = Distiller(student=small_model, teacher=ensemble, temperature=4.0, alpha=0.1)
distiller.compile(optimizer="adam", metrics=["accuracy"])
distiller.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=20)
small_model.predict(x)   # the student alone
```
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import keras

from kerasguide.models import build_model, make_optimizer
from kerasguide.schedules import schedule_from_config
from kerasguide.scores import accuracy, log_loss
from kerasguide.training import (
    compile_model,
    initial_learning_rate,
    predict_split,
    save_model_atomic,
    split_batches,
    steps_per_execution,
)

__all__ = ["Distiller", "distillation_loss", "distill_ensemble"]

logger = logging.getLogger("kerasguide")

_EPS = 1e-7


def _log_probs(outputs, from_logits: bool):
    """Log-probabilities from logits (exact) or probabilities (clipped at 1e-7, as Keras does)."""
    outputs = keras.ops.cast(outputs, "float32")
    if from_logits:
        return keras.ops.log_softmax(outputs, axis=-1)
    # log p is a logit vector up to a constant, which any softmax ignores.
    return keras.ops.log(keras.ops.clip(outputs, _EPS, 1.0))


def distillation_loss(
    y_true,
    student_outputs,
    teacher_outputs,
    temperature: float = 4.0,
    alpha: float = 0.1,
    student_from_logits: bool = False,
    teacher_from_logits: bool = False,
):
    """Hinton's distillation loss, averaged over the batch.

    `alpha * CE(y, p_s) + (1 - alpha) * T^2 * KL(q_T || p_T)` with
    `p_T = softmax(z_s / T)` and `q_T = softmax(z_t / T)`; for outputs
    given as probabilities, `z = log p`.

    Args:
        y_true: Integer labels `(batch,)` or `(batch, 1)`.
        student_outputs: The student's probabilities (or logits).
        teacher_outputs: The teacher's probabilities (or logits).
        temperature: T > 0. Defaults to `4.0`.
        alpha: Weight of the hard-label term, in [0, 1]. Defaults to `0.1`.
        student_from_logits: The student outputs logits. Defaults to `False`.
        teacher_from_logits: The teacher outputs logits. Defaults to `False`.

    Returns:
        A scalar tensor.
    """
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"Argument `temperature` must be > 0. Received: temperature={temperature!r}")
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"Argument `alpha` must be in [0, 1]. Received: alpha={alpha!r}")
    z_s = _log_probs(student_outputs, student_from_logits)
    z_t = _log_probs(teacher_outputs, teacher_from_logits)
    labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
    classes = keras.ops.shape(z_s)[-1]
    log_p = keras.ops.log_softmax(z_s, axis=-1)
    hard = -keras.ops.sum(keras.ops.one_hot(labels, classes) * log_p, axis=-1)
    log_q_t = keras.ops.log_softmax(z_t / temperature, axis=-1)
    log_p_t = keras.ops.log_softmax(z_s / temperature, axis=-1)
    soft = keras.ops.sum(keras.ops.exp(log_q_t) * (log_q_t - log_p_t), axis=-1)
    return keras.ops.mean(alpha * hard + (1.0 - alpha) * temperature**2 * soft)


@keras.saving.register_keras_serializable(package="kerasguide")
class Distiller(keras.Model):
    """Trains a student on a frozen teacher's softened predictions and the hard labels.

    Predicting with the distiller is predicting with the student; the loss is
    `distillation_loss` plus the student's own regularization losses (the
    teacher's are left out: they are constants here). Compile it with an
    optimizer and metrics only (`loss` is the distillation loss).

    Args:
        student: The model being trained.
        teacher: The model (e.g. an `Ensemble`) whose predictions are the
            soft targets; frozen.
        temperature: Softmax temperature T > 0. Defaults to `4.0`.
        alpha: Weight of the hard-label loss in [0, 1]. Defaults to `0.1`.
        student_from_logits: The student outputs logits. Defaults to `False`.
        teacher_from_logits: The teacher outputs logits. Defaults to `False`.

    Example:

    ```python
    distiller = Distiller(student, teacher, temperature=4.0, alpha=0.1)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    distiller.fit(x, y, epochs=10)
    ```
    """

    def __init__(
        self,
        student: keras.Model,
        teacher: keras.Model,
        temperature: float = 4.0,
        alpha: float = 0.1,
        student_from_logits: bool = False,
        teacher_from_logits: bool = False,
        **kwargs: Any,
    ):
        kwargs.setdefault("name", "distiller")
        super().__init__(**kwargs)
        for arg, value in (("student", student), ("teacher", teacher)):
            if not isinstance(value, keras.Model):
                raise ValueError(f"Argument `{arg}` must be a Keras model. Received: {arg} of type {type(value).__name__}")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"Argument `temperature` must be > 0. Received: temperature={temperature!r}")
        if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
            raise ValueError(f"Argument `alpha` must be in [0, 1]. Received: alpha={alpha!r}")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.student_from_logits = bool(student_from_logits)
        self.teacher_from_logits = bool(teacher_from_logits)

    def call(self, inputs, training: bool = False):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        teacher = self.teacher(x, training=False)
        loss = distillation_loss(
            y, y_pred, teacher, self.temperature, self.alpha, self.student_from_logits, self.teacher_from_logits
        )
        regularization = self.student.losses
        if regularization:
            loss = loss + keras.ops.sum(keras.ops.stack([keras.ops.cast(r, "float32") for r in regularization]))
        return loss

    def build(self, input_shape):
        for model in (self.student, self.teacher):
            if not model.built:
                model.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.student.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            student=keras.saving.serialize_keras_object(self.student),
            teacher=keras.saving.serialize_keras_object(self.teacher),
            temperature=self.temperature,
            alpha=self.alpha,
            student_from_logits=self.student_from_logits,
            teacher_from_logits=self.teacher_from_logits,
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects=None) -> Distiller:
        config = dict(config)
        for key in ("student", "teacher"):
            config[key] = keras.saving.deserialize_keras_object(config[key], custom_objects=custom_objects)
        return cls(**config)


def _student_config(config):
    student = config.model_copy(deep=True)
    if config.ensemble.student_hidden is not None:
        student.model.hidden = list(config.ensemble.student_hidden)
    if config.ensemble.student_epochs is not None:
        student.train.epochs = config.ensemble.student_epochs
    return student


def _scores(model: keras.Model, dataset, from_logits: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    for prefix, split in (("val_", "validation"), ("test_", "test")):
        if not dataset.has_split(split):
            continue
        probs, y = predict_split(lambda x: model(x, training=False), dataset, split)
        if from_logits:
            probs = keras.ops.convert_to_numpy(keras.ops.softmax(probs, axis=-1))
        out[prefix + "accuracy"] = accuracy(probs, y)
        out[prefix + "log_loss"] = log_loss(probs, y)
    return out


def distill_ensemble(teacher: keras.Model, dataset, config, out_dir: str | Path, verbose: int = 1) -> dict[str, Any]:
    """Distill `teacher` into a student built from `config`, and train the same student alone.

    The student and its "alone" twin start from the same initial weights
    (one seed) and see the same batches for the same epochs; only the loss
    differs (distillation vs. the config's own). The student is saved as
    `student.keras` in `out_dir`.

    Returns:
        A dict with `temperature`, `alpha`, `hidden`, `epochs`, `parameters`,
        and the `student`'s and the `alone` model's validation (and test)
        accuracy and log-loss.
    """
    cfg = _student_config(config)
    from_logits = cfg.train.loss != "sparse_categorical_crossentropy"
    steps = dataset.steps("train", cfg.train.batch_size)
    spe = steps_per_execution(cfg, steps)
    results: dict[str, Any] = {}
    student = None
    for role in ("alone", "student"):
        keras.utils.set_random_seed(cfg.train.seed)
        model = build_model(cfg, dataset.input_shape, dataset.num_classes, dataset.image_shape)
        lr, callbacks = schedule_from_config(cfg, steps, initial_learning_rate(cfg))
        train = split_batches(dataset, "train", cfg.train.batch_size, True, cfg.train.seed)
        val = split_batches(dataset, "validation", cfg.train.batch_size)
        if role == "alone":
            compile_model(model, cfg, lr, spe)
            fitted = model
        else:
            fitted = Distiller(
                model, teacher, cfg.ensemble.temperature, cfg.ensemble.alpha,
                student_from_logits=from_logits, teacher_from_logits=False,  # an Ensemble outputs probabilities
            )
            fitted.compile(optimizer=make_optimizer(cfg.optimizer, lr),
                           metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                           steps_per_execution=spe)
            student = model
        logger.info("distillation: training the %s model (%d epochs)", role, cfg.train.epochs)
        fitted.fit(train, validation_data=val, epochs=cfg.train.epochs, callbacks=callbacks,
                   verbose=2 if verbose else 0, shuffle=False)
        results[role] = _scores(model, dataset, from_logits)
    save_model_atomic(student, Path(out_dir) / "student.keras")
    return {
        "temperature": cfg.ensemble.temperature,
        "alpha": cfg.ensemble.alpha,
        "hidden": list(cfg.model.hidden),
        "epochs": cfg.train.epochs,
        "parameters": int(student.count_params()),
        "student": results["student"],
        "alone": results["alone"],
        "checkpoint": "student.keras",
    }
