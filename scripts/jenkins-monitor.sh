#!/usr/bin/env bash
# Build step of mlops-monitor, the watchdog: runs when a mlops-train or mlops-retrain build
# fails, finds the trial that broke in the upstream build's artifacts (copied to upstream/ by
# the Copy Artifact step) and resumes it from its last checkpoint with `mlops watch WORKDIR`.
#
#   scripts/jenkins-monitor.sh [UPSTREAM_DIR]   (default: upstream)
#
# Environment: UPSTREAM_JOB, UPSTREAM_BUILD (for the description), WORKDIR (set when the
# upstream was mlops-retrain: the trial's folder, under mlops-trial/), SCRIPT (its path in this
# checkout: the trial's spec is pointed at it), RUNNER (docker|local, as for the trial).
# The resumed trial is copied to mlops-out/watch (archived).
#
# Nothing here follows a symlink: UPSTREAM_DIR, the trial folder and mlops-out may not be or
# hold one on the way (the step refuses), a WORKDIR with '..' or an absolute path is refused,
# symlinks inside the trial folder are removed before it is touched. It trains (the resumed
# trial), so it refuses to run with the Jenkins token or the SMTP password bound.
set -euo pipefail
# shellcheck source=scripts/jenkins-lib.sh
. "$(dirname "$0")/jenkins-lib.sh"

upstream=${1:-upstream}
from="${UPSTREAM_JOB:-upstream} #${UPSTREAM_BUILD:-?}"
refuse_secrets "the trial that broke in $from"
check_path UPSTREAM_DIR "$upstream" out
check_path mlops-out mlops-out/watch out
given=${WORKDIR:-}
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
if [ -f mlops-out/watch/result.json ]; then
    describe "resumed $from: $(mlops jenkins describe -- mlops-out/watch 2>/dev/null || echo "see result.json")"
else
    describe "resumed $from: mlops watch exited with code $rc"
fi
exit "$rc"
