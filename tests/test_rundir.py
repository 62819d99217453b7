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
