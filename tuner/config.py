"""One config object with one precedence: flags > ``MLOPS_*`` environment > ``mlops.yaml`` >
the admin config > defaults.

``mlops.yaml`` lives beside the user's training script. Every key is declared once in
:data:`SCHEMA` (type, default, environment variable); values are validated when loaded and a
bad one is a :class:`~tuner.errors.ConfigError` that names the key and where it came from.
Secrets (SMTP password, Jenkins token) are never config keys: they are read from the
environment or a file at the moment they are used.

``mlops.yaml`` comes with the pushed code, so it is not trusted with what protects the
machine and the credentials. The admin's side is the environment and the *admin config*
(``$MLOPS_ADMIN_CONFIG``, else ``~/.config/mlops/mlops.yaml``, else ``/etc/mlops/mlops.yaml``;
same keys). A script's ``mlops.yaml``

* may not say where a credential goes while one is bound: the SMTP server and its TLS
  settings, login, the recipients, the sender and the base of the mail's links when an SMTP
  password is set (:data:`MAIL_GUARDED`), the Jenkins URL, user and job prefix when a Jenkins token is set
  (:data:`JENKINS_GUARDED`);
* may tighten the containers' limits but never loosen them (:data:`DOCKER_GUARDED`): the
  network may only be ``none``, memory and CPUs no more than the admin's (or default) value,
  images are the admin's choice, and ``docker.warm`` may be turned off, not on.

A yaml that tries is refused with a message that names the key and the admin's way to set it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError

CONFIG_FILENAME = "mlops.yaml"


@dataclass(frozen=True)
class Key:
    type: type | tuple[type, ...]
    default: Any
    env: str | None = None
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], str | None] | None = None  # returns an error text or None
    help: str = ""


def _finite(v: Any) -> bool:
    import math

    return not isinstance(v, float) or math.isfinite(v)


def _positive(v: Any) -> str | None:
    if v is not None and not _finite(v):
        return "must be a finite number"
    return None if v is None or v > 0 else "must be greater than 0"


def _non_negative(v: Any) -> str | None:
    if v is not None and not _finite(v):
        return "must be a finite number"
    return None if v is None or v >= 0 else "must be 0 or more"


def _goal(v: Any) -> str | None:
    return None if v is None or _finite(v) else "must be a finite number"


def _trials(v: Any) -> str | None:
    return _positive(v) or (None if v is None or v <= 100_000 else "must be at most 100000")


def _seed(v: Any) -> str | None:
    return None if v is None or 0 <= v < 2**32 else "must be from 0 to 4294967295"


def _metric(v: Any) -> str | None:
    import re

    if v is None or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:/-]{0,99}", v):
        return None
    return "is not a metric name (letters, digits and _ such as val_accuracy)"


def _storage(v: Any) -> str | None:
    if v is None:
        return None
    from tuner.errors import ConfigError
    from tuner.study import check_url

    try:
        check_url(v)
    except ConfigError as exc:
        return str(exc).split(": ", 1)[-1]
    return None


def _workers(v: Any) -> str | None:
    return None if v is None or 1 <= v <= 64 else "must be from 1 to 64"


def _confirm(v: Any) -> str | None:
    return None if v is None or 0 <= v <= 20 else "must be from 0 to 20 (other seeds to retrain the winner with)"


def _http_url(v: Any) -> str | None:
    return None if v is None or str(v).startswith(("http://", "https://")) else "is not an http(s):// URL"


def _port(v: Any) -> str | None:
    return None if v is None or 0 < v < 65536 else "must be a TCP port between 1 and 65535"


SCHEMA: dict[str, Key] = {
    # the tune loop
    "goal": Key(float, 0.90, "MLOPS_GOAL", check=_goal, help="stop as soon as a trial reaches this metric"),
    "metric": Key(str, "val_accuracy", "MLOPS_METRIC", check=_metric, help="the held-out metric that counts"),
    "direction": Key(str, "auto", "MLOPS_DIRECTION", choices=("auto", "maximize", "minimize")),
    "strategy": Key(str, "auto", "MLOPS_STRATEGY", help="search strategy (mlops strategies)"),
    "max_trials": Key(int, 10, "MLOPS_MAX_TRIALS", check=_trials),
    "max_minutes": Key(float, 60.0, "MLOPS_MAX_MINUTES", check=_positive),
    "trial_timeout_minutes": Key(float, 30.0, "MLOPS_TRIAL_TIMEOUT_MINUTES", check=_positive),
    "prune": Key(bool, True, "MLOPS_PRUNE", help="stop trials that cannot beat the best"),
    "runner": Key(str, "local", "MLOPS_RUNNER", choices=("local", "docker", "jenkins"),
                  help="jenkins: one mlops-retrain build per trial"),
    "warm_worker": Key(bool, True, "MLOPS_WARM_WORKER", help="local runner: import TensorFlow once, fork per trial"),
    "warm_worker_linger": Key(float, None, "MLOPS_WARM_LINGER", check=_non_negative,
                              help="seconds the warm worker waits, idle, for the next run on this machine "
                                   "(0: it ends with its run; default 0 in Jenkins)"),
    "seed": Key(int, 0, "MLOPS_SEED", check=_seed),
    "confirm": Key(int, None, "MLOPS_CONFIRM", check=_confirm,
                   help="retrain the winner with N other seeds before the goal counts (default 1 in Jenkins, else 0)"),
    "run_dir": Key(str, None, "MLOPS_RUN_DIR", help="default: mlops-runs/<script path> at the repo root (else here)"),
    # several workers, one study
    "storage": Key(str, None, "MLOPS_STORAGE", check=_storage,
                   help="study URL: sqlite:////path, postgresql://user@host/db, journal:////shared/file "
                        "(default: the run directory's study.db)"),
    "study": Key(str, None, "MLOPS_STUDY", help="study name in the storage (default: the script's name)"),
    "workers": Key(int, 1, "MLOPS_WORKERS", check=_workers, help="trials run side by side on this machine"),
    "workers.ramp": Key(bool, True, "MLOPS_WORKERS_RAMP",
                        help="several workers: at most max(2, finished trials + 1) trials at once, so no "
                             "worker trains a blind guess"),
    "workers.stale_after": Key(float, 120.0, "MLOPS_STALE_AFTER", check=_positive,
                               help="seconds without a heartbeat before another worker takes a trial over"),
    # what the tuner may change
    "hparams.names.fc_layers": Key(list, ["FC_LAYERS", "DENSE_LAYERS", "HIDDEN_LAYERS", "HIDDEN_UNITS", "FC_UNITS"]),
    "hparams.names.learning_rate": Key(list, ["LEARNING_RATE", "LR"]),
    "hparams.names.epochs": Key(list, ["EPOCHS", "NUM_EPOCHS", "N_EPOCHS"]),
    "hparams.names.batch_size": Key(list, ["BATCH_SIZE"]),
    "hparams.space": Key(dict, {}, help="per-setting overrides of the search ranges"),
    # mail
    "mail.to": Key(str, None, "MLOPS_MAIL_TO"),
    "mail.from": Key(str, None, "MLOPS_MAIL_FROM", help="the sender (default: the SMTP login if an address, else noreply@)"),
    "mail.base_url": Key(str, None, "MLOPS_MAIL_BASE_URL", check=_http_url,
                         help="outside Jenkins: the URL the folder of run directories is served at, for the report link"),
    "mail.smtp_host": Key(str, None, "MLOPS_SMTP_HOST"),
    "mail.smtp_port": Key(int, None, "MLOPS_SMTP_PORT", check=_port),
    "mail.smtp_user": Key(str, None, "MLOPS_SMTP_USER"),
    "mail.smtp_security": Key(str, "auto", "MLOPS_SMTP_SECURITY", choices=("auto", "plain", "starttls", "ssl")),
    "mail.smtp_timeout": Key(float, 30.0, "MLOPS_SMTP_TIMEOUT", check=_positive),
    "mail.outbox": Key(str, None, "MLOPS_OUTBOX", help="default: ~/.local/share/mlops/outbox"),
    "mail.smtp_cafile": Key(str, None, "MLOPS_SMTP_CAFILE", help="CA file that signed the SMTP server's certificate"),
    # watchdog
    "watchdog.enabled": Key(bool, True, "MLOPS_WATCHDOG"),
    "watchdog.heartbeat_timeout": Key(float, 300.0, "MLOPS_HEARTBEAT_TIMEOUT", check=_positive),
    "watchdog.epoch_timeout": Key(float, None, "MLOPS_EPOCH_TIMEOUT", check=_positive),
    "watchdog.max_restarts": Key(int, 3, "MLOPS_MAX_RESTARTS", check=_non_negative),
    "watchdog.startup_grace": Key(float, 120.0, "MLOPS_STARTUP_GRACE", check=_positive,
                                  help="seconds a Keras script may take to reach its first batch"),
    "watchdog.backoff_seconds": Key(float, 2.0, "MLOPS_BACKOFF_SECONDS", check=_non_negative),
    # docker
    "docker.images.cnn": Key(str, None, "MLOPS_IMAGE_CNN"),
    "docker.images.ann": Key(str, None, "MLOPS_IMAGE_ANN"),
    "docker.images.regression": Key(str, None, "MLOPS_IMAGE_REGRESSION"),
    "docker.gpus": Key(str, "auto", "MLOPS_GPUS", help="auto, all, none, or device ids '0,1'"),
    "docker.memory": Key(str, "8g", "MLOPS_DOCKER_MEMORY"),
    "docker.cpus": Key(float, None, "MLOPS_DOCKER_CPUS", check=_positive),
    "docker.network": Key(str, "none", "MLOPS_DOCKER_NETWORK"),
    "docker.pids_limit": Key(int, 4096, "MLOPS_DOCKER_PIDS_LIMIT", check=_positive,
                             help="most processes/threads a trial container may run"),
    "docker.warm": Key(bool, True, "MLOPS_DOCKER_WARM",
                       help="one container per kind and run imports TensorFlow once and forks each trial "
                            "(false: a new container per trial)"),
    # the tuned script back to git (credentials: MLOPS_GIT_TOKEN / MLOPS_GIT_USERNAME, or the job's ssh agent)
    "git.push": Key(bool, None, "MLOPS_GIT_PUSH",
                    help="on goal met, push the tuned script to a new branch (default on in Jenkins, else off)"),
    "git.remote": Key(str, "origin", "MLOPS_GIT_REMOTE", help="the remote of the script's checkout to push to"),
    "git.branch_prefix": Key(str, "mlops/tuned", "MLOPS_GIT_BRANCH_PREFIX",
                             help="branches are <prefix>/<script>-<short sha>"),
    # jenkins (the token is never a key: JENKINS_API_TOKEN or JENKINS_API_TOKEN_FILE)
    "jenkins.url": Key(str, None, "JENKINS_URL"),
    "jenkins.user": Key(str, None, "JENKINS_USER"),
    "jenkins.timeout": Key(float, 30.0, "MLOPS_JENKINS_TIMEOUT", check=_positive),
    "jenkins.prefix": Key(str, "mlops", "MLOPS_JENKINS_PREFIX", help="job names: <prefix>-train, ..."),
}

_SECRET_WORDS = ("pass", "token", "secret", "api_key", "apikey", "credential")

# keys a script's mlops.yaml may not set while a credential is bound (they say where it goes)
MAIL_GUARDED = ("mail.smtp_host", "mail.smtp_port", "mail.smtp_security", "mail.smtp_cafile",
                "mail.smtp_user", "mail.to", "mail.from", "mail.base_url")
# which server and which jobs the Jenkins token is used on (a prefix picks the jobs it starts)
JENKINS_GUARDED = ("jenkins.url", "jenkins.user", "jenkins.prefix")
# where the tuned code is pushed with the job's git credentials: never a script's mlops.yaml
GIT_GUARDED = ("git.remote", "git.branch_prefix")
# settings whose default depends on running inside a Jenkins build
JENKINS_DEFAULTS = {"confirm": (1, 0), "git.push": (True, False),
                    "warm_worker_linger": (0.0, 300.0)}  # a build leaves no process for the next one
# container limits a script's mlops.yaml may tighten but never loosen
DOCKER_GUARDED = ("docker.network", "docker.memory", "docker.cpus", "docker.pids_limit",
                  "docker.images.cnn", "docker.images.ann", "docker.images.regression", "docker.warm")
ADMIN_CONFIG_ENV = "MLOPS_ADMIN_CONFIG"


def _coerce(key: str, spec: Key, value: Any, origin: str) -> Any:
    if value is None:
        return None
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    if isinstance(value, str) and str not in types:
        text = value.strip()
        try:
            if bool in types:
                low = text.lower()
                if low in ("1", "true", "yes", "on"):
                    value = True
                elif low in ("0", "false", "no", "off"):
                    value = False
                else:
                    raise ValueError(text)
            elif int in types:
                value = int(text)
            elif float in types:
                value = float(text)
            elif list in types:
                value = [p.strip() for p in text.split(",") if p.strip()]
            else:
                raise ValueError(text)
        except ValueError:
            raise ConfigError(
                f"{key}: {value!r} from {origin} is not a {types[0].__name__}"
            ) from None
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"{key}: {value!r} from {origin} is not a {types[0].__name__}")
    if not isinstance(value, types):
        raise ConfigError(
            f"{key}: expected a {types[0].__name__} but {origin} gives {value!r}"
        )
    if spec.choices and value not in spec.choices:
        valid = ", ".join(str(c) for c in spec.choices)
        raise ConfigError(f"{key}: {value!r} from {origin} is not one of: {valid}")
    if spec.check:
        problem = spec.check(value)
        if problem:
            raise ConfigError(f"{key}: {value!r} from {origin} {problem}")
    return value


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        dotted = f"{prefix}{k}"
        if dotted in SCHEMA:
            out[dotted] = v
        elif isinstance(v, Mapping):
            out.update(_flatten(v, dotted + "."))
        else:
            out[dotted] = v
    return out


class Config:
    """Validated settings. ``cfg["mail.to"]`` or ``cfg.goal``; ``cfg.origin(key)`` says where
    a value came from (flag, environment variable, file, default)."""

    def __init__(self, values: dict[str, Any], origins: dict[str, str], path: Path | None):
        self._values = values
        self._origins = origins
        self.path = path

    def __getitem__(self, key: str) -> Any:
        if key not in SCHEMA:
            raise KeyError(key)
        return self._values[key]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in SCHEMA:
            return self._values[name]
        raise AttributeError(name)

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def origin(self, key: str) -> str:
        return self._origins.get(key, "default")

    def section(self, prefix: str) -> dict[str, Any]:
        """``cfg.section("mail")`` -> {"to": ..., "smtp_host": ...}."""
        p = prefix + "."
        return {k[len(p):]: v for k, v in self._values.items() if k.startswith(p)}

    def as_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._values)

    def hparam_names(self) -> dict[str, list[str]]:
        """The constant names to look for, per canonical setting (``hparams.names.*``)."""
        return {k: self[f"hparams.names.{k}"] for k in ("fc_layers", "learning_rate", "epochs", "batch_size")}

    @property
    def maximize(self) -> bool:
        from tuner.metrics import maximizes

        return maximizes(self._values["metric"], self._values["direction"])


def find_config_file(script: str | os.PathLike[str] | None) -> Path | None:
    """The ``mlops.yaml`` beside ``script`` (or in the folder ``script``), None if there is none.

    Raises:
        ConfigError: something named ``mlops.yaml`` is there but is not a file.
    """
    if script is None:
        return None
    p = Path(script)
    folder = p if p.is_dir() else p.parent
    candidate = folder / CONFIG_FILENAME
    if candidate.is_file():
        return candidate
    if candidate.exists() or candidate.is_symlink():
        import stat

        try:
            mode = candidate.stat().st_mode
            what = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                    else "a device or socket")
        except OSError:
            what = "a broken link"
        raise ConfigError(f"{candidate}: is not a file but {what}; mlops.yaml must be a YAML file, or remove it")
    return None


def admin_config_file(env: Mapping[str, str] | None = None) -> Path | None:
    """The admin's config: ``$MLOPS_ADMIN_CONFIG``, else ``~/.config/mlops/mlops.yaml`` (or
    under ``$XDG_CONFIG_HOME``), else ``/etc/mlops/mlops.yaml``; None when there is none.

    Raises:
        ConfigError: ``$MLOPS_ADMIN_CONFIG`` names no file.
    """
    env = os.environ if env is None else env
    named = env.get(ADMIN_CONFIG_ENV)
    if named:
        p = Path(named).expanduser()
        if not p.is_file():
            raise ConfigError(f"${ADMIN_CONFIG_ENV}: {p} is not a file; point it at the admin's mlops.yaml")
        return p
    home = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    for p in (Path(home) / "mlops" / CONFIG_FILENAME, Path("/etc/mlops") / CONFIG_FILENAME):
        if p.is_file():
            return p
    return None


def _yaml_without_aliases(text: str, path: Path) -> Any:
    """``yaml.safe_load`` that refuses anchors/aliases (nothing here needs them, and aliases
    nested in aliases make a small file expand without end) and nesting too deep to walk."""
    import yaml

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                raise ConfigError(f"{path}:{mark.line + 1}: YAML aliases (*name) are not allowed in "
                                  "mlops.yaml; write the value out")
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config file") from None


def read_config_file(path: Path) -> dict[str, Any]:
    """The keys of a config file, flattened (``mail.to``), unknown and secret keys refused.

    Raises:
        ConfigError: the file cannot be read (not a regular file, over the size limit, not
            UTF-8), is not YAML, holds an unknown key or something that looks like a secret.
    """
    from tuner.files import read_text

    text = read_text(path, what="config file")
    data = _yaml_without_aliases(text, path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(data).__name__}")
    try:
        flat = _flatten(data)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config file") from None
    for key in flat:
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise ConfigError(
                f"{path}: {key}: secrets do not belong in mlops.yaml; set MLOPS_SMTP_PASSWORD / "
                "JENKINS_API_TOKEN (or the *_FILE variant) in the environment instead"
            )
        if key not in SCHEMA:
            near = [k for k in SCHEMA if k.split(".")[-1] == key.split(".")[-1]]
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise ConfigError(f"{path}: unknown key '{key}'{hint}; see 'mlops config --keys'")
    return flat


def load_config(
    script: str | os.PathLike[str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> Config:
    """Load the config for ``script``: defaults, then its ``mlops.yaml``, then ``MLOPS_*``
    variables, then ``overrides`` (command-line flags; ``None`` values are ignored)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {k: copy.deepcopy(s.default) for k, s in SCHEMA.items()}
    origins: dict[str, str] = {}
    admin = admin_config_file(env)
    if admin is not None:
        for key, raw in read_config_file(admin).items():
            values[key] = _coerce(key, SCHEMA[key], raw, str(admin))
            origins[key] = str(admin)
    path = Path(config_file) if config_file else find_config_file(script)
    if config_file and not path.is_file():
        raise ConfigError(f"{path}: config file not found" if not path.exists() else
                          f"{path}: is not a file; give the path of an mlops.yaml")
    if path is not None and admin is not None and path.resolve() == admin.resolve():
        path = None  # the admin's own file, already read as such
    if path is not None:
        for key, raw in read_config_file(path).items():
            value = _coerce(key, SCHEMA[key], raw, str(path))
            _check_guarded(key, value, values[key], path, admin, env)
            values[key] = value
            origins[key] = str(path)
    for key, spec in SCHEMA.items():
        if spec.env and env.get(spec.env) not in (None, ""):
            values[key] = _coerce(key, spec, env[spec.env], f"${spec.env}")
            origins[key] = f"${spec.env}"
    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        if key not in SCHEMA:
            raise ConfigError(f"unknown setting '{key}'")
        values[key] = _coerce(key, SCHEMA[key], raw, f"--{key.replace('_', '-')}")
        origins[key] = "flag"
    _metric_defaults(values, origins, script)
    in_jenkins = bool(env.get("JENKINS_URL") and env.get("BUILD_URL"))
    for key, (jenkins_default, default) in JENKINS_DEFAULTS.items():
        if values[key] is None:
            values[key] = jenkins_default if in_jenkins else default
            origins[key] = "default (a Jenkins build)" if in_jenkins else "default"
    _check_together(values, origins)
    return Config(values, origins, path)


def _admin_way(key: str, admin: Path | None) -> str:
    spec = SCHEMA[key]
    where = f"the admin config ({admin})" if admin else f"an admin config (${ADMIN_CONFIG_ENV} or ~/.config/mlops/mlops.yaml)"
    return (f"${spec.env} or " if spec.env else "") + where


def _memory_bytes(text: str) -> float | None:
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", str(text).lower())
    if not m:
        return None
    return float(m.group(1)) * 1024 ** "bkmgt".index(m.group(2) or "b")


def _check_guarded(key: str, value: Any, current: Any, path: Path, admin: Path | None,
                   env: Mapping[str, str]) -> None:
    """Refuse what a script's mlops.yaml may not do (see the module docstring)."""
    if key in MAIL_GUARDED and (env.get("MLOPS_SMTP_PASSWORD") or env.get("MLOPS_SMTP_PASSWORD_FILE")):
        raise ConfigError(f"{path}: {key}: a script's mlops.yaml may not choose where mail goes while an "
                          f"SMTP password is bound; set it with {_admin_way(key, admin)}")
    if key in JENKINS_GUARDED and (env.get("JENKINS_API_TOKEN") or env.get("JENKINS_API_TOKEN_FILE")):
        raise ConfigError(f"{path}: {key}: a script's mlops.yaml may not choose where the Jenkins token goes; "
                          f"set it with {_admin_way(key, admin)}")
    if key == "storage" and value and "@" in str(value).partition("://")[2].split("/", 1)[0] \
            and ":" in str(value).partition("://")[2].split("@", 1)[0]:
        raise ConfigError(f"{path}: storage: a password does not belong in mlops.yaml (the pushed repository); "
                          "give the URL in $MLOPS_STORAGE (a Jenkins credential) or the admin config")
    if key == "warm_worker_linger" and isinstance(value, (int, float)):
        in_jenkins = bool(env.get("JENKINS_URL") and env.get("BUILD_URL"))
        limit = current if isinstance(current, (int, float)) else JENKINS_DEFAULTS[key][0 if in_jenkins else 1]
        if value > limit:
            raise ConfigError(f"{path}: warm_worker_linger: a script's mlops.yaml may shorten how long the warm "
                              f"worker waits for the machine's next run ({limit:g} s), never lengthen it (it "
                              f"would outlive this run); set it with {_admin_way(key, admin)}")
    if key in GIT_GUARDED and value != current:
        raise ConfigError(f"{path}: {key}: a script's mlops.yaml may not choose where the tuned code is pushed "
                          f"with the job's git credentials; set it with {_admin_way(key, admin)}")
    if key not in DOCKER_GUARDED or value == current:
        return
    loosen = None
    if key.startswith("docker.images."):
        loosen = "the image trials run in is the admin's choice"
    elif key == "docker.network" and value != "none":
        loosen = "only 'none' (no network) may be set here"
    elif key == "docker.memory":
        new, limit = _memory_bytes(value), _memory_bytes(current)
        if new is None:
            raise ConfigError(f"{path}: docker.memory: {value!r} is not a size such as 4g or 512m")
        if limit is not None and new > limit:
            loosen = f"it may only lower the limit ({current})"
    elif key == "docker.warm" and value and not current:
        loosen = "a warm container shares the run's trials folder between its trials; only false may be set here"
    elif key == "docker.pids_limit" and value > current:
        loosen = f"it may only lower the limit ({current})"
    elif key == "docker.cpus":
        limit = current if current is not None else float(os.cpu_count() or 1)
        if value > limit:
            loosen = f"it may only lower the limit ({limit:g})"
    if loosen:
        raise ConfigError(f"{path}: {key}: {value!r} would loosen the containers' limits; {loosen}; "
                          f"set it with {_admin_way(key, admin)}")


def _metric_defaults(values: dict[str, Any], origins: dict[str, str], script: Any) -> None:
    """The metric as people write it, in its canonical name (``acc`` -> ``val_accuracy``,
    :func:`tuner.metrics.canonical_metric`); by default ``r2`` for a scikit-learn script that
    builds a regressor (read, never run)."""
    from tuner.metrics import canonical_metric, script_metric_default

    values["metric"] = canonical_metric(str(values["metric"]))
    if "metric" in origins or script is None or not Path(script).is_file():
        return
    try:
        from tuner.files import read_text

        default = script_metric_default(read_text(Path(script), what="training script"))
    except (ConfigError, OSError):  # unreadable here: the classifier reports it with its own message
        return
    if default is not None:
        values["metric"] = default
        origins["metric"] = "default (a scikit-learn regressor)"


def _check_together(values: dict[str, Any], origins: dict[str, str]) -> None:
    """Checks that need more than one key: the goal must lie in the metric's range."""
    from tuner.metrics import in_unit_interval, is_error_metric, metric_family, never_negative

    metric = str(values["metric"])
    goal = values["goal"]
    where = f"goal: {goal!r} from {origins.get('goal', 'the default')}"
    if in_unit_interval(metric) and not 0 < goal <= 1:
        hint = f"; did you mean {goal / 100:g}?" if 1 < goal <= 100 else ""
        raise ConfigError(f"{where} is outside the range of {values['metric']} (above 0, at most 1){hint}")
    if never_negative(metric) and goal < 0:
        raise ConfigError(f"{where}: {values['metric']} is never below 0")
    if metric_family(metric) == "r2" and goal > 1:
        hint = f"; did you mean {goal / 100:g}?" if goal <= 100 else ""
        raise ConfigError(f"{where}: {metric} is at most 1 (a perfect fit){hint}")
    if is_error_metric(metric) and "goal" not in origins:
        raise ConfigError(f"goal: {metric} is an error in the units of what the model predicts (lower is better), "
                          f"so the default goal {goal:g} means nothing for it; set the goal with --goal "
                          f"(e.g. --goal 40 stops once {metric} <= 40), or goal: in mlops.yaml")
    outbox = values.get("mail.outbox")
    if outbox and Path(outbox).expanduser().exists() and not Path(outbox).expanduser().is_dir():
        raise ConfigError(f"mail.outbox: {outbox} from {origins.get('mail.outbox')} is a file, not a folder; "
                          "point it at a folder where unsent mail can wait")


def read_secret(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """A secret from ``$NAME`` or from the file named by ``$NAME_FILE``; ``None`` if neither.
    The value is never logged; errors name the variable, never the value."""
    from tuner.secrets_env import read_secret as _rs

    return _rs(name, env)
