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
# The run directory is copied to mlops-out/run (archived; report.html published from there).
# Exit code is mlops run's: 0 goal met, 1 budget spent (the job marks the build UNSTABLE),
# 2 bad input, 3 internal error.
set -euo pipefail
# shellcheck source=scripts/jenkins-lib.sh
. "$(dirname "$0")/jenkins-lib.sh"

script=${SCRIPT:-}
check_rel_path "$script" SCRIPT
[ -f "$script" ] || die "SCRIPT='$script' is not a file in this checkout"

mode=${TUNING_MODE:-single-build}
case "$mode" in
    single-build) runner=${RUNNER:-docker} ;;
    build-per-trial) runner=jenkins ;;
    *) die "TUNING_MODE='$mode' is not one of: single-build, build-per-trial" ;;
esac

commit=${GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo local)}
stem=$(basename "$script")
stem=${stem%.*}
run_dir="$PWD/mlops-runs/$stem-${commit:0:12}"
mkdir -p "$run_dir"

# the mail goes out from mlops-notify (or the Notify stage), not from here
args=(run "$script" --run-dir "$run_dir" --runner "$runner" --no-mail)
# in build-per-trial mode the watchdog runs next to the training, in each retrain build
[ "$runner" = jenkins ] && args+=(--no-watchdog)
case "${KIND:-}" in
    cnn | ann | regression) args+=(--kind "$KIND") ;;
esac
[ -n "${GOAL:-}" ] && args+=(--goal "$GOAL")
[ -n "${MAX_TRIALS:-}" ] && args+=(--max-trials "$MAX_TRIALS")
[ -n "${MAX_MINUTES:-}" ] && args+=(--max-minutes "$MAX_MINUTES")
[ -n "${STRATEGY:-}" ] && args+=(--strategy "$STRATEGY")

echo "mlops: tuning $script ($mode, runner $runner) in $run_dir"
rc=0
mlops "${args[@]}" || rc=$?

rm -rf mlops-out/run
mkdir -p mlops-out
cp -a "$run_dir" mlops-out/run
describe_path mlops-out/run
exit "$rc"
