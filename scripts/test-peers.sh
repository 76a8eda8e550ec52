#!/usr/bin/env bash
# Installs berth's pinned test peers, idempotently, into a cache folder this
# script owns: a Python venv (the official `mcp` SDK, mcp-server-time, pytest)
# and node_modules (the TypeScript SDK, server-everything, supergateway).
# Re-running with everything in place takes well under two seconds.
#
# Source it to get BERTH_PEERS, BERTH_PY and BERTH_NODE_MODULES exported, or
# run it to install and print them.
set -euo pipefail

_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BERTH_PEERS=${BERTH_TEST_CACHE:-$_repo/.cache/test-peers}
_spec="$_repo/tests/peers"
mkdir -p "$BERTH_PEERS"

_need_apt=()
command -v python3 >/dev/null || _need_apt+=(python3 python3-venv)
command -v node >/dev/null || _need_apt+=(nodejs)
command -v npm >/dev/null || _need_apt+=(npm)
python3 -c 'import ensurepip' 2>/dev/null || _need_apt+=(python3-venv)
if [ ${#_need_apt[@]} -gt 0 ]; then
  echo "test-peers: installing Debian packages: ${_need_apt[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${_need_apt[@]}" >/dev/null
fi

_hash() { sha256sum "$@" | sha256sum | cut -c1-16; }

# Python peers.
_py_stamp="$BERTH_PEERS/venv/.berth-stamp"
_py_want=$(_hash "$_spec/requirements.txt")
if [ "$(cat "$_py_stamp" 2>/dev/null)" != "$_py_want" ]; then
  echo "test-peers: installing Python peers into $BERTH_PEERS/venv" >&2
  [ -x "$BERTH_PEERS/venv/bin/python" ] || python3 -m venv "$BERTH_PEERS/venv"
  "$BERTH_PEERS/venv/bin/pip" install -q --disable-pip-version-check -r "$_spec/requirements.txt"
  echo "$_py_want" >"$_py_stamp"
fi

# Node peers.
_node="$BERTH_PEERS/node"
_node_stamp="$_node/.berth-stamp"
_node_want=$(_hash "$_spec/package.json" "$_spec/package-lock.json")
if [ "$(cat "$_node_stamp" 2>/dev/null)" != "$_node_want" ]; then
  echo "test-peers: installing Node peers into $_node" >&2
  mkdir -p "$_node"
  cp "$_spec/package.json" "$_spec/package-lock.json" "$_node/"
  (cd "$_node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$_node_want" >"$_node_stamp"
fi

export BERTH_PEERS
export BERTH_PY="$BERTH_PEERS/venv/bin/python"
export BERTH_NODE_MODULES="$_node/node_modules"
export BERTH_SUPERGATEWAY="$BERTH_NODE_MODULES/supergateway/dist/index.js"

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  printf 'export BERTH_PEERS=%q BERTH_PY=%q BERTH_NODE_MODULES=%q BERTH_SUPERGATEWAY=%q\n' \
    "$BERTH_PEERS" "$BERTH_PY" "$BERTH_NODE_MODULES" "$BERTH_SUPERGATEWAY"
fi
