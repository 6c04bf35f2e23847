#!/usr/bin/env bash
# Build step of mlops-monitor, the watchdog: runs when a mlops-train or mlops-retrain build
# fails, finds the trial that broke in the upstream build's artifacts (copied to upstream/ by
# the Copy Artifact step) and resumes it from its last checkpoint with `mlops watch WORKDIR`.
#
#   mlops jenkins step monitor [UPSTREAM_DIR]   (default: upstream)
#
# Environment: UPSTREAM_JOB, UPSTREAM_BUILD (for the description), WORKDIR (set when the
# upstream was mlops-retrain: the trial's folder, under mlops-trial/), SCRIPT (its path in this
# checkout: the trial's spec is pointed at it), RUNNER (docker|local, as for the trial).
# The resumed trial is copied to mlops-out/watch (archived). After a mlops-train build, the
# tuning goes on from its study (`mlops run --run-dir` on the copied run directory: the goal or
# the budget), the run directory is copied to mlops-out/run, and mlops-out/notify.properties
# starts mlops-notify, which mails the outcome (the train job itself mails only when it ends).
#
# Nothing here follows a symlink: UPSTREAM_DIR, the trial folder and mlops-out may not be or
# hold one on the way (the step refuses), a WORKDIR with '..' or an absolute path is refused,
# symlinks inside the trial folder are removed before it is touched. It trains (the resumed
# trial), so it refuses to run with the Jenkins token or the SMTP password bound.
set -euo pipefail
# shellcheck source=tuner/jenkins/steps/lib.sh
. "$(dirname "$0")/lib.sh"

upstream=${1:-upstream}
from="${UPSTREAM_JOB:-upstream} #${UPSTREAM_BUILD:-?}"
refuse_secrets "the trial that broke in $from"
one_gpu_per_executor "${KIND:-}"
check_path UPSTREAM_DIR "$upstream" out
check_path mlops-out mlops-out/watch out
display_name "${SCRIPT:-}"
given=${WORKDIR:-}

# a mlops-train build that broke: the developer hears of it from mlops-notify once this build is
# done (its properties file starts it, whatever happens below), with the outcome of the tuning
# this build carried on, or why it could not
# shellcheck disable=SC2317  # run by the EXIT trap
notify_next() {
    local rc=$?
    write_props mlops-out/notify.properties UPSTREAM_JOB "${JOB_NAME:-mlops-monitor}" \
        UPSTREAM_BUILD "${BUILD_NUMBER:-0}" SCRIPT "${SCRIPT:-}" KIND "${KIND:-}" || true
    return "$rc"
}
if [ -z "$given" ]; then
    mkdir -p mlops-out
    trap notify_next EXIT
fi
if [ -n "$given" ]; then
    case "$given" in
        mlops-trial/*) ;;
        *) die "WORKDIR=$(q "$given") must be under mlops-trial/ (where mlops-retrain runs its trial)" ;;
    esac
    check_path WORKDIR "$given" out "$upstream"
fi

# the trial to resume: the retrain's WORKDIR, else the newest trial of the run that did not end
# ok; never a folder reached through a symlink (os.walk does not follow them)
workdir=""
IFS= read -r -d '' workdir < <(UPSTREAM="$upstream" GIVEN="$given" py -c '
import json, os, sys
from pathlib import Path

up = Path(os.environ["UPSTREAM"])
given = os.environ["GIVEN"]

def emit(path):
    sys.stdout.write(str(path) + "\0")
    raise SystemExit

if given and (up / given).is_dir() and not (up / given).is_symlink():
    emit(up / given)

def real_dirs(top):
    # the folders under top (top included), never through a symlink
    if top.is_symlink() or not top.is_dir():
        return
    for root, dirs, _files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
        yield Path(root)

trials = up / "mlops-out" / "run" / "trials"
candidates = sorted(p for p in real_dirs(trials) if p.parent == trials)
candidates += sorted(p for p in real_dirs(up / "mlops-trial")
                     if (p / "settings.json").is_file() and not (p / "settings.json").is_symlink())
for trial in reversed(candidates):
    result = trial / "result.json"
    try:
        status = None if result.is_symlink() else json.loads(result.read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    if status not in ("ok", "pruned"):
        emit(trial)
') || true

if [ -z "$workdir" ]; then
    describe "nothing to resume in $from: no failed trial in its artifacts"
    exit 0
fi
check_path "trial folder" "$workdir" out
drop_symlinks "$workdir"

# trial.json names the script where the failed build had it; here it is in this checkout
if [ -n "${SCRIPT:-}" ]; then
    check_path SCRIPT "$SCRIPT" in
    if [ -f "$SCRIPT" ] && [ -f "$workdir/trial.json" ]; then
        py -c '
import json, sys
path, script = sys.argv[1], sys.argv[2]
spec = json.load(open(path))
spec["script"] = script
json.dump(spec, open(path, "w"), indent=2, sort_keys=True)
' "$workdir/trial.json" "$PWD/$SCRIPT"
    fi
fi

opts=()
[ -n "${RUNNER:-}" ] && opts+=(--runner "$RUNNER")
echo "mlops: resuming $(q "$workdir") (from $(q "$from")) from its last checkpoint"
rc=0
unmarked mlops watch "${opts[@]}" -- "$workdir" || rc=$?

copy_out "trial folder" "$workdir" mlops-out/watch  # checked again: the trial ran in between

# a trial of a mlops-train run: `mlops watch` recorded it in the run's study (the run directory
# copied from the broken build's artifacts), so the tuning goes on from there to the goal or the
# budget, and the run directory is archived for mlops-notify
case "$workdir" in
    "$upstream"/mlops-out/run/trials/*)
        if [ "$rc" -le 1 ] && [ -n "${SCRIPT:-}" ] && [ -f "$SCRIPT" ]; then
            run_dir="$upstream/mlops-out/run"
            args=(run --run-dir "$PWD/$run_dir" --no-mail --no-push "${opts[@]}")
            case "${KIND:-}" in
                cnn | ann | regression) args+=(--kind "$KIND") ;;
            esac
            echo "mlops: tuning $(q "$SCRIPT") on from the study of $from"
            rc=0
            unmarked mlops "${args[@]}" -- "$SCRIPT" || rc=$?
            copy_out "run directory" "$run_dir" mlops-out/run
            describe "resumed $from: $(mlops jenkins describe -- mlops-out/run 2>/dev/null || echo "see summary.json")"
            exit "$rc"
        fi
        ;;
esac
if [ -f mlops-out/watch/result.json ]; then
    describe "resumed $from: $(mlops jenkins describe -- mlops-out/watch 2>/dev/null || echo "see result.json")"
else
    describe "resumed $from: mlops watch exited with code $rc"
fi
exit "$rc"
