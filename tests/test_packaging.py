"""Packaging: the wheel holds every package and bundled file, under specific top-level names.

Static checks of pyproject.toml against the source tree: an editable install
finds every subpackage whatever the list says, so a package left out of
`[tool.setuptools] packages` shows only in a real install. Then the installed
metadata (license, extras, pins) and one real wheel, built from a copy of the tree.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest

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


def _resource_files() -> list[str]:
    resources = ROOT / "resources"
    return [p.relative_to(resources).as_posix() for p in resources.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"]


def test_every_bundled_resource_is_package_data():
    tool = _setuptools()
    files = _resource_files()
    assert {"configs/digits.toml", "configs/mnist1d_cnn.toml", "icons/kerasguide.png"} <= set(files)
    # Each data folder is a package of its own in the list (else setuptools warns "absent from the `packages`
    # configuration" at every build), its files matched by that package's package-data patterns.
    folders = {f.rsplit("/", 1)[0] for f in files if "/" in f}
    unlisted = sorted(f"kerasguide.resources.{d.replace('/', '.')}" for d in folders
                      if f"kerasguide.resources.{d.replace('/', '.')}" not in tool["packages"])
    assert not unlisted, f"data folders missing from [tool.setuptools] packages: {unlisted}"
    left_out = []
    for file in files:
        folder, _, name = file.rpartition("/")
        package = ".".join(("kerasguide.resources", *folder.split("/"))) if folder else "kerasguide.resources"
        if not any(fnmatch.fnmatch(name, pattern) for pattern in tool["package-data"].get(package, [])):
            left_out.append(file)
    assert not left_out, f"resources matched by no [tool.setuptools.package-data] pattern: {left_out}"


# ------------------------------------------------------------ the installed metadata
def _requires() -> list[str]:
    return distribution("kerasguide").requires or []


def test_the_license_is_an_spdx_expression_and_ships():
    dist = distribution("kerasguide")
    assert dist.metadata["License-Expression"] == "Apache-2.0", dist.metadata["License-Expression"]
    assert "License" not in dist.metadata  # the deprecated free-text field is gone with the table form
    assert any(Path(str(f)).name == "LICENSE" for f in dist.files or []), "LICENSE is not in the distribution"


def test_pyside6_is_only_in_the_gui_extra():
    qt = [r for r in _requires() if r.lower().startswith("pyside6")]
    assert qt and all('extra == "gui"' in r for r in qt), qt  # `pip install kerasguide`: no Qt on a GPU node


def test_keras_tuner_has_an_upper_bound():
    (tuner,) = [r for r in _requires() if r.lower().replace("_", "-").startswith("keras-tuner")]
    assert "<" in tuner, f"{tuner}: kerasguide overrides private keras-tuner methods (tests/test_keras_tuner_api.py)"


# ------------------------------------------------------------ a real wheel
_NOT_SHIPPED = shutil.ignore_patterns(".git", ".venv", "runs", "build", "*.egg-info", "__pycache__", ".*cache*",
                                      ".hypothesis", "tests", "benchmarks", "docs")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """A wheel built by pip from a copy of the tree (an in-tree build would leave build/ behind), and pip's log."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=_NOT_SHIPPED)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-v", "-w", str(tmp / "dist")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"pip wheel failed (it fetches setuptools>=77 for the build): {proc.stdout[-3000:]}"
    (built,) = (tmp / "dist").glob("kerasguide-*.whl")
    return built, proc.stdout + proc.stderr


def test_the_wheel_holds_the_resources_and_the_license_and_builds_without_warnings(wheel):
    built, log = wheel
    with zipfile.ZipFile(built) as archive:
        names = set(archive.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode("utf-8")
    missing = [f for f in _resource_files() if f"kerasguide/resources/{f}" not in names]
    assert not missing, f"resources left out of the wheel: {missing}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(n for n in names if "dist-info" in n)
    assert "License-Expression: Apache-2.0" in text.splitlines()
    assert 'Requires-Dist: pyside6>=6.7; extra == "gui"' in text.splitlines()
    assert "kerasguide_gui/app.py" in names and not any(n.startswith(("gui/", "resources/")) for n in names)
    warned = [line.strip() for line in log.splitlines() if "absent from the `packages` configuration" in line]
    assert not warned, warned
