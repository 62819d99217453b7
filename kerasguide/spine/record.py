"""run.json's opening fields, the same for every command (`run`, `check`, `lr-find`)."""

from __future__ import annotations

import sys
from typing import Any

from kerasguide.config import RunConfig, dump_config
from kerasguide.provenance import git_commit, versions  # noqa: F401  (re-exported: older callers)
from kerasguide.rundir import owner_fields, utc_now

__all__ = ["run_header", "resolved_config"]


def run_header(config: RunConfig, config_path: str | None, **fields: Any) -> dict[str, Any]:
    """The fields every command's run.json starts with, plus `fields` (`kind` goes first)."""
    return {
        "format_version": 1,
        **({"kind": fields.pop("kind")} if fields.get("kind") else {}),
        "name": config.name,
        "status": "running",
        "started": utc_now(),
        "ended": None,
        "seed": config.train.seed,
        "config_path": config_path,
        "command": " ".join(sys.argv),
        "versions": versions(),
        **{k: v for k, v in fields.items() if k != "kind"},
        **owner_fields(),  # pid, its start and the host: readers tell a killed run from a running one
    }


def resolved_config(config: RunConfig, header: str | None = None) -> str:
    """config.toml's text: the resolved config, every default filled in, after an optional comment line."""
    return (f"# {header}\n" if header else "") + dump_config(config)
