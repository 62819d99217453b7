"""TensorBoard as a child process bound to 127.0.0.1 on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from kerasguide.errors import ConfigError
from kerasguide.procs import die_with_parent

__all__ = ["BoardError", "TensorBoardServer", "start_tensorboard", "free_port"]


class BoardError(ConfigError, RuntimeError):
    """TensorBoard could not start (a bad or busy port, TensorBoard's own error): one line, exit 2 from the CLI.

    A RuntimeError too, as this module raised before.
    """


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


def run_label(path: Path) -> str:
    """A run directory's name in TensorBoard (`logdir_spec`'s "name:path": no colons or commas, no timestamp)."""
    name = path.name
    head, _, rest = name.partition("-")
    if head.isdigit() and len(head) == 8 and rest:
        name = rest
    return name.replace(":", "_").replace(",", "_")


def logdir_args(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """TensorBoard's logdir arguments: `--logdir PATH` for one run directory or folder of runs,
    `--logdir_spec NAME:RUN,...` for several runs.

    A run directory itself, not its tb/: a run's HParams session is at tb/'s root, and TensorBoard names a
    logdir's own root "." (or "NAME/."), where the HParams plugin looks the metrics up in "./train", which is
    no run; one level up they are "tb" and "tb/train".
    """
    paths = [Path(p) for p in paths] or [Path(".")]
    if len(paths) == 1:
        return ["--logdir", str(paths[0])]
    return ["--logdir_spec", ",".join(f"{run_label(p)}:{p}" for p in paths)]


def tensorboard_command(logdir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], port: int) -> list[str]:
    """The argv of a TensorBoard child (also used by the desktop app): a folder of runs, a run, or several."""
    paths = [logdir] if isinstance(logdir, (str, os.PathLike)) else list(logdir)
    return [
        # -P: the working directory is not put on sys.path, so a `tensorboard/` folder there is not run instead.
        sys.executable, "-P", "-m", "tensorboard.main",
        *logdir_args(paths), "--host", "127.0.0.1", "--port", str(port),
        "--reload_interval", "5",
    ]


def start_tensorboard(logdir: str | os.PathLike[str], port: int = 0, timeout: float = 60.0) -> TensorBoardServer:
    """Start TensorBoard on `logdir` and return once it answers HTTP.

    Raises:
        BoardError: `port` is out of range or in use, or TensorBoard ended or did not answer.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise BoardError(f"--port must be in 0-65535 (0: a free one). Received: {port!r}")
    if port:
        try:  # TensorBoard's own message for a busy port is a multi-line traceback of its own
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", port))
        except OSError as error:
            raise BoardError(f"port {port} on 127.0.0.1 cannot be used ({error.strerror or error}); "
                             "--port 0 picks a free one") from None
    port = port or free_port()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # Its messages go to a file, not a pipe: nobody reads a pipe while it serves, and a full one would block it.
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        tensorboard_command(logdir, port), stdout=subprocess.DEVNULL, stderr=log, env=env,
        stdin=subprocess.DEVNULL,
        # Dies with this process, even SIGKILLed; its data server child ends when TensorBoard does (its stdin closes).
        preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
    )
    server = TensorBoardServer(process, port, Path(logdir))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            err = log.read().decode(errors="replace").strip().splitlines()
            log.close()
            raise BoardError(f"TensorBoard exited (code {process.returncode}): "
                             f"{err[-1][:300] if err else 'no message'}")
        try:
            with urllib.request.urlopen(server.url, timeout=1) as response:
                if response.status == 200:
                    log.close()  # the child keeps its own descriptor
                    return server
        except OSError:
            time.sleep(0.25)
    server.stop()
    log.close()
    raise BoardError(f"TensorBoard did not answer on {server.url} within {timeout:.0f} s")
