"""The import layers: a recipe never knows the spine, and the contracts in pyproject.toml hold.

The graph is grimp's (import-linter's graph library): every `import`
statement counts, those inside function bodies too, and a chain through
other modules counts as much as a direct import.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent

# The recipe modules (packages included): each is called by a stage of the run, none calls it.
# Everything below them too: a support or base module that reached the spine would drag every recipe along.
RECIPES = ("checks", "lr_finder", "schedules", "callbacks", "averaging", "monitors", "diagnosis",
           "report", "tracking", "inference", "scores", "training", "data", "models", "layers", "losses",
           "initializers", "activations", "progress", "interrupts", "tb_events", "board", "rundir", "config",
           "io", "_logging", "presets", "recipes")
# The stage loop and the pipeline, its compatibility alias.
PIPELINE = ("kerasguide.spine", "kerasguide.pipeline")


def _graph(*packages: str, external: bool = False) -> grimp.ImportGraph:
    # cache_dir=None: nothing written into the working tree
    return grimp.build_graph(*packages, include_external_packages=external, cache_dir=None,
                             exclude_type_checking_imports=True)  # as pyproject.toml's contracts


def pipeline_imports(graph: grimp.ImportGraph) -> dict[str, list[tuple[str, ...]]]:
    """Recipe module -> its shortest import chains to the run or the pipeline alias; clean modules left out.

    Recipe modules and targets missing from the graph (not written yet) are skipped.
    """
    targets = [t for t in PIPELINE if t in graph.modules]
    found: dict[str, list[tuple[str, ...]]] = {}
    for name in RECIPES:
        module = f"kerasguide.{name}"
        if module not in graph.modules:
            continue
        chains = [chain for target in targets
                  for chain in sorted(graph.find_shortest_chains(importer=module, imported=target, as_packages=True))]
        if chains:
            found[module] = chains
    return found


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return _graph("kerasguide")


def test_no_recipe_imports_the_run(graph):
    offenders = pipeline_imports(graph)
    lines = [" -> ".join(chain) for chains in offenders.values() for chain in chains]
    assert not offenders, "a recipe imports the run (its stage should call the recipe instead):\n" + "\n".join(lines)


def test_a_planted_import_of_the_run_is_caught(graph):
    # The planted bug: a recipe that is clean today gains `import kerasguide.spine` (added to a fresh graph).
    clean = [f"kerasguide.{n}" for n in RECIPES if f"kerasguide.{n}" in graph.modules
             and f"kerasguide.{n}" not in pipeline_imports(graph)]
    if not clean:
        pytest.skip("no recipe module is clean today: test_no_recipe_imports_the_run says which")
    planted = _graph("kerasguide")
    module = clean[0]
    planted.add_import(importer=module, imported="kerasguide.spine", line_number=1,
                       line_contents="import kerasguide.spine")
    assert pipeline_imports(planted)[module] == [(module, "kerasguide.spine")]


def test_an_indirect_import_of_the_run_is_caught():
    """A recipe that imports a helper that imports the pipeline alias is caught too: chains count."""
    graph = grimp.ImportGraph()
    for module in ("kerasguide", "kerasguide.data", "kerasguide.helper", "kerasguide.pipeline", "kerasguide.spine"):
        graph.add_module(module)
    graph.add_import(importer="kerasguide.pipeline", imported="kerasguide.spine")
    assert pipeline_imports(graph) == {}
    graph.add_import(importer="kerasguide.data", imported="kerasguide.helper")
    graph.add_import(importer="kerasguide.helper", imported="kerasguide.pipeline")
    assert sorted(pipeline_imports(graph)["kerasguide.data"]) == [
        ("kerasguide.data", "kerasguide.helper", "kerasguide.pipeline"),
        ("kerasguide.data", "kerasguide.helper", "kerasguide.pipeline", "kerasguide.spine"),
    ]


def _contract(name: str):
    from importlinter import configuration
    from importlinter.contracts.forbidden import ForbiddenContract
    from importlinter.contracts.layers import LayersContract

    configuration.configure()  # what `lint-imports` does first (the contracts time their checks)
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    spec = next(c for c in options["contracts"] if c["name"] == name)
    kind = {"forbidden": ForbiddenContract, "layers": LayersContract}[spec["type"]]
    session = {k: v for k, v in options.items() if k != "contracts"}
    # As lint-imports passes them: TOML's booleans as the text its fields parse.
    contract = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in spec.items() if k not in ("name", "type")}
    return kind(name=name, session_options=session, contract_options=contract)


@pytest.mark.parametrize("importer, imported", [
    ("kerasguide.io", "kerasguide.config"),              # base reaching up into the schema
    ("kerasguide.training", "kerasguide.monitors"),      # support reaching up into a recipe
    ("kerasguide.checks.runner", "kerasguide.report"),   # a recipe reaching up (the old cycle)
    ("kerasguide.monitors.probe", "kerasguide.checks"),  # two independent recipes
])
def test_an_import_against_the_layers_is_caught(importer, imported):
    contract = _contract("kerasguide's layers (one way, top to bottom)")
    graph = _graph("kerasguide")
    assert contract.check(graph, verbose=False).kept
    graph.add_import(importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}")
    assert not contract.check(graph, verbose=False).kept


def test_the_app_reaching_tensorflow_through_the_cli_is_caught():
    """The chain the CLI split removed (the app's command probe importing `kerasguide.cli`, whose
    commands import the trainers) breaks "The desktop app never imports TensorFlow" again when planted."""
    contract = _contract("The desktop app never imports TensorFlow")
    graph = _graph("kerasguide", "kerasguide_gui", external=True)
    assert graph.chain_exists(importer="kerasguide.cli", imported="tensorflow")
    assert not graph.chain_exists(importer="kerasguide.cli_args", imported="tensorflow")
    graph.add_import(importer="kerasguide_gui.commands", imported="kerasguide.cli", line_number=1,
                     line_contents="from kerasguide.cli import build_parser")
    assert not contract.check(graph, verbose=False).kept


def test_lint_imports_passes():
    program = Path(sys.executable).with_name("lint-imports")
    command = [str(program)] if program.is_file() else [sys.executable, "-c",
                                                         "from importlinter.cli import lint_imports_command; "
                                                         "lint_imports_command()"]
    out = subprocess.run([*command, "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
