"""Progress of jobs that are more than one run: an ensemble's members one after the other, a search's trials."""

from __future__ import annotations

from pathlib import Path

import pytest
from gui_support import ALL_COMMANDS
from kerasguide_gui.jobs import COMPLETED, Progress, parse_event

DATA = Path(__file__).resolve().parent / "data"


def _recorded_run(run_dir: str) -> list[dict]:
    lines = (DATA / "run_progress.jsonl").read_text().replace("{run_dir}", run_dir).splitlines()
    return [parse_event(line) for line in lines]


def test_an_ensembles_second_member_is_not_shown_as_done():
    # `kerasguide ensemble --json-progress`: each member is a run with its own start ... end.
    progress = Progress(runs_total=3)
    seen = []
    for member in range(3):
        for event in _recorded_run(f"/ens/members/m{member}"):
            progress.apply(event)
            seen.append((member, event["event"], progress.fraction, progress.describe()))
        if member == 0:
            # the first member is done: a third of the job, not all of it
            assert progress.fraction == pytest.approx(1 / 3)
    fractions = [f for _, _, f, _ in seen if f is not None]
    assert fractions == sorted(fractions), "progress never goes backwards across members"
    second = [(f, text) for m, kind, f, text in seen if m == 1 and kind == "epoch"]
    assert all(1 / 3 < f <= 2 / 3 for f, _ in second)
    assert second[0][1].startswith("run 2/3 · epoch 1/4") and "ETA" in second[0][1]
    assert progress.fraction == 1.0 and progress.run_dir == "/ens/members/m2"


def test_an_ensemble_of_unknown_size_restarts_the_count_per_member():
    progress = Progress()
    for event in _recorded_run("/m0"):
        progress.apply(event)
    for event in _recorded_run("/m1")[:11]:  # up to the second member's first epoch
        progress.apply(event)
    assert progress.fraction == pytest.approx(0.25)
    assert progress.describe().startswith("run 2 · epoch 1/4") and "ETA" in progress.describe()


def test_whole_job_eta_counts_the_members_still_to_train():
    progress = Progress(runs_total=3)
    progress.apply({"event": "start", "run_dir": "a", "epochs": 4})
    progress.apply({"event": "epoch", "epoch": 2, "total": 4, "elapsed": 10.0, "eta": 10.0})
    assert progress.remaining == pytest.approx(10.0 + 2 * 20.0)
    assert "ETA 0:50" in progress.describe()


SEARCH = [
    {"event": "start", "kind": "search", "search_dir": "/ws/s", "stages": [
        {"epochs": 1, "trials": 4, "label": "coarse"}, {"epochs": 5, "trials": 2, "label": "fine"}]},
    {"event": "stage", "stage": 1, "label": "coarse", "epochs": 1, "trials": 4},
    *[{"event": "trial", "stage": 1, "trial_id": f"1-{t}", "status": s, "seconds": 2.0 if s != "running" else None}
      for t in range(4) for s in ("running", "completed")],
    {"event": "stage", "stage": 2, "label": "fine", "epochs": 5, "trials": 2},
    {"event": "trial", "stage": 2, "trial_id": "2-0", "status": "running"},
]


def test_a_search_counts_its_trials():
    progress = Progress()
    fractions = []
    for event in SEARCH:
        progress.apply(event)
        fractions.append(progress.fraction)
    assert fractions[0] == 0.0 and fractions == sorted(fractions)
    assert progress.fraction == pytest.approx(4 / 6)
    # 4 one-epoch trials took 8 s (2 s an epoch): the 2 five-epoch trials left take about 10 s each
    assert progress.remaining == pytest.approx(20.0)
    assert progress.describe() == "stage 2/2 · trial 4/6 · ETA 0:20"
    assert progress.run_dir is None and progress.search_dir == "/ws/s"
    progress.apply({"event": "end", "status": "completed", "search_dir": "/ws/s", "error": None})
    assert progress.fraction == 1.0 and "ETA" not in progress.describe()


def _window_with(make_window, command: str):
    return make_window(commands=dict(ALL_COMMANDS, **{command: ("--out", "--json-progress")}))


def _run_job(window, qtbot, command: str):
    seen = []
    window.queue.jobChanged.connect(lambda job: seen.append((job.progress.fraction, job.progress.describe())))
    job = window.start_job(command)
    assert job is not None
    qtbot.waitUntil(lambda: job.finished_state, timeout=30000)
    assert job.state == COMPLETED, "\n".join(job.stderr_tail)
    return job, seen


def test_an_ensemble_job_from_the_gui_shows_its_members_progress(make_window, qtbot, fake_mode, monkeypatch):
    monkeypatch.setenv("FAKE_CLI_MEMBERS", "3")
    window = _window_with(make_window, "ensemble")
    window.document.set_value(("ensemble", "members"), 3)
    job, seen = _run_job(window, qtbot, "ensemble")
    assert job.progress.runs_total == 3 and job.progress.runs == 3
    values = [f for f, _ in seen if f is not None]
    assert values == sorted(values) and max(values) == 1.0
    assert any(1 / 3 < f < 2 / 3 for f in values), "the second member's epochs are shown"
    assert any(text.startswith("run 2/3") for _, text in seen)


def test_a_tune_job_from_the_gui_counts_trials(make_window, qtbot, fake_mode):
    window = _window_with(make_window, "tune")
    job, seen = _run_job(window, qtbot, "tune")
    values = [f for f, _ in seen if f is not None]
    assert any(0.0 < f < 1.0 for f in values) and values == sorted(values) and max(values) == 1.0
    assert any("trial 3/6" in text for _, text in seen)
    assert job.progress.search_dir and Path(job.progress.search_dir).is_dir()
    assert f"search directory: {job.progress.search_dir}" in window.jobs_view.detail.text()
    assert window.jobs_view.bar.value() == 1000


# ------------------------------------------------------- check and lr-find: steps with an ETA
NAMES = ["data", "initialization", "initial_loss", "regularization", "overfit", "gradients"]


def test_a_check_job_counts_its_checks_with_an_eta():
    # `kerasguide check --json-progress`: a check and a step event per check done.
    progress = Progress()
    progress.apply({"event": "start", "run_dir": "/ws/c", "name": "x", "kind": "check", "planned": NAMES})
    progress.apply({"event": "stage", "stage": "checks"})
    assert progress.fraction is None and progress.describe() == "checks"
    for k, name in enumerate(NAMES[:2], start=1):
        progress.apply({"event": "check", "name": name, "passed": True})
        progress.apply({"event": "step", "stage": "checks", "step": k, "steps": 6, "elapsed": 2.0 * k,
                        "eta": 2.0 * (6 - k), "name": name})
    assert progress.fraction == pytest.approx(2 / 6) and progress.remaining == pytest.approx(8.0)
    assert progress.describe() == "check 2/6 · ETA 0:08"
    assert [c["name"] for c in progress.checks] == NAMES[:2]
    progress.apply({"event": "end", "status": "completed", "run_dir": "/ws/c", "error": None})
    assert progress.fraction == 1.0 and "ETA" not in progress.describe()


def test_an_lr_sweep_shows_its_steps_and_eta_and_a_run_keeps_its_epoch_eta():
    progress = Progress()
    progress.apply({"event": "start", "run_dir": "/ws/l", "name": "x", "kind": "lr_find", "steps": 100})
    progress.apply({"event": "stage", "stage": "lr_find"})
    progress.apply({"event": "step", "stage": "lr_find", "step": 40, "steps": 100, "elapsed": 4.0, "eta": 6.0,
                    "lr": 1e-3, "loss": 2.0})
    assert progress.fraction == pytest.approx(0.4)
    assert progress.describe() == "step 40/100 · ETA 0:06 · lr_find"
    # A training run's step events never replace the ETA of its epochs.
    run = Progress()
    run.apply({"event": "start", "run_dir": "/ws/r", "epochs": 4})
    run.apply({"event": "epoch", "epoch": 1, "total": 4, "elapsed": 10.0, "eta": 30.0})
    run.apply({"event": "step", "epoch": 2, "step": 3, "steps": 12, "eta": 999.0})
    assert run.remaining == pytest.approx(30.0)


@pytest.mark.parametrize("command, unit", [("check", "check"), ("lr-find", "step")])
@pytest.mark.parametrize("accepts", [True, False])
def test_check_and_lr_find_jobs_show_a_determinate_bar_with_an_eta(make_window, qtbot, fake_mode, monkeypatch,
                                                                   tmp_path, command, unit, accepts):
    """With a CLI that has `--json-progress` for them, the app asks for it and shows how far and how long."""
    import json

    from kerasguide_gui.jobs import RUNNING

    log = tmp_path / "argv.log"
    monkeypatch.setenv("FAKE_CLI_LOG", str(log))
    fake_mode("ok", delay=0.15)
    options = ALL_COMMANDS[command] + (("--json-progress",) if accepts else ())
    window = make_window(commands=dict(ALL_COMMANDS, **{command: options}))
    bar = window.jobs_view.bar
    seen = []
    window.queue.jobChanged.connect(lambda job: seen.append((job.state, bar.maximum(), bar.value(), bar.format())))
    job, _ = _run_job(window, qtbot, command)
    argv = json.loads(log.read_text().splitlines()[-1])
    assert argv[0] == command and ("--json-progress" in argv) == accepts
    running = [s for s in seen if s[0] == RUNNING]
    if accepts:
        partial = [s for s in running if s[1] == 1000 and 0 < s[2] < 1000]
        assert partial, seen  # determinate: part of the way
        assert [s[2] for s in partial] == sorted(s[2] for s in partial)
        assert any(text.startswith(f"{unit} ") and "ETA" in text for *_, text in partial), seen
    else:
        assert all(s[1] == 0 for s in running)  # no events: a busy bar, as before
    assert bar.maximum() == 1000 and bar.value() == 1000
    # Where it wrote: from the start event, or from the result line of the older CLI.
    assert job.run_dir and Path(job.run_dir).is_dir() and (Path(job.run_dir) / "run.json").is_file()
    assert window.runs.selected_paths() == [Path(job.run_dir)]


@pytest.mark.parametrize("command, inside", [("tune", 6), ("ensemble", 3)])
def test_show_run_after_a_tune_or_ensemble_job_selects_its_folder(make_window, qtbot, fake_mode, command, inside):
    """The search or ensemble directory is a row of the runs browser, followed by its trials or members."""
    window = _window_with(make_window, command)
    window.document.set_value(("ensemble", "members"), 3)
    job, _ = _run_job(window, qtbot, command)
    folder = Path(job.run_dir)
    assert folder.is_dir() and (folder / ("search.json" if command == "tune" else "ensemble.json")).is_file()
    runs = window.runs
    assert runs.selected_paths() == [folder]  # selected when the job finished
    runs.select_paths([])
    window.jobs_view.open_button.click()  # and by "Show run"
    assert runs.selected_paths() == [folder] and window.tabs.currentIndex() == window.TABS.index("Runs")
    model = runs.model
    row = model.row_of(folder)
    assert model.index(row, model.headers.index("Kind")).data() == ("search" if command == "tune" else "ensemble")
    assert len(model.children_of(folder)) == inside
    kind = "trial" if command == "tune" else "member"
    assert [model.index(row + i, 1).data() for i in range(1, inside + 1)] == [kind] * inside
    assert "best" in runs.title.text()
