# Shared set-up for scripts/demo and scripts/test: system packages, then a venv.
# Sourced, not run. Idempotent: a second run installs nothing new.

SYSTEM_PACKAGES="python3-venv python3-dev build-essential pkg-config mosquitto swtpm swtpm-tools libtss2-dev tpm2-openssl tpm2-abrmd libtss2-tcti-tabrmd0 dbus tshark faketime ieee-data zstd xdelta3 zlib1g-dev openssl"

missing_system_packages() {
  local missing=""
  for pkg in $SYSTEM_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
  done
  echo "$missing"
}

ensure_system_packages() {
  local missing
  missing=$(missing_system_packages)
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $missing >/dev/null
  else
    echo "missing Debian packages:$missing"
    echo "install them with: sudo apt-get install -y$missing"
    echo "(continuing; whatever needs them will say so)"
  fi
}

ensure_venv() {
  # $1: the extras to install, e.g. "all" or "server"
  local extras="$1" python="${PYTHON:-python3}"
  local stamp=".venv/.sevenfold-$extras-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $($python --version)"
    "$python" -m venv .venv
  fi
  if [ ! -f "$stamp" ]; then
    echo "installing Python dependencies (.[$extras]); log in .venv/pip.log"
    if ! { .venv/bin/python -m pip install --upgrade pip &&
           .venv/bin/python -m pip install -e ".[$extras]"; } > .venv/pip.log 2>&1; then
      tail -n 30 .venv/pip.log
      echo "pip install failed; the full log is .venv/pip.log" >&2
      return 1
    fi
    touch "$stamp"
  fi
}

TUF_CONFORMANCE_COMMIT="eec841c186f81f2d9d8d30460c7e7deefa615f9e"
TUF_CONFORMANCE_MIRROR="/work/.mirror/theupdateframework+tuf-conformance/repo"

ensure_tuf_conformance() {
  # The TUF conformance suite at its pinned commit in .tuf-conformance, and its own
  # pinned requirements (tuf, securesystemslib, pytest) in .venv-conformance, apart
  # from .venv so that its pins never meet ours. Source: $SEVENFOLD_TUF_CONFORMANCE_GIT,
  # else GitHub, else the local mirror.
  local python="${PYTHON:-python3}" stamp=".venv-conformance/.suite-$TUF_CONFORMANCE_COMMIT"
  if [ "$(git -C .tuf-conformance rev-parse HEAD 2>/dev/null)" != "$TUF_CONFORMANCE_COMMIT" ]; then
    rm -rf .tuf-conformance
    local source
    for source in "${SEVENFOLD_TUF_CONFORMANCE_GIT:-}" \
        https://github.com/theupdateframework/tuf-conformance "$TUF_CONFORMANCE_MIRROR"; do
      [ -n "$source" ] || continue
      if GIT_TERMINAL_PROMPT=0 timeout 120 git clone -q "$source" .tuf-conformance 2>/dev/null &&
         git -C .tuf-conformance checkout -q "$TUF_CONFORMANCE_COMMIT" 2>/dev/null; then
        echo "tuf-conformance $TUF_CONFORMANCE_COMMIT from $source"
        break
      fi
      rm -rf .tuf-conformance
    done
    if [ ! -d .tuf-conformance ]; then
      echo "cannot fetch tuf-conformance $TUF_CONFORMANCE_COMMIT (set SEVENFOLD_TUF_CONFORMANCE_GIT)" >&2
      return 1
    fi
  fi
  if [ ! -f "$stamp" ]; then
    echo "installing the conformance suite's requirements into .venv-conformance"
    rm -rf .venv-conformance
    if ! { "$python" -m venv .venv-conformance &&
           .venv-conformance/bin/python -m pip install ./.tuf-conformance; } \
           > .tuf-conformance.pip.log 2>&1; then
      tail -n 30 .tuf-conformance.pip.log
      echo "pip install failed; the full log is .tuf-conformance.pip.log" >&2
      return 1
    fi
    touch "$stamp"
  fi
}
