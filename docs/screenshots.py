"""Screenshots of the desktop app for the README (offscreen, real runs).

Runs the digits preset (and, for the other panels, an over-fitting variant
and an LR range test) with the real CLI into a temporary workspace, starts
the app offscreen on the digits preset and saves a PNG of each view into
`docs/screenshots/`:

    config-editor.png    the form generated from the schema, with the TOML beside it
    config-invalid.png   an invalid value: the schema's message under the field, Run disabled
    jobs.png             a run launched from the app, streaming its progress
    runs-compare.png     the runs browser comparing two runs' curves
    runs-checks.png      a run's sanity checks (checks.json)
    runs-diagnosis.png   a run's diagnosis (diagnosis.json)
    lr-finder.png        the LR range test with its suggestions
    tensorboard.png      TensorBoard inside the app

Usage:

    QT_QPA_PLATFORM=offscreen python docs/screenshots.py [--out docs/screenshots] [--workspace DIR]

A `--workspace` that already holds the runs is reused (quicker re-shoots).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
SIZE = (1280, 800)

OVERFIT = """name = "digits-overfit"
description = "120 training examples, a wide MLP, no regularization: it memorizes"
[data]
subset = 120
[model]
hidden = [512, 256]
dropout = 0.0
l2 = 0.0
[train]
epochs = 40
batch_size = 32
"""


def cli(*args: str) -> None:
    print("  $ kerasguide", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "kerasguide.cli", *args], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def prepare_runs(workspace: Path) -> None:
    """The runs the screenshots show, made by the real CLI (skipped if already there)."""
    workspace.mkdir(parents=True, exist_ok=True)
    names = " ".join(p.name for p in workspace.iterdir())
    if "digits-mlp" not in names:
        cli("run", "digits", "--out", str(workspace), "--epochs", "25")
    if "digits-overfit" not in names:
        config = workspace / ".overfit.toml"
        config.write_text(OVERFIT)
        cli("run", str(config), "--out", str(workspace))
    from kerasguide.rundir import list_runs

    # A run's own range test (learning_rate = "auto") also writes lr_find.json: look for the command's.
    if not any(info.kind == "lr_find" for info in list_runs(workspace)):
        cli("lr-find", "digits", "--out", str(workspace))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--workspace", help="folder of runs (default: a new temporary folder)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workspace = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="kerasguide-shots-"))
    print(f"workspace {workspace}")
    prepare_runs(workspace)

    from PySide6.QtCore import QCoreApplication, QSettings, Qt, QTimer

    QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
    from kerasguide_gui.app import MainWindow, create_application
    from kerasguide_gui.settings import AppSettings

    app = create_application()
    settings = AppSettings(QSettings(str(workspace / ".settings.ini"), QSettings.Format.IniFormat))
    settings.set_workspace(workspace)
    window = MainWindow(settings=settings, ask_before_close=False)
    window.resize(*SIZE)
    window.show()

    def wait(seconds: float = 0.0, until=None, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + (timeout if until else seconds)
        while time.monotonic() < deadline:
            app.processEvents()
            if until is not None and until():
                return
            time.sleep(0.02)
        if until is not None:
            raise TimeoutError("screenshots: a view did not get ready in time")

    def shot(name: str) -> None:
        wait(0.4)
        window.grab().save(str(out / name))
        print(f"  saved {out / name}")

    wait(until=lambda: window.probe is None or window.probe.commands is not None, timeout=30)
    tabs, runs, form = window.tabs, window.runs, window.editor.form
    runs_by = {info.path.name: info.path for info in runs.model.runs}

    def run_named(part: str, kind: str = "run") -> Path:
        for info in runs.model.runs:
            if part in info.path.name and (info.record.get("kind") or "run") == kind and info.status == "completed":
                return info.path
        raise LookupError(f"no {kind} run named like {part!r} in {workspace}: {sorted(runs_by)}")

    # 1. The config editor on the digits preset.
    window.load_preset("digits")
    tabs.setCurrentIndex(window.TABS.index("Config"))
    form.show_section("model")
    shot("config-editor.png")

    # 2. An invalid value: the schema's own message, Run disabled.
    form.show_section("optimizer")
    row = form.row("optimizer.learning_rate")
    row.editor.setEditText("0")
    row.editor.lineEdit().textEdited.emit("0")
    shot("config-invalid.png")
    row.editor.setEditText("0.001")
    row.editor.lineEdit().textEdited.emit("0.001")

    # 3. A run launched from the app, mid-way.
    job = window.start_job("run")
    wait(until=lambda: (job.progress.fraction or 0) >= 0.45 or job.finished_state, timeout=240)
    shot("jobs.png")
    wait(until=lambda: job.finished_state, timeout=240)

    # 4. The runs browser: two runs compared.
    healthy, overfit = run_named("digits-mlp"), run_named("digits-overfit")
    tabs.setCurrentIndex(window.TABS.index("Runs"))
    runs.refresh()
    runs.tabs.setCurrentIndex(runs.TABS.index("Curves"))
    runs.select_paths([healthy, overfit])
    shot("runs-compare.png")

    # 5-7. Checks, diagnosis and the LR range test of single runs.
    runs.show_run(healthy, "Checks")
    shot("runs-checks.png")
    runs.show_run(overfit, "Diagnosis")
    shot("runs-diagnosis.png")
    runs.show_run(run_named("digits-mlp", kind="lr_find"), "LR finder")
    shot("lr-finder.png")

    # 8. TensorBoard inside the app, on the two runs.
    runs.select_paths([healthy, overfit])
    loaded = []
    window.board_server.ready.connect(
        lambda url: window.board.web.loadFinished.connect(lambda ok: loaded.append(ok)))
    tabs.setCurrentIndex(window.TABS.index("TensorBoard"))
    wait(until=lambda: bool(loaded), timeout=180)
    wait(8.0)  # the scalars are fetched after the page itself
    # TensorBoard opens its settings pane on a first visit: closed, the charts get the width; the
    # tag filter shows the learning curves of both runs side by side.
    window.board.web.page().runJavaScript(
        "var b = document.querySelector('button[aria-label=\"Close side pane\"]'); if (b) { b.click(); }"
        "var i = document.querySelector('input[placeholder=\"Filter tags (regex)\"]');"
        "if (i) { i.value = '^epoch_(loss|accuracy)$'; i.dispatchEvent(new Event('input', {bubbles: true})); }")
    wait(3.0)
    shot("tensorboard.png")

    window.close()
    QTimer.singleShot(0, app.quit)
    print(f"screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
