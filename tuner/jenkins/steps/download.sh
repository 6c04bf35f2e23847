#!/usr/bin/env bash
# Build step of mlops-download: which training scripts did this push change?
#
#   mlops jenkins step download [PATHSPEC...]        (default pathspec: *.py, any folder)
#   mlops jenkins step download --first [PATHSPEC...] print the first changed script and exit
#   mlops jenkins step download --all [PATHSPEC...]   print every changed script, one a line (a
#                                                     name holding a newline is skipped: say so)
#
# The folders the steps write (mlops-runs, mlops-out, mlops-trial, ...: MLOPS_OWN_DIRS in lib.sh)
# are left out of every pathspec: a run directory is never taken for a training script.
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
# shellcheck source=tuner/jenkins/steps/lib.sh
. "$(dirname "$0")/lib.sh"

first=0
case "${1:-}" in
    --first) first=1; shift ;;
    --all) first=all; shift ;;
esac
if [ $# -eq 0 ]; then
    set -- '*.py'
fi
excluded=()
for dir in "${MLOPS_OWN_DIRS[@]}"; do
    excluded+=(":(exclude)$dir")
done

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
changed "$@" "${excluded[@]}" > "$list"
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

# a changed module that trains nothing (a helper, a test, setup.py) is not a training script: it
# starts no build (mlops classify reads it, never runs it); any other error of classify is kept,
# for the classify step to report with its file and line. SCRIPTS (named by hand) is taken as it is.
if [ -z "${SCRIPTS:-}" ] && [ ${#scripts[@]} -gt 0 ]; then
    training=()
    for s in "${scripts[@]}"; do
        if verdict=$(mlops classify --json -- "$s" 2>/dev/null) || [[ $verdict != *'"error": "trains nothing'* ]]; then
            training+=("$s")
        else
            echo "mlops: skipping $(q "$s"): it trains nothing (not a training script)" >&2
        fi
    done
    scripts=("${training[@]}")
fi

if [ "$first" = 1 ]; then
    if [ ${#scripts[@]} -gt 0 ]; then
        printf '%s\n' "${scripts[0]}"
    fi
    exit 0
fi
if [ "$first" = all ]; then
    for s in "${scripts[@]}"; do
        case "$s" in
            *$'\n'*) echo "mlops: skipping $(q "$s"): a name with a newline cannot be listed one a line; rename it" >&2 ;;
            *) printf '%s\n' "$s" ;;
        esac
    done
    exit 0
fi

fresh_dir MLOPS_CHANGED_DIR "$out"
ignore_dir "$out"
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
