"""Streamed data (kerasguide.streams): image folders from disk, a python: source's tf.data datasets, test splits,
augmentation on the training split only, final metrics from the best checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kerasguide.config import ConfigError, DataConfig, RunConfig, config_from_dict
from kerasguide.data import load_dataset
from kerasguide.streams import read_images
from kerasguide.training import make_augmenter, split_batches
from tests.conftest import cli_in_process

CLASSES = ("left", "right", "top")


def write_images(root: Path, per_class: int = 12, size: int = 12, seed: int = 0) -> Path:
    """Three classes of small RGB PNGs: a bright left half, right half or top half, over noise."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 80, (size, size, 3)).astype(np.uint8)
            if c == 0:
                image[:, : size // 2] += 170
            elif c == 1:
                image[:, size // 2:] += 170
            else:
                image[: size // 2] += 170
            Image.fromarray(image).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    return write_images(tmp_path_factory.mktemp("images") / "shapes")


def image_config(folder: Path, **data) -> DataConfig:
    return DataConfig(source=f"images:{folder}", image_size=(12, 12), **data)


def test_image_folder_is_streamed_and_split_by_file(image_folder):
    ds = load_dataset(image_config(image_folder, test_fraction=0.25, sample=10), seed=3)
    assert ds.streamed and ds.class_names == list(CLASSES) and ds.num_classes == 3
    # 36 images: 0.25 of them test, about 0.25 validation (of the 27 left, as scikit-learn rounds it).
    assert ds.sizes["test"] == 9 and ds.sizes["validation"] in (8, 9) and sum(ds.sizes.values()) == 36
    # Only the bounded sample is in memory; the preprocessing was fitted on it, and it is training data.
    assert len(ds.x_train) == 10 and ds.preprocessor.fitted_n == 10
    assert ds.summary()["streamed"] and ds.summary()["sample"] == 10
    # The splits are disjoint sets of files, and stratified: every class in each of them.
    seen = {}
    for name, stream in ds.streams.items():
        pairs = list(stream.as_numpy_iterator())
        assert sorted({int(label) for _, label in pairs}) == [0, 1, 2], name
        seen[name] = {image.tobytes() for image, _ in pairs}
        assert len(seen[name]) == ds.sizes[name]
    assert not (seen["train"] & seen["validation"] or seen["train"] & seen["test"] or seen["validation"] & seen["test"])
    assert len(set(ds.fingerprints().values())) == 3


def test_stream_batches_apply_the_preprocessing_fitted_on_train(image_folder):
    ds = load_dataset(image_config(image_folder), seed=0)
    batches = list(split_batches(ds, "validation", 4).as_numpy_iterator())
    x = np.concatenate([b[0] for b in batches])
    paths = sorted(str(p) for p in image_folder.rglob("*.png"))
    raw = read_images(np.array(paths), (12, 12), "rgb")
    expected = ds.preprocessor.transform(raw)
    # Each streamed validation image is one of the folder's images with the training statistics applied.
    for row in x[:5]:
        assert np.min(np.abs(expected - row).reshape(len(expected), -1).max(axis=1)) < 1e-4
    assert abs(float(x.mean())) < 0.5  # standardized, not 0..1 pixels


def test_training_stream_reshuffles_each_epoch(image_folder):
    ds = load_dataset(image_config(image_folder), seed=0)
    train = split_batches(ds, "train", 100, shuffle=True, seed=0)
    first, second = (next(iter(train))[1].numpy() for _ in range(2))
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)


def test_an_unreadable_image_is_one_line_exit_2(tmp_path, capsys):
    folder = write_images(tmp_path / "broken", per_class=3)
    (folder / "left" / "bad.png").write_text("not an image")
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\nsource = "images:{folder}"\nimage_size = [12, 12]\n[model]\nkind = "cnn"\n')
    proc = cli_in_process(capsys, "check", str(config), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 2, proc.stderr
    assert "bad.png" in proc.stderr and "is not a readable image" in proc.stderr
    assert "Traceback" not in proc.stderr


def tf_source(tmp_path: Path, body: str) -> str:
    (tmp_path / "my_data.py").write_text(
        "import numpy as np\nimport tensorflow as tf\nfrom sklearn.datasets import load_digits\n"
        "x, y = load_digits(return_X_y=True)\nx = (x / 16.0).astype('float32')\n" + body)
    return f"python:{tmp_path / 'my_data.py'}:load"


def test_python_source_returning_tf_data_runs_end_to_end(tmp_path, capsys):
    source = tf_source(tmp_path, (
        "def load(seed):\n"
        "    train = tf.data.Dataset.from_tensor_slices((x[:1200], y[:1200])).shuffle(1200, seed=seed).batch(50)\n"
        "    return {'train': train, 'validation': tf.data.Dataset.from_tensor_slices((x[1200:1500], "
        "y[1200:1500])).batch(100),\n"
        "            'test': tf.data.Dataset.from_tensor_slices((x[1500:], y[1500:])).batch(100)}\n"))
    config = tmp_path / "c.toml"
    config.write_text(f'name = "tfdata"\n[data]\nsource = "{source}"\nsample = 300\n[train]\nepochs = 3\n'
                      '[model]\nhidden = [32]\n')
    proc = cli_in_process(capsys, "run", str(config), "--out", str(tmp_path / "runs"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(next((tmp_path / "runs").glob("*/run.json")).read_text())
    data = record["data"]
    assert data["streamed"] and data["batches"] == {"train": 24, "validation": 3, "test": 3}
    assert (data["train"], data["validation"], data["test"]) == (1200, 300, 297)
    assert data["preprocess_fitted_on"] == 300  # a bounded sample of the training stream
    assert record["final_metrics"]["test_accuracy"] > 0.6  # it learned: chance is 0.1


@pytest.mark.parametrize(("body", "message"), [
    ("def load():\n    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat(), "
     "tf.data.Dataset.from_tensor_slices((x, y)).batch(8)\n", "endless dataset"),
    ("def load():\n    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8), (x, y)\n",
     "return every split as a tf.data.Dataset"),
    ("def load():\n    return {'train': tf.data.Dataset.from_tensor_slices(x).batch(8), "
     "'validation': tf.data.Dataset.from_tensor_slices(x).batch(8)}\n", r"\(inputs, targets\) pairs"),
    ("def load():\n    return {'training': tf.data.Dataset.from_tensor_slices((x, y)).batch(8)}\n", "must return"),
])
def test_a_dataset_function_returning_the_wrong_thing_is_one_line(tmp_path, body, message):
    config = DataConfig(source=tf_source(tmp_path, body))
    with pytest.raises(ConfigError, match=message) as caught:
        load_dataset(config)
    assert "\n" not in str(caught.value)


def test_test_fraction_for_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["a,b,label"] + [f"{rng.normal():.4f},{rng.normal():.4f},{i % 2}" for i in range(100)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(DataConfig(source=f"csv:{tmp_path / 'd.csv'}", test_fraction=0.2, validation_fraction=0.2))
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (60, 20, 20)
    with pytest.raises(ValueError, match="leaves no training data"):
        DataConfig(validation_fraction=0.5, test_fraction=0.5)


def asymmetric_digits_config(**augment) -> RunConfig:
    return config_from_dict({"data": {"source": "digits", "augment": augment}, "train": {"seed": 1}})


def test_augmentation_changes_training_batches_only():
    config = asymmetric_digits_config(flip="horizontal")
    ds = load_dataset(config.data)
    augment = make_augmenter(config, ds)
    assert augment.active == {"flip": "horizontal"}
    plain = next(iter(split_batches(ds, "train", 256)))[0].numpy()
    flipped = next(iter(split_batches(ds, "train", 256, augment=augment)))[0].numpy()
    images = ds.x_train[:256].reshape(-1, 8, 8)
    # Flat digits are flipped as 8x8 images: some rows mirrored, the others as they were.
    mirrored = flipped.reshape(-1, 8, 8)
    as_is = np.isclose(mirrored, images, atol=1e-5).all(axis=(1, 2))
    mirrored_rows = np.isclose(mirrored, ds.preprocessor.transform(
        ds.raw_train[:256].reshape(-1, 8, 8)[:, :, ::-1].reshape(-1, 64)).reshape(-1, 8, 8), atol=1e-4).all(axis=(1, 2))
    assert as_is.sum() > 50 and mirrored_rows.sum() > 50 and (as_is | mirrored_rows).all()
    np.testing.assert_allclose(plain, ds.x_train[:256], atol=1e-6)
    # Validation is never augmented.
    np.testing.assert_allclose(next(iter(split_batches(ds, "validation", 64)))[0].numpy(), ds.x_val[:64], atol=1e-6)


def test_image_augmentation_needs_images():
    config = config_from_dict({"data": {"source": "diabetes", "augment": {"rotation": 0.1}}})
    with pytest.raises(ConfigError, match="rotation need images"):
        make_augmenter(config, load_dataset(config.data, task="regression"))


def test_checks_run_without_augmentation_and_the_report_says_what_was_on(tmp_path, monkeypatch):
    import kerasguide
    import kerasguide.spine.stages.checks as checks_stage
    import kerasguide.spine.stages.fit as fit_stage

    seen = {}
    real = checks_stage.run_checks

    def spy(model, data, **kwargs):
        # What the checks are given, batch by batch as they would read it: the split's examples, not augmented.
        seen["x"] = np.array(data.x_train)
        return real(model, data, **kwargs)

    def fit_batches(dataset, split, *args, augment=None, **kwargs):
        seen[split] = augment
        return split_batches(dataset, split, *args, augment=augment, **kwargs)

    monkeypatch.setattr(checks_stage, "run_checks", spy)
    monkeypatch.setattr(fit_stage, "split_batches", fit_batches)
    config = config_from_dict({"data": {"subset": 300, "augment": {"noise": 1.0, "flip": "horizontal"}},
                               "train": {"epochs": 2}, "model": {"hidden": [32]}, "monitor": {"enabled": False}})
    result = kerasguide.run(config, out=tmp_path / "runs", verbose=0)
    assert result.status == "completed", result.error
    ds = load_dataset(config.data)
    np.testing.assert_allclose(seen["x"], ds.x_train, atol=1e-6)
    assert seen["train"].active == {"flip": "horizontal", "noise": 1.0} and seen["validation"] is None
    record = result.run_dir.read_run()
    assert record["data"]["augment"] == {"flip": "horizontal", "noise": 1.0}
    report = (result.run_dir.path / "report.md").read_text()
    assert "| augmentation | flip horizontal, noise 1.0 (training split only" in report


def test_final_metrics_come_from_the_best_checkpoint(tmp_path, capsys):
    # A rate this high makes the last epoch worse than the best one (the precondition is asserted).
    config = tmp_path / "c.toml"
    config.write_text('[data]\nsubset = 300\n[optimizer]\nname = "sgd"\nlearning_rate = 2.0\nmomentum = 0.9\n'
                      '[train]\nepochs = 6\n[checks]\nenabled = false\n[monitor]\nenabled = false\n')
    proc = cli_in_process(capsys, "run", str(config), "--out", str(tmp_path / "runs"), "--quiet")
    run_dir = next((tmp_path / "runs").glob("*"))
    record = json.loads((run_dir / "run.json").read_text())
    assert record["evaluated"]["weights"] == "best", proc.stderr
    best_epoch = record["evaluated"]["epoch"]
    assert best_epoch < record["epochs_done"], "precondition: the best epoch is not the last"
    assert record["final_metrics"]["val_accuracy"] == pytest.approx(record["best"]["value"], abs=1e-4)


def test_every_augmentation_builds_and_changes_images_but_keeps_their_shape(image_folder):
    config = config_from_dict({"data": {"source": f"images:{image_folder}", "image_size": [12, 12], "augment": {
        "flip": "horizontal_and_vertical", "rotation": 0.1, "zoom": 0.2, "translation": 0.1, "contrast": 0.3,
        "noise": 0.1}}})
    ds = load_dataset(config.data)
    augment = make_augmenter(config, ds)
    assert set(augment.active) == {"flip", "rotation", "zoom", "translation", "contrast", "noise"}
    assert [type(layer).__name__ for layer in augment.image.layers] == [
        "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast"]
    x = next(iter(split_batches(ds, "train", 16, augment=augment)))[0].numpy()
    plain = next(iter(split_batches(ds, "train", 16)))[0].numpy()
    assert x.shape == plain.shape == (16, 12, 12, 3) and np.isfinite(x).all()
    assert not np.allclose(np.sort(x.ravel()), np.sort(plain.ravel()), atol=1e-3)


def test_a_data_function_file_that_does_not_exist_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="does not exist") as caught:
        load_dataset(DataConfig(source=f"python:{tmp_path / 'nope.py'}:load"))
    assert "\n" not in str(caught.value)
