"""Local runner: the trial runs in a child process on this machine (the embedded default).

The child is ``python -m tuner.harness <script copy>`` in its own process group (so a kill
reaches everything it started), with its working directory set to the trial workdir and its
output appended to ``train.log``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuner.errors import RunnerError
from tuner.runners.base import Runner, TrialHandle, prepare_workdir
from tuner.trial import LOG_FILE, TrialSpec


class LocalHandle(TrialHandle):
    def __init__(self, spec: TrialSpec, proc: subprocess.Popen[bytes], log: object):
        self.spec = spec
        self.proc = proc
        self._log = log
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        if self.proc.poll() is None:
            self._signal_group(signal.SIGKILL)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - a zombie we cannot reap
                pass

    def freeze(self) -> None:
        self._signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_group(signal.SIGCONT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        log = self._log
        if log is not None and not log.closed:  # type: ignore[attr-defined]
            log.close()  # type: ignore[attr-defined]


# What a training process may see of mlops' own environment. Everything else (the SMTP
# password, the Jenkins token, cloud keys, the admin's MLOPS_* settings) stays out, as it does
# for a container. Names that look like secrets are dropped even when a prefix matches.
ENV_ALLOW = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "TERM",
    "SHELL", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV",
    "PYTHONPATH", "PYTHONHASHSEED", "PYTHONWARNINGS", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "XDG_CACHE_HOME", "MPLCONFIGDIR", "MPLBACKEND", "DISPLAY",
})
ENV_ALLOW_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "TF_", "KERAS_", "XLA_", "NCCL_", "CUDNN_", "OMP_",
                      "MKL_", "KMP_", "OPENBLAS_", "BLIS_", "NUMEXPR_", "HDF5_", "SKLEARN_", "JOBLIB_")
_SECRET_NAME = re.compile(r"PASS|TOKEN|SECRET|CREDENTIAL|API_?KEY|PRIVATE|AUTH", re.IGNORECASE)


def trial_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of ``base`` (default: this process's environment) that a training
    process inherits: paths, locale, proxies, CUDA/TensorFlow/BLAS tuning; never a secret."""
    base = os.environ if base is None else base
    out = {}
    for name, value in base.items():
        if _SECRET_NAME.search(name):
            continue
        if name in ENV_ALLOW or name.startswith(ENV_ALLOW_PREFIXES):
            out[name] = value
    return out


PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


def with_project_root(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the project's own package importable by the child (first on
    ``PYTHONPATH``) even when it is not installed."""
    env["PYTHONPATH"] = PROJECT_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def harness_env(spec: TrialSpec) -> dict[str, str]:
    """The environment a trial runs with, the same for every runner (paths differ in Docker)."""
    return {
        "MLOPS_WORKDIR": str(spec.workdir),
        "MLOPS_KIND": spec.kind,
        "MLOPS_METRIC": spec.metric,
        "MLOPS_SEED": "" if spec.seed is None else str(spec.seed),
        "MLOPS_SCRIPT_DIR": str(spec.script.parent),
        "MLOPS_GOAL": "" if spec.goal is None else repr(spec.goal),
        "MLOPS_MAXIMIZE": "1" if spec.maximize else "0",
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        **spec.env,
    }


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the trial gets SIGKILL when the process that started it dies (``kill -9`` of
    ``mlops run``), so a resumed run never races an orphaned trial on the same workdir."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalRunner(Runner):
    """Runs each trial as ``<python> -m tuner.harness`` in a new process group."""

    name = "local"

    def __init__(self, python: str | None = None, names: dict[str, list[str]] | None = None):
        self.python = python or sys.executable
        self.names = names

    def start(self, spec: TrialSpec) -> LocalHandle:
        if not spec.script.is_file():
            raise RunnerError(f"{spec.script}: training script not found")
        prepare_workdir(spec, self.names)
        env = with_project_root({**trial_environment(), **harness_env(spec)})
        log = open(spec.workdir / LOG_FILE, "ab", buffering=0)
        log.write(f"--- mlops: trial started {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
        try:
            proc = subprocess.Popen(
                [self.python, "-u", "-m", "tuner.harness", str(spec.script_copy)],
                cwd=spec.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            log.close()
            raise RunnerError(f"cannot start {self.python}: {exc.strerror}") from None
        return LocalHandle(spec, proc, log)


def from_config(cfg: Any, names: dict[str, list[str]] | None = None) -> LocalRunner:
    """The registry's ``local-cold`` runner: a fresh process per trial."""
    return LocalRunner(names=names)
