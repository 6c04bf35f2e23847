#!/usr/bin/env bash
# Build step of mlops-classify and of the Jenkinsfile's Classify stage.
#
#   mlops jenkins step classify [--] SCRIPT [PROPERTIES]   write SCRIPT, REVISION, KIND to
#                                                          PROPERTIES (default mlops-classify.properties)
#   mlops jenkins step classify --print-kind [--] SCRIPT   print only the kind (cnn, ann, regression);
#                                                          the description goes to mlops-out/description.txt
#
# Runs `mlops classify --json -- SCRIPT` (reads the code, never runs it). The properties file
# feeds the parameterized trigger of mlops-train. A script that cannot be classified fails
# the build with mlops' one-line error (exit 2), naming the file and line; the description
# says so too (HTML-escaped, like every description).
set -euo pipefail
# shellcheck source=tuner/jenkins/steps/lib.sh
. "$(dirname "$0")/lib.sh"

print_kind=0
if [ "${1:-}" = "--print-kind" ]; then
    print_kind=1
    shift
fi
if [ "${1:-}" = "--" ]; then  # a script may be named --print-kind
    shift
fi
script=${1:-${SCRIPT:-}}
props=${2:-mlops-classify.properties}
check_rel_path "$script" SCRIPT
[ "$print_kind" = 1 ] || check_path PROPERTIES "$props" out
check_path mlops-out mlops-out out
display_name "$script"
name=${script##*/}

# in --print-kind mode stdout is the kind alone: the description line goes to the console (stderr)
say() {
    if [ "$print_kind" = 1 ]; then
        describe "$@" >&2
    else
        describe "$@"
    fi
}

errors=$(mktemp)
trap 'rm -f -- "$errors"' EXIT
rc=0
json=$(mlops classify --json -- "$script" 2> "$errors") || rc=$?
unmarked cat -- "$errors" >&2
if [ "$rc" -ne 0 ]; then
    reason=$(sed -n 's/^mlops: error: //p' -- "$errors" | tail -n 1)
    say "$name: not classified: ${reason:-mlops classify exited with code $rc}"
    exit "$rc"
fi

# one JSON object per line: {"file", "kind", "evidence"}; the first is the script's
parsed=$(printf '%s\n' "$json" | py -c '
import json, sys

recs = [json.loads(line) for line in sys.stdin if line.strip().startswith("{")]
if not recs:
    sys.exit("mlops: error: mlops classify printed no JSON object")
rec = recs[0]
kind = rec.get("kind")
if kind not in ("cnn", "ann", "regression"):
    sys.exit(f"mlops: error: mlops classify gave an unknown kind {kind!r}")

def short(item):
    # evidence items are {"line": 61, "reason": "Conv2D layer (keras.layers.Conv2D)"}
    if isinstance(item, dict):
        what = item.get("reason") or item.get("name") or ""
        line = item.get("line")
        return f"{what} at line {line}" if what and line else (what or json.dumps(item))
    return str(item)

ev = rec.get("evidence") or []
ev = ev if isinstance(ev, list) else [ev]
print(kind)
print(" ".join(short(ev[0]).split()) if ev else "")
')
kind=$(printf '%s\n' "$parsed" | sed -n 1p)
evidence=$(printf '%s\n' "$parsed" | sed -n 2p)

if [ "$print_kind" = 1 ]; then
    say "$name → $kind${evidence:+ ($evidence)}"
    printf '%s\n' "$kind"
    exit 0
fi

commit=$(commit_id "${GIT_COMMIT:-HEAD}" || printf '%s' "${GIT_COMMIT:-}")
write_props "$props" SCRIPT "$script" REVISION "$commit" KIND "$kind"
echo "mlops: $(q "$script") is $kind${evidence:+ ($evidence)}"
say "$name → $kind${evidence:+ ($evidence)}"
