# One image for every service of the suite; the compose file picks the binary per service.
# Stage 1 caches dependencies (manifests only), stage 2 builds the workspace with that registry, the
# last stage is a small runtime.
#
# Build arguments (defaults: the registry's images, compiled in the image):
#   BUILDER_IMAGE  the Rust toolchain image of the build stages
#   RUNTIME_IMAGE  the Debian image of the runtime (deploy/local-images.sh makes one with debootstrap)
#   BINARIES       `build` compiles the workspace here; `prebuilt` takes target/$PROFILE/mcp-* from
#                  the build context (after `cargo build --release`), so CI does not build twice
#   PROFILE        with `prebuilt`: release (default) or debug (what `cargo test` built)
ARG BUILDER_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG BINARIES=build

FROM ${BUILDER_IMAGE} AS deps
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates/mcp-runtime/Cargo.toml crates/mcp-runtime/Cargo.toml
COPY crates/conformance-fixture/Cargo.toml crates/conformance-fixture/Cargo.toml
COPY crates/bench/Cargo.toml crates/bench/Cargo.toml
COPY services/cmdb/Cargo.toml services/cmdb/Cargo.toml
COPY services/linux-cli/Cargo.toml services/linux-cli/Cargo.toml
COPY crates/security/Cargo.toml crates/security/Cargo.toml
COPY services/master/Cargo.toml services/master/Cargo.toml
COPY services/secrets/Cargo.toml services/secrets/Cargo.toml
COPY services/k8s/Cargo.toml services/k8s/Cargo.toml
COPY services/ai-models/Cargo.toml services/ai-models/Cargo.toml
COPY services/freqtrade/Cargo.toml services/freqtrade/Cargo.toml
COPY services/stack/Cargo.toml services/stack/Cargo.toml
COPY crates/test-support/Cargo.toml crates/test-support/Cargo.toml
COPY tests/e2e/Cargo.toml tests/e2e/Cargo.toml
# Manifests need a target to load; empty stand-ins are enough to fetch, and stay in this stage.
RUN for d in crates/* services/* tests/e2e; do mkdir -p "$d/src" && touch "$d/src/lib.rs" "$d/src/main.rs"; done \
 && cargo fetch --locked

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY --from=deps /usr/local/cargo/registry /usr/local/cargo/registry
COPY . .
RUN cargo build --release --locked --bin mcp-master --bin mcp-cmdb --bin mcp-linux-cli --bin mcp-secrets --bin mcp-k8s --bin mcp-ai-models --bin mcp-freqtrade --bin mcp-stack

# The workspace's own release binaries (.dockerignore lets exactly these through).
FROM scratch AS prebuilt
ARG PROFILE=release
COPY target/${PROFILE}/mcp-master target/${PROFILE}/mcp-cmdb target/${PROFILE}/mcp-linux-cli target/${PROFILE}/mcp-secrets target/${PROFILE}/mcp-k8s target/${PROFILE}/mcp-ai-models target/${PROFILE}/mcp-freqtrade target/${PROFILE}/mcp-stack /src/target/release/

FROM ${BINARIES} AS binaries

FROM ${RUNTIME_IMAGE} AS runtime
# A base that already has curl and the CA bundle (the debootstrap one) needs no package download.
RUN if ! command -v curl >/dev/null || [ ! -e /etc/ssl/certs/ca-certificates.crt ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends ca-certificates curl \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && useradd --system --uid 10001 --home /app --create-home mcp
COPY --from=binaries /src/target/release/mcp-master /src/target/release/mcp-cmdb /src/target/release/mcp-linux-cli /src/target/release/mcp-secrets /src/target/release/mcp-k8s /src/target/release/mcp-ai-models /src/target/release/mcp-freqtrade /src/target/release/mcp-stack /usr/local/bin/
COPY data/cmdb.csv /app/data/cmdb.csv
COPY workflows /app/workflows
WORKDIR /app
RUN mkdir -p /app/data/master /app/data/linux-cli/workspace /app/data/linux-cli/backups /app/data/secrets /app/data/freqtrade && chown -R mcp:mcp /app
USER mcp
ENV MCP_SERVER_HOST=0.0.0.0
# Each service overrides the port; /health answers 503 only when the service is unhealthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${MCP_SERVER_PORT:-8000}/health" || exit 1
CMD ["mcp-stack"]
