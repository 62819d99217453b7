"""The runs browser over run directories written on disk: metrics, compare, result panels."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from kerasguide_gui.panels import check_items, finding_items, fmt
from PySide6.QtCore import QSettings

from kerasguide.config import RunConfig, save_config
from kerasguide.rundir import RunDir

CHECKS = [
    {"name": "initial_loss", "passed": True, "measured": 2.31, "expected": 2.3026, "tolerance": 0.25,
     "advice": "", "recipe": "D12", "severity": "info", "details": {"classes": 10}},
    {"name": "overfit", "passed": False, "measured": 0.41, "expected": 1.0, "tolerance": 0.05,
     "advice": "The model cannot overfit 20 examples: raise the learning rate or check the labels (D14).",
     "recipe": "D14", "severity": "error", "details": {}},
]
LR_FIND = {
    "lrs": [1e-6 * 10 ** (i / 10) for i in range(60)],
    "losses": [2.3 - 1.5 / (1 + math.exp(-(i - 30) / 4)) + (0.0 if i < 55 else (i - 55) * 2) for i in range(60)],
    "smoothed": [2.3 - 1.4 / (1 + math.exp(-(i - 30) / 4)) for i in range(60)],
    "suggestions": {"steepest": 1e-3, "minimum_div_10": 3e-4},
    "chosen": 1e-3, "chosen_rule": "steepest", "reason": "the loss falls fastest here", "steps": 60, "seconds": 4.2,
}
DIAGNOSIS = {"findings": [
    {"code": "overfitting", "severity": "warning", "evidence": {"train_accuracy": 1.0, "val_accuracy": 0.81},
     "advice": "Train and validation accuracy are far apart: raise L2 or dropout (E17).", "recipe": "E17"},
    {"code": "update_ratio_low", "severity": "error", "evidence": {"ratio": 1e-6},
     "advice": "Updates are 1e-6 of the weights: the learning rate is too low (E18).", "recipe": "E18"},
    {"code": "healthy_init", "severity": "info", "evidence": {}, "advice": "Initial loss at chance.", "recipe": "D12"},
]}


def make_run(root: Path, name: str, *, lr: float = 1e-3, status: str = "completed", epochs: int = 5,
             started: str = "2026-01-02T03:04:05+00:00", files: dict | None = None) -> Path:
    run = RunDir(root / f"20260102-030405-{name}")
    run.path.mkdir(parents=True)
    cfg = RunConfig()
    cfg.name = name
    cfg.optimizer.learning_rate = lr
    save_config(cfg, run.config_path)
    rows = [{"epoch": e, "loss": 2.0 / e, "accuracy": 1 - 0.5 / e, "val_loss": 2.2 / e,
             "val_accuracy": 0.95 - 0.5 / e, "lr": lr} for e in range(1, epochs + 1)]
    run.write_metrics(rows)
    run.write_json("run.json", {
        "name": name, "status": status, "started": started, "ended": started, "epochs_done": epochs,
        "final_metrics": {k: v for k, v in rows[-1].items() if k not in ("epoch", "lr")},
        "best": {"metric": "val_accuracy", "value": rows[-1]["val_accuracy"], "epoch": epochs},
    })
    run.write_text("report.md", f"# Run {name}\n\nStatus: **{status}**\n")
    for file_name, data in (files or {}).items():
        if isinstance(data, str):
            run.write_text(file_name, data)
        else:
            run.write_json(file_name, data)
    return run.path


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    return root


def _runs_window(make_window, settings, workspace):
    settings.set_workspace(workspace)
    window = make_window()
    window.tabs.setCurrentIndex(window.TABS.index("Runs"))
    return window


def test_runs_table_shows_status_metrics_and_best(make_window, settings, workspace):
    make_run(workspace, "alpha", status="completed")
    make_run(workspace, "beta", status="interrupted", epochs=3, started="2026-01-03T03:04:05+00:00")
    window = _runs_window(make_window, settings, workspace)
    model = window.runs.model
    assert model.rowCount() == 2
    assert model.runs[0].name == "beta"  # newest first
    headers = model.headers
    assert headers[:5] == ["Run", "Kind", "Status", "val_accuracy", "val_loss"]
    beta = [model.index(0, c).data() for c in range(len(headers))]
    assert beta[2] == "interrupted" and beta[1] == "run" and beta[headers.index("Epochs")] == "3"
    assert beta[headers.index("val_accuracy")] == f"{0.95 - 0.5 / 3:.4f}"
    assert beta[headers.index("Best")].startswith("val_accuracy 0.7833 @ 3")


def test_a_new_run_appears_without_a_click(make_window, settings, workspace, qtbot):
    window = _runs_window(make_window, settings, workspace)
    assert window.runs.model.rowCount() == 0
    make_run(workspace, "late")
    qtbot.waitUntil(lambda: window.runs.model.rowCount() == 1, timeout=5000)


def test_two_runs_compare_curves_and_config(make_window, settings, workspace):
    a = make_run(workspace, "alpha", lr=1e-3)
    b = make_run(workspace, "beta", lr=3e-2, started="2026-01-03T03:04:05+00:00")
    window = _runs_window(make_window, settings, workspace)
    runs = window.runs
    runs.select_paths([a, b])
    assert runs.selected_paths() == [b, a] or set(runs.selected_paths()) == {a, b}
    axes = runs.curves.figure.axes
    titles = [ax.get_title() for ax in axes]
    assert titles[:2] == ["loss", "accuracy"]
    assert len(axes[0].lines) == 4  # two runs x train/validation
    assert "Comparing" in runs.title.text()
    runs.tabs.setCurrentIndex(runs.TABS.index("Config"))
    diff = runs.config_pane.diff
    keys = {diff.item(r, 0).text() for r in range(diff.rowCount())}
    assert {"name", "optimizer.learning_rate"} <= keys
    assert "data.source" not in keys  # equal keys are not listed
    row = [r for r in range(diff.rowCount()) if diff.item(r, 0).text() == "optimizer.learning_rate"][0]
    values = {diff.item(row, 1).text(), diff.item(row, 2).text()}
    assert values == {"0.001", "0.03"}


def test_checks_panel(make_window, settings, workspace):
    run = make_run(workspace, "checked", files={"checks.json": CHECKS})
    window = _runs_window(make_window, settings, workspace)
    runs = window.runs
    runs.show_run(run, "Checks")
    assert runs.tabs.isTabEnabled(runs.TABS.index("Checks"))
    tree = runs.checks.tree
    assert tree.topLevelItemCount() == 2
    assert runs.checks.summary.text() == "1 of 2 checks passed."
    failed = tree.topLevelItem(1)
    assert failed.text(1) == "FAILED" and failed.isExpanded()
    assert "cannot overfit 20 examples" in failed.child(0).text(0)
    assert tree.topLevelItem(0).text(2) == "2.31"


def test_lr_finder_panel_plots_and_puts_the_lr_into_the_config(make_window, settings, workspace):
    run = make_run(workspace, "swept", files={"lr_find.json": LR_FIND})
    window = _runs_window(make_window, settings, workspace)
    runs = window.runs
    runs.show_run(run, "LR finder")
    panel = runs.lr_find
    ax = panel.plot.figure.axes[0]
    assert ax.get_xscale() == "log"
    labels = [line.get_label() for line in ax.lines]
    assert "smoothed loss" in labels and any(lbl.startswith("steepest: 0.001") for lbl in labels)
    assert panel.table.rowCount() == 2
    assert panel.selected_lr() == pytest.approx(1e-3)  # the chosen rule is preselected
    panel.table.selectRow([panel.table.item(r, 0).text() for r in range(2)].index("minimum_div_10"))
    assert "0.0003" in panel.use_button.text()
    panel.use_button.click()
    assert window.document.config.optimizer.learning_rate == pytest.approx(3e-4)
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Config"
    assert window.editor.form.row("optimizer.learning_rate").text() == "0.0003"


def test_diagnosis_panel(make_window, settings, workspace):
    run = make_run(workspace, "diagnosed", files={"diagnosis.json": DIAGNOSIS})
    window = _runs_window(make_window, settings, workspace)
    runs = window.runs
    runs.show_run(run, "Diagnosis")
    tree = runs.diagnosis.tree
    codes = [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())]
    assert codes == ["update_ratio_low", "overfitting", "healthy_init"]  # errors first
    assert runs.diagnosis.summary.text() == "1 error, 1 warning, 1 info."
    evidence = {tree.topLevelItem(1).child(i).text(0): tree.topLevelItem(1).child(i).text(1)
                for i in range(tree.topLevelItem(1).childCount())}
    assert evidence["val_accuracy"] == "0.81" and evidence["recipe"] == "E17"
    assert not tree.topLevelItem(0).icon(0).isNull()


def test_report_tab_and_missing_files(make_window, settings, workspace):
    run = make_run(workspace, "plain")
    window = _runs_window(make_window, settings, workspace)
    runs = window.runs
    runs.show_run(run, "Report")
    assert "Run plain" in runs.report.browser.toPlainText()
    for tab in ("Checks", "LR finder", "Diagnosis"):
        assert not runs.tabs.isTabEnabled(runs.TABS.index(tab))


def test_garbled_and_partial_files_degrade_gracefully(make_window, settings, workspace):
    run = make_run(workspace, "odd", files={
        "checks.json": "{not json",
        "lr_find.json": {"lrs": [1e-3, None, "x"], "suggestions": {"steepest": "fast"}},
        "diagnosis.json": {"findings": [{"severity": "weird"}, "junk", {"code": "x", "evidence": [1, 2]}]},
    })
    (run / "metrics.csv").write_text("epoch,loss\n1,abc\n2,\n")
    broken = workspace / "20260101-000000-broken"
    broken.mkdir()
    (broken / "run.json").write_text("{truncated")
    window = _runs_window(make_window, settings, workspace)
    runs = window.runs
    assert runs.model.rowCount() == 2
    assert runs.model.index(runs.model.row_of(broken), 2).data() == "unknown"
    for tab in ("Curves", "Config", "Checks", "LR finder", "Diagnosis"):
        runs.show_run(run, tab)
    assert runs.checks.summary.text() == "checks.json holds no check results."
    assert runs.diagnosis.tree.topLevelItemCount() == 2
    assert runs.lr_find.table.rowCount() == 0 and not runs.lr_find.use_button.isEnabled()
    runs.show_run(broken, "Curves")


def test_pure_readers():
    assert [c["name"] for c in check_items({"checks": CHECKS})] == ["initial_loss", "overfit"]
    assert check_items({"initial_loss": {"passed": True}})[0]["name"] == "initial_loss"
    assert check_items(None) == [] and finding_items("x") == []
    assert fmt(None) == "—" and fmt(0.000123456) == "0.0001235" and fmt([1, 2]) == "[1, 2]"
    assert fmt(list(range(10))).endswith("… (10)]")


def test_settings_are_persisted(make_window, tmp_path, workspace):
    from kerasguide_gui.settings import AppSettings

    path = tmp_path / "persist.ini"
    config = tmp_path / "c.toml"
    config.write_text('name = "c"\n')
    first = AppSettings(QSettings(str(path), QSettings.Format.IniFormat))
    window = make_window(settings_=first)
    window.set_workspace(workspace)
    window.open_config(config)
    window.resize(781, 699)  # the offscreen screen is 800 x 800
    window.tabs.setCurrentIndex(window.TABS.index("Runs"))
    window.close()
    second = AppSettings(QSettings(str(path), QSettings.Format.IniFormat))
    assert second.workspace() == workspace.resolve()
    assert second.recent_configs() == [config.resolve()]
    again = make_window(settings_=second)
    assert again.workspace == workspace.resolve()
    assert (again.width(), again.height()) == (781, 699)
    assert again.tabs.tabText(again.tabs.currentIndex()) == "Runs"


def _search_dir(root: Path) -> tuple[Path, list[Path]]:
    """A search directory as `kerasguide tune` writes it: search.json, search.md, trials/."""
    import json

    search = root / "20260104-000000-tiny-search"
    trials = [make_run(search / "trials", f"t{i}", lr=lr, started=f"2026-01-04T00:00:0{i}+00:00")
              for i, lr in enumerate((1e-3, 1e-2, 1e-1))]
    scores = [0.91, 0.97, 0.42]
    records = [{"stage": 1, "trial_id": str(i), "status": "completed", "score": s, "metric": "val_accuracy",
                "values": {"optimizer.learning_rate": lr}, "run_dir": f"trials/{t.name}"}
               for i, (t, s, lr) in enumerate(zip(trials, scores, (1e-3, 1e-2, 1e-1), strict=True))]
    (search / "search.json").write_text(json.dumps({
        "format_version": 1, "kind": "search", "name": "tiny", "status": "completed",
        "started": "2026-01-04T00:00:00+00:00", "ended": "2026-01-04T00:01:00+00:00",
        "objective": {"metric": "val_accuracy", "direction": "max"},
        "stages": [{"index": 1, "trials": records, "best": records[1]}], "best": records[1]}))
    (search / "search.md").write_text("# Search tiny\n\nBest: trial 1\n")
    save_config(RunConfig(name="tiny"), search / "config.toml")
    return search, trials


def test_a_search_directory_is_a_row_with_its_best_trial_then_its_trials(make_window, settings, workspace):
    plain = make_run(workspace, "plain")
    search, trials = _search_dir(workspace)
    window = _runs_window(make_window, settings, workspace)
    runs = window.runs
    model = runs.model
    assert [r.path for r in model.runs] == [search, *trials, plain]
    headers = model.headers
    row = [model.index(0, c).data() for c in range(len(headers))]
    assert row[0] == search.name and row[1] == "search" and row[2] == "completed"
    assert row[headers.index("Best")] == "val_accuracy 0.9700 · trial 1"
    assert row[headers.index("Epochs")] == "3 trials"
    child = [model.index(1, c).data() for c in range(len(headers))]
    assert child[0] == f"    ↳ {trials[0].name}" and child[1] == "trial"
    assert child[headers.index("Best")].endswith("@ 5")  # a trial is a run like any other
    runs.show_run(search, "Report")
    assert runs.selected_paths() == [search]
    assert "search completed" in runs.title.text() and "best val_accuracy 0.9700" in runs.title.text()
    assert "Best: trial 1" in runs.report.browser.toPlainText()  # search.md, not report.md
    assert not runs.diagnose_button.isEnabled()  # diagnose reads one run
    runs.tabs.setCurrentIndex(runs.TABS.index("Curves"))
    # the trials' curves, best first: 0.97, 0.91, 0.42
    assert runs._curve_runs([search]) == [trials[1], trials[0], trials[2]]
    assert len(runs.curves.figure.axes[0].lines) == 6  # three trials x train/validation
    runs.show_run(trials[1])
    assert runs.selected_paths() == [trials[1]] and runs.diagnose_button.isEnabled()  # a trial is a run


def test_an_ensemble_directory_is_a_row_with_its_score_then_its_members(make_window, settings, workspace):
    import json

    ensemble = workspace / "20260105-000000-tiny-ensemble-abcdef"
    members = [make_run(ensemble / "members", f"tiny-m{i}", started=f"2026-01-05T00:00:0{i}+00:00")
               for i in range(2)]
    (ensemble / "ensemble.json").write_text(json.dumps({
        "format_version": 1, "kind": "seeds", "name": "tiny-ensemble",
        "members": [{"name": m.name, "run_dir": f"members/{m.name}"} for m in members],
        "validation": {"examples": 360, "ensemble": {"accuracy": 0.9812, "log_loss": 0.1}}, "test": None}))
    (ensemble / "ensemble.md").write_text("# Ensemble tiny-ensemble\n")
    window = _runs_window(make_window, settings, workspace)
    model = window.runs.model
    assert [r.path for r in model.runs] == [ensemble, *members]
    headers = model.headers
    row = [model.index(0, c).data() for c in range(len(headers))]
    assert row[1] == "ensemble" and row[2] == "completed" and row[headers.index("Epochs")] == "2 members"
    assert row[headers.index("Best")] == "val_accuracy 0.9812 (ensemble)"
    assert row[headers.index("val_accuracy")] == "0.9812"
    assert [model.index(i, 1).data() for i in (1, 2)] == ["member", "member"]
    window.runs.show_run(ensemble, "Report")
    assert "Ensemble tiny-ensemble" in window.runs.report.browser.toPlainText()
    assert window.runs._curve_runs([ensemble]) == members


def make_regression_run(root: Path, name: str, epochs: int = 5) -> Path:
    """A regression run directory as `kerasguide run diabetes` writes it: MSE loss, mae and rmse, no accuracy."""
    run = RunDir(root / f"20260102-040506-{name}")
    run.path.mkdir(parents=True)
    cfg = RunConfig()
    cfg.name = name
    cfg.data.source, cfg.data.task, cfg.train.loss = "diabetes", "regression", "mse"
    cfg.train.metrics, cfg.train.monitor_metric = ["mae", "rmse"], "val_loss"
    save_config(cfg, run.config_path)
    rows = []
    for e in range(1, epochs + 1):
        loss, val = 6000.0 / e + 2500.0, 6000.0 / e + 2900.0
        rows.append({"epoch": e, "loss": loss, "mae": 0.8 * loss**0.5, "rmse": loss**0.5, "val_loss": val,
                     "val_mae": 0.8 * val**0.5, "val_rmse": val**0.5, "lr": 1e-3 / e})
    run.write_metrics(rows)
    run.write_json("run.json", {
        "name": name, "status": "completed", "started": "2026-01-04T03:04:05+00:00", "epochs_done": epochs,
        "data": {"name": "diabetes", "task": "regression", "num_classes": 0, "target_variance": 6100.0},
        "final_metrics": {k: v for k, v in rows[-1].items() if k not in ("epoch", "lr")},
        "best": {"metric": "val_loss", "value": rows[-1]["val_loss"], "epoch": epochs},
    })
    run.write_text("report.md", f"# Run {name}\n")
    return run.path


def test_a_regression_run_shows_mae_and_rmse_not_accuracy(make_window, settings, workspace):
    path = make_regression_run(workspace, "diabetes")
    window = _runs_window(make_window, settings, workspace)
    model = window.runs.model
    assert model.headers[3:6] == ["val_mae", "val_rmse", "val_loss"]
    row = [model.index(0, c).data() for c in range(len(model.headers))]
    assert row[model.headers.index("val_mae")] == f"{0.8 * (6000.0 / 5 + 2900.0) ** 0.5:.4f}"
    assert row[model.headers.index("Best")].startswith("val_loss 4100.0000 @ 5")
    window.runs.select_paths([path])
    titles = [ax.get_title() for ax in window.runs.curves.figure.axes]
    assert titles == ["loss", "MAE", "RMSE"]
    assert len(window.runs.curves.figure.axes[1].lines) == 2  # train and validation MAE


def test_a_workspace_of_both_kinds_shows_both_scores(make_window, settings, workspace):
    make_run(workspace, "digits")
    make_regression_run(workspace, "diabetes")
    window = _runs_window(make_window, settings, workspace)
    headers = window.runs.model.headers
    assert headers[3:7] == ["val_accuracy", "val_mae", "val_rmse", "val_loss"]
    digits = window.runs.model.row_of(next(p for p in workspace.iterdir() if p.name.endswith("digits")))
    assert window.runs.model.index(digits, headers.index("val_mae")).data() == ""  # a classification run has no MAE: an empty cell


def test_a_killed_run_and_one_completed_with_errors_show_as_such(make_window, settings, workspace):
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)  # a process that has ended: its run was killed
    killed = RunDir(make_run(workspace, "killed", status="running"))
    killed.update_run(pid=dead_pid, pid_start="1")
    make_run(workspace, "partial", status="completed_with_errors", started="2026-01-03T03:04:05+00:00")
    window = _runs_window(make_window, settings, workspace)
    model = window.runs.model
    shown = {model.index(r, 0).data().rsplit("-", 1)[-1]: model.index(r, 2).data() for r in range(model.rowCount())}
    assert shown == {"killed": "killed", "partial": "completed with errors"}, shown
