#!/usr/bin/env bash
# Makes sure a PostgreSQL server for the tests answers on 127.0.0.1, idempotently:
# installs Debian's postgresql if its binaries are missing, and runs a private
# cluster (trust auth, loopback only) under the test cache when none answers.
# Source it or run it; exports BERTH_TEST_POSTGRES, an admin URL on which tests
# create (and drop) databases of their own.
set -euo pipefail

_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_port=${BERTH_PG_PORT:-54329}
_dir=${BERTH_PG_DIR:-$_repo/.cache/postgres}
_url="postgres://postgres@127.0.0.1:$_port/postgres"

_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$_bin" ] || [ ! -x "$_bin/initdb" ]; then
  echo "postgres: installing postgresql" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  _bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

if ! "$_bin/pg_isready" -q -h 127.0.0.1 -p "$_port"; then
  # The server refuses to run as root: the cluster belongs to `postgres`.
  _as=()
  mkdir -p "$_dir"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$_dir"
    _as=(runuser -u postgres --)
  fi
  if [ ! -s "$_dir/data/PG_VERSION" ]; then
    "${_as[@]}" "$_bin/initdb" -D "$_dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  echo "postgres: starting a cluster on 127.0.0.1:$_port ($_dir)" >&2
  "${_as[@]}" "$_bin/pg_ctl" -D "$_dir/data" -l "$_dir/log" -w -t 60 \
    -o "-h 127.0.0.1 -p $_port -k $_dir -c fsync=off" start >/dev/null
fi
export BERTH_TEST_POSTGRES="$_url"
