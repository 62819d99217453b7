"""Using the result: `kerasguide predict` (npz, csv, image folders) and `kerasguide export` (keras, SavedModel,
TFLite) with the saved preprocessing applied or built in, and a search's best model kept in its `best/`."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from sklearn.datasets import load_digits

import kerasguide
import kerasguide.inference
from kerasguide.cli import main
from kerasguide.config import RunConfig, SearchConfig
from kerasguide.data import Preprocessor
from kerasguide.inference import load_predictor
from tests.conftest import run_cli

CLASSES = ("left", "right", "top")


def _tiny(name: str, **data) -> RunConfig:
    """A digits config that trains in a second or two."""
    cfg = RunConfig()
    cfg.name = name
    cfg.model.hidden = [16]
    cfg.model.dropout = 0.0
    cfg.train.epochs = 1
    cfg.train.batch_size = 128
    cfg.optimizer.learning_rate = 1e-2
    cfg.checks.enabled = False
    cfg.monitor.enabled = False
    for key, value in data.items():
        setattr(cfg.data, key, value)
    return cfg


def _run(cfg: RunConfig, out: Path) -> Path:
    result = kerasguide.run(cfg, out=out, verbose=0)
    assert result.status == "completed", result.error
    return result.path


@pytest.fixture(scope="module")
def raw() -> np.ndarray:
    """Raw digits (0..16), as the digits source gives them before preprocessing."""
    return load_digits().data[:300].astype(np.float32)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    return _run(_tiny("standardized"), tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def whiten_run(tmp_path_factory) -> Path:
    return _run(_tiny("whitened", preprocess="whiten", pca_k=24), tmp_path_factory.mktemp("runs"))


def _write_images(root: Path, per_class: int, seed: int) -> Path:
    """Three classes of 8x8 grayscale PNGs: a bright left half, right half or top half, over noise."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 80, (8, 8)).astype(np.uint8)
            if c == 0:
                image[:, :4] += 170
            elif c == 1:
                image[:, 4:] += 170
            else:
                image[:4] += 170
            Image.fromarray(image).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    folder = _write_images(tmp_path_factory.mktemp("images") / "shapes", per_class=8, seed=0)
    return _run(_tiny("images", source=f"images:{folder}", image_size=(8, 8), color_mode="grayscale"),
                tmp_path_factory.mktemp("runs"))


class _Lines(logging.Handler):
    """The kerasguide logger's lines (it does not propagate: caplog does not see them)."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def log_lines():
    handler = _Lines()
    logger = logging.getLogger("kerasguide")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    return list(reader.fieldnames), rows


def _probabilities(rows, names) -> np.ndarray:
    return np.array([[float(row[f"p_{n}"]) for n in names] for row in rows])


def _by_hand(run: Path, x: np.ndarray) -> np.ndarray:
    """The run's best checkpoint on `x` after its saved preprocessing, each step done here."""
    (checkpoint,) = (run / "checkpoints").glob("best-*.keras")
    pre = Preprocessor.load(run / "preprocess.npz")
    return keras.models.load_model(checkpoint).predict(pre.transform(x), verbose=0)


# ------------------------------------------------------------------ predict
def test_predict_npz_applies_the_saved_preprocessing(digits_run, raw, tmp_path, capsys, log_lines):
    np.savez(tmp_path / "new.npz", x=raw, y=np.zeros(len(raw)))
    out = tmp_path / "p.csv"
    code = main(["predict", str(digits_run), str(tmp_path / "new.npz"), "--out", str(out), "--batch-size", "64"])
    assert code == 0
    assert capsys.readouterr().out.strip() == f"300 predictions written to {out}"
    assert any("array x," in line and "300 examples of shape (64,)" in line for line in log_lines)
    header, rows = _read(out)
    assert header == ["id", "predicted", *[f"p_{c}" for c in range(10)]]
    assert [int(r["id"]) for r in rows] == list(range(300))
    expected = _by_hand(digits_run, raw)
    got = _probabilities(rows, range(10))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert [int(r["predicted"]) for r in rows] == list(np.argmax(expected, axis=1))
    # The planted bug, raw inputs straight into the model, gives other probabilities.
    model = load_predictor(digits_run).model
    assert not np.allclose(model.predict(raw, verbose=0), got, atol=1e-3)
    # Without --out: predictions-<input>.csv in the run directory. Without x: x_test, else the only array.
    np.savez(tmp_path / "test.npz", x_test=raw[:5], y_test=np.zeros(5))
    np.savez(tmp_path / "one.npz", features=raw[:7])
    assert main(["predict", str(digits_run), str(tmp_path / "test.npz")]) == 0
    assert len(_read(digits_run / "predictions-test.csv")[1]) == 5
    assert main(["predict", str(digits_run), str(tmp_path / "one.npz"), "--out", str(tmp_path / "one.csv")]) == 0
    assert len(_read(tmp_path / "one.csv")[1]) == 7
    assert any("array x_test" in line for line in log_lines) and any("array features" in line for line in log_lines)


def test_predict_csv_drops_the_label_column(digits_run, raw, tmp_path, log_lines):
    path = tmp_path / "new.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"f{i}" for i in range(64)), "label"])
        writer.writerows([*map(float, row), 3] for row in raw[:70])
    assert main(["predict", str(digits_run), str(path), "--out", str(tmp_path / "p.csv"), "--batch-size", "32"]) == 0
    assert any("64 feature columns, label column 'label' dropped" in line for line in log_lines)
    _, rows = _read(tmp_path / "p.csv")
    assert [int(r["id"]) for r in rows] == list(range(70))
    np.testing.assert_allclose(_probabilities(rows, range(10)), _by_hand(digits_run, raw[:70]), atol=1e-6)


def test_predict_image_folder_reads_like_training(image_run, tmp_path, log_lines):
    folder = _write_images(tmp_path / "new", per_class=3, seed=5)
    (folder / "top" / "deeper").mkdir()
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(folder / "top" / "deeper" / "x.png")
    out = tmp_path / "p.csv"
    assert main(["predict", str(image_run), str(folder), "--out", str(out), "--batch-size", "4"]) == 0
    assert any("10 images, read at 8x8 grayscale" in line for line in log_lines)
    header, rows = _read(out)
    # The class names come from the run (run.json's data summary), the ids are the files.
    assert header == ["id", "predicted", *(f"p_{c}" for c in CLASSES)]
    paths = [r["id"] for r in rows]
    assert len(paths) == 10 and any(p.endswith("top/deeper/x.png") for p in paths)
    # The same files read another way (PIL, 0..1), through the run's Predictor: the same probabilities.
    pixels = np.stack([np.asarray(Image.open(p), np.float32)[..., None] / 255.0 for p in paths])
    predictor = load_predictor(image_run)
    expected = _by_hand(image_run, pixels)
    np.testing.assert_allclose(_probabilities(rows, CLASSES), expected, atol=1e-6)
    assert [r["predicted"] for r in rows] == [CLASSES[i] for i in np.argmax(expected, axis=1)]
    # Planted bug: pixels not divided by 255 (or the preprocessing left out) predict otherwise.
    assert not np.allclose(predictor.predict(pixels * 255.0), expected, atol=1e-3)
    assert not np.allclose(predictor.model.predict(pixels, verbose=0), expected, atol=1e-3)


def test_a_shape_mismatch_is_one_line_and_exit_2(digits_run, raw, tmp_path):
    np.savez(tmp_path / "short.npz", x=raw[:, :63])
    out = run_cli("predict", str(digits_run), str(tmp_path / "short.npz"), "--out", str(tmp_path / "p.csv"))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "(63,)" in lines[0] and "(64,)" in lines[0], out.stderr
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("case", ["csv_columns", "image_folder", "no_run", "no_checkpoint", "bad_npz", "empty"])
def test_bad_input_is_one_line_exit_2(case, digits_run, raw, tmp_path, capsys):
    run, given = str(digits_run), tmp_path / "in.npz"
    needle = {"csv_columns": "(10,)", "image_folder": "(height, width, channels)", "no_run": "no such run directory",
              "no_checkpoint": "no best checkpoint", "bad_npz": "cannot read this npz", "empty": "no examples"}[case]
    if case == "csv_columns":
        given = tmp_path / "in.csv"
        given.write_text(",".join(f"f{i}" for i in range(10)) + "\n" + ",".join("1" * 10) + "\n")
    elif case == "image_folder":
        given = _write_images(tmp_path / "images", per_class=1, seed=0)
    elif case == "no_run":
        run = str(tmp_path / "nothing")
        np.savez(given, x=raw)
    elif case == "no_checkpoint":
        (tmp_path / "run").mkdir()
        run = str(tmp_path / "run")
        np.savez(given, x=raw)
    elif case == "bad_npz":
        given.write_bytes(b"not a zip")
    else:
        np.savez(given, x=raw[:0])
    assert main(["predict", run, str(given), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # an input read says what it holds first ("array x, ...")
    assert err[-1].startswith("kerasguide: error: ") and needle in err[-1], err
    assert not any(line.startswith("kerasguide: error") for line in err[:-1]) and "Traceback" not in str(err), err
    assert not (tmp_path / "p.csv").exists()


def test_several_inputs_take_an_npz_with_the_input_names(tmp_path, capsys):
    # A model with two named inputs and no preprocessing (a python: source of several inputs saves none).
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    out = keras.layers.Dense(4, activation="softmax")(keras.layers.Concatenate()([a, b]))
    model = keras.Model({"a": a, "b": b}, out)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    model.save(tmp_path / "run" / "checkpoints" / "best-epoch=001-val_accuracy=0.5000.keras")
    xa, xb = np.random.default_rng(0).normal(size=(9, 3)), np.random.default_rng(1).normal(size=(9, 2))
    np.savez(tmp_path / "in.npz", a=xa, b=xb)
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "in.npz"), "--out", str(tmp_path / "p.csv")]) == 0
    _, rows = _read(tmp_path / "p.csv")
    expected = model.predict({"a": xa, "b": xb}, verbose=0)
    np.testing.assert_allclose(_probabilities(rows, range(4)), expected, atol=1e-6)
    np.savez(tmp_path / "wrong.npz", a=xa, c=xb)
    capsys.readouterr()  # the first command's lines
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "wrong.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # what the npz holds, then the one error line
    assert err[-1].startswith("kerasguide: error: ") and "the inputs a, b" in err[-1] and "missing b" in err[-1], err
    assert "Traceback" not in str(err)


@pytest.mark.parametrize("case", ["regression", "two_targets", "binary", "binary_named", "scores"])
def test_the_columns_follow_the_task(case, tmp_path):
    width, activation, data = {
        "regression": (1, None, {"task": "regression"}),
        "two_targets": (2, None, {"task": "regression"}),
        "binary": (1, "sigmoid", {"task": "binary"}),
        "binary_named": (1, "sigmoid", {"task": "binary", "class_names": ["cat", "dog"]}),
        "scores": (3, None, {"task": "classification"}),  # a hinge-trained model's scores
    }[case]
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(width, activation=activation,
                                                   kernel_initializer=keras.initializers.RandomNormal(seed=1),
                                                   bias_initializer="zeros")(inputs))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    model.save(run / "checkpoints" / "last.keras")
    (run / "run.json").write_text(json.dumps({"data": data}))
    x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    assert main(["predict", str(run), str(tmp_path / "x.npz"), "--out", str(tmp_path / "p.csv")]) == 0
    header, rows = _read(tmp_path / "p.csv")
    expected = model.predict(x, verbose=0)
    columns = {"regression": ["prediction"], "two_targets": ["prediction_0", "prediction_1"],
               "binary": ["predicted", "p_1"], "binary_named": ["predicted", "p_dog"],
               "scores": ["predicted", "score_0", "score_1", "score_2"]}[case]
    assert header == ["id", *columns]
    values = [c for c in columns if c != "predicted"]
    np.testing.assert_allclose([[float(r[c]) for c in values] for r in rows], expected, atol=1e-6)
    if case.startswith("binary"):
        names = ["cat", "dog"] if case == "binary_named" else ["0", "1"]
        assert [r["predicted"] for r in rows] == [names[int(p >= 0.5)] for p in expected[:, 0]]
        assert len({r["predicted"] for r in rows}) == 2  # both sides of the threshold were seen
    if case == "scores":
        assert [int(r["predicted"]) for r in rows] == list(np.argmax(expected, axis=1))


# ------------------------------------------------------------------ export
def _tflite_predict(path: Path, x: np.ndarray) -> np.ndarray:
    interpreter = tf.lite.Interpreter(model_path=str(path))
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], x.astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _exported_predict(fmt: str, path: Path, x: np.ndarray) -> np.ndarray:
    if fmt == "keras":
        return keras.models.load_model(path).predict(x, verbose=0)
    if fmt == "savedmodel":
        loaded = tf.saved_model.load(str(path))  # held: its variables die with it
        return loaded.serve(tf.constant(x, tf.float32)).numpy()
    return _tflite_predict(path, x)


@pytest.mark.parametrize("fmt", ["keras", "savedmodel", "tflite"])
def test_export_takes_raw_inputs_like_predict(fmt, digits_run, raw, tmp_path, capsys):
    target = tmp_path / {"keras": "m.keras", "savedmodel": "saved", "tflite": "m.tflite"}[fmt]
    assert main(["export", str(digits_run), "--format", fmt, "--out", str(target)]) == 0
    out = capsys.readouterr().out
    assert f"{fmt} model written to {target}" in out
    assert "input signature: raw_inputs: float32 (None, 64) (raw inputs: its standardize preprocessing" in out
    np.savez(tmp_path / "x.npz", x=raw)
    assert main(["predict", str(digits_run), str(tmp_path / "x.npz"), "--out", str(tmp_path / "p.csv")]) == 0
    predicted = _probabilities(_read(tmp_path / "p.csv")[1], range(10))
    # The preprocessing is inside: raw digits in, predict's probabilities out (without it they differ by far more).
    np.testing.assert_allclose(_exported_predict(fmt, target, raw), predicted, atol=1e-5)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.mark.parametrize("which", ["whiten", "images"])
def test_export_builds_in_a_projection_and_image_statistics(which, whiten_run, image_run, raw, tmp_path):
    if which == "whiten":
        run, x = whiten_run, raw
    else:
        run, x = image_run, np.random.default_rng(0).uniform(0, 1, (20, 8, 8, 1)).astype(np.float32)
    result = kerasguide.export_model(run, "keras", tmp_path / "m.keras")
    expected = _by_hand(run, x)
    np.testing.assert_allclose(_exported_predict("keras", result.path, x), expected, atol=1e-5)
    assert result.signature == f"raw_inputs: float32 (None, {', '.join(map(str, x.shape[1:]))})"


@keras.saving.register_keras_serializable(package="kerasguide_tests")
class SingularValues(keras.layers.Layer):
    """An op TFLite's built-in kernels do not have (tf.linalg.svd): a model the tflite format cannot take."""

    def call(self, x):
        return tf.linalg.svd(tf.reshape(x, (-1, 8, 8)), compute_uv=False)


def test_a_format_the_model_cannot_take_is_one_line_and_leaves_nothing(tmp_path, capsys):
    inputs = keras.Input((64,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(SingularValues()(inputs)))
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    model.save(tmp_path / "run" / "checkpoints" / "last.keras")
    target = tmp_path / "out" / "m.tflite"
    target.parent.mkdir()
    assert main(["export", str(tmp_path / "run"), "--format", "tflite", "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "as tflite" in err[0] and "'tf.Svd' op is neither a custom op nor a flex op" in err[0]
    assert "loc(" not in err[0]
    assert list(target.parent.iterdir()) == []
    # A SavedModel takes it (TensorFlow has the op).
    assert main(["export", str(tmp_path / "run"), "--format", "savedmodel", "--out", str(tmp_path / "saved")]) == 0


def test_a_savedmodel_failure_leaves_the_old_export(digits_run, tmp_path, monkeypatch, capsys):
    target = tmp_path / "saved"
    assert main(["export", str(digits_run), "--format", "savedmodel", "--out", str(target)]) == 0
    before = sorted(p.name for p in target.iterdir())

    def broken(self, filepath, *args, **kwargs):
        Path(filepath).mkdir()
        (Path(filepath) / "half.pb").write_bytes(b"half")
        raise ValueError("cannot trace this model\nsecond line")

    monkeypatch.setattr(keras.Model, "export", broken)
    assert main(["export", str(digits_run), "--format", "savedmodel", "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("as savedmodel: cannot trace this model")
    assert sorted(p.name for p in target.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["saved"]


# ------------------------------------------------------------------ a search's best model
def test_a_search_keeps_its_best_model_for_predict_and_export(raw, tmp_path, capsys):
    from kerasguide.search import tune

    cfg = _tiny("search")
    cfg.search = SearchConfig(algorithm="random", workers=0, stages=[{"epochs": 1, "trials": 3}], widen_on_border=False)
    result = tune(cfg, out=tmp_path)
    assert result.status == "completed"
    state = json.loads((result.path / "search.json").read_text())
    best = state["best"]
    assert {k: state["best_model"][k] for k in ("stage", "trial_id", "checkpoint", "dir")} == {
        "stage": best["stage"], "trial_id": best["trial_id"], "checkpoint": best["checkpoint"], "dir": "best"}
    trial = result.path / best["run_dir"]
    copied = result.path / "best" / "checkpoints" / best["checkpoint"]
    assert copied.read_bytes() == (trial / "checkpoints" / best["checkpoint"]).read_bytes()
    for name in ("preprocess.npz", "config.toml", "run.json"):
        assert (result.path / "best" / name).read_bytes() == (trial / name).read_bytes()
    assert result.best_model == result.path / "best"
    assert "`best/`" in (result.path / "search.md").read_text()
    # The scores differ between trials: predict on the search directory is its best trial's.
    scores = [t["score"] for t in state["stages"][0]["trials"]]
    assert len(set(scores)) > 1
    np.savez(tmp_path / "x.npz", x=raw[:50])
    assert main(["predict", str(result.path), str(tmp_path / "x.npz"), "--out", str(tmp_path / "p.csv")]) == 0
    got = _probabilities(_read(tmp_path / "p.csv")[1], range(10))
    np.testing.assert_allclose(got, _by_hand(trial, raw[:50]), atol=1e-6)
    assert main(["export", str(result.path), "--out", str(tmp_path / "m.keras")]) == 0
    # Between the two renames that replace best/, the search directory stands for the trial being copied.
    shutil.rmtree(result.path / "best")
    assert kerasguide.inference.resolve_run_dir(result.path) == trial.resolve()
    np.testing.assert_allclose(_exported_predict("keras", tmp_path / "m.keras", raw[:50]), got, atol=1e-5)
    capsys.readouterr()


def _fake_trial(root: Path, name: str, content: bytes) -> str:
    run = root / "trials" / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best-epoch=001-val_accuracy=0.5000.keras").write_bytes(content)
    (run / "checkpoints" / "last.keras").write_bytes(content + b"-last")
    (run / "run.json").write_text(json.dumps({"name": name}))
    return f"trials/{name}"


def test_best_is_copied_when_it_changes_and_replaced_whole(tmp_path):
    from kerasguide.progress import Progress
    from kerasguide.search.runner import _Search

    checkpoint = "best-epoch=001-val_accuracy=0.5000.keras"
    trials = []
    state = {"stages": [{"index": 1, "trials": trials}], "notes": [], "warnings": [], "findings": []}
    search = _Search(RunConfig(), tmp_path, state, Progress(False), None)

    def finish(trial_id, score, content):
        trials.append({"stage": 1, "trial_id": trial_id, "score": score, "epochs": 1, "checkpoint": checkpoint,
                       "run_dir": _fake_trial(tmp_path, trial_id, content), "metric": "val_accuracy"})
        search.update_best_model()
        return (tmp_path / "best" / "checkpoints" / checkpoint).read_bytes()

    assert finish("00", 0.5, b"A") == b"A"
    assert finish("01", 0.7, b"B") == b"B"  # a better trial replaces it
    (tmp_path / "best" / "marker").write_text("kept while the best stays")
    assert finish("02", 0.6, b"C") == b"B" and (tmp_path / "best" / "marker").exists()  # a worse one does not
    assert finish("03", 0.9, b"D") == b"D"
    # Replaced whole: nothing of the old folder, nothing temporary beside it.
    assert sorted(p.name for p in (tmp_path / "best").rglob("*")) == sorted(["checkpoints", checkpoint, "last.keras",
                                                                              "run.json"])
    assert (tmp_path / "best" / "checkpoints" / "last.keras").read_bytes() == b"D-last"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "search.json", "trials"]
    assert json.loads((tmp_path / "search.json").read_text())["best_model"]["trial_id"] == "03"
