"""Model builders, initializers (B4-B8), regularizers and constraints (C9-C11), losses."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasguide.config import ConfigError, RunConfig
from kerasguide.initializers import SparseInitializer
from kerasguide.losses import MulticlassHinge, SparseMeanSquaredError
from kerasguide.models import build_model, make_optimizer


def _cfg(**model) -> RunConfig:
    cfg = RunConfig()
    for key, value in model.items():
        setattr(cfg.model, key, value)
    return cfg


def _dense(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def test_mlp_shapes_and_softmax():
    model = build_model(_cfg(hidden=[32, 16]), (64,), 10)
    assert [layer.units for layer in _dense(model)] == [32, 16, 10]
    out = model(np.zeros((2, 64), np.float32))
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, rtol=1e-5)


def test_cnn_2d_reshapes_flat_images():
    model = build_model(_cfg(kind="cnn", filters=[4, 8], hidden=[8]), (64,), 10, image_shape=(8, 8, 1))
    assert any(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)
    assert model(np.zeros((2, 64), np.float32)).shape == (2, 10)


def test_cnn_1d_for_sequences():
    model = build_model(_cfg(kind="cnn", filters=[4], kernel_size=5, hidden=[]), (40,), 10)
    assert any(isinstance(layer, keras.layers.Conv1D) for layer in model.layers)
    assert model(np.zeros((3, 40), np.float32)).shape == (3, 10)


def test_cnn_2d_on_sequences_is_a_config_error():
    with pytest.raises(ConfigError, match="needs image data"):
        build_model(_cfg(kind="cnn", conv_dims="2d"), (40,), 10)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid"])
def test_activations(activation):
    model = build_model(_cfg(activation=activation, hidden=[8]), (5,), 3)
    assert model(np.ones((1, 5), np.float32)).shape == (1, 3)


@pytest.mark.parametrize(
    "name, fan_in_std",
    [
        ("he_normal", np.sqrt(2 / 400)),
        ("he_uniform", np.sqrt(2 / 400)),
        ("glorot_normal", np.sqrt(2 / (400 + 300))),
        ("glorot_uniform", np.sqrt(2 / (400 + 300))),
    ],
)
def test_he_and_glorot_scales(name, fan_in_std):
    """Recipe B4: He std = sqrt(2/fan_in) for ReLU; Glorot ~ sqrt(2/(fan_in+fan_out))."""
    model = build_model(_cfg(kernel_initializer=name, hidden=[300]), (400,), 10)
    kernel = np.asarray(_dense(model)[0].kernel)
    assert kernel.std() == pytest.approx(fan_in_std, rel=0.1)


def test_conv_fan_in_is_channels_times_k_squared():
    model = build_model(_cfg(kind="cnn", filters=[64], kernel_size=3, hidden=[], kernel_initializer="he_normal"),
                        (8, 8, 16), 10)
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert np.asarray(conv.kernel).std() == pytest.approx(np.sqrt(2 / (16 * 3 * 3)), rel=0.1)


def test_normal_with_stddev():
    model = build_model(_cfg(kernel_initializer="normal", init_stddev=0.05, hidden=[200]), (300,), 10)
    assert np.asarray(_dense(model)[0].kernel).std() == pytest.approx(0.05, rel=0.1)


def test_zeros_initializer_gives_zero_hidden_weights():
    model = build_model(_cfg(kernel_initializer="zeros", hidden=[8]), (5,), 3)
    assert not np.asarray(_dense(model)[0].kernel).any()


def test_sparse_init_has_exactly_k_nonzeros_per_unit():
    """Recipe B6: each unit connected to exactly k random inputs."""
    model = build_model(_cfg(kernel_initializer="sparse", sparse_k=10, hidden=[50]), (64,), 10)
    kernel = np.asarray(_dense(model)[0].kernel)
    assert (kernel != 0).sum(axis=0).tolist() == [10] * 50
    # positions differ between units (symmetry is broken)
    assert len({tuple(np.flatnonzero(kernel[:, j])) for j in range(50)}) > 40


def test_sparse_initializer_conv_and_cap():
    w = np.asarray(SparseInitializer(k=4, seed=1)((3, 3, 2, 5)))
    assert ((w.reshape(-1, 5) != 0).sum(axis=0) == 4).all()
    w = np.asarray(SparseInitializer(k=100, seed=1)((6, 2)))
    assert ((w != 0).sum(axis=0) == 6).all()


def test_sparse_initializer_round_trip():
    init = SparseInitializer(k=3, stddev=0.5, seed=7)
    again = keras.initializers.deserialize(keras.initializers.serialize(init))
    assert isinstance(again, SparseInitializer) and again.get_config() == init.get_config()
    with pytest.raises(ValueError, match="Received: k=0"):
        SparseInitializer(k=0)


def test_bias_constant():
    model = build_model(_cfg(bias_init=0.01, hidden=[8]), (5,), 3)
    np.testing.assert_allclose(np.asarray(_dense(model)[0].bias), 0.01)
    np.testing.assert_allclose(np.asarray(_dense(model)[-1].bias), 0.0)


def test_batch_norm_sits_before_the_nonlinearity():
    """Recipe B8: Dense -> BatchNorm -> Activation."""
    model = build_model(_cfg(batch_norm=True, hidden=[8]), (5,), 3)
    kinds = [type(layer).__name__ for layer in model.layers]
    i = kinds.index("Dense")
    assert kinds[i : i + 3] == ["Dense", "BatchNormalization", "Activation"]
    assert not _dense(model)[0].use_bias


def test_regularizer_on_weights_not_biases():
    model = build_model(_cfg(l1=1e-3, l2=1e-2, hidden=[8]), (5,), 3)
    layer = _dense(model)[0]
    assert isinstance(layer.kernel_regularizer, keras.regularizers.L1L2)
    assert layer.kernel_regularizer.l1 == pytest.approx(1e-3)
    assert layer.bias_regularizer is None
    model = build_model(_cfg(l2=1e-2, regularize_bias=True, hidden=[8]), (5,), 3)
    assert _dense(model)[0].bias_regularizer is not None


def test_regularization_raises_the_loss():
    """Recipe D13 in its simplest form: a positive L2 strength adds a positive penalty."""
    model = build_model(_cfg(l2=1e-1, hidden=[8]), (5,), 3)
    model(np.ones((1, 5), np.float32))
    assert float(sum(model.losses)) > 0


def test_max_norm_constraint_is_applied_by_training():
    cfg = _cfg(max_norm=0.5, hidden=[8], kernel_initializer="normal", init_stddev=1.0)
    model = build_model(cfg, (20,), 3)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(32, 20)).astype(np.float32)
    model.fit(x, np.arange(32) % 3, epochs=1, verbose=0)
    norms = np.linalg.norm(np.asarray(_dense(model)[0].kernel), axis=0)
    assert norms.max() <= 0.5 + 1e-5


def test_dropout_is_inverted():
    """Recipe C11: at inference dropout is the identity; the scaling is done in training."""
    layer = keras.layers.Dropout(0.5, seed=0)
    x = np.ones((1000, 10), np.float32)
    assert np.asarray(layer(x, training=False)).mean() == 1.0
    assert np.asarray(layer(x, training=True)).mean() == pytest.approx(1.0, abs=0.05)


def test_user_builder(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "import keras\n"
        "def build(config, input_shape, num_classes):\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(num_classes, activation='softmax')])\n"
    )
    model = build_model(_cfg(kind=f"python:{path}:build"), (5,), 3)
    assert model.output_shape == (None, 3)


def test_user_builder_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_model(_cfg(kind="python:/no/such.py:build"), (5,), 3)
    path = tmp_path / "bad.py"
    path.write_text("def build(**kw):\n    return 3\n")
    with pytest.raises(ConfigError, match="not a keras.Model"):
        build_model(_cfg(kind=f"python:{path}:build"), (5,), 3)
    with pytest.raises(ConfigError, match="no function 'nope'"):
        build_model(_cfg(kind=f"python:{path}:nope"), (5,), 3)


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam", "adamw"])
def test_optimizers(name):
    cfg = RunConfig()
    cfg.optimizer.name = name
    cfg.optimizer.ema = True
    cfg.optimizer.clipnorm = 1.0
    opt = make_optimizer(cfg.optimizer, 0.01)
    assert opt.use_ema and opt.clipnorm == 1.0
    if name == "sgd":
        assert opt.nesterov and opt.momentum == 0.9


def test_multiclass_hinge_at_chance_is_c_minus_1():
    """Recipe D12: scores ~0 give loss C - 1 for the multiclass SVM."""
    loss = MulticlassHinge()
    assert float(loss(np.array([3, 1]), np.zeros((2, 10), np.float32))) == pytest.approx(9.0)
    assert float(loss(np.array([0]), np.array([[5.0, 0.0, 0.0]], np.float32))) == 0.0
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, MulticlassHinge)


def test_sparse_mse():
    value = float(SparseMeanSquaredError()(np.array([0]), np.array([[0.0, 1.0]], np.float32)))
    assert value == pytest.approx(1.0)


def test_dropconnect_drops_weights_with_inverted_scaling():
    """Recipe C11 (DropConnect): weights dropped in training, identity scaling at inference."""
    from kerasguide.layers import DropConnectDense

    layer = DropConnectDense(200, rate=0.5, seed=0, use_bias=False, kernel_initializer="ones")
    x = np.ones((1, 100), np.float32)
    np.testing.assert_allclose(np.asarray(layer(x, training=False)), 100.0)
    trained = np.asarray(layer(x, training=True))
    assert trained.mean() == pytest.approx(100.0, rel=0.05)  # inverted scaling keeps the mean
    assert trained.std() > 5  # but individual units see different weights
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert again.rate == 0.5
    with pytest.raises(ValueError, match="Received: rate=1.0"):
        DropConnectDense(3, rate=1.0)


def test_dropconnect_from_config():
    from kerasguide.layers import DropConnectDense

    model = build_model(_cfg(dropconnect=0.3, hidden=[8]), (5,), 3)
    assert any(isinstance(layer, DropConnectDense) for layer in model.layers)


def _layers(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def test_dropout_from_the_config_follows_each_hidden_block():
    """Recipe C11: `model.dropout` puts a Dropout of that rate after every hidden layer (not the output)."""
    model = build_model(_cfg(dropout=0.3, hidden=[16, 8]), (5,), 3)
    drops = _layers(model, keras.layers.Dropout)
    assert [d.rate for d in drops] == [0.3, 0.3]
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[-2:] == ["Dropout", "Dense"]  # the last hidden block's dropout, then the output
    x = np.ones((64, 5), np.float32)
    assert np.allclose(model(x, training=False), model(x, training=False))
    assert not np.allclose(model(x, training=True), model(x, training=False))  # active in training only
    assert _layers(build_model(_cfg(dropout=0.0, hidden=[16, 8]), (5,), 3), keras.layers.Dropout) == []
    # a CNN drops out in its dense layers only, not after its convolutions
    cnn = build_model(_cfg(kind="cnn", filters=[4], hidden=[8], dropout=0.25), (64,), 10, image_shape=(8, 8, 1))
    assert [d.rate for d in _layers(cnn, keras.layers.Dropout)] == [0.25]


def test_cnn_strides_and_pooling_from_the_config():
    # 2-D: 8x8 -> conv stride 2 -> 4x4 -> pool 2 -> 2x2 -> conv stride 2 -> 1x1 (too small to pool)
    cfg = _cfg(kind="cnn", filters=[4, 8], strides=2, pool=2, hidden=[])
    model = build_model(cfg, (64,), 10, image_shape=(8, 8, 1))
    convs = _layers(model, keras.layers.Conv2D)
    assert [c.strides for c in convs] == [(2, 2), (2, 2)]
    pools = _layers(model, keras.layers.MaxPooling2D)
    assert [p.pool_size for p in pools] == [(2, 2)]
    assert pools[0].output.shape[1:3] == (2, 2) and convs[1].output.shape[1:3] == (1, 1)
    # pool = 0: no pooling at all; stride 1 keeps the size ("same" padding)
    flat = build_model(_cfg(kind="cnn", filters=[4, 8], strides=1, pool=0, hidden=[]), (64,), 10,
                       image_shape=(8, 8, 1))
    assert _layers(flat, keras.layers.MaxPooling2D) == []
    assert [c.output.shape[1:3] for c in _layers(flat, keras.layers.Conv2D)] == [(8, 8), (8, 8)]
    # 1-D: 40 -> conv stride 2 -> 20 -> pool 4 -> 5
    seq = build_model(_cfg(kind="cnn", filters=[4], kernel_size=3, strides=2, pool=4, hidden=[]), (40,), 10)
    (conv,) = _layers(seq, keras.layers.Conv1D)
    (pool,) = _layers(seq, keras.layers.MaxPooling1D)
    assert conv.strides == (2,) and conv.output.shape[1] == 20
    assert pool.pool_size == (4,) and pool.output.shape[1] == 5
    assert seq(np.zeros((2, 40), np.float32)).shape == (2, 10)


def test_global_clipnorm_from_the_config_clips_the_update():
    """`optimizer.global_clipnorm` reaches the Keras optimizer: one step never moves the weights further."""
    from kerasguide.config import loads_config

    cfg = loads_config("[optimizer]\nname = 'sgd'\nmomentum = 0.0\nnesterov = false\nglobal_clipnorm = 0.5\n")
    opt = make_optimizer(cfg.optimizer, 1.0)
    assert opt.global_clipnorm == 0.5 and opt.clipnorm is None
    weights = [keras.Variable(np.zeros(3, np.float32)), keras.Variable(np.zeros(4, np.float32))]
    grads = [np.full(3, 10.0, np.float32), np.full(4, -10.0, np.float32)]  # global norm ~26.5
    opt.apply_gradients(zip(grads, weights, strict=True))
    moved = np.sqrt(sum(float(np.sum(np.asarray(w) ** 2)) for w in weights))
    assert moved == pytest.approx(0.5, rel=1e-5)
    assert make_optimizer(RunConfig().optimizer, 1.0).global_clipnorm is None
