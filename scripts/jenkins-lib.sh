# shellcheck shell=bash
# Shared helpers for the scripts/jenkins-*.sh build steps. Source it, do not run it.
#
# The steps run in a checkout of this repository on a Jenkins agent. `mlops` is found in
# this order: $MLOPS (a command, may hold arguments), `mlops` on PATH, .venv/bin/mlops in the
# workspace, else `python3 -m tuner` with the checkout on PYTHONPATH.
# No secret is read or printed here: credentials reach the tools through the environment
# (Jenkins credentials binding), never through arguments.

# SITE_MLOPS_X=value (set by a job from jobs/project.yaml) -> MLOPS_X=value, unless empty: an
# empty site value keeps whatever the agent's environment already sets.
for _site_name in $(compgen -e); do
    case "$_site_name" in
        SITE_MLOPS_*)
            if [ -n "${!_site_name:-}" ]; then
                export "${_site_name#SITE_}=${!_site_name}"
            fi
            ;;
    esac
done
unset _site_name

MLOPS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export MLOPS_ROOT

mlops() {
    if [ -n "${MLOPS:-}" ]; then
        # shellcheck disable=SC2086  # $MLOPS may be "python3 -m tuner"
        command $MLOPS "$@"
    elif command -v mlops >/dev/null 2>&1; then
        command mlops "$@"
    elif [ -x "$MLOPS_ROOT/.venv/bin/mlops" ]; then
        "$MLOPS_ROOT/.venv/bin/mlops" "$@"
    else
        PYTHONPATH="$MLOPS_ROOT${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python3}" -m tuner "$@"
    fi
}

# The Python used for the small JSON helpers below (never the training).
py() {
    "${PYTHON:-python3}" "$@"
}

die() {
    echo "mlops: error: $*" >&2
    exit 2
}

# describe TEXT: the line the Description Setter plugin copies into the build description
# (publisher regexp: ^MLOPS_DESCRIPTION: (.*)$), also kept in mlops-out/description.txt for
# the Jenkinsfile (currentBuild.description).
describe() {
    mkdir -p mlops-out
    printf '%s\n' "$*" > mlops-out/description.txt
    printf 'MLOPS_DESCRIPTION: %s\n' "$*"
}

# describe_path PATH: describe a run directory (summary.json) or a trial workdir (result.json).
describe_path() {
    local line
    if line=$(mlops jenkins describe "$1" 2>/dev/null) && [ -n "$line" ]; then
        describe "$line"
    else
        describe "no outcome recorded in $1"
    fi
}

# A script path from a build parameter must stay inside the checkout.
check_rel_path() {
    case "$1" in
        "" ) die "$2 is empty; give the path of a file in the repository" ;;
        /* | ../* | */../* | *"/.." | "..") die "$2='$1' must be a path inside the repository checkout" ;;
    esac
}
