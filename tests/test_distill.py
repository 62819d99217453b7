"""Recipe J36: distillation ("dark knowledge"), the loss in closed form and the Distiller."""

from __future__ import annotations

import numpy as np
import pytest

from kerasguide._logging import import_tensorflow

import_tensorflow()

import keras  # noqa: E402

from kerasguide.config import DataConfig  # noqa: E402
from kerasguide.data import load_dataset  # noqa: E402
from kerasguide.distill import Distiller, distillation_loss  # noqa: E402
from kerasguide.ensemble import Ensemble  # noqa: E402


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _closed_form(y, s, q, t, alpha):
    """alpha * CE(y, softmax(s)) + (1 - alpha) * T^2 * KL(softmax(log q / T) || softmax(s / T))."""
    p = _softmax(s)
    hard = -np.log(p[np.arange(len(y)), y])
    q_t = _softmax(np.log(q) / t)
    p_t = _softmax(s / t)
    kl = np.sum(q_t * (np.log(q_t) - np.log(p_t)), axis=-1)
    return float(np.mean(alpha * hard + (1 - alpha) * t**2 * kl))


Y = np.array([0, 2])
S = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])  # student logits
Q = np.array([[0.7, 0.1, 0.2], [0.05, 0.25, 0.7]])  # teacher probabilities


def _loss(*args, **kwargs) -> float:
    return float(keras.ops.convert_to_numpy(distillation_loss(*args, **kwargs)))


@pytest.mark.parametrize("t,alpha", [(1.0, 0.0), (2.0, 0.3), (4.0, 0.1), (10.0, 1.0)])
def test_distillation_loss_matches_its_closed_form(t, alpha):
    expected = _closed_form(Y, S, Q, t, alpha)
    assert _loss(Y, S, Q, t, alpha, student_from_logits=True) == pytest.approx(expected, rel=1e-5)
    # The student given as probabilities: log p is its logits up to a constant.
    assert _loss(Y, _softmax(S), Q, t, alpha) == pytest.approx(expected, rel=1e-4)
    # The teacher given as logits (log q is a valid logit vector for q).
    assert _loss(Y, S, np.log(Q), t, alpha, student_from_logits=True, teacher_from_logits=True) == pytest.approx(
        expected, rel=1e-5
    )


def test_the_closed_form_check_tells_the_usual_mistakes_apart():
    t, alpha = 4.0, 0.1
    right = _loss(Y, S, Q, t, alpha, student_from_logits=True)
    # Planted bugs, each computed by hand: no T^2, KL the wrong way round, no temperature on the teacher.
    p_t, q_t = _softmax(S / t), _softmax(np.log(Q) / t)
    hard = -np.log(_softmax(S)[np.arange(2), Y])
    no_t2 = np.mean(alpha * hard + (1 - alpha) * np.sum(q_t * np.log(q_t / p_t), -1))
    reversed_kl = np.mean(alpha * hard + (1 - alpha) * t**2 * np.sum(p_t * np.log(p_t / q_t), -1))
    q_1 = Q
    cold_teacher = np.mean(alpha * hard + (1 - alpha) * t**2 * np.sum(q_1 * np.log(q_1 / p_t), -1))
    for wrong in (no_t2, reversed_kl, cold_teacher):
        assert abs(wrong - right) > 1e3 * 1e-5 * right  # far outside the closed-form test's tolerance


def test_alpha_one_is_plain_crossentropy_and_identical_predictions_cost_only_the_hard_term():
    ce = float(np.mean(keras.ops.convert_to_numpy(
        keras.losses.sparse_categorical_crossentropy(Y, S, from_logits=True))))
    assert _loss(Y, S, Q, 3.0, 1.0, student_from_logits=True) == pytest.approx(ce, rel=1e-5)
    # KL(q || q) = 0: a student that already matches the teacher pays alpha * CE only.
    assert _loss(Y, np.log(Q), Q, 3.0, 0.0, student_from_logits=True) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    ({"temperature": 0.0}, "Received: temperature=0.0"),
    ({"alpha": 1.5}, "Received: alpha=1.5"),
])
def test_bad_arguments_echo_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        distillation_loss(Y, S, Q, **kwargs)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(ValueError, match=message):
        Distiller(model, model, **kwargs)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(source="digits"), 0)


def _mlp(digits, hidden, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(digits.input_shape),
        keras.layers.Dense(hidden, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3)),
        keras.layers.Dense(10, activation="softmax"),
    ])


def test_distiller_trains_the_student_only_towards_the_teacher_and_round_trips(digits, tmp_path):
    teachers = []
    for seed in (1, 2):
        m = _mlp(digits, 32, seed)
        m.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
        m.fit(digits.x_train, digits.y_train, batch_size=128, epochs=4, verbose=0)
        teachers.append(m)
    teacher = Ensemble(teachers)
    teacher_before = [np.array(w) for w in teacher.get_weights()]
    student = _mlp(digits, 8, 3)
    distiller = Distiller(student, teacher, temperature=4.0, alpha=0.1)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    assert {id(v) for v in distiller.trainable_variables} == {id(v) for v in student.trainable_variables}

    def soft_loss():
        return _loss(digits.y_val, student.predict(digits.x_val, verbose=0),
                     teacher.predict(digits.x_val, verbose=0), 4.0, 0.0)

    before = soft_loss()
    history = distiller.fit(digits.x_train, digits.y_train, batch_size=128, epochs=4, verbose=0,
                            validation_data=(digits.x_val, digits.y_val))
    assert soft_loss() < 0.5 * before
    assert history.history["val_accuracy"][-1] > 0.6  # chance is 0.1
    assert all(np.array_equal(a, b) for a, b in zip(teacher_before, teacher.get_weights(), strict=True))
    # The loss includes the student's L2 (and not the teacher's): add it back by hand.
    x, y = digits.x_val[:64], digits.y_val[:64]
    expected = _loss(y, student(x), teacher(x), 4.0, 0.1) + float(sum(
        keras.ops.convert_to_numpy(r) for r in student.losses))
    got = float(keras.ops.convert_to_numpy(distiller.compute_loss(x, y, student(x), training=False)))
    assert got == pytest.approx(expected, rel=1e-5)

    path = tmp_path / "distiller.keras"
    distiller.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, Distiller) and loaded.temperature == 4.0 and loaded.alpha == 0.1
    np.testing.assert_allclose(loaded.predict(digits.x_val, verbose=0), student.predict(digits.x_val, verbose=0),
                               atol=1e-6)


def test_alpha_one_trains_exactly_like_the_plain_model(digits):
    # With alpha = 1 the distiller's loss is the plain crossentropy (+ the student's L2):
    # from the same initial weights and batches it must reach the same weights.
    teacher = _mlp(digits, 8, 9)
    trained = []
    for distill in (False, True):
        student = _mlp(digits, 8, 3)
        if distill:
            fitted = Distiller(student, teacher, temperature=4.0, alpha=1.0)
            fitted.compile(optimizer=keras.optimizers.SGD(0.1))
        else:
            fitted = student
            fitted.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        fitted.fit(digits.x_train, digits.y_train, batch_size=128, epochs=2, shuffle=False, verbose=0)
        trained.append(student.get_weights())
    for a, b in zip(*trained, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
