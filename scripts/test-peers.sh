#!/usr/bin/env bash
# Installs berth's pinned test peers, idempotently, into a cache folder this
# script owns (default $REPO/.cache/test-peers, override with BERTH_TEST_CACHE):
#   venv/  Python venv from tests/peers/requirements.txt (the official `mcp`
#          SDK, mcp-server-time, pytest, httpx; every version exact)
#   node/  `npm ci` of tests/peers/package.json + package-lock.json (the
#          TypeScript SDK, server-everything, supergateway, playwright-core,
#          which drives Debian's `chromium`, installed here when missing)
# Each part is skipped while its stamp records the hash of its pin file and the
# install is still there, so a re-run with everything in place takes well under
# two seconds. Debian packages are installed only when a tool is missing.
#
# Run it to install and print the exports; or source it to install and get
# BERTH_PEERS, BERTH_PY, BERTH_NODE_MODULES and BERTH_SUPERGATEWAY exported
# (sourcing runs the install in a child bash, so the caller's shell options are
# left alone and a failure returns non-zero instead of exiting the shell).

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  _berth_peers_out=$(bash "${BASH_SOURCE[0]}") || return $?
  eval "$_berth_peers_out"
  unset _berth_peers_out
  return 0
fi

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${BERTH_TEST_CACHE:-$REPO/.cache/test-peers}
SPEC=$REPO/tests/peers
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
VENV=$CACHE/venv
NODE=$CACHE/node

say() { echo "test-peers: $*" >&2; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# One installer at a time per cache (CI and a developer may share a machine).
if command -v flock >/dev/null; then
  exec 9>"$CACHE/.lock"
  flock 9
fi

# Debian packages, only for what is missing.
apt_pkgs=()
command -v python3 >/dev/null || apt_pkgs+=(python3)
if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  apt_pkgs+=(python3-venv)
fi
command -v node >/dev/null || apt_pkgs+=(nodejs)
command -v npm >/dev/null || apt_pkgs+=(npm)
# The admin console's browser tests drive Debian's Chromium (never a downloaded one).
command -v chromium >/dev/null || apt_pkgs+=(chromium)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  say "installing Debian packages: ${apt_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

# Python peers: a fresh venv whenever the pins (or the interpreter) change.
py_want=$(hash_of "$SPEC/requirements.txt" <(python3 -c 'import sys; print(sys.version)'))
if [ "$(cat "$VENV/.berth-stamp" 2>/dev/null)" != "$py_want" ] || [ ! -x "$VENV/bin/python" ]; then
  say "installing Python peers into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --no-input --disable-pip-version-check -r "$SPEC/requirements.txt"
  echo "$py_want" >"$VENV/.berth-stamp"
fi

# Node peers: npm ci from the committed lock.
node_want=$(hash_of "$SPEC/package.json" "$SPEC/package-lock.json")
if [ "$(cat "$NODE/.berth-stamp" 2>/dev/null)" != "$node_want" ] || [ ! -f "$NODE/node_modules/.package-lock.json" ]; then
  say "installing Node peers into $NODE"
  mkdir -p "$NODE"
  rm -f "$NODE/.berth-stamp"
  cp "$SPEC/package.json" "$SPEC/package-lock.json" "$NODE/"
  (cd "$NODE" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$node_want" >"$NODE/.berth-stamp"
fi

printf 'export BERTH_PEERS=%q\n' "$CACHE"
printf 'export BERTH_PY=%q\n' "$VENV/bin/python"
printf 'export BERTH_NODE_MODULES=%q\n' "$NODE/node_modules"
printf 'export BERTH_SUPERGATEWAY=%q\n' "$NODE/node_modules/supergateway/dist/index.js"
