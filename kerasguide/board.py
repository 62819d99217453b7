"""TensorBoard as a child process bound to 127.0.0.1 on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = ["TensorBoardServer", "start_tensorboard", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class TensorBoardServer:
    """A running TensorBoard child. Never bound to 0.0.0.0."""

    def __init__(self, process: subprocess.Popen, port: int, logdir: Path):
        self.process = process
        self.port = port
        self.logdir = logdir
        self.url = f"http://127.0.0.1:{port}/"

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self) -> int:
        return self.process.wait()

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def tensorboard_command(logdir: str | Path, port: int) -> list[str]:
    """The argv of a TensorBoard child (also used by the desktop app)."""
    return [
        sys.executable, "-m", "tensorboard.main",
        "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port),
        "--reload_interval", "5",
    ]


def start_tensorboard(logdir: str | Path, port: int = 0, timeout: float = 60.0) -> TensorBoardServer:
    """Start TensorBoard on `logdir` and return once it answers HTTP."""
    port = port or free_port()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(
        tensorboard_command(logdir, port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    server = TensorBoardServer(process, port, Path(logdir))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"TensorBoard exited: {err[-1] if err else 'no message'}")
        try:
            with urllib.request.urlopen(server.url, timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"TensorBoard did not answer on {server.url} within {timeout:.0f} s")
