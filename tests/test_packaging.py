"""Packaging: the wheel holds every package and bundled file, under specific top-level names.

Static checks of pyproject.toml against the source tree (no wheel is built):
an editable install finds every subpackage whatever the list says, so a
package left out of `[tool.setuptools] packages` shows only in a real install.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def _source_packages(package_dir: dict[str, str]) -> set[str]:
    """Every folder with an __init__.py under each mapped folder, as the dotted name it installs as."""
    found = set()
    for name, folder in package_dir.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            relative = init.parent.relative_to(base).parts
            found.add(".".join((name, *relative)))
    return found


def test_every_subpackage_is_in_the_wheel():
    tool = _setuptools()
    listed = set(tool["packages"])
    missing = _source_packages(tool["package-dir"]) - listed
    assert not missing, f"packages missing from pyproject.toml [tool.setuptools] packages: {sorted(missing)}"


def test_no_generic_top_level_module():
    tops = {name.split(".")[0] for name in _setuptools()["packages"]}
    assert tops == {"kerasguide", "kerasguide_gui"}, tops


def test_every_bundled_resource_is_package_data():
    patterns = _setuptools()["package-data"]["kerasguide.resources"]
    resources = ROOT / "resources"
    files = [p.relative_to(resources).as_posix() for p in resources.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"]
    assert {"configs/digits.toml", "configs/mnist1d_cnn.toml"} <= set(files)
    left_out = [f for f in files if not any(fnmatch.fnmatch(f, pattern) for pattern in patterns)]
    assert not left_out, left_out
