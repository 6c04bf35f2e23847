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
# whitespace-separated paths) overrides the detection for a manual run.
#
# Any name git can store is handled: the list is NUL-separated (git -z), never word-split or
# globbed, and each name is escaped in its properties file. A name that is not valid UTF-8
# cannot travel in a Jenkins parameter: it is skipped, and said so. A script that is a symlink
# out of the workspace fails the build.
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

if ! commit=$(git_commit "${GIT_COMMIT:-HEAD}"); then
    die "GIT_COMMIT=$(q "${GIT_COMMIT:-HEAD}") is not a commit of this checkout"
fi
out=${MLOPS_CHANGED_DIR:-mlops-changed}

# the changed files, NUL-terminated
changed() {
    if [ -n "${SCRIPTS:-}" ]; then
        local -a given=()
        read -r -d '' -a given <<< "$SCRIPTS" || true  # split on whitespace; read never globs
        if [ ${#given[@]} -gt 0 ]; then
            printf '%s\0' "${given[@]}"
        fi
        return
    fi
    local prev
    if prev=$(git_commit "${GIT_PREVIOUS_SUCCESSFUL_COMMIT:-}"); then
        git diff -z --name-only --diff-filter=AMR "$prev" "$commit" -- "$@"
    elif git rev-parse -q --verify "$commit^" >/dev/null; then
        git diff -z --name-only --diff-filter=AMR "$commit^" "$commit" -- "$@"
    else
        git ls-files -z -- "$@"
    fi
}

list=$(mktemp)
trap 'rm -f -- "$list"' EXIT
changed "$@" > "$list"
scripts=()
while IFS= read -r -d '' s; do
    [ -n "$s" ] || continue
    check_path SCRIPT "$s" in  # relative, no '..', not a symlink out of the workspace
    if [ ! -f "$s" ]; then
        echo "mlops: skipping $(q "$s"): not a file in commit $commit" >&2
        continue
    fi
    if ! is_utf8 "$s"; then
        echo "mlops: skipping $(q "$s"): its name is not valid UTF-8, which a Jenkins parameter cannot carry; rename it" >&2
        continue
    fi
    scripts+=("$s")
done < <(LC_ALL=C sort -zu -- "$list")

if [ "$first" = 1 ]; then
    if [ ${#scripts[@]} -gt 0 ]; then
        printf '%s\n' "${scripts[0]}"
    fi
    exit 0
fi

fresh_dir MLOPS_CHANGED_DIR "$out"
n=0
names=()
for s in "${scripts[@]}"; do
    n=$((n + 1))
    write_props "$(printf '%s/%03d.properties' "$out" "$n")" SCRIPT "$s" REVISION "$commit"
    names+=("${s##*/}")
    echo "mlops: changed training script: $(q "$s")"
done

if [ "$n" -eq 0 ]; then
    describe "no training script changed ($*) at ${commit:0:12}"
else
    describe "$n changed at ${commit:0:12}: ${names[*]}"
fi
