"""Schedules (recipes G22-G23): closed forms, the config factory, serialization, momentum cycling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kerasguide._logging import import_tensorflow

import_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasguide.config import RunConfig, config_from_dict  # noqa: E402
from kerasguide.schedules import (  # noqa: E402
    CycleMomentum,
    CyclicalLR,
    LinearWarmup,
    OneCycle,
    StepDecay,
    cyclical_lr,
    linear_warmup,
    one_cycle_lr,
    one_cycle_momentum,
    schedule_from_config,
    step_decay,
)

STEPS = np.arange(0, 1001)


def _np(value) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)


# ------------------------------------------------------------ pure maths
def test_step_decay_closed_form():
    got = _np(step_decay(STEPS, 0.1, step_size=100, factor=0.5))
    np.testing.assert_allclose(got, 0.1 * 0.5 ** np.floor(STEPS / 100), rtol=1e-6)
    assert got[99] == pytest.approx(0.1) and got[100] == pytest.approx(0.05)


def test_triangle_of_a_cycle():
    lr = _np(cyclical_lr(STEPS, 0.001, 0.01, step_size=100))
    # Up from min to max over step_size steps, down over the next, linear in between.
    assert lr[0] == pytest.approx(0.001) and lr[100] == pytest.approx(0.01) and lr[200] == pytest.approx(0.001)
    np.testing.assert_allclose(lr[:101], 0.001 + 0.009 * STEPS[:101] / 100, rtol=1e-5)
    np.testing.assert_allclose(lr[100:201], 0.01 - 0.009 * (STEPS[100:201] - 100) / 100, rtol=1e-5)
    np.testing.assert_allclose(lr[200:400], lr[:200], rtol=1e-5)  # periodic
    assert lr.min() >= 0.001 - 1e-9 and lr.max() <= 0.01 + 1e-9


def test_triangular2_halves_and_exp_range_decays():
    tri2 = _np(cyclical_lr(STEPS, 0.0, 1.0, step_size=100, mode="triangular2"))
    assert tri2[100] == pytest.approx(1.0) and tri2[300] == pytest.approx(0.5) and tri2[500] == pytest.approx(0.25)
    exp = _np(cyclical_lr(STEPS, 0.0, 1.0, step_size=100, mode="exp_range", gamma=0.99))
    assert exp[100] == pytest.approx(0.99**100, rel=1e-5) and exp[300] == pytest.approx(0.99**300, rel=1e-4)


def test_one_cycle_endpoints_and_shape():
    total, peak = 1000, 0.1
    lr = _np(one_cycle_lr(STEPS, peak, total, pct_start=0.25, div_factor=25, div_final=1e4))
    assert lr[0] == pytest.approx(peak / 25, rel=1e-5)
    assert lr[250] == pytest.approx(peak, rel=1e-6) and lr.argmax() == 250
    assert lr[1000] == pytest.approx(peak / 1e4, rel=1e-4)
    assert np.all(np.diff(lr[:251]) > 0) and np.all(np.diff(lr[250:]) < 0)
    # Cosine halves: half-way up is the mean of the two ends.
    assert lr[125] == pytest.approx((peak / 25 + peak) / 2, rel=1e-5)
    linear = _np(one_cycle_lr(STEPS, peak, total, anneal="linear"))
    assert linear[125] == pytest.approx((peak / 25 + peak) / 2, rel=1e-5)
    assert linear[625] == pytest.approx((peak + peak / 1e4) / 2, rel=1e-5)


def test_one_cycle_momentum_is_inverse():
    lr = _np(one_cycle_lr(STEPS, 0.1, 1000))
    mom = _np(one_cycle_momentum(STEPS, 1000, max_momentum=0.95, min_momentum=0.85))
    assert mom[0] == pytest.approx(0.95) and mom[250] == pytest.approx(0.85) and mom[1000] == pytest.approx(0.95)
    # Where the rate rises the momentum falls, and the other way round.
    assert np.all(np.sign(np.diff(lr)) == -np.sign(np.diff(mom)))


def test_linear_warmup_then_target():
    got = _np(linear_warmup(STEPS[:20], 10.0, 0.5, start_lr=0.1))
    np.testing.assert_allclose(got[:10], 0.1 + 0.4 * STEPS[:10] / 10, rtol=1e-6)
    np.testing.assert_allclose(got[10:], 0.5)


def test_linear_warmup_wraps_a_schedule_and_runs_it_whole():
    decay = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5)
    schedule = LinearWarmup(decay, warmup_steps=10)
    got = _np(schedule(np.arange(0, 120)))
    np.testing.assert_allclose(got[:10], 0.1 * np.arange(10) / 10, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(got[10:], 0.1 * 0.5 ** (np.arange(0, 110) / 100), rtol=1e-5)


# ------------------------------------------------------------- the factory
def _config(kind: str, **schedule) -> RunConfig:
    cfg = RunConfig()
    cfg.train.epochs = 10
    cfg.schedule = cfg.schedule.model_copy(update={"kind": kind, **schedule})
    return cfg


def _at_epochs(schedule, spe: int, epochs) -> np.ndarray:
    return np.array([float(_np(schedule(int(round(e * spe))))) for e in epochs])


EPOCHS = [0, 0.5, 1, 3, 7.5, 10]


def test_factory_exponential_is_a0_exp_minus_kt():
    lr, _ = schedule_from_config(_config("exponential", decay_rate=0.3), steps_per_epoch=20, learning_rate=0.1)
    np.testing.assert_allclose(_at_epochs(lr, 20, EPOCHS), 0.1 * np.exp(-0.3 * np.array(EPOCHS)), rtol=1e-5)


def test_factory_inverse_time_is_a0_over_1_plus_kt():
    lr, _ = schedule_from_config(_config("inverse_time", decay_rate=0.5), steps_per_epoch=20, learning_rate=0.1)
    np.testing.assert_allclose(_at_epochs(lr, 20, EPOCHS), 0.1 / (1 + 0.5 * np.array(EPOCHS)), rtol=1e-5)


def test_factory_step_decay_counts_epochs():
    lr, _ = schedule_from_config(_config("step", every_epochs=5, factor=0.1), steps_per_epoch=7, learning_rate=1.0)
    np.testing.assert_allclose(_at_epochs(lr, 7, [0, 4.9, 5, 9.9, 10]), [1, 1, 0.1, 0.1, 0.01], rtol=1e-5)


def test_factory_piecewise_values_are_factors_of_the_rate():
    cfg = _config("piecewise", boundaries_epochs=[2.0, 5.0], values=[1.0, 0.1, 0.01])
    lr, _ = schedule_from_config(cfg, steps_per_epoch=10, learning_rate=0.5)
    np.testing.assert_allclose(_at_epochs(lr, 10, [0, 1.9, 2.1, 4.9, 5.1, 9]), [0.5, 0.5, 0.05, 0.05, 0.005, 0.005],
                               rtol=1e-5)


def test_factory_cosine_with_warmup_uses_keras():
    lr, _ = schedule_from_config(_config("cosine", warmup_epochs=1.0), steps_per_epoch=10, learning_rate=0.2)
    assert isinstance(lr, keras.optimizers.schedules.CosineDecay)
    assert _at_epochs(lr, 10, [0])[0] == pytest.approx(0.0)
    assert _at_epochs(lr, 10, [1])[0] == pytest.approx(0.2, rel=1e-5)
    assert _at_epochs(lr, 10, [10])[0] == pytest.approx(0.0, abs=1e-6)


def test_factory_warmup_wraps_other_kinds():
    lr, _ = schedule_from_config(_config("step", warmup_epochs=2.0), steps_per_epoch=10, learning_rate=0.2)
    assert isinstance(lr, LinearWarmup) and isinstance(lr.schedule, StepDecay)
    assert _at_epochs(lr, 10, [1])[0] == pytest.approx(0.1, rel=1e-5)


def test_factory_cyclical_bounds_and_one_cycle_callbacks():
    lr, callbacks = schedule_from_config(_config("cyclical", step_size_epochs=2.0), steps_per_epoch=10,
                                         learning_rate=0.1)
    assert isinstance(lr, CyclicalLR) and (lr.min_lr, lr.max_lr, lr.step_size) == (pytest.approx(0.01), 0.1, 20.0)
    assert callbacks == []
    from kerasguide.config import ConfigError

    with pytest.raises(ConfigError, match="min_lr = 0.2 must be below the learning rate 0.1"):
        schedule_from_config(_config("cyclical", min_lr=0.2), steps_per_epoch=10, learning_rate=0.1)
    cfg = _config("cyclical", min_lr=0.2)
    cfg.optimizer.learning_rate = "auto"  # the range test chose a peak under the floor: peak / 10
    assert schedule_from_config(cfg, steps_per_epoch=10, learning_rate=0.1)[0].min_lr == pytest.approx(0.01)
    cfg = _config("one_cycle")
    lr, callbacks = schedule_from_config(cfg, steps_per_epoch=10, learning_rate=0.1)
    assert isinstance(lr, OneCycle) and lr.total_steps == 100 and lr.max_lr == 0.1
    assert [type(c) for c in callbacks] == [CycleMomentum]
    cfg.optimizer.name = "adagrad"  # nothing to cycle: the rate only
    assert schedule_from_config(cfg, 10, 0.1)[1] == []
    lr, _ = schedule_from_config(_config("constant"), steps_per_epoch=10, learning_rate=0.1)
    assert lr == 0.1


def test_factory_cosine_restarts_counts_epochs():
    cfg = _config("cosine_restarts", first_decay_epochs=2.0, alpha=0.0)
    lr, _ = schedule_from_config(cfg, steps_per_epoch=10, learning_rate=0.2)
    assert isinstance(lr, keras.optimizers.schedules.CosineDecayRestarts)
    # Half-way through the first 2-epoch cycle: half the rate; at 2 epochs the first restart.
    np.testing.assert_allclose(_at_epochs(lr, 10, [0, 1, 2]), [0.2, 0.1, 0.2], rtol=1e-5)


def test_reduce_on_plateau_is_keras_callback_on_a_constant_rate_only():
    from kerasguide.config import ConfigError

    cfg = _config("constant", reduce_on_plateau=True, plateau_factor=0.2, plateau_patience=2)
    lr, callbacks = schedule_from_config(cfg, steps_per_epoch=10, learning_rate=0.1)
    assert lr == 0.1 and [type(c) for c in callbacks] == [keras.callbacks.ReduceLROnPlateau]
    assert (callbacks[0].factor, callbacks[0].patience, callbacks[0].monitor) == (0.2, 2, "val_loss")
    # With a schedule, Keras' callback raises at the first plateau, mid-training: refused up front,
    # by the schema (tests/test_config.py) and, for a config built around it, by the factory.
    for kind, extra in (("one_cycle", {}), ("step", {}), ("constant", {"warmup_epochs": 1.0})):
        with pytest.raises(ConfigError, match="reduce_on_plateau` = true needs a constant rate"):
            config_from_dict({"schedule": {"kind": kind, "reduce_on_plateau": True, **extra}})
        unchecked = _config("constant")
        unchecked.__dict__["schedule"] = unchecked.schedule.model_copy(
            update={"kind": kind, "reduce_on_plateau": True, **extra})  # past pydantic's validation
        with pytest.raises(ConfigError, match="reduce_on_plateau needs a constant rate"):
            schedule_from_config(unchecked, 10, 0.1)
    # What the refusal prevents:
    model = _linear_model(np.zeros((3, 1), dtype="float32"))
    model.compile(keras.optimizers.SGD(OneCycle(0.01, 40)), "mse")
    x, y = _linear_problem()
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=0, min_delta=1e9)
    with pytest.raises(TypeError, match="not settable"):
        model.fit(x, y, epochs=3, verbose=0, callbacks=[plateau])


# ------------------------------------------------------ validation, saving
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: StepDecay(0.1, 10, every_epochs=0), "Argument `every_epochs` must be > 0. Received: every_epochs=0"),
        (lambda: CyclicalLR(0.1, 0.01, 10), "Argument `max_lr` must be > `min_lr`. Received: min_lr=0.1, max_lr=0.01"),
        (lambda: CyclicalLR(0.01, 0.1, 10, mode="sine"), "Received: mode='sine'"),
        (lambda: OneCycle(0.1, 100, pct_start=1.5), "Argument `pct_start` must be in (0, 1). Received: pct_start=1.5"),
        (lambda: OneCycle(-1.0, 100), "Argument `max_lr` must be > 0. Received: max_lr=-1.0"),
        (lambda: LinearWarmup("fast", 10), "Argument `schedule` must be a LearningRateSchedule or a float"),
    ],
)
def test_arguments_are_validated_with_the_value(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert message in str(info.value)


SCHEDULES = [
    StepDecay(0.1, steps_per_epoch=10, every_epochs=3, factor=0.3),
    CyclicalLR(1e-3, 1e-2, step_size=7, mode="exp_range", gamma=0.999),
    OneCycle(0.05, total_steps=90, pct_start=0.3, div_factor=10, div_final=100, anneal="linear",
             max_momentum=0.9, min_momentum=0.8),
    LinearWarmup(keras.optimizers.schedules.InverseTimeDecay(0.1, 10, 0.5), warmup_steps=5, start_lr=0.01),
    LinearWarmup(OneCycle(0.1, 50), warmup_steps=5),
    LinearWarmup(0.1, warmup_steps=5),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.name)
def test_serialization_round_trip(schedule):
    config = keras.saving.serialize_keras_object(schedule)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()
    steps = np.arange(0, 100)
    np.testing.assert_allclose(_np(restored(steps)), _np(schedule(steps)), rtol=1e-7)
    # The whole __init__ is in get_config: rebuilding from it gives the same object.
    rebuilt = type(schedule).from_config(schedule.get_config())
    np.testing.assert_allclose(_np(rebuilt(steps)), _np(schedule(steps)), rtol=1e-7)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.name)
def test_get_config_holds_every_argument(schedule):
    import inspect

    arguments = set(inspect.signature(type(schedule).__init__).parameters) - {"self"}
    assert set(schedule.get_config()) == arguments
    if isinstance(schedule, OneCycle):  # the momentum comes back too
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
        steps = np.arange(0, 100)
        np.testing.assert_allclose(_np(restored.momentum(steps)), _np(schedule.momentum(steps)), rtol=1e-7)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.name)
def test_model_with_schedule_saves_and_loads(tmp_path, schedule):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(learning_rate=schedule, momentum=0.9), "mse")
    model.fit(np.ones((8, 3)), np.zeros((8, 2)), epochs=1, batch_size=4, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer._learning_rate) is type(schedule)
    assert float(loaded.optimizer.learning_rate) == pytest.approx(float(_np(schedule(2))))
    assert loaded.optimizer._learning_rate.get_config() == schedule.get_config()


# ------------------------------------------------------- momentum cycling
def _linear_problem(seed=0, n=32, d=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x @ rng.normal(size=(d, 1))).astype("float32")
    return x, y


def _linear_model(w0):
    model = keras.Sequential([keras.Input((w0.shape[0],)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign(w0)
    return model


def _reference_sgd(x, y, w0, lr_fn, mom_fn, batch, epochs):
    """Plain NumPy SGD with momentum (Keras' form: m = mu m - lr g; w += m) on mean squared error."""
    w, m, step = w0.astype(np.float64).copy(), np.zeros_like(w0, dtype=np.float64), 0
    for _ in range(epochs):
        for start in range(0, len(x), batch):
            xb, yb = x[start:start + batch].astype(np.float64), y[start:start + batch].astype(np.float64)
            grad = 2 * xb.T @ (xb @ w - yb) / len(xb)
            m = mom_fn(step) * m - lr_fn(step) * grad
            w = w + m
            step += 1
    return w


class _NaiveMomentum(keras.callbacks.Callback):
    """The planted bug: assign a plain float from a callback (baked into the traced step)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.momentum = float(_np(self.fn(int(self.model.optimizer.iterations.numpy()))))


@pytest.mark.parametrize("spe", [1, 4])
def test_momentum_cycles_every_step_even_with_steps_per_execution(spe):
    x, y = _linear_problem()
    w0 = np.full((3, 1), 0.1, dtype="float32")
    one_cycle = OneCycle(0.05, total_steps=24, pct_start=0.3, max_momentum=0.95, min_momentum=0.5)
    lr_fn = lambda s: float(_np(one_cycle(s)))  # noqa: E731
    mom_fn = lambda s: float(_np(one_cycle.momentum(s)))  # noqa: E731
    expected = _reference_sgd(x, y, w0, lr_fn, mom_fn, batch=8, epochs=6)

    model = _linear_model(w0)
    model.compile(keras.optimizers.SGD(one_cycle, momentum=0.9), "mse", steps_per_execution=spe)
    cycle = CycleMomentum(one_cycle.momentum)
    history = model.fit(x, y, batch_size=8, epochs=6, shuffle=False, verbose=0, callbacks=[cycle])
    np.testing.assert_allclose(model.get_weights()[0], expected, rtol=2e-4, atol=1e-6)
    # The momentum reaches the logs, and the optimizer gets its float back.
    assert history.history["momentum"][-1] == pytest.approx(mom_fn(24), abs=1e-6)
    assert type(model.optimizer.momentum) is float and model.optimizer.momentum == 0.9

    # The planted bug (a float assigned per batch) misses the reference: the test would catch it.
    naive = _linear_model(w0)
    naive.compile(keras.optimizers.SGD(one_cycle, momentum=0.9), "mse", steps_per_execution=spe)
    naive.fit(x, y, batch_size=8, epochs=6, shuffle=False, verbose=0, callbacks=[_NaiveMomentum(one_cycle.momentum)])
    assert not np.allclose(naive.get_weights()[0], expected, rtol=2e-4, atol=1e-6)


def test_adam_beta_1_cycles_identically_with_steps_per_execution():
    x, y = _linear_problem(1)
    w0 = np.full((3, 1), -0.2, dtype="float32")
    one_cycle = OneCycle(0.05, total_steps=24, max_momentum=0.95, min_momentum=0.6)
    weights = {}
    for label, spe, callbacks in (("spe1", 1, True), ("spe4", 4, True), ("fixed", 4, False)):
        model = _linear_model(w0)
        model.compile(keras.optimizers.Adam(one_cycle, beta_1=0.9), "mse", steps_per_execution=spe)
        model.fit(x, y, batch_size=8, epochs=6, shuffle=False, verbose=0,
                  callbacks=[CycleMomentum(one_cycle.momentum)] if callbacks else [])
        weights[label] = model.get_weights()[0]
        assert type(model.optimizer.beta_1) is float
    np.testing.assert_allclose(weights["spe1"], weights["spe4"], rtol=1e-5)
    assert not np.allclose(weights["spe4"], weights["fixed"], rtol=1e-4)


def test_a_model_saved_while_cycling_loads(tmp_path):
    one_cycle = OneCycle(0.05, total_steps=8)
    saved = []

    class SaveMidway(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.save(tmp_path / "mid.keras")
            saved.append(type(self.model.optimizer.momentum).__name__)

    x, y = _linear_problem()
    model = _linear_model(np.zeros((3, 1), dtype="float32"))
    model.compile(keras.optimizers.SGD(one_cycle, momentum=0.9), "mse", steps_per_execution=2)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[CycleMomentum(one_cycle.momentum), SaveMidway()])
    assert saved == ["_ScheduledScalar"]  # it was saved while the momentum cycled
    loaded = keras.models.load_model(tmp_path / "mid.keras")
    assert loaded.optimizer.momentum == 0.9 and type(loaded.optimizer.momentum) is float


def test_zero_momentum_sgd_is_left_alone():
    model = _linear_model(np.zeros((3, 1), dtype="float32"))
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x, y = _linear_problem()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[CycleMomentum(OneCycle(0.01, 4).momentum)])
    assert model.optimizer.momentum == 0.0


# -------------------------------------------------------------- in a run
def test_run_logs_lr_and_momentum_every_step_and_epoch(tmp_path, tiny_config):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from kerasguide.spine import run

    cfg = tiny_config
    cfg.schedule.kind = "one_cycle"
    cfg.optimizer.name = "sgd"
    cfg.optimizer.learning_rate = 0.05
    cfg.train.epochs = 2
    cfg.monitor.enabled = False
    result = run(cfg, out=tmp_path, verbose=0)
    assert result.status == "completed"
    rows = result.run_dir.read_metrics()
    steps = math.ceil(1437 / cfg.train.batch_size)
    one_cycle = OneCycle(0.05, 2 * steps)
    assert [r["lr"] for r in rows] == pytest.approx([float(_np(one_cycle(steps * (e + 1)))) for e in range(2)],
                                                    rel=1e-5)
    assert [r["momentum"] for r in rows] == pytest.approx(
        [float(_np(one_cycle.momentum(steps * (e + 1)))) for e in range(2)], rel=1e-5)
    events = EventAccumulator(str(result.run_dir.tb_dir / "schedule"), size_guidance={"tensors": 0})
    events.Reload()
    lrs = events.Tensors("schedule/learning_rate")
    moms = events.Tensors("schedule/momentum")
    assert [e.step for e in lrs] == list(range(2 * steps)) == [e.step for e in moms]
    got = np.array([tf.make_ndarray(e.tensor_proto) for e in lrs], dtype=np.float64)
    np.testing.assert_allclose(got, _np(one_cycle(np.arange(2 * steps))), rtol=1e-5)
