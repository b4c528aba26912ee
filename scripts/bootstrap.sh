#!/usr/bin/env bash
# Idempotent setup used by both README commands (and CI):
#   1. a virtual environment in .venv with the project and its test extras (reinstalled only when
#      pyproject.toml or the requested extras change);
#   2. the Debian packages of the hardware side (gcc-arm-none-eabi, libnewlib-arm-none-eabi,
#      qemu-system-arm) when missing and we can install them (root or password-less sudo). Where we
#      cannot, the exact command is printed and the project still works with the analytic evaluator;
#   3. the compiled training kernels (g++, `python -m nas.models.native`), built once into the user cache.
# Extra Python extras: KWSNAS_EXTRAS="test,bench" scripts/bootstrap.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# --- Python ---------------------------------------------------------------------------------------------
pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3 python3.12 python3.13; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}
PY=$(pick_python) || { log "Python >= 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }

EXTRAS=${KWSNAS_EXTRAS:-test}
VENV=.venv
STAMP="$VENV/.kwsnas-installed"
want="$(sha256sum pyproject.toml | cut -c1-16) extras=$EXTRAS"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  log "installing kwsnas[$EXTRAS] into $VENV (first time: a few minutes)"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -e ".[$EXTRAS]" 2>&1 \
    | grep -vE "^WARNING: Location .* is ignored" >&2 || true
  "$VENV/bin/python" -c "import nas, jax, optuna, flax, optax" \
    || { log "installation failed; see the pip output above"; exit 1; }
  echo "$want" > "$STAMP"
else
  log "$VENV is up to date"
fi

# --- Debian packages of the hardware side -----------------------------------------------------------------
DEB_PACKAGES=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)
missing=()
command -v arm-none-eabi-gcc >/dev/null 2>&1 || missing+=(gcc-arm-none-eabi)
if ! dpkg -s libnewlib-arm-none-eabi >/dev/null 2>&1 && [ ! -e /usr/lib/arm-none-eabi/newlib/libc.a ]; then
  missing+=(libnewlib-arm-none-eabi)
fi
command -v qemu-system-arm >/dev/null 2>&1 || missing+=(qemu-system-arm)
# The host C++ compiler builds the compiled training kernels (nas/models/native; without it training falls
# back to the slower pure-JAX path).
if ! command -v "${CXX:-g++}" >/dev/null 2>&1; then
  missing+=(g++)
  DEB_PACKAGES+=(g++)
fi
# The test suite runs a real PostgreSQL server (distributed-search test) when it can.
if [[ "${KWSNAS_EXTRAS:-test}" == *test* ]] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
  DEB_PACKAGES+=(postgresql)
fi
# ... and a real Redis server (journal storage test).
if [[ "${KWSNAS_EXTRAS:-test}" == *test* ]] && ! command -v redis-server >/dev/null 2>&1; then
  missing+=(redis-server)
  DEB_PACKAGES+=(redis-server)
fi

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"; else SUDO="none"; fi
  fi
  if [ "$SUDO" != "none" ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian packages: ${missing[*]} (~925 MB, ~30 s)"
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
      log "apt-get failed; the hardware evaluator needs: sudo apt-get install -y ${DEB_PACKAGES[*]}"
      log "until then kwsnas works with the analytic evaluator (--evaluator analytic)"
    fi
  else
    log "missing Debian packages: ${missing[*]}"
    log "install them with: sudo apt-get install -y ${DEB_PACKAGES[*]}"
    log "until then kwsnas works with the analytic evaluator (--evaluator analytic)"
  fi
else
  log "toolchain present: $(arm-none-eabi-gcc --version | head -1); $(qemu-system-arm --version | head -1)"
fi

# --- compiled training kernels ------------------------------------------------------------------------------
# Built once into the user cache (keyed by source, compiler and CPU), so no training pays the compile.
if "$VENV/bin/python" -m nas.models.native >/dev/null 2>"$VENV/.native-build.log"; then
  log "compiled training kernels ready"
else
  log "compiled training kernels not built ($(tail -1 "$VENV/.native-build.log")); training uses the pure-JAX path"
fi
