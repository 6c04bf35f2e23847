"""The workers benchmark's simulation (bench/workers.py) on made-up curves: one worker replays
the loop's sequence, two run side by side, the goal stops the others at an epoch end, and
settings never recorded get a curve by the documented rule. Milliseconds, no training."""

from __future__ import annotations

import pytest

from bench import _common, workers
from bench._common import Task, space_for
from tests.fakes import write_script
from tuner.search import Observation, get_strategy

FLAT = [0.5] * 6          # never reaches 0.9; the goal rule prunes it at epoch 3
GOOD = [0.6, 0.8, 0.95]   # reaches 0.9 at epoch 3


@pytest.fixture
def fake(tmp_path, monkeypatch):
    task = Task("fake", write_script(tmp_path / "src"), "ann", 0.9)
    monkeypatch.setitem(_common.TASKS, "fake", task)
    space = space_for(task)
    auto = get_strategy("auto", space, seed=0)
    first = auto.ask([])
    second = auto.ask([Observation(1, first, "running", None)])
    return task, space, first, second


def library(*trials, floor=None):
    runs = [{"task": "fake", "seed": seed, "method": "auto",
             "trial_log": [{"settings": s, "curve": c, "seconds": 1.0 + 0.5 * len(c)} for s, c in group]}
            for seed, group in trials]
    return workers.Library({"runs": runs * 3}, floor)  # x3: enough points for the time fit


def test_one_worker_replays_the_loop_and_two_run_side_by_side(fake):
    task, space, first, second = fake
    lib = library((0, [(first, FLAT), (second, GOOD)]))
    a, b = lib.time("fake", first)
    assert (a, b) == (1.0, 0.5)
    one = workers.simulate(task, 0, 1, lib, budget=5, space=space)
    log = one["trial_log"]
    assert one["reached"] and [t["status"] for t in log] == ["pruned", "ok"]
    assert log[1]["start"] == log[0]["end"]  # one after the other
    assert one["epochs_to_goal"] == log[0]["epochs"] + 3 == one["epochs_trained"]
    assert one["wall_to_goal"] == pytest.approx(2 * a + (log[0]["epochs"] + 3) * b)

    two = workers.simulate(task, 0, 2, lib, budget=5, space=space)
    log2 = two["trial_log"]
    assert [t["start"] for t in log2[:2]] == [0.0, 0.0] and log2[1]["reached"] == 3
    assert two["wall_to_goal"] == pytest.approx(a + 3 * b) and two["wall_to_goal"] < one["wall_to_goal"]
    assert two["epochs_to_goal"] <= one["epochs_to_goal"]
    assert two["sources"]["exact"] >= 2


def test_the_goal_stops_the_others_at_an_epoch_end_after_they_hear():
    t = workers.SimTrial(1, 0, {}, start=0.0, a=1.0, b=1.0, values=FLAT, source="exact", epochs=10)
    # goal met at 2.5 s: the epoch ending at 3 s is seen at 3.25 s (poll), STOP read at the next end (4 s)
    assert workers.stopped_at(t, 2.5) == 3
    slow = workers.SimTrial(2, 1, {}, start=0.0, a=1.0, b=20.0, values=FLAT, source="exact", epochs=10)
    # epochs of 20 s: the 5-s heartbeat hears first, the epoch in progress is the last
    assert workers.stopped_at(slow, 2.5) == 1


def test_unrecorded_settings_get_a_curve_by_the_documented_rule(fake):
    task, space, first, second = fake
    lib = library((0, [(first, FLAT)]), (1, [(second, GOOD)]))
    assert lib.lookup("fake", 0, first).source == "exact"
    assert lib.lookup("fake", 0, second).source == "other-seed"
    near = {**second, "learning_rate": second["learning_rate"] * 1.1}
    found = lib.lookup("fake", 0, near)
    assert found.source == "neighbour" and found.values == GOOD


def test_summaries_and_table_without_training(fake):
    task, space, first, second = fake
    lib = library((0, [(first, FLAT), (second, GOOD)]))
    rows = [workers.simulate(task, 0, n, lib, budget=5, space=space) for n in (1, 2, 8)]
    summary = workers.sim_summary(rows, [1, 2, 8])
    assert summary["per_workers"]["1"]["epoch_growth"] == 1.0 and "pass" in summary["target"]
    measured = [{"task": "fake", "seed": 0, "workers": n, "wall": w, "reached": True, "goal_epoch_at": w - 1,
                 "epochs_trained": 6, "first_trial_at": 1.0, "second_trial_at": 3.0}
                for n, w in ((1, 10.0), (2, 6.0))]
    ms = workers.measured_summary(measured)
    assert ms["median_ratio"] == 0.6 and ms["target"]["pass"]
    text = workers.table({"meta": {"budget": 5, "cpus": 2},
                          "measured": {"tasks": ["fake"], "seeds": [0], "threads": "split", "rows": measured,
                                       "summary": ms, "thread_env": {"1": {}, "2": {}}},
                          "simulated": {"tasks": ["fake"], "seeds": [0], "workers": [1, 2, 8], "rows": rows,
                                        "summary": summary}})
    assert "PASS" in text and "simulated" in text and "0.60" in text
