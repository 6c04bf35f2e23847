"""What happens after a run, as subscribers of the loop's ``run_finished`` event.

* :class:`OutcomeWriter` completes the :class:`~tuner.summary.RunSummary` (the winning
  script's diff) and writes ``best/<script>``, ``best/settings.diff``, ``best/settings.json``,
  ``summary.json`` and ``report.html``;
* :class:`WinnerKeeper` remembers the winning settings for the next run of the same script
  (:mod:`tuner.winners`).

Mail (:class:`notify.MailOnFinish`), the events file (:class:`tuner.events.JsonlSink`) and the
progress display are subscribers too; :mod:`tuner.assemble` subscribes them in this order:
outcome first, so the others see the complete summary.
"""

from __future__ import annotations

from pathlib import Path

from tuner.events import Event
from tuner.summary import RunSummary

BEST_DIR = "best"


class OutcomeWriter:
    """Writes the outcome files of a run when it finishes.

    Raises (from ``__call__``):
        HParamsError: the winning settings cannot be applied to the script (changed since).
        MlopsError: the report cannot be written.
        OSError: the run directory cannot be written.
    """

    def __init__(self, names: dict[str, list[str]] | None = None):
        self.names = names

    def __call__(self, event: Event) -> None:
        if event.type == "run_finished":
            self.write(event.data["summary"])

    def write(self, summary: RunSummary) -> None:
        from tuner.files import write_json_atomic, write_text_atomic
        from tuner.html_report import write_report

        run_dir = Path(summary.run_dir)
        if summary.best is not None:
            from tuner import hparams
            from tuner.classify import read_script
            from tuner.errors import HParamsError

            script = Path(summary.script)
            original = read_script(script, HParamsError)
            settings = summary.best.settings
            rewritten = (hparams.apply_settings(original, settings, path=str(script), names=self.names)
                         if settings else original)
            summary.best.diff = hparams.make_diff(original, rewritten, script.name)
            best_dir = run_dir / BEST_DIR
            best_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(best_dir / script.name, rewritten)
            write_text_atomic(best_dir / "settings.diff", summary.best.diff)
            write_json_atomic(best_dir / "settings.json", settings)
        summary.write(run_dir)
        write_report(run_dir, summary)


class WinnerKeeper:
    """Remembers the winning settings of a run that met its goal, for the script's next run."""

    def __init__(self, path: Path | None):
        self.path = path

    def __call__(self, event: Event) -> None:
        if event.type != "run_finished":
            return
        summary: RunSummary = event.data["summary"]
        if summary.goal_met and summary.best is not None:
            from tuner import winners

            winners.record(summary.script_name, summary.best.settings, self.path)
