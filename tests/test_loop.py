"""The tune loop's decisions, with a deterministic fake runner (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes import FakeRunner, quality, run_tune, write_script
from tuner.errors import SearchError
from tuner.events import Event
from tuner.loop import LoopSettings, TuneLoop
from tuner.pruning import GoalPruner, MedianPruner, PrunePolicy, meets_goal
from tuner.study import open_store


def settings(**kw) -> LoopSettings:
    base = dict(goal=0.9, metric="val_accuracy", maximize=True, strategy="ladder", max_trials=10,
                max_minutes=60, trial_timeout=None, seed=0, prune=False)
    base.update(kw)
    return LoopSettings(**base)


def run_loop(tmp_path: Path, runner: FakeRunner | None = None, events: list | None = None, **kw):
    script = tmp_path / "model.py"
    if not script.exists():
        write_script(tmp_path)
    runner = runner or FakeRunner()
    listeners = [events.append] if events is not None else []
    return run_tune(script, tmp_path / "run", settings(**kw), runner, listeners=listeners), runner


def test_goal_met_stops_at_the_first_trial_that_reaches_it(tmp_path):
    events: list[Event] = []
    outcome, runner = run_loop(tmp_path, events=events)
    assert outcome.status == "goal_met" and outcome.exit_code == 0
    metrics = [t["metric"] for t in outcome.summary.to_json()["trials"]]
    assert metrics[-1] >= 0.9 and all(m < 0.9 for m in metrics[:-1])
    assert len(runner.started) == len(metrics) > 1
    # the first trial is the script as written
    assert runner.started[0] == {"fc_layers": [16], "learning_rate": 0.03, "epochs": 6, "batch_size": 32}
    types = [e.type for e in events]
    assert types[0] == "run_started" and types[-1] == "run_finished" and "goal_met" in types
    assert types.count("trial_started") == types.count("trial_finished") == len(metrics)


def test_best_script_and_diff_and_summary_are_written(tmp_path):
    outcome, _ = run_loop(tmp_path)
    run = tmp_path / "run"
    best = outcome.summary.to_json()["best"]
    assert best["metric"] == max(t["metric"] for t in outcome.summary.to_json()["trials"])
    text = (run / "best" / "model.py").read_text()
    assert f"FC_LAYERS = {best['settings']['fc_layers']}" in text.replace("\n", " ").replace("  ", " ") or \
        str(best["settings"]["fc_layers"][0]) in text
    diff = (run / "best" / "settings.diff").read_text()
    assert diff.startswith("--- a/model.py") and "+FC_LAYERS" in diff or "+LEARNING_RATE" in diff
    summary = json.loads((run / "summary.json").read_text())
    assert summary["goal_met"] is True and summary["status"] == "goal_met"
    assert summary["best"]["number"] == best["number"]
    assert (run / "events.jsonl").read_text().count("\n") >= 2 * len(summary["trials"])


def test_trial_budget_spent_exits_1_with_best_so_far(tmp_path):
    outcome, runner = run_loop(tmp_path, goal=0.999, max_trials=3)
    assert outcome.status == "budget_spent" and outcome.exit_code == 1
    assert len(runner.started) == 3
    assert "trial budget of 3" in outcome.reason and "best val_accuracy" in outcome.reason


def test_time_budget_counts_across_sessions(tmp_path):
    clock = iter(range(0, 100000, 50))  # every call to the clock advances 50 s
    write_script(tmp_path)
    loop = TuneLoop(tmp_path / "model.py", tmp_path / "run", settings(goal=0.999, max_minutes=3),
                    FakeRunner(), kind="ann", clock=lambda: float(next(clock)))
    outcome = loop.run()
    assert outcome.status == "budget_spent" and "time budget of 3 minutes" in outcome.reason
    assert open_store(tmp_path / "run").elapsed() >= 180


def test_strategy_with_nothing_new_to_try_ends_the_run(tmp_path):
    outcome, runner = run_loop(tmp_path, goal=0.999, max_trials=200)
    assert outcome.status == "budget_spent" and "nothing new to try" in outcome.reason
    keys = [json.dumps(s, sort_keys=True) for s in runner.started]
    assert len(keys) == len(set(keys)), "no setting is tried twice"


def test_unknown_strategy_lists_the_valid_ones(tmp_path):
    with pytest.raises(SearchError, match=r"unknown strategy 'hyperopt'; valid strategies: auto, ladder, random, tpe"):
        run_loop(tmp_path, strategy="hyperopt")


@pytest.mark.parametrize("strategy", ["auto", "ladder", "random", "tpe"])
def test_every_strategy_reaches_an_easy_goal(tmp_path, strategy):
    outcome, _ = run_loop(tmp_path, strategy=strategy, goal=0.85, max_trials=30)
    assert outcome.status == "goal_met", outcome.reason


def test_resume_does_not_rerun_finished_trials(tmp_path):
    first, r1 = run_loop(tmp_path, goal=0.999, max_trials=3)
    assert len(r1.started) == 3
    second, r2 = run_loop(tmp_path, goal=0.999, max_trials=5)
    assert len(r2.started) == 2, "only the two new trials run"
    assert [t["number"] for t in second.summary.to_json()["trials"]] == [1, 2, 3, 4, 5]
    assert r1.started[0] not in r2.started


def test_a_trial_left_running_by_a_killed_session_is_resumed_first(tmp_path):
    write_script(tmp_path)
    run = tmp_path / "run"
    study = open_store(run, name="model")
    rec = study.claim_trial({"fc_layers": [16], "learning_rate": 0.03, "epochs": 6, "batch_size": 32},
                            lambda n: run / "trials" / f"{n:04d}", "a-killed-session:1")
    study.close()
    (Path(rec.workdir)).mkdir(parents=True)
    (Path(rec.workdir) / "metrics.jsonl").write_text('{"epoch": 1, "val_accuracy": 0.55}\n')
    runner = FakeRunner()
    loop = TuneLoop(tmp_path / "model.py", run, settings(max_trials=1, goal=0.999), runner, kind="ann")
    outcome = loop.run()
    assert len(runner.started) == 1 and outcome.summary.to_json()["trials"][0]["number"] == 1
    epochs = [r["epoch"] for r in outcome.summary.to_json()["trials"][0]["history"]]
    assert epochs == [1, 2, 3, 4, 5, 6], "the resumed trial continued after its recorded epoch"


def test_pruning_stops_trials_that_cannot_beat_the_best(tmp_path):
    events: list[Event] = []
    # the first trials are good; later ones bad: bad ones get pruned
    good = {"n": 0}

    def final(s):
        good["n"] += 1
        return 0.88 if good["n"] <= 2 else 0.6

    outcome, _ = run_loop(tmp_path, runner=FakeRunner(final=final, epochs=8), events=events, goal=0.89,
                          max_trials=5, prune=True, strategy="random")
    statuses = [t["status"] for t in outcome.summary.to_json()["trials"]]
    assert statuses == ["ok", "ok", "pruned", "pruned", "pruned"]
    pruned = [t for t in outcome.summary.to_json()["trials"] if t["status"] == "pruned"]
    assert all(t["epochs"] < 8 for t in pruned) and all("median" in t["reason"] for t in pruned)


def test_median_pruner_waits_for_warmup_and_peers():
    p = MedianPruner(maximize=True, warmup_epochs=2, min_peers=2)
    peers = [[{"m": 0.8}, {"m": 0.85}], [{"m": 0.7}, {"m": 0.9}]]
    assert p.should_prune("m", [{"m": 0.1}], peers) is None  # warm-up
    assert p.should_prune("m", [{"m": 0.1}, {"m": 0.2}], peers[:1]) is None  # too few peers
    assert "median" in p.should_prune("m", [{"m": 0.1}, {"m": 0.2}], peers)
    assert p.should_prune("m", [{"m": 0.1}, {"m": 0.95}], peers) is None  # better than the best
    lo = MedianPruner(maximize=False)
    assert lo.should_prune("loss", [{"loss": 0.9}, {"loss": 0.9}], [[{"loss": 1}, {"loss": 0.5}]] * 2)


def test_a_failing_baseline_stops_the_run_with_its_reason(tmp_path):
    outcome, runner = run_loop(tmp_path, runner=FakeRunner(crash=lambda s, n: 1))
    assert outcome.status == "failed" and outcome.exit_code == 1
    assert len(runner.started) == 1
    assert "injected crash" in outcome.reason
    assert "RuntimeError: injected crash" in outcome.summary.to_json()["trials"][0]["log_tail"]


def test_three_failures_in_a_row_stop_the_run(tmp_path):
    outcome, runner = run_loop(tmp_path, runner=FakeRunner(crash=lambda s, n: 2 if n > 1 else None),
                               goal=0.999)
    assert outcome.status == "failed" and "3 trials in a row failed" in outcome.reason
    assert len(runner.started) == 4


def test_a_script_with_nothing_to_tune_below_the_goal_exits_1(tmp_path):
    # the optimizer comes from a function of the script: no rate the tuner can see or write
    script = write_script(tmp_path, "import keras\nmodel = keras.Sequential()\n"
                                    "model.compile(loss='mse', optimizer=make_optimizer())\n"
                                    "model.fit(x, y, validation_split=0.2)\n")
    runner = FakeRunner(final=lambda s: 0.7)
    loop = TuneLoop(script, tmp_path / "run", settings(), runner, kind="ann")
    outcome = loop.run()
    assert outcome.status == "nothing_to_tune" and outcome.exit_code == 1
    assert len(runner.started) == 1 and "declares nothing the tuner may change" in outcome.reason


def test_minimize_metric_goal(tmp_path):
    runner = FakeRunner(final=lambda s: 1 - quality(s))

    outcome, _ = run_loop(tmp_path, runner=runner, metric="val_accuracy", maximize=False, goal=0.12)
    assert outcome.status == "goal_met" and outcome.summary.to_json()["best"]["metric"] <= 0.12


def test_a_changed_script_does_not_silently_resume_an_old_study(tmp_path):
    run_loop(tmp_path, goal=0.999, max_trials=1)
    (tmp_path / "model.py").write_text((tmp_path / "model.py").read_text() + "\n# changed\n")
    from tuner.errors import StudyError

    with pytest.raises(StudyError, match=r"belongs to another version of model.py \(started from \w{12}, this one is \w{12}\); .*--fresh"):
        run_loop(tmp_path, goal=0.999, max_trials=2)


def test_goal_pruner_stops_hopeless_curves_only():
    p = GoalPruner(goal=0.9, maximize=True)
    flat = [{"m": v} for v in (0.55, 0.57, 0.58, 0.585, 0.59)]
    assert "cannot reach the goal 0.9" in p.should_prune("m", flat, planned=10)
    steep = [{"m": v} for v in (0.50, 0.60, 0.70, 0.78)]
    assert p.should_prune("m", steep, planned=10) is None  # 0.78 + 1.5*0.1*6 > 0.9
    assert p.should_prune("m", flat[:3], planned=10) is None  # warm-up: a third of the plan
    late_jump = [{"m": v} for v in (0.5, 0.5, 0.5, 0.5, 0.72, 0.74)]
    assert p.should_prune("m", late_jump, planned=10) is None  # a jump of 0.22 once: it may again
    assert p.should_prune("m", flat, planned=None) is None  # no plan, no extrapolation
    assert p.should_prune("m", flat, planned=5) is None  # last epoch: nothing to save
    lo = GoalPruner(goal=0.1, maximize=False)
    assert lo.should_prune("loss", [{"loss": v} for v in (0.9, 0.88, 0.87, 0.86)], planned=10)


def test_goal_pruner_reads_the_recent_slope_not_the_first_jump():
    p = GoalPruner(goal=0.9, maximize=True)
    # a big first jump, then a plateau: the steepest-jump rule (0.3/epoch) kept it training
    plateau = [{"m": v} for v in (0.5, 0.8, 0.81, 0.8, 0.81, 0.8)]
    assert "levelled off at 0.8100" in p.should_prune("m", plateau, planned=15)
    # still climbing at 0.02 an epoch: 0.83 + 1.5 * 0.02 * 9 = 1.1 may reach 0.9
    climbing = [{"m": v} for v in (0.5, 0.77, 0.79, 0.81, 0.83)]
    assert p.should_prune("m", climbing, planned=15) is None
    # noise: a plateau 0.05 under the goal is left alone when the curves move 0.03 by chance
    near = [{"m": v} for v in (0.6, 0.84, 0.85, 0.85, 0.85)]
    assert p.should_prune("m", near, planned=15) is not None
    assert p.should_prune("m", near, planned=15, margin=0.06) is None


def test_a_diverged_trial_stops_at_once(tmp_path):
    from tuner.pruning import diverged

    policy = PrunePolicy(metric="val_accuracy", goal=0.9, planned=15, peers=[])
    nan = [{"epoch": 1, "loss": float("nan"), "val_accuracy": 0.1}]
    why = policy.check(nan)
    assert why is not None and "diverged at epoch 1" in why and "lower learning rate" in why
    assert diverged({"epoch": 2, "loss": float("inf")}) is not None
    assert diverged({"epoch": 2, "loss": 0.3}) is None and diverged({"epoch": 2}) is None
    # a diverged epoch written by a trial reads back as NaN and still stops it
    (tmp_path / "metrics.jsonl").write_text(json.dumps(nan[0]) + "\n")
    from tuner.trial import read_history

    assert "diverged" in policy.check(read_history(tmp_path))


def test_the_goal_rule_allows_twice_the_measured_noise():
    flat = [[{"epoch": i + 1, "val_accuracy": v} for i, v in enumerate((0.5, 0.8, 0.83, 0.8, 0.83, 0.8))]]
    policy = PrunePolicy.for_trial("val_accuracy", 0.9, True, 15, flat)
    assert policy.noise == pytest.approx(0.03)
    assert policy.goal_margin == pytest.approx(0.06)
    near = [{"epoch": i + 1, "val_accuracy": v} for i, v in enumerate((0.6, 0.84, 0.85, 0.85, 0.85))]
    assert policy.check(near) is None  # 0.85 + 0.06 >= 0.9: within the noise
    assert PrunePolicy.for_trial("val_accuracy", 0.9, True, True, flat).planned is None


def test_baseline_that_cannot_reach_the_goal_is_pruned_early(tmp_path):
    outcome, _ = run_loop(tmp_path, runner=FakeRunner(final=lambda s: 0.6 if s["fc_layers"] == [16] else 0.95,
                                                      epochs=6), prune=True)
    first = outcome.summary.to_json()["trials"][0]
    assert first["status"] == "pruned" and first["epochs"] < 6 and "cannot reach the goal" in first["reason"]
    assert outcome.status == "goal_met"


def test_prune_policy_round_trips_through_the_workdir(tmp_path):
    peers = [[{"epoch": 1, "m": 0.8, "loss": 1}, {"epoch": 2, "m": 0.9}]] * 2
    PrunePolicy(metric="m", goal=0.95, planned=6, peers=peers).write(tmp_path)
    policy = PrunePolicy.read(tmp_path)
    assert policy.planned == 6 and policy.peers[0] == [{"epoch": 1, "m": 0.8}, {"epoch": 2, "m": 0.9}]
    assert "median" in policy.check([{"m": 0.1}, {"m": 0.2}])
    assert policy.check([{"m": 0.1}, {"m": 0.96}]) is None  # at the goal: never pruned
    assert PrunePolicy.read(tmp_path / "nowhere") is None


def test_float32_metrics_meet_the_goal_they_print_as():
    assert meets_goal(0.8999999761581421, 0.9)  # 45/50 in float32
    assert not meets_goal(0.8998, 0.9)
    assert meets_goal(0.1000000015, 0.1, maximize=False) and not meets_goal(0.11, 0.1, maximize=False)
    assert not meets_goal(None, 0.9) and not meets_goal(0.95, None)


def test_a_goal_met_run_seeds_the_next_run_of_the_same_script(tmp_path):
    store = tmp_path / "winners.json"
    write_script(tmp_path)
    first = run_tune(tmp_path / "model.py", tmp_path / "run1", settings(strategy="auto"), FakeRunner(),
                     winners_file=store)
    assert first.status == "goal_met"
    won = first.summary.to_json()["best"]["settings"]
    [entry] = json.loads(store.read_text())["entries"]
    assert entry["settings"] == won and entry["script"] == "model.py"
    assert entry["fingerprint"]["layers"] == {"Dense": 2} and entry["fingerprint"]["input_shape"] == [8]
    runner = FakeRunner()
    second = run_tune(tmp_path / "model.py", tmp_path / "run2", settings(strategy="auto"), runner,
                      winners_file=store)
    assert runner.started[1] == won and len(second.summary.to_json()["trials"]) == 2
