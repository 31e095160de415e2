# Shared set-up for scripts/demo and scripts/test: system packages, then a venv.
# Sourced, not run. Idempotent: a second run installs nothing new.

SYSTEM_PACKAGES="python3-venv python3-dev build-essential pkg-config mosquitto swtpm swtpm-tools libtss2-dev tpm2-openssl tpm2-abrmd libtss2-tcti-tabrmd0 dbus tshark faketime ieee-data zstd xdelta3 zlib1g-dev"

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
