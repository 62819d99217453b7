"""The run directory readers never fail, whatever state a run was left in."""

from __future__ import annotations

import json

from kerasguide.config import RunConfig
from kerasguide.report import write_report
from kerasguide.rundir import RunDir, list_runs, new_run_dir, read_metrics, read_run


def test_new_run_dir_name(tmp_path):
    cfg = RunConfig(name="abc")
    rd = new_run_dir(tmp_path, cfg)
    stamp_date, stamp_time, name, short = rd.path.name.split("-")
    assert name == "abc" and len(short) == 6 and len(stamp_date) == 8 and len(stamp_time) == 6


def test_readers_survive_damage(tmp_path):
    good = RunDir(tmp_path / "a")
    good.path.mkdir()
    good.update_run(status="completed", started="2026-01-01T00:00:00+00:00", best={"metric": "val_accuracy", "value": 0.9, "epoch": 3})
    good.write_metrics([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": float("nan"), "extra": 3.0}])
    bad = tmp_path / "b"
    bad.mkdir()
    (bad / "run.json").write_text('{"status": "runn')  # a torn file from some other tool
    (bad / "metrics.csv").write_text("epoch,loss\n1,abc\n")
    runs = list_runs(tmp_path)
    assert {r.path.name for r in runs} == {"a", "b"}
    assert read_run(bad).status == "unknown"
    assert read_metrics(bad / "metrics.csv")[0]["epoch"] == 1.0
    rows = good.read_metrics()
    assert rows[1]["extra"] == 3.0 and rows[0]["extra"] != rows[0]["extra"]  # NaN for missing
    assert read_run(good.path).best["value"] == 0.9
    assert list_runs(tmp_path / "missing") == []


def test_stale_running_run(tmp_path):
    rd = RunDir(tmp_path / "r")
    rd.path.mkdir()
    rd.write_json("run.json", {"status": "running", "heartbeat": "2020-01-01T00:00:00+00:00"})
    assert read_run(rd.path).is_stale()
    rd.update_run(status="running")
    assert not read_run(rd.path).is_stale()


def test_report_from_partial_directory(tmp_path):
    rd = RunDir(tmp_path)
    rd.write_json("run.json", {"status": "failed", "error": "boom", "name": "x"})
    path = write_report(rd)
    text = path.read_text()
    assert "failed" in text and "boom" in text
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "failed"


def _run(path, status="completed", started="2026-01-01T00:00:00+00:00", value=0.9, **record):
    rd = RunDir(path)
    rd.path.mkdir(parents=True)
    rd.write_json("run.json", {"name": path.name, "status": status, "started": started, "heartbeat": started,
                               "best": {"metric": "val_accuracy", "value": value, "epoch": 2}, **record})
    return rd.path


def _folders(root):
    """A plain run, a search directory (tune) and an ensemble directory (ensemble), as those commands write them."""
    plain = _run(root / "20260101-000000-plain-aaaaaa")
    search = root / "20260102-000000-tiny-search"
    t1 = _run(search / "trials" / "20260102-000001-tiny-t1", started="2026-01-02T00:00:01+00:00", value=0.7)
    t2 = _run(search / "trials" / "20260102-000002-tiny-t2", started="2026-01-02T00:00:02+00:00", value=0.8)
    (search / "search.json").write_text(json.dumps({
        "format_version": 1, "kind": "search", "name": "tiny", "status": "running",
        "started": "2026-01-02T00:00:00+00:00", "updated": "2026-01-02T00:00:02+00:00",
        "objective": {"metric": "val_accuracy", "direction": "max"}, "best": None,
        "stages": [{"index": 1, "best": {"stage": 1, "trial_id": "1", "score": 0.8, "metric": "val_accuracy",
                                         "values": {"optimizer.learning_rate": 0.01}, "run_dir": f"trials/{t2.name}"},
                    "trials": [{"trial_id": "0", "status": "completed", "score": 0.7, "run_dir": f"trials/{t1.name}"},
                               {"trial_id": "1", "status": "completed", "score": 0.8, "run_dir": f"trials/{t2.name}"}]}],
    }))
    ensemble = root / "20260103-000000-tiny-ensemble-bbbbbb"
    members = [_run(ensemble / "members" / f"20260103-00000{i}-tiny-m{i}-cccccc", started=f"2026-01-03T00:00:0{i}+00:00")
               for i in range(2)]
    (ensemble / "ensemble.json").write_text(json.dumps({
        "format_version": 1, "kind": "seeds", "name": "tiny-ensemble",
        "members": [{"name": m.name, "run_dir": f"members/{m.name}"} for m in members],
        "validation": {"examples": 360, "ensemble": {"accuracy": 0.95, "log_loss": 0.2}},
        "test": {"examples": 100, "ensemble": {"accuracy": 0.93, "log_loss": 0.25}},
    }))
    return plain, search, [t1, t2], ensemble, members


def test_list_runs_lists_run_directories_only_unless_nested(tmp_path):
    plain, search, trials, ensemble, members = _folders(tmp_path)
    assert [r.path for r in list_runs(tmp_path)] == [plain]  # the plain listing is unchanged
    listed = list_runs(tmp_path, nested=True)
    # newest first, each folder of runs followed by the runs inside it (oldest first)
    assert [r.path for r in listed] == [ensemble, *members, search, *trials, plain]
    assert [r.parent for r in listed] == [None, ensemble, ensemble, None, search, search, None]
    by_path = {r.path: r for r in listed}
    found = by_path[search]
    assert (found.kind, found.is_group, found.status, found.name) == ("search", True, "running", "tiny")
    # still running: the best trial so far, from the stages
    assert found.best == {"metric": "val_accuracy", "value": 0.8, "trial": "1", "stage": 1,
                          "values": {"optimizer.learning_rate": 0.01}, "run_dir": str(trials[1].resolve())}
    assert found.record["trials_done"] == 2 and found.started == "2026-01-02T00:00:00+00:00"
    ens = by_path[ensemble]
    assert (ens.kind, ens.status, ens.name) == ("ensemble", "completed", "tiny-ensemble")
    assert ens.final == {"val_accuracy": 0.95, "test_accuracy": 0.93}
    assert ens.best == {"metric": "val_accuracy", "value": 0.95, "label": "ensemble"}
    assert ens.started == "2026-01-03T00:00:00+00:00"
    assert not by_path[plain].is_group and by_path[plain].kind == "run"


def test_folders_of_runs_while_they_run_or_after_they_stopped(tmp_path):
    from kerasguide.rundir import read_ensemble, read_search

    # An ensemble training its members has no ensemble.json yet: as its members go.
    ensemble = tmp_path / "20260103-000000-x-ensemble-bbbbbb"
    _run(ensemble / "members" / "m0")
    live = _run(ensemble / "members" / "m1", status="running")
    RunDir(live).update_run(status="running")  # a fresh heartbeat
    info, children = read_ensemble(ensemble)
    assert info.status == "running" and not info.is_stale() and len(children) == 2
    RunDir(live).update_run(status="interrupted")
    assert read_ensemble(ensemble)[0].status == "interrupted"  # the member that stopped it
    # A search whose trial keeps running past search.json's last write is alive while the trial beats.
    search = tmp_path / "20260102-000000-x-search"
    trial = _run(search / "trials" / "t0", status="running")
    (search / "search.json").write_text(json.dumps({"status": "running", "started": "2026-01-02T00:00:00+00:00",
                                                    "updated": "2020-01-01T00:00:00+00:00", "stages": []}))
    RunDir(trial).update_run(status="running")
    info, _ = read_search(search)
    assert info.status == "running" and not info.is_stale() and info.best == {}
    # Damaged files never make the listing fail.
    (search / "search.json").write_text('{"status": "runn')
    (ensemble / "ensemble.json").write_text("[1, 2")
    assert {r.path for r in list_runs(tmp_path, nested=True) if r.parent is None} == {search, ensemble}
