"""What happens after a run, as subscribers of the loop's ``run_finished`` event.

* :class:`OutcomeWriter` completes the :class:`~tuner.summary.RunSummary` (the winning
  script's diff) and writes ``best/<script>``, ``best/settings.diff``, ``best/settings.json``,
  ``summary.json`` and ``report.html``;
* :class:`tuner.winners.Portfolio` remembers the winning settings, keyed by the model's
  fingerprint, for the project's next runs.

Mail (:class:`notify.MailOnFinish`), the events file (:class:`tuner.events.JsonlSink`) and the
progress display are subscribers too; :mod:`tuner.assemble` subscribes them in this order:
outcome first, so the others see the complete summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
            summary.best.model = save_best_model(summary, original)
        summary.write(run_dir)
        write_report(run_dir, summary)


def save_best_model(summary: RunSummary, source: str) -> dict[str, str] | None:
    """Copy the winning trial's saved model to ``best/model.keras`` (or ``model.joblib``) with a
    ``best/model.json`` that says what it is (:mod:`tuner.artifact`); the model of an earlier
    run is removed first, so ``best/`` never pairs this run's script with another run's model.
    Returns ``{"file", "format"}`` for the summary, or None when the trial saved no model."""
    import hashlib
    import shutil

    from tuner import artifact
    from tuner.files import write_json_atomic

    assert summary.best is not None
    run_dir = Path(summary.run_dir)
    best_dir = run_dir / BEST_DIR
    for name in (artifact.KERAS_FILE, artifact.JOBLIB_FILE, artifact.INFO_FILE):
        (best_dir / name).unlink(missing_ok=True)
    folder = artifact.trial_model(run_dir / summary.best.workdir)
    info = artifact.read_info(folder) if folder is not None else None
    if folder is None or info is None or not (folder / info["file"]).is_file() \
            or (folder / info["file"]).is_symlink():
        return None
    target = best_dir / info["file"]
    tmp = best_dir / f".{info['file']}.tmp"
    shutil.copyfile(folder / info["file"], tmp)
    tmp.replace(target)
    info.update(kind=summary.kind, trial=summary.best.number, settings=summary.best.settings,
                value=summary.best.metric if info.get("value") is None else info["value"],
                script_name=summary.script_name, script_sha256=hashlib.sha256(source.encode()).hexdigest(),
                model_sha256=artifact.sha256_file(target), confirm=summary.best.confirm)
    write_json_atomic(best_dir / artifact.INFO_FILE, info)
    return {"file": f"{BEST_DIR}/{info['file']}", "format": str(info["format"])}


class GitPusher:
    """On goal met, commits the tuned script (with ``settings.diff`` and ``report.html``) on a new
    branch of the script's repository and pushes it (:func:`deliver_run`); records where in the
    summary (``delivery``), ``summary.json`` and the report. Subscribed after :class:`OutcomeWriter`
    and before the mail, which links the branch. A push that fails is reported, never fatal."""

    def __init__(self, remote: str = "origin", prefix: str = "mlops/tuned"):
        self.remote = remote
        self.prefix = prefix

    def __call__(self, event: Event) -> None:
        if event.type == "run_finished" and event.data["summary"].goal_met:
            summary: RunSummary = event.data["summary"]
            deliver_run(summary, Path(summary.script), remote=self.remote, prefix=self.prefix)


def delivery_files(summary: RunSummary, script: Path) -> dict[str, bytes]:
    """What goes on the branch, by path relative to the script's folder: the tuned script in
    place of the original, its diff and the report under ``mlops-tuned/<script stem>/``."""
    from tuner.files import read_bytes
    from tuner.html_report import REPORT_FILES  # report.html and the report.css it links

    run_dir = Path(summary.run_dir)
    best_dir = run_dir / BEST_DIR
    extra = f"mlops-tuned/{script.stem}"
    files = {script.name: read_bytes(best_dir / summary.script_name, what="tuned script")}
    sources = [("settings.diff", best_dir / "settings.diff")] + [(n, run_dir / n) for n in REPORT_FILES]
    for name, source in sources:
        if source.is_file():
            files[f"{extra}/{name}"] = read_bytes(source, what=name)
    return files


def commit_message(summary: RunSummary) -> str:
    """The commit message: the score and the settings, then how they were found."""
    from tuner.fmt import format_setting_value

    best = summary.best
    assert best is not None
    lines = [f"mlops: tune {summary.script_name} to {summary.metric} {best.metric:.4f} (goal {summary.goal:g})", ""]
    lines.append(f"Trial {best.number} of {len(summary.trials)} ({summary.strategy} strategy), "
                 f"best epoch {best.epochs}, seed {best.seed if best.seed is not None else '?'}.")
    confirm = best.confirm or {}
    if confirm.get("mean") is not None:
        lines.append(f"Retrained with {len(confirm.get('trials') or [])} other seed(s): mean {confirm['mean']:.4f}, "
                     f"{confirm['min']:.4f}-{confirm['max']:.4f}.")
    lines += ["", "Settings:"]
    lines += [f"  {name}: {format_setting_value(name, value)}" for name, value in sorted(best.settings.items())]
    if summary.git and summary.git.get("commit"):
        lines += ["", f"Tuned from {summary.git['commit']}."]
    if summary.build_url:
        lines.append(f"Build: {summary.build_url}")
    if summary.study_id:
        lines.append(f"Study: {summary.study_id}")
    return "\n".join(lines) + "\n"


def deliver_run(summary: RunSummary, script: Path, *, remote: str = "origin", prefix: str = "mlops/tuned",
                env: dict[str, str] | None = None) -> dict[str, Any]:
    """Push the tuned code of a run that met its goal (see :class:`GitPusher`); the outcome goes
    into ``summary.delivery``, ``summary.json`` and ``report.html``. Nothing is pushed when the
    goal was not met, or when ``script`` is not the script the run tuned (its hash differs).

    Returns:
        The delivery record (``status`` pushed | up_to_date | failed | skipped, ``branch``,
        ``commit``, ``remote``, ``reason``).
    """
    import hashlib

    from tuner.deliver import deliver_to_git
    from tuner.html_report import write_report

    if not summary.goal_met or summary.best is None:
        return {"status": "skipped", "reason": f"the run ended '{summary.status}', not goal met: nothing to deliver"}
    if not script.is_file():
        record = {"status": "failed", "reason": f"{script}: the tuned script's original is not here; "
                                                "give its path in this checkout (mlops deliver --script PATH)"}
    elif summary.script_sha256 and hashlib.sha256(script.read_bytes()).hexdigest() != summary.script_sha256:
        record = {"status": "failed", "reason": f"{script} is not the script this run tuned (it changed since); "
                                                "run mlops run on this version first"}
    else:
        # the report on the branch is the run's own, without a delivery: the same run delivered
        # again finds the branch up to date instead of pushing a commit that only says where it went
        summary.delivery = None
        write_report(Path(summary.run_dir), summary)
        files = delivery_files(summary, script)
        record = deliver_to_git(script, files, commit_message(summary), remote=remote, prefix=prefix,
                                env=env).to_json()
    summary.delivery = {k: v for k, v in record.items() if v is not None}
    run_dir = Path(summary.run_dir)
    summary.write(run_dir)
    write_report(run_dir, summary)
    return summary.delivery

