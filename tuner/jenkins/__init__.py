"""Jenkins: the only package that talks to Jenkins (python-jenkins) and renders ``jobs/``
(Jenkins Job Builder).

- :mod:`tuner.jenkins.client`: :class:`JenkinsClient` and everything that talks to a server:
  error mapping, :class:`BuildOutcome`, waiting for a queue item / build / result, the status
  table, the retrain job's parameters, fetching a trial's artifacts.
- :mod:`tuner.jenkins.jobs`: job names and prefix, rendering ``jobs/``, :func:`sync`.
- :mod:`tuner.jenkins.describe`: the text of build descriptions (pure).
- :mod:`tuner.jenkins.extra`: whether the ``jenkins`` extra is installed.

It does not read the configuration (``tuner.config``): callers that have a Config pass the
``jenkins.*`` values (``JenkinsClient.from_env(url=..., user=..., timeout=...)``,
``job_prefix(configured=...)``). Importing it loads none of python-jenkins, Jenkins Job
Builder, requests or pandas.
"""

from __future__ import annotations

from tuner.jenkins.client import (
    DEFAULT_TIMEOUT,
    PERMISSIONS_HINT,
    TRIAL_ARTIFACTS,
    TRIAL_ROOT,
    BuildOutcome,
    JenkinsClient,
    JenkinsHTTPError,
    fetch_trial_artifacts,
    outcome_from_info,
    retrain_parameters,
    safe_segment,
)
from tuner.jenkins.describe import (
    DESCRIPTION_MARKER,
    describe_path,
    describe_trial,
    format_number,
    format_settings,
    metric_in_description,
)
from tuner.jenkins.extra import EXTRA_PACKAGES, INSTALL_HINT, missing_extra, require_extra
from tuner.jenkins.jobs import (
    DEFAULT_PREFIX,
    JOB_SUFFIXES,
    Rendered,
    SyncReport,
    default_jobs_dir,
    job_name,
    job_prefix,
    normalize_xml,
    render_jobs,
    repo_root,
    sync,
    with_auth_token,
)

__all__ = [
    "DEFAULT_PREFIX", "DEFAULT_TIMEOUT", "DESCRIPTION_MARKER", "EXTRA_PACKAGES", "INSTALL_HINT",
    "JOB_SUFFIXES", "PERMISSIONS_HINT", "TRIAL_ARTIFACTS", "TRIAL_ROOT",
    "BuildOutcome", "JenkinsClient", "JenkinsHTTPError", "Rendered", "SyncReport",
    "default_jobs_dir", "describe_path", "describe_trial",
    "fetch_trial_artifacts", "format_number", "format_settings", "job_name", "job_prefix",
    "metric_in_description", "missing_extra", "normalize_xml", "outcome_from_info",
    "render_jobs", "repo_root", "require_extra", "retrain_parameters",
    "safe_segment", "sync", "with_auth_token",
]
