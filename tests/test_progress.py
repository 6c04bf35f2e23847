"""The live progress display: plain lines for the Jenkins console, a status line in a TTY."""

from __future__ import annotations

import io

from tuner.events import EventBus
from tuner.progress import Progress, fmt_settings


def drive(progress: Progress) -> None:
    bus = EventBus([progress])
    bus.emit("run_started", script="face_cnn.py", kind="cnn", run_dir="/r", strategy="auto", goal=0.9,
             metric="val_accuracy", max_trials=10, max_minutes=60, space="fc_layers: 1-3 layers", resumed_trials=0)
    bus.emit("trial_started", trial=1, settings={"learning_rate": 1e-4, "fc_layers": [16]}, resumed=False)
    bus.emit("epoch_finished", trial=1, epoch=1, record={}, metric=0.61)
    bus.emit("trial_finished", trial=1, status="pruned", metric=0.62, epochs=5, seconds=4.2,
             reason="pruned at epoch 5: cannot reach the goal", settings={}, restarts=0)
    bus.emit("trial_started", trial=2, settings={"fc_layers": [256, 128], "learning_rate": 1e-3}, resumed=True)
    bus.emit("trial_restarted", trial=2, reason="killed by SIGKILL", resumed_at_epoch=3)
    bus.emit("epoch_finished", trial=2, epoch=4, record={}, metric=0.93)
    bus.emit("trial_finished", trial=2, status="ok", metric=0.93, epochs=4, seconds=3.0, reason=None,
             settings={}, restarts=1)
    bus.emit("goal_met", trial=2, metric=0.93, settings={})
    bus.emit("run_finished", status="goal_met", reason="", run_dir="/r", best=None)


def test_plain_lines_for_a_non_tty():
    out = io.StringIO()
    drive(Progress(stream=out, live=False))
    text = out.getvalue()
    assert "tuning face_cnn.py (cnn) until val_accuracy >= 0.9 with 'auto'; budget 10 trials / 60 min" in text
    assert "trial 1/10: FC [16], lr 1e-4" in text
    assert "  trial 1 epoch 1: val_accuracy 0.6100" in text
    assert "trial 1/10 pruned: val_accuracy 0.6200 after 5 epochs, 4.2 s — pruned at epoch 5" in text
    assert "(resumed from its checkpoint)" in text and "restarted (killed by SIGKILL); resumed at epoch 3" in text
    assert "trial 2 epoch 4: val_accuracy 0.9300" in text  # best so far excludes pruned trials
    assert "goal met by trial 2: val_accuracy 0.9300 >= 0.9" in text
    assert "\x1b[" not in text, "no terminal escapes in the Jenkins console"


def test_live_mode_keeps_epochs_on_the_status_line():
    out = io.StringIO()
    drive(Progress(stream=out, live=True))
    text = out.getvalue()
    assert "trial 2/10 ok: val_accuracy 0.9300" in text and "goal met by trial 2" in text
    assert "trial 1 epoch 1:" not in text, "epochs update the status line instead of scrolling"


def test_settings_are_shown_in_a_stable_order():
    assert fmt_settings({"batch_size": 32, "learning_rate": 3e-4, "fc_layers": [64]}) == "FC [64], lr 3e-4, batch 32"
    assert fmt_settings({}) == "as written"
