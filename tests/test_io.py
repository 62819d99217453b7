"""The atomic writer's file modes: a replaced file keeps its permissions, a new one gets the umask's (issue 16)."""

from __future__ import annotations

import os
import stat

import pytest

from kerasguide.io import atomic_path, atomic_write_bytes, atomic_write_text


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_077():
    old = os.umask(0o077)  # a private umask: a new file would be 0600
    yield
    os.umask(old)


@pytest.mark.parametrize("mode", [0o644, 0o664, 0o600, 0o444])
def test_replacing_a_file_keeps_its_mode(tmp_path, umask_077, mode):
    """A user's shared 0644 config saved by the app stays 0644, whatever the umask of the process saving it."""
    target = tmp_path / "mine.toml"
    target.write_text("name = 'old'\n")
    target.chmod(mode)
    atomic_write_text(target, "name = 'new'\n")
    assert target.read_text() == "name = 'new'\n"
    assert _mode(target) == mode
    assert not list(tmp_path.glob(".*.tmp*"))


def test_a_new_file_gets_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "new.toml", b"x = 1\n")
        with atomic_path(tmp_path / "model.keras") as tmp:
            tmp.write_bytes(b"weights")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "new.toml") == 0o640
    assert _mode(tmp_path / "model.keras") == 0o640


def test_a_writer_that_names_the_file_keeps_the_mode_too(tmp_path, umask_077):
    """`atomic_path` (model.save's way): the target's mode is put on the new file before the rename."""
    target = tmp_path / "last.keras"
    target.write_bytes(b"old")
    target.chmod(0o644)
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and _mode(target) == 0o644


def test_a_failed_write_leaves_the_file_and_its_mode(tmp_path):
    target = tmp_path / "mine.toml"
    target.write_text("old\n")
    target.chmod(0o640)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n" and _mode(target) == 0o640
    assert not list(tmp_path.glob(".*.tmp*"))
