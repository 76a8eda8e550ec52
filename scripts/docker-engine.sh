#!/usr/bin/env bash
# Makes sure a Docker engine answers on the default socket, idempotently:
# installs Debian's docker.io if dockerd is missing and starts dockerd (vfs
# storage, no iptables, no default bridge: containers here use network none)
# when nothing answers. Source it or run it; sets BERTH_DOCKER=1 on success.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  export BERTH_DOCKER=1
  return 0 2>/dev/null || exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-engine: installing docker.io" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
_log=${BERTH_DOCKERD_LOG:-/tmp/berth-dockerd.log}
echo "docker-engine: starting dockerd (log: $_log)" >&2
nohup dockerd --iptables=false --ip-forward=false --bridge=none --storage-driver=vfs \
  --host unix:///var/run/docker.sock >"$_log" 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    export BERTH_DOCKER=1
    return 0 2>/dev/null || exit 0
  fi
  sleep 0.5
done
echo "docker-engine: dockerd did not come up; see $_log" >&2
tail -20 "$_log" >&2 || true
return 1 2>/dev/null || exit 1
