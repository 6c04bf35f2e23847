"""What a trial container gets of the script's folder (``tuner.runners.docker.script_mounts``),
checked without an engine: the script, and only the files, folders and sibling modules it
names, never anything outside its folder. tests/test_docker_runner.py runs such a script in a
real container."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from tuner.errors import RunnerError
from tuner.runners.docker import describe_mounts, script_mounts


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _mounted(script: Path, **kw: object) -> list[str]:
    return [str(rel) for _, rel in script_mounts(script, **kw)]


def test_a_script_that_names_nothing_gets_only_itself(tmp_path: Path) -> None:
    _tree(tmp_path, {"train.py": "import numpy as np\nprint('accuracy: 0.9')\n", "secret.txt": "x",
                     "other.py": "", "data/x.npy": ""})
    assert script_mounts(tmp_path / "train.py") == [((tmp_path / "train.py").resolve(), PurePosixPath("train.py"))]


def test_data_files_folders_and_sibling_modules_it_names(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "train.py": (
            "import os, json\n"
            "import numpy as np\n"
            "import pandas as pd\n"
            "import utils\n"
            "from mypkg import model\n"
            "from mypkg.sub import deep\n"
            "x = np.load('data/x.npy')\n"
            "frame = pd.read_csv(\"train.csv\")\n"
            "faces = sorted(__import__('glob').glob('faces/*.png'))\n"
            "labels = f\"./labels/{'a'}.txt\"\n"
        ),
        "data/x.npy": "", "data/y.npy": "", "train.csv": "a,b\n", "faces/1.png": "", "labels/a.txt": "",
        "utils.py": "import helpers\nVOCAB = 'vocab.json'\n",  # transitively: helpers.py, vocab.json
        "helpers.py": "import os\n",
        "vocab.json": "{}",
        "mypkg/__init__.py": "", "mypkg/model.py": "import shared\n", "mypkg/sub/deep.py": "CFG = 'cfg.yaml'\n",
        "shared.py": "", "cfg.yaml": "",
        # not named: never mounted
        "secret.txt": "password", "unused.py": "", "notes/todo.md": "", "data2/z.npy": "",
    })
    assert _mounted(tmp_path / "train.py") == [
        "train.py", "cfg.yaml", "data/x.npy", "faces", "helpers.py", "labels", "mypkg", "shared.py", "train.csv",
        "utils.py", "vocab.json"]


def test_a_file_inside_a_named_folder_is_covered_by_the_folder(tmp_path: Path) -> None:
    _tree(tmp_path, {"train.py": "A = 'data/x.npy'\nB = 'data'\nC = './data/x.npy'\n", "data/x.npy": ""})
    assert _mounted(tmp_path / "train.py") == ["train.py", "data"]
    _tree(tmp_path, {"train.py": "A = 'data/x.npy'\nC = './data/x.npy'\n"})
    assert _mounted(tmp_path / "train.py") == ["train.py", "data/x.npy"]


def test_nothing_outside_the_script_folder(tmp_path: Path) -> None:
    project = tmp_path / "project"
    _tree(tmp_path, {"outside.txt": "secret", "elsewhere/data.csv": "secret"})
    _tree(project, {
        "train.py": (
            "A = '../outside.txt'\nB = '/etc/passwd'\nD = 'escape/data.csv'\nE = 'link.txt'\n"
            "F = '.'\nG = ''\nH = './'\nI = '~/.ssh/id_rsa'\nJ = 'inner/../../outside.txt'\nK = '*'\n"
            f"import escape\nC = {str(project / 'inside.txt')!r}\n"
        ),
        "inside.txt": "",
    })
    os.symlink(tmp_path / "elsewhere", project / "escape")
    os.symlink(tmp_path / "outside.txt", project / "link.txt")
    mounts = script_mounts(project / "train.py")
    assert [str(rel) for _, rel in mounts] == ["train.py"]  # the absolute path to inside.txt too
    assert all(host.is_relative_to(project.resolve()) for host, _ in mounts)


def test_a_symlink_inside_the_folder_mounts_its_target(tmp_path: Path) -> None:
    _tree(tmp_path, {"train.py": "A = 'latest.csv'\n", "runs/2024.csv": "1\n"})
    os.symlink("runs/2024.csv", tmp_path / "latest.csv")
    assert script_mounts(tmp_path / "train.py")[1] == ((tmp_path / "runs/2024.csv").resolve(),
                                                       PurePosixPath("latest.csv"))


def test_a_folder_holding_the_workdir_is_not_mounted(tmp_path: Path) -> None:
    _tree(tmp_path, {"train.py": "A = 'mlops-runs'\nB = 'data.csv'\n", "data.csv": ""})
    workdir = tmp_path / "mlops-runs" / "train" / "trials" / "0001"
    workdir.mkdir(parents=True)
    assert _mounted(tmp_path / "train.py", exclude=[workdir]) == ["train.py", "data.csv"]
    # the workdir is the script's folder itself: the files it names are still mounted
    assert _mounted(tmp_path / "train.py", exclude=[tmp_path]) == ["train.py", "data.csv", "mlops-runs"]


def test_a_script_that_does_not_parse_names_nothing(tmp_path: Path) -> None:
    _tree(tmp_path, {"train.py": "A = 'data.csv'\ndef broken(:\n", "data.csv": ""})
    assert _mounted(tmp_path / "train.py") == ["train.py"]


def test_import_cycles_end(tmp_path: Path) -> None:
    _tree(tmp_path, {"train.py": "import a\n", "a.py": "import b\n", "b.py": "import a\nX = 'x.txt'\n",
                     "x.txt": ""})
    assert _mounted(tmp_path / "train.py") == ["train.py", "a.py", "b.py", "x.txt"]


def test_a_missing_script_is_a_runner_error(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="cannot read the training script"):
        script_mounts(tmp_path / "absent.py")


def test_the_log_line_names_folders_with_a_slash(tmp_path: Path) -> None:
    _tree(tmp_path, {"train.py": "A = 'data'\nimport utils\n", "data/x.npy": "", "utils.py": ""})
    assert describe_mounts(script_mounts(tmp_path / "train.py")) == "train.py, data/, utils.py"
