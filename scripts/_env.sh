# shellcheck shell=bash
# Sourced by scripts/demo and scripts/test: create or reuse .venv and install what is needed.
# Re-installs only when setup.cfg or pyproject.toml changed (a stamp file records their hash).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MLOPS_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

ensure_venv() {  # ensure_venv EXTRAS   e.g. ensure_venv "tf,dev"
  local extras="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "mlops: creating $VENV" >&2
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.mlops-installed-$extras"
  local want
  want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "mlops: installing the project with extras [$extras] into $VENV (first time: a few minutes)" >&2
    local log="$VENV/mlops-install.log"
    if ! { "$VENV/bin/python" -m pip install --upgrade pip && \
           "$VENV/bin/python" -m pip install -e "${ROOT}[${extras}]"; } >"$log" 2>&1; then
      tail -n 30 "$log" >&2
      echo "mlops: installing into $VENV failed; the whole log is $log" >&2
      exit 1
    fi
    echo "$want" > "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

ensure_apt() {  # ensure_apt CMD PACKAGE...   installs PACKAGEs when CMD is missing (needs root)
  local cmd="$1"; shift
  if command -v "$cmd" >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    echo "mlops: '$cmd' is missing; install it with: sudo apt-get install $*" >&2
    return 1
  fi
  echo "mlops: installing $* (apt)" >&2
  # apt-get update only when apt has no candidate for the package yet (a fresh machine)
  if ! apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}
