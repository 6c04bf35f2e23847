#!/usr/bin/env bash
# scripts/jenkins-step.sh NAME [ARGS]: `mlops jenkins step NAME ARGS`, the build steps that ship in
# the mlops package (tuner/jenkins/steps/). mlops is $MLOPS (a command, may hold arguments), else
# the one on PATH, else this checkout's (python3 -m tuner). The scripts/jenkins-NAME.sh beside it
# call this, so that job definitions synced before the steps moved, and the README's commands,
# keep working; new jobs and the Jenkinsfile call `mlops jenkins step NAME` themselves.
set -euo pipefail
if [ -n "${MLOPS:-}" ]; then
    # shellcheck disable=SC2086  # $MLOPS may be "python3 -m tuner"
    exec $MLOPS jenkins step "$@"
elif command -v mlops >/dev/null 2>&1; then
    exec mlops jenkins step "$@"
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONSAFEPATH=1 exec "${PYTHON:-python3}" -m tuner jenkins step "$@"
