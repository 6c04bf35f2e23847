#!/usr/bin/env bash
# Build step of mlops-download: which training scripts did this push change?
#
#   scripts/jenkins-download.sh [PATHSPEC...]        (default pathspec: models/*.py)
#   scripts/jenkins-download.sh --first [PATHSPEC...] print the first changed script and exit
#
# Writes one properties file per changed script, mlops-changed/NNN.properties, holding
# SCRIPT=<path> and REVISION=<sha>; the Parameterized Trigger file-build factory starts one
# mlops-classify build per file. "Changed" means added, modified or renamed between the last
# successful build's commit (GIT_PREVIOUS_SUCCESSFUL_COMMIT, set by the Git plugin) and
# GIT_COMMIT; on a first build, the files of the last commit. SCRIPTS (a build parameter,
# space-separated paths) overrides the detection for a manual run.
set -euo pipefail
# shellcheck source=scripts/jenkins-lib.sh
. "$(dirname "$0")/jenkins-lib.sh"

first=0
if [ "${1:-}" = "--first" ]; then
    first=1
    shift
fi
if [ $# -eq 0 ]; then
    set -- 'models/*.py'
fi

commit=${GIT_COMMIT:-$(git rev-parse HEAD)}
out=${MLOPS_CHANGED_DIR:-mlops-changed}

changed() {
    if [ -n "${SCRIPTS:-}" ]; then
        # shellcheck disable=SC2086  # a space-separated list by design
        printf '%s\n' $SCRIPTS
        return
    fi
    local prev=${GIT_PREVIOUS_SUCCESSFUL_COMMIT:-}
    if [ -n "$prev" ] && git cat-file -e "$prev^{commit}" 2>/dev/null; then
        git diff --name-only --diff-filter=AMR "$prev" "$commit" -- "$@"
    elif git rev-parse -q --verify "$commit^" >/dev/null; then
        git diff --name-only --diff-filter=AMR "$commit^" "$commit" -- "$@"
    else
        git ls-files -- "$@"
    fi
}

mapfile -t scripts < <(changed "$@" | sed '/^$/d' | sort -u)

if [ "$first" = 1 ]; then
    if [ ${#scripts[@]} -gt 0 ]; then
        printf '%s\n' "${scripts[0]}"
    fi
    exit 0
fi

rm -rf "$out"
mkdir -p "$out"
n=0
names=()
for s in "${scripts[@]}"; do
    check_rel_path "$s" SCRIPT
    if [ ! -f "$s" ]; then
        echo "mlops: skipping $s: not in commit $commit"
        continue
    fi
    n=$((n + 1))
    printf 'SCRIPT=%s\nREVISION=%s\n' "$s" "$commit" > "$(printf '%s/%03d.properties' "$out" "$n")"
    names+=("$(basename "$s")")
    echo "mlops: changed training script: $s"
done

if [ "$n" -eq 0 ]; then
    describe "no training script changed ($*) at ${commit:0:12}"
else
    describe "$n changed at ${commit:0:12}: ${names[*]}"
fi
