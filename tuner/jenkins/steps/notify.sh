#!/usr/bin/env bash
# Build step of mlops-notify and of the Jenkinsfile's Notify stage / post { failure }.
#
#   mlops jenkins step notify RUN_DIR                   mail the outcome in RUN_DIR/summary.json
#   mlops jenkins step notify --failed REASON RUN_DIR   the same; when the build failed before
#                                                       a summary was written, first write a
#                                                       minimal one (status "failed", REASON)
#
# Mail settings come from MLOPS_MAIL_TO, MLOPS_SMTP_HOST, ... and the SMTP login from
# MLOPS_SMTP_USER / MLOPS_SMTP_PASSWORD, bound by Jenkins from a credentials id around this
# step alone (it sends mail, it never trains).
#
# RUN_DIR is a copy of the upstream build's run directory (Copy Artifact, unstash): it may not
# be or pass through a symlink (the step refuses), and symlinks inside it are removed first, so
# no file from outside the workspace can end up in the mail.
set -euo pipefail
# shellcheck source=tuner/jenkins/steps/lib.sh
. "$(dirname "$0")/lib.sh"

reason=""
if [ "${1:-}" = "--failed" ]; then
    reason=${2:-"the build failed"}
    shift 2
fi
run_dir=${1:-mlops-out/run}
check_path RUN_DIR "$run_dir" out
drop_symlinks "$run_dir"
display_name "${SCRIPT:-}"

if [ ! -f "$run_dir/summary.json" ]; then
    [ -n "$reason" ] || die "$(q "$run_dir/summary.json") not found; was the tune step run (or its artifacts copied)?"
    mkdir -p -- "$run_dir"
    commit=$(commit_id "${GIT_COMMIT:-HEAD}" || true)
    author=""
    if [ -n "$commit" ]; then
        author=$(git log -1 --format=%ae "$commit" -- 2>/dev/null || true)
    fi
    REASON="$reason" COMMIT="$commit" AUTHOR="$author" RUN_DIR="$run_dir" py -c '
import json, os
from datetime import datetime, timezone

env = os.environ
script = env.get("SCRIPT") or ""
now = datetime.now(timezone.utc).isoformat(timespec="seconds")
def num(name, cast, default):
    try:
        return cast(env[name])
    except (KeyError, ValueError):
        return default
summary = {
    "script": os.path.abspath(script) if script else None,
    "script_name": os.path.basename(script) if script else None,
    "kind": env.get("KIND") or None,
    "metric": env.get("MLOPS_METRIC") or "val_accuracy",
    "maximize": True,
    "goal": num("GOAL", float, 0.9),
    "status": "failed",
    "goal_met": False,
    "reason": env["REASON"],
    "strategy": env.get("STRATEGY") or None,
    "runner": None,
    "run_dir": os.path.abspath(env["RUN_DIR"]),
    "started_at": now,
    "finished_at": now,
    "seconds": 0.0,
    "budget": {"max_trials": num("MAX_TRIALS", int, None), "max_minutes": num("MAX_MINUTES", float, None)},
    "baseline_settings": {},
    "best": None,
    "trials": [],
    "git": {"commit": env.get("COMMIT") or None, "author_email": env.get("AUTHOR") or None,
            "branch": env.get("GIT_BRANCH") or env.get("BRANCH_NAME") or None},
    "build_url": env.get("BUILD_URL") or None,
}
with open(os.path.join(env["RUN_DIR"], "summary.json"), "w", encoding="utf-8") as fh:
    json.dump(summary, fh, indent=2)
    fh.write("\n")
'
fi

unmarked mlops notify -- "$run_dir"
