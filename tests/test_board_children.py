"""`kerasguide board`: a bad or busy port is one line and exit 2; SIGKILLed, it leaves no TensorBoard behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kerasguide.board import BoardError, free_port, start_tensorboard
from kerasguide.errors import ConfigError
from kerasguide.procs import pid_alive
from tests.conftest import cli_in_process


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_a_port_out_of_range_is_one_line_and_exit_2(tmp_path, capsys, port):
    done = cli_in_process(capsys, "board", str(tmp_path), "--port", port)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and port in done.stderr
    with pytest.raises(BoardError, match="--port must be in 0-65535"):  # the API too: one line, no traceback
        start_tensorboard(tmp_path, port=int(port))


def test_a_busy_port_is_one_line_and_exit_2(tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = cli_in_process(capsys, "board", str(tmp_path), "--port", str(port))
        with pytest.raises(BoardError, match=f"port {port} on 127.0.0.1 cannot be used"):
            start_tensorboard(tmp_path, port=port)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and str(port) in done.stderr
    with pytest.raises(BoardError) as info:  # still a RuntimeError for older callers
        start_tensorboard(tmp_path, port=70000)
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, ConfigError)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[-1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@pytest.mark.timeout(180)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_sigkill_of_board_takes_tensorboard_and_its_data_server_down(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kerasguide.cli", "board", str(tmp_path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        line = proc.stdout.readline()  # printed once TensorBoard answers
        assert f"http://127.0.0.1:{port}/" in line, proc.stderr.read()[-2000:] if proc.poll() is not None else line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200
        # TensorBoard and, once it has started it, its data server.
        deadline = time.monotonic() + 15
        children = _descendants(proc.pid)
        while len(children) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            children = _descendants(proc.pid)
        assert children
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in children if pid_alive(pid)]
    for pid in left:  # not to leave them for the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"still running after the board's SIGKILL: {left}"


def test_a_tensorboard_folder_in_the_working_directory_is_not_run(tmp_path, monkeypatch):
    """`python -m tensorboard.main` would import a `tensorboard/` package from the working directory first."""
    hostile = tmp_path / "repo"
    (hostile / "tensorboard").mkdir(parents=True)
    (hostile / "tensorboard" / "__init__.py").write_text(f"open({str(tmp_path / 'marker')!r}, 'w').close()\n")
    (hostile / "tensorboard" / "main.py").write_text("")
    monkeypatch.chdir(hostile)
    server = start_tensorboard(tmp_path)
    try:
        assert server.alive()
    finally:
        server.stop()
    assert not (tmp_path / "marker").exists()
