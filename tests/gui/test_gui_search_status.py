"""Tune's budget preview, and a running search's status and Stop in the Jobs tab.

The `tune` child is a small stand-in (written below: it keeps a search
directory `running` until a stop request appears, as the real master reads it
between trials); `search-status` is the real CLI's (TensorFlow-free), so the
stop request the app sends is the real one.
"""

from __future__ import annotations

import json
import sys
import textwrap

from kerasguide_gui.commands import probe_commands
from kerasguide_gui.search_status import budget_html, status_text

BUDGET = {
    "name": "demo", "algorithm": "random", "workers": 0, "trials": 4, "total_epochs": 6, "seconds": 75.0,
    "rows": [{"stage": 1, "label": "coarse", "trials": 2, "epochs": 1, "total_epochs": 2, "seconds": 20.0},
             {"stage": 2, "label": "final", "trials": 2, "epochs": 2, "total_epochs": 4, "seconds": 40.0}],
    "timing": {"timed_steps": 5, "step_seconds": 0.002, "train_steps_per_epoch": 12, "trial_overhead_seconds": 1.5},
    "notes": [],
}

FAKE = textwrap.dedent('''
    import json, os, socket, sys, time
    argv = sys.argv[1:]
    if argv[0] != "tune":  # search-status: the real CLI
        os.execv(sys.executable, [sys.executable, "-m", "kerasguide.cli", *argv])
    if "--dry-run" in argv:
        print(json.dumps(BUDGET))
        sys.exit(0)
    out = argv[argv.index("--out") + 1]
    path = os.path.join(out, "20260101-000000-demo-search")
    os.makedirs(path, exist_ok=True)
    state = {"kind": "search", "name": "demo", "status": "running", "pid": os.getpid(), "host": socket.gethostname(),
             "algorithm": "random", "workers": 0, "objective": {"metric": "val_accuracy", "direction": "max"},
             "stages": [{"index": 1, "label": "single", "epochs": 1, "trials_planned": 3, "status": "running",
                         "trials": [{"stage": 1, "trial_id": "0", "status": "completed", "score": 0.8, "epochs": 1,
                                     "seconds": 2.0, "values": {"optimizer.learning_rate": 0.01}}],
                         "best": {"stage": 1, "trial_id": "0", "score": 0.8, "epochs": 1, "values": {}}}]}
    def save():
        with open(os.path.join(path, "search.json"), "w") as f:
            json.dump(state, f)
    save()
    print(json.dumps({"event": "start", "kind": "search", "search_dir": path, "stages": [{"epochs": 1, "trials": 3}]}),
          flush=True)
    deadline = time.time() + 60
    while time.time() < deadline and not os.path.exists(os.path.join(path, "stop-request.json")):
        time.sleep(0.1)
    state["status"] = "stopped"
    os.remove(os.path.join(path, "stop-request.json"))
    save()
    print(json.dumps({"event": "end", "status": "stopped", "search_dir": path}), flush=True)
    sys.exit(1)
''')


def _commands():
    real = probe_commands()  # the real parser's options: the app offers what the CLI declares
    return {name: tuple(real[name]) for name in ("tune", "search-status")}


def test_budget_and_status_texts():
    text = budget_html(BUDGET)
    assert "2 x 1" in text and "2 x 2" in text and "4 trials" in text and "1 min 15 s" in text
    status = {"status": "running", "objective": {"metric": "val_accuracy"},
              "running": [{"stage": 1, "trial_id": "2", "epochs_done": 1, "epochs": 5, "where": "worker pid 42"}],
              "best": {"stage": 1, "trial_id": "0", "score": 0.91}, "eta_seconds": 130, "remaining_trials": 3}
    line = status_text(status)
    assert "trial 1.2 epoch 1/5 (worker pid 42)" in line and "best val_accuracy 0.9100" in line
    assert "ETA 2 min 10 s" in line


def test_tune_shows_the_budget_then_the_running_search_has_status_and_stop(make_window, settings, tmp_path, qtbot):
    script = tmp_path / "fake_kerasguide.py"
    script.write_text(f"BUDGET = {BUDGET!r}\n" + FAKE, encoding="utf-8")
    workspace = tmp_path / "runs"
    workspace.mkdir()
    settings.set_workspace(workspace)
    window = make_window(program=[sys.executable, str(script)], commands=_commands())
    preview = window.launch_tune()
    assert "--dry-run" in preview.argv and "--json" in preview.argv
    assert not window.queue.jobs  # nothing queued before the budget is confirmed
    qtbot.waitUntil(lambda: window.tune_budget is not None and window.tune_budget.isVisible(), timeout=30000)
    box = window.tune_budget
    assert "4 trials" in box.informativeText() and "6 epochs" in box.text()
    box.start_button.click()
    job = window.queue.jobs[-1]
    assert job.kind == "tune" and "--dry-run" not in job.args
    view = window.jobs_view
    qtbot.waitUntil(lambda: view.watch_of(job) is not None and view.watch_of(job).status is not None, timeout=30000)
    view.select_job(job)
    assert view.stop_search_button.isVisible() and view.stop_search_button.isEnabled()
    qtbot.waitUntil(lambda: "best val_accuracy 0.8000" in view.search_status.text(), timeout=10000)
    view.stop_search_button.click()  # the real `search-status DIR --stop`: a stop request the search reads
    qtbot.waitUntil(lambda: job.finished_state, timeout=30000)
    qtbot.waitUntil(lambda: view.watch_of(job).status.get("status") == "stopped", timeout=10000)
    state = json.loads((workspace / "20260101-000000-demo-search" / "search.json").read_text())
    assert state["status"] == "stopped"
    assert any("stop requested" in line for line in job.log)


def test_a_cli_without_dry_run_starts_tune_at_once(make_window, settings, tmp_path):
    settings.set_workspace(tmp_path / "runs")
    window = make_window(commands={"tune": ("--out", "--json-progress", "--new")})
    job = window.launch_tune()
    assert job.kind == "tune" and window.jobs_view.stop_search_button.isHidden()
