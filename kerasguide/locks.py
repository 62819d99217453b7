"""A lock per directory (a search, a run) that names its owner: pid, host, process start, command.

```python
from kerasguide import locks

with locks.acquire(search_dir, "search") as lock:   # raises locks.Busy (one line) when a live process holds it
    ...                                               # lock.taken_over: the dead owner's record, if any
```

The lock is `fcntl.flock` on `DIR/.lock`, whose body is the owner's JSON record. The kernel drops a
flock when its process dies however it dies (SIGKILL included), so a killed owner's lock is free at
once; its body is still there and says who held it (`Lock.taken_over`). Where flock is missing
(Windows, some network file systems) the body decides: a lock whose pid is not alive on this host,
or is alive with another process start time (a reused pid), is taken over. A lock held on another
host is never taken over (nothing here can tell whether that process lives); `Busy` says to delete
the file if it does not. The file is removed on release, so a `.lock` left behind means a killed owner.

Open descriptors are not inherited by the programs a lock holder starts (Python opens them
close-on-exec), but a child made by `os.fork` without exec shares the lock until it exits.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from kerasguide.errors import ConfigError
from kerasguide.procs import hostname, process_start, same_process

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the body alone decides
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "Busy", "Lock", "acquire", "owner"]

LOCK_FILE = ".lock"


class Busy(ConfigError):
    """The directory is locked by a live process (or one on another host). One line, exit 2 from the CLI.

    `owner` is the holder's record (`pid`, `host`, `start`, `what`, `since`, `command`), `{}` if unreadable.
    """

    def __init__(self, directory: Path, what: str, owner: dict[str, Any], lock_file: Path, hint: str = ""):
        self.directory, self.what, self.owner, self.lock_file = Path(directory), what, owner, lock_file
        pid, host = owner.get("pid", "?"), owner.get("host", "?")
        who = f"pid {pid} on {host}"
        if owner.get("pid") == os.getpid() and host == hostname():
            who = f"this process, {who}"
        since = f", since {owner['since']}" if owner.get("since") else ""
        doing = f", {owner['what']}" if owner.get("what") and owner.get("what") != what else ""
        remote = (f"; if that process is gone, delete {lock_file}"
                  if owner.get("host") not in (None, hostname()) else "")
        super().__init__(f"{directory}: this {what} is already running ({who}{doing}{since}){remote}"
                         + (f"; {hint}" if hint else ""))


class Lock:
    """A held lock; `release()` (or the end of its `with` block) frees it. `taken_over`: the dead owner's record."""

    def __init__(self, fd: int | None, path: Path, record: dict[str, Any], taken_over: dict[str, Any] | None):
        self.fd, self.path, self.record, self.taken_over = fd, path, record, taken_over

    @property
    def held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            # Removed while still locked: a waiter that opened this file finds it unlinked and opens the new one.
            if _read_path(self.path) == self.record:
                self.path.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)  # drops the flock

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Lock({str(self.path)!r}, held={self.held})"


def acquire(directory: str | os.PathLike[str], what: str, *, wait: float = 0.0, name: str = LOCK_FILE,
            hint: str = "") -> Lock:
    """Lock `directory` (which must exist) for `what` ("search", "run", ...), waiting up to `wait` seconds.

    Raises:
        ConfigError: the lock file cannot be created (no such folder, no permission).
        Busy: (a ConfigError) a live process on this host, or any process on another host, holds it; its message names
            the directory, the owner's pid and host (and ends with `hint`, if given).
    """
    directory = Path(directory)
    path = directory / name
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask decides its mode, as for every file
        except OSError as error:  # e.g. another user's folder, read-only: one line, not a traceback
            raise ConfigError(f"{directory}: cannot lock it for the {what} ({error.strerror or error})") from None
        try:
            locked = _flock(fd)
            if locked and not _same_file(fd, path):  # its owner released it (unlinked) as we opened it
                os.close(fd)
                continue
            previous = _read_fd(fd, settle=locked is False)
            if locked is False or (previous and _live(previous)):
                os.close(fd)
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                if locked is False and previous and not _live(previous):
                    # Its recorded owner has ended, yet the flock is held: a child it forked (without exec) holds it.
                    previous = dict(previous, what=f"ended; a process it forked still holds {path}")
                raise Busy(directory, what, previous or {}, path, hint)
            record = {"pid": os.getpid(), "host": hostname(), "start": process_start(os.getpid()), "what": what,
                      "since": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                      "command": " ".join(sys.argv)[:300]}
            data = (json.dumps(record) + "\n").encode("utf-8")
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            return Lock(fd, path, record, previous or None)
        except BaseException:
            try:
                os.close(fd)
            except OSError:
                pass
            raise


def owner(directory: str | os.PathLike[str], name: str = LOCK_FILE) -> dict[str, Any] | None:
    """The record of whoever holds `directory`'s lock, or None when it is free (no lock, or a dead owner's).

    Reads only (takes no lock). A lock of another host's process is returned as held (`alive`: None, unknown).
    """
    record = _read_path(Path(directory) / name)
    if not record:
        return None
    if record.get("host") not in (None, hostname()):
        return dict(record, alive=None)
    return dict(record, alive=True) if _live(record) else None


def _flock(fd: int) -> bool | None:
    """True: locked; False: another holds it; None: no flock here (the body decides)."""
    if fcntl is None:  # pragma: no cover
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return False
        return None  # ENOLCK, EOPNOTSUPP, ...: a file system without locks


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _live(record: dict[str, Any]) -> bool:
    """Whether the record's process may still hold the lock: alive on this host with its start, or on another host."""
    if record.get("host") not in (None, hostname()):
        return True  # cannot be seen from here: never taken over
    return same_process(record.get("pid"), record.get("start"))


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _read_fd(fd: int, settle: bool) -> dict[str, Any] | None:
    # A new holder writes its record just after taking the flock: a contender may read it empty, so retry a little.
    for _ in range(20 if settle else 1):
        try:
            record = _parse(os.pread(fd, 65536, 0))
        except OSError:
            record = None
        if record is not None or not settle:
            return record
        time.sleep(0.05)
    return None


def _read_path(path: Path) -> dict[str, Any] | None:
    try:
        return _parse(path.read_bytes()[:65536])
    except OSError:
        return None
