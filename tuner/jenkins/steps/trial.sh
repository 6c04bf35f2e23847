#!/usr/bin/env bash
# Build step of mlops-retrain: run one trial of SCRIPT with SETTINGS.
#
# Environment (build parameters): SCRIPT, KIND, SETTINGS (a JSON object, e.g.
# {"fc_layers": [128, 64], "learning_rate": 0.0003}), WORKDIR (under mlops-trial/, archived),
# METRIC, TRIAL_TIMEOUT_MINUTES, SEED, RUNNER (docker: train in the image for KIND; local).
#
# Runs `mlops train SCRIPT --set name=value ... --kind KIND ... --workdir WORKDIR`; the tuner's
# JenkinsRunner (build-per-trial mode) reads WORKDIR's result.json and metrics.jsonl back
# from this build's artifacts. The build fails when the trial did not end "ok" or "pruned",
# so mlops-monitor (the watchdog) picks it up.
#
# WORKDIR is removed and recreated: it must be a relative path under mlops-trial/ with no '..'
# and no symlink on it (mlops-trial itself included), or the step refuses. Symlinks the trial
# leaves in it are removed before it is archived. It trains, so it refuses to run with the
# Jenkins token or the SMTP password bound.
set -euo pipefail
# shellcheck source=tuner/jenkins/steps/lib.sh
. "$(dirname "$0")/lib.sh"

script=${SCRIPT:-}
check_rel_path "$script" SCRIPT
refuse_secrets "$script"
one_gpu_per_executor "${KIND:-}"

workdir=${WORKDIR:-mlops-trial/build-${BUILD_NUMBER:-0}}
case "$workdir" in
    mlops-trial | mlops-trial/*) ;;
    *) die "WORKDIR=$(q "$workdir") must be under mlops-trial/ (the folder this job archives)" ;;
esac
check_path WORKDIR "$workdir" out
check_path mlops-out mlops-out out
display_name "$script"

# SETTINGS -> one --set name=<Python literal> per setting: what `mlops train --set` reads back
# exactly (ast.literal_eval), JSON null/true/false included; one line per value
set_args=$(printf '%s' "${SETTINGS:-}" | py -c '
import json, re, sys

def bad(msg):
    print("mlops: error: " + msg, file=sys.stderr)
    sys.exit(2)

text = sys.stdin.read().strip() or "{}"
try:
    settings = json.loads(text)
except json.JSONDecodeError as exc:
    bad(f"SETTINGS is not JSON ({exc.msg} at column {exc.colno}); give an object such as {{\"learning_rate\": 0.001}}")
if not isinstance(settings, dict):
    bad("SETTINGS must be a JSON object of name: value")
for name, value in settings.items():
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        bad(f"SETTINGS: {name!r} is not a setting name")
    print("--set")
    print(name + "=" + repr(value))
')
sets=()
if [ -n "$set_args" ]; then
    mapfile -t sets <<< "$set_args"
fi

opts=()
case "${KIND:-}" in
    cnn | ann | regression) opts+=(--kind "$KIND") ;;
esac
[ -n "${METRIC:-}" ] && opts+=(--metric "$METRIC")
[ -n "${TRIAL_TIMEOUT_MINUTES:-}" ] && opts+=(--timeout-minutes "$TRIAL_TIMEOUT_MINUTES")
[ -n "${SEED:-}" ] && opts+=(--seed "$SEED")
[ -n "${RUNNER:-}" ] && opts+=(--runner "$RUNNER")

rm -rf -- "$workdir"
ignore_dir mlops-trial
mkdir -p -- "$(dirname -- "$workdir")"
echo "mlops: trial of $(q "$script") (${KIND:-?}) with $(q "${SETTINGS:-{\}}") in $(q "$workdir")"
rc=0
unmarked mlops train "${sets[@]}" "${opts[@]}" --workdir "$workdir" -- "$script" || rc=$?

# checked again (the trial ran in between), then nothing in it may lead out of the workspace
check_path WORKDIR "$workdir" out
drop_symlinks "$workdir"
if [ -f "$workdir/result.json" ]; then
    describe_path "$workdir"
    status=$(py -c 'import json,sys; print(json.load(open(sys.argv[1])).get("status", ""))' "$workdir/result.json")
    case "$status" in
        ok | pruned) exit 0 ;;
        *) exit 1 ;;
    esac
fi
describe "no result: mlops train exited with code $rc"
exit $((rc == 0 ? 1 : rc))
