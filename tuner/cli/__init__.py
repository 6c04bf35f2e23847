"""The ``mlops`` command. Thin: parse, call the library, print. Subcommands load lazily so
``mlops --help`` and ``mlops classify`` never import TensorFlow, pandas or Optuna."""

from __future__ import annotations

import importlib
import os
import sys
from typing import NoReturn

import click

from tuner import __version__
from tuner.errors import EXIT_INTERNAL, Interrupted, MlopsError

# name -> "module:attribute"; each module holds one click command or group.
COMMANDS: dict[str, tuple[str, str]] = {
    "classify": ("tuner.cli.classify_cmd:classify", "Tell which image a training script needs (cnn, ann, regression)."),
    "hparams": ("tuner.cli.hparams_cmd:hparams", "Show or rewrite the settings the tuner may change."),
    "train": ("tuner.cli.train_cmd:train", "Train a script once, in a trial workdir."),
    "run": ("tuner.cli.run_cmd:run", "Tune a script until it reaches the goal or the budget is spent."),
    "worker": ("tuner.cli.worker_cmd:worker", "Join a study that 'mlops run --storage URL' started."),
    "strategies": ("tuner.cli.run_cmd:strategies", "List the search strategies."),
    "deliver": ("tuner.cli.deliver_cmd:deliver", "Push a run's tuned code to a new branch of its repository."),
    "report": ("tuner.cli.run_cmd:report", "Write a run directory's report.html again; export its trials as CSV."),
    "study": ("tuner.cli.study_cmd:study", "Repair a run directory's study from its trial folders; convert an old one."),
    "notify": ("tuner.cli.notify_cmd:notify", "Mail the outcome of a run; flush the outbox."),
    "watch": ("tuner.cli.watch_cmd:watch", "Supervise one training run: restart it from its checkpoint."),
    "jenkins": ("tuner.cli.jenkins_cmd:jenkins", "Sync jobs, trigger a retrain, show status (Jenkins)."),
    "images": ("tuner.cli.images_cmd:images", "Build the Docker images for each kind."),
    "config": ("tuner.cli.config_cmd:config", "Show the settings in force and where each came from."),
    "predict": ("tuner.cli.predict_cmd:predict", "Load a run's saved model and print predictions for a file."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (target, _) in COMMANDS.items() if _exists(target)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None or not _exists(entry[0]):
            return None
        module_name, attr = entry[0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, COMMANDS[n][1]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _exists(target: str) -> bool:
    import importlib.util

    module_name = target.split(":")[0]
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:
        return False


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlops")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """mlops: classify pushed training code, train it in the right image, tune it to the goal."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


_STOP_SIGNALS = ("SIGTERM", "SIGHUP")


def _raise_interrupted(signum: int, frame: object) -> None:
    import signal

    from tuner.errors import stop_now_or_after

    for name in _STOP_SIGNALS:  # the clean-up that follows must not be cut short by a second one
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    stop_now_or_after(signum)  # held while a database write is in progress (tuner.errors.uninterrupted)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    from tuner.errors import stop_now_or_after

    stop_now_or_after(signum)  # Ctrl-C: KeyboardInterrupt, after a database write in progress


def _install_stop_handlers() -> dict[int, object]:
    """SIGTERM/SIGHUP raise :class:`Interrupted` (a KeyboardInterrupt) in the main thread, so
    they stop and remove the running trial as Ctrl-C does. Returns the handlers to restore."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for name in _STOP_SIGNALS:
        num = getattr(signal, name, None)
        if num is not None and signal.getsignal(num) is not signal.SIG_IGN:
            previous[num] = signal.signal(num, _raise_interrupted)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    return previous


def main(argv: list[str] | None = None) -> int:
    """Console entry point: runs the CLI and maps errors to one line and an exit code. As the
    process's own entry (no ``argv``: the ``mlops`` script, ``python -m tuner``) it then ends
    the process itself (:func:`_exit_now`)."""
    import signal

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    previous = _install_stop_handlers()
    try:
        code = _main(args, debug)
    finally:
        for num, handler in previous.items():
            signal.signal(num, handler)  # type: ignore[arg-type]
    if argv is None:
        _exit_now(code)
    return code


def _exit_now(code: int) -> NoReturn:
    """End the process with ``code`` as ``sys.exit`` would (the atexit handlers run, stdout and
    stderr are flushed), but without the interpreter's teardown of every module a run imported
    (Optuna, SQLAlchemy, pandas, libcst: tenths of a second after the outcome is printed).
    Everything a command writes is closed by then; while a thread that is not a daemon still
    runs, the ordinary exit, which waits for it, is taken instead."""
    import atexit
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    try:
        getattr(atexit, "_run_exitfuncs", lambda: None)()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # closed, or a broken pipe: nothing more can be told
                pass
        os._exit(code)


def _main(args: list[str], debug: bool) -> int:
    try:
        rv = cli.main(args=args, prog_name="mlops", standalone_mode=False)
    except MlopsError as exc:
        if debug:
            raise
        click.echo(f"mlops: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort as exc:  # click turns KeyboardInterrupt into Abort
        cause = exc.__cause__
        if isinstance(cause, Interrupted):
            click.echo(f"mlops: {cause.reason}", err=True)
            return cause.exit_code
        click.echo("mlops: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except Interrupted as exc:
        click.echo(f"mlops: {exc.reason}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("mlops: interrupted", err=True)
        return 130
    except Exception as exc:  # pragma: no cover - the last line of defence
        if debug:
            raise
        click.echo(f"mlops: internal error: {type(exc).__name__}: {exc} (rerun with --debug)", err=True)
        return EXIT_INTERNAL
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
