"""Where a run's numbers come from: the library versions and the code's git commit (recipe I32)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasguide import __version__

__all__ = ["versions", "git_commit", "read_head"]

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def versions() -> dict[str, str]:
    """The versions that decide a run's numbers."""
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "kerasguide": __version__,
    }


def git_commit(cwd: Path) -> dict[str, Any] | None:
    """The git commit of the working directory (code identity, recipe I32), if any.

    A repository's config can make git run commands of its choosing (core.fsmonitor, hooks, filter
    drivers, ...): the commit is read from the repository's files, and `dirty` comes from a `git status`
    with all of those switched off (`_safe_git`). `dirty` is None when that git cannot say.
    """
    found = _git_dir(Path(cwd))
    if found is None:
        return None
    git_dir, work_tree = found
    commit = read_head(git_dir)
    if commit is None:  # a ref store this reader does not know (reftable): git itself, made safe
        answer = _safe_git(work_tree, ["rev-parse", "--verify", "-q", "HEAD"])
        commit = answer.strip() if answer and _SHA.match(answer.strip()) else None
        if commit is None:
            return None  # no commit yet
    status = _safe_git(work_tree, ["status", "--porcelain", "--untracked-files=no", "--ignore-submodules=all"])
    return {"commit": commit, "dirty": None if status is None else bool(status.strip())}


def _git_dir(start: Path) -> tuple[Path, Path] | None:
    """`(git dir, work tree)` of the repository holding `start` (a `.git` folder, or a worktree's `.git` file)."""
    try:
        here = start.resolve()
    except OSError:
        return None
    for folder in (here, *here.parents):
        dot = folder / ".git"
        try:
            if dot.is_dir():
                return dot, folder
            if dot.is_file():  # a worktree or submodule: "gitdir: PATH"
                text = dot.read_text(encoding="utf-8", errors="replace").strip()
                if text.startswith("gitdir:"):
                    target = Path(text[len("gitdir:"):].strip())
                    return (target if target.is_absolute() else folder / target).resolve(), folder
                return None
        except OSError:
            return None
    return None


def read_head(git_dir: str | os.PathLike[str]) -> str | None:
    """The commit HEAD names, read from the repository's files alone (HEAD, loose refs, packed-refs); None if unknown."""
    git_dir = Path(git_dir)
    common = git_dir
    try:
        if (git_dir / "commondir").is_file():  # a worktree: its branches live in the main repository
            common = (git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()).resolve()
        value = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
        for _ in range(10):  # symbolic refs may chain
            if _SHA.match(value):
                return value
            if not value.startswith("ref:"):
                return None
            ref = value[len("ref:"):].strip()
            if ".." in ref.split("/") or not ref.startswith("refs/"):
                return None
            loose = (git_dir if ref.startswith(("refs/bisect/", "refs/worktree/")) else common) / ref
            if loose.is_file():
                value = loose.read_text(encoding="utf-8").strip()
                continue
            return _packed_ref(common, ref)
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _packed_ref(common: Path, ref: str) -> str | None:
    try:
        lines = (common / "packed-refs").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(" ", 1)
        if len(parts) == 2 and parts[1].strip() == ref and _SHA.match(parts[0]):
            return parts[0]
    return None


# Config that would make `git status` run a command: fsmonitor, hooks (post-index-change), the pager.
_SAFE = ["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "core.untrackedCache=false",
         "-c", "core.pager=cat", "-c", "diff.external=", "-c", "core.sshCommand=false", "-c", "protocol.allow=never"]


def _safe_git(work_tree: Path, args: list[str]) -> str | None:
    """stdout of `git ARGS` in `work_tree` with every configured command disabled; None on any failure.

    Filter drivers (`filter.NAME.clean` / `.process`, which status runs to hash a changed file) are named
    by the repository's own config: each one found is emptied on the command line, which wins over it.
    """
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0", GIT_PAGER="cat", PAGER="cat",
               GIT_EXTERNAL_DIFF="", GIT_ASKPASS="", SSH_ASKPASS="")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT"):
        env.pop(name, None)  # this repository, this config and nothing else
    base = ["git", "--no-pager", *_SAFE]
    try:
        listed = subprocess.run([*base, "config", "--null", "--name-only", "--get-regexp", r"^filter\."],
                                cwd=work_tree, capture_output=True, timeout=5, env=env, stdin=subprocess.DEVNULL)
        drivers = {name.rsplit(".", 1)[0] for name in listed.stdout.decode("utf-8", "replace").split("\0") if name}
        off = [arg for driver in sorted(drivers)
               for arg in ("-c", f"{driver}.clean=", "-c", f"{driver}.smudge=", "-c", f"{driver}.process=",
                           "-c", f"{driver}.required=false")]
        answer = subprocess.run([*base, *off, *args], cwd=work_tree, capture_output=True, timeout=10, env=env,
                                stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if answer.returncode != 0:
        return None
    return answer.stdout.decode("utf-8", "replace")
