"""The command line: help, exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kerasguide.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "kerasguide.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_every_subcommand_has_a_handler():
    """The parser (`kerasguide.cli_args`, TensorFlow-free) and the handlers (`kerasguide.cli.COMMANDS`) agree."""
    from kerasguide.cli import COMMANDS

    assert sorted(COMMANDS) == _subcommands()


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in ("run", "config", "board", "gui"):
        assert name in out
    assert "Exit codes" in out


@pytest.mark.parametrize("command", _subcommands())
def test_each_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: kerasguide " + command in capsys.readouterr().out


def test_no_command_is_bad_input(capsys):
    assert main([]) == 2


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "kerasguide" in capsys.readouterr().out


def test_help_does_not_import_tensorflow():
    code = "import sys\nfrom kerasguide.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\nprint('TF' if 'tensorflow' in sys.modules else 'NOTF')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip().endswith("NOTF")


@pytest.mark.parametrize(
    "content, needle",
    [
        ("[train]\nepochz = 3\n", "unknown key `train.epochz`"),
        ("[train]\nepochs = -3\n", "train.epochs"),
        ("[train]\nepochs = 'ten'\n", "`train.epochs` = 'ten'"),
        ("[data\n", "not valid TOML"),
        ('[data]\nsource = "npz:/no/such.npz"\n', "does not exist"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path, content, needle):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    out = _cli("run", str(path), "--out", str(tmp_path / "runs"))
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("kerasguide: error")]
    assert len(lines) == 1 and needle in lines[0]
    assert "Traceback" not in out.stderr


def test_missing_config_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "no such config file or preset" in capsys.readouterr().err


def test_config_prints_resolved_toml(capsys):
    assert main(["config", "digits"]) == 0
    out = capsys.readouterr().out
    assert "[train]" in out and "batch_size" in out


def test_default_config_is_the_digits_preset(capsys):
    """No CONFIG means the bundled digits recipe (LR range test, one-cycle), as `make demo` promises."""
    assert main(["config"]) == 0
    default = capsys.readouterr().out
    assert main(["config", "digits"]) == 0
    assert default == capsys.readouterr().out
    assert 'learning_rate = "auto"' in default


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_bad_epochs_override_is_one_line(epochs, capsys):
    assert main(["run", "--epochs", epochs, "--out", "/nonexistent/never-created"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--epochs must be >= 1. Received: {epochs}" in err


def test_config_schema_is_json(capsys):
    assert main(["config", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "data" in schema["properties"]


def test_presets_and_runs(capsys, tmp_path):
    assert main(["presets"]) == 0
    assert "digits" in capsys.readouterr().out
    assert main(["runs", str(tmp_path)]) == 0
    assert "no runs" in capsys.readouterr().out


def test_board_bad_path(tmp_path, capsys):
    assert main(["board", str(tmp_path / "nope")]) == 2


def test_run_exit_0_and_where_to_look(tmp_path):
    config = tmp_path / "t.toml"
    config.write_text('name = "t"\nchecks = false\n[model]\nhidden = [16]\n[train]\nepochs = 1\n')
    out = _cli("run", str(config), "--out", str(tmp_path / "runs"), "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "run directory:" in out.stdout and "kerasguide board" in out.stdout
    assert "Traceback" not in out.stderr


def test_board_serves_tensorboard_on_loopback(tmp_path):
    """`kerasguide board RUN_DIR` binds 127.0.0.1 on a free port and prints the URL."""
    import re
    import signal
    import urllib.request

    (tmp_path / "tb").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kerasguide.cli", "board", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line + proc.stderr.read()[-2000:] if proc.poll() is not None else line
        with urllib.request.urlopen(match.group(0), timeout=10) as response:
            assert "TensorBoard" in response.read().decode("utf-8", "replace")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    # the TensorBoard child went with it: nothing listens on that port any more
    import socket

    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", int(match.group(1)))) != 0


def test_gui_starts_the_app_in_its_own_process_and_passes_its_exit_code(tmp_path, capfd, monkeypatch):
    # The core never imports Qt (import-linter): `kerasguide gui` runs `python -m kerasguide_gui.app`.
    import subprocess

    import kerasguide.cli as cli

    started = []
    real = subprocess.run
    monkeypatch.setattr(cli.subprocess, "run", lambda command, **kw: started.append(command) or real(command, **kw))
    assert main(["gui", str(tmp_path / "missing.toml")]) == 2
    assert "no such config file or preset" in capfd.readouterr().err
    assert started and started[0][1:3] == ["-m", "kerasguide_gui.app"]


def test_python_dash_m_kerasguide_is_the_cli():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "kerasguide", "recipes", "D12"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "D12" in out.stdout, out.stderr
    bad = subprocess.run([sys.executable, "-m", "kerasguide", "recipes", "Z9"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
