"""What a user meets first (issue 18, item 1): ``scripts/demo`` says how to get ``mlops`` on the
PATH and keeps the exit code of ``mlops run``; the examples' packages are an extra; a script
that imports a package that is not installed ends the run after one trial with one line that
says what to install (no watchdog restarts), and the rerun after installing it resumes the
study; every third-party import is declared; ``mlops images build`` removes the image a rebuild
replaced unless something uses it; the outbox hint names the outbox in use.
"""

from __future__ import annotations

import ast
import configparser
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tuner import trial as trial_mod
from tuner.cli import main
from tuner.study import open_store

REPO = Path(__file__).resolve().parents[1]
MLOPS = [sys.executable, "-m", "tuner"]  # as tests/test_local_runner.py runs the real CLI

pytest_plugins = ["tests.docker_engine"]  # the docker_engine / docker_images fixtures


@pytest.fixture(autouse=True)
def _clean_env(clean_mlops_env):
    """No MLOPS_*/JENKINS_* setting of the machine reaches these tests (tests/conftest.py)."""


# -- a package that is not installed -----------------------------------------------------------

MISSING = "mlops_missing_pkg_for_test"
SCRIPT = f'''import {MISSING}
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

x, y = load_wine(return_X_y=True)
x_tr, x_te, y_tr, y_te = train_test_split(x, y, random_state=0, stratify=y)
clf = SVC(C=1.0).fit(x_tr, y_tr)
print(f"accuracy: {{clf.score(x_te, y_te):.4f}}")
'''
LINE = (f"models/train_wine.py imports {MISSING}, which is not installed here: pip install {MISSING}, "
        "then run the same command again")


def _mlops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*MLOPS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_missing_package_ends_the_run_after_one_trial_with_one_line_and_no_restart(tmp_path):
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    (repo / "models" / "train_wine.py").write_text(SCRIPT, encoding="utf-8")
    run_dir = tmp_path / "run"
    done = _mlops("run", "models/train_wine.py", "--run-dir", str(run_dir), "--max-trials", "3", cwd=repo)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    said = [line for line in out.splitlines() if "which is not installed here" in line]
    assert len(said) == 1 and said[0].startswith("mlops: ") and said[0].endswith(LINE), out
    assert "Traceback" not in out and "restarted" not in out and "crash loop" not in out
    # exactly one trial, started once, never restarted by the watchdog
    assert sorted(p.name for p in (run_dir / "trials").iterdir()) == ["0001"]
    wd = run_dir / "trials" / "0001"
    assert (wd / "train.log").read_text().count("trial started") == 1
    assert f"No module named '{MISSING}'" in (wd / "train.log").read_text()
    assert not (wd / "restarts.jsonl").exists()
    events = [json.loads(line)["type"] for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert "trial_restarted" not in events and events.count("trial_started") == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["reason"] == LINE
    assert [(t["number"], t["reason"]) for t in summary["trials"]] == [(1, LINE)]
    # the study keeps the trial with its reason, resumable: installing the package is the fix
    with open_store(run_dir) as study:
        (rec,) = study.trials()
    assert rec.status == "interrupted" and rec.reason == LINE

    # installed now (a module beside the script): the same command resumes the study at trial 1
    (repo / "models" / f"{MISSING}.py").write_text("", encoding="utf-8")
    again = _mlops("run", "models/train_wine.py", "--run-dir", str(run_dir), "--max-trials", "1", cwd=repo)
    assert "which is not installed here" not in again.stdout + again.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(t["number"], t["status"]) for t in summary["trials"]] == [(1, "ok")], again.stdout + again.stderr
    assert (wd / "train.log").read_text().count("trial started") == 2


def test_mlops_train_names_the_missing_package_too(tmp_path, capsys):
    script = tmp_path / "train_wine.py"
    script.write_text(SCRIPT, encoding="utf-8")
    code = main(["train", str(script), "--workdir", str(tmp_path / "wd")])
    captured = capsys.readouterr()
    assert code == 1
    result = json.loads((tmp_path / "wd" / "result.json").read_text())
    assert result["status"] == "failed" and result["missing_module"] == MISSING
    assert result["reason"].endswith(f"imports {MISSING}, which is not installed here: pip install {MISSING}, "
                                     "then run the same command again")
    assert result["restarts"] == 0 and result["reason"] in captured.out + captured.err


@pytest.mark.parametrize("module, how", [
    ("skimage", "pip install 'mlops-autotune[examples]' (or pip install scikit-image)"),
    ("skimage.data", "pip install 'mlops-autotune[examples]' (or pip install scikit-image)"),
    ("PIL", "pip install 'mlops-autotune[examples]' (or pip install pillow)"),
    ("tensorflow", "pip install 'mlops-autotune[tf]' (or pip install tensorflow)"),
    ("sklearn", "pip install scikit-learn"),
    ("cv2", "pip install opencv-python"),
    ("yaml", "pip install pyyaml"),
    ("xgboost", "pip install xgboost"),
])
def test_the_message_maps_import_names_to_what_pip_installs(module, how, tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    line = trial_mod.missing_module_message(tmp_path / "models" / "face_cnn.py", module)
    assert line == f"models/face_cnn.py imports {module}, which is not installed here: {how}, then run the same command again"


def test_a_script_outside_the_current_folder_is_named_by_its_full_path(tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    line = trial_mod.missing_module_message(tmp_path / "face_cnn.py", "skimage")
    assert line.startswith(f"{tmp_path / 'face_cnn.py'} imports skimage,")


@pytest.mark.parametrize("log, found", [
    ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n    import skimage\n"
     "ModuleNotFoundError: No module named 'skimage'\n", "skimage"),
    ("ModuleNotFoundError: No module named 'skimage.data'\nmlops-harness: trial ended\n", "skimage.data"),
    # the last exception counts: a missing optional module handled, then another error
    ("ModuleNotFoundError: No module named 'cupy'\nValueError: bad shape\n", None),
    ("ValueError: No module named 'skimage'\n", None),
    ("print('ModuleNotFoundError: No module named \"x\"')\n", None),
    ("ModuleNotFoundError: No module named 'a; rm -rf ~'\n", None),  # never a command to copy
    ("", None),
])
def test_missing_module_reads_the_last_exception_of_the_log(log, found):
    assert trial_mod.missing_module(log) == found


# -- what is installed -----------------------------------------------------------------------------

def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg", encoding="utf-8")
    return cfg


def _names(text: str) -> set[str]:
    return {_canonical(m.group(0)) for line in text.splitlines()
            if (m := re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line.strip()))}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports(path: Path) -> set[str]:
    tops = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            tops |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    return {t for t in tops if t not in sys.stdlib_module_names and t not in ("__future__", "tuner", "notify", "monitor")}


def test_the_extras_named_in_hints_install_those_packages():
    extras = _setup_cfg()["options.extras_require"]
    for package, extra in trial_mod.EXTRA_OF.items():
        assert _canonical(package) in _names(extras[extra]), f"setup.cfg [{extra}] does not install {package}"


def test_the_examples_run_with_the_base_install_tf_and_examples():
    """What ``scripts/demo`` installs (``tf,examples``) covers every import of models/*.py."""
    cfg = _setup_cfg()
    declared = (_names(cfg["options"]["install_requires"]) | _names(cfg["options.extras_require"]["tf"])
                | _names(cfg["options.extras_require"]["examples"]))
    transitive = {"numpy"}  # scikit-learn and tensorflow install it
    for script in sorted((REPO / "models").glob("*.py")):
        for top in _imports(script) - transitive:
            package = _canonical(trial_mod.PIP_NAMES.get(top, top))
            assert package in declared, f"{script.name} imports {top}: add {package} to the examples extra"
    demo = (REPO / "scripts" / "demo").read_text()
    assert 'ensure_venv "tf,examples"' in demo


def test_every_third_party_import_of_the_package_is_declared():
    """tuner/, notify/ and monitor/ import only what setup.cfg installs (install_requires or an
    extra), what a base requirement requires itself (numpy through scikit-learn), or what a
    package the same file imports requires (requests beside python-jenkins)."""
    from importlib import metadata

    def requires(name: str) -> set[str]:
        try:
            return _names("\n".join(r.split(";")[0] for r in metadata.requires(name) or []))
        except metadata.PackageNotFoundError:
            return set()

    cfg = _setup_cfg()
    base = _names(cfg["options"]["install_requires"])
    declared = set(base)
    for value in cfg["options.extras_require"].values():
        declared |= _names(value)
    provided = declared.union(*(requires(name) for name in base))
    owners = metadata.packages_distributions()
    missing = {}
    for pkg in ("tuner", "notify", "monitor"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            dists = {top: {_canonical(d) for d in owners.get(top, [trial_mod.PIP_NAMES.get(top, top)])}
                     for top in _imports(path)}
            beside = set().union(*(requires(d) for ds in dists.values() for d in ds & declared))
            for top, names in dists.items():
                if not names & (provided | beside):
                    missing.setdefault(top, path.relative_to(REPO).as_posix())
    assert not missing, f"imported but not declared in setup.cfg: {missing}"


# -- scripts/demo ----------------------------------------------------------------------------------

def _fake_venv(tmp_path: Path, run_code: int) -> tuple[Path, Path]:
    """A venv scripts/demo takes as installed (its stamp is current) whose 'mlops' records its
    arguments and exits with ``run_code`` for 'run'. Its python refuses to run: the demo must
    not install anything here."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls"
    stamp = hashlib.sha256((REPO / "setup.cfg").read_bytes() + (REPO / "pyproject.toml").read_bytes())
    (venv / ".mlops-installed-tf,examples").write_text(stamp.hexdigest()[:16] + "\n")
    for name, body in (("python", "echo 'the demo tried to install' >&2; exit 97"),
                       ("mlops", f'echo "$*" >> "{calls}"; [ "$1" = run ] && exit {run_code}; exit 0')):
        path = venv / "bin" / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return venv, calls


@pytest.mark.parametrize("run_code", [0, 1, 3])
def test_demo_keeps_the_exit_code_of_mlops_run_and_says_how_to_get_mlops_on_the_path(run_code, tmp_path):
    venv, calls = _fake_venv(tmp_path, run_code)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MLOPS_VENV": str(venv),
           "MLOPS_DEMO_RUN_DIR": str(tmp_path / "run"), "MLOPS_OUTBOX": str(tmp_path / "outbox")}
    done = subprocess.run(["bash", str(REPO / "scripts" / "demo"), "--max-trials", "2"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == run_code, done.stderr
    assert calls.read_text().splitlines() == [
        "classify models/face_cnn.py",
        f"run models/face_cnn.py --run-dir {tmp_path / 'run'} --fresh --max-trials 2",
    ]
    assert f"source {venv}/bin/activate" in done.stderr
    assert "pipx install '.[tf,examples]'" in done.stderr and "pip install --user '.[tf,examples]'" in done.stderr
    # already on the caller's PATH: nothing to say
    calls.unlink()
    on_path = subprocess.run(["bash", str(REPO / "scripts" / "demo")], cwd=tmp_path,
                             env={**env, "PATH": f"{venv}/bin:/usr/bin:/bin"}, capture_output=True, text=True,
                             timeout=60)
    assert on_path.returncode == run_code and "activate" not in on_path.stderr


# -- mlops images build: a rebuild leaves no dangling image ----------------------------------------

@pytest.mark.docker
def test_a_rebuild_removes_the_image_it_replaced_unless_something_uses_it(docker_images, tmp_path):
    import docker

    from tuner import docker_engine

    client = docker_images.client
    name = f"mlops-test/rebuild-{uuid.uuid4().hex[:8]}"
    tag, other = f"{name}:latest", f"{name}-other:keep"

    def build(rev: int) -> docker_engine.Built:  # a tiny image on the test base: a label, no RUN
        ctx = tmp_path / f"ctx-{rev}-{uuid.uuid4().hex[:6]}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM {docker_images.base}\nLABEL mlops.test.rev={rev}\n")
        return docker_engine.build_image(client, ctx, tag, network_mode=None)

    def exists(image_id: str) -> bool:
        try:
            client.images.get(image_id)
            return True
        except docker.errors.ImageNotFound:
            return False

    container = None
    try:
        first = build(1)
        assert first.replaced == ""  # the tag named nothing before
        assert build(1) == first  # the same image again: nothing replaced, nothing removed

        second = build(2)
        assert not exists(first.image_id), "the image the tag left is removed"
        assert second.replaced.startswith(f"removed the previous image of {tag} ({first.image_id.split(':')[1][:12]})")

        client.images.get(second.image_id).tag(other)  # another tag uses it: kept
        third = build(3)
        assert exists(second.image_id) and f"also tagged {other}" in third.replaced

        container = client.containers.create(third.image_id, command=["true"], network_disabled=True)
        fourth = build(4)  # a (stopped) container uses it: kept, never forced
        assert exists(third.image_id) and container.name in fourth.replaced and "kept" in fourth.replaced
        assert exists(fourth.image_id) and client.images.get(tag).id == fourth.image_id
    finally:
        if container is not None:
            container.remove(force=True)
        for ref in (tag, other):
            try:
                client.images.remove(ref)
            except docker.errors.APIError:
                pass
        for image in client.images.list(filters={"label": "mlops.test.rev", "dangling": True}):
            try:
                client.images.remove(image.id)
            except docker.errors.APIError:
                pass


def test_images_build_says_what_the_rebuild_removed(monkeypatch, capsys):
    from tuner import docker_engine

    built = docker_engine.Built("mlops/regression:0.1.0", "sha256:" + "a" * 64,
                                "removed the previous image of mlops/regression:0.1.0 (bbbbbbbbbbbb): "
                                "no other tag or container used it")
    monkeypatch.setattr(docker_engine, "connect", lambda: object())
    monkeypatch.setattr(docker_engine, "build_all", lambda kinds, **kw: [built])
    assert main(["images", "build", "--kind", "regression", "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "built mlops/regression:0.1.0 (aaaaaaaaaaaa); removed the previous image of mlops/regression:0.1.0 "
        "(bbbbbbbbbbbb): no other tag or container used it"]


# -- the outbox hint names the outbox in use -------------------------------------------------------

def _run_dir(tmp_path: Path) -> Path:
    from tests import test_bad_input

    return test_bad_input._run_dir(tmp_path)


def test_the_default_outbox_needs_no_flag(tmp_path, capsys):
    assert main(["notify", str(_run_dir(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "once one is, 'mlops notify flush' sends it" in out and "--outbox" not in out
    assert main(["notify", "flush"]) == 2
    assert "run 'mlops notify flush' again" in capsys.readouterr().err


@pytest.mark.parametrize("folder, shown", [("my-outbox", "{path}"), ("my outbox", '"{path}"')])
def test_an_outbox_of_its_own_is_named_in_the_hint(folder, shown, tmp_path, monkeypatch, capsys):
    outbox = tmp_path / folder
    monkeypatch.setenv("MLOPS_OUTBOX", str(outbox))
    assert main(["notify", str(_run_dir(tmp_path))]) == 0
    hint = f"'mlops notify flush --outbox {shown.format(path=outbox)}'"
    assert f"once one is, {hint} sends it" in capsys.readouterr().out
    assert main(["notify", "flush"]) == 2
    assert f"run {hint} again" in capsys.readouterr().err
    monkeypatch.delenv("MLOPS_OUTBOX")  # and given with --outbox instead
    assert main(["notify", "flush", "--outbox", str(outbox)]) == 2
    assert f"run {hint} again" in capsys.readouterr().err
