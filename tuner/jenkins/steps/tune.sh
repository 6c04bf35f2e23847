#!/usr/bin/env bash
# Build step of mlops-train and of the Jenkinsfile's Tune stage: tune SCRIPT to the goal.
#
# Environment (build parameters): SCRIPT, KIND, GOAL, MAX_TRIALS, MAX_MINUTES, STRATEGY, METRIC
# (each, when not empty, a flag of `mlops run`; empty says nothing, so the mlops.yaml beside
# SCRIPT, MLOPS_* and the defaults decide, as for `mlops run` on a laptop),
# TUNING_MODE (single-build | build-per-trial), RUNNER (the trial runner in single-build
# mode: docker, or local when this step already runs inside the image). GIT_COMMIT (set by
# the Git plugin) names the run directory.
#
# single-build:    every trial runs inside this build (`mlops run --runner $RUNNER`).
# build-per-trial: this build runs the tune loop only; each trial is one mlops-retrain build
#                  (`mlops run --runner jenkins`, JENKINS_USER/JENKINS_API_TOKEN bound by Jenkins).
# Both modes keep the same study: mlops-runs/<script>-<commit>/study.db in this workspace, so
# a rebuild of the same commit resumes where the last build stopped.
#
# The run directory is copied to mlops-out/run (archived; report.html published from there),
# without the symlinks a trial may have left in it. Neither mlops-runs nor mlops-out may be a
# symlink (a pushed repository could hold one leading to $HOME): the step refuses to start.
# Several workers, one study: with MLOPS_STORAGE set (the study URL, bound by Jenkins from a
# Secret text credential: postgresql+psycopg2://mlops:PASSWORD@db:5432/mlops), the study lives there, named
# --study=<script stem>-<commit 12> like the run directory, so that mlops jenkins step worker on
# other agents joins it and a rebuild of the same commit resumes it; this build is its coordinator
# and writes the outcome. WORKERS_PER_AGENT (default 1) tune loops run side by side here
# (`mlops run --workers N`, single-build only). The URL is passed by the environment alone: never
# on a command line, never printed (it may hold the password).
# Secrets: single-build trains here, so it refuses to run with the Jenkins token, the SMTP
# password or the git token bound; build-per-trial trains nothing here and is the one mode that
# needs the Jenkins token. MLOPS_STORAGE is allowed in both: the tune loop needs it, and the
# trials it starts get an allow-listed environment without it (see refuse_secrets in
# lib.sh for why, and what that does not cover).
# Always `mlops run --no-mail --no-push`: the mail goes out from mlops-notify (the Notify stage)
# and the tuned code is pushed by mlops jenkins step deliver, in a step of its own with the git
# credential bound around it alone (a step that trains never sees a secret).
# Exit code is mlops run's: 0 goal met, 1 budget spent (the job marks the build UNSTABLE),
# 2 bad input, 3 internal error.
set -euo pipefail
# shellcheck source=tuner/jenkins/steps/lib.sh
. "$(dirname "$0")/lib.sh"

script=${SCRIPT:-}
check_rel_path "$script" SCRIPT

mode=${TUNING_MODE:-single-build}
case "$mode" in
    single-build)
        runner=${RUNNER:-docker}
        refuse_secrets "$script" MLOPS_STORAGE
        ;;
    build-per-trial) runner=jenkins ;;
    *) die "TUNING_MODE=$(q "$mode") is not one of: single-build, build-per-trial" ;;
esac
check_storage
one_gpu_per_executor "${KIND:-}"
per_agent=${WORKERS_PER_AGENT:-1}
[[ $per_agent =~ ^[1-9][0-9]*$ ]] || die "WORKERS_PER_AGENT=$(q "$per_agent") is not a whole number of 1 or more"
if [ "$per_agent" != 1 ] && [ "$mode" != single-build ]; then
    die "WORKERS_PER_AGENT=$per_agent needs TUNING_MODE=single-build: in build-per-trial mode every trial is a build of its own already"
fi

# the run directory (and the study in a shared storage) is named after the script and the
# commit (hex only: never a path)
commit=$(commit_id "${GIT_COMMIT:-HEAD}" || echo local)
name=$(run_name "$script" "$commit")
run_rel="mlops-runs/$name"
check_path "run directory" "$run_rel" out
check_path mlops-out mlops-out/run out
display_name "$script"
run_dir="$PWD/$run_rel"
ignore_dir mlops-runs  # never committed, never among the training scripts of a push
mkdir -p -- "$run_dir"

# the mail goes out from mlops-notify (or the Notify stage), not from here; the tuned code is
# pushed by mlops jenkins step deliver (mlops-notify, the Deliver stage), not from here
args=(run --run-dir "$run_dir" --runner "$runner" --no-mail --no-push)
# in build-per-trial mode the watchdog runs next to the training, in each retrain build
[ "$runner" = jenkins ] && args+=(--no-watchdog)
case "${KIND:-}" in
    cnn | ann | regression) args+=(--kind "$KIND") ;;
esac
[ -n "${GOAL:-}" ] && args+=(--goal "$GOAL")
[ -n "${MAX_TRIALS:-}" ] && args+=(--max-trials "$MAX_TRIALS")
[ -n "${MAX_MINUTES:-}" ] && args+=(--max-minutes "$MAX_MINUTES")
[ -n "${STRATEGY:-}" ] && args+=(--strategy "$STRATEGY")
[ -n "${METRIC:-}" ] && args+=(--metric "$METRIC")
# the URL stays in the environment (MLOPS_STORAGE, read by mlops run): only the study's name here
where="in $(q "$run_dir")"
if [ -n "${MLOPS_STORAGE:-}" ]; then
    args+=("--study=$name")
    where="$where, study $(q "$name") in the shared storage of MLOPS_STORAGE"
fi
[ "$per_agent" != 1 ] && args+=(--workers "$per_agent")

echo "mlops: tuning $(q "$script") ($mode, runner $runner) $where"
rc=0
unmarked mlops "${args[@]}" -- "$script" || rc=$?

copy_out "run directory" "$run_rel" mlops-out/run  # checked again: the trials ran in between
describe_path mlops-out/run
exit "$rc"
