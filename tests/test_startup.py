"""The fixed cost of ``mlops run``: the warm worker starts as the run is assembled, before the
loop reads the script or opens the study (never TensorFlow for a scikit-learn script); what
the end of the run needs is imported while the trial trains; the process ends without the
interpreter's teardown. Orderings and module sets only, never timings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeRunner, write_script
from tuner.assemble import WindDownImports, build_tune
from tuner.config import load_config
from tuner.errors import ClassifyError, MlopsError
from tuner.events import Event
from tuner.runners.warm import SOCKETS_ENV, WarmRunner

FIXTURES = Path(__file__).parent / "fixtures" / "scripts"
ROOT = Path(__file__).resolve().parents[1]


class Recording(FakeRunner):
    """A fake runner that writes what is asked of it, in order, to a shared log."""

    def __init__(self, log: list[str]):
        super().__init__()
        self.log = log
        self.closed = False

    def prepare(self, kind: str) -> None:
        self.log.append(f"prepare {kind}")

    def share_with_workers(self) -> dict[str, str]:
        self.log.append("share")
        return {SOCKETS_ENV: "/nowhere"}

    def close(self) -> None:
        self.closed = True


def _cfg(script: Path, tmp_path: Path, **overrides: Any) -> Any:
    return load_config(script, env={}, overrides={"run_dir": str(tmp_path / "run"), "max_trials": 2, **overrides})


def test_the_runner_prepares_before_the_loop_reads_the_script_or_opens_the_study(tmp_path, monkeypatch):
    import tuner.hparams
    import tuner.loop

    log: list[str] = []
    opened, found = tuner.loop.open_store, tuner.hparams.find_settings
    monkeypatch.setattr(tuner.loop, "open_store", lambda *a, **k: log.append("open study") or opened(*a, **k))
    monkeypatch.setattr(tuner.hparams, "find_settings", lambda *a, **k: log.append("read settings") or found(*a, **k))
    script = write_script(tmp_path / "src")
    tune = build_tune(script, _cfg(script, tmp_path), runner=Recording(log), mail=False, echo=lambda line: None)
    assert log == ["prepare ann"]  # as soon as the run is assembled: the import overlaps what follows
    tune.run()
    assert log[:3] == ["prepare ann", "read settings", "open study"]
    assert log.count("prepare ann") == 1  # the loop does not ask again for the same kind


def test_a_scikit_learn_script_never_starts_tensorflow(tmp_path, monkeypatch):
    groups: list[str] = []

    def launch(self: WarmRunner, group: str) -> Any:
        groups.append(group)
        raise OSError("not in this test")  # prepare() swallows it: start() would try again

    monkeypatch.setattr(WarmRunner, "_launch", launch)
    script = FIXTURES / "wine_report.py"
    runner = WarmRunner()
    build_tune(script, _cfg(script, tmp_path), runner=runner, mail=False, echo=lambda line: None)
    assert groups == ["sklearn"]
    log: list[str] = []
    build_tune(script, _cfg(script, tmp_path), runner=Recording(log), mail=False, echo=lambda line: None)
    assert log == ["prepare regression"]


def test_kind_given_is_prepared_without_classifying(tmp_path):
    log: list[str] = []
    script = write_script(tmp_path / "src")
    build_tune(script, _cfg(script, tmp_path), kind="cnn", runner=Recording(log), mail=False, echo=lambda line: None)
    assert log == ["prepare cnn"]


def test_a_script_that_cannot_be_classified_starts_nothing_and_the_loop_says_why(tmp_path):
    log: list[str] = []
    script = write_script(tmp_path / "src", "import keras\nFC_LAYERS = [16\n")
    tune = build_tune(script, _cfg(script, tmp_path), runner=Recording(log), mail=False, echo=lambda line: None)
    assert log == []
    with pytest.raises(ClassifyError, match="model.py"):
        tune.run()


def test_a_run_that_cannot_be_assembled_closes_the_runner_it_started(tmp_path, monkeypatch):
    import tuner.assemble

    log: list[str] = []
    built = Recording(log)
    monkeypatch.setattr(tuner.assemble, "build_runner", lambda cfg, name=None: built)
    script = write_script(tmp_path / "src")
    with pytest.raises(MlopsError, match="nope"):
        build_tune(script, _cfg(script, tmp_path, strategy="nope"), mail=False, echo=lambda line: None)
    assert log == ["prepare ann"] and built.closed  # started early, and stopped with the error
    given = Recording([])
    with pytest.raises(MlopsError):
        build_tune(script, _cfg(script, tmp_path, strategy="nope"), runner=given, mail=False, echo=lambda line: None)
    assert not given.closed  # a runner the caller gave is the caller's to close


def test_workers_get_the_warm_worker_shared_before_it_starts(tmp_path):
    log: list[str] = []
    script = write_script(tmp_path / "src")
    tune = build_tune(script, _cfg(script, tmp_path, workers=2), runner=Recording(log), mail=False,
                      echo=lambda line: None)
    assert log == ["share", "prepare ann"]  # its socket is there for them from the start
    assert tune.pool is not None and tune.pool.env[SOCKETS_ENV] == "/nowhere"


def _canary(folder: Path, name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text("LOADED = True\n")
    return name


def test_what_the_end_of_the_run_needs_is_imported_while_the_first_trial_trains(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    canary = _canary(tmp_path / "mods", "mlops_wind_down_canary")
    monkeypatch.delitem(sys.modules, canary, raising=False)
    monkeypatch.setattr(WindDownImports, "REPORT", ("mlops_no_such_module_here", canary))
    imports = WindDownImports(mail=False)
    imports(Event("run_started"))
    assert imports.thread is None  # nothing before a trial starts
    imports(Event("trial_started"))
    first = imports.thread
    first.join(30)
    assert canary in sys.modules  # a module that is missing is skipped; the rest is imported
    imports(Event("trial_started"))
    assert imports.thread is first  # once per run
    assert "notify.chart" not in WindDownImports(mail=False).modules
    assert "notify.chart" in WindDownImports(mail=True).modules


def test_the_process_ends_after_the_atexit_handlers_with_the_command_s_code(tmp_path):
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('atexit ran', flush=True))\n"
            "sys.argv = ['mlops', *sys.argv[1:]]\n"
            "from tuner.cli import main\n"
            "main()\n"
            "print('not reached')\n")
    ok = subprocess.run([sys.executable, "-c", code, "classify", str(FIXTURES / "wine_report.py")],
                        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "regression" in ok.stdout and "atexit ran" in ok.stdout and "not reached" not in ok.stdout
    bad = subprocess.run([sys.executable, "-c", code, "classify", str(tmp_path / "missing.py")],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and "missing.py" in bad.stderr and "atexit ran" in bad.stdout


@pytest.mark.tf
def test_mlops_run_keeps_tensorflow_and_sklearn_out_of_its_own_process(tmp_path, monkeypatch):
    """A whole run of a Keras script with the warm worker (no lingering server): TensorFlow is
    imported by the warm worker only; the CLI's process never imports it, nor scikit-learn."""
    script = tmp_path / "src" / "tiny_ann.py"
    script.parent.mkdir()
    script.write_text((FIXTURES / "tiny_ann.py").read_text())
    code = ("import sys\n"
            "from tuner.cli import main\n"
            f"rc = main(['run', {str(script)!r}, '--max-trials', '1', '--no-mail', '--run-dir', "
            f"{str(tmp_path / 'run')!r}])\n"
            "heavy = sorted(m for m in ('tensorflow', 'keras', 'sklearn', 'torch') if m in sys.modules)\n"
            "print('HEAVY', heavy)\n"
            "sys.exit(rc)\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MLOPS_WARM_LINGER": "0", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env=env)
    assert out.returncode in (0, 1), out.stdout[-2000:] + out.stderr[-2000:]
    assert "HEAVY []" in out.stdout
    assert "mlops: TensorFlow ready after" in out.stdout  # start-up told apart from trial 1
