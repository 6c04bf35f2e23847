"""The winner delivered, end to end, trusting nothing and killing nothing: a real run of the face
example with ``--confirm 2 --push`` meets the goal; ``mlops predict`` on the saved model
reproduces the reported validation accuracy on the validation data; the tuned script is on a
new branch of the (real, ``git daemon``-served) remote; MLflow holds one run per trial."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.git_remote import branch_head, clone, git, git_daemon, isolate, snapshot
from tuner.cli import main

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(900)


def face_validation_data() -> tuple[np.ndarray, np.ndarray]:
    """The validation split of models/face_cnn.py, built the way the script builds it."""
    from skimage.data import lfw_subset
    from sklearn.model_selection import train_test_split

    images = lfw_subset().astype("float32")
    labels = np.repeat([0, 1], [100, 100])
    _, x_val, _, y_val = train_test_split(images[..., np.newaxis], labels, test_size=0.25, random_state=0,
                                          stratify=labels)
    return x_val, y_val


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A clone, over git daemon, of a repository whose main branch holds models/face_cnn.py."""
    pytest.importorskip("keras")
    isolate(monkeypatch, tmp_path / "home")
    served = tmp_path / "served"
    bare = served / "project.git"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    seed = tmp_path / "seed"
    git("init", "-q", "-b", "main", str(seed))
    (seed / "models").mkdir()
    shutil.copy(ROOT / "models" / "face_cnn.py", seed / "models" / "face_cnn.py")
    git("-c", "user.name=Dev", "-c", "user.email=dev@example.com", "add", "-A", cwd=seed)
    git("-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", "face model", cwd=seed)
    git("push", "-q", str(bare), "main", cwd=seed)
    with git_daemon(served) as url:
        work = clone(f"{url}/project.git", tmp_path / "work")
        yield work, bare


def test_a_confirmed_winner_is_saved_predicts_as_reported_and_goes_back_to_git(checkout, tmp_path, monkeypatch,
                                                                                capsys):
    work, bare = checkout
    script = work / "models" / "face_cnn.py"
    before = snapshot(work)
    mlflow = None
    try:
        import mlflow
    except ImportError:  # the mlflow extra is installed by scripts/test; without it, that part is not checked
        pass
    if mlflow is not None:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
        monkeypatch.chdir(tmp_path)  # MLflow keeps artifacts in ./mlruns beside a SQLite store
    run_dir = tmp_path / "run"
    code = main(["run", str(script), "--confirm", "2", "--push", "--run-dir", str(run_dir), "--no-mail",
                 "--max-minutes", "30", "--seed", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads((run_dir / "summary.json").read_text())
    best = summary["best"]

    # 1. a score to trust: the winner was retrained with 2 other seeds and their mean meets the goal
    confirm = best["confirm"]
    assert summary["status"] == "goal_met" and confirm["complete"] and confirm["seeds"] == [0, 1, 2]
    assert confirm["mean"] >= summary["goal"] - 1e-6 and len(confirm["metrics"]) == 3
    checks = [t for t in summary["trials"] if t.get("confirms") == best["number"]]
    assert [t["seed"] for t in checks] == [1, 2]
    assert best["epochs"] == next(t for t in summary["trials"] if t["number"] == best["number"])["best_epoch"]

    # 2. the trained model is kept, and predicts what the run reported
    info = json.loads((run_dir / "best" / "model.json").read_text())
    assert (run_dir / "best" / "model.keras").is_file() and info["trial"] == best["number"]
    assert info["epoch"] == best["epochs"] and info["seed"] == 0
    x_val, y_val = face_validation_data()
    np.save(tmp_path / "x_val.npy", x_val)
    np.save(tmp_path / "y_val.npy", y_val)
    code = main(["predict", str(run_dir), str(tmp_path / "x_val.npy"), "--labels", str(tmp_path / "y_val.npy"),
                 "--json"])
    predicted = json.loads(capsys.readouterr().out)
    assert code == 0
    assert abs(predicted["score"]["accuracy"] - best["metric"]) <= 1e-6
    assert len(predicted["predictions"]) == len(y_val) == info["data"]["val_samples"]

    # 3. the tuned code is on a new branch of the remote; the checkout is as the user left it
    delivery = summary["delivery"]
    commit = git("rev-parse", "HEAD", cwd=work)
    assert delivery["status"] == "pushed" and delivery["branch"] == f"mlops/tuned/models-face_cnn-{commit[:7]}"
    assert branch_head(bare, delivery["branch"]) == delivery["commit"]
    pushed = git("--git-dir", str(bare), "show", f"{delivery['branch']}:models/face_cnn.py")
    assert pushed == (run_dir / "best" / "face_cnn.py").read_text().rstrip("\n")
    assert "EPOCHS = " in pushed and pushed != script.read_text().rstrip("\n")
    message = git("--git-dir", str(bare), "log", "-1", "--format=%B", delivery["branch"])
    assert f"{best['metric']:.4f}" in message and "learning_rate" in message and f"{confirm['mean']:.4f}" in message
    assert git("--git-dir", str(bare), "rev-parse", "refs/heads/main") == commit  # main untouched
    # the report goes with the stylesheet it links (it renders under Jenkins' default CSP)
    css = git("--git-dir", str(bare), "show", f"{delivery['branch']}:models/mlops-tuned/face_cnn/report.css")
    assert css == (run_dir / "report.css").read_text().rstrip("\n")
    assert snapshot(work) == before
    assert delivery["branch"] in out and delivery["branch"] in (run_dir / "report.html").read_text()

    # 4. experiment tracking: one MLflow run per trial under one parent
    if mlflow is not None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("mlops/face_cnn")
        runs = client.search_runs([experiment.experiment_id])
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert len(parents) == 1 and len(children) == len(summary["trials"])
