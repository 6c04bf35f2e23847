"""Every bad input is one line and exit code 2 (issue 17, items 12-14), never a traceback
(exit 3) or a hang: FIFOs, devices, huge and non-UTF-8 scripts, deeply nested code, trial
folders under a file or read-only, out-of-range settings, notebooks given to commands that
run code, line separators that would reach mail headers, a broken outbox, and the Jenkins
commands without their extra. Each case drives the real CLI through ``tuner.cli.main``.

The scripts used here start with ``sys.exit(...)``: if a refusal ever failed and a trial
started, it would end at once instead of training a model.
"""

from __future__ import annotations

import email
import json
import os
import shutil
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest

from tuner.cli import main

ROOT = Path(__file__).resolve().parents[1]
CLASSIFY = ROOT / "tests" / "fixtures" / "classify"
NOTIFY = ROOT / "tests" / "fixtures" / "notify"

KERAS = '''import sys
sys.exit("this script must never run in the tests")
from tensorflow import keras
from tensorflow.keras import layers

FC_LAYERS = [128, 64]
LEARNING_RATE = 1e-3
EPOCHS = 8
BATCH_SIZE = 32

model = keras.Sequential([layers.Input((8,)), layers.Dense(FC_LAYERS[0]), layers.Dense(2)])
model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="sparse_categorical_crossentropy")
model.fit(X, y, epochs=EPOCHS, batch_size=BATCH_SIZE, validation_split=0.25)
'''
SKLEARN = '''import sys
sys.exit("this script must never run in the tests")
from sklearn.svm import SVC
from sklearn.ensemble import RandomForestClassifier

model = SVC(C=1.0, kernel="rbf")
model.fit(X, y)
'''


@pytest.fixture(autouse=True)
def _clean_env(clean_mlops_env):
    """No MLOPS_*/JENKINS_* setting of the machine reaches these tests (tests/conftest.py)."""


def one_line_error(capsys, code: int, *words: str) -> str:
    """Exit 2, and stderr is one line `mlops: error: ...` holding every word."""
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("mlops: error: "), line
    assert "Traceback" not in err and "internal error" not in err
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    return line


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------- item 12: the script itself
def _fifo(tmp: Path) -> Path:
    path = tmp / "pipe.py"
    os.mkfifo(path)
    return path


def _huge(tmp: Path) -> Path:
    path = tmp / "huge.py"
    with open(path, "wb") as fh:  # sparse: 6 MB on paper, nothing on disk
        fh.truncate(6 * 1024 * 1024)
    return path


def _latin1(tmp: Path) -> Path:
    path = tmp / "latin1.py"
    path.write_bytes(b"import keras\n# caf\xe9\nx = 1\n")
    return path


SCRIPT_CASES = {
    "fifo": (_fifo, ["FIFO", "regular files"]),
    "dev-zero": (lambda tmp: Path("/dev/zero"), ["/dev/zero", "device", "regular files"]),
    "dev-null": (lambda tmp: Path("/dev/null"), ["/dev/null", "device"]),
    "over-5-MB": (_huge, ["huge.py", "6.0 MB", "over the limit of 5.0 MB", "MLOPS_MAX_FILE_MB"]),
    "not-utf8": (_latin1, ["latin1.py:2", "not UTF-8", "0xe9", "save the training script as UTF-8"]),
    "directory": (lambda tmp: tmp, ["is a directory"]),
    "missing": (lambda tmp: tmp / "nope.py", ["nope.py", "no such file"]),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("command", ["classify", "hparams", "train"])
@pytest.mark.parametrize("case", sorted(SCRIPT_CASES))
def test_unreadable_scripts_are_one_line(case, command, tmp_path, capsys):
    make, words = SCRIPT_CASES[case]
    path = make(tmp_path)
    one_line_error(capsys, main([command, str(path)]), *words)


@pytest.mark.parametrize("command", ["classify", "hparams"])
def test_a_configured_size_limit_is_used_and_checked(command, tmp_path, capsys, monkeypatch):
    script = write(tmp_path / "s.py", SKLEARN + "# padding\n" * 200)
    monkeypatch.setenv("MLOPS_MAX_FILE_MB", "0.001")
    one_line_error(capsys, main([command, str(script)]), "over the limit of 1048 bytes", "MLOPS_MAX_FILE_MB")
    monkeypatch.setenv("MLOPS_MAX_FILE_MB", "lots")
    one_line_error(capsys, main([command, str(script)]), "MLOPS_MAX_FILE_MB", "'lots' is not a positive number")


DEEP = {
    "unary": "x = " + "-" * 5000 + "1\n",  # the parser itself gives up (MemoryError)
    "subscripts": "x = a" + "[0]" * 600 + "\n",  # parses; deeper than the analysis goes
    "calls": "x = f" + "()" * 250 + "\n",
    "lists": "x = " + "[" * 150 + "]" * 150 + "\n",  # libcst's own recursion limit
    "elif": "if a:\n    pass\n" + "".join(f"elif a{i}:\n    pass\n" for i in range(400)),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(DEEP))
def test_hparams_refuses_deeply_nested_code(case, tmp_path, capsys):
    script = write(tmp_path / "deep.py", "import keras\nLEARNING_RATE = 0.1\n" + DEEP[case])
    one_line_error(capsys, main(["hparams", str(script)]), "deep.py", "nested too deeply", "simplify")
    one_line_error(capsys, main(["hparams", str(script), "--set", "learning_rate=0.2"]), "nested too deeply")


# ---------------------------------------------------------------------- item 12: the trial folder
@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody may write in, even root: chattr +i (skipped where it is not possible)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root, which ignores permissions, and chattr is not installed")
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"running as root, which ignores permissions, and chattr +i failed: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)


WORKDIRS = {
    "is-a-file": (lambda tmp: write(tmp / "taken", "x"), ["taken", "is a file, not a folder"]),
    "under-a-file": (lambda tmp: write(tmp / "taken", "x") / "trial", ["taken is a file", "trial"]),
}


@pytest.mark.parametrize("case", sorted(WORKDIRS))
def test_train_workdir_that_cannot_be_a_folder(case, tmp_path, capsys):
    script = write(tmp_path / "svm.py", SKLEARN)
    make, words = WORKDIRS[case]
    workdir = make(tmp_path)
    one_line_error(capsys, main(["train", str(script), "--workdir", str(workdir)]), "trial folder", *words)


@pytest.mark.parametrize("inside", [False, True])
def test_train_workdir_on_a_read_only_folder(inside, read_only_folder, tmp_path, capsys):
    script = write(tmp_path / "svm.py", SKLEARN)
    workdir = read_only_folder / "trial" if inside else read_only_folder
    line = one_line_error(capsys, main(["train", str(script), "--workdir", str(workdir)]), str(workdir))
    assert "cannot create" in line or "cannot write" in line


def test_train_default_workdir_beside_a_read_only_script(read_only_folder, capsys, monkeypatch):
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(read_only_folder)], check=True)
        script = write(read_only_folder / "svm.py", SKLEARN)
        subprocess.run(["chattr", "+i", str(read_only_folder)], check=True)
    else:
        read_only_folder.chmod(0o700)
        script = write(read_only_folder / "svm.py", SKLEARN)
        read_only_folder.chmod(0o500)
    monkeypatch.chdir(read_only_folder)  # outside git, the default is ./mlops-runs/<script>
    one_line_error(capsys, main(["train", str(script)]), "mlops-runs", "trial folder (--workdir)")


# ---------------------------------------------------------------------- item 13: setting values
VALUES = [
    # (script, --set, words of the message)
    (KERAS, "learning_rate=1e9", ["learning_rate", "1e+09", "0 < learning_rate <= 10"]),
    (KERAS, "learning_rate=inf", ["learning_rate", "inf", "0 < learning_rate <= 10"]),
    (KERAS, "learning_rate=0", ["learning_rate", "0 < learning_rate <= 10"]),
    (KERAS, "fc_layers=[10**12]", ["fc_layers", "1000000000000", "1 <= units <= 65536"]),
    (KERAS, "fc_layers=[0]", ["fc_layers", "positive ints"]),
    (KERAS, "epochs=10**9", ["epochs", "1000000000", "1 <= epochs <= 10000"]),
    (KERAS, "batch_size=0", ["batch_size", "0", "1 <= batch_size <= 65536"]),
    (KERAS, "batch_size=10**6", ["batch_size", "1000000", "1 <= batch_size <= 65536"]),
    (SKLEARN, "C=-1", ["C", "-1", "SVC", "(0.0, inf]"]),
    (SKLEARN, "kernel=cubic", ["kernel", "'cubic'", "SVC", "'rbf'"]),
    (SKLEARN, "gamma=-0.5", ["gamma", "-0.5", "[0.0, inf)"]),
]


@pytest.mark.parametrize("command", ["hparams", "train"])
@pytest.mark.parametrize("source, pair, words", VALUES, ids=[v[1] for v in VALUES])
def test_out_of_range_values_are_refused_with_the_range(command, source, pair, words, tmp_path, capsys):
    script = write(tmp_path / "model.py", source)
    args = [command, str(script), "--set", pair]
    if command == "train":
        args += ["--workdir", str(tmp_path / "trial")]
    one_line_error(capsys, main(args), "model.py", *words)
    if command == "train":
        assert not (tmp_path / "trial" / "result.json").exists()  # refused before any trial


def test_scikit_learn_caps_and_its_own_special_values(tmp_path, capsys):
    forest = write(tmp_path / "forest.py", SKLEARN.replace('SVC(C=1.0, kernel="rbf")', "RandomForestClassifier()"))
    one_line_error(capsys, main(["hparams", str(forest), "--set", "n_estimators=10**9"]),
                   "n_estimators", "1000000000", "n_estimators <= 100000")
    one_line_error(capsys, main(["hparams", str(forest), "--set", "max_depth=0"]),
                   "max_depth", "[1, inf) or None")
    assert main(["hparams", str(forest), "--set", "max_depth=None", "--set", "n_estimators=500"]) == 0
    svm = write(tmp_path / "svm.py", SKLEARN)
    assert main(["hparams", str(svm), "--set", "max_iter=-1", "--diff"]) == 0  # -1: no limit, valid
    assert "max_iter=-1" in capsys.readouterr().out


@pytest.mark.timeout(30)
def test_arithmetic_too_large_to_compute_is_refused_at_once(tmp_path, capsys):
    script = write(tmp_path / "model.py", KERAS)
    one_line_error(capsys, main(["hparams", str(script), "--set", "epochs=((((10**64)**64)**64)**64)**64"]),
                   "epochs=", "not a Python value")


def test_ten_thousand_layers_are_refused(tmp_path, capsys):
    script = write(tmp_path / "model.py", KERAS)
    settings = json.dumps({"fc_layers": [64] * 10_000})
    one_line_error(capsys, main(["train", str(script), "--settings", settings, "--workdir", str(tmp_path / "t")]),
                   "fc_layers", "10000 hidden layers", "at most 64")


SPACES = [
    (KERAS, "learning_rate: {low: 1.0e-4, high: 100}", ["hparams.space.learning_rate", "high 100", "0 < learning_rate <= 10"]),
    (KERAS, "fc_layers: {min: 1, max: 10000}", ["hparams.space.fc_layers", "max 10000", "at most 64"]),
    (KERAS, "fc_layers: [64, 1000000000000]", ["hparams.space.fc_layers", "1000000000000", "1 <= units <= 65536"]),
    (KERAS, "epochs: {low: 1, high: 1000000}", ["hparams.space.epochs", "high 1000000", "1 <= epochs <= 10000"]),
    (KERAS, "batch_size: [32, 0]", ["hparams.space.batch_size", "choice 0", "1 <= batch_size <= 65536"]),
    (SKLEARN, "C: {low: -1, high: 10, log: false}", ["hparams.space.C", "low -1", "(0.0, inf]"]),
    (SKLEARN, "C: {low: -1, high: 10}", ["hparams.space.C", "low -1", "need low > 0 for log"]),
]


@pytest.mark.parametrize("source, yaml_line, words", SPACES, ids=[s[1].split(":")[0] + str(i) for i, s in enumerate(SPACES)])
def test_search_space_overrides_stay_in_range(source, yaml_line, words, tmp_path):
    import yaml

    from tuner.errors import ConfigError
    from tuner.hparams import find_settings
    from tuner.search import build_space

    overrides = yaml.safe_load(yaml_line)
    with pytest.raises(ConfigError) as info:
        build_space(find_settings(source, path="model.py"), overrides)
    for word in words:
        assert word in str(info.value)


def test_search_space_defaults_respect_the_bounds():
    from tuner.hparams import BOUNDS, find_settings
    from tuner.search import build_space

    space = build_space(find_settings(KERAS.replace("EPOCHS = 8", "EPOCHS = 9000"), path="m.py"))
    assert space.params["epochs"].high == BOUNDS["epochs"].high


# ---------------------------------------------------------------------- item 14: notebooks
@pytest.mark.parametrize("command", ["hparams", "train"])
def test_notebooks_are_classified_only(command, tmp_path, capsys):
    notebook = tmp_path / "cnn notebook.ipynb"
    shutil.copy(CLASSIFY / "cnn_notebook.ipynb", notebook)
    line = one_line_error(capsys, main([command, str(notebook)]), "notebooks are classified only",
                          "jupyter nbconvert --to script", f"mlops {command}")
    assert "'" + str(tmp_path / "cnn notebook.py") + "'" in line  # the command, quoted for the shell
    assert main(["classify", str(notebook)]) == 0
    assert ": cnn (" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["hparams", "train"])
def test_notebook_json_under_a_py_name_is_never_run(command, tmp_path, capsys):
    script = tmp_path / "disguised.py"
    shutil.copy(CLASSIFY / "cnn_notebook.ipynb", script)
    one_line_error(capsys, main([command, str(script), "--set", "epochs=3"]), "disguised.py",
                   "is a Jupyter notebook", "rename it to disguised.ipynb")
    assert main(["classify", str(script)]) == 0  # read as the notebook it is
    assert "cnn (" in capsys.readouterr().out


def test_refuse_notebook_for_mlops_run(tmp_path):
    from tuner.classify import refuse_notebook
    from tuner.errors import MlopsError

    with pytest.raises(MlopsError) as info:
        refuse_notebook(tmp_path / "x.ipynb", "run")
    assert info.value.exit_code == 2
    assert str(info.value).endswith(f"`jupyter nbconvert --to script {tmp_path / 'x.ipynb'}`, "
                                    f"then `mlops run {tmp_path / 'x.py'}`")
    refuse_notebook(tmp_path / "x.py", "run")  # a script passes
    refuse_notebook(tmp_path / "x.py", "run", "import keras\n")


# ---------------------------------------------------------------------- item 12: mail headers
SEPARATORS = {"U+2028": "\u2028", "U+2029": "\u2029", "NEL": "\x85", "VT": "\x0b", "FF": "\x0c",
              "FS": "\x1c", "GS": "\x1d", "RS": "\x1e"}


def _run_dir(tmp_path: Path, **changes) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(NOTIFY / "goal_met", run_dir)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    summary.update(changes)
    summary["script"] = str(tmp_path / "face_cnn.py")
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return run_dir


@pytest.mark.parametrize("name", sorted(SEPARATORS))
def test_line_separators_in_a_script_name_never_make_a_header(name, tmp_path, monkeypatch):
    from notify.message import build_message
    from tuner.config import load_config

    sep = SEPARATORS[name]
    run_dir = _run_dir(tmp_path, script_name=f"face{sep}Bcc: victim@example.org{sep}X-Evil: 1.py",
                       metric=f"val_accuracy{sep}Cc: other@example.org")
    monkeypatch.setenv("MLOPS_MAIL_TO", "ann@example.com")
    built = build_message(run_dir, load_config(run_dir), env={})
    parsed = email.message_from_bytes(built.raw, policy=policy.default)
    assert sorted(parsed.keys()) == sorted(["Subject", "From", "To", "Date", "Message-ID", "Auto-Submitted",
                                            "X-Mlops-Status", "MIME-Version", "Content-Type"])
    assert parsed["Bcc"] is None and parsed["Cc"] is None and parsed["X-Evil"] is None
    assert [a.addr_spec for a in parsed["To"].addresses] == ["ann@example.com"]
    subject = str(parsed["Subject"])
    assert "face Bcc: victim@example.org X-Evil: 1.py" in subject and sep not in subject
    assert not any(ch in subject for ch in SEPARATORS.values())


@pytest.mark.parametrize("name", sorted(SEPARATORS))
@pytest.mark.parametrize("variable", ["MLOPS_MAIL_FROM", "MLOPS_MAIL_TO"])
def test_line_separators_in_a_display_name_are_refused(variable, name, tmp_path, monkeypatch, capsys):
    run_dir = _run_dir(tmp_path)
    monkeypatch.setenv(variable, f"Ann{SEPARATORS[name]}Bcc: victim@example.org <ann@example.com>")
    one_line_error(capsys, main(["notify", str(run_dir), "--dry-run"]), variable, "line separator",
                   "nothing was sent")


def test_a_script_name_with_a_line_separator_mails_fine_through_the_cli(tmp_path, monkeypatch, capsys):
    run_dir = _run_dir(tmp_path, script_name="face\u2028Bcc: victim@example.org.py")
    monkeypatch.setenv("MLOPS_MAIL_TO", "ann@example.com")
    assert main(["notify", str(run_dir), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Subject: [mlops] face Bcc: victim@example.org.py reached" in out


# ---------------------------------------------------------------------- item 12: the outbox
@pytest.mark.parametrize("command", [["notify", "{run_dir}"], ["notify", "flush"]])
def test_an_outbox_that_is_a_file_is_one_line(command, tmp_path, monkeypatch, capsys):
    run_dir = _run_dir(tmp_path)
    monkeypatch.setenv("MLOPS_OUTBOX", str(write(tmp_path / "outbox-file", "x")))
    argv = [a.format(run_dir=run_dir) for a in command]
    one_line_error(capsys, main(argv), "outbox-file", "MLOPS_OUTBOX", "is a file, not a folder")


def test_an_outbox_under_a_file_is_one_line_and_the_mail_is_kept(tmp_path, monkeypatch, capsys):
    run_dir = _run_dir(tmp_path)
    monkeypatch.setenv("MLOPS_OUTBOX", str(write(tmp_path / "outbox-file", "x") / "outbox"))
    line = one_line_error(capsys, main(["notify", str(run_dir)]), "mail outbox", "MLOPS_OUTBOX",
                          "outbox-file is a file", "The mail was not sent; it is kept in",
                          "mlops notify flush --outbox")
    kept = sorted((tmp_path / "xdg" / "mlops" / "outbox").glob("*.eml"))
    assert len(kept) == 1 and str(kept[0]) in line
    assert b"Message-ID: <mlops." in kept[0].read_bytes()
    # 'flush' with the same broken setting says what is wrong, in one line
    one_line_error(capsys, main(["notify", "flush"]), "mail outbox", "outbox-file is a file")
    # and the kept copy is where the message said: flushing it needs only a server
    assert main(["notify", "flush", "--outbox", str(kept[0].parent)]) == 2
    assert "no SMTP server is configured" in capsys.readouterr().err


def test_a_read_only_outbox_keeps_the_mail_elsewhere(read_only_folder, tmp_path, monkeypatch, capsys):
    run_dir = _run_dir(tmp_path)
    monkeypatch.setenv("MLOPS_OUTBOX", str(read_only_folder / "outbox"))
    line = one_line_error(capsys, main(["notify", str(run_dir)]), str(read_only_folder / "outbox"),
                          "cannot create the mail outbox", "it is kept in")
    assert len(list((tmp_path / "xdg" / "mlops" / "outbox").glob("*.eml"))) == 1, line


def test_when_no_outbox_works_the_message_says_how_to_rebuild_the_mail(tmp_path, monkeypatch, capsys):
    run_dir = _run_dir(tmp_path)
    blocker = write(tmp_path / "blocker", "x")
    monkeypatch.setenv("MLOPS_OUTBOX", str(blocker / "outbox"))
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    (run_dir / "outbox").write_text("also a file", encoding="utf-8")
    one_line_error(capsys, main(["notify", str(run_dir)]), "could not be kept anywhere else",
                   f"mlops notify {run_dir}")


# ---------------------------------------------------------------------- item 12: the jenkins extra
JENKINS = [
    ["jenkins", "render", "-o", "{tmp}/xml"],
    ["jenkins", "sync", "--dry-run"],
    ["jenkins", "retrain", "{tmp}", "--settings", "{{}}"],
    ["jenkins", "status"],
    ["jenkins", "lint", "{tmp}/Jenkinsfile"],
]


@pytest.mark.parametrize("args", JENKINS, ids=[a[1] for a in JENKINS])
def test_jenkins_without_the_extra_says_how_to_install_it(args, tmp_path, monkeypatch, capsys):
    for module in ("jenkins", "jenkins_jobs"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed: import fails
    write(tmp_path / "Jenkinsfile", "pipeline {}\n")
    argv = [a.format(tmp=tmp_path) for a in args]
    one_line_error(capsys, main(argv), "not installed", "pip install 'mlops-autotune[jenkins]'")


def test_jenkins_help_works_without_the_extra(monkeypatch, capsys):
    for module in ("jenkins", "jenkins_jobs"):
        monkeypatch.setitem(sys.modules, module, None)
    assert main(["jenkins", "render", "--help"]) == 0
    assert "Render jobs/" in capsys.readouterr().out


# ---------------------------------------------------------------------- mlops run: the same refusals
@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", sorted(SCRIPT_CASES))
def test_mlops_run_refuses_unreadable_scripts_in_one_line(case, tmp_path, capsys):
    make, words = SCRIPT_CASES[case]
    path = make(tmp_path)
    one_line_error(capsys, main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--no-mail"]), *words)


def test_mlops_run_on_a_notebook_says_it_is_classified_only(tmp_path, capsys):
    nb = tmp_path / "train.ipynb"
    shutil.copy(CLASSIFY / "cnn_notebook.ipynb", nb)
    one_line_error(capsys, main(["run", str(nb), "--no-mail"]), "jupyter nbconvert --to script")
    assert not (tmp_path / "mlops-runs").exists()


@pytest.mark.parametrize("where", ["under-a-file", "is-a-file"])
def test_mlops_run_with_a_run_dir_that_cannot_be_a_folder(where, tmp_path, capsys):
    script = write(tmp_path / "svm.py", SKLEARN)
    blocker = write(tmp_path / "blocker", "a file\n")
    run_dir = blocker / "run" if where == "under-a-file" else blocker
    one_line_error(capsys, main(["run", str(script), "--run-dir", str(run_dir), "--no-mail"]),
                   "run directory", "is a file, not a folder")


# ---------------------------------------------------------------------- item 13: config values
CONFIG_VALUES = [
    (["--goal", "90"], ["goal", "outside the range of val_accuracy", "did you mean 0.9?"]),
    (["--goal", "nan"], ["goal", "finite"]),
    (["--goal", "inf"], ["goal", "finite"]),
    (["--goal", "0"], ["goal", "outside the range of val_accuracy"]),
    (["--metric", "val_loss", "--goal", "-1"], ["goal", "val_loss is never below 0"]),
    (["--metric", ""], ["metric", "is not a metric name"]),
    (["--metric", "val accuracy; rm -rf /"], ["metric", "is not a metric name"]),
    (["--seed", "-1"], ["seed", "from 0 to 4294967295"]),
    (["--seed", str(2**32)], ["seed", "from 0 to 4294967295"]),
    (["--max-minutes", "inf"], ["max_minutes", "finite"]),
    (["--max-minutes", "nan"], ["max_minutes", "finite"]),
    (["--max-trials", "0"], ["max_trials", "greater than 0"]),
    (["--max-trials", str(10**9)], ["max_trials", "at most 100000"]),
    (["--trial-timeout", "-5"], ["trial_timeout_minutes", "greater than 0"]),
    (["--trial-timeout", "inf"], ["trial_timeout_minutes", "finite"]),
]


@pytest.mark.parametrize("flags, words", CONFIG_VALUES, ids=[" ".join(f) for f, _ in CONFIG_VALUES])
def test_bad_run_values_are_refused_before_anything_runs(flags, words, tmp_path, capsys):
    script = write(tmp_path / "svm.py", SKLEARN)
    one_line_error(capsys, main(["run", str(script), "--run-dir", str(tmp_path / "run"), "--no-mail", *flags]),
                   *words)
    assert not (tmp_path / "run" / "trials").exists()


def test_the_same_values_from_the_environment_name_the_variable(tmp_path, capsys, monkeypatch):
    script = write(tmp_path / "svm.py", SKLEARN)
    monkeypatch.setenv("MLOPS_HEARTBEAT_TIMEOUT", "inf")
    one_line_error(capsys, main(["run", str(script), "--no-mail"]), "$MLOPS_HEARTBEAT_TIMEOUT", "finite")


YAMLS = {
    "a-directory": (lambda d: (d / "mlops.yaml").mkdir(), ["mlops.yaml", "is not a file"]),
    "a-fifo": (lambda d: os.mkfifo(d / "mlops.yaml"), ["mlops.yaml", "FIFO"]),
    "not-utf8": (lambda d: (d / "mlops.yaml").write_bytes(b"goal: 0.9\n# caf\xe9\n"), ["mlops.yaml:2", "not UTF-8"]),
    "alias-bomb": (lambda d: write(d / "mlops.yaml", "a: &a [1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a]\n"
                                   "c: [*b, *b, *b, *b]\n"), ["mlops.yaml:2", "aliases"]),
    "too-deep": (lambda d: write(d / "mlops.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n"),
                 ["mlops.yaml"]),
    "over-the-limit": (lambda d: (d / "mlops.yaml").open("wb").truncate(6 * 1024 * 1024), ["over the limit"]),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", sorted(YAMLS))
@pytest.mark.parametrize("command", ["run", "config"])
def test_a_bad_mlops_yaml_is_one_line(case, command, tmp_path, capsys):
    script = write(tmp_path / "svm.py", SKLEARN)
    make, words = YAMLS[case]
    make(tmp_path)
    args = ["run", str(script), "--no-mail"] if command == "run" else ["config", str(script)]
    one_line_error(capsys, main(args), *words)


def test_mlops_config_on_a_missing_script_says_so(tmp_path, capsys):
    one_line_error(capsys, main(["config", str(tmp_path / "nope.py")]), "nope.py", "not found")


def test_mlops_admin_config_that_is_missing_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_ADMIN_CONFIG", str(tmp_path / "admin.yaml"))
    one_line_error(capsys, main(["config"]), "MLOPS_ADMIN_CONFIG", "is not a file")


TRIAL_SPECS = {
    "not-json": ("{", ["trial.json:1", "not valid JSON"]),
    "a-list": ("[1, 2]", ["not a trial spec"]),
    "unknown-kind": ('{"script": "{script}", "kind": "quantum"}', ["'kind' must be one of cnn, ann, regression"]),
    "script-not-a-string": ('{"script": 7, "kind": "ann"}', ["'script' must be"]),
    "timeout-not-finite": ('{"script": "{script}", "kind": "ann", "timeout": 1e999}', ["'timeout'"]),
    "settings-a-string": ('{"script": "{script}", "kind": "ann", "settings": "lr=1"}', ["'settings' must be an object"]),
    "env-of-numbers": ('{"script": "{script}", "kind": "ann", "env": {"A": 1}}', ["'env' must be an object of strings"]),
    "seed-negative": ('{"script": "{script}", "kind": "ann", "seed": -4}', ["'seed' must be"]),
}


@pytest.mark.parametrize("case", sorted(TRIAL_SPECS))
def test_mlops_watch_refuses_a_crafted_trial_json(case, tmp_path, capsys):
    script = write(tmp_path / "svm.py", SKLEARN)
    text, words = TRIAL_SPECS[case]
    workdir = tmp_path / "trial"
    workdir.mkdir()
    (workdir / "trial.json").write_text(text.replace("{script}", str(script)))
    one_line_error(capsys, main(["watch", str(workdir)]), *words)
