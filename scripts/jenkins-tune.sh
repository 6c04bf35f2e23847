#!/usr/bin/env bash
# Build step of mlops-train and of the Jenkinsfile's Tune stage: tune SCRIPT to the goal.
#
# Environment (build parameters): SCRIPT, KIND, GOAL, MAX_TRIALS, MAX_MINUTES, STRATEGY,
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
# Secrets: single-build trains here, so it refuses to run with the Jenkins token, the SMTP
# password or the git token bound; build-per-trial trains nothing here and is the one mode that
# needs the Jenkins token.
# Always `mlops run --no-mail --no-push`: the mail goes out from mlops-notify (the Notify stage)
# and the tuned code is pushed by scripts/jenkins-deliver.sh, in a step of its own with the git
# credential bound around it alone (a step that trains never sees a secret).
# Exit code is mlops run's: 0 goal met, 1 budget spent (the job marks the build UNSTABLE),
# 2 bad input, 3 internal error.
set -euo pipefail
# shellcheck source=scripts/jenkins-lib.sh
. "$(dirname "$0")/jenkins-lib.sh"

script=${SCRIPT:-}
check_rel_path "$script" SCRIPT

mode=${TUNING_MODE:-single-build}
case "$mode" in
    single-build)
        runner=${RUNNER:-docker}
        refuse_secrets "$script"
        ;;
    build-per-trial) runner=jenkins ;;
    *) die "TUNING_MODE=$(q "$mode") is not one of: single-build, build-per-trial" ;;
esac

# the run directory is named after the script and the commit (hex only: never a path)
commit=$(commit_id "${GIT_COMMIT:-HEAD}" || echo local)
stem=${script##*/}
stem=${stem%.*}
run_rel="mlops-runs/$stem-${commit:0:12}"
check_path "run directory" "$run_rel" out
check_path mlops-out mlops-out/run out
run_dir="$PWD/$run_rel"
mkdir -p -- "$run_dir"

# the mail goes out from mlops-notify (or the Notify stage), not from here; the tuned code is
# pushed by scripts/jenkins-deliver.sh (mlops-notify, the Deliver stage), not from here
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

echo "mlops: tuning $(q "$script") ($mode, runner $runner) in $(q "$run_dir")"
rc=0
unmarked mlops "${args[@]}" -- "$script" || rc=$?

# checked again: the trials ran in between
check_path "run directory" "$run_rel" out
check_path mlops-out mlops-out/run out
rm -rf -- mlops-out/run
mkdir -p -- mlops-out
cp -a -- "$run_dir" mlops-out/run
drop_symlinks mlops-out/run
describe_path mlops-out/run
exit "$rc"
