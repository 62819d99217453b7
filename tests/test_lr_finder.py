"""The LR range test (recipe G24): suggestion rules, the finder on real models, restoration, files, CLI, run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kerasguide._logging import import_tensorflow

import_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasguide.lr_finder import (  # noqa: E402
    LRFinder,
    LRFinderResult,
    consensus,
    ignore_early_spikes,
    smooth_losses,
    suggest_all,
    suggest_minimum,
    suggest_steepest,
    suggest_valley,
    sweep_learning_rates,
)
from tests.conftest import cli_in_process, run_cli  # noqa: E402

LR_FIND_KEYS = {"lrs", "losses", "smoothed", "suggestions", "chosen", "chosen_rule", "reason", "steps", "seconds",
                "start_lr", "end_lr"}


# --------------------------------------------------------------- pure maths
def test_sweep_is_exponential_from_start_to_end():
    lrs = sweep_learning_rates(1e-7, 10.0, 100)
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == pytest.approx(10.0) and len(lrs) == 100
    np.testing.assert_allclose(np.diff(np.log(lrs)), np.log(1e8) / 99)


def test_smoothing_has_bias_correction():
    np.testing.assert_allclose(smooth_losses([2.0] * 10, 0.98), 2.0)  # no pull towards 0
    got = smooth_losses([1.0, 3.0, 5.0], 0.9)
    assert got[0] == pytest.approx(1.0)
    assert got[1] == pytest.approx((0.9 * 0.1 * 1 + 0.1 * 3) / (1 - 0.81))
    assert got[2] == pytest.approx((0.81 * 0.1 + 0.9 * 0.1 * 3 + 0.1 * 5) / (1 - 0.729))


def _curve(n=100, spike=False, tail_nan=False, seed=0):
    """A textbook range-test curve: flat, a fall centered at 1e-3, a minimum near 1e-1, then a blow-up."""
    lrs = sweep_learning_rates(1e-7, 10.0, n)
    x = np.log10(lrs)
    loss = 2.3 - 1.8 / (1 + np.exp(-(x + 3) * 3)) + np.where(x > -1, (x + 1) ** 2 * 4, 0.0)
    loss = loss + np.random.default_rng(seed).normal(0, 0.005, n)
    if spike:
        loss[1:3] = [12.0, 9.0]  # Lightning#1767: the first batches spike
    if tail_nan:
        loss[-3:] = [np.inf, np.nan, np.nan]
    return lrs, loss


def test_rules_on_a_textbook_curve():
    lrs, loss = _curve()
    smoothed = smooth_losses(loss, 0.9)
    steepest = suggest_steepest(lrs, smoothed, loss)
    assert 2e-4 < steepest < 5e-3  # the fall is steepest around 1e-3
    minimum = suggest_minimum(lrs, smoothed)
    assert minimum == pytest.approx(lrs[np.argmin(smoothed)] / 10)
    valley = suggest_valley(lrs, smoothed)
    assert 1e-6 < valley < lrs[np.argmin(smoothed)]
    rule, chosen, reason = consensus(suggest_all(lrs, loss, smoothed), lrs, smoothed)
    assert 1e-4 < chosen < 1e-2 and rule in ("valley", "steepest", "minimum_div_10")
    assert reason.endswith(".") and rule in reason and "\n" not in reason


def test_an_early_spike_does_not_fool_the_choice():
    lrs, loss = _curve(spike=True)
    smoothed = smooth_losses(loss, 0.98)
    # The planted bug: "steepest" on the raw gradient (no guard) picks the spike's wash-out at ~1e-7.
    naive = float(lrs[np.argmin(np.gradient(smoothed, np.log10(lrs))[: np.argmin(smoothed)])])
    assert naive < 1e-5
    assert suggest_steepest(lrs, smoothed, loss) > 1e-4
    _, chosen, _ = consensus(suggest_all(lrs, loss, smoothed), lrs, smoothed)
    assert 1e-4 < chosen < 1e-2


@pytest.mark.parametrize("n", [21, 32, 50])
@pytest.mark.parametrize("spike", [[12.0], [12.0, 9.0], [12.0, 9.0, 6.0]], ids=len)
def test_an_early_spike_does_not_fool_a_short_sweep(n, spike):
    # One epoch of a small data set is a 20-30 step sweep: there the EMA carries a spike for the
    # rest of the curve, and without setting it aside the one-cycle peak would be ~1e-6.
    lrs, loss = _curve(n=n, seed=3)
    loss[1:1 + len(spike)] = spike
    clean, spikes = ignore_early_spikes(loss)
    assert spikes == list(range(1, 1 + len(spike)))
    for beta in (0.98, 0.9):
        smoothed = smooth_losses(clean, beta)
        suggestions = suggest_all(lrs, clean, smoothed)
        assert 1e-4 < suggestions["steepest"] < 1e-2
        for target in ("constant", "peak"):
            assert 1e-4 < consensus(suggestions, lrs, smoothed, target)[1] < 1e-2
    # The planted bug (the rules on the raw EMA) is fooled in the 2-spike, 32-step case.
    if (n, len(spike)) == (32, 2):
        raw = smooth_losses(loss, 0.98)
        assert consensus(suggest_all(lrs, loss, raw), lrs, raw, "peak")[1] < 1e-5


def test_ignore_early_spikes_leaves_ordinary_curves_alone():
    for n in (21, 32, 100):
        for seed in range(5):
            lrs, loss = _curve(n=n, seed=seed)
            clean, spikes = ignore_early_spikes(loss)
            assert spikes == [] and np.array_equal(clean, loss)
    # A loss that only rises (the sweep started too high) has no spike to wash out.
    rising = np.linspace(1.0, 8.0, 30)
    rising[2] = 5.0
    assert ignore_early_spikes(rising)[1] == []
    assert ignore_early_spikes([2.0, 2.0])[1] == []


def test_consensus_is_the_median_and_ignores_non_finite_and_late_values():
    assert consensus({"valley": 1e-3, "steepest": 1e-7, "minimum_div_10": 3e-3})[:2] == ("valley", 1e-3)
    assert consensus({"valley": math.nan, "steepest": 2e-3, "minimum_div_10": None})[:2] == ("steepest", 2e-3)
    assert consensus({"valley": math.inf, "steepest": -1.0})[:2] == (None, None)
    lrs = np.array([1e-4, 1e-3, 1e-2, 1e-1])
    smoothed = np.array([2.0, 1.0, 0.5, 3.0])  # minimum at 1e-2
    rule, lr, reason = consensus({"valley": 5e-2, "steepest": 1e-3, "minimum_div_10": 1e-3}, lrs, smoothed)
    assert lr == 1e-3 and "valley dropped" in reason


def test_a_schedule_peak_takes_steepest_and_a_rule_can_be_asked_for():
    suggestions = {"valley": 1e-5, "steepest": 2e-2, "minimum_div_10": 5e-3}
    assert consensus(suggestions)[:2] == ("minimum_div_10", 5e-3)  # constant: the median
    rule, lr, reason = consensus(suggestions, target="peak")
    assert (rule, lr) == ("steepest", 2e-2) and "one-cycle" in reason
    assert consensus({"valley": 1e-5, "minimum_div_10": 5e-3}, target="peak")[:2] == ("valley", 1e-5)
    x, y = np.zeros((800, 2), "float32"), np.zeros((800, 1), "float32")
    asked = LRFinder(_scripted()).find(x, y, batch_size=8, rule="minimum_div_10", target="peak")
    assert asked.chosen == asked.suggestions["minimum_div_10"] and asked.chosen_rule == "minimum_div_10"
    assert "was asked for" in asked.reason and asked.found
    # On a curve that never falls (dropout + batch norm at batch size 8: noise until it diverges) no
    # rule is taken, asked for or not: its minimum / 10 (6e-8) lies before the sweep's first rate.
    x, y = _data()
    noise = LRFinder(_sequential()).find(x, y, batch_size=8, rule="minimum_div_10", target="peak")
    assert not noise.found and noise.chosen_rule is None and "never fell" in noise.reason
    with pytest.raises(ValueError, match="Received: rule='best'"):
        LRFinder(_sequential()).find(x, y, rule="best")


def test_rules_survive_a_diverged_tail():
    lrs, loss = _curve(tail_nan=True)
    smoothed = smooth_losses(loss, 0.9)
    suggestions = suggest_all(lrs, loss, smoothed)
    assert all(v is not None and math.isfinite(v) for v in suggestions.values())
    assert consensus(suggestions, lrs, smoothed)[1] is not None


# ---------------------------------------------------------- on real models
def _data(n=256, d=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x[:, :classes].argmax(axis=1)).astype("int32")
    return x, y


def _sequential(optimizer=None, spe=1):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((8,)), keras.layers.Dense(16), keras.layers.BatchNormalization(), keras.layers.ReLU(),
        keras.layers.Dropout(0.3), keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer or keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                  "sparse_categorical_crossentropy", metrics=["accuracy"], steps_per_execution=spe)
    return model


def _functional():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Concatenate()([hidden, inputs]))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


class SubclassedNet(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(16, activation="tanh")
        self.out = keras.layers.Dense(3, activation="softmax")

    def call(self, x, training=False):
        return self.out(self.hidden(x))


def _state(model):
    return ([np.array(v.numpy(), copy=True) for v in model.variables],
            [np.array(v.numpy(), copy=True) for v in model.optimizer.variables])


def _assert_identical(before, after):
    for group_before, group_after in zip(before, after, strict=True):
        assert len(group_before) == len(group_after)
        for a, b in zip(group_before, group_after, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes()  # bit-identical


def test_find_restores_weights_and_optimizer_bit_identically():
    x, y = _data()
    model = _sequential(spe=4)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # slots, iterations and BN statistics not at their init
    before = _state(model)
    result = LRFinder(model).find(x, y, batch_size=16)
    assert result.steps >= 5 and len(result.losses) == result.steps
    _assert_identical(before, _state(model))


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_find_restores_after_an_exception_mid_find(error):
    x, y = _data()
    model = _sequential()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    before = _state(model)
    seen = []

    def on_step(i, lr, loss):
        seen.append(i)
        if i == 4:
            raise error

    with pytest.raises(type(error)):
        LRFinder(model).find(x, y, batch_size=16, on_step=on_step)
    assert seen == [0, 1, 2, 3, 4]  # it did train some steps before failing
    _assert_identical(before, _state(model))


def test_the_planted_bug_of_no_restore_would_be_caught():
    # Without the restore, the sweep's steps (up to lr 10) leave the weights changed:
    # the bit-identity check above is not vacuous.
    x, y = _data()
    model = _sequential()
    before = _state(model)
    for lr in sweep_learning_rates(1e-7, 10.0, 5):
        model.optimizer.learning_rate = float(lr)
        model.train_on_batch(x[:16], y[:16])
    with pytest.raises(AssertionError):
        _assert_identical(before, _state(model))


def test_find_leaves_no_trace_on_later_training():
    # Same init, one fits directly, the other after a find: same weights (RNG state restored too).
    x, y = _data()
    direct = _sequential()
    direct.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    after_find = _sequential()
    LRFinder(after_find).find(x, y, batch_size=32)
    after_find.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(direct.get_weights(), after_find.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_find_on_functional_subclassed_and_tf_data():
    x, y = _data()
    functional = _functional()
    before = _state(functional)
    assert LRFinder(functional).find(x, y, batch_size=32, steps=8).steps == 8
    weights, optimizer = _state(functional)
    # The optimizer was not built before: its slots now exist, at their initial zeros.
    _assert_identical((before[0], before[1]), (weights, optimizer[: len(before[1])]))
    assert len(optimizer) > len(before[1]) and all(not v.any() for v in optimizer[len(before[1]):])

    subclassed = SubclassedNet()  # not built yet: the finder builds it first
    subclassed.compile(keras.optimizers.RMSprop(1e-3), "sparse_categorical_crossentropy")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    result = LRFinder(subclassed).find(dataset)
    assert result.steps == 32  # 256 / 32 = 8 batches: small data, swept over 4 epochs to reach 30 steps
    assert subclassed.built


def test_find_with_a_schedule_optimizer_puts_the_schedule_back():
    x, y = _data()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, 10, 0.5)
    model = _sequential(keras.optimizers.SGD(schedule, momentum=0.9), spe=2)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    before = _state(model)
    result = LRFinder(model).find(x, y, batch_size=32, start_lr=1e-4, end_lr=1.0)
    assert result.lrs[0] == pytest.approx(1e-4) and result.lrs[-1] == pytest.approx(1.0)
    _assert_identical(before, _state(model))
    assert model.optimizer._learning_rate is schedule
    assert len(model.optimizer.variables) == len(before[1])
    # Training goes on with the schedule, not the sweep's last rate.
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(16)), rel=1e-6)


def test_never_more_than_one_epoch_unless_asked_or_the_data_are_small():
    x, y = _data(n=400)
    batches = []
    model = _sequential()
    result = LRFinder(model).find(x, y, batch_size=10, on_step=lambda i, lr, loss: batches.append(i))
    assert result.steps == len(batches) == 40  # 400 examples / 10 = one epoch, not 100 steps
    assert result.lrs[0] == pytest.approx(1e-7) and result.lrs[-1] == pytest.approx(10.0)  # the sweep is compressed
    assert LRFinder(model).find(x, y, batch_size=10, max_epochs=2.5).steps == 100
    assert LRFinder(model).find(x, y, batch_size=1, steps=40).steps == 40  # at most `steps`
    # Small data: fewer than 30 steps in an epoch, so the sweep takes more epochs (at most 10) to have a curve.
    small_x, small_y = _data(n=100)
    assert LRFinder(model).find(small_x, small_y, batch_size=10).steps == 30
    assert LRFinder(model).find(small_x, small_y, batch_size=50).steps == 20  # 2 batches: 10 epochs at most


def test_planned_steps_for_small_data():
    from kerasguide.lr_finder import planned_steps

    assert planned_steps(100, 1.0, 200) == 100
    assert planned_steps(100, 1.0, 40) == 40
    assert planned_steps(100, 1.0, 8) == 32  # 4 epochs
    assert planned_steps(100, 1.0, 2) == 20  # 10 epochs at most
    assert planned_steps(20, 1.0, 8) == 20  # never more than `steps`
    assert planned_steps(100, 1.0, None) == 100
    assert planned_steps(100, 1.0, 1) == 10  # one batch an epoch: 10 epochs, just enough points
    assert planned_steps(100, 2.5, 8) == 32  # the epochs asked for hold 20 steps: 4 epochs
    assert planned_steps(100, 20.0, 1) == 20  # never fewer epochs than max_epochs, even above 10


def test_find_stops_when_the_loss_explodes():
    x, y = _data()
    model = _sequential(keras.optimizers.SGD(0.01))
    result = LRFinder(model).find(x, y, batch_size=2, steps=100, start_lr=1e-3, end_lr=1e4)
    assert result.steps < 100
    assert result.stop_reason in ("loss not finite", "smoothed loss above 4x its best")


class ScriptedLoss(keras.Model):
    """A model whose training loss is a known function of the learning rate, plus x[:, 0] of the batch."""

    def __init__(self, curve):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.curve = curve

    def call(self, x, training=False):
        return self.dense(x)

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        t = keras.ops.log10(keras.ops.cast(self.optimizer.learning_rate, "float32"))
        return {"loss": self.curve(t) + keras.ops.mean(x[:, 0])}


def _textbook(t, ops=keras.ops):
    """`_curve` without noise, in log10(lr): flat 2.3, a fall centered at 1e-3, a rise past 1e-1."""
    return 2.3 - 1.8 * ops.sigmoid(3.0 * (t + 3.0)) + 4.0 * ops.square(ops.relu(t + 1.0))


def _scripted(curve=_textbook):
    model = ScriptedLoss(curve)
    model.compile(keras.optimizers.SGD(0.01), "mse")
    return model


def _np_sigmoid(v):
    return 1 / (1 + np.exp(-v))


class _NumpyOps:
    sigmoid = staticmethod(_np_sigmoid)
    square = staticmethod(np.square)
    relu = staticmethod(lambda v: np.maximum(v, 0.0))


@pytest.mark.parametrize("smoothing", [0.0, 0.5, 0.9])
def test_find_stops_once_the_smoothed_loss_passes_4x_its_best(smoothing):
    x, y = np.zeros((800, 2), "float32"), np.zeros((800, 1), "float32")
    result = LRFinder(_scripted()).find(x, y, batch_size=8, smoothing=smoothing)
    lrs = sweep_learning_rates(1e-7, 10.0, 100)
    raw = _textbook(np.log10(lrs), _NumpyOps)
    smoothed = smooth_losses(raw, smoothing)  # with its bias correction
    stop = int(np.argmax(smoothed > 4 * np.minimum.accumulate(smoothed)))
    assert stop > 0 and result.stop_reason == "smoothed loss above 4x its best"
    assert result.steps == stop + 1  # the step that passed 4x is recorded, none after it
    np.testing.assert_allclose(result.losses, raw[: stop + 1], rtol=1e-5)
    np.testing.assert_allclose(result.smoothed, smoothed[: stop + 1], rtol=1e-5)


def test_find_stops_at_a_non_finite_loss():
    def blows_up(t):
        return keras.ops.where(t > -2.0, np.inf, _textbook(t))

    x, y = np.zeros((800, 2), "float32"), np.zeros((800, 1), "float32")
    result = LRFinder(_scripted(blows_up)).find(x, y, batch_size=8, smoothing=0.5)
    lrs = sweep_learning_rates(1e-7, 10.0, 100)
    first = int(np.argmax(np.log10(lrs) > -2.0))
    assert result.stop_reason == "loss not finite" and result.steps == first + 1
    assert not math.isfinite(result.losses[-1]) and all(map(math.isfinite, result.losses[:-1]))
    assert result.found and result.chosen < 1e-2


def test_find_sets_an_early_spike_aside_and_says_so(tmp_path):
    x = np.zeros((256, 2), "float32")
    x[8:24, 0] = [10.0] * 8 + [7.0] * 8  # batches 1 and 2 (of 8 examples) spike
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros((256, 1), "float32"))).batch(8)
    result = LRFinder(_scripted()).find(dataset, target="peak")
    assert result.steps <= 32 and result.extra["early_spikes"] == [1, 2]
    assert 1e-4 < result.chosen < 1e-2 and "spike at steps 1, 2 was ignored" in result.reason
    assert result.losses[1] > 10  # the record keeps the raw curve
    assert json.loads(result.save(tmp_path, plot=False).read_text())["early_spikes"] == [1, 2]
    # The planted bug (the rules on the raw smoothed loss) would pick a peak at which nothing trains.
    smoothed = smooth_losses(result.losses)
    assert consensus(suggest_all(result.lrs, result.losses, smoothed), result.lrs, smoothed, "peak")[1] < 1e-5


class _Reiterable:
    """Batches of unknown length that can be iterated again (no len, not a tf.data.Dataset)."""

    def __init__(self, x, y, batch):
        self.x, self.y, self.batch = x, y, batch

    def __iter__(self):
        for start in range(0, len(self.x), self.batch):
            yield self.x[start:start + self.batch], self.y[start:start + self.batch]


def test_data_of_unknown_length_is_counted_or_never_swept_past_its_epochs():
    x, y = _data()  # 256 examples: 8 batches of 32
    unknown = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(32)
    assert int(unknown.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    seen = []
    result = LRFinder(_functional()).find(unknown, on_step=lambda i, lr, loss: seen.append(i))
    assert result.steps == len(seen) == 32  # counted first (8 batches): small data, the sweep over 4 epochs
    assert result.lrs[0] == pytest.approx(1e-7) and result.lrs[-1] == pytest.approx(10.0)
    # An iterable that cannot be counted ahead stops at the end of its epoch (the sweep cut short):
    # 8 points are too few to read a curve from, and the reason says what to do.
    result = LRFinder(_functional()).find(_Reiterable(x, y, 32))
    assert result.steps == 8 and "1 epoch(s) of data swept" in result.stop_reason
    assert not result.found and "8 batches an epoch" in result.reason and "pass steps_per_epoch" in result.reason
    assert LRFinder(_functional()).find(_Reiterable(x, y, 32), max_epochs=2).steps == 16
    # Told its length, the same iterable is small data: swept over 4 epochs like the counted pipeline.
    assert LRFinder(_functional()).find(_Reiterable(x, y, 32), steps_per_epoch=8).steps == 32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"start_lr": 0}, "Argument `start_lr` must be > 0. Received: start_lr=0"),
        ({"end_lr": 1e-8}, "Argument `end_lr` must be > start_lr (1e-07). Received: end_lr=1e-08"),
        ({"steps": 1}, "Argument `steps` must be an integer >= 2. Received: steps=1"),
        ({"max_epochs": 0}, "Argument `max_epochs` must be > 0. Received: max_epochs=0"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    x, y = _data(n=32)
    with pytest.raises(ValueError) as info:
        LRFinder(_functional()).find(x, y, **kwargs)
    assert message in str(info.value)


def test_uncompiled_model_is_refused():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="compiled"):
        LRFinder(model).find(*_data(n=32))


# ------------------------------------------------------------ result, files
def _result():
    lrs, loss = _curve(n=40, tail_nan=True)
    smoothed = smooth_losses(loss, 0.9)
    suggestions = suggest_all(lrs, loss, smoothed)
    rule, chosen, reason = consensus(suggestions, lrs, smoothed)
    return LRFinderResult(list(lrs), list(loss), list(smoothed), suggestions, chosen, rule, reason, 40, 1.5,
                          1e-7, 10.0)


def test_result_saves_json_and_png_and_loads(tmp_path):
    result = _result()
    path = result.save(tmp_path)
    data = json.loads(path.read_text())  # strict JSON: NaN/Inf written as null
    assert LR_FIND_KEYS <= set(data)
    assert data["losses"][-1] is None and data["chosen"] == result.chosen
    assert (tmp_path / "lr_find.png").stat().st_size > 1000
    loaded = LRFinderResult.load(tmp_path)
    assert loaded.suggestion() == result.chosen and loaded.suggestions == result.suggestions
    assert loaded.suggestion("valley") == result.suggestions["valley"]
    with pytest.raises(ValueError, match="Received: rule='best'"):
        loaded.suggestion("best")


def test_result_writes_the_curve_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = _result()
    result.write_tensorboard(tmp_path / "lr_find")
    events = EventAccumulator(str(tmp_path / "lr_find"), size_guidance={"tensors": 0})
    events.Reload()
    assert len(events.Tensors("lr_find/learning_rate")) == 40
    assert len(events.Tensors("lr_find/loss")) == 37  # the non-finite tail is left out


# --------------------------------------------------------------- CLI, run
def test_cli_lr_find_json_and_bad_input(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text('name = "tiny"\n[model]\nhidden = [16]\n[train]\nbatch_size = 32\n[lr_find]\nsteps = 20\n')
    done = cli_in_process(capsys, "lr-find", str(config), "--out", str(tmp_path / "runs"), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert LR_FIND_KEYS <= set(data) and data["steps"] <= 20 and data["chosen"] > 0
    run = next((tmp_path / "runs").iterdir())
    assert (run / "lr_find.png").exists() and (run / "tb" / "lr_find").is_dir()
    assert "Learning-rate range test" in (run / "report.md").read_text()
    record = json.loads((run / "run.json").read_text())
    assert record["kind"] == "lr_find" and record["status"] == "completed"

    config.write_text("[lr_find]\nstart_lr = 1.0\nend_lr = 0.1\n")
    bad = cli_in_process(capsys, "lr-find", str(config), "--out", str(tmp_path / "runs"))
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "end_lr" in bad.stderr


def test_cli_lr_find_json_progress_has_steps_of_the_planned_total_with_an_eta(tmp_path):
    """A `step` event every few sweep steps (of the steps the sweep plans), each with an ETA."""
    config = tmp_path / "tiny.toml"
    # 1437 examples in batches of 32 = 45 batches; one epoch caps the sweep at 45 of the 80 steps.
    # Up to 0.1: far enough for the loss to fall (a sweep ending at 1e-3 never trains the model in one
    # epoch, finds no rate and exits 1), not so far that it diverges before its 45th step.
    config.write_text('name = "tiny"\n[model]\nhidden = [16]\n[train]\nbatch_size = 32\n'
                      "[lr_find]\nsteps = 80\nend_lr = 1e-1\n")
    done = run_cli("lr-find", str(config), "--out", str(tmp_path / "runs"), "--json-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]  # stdout holds events only
    run = next((tmp_path / "runs").iterdir())
    assert events[0] == {"event": "start", "run_dir": str(run), "name": "tiny", "kind": "lr_find", "steps": 45}
    steps = [e for e in events if e["event"] == "step"]
    assert all(e["stage"] == "lr_find" and e["steps"] == 45 and e["eta"] >= 0 for e in steps)
    numbers = [e["step"] for e in steps]
    assert numbers == sorted(numbers) and numbers[-1] == 45 and 10 <= len(numbers) < 45  # every few steps
    assert all(math.isfinite(e["lr"]) and math.isfinite(e["loss"]) for e in steps)
    assert events[-1] == {"event": "end", "status": "completed", "run_dir": str(run), "error": None}
    assert "lr_find.json:" in done.stderr and "chosen:" in done.stderr


def test_sigterm_during_lr_find_marks_it_interrupted(tmp_path):
    """`kerasguide lr-find` stopped mid-sweep (the desktop app's Cancel): run.json says so, exit 1."""
    from pathlib import Path

    from tests.conftest import sigterm_cli_midway

    config = tmp_path / "long.toml"
    config.write_text('name = "long"\n[model]\nhidden = [16]\n[train]\nbatch_size = 32\n'
                      "[lr_find]\nsteps = 1000000\nmax_epochs = 1000000\nstart_lr = 1e-8\nend_lr = 1e-7\n")
    returncode, out, err, run_dir = sigterm_cli_midway(
        "lr-find", str(config), "--out", str(tmp_path / "runs"),
        until=lambda e: e["event"] == "step" and e["step"] >= 2)
    assert returncode == 1, err[-2000:]
    assert "Traceback" not in err and "interrupted" in err
    record = json.loads((Path(run_dir) / "run.json").read_text())
    assert record["status"] == "interrupted" and record["ended"] and record["kind"] == "lr_find"
    assert (Path(run_dir) / "report.md").exists() and (Path(run_dir) / "config.toml").exists()
    assert json.loads(out.strip().splitlines()[-1])["status"] == "interrupted"


def test_run_with_auto_learning_rate_uses_the_range_test(tmp_path, tiny_config):
    from kerasguide.lr_finder import planned_steps
    from kerasguide.schedules import OneCycle
    from kerasguide.spine import run

    cfg = tiny_config
    cfg.optimizer.learning_rate = "auto"
    cfg.schedule.kind = "one_cycle"
    cfg.monitor.enabled = False
    cfg.train.epochs = 1
    result = run(cfg, out=tmp_path, verbose=0)
    assert result.status == "completed"
    found = json.loads(result.run_dir.file("lr_find.json").read_text())
    record = result.run_dir.read_run()
    assert record["lr_find"]["chosen"] == found["chosen"]
    assert record["lr_find"]["used"] == {"max_lr": found["chosen"]}
    steps = math.ceil(1437 / cfg.train.batch_size)
    assert found["steps"] <= planned_steps(cfg.lr_find.steps, cfg.lr_find.max_epochs, steps)  # it may stop early
    # The schedule peaked at the chosen rate: the first epoch's logged lr is one-cycle's at its end.
    expected = float(OneCycle(found["chosen"], steps)(steps))
    assert result.run_dir.read_metrics()[0]["lr"] == pytest.approx(expected, rel=1e-5)
    assert "## Learning-rate range test" in result.run_dir.file("report.md").read_text()
    assert "Used for training: max_lr" in result.run_dir.file("report.md").read_text()
    assert result.run_dir.file("lr_find.png").stat().st_size > 1000  # drawn with the report


@pytest.mark.parametrize("min_lr", [None, 1e-4, 0.5])
def test_recorded_cyclical_bounds_are_the_schedules(tiny_config, min_lr):
    from kerasguide.lr_finder import schedule_bounds as _bounds
    from kerasguide.schedules import schedule_from_config

    cfg = tiny_config
    cfg.optimizer.learning_rate = "auto"
    cfg.schedule.kind = "cyclical"
    cfg.schedule.min_lr = min_lr
    schedule, _ = schedule_from_config(cfg, 12, 0.03)
    assert _bounds(cfg, 0.03) == {"max_lr": schedule.max_lr, "min_lr": pytest.approx(schedule.min_lr)}
    cfg.schedule.kind = "step"
    assert _bounds(cfg, 0.03) == {"learning_rate": 0.03}


def test_run_with_a_fixed_learning_rate_skips_the_range_test(tmp_path, tiny_config):
    from kerasguide.spine import run

    tiny_config.train.epochs = 1
    tiny_config.monitor.enabled = False
    result = run(tiny_config, out=tmp_path, verbose=0)
    assert result.status == "completed"
    assert not result.run_dir.file("lr_find.json").exists() and "lr_find" not in result.run_dir.read_run()


def test_a_rate_at_the_sweeps_last_point_is_no_usable_rate(monkeypatch):
    import kerasguide.lr_finder.finder as finder

    # Planted: a consensus that returns where the sweep stopped (the last rate tried).
    monkeypatch.setattr(finder, "consensus", lambda suggestions, lrs, *args: ("minimum_div_10", lrs[-1], "planted"))
    x, y = _data(n=640)
    result = LRFinder(_scripted()).find(x, y, batch_size=16, steps=40)
    assert not result.found and "the sweep's last point" in result.reason


def _noise_around_a_flat_loss(t):
    """A loss no rate moves: 2.3 at every rate (plus x[:, 0], the batch's noise)."""
    return 2.3 + 0.0 * t


def test_a_curve_that_never_falls_is_no_usable_rate(monkeypatch):
    import kerasguide.lr_finder.finder as finder
    import kerasguide.lr_finder.suggest as suggest

    x = np.random.default_rng(3).normal(scale=0.05, size=(800, 2)).astype("float32")  # batch noise
    y = np.zeros((800, 1), "float32")
    result = LRFinder(_scripted(_noise_around_a_flat_loss)).find(x, y, batch_size=8)
    assert result.steps == 100 and not result.found and result.chosen_rule is None
    assert result.chosen == 1e-3 and result.chosen != result.start_lr  # never the start rate
    assert result.reason.startswith("No usable rate: the smoothed loss never fell") and "\n" not in result.reason
    assert "100 steps, 100 batches an epoch" in result.reason and "raise lr_find.end_lr" in result.reason
    assert not LRFinder(_scripted(_noise_around_a_flat_loss)).find(x, y, batch_size=8, rule="valley").found
    # Planted: the opening-points guard weakened (only the first point is set aside), so the rules'
    # noise near the start rate gets through to the curve check, which alone still says no usable rate ...
    for module in (finder, suggest):
        monkeypatch.setattr(module, "start_points", lambda n: 1)
    weakened = LRFinder(_scripted(_noise_around_a_flat_loss)).find(x, y, batch_size=8)
    assert not weakened.found and "never fell" in weakened.reason
    # ... and without the curve check too (the planted bug), a rate near the start rate comes out.
    for module in (finder, suggest):
        monkeypatch.setattr(module, "curve_problem", lambda *args, **kwargs: None)
    planted = LRFinder(_scripted(_noise_around_a_flat_loss)).find(x, y, batch_size=8)
    assert planted.found and planted.chosen < 1e-5, planted.reason  # what the check above catches


def test_small_data_are_swept_over_more_epochs_and_never_give_the_last_point(tmp_path, monkeypatch, tiny_config):
    import kerasguide.lr_finder.finder as finder
    from kerasguide.lr_finder import result_record

    # 150 examples at 2 batches an epoch: one epoch is 2 points, a curve of nothing (it once chose 1.0).
    x, y = np.zeros((150, 2), "float32"), np.zeros((150, 1), "float32")
    result = LRFinder(_scripted()).find(x, y, batch_size=75)
    sweep = result.extra["sweep"]
    assert sweep["batches_per_epoch"] == 2 and sweep["max_epochs"] == 1.0
    assert result.steps >= 10 and sweep["epochs"] == result.steps / 2 > 1
    assert sweep["extended"].startswith("small data: 2 batches an epoch give 2 step(s) in max_epochs = 1")
    assert "swept over 10 epochs" in sweep["extended"]
    assert result.found and 1e-5 < result.chosen < 1e-1, result.reason  # the textbook fall, at 1e-3
    assert result.chosen < result.lrs[-1] and result.chosen != 1.0
    # The record says how many epochs were swept and why: lr_find.json and run.json's lr_find.
    saved = json.loads(result.save(tmp_path, plot=False).read_text())
    assert saved["sweep"] == sweep and result_record(result, tiny_config)["sweep"] == sweep
    assert LRFinderResult.load(tmp_path).extra["sweep"] == sweep
    # Planted bug: the old plan (never past max_epochs) leaves 2 points, from which no rate is read.
    monkeypatch.setattr(finder, "planned_steps",
                        lambda steps, max_epochs, per_epoch: min(steps, max(2, math.floor(max_epochs * per_epoch))))
    planted = LRFinder(_scripted()).find(x, y, batch_size=75)
    assert planted.steps == 2 and not planted.found and planted.extra["sweep"]["extended"] is None
    assert "only 2 points (2 batches an epoch" in planted.reason and "at least 10 are needed" in planted.reason


def test_cli_says_no_usable_rate_in_one_line_naming_the_batches(tmp_path, monkeypatch, capsys, tiny_config):
    import kerasguide.cli as cli
    from kerasguide.config import save_config

    monkeypatch.setattr(cli, "_install_sigterm", lambda: None)  # this process's signal handlers stay as they are
    tiny_config.lr_find.end_lr = 1e-6  # 1e-7..1e-6: no rate of the sweep trains the model
    path = tmp_path / "flat.toml"
    save_config(tiny_config, path)
    assert cli.main(["lr-find", str(path), "--out", str(tmp_path / "runs")]) == cli.EXIT_FAILED
    out = capsys.readouterr().out.splitlines()
    said = [line for line in out if "usable rate" in line]
    assert len(said) == 1 and said[0].startswith("No usable rate: the smoothed loss never fell"), out
    assert "12 batches an epoch" in said[0] and "raise lr_find.end_lr or lr_find.max_epochs" in said[0]
    assert not any(line.startswith("chosen:") for line in out)  # no "chosen" rate where none was found
    # 1437 examples in batches of 128: 12 batches, small data swept over 3 epochs, and the summary says so.
    assert any(line.startswith("36 steps over 3 epoch(s) of 12 batches in ") for line in out), out
    assert any(line.strip().startswith("small data: 12 batches an epoch") for line in out), out
    run = next((tmp_path / "runs").iterdir())
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and record["lr_find"]["sweep"]["epochs"] == 3
    assert "The sweep took 3 epochs: small data: 12 batches an epoch" in (run / "report.md").read_text()
