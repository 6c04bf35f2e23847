"""The import graph keeps the layers apart (read with ``ast``; nothing is imported or run).

Every ``import`` counts, also one inside a function (a lazy import is still a dependency).
"Reaches" follows imports through the project's own modules, so a rule cannot be dodged by
going through a third module.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tuner", "notify", "monitor", "bench")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _resolve(name: str) -> str | None:
    """The project module ``name`` refers to (a module, or the package holding a name)."""
    known = modules()
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def imports(module: str) -> frozenset[str]:
    """The project modules ``module`` imports directly."""
    path = modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        for name in names:
            target = _resolve(name)
            if target and target != module:
                out.add(target)
    return frozenset(out)


def reaches(module: str) -> set[str]:
    """Every project module ``module`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for dep in imports(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_graph_is_read():
    assert "tuner.loop" in modules() and "tuner.runners.base" in imports("tuner.loop")
    assert "tuner.study.optuna_store" in reaches("tuner.loop")


def test_nothing_imports_the_cli_but_the_entry_point():
    offenders = {m: sorted(d for d in imports(m) if in_package(d, "tuner.cli"))
                 for m in modules() if not in_package(m, "tuner.cli") and m != "tuner.__main__"}
    assert {m: d for m, d in offenders.items() if d} == {}


@pytest.mark.parametrize("module, forbidden", [
    ("tuner.loop", ("tuner.html_report", "notify", "tuner.outcome", "tuner.assemble")),
    ("notify", ("tuner.trial", "tuner.config")),
    ("tuner.jenkins", ("tuner.config",)),
    ("tuner.trial", ("tuner.hparams",)),
    ("tuner.summary", ("tuner.trial", "tuner.config", "tuner.loop")),
])
def test_layers_do_not_reach_what_they_must_not(module, forbidden):
    owners = [m for m in modules() if in_package(m, module)]
    assert owners, module
    for owner in owners:
        bad = sorted(d for d in reaches(owner) for f in forbidden if in_package(d, f))
        assert not bad, f"{owner} reaches {bad}"


def test_search_and_runners_never_import_each_other():
    for m in modules():
        if in_package(m, "tuner.search"):
            assert not [d for d in imports(m) if in_package(d, "tuner.runners")], m
        if in_package(m, "tuner.runners"):
            assert not [d for d in imports(m) if in_package(d, "tuner.search")], m


def test_every_entry_point_builds_runners_through_the_composition_root():
    """Runner classes are constructed in tuner.assemble (via the registry) and tests only."""
    direct = []
    for m, path in modules().items():
        if in_package(m, "tuner.runners") or m == "tuner.assemble":
            continue
        text = path.read_text(encoding="utf-8")
        for cls in ("LocalRunner(", "WarmRunner(", "DockerRunner(", "JenkinsRunner("):
            if cls in text:
                direct.append(f"{m}: {cls}")
    assert direct == []


def test_workers_are_started_and_study_storages_opened_in_one_place_each():
    """Worker processes are started by tuner.assemble alone; Optuna storages are made by the
    study package alone (every other part goes through tuner.study.open_store)."""
    for m, path in modules().items():
        text = path.read_text(encoding="utf-8")
        if m != "tuner.assemble":
            assert "WorkerPool(" not in text or m == "tuner.workers", m
        if not in_package(m, "tuner.study"):
            assert "RDBStorage(" not in text and "JournalStorage(" not in text, m
