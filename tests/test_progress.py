"""The live progress display: plain lines for the Jenkins console, a status line in a TTY; the
start-up apart from trial 1, the time left across sessions, the outcome printed once."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.fakes import FakeRunner, run_tune, write_script
from tuner.events import Event
from tuner.loop import LoopSettings
from tuner.progress import Progress, fmt_settings, outcome_line
from tuner.study import open_store
from tuner.summary import BestTrial, RunSummary, TrialSummary


def send(progress: Progress, type_: str, **data) -> None:
    """Events straight to the listener, as the loop's bus delivers them."""
    progress(Event(type_, data))


def summary(status: str = "goal_met", reason: str = "", run_dir: str = "/r", confirm=None, model=None,
            trials: int = 2, checks: int = 0, seconds: float = 11.9, delivery=None) -> RunSummary:
    best = BestTrial(number=2, metric=0.93, settings={"fc_layers": [256, 128]}, confirm=confirm, model=model)
    rows = [TrialSummary(number=n, status="ok") for n in range(1, trials + 1)]
    rows += [TrialSummary(number=trials + n, status="ok", confirms=2) for n in range(1, checks + 1)]
    return RunSummary(script_name="face_cnn.py", metric="val_accuracy", status=status, reason=reason,
                      script="/m/face_cnn.py", goal=0.9, run_dir=run_dir, seconds=seconds, trials=rows,
                      best=best if status != "failed" else None, delivery=delivery)


def started(progress: Progress, **extra) -> None:
    data = dict(script="/m/face_cnn.py", kind="cnn", run_dir="/r", strategy="auto", goal=0.9,
                metric="val_accuracy", max_trials=10, max_minutes=60, space="fc_layers: 1-3 layers",
                resumed_trials=0, joined=False, spent_seconds=0.0)
    send(progress, "run_started", **{**data, **extra})


def drive(progress: Progress, run_dir: str = "/r") -> None:
    started(progress)
    send(progress, "runner_warming", framework="TensorFlow")
    send(progress, "runner_ready", framework="TensorFlow", seconds=4.31)
    send(progress, "trial_started", trial=1, settings={"learning_rate": 1e-4, "fc_layers": [16], "epochs": 15},
         resumed=False)
    send(progress, "epoch_finished", trial=1, epoch=1, record={}, metric=0.61)
    send(progress, "trial_finished", trial=1, status="pruned", metric=0.62, epochs=5, seconds=4.2,
         reason="pruned at epoch 5: best val_accuracy so far 0.6200, cannot reach the goal 0.9", settings={},
         restarts=0)
    send(progress, "trial_started", trial=2, settings={"fc_layers": [256, 128], "learning_rate": 1e-3}, resumed=True)
    send(progress, "trial_restarted", trial=2, reason="the training process was killed by SIGKILL (epoch 4)",
         resumed_at_epoch=3, restart=1, max_restarts=3)
    send(progress, "epoch_finished", trial=2, epoch=4, record={}, metric=0.93)
    send(progress, "trial_finished", trial=2, status="ok", metric=0.93, epochs=4, seconds=3.0, reason=None,
         settings={}, restarts=1)
    send(progress, "goal_met", trial=2, metric=0.93, settings={}, confirm=None)
    send(progress, "run_finished", status="goal_met", reason="trial 2 reached val_accuracy 0.9300 (goal 0.9) "
         "after 2 trial(s)", run_dir=run_dir, best=None,
         summary=summary(run_dir=run_dir, model={"file": "best/model.keras", "format": "keras"}))


def test_plain_lines_for_a_non_tty():
    out = io.StringIO()
    drive(Progress(stream=out, live=False))
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0] == ("mlops: tuning /m/face_cnn.py (cnn) until val_accuracy reaches 0.9; strategy auto, "
                        "budget 10 trials / 60 min")
    assert "resuming" not in text, "a fresh study says nothing about earlier sessions"
    assert "trial 1/10: FC [16], lr 1e-4, epochs 15" in text
    assert "  trial 1 epoch 1/15: val_accuracy 0.6100" in text  # the planned epochs when they are a setting
    assert ("trial 1/10 pruned: val_accuracy 0.6200 after 5 of 15 epochs, 4.2 s — best val_accuracy so far 0.6200, "
            "cannot reach the goal 0.9") in lines
    assert "(resumed from its checkpoint)" in text
    assert ("  trial 2 restarted (restart 1 of 3): the training process was killed by SIGKILL (epoch 4); "
            "it goes on after epoch 3") in lines
    assert "  trial 2 epoch 4: val_accuracy 0.9300" in lines  # best so far excludes pruned trials
    assert "trial 2/10 ok: val_accuracy 0.9300 after 4 epochs, 3.0 s, 1 restart" in lines
    assert "\x1b[" not in text, "no terminal escapes in the Jenkins console"


def test_start_up_is_told_apart_from_trial_1():
    out = io.StringIO()
    drive(Progress(stream=out, live=False))
    lines = out.getvalue().splitlines()
    warming = lines.index("mlops: starting TensorFlow (once; every trial forks from it)…")
    ready = lines.index("mlops: TensorFlow ready after 4.3 s")
    first = next(i for i, line in enumerate(lines) if line.startswith("trial 1/10:"))
    assert warming < ready < first


def test_a_trial_that_failed_before_its_first_epoch_says_so_plainly():
    out = io.StringIO()
    progress = Progress(stream=out, live=False)
    started(progress)
    send(progress, "trial_started", trial=3, settings={"fc_layers": [64]}, resumed=False)
    send(progress, "trial_finished", trial=3, status="failed", metric=None, epochs=0, seconds=2.14,
         reason="the training script exited with code 1: ImportError", settings={}, restarts=0)
    send(progress, "trial_finished", trial=4, status="killed", metric=None, epochs=1, seconds=75,
         reason="out of memory", settings={}, restarts=2)
    lines = out.getvalue().splitlines()
    assert "trial 3/10 failed after 2.1 s — the training script exited with code 1: ImportError" in lines
    assert "trial 4/10 killed: no val_accuracy after 1 epoch, 1 min 15 s, 2 restarts — out of memory" in lines


def test_a_runner_without_a_warm_worker_prints_no_start_up_line():
    out = io.StringIO()
    progress = Progress(stream=out, live=False)
    started(progress)
    send(progress, "trial_started", trial=1, settings={"fc_layers": [16]}, resumed=False)
    assert "starting" not in out.getvalue() and "ready after" not in out.getvalue()


def test_the_outcome_is_printed_once_then_where_things_are():
    out = io.StringIO()
    drive(Progress(stream=out, live=False), run_dir="/r")
    lines = out.getvalue().splitlines()
    outcome = [line for line in lines if "goal met" in line]
    assert outcome == ["mlops: goal met after 2 trials in 11.9 s: trial 2 reached val_accuracy 0.9300 (goal 0.9)"]
    tail = lines[lines.index(outcome[0]) + 1:]
    assert tail == [
        "mlops: tuned script:  /r/best/face_cnn.py (diff: /r/best/settings.diff)",
        "mlops: trained model: /r/best/model.keras (check it: mlops predict /r INPUT)",
        "mlops: report:        /r/report.html (data: /r/summary.json)",
    ]


def test_live_mode_keeps_epochs_and_start_up_on_the_status_line():
    out = io.StringIO()
    long_dir = "/runs/" + "a-long-folder-name/" * 5 + "face_cnn"
    drive(Progress(stream=out, live=True), run_dir=long_dir)
    text = out.getvalue()
    assert "trial 2/10 ok: val_accuracy 0.9300" in text
    assert f"mlops: report:        {long_dir}/report.html (data: {long_dir}/summary.json)\n" in text, \
        "the terminal wraps a long line: a path split by a newline cannot be copied"
    assert text.count("goal met") == 1 and "mlops: goal met after 2 trials in 11.9 s" in text
    assert "mlops: tuned script:" in text and "mlops: report:" in text
    assert "trial 1 epoch 1" not in text, "epochs update the status line instead of scrolling"
    assert "mlops: starting TensorFlow" not in text and "mlops: TensorFlow ready after 4.3 s" in text


def test_a_worker_prints_trials_and_no_outcome():
    out = io.StringIO()
    drive(Progress(stream=out, live=False, prefix="[w1] ", outcome=False))
    text = out.getvalue()
    assert "[w1] trial 2/10 ok: val_accuracy 0.9300" in text
    assert "goal met" not in text and "report" not in text and "tuned script" not in text


@pytest.mark.parametrize("status, reason, expected", [
    ("budget_spent", "the trial budget of 10 is spent; best val_accuracy 0.8500 in trial 3, below the goal 0.9",
     "goal not met after 10 trials in 41 min 12 s: the trial budget of 10 is spent; best val_accuracy 0.8500 "
     "in trial 3, below the goal 0.9"),
    ("failed", "the script as written failed: ModuleNotFoundError: No module named 'kears'",
     "stopped after 10 trials in 41 min 12 s: the script as written failed: ModuleNotFoundError: "
     "No module named 'kears'"),
    ("nothing_to_tune", "model.py is below the goal (0.8100 < 0.9) and declares nothing the tuner may change",
     "nothing to tune after 10 trials in 41 min 12 s: model.py is below the goal (0.8100 < 0.9) and declares "
     "nothing the tuner may change"),
])
def test_every_outcome_says_how_many_trials_and_how_long(status, reason, expected):
    assert outcome_line(summary(status, reason, trials=10, seconds=2472)) == expected


def test_a_budget_spent_run_prints_its_outcome_once():
    out = io.StringIO()
    progress = Progress(stream=out, live=False)
    started(progress)
    send(progress, "budget_spent", reason="the trial budget of 10 is spent")
    send(progress, "run_finished", summary=summary("budget_spent", "the trial budget of 10 is spent; best "
                                                   "val_accuracy 0.8500 in trial 3, below the goal 0.9", trials=10))
    lines = out.getvalue().splitlines()
    assert [line for line in lines if "budget" in line and "spent" in line] == [
        "mlops: goal not met after 10 trials in 11.9 s: the trial budget of 10 is spent; best val_accuracy "
        "0.8500 in trial 3, below the goal 0.9"]
    assert "mlops: best script: /r/best/face_cnn.py (diff: /r/best/settings.diff)" in lines


def test_a_confirmed_goal_shows_the_seeds_and_counts_the_confirmations():
    confirm = {"metrics": [0.93, 0.91], "mean": 0.92, "min": 0.91, "max": 0.93, "complete": True}
    line = outcome_line(summary(confirm=confirm, checks=1, seconds=65))
    assert line == ("goal met after 2 trials and 1 confirmation in 1 min 05 s: trial 2 reached val_accuracy "
                    "0.9300 (goal 0.9); mean of 2 seeds 0.9200, 0.9100-0.9300")


def test_paths_inside_the_current_directory_are_shown_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    progress = Progress(stream=out, live=False)
    started(progress, script=str(tmp_path / "models" / "face_cnn.py"))
    send(progress, "run_finished", summary=summary(run_dir=str(tmp_path / "mlops-runs" / "face_cnn")))
    text = out.getvalue()
    assert "tuning models/face_cnn.py (cnn)" in text
    assert "mlops: report:       mlops-runs/face_cnn/report.html (data: mlops-runs/face_cnn/summary.json)" in text
    assert str(tmp_path) not in text


def test_time_left_counts_what_earlier_sessions_spent():
    now = [100.0]
    out = io.StringIO()
    progress = Progress(stream=out, live=False, clock=lambda: now[0])
    started(progress, resumed_trials=3, spent_seconds=18.8 * 60)
    now[0] += 60  # one minute of this session
    send(progress, "trial_started", trial=4, settings={"fc_layers": [64]}, resumed=False)
    lines = out.getvalue().splitlines()
    assert "mlops: resuming the study: 3 trials so far, 18.8 min of the budget spent" in lines
    assert "trial 4/10: FC [64]  [40.2 min left]" in lines


def test_a_resumed_study_starts_with_the_time_its_earlier_sessions_spent(tmp_path):
    """A real study, two sessions (the loop's clock advances 50 s a call): the second session's
    first line counts the first one's time, as the loop's budget does."""
    write_script(tmp_path)

    def settings(max_trials: int) -> LoopSettings:
        return LoopSettings(goal=0.999, metric="val_accuracy", maximize=True, strategy="ladder",
                            max_trials=max_trials, max_minutes=60, trial_timeout=None, seed=0, prune=False)

    def clock(start: float):
        ticks = iter(range(int(start), int(start) + 10**6, 50))
        return lambda: float(next(ticks))

    first = run_tune(tmp_path / "model.py", tmp_path / "run", settings(2), FakeRunner(), clock=clock(0))
    assert first.status == "budget_spent"
    with open_store(tmp_path / "run") as study:
        spent = study.elapsed()
    assert spent > 0
    events: list[Event] = []
    out = io.StringIO()
    progress = Progress(stream=out, live=False, clock=lambda: 0.0)
    run_tune(tmp_path / "model.py", tmp_path / "run", settings(3), FakeRunner(), clock=clock(10**6),
             listeners=[events.append, progress])
    assert events[0].type == "run_started" and events[0].data["spent_seconds"] == spent
    lines = out.getvalue().splitlines()
    assert f"mlops: resuming the study: 2 trials so far, {spent / 60:.1f} min of the budget spent" in lines
    trial_3 = next(line for line in lines if line.startswith("trial 3/3:"))
    assert trial_3.endswith(f"[{(3600 - spent) / 60:.1f} min left]")
    assert sum("goal not met" in line for line in lines) == 1


def test_ctrl_c_is_told_once_with_how_to_resume(tmp_path, monkeypatch, capsys):
    """``mlops run`` interrupted: one line (not the command's and then the CLI's), exit 130;
    after --fresh, the same command would start over, so it says to drop it."""
    import tuner.assemble
    from tuner.cli import main

    class Stopped:
        run_dir = tmp_path / "run"

        def run(self):
            raise KeyboardInterrupt

    monkeypatch.setattr(tuner.assemble, "build_tune", lambda *a, **kw: Stopped())
    script = write_script(tmp_path)
    assert main(["run", str(script), "--fresh", "--no-mail"]) == 130
    err = capsys.readouterr().err
    assert err.count("interrupted") == 1, err
    assert "mlops: interrupted (Ctrl-C); the trial was stopped and the study is saved in" in err
    assert "Run the same command without --fresh to resume." in err


def test_settings_are_shown_in_a_stable_order():
    assert fmt_settings({"batch_size": 32, "learning_rate": 3e-4, "fc_layers": [64]}) == "FC [64], lr 3e-4, batch 32"
    assert fmt_settings({}) == "as written"


def test_a_path_outside_the_current_directory_stays_absolute(tmp_path, monkeypatch):
    from tuner.progress import shown_path

    monkeypatch.chdir(tmp_path)
    assert shown_path(tmp_path / "a" / "b.py") == str(Path("a") / "b.py")
    assert shown_path("/elsewhere/run") == "/elsewhere/run"
