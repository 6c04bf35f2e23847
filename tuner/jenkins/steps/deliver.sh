#!/usr/bin/env bash
# Build step of mlops-notify (before the mail) and of the Jenkinsfile's Deliver stage: the
# tuned code back to Git.
#
#   mlops jenkins step deliver RUN_DIR
#
# Runs `mlops deliver RUN_DIR --script $SCRIPT`: when the run met its goal, the tuned script,
# mlops-tuned/<stem>/settings.diff and report.html are committed on a new branch
# mlops/tuned/<script path with dashes>-<short sha> of this checkout and pushed to its remote
# (never a force push, never the default branch, the working tree untouched). The outcome is
# recorded in RUN_DIR/summary.json and report.html (`delivery`), so the mail sent next names the
# branch; the build description (mlops-out/description.txt, MLOPS_DESCRIPTION line) is refreshed
# and ends in "— tuned code on branch ...".
#
# Environment: SCRIPT (the tuned script, a path in this checkout). The git credential is bound
# by Jenkins around this step alone (it trains nothing): MLOPS_GIT_USERNAME + MLOPS_GIT_TOKEN
# (or MLOPS_GIT_TOKEN_FILE) for an https remote; an ssh remote uses the agent's ssh keys. The
# token is never printed here: mlops reads it from the environment and hands it to git through
# a temporary GIT_ASKPASS. git.push (mlops.yaml of the script, MLOPS_GIT_PUSH) off: nothing is
# pushed. Where it goes (git.remote, git.branch_prefix) is the admin's choice, never mlops.yaml's.
#
# RUN_DIR is a copy of the tune step's run directory (unstash, Copy Artifact): it may not be or
# pass through a symlink (the step refuses), and symlinks inside it are removed first. The
# checkout must be at the commit the run tuned (summary.json's git.commit, when recorded): a
# branch on another commit would mix the tuned script with code it was not tuned with.
#
# Exit code: 0 pushed, already there, nothing to deliver (the goal was not met, no summary.json:
# the upstream build failed before writing one) or git.push off; also 0 when the push FAILED:
# the tuning result stands and the mail still goes out, so a failed push only warns
# ("mlops: warning: the tuned code was not pushed ...") and leaves the marker file
# mlops-out/delivery-failed, which the Jenkinsfile turns into unstable(...) and mlops-notify into
# an UNSTABLE build. 2 bad input (a symlink, SCRIPT outside the checkout, the wrong commit), 3
# internal error: mlops deliver's code.
set -euo pipefail
# shellcheck source=tuner/jenkins/steps/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -le 1 ] || die "usage: mlops jenkins step deliver RUN_DIR"
run_dir=${1:-mlops-out/run}
check_path RUN_DIR "$run_dir" out
drop_symlinks "$run_dir"

# the marker of a failed push: a stale one (an earlier build in this workspace) goes first
marker=mlops-out/delivery-failed
check_path mlops-out mlops-out out
check_path "failed-push marker" "$marker" out
rm -f -- "$marker"

if [ ! -f "$run_dir/summary.json" ]; then
    echo "mlops: $(q "$run_dir/summary.json") not found (the tune step wrote no summary): nothing to deliver"
    exit 0
fi

script=${SCRIPT:-}
check_rel_path "$script" SCRIPT
display_name "$script"

# the checkout must be the commit the run tuned: the branch is based on HEAD
# shellcheck disable=SC2016  # Python source, not shell
tuned=$(RUN_DIR="$run_dir" py -c '
import json, os, re
try:
    with open(os.path.join(os.environ["RUN_DIR"], "summary.json"), encoding="utf-8") as fh:
        git = json.load(fh).get("git") or {}
    commit = git.get("commit") if isinstance(git, dict) else None
except (OSError, ValueError, AttributeError):
    commit = None
print(commit if isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit) else "")
')
head=$(git_commit HEAD || true)
if [ -n "$tuned" ] && [ -n "$head" ] && [ "$tuned" != "$head" ]; then
    die "this checkout is at ${head:0:12}, but the run tuned $(q "$script") at ${tuned:0:12}; check out that commit first (the Jenkinsfile pins it: TUNED_COMMIT)"
fi

echo "mlops: delivering the tuned $(q "$script") from $(q "$run_dir")"
rc=0
unmarked mlops deliver --script="$script" -- "$run_dir" || rc=$?

if [ "$rc" -eq 1 ]; then
    # the push failed (mlops said why above; summary.json has it too): the build goes on
    echo "mlops: warning: the tuned code was not pushed to Git (the reason is above and in the mail); the build goes on, marked UNSTABLE" >&2
    check_path "failed-push marker" "$marker" out
    mkdir -p -- mlops-out
    echo "the tuned code was not pushed to Git" >"$marker"
    rc=0
fi

# checked again: mlops deliver ran in between
check_path RUN_DIR "$run_dir" out
describe_path "$run_dir"
exit "$rc"
