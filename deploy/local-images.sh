#!/usr/bin/env bash
# Builds, with Podman and without any image registry, every image docker-compose.yml uses, tagged
# as the compose file names them:
#   localhost/mcp-debian:bookworm  a Debian 12 base made with debootstrap from Debian's packages
#                                  (with curl and the CA bundle); cached in Podman's storage
#   mcp-suite:latest               the project's Dockerfile on that base, from this workspace's
#                                  binaries (BINARIES=prebuilt: nothing is compiled in the image)
#   prom/prometheus:v2.53.0        Debian's prometheus binary (the host's `prometheus` package) on
#                                  that base: a stand-in for the registry's image
# Grafana, Loki and promtail have no Debian package: the `monitoring` profile still needs them from
# a registry.
#
# Usage: deploy/local-images.sh [--debug]
#   --debug   use the debug binaries `cargo test --workspace` built (nothing is compiled) instead
#             of a release build
# Environment: MCP_IMAGE_CACHE (default /var/cache/mcp-suite) keeps the debootstrap root file
# system; DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/deploy/podman/containers.conf}"

profile=release
case "${1:-}" in
  --debug) profile=debug ;;
  "") ;;
  *) echo "usage: $0 [--debug]" >&2; exit 64 ;;
esac
for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is not installed (apt-get install podman runc debootstrap)" >&2; exit 69; }
done

base=localhost/mcp-debian:bookworm
cache="${MCP_IMAGE_CACHE:-/var/cache/mcp-suite}"
if ! podman image exists "$base"; then
  rootfs="$cache/rootfs-bookworm"
  if [ ! -x "$rootfs/usr/bin/curl" ]; then
    echo "== debootstrap Debian 12 into $rootfs"
    rm -rf "$rootfs.partial"
    mkdir -p "$cache"
    debootstrap --variant=minbase --include=ca-certificates,curl bookworm "$rootfs.partial" \
      "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$cache/debootstrap.log" 2>&1 \
      || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs.partial"/var/cache/apt/archives/*.deb "$rootfs.partial"/var/lib/apt/lists/*
    mv "$rootfs.partial" "$rootfs"
  fi
  echo "== podman import $base"
  tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
fi

bins=(mcp-master mcp-cmdb mcp-linux-cli mcp-secrets mcp-k8s mcp-ai-models mcp-freqtrade mcp-stack)
if [ "$profile" = release ]; then
  echo "== cargo build --release of the services' binaries"
  cargo build --release --bins $(printf -- '-p %s ' "${bins[@]}")
else
  # What `cargo test --workspace` built: a `cargo build` here would resolve other features and
  # compile the workspace a second time.
  for b in "${bins[@]}"; do
    [ -x "target/debug/$b" ] || { echo "$0: target/debug/$b is missing: run cargo test --workspace (or cargo build --workspace --bins) first" >&2; exit 1; }
  done
fi

echo "== podman build mcp-suite:latest (prebuilt $profile binaries on $base)"
podman build --quiet --network none --format docker \
  --build-arg RUNTIME_IMAGE="$base" --build-arg BINARIES=prebuilt --build-arg PROFILE="$profile" \
  -t mcp-suite:latest . >/dev/null

if command -v prometheus >/dev/null; then
  echo "== podman build prom/prometheus:v2.53.0 (Debian's $(prometheus --version 2>&1 | head -1 | awk '{print $3}'))"
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' EXIT
  cp "$(command -v prometheus)" "$ctx/prometheus"
  podman build --quiet --network none --format docker --build-arg BASE_IMAGE="$base" \
    -f deploy/podman/prometheus.Containerfile -t prom/prometheus:v2.53.0 "$ctx" >/dev/null
else
  echo "== no prometheus binary (apt-get install prometheus): the monitoring profile's Prometheus is not built"
fi
echo "== images:"
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'mcp-suite|mcp-debian|prometheus'
