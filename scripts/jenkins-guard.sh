#!/usr/bin/env bash
# Build step of the Jenkinsfile, before a step that archives, stashes, unstashes or publishes
# a folder of the workspace, or lets a tool write into it:
#
#   scripts/jenkins-guard.sh DIR...
#
# Refuses (exit 2, one line) when a DIR is not a relative path inside the workspace, or is a
# symlink or passes through one: a pushed repository may hold `mlops-out -> $HOME`, and
# Jenkins would follow it. Symlinks inside an existing DIR are removed (find -P, never
# followed): stash and publishHTML have no switch to leave them alone.
set -euo pipefail
# shellcheck source=scripts/jenkins-lib.sh
. "$(dirname "$0")/jenkins-lib.sh"

[ $# -gt 0 ] || die "usage: scripts/jenkins-guard.sh DIR..."
for dir in "$@"; do
    check_path "$dir" "$dir" out
done
for dir in "$@"; do
    drop_symlinks "$dir"
done
