#!/usr/bin/env bash
# Prepare a (fresh) Debian machine for developing and testing invoke-pachyderm. Run as root.
# Idempotent and quick when everything is already there. Starts nothing
# (scripts/services.sh starts the test services).
#
#   bash scripts/setup.sh
#
# Installs the Debian packages the tests need (docker.io for dockerd, docker-registry for
# the Distribution v2 registry, busybox-static for FROM-scratch test images, apache2-utils
# for htpasswd, git, curl), creates .venv with python3 (>= 3.10) and installs the project
# editable with its test extras.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

log() { echo "setup: $*" >&2; }

APT_PACKAGES=(docker.io docker-registry busybox-static apache2-utils git curl ca-certificates)

python_ok() {
    # python_ok PYTHON: it is >= 3.10 and can create virtual environments
    "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" != "installed" ]]; then
        missing+=("$pkg")
    fi
done
PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null 2>&1 || ! python_ok "$PYTHON"; then
    missing+=(python3 python3-venv python3-pip)
    PYTHON=/usr/bin/python3
fi

if ((${#missing[@]})); then
    [[ "$(id -u)" == 0 ]] || { log "ERROR: need root to install: ${missing[*]}"; exit 1; }
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Installing docker.io / docker-registry must not start their system services (they would
    # take /var/run/docker.sock and port 5000): forbid service starts while apt runs, unless
    # the machine already has its own policy.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\n# temporary, from invoke-pachyderm scripts/setup.sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    cleanup_policy() { if ((created_policy)); then rm -f "$policy"; fi; }
    trap cleanup_policy EXIT
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    cleanup_policy
    trap - EXIT
else
    log "Debian packages already installed"
fi

for tool in dockerd docker-registry htpasswd curl git; do
    command -v "$tool" >/dev/null 2>&1 || { log "ERROR: $tool not found after install"; exit 1; }
done
[[ -x /bin/busybox ]] || { log "ERROR: /bin/busybox (busybox-static) not found"; exit 1; }

# Python virtual environment.
VENV="$REPO_ROOT/.venv"
if [[ -x "$VENV/bin/python" ]] && python_ok "$VENV/bin/python" && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    log "using existing $VENV ($("$VENV/bin/python" --version 2>&1))"
else
    python_ok "$PYTHON" || { log "ERROR: no python3 >= 3.10 with venv support"; exit 1; }
    log "creating $VENV with $("$PYTHON" --version 2>&1)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi

# Editable install with test extras; skipped when pyproject.toml hasn't changed since the
# last successful install into this venv.
stamp="$VENV/.invoke-pachyderm-setup"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $REPO_ROOT"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
    && "$VENV/bin/python" -c 'import invoke_pachyderm, pytest, docker' >/dev/null 2>&1; then
    log "project already installed in $VENV"
else
    log "pip install -e '.[test]'"
    "$VENV/bin/python" -m pip install -q -e '.[test]'
    echo "$want" >"$stamp"
fi
# zizmor checks the GitHub Actions files (scripts/zizmor.sh, run by .ci/run); a wheel with its binary.
ZIZMOR_VERSION=1.32.0
if [[ "$("$VENV/bin/zizmor" --version 2>/dev/null)" != "zizmor $ZIZMOR_VERSION" ]]; then
    log "pip install zizmor==$ZIZMOR_VERSION"
    "$VENV/bin/python" -m pip install -q "zizmor==$ZIZMOR_VERSION"
fi
log "done"
