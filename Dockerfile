# syntax=docker/dockerfile:1
#
# The local adapter `kv-server` (the whole key-value API and GET /health in one process).
#
#   docker build -t kv-server .          # needs BuildKit (the default of Docker >= 23)
#   docker compose up --build            # with MySQL: see docker-compose.yml and README.md
#
# Checked without a Docker engine by `scripts/ci.sh containers` (hadolint, scripts/check_deploy.py).

# Base images are pinned by version tag and digest (`scripts/check_deploy.py containers` refuses
# a FROM without both): the digest fixes the bytes, the tag says what they are. Docker Hub could
# not be reached when these were pinned, so the digests were NOT read from the registry: each is
# the one that several independent public repositories pin to the same tag (Dockerfiles, and a
# BuildKit log resolving rust:1.95-bookworm to it, so a tag's multi-platform index digest). Check
# them, and update, with
#
#   docker buildx imagetools inspect rust:1.95.0-bookworm            # its "Digest:" line
#   docker buildx imagetools inspect debian:bookworm-YYYYMMDD-slim   # the newest dated tag
#
# and replace tag and digest together. The builder's Rust must be at least the workspace's
# rust-version (Cargo.toml); the runtime must be the builder's Debian release (bookworm), whose
# glibc the binary links against.

# --- build ---------------------------------------------------------------------------------
FROM rust:1.95.0-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS builder
WORKDIR /build

# Every workspace member must be present for cargo to load the workspace (shared/,
# functions/ and tests/support/), and migrations/ is embedded at compile time by sqlx::migrate!.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY shared ./shared
COPY functions ./functions
COPY tests/support ./tests/support
COPY migrations ./migrations

# BuildKit cache mounts keep the crates.io registry and the target directory between
# builds, so a source change recompiles only the project's own crates. The target directory
# is a cache mount (not part of the image), hence the copy of the binary in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/build/target,sharing=locked \
    cargo build --profile server --locked -p kv-server \
    && install -D -m 0755 target/server/kv-server /out/kv-server

# --- runtime -------------------------------------------------------------------------------
FROM debian:bookworm-20260713-slim@sha256:7b140f374b289a7c2befc338f42ebe6441b7ea838a042bbd5acbfca6ec875818 AS runtime

# Debian's package versions move with security updates; pinning them would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 kv \
    && useradd --system --uid 10001 --gid kv --home-dir /var/lib/kv --create-home \
        --shell /usr/sbin/nologin kv

COPY --from=builder /out/kv-server /usr/local/bin/kv-server

# Without DATABASE_URL the adapter uses the SQLite file kv.db in its working directory,
# which therefore belongs to the unprivileged user.
WORKDIR /var/lib/kv
USER 10001:10001

# HOST=0.0.0.0 (reachable beyond the container's loopback): the adapter refuses to start
# without a JWT_SECRET of your own, so `docker run -e JWT_SECRET=...` (compose sets one).
ENV HOST=0.0.0.0 \
    PORT=3000 \
    RUST_LOG=info
EXPOSE 3000

# The slim image has no curl: bash's /dev/tcp sends GET /health and expects a 200
# (the adapter answers 503 while the database is unreachable).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/\"${PORT:-3000}\" && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["/usr/local/bin/kv-server"]
