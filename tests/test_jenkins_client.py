"""tuner.jenkins against a Jenkins: the local fake (tests/jenkins_server.py) by default, a real
server when JENKINS_URL, JENKINS_USER and JENKINS_API_TOKEN are set. Tests that need what only
the fake can do (inject a failure, a second user, disable CSRF) say so and skip on a real one."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.jenkins_server import (
    PAYLOAD_JOB_XML,
    FakeJenkins,
    JenkinsTarget,
    payload_behaviour,
    target,
)
from tuner import jenkins as jk
from tuner.errors import ConfigError, JenkinsError
from tuner.jenkins.view import view_groups

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def jenkins() -> Iterator[JenkinsTarget]:
    with target() as t:
        yield t


@pytest.fixture
def payload_job(jenkins: JenkinsTarget) -> str:
    """A parameterized job that archives its PAYLOAD parameter as out/result.json."""
    name = jenkins.name("payload")
    client = jenkins.client()
    client.create_job(name, PAYLOAD_JOB_XML)
    jenkins.created_jobs.append(name)
    jenkins.emulate(name, payload_behaviour)
    return name


def fake_only(t: JenkinsTarget) -> FakeJenkins:
    if t.fake is None:
        pytest.skip("needs the local fake Jenkins (it injects what a real server cannot be made to do)")
    return t.fake


# -- connecting --------------------------------------------------------------------------------


def test_from_env_reads_url_user_and_token(jenkins: JenkinsTarget) -> None:
    client = jk.JenkinsClient.from_env(jenkins.env())
    assert client.url.rstrip("/") == jenkins.url.rstrip("/")
    assert client.whoami()["id"] == jenkins.user
    assert jenkins.token not in repr(client)


def test_token_from_a_file(jenkins: JenkinsTarget, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(jenkins.token + "\n", encoding="utf-8")
    env = {"JENKINS_URL": jenkins.url, "JENKINS_USER": jenkins.user, "JENKINS_API_TOKEN_FILE": str(secret)}
    assert jk.JenkinsClient.from_env(env).whoami()["id"] == jenkins.user


def test_missing_settings_say_what_to_set() -> None:
    with pytest.raises(ConfigError, match="JENKINS_URL is not set"):
        jk.JenkinsClient.from_env({})
    with pytest.raises(ConfigError, match="JENKINS_API_TOKEN is not set"):
        jk.JenkinsClient.from_env({"JENKINS_URL": "http://127.0.0.1:9/", "JENKINS_USER": "bob"})
    with pytest.raises(ConfigError, match="JENKINS_USER is not"):
        jk.JenkinsClient.from_env({"JENKINS_URL": "http://127.0.0.1:9/", "JENKINS_API_TOKEN": "x"})
    with pytest.raises(ConfigError, match="must not hold a user or password"):
        jk.JenkinsClient("http://bob:hunter2@127.0.0.1:9/")
    with pytest.raises(ConfigError, match="not an http"):
        jk.JenkinsClient("jenkins.example.com")


def test_from_env_takes_the_configured_values_and_the_token_from_the_environment(tmp_path: Path) -> None:
    # what the caller's Config holds is passed in; the environment fills what is not given
    client = jk.JenkinsClient.from_env({}, url="http://127.0.0.1:9/", timeout=3.5)
    assert (client.url, client.user, client.timeout) == ("http://127.0.0.1:9/", None, 3.5)
    env = {"JENKINS_URL": "http://env.example:8080/", "JENKINS_USER": "bob", "JENKINS_API_TOKEN": "t0ken-value"}
    client = jk.JenkinsClient.from_env(env)
    assert (client.url, client.user, client.timeout) == ("http://env.example:8080/", "bob", jk.DEFAULT_TIMEOUT)
    client = jk.JenkinsClient.from_env(env, url="http://configured.example/", user="alice", timeout=7)
    assert (client.url, client.user, client.timeout) == ("http://configured.example/", "alice", 7.0)
    assert "t0ken-value" not in repr(client)
    # the token is never a setting: a user without a token in the environment is refused
    with pytest.raises(ConfigError, match="JENKINS_API_TOKEN is not set"):
        jk.JenkinsClient.from_env({}, url="http://127.0.0.1:9/", user="alice")
    secret = tmp_path / "gone"
    with pytest.raises(ConfigError, match=r"^\$JENKINS_API_TOKEN_FILE: cannot read .*gone") as err:
        jk.JenkinsClient.from_env({"JENKINS_API_TOKEN_FILE": str(secret)}, url="http://127.0.0.1:9/", user="a")
    assert "t0ken" not in str(err.value)


def test_job_prefix_is_the_environment_then_the_setting_then_mlops() -> None:
    assert jk.job_prefix({}) == "mlops"
    assert jk.job_prefix({}, configured="ml") == "ml"
    assert jk.job_prefix({"MLOPS_JENKINS_PREFIX": "from-env"}, configured="ml") == "from-env"
    assert jk.job_name("retrain", jk.job_prefix({}, configured="ml")) == "ml-retrain"


def test_the_package_does_not_read_the_configuration(tmp_path: Path) -> None:
    """tuner.jenkins takes the jenkins.* values from its callers: not one of its modules imports
    tuner.config, not even when every function that reads files or the environment runs."""
    import ast
    import subprocess
    import sys

    for path in sorted((ROOT / "tuner" / "jenkins").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n == "tuner.config" or n.startswith("tuner.config.")], path
    (tmp_path / "result.json").write_text(json.dumps({"status": "ok", "metric": 0.5, "metric_name": "val_accuracy",
                                                      "settings": {}}), encoding="utf-8")
    code = (
        "import sys\n"
        "from tuner import jenkins as jk\n"
        f"print(jk.describe_path({str(tmp_path)!r}))\n"
        "jk.JenkinsClient.from_env({'JENKINS_URL': 'http://127.0.0.1:9/'})\n"
        "print(jk.job_prefix({}), jk.render_jobs().jobs.keys() and 'rendered')\n"
        "print('tuner.config' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["val_accuracy 0.5 — as written", "mlops rendered", "False"]


# -- failures: each names what to fix ------------------------------------------------------------


def test_bad_token_is_401_naming_the_variables(jenkins: JenkinsTarget) -> None:
    client = jk.JenkinsClient(jenkins.url, jenkins.user, "not-the-token")
    with pytest.raises(jk.JenkinsHTTPError) as err:
        client.whoami()
    assert err.value.status == 401
    message = str(err.value)
    assert "HTTP 401" in message and "JENKINS_USER" in message and "JENKINS_API_TOKEN" in message
    assert "not-the-token" not in message


def test_anonymous_is_403_saying_to_log_in(jenkins: JenkinsTarget) -> None:
    fake = jenkins.fake
    if fake is not None:
        fake.anonymous_read = False
    client = jk.JenkinsClient(jenkins.url)
    try:
        client.job_info(jenkins.name("anything"))
    except jk.JenkinsHTTPError as exc:
        assert exc.status == 403
        assert "anonymous" in str(exc) and "JENKINS_USER" in str(exc)
    else:
        if fake is not None:
            raise AssertionError("the fake must refuse anonymous reads")
        pytest.skip("this Jenkins lets anonymous users read")


def test_missing_permission_is_403_naming_the_user(jenkins: JenkinsTarget) -> None:
    fake = fake_only(jenkins)
    token = fake.add_user("viewer", permissions=("read",))
    client = jk.JenkinsClient(jenkins.url, "viewer", token)
    with pytest.raises(jk.JenkinsHTTPError) as err:
        client.create_job("t-x", PAYLOAD_JOB_XML)
    assert err.value.status == 403
    assert "user 'viewer'" in str(err.value) and "Job/Create" in str(err.value)


def test_post_without_a_valid_crumb_is_403(jenkins: JenkinsTarget) -> None:
    fake = fake_only(jenkins)
    import requests

    # what Jenkins does with a POST that lacks the crumb
    resp = requests.post(jenkins.url + "createItem?name=t-nocrumb", data=PAYLOAD_JOB_XML.encode(),
                         auth=(jenkins.user, jenkins.token), headers={"Content-Type": "text/xml"}, timeout=10)
    assert resp.status_code == 403 and "crumb" in resp.text
    assert "t-nocrumb" not in fake.jobs
    # the client fetches a crumb and sends it
    client = jenkins.client()
    client.create_job("t-crumb", PAYLOAD_JOB_XML)
    assert "t-crumb" in fake.jobs
    # a stale crumb (e.g. the server restarted) is refetched once, transparently
    client.server.crumb = {"crumbRequestField": "Jenkins-Crumb", "crumb": "stale"}
    client.reconfig_job("t-crumb", PAYLOAD_JOB_XML)
    assert client.server.crumb["crumb"] == fake.crumb_for(jenkins.user)


def test_rejected_crumb_says_what_to_fix(jenkins: JenkinsTarget) -> None:
    fake = fake_only(jenkins)
    fake.reject_crumbs = True  # e.g. a proxy that drops the header: every crumb is refused
    client = jenkins.client()
    with pytest.raises(jk.JenkinsHTTPError) as err:
        client.create_job("t-never", PAYLOAD_JOB_XML)
    assert err.value.status == 403 and "CSRF crumb" in str(err.value)
    assert "t-never" not in fake.jobs


def test_unknown_job_is_404_suggesting_sync(jenkins: JenkinsTarget) -> None:
    client = jenkins.client()
    name = jenkins.name("no-such-job")
    with pytest.raises(jk.JenkinsHTTPError) as err:
        client.build(name, {"A": "1"})
    assert err.value.status == 404
    assert f"job '{name}'" in str(err.value) and "mlops jenkins sync" in str(err.value)
    assert client.job_config(name) is None
    with pytest.raises(jk.JenkinsHTTPError, match="HTTP 404"):
        client.job_info(name)


def test_unknown_build_and_artifact_are_404(jenkins: JenkinsTarget, payload_job: str) -> None:
    client = jenkins.client()
    with pytest.raises(jk.JenkinsHTTPError, match=r"no build #999 of job") as err:
        client.build_info(payload_job, 999)
    assert err.value.status == 404
    outcome = client.run_build(payload_job, {"PAYLOAD": "{}"}, queue_timeout=30, build_timeout=60)
    with pytest.raises(jk.JenkinsHTTPError, match=r"no artifact out/missing.json") as err:
        client.artifact(payload_job, outcome.number, "out/missing.json")
    assert err.value.status == 404


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_names_the_url() -> None:
    port = _free_port()  # nothing listens there any more
    client = jk.JenkinsClient(f"http://127.0.0.1:{port}/", "bob", "t0ken", timeout=5)
    with pytest.raises(JenkinsError) as err:
        client.whoami()
    message = str(err.value)
    assert f"cannot reach Jenkins at http://127.0.0.1:{port}/" in message
    assert "connection refused" in message and "JENKINS_URL" in message
    assert "t0ken" not in message


def test_a_server_that_never_answers_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                accepted.append(conn)  # hold it open, never answer
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        client = jk.JenkinsClient(f"http://127.0.0.1:{port}/", "bob", "t0ken", timeout=0.5)
        started = time.monotonic()
        with pytest.raises(JenkinsError, match=r"did not answer within 0.5 s"):
            client.whoami()
        assert time.monotonic() - started < 10
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()


# -- jobs, views, sync -------------------------------------------------------------------------


def _rendered_for(t: JenkinsTarget) -> jk.Rendered:
    prefix = t.name("mlops")
    rendered = jk.render_jobs(ROOT / "jobs", {"prefix": prefix})
    t.created_jobs.extend(rendered.jobs)
    t.created_views.extend(rendered.views)
    return rendered


def test_sync_creates_then_leaves_unchanged_jobs_alone(jenkins: JenkinsTarget) -> None:
    client = jenkins.client()
    rendered = _rendered_for(jenkins)
    first = jk.sync(client, rendered)
    assert sorted(first.created) == sorted(list(rendered.jobs) + [f"view {v}" for v in rendered.views])
    assert first.updated == [] and first.unchanged == []
    for name, xml in rendered.jobs.items():
        assert jk.normalize_xml(client.job_config(name)) == jk.normalize_xml(xml)
    view = next(iter(rendered.views))
    assert {j["name"] for j in client.view_jobs(view)} == set(rendered.jobs)

    posts_before = len(jenkins.fake.posts()) if jenkins.fake else 0
    second = jk.sync(client, rendered)
    assert second.created == [] and second.updated == []
    assert len(second.unchanged) == len(rendered.jobs) + len(rendered.views)
    if jenkins.fake:
        assert jenkins.fake.posts()[posts_before:] == []  # nothing was rewritten


def test_sync_updates_only_what_changed(jenkins: JenkinsTarget) -> None:
    client = jenkins.client()
    rendered = _rendered_for(jenkins)
    jk.sync(client, rendered)
    train = next(n for n in rendered.jobs if n.endswith("-train"))
    changed = jk.render_jobs(ROOT / "jobs", {"prefix": jenkins.name("mlops"), "goal": "0.95"})
    report = jk.sync(client, changed)
    assert report.updated == [train]  # only the job with a GOAL parameter
    assert "<defaultValue>0.95</defaultValue>" in client.job_config(train)
    dry = jk.sync(client, rendered, dry_run=True)
    assert dry.updated == [train]
    assert "<defaultValue>0.95</defaultValue>" in client.job_config(train)  # a dry run changes nothing


def test_a_config_resaved_by_jenkins_is_still_unchanged(jenkins: JenkinsTarget) -> None:
    fake = fake_only(jenkins)
    client = jenkins.client()
    rendered = _rendered_for(jenkins)
    jk.sync(client, rendered)
    name = next(n for n in rendered.jobs if n.endswith("-download"))
    fake.resave(name)
    assert "plugin=" in client.job_config(name)
    assert name in jk.sync(client, rendered).unchanged


def test_retrain_trigger_token_is_set_at_sync_time(jenkins: JenkinsTarget) -> None:
    client = jenkins.client()
    rendered = _rendered_for(jenkins)
    report = jk.sync(client, rendered, only=["*-retrain"], retrain_token="trigger-me-0123")
    retrain = next(n for n in rendered.jobs if n.endswith("-retrain"))
    assert report.created == [retrain]
    assert "<authToken>trigger-me-0123</authToken>" in client.job_config(retrain)
    assert jk.sync(client, rendered, only=["*-retrain"], retrain_token="trigger-me-0123").unchanged == [retrain]


# -- builds ------------------------------------------------------------------------------------


def test_build_follows_queue_item_to_build_to_result(jenkins: JenkinsTarget, payload_job: str) -> None:
    client = jenkins.client()
    payload = json.dumps({"status": "ok", "metric": 0.91})
    queue_id = client.build(payload_job, {"PAYLOAD": payload, "NOT_A_PARAMETER": "dropped"})
    assert isinstance(queue_id, int)
    item = client.queue_item(queue_id)
    number = client.wait_for_build(payload_job, queue_id, timeout=30)
    assert client.queue_item(queue_id)["executable"]["number"] == number
    if jenkins.fake:
        assert "executable" not in item or item["executable"] is None  # it waited in the queue first
    info = client.wait_for_result(payload_job, number, timeout=60)
    assert info["result"] == "SUCCESS" and info["building"] is False
    params = {p["name"]: p["value"] for a in info["actions"] if a.get("parameters") for p in a["parameters"]}
    assert params["PAYLOAD"] == payload and "NOT_A_PARAMETER" not in params
    assert client.artifact(payload_job, number, "out/result.json") == payload.encode()
    console = client.console(payload_job, number)
    assert "payload written" in console and "Finished: SUCCESS" in console


def test_failed_build_result_and_description(jenkins: JenkinsTarget, payload_job: str) -> None:
    client = jenkins.client()
    outcome = client.run_build(payload_job, {"EXIT_CODE": "3"}, queue_timeout=30, build_timeout=60)
    assert outcome.result == "FAILURE" and not outcome.ok
    client.set_description(payload_job, outcome.number, "val_accuracy 0.87 — FC [128, 64], lr 3e-4")
    assert client.build_info(payload_job, outcome.number)["description"] == "val_accuracy 0.87 — FC [128, 64], lr 3e-4"


def test_waiting_too_long_in_the_queue_says_why(jenkins: JenkinsTarget, payload_job: str) -> None:
    fake = fake_only(jenkins)
    fake.queue_delay = 30.0  # no executor frees up
    client = jenkins.client()
    queue_id = client.build(payload_job, {"PAYLOAD": "{}"})
    with pytest.raises(JenkinsError, match=r"did not start within 0.3 s \(Jenkins says: Waiting for next available"):
        client.wait_for_build(payload_job, queue_id, timeout=0.3)
    client.cancel_queue(queue_id)
    with pytest.raises(JenkinsError, match="was cancelled"):
        client.wait_for_build(payload_job, queue_id, timeout=5)


def test_a_build_that_runs_too_long_times_out_and_can_be_stopped(jenkins: JenkinsTarget, payload_job: str) -> None:
    client = jenkins.client()
    queue_id = client.build(payload_job, {"PAYLOAD": "{}", "SLEEP": "30"})
    number = client.wait_for_build(payload_job, queue_id, timeout=30)
    with pytest.raises(JenkinsError, match=rf"build #{number} of job '{payload_job}' is still running after 0.3 s"):
        client.wait_for_result(payload_job, number, timeout=0.3)
    client.stop_build(payload_job, number)
    assert client.wait_for_result(payload_job, number, timeout=30)["result"] == "ABORTED"


# -- the view ------------------------------------------------------------------------------------


def test_unknown_view_is_404(jenkins: JenkinsTarget) -> None:
    with pytest.raises(jk.JenkinsHTTPError, match=r"has no view '.*nope'") as err:
        view_groups(jenkins.client(), jenkins.name("nope"))
    assert err.value.status == 404


# -- outcomes (descriptions) ---------------------------------------------------------------------


def test_descriptions() -> None:
    assert jk.format_settings({"learning_rate": 3e-4, "fc_layers": [128, 64]}) == "FC [128, 64], lr 3e-4"
    assert jk.format_settings({}) == "as written"
    assert jk.format_settings({"C": 0.5, "batch_size": 32, "epochs": 10}) == "epochs 10, batch 32, C 0.5"
    assert jk.format_number(0.001) == "0.001" and jk.format_number(2.5e-5) == "2.5e-5"
    trial = {"status": "ok", "metric": 0.87, "metric_name": "val_accuracy",
             "settings": {"fc_layers": [128, 64], "learning_rate": 0.0003}}
    assert jk.describe_trial(trial) == "val_accuracy 0.87 — FC [128, 64], lr 3e-4"
    failed = {"status": "failed", "metric": None, "metric_name": "val_accuracy", "settings": {},
              "reason": "the training script exited with code 1: ValueError: bad shape"}
    assert jk.describe_trial(failed) == "failed: the training script exited with code 1: ValueError: bad shape — as written"
    assert jk.metric_in_description("val_accuracy 0.87 — FC [128, 64]") == ("val_accuracy", 0.87)
    assert jk.metric_in_description("failed: x — as written") is None


def test_describe_path_reads_run_dirs_and_workdirs(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({"status": "ok", "metric": 0.5, "metric_name": "val_accuracy",
                                                      "settings": {"learning_rate": 0.01}}), encoding="utf-8")
    assert jk.describe_path(tmp_path) == "val_accuracy 0.5 — lr 1e-2"
    with pytest.raises(JenkinsError, match="neither summary.json nor result.json"):
        jk.describe_path(tmp_path / "..")


# -- the CLI -----------------------------------------------------------------------------------


def test_cli_sync_and_status(jenkins: JenkinsTarget, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from tuner.cli import main

    for key, value in jenkins.env().items():
        monkeypatch.setenv(key, value)
    prefix = jenkins.name("cli")
    monkeypatch.setenv("MLOPS_JENKINS_PREFIX", prefix)
    jenkins.created_jobs.extend(f"{prefix}-{s}" for s in jk.JOB_SUFFIXES)
    jenkins.created_views.append(prefix)
    assert main(["jenkins", "sync", "--param", f"prefix={prefix}"]) == 0
    out = capsys.readouterr().out
    assert "7 created, 0 updated, 0 unchanged" in out
    assert main(["jenkins", "sync", "--param", f"prefix={prefix}"]) == 0
    assert "0 created, 0 updated, 7 unchanged" in capsys.readouterr().out
    assert main(["jenkins", "status", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["job"] for r in rows} == {f"{prefix}-{s}" for s in jk.JOB_SUFFIXES}
    assert main(["jenkins", "status"]) == 0
    assert f"{prefix}-train" in capsys.readouterr().out


def test_cli_errors_are_one_line(jenkins: JenkinsTarget, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tuner.cli import main

    monkeypatch.setenv("JENKINS_URL", jenkins.url)
    monkeypatch.setenv("JENKINS_USER", jenkins.user)
    monkeypatch.setenv("JENKINS_API_TOKEN", "wrong-token-value")
    monkeypatch.delenv("JENKINS_API_TOKEN_FILE", raising=False)
    assert main(["jenkins", "status", "--view", "whatever"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlops: error: ") and "HTTP 401" in err and err.count("\n") == 1
    assert "wrong-token-value" not in err
    assert "Traceback" not in err


def test_cli_takes_the_jenkins_settings_from_the_admin_config(jenkins: JenkinsTarget, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from tuner.cli import main

    prefix = jenkins.name("adm")
    admin = tmp_path / "admin.yaml"
    admin.write_text(f"jenkins:\n  url: {jenkins.url}\n  user: {jenkins.user}\n  prefix: {prefix}\n  timeout: 20\n",
                     encoding="utf-8")
    for key in ("JENKINS_URL", "JENKINS_USER", "JENKINS_API_TOKEN_FILE", "MLOPS_JENKINS_PREFIX"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLOPS_ADMIN_CONFIG", str(admin))
    monkeypatch.setenv("JENKINS_API_TOKEN", jenkins.token)  # the token only ever comes from the environment
    jenkins.created_jobs.extend(f"{prefix}-{s}" for s in jk.JOB_SUFFIXES)
    jenkins.created_views.append(prefix)
    assert main(["jenkins", "sync", "--param", f"prefix={prefix}"]) == 0
    assert "7 created" in capsys.readouterr().out
    assert main(["jenkins", "status", "--format", "json"]) == 0  # the view is the configured prefix
    assert {r["job"] for r in json.loads(capsys.readouterr().out)} == {f"{prefix}-{s}" for s in jk.JOB_SUFFIXES}


def test_version_header(jenkins: JenkinsTarget) -> None:
    version = jenkins.client().version()
    assert version and version[0].isdigit()


def test_cli_describe_submits_the_build_description(jenkins: JenkinsTarget, payload_job: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from tuner.cli import main

    outcome = jenkins.client().run_build(payload_job, {"PAYLOAD": "{}"}, queue_timeout=30, build_timeout=60)
    (tmp_path / "result.json").write_text(json.dumps({"status": "ok", "metric": 0.875, "metric_name": "val_accuracy",
                                                      "settings": {"fc_layers": [32]}}), encoding="utf-8")
    for key, value in jenkins.env(JOB_NAME=payload_job, BUILD_NUMBER=str(outcome.number)).items():
        monkeypatch.setenv(key, value)
    assert main(["jenkins", "describe", str(tmp_path), "--submit"]) == 0
    assert capsys.readouterr().out.strip() == "val_accuracy 0.875 — FC [32]"
    assert jenkins.client().build_info(payload_job, outcome.number)["description"] == "val_accuracy 0.875 — FC [32]"


def test_importing_the_cli_and_module_loads_no_heavy_package() -> None:
    import subprocess
    import sys

    code = ("import sys, tuner.cli.jenkins_cmd, tuner.jenkins, tuner.runners.jenkins; "
            "print(sorted(m for m in ('jenkins', 'jenkins_jobs', 'pandas', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
