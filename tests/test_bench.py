"""The tuning benchmark's machinery (bench/tuning.py) on the fake runner: every method runs,
stops at the goal or the budget, and is counted the same way. Seconds, no training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import _common, tuning
from bench._common import Task, TrialOut, first_reach
from bench._methods import METHODS, _count
from tests.fakes import FakeRunner, write_script


@pytest.fixture
def fake_task(tmp_path, monkeypatch):
    script = write_script(tmp_path / "src")
    task = Task("fake", script, "ann", 0.9)
    monkeypatch.setitem(_common.TASKS, "fake", task)
    monkeypatch.setitem(tuning.TASKS, "fake", task)
    return task


def test_first_reach_and_counting():
    hist = [{"val_accuracy": v} for v in (0.5, 0.8, 0.91, 0.95)]
    assert first_reach(hist, 0.9) == 3 and first_reach(hist, 0.99) is None
    out = TrialOut({}, "ok", hist, 1.0, 4, first_reach(hist, 0.9))
    assert _count(out).counted == 3  # up to and including the reaching epoch
    miss = TrialOut({}, "pruned", hist[:2], 1.0, 2, None, extra={"pruned_at": 1})
    assert _count(miss).counted == 1  # an outside pruner counts up to its decision
    child = TrialOut({}, "ok", hist, 1.0, 4, 3)
    assert _count(child, initial=2).counted == 1  # a Hyperband child: only epochs after its parent's


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_and_is_summarized(fake_task, tmp_path, method):
    pytest.importorskip("keras_tuner") if method.startswith("kt_") else None
    rec = tuning.run_one("fake", method, 0, FakeRunner(), 6, {}, tmp_path / "work")
    assert rec["method"] == method and 1 <= rec["trials"] <= 6
    log = rec["trial_log"]
    assert log[0]["settings"] == {"fc_layers": [16], "learning_rate": 0.03, "epochs": 6, "batch_size": 32}
    if rec["reached"]:
        n = rec["trials_to_goal"]
        assert log[n - 1]["reached"] is not None and all(t["reached"] is None for t in log[: n - 1])
        assert rec["epochs_to_goal"] == sum(t["counted"] for t in log[:n]) > 0
        assert rec["trials"] == n  # nothing runs after the goal
    else:
        assert rec["trials"] == 6 or method in ("ladder",)


def test_table_and_partial_json(fake_task, tmp_path):
    store = _common.PartialJson(tmp_path / "r.json", {"budget": 4})
    for m in ("random", "auto"):
        store.add(tuning.run_one("fake", m, 0, FakeRunner(), 4, {}, tmp_path / "w"))
    again = _common.PartialJson(tmp_path / "r.json", {})
    assert again.done(("fake", "auto", 0)) and not again.done(("fake", "auto", 1))
    text = tuning.table(json.loads(Path(tmp_path / "r.json").read_text()), ["fake"], ["random", "auto"])
    assert "goal val_accuracy >= 0.9" in text and "auto (default)" in text


def test_rederive_ends_the_run_at_the_first_curve_that_meets_the_goal():
    def trial(curve, **kw):
        return {"settings": {}, "status": "ok", "seconds": 2.0, "epochs": len(curve), "reached": None,
                "counted": len(curve), "curve": curve, **kw}

    rec = {"task": "fake", "method": "kt_hyperband", "seed": 0, "reached": False, "decision_seconds": 0.0,
           "trial_log": [trial([0.5, 0.6]), trial([0.7, 0.9, 0.95], kt={"tuner/initial_epoch": 1}),
                         trial([0.99])]}
    tuning.rederive(rec, 0.9)
    assert rec["reached"] and rec["trials_to_goal"] == 2 and len(rec["trial_log"]) == 2
    assert rec["epochs_to_goal"] == 2 + (2 - 1) and rec["seconds_to_goal"] == 4.0
    assert tuning.rederive(rec, 0.9) == rec  # idempotent


def test_auto_first_guess_after_the_script_is_the_fast_prior_at_the_smallest_batch(fake_task):
    from bench._common import space_for
    from tuner.search import Observation, get_strategy

    space = space_for(fake_task)
    auto = get_strategy("auto", space, seed=0)
    first = auto.ask([])
    assert first == space.baseline
    nxt = auto.ask([Observation(1, first, "pruned", 0.5, [{"epoch": 1, "val_accuracy": 0.5}])])
    assert nxt["fc_layers"] == [256, 128] and nxt["learning_rate"] == 3e-3
    assert nxt["batch_size"] == min(space.params["batch_size"].choices) and nxt["epochs"] == first["epochs"]
