"""Where results go (issue 18, item 2): the default run directory is ``mlops-runs/<name>/`` at the
root of the script's git work tree (else the current folder), never inside the scripts' folder;
a script edited since its study starts a new study and keeps the old one, whole, beside it.

The real CLI (``tuner.cli.main``) on real files, a real git repository and a fast scikit-learn
script (no TensorFlow): one trial per run.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tuner.assemble import default_run_dir, prepare_run_dir, run_dir_name
from tuner.cli import main
from tuner.study import lock_run_dir, open_store

pytestmark = pytest.mark.timeout(300)

WINE = '''from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
import tuner

C = 0.01

x, y = load_wine(return_X_y=True)
a, b, c, d = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
score = LogisticRegression(C=C, max_iter=50).fit(a, c).score(b, d)
tuner.report(accuracy=0.5 * score)  # never the goal: each run spends its one trial
'''
ONE_TRIAL = ("--max-trials", "1", "--goal", "0.99", "--no-mail", "--no-prune", "--kind", "regression")
LONG_HEX = re.compile(r"[0-9a-f]{13,}")


@pytest.fixture(autouse=True)
def _isolated(clean_mlops_env, tmp_path, monkeypatch):
    """No MLOPS_* of the machine; git never looks above tmp_path; the current folder is tmp_path."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.chdir(tmp_path)


def git_repo(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "-c", "init.defaultBranch=main", "init", "-q", str(folder)], check=True, timeout=30)
    return folder


def script_at(path: Path, text: str = WINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(["run", *args, *ONE_TRIAL])
    out = capsys.readouterr()
    return code, out.out + out.err


def trials_of(run_dir: Path) -> list:
    with open_store(run_dir) as store:
        return store.trials()


# -- the default place ---------------------------------------------------------------------------


def test_the_default_run_dir_is_at_the_repo_root_not_in_the_scripts_folder(tmp_path, capsys, monkeypatch):
    repo = git_repo(tmp_path / "repo")
    script = script_at(repo / "models" / "wine.py")
    monkeypatch.chdir(repo / "models")  # wherever it is run from
    code, out = run(capsys, "wine.py")
    assert code == 1, out  # ran; the goal is out of reach
    run_dir = repo / "mlops-runs" / "models-wine"
    assert (run_dir / "summary.json").is_file() and (run_dir / "trials" / "0001").is_dir(), out
    assert not (repo / "models" / "mlops-runs").exists()
    assert (repo / "mlops-runs" / ".gitignore").read_text().splitlines()[-1] == "*"
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True, timeout=30).stdout
    assert status.split() == ["??", "models/wine.py"], status  # nothing a run wrote shows up in git
    assert len(trials_of(run_dir)) == 1 and script.is_file()


def test_the_gitignore_is_written_once_and_never_replaced(tmp_path, capsys):
    repo = git_repo(tmp_path / "repo")
    script_at(repo / "train.py")
    runs = repo / "mlops-runs"
    runs.mkdir()
    (runs / ".gitignore").write_text("# mine\n*.db\n")  # the user's own: kept as it is
    code, out = run(capsys, str(repo / "train.py"))
    assert code == 1, out
    assert (runs / ".gitignore").read_text() == "# mine\n*.db\n"
    assert (runs / "train" / "study.db").is_file()  # a script at the root: just its stem


def test_outside_git_the_current_folder_holds_mlops_runs(tmp_path, capsys, monkeypatch):
    project = tmp_path / "project"
    script_at(project / "src" / "wine.py")
    monkeypatch.chdir(project)
    code, out = run(capsys, "src/wine.py")
    assert code == 1, out
    assert (project / "mlops-runs" / "src-wine" / "summary.json").is_file(), out
    assert (project / "mlops-runs" / ".gitignore").is_file()
    assert not (project / "src" / "mlops-runs").exists()
    # a script outside the current folder: its stem, in the current folder's mlops-runs/
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert default_run_dir(project / "src" / "wine.py", cwd=elsewhere) == elsewhere.resolve() / "mlops-runs" / "wine"


def test_two_scripts_of_the_same_name_in_one_repo_do_not_share_a_study(tmp_path, capsys):
    repo = git_repo(tmp_path / "repo")
    first = script_at(repo / "src" / "a" / "train.py")
    second = script_at(repo / "src" / "b" / "train.py", WINE.replace("C = 0.01", "C = 0.02"))
    assert run(capsys, str(first))[0] == 1
    code, out = run(capsys, str(second))
    assert code == 1, out
    assert "changed since" not in out  # the second did not take the first's study for its own
    runs = repo / "mlops-runs"
    assert sorted(p.name for p in runs.iterdir()) == [".gitignore", "src-a-train", "src-b-train"]
    with open_store(runs / "src-a-train") as a, open_store(runs / "src-b-train") as b:
        assert a.meta()["script_sha256"] != b.meta()["script_sha256"]
        assert len(a.trials()) == len(b.trials()) == 1


def test_the_name_rule():
    assert run_dir_name("models/face_cnn.py") == "models-face_cnn"
    assert run_dir_name("src/train/wine.py") == "src-train-wine"
    assert run_dir_name("train.py") == "train"
    assert run_dir_name("./a//b.py") == "a-b"


def test_an_explicit_run_dir_wins_flag_over_environment_over_mlops_yaml(tmp_path, capsys, monkeypatch):
    repo = git_repo(tmp_path / "repo")
    script = script_at(repo / "models" / "wine.py")
    (repo / "models" / "mlops.yaml").write_text(f"run_dir: {tmp_path / 'from-yaml'}\n")
    code, out = run(capsys, str(script))
    assert code == 1, out
    assert (tmp_path / "from-yaml" / "study.db").is_file()
    monkeypatch.setenv("MLOPS_RUN_DIR", str(tmp_path / "from-env"))
    code, out = run(capsys, str(script), "--run-dir", str(tmp_path / "from-flag"))
    assert code == 1, out
    assert (tmp_path / "from-flag" / "study.db").is_file()
    assert not (tmp_path / "from-env").exists() and not (repo / "mlops-runs").exists()


# -- a script edited since its study --------------------------------------------------------------


def test_an_edited_script_keeps_the_old_study_and_starts_a_new_one(tmp_path, capsys, monkeypatch):
    repo = git_repo(tmp_path / "repo")
    script = script_at(repo / "models" / "wine.py")
    monkeypatch.chdir(repo)
    assert run(capsys, "models/wine.py")[0] == 1
    run_dir = repo / "mlops-runs" / "models-wine"
    (run_dir / "outbox").mkdir()
    (run_dir / "outbox" / "queued.eml").write_text("Subject: the outcome\n\nkept\n")  # mail kept there
    old_files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.name != ".lock")
    with open_store(run_dir) as study:
        old_meta = study.meta()

    script.write_text(WINE.replace("C = 0.01", "C = 0.05"))
    # a live run holds the old study: it is not moved under it
    with lock_run_dir(run_dir):
        code, out = run(capsys, "models/wine.py")
    assert code == 2 and "another mlops run" in out, out
    assert [p.name for p in (repo / "mlops-runs").iterdir() if p.name != ".gitignore"] == ["models-wine"]

    code, out = run(capsys, "models/wine.py")
    assert code == 1, out
    line = next(x for x in out.splitlines() if "changed since" in x)
    found = re.fullmatch(r"mlops: models/wine\.py changed since the study in mlops-runs/models-wine "
                         r"\(1 trial, best val_accuracy 0\.\d+\); that study is kept in "
                         r"(mlops-runs/models-wine\.\d{8}-\d{6}); starting a new one", line)
    assert found, line
    assert not LONG_HEX.search(out), out
    kept = repo / found.group(1)
    # nothing lost: every file of the old study is in the kept folder, and it still opens
    assert sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*") if p.name != ".lock") == old_files
    assert (kept / "outbox" / "queued.eml").read_text().endswith("kept\n")
    with open_store(kept) as old:
        assert old.meta()["study_id"] == old_meta["study_id"]
        assert [(t.status, t.settings) for t in old.trials()] == [("ok", {"C": 0.01})]
    # the new study, in the default place, for the script as it is now
    with open_store(run_dir) as new:
        assert new.meta()["study_id"] != old_meta["study_id"]
        assert new.meta()["script_sha256"] != old_meta["script_sha256"]
        assert [t.settings for t in new.trials()] == [{"C": 0.05}]  # its baseline: the script as it is now
    # rerun unchanged: resumes the new study, moves nothing
    code, out = run(capsys, "models/wine.py")
    assert code == 1 and "changed since" not in out, out
    assert len(list((repo / "mlops-runs").glob("models-wine.*"))) == 1


def test_fresh_twice_in_one_second_keeps_both_old_studies(tmp_path):
    run_dir = tmp_path / "run"
    said: list[str] = []
    for n in range(3):
        run_dir.mkdir(exist_ok=True)
        (run_dir / "events.jsonl").write_text(f"{n}\n")
        prepare_run_dir(run_dir, fresh=True, echo=said.append)
    kept = sorted(tmp_path.glob("run.*"))
    assert len(kept) == 3 and sorted((p / "events.jsonl").read_text() for p in kept) == ["0\n", "1\n", "2\n"]
    assert len(said) == 3 and all(line.startswith("mlops: the previous study is kept in ") for line in said)


def test_a_worker_and_a_shared_study_refuse_an_edited_script(tmp_path, capsys):
    """A study in a shared storage is never replaced: 'mlops run' and 'mlops worker' refuse, in
    one line that names --study NEW_NAME; the study is untouched."""
    repo = git_repo(tmp_path / "repo")
    script = script_at(repo / "models" / "wine.py")
    storage = f"journal:///{tmp_path / 'shared' / 'study.log'}"
    assert run(capsys, str(script), "--storage", storage)[0] == 1
    script.write_text(WINE + "\n# edited\n")
    for args in (["worker", str(script), "--storage", storage],
                 ["run", str(script), "--storage", storage, *ONE_TRIAL]):
        code = main(args)
        err = capsys.readouterr().err
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mlops: error: "), err
        assert "(study 'wine') belongs to another version of wine.py (started from " in lines[0]
        assert lines[0].endswith("run that version, or use a new study: --study NEW_NAME")
        assert not LONG_HEX.search(lines[0])
    with open_store(storage, name="wine") as study:
        assert [t.status for t in study.trials()] == ["ok"]
    assert not list((repo / "mlops-runs").glob("models-wine.*"))  # nothing moved aside
    # and a new name starts a new study beside it
    code = main(["run", str(script), "--storage", storage, "--study", "wine-2", *ONE_TRIAL])
    assert code == 1, capsys.readouterr()
    with open_store(storage, name="wine-2") as study:
        assert len(study.trials()) == 1


def test_the_default_is_the_repo_root_whatever_the_current_folder(tmp_path, monkeypatch):
    repo = git_repo(tmp_path / "repo")
    script = script_at(repo / "deep" / "er" / "face_cnn.py")
    other = tmp_path / "cwd"
    other.mkdir()
    assert default_run_dir(script, cwd=other) == repo.resolve() / "mlops-runs" / "deep-er-face_cnn"
    monkeypatch.chdir(repo / "deep")
    assert default_run_dir(Path("er/face_cnn.py")) == repo.resolve() / "mlops-runs" / "deep-er-face_cnn"
