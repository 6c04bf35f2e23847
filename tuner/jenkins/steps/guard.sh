#!/usr/bin/env bash
# Build step of the Jenkinsfile, before a step that archives, stashes, unstashes or publishes
# a folder of the workspace, or lets a tool write into it:
#
#   mlops jenkins step guard DIR...
#
# Refuses (exit 2, one line) when a DIR is not a relative path inside the workspace, or is a
# symlink or passes through one: a pushed repository may hold `mlops-out -> $HOME`, and
# Jenkins would follow it. Symlinks inside an existing DIR are removed (find -P, never
# followed): stash and publishHTML have no switch to leave them alone.
set -euo pipefail
# shellcheck source=tuner/jenkins/steps/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -gt 0 ] || die "usage: mlops jenkins step guard DIR..."
for dir in "$@"; do
    check_path "$dir" "$dir" out
done
for dir in "$@"; do
    drop_symlinks "$dir"
done
