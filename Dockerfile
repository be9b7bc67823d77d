# syntax=docker/dockerfile:1
# The image of every tmaflow service: SERVICE names a directory of
# services/ whose module has a main package at its root (monitor, labeler,
# persister, ruler, the all-in-one tmaflow, and any service added there).
# Build from the repository root:
#   docker build --build-arg SERVICE=monitor -t tmaflow/monitor:dev .
#   docker buildx build --platform linux/arm64 --build-arg SERVICE=monitor -t tmaflow/monitor:dev .
#
# The image is the same for every service but for its binary: listen
# addresses, paths and ports are the deployment's (flags or TMAFLOW_*
# variables; docker-compose.yml, deploy/k8s, docs/deploy.md). The flags
# default to 127.0.0.1, so a container must be given 0.0.0.0 listeners.

ARG GO_VERSION=1.26.8
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot
ARG SERVICE

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG SERVICE
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
# The image's toolchain builds: no download of another one. The service's
# module builds alone (GOWORK=off), through its replace directives
# (../../pkg, ../../schemas, sibling services), so go.work and the modules
# it lists besides these are not build inputs.
ENV GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
# The binary under its own name and the fixed name of the ENTRYPOINT (exec
# form expands no ARG) linking to it, and the state directory: made here
# because the runtime image has no shell.
RUN case "$SERVICE" in \
      ''|.*|*/*) echo "--build-arg SERVICE=<a directory of services/> is required (got '$SERVICE')" >&2; exit 1 ;; \
    esac && \
    mkdir -p /out/bin /out/state && \
    ln -s "$SERVICE" /out/bin/tmaflow-service
# .dockerignore keeps tests, test data, docs and deploy files out, so only
# build inputs invalidate this layer; the module and build caches are cache
# mounts, so a change recompiles only what changed and only the modules this
# binary needs are downloaded (go mod download would fetch the whole graph).
COPY pkg/ pkg/
COPY schemas/ schemas/
COPY services/ services/
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    test -f "services/$SERVICE/go.mod" || { echo "services/$SERVICE is not a module" >&2; exit 1; } && \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go -C "services/$SERVICE" build -trimpath -ldflags='-s -w' -o "/out/bin/$SERVICE" .

FROM ${RUNTIME_IMAGE}
ARG SERVICE
LABEL org.opencontainers.image.title="${SERVICE}" \
      org.opencontainers.image.description="tmaflow ${SERVICE}"
# /usr/local/bin/$SERVICE and the link /usr/local/bin/tmaflow-service to it
# (a directory's contents are copied with their links), owned by root.
COPY --from=build /out/bin/ /usr/local/bin/
# State (the persister's TSDB, the all-in-one's broker logs and TSDB) goes
# below /var/lib/tmaflow when the deployment says so (-tsdb.path,
# -data-dir). It is owned by the runtime user, so a fresh named volume
# mounted here is writable.
COPY --from=build --chown=65532:65532 /out/state /var/lib/tmaflow
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tmaflow-service"]
