"""Recording the git commit runs nothing the repository configured (issue 15: "code run that nobody asked for")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kerasguide.provenance import git_commit, read_head

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
           GIT_COMMITTER_EMAIL="t@t", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env=ENV, check=True, capture_output=True, text=True).stdout.strip()


def _repo(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "d"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    (repo / "b.dat").write_text("two\n")
    (repo / ".gitattributes").write_text("*.txt filter=evil diff=evil\n*.dat filter=proc\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    return repo, _git(repo, "rev-parse", "HEAD")


def _make_hostile(repo: Path) -> Path:
    """Every configured command this git could run touches `repo/marker-WHAT`."""
    hooks = repo / "evil-hooks"
    hooks.mkdir()
    for hook in ("post-index-change", "pre-commit", "post-checkout", "reference-transaction", "fsmonitor-watchman"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch '{repo}/marker-hook-{hook}'\n")
        (hooks / hook).chmod(0o755)
        shutil.copy(hooks / hook, repo / ".git" / "hooks" / hook)
    for key, value in {
        "core.fsmonitor": f"touch '{repo}/marker-fsmonitor'; echo",
        "core.hooksPath": str(hooks),
        "filter.evil.clean": f"sh -c \"touch '{repo}/marker-clean'; cat\"",
        "filter.evil.required": "true",
        "filter.proc.process": f"sh -c \"touch '{repo}/marker-process'\"",
        "diff.external": f"sh -c \"touch '{repo}/marker-diff'\"",
        "diff.evil.textconv": f"sh -c \"touch '{repo}/marker-textconv'\"",
        "core.pager": f"touch '{repo}/marker-pager'; cat",
    }.items():
        _git(repo, "config", key, value)
    # Changed files: status must hash them again, through their filters.
    (repo / "a.txt").write_text("one changed\n")
    os.utime(repo / "b.dat", (1, 1))
    return repo


def _markers(repo: Path) -> list[str]:
    return sorted(p.name for p in repo.glob("marker-*"))


def test_the_hostile_config_does_run_commands_with_plain_git(tmp_path):
    """The test's repository is hostile indeed: an ordinary `git status` there runs its commands."""
    repo, _ = _repo(tmp_path)
    _make_hostile(repo)
    subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, env=ENV, capture_output=True)
    assert "marker-fsmonitor" in _markers(repo)
    assert {"marker-clean", "marker-process"} & set(_markers(repo))


def test_git_commit_runs_nothing_and_still_records_the_commit(tmp_path):
    repo, head = _repo(tmp_path)
    assert git_commit(repo) == {"commit": head, "dirty": False}
    _make_hostile(repo)
    record = git_commit(repo / "")
    assert _markers(repo) == []
    assert record["commit"] == head
    assert record["dirty"] is True  # a.txt changed (status ran, with its filters off)
    (repo / "sub").mkdir()
    assert git_commit(repo / "sub")["commit"] == head  # from a folder inside the work tree
    assert _markers(repo) == []


def test_read_head_follows_packed_refs_detached_heads_and_worktrees(tmp_path):
    repo, head = _repo(tmp_path)
    _git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "master").exists()
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert read_head(repo / ".git") == head
    (repo / "c.txt").write_text("three\n")
    _git(repo, "add", "c.txt")
    _git(repo, "commit", "-q", "-m", "second")
    second = _git(repo, "rev-parse", "HEAD")
    _git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "wt"), head)
    assert git_commit(tmp_path / "wt")["commit"] == head  # the worktree's own HEAD (a .git file)
    _git(tmp_path / "wt", "checkout", "-q", "-b", "side")
    assert git_commit(tmp_path / "wt")["commit"] == head  # its branch, from the main repository's refs
    assert git_commit(repo)["commit"] == second
    assert git_commit(tmp_path) is None  # no repository here
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q")
    assert git_commit(empty) is None  # no commit yet


def test_a_run_inside_a_hostile_repository_runs_nothing(tmp_path, monkeypatch, capsys):
    """The issue's case end to end: `kerasguide run` inside the repository records its commit, creates no marker."""
    from kerasguide.config import save_config
    from tests.conftest import cli_in_process, tiny_digits

    repo, head = _repo(tmp_path)
    _make_hostile(repo)
    cfg = tiny_digits("git", epochs=1, monitors=False)
    save_config(cfg, tmp_path / "c.toml")
    monkeypatch.chdir(repo)
    done = cli_in_process(capsys, "run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert _markers(repo) == []
    record = json.loads(next((tmp_path / "runs").glob("*/run.json")).read_text())
    assert record["git"]["commit"] == head
