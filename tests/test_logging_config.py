"""The library configures no output on import (a NullHandler, TensorFlow's loggers and env left alone); the CLI does."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT, cli_in_process

TINY_RUN = textwrap.dedent("""
    name = "tiny"
    checks = false
    [data]
    sample = 512
    [model]
    hidden = [8]
    [optimizer]
    learning_rate = 0.01
    [train]
    epochs = 1
    batch_size = 256
    [monitor]
    enabled = false
""")

# What a process's logging looks like: printed as JSON by a fresh interpreter after its imports.
_STATE = textwrap.dedent("""
    import json, logging, os
    def state():
        kg, root = logging.getLogger("kerasguide"), logging.getLogger()
        return {"kerasguide": [type(h).__name__ for h in kg.handlers], "propagate": kg.propagate,
                "level": kg.level, "root": [type(h).__name__ for h in root.handlers], "root_level": root.level,
                "tensorflow": logging.getLogger("tensorflow").level, "absl": logging.getLogger("absl").level,
                "env": os.environ.get("TF_CPP_MIN_LOG_LEVEL")}
""")


def _fresh(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # conftest sets it for the suite
    full.update(env)
    return subprocess.run([sys.executable, "-c", _STATE + textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=ROOT, env=full, timeout=300)


def _state(code: str) -> dict:
    proc = _fresh(textwrap.dedent(code) + "\nprint(json.dumps(state()))\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_the_library_configures_no_output():
    # TensorFlow imported alone: what its own import does to logging, which kerasguide must not add to.
    baseline = _state("import tensorflow, keras")
    after = _state("""
        import kerasguide, kerasguide.spine, kerasguide.cli, kerasguide.search.runner, kerasguide.monitors
        import kerasguide.data, kerasguide.inference, kerasguide.ensemble
        kerasguide.run  # the lazy names load their modules too
    """)
    assert after["kerasguide"] == ["NullHandler"], after
    assert after["propagate"] is True and after["level"] == logging.NOTSET, after
    assert after["root"] == baseline["root"] and after["root_level"] == baseline["root_level"], (after, baseline)
    assert after["tensorflow"] == baseline["tensorflow"] and after["absl"] == baseline["absl"], (after, baseline)
    assert after["env"] is None, "importing kerasguide set TF_CPP_MIN_LOG_LEVEL"


def test_a_library_warning_reaches_the_applications_handlers_not_stderr():
    proc = _fresh("""
        import logging, sys
        import kerasguide.spine
        logging.getLogger("kerasguide").warning("unseen")  # NullHandler: no lastResort line on stderr
        logging.basicConfig(stream=sys.stdout, format="app %(name)s %(message)s")
        logging.getLogger("kerasguide").warning("seen")
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "unseen" not in proc.stderr and proc.stdout.strip() == "app kerasguide seen"


def test_set_verbosity_prints_the_cli_lines_for_python_api_users():
    proc = _fresh("""
        import kerasguide
        log = logging.getLogger("kerasguide")
        log.info("before")
        kerasguide.set_verbosity("INFO")
        kerasguide.set_verbosity("INFO")  # twice: still one handler
        log.info("after")
        print(json.dumps(state()))
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.splitlines() == ["kerasguide: after"]
    assert json.loads(proc.stdout)["kerasguide"] == ["NullHandler", "_StderrHandler"]
    assert json.loads(proc.stdout)["env"] is None  # set_verbosity is about kerasguide's lines only


def test_the_cli_configures_its_output_once_per_process(capsys):
    for _ in range(3):
        assert cli_in_process(capsys, "config", "digits").returncode == 0
    log = logging.getLogger("kerasguide")
    assert [type(h).__name__ for h in log.handlers].count("_StderrHandler") == 1
    assert log.level == logging.INFO and log.propagate is False
    log.warning("once")
    assert capsys.readouterr().err == "kerasguide: once\n"  # the stderr of the moment: capsys's here


def test_the_cli_prints_its_lines_and_quiets_tensorflow(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_RUN)
    proc = _fresh(f"""
        import sys
        from kerasguide.cli import main
        code = main(["run", {str(config)!r}, "--out", {str(tmp_path / "runs")!r}])
        print(json.dumps(state()))
        sys.exit(code)
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert sum(line.startswith("kerasguide: training 1 epochs") for line in lines) == 1, proc.stderr[-2000:]
    state = json.loads(proc.stdout.strip().splitlines()[-1])
    assert state["env"] == "3" and state["tensorflow"] == logging.ERROR and state["absl"] == logging.ERROR
    assert state["kerasguide"] == ["NullHandler", "_StderrHandler"] and state["level"] == logging.INFO
