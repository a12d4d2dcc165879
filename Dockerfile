# F2S's two images, both the single `f2s` binary that `deno compile` builds:
#   control plane (last stage, what helm/ deploys):  docker build -t f2s:dev .
#   fizzlet base image for functions:                docker build --target fizzlet -t f2s-fizzlet:dev .
# The release workflow (.github/workflows/release.yml) builds both for linux/amd64 and
# linux/arm64 and pushes them to ghcr.io/<owner>/f2s and ghcr.io/<owner>/f2s-fizzlet. The
# compile runs on the build machine's platform and cross-compiles for the target's (no
# emulation); it needs Deno's runtime download, so build where the internet is reachable.
# For a kind cluster: `kind load docker-image f2s:dev` (minikube: `minikube image load f2s:dev`).
FROM --platform=$BUILDPLATFORM denoland/deno:2.9.6 AS build
ARG TARGETARCH
WORKDIR /src
COPY deno.json deno.lock main.ts ./
COPY common ./common
COPY control ./control
COPY dispatcher ./dispatcher
COPY fizzlet ./fizzlet
COPY docs/openapi.json ./docs/openapi.json
COPY ui ./ui
RUN case "${TARGETARCH:-amd64}" in \
      amd64) target=x86_64-unknown-linux-gnu ;; \
      arm64) target=aarch64-unknown-linux-gnu ;; \
      *) echo "unsupported architecture ${TARGETARCH}" >&2; exit 1 ;; \
    esac && \
    deno compile -A --target "$target" --include ui --output /out/f2s main.ts

# Function images build FROM this one (the fizzlet on :9092 as the entrypoint) or copy
# /usr/local/bin/f2s out of it into their own base image (docs/fizzlet.md). Numeric user:
# F2S runs function pods as 10001 with a read-only root and a writable /tmp. tini is PID 1:
# it reaps what a function's processes leave behind (the fizzlet, a Deno program, waits only
# for the processes it started) and passes SIGTERM on.
FROM debian:bookworm-slim AS fizzlet
RUN apt-get update && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/f2s /usr/local/bin/f2s
USER 10001:10001
WORKDIR /function
EXPOSE 9092
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/f2s", "fizzlet"]

FROM debian:bookworm-slim AS control-plane
# tini as PID 1 here too: it reaps orphans (e.g. of a kubeconfig exec plugin).
RUN apt-get update && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/f2s /usr/local/bin/f2s
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/f2s"]
CMD ["serve"]
