#!/usr/bin/env bash
# Build step of mlops-monitor, the watchdog: runs when a mlops-train or mlops-retrain build
# fails, finds the trial that broke in the upstream build's artifacts (copied to upstream/ by
# the Copy Artifact step) and resumes it from its last checkpoint with `mlops watch WORKDIR`.
#
#   scripts/jenkins-monitor.sh [UPSTREAM_DIR]   (default: upstream)
#
# Environment: UPSTREAM_JOB, UPSTREAM_BUILD (for the description), WORKDIR (set when the
# upstream was mlops-retrain: the trial's folder), SCRIPT (its path in this checkout: the
# trial's spec is pointed at it), RUNNER (docker|local, as for the trial).
# The resumed trial is copied to mlops-out/watch (archived).
set -euo pipefail
# shellcheck source=scripts/jenkins-lib.sh
. "$(dirname "$0")/jenkins-lib.sh"

upstream=${1:-upstream}
from="${UPSTREAM_JOB:-upstream} #${UPSTREAM_BUILD:-?}"

# the trial to resume: the retrain's WORKDIR, else the newest trial of the run that did not end ok
workdir=$(UPSTREAM="$upstream" py -c '
import json, os
from pathlib import Path

up = Path(os.environ["UPSTREAM"])
given = os.environ.get("WORKDIR", "")
if given and (up / given).is_dir():
    print(up / given)
    raise SystemExit
candidates = sorted(p for p in up.glob("mlops-out/run/trials/*") if p.is_dir())
candidates += sorted(p.parent for p in up.glob("mlops-trial/**/settings.json"))
for trial in reversed(candidates):
    try:
        status = json.loads((trial / "result.json").read_text()).get("status")
    except (OSError, ValueError):
        status = None
    if status not in ("ok", "pruned"):
        print(trial)
        break
')

if [ -z "$workdir" ]; then
    describe "nothing to resume in $from: no failed trial in its artifacts"
    exit 0
fi

# trial.json names the script where the failed build had it; here it is in this checkout
if [ -n "${SCRIPT:-}" ] && [ -f "${SCRIPT}" ] && [ -f "$workdir/trial.json" ]; then
    check_rel_path "$SCRIPT" SCRIPT
    py -c '
import json, sys
path, script = sys.argv[1], sys.argv[2]
spec = json.load(open(path))
spec["script"] = script
json.dump(spec, open(path, "w"), indent=2, sort_keys=True)
' "$workdir/trial.json" "$PWD/$SCRIPT"
fi

opts=()
[ -n "${RUNNER:-}" ] && opts+=(--runner "$RUNNER")
echo "mlops: resuming $workdir (from $from) from its last checkpoint"
rc=0
mlops watch "$workdir" "${opts[@]}" || rc=$?

rm -rf mlops-out/watch
mkdir -p mlops-out
cp -a "$workdir" mlops-out/watch
if [ -f "$workdir/result.json" ]; then
    describe "resumed $from: $(mlops jenkins describe "$workdir" 2>/dev/null || echo "see result.json")"
else
    describe "resumed $from: mlops watch exited with code $rc"
fi
exit "$rc"
