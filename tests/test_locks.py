"""kerasguide.locks: a directory lock naming its owner; a live owner refuses, a dead one is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from kerasguide import locks
from kerasguide.errors import ConfigError
from kerasguide.procs import hostname, process_start
from tests.conftest import wait_for

HOLD = textwrap.dedent("""
    import sys, time
    from kerasguide import locks
    lock = locks.acquire(sys.argv[1], "search")
    print("held", flush=True)
    time.sleep(120)
""")


def _holder(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_acquire_records_the_owner_and_release_removes_it(tmp_path):
    with locks.acquire(tmp_path, "run") as lock:
        record = json.loads((tmp_path / locks.LOCK_FILE).read_text())
        assert record["pid"] == os.getpid() and record["host"] == hostname() and record["what"] == "run"
        assert record["start"] == process_start(os.getpid())
        assert lock.taken_over is None
        assert locks.owner(tmp_path)["pid"] == os.getpid()
        with pytest.raises(locks.Busy, match="this process"):  # not reentrant: a second holder is a bug
            locks.acquire(tmp_path, "run")
    assert not (tmp_path / locks.LOCK_FILE).exists()
    assert locks.owner(tmp_path) is None
    locks.acquire(tmp_path, "run").release()  # free again


def test_a_live_owner_in_another_process_refuses_in_one_line(tmp_path):
    proc = _holder(tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(locks.Busy) as info:
            locks.acquire(tmp_path, "search", wait=0.3, hint="kerasguide search-status shows it")
        assert 0.3 <= time.monotonic() - started < 3
        message = str(info.value)
        assert isinstance(info.value, ConfigError)  # the CLI prints it as one line, exit 2
        assert "\n" not in message and str(tmp_path) in message
        assert f"pid {proc.pid} on {hostname()}" in message and message.endswith("search-status shows it")
        assert info.value.owner["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()
    # SIGKILLed: the kernel dropped its flock; the record it left says whose lock is taken over.
    assert json.loads((tmp_path / locks.LOCK_FILE).read_text())["pid"] == proc.pid
    assert locks.owner(tmp_path) is None
    with locks.acquire(tmp_path, "search") as lock:
        assert lock.taken_over["pid"] == proc.pid


def test_a_waiter_gets_the_lock_when_its_owner_ends(tmp_path):
    proc = _holder(tmp_path)
    try:
        killer = subprocess.Popen([sys.executable, "-c", f"import os,time; time.sleep(0.5); "
                                           f"os.kill({proc.pid}, {int(signal.SIGTERM)})"])
        with locks.acquire(tmp_path, "search", wait=20) as lock:
            assert lock.record["pid"] == os.getpid()
        killer.wait()
    finally:
        proc.kill()
        proc.wait()


def _stale(tmp_path, **record):
    (tmp_path / locks.LOCK_FILE).write_text(json.dumps(dict({"host": hostname(), "what": "search"}, **record)))


def test_a_record_without_flock_decides_by_pid_host_and_start(tmp_path, monkeypatch):
    # A file system without flock (or a lock file copied from elsewhere): the record alone decides.
    monkeypatch.setattr(locks, "_flock", lambda fd: None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _stale(tmp_path, pid=dead.pid, start="1")
    with locks.acquire(tmp_path, "search") as lock:  # pid gone: taken over
        assert lock.taken_over["pid"] == dead.pid
    _stale(tmp_path, pid=os.getppid(), start="0")  # alive, but another process started at another time: a reused pid
    locks.acquire(tmp_path, "search").release()
    _stale(tmp_path, pid=os.getppid(), start=process_start(os.getppid()))  # alive and the same process
    with pytest.raises(locks.Busy, match=f"pid {os.getppid()}"):
        locks.acquire(tmp_path, "search")
    _stale(tmp_path, pid=1, start="5", host="another-host")  # another host: never taken over
    with pytest.raises(locks.Busy, match=r"another-host\); if that process is gone, delete"):
        locks.acquire(tmp_path, "search")
    assert locks.owner(tmp_path)["alive"] is None


def test_the_lock_file_keeps_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with locks.acquire(tmp_path, "run"):
            assert (tmp_path / locks.LOCK_FILE).stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


# ------------------------------------------------------------------ a search directory's lock, two real tunes
def _search_state(out):
    for path in out.glob("*-search"):
        try:
            return path, json.loads((path / "search.json").read_text())
        except (OSError, ValueError):
            pass
    return None, None


@pytest.mark.timeout(300)
def test_two_tunes_of_one_config_started_together_one_refuses_and_a_killed_owner_is_taken_over(tmp_path):
    from kerasguide.config import save_config
    from tests.conftest import tiny_digits

    save_config(tiny_digits("lock", epochs=2, monitors=False, algorithm="random", workers=0, widen_on_border=False,
                            stages=[{"epochs": 2, "trials": 2}]), tmp_path / "s.toml")
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "kerasguide.cli", "tune", str(tmp_path / "s.toml"), "--out", str(out)]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        # The one that took the search: its lock names it; held still (SIGSTOP) once a trial has begun.
        path, _ = wait_for(lambda: (lambda p, s: (p, s) if s and s.get("stages") else None)(*_search_state(out)))
        winner = json.loads((path / locks.LOCK_FILE).read_text())["pid"]
        os.kill(winner, signal.SIGSTOP)
        (loser,) = [p for p in procs if p.pid != winner]
        _, err = loser.communicate(timeout=120)
        assert loser.returncode == 2, err[-2000:]
        lines = err.strip().splitlines()
        assert len(lines) == 1 and f"pid {winner} on {hostname()}" in lines[0] and str(path) in lines[0], err
        assert len(list(out.glob("*-search"))) == 1
        # Its owner SIGKILLed: the lock it left is taken over by the resume.
        os.kill(winner, signal.SIGKILL)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    assert json.loads((path / locks.LOCK_FILE).read_text())["pid"] == winner
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=200)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"left by pid {winner}" in resumed.stderr and "taken over" in resumed.stderr
    state = json.loads((path / "search.json").read_text())
    assert state["status"] == "completed" and len(list(out.glob("*-search"))) == 1
    assert not (path / locks.LOCK_FILE).exists() and not (out / ".search-choice.lock").exists()


def test_a_lock_kept_by_a_forked_child_names_the_ended_owner(tmp_path):
    """A holder that forked (no exec) and died: its child keeps the flock; the message says so."""
    script = textwrap.dedent("""
        import os, sys, time
        from kerasguide import locks
        lock = locks.acquire(sys.argv[1], "run")
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        print(child, flush=True)
        os._exit(0)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    proc.wait()
    try:
        with pytest.raises(locks.Busy, match=f"pid {proc.pid} on .*ended; a process it forked still holds"):
            locks.acquire(tmp_path, "run")
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_folder_that_cannot_hold_a_lock_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot lock it for the run"):
        locks.acquire(tmp_path / "missing", "run")
