#!/usr/bin/env bash
# Build step of the Jenkinsfile's worker branches (WORKERS > 1): one more worker on the study
# that mlops jenkins step tune (the coordinator, `mlops run`) started in the shared storage.
#
# Environment: SCRIPT, KIND, RUNNER (local when this step already runs inside the image for the
# kind, as in the Jenkinsfile; docker: each trial in its own container), GIT_COMMIT (else HEAD:
# the commit the coordinator tunes), WORKER_ID (this worker's number in the build, default
# EXECUTOR_NUMBER), STUDY_WAIT_SECONDS (default 900), and MLOPS_STORAGE: the study URL, bound by
# Jenkins from the Secret text credential STUDY_CREDENTIALS_ID (postgresql+psycopg2://mlops:PASSWORD@
# db.example.com:5432/mlops, or journal:////shared/study.log on a file system every agent mounts).
#
# Runs `mlops worker --study=<script stem>-<commit 12> --run-dir mlops-runs/<same>-worker-<id>
# -- SCRIPT`: the study is named like the coordinator's run directory, so every worker of a build
# joins the coordinator's study, and a rebuild of the same commit resumes it. The worker claims
# trials until the study's goal is met (by any worker: the others stop at their next epoch end)
# or its budget (trials, minutes: the study's, for all workers together) is spent. A trial of a
# worker whose agent died is taken over after MLOPS_STALE_AFTER seconds (default 120) without a
# heartbeat: resumed from its checkpoint when its folder is reachable here (a shared file
# system), else trained again from the start. A worker writes no outcome: the coordinator's build
# archives, reports, delivers and mails it; this run directory keeps this worker's trial folders.
# The workers may start before the coordinator has opened the study: while mlops says the study
# "has not been started", the step tries again every STUDY_RETRY_SECONDS (default 10) for up to
# STUDY_WAIT_SECONDS.
#
# Secrets: it trains (in trial processes one level down), so it refuses to run with the Jenkins
# token, the SMTP password or the git token bound, and it refuses to run WITHOUT MLOPS_STORAGE,
# the one secret a tune loop may hold (see refuse_secrets in lib.sh: the trials get an
# allow-listed environment without it). The URL goes to mlops by the environment alone: never on
# a command line, never printed (not even when it is malformed).
# Untrusted push: SCRIPT must be a file inside the checkout (a symlink only to one inside it);
# mlops-runs and the run directory must not be symlinks (a pushed `mlops-runs -> $HOME`).
# Exit code is mlops worker's: 0 the goal was met, 1 the budget is spent, 2 bad input (no study,
# no storage), 3 internal error.
set -euo pipefail
# shellcheck source=tuner/jenkins/steps/lib.sh
. "$(dirname "$0")/lib.sh"

script=${SCRIPT:-}
check_rel_path "$script" SCRIPT
refuse_secrets "$script" MLOPS_STORAGE
if [ -z "${MLOPS_STORAGE:-}" ]; then
    die "MLOPS_STORAGE is not set: a worker joins the study 'mlops run' keeps in a shared storage; bind the study URL (a Secret text credential such as postgresql+psycopg2://mlops:PASSWORD@db.example.com:5432/mlops; Jenkinsfile: STUDY_CREDENTIALS_ID) as MLOPS_STORAGE around this step (see docs/jenkins.md, Several workers, one study)"
fi
check_storage
one_gpu_per_executor "${KIND:-}"

runner=${RUNNER:-docker}
case "$runner" in
    local | docker) ;;
    *) die "RUNNER=$(q "$runner") is not one of: local, docker (a worker runs its trials itself)" ;;
esac
id=${WORKER_ID:-${EXECUTOR_NUMBER:-0}}
[[ $id =~ ^[A-Za-z0-9_-]{1,40}$ ]] || die "WORKER_ID=$(q "$id") must be letters, digits, '-' or '_'"
wait_s=${STUDY_WAIT_SECONDS:-900}
[[ $wait_s =~ ^[0-9]+$ ]] || die "STUDY_WAIT_SECONDS=$(q "$wait_s") is not a whole number of seconds"
retry_s=${STUDY_RETRY_SECONDS:-10}
[[ $retry_s =~ ^[1-9][0-9]*$ ]] || die "STUDY_RETRY_SECONDS=$(q "$retry_s") is not a whole number of seconds (1 or more)"

# the study (named like the coordinator's run directory) and this worker's own run directory
commit=$(commit_id "${GIT_COMMIT:-HEAD}" || echo local)
name=$(run_name "$script" "$commit")
run_rel="mlops-runs/$name-worker-$id"
check_path "run directory" "$run_rel" out
run_dir="$PWD/$run_rel"
ignore_dir mlops-runs  # never committed, never among the training scripts of a push
mkdir -p -- "$run_dir"

args=(worker "--study=$name" --run-dir "$run_dir" --runner "$runner" --label "worker-$id")
case "${KIND:-}" in
    cnn | ann | regression) args+=(--kind "$KIND") ;;
esac

log=$(mktemp)
trap 'rm -f -- "$log"' EXIT
echo "mlops: worker $id joins the study $(q "$name") in the shared storage of MLOPS_STORAGE, tuning $(q "$script") (runner $runner) in $(q "$run_dir")"
while :; do
    rc=0
    unmarked mlops "${args[@]}" -- "$script" | tee -- "$log" || rc=$?
    # the coordinator has not opened the study yet (its agent may still be starting): wait for it
    if [ "$rc" = 2 ] && grep -q "has not been started" -- "$log" && [ "$SECONDS" -lt "$wait_s" ]; then
        echo "mlops: the study $(q "$name") has not been started yet (the coordinator's 'mlops run' starts it); trying again in $retry_s s"
        sleep "$retry_s"
        continue
    fi
    break
done
exit "$rc"
