"""The study-store contract (tuner/study/base.py): one suite that every store must pass.

Parametrized by store URL: Optuna's RDB storage on SQLite (the embedded default) and on a real
PostgreSQL server the tests start (tests/postgres.py), and its journal storage on a file.
Several processes are real processes (multiprocessing), and "a crash" is ``os._exit`` in the
middle of a trial.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tuner.errors import ConfigError, StudyError
from tuner.study import RESUMABLE, convert, open_store
from tuner.study.optuna_store import SCHEMA_VERSION

pytest_plugins = ["tests.postgres"]
pytestmark = pytest.mark.timeout(180)

META = {"script_name": "m.py", "script_sha256": "abc", "kind": "ann", "metric": "val_accuracy"}


def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'run' / 'study.db'}"


def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"journal://{tmp_path / 'shared' / 'study.log'}"


def postgres_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return request.getfixturevalue("postgres_url")


STORES: dict[str, Callable[[pytest.FixtureRequest, Path], str]] = {
    "sqlite": sqlite_url, "journal": journal_url, "postgresql": postgres_url}


@pytest.fixture(params=sorted(STORES))
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return STORES[request.param](request, tmp_path)


def workdir_for(base: Path) -> Callable[[int], Path]:
    return lambda n: base / "trials" / f"{n:04d}"


def test_a_study_is_created_and_loaded_by_name(url, tmp_path):
    with open_store(url, name="face", meta=META) as store:
        first_id = store.meta()["study_id"]
        assert store.trials() == [] and store.meta()["study_name"] == "face"
    with open_store(url, name="face", meta=META) as store:
        assert store.meta()["study_id"] == first_id
    # a changed script never resumes a study: a run directory's own says --fresh (which 'mlops run'
    # does by itself), a shared one names a new study; hashes shown short
    remedy = "--fresh" if url.startswith("sqlite") else "--study NEW_NAME"
    with pytest.raises(StudyError, match=r"another version of m.py \(started from abc, this one is "
                                         rf"0123456789ab\); run that version, or .*{remedy}"):
        open_store(url, name="face", meta={**META, "script_sha256": "0123456789ab" * 5})
    if url.startswith("sqlite"):  # a run directory's own file holds one study
        with pytest.raises(StudyError, match="holds the study 'face', not 'digits'"):
            open_store(url, name="digits", meta=META)
    else:  # a shared storage holds many, by name
        with open_store(url, name="digits", meta=META) as other:
            assert other.meta()["study_id"] != first_id and other.trials() == []
    with open_store(url, name="face") as store:  # by name, without the script's details
        assert store.meta()["study_id"] == first_id


def _claim(url: str, n: int, queue: multiprocessing.Queue) -> None:
    with open_store(url, name="race") as store:
        numbers = [store.claim_trial({"i": i}, lambda k: f"w/{k}", f"proc-{os.getpid()}").number for i in range(n)]
    queue.put(numbers)


def in_processes(target: Callable[..., None], args: tuple, count: int) -> list:
    """Run ``target(*args, queue)`` in ``count`` processes at once; what each put on the queue."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, queue)) for _ in range(count)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(30)
    return got


def test_claiming_is_atomic_across_processes(url, tmp_path):
    open_store(url, name="race", meta=META).close()
    got = in_processes(_claim, (url, 10), 4)
    numbers = sorted(n for part in got for n in part)
    assert numbers == list(range(1, 41))  # 40 claims, 40 different numbers, none lost
    with open_store(url, name="race") as store:
        trials = store.trials()
        assert [t.number for t in trials] == numbers
        assert {t.status for t in trials} == {"running"} and all(t.owner for t in trials)


def test_a_trial_is_recorded_as_it_runs_and_finished_once(url, tmp_path):
    with open_store(url, name="s", meta=META) as store:
        rec = store.claim_trial({"lr": 0.1}, workdir_for(tmp_path), "me:1")
        assert rec.status == "running" and rec.owner == "me:1" and rec.workdir.endswith("trials/0001")
        history = [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.6}]
        store.record_history(rec.number, history)
        store.heartbeat(rec.number, "me:1")
        store.restart_trial(rec.number)
        assert store.trial(rec.number).history == history and store.trial(rec.number).epochs == 2
        done = store.finish_trial(rec.number, {"status": "ok", "metric": 0.6, "epochs": 2, "seconds": 3.0,
                                               "history": history, "restarts": 1})
        assert done.status == "ok" and done.metric == 0.6 and done.finished and done.restarts == 1
        assert done.owner is None
        with pytest.raises(StudyError, match="already finished"):
            store.finish_trial(rec.number, {"status": "failed"})
        with pytest.raises(StudyError, match="does not exist"):
            store.finish_trial(99, {"status": "ok"})
        assert not store.resume_trial(rec.number, "other:2")  # finished: nobody takes it over


def test_heartbeats_decide_who_is_stale_and_one_worker_takes_over(url, tmp_path):
    with open_store(url, name="s", meta=META) as store:
        a = store.claim_trial({}, workdir_for(tmp_path), "worker-a:1")
        b = store.claim_trial({}, workdir_for(tmp_path), "worker-b:2")
        assert store.heartbeat(b.number, "worker-b:2")
        assert store.mark_stale(max_age=60) == []  # both heartbeated just now
        now = store.trial(a.number).heartbeat_at
        assert store.mark_stale(max_age=60, now=now + 61) == [a.number, b.number]
        stale = store.trial(a.number)
        assert stale.status == "interrupted" and "heartbeats" in stale.reason and stale.owner is None
        assert store.resume_trial(a.number, "worker-c:3")  # the first to resume gets it
        assert not store.resume_trial(a.number, "worker-d:4")  # the second does not
        assert store.trial(a.number).owner == "worker-c:3" and store.trial(a.number).status == "running"
        assert not store.heartbeat(a.number, "worker-d:4")  # not the owner: changes nothing
        assert store.trial(a.number).owner == "worker-c:3"


def _claim_within(url: str, limit: int, queue: multiprocessing.Queue) -> None:
    with open_store(url, name="budget") as store:
        mine = []
        while (rec := store.claim_trial({}, lambda k: f"w/{k}", f"proc-{os.getpid()}",
                                        allowed=lambda ts: len(ts) < limit)) is not None:
            mine.append(rec.number)
    queue.put(mine)


def test_a_trial_budget_holds_across_processes_claiming_at_once(url, tmp_path):
    open_store(url, name="budget", meta=META).close()
    got = in_processes(_claim_within, (url, 7), 3)
    assert sorted(n for part in got for n in part) == list(range(1, 8))  # exactly the budget: 7


def _crash_mid_trial(url: str, workdir: str) -> None:
    store = open_store(url, name="s")
    rec = store.claim_trial({"lr": 0.01}, lambda n: f"{workdir}/{n:04d}", f"doomed:{os.getpid()}")
    store.record_history(rec.number, [{"epoch": 1, "val_accuracy": 0.7}])
    os._exit(137)  # as kill -9: no close, no finish


def test_what_a_crash_leaves_behind_is_a_resumable_trial_with_its_history(url, tmp_path):
    open_store(url, name="s", meta=META).close()
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_crash_mid_trial, args=(url, str(tmp_path / "trials")))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 137
    with open_store(url, name="s", meta=META) as store:
        (rec,) = store.trials()
        assert rec.status == "running" and rec.history == [{"epoch": 1, "val_accuracy": 0.7}]
        assert store.mark_stale(max_age=0.0) == [rec.number]
        assert store.trial(rec.number).status in RESUMABLE
        assert store.resume_trial(rec.number, "survivor:1")
        store.finish_trial(rec.number, {"status": "ok", "metric": 0.8, "epochs": 2,
                                        "history": [{"epoch": 1}, {"epoch": 2}]})
        assert [t.status for t in store.trials()] == ["ok"]  # counted once


def test_an_interrupted_trial_is_resumed_not_lost(url, tmp_path):
    with open_store(url, name="s", meta=META) as store:
        rec = store.claim_trial({}, workdir_for(tmp_path), "me:1")
        store.interrupt_trial(rec.number, "stopped by SIGTERM", [{"epoch": 1}])
        got = store.trial(rec.number)
        assert got.status == "interrupted" and got.reason == "stopped by SIGTERM" and not got.finished
        assert store.resume_trial(rec.number, "me:2")
        assert store.trial(rec.number).reason is None


def test_what_a_trial_is_for_is_kept_with_it(url, tmp_path):
    """A confirmation trial keeps its seed and the trial it confirms across reopening; a search
    trial has neither."""
    with open_store(url, name="m", meta=META) as store:
        search = store.claim_trial({"lr": 0.1}, workdir_for(tmp_path), "me:1")
        check = store.claim_trial({"lr": 0.1}, workdir_for(tmp_path), "me:1", attrs={"seed": 7, "confirms": 1})
        assert (search.confirms, search.seed, check.confirms, check.seed) == (None, None, 1, 7)
    with open_store(url, name="m", meta=META) as store:
        again = {t.number: (t.confirms, t.seed) for t in store.trials()}
    assert again == {search.number: (None, None), check.number: (1, 7)}


def test_metadata_and_elapsed_time_survive_reopening(url):
    with open_store(url, name="s", meta=META) as store:
        store.set_meta(first_started_at=123.0, note=["a", 1])
        assert store.add_elapsed(10.5) == 10.5
    with open_store(url, name="s", meta=META) as store:
        assert store.meta()["note"] == ["a", 1] and store.meta()["first_started_at"] == 123.0
        assert store.add_elapsed(4.5) == 15.0 and store.elapsed() == 15.0


def test_elapsed_time_is_the_union_of_the_workers_sessions(url):
    """Two workers side by side for a minute spend one minute of the budget, not two."""
    with open_store(url, name="s", meta=META) as store:
        store.work_session("a:1", 1000.0, 1060.0)
        store.work_session("b:2", 1030.0, 1090.0)  # overlaps a's
        store.work_session("a:1", 1200.0, 1210.0)  # a later session of a
        assert store.elapsed() == pytest.approx(100.0)
        store.work_session("b:2", 1030.0, 1100.0)  # b is still at it: its session grows
        assert store.elapsed() == pytest.approx(110.0)


def test_the_metric_per_epoch_is_what_optuna_and_its_dashboard_read(url, tmp_path):
    import optuna

    from tuner.study.optuna_store import make_storage

    with open_store(url, name="s", meta=META) as store:
        rec = store.claim_trial({"fc_layers": [64, 32], "learning_rate": 0.01, "kernel": "rbf"},
                                workdir_for(tmp_path), "me:1")
        store.record_history(rec.number, [{"epoch": 1, "val_accuracy": 0.6}, {"epoch": 2, "val_accuracy": 0.7}])
        store.finish_trial(rec.number, {"status": "ok", "metric": 0.7, "epochs": 2, "seconds": 1.0,
                                        "history": [{"epoch": 1, "val_accuracy": 0.6},
                                                    {"epoch": 2, "val_accuracy": 0.7}]})
    (trial,) = optuna.load_study(study_name="s", storage=make_storage(url)).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == 0.7 and trial.number == rec.number - 1
    assert trial.intermediate_values == {1: 0.6, 2: 0.7}
    assert trial.params == {"learning_rate": 0.01, "fc_layers.layers": 2, "fc_layers[0]": 64, "fc_layers[1]": 32}
    assert trial.user_attrs["settings"]["kernel"] == "rbf"


def test_an_unknown_store_url_lists_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match="unknown scheme 'mongodb'; valid: sqlite:///.*postgresql://.*journal:///"):
        open_store("mongodb://db/x")
    with pytest.raises(ConfigError, match="no file"):
        open_store("sqlite://")


def test_a_study_of_the_old_schema_is_refused_then_converted_with_every_record(tmp_path):
    """Run directories of mlops 0.1 (its own SQLite schema): refused with the one command that
    converts them; the conversion keeps every trial, the study id and the time spent."""
    run = tmp_path / "run"
    run.mkdir()
    db = sqlite3.connect(run / "study.db")
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE trials (number INTEGER PRIMARY KEY, status TEXT NOT NULL, settings TEXT NOT NULL,
            metric REAL, epochs INTEGER NOT NULL DEFAULT 0, seconds REAL, restarts INTEGER NOT NULL DEFAULT 0,
            reason TEXT, workdir TEXT NOT NULL, history TEXT NOT NULL DEFAULT '[]', result TEXT,
            started_at REAL NOT NULL, finished_at REAL);
    """)
    db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in {
        "schema_version": 1, "script_name": "m.py", "script_sha256": "abc", "kind": "ann", "metric": "val_accuracy",
        "study_name": "m", "study_id": "feedface", "elapsed_seconds": 42.0}.items()])
    db.execute("INSERT INTO trials(number, status, settings, metric, epochs, restarts, workdir, history, started_at) "
               "VALUES (1, 'ok', '{\"lr\": 0.1}', 0.8, 2, 1, ?, '[{\"epoch\": 1, \"val_accuracy\": 0.7}, "
               "{\"epoch\": 2, \"val_accuracy\": 0.8}]', 1.0), (2, 'running', '{}', NULL, 0, 0, ?, '[]', 2.0)",
               (str(run / "trials" / "0001"), str(run / "trials" / "0002")))
    db.commit()
    db.close()
    with pytest.raises(StudyError, match=f"earlier mlops .*mlops study convert {run}"):
        open_store(run, name="m", meta=META)
    report = convert(run)
    assert report.trials == 2 and report.backup and report.backup[0].name.startswith("study.db.schema-1-")
    with open_store(run, name="m", meta=META) as store:
        one, two = store.trials()
        assert (one.number, one.status, one.metric, one.settings, one.restarts, one.epochs) == \
            (1, "ok", 0.8, {"lr": 0.1}, 1, 2)
        assert [h["epoch"] for h in one.history] == [1, 2]
        assert (two.number, two.status) == (2, "interrupted")  # the next run resumes it
        meta = store.meta()
        assert meta["study_id"] == "feedface" and meta["schema_version"] == SCHEMA_VERSION
        assert store.elapsed() == pytest.approx(42.0)


def test_a_plain_postgresql_url_uses_the_installed_driver(request):
    url = request.getfixturevalue("postgres_url")
    plain = "postgresql://" + url.partition("://")[2]  # as users and docs write it
    with open_store(plain, name="plain", meta=META) as store:
        assert store.trials() == []


def test_a_database_restart_is_waited_for(request, tmp_path):
    """PostgreSQL restarts under a running study: the next call waits and reconnects."""
    server = request.getfixturevalue("postgres_server")
    url = request.getfixturevalue("postgres_url")
    with open_store(url, name="s", meta=META) as store:
        rec = store.claim_trial({}, workdir_for(tmp_path), "me:1")
        server.restart()
        store.record_history(rec.number, [{"epoch": 1, "val_accuracy": 0.5}])  # a fresh connection
        assert store.trial(rec.number).history == [{"epoch": 1, "val_accuracy": 0.5}]


def _open_new_study(url: str) -> str:
    from tuner.study.optuna_store import make_storage

    make_storage(url)
    return "ok"


def test_processes_creating_one_new_sqlite_study_at_once_all_open_it(tmp_path):
    """'mlops run --workers N' starts its workers with itself: each may be the one that creates
    the run directory's study.db. Creating Optuna's tables is serialized, so none fails (an
    IntegrityError on alembic_version was seen when two raced)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    for attempt in range(3):
        url = f"sqlite:///{tmp_path / f'race-{attempt}' / 'study.db'}"
        (tmp_path / f"race-{attempt}").mkdir()
        with ctx.Pool(4) as pool:
            assert pool.map(_open_new_study, [url] * 4, chunksize=1) == ["ok"] * 4
