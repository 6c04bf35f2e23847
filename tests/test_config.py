"""Config precedence (flags > MLOPS_* > mlops.yaml > defaults) and errors that name the key."""

from __future__ import annotations

import pytest

from tuner.cli import main
from tuner.config import load_config, read_secret
from tuner.errors import ConfigError


def write(tmp_path, text):
    (tmp_path / "mlops.yaml").write_text(text)
    script = tmp_path / "m.py"
    script.write_text("x = 1\n")
    return script


def test_defaults_without_a_file(tmp_path):
    cfg = load_config(tmp_path / "m.py", env={})
    assert cfg.goal == 0.9 and cfg.metric == "val_accuracy" and cfg.strategy == "auto"
    assert cfg.origin("goal") == "default" and cfg.maximize


def test_precedence_flag_over_env_over_file(tmp_path):
    script = write(tmp_path, "goal: 0.8\nmax_trials: 4\nmail:\n  to: dev@example.com\n")
    cfg = load_config(script, env={"MLOPS_GOAL": "0.85", "MLOPS_MAX_TRIALS": "6"}, overrides={"goal": 0.95})
    assert cfg.goal == 0.95 and cfg.origin("goal") == "flag"
    assert cfg.max_trials == 6 and cfg.origin("max_trials") == "$MLOPS_MAX_TRIALS"
    assert cfg["mail.to"] == "dev@example.com" and cfg.origin("mail.to").endswith("mlops.yaml")


@pytest.mark.parametrize("text, message", [
    ("goal: high\n", r"goal: 'high' from .*mlops.yaml is not a float"),
    ("max_trials: 0\n", r"max_trials: 0 from .* must be greater than 0"),
    ("runner: kubernetes\n", r"runner: 'kubernetes' from .* is not one of: local, docker"),
    ("goall: 0.9\n", r"unknown key 'goall'"),
    ("mail:\n  smtp_password: hunter2\n", r"secrets do not belong in mlops.yaml"),
    ("goal: [1\n", r"mlops.yaml:\d+: not valid YAML"),
    ("- a\n- b\n", r"top level must be a mapping"),
])
def test_bad_file_values_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), env={})


def test_bad_env_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=r"max_trials: 'many' from \$MLOPS_MAX_TRIALS is not a int"):
        load_config(tmp_path / "m.py", env={"MLOPS_MAX_TRIALS": "many"})


def test_direction_follows_the_metric_name(tmp_path):
    assert not load_config(None, env={"MLOPS_METRIC": "val_loss"}).maximize
    assert load_config(None, env={"MLOPS_METRIC": "val_loss", "MLOPS_DIRECTION": "maximize"}).maximize


def test_secret_from_env_or_file_never_from_config(tmp_path):
    f = tmp_path / "pw"
    f.write_text("s3cret\n")
    assert read_secret("MLOPS_SMTP_PASSWORD", env={"MLOPS_SMTP_PASSWORD_FILE": str(f)}) == "s3cret"
    assert read_secret("MLOPS_SMTP_PASSWORD", env={}) is None
    with pytest.raises(ConfigError) as err:
        read_secret("MLOPS_SMTP_PASSWORD", env={"MLOPS_SMTP_PASSWORD_FILE": str(tmp_path / "nope")})
    assert "MLOPS_SMTP_PASSWORD_FILE" in str(err.value) and "s3cret" not in str(err.value)


def test_cli_prints_origins_and_errors_in_one_line(tmp_path, capsys):
    script = write(tmp_path, "goal: 0.8\n")
    assert main(["config", str(script)]) == 0
    out = capsys.readouterr().out
    assert "goal" in out and "0.8" in out and "mlops.yaml" in out
    write(tmp_path, "goal: nope\n")
    assert main(["config", str(script)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlops: error: goal:") and err.count("\n") == 1
