#!/usr/bin/env bash
# Installs everything Drape needs on a fresh Debian machine into ./.venv:
# system packages (PostgreSQL for the event-store tests, Prometheus/promtool, Alertmanager's
# amtool, Chromium and its driver to
# render the HTML reports and drive the storefront in their tests),
# the CPU build of torch first (so nothing pulls a multi-GB CUDA build), then
# Drape itself with its pinned dependency set, and generates the API stubs.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
EXTRAS=${DRAPE_EXTRAS:-cpu,s3,eval,dev}

apt_packages=()
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  || apt_packages+=(postgresql)
command -v prometheus >/dev/null 2>&1 || apt_packages+=(prometheus)
command -v amtool >/dev/null 2>&1 || apt_packages+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || apt_packages+=(chromium-driver)
if ((${#apt_packages[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}"
    # Debian starts the packaged daemons; the tests run their own on loopback.
    for unit in prometheus prometheus-alertmanager postgresql; do
      service "$unit" stop >/dev/null 2>&1 || true
    done
  else
    echo "install.sh: please install with apt: ${apt_packages[*]}" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first: with 2.13.0 (CPU) present, `torch>=2.4` below installs nothing more.
"$VENV/bin/python" -c "import torch" 2>/dev/null || "${pip[@]}" "torch==${TORCH_VERSION}"
"${pip[@]}" -c constraints.txt -e ".[${EXTRAS}]"
"$VENV/bin/python" tools/protogen.py
# checkov (the manifests' and the Dockerfile's policy check) pins its own dependencies: it
# gets a virtual environment of its own, beside Drape's.
CHECKOV_VENV=${CHECKOV_VENV:-$VENV/checkov}
[ -x "$CHECKOV_VENV/bin/checkov" ] || {
  "$PYTHON" -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==3.3.30"
}
"$VENV/bin/drape" doctor
echo "Drape installed in $VENV (activate with: source $VENV/bin/activate)"
