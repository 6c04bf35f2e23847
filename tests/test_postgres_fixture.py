"""The test harnesses for workers: a real PostgreSQL server (tests/postgres.py) and a real
optuna-dashboard (tests/dashboard.py) reading what Optuna wrote to PostgreSQL or SQLite."""

from __future__ import annotations

import pytest

from tests import dashboard as dash

pytest_plugins = ["tests.postgres"]  # the postgres_server / postgres_url fixtures


def _scalar(conn, query: str, *args):
    with conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchone()[0]


def test_server_accepts_a_connection_on_loopback_only(postgres_server):
    conn = postgres_server.connect()
    try:
        assert _scalar(conn, "SELECT 1") == 1
        assert _scalar(conn, "SELECT inet_server_addr()::text").startswith("127.0.0.1")
        assert _scalar(conn, "SHOW listen_addresses") == "127.0.0.1"
        assert _scalar(conn, "SHOW fsync") == "off"
        assert _scalar(conn, "SELECT current_user") == "postgres"
    finally:
        conn.close()
    assert postgres_server.url("abc") == f"postgresql+psycopg2://postgres@127.0.0.1:{postgres_server.port}/abc"


def test_two_fresh_databases_are_isolated(postgres_server, postgres_url):
    other = postgres_server.create_database("isolation_other")
    first_db = postgres_url.rsplit("/", 1)[1]
    assert first_db != "isolation_other" and other.endswith("/isolation_other")
    a = postgres_server.connect(first_db)
    b = postgres_server.connect("isolation_other")
    try:
        with a, a.cursor() as cur:
            cur.execute("CREATE TABLE only_here (x int)")
            cur.execute("INSERT INTO only_here VALUES (7)")
        assert _scalar(a, "SELECT x FROM only_here") == 7
        assert _scalar(b, "SELECT to_regclass('only_here') IS NULL") is True
    finally:
        a.close()
        b.close()


def test_each_test_gets_an_empty_database(postgres_server, postgres_url):
    conn = postgres_server.connect(postgres_url.rsplit("/", 1)[1])
    try:
        assert _scalar(conn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    finally:
        conn.close()


def test_restart_breaks_an_open_connection_and_a_new_one_succeeds(postgres_server):
    import psycopg2

    port = postgres_server.port
    conn = postgres_server.connect()
    try:
        assert _scalar(conn, "SELECT 1") == 1
        postgres_server.restart()
        with pytest.raises((psycopg2.OperationalError, psycopg2.InterfaceError)):
            _scalar(conn, "SELECT 1")
    finally:
        conn.close()
    assert postgres_server.port == port  # clients reconnect to the same URL
    again = postgres_server.connect()
    try:
        assert _scalar(again, "SELECT 2") == 2
    finally:
        again.close()


def test_stop_refuses_connections_until_start(postgres_server):
    import psycopg2

    postgres_server.stop()
    try:
        with pytest.raises(psycopg2.OperationalError):
            postgres_server.connect().close()
    finally:
        postgres_server.start()
    postgres_server.connect().close()


# -- Optuna on the store, read back through optuna-dashboard -----------------------------------

def _objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr("kind", "fixture-test")
    for step in range(3):
        trial.report(trial.number + step / 4, step)  # exact in binary: compared with ==
    return x


@pytest.fixture(params=["postgresql", "sqlite"])
def storage_url(request, tmp_path):
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'x.db'}"


def test_dashboard_shows_trials_optuna_wrote(storage_url):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(storage_url)
    study = optuna.create_study(storage=storage, study_name="fixture-study",
                                sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(_objective, n_trials=3)
    written = {t.number: t for t in study.trials}
    storage.engine.dispose()

    with dash.dashboard(storage_url) as base:
        assert base.startswith("http://127.0.0.1:")
        assert [s["study_name"] for s in dash.studies(base)] == ["fixture-study"]
        detail = dash.study_detail(base, dash.study_id(base, "fixture-study"))

    assert detail["name"] == "fixture-study" and detail["directions"] == ["minimize"]
    assert detail["has_intermediate_values"] is True
    trials = sorted(detail["trials"], key=lambda t: t["number"])
    assert [t["number"] for t in trials] == [0, 1, 2]
    for t in trials:
        n = t["number"]
        assert t["state"] == "Complete"
        assert dash.intermediate_values(t) == {0: n, 1: n + 0.25, 2: n + 0.5}
        assert dash.params(t) == {"x": str(written[n].params["x"])}
        assert dash.user_attrs(t) == {"kind": "fixture-test"}
        assert t["values"] == [written[n].params["x"]]
