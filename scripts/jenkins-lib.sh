# shellcheck shell=bash
# Moved into the mlops package: tuner/jenkins/steps/lib.sh (the helpers of the build steps that
# `mlops jenkins step NAME` runs). Kept so that what sources it from a checkout keeps working.
# shellcheck source=tuner/jenkins/steps/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tuner/jenkins/steps/lib.sh"
