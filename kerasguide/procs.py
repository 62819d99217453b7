"""Processes: which one a pid names (its start time), whether it is alive, and children that die with their parent.

No TensorFlow and no other kerasguide module here: the locks, the search's status and `kerasguide board` use it.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

__all__ = ["process_start", "pid_alive", "same_process", "die_with_parent", "hostname"]


def hostname() -> str:
    return socket.gethostname()


def process_start(pid: int) -> str | None:
    """When process `pid` started, in clock ticks since boot (Linux's /proc/PID/stat field 22); None elsewhere.

    With the pid it names one process for good: a pid the system reused has another start.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()  # after the command's name, which may hold spaces
    if fields and fields[0] == "Z":  # a zombie has ended; only its exit status waits to be read
        return None
    return fields[19]


def pid_alive(pid: object) -> bool:
    """Whether a process `pid` exists on this host (a zombie does not count on Linux)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:  # another user's process: alive
        pass
    except (OSError, ValueError, OverflowError):
        return False
    if Path("/proc/self/stat").exists():
        return process_start(pid) is not None
    return True


def same_process(pid: object, start: str | None, host: str | None = None) -> bool:
    """Whether `pid` on `host` (None: this one) is still the process that started at `start` (None: unknown).

    Another host's process cannot be seen from here: False.
    """
    if host is not None and host != hostname():
        return False
    if not pid_alive(pid):
        return False
    if start is None:
        return True
    now = process_start(pid)  # type: ignore[arg-type]
    return now is None or now == start


def die_with_parent() -> None:
    """`preexec_fn` of a child: SIGKILL it when its parent dies (Linux's PR_SET_PDEATHSIG); nothing elsewhere.

    A parent killed hard (SIGKILL, OOM) cannot stop its children; left running, a TensorBoard or a
    trial's worker would go on serving or training for nobody. (The signal follows the thread that
    started the child: start children from the main thread.)
    """
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
