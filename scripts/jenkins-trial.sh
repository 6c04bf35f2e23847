#!/usr/bin/env bash
# Moved into the mlops package: `mlops jenkins step trial` (tuner/jenkins/steps/trial.sh), which runs
# in a checkout of any repository. Kept for jobs synced before the move; see jenkins-step.sh.
exec bash "$(dirname "$0")/jenkins-step.sh" trial "$@"
