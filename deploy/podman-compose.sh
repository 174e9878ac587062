#!/usr/bin/env bash
# docker-compose.yml, unchanged, under Podman: Debian's docker-compose (v1) talks to a Podman API
# service this script starts, with the settings of deploy/podman/containers.conf.
#
# Usage: deploy/podman-compose.sh <docker-compose arguments>, e.g.
#   deploy/local-images.sh                 # once: the images, without a registry
#   deploy/podman-compose.sh up -d         # master on 127.0.0.1:8000, every service on its port
#   deploy/podman-compose.sh ps
#   deploy/podman-compose.sh down          # named volumes (master's audit, ...) are kept
#   deploy/podman-compose.sh stop-helpers  # end the API service and the health checker
#
# Podman runs container health checks from systemd timers. Where no systemd runs (containers, CI
# machines), this script also starts a small checker that runs `podman healthcheck run` for
# every running container every MCP_HEALTH_TICK seconds (default 2), so that `healthy` states and
# `depends_on: condition: service_healthy` work as under Docker.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/podman/containers.conf}"
run="${MCP_PODMAN_RUN:-/run/mcp-podman}"
sock="$run/podman.sock"
mkdir -p "$run"

for tool in podman docker-compose; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is not installed (apt-get install podman runc docker-compose)" >&2; exit 69; }
done

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ "${1:-}" = stop-helpers ]; then
  for p in health service; do
    alive "$run/$p.pid" && kill "$(cat "$run/$p.pid")"
    rm -f "$run/$p.pid"
  done
  exit 0
fi

if ! alive "$run/service.pid"; then
  rm -f "$sock"
  podman system service --time=0 "unix://$sock" >"$run/service.log" 2>&1 &
  echo $! >"$run/service.pid"
  for _ in $(seq 100); do
    curl -fsS --unix-socket "$sock" http://podman/_ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS --unix-socket "$sock" http://podman/_ping >/dev/null \
    || { echo "$0: the Podman API service did not start; see $run/service.log" >&2; exit 1; }
fi

if [ ! -d /run/systemd/system ] && ! alive "$run/health.pid"; then
  (
    while :; do
      for c in $(podman ps --quiet 2>/dev/null); do
        podman healthcheck run "$c" >/dev/null 2>&1 || true
      done
      sleep "${MCP_HEALTH_TICK:-2}"
    done
  ) >/dev/null 2>&1 &
  echo $! >"$run/health.pid"
fi

export DOCKER_HOST="unix://$sock"
exec docker-compose "$@"
