"""Bad input (issue 15): exit 2 with one line of at most 300 characters naming the key or path, never a
traceback, and nothing already written lost."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import textwrap

import pytest

from kerasguide.config import ConfigError, RunConfig, load_config, loads_config
from kerasguide.presets import preset_names, preset_path
from tests.conftest import cli_in_process, run_cli

TINY = textwrap.dedent("""
    name = "tiny"
    checks = false
    [model]
    hidden = [8]
    [train]
    epochs = 1
    batch_size = 256
    [monitor]
    enabled = false
    [search]
    algorithm = "random"
    workers = 0
    trials = 1
""")


def _one_bad_line(result, *words: str, logged: bool = False) -> str:
    """The command's only output on stderr: one line, exit 2, no traceback, naming `words`. `logged`: a command
    that got as far as its run directory logs its progress first; the error is then its last line."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    lines = lines[-1:] if logged else lines
    assert len(lines) == 1, lines[:5]
    assert len(lines[0]) <= 300, len(lines[0])
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.fixture
def tiny_toml(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


# ------------------------------------------------------------------ --out
OUT_COMMANDS = [["run"], ["check"], ["lr-find"], ["tune"], ["ensemble", "--members", "1"]]


@pytest.mark.parametrize("command", OUT_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("where", ["file", "under_file", "deep_under_file"])
def test_out_that_is_a_file_or_under_one_is_one_line(capsys, tmp_path, tiny_toml, command, where):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    out = {"file": afile, "under_file": afile / "sub", "deep_under_file": afile / "a" / "b"}[where]
    result = cli_in_process(capsys, *command, str(tiny_toml), "--out", str(out))
    _one_bad_line(result, "--out", str(out))
    assert afile.read_text() == "keep me"  # nothing already written is lost


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into a 0500 folder")
@pytest.mark.parametrize("command", OUT_COMMANDS, ids=lambda c: c[0])
def test_out_not_writable_is_one_line(capsys, tmp_path, tiny_toml, command):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for out in (locked, locked / "sub"):
            _one_bad_line(cli_in_process(capsys, *command, str(tiny_toml), "--out", str(out)), "--out")
    finally:
        locked.chmod(0o700)


def test_out_under_dev_null_is_one_line_even_as_root(capsys, tiny_toml):
    # What works under root too: a folder cannot be made under a device file.
    _one_bad_line(cli_in_process(capsys, "check", str(tiny_toml), "--out", "/dev/null/runs"), "--out", "/dev/null")


def test_board_port_out_of_range_or_busy_is_one_line(capsys, tmp_path):
    _one_bad_line(cli_in_process(capsys, "board", str(tmp_path), "--port", "99999"), "--port", "99999")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _one_bad_line(cli_in_process(capsys, "board", str(tmp_path), "--port", str(port)), str(port))


# ------------------------------------------------------------------ deep, huge
@pytest.mark.parametrize("command", [["config"], ["run"], ["check"], ["tune"], ["lr-find"]], ids=lambda c: c[0])
def test_deep_nesting_is_refused_before_parsing(capsys, tmp_path, command):
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 600 + "]" * 600 + "\n")  # 1.2 kB: a RecursionError before
    _one_bad_line(cli_in_process(capsys, *command, str(path), "--out", str(tmp_path / "runs"))
                  if command != ["config"] else cli_in_process(capsys, "config", str(path)), "nested")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_deep_nesting_in_strings_and_comments_is_not_nesting():
    cfg = loads_config('description = "' + "[" * 100 + '"\n# ' + "{" * 100 + "\nname = 'a'\n")
    assert cfg.description == "[" * 100


def test_deep_python_data_is_refused_without_recursing():
    from kerasguide.config import config_from_dict

    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ConfigError, match="nested more than"):
        config_from_dict({"model": {"hp": {"a": deep}}})


def test_huge_config_of_unknown_keys_is_one_short_line(capsys, tmp_path):
    path = tmp_path / "huge.toml"
    path.write_text("".join(f"key_{i} = {i}\n" for i in range(100_000)))  # 1.5 MB, 100 000 errors
    line = _one_bad_line(cli_in_process(capsys, "config", str(path)), "unknown keys `key_0`", "more")
    assert "key_99999" not in line


def test_huge_name_is_not_echoed_whole(capsys, tmp_path):
    path = tmp_path / "name.toml"
    path.write_text('name = "' + "n" * 10_000_000 + '"\n')
    _one_bad_line(cli_in_process(capsys, "config", str(path)), "`name`", "...")


def test_a_long_path_is_cut_too(capsys, tmp_path):
    deep = tmp_path / ("d" * 200) / ("e" * 200)
    deep.mkdir(parents=True)
    (deep / "c.toml").write_text("nmae = 1\n")
    _one_bad_line(cli_in_process(capsys, "config", str(deep / "c.toml")), "nmae")


# ------------------------------------------------------------------ accepted though wrong
@pytest.mark.parametrize("text, key", [
    ('[train]\nmonitor_metric = "val_acc"\n', "train.monitor_metric"),
    ('[search]\nobjective = "val_acuracy"\n', "search.objective"),
    ('[data]\nsource = "diabetes"\n[train]\nmonitor_metric = "val_accuracy_x"\n', "train.monitor_metric"),
    ('[train]\nmonitor_metric = "val_mae"\n', "train.monitor_metric"),  # digits: classes, no mae metric
    ("[model]\nbias_init = nan\n", "model.bias_init"),
    ("[model]\nbias_init = 1e308\n", "model.bias_init"),
    ("[model]\nl2 = inf\n", "model.l2"),
    ("[schedule]\nfactor = inf\n", "schedule.factor"),
    ("[lr_find]\nend_lr = inf\n", "lr_find.end_lr"),
    ("[optimizer]\nlearning_rate = nan\n", "optimizer.learning_rate"),
    ("[train]\nepochs = 1e23\n", "train.epochs"),
    ("[train]\nepochs = 100000000000000\n", "train.epochs"),
    ("[train]\nseed = 9223372036854775807\n", "train.seed"),
    ('[train]\nepochs = "3"\n', "train.epochs"),
    ("[train]\nepochs = true\n", "train.epochs"),
    ("[train]\nepochs = 3.0\n", "train.epochs"),
    ('[model]\nbatch_norm = "yes"\n', "model.batch_norm"),
    ("[model]\nbatch_norm = 1\n", "model.batch_norm"),
    ('[model]\nhidden = [16, "32"]\n', "model.hidden"),
    ('[data]\nimage_size = [32, "32"]\n', "data.image_size"),
    ("[optimizer]\nlearning_rate = true\n", "optimizer.learning_rate"),
    ("[search.space.\"optimizer.learning_rate\"]\nlow = 1e-5\nhigh = inf\n", "search.space"),
])
def test_wrong_values_are_refused_naming_the_key(capsys, tmp_path, text, key):
    path = tmp_path / "c.toml"
    path.write_text(text)
    _one_bad_line(cli_in_process(capsys, "config", str(path)), key)


def test_monitor_metric_typo_lists_the_metrics_the_run_has():
    with pytest.raises(ConfigError) as info:
        loads_config('[train]\nmetrics = ["accuracy", "top3_accuracy"]\nmonitor_metric = "val_acc"\n')
    message = str(info.value)
    for name in ("loss", "val_loss", "accuracy", "val_accuracy", "val_top3_accuracy"):
        assert name in message


@pytest.mark.parametrize("text", [
    '[train]\nmonitor_metric = "val_loss"\n',
    '[train]\nmonitor_metric = "accuracy"\n',
    '[train]\nmetrics = ["accuracy", "top3_accuracy"]\n[search]\nobjective = "val_top3_accuracy"\n',
    '[data]\nsource = "diabetes"\n',  # the classification default stands for the regression's val_loss
    '[data]\ntask = "regression"\n[train]\nmetrics = ["mae"]\nmonitor_metric = "val_mae"\n',
    '[data]\nsource = "npz:x.npz"\n[train]\nmonitor_metric = "val_rmse"\n',  # the data may make it a regression
    '[model]\nkind = "python:b.py:build"\n[train]\nmonitor_metric = "val_auc"\n',  # its own compile, its metrics
])
def test_metric_names_a_run_logs_are_accepted(text):
    loads_config(text)


def test_an_int_still_fills_a_float_and_the_presets_load():
    cfg = loads_config("[optimizer]\nlearning_rate = 1\n[schedule]\nfactor = 2\n[model]\nbias_init = -1\n")
    assert cfg.optimizer.learning_rate == 1.0 and isinstance(cfg.optimizer.learning_rate, float)
    assert isinstance(cfg.schedule.factor, float)
    assert loads_config("[data]\nimage_size = [28, 28]\n").data.image_size == (28, 28)
    assert loads_config("checks = false\n").checks.enabled is False
    for name in preset_names():
        load_config(preset_path(name))
    RunConfig.model_validate(RunConfig().model_dump(mode="json"))  # the app's round trip


# ------------------------------------------------------------------ python: builders
WRONG_SHAPE = textwrap.dedent("""
    import keras

    def build(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
""")

EXITS = textwrap.dedent("""
    import sys

    def build(input_shape, num_classes):
        sys.exit(7)
""")

GOOD = textwrap.dedent("""
    import keras

    def build(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        small = keras.initializers.RandomNormal(stddev=1e-3, seed=0)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax",
                                                      kernel_initializer=small)(inputs))
""")


def _builder_config(tmp_path, source: str, extra: str = "") -> tuple:
    builder = tmp_path / "mine.py"
    builder.write_text(source)
    path = tmp_path / "b.toml"
    path.write_text(TINY.replace("[model]\n", f'[model]\nkind = "python:{builder}:build"\n') + extra)
    return path, builder


def test_builder_with_the_wrong_output_shape_is_one_line(capsys, tmp_path):
    path, builder = _builder_config(tmp_path, WRONG_SHAPE)
    words = ("build()", str(builder), "(None, 3)", "(None, 10)")
    _one_bad_line(cli_in_process(capsys, "check", str(path), "--out", str(tmp_path / "runs")), *words)
    # The user's code that failed is recorded, as `run` records it: the file and its sha256, the error.
    (checked,) = (tmp_path / "runs").iterdir()
    record = json.loads((checked / "run.json").read_text())
    assert (record["kind"], record["status"]) == ("check", "failed") and "(None, 3)" in record["error"]
    assert record["user_code"]["sha256"] == hashlib.sha256(builder.read_bytes()).hexdigest()
    _one_bad_line(cli_in_process(capsys, "lr-find", str(path), "--out", str(tmp_path / "lr")), *words)
    (found,) = (tmp_path / "lr").iterdir()
    assert json.loads((found / "run.json").read_text())["user_code"]["path"] == str(builder)
    # `run` logs its run directory and data first (a child process: its log lines go to its own stderr)
    _one_bad_line(run_cli("run", str(path), "--out", str(tmp_path / "runs")), *words, logged=True)


def test_builder_calling_sys_exit_is_its_error_and_is_recorded(capsys, tmp_path):
    path, builder = _builder_config(tmp_path, EXITS)
    _one_bad_line(run_cli("run", str(path), "--out", str(tmp_path / "runs")), "sys.exit(7)", "build()", logged=True)
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed"  # not left `running`
    assert record["user_code"]["sha256"] == hashlib.sha256(builder.read_bytes()).hexdigest()
    assert record["user_code"]["path"] == str(builder)
    _one_bad_line(cli_in_process(capsys, "check", str(path), "--out", str(tmp_path / "runs")), "sys.exit(7)")


def test_builder_exiting_at_import_is_its_error(capsys, tmp_path):
    path, _ = _builder_config(tmp_path, "import sys\nsys.exit(3)\n")
    _one_bad_line(cli_in_process(capsys, "check", str(path), "--out", str(tmp_path / "runs")), "sys.exit(3)")


def test_user_code_with_its_hash_for_check_and_lr_find(capsys, tmp_path):
    skip = '\n[checks]\nenabled = true\nskip = ["initialization", "initial_loss", "regularization", "overfit", "gradients"]\n'
    path, builder = _builder_config(tmp_path, GOOD, skip.replace("checks = false\n", ""))
    path.write_text(path.read_text().replace("checks = false\n", ""))
    digest = hashlib.sha256(builder.read_bytes()).hexdigest()
    for command, extra in (("check", []), ("lr-find", ["--steps", "5"])):
        out = tmp_path / command
        result = cli_in_process(capsys, command, str(path), "--out", str(out), *extra)
        assert result.returncode in (0, 1), result.stderr[-2000:]
        (run_dir,) = out.iterdir()
        user_code = json.loads((run_dir / "run.json").read_text())["user_code"]
        assert user_code == {"path": str(builder), "function": "build", "hp": {}, "sha256": digest}, command


def test_data_source_calling_sys_exit_is_its_error(capsys, tmp_path):
    source = tmp_path / "data.py"
    source.write_text("import sys\ndef load(seed):\n    sys.exit(5)\n")
    path = tmp_path / "d.toml"
    path.write_text(TINY + f'[data]\nsource = "python:{source}:load"\n')
    _one_bad_line(cli_in_process(capsys, "check", str(path), "--out", str(tmp_path / "runs")), "data.source",
                  "sys.exit(5)")


def test_fix_out_under_a_file_is_one_line(capsys, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    (run_dir / "config.toml").write_text(TINY)
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    _one_bad_line(cli_in_process(capsys, "fix", str(run_dir), "--out", str(afile / "x")), "--out", str(afile))
    assert afile.read_text() == "keep me"


DATA = textwrap.dedent("""
    import numpy as np

    def load(seed):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(200, 8)).astype("float32")
        y = (x[:, 0] > 0).astype("int64")
        return {"train": (x[:150], y[:150]), "validation": (x[150:], y[150:])}
""")


def test_data_code_is_recorded_with_its_hash_also_when_it_fails(capsys, tmp_path):
    source = tmp_path / "data.py"
    source.write_text(DATA)
    path = tmp_path / "d.toml"
    path.write_text(TINY + f'[data]\nsource = "python:{source}:load"\n')
    result = cli_in_process(capsys, "lr-find", str(path), "--out", str(tmp_path / "lr"), "--steps", "5")
    assert result.returncode in (0, 1), result.stderr[-2000:]
    (run_dir,) = (tmp_path / "lr").iterdir()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert json.loads((run_dir / "run.json").read_text())["data_code"] == {
        "path": str(source), "function": "load", "sha256": digest}
    source.write_text("import sys\ndef load(seed):\n    sys.exit(5)\n")
    _one_bad_line(run_cli("run", str(path), "--out", str(tmp_path / "runs")), "sys.exit(5)", logged=True)
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed" and record["data_code"]["sha256"] == hashlib.sha256(
        source.read_bytes()).hexdigest()
