"""Data sources, the split, and preprocessing fitted on the training split only (A1-A3)."""

from __future__ import annotations

import numpy as np
import pytest

from kerasguide.config import DataConfig
from kerasguide.data import DataError, Preprocessor, fingerprint, load_dataset, split


def _blobs(n=200, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(size=(n, d)).astype(np.float32) * 2.0 + y[:, None] + 5.0
    return x, y


# ------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("mode", ["center", "standardize"])
def test_center_and_standardize_statistics(mode):
    x, _ = _blobs()
    out = Preprocessor(mode).fit(x).transform(x)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    if mode == "standardize":
        np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-4)


def test_pca_keeps_k_components_ordered():
    x, _ = _blobs(d=8)
    pre = Preprocessor("pca", k=3).fit(x)
    out = pre.transform(x)
    assert out.shape == (len(x), 3)
    variances = out.var(axis=0)
    assert variances[0] >= variances[1] >= variances[2]
    cov = np.cov(out, rowvar=False)
    np.testing.assert_allclose(cov - np.diag(np.diag(cov)), 0.0, atol=1e-3)


def test_whitening_gives_identity_covariance():
    x, _ = _blobs(n=2000, d=5)
    out = Preprocessor("whiten", epsilon=1e-5).fit(x).transform(x)
    np.testing.assert_allclose(np.cov(out, rowvar=False), np.eye(5), atol=1e-2)


def test_larger_epsilon_damps_whitening():
    x, _ = _blobs(n=500, d=5)
    small = Preprocessor("whiten", epsilon=1e-5).fit(x).transform(x).var(axis=0)
    large = Preprocessor("whiten", epsilon=10.0).fit(x).transform(x).var(axis=0)
    assert np.all(large < small)


def test_constant_feature_does_not_explode():
    x = np.zeros((10, 2), np.float32)
    x[:, 0] = np.arange(10)
    pre = Preprocessor("standardize").fit(x)
    out = pre.transform(np.array([[1.0, 1.0]], np.float32))
    assert abs(out[0, 1]) <= 1.0


def test_preprocessor_save_load(tmp_path):
    x, _ = _blobs()
    for mode in Preprocessor.MODES:
        pre = Preprocessor(mode, k=2 if mode in ("pca", "whiten") else None).fit(x)
        pre.save(tmp_path / f"{mode}.npz")
        again = Preprocessor.load(tmp_path / f"{mode}.npz")
        np.testing.assert_array_equal(pre.transform(x), again.transform(x))
        assert again.fitted_on == pre.fitted_on


def test_preprocessor_argument_errors():
    with pytest.raises(ValueError, match="Received: mode='zca'"):
        Preprocessor("zca")
    with pytest.raises(ValueError, match="epsilon"):
        Preprocessor("whiten", epsilon=0)
    with pytest.raises(RuntimeError):
        Preprocessor().transform(np.zeros((1, 2)))


def test_statistics_come_from_the_training_split_only():
    """Recipe A2: the mean/std used are exactly those of x_train, not of all data.

    Planted bug: fit on train+validation. The recomputed statistics then
    differ from the stored ones, and this test fails.
    """
    ds = load_dataset(DataConfig(source="digits", preprocess="standardize"), seed=0)
    pre = ds.preprocessor
    raw_train = ds.raw_train.reshape(len(ds.raw_train), -1)
    np.testing.assert_allclose(pre.mean, raw_train.mean(axis=0), atol=1e-6)
    assert pre.fitted_on == fingerprint(ds.raw_train)
    assert pre.fitted_n == len(ds.x_train)
    # and the leak would be visible:
    leaked = Preprocessor("standardize").fit(np.concatenate([ds.raw_train, ds.raw_val]))
    assert not np.allclose(leaked.mean, pre.mean)
    # the transformed training split is standardized, validation is not exactly
    assert np.abs(ds.x_train.mean(axis=0)).max() < 1e-4
    assert np.abs(ds.x_val.mean(axis=0)).max() > 1e-3


def test_split_is_stratified_and_seeded():
    x, y = _blobs(n=300, classes=3)
    a = split(x, y, 0.2, seed=1)
    b = split(x, y, 0.2, seed=1)
    c = split(x, y, 0.2, seed=2)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    assert np.bincount(a[3]).tolist() == [20, 20, 20]


def test_subset(tmp_path):
    ds = load_dataset(DataConfig(source="digits", subset=50), seed=0)
    assert len(ds.x_train) == 50
    assert ds.preprocessor.fitted_n == 50


# ---------------------------------------------------------------- sources
def test_digits():
    ds = load_dataset(DataConfig(source="digits"), seed=0)
    assert ds.x_train.shape[1:] == (64,)
    assert ds.num_classes == 10
    assert ds.image_shape == (8, 8, 1)
    assert len(ds.x_train) + len(ds.x_val) == 1797
    assert ds.x_train.dtype == np.float32


def test_mnist1d_is_generated_offline():
    ds = load_dataset(DataConfig(source="mnist1d"), seed=0)
    assert ds.x_train.shape[1:] == (40,)
    assert len(ds.x_train) + len(ds.x_val) == 4000
    assert ds.x_test.shape == (1000, 40)


def test_npz_x_y(tmp_path):
    x, y = _blobs()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(DataConfig(source=f"npz:{tmp_path / 'd.npz'}"), seed=0)
    assert ds.num_classes == 3 and len(ds.x_train) == 160 and ds.x_test is None


def test_npz_with_test_split(tmp_path):
    x, y = _blobs()
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:30], y_test=y[:30])
    ds = load_dataset(DataConfig(source=f"npz:{tmp_path / 'd.npz'}"), seed=0)
    assert ds.x_test.shape == (30, 6)


def test_npz_bad_keys(tmp_path):
    np.savez(tmp_path / "d.npz", features=np.zeros((3, 2)))
    with pytest.raises(DataError, match="needs x and y"):
        load_dataset(DataConfig(source=f"npz:{tmp_path / 'd.npz'}"))


def test_npz_mismatched_lengths(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((5, 2)), y=np.zeros(4, int))
    with pytest.raises(DataError, match="5 examples but 4 labels"):
        load_dataset(DataConfig(source=f"npz:{tmp_path / 'd.npz'}"))


def test_missing_file():
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(DataConfig(source="npz:/no/such/file.npz"))


def test_csv_with_named_labels(tmp_path):
    x, y = _blobs(n=90)
    names = np.array(["cat", "dog", "eel"])[y]
    lines = ["f0,f1,species,f2,f3,f4,f5"]
    for row, name in zip(x, names, strict=True):
        values = [f"{v:.4f}" for v in row]
        lines.append(",".join(values[:2] + [name] + values[2:]))
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(DataConfig(source=f"csv:{tmp_path / 'd.csv'}", label_column="species"), seed=0)
    assert ds.x_train.shape[1] == 6
    assert ds.num_classes == 3


def test_csv_missing_label_column(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(DataError, match="label_column = 'label'"):
        load_dataset(DataConfig(source=f"csv:{tmp_path / 'd.csv'}"))


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("circle", "square"):
        (tmp_path / label).mkdir()
        for i in range(6):
            pixels = (rng.random((12, 10, 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    cfg = DataConfig(source=f"images:{tmp_path}", image_size=(8, 8), validation_fraction=0.25)
    ds = load_dataset(cfg, seed=0)
    assert ds.x_train.shape[1:] == (8, 8, 3)
    assert ds.image_shape == (8, 8, 3)
    assert ds.num_classes == 2
    assert len(ds.x_train) + len(ds.x_val) == 12


def test_keras_dataset_from_cache(tmp_path, monkeypatch):
    """The keras.datasets path loads a cached file; no network is touched."""
    import keras

    cache = tmp_path / ".keras" / "datasets"
    cache.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(
        cache / "mnist.npz",
        x_train=(rng.random((60, 28, 28)) * 255).astype(np.uint8),
        y_train=np.arange(60) % 10,
        x_test=(rng.random((20, 28, 28)) * 255).astype(np.uint8),
        y_test=np.arange(20) % 10,
    )
    _offline_keras(monkeypatch, tmp_path)
    # The stand-in file is not the real one: accept its hash as Keras' cache would.
    monkeypatch.setattr(keras.src.utils.file_utils, "validate_file", lambda *a, **k: True)
    ds = load_dataset(DataConfig(source="mnist"), seed=0)
    assert ds.x_train.shape[1:] == (28, 28, 1)
    assert ds.x_test.shape == (20, 28, 28, 1)
    assert ds.num_classes == 10


def _no_network(*args, **kwargs):
    raise OSError("network disabled in tests")


def _offline_keras(monkeypatch, tmp_path):
    import keras

    monkeypatch.setattr(keras.src.backend.config, "_KERAS_DIR", str(tmp_path / ".keras"))
    monkeypatch.setattr(keras.src.utils.file_utils, "urlretrieve", _no_network)


def test_keras_dataset_offline_is_a_clear_error(tmp_path, monkeypatch):
    _offline_keras(monkeypatch, tmp_path)
    with pytest.raises(DataError, match="offline"):
        load_dataset(DataConfig(source="fashion_mnist"))


# ------------------------------------------------------------- regression targets
def _regression(n=200, d=5, seed=0, columns=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32) * 3.0 + 10.0
    w = rng.normal(size=(d, columns))
    y = (x @ w + rng.normal(scale=0.5, size=(n, columns)) + 100.0).astype(np.float32)
    return x, (y[:, 0] if columns == 1 else y)


def test_npz_float_targets_are_a_regression(tmp_path):
    x, y = _regression()
    np.savez(tmp_path / "r.npz", x=x, y=y)
    cfg = DataConfig(source=f"npz:{tmp_path / 'r.npz'}")
    ds = load_dataset(cfg, seed=0)
    assert ds.task == "regression" and ds.num_classes == 0
    assert ds.y_train.dtype == np.float32 and ds.y_train.shape == (160,)
    np.testing.assert_allclose(np.sort(np.concatenate([ds.y_train, ds.y_val])), np.sort(y))  # raw targets
    # The targets' statistics are the training split's (the summary carries them for the diagnosis) ...
    summary = ds.summary()
    assert summary["task"] == "regression" and summary["target_width"] == 1
    assert summary["target_mean"] == pytest.approx(float(ds.y_train.mean()), rel=1e-5)
    assert summary["target_variance"] == pytest.approx(float(ds.y_train.var()), rel=1e-4)
    # ... the inputs' preprocessing was fitted on the training split only (A2) ...
    assert ds.preprocessor.fitted_on == fingerprint(ds.raw_train)
    # ... and the dataset says what it found: `apply_task` makes a run config agree with it.
    assert ds.task == "regression"
    mean, std = ds.target_stats
    assert float(np.ravel(mean)[0]) == pytest.approx(summary["target_mean"], rel=1e-5)


def test_regression_split_is_not_stratified_and_seeded(tmp_path):
    x, y = _regression(n=101)
    a = split(x, y, 0.2, seed=1, stratify=False)
    b = split(x, y, 0.2, seed=1, stratify=False)
    np.testing.assert_array_equal(a[3], b[3])
    assert len(a[3]) == 21
    with pytest.raises(TypeError):  # what stratifying by float targets would do
        split(x, y, 0.2, seed=1)


def test_several_target_columns(tmp_path):
    x, y = _regression(columns=3)
    np.savez(tmp_path / "r.npz", x=x, y=y)
    ds = load_dataset(DataConfig(source=f"npz:{tmp_path / 'r.npz'}"), seed=0)
    assert ds.y_train.shape == (160, 3) and ds.target_mean.shape == (3,)
    assert ds.summary()["target_width"] == 3 and len(ds.summary()["target_std"]) == 3


def test_whole_number_floats_stay_class_ids_unless_the_task_says_regression(tmp_path):
    x, y = _blobs()
    np.savez(tmp_path / "d.npz", x=x, y=y.astype(np.float64))
    assert load_dataset(DataConfig(source=f"npz:{tmp_path / 'd.npz'}")).num_classes == 3
    ds = load_dataset(DataConfig(source=f"npz:{tmp_path / 'd.npz'}", task="regression"))
    assert ds.task == "regression" and ds.y_train.dtype == np.float32
    # The rest of the config may imply the task (train.loss = "mae": kerasguide.config.config_task).
    assert load_dataset(DataConfig(source=f"npz:{tmp_path / 'd.npz'}"), task="regression").num_classes == 0


def test_float_targets_refused_for_an_explicit_classification(tmp_path):
    x, y = _regression()
    np.savez(tmp_path / "r.npz", x=x, y=y)
    with pytest.raises(DataError, match='data.task = "regression"'):
        load_dataset(DataConfig(source=f"npz:{tmp_path / 'r.npz'}", task="classification"))


def _write_csv(path, x, targets, column="price"):
    lines = ["a,b," + column + ",c,d,e"]
    for row, target in zip(x, targets, strict=True):
        values = [f"{v:.4f}" for v in row]
        lines.append(",".join(values[:2] + [str(target)] + values[2:]))
    path.write_text("\n".join(lines) + "\n")


def test_csv_float_target_column(tmp_path):
    x, y = _regression()
    _write_csv(tmp_path / "r.csv", x, [f"{v:.3f}" for v in y])
    ds = load_dataset(DataConfig(source=f"csv:{tmp_path / 'r.csv'}", label_column="price"), seed=0)
    assert ds.task == "regression" and ds.x_train.shape[1] == 5
    # Planted: the old reader took int(float(v)) and truncated 103.7 to 103, a class id.
    assert not np.all(np.mod(ds.y_train, 1) == 0)
    np.testing.assert_allclose(np.sort(np.concatenate([ds.y_train, ds.y_val])), np.sort(np.round(y, 3)), atol=1e-3)


def test_csv_whole_numbers_are_still_classes(tmp_path):
    x, y = _blobs(n=90, d=5)
    _write_csv(tmp_path / "c.csv", x, y, column="label")
    ds = load_dataset(DataConfig(source=f"csv:{tmp_path / 'c.csv'}"), seed=0)
    assert ds.task == "classification" and ds.num_classes == 3 and ds.y_train.dtype == np.int64


def test_diabetes_ships_offline():
    ds = load_dataset(DataConfig(source="diabetes"), seed=0)
    assert ds.task == "regression" and ds.x_train.shape[1:] == (10,)
    assert len(ds.x_train) + len(ds.x_val) == 442
    assert 25 <= ds.y_train.min() and ds.y_train.max() <= 346  # raw targets, not standardized
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-4)  # the inputs are


def test_binary_needs_two_classes(tmp_path):
    x, y = _blobs(classes=2)
    np.savez(tmp_path / "b.npz", x=x, y=y)
    ds = load_dataset(DataConfig(source=f"npz:{tmp_path / 'b.npz'}", task="binary"))
    assert ds.task == "binary" and ds.num_classes == 2
    x, y = _blobs(classes=3)
    np.savez(tmp_path / "t.npz", x=x, y=y)
    with pytest.raises(DataError, match="binary"):
        load_dataset(DataConfig(source=f"npz:{tmp_path / 't.npz'}", task="binary"))
